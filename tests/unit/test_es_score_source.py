"""`authml score --engine elasticsearch` without a cluster: the request builders (against the API
specification), the readiness bound from the transforms' checkpoints, and whole scoring runs
against an in-memory stand-in (tests/unit/es_fake_cluster.py) that give the same scores as the
embedded engine, checkpointed by the cluster's event.ingested; and `authml train` publishing to and
reusing from the registry index."""

from __future__ import annotations

import copy
import json
import shutil
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner

from authml.cli import cli
from authml.embedded.scores import read_scores
from authml.embedded.store import Store
from authml.errors import NotReadyError
from authml.es.apply import Request
from authml.es.feature_reader import DEFAULT_EVENTS_INDEX, search_body
from authml.es.model_registry import ElasticsearchModelRegistry
from authml.es.score_source import (
    CHECKPOINT_FILE,
    ElasticsearchScoreSource,
    feature_transforms,
    features_bound,
    pending_from_response,
    pending_request,
    transform_stats_request,
    window_events_query,
)
from authml.score.run import ScoreOptions, run_scoring
from authml.train.feature_sql import FeatureWindow, authentication_event_codes
from authml.train.registry import build_artifact
from tests.unit.es_fake_cluster import FakeCluster, documents_from_store, matches
from tests.unit.score_project import build_project, copy_project, fitted_model
from tests.unit.spec_requests import load_spec_or_skip, request_problems

EVENTS = "events"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    project = build_project(tmp_path_factory.mktemp("es-score") / "project")
    with Store.open(project, read_only=True) as store:
        documents = documents_from_store(store, EVENTS)
    return project, fitted_model(project), documents


def _after_newest_ingested(documents) -> datetime:
    """A transform checkpoint bound (whole milliseconds) just after the newest event.ingested."""
    newest = max(
        datetime.fromisoformat(d["_source"]["event"]["ingested"].replace("Z", "+00:00"))
        for d in documents[EVENTS]
    ).replace(tzinfo=None)
    return newest.replace(microsecond=0) + timedelta(seconds=1)


def _scores(project_dir) -> dict[str, float]:
    with Store.open(project_dir, read_only=True) as store:
        return {r["event_id"]: r["score"] for r in read_scores(store)}


def _source(cluster, project_dir) -> ElasticsearchScoreSource:
    Store.open(project_dir, create=True).close()
    return ElasticsearchScoreSource(cluster, project_dir, cluster="http://fake:9200", events_index=EVENTS)


def test_requests_match_the_specification():
    spec = load_spec_or_skip()
    window = FeatureWindow(datetime(2024, 3, 1), datetime(2024, 3, 2))
    requests = [
        transform_stats_request(feature_transforms()),
        pending_request(datetime(2024, 3, 1), datetime(2024, 3, 2), authentication_event_codes()),
        pending_request(None, datetime(2024, 3, 2), authentication_event_codes()),
        Request(
            "POST", "/_search", search_body("pit", query=window_events_query(window, ["4624"]), fields=("*",))
        ),
    ]
    assert [p for r in requests for p in request_problems(spec, r)] == []


def test_window_query_selects_the_scoreable_events_of_the_window():
    query = window_events_query(FeatureWindow(datetime(2024, 3, 1, 8), datetime(2024, 3, 1, 9)), ["4624"])
    inside = {"@timestamp": "2024-03-01T08:30:00Z", "user": {"name": "a"}, "event": {"code": "4624"}}
    assert matches(inside, query)
    assert not matches({**inside, "@timestamp": "2024-03-01T09:00:00Z"}, query), "the end is exclusive"
    assert not matches({**inside, "@timestamp": "2024-03-01T07:59:59Z"}, query)
    assert not matches({**inside, "event": {"code": "4688"}}, query)
    assert not matches({k: v for k, v in inside.items() if k != "user"}, query)


def test_the_bound_is_the_oldest_transform_checkpoint():
    stats = {
        "transforms": [
            {"id": "a", "checkpointing": {"last": {"time_upper_bound_millis": 1_709_280_000_000}}},
            {"id": "b", "checkpointing": {"last": {"time_upper_bound_millis": 1_709_283_600_000}}},
        ]
    }
    assert features_bound(stats, ["a", "b"]) == datetime(2024, 3, 1, 8)
    with pytest.raises(NotReadyError, match="transform c is not installed"):
        features_bound(stats, ["a", "c"])
    stats["transforms"].append({"id": "c", "state": "started", "checkpointing": {}})
    with pytest.raises(NotReadyError, match="transform c has not completed a checkpoint"):
        features_bound(stats, ["a", "c"])
    assert sorted(feature_transforms()) == [
        "authml-source-ip-hourly",
        "authml-user-host",
        "authml-user-hourly",
        "authml-user-source-ip",
    ]


def test_pending_covers_the_newest_events_whole_millisecond():
    response = {
        "hits": {"total": {"value": 2, "relation": "eq"}},
        "aggregations": {"first": {"value": 1_709_280_000_000.0}, "last": {"value": 1_709_280_000_123.0}},
    }
    pending = pending_from_response(response, datetime(2024, 3, 2))
    assert (pending.events, pending.first) == (2, datetime(2024, 3, 1, 8))
    # The scorer reads up to last + 1 µs, which the cluster's millisecond dates round to the next ms.
    assert pending.last + timedelta(microseconds=1) == datetime(2024, 3, 1, 8, 0, 0, 124000)


def test_same_scores_as_the_embedded_engine_and_checkpointed_by_the_cluster(built, tmp_path):
    project, model, documents = built
    embedded = copy_project(project, tmp_path / "embedded")
    run_scoring(embedded, model, ScoreOptions())
    expected = _scores(embedded)

    cluster = FakeCluster(copy.deepcopy(documents), feature_transforms(), _after_newest_ingested(documents))
    remote = tmp_path / "cluster-only"
    source = _source(cluster, remote)
    outcome = run_scoring(remote, model, ScoreOptions(), source=source)
    assert outcome.events_scored == len(expected) > 1000
    actual = _scores(remote)
    assert actual.keys() == expected.keys()
    assert all(actual[k] == pytest.approx(expected[k], abs=1e-9) for k in expected)
    assert cluster.open_pits == {}, "every point in time is closed"
    checkpoint = json.loads((remote / CHECKPOINT_FILE).read_text())
    assert checkpoint["http://fake:9200 events"]["ingested_upper"] == cluster.bound.isoformat()

    again = run_scoring(remote, model, ScoreOptions(), source=_source(cluster, remote))
    assert again.events_scored == 0

    # New events: held back until every transform's checkpoint has passed their event.ingested.
    newest = max(documents[EVENTS], key=lambda d: d["_source"]["@timestamp"])
    later = []
    for n in range(4):
        doc = copy.deepcopy(newest)
        doc["_id"] = f"new-{n}"
        doc["_source"]["@timestamp"] = f"2031-01-01T00:00:0{n}Z"
        doc["_source"]["event"]["ingested"] = (cluster.bound + timedelta(minutes=5)).isoformat() + "Z"
        later.append(doc)
    later[3]["_source"]["source"] = {"ip": "not-an-address"}
    cluster.documents[EVENTS] += later
    assert run_scoring(remote, model, ScoreOptions(), source=_source(cluster, remote)).events_scored == 0
    cluster.bound += timedelta(minutes=10)
    source = _source(cluster, remote)
    fresh = run_scoring(remote, model, ScoreOptions(), source=source)
    assert fresh.events_scored == 4 and source.copied == 3 and source.dead_lettered == 1
    after = _scores(remote)
    assert set(after) - set(actual) == {"new-0", "new-1", "new-2"}, "the refused event has no score row"
    with Store.open(remote, read_only=True) as store:
        (reason,) = store.connection.execute("SELECT reason FROM dead_letters").fetchone()
    assert "not-an-address" in reason


def test_cli_scores_from_the_cluster_with_the_registry_model(built, tmp_path, monkeypatch):
    project, model, documents = built
    by_default_pattern = {DEFAULT_EVENTS_INDEX if k == EVENTS else k: v for k, v in documents.items()}
    cluster = FakeCluster(
        copy.deepcopy(by_default_pattern), feature_transforms(), _after_newest_ingested(documents)
    )
    artifact = build_artifact(model.detector, {"time_zone": "UTC"}, version="20240301T000000000000Z")
    ElasticsearchModelRegistry(cluster).publish(artifact)
    monkeypatch.setattr("authml.es.client.connect", lambda options: cluster)
    remote = tmp_path / "cluster-only"
    result = CliRunner().invoke(
        cli,
        ["--project-dir", str(remote), "score", "--engine", "elasticsearch", "--output", "-"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert len(records) > 1000
    assert {r["authml"]["model_version"] for r in records} == {"20240301T000000000000Z"}
    assert all(r["user"]["name"] and r["@timestamp"] and r["event"]["code"] for r in records)
    assert (remote / "models" / "CURRENT").read_text().strip() == "20240301T000000000000Z"


def test_train_publishes_to_the_registry_and_judges_reuse_against_it(built, tmp_path, monkeypatch):
    project, _, documents = built
    cluster = FakeCluster(documents, feature_transforms(), _after_newest_ingested(documents))
    monkeypatch.setattr("authml.es.client.connect", lambda options: cluster)
    trainer = copy_project(project, tmp_path / "trainer")
    shutil.rmtree(trainer / "models", ignore_errors=True)

    def train(*args: str) -> dict:
        result = CliRunner().invoke(
            cli,
            [
                "--project-dir",
                str(trainer),
                "train",
                "--registry",
                "elasticsearch",
                "--epochs",
                "1",
                "--json",
                *args,
            ],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    first = train()
    assert first["decision"] == "trained"
    assert first["registry"] == {
        "index": "authml-models-v2",
        "version": first["version"],
        "created": True,
        "current": first["version"],
    }
    stored = ElasticsearchModelRegistry(cluster).load()
    assert stored.state == (trainer / "models" / first["version"] / "state.npz").read_bytes()

    # Another host published a newer version: this trainer adopts it before deciding to reuse.
    newer = build_artifact(
        _detector(trainer, first["version"]),
        {k: v for k, v in stored.metadata.items() if k not in ("format", "version", "detector")},
        version="20991231T000000000000Z",
    )
    ElasticsearchModelRegistry(cluster).publish(newer)
    second = train()
    assert (second["decision"], second["version"]) == ("reused", "20991231T000000000000Z")
    assert second["registry"]["created"] is False
    assert (trainer / "models" / "CURRENT").read_text().strip() == "20991231T000000000000Z"


def _detector(project_dir, version):
    from authml.train.registry import load_model

    return load_model(project_dir, version)[0]
