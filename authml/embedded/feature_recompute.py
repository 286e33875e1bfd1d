"""Recomputing feature buckets over their whole history (``authml.embedded.feature_build``).

An incremental run lists the buckets its new events fall into (composite keys) in a temporary
table and gives each the row a full rebuild would: the bucket's events, read from the store, are
aggregated again and replace its row. The scan is first narrowed with filters on the raw columns
(the time range of the changed date buckets, else the changed terms), which lets DuckDB skip
whole row groups; the keys then pick the exact buckets.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from authml.embedded.features import _timestamp
from authml.engine.compile import CompiledPivot
from authml.engine.fields import quote, sql_string

EVENTS = "events"
MAX_INLINE_TERMS = 5000


def recompute_window(
    connection, pivot: CompiledPivot, table: str, bounded: str, window_events: str, columns: str, small: bool
) -> tuple[int, int]:
    """Recompute the buckets the events in ``window_events`` fall into, over their whole history
    up to ``bounded``; returns (buckets recomputed, rows added to ``table``). ``columns``: the
    events' columns the pivot reads; ``small``: a window of few events."""
    keys = [pivot.key_alias(i) for i in range(len(pivot.groups))]
    changed = connection.execute(
        f"CREATE OR REPLACE TEMP TABLE __changed_keys AS SELECT DISTINCT {', '.join(keys)} "
        f"FROM ({pivot.source_sql(window_events)})"
    ).fetchone()[0]
    # A date bucket's history is its interval: few rows when few buckets are touched.
    bounded_history = any(group.kind == "date_histogram" for group in pivot.groups)
    if not changed:
        connection.execute("DROP TABLE __changed_keys")
        return 0, 0
    return changed, recompute(connection, pivot, table, bounded, columns, small=small and bounded_history)


def recompute(
    connection, pivot: CompiledPivot, table: str, bounded: str, columns: str, *, small: bool = False
) -> int:
    """Recompute the buckets listed in the temporary table ``__changed_keys`` (dropped here) over
    their whole history up to ``bounded`` (``small``: few rows, see CompiledPivot.grouped_sql);
    returns the rows this added to ``table`` (buckets that had none before)."""
    keys = [pivot.key_alias(i) for i in range(len(pivot.groups))]
    match = " AND ".join(f"c.{k} IS NOT DISTINCT FROM __src.{k}" for k in keys)
    region = f"EXISTS (SELECT 1 FROM __changed_keys c WHERE {match})"
    ranges = _date_ranges(connection, pivot)
    prefilter = " AND ".join([bounded, *_source_prefilters(connection, pivot, ranges)])
    sql = pivot.select_sql(EVENTS, extra_where=prefilter, region=region, small=small, columns=columns)
    dest_match = " AND ".join(
        f"c.{k} IS NOT DISTINCT FROM {table}.{quote(g.column)}"
        for k, g in zip(keys, pivot.groups, strict=True)
    )
    # The rows' own date ranges let DuckDB skip the table's row groups outside them.
    in_range = [
        f"{table}.{quote(pivot.groups[index].column)} BETWEEN {_timestamp(low)} AND {_timestamp(high)} AND "
        for index, (low, high) in ranges.items()
    ]
    (deleted,) = connection.execute(
        f"DELETE FROM {table} WHERE {''.join(in_range)}"
        f"EXISTS (SELECT 1 FROM __changed_keys c WHERE {dest_match})"
    ).fetchone()
    (inserted,) = connection.execute(f"INSERT INTO {table} {sql}").fetchone()
    added = inserted - deleted
    connection.execute("DROP TABLE __changed_keys")
    return added


def _date_ranges(connection, pivot: CompiledPivot) -> dict[int, tuple[datetime, datetime]]:
    """The lowest and highest bucket of each date_histogram group in ``__changed_keys`` (by
    group index), where none of its keys is NULL."""
    ranges = {}
    for index, group in enumerate(pivot.groups):
        if group.kind != "date_histogram":
            continue
        key = pivot.key_alias(index)
        low, high, has_null = connection.execute(
            f"SELECT min({key}), max({key}), bool_or({key} IS NULL) FROM __changed_keys"
        ).fetchone()
        if low is not None and not has_null:
            ranges[index] = (low, high)
    return ranges


def _source_prefilters(
    connection, pivot: CompiledPivot, ranges: dict[int, tuple[datetime, datetime]]
) -> list[str]:
    """Filters on the raw source columns that hold every event of the changed buckets, so the
    scan skips the rest (whole row groups by their min/max) before keys are computed. Each is a
    superset of the exact region, which the key join still applies."""
    filters = []
    for index, (low, high) in ranges.items():
        group = pivot.groups[index]
        end = high + timedelta(milliseconds=group.bucket_ms or 0)
        filters.append(f"{group.field.sql} >= {_timestamp(low)} AND {group.field.sql} < {_timestamp(end)}")
    if filters:
        # The time range already skips the row groups; a list of terms would only add parsing.
        return filters
    for index, group in enumerate(pivot.groups):
        if group.kind != "terms" or group.value_type not in ("keyword", "ip", "long"):
            continue
        key = pivot.key_alias(index)
        values = [
            row[0] for row in connection.execute(f"SELECT DISTINCT {key} FROM __changed_keys").fetchall()
        ]
        present = [v for v in values if v is not None]
        if len(present) > MAX_INLINE_TERMS:
            continue
        literals = ", ".join(sql_string(v) if isinstance(v, str) else str(int(v)) for v in present)
        parts = [f"{group.field.sql} IN ({literals})"] if present else []
        if len(present) < len(values):
            parts.append(f"{group.field.sql} IS NULL")
        filters.append("(" + " OR ".join(parts or ["FALSE"]) + ")")
    return filters
