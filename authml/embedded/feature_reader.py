"""Reads per-event features from the embedded store: the raw events plus the feature tables that
`authml features build` materialises from es_assets/transforms."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import pairwise
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from authml.embedded.duck import registered
from authml.embedded.schema import quote
from authml.embedded.store import Store
from authml.errors import NotReadyError
from authml.train.feature_sql import (
    HISTORY_KINDS,
    IDENTITY_COLUMNS,
    LOOPBACK_ADDRESSES,
    SOURCE_IP_HOURLY,
    USER_HOST,
    USER_HOURLY,
    USER_SOURCE_IP,
    FeatureWindow,
    authentication_event_codes,
    authentication_filter_sql,
    event_rows_sql,
    history_sql,
    missing_tables_sql,
    window_quantiles_sql,
)
from authml.train.matrix import EventFrame, build_event_frame
from authml.train.part_context_sql import PRIOR, part_context_sql
from authml.train.point_in_time import assemble_rows


def read_raw_features(
    connection: duckdb.DuckDBPyConnection,
    window: FeatureWindow,
    *,
    with_labels: bool = False,
    prior_counts: str | None = None,
) -> dict[str, np.ndarray]:
    """The columns of RAW_COLUMNS for the window's events, in time order, from a database that
    holds the events and the feature tables (the store, or a scratch copy of a cluster's).
    ``prior_counts``: see `event_rows_sql`."""
    return read_event_rows(connection, window, with_labels=with_labels, prior_counts=prior_counts)[0]


def read_event_rows(
    connection: duckdb.DuckDBPyConnection,
    window: FeatureWindow,
    *,
    with_labels: bool = False,
    prior_counts: str | None = None,
    with_identity: bool = False,
    collapsed: dict[str, str] | None = None,
) -> tuple[dict[str, np.ndarray], pa.Table | None, np.ndarray | None]:
    """read_raw_features, and with ``with_identity`` the same rows' ECS identity from the same
    scan (what a score row copies): an Arrow table (IDENTITY_COLUMNS, named by field) in the
    scan's order, and the table's row of each raw row (see `identity_table`). ``collapsed``: see
    `history_sql`."""
    codes = authentication_event_codes()
    sql = event_rows_sql(
        window,
        codes=codes,
        with_labels=with_labels,
        prior_counts=prior_counts,
        with_identity=with_identity,
        ordered=False,
    )
    events = connection.sql(sql).to_arrow_table()
    order = time_order(events)
    # the window's accounts, from its rows: each history query found them in `events` again
    accounts = pc.unique(pc.filter(events["user_name"], events["in_window"])) if window.start else None
    listed = (
        nullcontext()
        if accounts is None
        else registered(connection, _WINDOW_ACCOUNTS, pa.table({"user_name": accounts}))
    )
    with listed:
        history = {
            name: connection.sql(sql).to_arrow_table()
            for name, sql in history_sql(
                window,
                collapsed=collapsed,
                window_accounts=_WINDOW_ACCOUNTS if accounts is not None else None,
            ).items()
        }
    raw = assemble_rows(events, history, LOOPBACK_ADDRESSES, order)
    if not with_identity:
        return raw, None, None
    return raw, *identity_table(events, order)


# The name the window's accounts are registered under for the history queries (`read_event_rows`).
_WINDOW_ACCOUNTS = "authml_window_accounts"


def split_window(
    connection: duckdb.DuckDBPyConnection, window: FeatureWindow, rows_per_part: int, *, last_pieces: int = 1
) -> tuple[int, list[FeatureWindow]]:
    """How many events the window holds, and consecutive windows that cover it with about
    ``rows_per_part`` of them each (events at one time fall in one part). With ``last_pieces``
    > 1 the last part is cut in that many: workers that share the parts then finish at about the
    same time, where one could be left reading and scoring a whole part with the others done."""
    if rows_per_part < 1:
        raise ValueError(f"rows_per_part must be at least 1, not {rows_per_part}")
    if last_pieces < 1:
        raise ValueError(f"last_pieces must be at least 1, not {last_pieces}")
    codes = authentication_event_codes()
    # fetchall: a result left unfinished blocks the connection's next relation (DuckDB 2)
    ((events, _),) = connection.execute(window_quantiles_sql(window, codes=codes, fractions=[])).fetchall()
    bounds: list[datetime] = []
    if events > rows_per_part:
        fractions = _part_ends(events, rows_per_part, last_pieces)
        ((_, quantiles),) = connection.execute(
            window_quantiles_sql(window, codes=codes, fractions=fractions)
        ).fetchall()
        bounds = sorted(set(quantiles))
        if window.start is not None:  # a part starting where the window starts would be empty
            bounds = [bound for bound in bounds if bound > window.start.replace(tzinfo=None)]
        given = window.start or window.end
        if given is not None and given.tzinfo is not None:  # the store's times are naive UTC
            bounds = [bound.replace(tzinfo=UTC) for bound in bounds]
    edges = [window.start, *bounds, window.end]
    return events, [FeatureWindow(start, end, window.time_zone) for start, end in pairwise(edges)]


def _part_ends(events: int, rows_per_part: int, last_pieces: int) -> list[float]:
    """Where each part but the last ends, as a fraction of the events: parts of equal size, at
    most ``rows_per_part``, the last of them cut in ``last_pieces`` equal pieces."""
    parts = math.ceil(events / rows_per_part)
    unit = events / parts
    ends = [unit * k for k in range(1, parts)]
    ends += [unit * (parts - 1 + k / last_pieces) for k in range(1, last_pieces)]
    return [end / events for end in ends]


def time_order(events: pa.Table) -> np.ndarray:
    """The permutation that puts the rows of ``event_rows_sql(..., ordered=False)`` in (time, id)
    order. The rows stay where the scan left them: gathering a million wide rows (their strings)
    cost more than all the sorting, and DuckDB's ORDER BY carried them through its sort too."""
    keys = events.select(["ts", "_id"])
    return pc.sort_indices(keys, [("ts", "ascending"), ("_id", "ascending")]).to_numpy()


def identity_table(events: pa.Table, order: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """The window's rows of ``event_rows_sql(..., with_identity=True)``, identity columns only,
    in the scan's order; and for each of them in (time, id) order (``order``, `time_order`), its
    row in that table."""
    in_window = events["in_window"].to_numpy(zero_copy_only=False).astype(bool)
    # the identity columns chosen before the rows: a filter copies every column it is given
    table = events.select(list(IDENTITY_COLUMNS.values())).rename_columns(list(IDENTITY_COLUMNS))
    if not in_window.all():
        table = table.filter(pa.array(in_window))
    row_in_table = np.cumsum(in_window) - 1
    return table, row_in_table[order[in_window[order]]]


class EmbeddedFeatureReader:
    """FeatureReader over a DuckDB store; opens it read-only unless given an open Store."""

    engine = "embedded"

    def __init__(self, store: Store):
        self.store = store

    @classmethod
    def open(cls, project_dir: Path) -> EmbeddedFeatureReader:
        return cls(Store.open(project_dir, read_only=True))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> EmbeddedFeatureReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check_ready(self) -> None:
        missing = [row[0] for row in self.store.connection.execute(missing_tables_sql()).fetchall()]
        if missing:
            raise NotReadyError(
                f"the store {self.store.path} has no feature table {', '.join(missing)}; "
                "run `authml features build` first"
            )

    def read_events(
        self, window: FeatureWindow, *, with_labels: bool = False, with_identity: bool = False
    ) -> EventFrame:
        """The window's frame; ``with_identity`` also keeps each row's ECS identity (``frame.identity``)."""
        self.check_ready()
        raw, identity, identity_rows = read_event_rows(
            self.store.connection, window, with_labels=with_labels, with_identity=with_identity
        )
        frame = build_event_frame(raw)
        frame.identity, frame.identity_rows = identity, identity_rows
        return frame

    def window_parts(
        self, window: FeatureWindow, *, rows_per_part: int, last_pieces: int = 1
    ) -> tuple[int, list[FeatureWindow]]:
        """How many events the window holds, and consecutive windows that cover it with about
        ``rows_per_part`` of them each (`split_window`): read each with ``part_reads``."""
        self.check_ready()
        return split_window(self.store.connection, window, rows_per_part, last_pieces=last_pieces)

    def part_reads(
        self, parts: list[FeatureWindow], *, with_identity: bool = False
    ) -> Iterator[Callable[[], EventFrame]]:
        """For each part, a function that reads its frame, each part's features as of its own
        events (the rows ``read_events`` gives, in the same order), through a connection of its
        own: the parts can be read on other threads, at once, while the store's connection
        writes. The connection is made as the function is drawn, in the drawing thread.

        What the later parts see of the time before them (`authml.train.part_context_sql`) is
        read for all of them at once, by the first one that needs it, while the first part is
        read as a window on its own."""
        # the first part reads what came before the window itself, as a window read at once does
        later = [(index, part.start) for index, part in enumerate(parts) if index and part.start is not None]
        contexts = _PartContexts(self.store.connection.cursor(), later, parts[0].time_zone) if later else None
        for index, part in enumerate(parts):
            yield partial(
                _read_part,
                part,
                self.store.connection.cursor(),
                with_identity=with_identity,
                context=partial(contexts.of, index) if contexts and index else None,
            )

    def time_range(self) -> tuple[object, object]:
        codes = ", ".join(f"'{c}'" for c in authentication_event_codes())
        return self.store.connection.execute(
            f'SELECT min("@timestamp"), max("@timestamp") FROM events WHERE "event.code" IN ({codes})'
        ).fetchone()

    def count_users(self) -> int:
        return self.store.connection.execute('SELECT count(DISTINCT "user.name") FROM events').fetchone()[0]


class _PartContexts:
    """Per part, its rows of each `part_context_sql` query (Arrow tables by query name): read
    once, through the given connection, by the first caller; the others wait for it."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, starts: list[tuple[int, datetime]], time_zone: str):
        self._cursor, self._starts, self._time_zone = cursor, starts, time_zone
        self._lock = threading.Lock()
        self._tables: dict[int, dict[str, pa.Table]] | None = None
        self._failure: BaseException | None = None

    def of(self, index: int) -> dict[str, pa.Table]:
        with self._lock:
            if self._failure is not None:  # every part that needs them fails as the first did
                raise self._failure
            if self._tables is None:
                try:
                    self._tables = self._read()
                except BaseException as exc:
                    self._failure = exc
                    raise
                finally:
                    self._cursor.close()
            return self._tables[index]

    def _read(self) -> dict[int, dict[str, pa.Table]]:
        per_part: dict[int, dict[str, pa.Table]] = {index: {} for index, _ in self._starts}
        queries = part_context_sql(
            self._starts, time_zone=self._time_zone, codes=authentication_event_codes()
        )
        for name, sql in queries.items():
            table = self._cursor.sql(sql).to_arrow_table()
            part_of_row = table["part"].to_numpy()
            rows = table.drop_columns(["part"])
            for index, tables in per_part.items():
                tables[name] = rows.take(pa.array(np.flatnonzero(part_of_row == index)))
        return per_part


# Names under which a part's context tables are registered on its connection.
_CONTEXT_TABLES = {name: f"authml_part_{name}" for name in (PRIOR, *HISTORY_KINDS)}


def _read_part(
    part: FeatureWindow,
    cursor: duckdb.DuckDBPyConnection,
    *,
    with_identity: bool,
    context: Callable[[], dict[str, pa.Table]] | None = None,
) -> EventFrame:
    try:
        prior_counts = collapsed = None
        if context is not None:
            for name, table in context().items():
                cursor.register(_CONTEXT_TABLES[name], table)
            prior_counts = _CONTEXT_TABLES[PRIOR]
            collapsed = {kind: _CONTEXT_TABLES[kind] for kind in HISTORY_KINDS}
        raw, identity, identity_rows = read_event_rows(
            cursor, part, with_identity=with_identity, prior_counts=prior_counts, collapsed=collapsed
        )
    finally:
        cursor.close()
    frame = build_event_frame(raw)
    frame.identity, frame.identity_rows = identity, identity_rows
    return frame


# Per account, source IP and event code: how many events came before a window's context hour.
PRIOR_COUNTS = "prior_counts"

# Columns of the scratch tables an Elasticsearch reader fills: exactly what read_raw_features reads.
SCRATCH_TABLES: dict[str, dict[str, str]] = {
    "events": {
        "_id": "VARCHAR",
        "@timestamp": "TIMESTAMP",
        "user.name": "VARCHAR",
        "source.ip": "VARCHAR",
        "host.name": "VARCHAR",
        "event.code": "VARCHAR",
        "event.outcome": "VARCHAR",
        "winlog.logon.type": "VARCHAR",
        "winlog.event_data.LogonType": "VARCHAR",
        "winlog.event_data.TicketEncryptionType": "VARCHAR",
        "winlog.event_data.ServiceName": "VARCHAR",
        "winlog.event_data.PreAuthType": "VARCHAR",
        "winlog.event_data.TargetUserName": "VARCHAR",
        "user.target.name": "VARCHAR",
        "document": "JSON",
    },
    USER_HOURLY: {
        "user.name": "VARCHAR",
        "@timestamp": "TIMESTAMP",
        "events": "BIGINT",
        "hosts": "BIGINT",
        "services": "BIGINT",
        "logon_types": "JSON",
        "ticket_encryption_types": "JSON",
    },
    USER_SOURCE_IP: {"user.name": "VARCHAR", "source.ip": "VARCHAR", "first_seen": "TIMESTAMP"},
    USER_HOST: {"user.name": "VARCHAR", "host.name": "VARCHAR", "first_seen": "TIMESTAMP"},
    SOURCE_IP_HOURLY: {"source.ip": "VARCHAR", "@timestamp": "TIMESTAMP", "failed_logons.users": "BIGINT"},
    PRIOR_COUNTS: {"user_name": "VARCHAR", "source_ip": "VARCHAR", "event_code": "VARCHAR", "n": "BIGINT"},
}


class ScratchFeatureStore:
    """A temporary DuckDB database that batches streamed from elsewhere (an Elasticsearch cluster)
    are loaded into, so that the same SQL computes the same rows as over the embedded store.
    On disk, so that a large index never has to fit in memory."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / "scratch-features.duckdb"
        self.connection = duckdb.connect(str(self.path))
        self._counted_before: datetime | None = None
        for table, columns in SCRATCH_TABLES.items():
            body = ", ".join(f"{quote(name)} {sql_type}" for name, sql_type in columns.items())
            self.connection.execute(f"CREATE TABLE {quote(table)} ({body})")

    def load(self, table: str, rows: list[dict]) -> int:
        """Append rows (dicts keyed by column, values as plain JSON values) to a scratch table."""
        columns = SCRATCH_TABLES[table]
        batch = {
            f"c{i}": np.array([_plain(row.get(name), sql_type) for row in rows], dtype=object)
            for i, (name, sql_type) in enumerate(columns.items())
        }
        select = ", ".join(f"TRY_CAST(c{i} AS {sql_type})" for i, sql_type in enumerate(columns.values()))
        with registered(self.connection, "authml_scratch_batch", batch):
            self.connection.execute(f"INSERT INTO {quote(table)} SELECT {select} FROM authml_scratch_batch")
        return len(rows)

    def accounts(self, since: datetime | None = None) -> list[str]:
        """The accounts of the loaded authentication events (at or after ``since``), sorted."""
        filters = [authentication_filter_sql(authentication_event_codes())]
        parameters = []
        if since is not None:
            filters.append('"@timestamp" >= ?')
            parameters.append(since.replace(tzinfo=None))
        rows = self.connection.execute(
            f'SELECT DISTINCT "user.name" FROM events WHERE {" AND ".join(filters)} ORDER BY 1', parameters
        ).fetchall()
        return [row[0] for row in rows]

    def read_events(
        self, window: FeatureWindow, *, with_labels: bool = False, prior_loaded: bool = False
    ) -> EventFrame:
        """The window's rows. ``prior_loaded``: the events table holds only the events from about
        an hour before the window's start on, and the prior-count table those before the cut
        the cluster could make (whole milliseconds); loaded events before the exact cut are
        counted into it here, so that the split is the one the SQL makes."""
        prior = None
        if prior_loaded and window.start is not None:
            if self._counted_before is not None:
                raise ValueError("the events before the window were counted for another window already")
            self._counted_before = window.start
            self.connection.execute(
                f"""INSERT INTO {quote(PRIOR_COUNTS)}
                SELECT "user.name", "source.ip", "event.code", count(*) FROM events
                WHERE {authentication_filter_sql(authentication_event_codes())} AND "@timestamp" < ?
                GROUP BY ALL""",
                [window.start.replace(tzinfo=None) - timedelta(hours=1)],
            )
            prior = PRIOR_COUNTS
        raw = read_raw_features(self.connection, window, with_labels=with_labels, prior_counts=prior)
        return build_event_frame(raw)

    def close(self) -> None:
        self.connection.close()
        self.path.unlink(missing_ok=True)


def _plain(value: object, sql_type: str) -> object:
    if value is None:
        return None
    if sql_type == "JSON":
        return json.dumps(value)
    if sql_type == "TIMESTAMP" and isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None).isoformat()
    return value if isinstance(value, str) else str(value)
