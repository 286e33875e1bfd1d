"""Every transform in es_assets/transforms evaluated over a small store, checked by hand."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from authml.assets import assets_dir
from authml.cli import cli
from authml.embedded.features import (
    build_features,
    feature_definitions,
    read_feature_documents,
    resolve_feature,
)
from authml.engine.validate import validate_transform
from tests.conformance.events import auth_event, write_events

INGESTED = "2024-01-02T00:00:00.000Z"


def _events():
    return [
        auth_event("alice", "2024-01-01T10:05:00.000Z", INGESTED, record=1, ip="10.0.0.1", host="ws1", logon_type="3"),
        auth_event("alice", "2024-01-01T10:35:00.000Z", INGESTED, record=2, ip="10.0.0.2", host="ws1", logon_type="10",
                   code="4625", outcome="failure"),
        auth_event("alice", "2024-01-01T10:50:00.000Z", INGESTED, record=3, ip="10.0.0.2", host="ws2", logon_type="3"),
        auth_event("bob", "2024-01-01T10:10:00.000Z", INGESTED, record=4, ip="10.0.0.2", host="ws2", logon_type=None,
                   code="4769", service="krbtgt", encryption="0x17"),
        auth_event("bob", "2024-01-01T11:00:00.000Z", INGESTED, record=5, ip="10.0.0.2", host="ws2", logon_type="3",
                   code="4625", outcome="failure"),
        # Not an authentication event code: filtered out by every transform's source.query.
        auth_event("alice", "2024-01-01T10:06:00.000Z", INGESTED, record=6, code="4688"),
        # No user: dropped from per-user transforms, still counted per source IP.
        auth_event(None, "2024-01-01T10:07:00.000Z", INGESTED, record=7, ip="10.0.0.1", code="4625", outcome="failure"),
    ]  # fmt: skip


@pytest.fixture
def store(project_dir):
    opened = write_events(project_dir, _events())
    build_features(opened)
    yield opened
    opened.close()


def _by_keys(documents, *paths):
    def key(document):
        values = []
        for path in paths:
            node = document
            for part in path.split("."):
                node = node[part]
            values.append(node)
        return tuple(values)

    return {key(d): {k: v for k, v in d.items() if k != "_id"} for d in documents}


def test_asset_transforms_are_valid():
    definitions = feature_definitions()
    assert len(definitions) >= 4
    for definition in definitions:
        assert (
            validate_transform(definition.body, definition.file, transform_id=definition.transform_id) == []
        )


def test_user_hourly(store):
    rows = _by_keys(
        read_feature_documents(store, resolve_feature("authml-user-hourly")), "user.name", "@timestamp"
    )
    assert set(rows) == {
        ("alice", "2024-01-01T10:00:00.000Z"),
        ("bob", "2024-01-01T10:00:00.000Z"),
        ("bob", "2024-01-01T11:00:00.000Z"),
    }
    alice = rows[("alice", "2024-01-01T10:00:00.000Z")]
    assert alice["events"] == 3 and alice["failures"] == 1
    assert alice["source_ips"] == 2 and alice["hosts"] == 2 and alice["services"] == 0
    assert alice["logon_types"] == {"3": 2, "10": 1}
    assert alice["ticket_encryption_types"] == {}
    bob = rows[("bob", "2024-01-01T10:00:00.000Z")]
    assert bob["services"] == 1 and bob["ticket_encryption_types"] == {"0x17": 1} and bob["logon_types"] == {}


def test_user_source_ip(store):
    rows = _by_keys(
        read_feature_documents(store, resolve_feature("authml-user-source-ip")), "user.name", "source.ip"
    )
    assert set(rows) == {("alice", "10.0.0.1"), ("alice", "10.0.0.2"), ("bob", "10.0.0.2")}
    pair = rows[("alice", "10.0.0.2")]
    assert (pair["events"], pair["failures"], pair["hosts"]) == (2, 1, 2)
    assert (pair["first_seen"], pair["last_seen"]) == ("2024-01-01T10:35:00.000Z", "2024-01-01T10:50:00.000Z")
    assert pair["logon_types"] == {"10": 1, "3": 1}


def test_user_host(store):
    rows = _by_keys(
        read_feature_documents(store, resolve_feature("authml-user-host")), "user.name", "host.name"
    )
    assert set(rows) == {("alice", "ws1"), ("alice", "ws2"), ("bob", "ws2")}
    bob = rows[("bob", "ws2")]
    assert (bob["events"], bob["failures"], bob["source_ips"]) == (2, 1, 1)
    assert (bob["first_seen"], bob["last_seen"]) == ("2024-01-01T10:10:00.000Z", "2024-01-01T11:00:00.000Z")


def test_source_ip_hourly(store):
    rows = _by_keys(
        read_feature_documents(store, resolve_feature("authml-source-ip-hourly")), "source.ip", "@timestamp"
    )
    first = rows[("10.0.0.1", "2024-01-01T10:00:00.000Z")]
    # alice's logon plus the user-less failure: two events, one failure, one named user.
    assert (first["events"], first["failures"], first["users"], first["failed_logons"]) == (
        2,
        1,
        1,
        {"users": 0},
    )
    second = rows[("10.0.0.2", "2024-01-01T10:00:00.000Z")]
    assert (second["events"], second["failures"], second["users"], second["failed_logons"]) == (
        3,
        1,
        2,
        {"users": 1},
    )


def test_table_contract(store):
    """One column per leaf of the dest document, named by its dotted path, plus _id."""
    columns = dict(
        store.connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
            ["authml-features-source-ip-hourly-v1"],
        ).fetchall()
    )
    assert columns["_id"] == "VARCHAR"
    assert columns["@timestamp"] == "TIMESTAMP"
    assert columns["source.ip"] == "VARCHAR"
    assert columns["failed_logons.users"] == "BIGINT"
    assert columns["events"] == "BIGINT"
    terms = store.connection.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_name = ? AND column_name = 'logon_types'",
        ["authml-features-user-hourly-v1"],
    ).fetchone()[0]
    assert terms.startswith("MAP(VARCHAR")


def test_ids_are_deterministic_and_unique(store, tmp_path):
    documents = read_feature_documents(store, resolve_feature("authml-user-hourly"))
    ids = [d["_id"] for d in documents]
    assert len(set(ids)) == len(ids)
    other = write_events(tmp_path / "again", _events())
    build_features(other)
    again = read_feature_documents(other, resolve_feature("authml-user-hourly"))
    other.close()
    assert [d["_id"] for d in again] == ids


def test_cli_build_and_show(project_dir):
    write_events(project_dir, _events()).close()
    runner = CliRunner()
    built = runner.invoke(cli, ["--project-dir", str(project_dir), "features", "build"])
    assert built.exit_code == 0, built.output
    assert "authml-user-hourly" in built.output and "full" in built.output
    shown = runner.invoke(
        cli,
        [
            "--project-dir",
            str(project_dir),
            "features",
            "show",
            "authml-user-source-ip",
            "--user",
            "bob",
            "--json",
        ],
    )
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.output)
    assert [(r["user"]["name"], r["source"]["ip"], r["events"]) for r in rows] == [("bob", "10.0.0.2", 2)]
    again = runner.invoke(cli, ["--project-dir", str(project_dir), "features", "build"])
    assert "unchanged" in again.output


def test_cli_preview(tmp_path):
    docs = tmp_path / "docs.ndjson"
    docs.write_text(
        json.dumps(auth_event("carol", "2024-01-01T10:05:00Z", INGESTED, ip="10.1.1.1")) + "\n"
        + json.dumps(auth_event("carol", "2024-01-01T10:15:00Z", INGESTED, ip="10.1.1.2", code="4625", outcome="failure"))
        + "\n"
    )  # fmt: skip
    mappings = assets_dir() / "component_templates" / "authml-events-mappings.yml"
    command = ["features", "preview", "authml-user-hourly", "--docs", str(docs)]
    result = CliRunner().invoke(cli, [*command, "--mappings", str(mappings)])
    assert result.exit_code == 0, result.output
    output = json.loads(result.output)
    (row,) = output["preview"]
    assert (
        row["user"] == {"name": "carol"}
        and row["events"] == 2
        and row["failures"] == 1
        and row["source_ips"] == 2
    )
    assert output["generated_dest_index"]["mappings"]["properties"]["user.name"] == {"type": "keyword"}
    # Without mappings, strings are mapped dynamically as text: the term query on event.code
    # would not match as it does on a keyword, so the engine refuses and says why.
    dynamic = CliRunner().invoke(cli, command)
    assert dynamic.exit_code != 0
    assert "event.code.keyword" in str(dynamic.exception)


def test_cli_preview_reports_bad_line(tmp_path):
    docs = tmp_path / "docs.ndjson"
    docs.write_text('{"a": 1}\nnot json\n')
    result = CliRunner().invoke(cli, ["features", "preview", "authml-user-hourly", "--docs", str(docs)])
    assert result.exit_code != 0
    assert f"{docs}:2" in str(result.exception) + result.output


def test_multi_valued_field_stops_the_build(project_dir):
    from authml.errors import StoreError

    event = auth_event("dave", "2024-01-01T10:05:00.000Z", INGESTED, record=40)
    event["host"]["name"] = ["ws1", "ws2"]  # ES would count dave on both hosts
    store = write_events(project_dir, [*_events(), {**event}])
    with pytest.raises(StoreError, match=r"several values in \[host.name\]"):
        build_features(store)
    store.close()


@pytest.mark.parametrize("definition", feature_definitions(), ids=lambda d: d.transform_id)
def test_every_asset_transform_builds_rows(store, definition):
    """Any transform added under es_assets/transforms runs through the engine on the store."""
    documents = read_feature_documents(store, definition)
    assert documents, f"{definition.transform_id} produced no rows from the test events"
    group_names = list(definition.body["pivot"]["group_by"])
    for document in documents:
        assert len(document["_id"]) == 32
        for name in group_names:
            node = document
            for part in name.split("."):
                node = node[part]
            assert node is not None  # no missing_bucket in the assets: documents without a key are dropped
