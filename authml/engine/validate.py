"""The checks Elasticsearch makes when a transform is PUT or previewed, made without a cluster.

``validate_transform`` returns every problem as a Finding (file + JSON path), so ``authml assets
lint`` can report them all at once and the engine can refuse a body that a cluster would refuse.
It also flags source queries outside the subset the embedded engine evaluates.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from authml.assets.findings import Finding
from authml.engine.fields import member
from authml.engine.timeunits import (
    CALENDAR_UNITS,
    TimeValueError,
    fixed_interval_ms,
    offset_ms,
    time_setting_ms,
)

TOP_LEVEL_KEYS = {
    "source", "dest", "pivot", "latest", "description", "frequency", "sync", "retention_policy",
    "settings", "_meta", "id", "version", "create_time", "authorization",
}  # fmt: skip
SETTINGS_KEYS = {
    "max_page_search_size", "docs_per_second", "dates_as_epoch_millis", "align_checkpoints",
    "use_point_in_time", "deduce_mappings", "num_failure_retries", "unattended",
}  # fmt: skip
# Parameters each group_by source accepts (ES: SingleGroupSource and its subclasses).
GROUP_PARAMETERS = {
    "terms": {"field", "script", "missing_bucket"},
    "histogram": {"field", "script", "missing_bucket", "interval"},
    "date_histogram": {
        "field",
        "script",
        "missing_bucket",
        "fixed_interval",
        "calendar_interval",
        "time_zone",
        "offset",
    },
    "geotile_grid": {"field", "missing_bucket", "precision", "bounds"},
}
GROUP_TYPE_NAMES = {
    "terms": "data_frame_terms_group",
    "histogram": "data_frame_histogram_group",
    "date_histogram": "data_frame_date_histogram_group",
    "geotile_grid": "data_frame_geotile_group",
}
# Aggregations a pivot accepts (ES: TransformAggregations.AggregationType).
SUPPORTED_AGGREGATIONS = {
    "avg", "median_absolute_deviation", "cardinality", "value_count", "max", "min", "sum", "geo_bounds",
    "geo_centroid", "geo_line", "scripted_metric", "weighted_avg", "bucket_selector", "bucket_script",
    "percentiles", "filter", "terms", "rare_terms", "missing", "top_metrics", "stats",
}  # fmt: skip
AGG_META_KEYS = {"aggs", "aggregations", "meta"}
# The source.query subset the embedded engine evaluates (authml/engine/query.py).
SUPPORTED_QUERIES = {"match_all", "match_none", "term", "terms", "range", "exists", "bool"}
_TRANSFORM_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_\-]{0,62}[a-z0-9])?$")
_BAD_AGG_NAME = re.compile(r"[\[\]>]")


def validate_transform(
    body: Any, file: str, *, transform_id: str | None = None, for_preview: bool = False
) -> list[Finding]:
    """Every reason Elasticsearch (or the embedded engine's query subset) would refuse ``body``."""
    findings: list[Finding] = []

    def add(path: str, rule: str, message: str) -> None:
        findings.append(Finding(file, path, rule, message))

    if not isinstance(body, dict):
        add("$", "transform.shape", "a transform body must be an object")
        return findings
    for key in body:
        if key not in TOP_LEVEL_KEYS:
            add(f"$.{key}", "transform.unknown_field", f"[data_frame_transform_config] unknown field [{key}]")
    if transform_id is not None and not _TRANSFORM_ID.match(transform_id):
        add(
            "$",
            "transform.id",
            f"transform id [{transform_id}] must be 1-64 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit",
        )
    _check_source(body.get("source"), add)
    _check_dest(body, add, for_preview)
    has_pivot, has_latest = "pivot" in body, "latest" in body
    if has_pivot == has_latest:
        add("$", "transform.function", "a transform needs exactly one of [pivot] and [latest]")
    if has_pivot:
        _check_pivot(body["pivot"], add)
    _check_sync_and_settings(body, add)
    return findings


def _check_source(source: Any, add) -> None:
    if not isinstance(source, dict) or not source.get("index"):
        add("$.source", "transform.source", "[source.index] is required")
        return
    if "query" in source:
        _check_query(source["query"], "$.source.query", add)
    if source.get("runtime_mappings"):
        add(
            "$.source.runtime_mappings",
            "transform.engine.runtime_mappings",
            "runtime_mappings are not evaluated by the embedded engine",
        )


def _check_dest(body: dict, add, for_preview: bool) -> None:
    dest = body.get("dest")
    if dest is None:
        if not for_preview:
            add("$.dest", "transform.dest", "[dest.index] is required")
        return
    if not isinstance(dest, dict) or (not for_preview and not dest.get("index")):
        add("$.dest", "transform.dest", "[dest.index] is required")
        return
    index = dest.get("index")
    sources = body.get("source", {}).get("index", []) if isinstance(body.get("source"), dict) else []
    for pattern in [sources] if isinstance(sources, str) else sources:
        if index and fnmatch.fnmatchcase(index, str(pattern)):
            add(
                "$.dest.index",
                "transform.dest.in_source",
                f"Destination index [{index}] is included in source expression [{pattern}]",
            )


def _check_pivot(pivot: Any, add) -> None:
    if not isinstance(pivot, dict):
        add("$.pivot", "transform.pivot", "[pivot] must be an object")
        return
    for key in pivot:
        if key not in {"group_by", "aggregations", "aggs", "max_page_search_size"}:
            add(
                f"$.pivot.{key}",
                "transform.unknown_field",
                f"[data_frame_transform_pivot] unknown field [{key}]",
            )
    if "aggregations" in pivot and "aggs" in pivot:
        add(
            "$.pivot",
            "transform.pivot.aggs_twice",
            "Found two aggregation definitions: [aggs] and [aggregations]",
        )
    group_by = pivot.get("group_by")
    if not isinstance(group_by, dict) or not group_by:
        add("$.pivot.group_by", "transform.group_by.missing", "[pivot.group_by] must name at least one group")
        group_by = {}
    for name, source in group_by.items():
        _check_group(name, source, member("$.pivot.group_by", name), add)
    aggs = pivot.get("aggregations", pivot.get("aggs", {}))
    if not isinstance(aggs, dict):
        add("$.pivot.aggregations", "transform.aggs.shape", "[pivot.aggregations] must be an object")
        aggs = {}
    agg_key = "aggregations" if "aggregations" in pivot else "aggs"
    for name, agg in aggs.items():
        _check_agg(name, agg, member(f"$.pivot.{agg_key}", name), add)
    _check_names(list(group_by), list(aggs), agg_key, add)


def _check_group(name: str, source: Any, path: str, add) -> None:
    if not isinstance(source, dict) or len(source) != 1:
        add(
            path,
            "transform.group_by.shape",
            f"group [{name}] must hold exactly one group source such as terms",
        )
        return
    ((kind, params),) = source.items()
    if kind not in GROUP_PARAMETERS:
        add(
            f"{path}.{kind}",
            "transform.group_by.unknown_type",
            f"unknown group_by type [{kind}]; use terms, histogram, date_histogram or geotile_grid",
        )
        return
    if not isinstance(params, dict):
        add(f"{path}.{kind}", "transform.group_by.shape", f"[{kind}] must be an object")
        return
    for param in params:
        if param not in GROUP_PARAMETERS[kind]:
            add(
                f"{path}.{kind}.{param}",
                "transform.group_by.unknown_parameter",
                f"[{GROUP_TYPE_NAMES[kind]}] unknown field [{param}]",
            )
    if "field" not in params and "script" not in params:
        add(
            f"{path}.{kind}",
            "transform.group_by.no_field",
            f"group [{name}]: Required one of fields [field, script], but none were specified",
        )
    if kind == "date_histogram":
        fixed, calendar = params.get("fixed_interval"), params.get("calendar_interval")
        if fixed is not None and calendar is not None:
            add(
                f"{path}.{kind}",
                "transform.group_by.interval",
                "date_histogram: found both [fixed_interval] and [calendar_interval], expected one",
            )
        elif fixed is None and calendar is None:
            add(
                f"{path}.{kind}",
                "transform.group_by.interval",
                "date_histogram: found none of [fixed_interval] and [calendar_interval], expected one",
            )
        elif calendar is not None and str(calendar) not in CALENDAR_UNITS:
            add(
                f"{path}.{kind}.calendar_interval",
                "transform.group_by.calendar_interval",
                f"The supplied interval [{calendar}] could not be parsed as a calendar interval; use a single unit such as 1h, 1d, 1w, 1M",
            )
        elif fixed is not None:
            _time(lambda: fixed_interval_ms(fixed), f"{path}.{kind}.fixed_interval", add)
        if "offset" in params:
            _time(lambda: offset_ms(params["offset"]), f"{path}.{kind}.offset", add)
    if kind == "histogram":
        interval = params.get("interval")
        if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
            add(
                f"{path}.{kind}.interval",
                "transform.group_by.interval",
                "histogram: [interval] must be a number greater than 0",
            )
    if "missing_bucket" in params and not isinstance(params["missing_bucket"], bool):
        add(
            f"{path}.{kind}.missing_bucket",
            "transform.group_by.missing_bucket",
            "[missing_bucket] must be true or false",
        )


def _time(parse, path: str, add) -> None:
    try:
        parse()
    except TimeValueError as exc:
        add(path, "transform.time_value", str(exc))


def _check_agg(name: str, agg: Any, path: str, add) -> None:
    if _BAD_AGG_NAME.search(name):
        add(
            path,
            "transform.aggs.name",
            f"Invalid aggregation name [{name}]. Aggregation names can contain any character except '[', ']', and '>'",
        )
    if not isinstance(agg, dict):
        add(path, "transform.aggs.shape", f"aggregation [{name}] must be an object")
        return
    kinds = [key for key in agg if key not in AGG_META_KEYS]
    if len(kinds) != 1:
        add(
            path,
            "transform.aggs.shape",
            f"Expected exactly one aggregation type for [{name}], found {kinds or 'none'}",
        )
        return
    kind = kinds[0]
    if kind not in SUPPORTED_AGGREGATIONS:
        add(f"{path}.{kind}", "transform.aggs.unsupported", f"Unsupported aggregation type [{kind}]")
    if "aggs" in agg and "aggregations" in agg:
        add(path, "transform.aggs.shape", f"Found two sub aggregation definitions under [{name}]")
    if kind == "filter":
        _check_query(agg[kind], f"{path}.filter", add)
    sub_key = "aggregations" if "aggregations" in agg else "aggs"
    subs = agg.get(sub_key, {})
    if not isinstance(subs, dict):
        add(f"{path}.{sub_key}", "transform.aggs.shape", "sub-aggregations must be an object")
        return
    for sub_name, sub in subs.items():
        _check_agg(sub_name, sub, member(f"{path}.{sub_key}", sub_name), add)


def _check_names(groups: list[str], aggs: list[str], agg_key: str, add) -> None:
    """Output names are split on dots into nested objects: no name twice, none both leaf and object."""
    paths = {name: member("$.pivot.group_by", name) for name in groups}
    for name in aggs:
        if name in paths:
            add(
                member(f"$.pivot.{agg_key}", name),
                "transform.names.duplicate",
                f"duplicate field [{name}] detected",
            )
        else:
            paths[name] = member(f"$.pivot.{agg_key}", name)
    for name, path in paths.items():
        parts = name.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if parent in paths:
                add(
                    path,
                    "transform.names.object_and_field",
                    f"field [{parent}] cannot be both an object and a field",
                )


def _check_query(query: Any, path: str, add) -> None:
    if not isinstance(query, dict) or len(query) != 1:
        add(path, "transform.query.shape", "a query must be an object with exactly one query type")
        return
    ((kind, params),) = query.items()
    if kind not in SUPPORTED_QUERIES:
        add(
            f"{path}.{kind}",
            "transform.engine.query_unsupported",
            f"query type [{kind}] is outside the subset the embedded engine evaluates ({', '.join(sorted(SUPPORTED_QUERIES))})",
        )
        return
    if kind == "bool" and isinstance(params, dict):
        for clause in ("must", "filter", "should", "must_not"):
            children = params.get(clause, [])
            for index, child in enumerate(children if isinstance(children, list) else [children]):
                _check_query(
                    child,
                    f"{path}.bool.{clause}[{index}]"
                    if isinstance(children, list)
                    else f"{path}.bool.{clause}",
                    add,
                )


def _check_sync_and_settings(body: dict, add) -> None:
    if "frequency" in body:
        try:
            frequency = time_setting_ms(body["frequency"])
            if not 1000 <= frequency <= 3_600_000:
                add("$.frequency", "transform.frequency", "[frequency] must be between 1s and 1h")
        except TimeValueError as exc:
            add("$.frequency", "transform.frequency", str(exc))
    sync = body.get("sync")
    if sync is not None:
        time = sync.get("time") if isinstance(sync, dict) else None
        if not isinstance(time, dict) or not time.get("field"):
            add("$.sync", "transform.sync", "[sync.time.field] is required for a continuous transform")
        elif "delay" in time:
            _time(lambda: time_setting_ms(time["delay"]), "$.sync.time.delay", add)
    settings = body.get("settings", {})
    if not isinstance(settings, dict):
        add("$.settings", "transform.settings", "[settings] must be an object")
        return
    for key in settings:
        if key not in SETTINGS_KEYS:
            add(
                f"$.settings.{key}",
                "transform.unknown_field",
                f"[transform_config_settings] unknown field [{key}]",
            )
    page = settings.get("max_page_search_size")
    if page is not None and not (isinstance(page, int) and 10 <= page <= 65536):
        add(
            "$.settings.max_page_search_size",
            "transform.settings.page_size",
            "[max_page_search_size] must be between 10 and 65536",
        )
    if settings.get("unattended") and settings.get("num_failure_retries") is not None:
        add(
            "$.settings.num_failure_retries",
            "transform.settings.retries",
            "[num_failure_retries] cannot be combined with [unattended]",
        )
