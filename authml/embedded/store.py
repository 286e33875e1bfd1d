"""Opening the embedded store and writing raw events into it.

Every write is one transaction: a batch of events and the dead letters found while reading it are
committed together, so a process killed at any moment leaves the store at the last whole batch,
and a repeated run fills in the rest (ids are deterministic, inserts ignore ids already present).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from authml.embedded.duck import registered, transaction
from authml.embedded.schema import STORE_DDL, event_columns, events_ddl, quote
from authml.errors import StoreError

STORE_FILE_NAME = "store.duckdb"
SCHEMA_VERSION = "1"
CHECKPOINT_THRESHOLD = "64MB"
# Rows in a DuckDB row group (its default ``row_group_size``): writers size their inserts and
# commits in whole groups, since DuckDB merges part-filled ones at a later checkpoint.
ROW_GROUP_ROWS = 122_880


def store_path(project_dir: Path) -> Path:
    return Path(project_dir) / STORE_FILE_NAME


@dataclass(slots=True)
class DeadLetter:
    source_file: str
    position: str
    reason: str
    raw: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "source_file": self.source_file,
            "position": self.position,
            "reason": self.reason,
            "raw": self.raw,
        }


@dataclass(slots=True)
class StoredEvent:
    """An event ready for the store: its id, its ECS document, and where it came from."""

    event_id: str
    document: dict[str, Any]
    typed_values: tuple[Any, ...] | list[Any]  # one value per schema column, in event_columns() order
    source_file: str
    source_position: str
    # Typed fields whose value was an array of several values: their column is NULL and the values
    # stay in `document`. The embedded engine refuses to read such a field rather than miscount.
    multi_valued_fields: tuple[str, ...] = ()


class Store:
    """The DuckDB store of one project directory."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path):
        self.connection = connection
        self.path = path

    @classmethod
    def open(cls, project_dir: Path, *, create: bool = False, read_only: bool = False) -> Store:
        path = store_path(project_dir)
        if not path.exists():
            if not create:
                raise StoreError(f"no store at {path}; run `authml ingest PATH` first or pass --project-dir")
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreError(
                    f"the store {path} is in use by another authml process; wait for it to finish"
                ) from exc
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        store = cls(connection, path)
        if not read_only:
            # Checkpoints every 64 MB of WAL: fewer file rewrites than the 16 MB default, while data waiting
            # for a checkpoint (held in memory) stays bounded.
            connection.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
            store._create_schema()
        return store

    def _create_schema(self) -> None:
        with self.transaction():
            for ddl in (*STORE_DDL, events_ddl()):
                self.connection.execute(ddl)
            self.connection.execute(
                "INSERT INTO store_meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", [SCHEMA_VERSION]
            )

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[None]:
        return transaction(self.connection)

    def write_batch(self, events: Sequence[StoredEvent], dead_letters: Iterable[DeadLetter]) -> int:
        """Store a batch and its dead letters in one transaction; returns how many events were new."""
        with self.transaction():
            return self.insert_batch(events, dead_letters)

    def insert_batch(self, events: Sequence[StoredEvent], dead_letters: Iterable[DeadLetter]) -> int:
        """Insert into the transaction the caller holds; returns how many events were new."""
        inserted = self._insert_events(events) if events else 0
        self._insert_dead_letters(dead_letters)
        return inserted

    def insert_batch_by_file(
        self, events: Sequence[StoredEvent], dead_letters: Iterable[DeadLetter]
    ) -> Counter[str]:
        """insert_batch for the events of several files, none twice in the batch: how many of
        each file's events were new (by source_file)."""
        stored = Counter(self._insert_events_of_files(events) if events else [])
        self._insert_dead_letters(dead_letters)
        return stored

    def _insert_events(self, events: Sequence[StoredEvent]) -> int:
        with self._events_registered(events) as insert:
            (inserted,) = self.connection.execute(insert).fetchone()
        return int(inserted)

    def _insert_events_of_files(self, events: Sequence[StoredEvent]) -> list[str]:
        """The source file of each new event: a count alone cannot say whose they were."""
        with self._events_registered(events) as insert:
            return [file for (file,) in self.connection.execute(f"{insert} RETURNING source_file").fetchall()]

    @contextmanager
    def _events_registered(self, events: Sequence[StoredEvent]) -> Iterator[str]:
        """The INSERT of ``events`` into the events table (new ids only), with its rows registered
        for the statement's duration."""
        # Arrow columns: built in C from Python lists, and scanned by DuckDB without the GIL, so the
        # insert overlaps with the reader preparing the next batch.
        columns = event_columns()
        typed_columns = list(zip(*(e.typed_values for e in events), strict=True))
        arrays = {
            "_id": pa.array([e.event_id for e in events], pa.string()),
            "document": pa.array(
                [orjson.dumps(e.document, default=str).decode() for e in events], pa.string()
            ),
            "source_file": pa.array([e.source_file for e in events], pa.string()),
            "source_position": pa.array([e.source_position for e in events], pa.string()),
        }
        select = ["_id"]
        for index, column in enumerate(columns):
            arrays[f"c{index}"] = pa.array(typed_columns[index], pa.string())
            select.append(f"TRY_CAST(c{index} AS {column.sql_type})")
        arrays["multi_valued_fields"] = pa.array(
            [list(e.multi_valued_fields) if e.multi_valued_fields else None for e in events],
            pa.list_(pa.string()),
        )
        select += ["document", "source_file", "source_position", "multi_valued_fields"]
        with registered(self.connection, "authml_batch", pa.table(arrays)):
            yield f"INSERT INTO events SELECT {', '.join(select)} FROM authml_batch ON CONFLICT DO NOTHING"

    def _insert_dead_letters(self, dead_letters: Iterable[DeadLetter]) -> None:
        rows = [
            (d.source_file, d.position, d.reason, d.raw, datetime.now(UTC).replace(tzinfo=None))
            for d in dead_letters
        ]
        if rows:
            self.connection.executemany(
                "INSERT INTO dead_letters VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET reason = excluded.reason, raw = excluded.raw, recorded_at = excluded.recorded_at",
                rows,
            )

    def record_run(self, run_id: str, started_at: datetime, file_summaries: list[dict[str, Any]]) -> None:
        """Keep the per-file counts of an ingest run, for `authml store runs` and audits."""
        finished = datetime.now(UTC).replace(tzinfo=None)
        self.connection.execute(
            "INSERT INTO ingest_runs VALUES (?, ?, ?, ?)",
            [run_id, started_at, finished, json.dumps(file_summaries)],
        )

    # Reading -----------------------------------------------------------------------------

    def count_events(self) -> int:
        return self.connection.execute("SELECT count(*) FROM events").fetchone()[0]

    def count_dead_letters(self) -> int:
        return self.connection.execute("SELECT count(*) FROM dead_letters").fetchone()[0]

    def summary(self) -> dict[str, Any]:
        """What the store holds: totals, time range, and counts per event code."""
        total, first, last, users, hosts = self.connection.execute(
            f'SELECT count(*), min("@timestamp"), max("@timestamp"), count(DISTINCT {quote("user.name")}), '
            f"count(DISTINCT {quote('host.name')}) FROM events"
        ).fetchone()
        by_code = self.connection.execute(
            f"SELECT {quote('event.code')}, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
        return {
            "store": str(self.path),
            "events": total,
            "dead_letters": self.count_dead_letters(),
            "first_event": first.isoformat() if first else None,
            "last_event": last.isoformat() if last else None,
            "users": users,
            "hosts": hosts,
            "by_event_code": {code if code is not None else "(none)": count for code, count in by_code},
        }
