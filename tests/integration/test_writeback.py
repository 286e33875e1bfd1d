"""Scores written back to a real cluster: ES|QL LOOKUP JOIN attaches them to the raw events, and
the re-executed enrich policy stamps the account's risk on events indexed afterwards."""

from __future__ import annotations

import json

import pytest

from authml.es.writeback import lookup_join_query
from tests.integration.conftest import run_cli
from tests.unit.score_project import build_project, invoke

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

INDEX = "authml-events-default"


def _esql_rows(client, query: str) -> list[dict]:
    response = client.esql.query(query=query, format="json").body
    names = [column["name"] for column in response["columns"]]
    return [dict(zip(names, values, strict=True)) for values in response["values"]]


def test_lookup_join_attaches_scores_and_the_policy_stamps_new_events(tmp_path, applied, es_options):
    project = build_project(tmp_path / "project")
    invoke(project, "train", "--epochs", "2", "--end", "2025-11-08")
    events = project / "generated" / "events.ndjson"
    run_cli(project, es_options, "ingest", "--es", str(events))
    records_file = tmp_path / "scores.ndjson"
    output = run_cli(project, es_options, "score", "--es", "--output", str(records_file))
    assert "enrich policy authml-user-risk" in output
    records = [json.loads(line) for line in records_file.read_text().splitlines()]
    applied.indices.refresh(index=f"{INDEX},authml-scores")

    joined = _esql_rows(applied, lookup_join_query(min_score=0, limit=10000))
    by_id = {r["authml"]["event_id"]: r for r in records}
    assert 0 < len(joined) <= len(records)
    best = max(records, key=lambda r: r["authml"]["score"])
    top = joined[0]
    assert top["authml.score"] == pytest.approx(best["authml"]["score"], abs=1e-3)
    assert top["user.name"] in {
        r["user"]["name"] for r in records if r["authml"]["score"] == best["authml"]["score"]
    }
    assert all(row["authml.model_version"] == best["authml"]["model_version"] for row in joined)
    assert len(by_id) == len(records)

    # An event of the riskiest account indexed now is stamped with its current risk.
    risky = applied.search(index="authml-user-risk", sort=[{"score": "desc"}], size=1)["hits"]["hits"][0]
    account = risky["_source"]["user_key"]
    original = applied.search(index=INDEX, query={"term": {"authml.user_key": account}}, size=1)["hits"][
        "hits"
    ][0]
    fresh = {**original["_source"], "winlog": {**original["_source"]["winlog"], "record_id": "999999999"}}
    fresh.pop("authml", None)
    applied.index(index=INDEX, document=fresh, pipeline="authml-events", refresh=True)
    stamped = applied.search(index=INDEX, query={"term": {"winlog.record_id": "999999999"}})["hits"]["hits"][
        0
    ]
    assert stamped["_source"]["authml"]["risk"]["score"] == pytest.approx(risky["_source"]["score"])
