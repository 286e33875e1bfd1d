"""The embedded store as the destination of an ingest run."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import duckdb

from authml.embedded.store import DeadLetter, Store, StoredEvent
from authml.errors import StoreError
from authml.ingest import BATCH_SIZE, BatchOutcome

# DuckDB's memory during an ingest: a fixed budget for caching and the data awaiting a checkpoint,
# plus room for the primary-key index, which grows with the store (about 110 bytes an event
# measured; twice that allowed). Without a limit DuckDB keeps every written block cached, so an
# ingest's memory grew with the size of the file being read.
BASE_MEMORY_MB = 512
INDEX_BYTES_PER_EVENT = 256


class EmbeddedSink:
    """Writes batches into the DuckDB store, dead letters in the same transaction as their events.

    Small batches (the tail of each file in a folder of small EVTX files) share a transaction
    until ``commit_rows`` records are pending, since a commit costs far more than a small insert.
    A process killed before a commit loses only uncommitted batches, which a re-run stores."""

    def __init__(self, store: Store, commit_rows: int = BATCH_SIZE):
        self.store = store
        self.commit_rows = commit_rows
        self._pending_rows = 0
        self._events_in_store = store.count_events()
        self._set_memory_limit()

    def write_batch(self, events: Sequence[StoredEvent], dead_letters: Sequence[DeadLetter]) -> BatchOutcome:
        connection = self.store.connection
        try:
            if self._pending_rows == 0:
                connection.execute("BEGIN TRANSACTION")
            inserted = self.store.insert_batch(events, dead_letters)
        except duckdb.Error as exc:
            self._abandon()
            raise StoreError(
                f"the store {self.store.path} refused a batch, nothing of it was kept: {exc}"
            ) from exc
        except BaseException:
            self._abandon()
            raise
        self._pending_rows += len(events) + len(dead_letters)
        self._events_in_store += inserted
        if self._pending_rows >= self.commit_rows:
            self.flush()
        return BatchOutcome(stored=inserted, duplicates=len(events) - inserted)

    def flush(self) -> None:
        """Commit what is pending."""
        if self._pending_rows:
            self.store.connection.execute("COMMIT")
            self._pending_rows = 0
            self._set_memory_limit()

    def _abandon(self) -> None:
        self._pending_rows = 0
        # A failure before a transaction was open leaves nothing to undo.
        with contextlib.suppress(duckdb.TransactionException):
            self.store.connection.execute("ROLLBACK")

    def _set_memory_limit(self) -> None:
        limit_mb = BASE_MEMORY_MB + self._events_in_store * INDEX_BYTES_PER_EVENT // 2**20
        self.store.connection.execute(f"SET memory_limit = '{limit_mb}MB'")
