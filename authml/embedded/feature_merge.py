"""Incremental runs that merge: the buckets of the new events folded into the stored rows.

A terms-grouped bucket's history is unbounded, so recomputing a touched (user, host) bucket reads
all its events. When every aggregation of the pivot merges exactly (``CompiledPivot.mergeable``,
docs/engine.md "Merging"), an incremental run aggregates the new events only and combines each
touched bucket's stored values with them: counts add, min/max take the lesser/greater, a terms
map adds counts per term (only while the stored map is known to hold every term: fewer than
``size`` entries; other buckets are recomputed), and a cardinality adds the (bucket, value) pairs
not seen before, kept in a state table per cardinality (``feature_state:<transform>:<alias>``).
Full builds of a mergeable pivot (re)create the state tables; other full builds drop them.
"""

from __future__ import annotations

from authml.engine.aggs import Merge
from authml.engine.compile import CompiledPivot
from authml.engine.fields import quote

STATE_PREFIX = "feature_state"


def state_table(transform_id: str, alias: str) -> str:
    return quote(f"{STATE_PREFIX}:{transform_id}:{alias}")


def drop_states(connection, transform_id: str) -> None:
    names = connection.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND starts_with(table_name, ?)",
        [f"{STATE_PREFIX}:{transform_id}:"],
    ).fetchall()
    for (name,) in names:
        connection.execute(f"DROP TABLE {quote(name)}")


def _keys(pivot: CompiledPivot) -> list[str]:
    return [pivot.key_alias(i) for i in range(len(pivot.groups))]


def _distinct(pivot: CompiledPivot) -> list[tuple[str, Merge]]:
    return [(alias, merge) for alias, merge in pivot.merges if merge.kind == "distinct"]


def _pairs_sql(pivot: CompiledPivot, merge: Merge, source: str) -> str:
    """The distinct (bucket keys, value) pairs a cardinality counts, over keyed source rows."""
    condition = f"{merge.value_sql} IS NOT NULL"
    if merge.condition:
        condition = f"({merge.condition}) AND {condition}"
    return (
        f"SELECT DISTINCT {', '.join(_keys(pivot))}, {merge.value_sql} AS __v FROM {source} WHERE {condition}"
    )


def _match(left: str, right: str, keys: list[str]) -> str:
    return " AND ".join(f"{left}.{k} IS NOT DISTINCT FROM {right}.{k}" for k in keys)


def full_build_sql(
    connection, pivot: CompiledPivot, transform_id: str, relation: str, where: str, columns: str = "*"
) -> str:
    """Create the pivot's state tables from every event in ``where`` and return the SELECT of
    its dest rows, whose cardinalities are counted from those tables (the pairs count(DISTINCT)
    would hash anyway, so keeping them costs little more than writing them)."""
    drop_states(connection, transform_id)
    distinct = _distinct(pivot)
    if not distinct:
        return pivot.select_sql(relation, extra_where=where, columns=columns)
    source = f"({pivot.source_sql(relation, where, columns)})"
    for alias, merge in distinct:
        connection.execute(
            f"CREATE TABLE {state_table(transform_id, alias)} AS {_pairs_sql(pivot, merge, source)}"
        )
    return _with_distinct_counts(pivot, transform_id, source, distinct, _keys(pivot))


def _with_distinct_counts(pivot, transform_id, source, distinct, keys) -> str:
    others = [alias for alias, _ in pivot.inner_aggs if alias not in dict(distinct)]
    joins, columns = [], [f"g.{k}" for k in keys]
    columns += [f"g.{alias}" for alias in others]
    for index, (alias, _merge) in enumerate(distinct):
        counted = (
            f"(SELECT {', '.join(keys)}, count(*) AS n FROM {state_table(transform_id, alias)} GROUP BY ALL)"
        )
        joins.append(f"LEFT JOIN {counted} AS d{index} ON {_match('g', f'd{index}', keys)}")
        columns.append(f"coalesce(d{index}.n, 0) AS {alias}")
    grouped = f"({pivot.grouped_sql(source, others)}) AS g {' '.join(joins)}"
    return pivot.output_sql(f"(SELECT {', '.join(columns)} FROM {grouped})")


def _add_pairs(connection, pivot: CompiledPivot, transform_id: str, source: str) -> None:
    """Each cardinality's pairs in ``source`` not yet in its state, as ``__pairs<i>``, added to it."""
    keys = _keys(pivot)
    for index, (alias, merge) in enumerate(_distinct(pivot)):
        state = state_table(transform_id, alias)
        connection.execute(
            f"CREATE OR REPLACE TEMP TABLE __pairs{index} AS SELECT * FROM ({_pairs_sql(pivot, merge, source)}) AS p "
            f"WHERE NOT EXISTS (SELECT 1 FROM {state} AS s WHERE {_match('s', 'p', keys)} AND s.__v = p.__v)"
        )
        connection.execute(f"INSERT INTO {state} SELECT * FROM __pairs{index}")


def merge_window(
    connection,
    pivot: CompiledPivot,
    transform_id: str,
    table: str,
    window_source: str,
    *,
    small: bool = False,
) -> tuple[int, int, int]:
    """Fold the buckets of the keyed rows ``window_source`` (the new events) into ``table``.
    Returns (buckets touched, buckets left in ``__changed_keys`` for a whole-history recompute:
    those whose stored terms map may have dropped terms, the table exists only if there are;
    rows this added to the table).
    ``small``: a window of few events (see CompiledPivot.grouped_sql)."""
    keys = _keys(pivot)
    distinct = _distinct(pivot)
    merges = dict(pivot.merges)
    others = [alias for alias, _ in pivot.inner_aggs if alias not in dict(distinct)]
    source = f"({window_source})"
    # The state keeps every pair, also those of buckets recomputed below.
    _add_pairs(connection, pivot, transform_id, source)
    full_maps = [
        f"cardinality(o.{quote(merge.column)}) >= {merge.size}"
        for merge in merges.values()
        if merge.kind == "terms"
    ]
    recompute = f"o._id IS NOT NULL AND ({' OR '.join(full_maps)})" if full_maps else "FALSE"
    columns = ["x._id", f"({recompute}) AS __recompute"] + [f"x.{k}" for k in keys]
    # The new events' buckets (with their ids) joined to the stored rows, in one statement.
    delta = f"(SELECT {pivot.id_sql()} AS _id, * FROM ({pivot.grouped_sql(source, others, small=small)}))"
    joins = [f"LEFT JOIN {table} AS o ON o._id = x._id"]
    for alias in others:
        columns.append(
            f"{_merged(merges[alias], f'o.{quote(merges[alias].column)}', f'x.{alias}')} AS {alias}"
        )
    for index, (alias, merge) in enumerate(distinct):
        joins.append(
            f"LEFT JOIN (SELECT {', '.join(keys)}, count(*) AS n FROM __pairs{index} GROUP BY ALL) AS p{index} "
            f"ON {_match('x', f'p{index}', keys)}"
        )
        columns.append(f"coalesce(o.{quote(merge.column)}, 0) + coalesce(p{index}.n, 0) AS {alias}")
    merged = f"(SELECT {', '.join(columns)} FROM {delta} AS x {' '.join(joins)})"
    # The touched buckets' dest rows, each flagged where its stored terms map may have dropped terms.
    touched = connection.execute(
        f"CREATE OR REPLACE TEMP TABLE __merged AS {pivot.output_sql(merged, id_column='_id', carry=('__recompute',))}"
    ).fetchone()[0]
    # Every touched row goes; those left to recompute come back from the recompute.
    (deleted,) = connection.execute(f"DELETE FROM {table} WHERE _id IN (SELECT _id FROM __merged)").fetchone()
    (inserted,) = connection.execute(
        f"INSERT INTO {table} SELECT * EXCLUDE (__recompute) FROM __merged WHERE NOT __recompute"
    ).fetchone()
    recomputed = touched - inserted
    if recomputed:
        group_keys = ", ".join(f"{quote(g.column)} AS {k}" for g, k in zip(pivot.groups, keys, strict=True))
        connection.execute(
            f"CREATE OR REPLACE TEMP TABLE __changed_keys AS SELECT {group_keys} FROM __merged WHERE __recompute"
        )
    connection.execute(
        "; ".join(
            f"DROP TABLE {name}" for name in ["__merged"] + [f"__pairs{i}" for i in range(len(distinct))]
        )
    )
    return touched, recomputed, inserted - deleted


def _merged(merge: Merge, stored: str, new: str) -> str:
    """The aggregate of a bucket's old and new events from its stored value and the new one."""
    if merge.kind == "add":
        return f"coalesce({stored}, 0) + coalesce({new}, 0)"
    if merge.kind in ("min", "max"):
        function = "least" if merge.kind == "min" else "greatest"
        return f"{function}({stored}, {new})"  # both skip NULL
    if merge.kind == "terms":
        return _merged_terms(merge, stored, new)
    raise ValueError(f"no merge for [{merge.kind}]")


_STORED_KEY = {
    "keyword": "e.key",
    "long": "CAST(e.key AS HUGEINT)",  # unsigned_long included
    "date": "strptime(e.key, '%Y-%m-%dT%H:%M:%S.%gZ')",
    "boolean": "(e.key = 'true')",
}
_NEW_KEY = {
    "keyword": "e.key",
    "long": "CAST(e.key AS HUGEINT)",
    "date": "e.key",
    "boolean": "e.key",
}


def _merged_terms(merge: Merge, stored: str, new: str) -> str:
    """Per-term counts of the stored map plus the new histogram, as a map the terms leaf's
    expression sorts and truncates as in a full build. Both maps are looked up by key: summing
    over a concatenated list of entries per term cost several times as much. Stored keys are
    text; other key types are first read back into a map with typed keys."""
    if merge.key_type == "keyword":
        old, added = stored, new
    else:
        old, added = (
            f"map_from_entries(list_transform(map_entries({source}), "
            f"lambda e: {{'key': {key[merge.key_type]}, 'value': e.value}}))"
            for source, key in ((stored, _STORED_KEY), (new, _NEW_KEY))
        )
    terms = f"list_distinct(list_concat(map_keys({old}), map_keys({added})))"  # a NULL map adds none
    counts = f"coalesce(CAST({old}[term] AS BIGINT), 0) + coalesce(CAST({added}[term] AS BIGINT), 0)"
    return f"map_from_entries(list_transform({terms}, lambda term: {{'key': term, 'value': {counts}}}))"
