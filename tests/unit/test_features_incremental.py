"""Continuous builds: after any sequence of incremental runs the feature tables equal a full rebuild."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authml.embedded.features import (
    FeatureDefinition,
    build_features,
    feature_definitions,
    read_feature_documents,
)
from authml.embedded.store import Store
from tests.conformance.events import auth_event, stored, write_events

DELAY_SECONDS = 120  # sync.time.delay of the asset transforms
EVENT_TIME_BASE = datetime(2024, 1, 1, 8, tzinfo=UTC)
INGEST_BASE = datetime(2024, 1, 2, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


event_shapes = st.fixed_dictionaries(
    {
        "user": st.sampled_from(["alice", "bob", "carol", None]),
        "host": st.sampled_from(["ws1", "ws2", None]),
        "ip": st.sampled_from(["10.0.0.1", "10.0.0.2", "fe80::1", None]),
        "code": st.sampled_from(["4624", "4625", "4769", "4688"]),
        "logon_type": st.sampled_from(["2", "3", "10", None]),
        "port": st.sampled_from([445, 3389, 50000, None]),
        "minute": st.integers(0, 600),  # event time: any of ten hours, so late events hit old buckets
        "ingest_offset": st.integers(-(DELAY_SECONDS - 1), 600),  # late by up to the sync delay
    }
)


def _transform(dest: str, group_by: dict, aggregations: dict) -> dict:
    return {
        "source": {
            "index": ["authml-events-*"],
            "query": {"terms": {"event.code": ["4624", "4625", "4769"]}},
        },
        "dest": {"index": dest},
        "sync": {"time": {"field": "event.ingested", "delay": f"{DELAY_SECONDS}s"}},
        "pivot": {"group_by": group_by, "aggregations": aggregations},
    }


# Every merge rule: counts, filter counts, missing, min/max of dates and numbers, a sum of whole
# numbers, cardinality (also under a filter), terms maps on keyword, long and date fields small
# enough to fill up (those buckets are recomputed), and a group with a missing bucket.
MERGE_PROBE = FeatureDefinition(
    "test-merge-probe",
    "test-merge-probe.yml",
    _transform(
        "test-merge-probe",
        {
            "user.name": {"terms": {"field": "user.name", "missing_bucket": True}},
            "source.ip": {"terms": {"field": "source.ip"}},
        },
        {
            "events": {"value_count": {"field": "event.code"}},
            "first_seen": {"min": {"field": "@timestamp"}},
            "last_seen": {"max": {"field": "@timestamp"}},
            "port_total": {"sum": {"field": "source.port"}},
            "lowest_port": {"min": {"field": "source.port"}},
            "without_host": {"missing": {"field": "host.name"}},
            "hosts": {"cardinality": {"field": "host.name"}},
            "logon_types": {"terms": {"field": "winlog.logon.type", "size": 2}},
            "ports": {"terms": {"field": "source.port", "size": 2, "order": {"_key": "desc"}}},
            "times": {"terms": {"field": "@timestamp", "size": 3}},
            "failed": {
                "filter": {"term": {"event.outcome": "failure"}},
                "aggregations": {
                    "events": {"value_count": {"field": "event.code"}},
                    "hosts": {"cardinality": {"field": "host.name"}},
                },
            },
        },
    ),
)
# avg does not merge: its transform recomputes touched buckets.
RECOMPUTED_PROBE = FeatureDefinition(
    "test-recompute-probe",
    "test-recompute-probe.yml",
    _transform(
        "test-recompute-probe",
        {"host.name": {"terms": {"field": "host.name", "missing_bucket": True}}},
        {"mean_port": {"avg": {"field": "source.port"}}, "users": {"cardinality": {"field": "user.name"}}},
    ),
)
MERGED = {"authml-user-host", "authml-user-source-ip", "test-merge-probe"}


def _documents(batches):
    """Events per batch; a batch's ingest times are relative to the newest ingest time before it,
    so some arrive late (ingested before the previous checkpoint, within the delay)."""
    newest = INGEST_BASE
    record = 0
    result = []
    for batch in batches:
        documents = []
        for shape in batch:
            record += 1
            outcome = "failure" if shape["code"] == "4625" else "success"
            documents.append(
                auth_event(
                    shape["user"],
                    _iso(EVENT_TIME_BASE + timedelta(minutes=shape["minute"])),
                    _iso(newest + timedelta(seconds=shape["ingest_offset"])),
                    code=shape["code"],
                    outcome=outcome,
                    host=shape["host"],
                    ip=shape["ip"],
                    logon_type=shape["logon_type"],
                    record=record,
                    service="krbtgt" if shape["code"] == "4769" else None,
                    encryption="0x12" if shape["code"] == "4769" else None,
                )
            )
            if shape["port"] is not None and shape["ip"] is not None:
                documents[-1]["source"]["port"] = shape["port"]
        newest = max([newest] + [datetime.fromisoformat(d["event"]["ingested"]) for d in documents])
        result.append(documents)
    return result


def _definitions() -> list[FeatureDefinition]:
    return [*feature_definitions(), MERGE_PROBE, RECOMPUTED_PROBE]


def _tables(store: Store) -> dict[str, list[dict]]:
    return {d.transform_id: read_feature_documents(store, d) for d in _definitions()}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(event_shapes, min_size=1, max_size=12), min_size=2, max_size=5))
def test_incremental_runs_equal_a_full_rebuild(batches):
    batches = _documents(batches)
    with tempfile.TemporaryDirectory() as folder:
        incremental = Store.open(Path(folder) / "incremental", create=True)
        position = 0
        for run, documents in enumerate(batches):
            incremental.write_batch([stored(d, position + i) for i, d in enumerate(documents)], [])
            position += len(documents)
            results = build_features(incremental, definitions=_definitions())
            modes = {r.transform_id: r.mode for r in results}
            # Rows are counted from what each run deleted and inserted, not by scanning the table.
            for result in results:
                table = incremental.connection.execute(f'SELECT count(*) FROM "{result.table}"')
                assert result.table_rows == table.fetchone()[0], result
            # Late events (within the delay) merge too, also one stored with the exact ingest
            # time of an event built before: runs find new events by their place in the store.
            if run:
                assert {modes[t] for t in MERGED} <= {"merged", "unchanged"}, modes
            assert modes["test-recompute-probe"] in ({"full"} if not run else {"incremental", "unchanged"})
        everything = [d for documents in batches for d in documents]
        full = write_events(Path(folder) / "full", everything)
        build_features(full, full=True, definitions=_definitions())
        assert _tables(incremental) == _tables(full)
        incremental.close()
        full.close()


def test_incremental_run_recomputes_only_touched_buckets(project_dir):
    early = [
        auth_event(f"user{i}", "2024-01-01T08:00:00.000Z", "2024-01-02T00:00:00.000Z", record=i)
        for i in range(20)
    ]
    # The newest event of the first build sets the checkpoint; the 20 events ingested well before it
    # are outside the next run's window (checkpoint - delay).
    newest = auth_event("user0", "2024-01-01T08:00:00.000Z", "2024-01-02T00:30:00.000Z", record=50)
    store = write_events(project_dir, [*early, newest])
    build_features(store)
    late = auth_event("user3", "2024-01-01T09:30:00.000Z", "2024-01-02T01:00:00.000Z", record=100)
    store.write_batch([stored(late, 100)], [])
    results = {r.transform_id: r for r in build_features(store)}
    hourly = results["authml-user-hourly"]
    assert hourly.mode == "incremental"
    # user3 at 09:00 only: events within the delay before the checkpoint are read again, but the
    # ones the checkpoint already covered are skipped.
    assert hourly.buckets_written == 1
    assert hourly.table_rows == 21
    store.close()


def test_events_later_than_the_delay_are_missed_until_a_full_build(project_dir):
    """As in ES: an event whose sync field lies before checkpoint - delay is never read
    incrementally (ES-NOTES 2.6); `features build --full` picks it up."""
    store = write_events(
        project_dir, [auth_event("alice", "2024-01-01T08:00:00.000Z", "2024-01-02T01:00:00.000Z", record=1)]
    )
    build_features(store)
    too_late = auth_event("bob", "2024-01-01T08:10:00.000Z", "2024-01-02T00:00:00.000Z", record=2)
    store.write_batch([stored(too_late, 2)], [])
    build_features(store)
    definition = next(d for d in feature_definitions() if d.transform_id == "authml-user-hourly")
    assert [d["user"]["name"] for d in read_feature_documents(store, definition)] == ["alice"]
    build_features(store, full=True)
    assert sorted(d["user"]["name"] for d in read_feature_documents(store, definition)) == ["alice", "bob"]
    store.close()
