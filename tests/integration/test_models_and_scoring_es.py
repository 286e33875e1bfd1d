"""The model registry index and cluster-side scoring against a real Elasticsearch: a version
published to authml-models-v2 loads back byte for byte and scores identically, racing publishers
leave the newest version current, and `authml score --engine elasticsearch` scores events that
were only ever sent to the cluster, with the model the registry index names, checkpointed so a
second run scores nothing new."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from click.testing import CliRunner

from authml.cli import cli
from authml.detect.combined import CombinedDetector
from authml.embedded.feature_reader import EmbeddedFeatureReader
from authml.es.feature_reader import ElasticsearchFeatureReader
from authml.es.model_registry import REGISTRY_INDEX, ElasticsearchModelRegistry
from authml.es.score_source import CHECKPOINT_FILE, feature_transforms
from authml.es.window_reads import _iso
from authml.train.feature_sql import FeatureWindow, authentication_event_codes
from authml.train.registry import build_artifact, detector_from_artifact
from tests.unit.score_project import invoke
from tests.unit.train_store import benign_history, build_feature_tables, write_events

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

EVENTS_INDEX = "authml-events-default"
TRANSFORM_WAIT_S = 600


def _env(es_options) -> dict[str, str]:
    return {
        "AUTHML_ES_URL": es_options.url,
        "AUTHML_ES_USERNAME": es_options.username,
        "AUTHML_ES_PASSWORD": es_options.password.reveal(),
    }


def _run(project, es_options, *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["--project-dir", str(project), *args], env=_env(es_options), catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    store = write_events(tmp_path_factory.mktemp("registry") / "events", benign_history(8, 10, seed=4))
    build_feature_tables(store)
    with EmbeddedFeatureReader(store) as reader:
        frame = reader.read_events(FeatureWindow())
    detector = CombinedDetector(
        autoencoder={"epochs": 1, "device": "cpu"}, clusters={"k_candidates": (2, 3)}
    ).fit(frame)
    return detector, frame


def _version(day: int) -> str:
    return f"200001{day:02d}T000000000000Z"


def test_a_published_version_loads_back_and_scores_identically(applied, small_model):
    detector, frame = small_model
    artifact = build_artifact(detector, {"time_zone": "UTC", "counts": {"events": len(frame)}}, _version(1))
    registry = ElasticsearchModelRegistry(applied)
    result = registry.publish(artifact)
    assert result.created and result.current == artifact.version
    loaded = registry.load()
    assert loaded == artifact
    np.testing.assert_array_equal(detector_from_artifact(loaded, "index").score(frame), detector.score(frame))
    assert registry.publish(artifact).created is False, "a version is never written twice"
    # The queryable fields are mapped; the state is stored but not searchable.
    applied.indices.refresh(index=REGISTRY_INDEX)
    hits = applied.search(
        index=REGISTRY_INDEX, query={"range": {"counts.events": {"gte": len(frame)}}}, source=["version"]
    )["hits"]["hits"]
    assert artifact.version in {h["_source"]["version"] for h in hits}
    mapping = applied.indices.get_mapping(index=REGISTRY_INDEX)[REGISTRY_INDEX]["mappings"]
    assert mapping["properties"]["state"]["type"] == "binary"


def test_racing_publishers_leave_the_newest_version_current(applied, small_model):
    detector, _ = small_model
    artifacts = [build_artifact(detector, {"time_zone": "UTC"}, _version(day)) for day in range(10, 18)]
    errors: list[BaseException] = []

    def publish(artifact) -> None:
        try:
            ElasticsearchModelRegistry(applied).publish(artifact)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(a,)) for a in artifacts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ElasticsearchModelRegistry(applied).pointer().version == _version(17)


def _wait_for_features(client, newest_ingested_ms: int) -> None:
    """Until every feature transform's last checkpoint has passed the newest event.ingested (the
    transforms hold events back for their sync delay, 120 s)."""
    transforms = feature_transforms()
    deadline = time.monotonic() + TRANSFORM_WAIT_S
    while time.monotonic() < deadline:
        stats = client.transform.get_transform_stats(transform_id=",".join(transforms))["transforms"]
        bounds = [
            ((t.get("checkpointing") or {}).get("last") or {}).get("time_upper_bound_millis") or 0
            for t in stats
        ]
        if len(bounds) == len(transforms) and min(bounds) > newest_ingested_ms:
            return
        for name in transforms:
            client.transform.schedule_now_transform(transform_id=name)
        time.sleep(10)
    raise AssertionError(f"the feature transforms did not pass event.ingested {newest_ingested_ms} in time")


class HitCountingClient:
    """The client, counting the hits its searches return per concrete index."""

    def __init__(self, client):
        self.client = client
        self.hits: Counter[str] = Counter()

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def search(self, **kwargs):
        response = self.client.search(**kwargs)
        self.hits.update(hit["_index"] for hit in response["hits"]["hits"])
        return response


def _auth_events(client, since: datetime | None, until: datetime | None) -> int:
    bounds = {**({"gte": _iso(since)} if since else {}), **({"lt": _iso(until)} if until else {})}
    filters = [{"terms": {"event.code": authentication_event_codes()}}, {"exists": {"field": "user.name"}}]
    query = {"bool": {"filter": [*filters, {"range": {"@timestamp": bounds}}]}}
    return client.count(index=EVENTS_INDEX, query=query)["count"]


def _assert_window_reads_cost_the_window(client) -> None:
    """A window that starts mid-history reads the window's events and the hour before it, and
    gives every event the row the whole history gives it."""
    whole = ElasticsearchFeatureReader(client, events_index=EVENTS_INDEX).read_events(FeatureWindow())
    first, last = (
        t.astype("datetime64[us]").item() for t in (whole.columns["ts"].min(), whole.columns["ts"].max())
    )
    middle = (first + (last - first) / 2).replace(minute=17, second=0, microsecond=0)
    for window in (FeatureWindow(start=middle), FeatureWindow(start=middle, end=middle + timedelta(hours=1))):
        counting = HitCountingClient(client)
        part = ElasticsearchFeatureReader(counting, events_index=EVENTS_INDEX, account_batch=4).read_events(
            window
        )
        ts = whole.columns["ts"].astype("datetime64[us]")
        inside = ts >= np.datetime64(window.start)
        if window.end is not None:
            inside &= ts < np.datetime64(window.end)
        expected = whole.take(np.flatnonzero(inside))
        assert len(part) == len(expected) > 0, window
        for name, values in expected.columns.items():
            np.testing.assert_array_equal(part.columns[name], values, err_msg=name)
        np.testing.assert_allclose(part.matrix, expected.matrix, rtol=1e-6)
        fetched = counting.hits[EVENTS_INDEX]
        assert fetched == _auth_events(client, window.start - timedelta(hours=1), window.end)
        assert fetched < _auth_events(client, None, window.end) / 2, "the history is counted, not read"


def test_score_from_the_cluster_with_the_registry_model(tmp_path, applied, es_options):
    generated = (
        tmp_path / "generated"
    )  # the scenario tests/unit/score_project.py builds, sent only to the cluster
    invoke(
        tmp_path / "generator",
        "generate",
        "--users",
        "12",
        "--days",
        "8",
        "--seed",
        "3",
        "--attacks",
        "--out",
        str(generated),
    )
    _run(tmp_path / "sender", es_options, "ingest", "--es", str(generated / "events.ndjson"))
    applied.indices.refresh(index=EVENTS_INDEX)
    newest = applied.search(index=EVENTS_INDEX, size=0, aggs={"n": {"max": {"field": "event.ingested"}}})
    _wait_for_features(applied, int(newest["aggregations"]["n"]["value"]))
    _assert_window_reads_cost_the_window(applied)

    trainer = tmp_path / "trainer"
    trained = json.loads(
        _run(
            trainer,
            es_options,
            "train",
            "--engine",
            "elasticsearch",
            "--epochs",
            "2",
            "--end",
            "2025-11-08",
            "--json",
        )
    )
    assert trained["registry"]["current"] == trained["version"]

    scorer = tmp_path / "scorer"  # a fresh host: no store, no model, nothing ingested
    records_file = tmp_path / "scores.ndjson"
    output = _run(
        scorer, es_options, "score", "--engine", "elasticsearch", "--es", "--output", str(records_file)
    )
    records = [json.loads(line) for line in records_file.read_text().splitlines()]
    assert len(records) > 1000
    assert {r["authml"]["model_version"] for r in records} == {trained["version"]}
    assert all(r["user"]["name"] and r["event"]["code"] for r in records)
    assert "Elasticsearch:" in output
    checkpoint = json.loads((scorer / CHECKPOINT_FILE).read_text())
    (entry,) = checkpoint.values()
    assert datetime.fromisoformat(entry["ingested_upper"]).replace(tzinfo=UTC).timestamp() * 1000 > int(
        newest["aggregations"]["n"]["value"]
    )

    again = CliRunner().invoke(
        cli, ["--project-dir", str(scorer), "score", "--engine", "elasticsearch"], env=_env(es_options)
    )
    assert again.exit_code == 0 and "no new events to score" in again.output

    applied.indices.refresh(index="authml-scores")
    best = max(records, key=lambda r: r["authml"]["score"])
    stored = applied.get(index="authml-scores", id=best["authml"]["event_id"])["_source"]["authml"]
    assert stored["score"] == pytest.approx(best["authml"]["score"], abs=1e-3)
