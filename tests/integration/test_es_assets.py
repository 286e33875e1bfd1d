"""The assets against a real Elasticsearch: apply converges, the pipeline agrees with the embedded
store on ids and user keys, transforms preview what the embedded engine computes, enrich stamps
risk, LOOKUP JOIN attaches scores, plan shows exactly a version bump, and the roles suffice."""

from __future__ import annotations

import copy
import json
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from authml.assets import assets_dir, load_asset
from authml.assets.catalogue import load_catalogue
from authml.cli import cli
from authml.ecs import user_key
from authml.embedded.preview import preview as embedded_preview
from authml.es.apply import plan_steps
from authml.es.client import connect
from authml.es.doctor import run_checks
from authml.es.options import make_options
from authml.es.plan import fetch_live, make_plan
from authml.es.sink import ElasticsearchSink
from authml.ids import event_id
from authml.ingest import prepare_event

from .conftest import apply_assets

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"
PREVIEW_INDEX = "authml-events-preview-test"


def fixture_documents() -> list[dict]:
    lines = (FIXTURES / "auth-events.ndjson").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _prepared(documents: list[dict]):
    ingested = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return [
        prepare_event(copy.deepcopy(doc), "auth-events.ndjson", f"line {n}", ingested)
        for n, doc in enumerate(documents, 1)
    ]


def test_apply_twice_changes_nothing(applied):
    catalogue = load_catalogue()
    live = fetch_live(applied, catalogue)
    changes = make_plan(catalogue, live)
    assert [
        (c.key, c.action, [str(d) for d in c.differences]) for c in changes if c.action != "unchanged"
    ] == []
    assert plan_steps(changes, catalogue, live) == []
    assert apply_assets(applied) == []


def test_pipeline_computes_the_same_event_id_and_user_key_as_authml(applied):
    documents = fixture_documents() + [
        {"@timestamp": "2024-03-05T00:00:00Z", "tags": ["a", True, 1.5, None, False], "user": {"name": "x"}},
        {"message": "only a message", "labels": {"ignored": "yes"}},
        {"winlog": {"computer_name": "", "channel": "Security", "record_id": 1}, "event": {"code": "4624"}},
        {"user": {"name": "\u00a0Zoë\u2003", "domain": "\tDOMAIN\u3000"}, "event": {"code": "4624"}},
        {
            "user": {"name": "FRANK", "domain": ""},
            "event": {"code": "4624", "ingested": "2024-01-01T00:00:00Z"},
        },
    ]
    response = applied.ingest.simulate(id="authml-events", docs=[{"_source": doc} for doc in documents])
    for doc, result in zip(documents, response["docs"], strict=True):
        source = result["doc"]["_source"]
        assert "ingest_failure" not in source.get("authml", {}), source
        assert source["authml"]["event_id"] == event_id(doc), doc
        user = doc.get("user", {})
        assert source["authml"].get("user_key") == user_key(user.get("name"), user.get("domain")), doc
        assert source["event"]["ingested"]
        earlier = doc.get("event", {}).get("ingested")
        assert source["authml"].get("source_ingested") == earlier


def test_a_record_without_identity_is_kept_and_marked(applied):
    response = applied.ingest.simulate(id="authml-events", docs=[{"_source": {"labels": {"a": "b"}}}])
    source = response["docs"][0]["doc"]["_source"]
    assert source["labels"] == {"a": "b"}
    assert source["authml"]["ingest_failure"]["processor_tag"] == "authml-event-id-required"
    with pytest.raises(ValueError):
        event_id({"labels": {"a": "b"}})


def test_sink_stores_once_and_ids_agree(applied):
    events = _prepared(fixture_documents())
    sink = ElasticsearchSink(applied, index=PREVIEW_INDEX)
    first = sink.write_batch(events, [])
    assert (first.stored, first.duplicates, first.failed) == (len(events), 0, [])
    again = sink.write_batch(_prepared(fixture_documents()), [])
    assert (again.stored, again.duplicates, again.failed) == (0, len(events), [])
    applied.indices.refresh(index=PREVIEW_INDEX)
    hits = applied.search(index=PREVIEW_INDEX, size=100)["hits"]["hits"]
    assert len(hits) == len(events)
    for hit in hits:
        assert hit["_id"] == hit["_source"]["authml"]["event_id"]


@pytest.mark.parametrize(
    "transform",
    ["authml-user-hourly", "authml-user-source-ip", "authml-user-host", "authml-source-ip-hourly"],
)
def test_transform_preview_equals_the_embedded_engine(applied, transform):
    events = _prepared(fixture_documents())
    ElasticsearchSink(applied, index=PREVIEW_INDEX).write_batch(events, [])
    applied.indices.refresh(index=PREVIEW_INDEX)
    body = copy.deepcopy(load_asset("transforms", transform))
    body["source"]["index"] = [PREVIEW_INDEX]
    es_preview = applied.transform.preview_transform(
        source=body["source"],
        pivot=body["pivot"],
        dest=body["dest"],
        frequency=body["frequency"],
        sync=body["sync"],
    )
    mappings = load_asset("component_templates", "authml-events-mappings")["template"]["mappings"]
    documents = [(f"fixture {n}", e.document) for n, e in enumerate(events, 1)]
    local = embedded_preview(body, f"{transform}.yml", documents, mappings=mappings, now=datetime.now(UTC))
    assert local["preview"] == es_preview["preview"]


def test_enrich_policy_stamps_a_new_raw_event(applied):
    applied.index(
        index="authml-user-risk",
        id="corp\\alice",
        document={
            "user_key": "corp\\alice",
            "score": 0.93,
            "level": "high",
            "updated_at": "2024-03-04T12:00:00Z",
            "model_version": "test-1",
        },
        refresh=True,
    )
    applied.enrich.execute_policy(name="authml-user-risk-v1", wait_for_completion=True)
    new_event = {
        "@timestamp": "2024-03-06T08:00:00Z",
        "event": {"code": "4624", "outcome": "success"},
        "user": {"name": "Alice", "domain": "corp"},
        "winlog": {"channel": "Security", "computer_name": "ws01.corp.local", "record_id": 99999},
    }
    (prepared,) = _prepared([new_event])
    outcome = ElasticsearchSink(applied).write_batch([prepared], [])
    assert outcome.stored == 1
    stored = applied.get(index="authml-events-default", id=prepared.event_id)["_source"]
    assert stored["authml"]["risk"]["score"] == 0.93
    assert stored["authml"]["risk"]["level"] == "high"


def test_lookup_join_attaches_a_score(applied):
    (prepared,) = _prepared([fixture_documents()[0]])
    ElasticsearchSink(applied).write_batch([prepared], [])
    applied.index(
        index="authml-scores",
        id=prepared.event_id,
        document={
            "authml": {"event_id": prepared.event_id, "score": 0.97, "is_anomaly": True, "model_version": "t"}
        },
        refresh=True,
    )
    applied.indices.refresh(index="authml-events-default")
    query = (
        f'FROM authml-events-default | WHERE authml.event_id == "{prepared.event_id}" '
        "| LOOKUP JOIN authml-scores ON authml.event_id | KEEP authml.event_id, authml.score"
    )
    result = applied.esql.query(query=query)
    columns = [c["name"] for c in result["columns"]]
    rows = [dict(zip(columns, row, strict=True)) for row in result["values"]]
    assert rows == [{"authml.event_id": prepared.event_id, "authml.score": 0.97}]


def test_plan_after_a_version_bump_shows_exactly_that_change(applied, es_options, tmp_path, monkeypatch):
    bumped_dir = tmp_path / "es_assets"
    shutil.copytree(assets_dir(), bumped_dir)
    target = bumped_dir / "transforms" / "authml-user-host.yml"
    body = yaml.safe_load(target.read_text(encoding="utf-8"))
    body["frequency"] = "5m"
    body["_meta"]["authml_version"] = 2
    target.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("AUTHML_ASSETS_DIR", str(bumped_dir))
    bumped = load_catalogue()
    changes = [c for c in make_plan(bumped, fetch_live(applied, bumped)) if c.action != "unchanged"]
    assert [(c.key, c.action, sorted(d.path for d in c.differences)) for c in changes] == [
        ("transforms/authml-user-host", "update", ["$._meta.authml_version", "$.frequency"])
    ]
    command = [
        "assets", "plan", "--detailed-exitcode", "--es-url", es_options.url,
        "--es-username", es_options.username, "--es-password", es_options.password.reveal(),
    ]  # fmt: skip
    shown = CliRunner().invoke(cli, command)
    assert shown.exit_code == 2, shown.output
    assert "~ update    transforms/authml-user-host (version 1 -> 2)" in shown.output
    assert "$.frequency: '1m' -> '5m'" in shown.output
    apply_assets(applied, bumped)
    assert all(c.action == "unchanged" for c in make_plan(bumped, fetch_live(applied, bumped)))
    assert CliRunner().invoke(cli, command).exit_code == 0
    monkeypatch.delenv("AUTHML_ASSETS_DIR")
    apply_assets(applied)  # back to the repository's assets for the other tests
    assert all(
        c.action == "unchanged" for c in make_plan(load_catalogue(), fetch_live(applied, load_catalogue()))
    )


def test_ingest_role_can_create_events_and_nothing_more(applied, es_options):
    password = secrets.token_urlsafe(16)
    applied.security.put_user(username="authml-test-ingest", password=password, roles=["authml-ingest"])
    as_ingest = connect(make_options(es_options.url, username="authml-test-ingest", password=password))
    (prepared,) = _prepared([{**fixture_documents()[1], "message": "sent by the ingest role"}])
    outcome = ElasticsearchSink(as_ingest).write_batch([prepared], [])
    assert outcome.stored + outcome.duplicates == 1 and outcome.failed == []
    from elasticsearch import AuthorizationException

    with pytest.raises(AuthorizationException):
        as_ingest.search(index="authml-events-default")


def test_doctor_reports_no_failure_on_a_bootstrapped_cluster(applied, es_options):
    transforms = [a.name for a in load_catalogue() if a.kind == "transforms"]
    checks = run_checks(applied, es_options, transforms)
    assert [str(c) for c in checks if c.status == "fail"] == []
    assert any(c.topic == "privileges for `authml assets apply`" and c.status == "ok" for c in checks)
