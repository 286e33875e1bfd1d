"""The embedded sink: shared transactions, a clear error when the store refuses a batch, and a
memory budget that follows the store's size."""

from __future__ import annotations

import duckdb
import pytest

from authml.embedded.sink import BASE_MEMORY_MB, EmbeddedSink
from authml.embedded.store import Store
from authml.errors import StoreError
from authml.ingest import prepare_event
from tests.helpers import auth_event


def events(first: int, count: int):
    return [
        prepare_event(auth_event(i), "t.ndjson", f"line {i}", "2025-01-07T00:00:00Z")
        for i in range(first, first + count)
    ]


def memory_limit_mb(store: Store) -> float:
    (text,) = store.connection.execute("SELECT current_setting('memory_limit')").fetchone()
    number, unit = text.split()
    return float(number) * {"MiB": 1, "GiB": 1024, "MB": 1, "GB": 1000}[unit]


def test_small_batches_share_a_transaction_until_flushed(project_dir):
    with Store.open(project_dir, create=True) as store:
        EmbeddedSink(store, commit_rows=100).write_batch(events(1, 10), [])
        # closed before the sink flushed: what a crash before the commit amounts to
    with Store.open(project_dir) as store:
        assert store.count_events() == 0
        sink = EmbeddedSink(store, commit_rows=100)
        sink.write_batch(events(1, 10), [])
        sink.flush()
    with Store.open(project_dir, read_only=True) as store:
        assert store.count_events() == 10


def test_a_refused_batch_is_one_clear_error_and_nothing_of_it_is_kept(project_dir, monkeypatch):
    with Store.open(project_dir, create=True) as store:
        sink = EmbeddedSink(store, commit_rows=1000)
        sink.write_batch(events(1, 5), [])

        def refuse(*_args):
            raise duckdb.OutOfMemoryException("failed to allocate")

        monkeypatch.setattr(store, "insert_batch", refuse)
        with pytest.raises(StoreError, match="refused a batch.*failed to allocate"):
            sink.write_batch(events(6, 5), [])
        monkeypatch.undo()
        assert store.count_events() == 0  # the open transaction, with the earlier batch, was rolled back
        sink.write_batch(events(1, 10), [])
        sink.flush()
        assert store.count_events() == 10


def test_memory_budget_grows_with_the_store_not_the_input(project_dir):
    with Store.open(project_dir, create=True) as store:
        sink = EmbeddedSink(store, commit_rows=1)
        start = memory_limit_mb(store)
        assert start == pytest.approx(BASE_MEMORY_MB, rel=0.05)
        sink.write_batch(events(1, 20_000), [])
        assert memory_limit_mb(store) > start


def test_documents_are_stored_zstd_compressed(project_dir):
    # JSON documents are most of an ingest's bytes: zstd keeps the file at about 40% of DuckDB's
    # own choice for them, and the commit that compresses them takes about half as long.
    with Store.open(project_dir, create=True) as store:
        store.write_batch(events(1, 2_000), [])
        store.connection.execute("CHECKPOINT")
        compressions = {
            compression
            for (compression,) in store.connection.execute(
                "SELECT DISTINCT compression FROM pragma_storage_info('events') "
                "WHERE column_name = 'document' AND segment_type = 'JSON'"
            ).fetchall()
        }
    assert compressions == {"ZSTD"}


class _ConnectionInterruptedAt:
    """The store's connection, but the statement ``sql`` reports Ctrl-C as DuckDB does
    ("Query interrupted"), after running (``done=True``: a COMMIT that completed before DuckDB
    noticed the signal) or instead of running."""

    def __init__(self, connection, sql: str, *, done: bool):
        self._connection, self._sql, self._done = connection, sql, done

    def execute(self, sql, *args):
        if sql != self._sql:
            return self._connection.execute(sql, *args)
        if self._done:
            self._connection.execute(sql, *args)
        raise RuntimeError("Query interrupted")

    def __getattr__(self, name):
        return getattr(self._connection, name)


@pytest.mark.parametrize("done", [True, False], ids=["commit-done", "commit-not-run"])
def test_ctrl_c_at_a_commit_is_an_interruption_and_leaves_no_transaction_behind(project_dir, done):
    with Store.open(project_dir, create=True) as store:
        sink = EmbeddedSink(store, commit_rows=5)
        real = store.connection
        store.connection = _ConnectionInterruptedAt(real, "COMMIT", done=done)
        with pytest.raises(KeyboardInterrupt):
            sink.write_batch(events(1, 10), [])  # 10 rows pending: it commits
        store.connection = real
        sink.flush()  # as the command's exit does; it once failed with "no transaction is active"
        sink.write_batch(events(11, 2), [])  # and the sink goes on working
        sink.flush()
    with Store.open(project_dir, read_only=True) as store:
        # the interrupted commit's rows are there if it completed, else rolled back
        assert store.count_events() == (12 if done else 2)


def test_duckdb_interruptions_are_told_from_other_errors():
    from authml.errors import interrupted_query

    assert interrupted_query(RuntimeError("Query interrupted"))
    assert interrupted_query(duckdb.InterruptException("INTERRUPT Error: Interrupted!"))
    assert not interrupted_query(RuntimeError("Query interrupted early"))
    assert not interrupted_query(duckdb.ConstraintException("Duplicate key"))
    assert not interrupted_query(KeyError("Query interrupted"))


def test_a_statement_failing_on_registered_data_reports_its_own_error(tmp_path):
    """A failed (or Ctrl-C'd) statement aborts its transaction, and unregistering the data then
    fails too ("Current transaction is aborted"): that second error once replaced the first, so
    an interrupted `authml score` ended with a traceback instead of as interrupted."""
    import pyarrow as pa

    from authml.embedded.duck import registered

    connection = duckdb.connect(str(tmp_path / "t.duckdb"))
    connection.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    connection.execute("BEGIN TRANSACTION")
    with pytest.raises(duckdb.ConstraintException), registered(connection, "batch", pa.table({"x": [1, 1]})):
        connection.execute("INSERT INTO t SELECT x FROM batch")
    connection.execute("ROLLBACK")
    with registered(connection, "batch", pa.table({"x": [2]})):  # the name is free again
        connection.execute("INSERT INTO t SELECT x FROM batch")
    assert connection.execute("SELECT x FROM t").fetchall() == [(2,)]
    with pytest.raises(duckdb.CatalogException):
        connection.execute("SELECT * FROM batch")  # and unregistered after use
