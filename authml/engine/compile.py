"""A pivot transform compiled into one DuckDB query over a source relation.

The source relation has one column per source field, named by its ECS dotted path (or whatever
SQL the FieldCatalog gives). The query yields one row per composite bucket: ``_id``, one column
per group key and one per leaf of the aggregation output, each named by its dotted output path.
``authml.engine.output`` turns those rows into the documents Elasticsearch would index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from authml.engine.aggs import AggregationCompiler, Merge, OutputLeaf
from authml.engine.fields import (
    DATE_TYPES,
    FLOAT_TYPES,
    INTEGER_TYPES,
    KEYWORD_LIKE,
    FieldCatalog,
    SourceField,
    UnsupportedConstruct,
    member,
)
from authml.engine.query import QueryCompiler
from authml.engine.timeunits import CALENDAR_UNITS, fixed_interval_ms, offset_ms, time_setting_ms
from authml.engine.validate import validate_transform
from authml.errors import AssetError

# GroupByOptimizer: date_histogram before histogram before terms; an indexed field adds 50.
GROUP_PRIORITY = {"date_histogram": 400, "histogram": 300, "terms": 200}
# The longest a calendar bucket can last (a daylight-saving change adds an hour).
CALENDAR_LONGEST_MS = {
    unit: (days * 86_400_000 if days else 0) + extra
    for unit, days, extra in (
        ("minute", 0, 60_000), ("hour", 0, 3_600_000), ("day", 1, 3_600_000), ("week", 7, 3_600_000),
        ("month", 31, 3_600_000), ("quarter", 92, 3_600_000), ("year", 366, 3_600_000),
    )
}  # fmt: skip
_UTC_NAMES = {"UTC", "Z", "ETC/UTC", "GMT", "ETC/GMT", "+00:00", "-00:00", "UCT"}


@dataclass(frozen=True, slots=True)
class GroupKey:
    name: str  # output name, e.g. "user.name"
    kind: str  # terms | date_histogram | histogram
    field: SourceField
    missing_bucket: bool
    key_sql: str  # the bucket key over the source relation
    value_type: str  # how output renders the key: keyword, ip, long, double, float, date
    mapping_type: str | None  # deduced dest mapping
    bucket_ms: int | None = None  # date buckets: the longest a bucket lasts, for change detection
    json_path: str = ""

    @property
    def column(self) -> str:
        return self.name


@dataclass(frozen=True)
class CompiledPivot:
    transform_id: str
    file: str
    groups: tuple[GroupKey, ...]  # declaration order
    leaves: tuple[OutputLeaf, ...]
    where_sql: str  # source.query
    dates_as_epoch_millis: bool
    sync_field: str | None
    sync_delay_ms: int
    dest_index: str | None
    inner_aggs: tuple[tuple[str, str], ...] = field(default=())  # (alias, aggregate SQL)
    merges: tuple[tuple[str, Merge], ...] = field(default=())  # (alias, how it merges)
    small_inner: tuple[tuple[str, str], ...] = field(default=())  # (alias, the same over a list)

    @property
    def mergeable(self) -> bool:
        """Whether an incremental run can fold new events into stored rows (docs/engine.md,
        "Merging"): every aggregate merges exactly, and no group is a date_histogram (a date
        bucket's history is its own interval, which a recompute reads cheaply)."""
        merged = {alias for alias, _ in self.merges}
        return all(g.kind != "date_histogram" for g in self.groups) and all(
            alias in merged for alias, _ in self.inner_aggs
        )

    @property
    def sorted_groups(self) -> tuple[GroupKey, ...]:
        """The composite sources in the order Elasticsearch sorts rows (GroupByOptimizer)."""
        return tuple(sorted(self.groups, key=lambda g: -GROUP_PRIORITY[g.kind]))

    def key_alias(self, index: int) -> str:
        return f"__k{index}"

    def source_sql(self, relation: str, extra_where: str | None = None, columns: str = "*") -> str:
        """The filtered source rows with their bucket keys (documents without a key dropped
        unless missing_bucket); ``columns``: those of ``relation`` the pivot reads, where naming
        them spares planning a wide relation's every column."""
        keys = ", ".join(f"{g.key_sql} AS {self.key_alias(i)}" for i, g in enumerate(self.groups))
        conditions = [f"({self.where_sql})"]
        if extra_where:
            conditions.append(f"({extra_where})")
        condition = " AND ".join(conditions)
        present = " AND ".join(
            f"{self.key_alias(i)} IS NOT NULL" for i, g in enumerate(self.groups) if not g.missing_bucket
        )
        inner = f"SELECT {columns}, {keys} FROM {relation} WHERE {condition}"
        return f"SELECT * FROM ({inner}) WHERE {present}" if present else inner

    def select_sql(
        self,
        relation: str,
        *,
        extra_where: str | None = None,
        region: str | None = None,
        small: bool = False,
        columns: str = "*",
    ) -> str:
        """The bucket rows. ``extra_where`` filters source rows; ``region`` filters on bucket keys
        (the ``__k<i>`` columns), which is how incremental runs pick the buckets to recompute.
        ``small``: see grouped_sql; ``columns``: see source_sql."""
        region_sql = f" WHERE {region}" if region else ""
        grouped = self.grouped_sql("__src" + region_sql, small=small)
        return (
            f"WITH __src AS ({self.source_sql(relation, extra_where, columns)}), "
            f"__grouped AS ({grouped}) {self.output_sql('__grouped')}"
        )

    def grouped_sql(self, source: str, aliases: list[str] | None = None, *, small: bool = False) -> str:
        """One row per bucket of ``source`` (rows with the key columns): the keys and the
        aggregates (those named in ``aliases``, default all). ``small``: for a source of a few
        thousand rows, distinct counts and terms maps computed from a list of each bucket's
        values in the same pass (the same results; each bucket's values are held in memory)."""
        forms = dict(self.small_inner) if small else {}
        columns = [self.key_alias(i) for i in range(len(self.groups))]
        columns += [
            f"{forms.get(alias, sql)} AS {alias}"
            for alias, sql in self.inner_aggs
            if aliases is None or alias in aliases
        ]
        return f"SELECT {', '.join(columns)} FROM {source} GROUP BY ALL"

    def output_sql(self, grouped: str, *, id_column: str | None = None, carry: tuple[str, ...] = ()) -> str:
        """The dest rows (``_id``, group columns, leaves) from a relation of bucket keys and
        aggregates (``__k<i>``, ``__a<j>``); ``id_column``: a column of ``grouped`` that holds the
        id already; ``carry``: columns of ``grouped`` kept after the dest columns."""
        outputs = [f'{id_column or self.id_sql()} AS "_id"']
        outputs += [f"{self.key_alias(i)} AS {_quote(g.column)}" for i, g in enumerate(self.groups)]
        outputs += [f"{leaf.final_sql} AS {_quote(leaf.column)}" for leaf in self.leaves]
        outputs += list(carry)
        return f"SELECT {', '.join(outputs)} FROM {grouped}"

    def id_sql(self) -> str:
        """A deterministic document id from the group keys, sorted by group name as ES does.
        (Our own hash, not ES's MurmurHash3 id: the value is stable, not byte-identical.)"""
        parts = []
        for index, group in sorted(enumerate(self.groups), key=lambda pair: pair[1].name):
            key = self.key_alias(index)
            text = (
                f"CAST(epoch_ms({key}) AS VARCHAR)"
                if group.value_type == "date"
                else f"CAST({key} AS VARCHAR)"
            )
            parts.append(f"CASE WHEN {key} IS NULL THEN 'N' ELSE 'V' || length({text}) || ':' || {text} END")
        return f"md5({' || '.join(parts)})"

    def dest_mappings(self) -> dict[str, dict[str, str]]:
        """``generated_dest_index.mappings.properties`` as ES deduces it: flat dotted names."""
        properties: dict[str, dict[str, str]] = {}
        for group in self.groups:
            if group.mapping_type:
                properties[group.name] = {"type": group.mapping_type}
        for leaf in self.leaves:
            if leaf.mapping_type:
                properties[leaf.column] = {"type": leaf.mapping_type}
        return properties


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def compile_pivot(
    body: dict[str, Any],
    file: str,
    catalog: FieldCatalog,
    *,
    now: datetime,
    transform_id: str | None = None,
    for_preview: bool = False,
) -> CompiledPivot:
    """Validate ``body`` as ES would, then compile it; any construct outside the engine's subset
    raises UnsupportedConstruct naming the file and JSON path."""
    findings = validate_transform(body, file, transform_id=transform_id, for_preview=for_preview)
    if findings:
        raise AssetError("; ".join(str(f) for f in findings))
    if "latest" in body:
        raise UnsupportedConstruct(
            file, "$.latest", "latest transforms are not evaluated by the embedded engine"
        )
    pivot = body["pivot"]
    settings = body.get("settings", {})
    if settings.get("deduce_mappings") is False:
        raise UnsupportedConstruct(
            file, "$.settings.deduce_mappings", "deduce_mappings: false is not supported"
        )
    dates_as_epoch = bool(settings.get("dates_as_epoch_millis", False))
    source = body["source"]
    where_sql = QueryCompiler(catalog, file, now).compile(source.get("query"), "$.source.query")
    groups = tuple(
        _compile_group(name, spec, member("$.pivot.group_by", name), catalog, file)
        for name, spec in pivot["group_by"].items()
    )
    agg_key = "aggregations" if "aggregations" in pivot else "aggs"
    compiler = AggregationCompiler(catalog, file, now, dates_as_epoch)
    for name, spec in pivot.get(agg_key, {}).items():
        compiler.compile(
            name, spec, member(f"$.pivot.{agg_key}", name), condition=None, prefix=tuple(name.split("."))
        )
    columns = [g.column for g in groups] + [leaf.column for leaf in compiler.leaves]
    duplicates = {c for c in columns if columns.count(c) > 1}
    if duplicates:
        raise UnsupportedConstruct(file, f"$.pivot.{agg_key}", f"output names collide: {sorted(duplicates)}")
    sync = body.get("sync", {}).get("time", {})
    return CompiledPivot(
        transform_id=transform_id or "preview",
        file=file,
        groups=groups,
        leaves=tuple(compiler.leaves),
        where_sql=where_sql,
        dates_as_epoch_millis=dates_as_epoch,
        sync_field=sync.get("field"),
        sync_delay_ms=time_setting_ms(sync.get("delay", "60s")) if sync else 0,
        dest_index=body.get("dest", {}).get("index"),
        inner_aggs=tuple(compiler.inner),
        merges=tuple(compiler.merges.items()),
        small_inner=tuple(compiler.small.items()),
    )


def _compile_group(name: str, spec: dict, path: str, catalog: FieldCatalog, file: str) -> GroupKey:
    ((kind, params),) = spec.items()
    path = f"{path}.{kind}"
    if kind not in GROUP_PRIORITY:
        raise UnsupportedConstruct(file, path, f"group_by [{kind}] is not supported by the embedded engine")
    if "script" in params:
        raise UnsupportedConstruct(file, f"{path}.script", "scripted group_by sources are not supported")
    source = catalog.resolve(params["field"])
    missing_bucket = bool(params.get("missing_bucket", False))
    es_type = source.es_type
    if es_type == "text":
        raise UnsupportedConstruct(
            file, f"{path}.field", f"[{source.name}] is a text field; group on [{source.name}.keyword]"
        )
    if kind == "terms":
        if es_type is None:
            value_type, mapping = "keyword", None
        elif es_type in KEYWORD_LIKE or es_type == "ip":
            value_type, mapping = ("ip" if es_type == "ip" else "keyword"), es_type
        elif es_type in INTEGER_TYPES:
            value_type, mapping = "long", es_type
        elif es_type in FLOAT_TYPES:
            value_type, mapping = ("double" if es_type == "double" else "float"), es_type
        elif es_type in DATE_TYPES:
            value_type, mapping = "date", es_type
        else:
            raise UnsupportedConstruct(
                file, f"{path}.field", f"terms groups on [{es_type}] fields are not supported"
            )
        key_sql = f"date_trunc('millisecond', {source.sql})" if value_type == "date" else source.sql
        return GroupKey(name, kind, source, missing_bucket, key_sql, value_type, mapping, json_path=path)
    if kind == "histogram":
        if es_type is not None and es_type not in INTEGER_TYPES | FLOAT_TYPES:
            raise UnsupportedConstruct(
                file, f"{path}.field", f"histogram needs a numeric field, [{source.name}] is [{es_type}]"
            )
        interval = float(params["interval"])
        key_sql = f"(floor(CAST({source.sql} AS DOUBLE) / {interval!r}) * {interval!r})"
        return GroupKey(name, kind, source, missing_bucket, key_sql, "double", "double", json_path=path)
    if es_type is not None and es_type not in DATE_TYPES:
        raise UnsupportedConstruct(
            file, f"{path}.field", f"date_histogram needs a date field, [{source.name}] is [{es_type}]"
        )
    key_sql, bucket_ms = _date_bucket_sql(source.sql, params, path, file)
    return GroupKey(name, kind, source, missing_bucket, key_sql, "date", "date", bucket_ms, json_path=path)


def _date_bucket_sql(column: str, params: dict, path: str, file: str) -> tuple[str, int | None]:
    offset = offset_ms(params["offset"]) if "offset" in params else 0
    zone = str(params.get("time_zone", "UTC"))
    zone_offset = _fixed_zone_offset_ms(zone)
    shifted = f"(epoch_ms({column}) - {offset})"
    if "fixed_interval" in params:
        interval = fixed_interval_ms(params["fixed_interval"])
        if zone_offset is None:
            raise UnsupportedConstruct(
                file,
                f"{path}.time_zone",
                f"fixed_interval with the daylight-saving time zone [{zone}] is not supported; use a fixed offset such as +01:00 or UTC",
            )
        local = f"({shifted} + {zone_offset})"
        floored = f"({local} - ((({local} % {interval}) + {interval}) % {interval}))"
        return f"epoch_ms({floored} - {zone_offset} + {offset})", interval
    unit = CALENDAR_UNITS[str(params["calendar_interval"])]
    longest = CALENDAR_LONGEST_MS[unit]
    shifted_ts = f"epoch_ms({shifted})"
    if zone_offset is not None:
        local = f"({shifted_ts} + INTERVAL ({zone_offset}) MILLISECOND)"
        truncated = f"date_trunc('{unit}', {local})"
        return f"epoch_ms(epoch_ms({truncated}) - {zone_offset} + {offset})", longest
    # A named zone: truncate in local time, then back to UTC (ICU).
    local = f"timezone('{zone}', CAST({shifted_ts} AS TIMESTAMPTZ))"
    back = f"CAST(timezone('{zone}', date_trunc('{unit}', {local})) AS TIMESTAMP)"
    return f"epoch_ms(epoch_ms({back}) + {offset})", longest


def _fixed_zone_offset_ms(zone: str) -> int | None:
    """Milliseconds east of UTC for UTC or a fixed offset (``+05:30``); None for a named zone."""
    if zone.upper() in _UTC_NAMES:
        return 0
    text = zone.upper().removeprefix("UTC").removeprefix("GMT")
    if len(text) in (3, 6) and text[0] in "+-" and text[1:3].isdigit() and (len(text) == 3 or text[3] == ":"):
        minutes = int(text[1:3]) * 60 + (int(text[4:6]) if len(text) == 6 else 0)
        return (1 if text[0] == "+" else -1) * minutes * 60_000
    return None
