"""Incremental runs spread the tables over connections, each group in its own transaction: a
failing group leaves the others committed and itself at its last checkpoint. Checkpoints find the
events stored since them by position, and a table rewritten behind their back is rebuilt."""

from __future__ import annotations

import pytest

from authml.embedded import feature_build
from authml.embedded.features import build_features, feature_definitions, read_feature_documents
from authml.embedded.store import Store
from tests.conformance.events import auth_event, stored, write_events

FAILING = "authml-user-hourly"


def _event(user: str, record: int) -> dict:
    # Stored a second apart, so each run's tail (the counts within the 120 s delay) has rows.
    return auth_event(user, "2024-01-01T08:00:00.000Z", f"2024-01-02T00:00:{record:02d}.000Z", record=record)


def _add(store, record: int, user: str = "bob") -> None:
    store.write_batch([stored(_event(user, record), record)], [])


def _checkpoints(store) -> dict[str, tuple]:
    rows = store.connection.execute("SELECT transform_id, sync_upper, stored_events FROM feature_checkpoints")
    return {row[0]: row[1:] for row in rows.fetchall()}


def _assert_equals_a_full_rebuild(store, tmp_path, events: list[dict]) -> None:
    """The store's tables equal those a full build of ``events`` gives (closes the store)."""
    rebuilt = write_events(tmp_path / "rebuilt", events)
    build_features(rebuilt, full=True)
    assert _documents(store) == _documents(rebuilt)
    store.close()
    rebuilt.close()


def _documents(store) -> dict[str, list]:
    return {d.transform_id: read_feature_documents(store, d) for d in feature_definitions()}


def test_the_tables_are_built_in_more_than_one_group():
    transforms = [d.transform_id for d in feature_definitions()]
    groups = [transforms[index :: feature_build.CONNECTIONS] for index in range(feature_build.CONNECTIONS)]
    assert feature_build.CONNECTIONS > 1 and all(groups)
    assert any(FAILING in group for group in groups) and not all(FAILING in group for group in groups)


def test_a_failing_group_rolls_back_alone_and_the_next_run_catches_up(project_dir, tmp_path, monkeypatch):
    store = write_events(project_dir, [_event("alice", 1)])
    build_features(store)
    before = _checkpoints(store)
    tables_before = _documents(store)
    _add(store, 2)
    execute = feature_build._execute

    def failing(connection, plan, *args):
        if plan.definition.transform_id == FAILING:
            raise RuntimeError("disk full")
        return execute(connection, plan, *args)

    monkeypatch.setattr(feature_build, "_execute", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        build_features(store)
    monkeypatch.undo()

    after = _checkpoints(store)
    tables_after = _documents(store)
    failed_group = next(
        group
        for index in range(feature_build.CONNECTIONS)
        if FAILING
        in (group := [d.transform_id for d in feature_definitions()][index :: feature_build.CONNECTIONS])
    )
    for transform, checkpoint in after.items():
        if transform in failed_group:
            assert checkpoint == before[transform]
            assert tables_after[transform] == tables_before[transform]
        else:
            assert checkpoint[0] > before[transform][0]
            assert tables_after[transform] != tables_before[transform]

    results = build_features(store)
    assert {r.transform_id: r.mode for r in results}[FAILING] == "incremental"
    _assert_equals_a_full_rebuild(store, tmp_path, [_event("alice", 1), _event("bob", 2)])


def test_checkpoints_record_how_many_events_they_built_on(project_dir):
    """Also across DuckDB checkpoints (each close writes one): row positions survive them."""
    store = write_events(project_dir, [_event("alice", 1)])
    build_features(store)
    for record in range(2, 5):
        _add(store, record, user=f"user{record}")
        store.connection.execute("CHECKPOINT")
        store.close()
        store = Store.open(project_dir)
        results = build_features(store)
        assert {r.mode for r in results} <= {"incremental", "merged"}
        assert {stored for _, stored in _checkpoints(store).values()} == {record}
    store.close()


@pytest.mark.parametrize("rewrite", ["delete", "delete and compact"])
def test_a_rewritten_events_table_rebuilds_the_tables(project_dir, tmp_path, rewrite):
    """Rows removed behind the checkpoints' back (nothing in authml does) move or drop the rows
    they counted: the next run cannot tell what is new, so it builds every table in full."""
    store = write_events(project_dir, [_event("alice", 1), _event("carol", 2)])
    build_features(store)
    store.connection.execute("DELETE FROM events WHERE \"user.name\" = 'alice'")
    if rewrite == "delete and compact":
        store.connection.execute("CHECKPOINT")
    _add(store, 3)
    assert {r.mode for r in build_features(store)} == {"full"}
    _assert_equals_a_full_rebuild(store, tmp_path, [_event("carol", 2), _event("bob", 3)])


def test_a_store_with_checkpoints_of_an_older_layout_rebuilds_once(project_dir):
    """Stores built before checkpoints counted rows kept a tail table beside them."""
    store = write_events(project_dir, [_event("alice", 1)])
    build_features(store)
    store.connection.execute("ALTER TABLE feature_checkpoints ADD COLUMN tail_key VARCHAR")
    store.connection.execute(
        "CREATE TABLE feature_checkpoint_tail (tail_key VARCHAR, sync_value TIMESTAMP, events BIGINT)"
    )
    _add(store, 2)
    assert {r.mode for r in build_features(store)} == {"full"}
    tables = {row[0] for row in store.connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "feature_checkpoint_tail" not in tables
    assert {stored for _, stored in _checkpoints(store).values()} == {2}
    _add(store, 3)
    assert {r.mode for r in build_features(store)} <= {"incremental", "merged"}
    store.close()
