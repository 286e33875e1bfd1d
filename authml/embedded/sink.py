"""The embedded store as the destination of an ingest run."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

import duckdb

from authml.embedded.ndjson_columnar import BlockOutcome, ParsedBlock, PythonPath, load_block, parse_block
from authml.embedded.store import ROW_GROUP_ROWS, DeadLetter, Store, StoredEvent
from authml.errors import StoreError, interrupted_query
from authml.ingest import BatchOutcome
from authml.runtime import map_ahead
from authml.sources.ndjson import LineBlock, ReadFailure

# DuckDB's memory during an ingest: a fixed budget for caching and the data awaiting a checkpoint,
# plus room for the primary-key index, which grows with the store (about 110 bytes an event
# measured; twice that allowed). Without a limit DuckDB keeps every written block cached, so an
# ingest's memory grew with the size of the file being read. The fixed part holds a commit's rows
# (COMMIT_ROWS, documents included) beside the block being parsed; with 512 MB DuckDB evicted and
# re-read them: 1M generated events took 117.7 s at 1.1 GB peak, 91.6 s at 1.6 GB with 1024 MB.
BASE_MEMORY_MB = 1024
INDEX_BYTES_PER_EVENT = 256
# Rows per commit. Once a transaction's new rows fill a row group (ROW_GROUP_ROWS), DuckDB writes them
# straight into the database file; smaller commits go through the write-ahead log, and every
# checkpoint that copies them out also rewrites the primary-key index, which grows with the store.
# Measured on 900,000 events: committed every 25,000 rows 86.6 s (slower with each checkpoint),
# every 150,000 rows 31.5 s (flat). Each commit also ends in a partly filled row group, which
# DuckDB's vacuum later merges by rewriting the row groups around it, at some checkpoint: with
# commits every 131,072 rows a 1M-event ingest left 5-6 s and 1 GB of that to the next process
# that wrote the store, and a file of 606 MB; every two row groups (245,760), 0.3 s and 499 MB,
# the ingest itself as fast (54.1 s against 52.0 s) at 1.6 GB peak instead of 1.7 GB.
COMMIT_ROWS = 2 * ROW_GROUP_ROWS
R = TypeVar("R")


class EmbeddedSink:
    """Writes batches into the DuckDB store, dead letters in the same transaction as their events.

    Batches share a transaction until ``commit_rows`` records are pending, since a commit costs far
    more than an insert (see COMMIT_ROWS). A process killed before a commit loses only uncommitted
    batches, which a re-run stores."""

    def __init__(self, store: Store, commit_rows: int = COMMIT_ROWS):
        self.store = store
        self.commit_rows = commit_rows
        self._pending_rows = 0
        self._in_transaction = False
        self._events_in_store = store.count_events()
        self._set_memory_limit()

    def write_batch(self, events: Sequence[StoredEvent], dead_letters: Sequence[DeadLetter]) -> BatchOutcome:
        def insert() -> tuple[int, int, int]:
            inserted = self.store.insert_batch(events, dead_letters)
            return inserted, len(events) + len(dead_letters), inserted

        inserted = self._write(insert, "a batch, nothing of it was kept")
        return BatchOutcome(stored=inserted, duplicates=len(events) - inserted)

    def write_batch_by_file(
        self, events: Sequence[StoredEvent], dead_letters: Sequence[DeadLetter]
    ) -> dict[str, BatchOutcome]:
        """write_batch for the events of several files, none twice in the batch: each file's
        outcome (by source_file). One insert costs about 20 ms however few its rows, so a folder
        of small EVTX files is stored several files a batch."""

        def insert() -> tuple[Counter[str], int, int]:
            stored = self.store.insert_batch_by_file(events, dead_letters)
            return stored, len(events) + len(dead_letters), stored.total()

        stored = self._write(insert, "a batch, nothing of it was kept")
        sent = Counter(event.source_file for event in events)
        return {
            file: BatchOutcome(stored=stored[file], duplicates=sent[file] - stored[file]) for file in sent
        }

    def _write(self, insert: Callable[[], tuple[R, int, int]], refused: str) -> R:
        """``insert()`` in the open transaction, which returns its result, the records it wrote and
        the events it stored; a commit once ``commit_rows`` records are pending. ``refused``: what
        the error says the store refused."""
        try:
            self._begin()
            result, rows, inserted = insert()
        except (duckdb.InterruptException, RuntimeError) as exc:
            self._abandon()
            if not interrupted_query(exc):
                raise
            raise KeyboardInterrupt from None
        except duckdb.Error as exc:
            self._abandon()
            raise StoreError(f"the store {self.store.path} refused {refused}: {exc}") from exc
        except BaseException:
            self._abandon()
            raise
        self._pending_rows += rows
        self._events_in_store += inserted
        if self._pending_rows >= self.commit_rows:
            self.flush()
        return result

    @contextmanager
    def parsed_line_blocks(
        self, items: Iterable[LineBlock | ReadFailure], source_file: str
    ) -> Iterator[Iterator[ParsedBlock | ReadFailure]]:
        """The blocks of ``items`` parsed (see ndjson_columnar.parse_block), each stamped with the
        time it was parsed as its ``event.ingested``; read failures pass through. A second
        connection parses the next block while the caller stores this one: storing takes about
        one core of two. A million generated events: 69.6 s against 91.6-95.1 s one after the
        other."""

        def parse(item: LineBlock | ReadFailure) -> ParsedBlock | ReadFailure:
            if isinstance(item, ReadFailure):
                return item
            cursor = self.store.connection.cursor()
            try:
                return parse_block(cursor, item, datetime.now(UTC))
            except duckdb.Error as exc:
                raise StoreError(
                    f"DuckDB could not parse lines {_line_range(item)} of {source_file}: {exc}"
                ) from exc
            finally:
                cursor.close()

        with map_ahead(parse, items, workers=1) as parsed:
            yield parsed

    def write_line_block(
        self,
        parsed: ParsedBlock,
        source_file: str,
        auth_codes: frozenset[str] | None,
        python_path: PythonPath,
    ) -> BlockOutcome:
        """Store a parsed block of NDJSON lines: the plain records as DuckDB parsed them, the others
        as ``python_path`` prepares them (see ndjson_columnar)."""

        def insert() -> tuple[BlockOutcome, int, int]:
            outcome = load_block(self.store, parsed, source_file, auth_codes, python_path)
            return outcome, outcome.read, outcome.stored

        return self._write(
            insert, f"lines {_line_range(parsed.block)} of {source_file}, nothing of them was kept"
        )

    def flush(self) -> None:
        """Commit what is pending."""
        if not self._in_transaction:
            return
        # The transaction ends here whatever happens: a Ctrl-C during the COMMIT, or just after it,
        # must not leave the sink believing one is open (the command's last flush then failed with
        # "cannot commit - no transaction is active" and a traceback).
        self._in_transaction = False
        self._pending_rows = 0
        try:
            self.store.connection.execute("COMMIT")
        except BaseException as exc:
            # An interrupted or refused COMMIT (DuckDB may report the interruption after the commit
            # is done): what was not committed is rolled back, and a re-run stores it.
            with contextlib.suppress(duckdb.Error):
                self.store.connection.execute("ROLLBACK")
            if interrupted_query(exc):
                raise KeyboardInterrupt from None
            raise
        self._set_memory_limit()

    def _begin(self) -> None:
        if not self._in_transaction:
            self.store.connection.execute("BEGIN TRANSACTION")
            self._in_transaction = True

    def _abandon(self) -> None:
        self._pending_rows = 0
        self._in_transaction = False
        # A failure before a transaction was open leaves nothing to undo.
        with contextlib.suppress(duckdb.TransactionException):
            self.store.connection.execute("ROLLBACK")

    def _set_memory_limit(self) -> None:
        limit_mb = BASE_MEMORY_MB + self._events_in_store * INDEX_BYTES_PER_EVENT // 2**20
        self.store.connection.execute(f"SET memory_limit = '{limit_mb}MB'")


def _line_range(block: LineBlock) -> str:
    return f"{block.first_line}-{block.first_line + len(block) - 1}"
