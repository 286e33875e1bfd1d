"""Pivot aggregations compiled into DuckDB aggregates, one output leaf per value ES writes.

Each aggregation becomes one or more aggregate expressions (evaluated per bucket, with the
conditions of enclosing ``filter`` aggregations as FILTER clauses) and output leaves that say
where the value goes in the document and how Elasticsearch renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authml.engine.fields import (
    DATE_TYPES,
    FLOAT_TYPES,
    INTEGER_TYPES,
    KEYWORD_LIKE,
    NUMERIC_TYPES,
    FieldCatalog,
    SourceField,
    UnsupportedConstruct,
    member,
)
from authml.engine.query import QueryCompiler

DEFAULT_PERCENTS = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)
COMMON_PARAMS = {"field"}


@dataclass(frozen=True, slots=True)
class OutputLeaf:
    column: str  # dotted output name, also the table column
    path: tuple[str, ...]  # where the value sits in the document
    value_type: str  # long | double | float | date | keyword | terms
    mapping_type: str | None  # deduced dest mapping type, None when ES deduces none
    final_sql: str  # over the __grouped aggregates
    omit_if_null: bool = False  # stats members ES leaves out when there are no values


@dataclass(frozen=True, slots=True)
class Merge:
    """How an incremental run folds an aggregate over new events into the value a bucket already
    holds, exactly (docs/engine.md, "Merging"). The held value is read back from the dest
    ``column``; an aggregate without a Merge makes its transform recompute touched buckets."""

    kind: str  # add | min | max | distinct | terms
    column: str  # the dest column the aggregate's leaf is written to
    value_sql: str = ""  # distinct: the value whose distinct (bucket, value) pairs are kept
    condition: str | None = None  # distinct: the enclosing filter aggregations
    size: int = 0  # terms: how many terms the column keeps
    key_type: str = ""  # terms: how a stored key reads back (keyword | long | date | boolean)


def percent_key(percent: float) -> str:
    """ES's output key for a percentile: ``50`` for whole numbers, ``99_9`` otherwise."""
    return str(int(percent)) if float(percent).is_integer() else repr(float(percent)).replace(".", "_")


class AggregationCompiler:
    def __init__(self, catalog: FieldCatalog, file: str, now: datetime, dates_as_epoch: bool):
        self.catalog, self.file, self.dates_as_epoch = catalog, file, dates_as_epoch
        self.queries = QueryCompiler(catalog, file, now)
        self.inner: list[tuple[str, str]] = []
        self.leaves: list[OutputLeaf] = []
        self.merges: dict[str, Merge] = {}
        # Alias -> the same aggregate as one plain pass over a list of the values, for small inputs:
        # DuckDB plans each count(DISTINCT) and histogram as its own group-by joined back, which
        # for a few thousand rows costs more than collecting the values (see small_inner).
        self.small: dict[str, str] = {}

    def fail(self, path: str, message: str) -> UnsupportedConstruct:
        return UnsupportedConstruct(self.file, path, message)

    def _aggregate(
        self,
        sql: str,
        condition: str | None,
        merge: Merge | None = None,
        *,
        over_list: tuple[str, str] | None = None,
    ) -> str:
        """``over_list``: (value, template) where ``template.format(values=...)`` computes the
        aggregate from ``list(value)`` under the same condition (NULLs in the list are ignored)."""
        alias = f"__a{len(self.inner)}"
        self.inner.append((alias, f"{sql} FILTER (WHERE {condition})" if condition else sql))
        if over_list is not None:
            value, template = over_list
            values = f"list({value}) FILTER (WHERE {condition})" if condition else f"list({value})"
            self.small[alias] = template.format(values=values)
        if merge is not None:
            self.merges[alias] = merge
        return alias

    def _leaf(
        self,
        prefix: tuple[str, ...],
        value_type: str,
        mapping: str | None,
        final_sql: str,
        omit: bool = False,
    ) -> None:
        self.leaves.append(OutputLeaf(".".join(prefix), prefix, value_type, mapping, final_sql, omit))

    def compile(
        self, name: str, spec: dict[str, Any], path: str, *, condition: str | None, prefix: tuple[str, ...]
    ) -> None:
        kind = next(key for key in spec if key not in ("aggs", "aggregations", "meta"))
        params = spec[kind]
        subs = spec.get("aggregations", spec.get("aggs", {}))
        sub_key = "aggregations" if "aggregations" in spec else "aggs"
        kind_path = f"{path}.{kind}"
        if subs and kind != "filter":
            raise self.fail(
                f"{path}.{sub_key}",
                f"sub-aggregations under [{kind}] are not supported by the embedded engine",
            )
        handler = getattr(self, f"_{kind}", None)
        if handler is None:
            raise self.fail(
                kind_path,
                f"aggregation [{kind}] is valid in Elasticsearch but not evaluated by the embedded engine",
            )
        if not isinstance(params, dict):
            raise self.fail(kind_path, f"[{kind}] needs an object")
        if kind == "filter":
            self._filter(params, kind_path, condition, prefix, subs, f"{path}.{sub_key}")
        else:
            handler(params, kind_path, condition, prefix)

    # Field helpers ----------------------------------------------------------------------

    def _field(
        self, params: dict, path: str, allowed: set[str], *, types: set[str] | None = None
    ) -> SourceField:
        for key in params:
            if key not in allowed:
                raise self.fail(f"{path}.{key}", f"parameter [{key}] is not supported by the embedded engine")
        if "field" not in params:
            raise self.fail(path, "only aggregations on a [field] are supported (no scripts)")
        field = self.catalog.resolve(params["field"])
        if field.es_type == "text":
            raise self.fail(
                f"{path}.field",
                f"[{field.name}] is a text field without doc values; use [{field.name}.keyword]",
            )
        if types is not None and field.es_type is not None and field.es_type not in types:
            raise self.fail(
                f"{path}.field", f"[{field.name}] of type [{field.es_type}] is not supported here"
            )
        return field

    @staticmethod
    def _and(condition: str | None, extra: str) -> str:
        return f"({condition}) AND ({extra})" if condition else extra

    # Aggregations -----------------------------------------------------------------------

    def _value_count(self, params, path, condition, prefix) -> None:
        field = self._field(params, path, COMMON_PARAMS)
        alias = self._aggregate(f"count({field.sql})", condition, Merge("add", ".".join(prefix)))
        self._leaf(prefix, "long", "long", alias)

    def _cardinality(self, params, path, condition, prefix) -> None:
        # Exact distinct count. ES's HyperLogLog++ is exact below precision_threshold (3000 by
        # default), so the two agree there; above it ES estimates and the engine stays exact.
        field = self._field(params, path, COMMON_PARAMS | {"precision_threshold"})
        merge = Merge("distinct", ".".join(prefix), value_sql=field.sql, condition=condition)
        # Not for floating-point fields, whose equality (-0.0, NaN) the two forms may treat apart.
        over_list = None
        if field.es_type not in FLOAT_TYPES:
            over_list = (field.sql, "CAST(coalesce(list_unique({values}), 0) AS BIGINT)")
        alias = self._aggregate(f"count(DISTINCT {field.sql})", condition, merge, over_list=over_list)
        self._leaf(prefix, "long", "long", alias)

    def _missing(self, params, path, condition, prefix) -> None:
        field = self._field(params, path, COMMON_PARAMS)
        alias = self._aggregate(
            "count(*)", self._and(condition, f"{field.sql} IS NULL"), Merge("add", ".".join(prefix))
        )
        self._leaf(prefix, "long", "long", alias)

    def _min(self, params, path, condition, prefix) -> None:
        self._min_max("min", params, path, condition, prefix)

    def _max(self, params, path, condition, prefix) -> None:
        self._min_max("max", params, path, condition, prefix)

    def _min_max(self, function, params, path, condition, prefix) -> None:
        field = self._field(params, path, COMMON_PARAMS, types=NUMERIC_TYPES | DATE_TYPES)
        value_type, mapping = _value_type(field), _source_mapping(field)
        if value_type == "date" and self.dates_as_epoch:
            raise self.fail(path, "min/max of a date field with dates_as_epoch_millis is not supported")
        column = f"date_trunc('millisecond', {field.sql})" if value_type == "date" else field.sql
        merge = Merge(function, ".".join(prefix))
        self._leaf(prefix, value_type, mapping, self._aggregate(f"{function}({column})", condition, merge))

    def _sum(self, params, path, condition, prefix) -> None:
        field = self._field(params, path, COMMON_PARAMS, types=NUMERIC_TYPES)
        # ES sums in double and reports 0.0 for a bucket without values. Sums of whole numbers
        # merge exactly (while below 2**53); adding floats in another order can change the last bit.
        merge = Merge("add", ".".join(prefix)) if field.es_type in INTEGER_TYPES else None
        alias = self._aggregate(f"sum(CAST({field.sql} AS DOUBLE))", condition, merge)
        self._leaf(prefix, "double", "double", f"coalesce({alias}, 0.0)")

    def _avg(self, params, path, condition, prefix) -> None:
        field = self._field(params, path, COMMON_PARAMS, types=NUMERIC_TYPES)
        self._leaf(
            prefix, "double", "double", self._aggregate(f"avg(CAST({field.sql} AS DOUBLE))", condition)
        )

    def _stats(self, params, path, condition, prefix) -> None:
        field = self._field(params, path, COMMON_PARAMS, types=NUMERIC_TYPES)
        value = f"CAST({field.sql} AS DOUBLE)"
        count = self._aggregate(f"count({value})", condition)
        self._leaf((*prefix, "count"), "double", "double", f"CAST({count} AS DOUBLE)")
        for statistic in ("min", "max", "avg"):
            self._leaf(
                (*prefix, statistic),
                "double",
                "double",
                self._aggregate(f"{statistic}({value})", condition),
                omit=True,
            )
        total = self._aggregate(f"sum({value})", condition)
        self._leaf((*prefix, "sum"), "double", "double", f"coalesce({total}, 0.0)")

    def _percentiles(self, params, path, condition, prefix) -> None:
        field = self._field(
            params, path, COMMON_PARAMS | {"percents", "keyed", "tdigest"}, types=NUMERIC_TYPES
        )
        percents = params.get("percents", DEFAULT_PERCENTS)
        if not isinstance(percents, list | tuple) or not percents:
            raise self.fail(f"{path}.percents", "[percents] must be a non-empty list")
        if any(not isinstance(p, int | float) or not 0 <= p <= 100 for p in percents):
            raise self.fail(f"{path}.percents", "percents must be numbers between 0 and 100")
        # Linear interpolation between the sorted values, computed as ES's Dist.quantile does
        # (low + weight * (high - low)): what ES's t-digest reports while a bucket is small
        # enough to be kept sorted; see docs/engine.md.
        values = self._aggregate(
            f"list(CAST({field.sql} AS DOUBLE) ORDER BY CAST({field.sql} AS DOUBLE))",
            self._and(condition, f"{field.sql} IS NOT NULL"),
        )
        seen: set[str] = set()
        for percent in percents:
            key = percent_key(percent)
            if key not in seen:
                seen.add(key)
                self._leaf((*prefix, key), "double", "double", _quantile_sql(values, float(percent) / 100))

    def _filter(self, query, path, condition, prefix, subs, subs_path) -> None:
        own = self.queries.compile(query, path)
        combined = self._and(condition, own)
        if not subs:
            alias = self._aggregate("count(*)", combined, Merge("add", ".".join(prefix)))
            self._leaf(prefix, "long", "long", alias)
            return
        for sub_name, sub in subs.items():
            # Sub-aggregation names are not split on dots (AggregationResultUtils).
            self.compile(
                sub_name, sub, member(subs_path, sub_name), condition=combined, prefix=(*prefix, sub_name)
            )

    def _terms(self, params, path, condition, prefix) -> None:
        allowed = COMMON_PARAMS | {
            "size",
            "min_doc_count",
            "order",
            "shard_size",
            "show_term_doc_count_error",
            "execution_hint",
            "collect_mode",
        }
        field = self._field(
            params, path, allowed, types=KEYWORD_LIKE | INTEGER_TYPES | DATE_TYPES | {"boolean"}
        )
        size = params.get("size", 10)
        min_doc_count = params.get("min_doc_count", 1)
        if not isinstance(size, int) or size < 1:
            raise self.fail(f"{path}.size", "[size] must be a positive whole number")
        if not isinstance(min_doc_count, int) or min_doc_count < 1:
            raise self.fail(f"{path}.min_doc_count", "only min_doc_count >= 1 is supported")
        order = params.get("order", {"_count": "desc"})
        if isinstance(order, list) and len(order) == 1:
            order = order[0]
        by_key = order in ({"_key": "asc"}, {"_key": "desc"})
        if not by_key and order != {"_count": "desc"}:
            raise self.fail(
                f"{path}.order", "only the default order (_count desc) or _key asc/desc are supported"
            )
        column = f"date_trunc('millisecond', {field.sql})" if field.es_type in DATE_TYPES else field.sql
        # A stored map holds every term of its bucket while it has fewer than `size` entries and
        # min_doc_count is 1; only then can new counts be added to it.
        merge = None
        if min_doc_count == 1:
            merge = Merge("terms", ".".join(prefix), size=size, key_type=_terms_key_type(field))
        alias = self._aggregate(
            f"histogram({column})",
            self._and(condition, f"{field.sql} IS NOT NULL"),
            merge,
            over_list=(column, "list_histogram({values})"),
        )
        key_text = _key_as_string("e.k", field)
        if by_key:
            direction = "DESC" if order["_key"] == "desc" else "ASC"
            entries = f"list_sort(list_transform(map_entries({alias}), lambda e: {{'k': e.key, 'n': CAST(e.value AS BIGINT)}}), '{direction}')"
            count = "e.n"
        else:
            # _count desc, ties by key ascending: sort (-count, key).
            entries = f"list_sort(list_transform(map_entries({alias}), lambda e: {{'m': -CAST(e.value AS BIGINT), 'k': e.key}}))"
            count = "(-e.m)"
        if min_doc_count > 1:  # histogram counts are at least 1
            entries = f"list_filter({entries}, lambda e: {count} >= {min_doc_count})"
        kept = f"list_slice({entries}, 1, {size})"
        final = f"map_from_entries(list_transform(coalesce({kept}, []), lambda e: {{'key': {key_text}, 'value': {count}}}))"
        self._leaf(prefix, "terms", "flattened", final)

    def _top_metrics(self, params, path, condition, prefix) -> None:
        for key in params:
            if key not in ("metrics", "sort", "size"):
                raise self.fail(f"{path}.{key}", f"parameter [{key}] is not supported by the embedded engine")
        if params.get("size", 1) != 1:
            raise self.fail(f"{path}.size", "only size 1 is supported")
        sort_name, direction = _top_metrics_sort(params.get("sort"), path, self)
        sort_field = self.catalog.resolve(sort_name)
        if sort_field.es_type is not None and sort_field.es_type not in NUMERIC_TYPES | DATE_TYPES:
            raise self.fail(f"{path}.sort", "top_metrics sorts on numeric or date fields only")
        metrics = params.get("metrics")
        metrics = metrics if isinstance(metrics, list) else [metrics]
        function = "arg_max_null" if direction == "desc" else "arg_min_null"
        for index, metric in enumerate(metrics):
            if not isinstance(metric, dict) or set(metric) != {"field"}:
                raise self.fail(f"{path}.metrics[{index}]", "each metric must be {field: NAME}")
            field = self.catalog.resolve(metric["field"])
            if field.es_type is not None and field.es_type not in NUMERIC_TYPES:
                raise self.fail(
                    f"{path}.metrics[{index}].field", "top_metrics of non-numeric fields is not supported"
                )
            alias = self._aggregate(
                f"{function}({field.sql}, {sort_field.sql})",
                self._and(condition, f"{sort_field.sql} IS NOT NULL"),
            )
            # The metric's field name is a key inside the agg's object, not split on dots.
            self._leaf(
                (*prefix, metric["field"]), _value_type(field), _source_mapping(field), alias, omit=True
            )


def _quantile_sql(values: str, fraction: float) -> str:
    n = f"len({values})"
    index = f"(CAST({fraction!r} AS DOUBLE) * ({n} - 1))"
    low = f"CAST(floor({index}) AS BIGINT)"
    interpolated = f"({values}[{low} + 1] + ({index} - {low}) * ({values}[{low} + 2] - {values}[{low} + 1]))"
    return (
        f"CASE WHEN {values} IS NULL OR {n} = 0 THEN NULL WHEN {index} <= 0 THEN {values}[1] "
        f"WHEN {index} >= {n} - 1 THEN {values}[{n}] ELSE {interpolated} END"
    )


def _top_metrics_sort(sort: Any, path: str, compiler: AggregationCompiler) -> tuple[str, str]:
    if isinstance(sort, list) and len(sort) == 1:
        sort = sort[0]
    if isinstance(sort, str):
        return sort, "asc"
    if isinstance(sort, dict) and len(sort) == 1:
        ((name, order),) = sort.items()
        if isinstance(order, dict):
            order = order.get("order", "asc")
        if order in ("asc", "desc"):
            return name, order
    raise compiler.fail(f"{path}.sort", 'top_metrics needs one sort field, e.g. {"@timestamp": "desc"}')


def _value_type(field: SourceField) -> str:
    es_type = field.es_type
    if es_type in DATE_TYPES:
        return "date"
    if es_type in INTEGER_TYPES:
        return "long"
    if es_type in FLOAT_TYPES and es_type != "double":
        return "float"
    return "double"


def _source_mapping(field: SourceField) -> str | None:
    if field.es_type is None:
        return None
    return "float" if field.es_type == "scaled_float" else field.es_type


def _terms_key_type(field: SourceField) -> str:
    if field.es_type in DATE_TYPES:
        return "date"
    if field.es_type == "boolean":
        return "boolean"
    if field.es_type in INTEGER_TYPES:
        return "long"
    return "keyword"


def _key_as_string(expression: str, field: SourceField) -> str:
    if field.es_type in KEYWORD_LIKE or field.es_type == "ip":
        return expression
    if field.es_type in DATE_TYPES:
        return f"strftime({expression}, '%Y-%m-%dT%H:%M:%S.%gZ')"
    if field.es_type == "boolean":
        return f"CASE WHEN {expression} THEN 'true' ELSE 'false' END"
    return f"CAST({expression} AS VARCHAR)"
