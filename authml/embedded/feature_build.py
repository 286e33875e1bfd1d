"""Building feature tables: full builds, checkpoints and incremental runs (ES-NOTES 2.6).

* "now" is the store's newest ``event.ingested``: ingest and build cannot overlap (the writer holds
  the store's lock), so every stored event is visible and a checkpoint reaches the newest one.
* A checkpoint records that upper bound and the ids of the events in the ``sync.time.delay``
  before it (the "tail", shared by transforms checkpointed together). The next run reads
  ``(checkpoint - delay, upper]`` minus the tail: new events, plus events stored late with an
  ingest time up to ``delay`` before the checkpoint. Later ones are missed, as in ES.
* Every bucket those events fall into is recomputed over its whole history and replaces its row,
  so the tables always equal a full rebuild.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from authml.embedded.duck import prepare
from authml.embedded.features import (
    BuildResult,
    FeatureDefinition,
    _compile,
    _require_sync,
    _StoreCatalog,
    _table_exists,
    _timestamp,
    feature_definitions,
)
from authml.embedded.multivalue import reject_multi_valued
from authml.embedded.store import Store
from authml.engine.compile import CompiledPivot
from authml.engine.fields import quote, sql_string

EVENTS = "events"
CHECKPOINTS_DDL = """CREATE TABLE IF NOT EXISTS feature_checkpoints (
  transform_id VARCHAR PRIMARY KEY,
  dest_index VARCHAR NOT NULL,
  definition_sha256 VARCHAR NOT NULL,
  sync_upper TIMESTAMP,
  tail_key VARCHAR,
  built_at TIMESTAMP NOT NULL,
  rows BIGINT NOT NULL
)"""
TAIL_DDL = (
    "CREATE TABLE IF NOT EXISTS feature_checkpoint_tail (tail_key VARCHAR NOT NULL, _id VARCHAR NOT NULL)"
)
LAYOUT = {
    "feature_checkpoints": [
        "transform_id",
        "dest_index",
        "definition_sha256",
        "sync_upper",
        "tail_key",
        "built_at",
        "rows",
    ],
    "feature_checkpoint_tail": ["tail_key", "_id"],
}
MAX_INLINE_TERMS = 5000


@dataclass(slots=True)
class _Plan:
    definition: FeatureDefinition
    pivot: CompiledPivot
    catalog: _StoreCatalog
    table: str
    sync: str  # the quoted sync column
    bounded: str  # every event up to the new checkpoint
    lower: datetime | None  # incremental: the window starts after this; None: full build
    window: str | None  # incremental: the events to read


def build(
    store: Store,
    *,
    full: bool = False,
    definitions: list[FeatureDefinition] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BuildResult]:
    connection = prepare(store.connection)
    _ensure_tables(connection)
    upper = connection.execute(f"SELECT max({quote('event.ingested')}) FROM {EVENTS}").fetchone()[0]
    chosen = definitions if definitions is not None else feature_definitions()
    plans = [_plan(connection, definition, upper, full) for definition in chosen]
    check_started = time.perf_counter()
    _check_single_values(connection, plans, upper)
    check_seconds = time.perf_counter() - check_started
    results = []
    for plan in plans:
        results.append(_execute(store, plan, upper))
        results[-1].check_seconds = check_seconds
        if progress:
            progress(plan.definition.transform_id)
    connection.execute(
        "DELETE FROM feature_checkpoint_tail WHERE tail_key NOT IN "
        "(SELECT tail_key FROM feature_checkpoints WHERE tail_key IS NOT NULL)"
    )
    return results


def _ensure_tables(connection) -> None:
    for table, expected in LAYOUT.items():
        columns = [
            row[0]
            for row in connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
        ]
        if columns and columns != expected:
            # An older layout: features are derived data, so they are rebuilt in full.
            connection.execute(f"DROP TABLE {table}")
    connection.execute(CHECKPOINTS_DDL)
    connection.execute(TAIL_DDL)


def _tail_key(pivot: CompiledPivot, upper: datetime) -> str:
    return f"{pivot.sync_field}|{upper.isoformat()}|{pivot.sync_delay_ms}"


def _plan(connection, definition: FeatureDefinition, upper: datetime | None, full: bool) -> _Plan:
    now = (upper or datetime.now(UTC).replace(tzinfo=None)).replace(tzinfo=UTC)
    pivot, catalog = _compile(definition, now)
    sync = _require_sync(pivot, definition)
    checkpoint = connection.execute(
        "SELECT definition_sha256, sync_upper, tail_key FROM feature_checkpoints WHERE transform_id = ?",
        [definition.transform_id],
    ).fetchone()
    incremental = (
        not full
        and checkpoint is not None
        and checkpoint[0] == definition.sha256
        and checkpoint[1] is not None
        and _table_exists(connection, definition.dest_index)
    )
    bounded = f"{sync} <= {_timestamp(upper)}" if upper else "FALSE"
    lower = window = None
    if incremental:
        lower = checkpoint[1] - timedelta(milliseconds=pivot.sync_delay_ms)
        window = (
            f"{sync} > {_timestamp(lower)} AND {bounded} AND _id NOT IN "
            f"(SELECT _id FROM feature_checkpoint_tail WHERE tail_key = {sql_string(checkpoint[2] or '')})"
        )
    return _Plan(definition, pivot, catalog, quote(definition.dest_index), sync, bounded, lower, window)


def _check_single_values(connection, plans: list[_Plan], upper: datetime | None) -> None:
    """One pass over the events the plans read, for arrays in the fields their transforms read."""
    if not plans or upper is None:
        return
    by_sync: dict[str, list[_Plan]] = {}
    for plan in plans:
        by_sync.setdefault(plan.sync, []).append(plan)
    for sync, group in by_sync.items():
        lowers = [p.lower for p in group]
        bounds = f"{sync} <= {_timestamp(upper)}"
        if all(lowers):
            bounds += f" AND {sync} > {_timestamp(min(lowers))}"
        # Incremental windows skip the checkpoint tail: those events were checked last time.
        queries = " OR ".join(sorted({f"(({p.window or 'TRUE'}) AND ({p.pivot.where_sql}))" for p in group}))
        reject_multi_valued(
            connection,
            ", ".join(p.definition.transform_id for p in group),
            set().union(*(p.catalog.typed_used for p in group)),
            set().union(*(p.catalog.document_used for p in group)),
            f"{bounds} AND ({queries})",
        )


def _execute(store: Store, plan: _Plan, upper: datetime | None) -> BuildResult:
    started = time.perf_counter()
    connection, pivot, table = store.connection, plan.pivot, plan.table
    with store.transaction():
        if plan.window is None:
            connection.execute(
                f"CREATE OR REPLACE TABLE {table} AS {pivot.select_sql(EVENTS, extra_where=plan.bounded)}"
            )
            written = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            mode = "full"
        else:
            written = _incremental(connection, pivot, table, plan.bounded, plan.window)
            mode = "incremental" if written else "unchanged"
        rows = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        tail_key = _tail_key(pivot, upper) if upper else None
        if (
            tail_key
            and not connection.execute(
                "SELECT count(*) FROM feature_checkpoint_tail WHERE tail_key = ?", [tail_key]
            ).fetchone()[0]
        ):
            since = upper - timedelta(milliseconds=pivot.sync_delay_ms)
            connection.execute(
                f"INSERT INTO feature_checkpoint_tail SELECT {sql_string(tail_key)}, _id FROM {EVENTS} "
                f"WHERE {plan.sync} > {_timestamp(since)} AND {plan.bounded}"
            )
        connection.execute(
            "INSERT OR REPLACE INTO feature_checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
            [plan.definition.transform_id, plan.definition.dest_index, plan.definition.sha256, upper, tail_key,
             datetime.now(UTC).replace(tzinfo=None), rows],
        )  # fmt: skip
    seconds = time.perf_counter() - started
    return BuildResult(plan.definition.transform_id, plan.definition.dest_index, mode, written, rows, seconds)


def _incremental(connection, pivot: CompiledPivot, table: str, bounded: str, window: str) -> int:
    """Recompute the buckets the events in ``window`` fall into, over their whole history."""
    keys = [pivot.key_alias(i) for i in range(len(pivot.groups))]
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE __changed_keys AS SELECT DISTINCT {', '.join(keys)} "
        f"FROM ({pivot.source_sql(EVENTS, window)})"
    )
    changed = connection.execute("SELECT count(*) FROM __changed_keys").fetchone()[0]
    if changed:
        match = " AND ".join(f"c.{k} IS NOT DISTINCT FROM __src.{k}" for k in keys)
        region = f"EXISTS (SELECT 1 FROM __changed_keys c WHERE {match})"
        prefilter = " AND ".join([bounded, *_source_prefilters(connection, pivot)])
        sql = pivot.select_sql(EVENTS, extra_where=prefilter, region=region)
        dest_match = " AND ".join(
            f"c.{k} IS NOT DISTINCT FROM {table}.{quote(g.column)}"
            for k, g in zip(keys, pivot.groups, strict=True)
        )
        connection.execute(
            f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM __changed_keys c WHERE {dest_match})"
        )
        connection.execute(f"INSERT INTO {table} {sql}")
    connection.execute("DROP TABLE __changed_keys")
    return changed


def _source_prefilters(connection, pivot: CompiledPivot) -> list[str]:
    """Filters on the raw source columns that hold every event of the changed buckets, so the
    scan skips the rest (whole row groups by their min/max) before keys are computed. Each is a
    superset of the exact region, which the key join still applies."""
    filters = []
    for index, group in enumerate(pivot.groups):
        key = pivot.key_alias(index)
        column = group.field.sql
        if group.kind == "terms" and group.value_type in ("keyword", "ip", "long"):
            values = [
                row[0] for row in connection.execute(f"SELECT DISTINCT {key} FROM __changed_keys").fetchall()
            ]
            present = [v for v in values if v is not None]
            if len(present) > MAX_INLINE_TERMS:
                continue
            literals = ", ".join(sql_string(v) if isinstance(v, str) else str(int(v)) for v in present)
            parts = [f"{column} IN ({literals})"] if present else []
            if len(present) < len(values):
                parts.append(f"{column} IS NULL")
            filters.append("(" + " OR ".join(parts or ["FALSE"]) + ")")
        elif group.kind == "date_histogram":
            low, high, has_null = connection.execute(
                f"SELECT min({key}), max({key}), bool_or({key} IS NULL) FROM __changed_keys"
            ).fetchone()
            if low is None or has_null:
                continue
            end = high + timedelta(milliseconds=group.bucket_ms or 0)
            filters.append(f"{column} >= {_timestamp(low)} AND {column} < {_timestamp(end)}")
    return filters
