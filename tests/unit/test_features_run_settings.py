"""How an incremental run executes: one DuckDB thread for a small window (restored after), every
thread for full builds, and a table dropped behind its checkpoint rebuilt in full."""

from __future__ import annotations

import pytest

from authml.assets import load_asset_file
from authml.embedded import feature_build
from authml.embedded.features import build_features, feature_definitions, read_feature_documents
from authml.errors import AssetError
from tests.conformance.events import auth_event, stored, write_events


def _threads(store) -> int:
    return int(store.connection.execute("SELECT current_setting('threads')").fetchone()[0])


def _threads_seen(store, **options) -> tuple[set[int], dict[str, str]]:
    """The DuckDB thread setting while each table was built, and each table's build mode."""
    seen: set[int] = set()
    results = build_features(store, progress=lambda _: seen.add(_threads(store)), **options)
    return seen, {r.transform_id: r.mode for r in results}


def _store(project_dir):
    store = write_events(
        project_dir,
        [auth_event("alice", "2024-01-01T08:00:00.000Z", "2024-01-02T00:00:00.000Z", record=1)],
    )
    store.connection.execute("SET threads = 3")
    return store


def _add_event(store, record: int) -> None:
    late = auth_event("bob", "2024-01-01T09:00:00.000Z", f"2024-01-02T01:00:{record:02d}.000Z", record=record)
    store.write_batch([stored(late, record)], [])


def test_a_small_incremental_run_uses_one_thread_and_restores_the_setting(project_dir):
    store = _store(project_dir)
    seen, modes = _threads_seen(store)
    assert seen == {3} and set(modes.values()) == {"full"}
    _add_event(store, 2)
    seen, modes = _threads_seen(store)
    assert seen == {1}
    assert modes["authml-user-hourly"] == "incremental" and modes["authml-user-host"] == "merged"
    assert _threads(store) == 3
    store.close()


def test_a_larger_window_keeps_every_thread_and_builds_the_same_rows(project_dir, tmp_path, monkeypatch):
    small = _store(project_dir)
    large = _store(tmp_path / "large")
    for store in (small, large):
        build_features(store)
        _add_event(store, 2)
    monkeypatch.setattr(feature_build, "SMALL_WINDOW_EVENTS", 0)
    seen, modes = _threads_seen(large)
    assert seen == {3} and modes["authml-user-hourly"] == "incremental"
    monkeypatch.undo()
    assert _threads_seen(small)[0] == {1}
    for definition in feature_definitions():
        assert read_feature_documents(small, definition) == read_feature_documents(large, definition)
    small.close()
    large.close()


def test_a_table_dropped_behind_its_checkpoint_is_rebuilt_in_full(project_dir):
    store = _store(project_dir)
    build_features(store)
    _add_event(store, 2)
    store.connection.execute('DROP TABLE "authml-features-user-host-v1"')
    seen, modes = _threads_seen(store)
    assert modes["authml-user-host"] == "full"
    assert modes["authml-user-hourly"] == "incremental"
    assert seen == {3}  # a full build among the tables: no single-thread run
    definition = next(d for d in feature_definitions() if d.transform_id == "authml-user-host")
    assert sorted(d["user"]["name"] for d in read_feature_documents(store, definition)) == ["alice", "bob"]
    store.close()


def test_a_full_build_keeps_every_thread(project_dir):
    store = _store(project_dir)
    build_features(store)
    _add_event(store, 2)
    seen, modes = _threads_seen(store, full=True)
    assert seen == {3} and set(modes.values()) == {"full"}
    store.close()


def test_asset_yaml_errors_still_name_the_file(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("pivot: [unclosed\n", encoding="utf-8")
    with pytest.raises(AssetError, match="broken.yml: cannot be read as YAML"):
        load_asset_file(broken)
    listed = tmp_path / "list.yml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(AssetError, match="mapping at the top level"):
        load_asset_file(listed)
