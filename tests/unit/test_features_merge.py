"""Incremental runs that merge new events into stored rows, and the cases where they must not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from authml.embedded.feature_merge import STATE_PREFIX
from authml.embedded.features import (
    FeatureDefinition,
    build_features,
    compile_definition,
    feature_definitions,
    read_feature_documents,
    store_catalog,
)
from authml.engine.compile import compile_pivot
from tests.conformance.events import auth_event, stored, write_events
from tests.unit.test_features_incremental import MERGE_PROBE, _transform

NOW = datetime(2024, 1, 3, tzinfo=UTC)


def _asset(transform_id: str) -> FeatureDefinition:
    return next(d for d in feature_definitions() if d.transform_id == transform_id)


def _pivot(aggregations: dict, group_by: dict | None = None):
    body = _transform("x", group_by or {"user.name": {"terms": {"field": "user.name"}}}, aggregations)
    return compile_pivot(body, "x.yml", store_catalog(), now=NOW, transform_id="x")


@pytest.mark.parametrize("transform_id", ["authml-user-host", "authml-user-source-ip"])
def test_terms_grouped_assets_merge(transform_id):
    assert compile_definition(_asset(transform_id), NOW).mergeable


@pytest.mark.parametrize("transform_id", ["authml-user-hourly", "authml-source-ip-hourly"])
def test_date_histogram_pivots_recompute_their_buckets(transform_id):
    # A date bucket's history is its own interval: recomputing it reads only that interval.
    assert not compile_definition(_asset(transform_id), NOW).mergeable


@pytest.mark.parametrize(
    "aggregation",
    [
        {"avg": {"field": "source.port"}},
        {"stats": {"field": "source.port"}},
        {"percentiles": {"field": "source.port"}},
        {"top_metrics": {"metrics": {"field": "source.port"}, "sort": {"@timestamp": "desc"}}},
        {"terms": {"field": "host.name", "min_doc_count": 2}},
    ],
)
def test_aggregations_without_an_exact_merge_recompute(aggregation):
    assert not _pivot({"a": aggregation}).mergeable
    assert _pivot({"a": {"value_count": {"field": "host.name"}}}).mergeable


def _user_host(store) -> list[dict]:
    return read_feature_documents(store, _asset("authml-user-host"))


def _event(record: int, ingested: str, *, time: str = "2024-01-01T08:00:00.000Z", **fields) -> dict:
    return auth_event(fields.pop("user", "alice"), time, ingested, record=record, **fields)


def test_merged_rows_equal_a_full_rebuild_and_new_groups_appear(project_dir, tmp_path):
    first = [_event(1, "2024-01-02T00:00:00.000Z"), _event(2, "2024-01-02T00:00:01.000Z", ip="10.0.0.2")]
    store = write_events(project_dir, first)
    build_features(store)
    later = [
        _event(3, "2024-01-02T00:10:00.000Z", time="2024-01-01T07:00:00.000Z", ip="10.0.0.9"),
        _event(4, "2024-01-02T00:10:00.000Z", user="bob", host="ws9", logon_type="10"),
    ]
    store.write_batch([stored(d, 10 + i) for i, d in enumerate(later)], [])
    results = {r.transform_id: r for r in build_features(store)}
    assert results["authml-user-host"].mode == "merged"
    assert results["authml-user-host"].buckets_written == 2
    full = write_events(tmp_path / "full", first + later)
    build_features(full, full=True)
    assert _user_host(store) == _user_host(full)
    alice = next(d for d in _user_host(store) if d["user"]["name"] == "alice")
    assert alice["events"] == 3 and alice["source_ips"] == 3
    assert alice["first_seen"] == "2024-01-01T07:00:00.000Z"
    store.close()
    full.close()


def test_a_full_terms_map_is_recomputed_not_merged(project_dir, tmp_path):
    # size 2: logon types 10, 2 and 3 once each keep "10" and "2"; a second "3" must bring it back.
    definitions = [MERGE_PROBE]
    first = [_event(i, f"2024-01-02T00:00:0{i}.000Z", logon_type=t) for i, t in enumerate(["10", "2", "3"])]
    store = write_events(project_dir, first)
    build_features(store, definitions=definitions)
    (row,) = read_feature_documents(store, MERGE_PROBE)
    assert row["logon_types"] == {"10": 1, "2": 1}
    late = _event(9, "2024-01-02T00:01:00.000Z", logon_type="3")
    store.write_batch([stored(late, 9)], [])
    (result,) = build_features(store, definitions=definitions)
    assert (result.mode, result.recomputed) == ("merged", 1)
    (row,) = read_feature_documents(store, MERGE_PROBE)
    assert row["logon_types"] == {"3": 2, "10": 1}
    full = write_events(tmp_path / "full", [*first, late])
    build_features(full, full=True, definitions=definitions)
    assert read_feature_documents(store, MERGE_PROBE) == read_feature_documents(full, MERGE_PROBE)
    store.close()
    full.close()


def test_an_event_missed_by_the_delay_turns_merging_off_until_a_full_build(project_dir):
    """ES never reads an event stored later than the delay, but counts it when it recomputes its
    bucket for another event; a merge would never count it, so merging stops."""
    store = write_events(project_dir, [_event(1, "2024-01-02T01:00:00.000Z")])
    build_features(store)
    store.write_batch([stored(_event(2, "2024-01-02T00:00:00.000Z"), 2)], [])  # an hour late
    results = {r.transform_id: r for r in build_features(store)}
    assert results["authml-user-host"].mode == "unchanged"
    assert _user_host(store)[0]["events"] == 1
    store.write_batch([stored(_event(3, "2024-01-02T02:00:00.000Z"), 3)], [])
    results = {r.transform_id: r for r in build_features(store)}
    assert results["authml-user-host"].mode == "incremental"
    assert _user_host(store)[0]["events"] == 3  # the whole history, the missed event included
    build_features(store, full=True)
    store.write_batch([stored(_event(4, "2024-01-02T03:00:00.000Z"), 4)], [])
    results = {r.transform_id: r for r in build_features(store)}
    assert results["authml-user-host"].mode == "merged"
    assert _user_host(store)[0]["events"] == 4
    store.close()


def test_a_late_event_with_an_ingest_time_already_built_merges_once(project_dir, tmp_path):
    first = [_event(1, "2024-01-02T00:00:00.000Z"), _event(2, "2024-01-02T00:01:00.000Z")]
    store = write_events(project_dir, first)
    build_features(store)
    # Stored later, with exactly the ingest time of event 1 (within the delay): the run finds it
    # by its position in the store, not by its ingest time, so event 1 is not counted twice.
    twin = _event(3, "2024-01-02T00:00:00.000Z", host="ws2")
    store.write_batch([stored(twin, 3)], [])
    results = {r.transform_id: r for r in build_features(store)}
    assert results["authml-user-host"].mode == "merged"
    full = write_events(tmp_path / "full", [*first, twin])
    build_features(full, full=True)
    assert _user_host(store) == _user_host(full)
    # The state tables stayed exact: the next run merges as well.
    store.write_batch([stored(_event(4, "2024-01-02T00:05:00.000Z", host="ws2", ip="10.0.0.7"), 4)], [])
    results = {r.transform_id: r for r in build_features(store)}
    assert results["authml-user-host"].mode == "merged"
    ws2 = next(d for d in _user_host(store) if d["host"]["name"] == "ws2")
    assert (ws2["events"], ws2["source_ips"]) == (2, 2)
    store.close()
    full.close()


def _states(store) -> set[str]:
    rows = store.connection.execute(
        "SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, ?)", [STATE_PREFIX]
    ).fetchall()
    return {row[0] for row in rows}


def test_state_tables_follow_full_builds_and_definition_changes(project_dir):
    store = write_events(project_dir, [_event(1, "2024-01-02T00:00:00.000Z")])
    build_features(store)
    assert _states(store) == {
        f"{STATE_PREFIX}:authml-user-host:__a4",
        f"{STATE_PREFIX}:authml-user-source-ip:__a4",
    }
    before = store.connection.execute(
        f'SELECT count(*) FROM "{STATE_PREFIX}:authml-user-host:__a4"'
    ).fetchone()
    build_features(store, full=True)
    after = store.connection.execute(
        f'SELECT count(*) FROM "{STATE_PREFIX}:authml-user-host:__a4"'
    ).fetchone()
    assert before == after == (1,)
    # The same transform id with a body that does not merge: a full rebuild, its states dropped.
    changed = _asset("authml-user-host")
    body = {
        **changed.body,
        "pivot": {**changed.body["pivot"], "aggregations": {"mean": {"avg": {"field": "source.port"}}}},
    }
    (result,) = build_features(
        store, definitions=[FeatureDefinition(changed.transform_id, changed.file, body)]
    )
    assert result.mode == "full"
    assert _states(store) == {f"{STATE_PREFIX}:authml-user-source-ip:__a4"}
    store.close()


def test_a_query_relative_to_now_is_recomputed(project_dir):
    body = _transform(
        "test-recent",
        {"user.name": {"terms": {"field": "user.name"}}},
        {"events": {"value_count": {"field": "event.code"}}},
    )
    body["source"]["query"] = {"range": {"@timestamp": {"gte": "now-30d"}}}
    definition = FeatureDefinition("test-recent", "test-recent.yml", body)
    store = write_events(project_dir, [_event(1, "2024-01-02T00:00:00.000Z")])
    build_features(store, definitions=[definition])
    store.write_batch([stored(_event(2, "2024-01-02T00:10:00.000Z"), 2)], [])
    (result,) = build_features(store, definitions=[definition])
    assert result.mode == "incremental"
    store.close()
