"""How an incremental run executes: one DuckDB thread for a small window (restored after), every
thread for full builds, a table dropped behind its checkpoint rebuilt in full, and the list forms
of distinct counts and terms maps that small runs use."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from authml.assets import load_asset_file
from authml.embedded import feature_build
from authml.embedded.features import (
    build_features,
    compile_definition,
    feature_definitions,
    read_feature_documents,
)
from authml.engine.compile import compile_pivot
from authml.engine.fields import FieldCatalog
from authml.errors import AssetError
from tests.conformance.events import auth_event, stored, write_events
from tests.unit.test_features_incremental import MERGE_PROBE, RECOMPUTED_PROBE

NOW = datetime(2024, 1, 3, tzinfo=UTC)


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


def test_the_list_forms_of_small_runs_give_the_same_buckets(project_dir):
    """Distinct counts and terms maps over a list of each bucket's values (what one-thread runs
    use) equal count(DISTINCT) and histogram, filters, NULLs and empty buckets included."""
    events = []
    for record, (user, host, ip, logon, code) in enumerate(
        [
            ("alice", "ws1", "10.0.0.1", "3", "4624"),
            ("alice", "ws1", "10.0.0.1", "3", "4624"),
            ("alice", "ws2", "10.0.0.2", "10", "4625"),
            ("alice", None, None, None, "4625"),
            ("bob", "ws1", "fe80::1", "2", "4769"),
            ("bob", None, None, None, "4624"),
            ("carol", None, None, None, "4625"),
        ]
    ):
        events.append(
            auth_event(
                user,
                f"2024-01-01T08:{record:02d}:00.000Z",
                "2024-01-02T00:00:00.000Z",
                code=code,
                outcome="failure" if code == "4625" else "success",
                host=host,
                ip=ip,
                logon_type=logon,
                record=record,
            )
        )
        if ip is not None:
            events[-1]["source"]["port"] = 445 + record % 2
    store = write_events(project_dir, events)
    for definition in [*feature_definitions(), MERGE_PROBE, RECOMPUTED_PROBE]:
        pivot = compile_definition(definition, NOW)
        assert pivot.small_inner, definition.transform_id  # every probe has a distinct count or terms
        rows = {
            small: store.connection.execute(
                f"SELECT * FROM ({pivot.select_sql('events', small=small)}) ORDER BY _id"
            ).fetchall()
            for small in (False, True)
        }
        assert rows[True] == rows[False] and rows[False], definition.transform_id
    store.close()


def test_floating_point_cardinalities_keep_count_distinct():
    body = {
        "source": {"index": ["events"]},
        "dest": {"index": "x"},
        "pivot": {
            "group_by": {"user.name": {"terms": {"field": "user.name"}}},
            "aggregations": {
                "ports": {"cardinality": {"field": "port"}},
                "scores": {"cardinality": {"field": "score"}},
            },
        },
    }
    catalog = FieldCatalog({"user.name": "keyword", "port": "long", "score": "double"})
    pivot = compile_pivot(body, "x.yml", catalog, now=NOW, transform_id="x")
    assert [alias for alias, _ in pivot.small_inner] == ["__a0"]  # the long field only
