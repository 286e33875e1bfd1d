"""Elasticsearch write-back builders: documents fit the strict templates, ids are deterministic,
the policy and backfill follow the assets, and the sender's order of requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from authml.assets import load_asset
from authml.engine.fields import mapping_leaves
from authml.es.client import ClusterError
from authml.es.writeback import (
    BACKFILL_PIPELINE,
    backfill_pipeline_body,
    backfill_requests,
    bulk_errors,
    chunked,
    current_risk_policy,
    lookup_join_query,
    risk_actions,
    score_actions,
    write_back,
)

ROW = {
    "score_id": "ev-1:v1",
    "event_id": "ev-1",
    "@timestamp": datetime(2025, 11, 21, 9, 35, 30, 669000),
    "user.name": "alice",
    "user_key": "alice",
    "score": 71.055866,
    "detector_scores": {"rarity": 18.27, "clusters": 1.0, "autoencoder": 1.4},
    "reasons": ["first logon from 10.9.9.9 for alice"],
    "is_anomaly": True,
    "threshold": 49.3,
    "model_version": "v1",
    "scored_at": datetime(2025, 11, 22),
}
RISK = {
    "user_key": "alice",
    "score": 71.05,
    "level": "high",
    "top_reasons": ["first logon from 10.9.9.9 for alice"],
    "updated_at": datetime(2025, 11, 22),
    "model_version": "v1",
}


def _template_fields(name: str) -> set[str]:
    mappings = load_asset("index_templates", name)["template"]["mappings"]
    return {leaf.path for leaf in mapping_leaves(mappings["properties"])}


def _leaves(document: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, value in document.items():
        if isinstance(value, dict) and key != "detector_scores":
            paths |= _leaves(value, f"{prefix}{key}.")
        else:
            paths.add(prefix + key)
    return paths


def test_score_documents_fit_the_strict_scores_template_under_the_event_id():
    action, document = score_actions([ROW])
    assert action == {"index": {"_index": "authml-scores", "_id": "ev-1"}}
    assert _leaves(document) <= _template_fields("authml-scores")
    assert document["authml"]["event_timestamp"] == "2025-11-21T09:35:30.669000Z"
    assert list(document["authml"]["detector_scores"]) == ["autoencoder", "clusters", "rarity"]
    assert score_actions([ROW]) == score_actions([dict(ROW)])  # deterministic


def test_risk_documents_fit_the_risk_template_and_the_policy_copies_existing_fields():
    action, document = risk_actions([RISK])
    assert action["index"]["_id"] == "alice"
    fields = _template_fields("authml-user-risk")
    assert set(document) <= fields
    policy = load_asset("enrich_policies", current_risk_policy())["match"]
    assert policy["match_field"] in document and set(policy["enrich_fields"]) <= set(document)


def test_the_policy_to_execute_is_the_one_the_pipeline_names():
    pipeline = load_asset("ingest_pipelines", "authml-events")
    named = [p["enrich"]["policy_name"] for p in pipeline["processors"] if "enrich" in p]
    assert named == [current_risk_policy()]


def test_backfill_runs_only_the_enrich_processor_over_the_accounts_events():
    put, update = backfill_requests(["alice"], since=datetime(2025, 11, 1))
    assert put.path == f"/_ingest/pipeline/{BACKFILL_PIPELINE}"
    (processor,) = backfill_pipeline_body()["processors"]
    assert processor["enrich"]["policy_name"] == current_risk_policy()
    assert update.params["pipeline"] == BACKFILL_PIPELINE and update.params["wait_for_completion"] == "false"
    filters = update.body["query"]["bool"]["filter"]
    assert {"terms": {"authml.user_key": ["alice"]}} in filters
    assert filters[1]["range"]["@timestamp"]["gte"].startswith("2025-11-01")


def test_lookup_join_keys_exist_on_both_sides():
    query = lookup_join_query(min_score=60)
    assert "| LOOKUP JOIN authml-scores ON authml.event_id" in query and ">= 60" in query
    events = load_asset("component_templates", "authml-events-mappings")["template"]["mappings"]["properties"]
    assert "authml.event_id" in {leaf.path for leaf in mapping_leaves(events)}
    assert "authml.event_id" in _template_fields("authml-scores")
    assert load_asset("index_templates", "authml-scores")["template"]["settings"]["index"]["mode"] == "lookup"


def test_chunks_keep_action_and_document_together():
    operations = score_actions([{**ROW, "event_id": f"ev-{i}"} for i in range(5)])
    chunks = list(chunked(operations, size=2))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert all("index" in chunk[0] for chunk in chunks)


def test_bulk_errors_name_the_document():
    response = {
        "errors": True,
        "items": [
            {"index": {"_index": "authml-scores-v1", "_id": "a", "status": 201}},
            {
                "index": {
                    "_index": "authml-scores-v1",
                    "_id": "b",
                    "error": {"type": "strict_dynamic_mapping_exception", "reason": "x"},
                }
            },
        ],
    }
    assert bulk_errors(response) == ["authml-scores-v1/b: strict_dynamic_mapping_exception: x"]


class FakeClient:
    def __init__(self, bulk_response: dict | None = None):
        self.calls: list[tuple[str, str]] = []
        self.bulk_response = bulk_response or {"errors": False, "items": []}

    def bulk(self, operations):
        self.calls.append(("BULK", operations[0]["index"]["_index"]))
        return self.bulk_response

    def perform_request(self, method, path, **kwargs):
        self.calls.append((method, path))
        return {"task": "node:1"} if path.endswith("_update_by_query") else {}


def test_write_back_indexes_then_refreshes_prunes_and_executes_the_policy():
    client = FakeClient()
    result = write_back(client, [ROW], [RISK], run_time=datetime(2025, 11, 22), backfill=True)
    policy = current_risk_policy()
    assert client.calls == [
        ("BULK", "authml-scores"),
        ("BULK", "authml-user-risk"),
        ("POST", "/authml-user-risk/_refresh"),
        ("POST", "/authml-user-risk/_delete_by_query"),
        ("PUT", f"/_enrich/policy/{policy}/_execute"),
        ("PUT", f"/_ingest/pipeline/{BACKFILL_PIPELINE}"),
        ("POST", "/authml-events-*/_update_by_query"),
    ]
    assert (result.scores_indexed, result.accounts_indexed, result.backfill_task) == (1, 1, "node:1")


def test_write_back_stops_at_rejected_documents():
    rejected = {"items": [{"index": {"_index": "i", "_id": "ev-1", "error": {"type": "t", "reason": "r"}}}]}
    client = FakeClient(rejected)
    with pytest.raises(ClusterError, match="1 scores documents were rejected"):
        write_back(client, [ROW], [RISK], run_time=datetime(2025, 11, 22))
    assert client.calls == [("BULK", "authml-scores")]
