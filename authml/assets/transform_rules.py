"""authml's lint rules for transforms beyond what Elasticsearch checks at PUT (those are in
``authml.engine.validate``): id, frequency and page-size ranges, dest not in the source, and a dest
index created from a declared template whose strict mapping covers, with the right types, every
field the transform writes."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from typing import Any

from authml.assets.catalogue import Asset
from authml.assets.rules import Problem, mapped_types, template_for_index

TRANSFORM_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$")
TRANSFORM_ID_MAX = 64
FREQUENCY_RANGE_MS = (1_000, 3_600_000)
PAGE_SIZE_RANGE = (10, 65_536)
_DURATION = re.compile(r"^(\d+)(nanos|micros|ms|s|m|h|d)$")
_UNIT_MS = {"nanos": 1e-6, "micros": 1e-3, "ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def check_transform(asset: Asset, catalogue: list[Asset]) -> Iterator[Problem]:
    body = asset.body
    if len(asset.name) > TRANSFORM_ID_MAX or not TRANSFORM_ID.match(asset.name):
        yield (
            "$",
            "transform.id",
            f"transform id [{asset.name}] must be at most {TRANSFORM_ID_MAX} of a-z, 0-9, - and _, "
            "starting and ending with a letter or digit",
        )
    dest = (body.get("dest") or {}).get("index")
    sources = (body.get("source") or {}).get("index") or []
    sources = [sources] if isinstance(sources, str) else sources
    for position, pattern in enumerate(sources):
        if dest and fnmatch.fnmatchcase(dest, str(pattern)):
            yield (
                f"$.source.index[{position}]",
                "transform.dest_in_source",
                f"the dest index [{dest}] matches the source pattern [{pattern}]",
            )
    if "frequency" in body:
        yield from _range_of_duration(
            body["frequency"], "$.frequency", "transform.frequency", FREQUENCY_RANGE_MS
        )
    settings = body.get("settings") or {}
    page = settings.get("max_page_search_size")
    if page is not None and not (isinstance(page, int) and PAGE_SIZE_RANGE[0] <= page <= PAGE_SIZE_RANGE[1]):
        yield (
            "$.settings.max_page_search_size",
            "transform.page_size",
            f"max_page_search_size must be an integer from {PAGE_SIZE_RANGE[0]} to {PAGE_SIZE_RANGE[1]}",
        )
    if dest:
        yield from _check_dest_declared(dest, catalogue)
        template = template_for_index(dest, catalogue)
        if template is not None and isinstance(body.get("pivot"), dict):
            yield from _check_dest_covers_output(body["pivot"], template)
            yield from _check_dest_types(asset, template, catalogue)


def _range_of_duration(value: Any, path: str, rule: str, bounds: tuple[int, int]) -> Iterator[Problem]:
    match = _DURATION.match(str(value))
    if not match:
        yield path, rule, f"[{value}] is not a time value such as 30s, 1m or 1h"
        return
    millis = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if not bounds[0] <= millis <= bounds[1]:
        yield path, rule, f"[{value}] must be between 1s and 1h"


def _check_dest_declared(dest: str, catalogue: list[Asset]) -> Iterator[Problem]:
    declared = any(a.kind == "indices" and a.name == dest for a in catalogue)
    if not declared:
        yield (
            "$.dest.index",
            "transform.dest_not_declared",
            f"no indices/{dest}.yml: the dest index must be created from its template before the transform "
            "starts, or mappings deduced by the transform win",
        )
    if template_for_index(dest, catalogue) is None:
        yield (
            "$.dest.index",
            "transform.dest_no_template",
            f"no index template of the assets matches [{dest}]",
        )


def _check_dest_covers_output(pivot: dict, template: Asset) -> Iterator[Problem]:
    """With ``dynamic: strict`` a field the transform writes but the template does not declare
    makes every bulk write fail and the transform stop."""
    mappings = (template.body.get("template") or {}).get("mappings") or {}
    if mappings.get("dynamic") not in ("strict", "false", False):
        return
    declared = set(_mapped_paths(mappings.get("properties") or {}))
    for name, path in _pivot_outputs(pivot):
        if name not in declared:
            yield (
                path,
                "transform.dest_mapping",
                f"[{name}] is written by the transform but not mapped in index template {template.name}",
            )


# The source types the transforms see: the ECS mappings of authml's raw events, which match what
# Winlogbeat and the Elastic Agent map for the same fields.
SOURCE_MAPPINGS_ASSET = ("component_templates", "authml-events-mappings")


def _check_dest_types(transform: Asset, template: Asset, catalogue: list[Asset]) -> Iterator[Problem]:
    """Each declared dest field has the type the transform would deduce for it (the embedded
    engine computes the deduction), so declaring the mapping changes nothing but its strictness."""
    from datetime import UTC, datetime

    from authml.engine.compile import compile_pivot
    from authml.engine.fields import FieldCatalog
    from authml.engine.mappings import explicit_types
    from authml.errors import AssetError

    source = next((a for a in catalogue if (a.kind, a.name) == SOURCE_MAPPINGS_ASSET), None)
    if source is None:
        return
    source_types, _ = explicit_types((source.body.get("template") or {}).get("mappings"))
    try:
        pivot = compile_pivot(
            transform.body, transform.name, FieldCatalog(source_types), now=datetime.now(UTC)
        )
    except AssetError:
        return  # the transform rules above report why it does not compile
    mappings = (template.body.get("template") or {}).get("mappings") or {}
    declared = dict(mapped_types(mappings.get("properties") or {}))
    for name, deduced in pivot.dest_mappings().items():
        wanted = declared.get(name)
        if wanted is not None and deduced.get("type") and wanted != deduced["type"]:
            yield (
                "$.dest.index",
                "transform.dest_mapping_type",
                f"[{name}] is mapped as {wanted} in index template {template.name}, "
                f"but the transform writes {deduced['type']}",
            )


def _pivot_outputs(pivot: dict) -> Iterator[tuple[str, str]]:
    for name in pivot.get("group_by") or {}:
        yield name, f"$.pivot.group_by[{name!r}]"
    aggs = pivot.get("aggregations") or pivot.get("aggs") or {}
    key = "aggregations" if "aggregations" in pivot else "aggs"
    yield from _agg_outputs(aggs, "", f"$.pivot.{key}")


def _agg_outputs(aggs: dict, prefix: str, path: str) -> Iterator[tuple[str, str]]:
    for name, agg in aggs.items():
        full = f"{prefix}{name}"
        subs = (agg or {}).get("aggregations") or (agg or {}).get("aggs")
        kind = next((k for k in agg or {} if k not in ("aggregations", "aggs", "meta")), None)
        if subs and kind in ("filter", "missing"):
            yield from _agg_outputs(subs, f"{full}.", f"{path}.{name}.aggregations")
        else:
            yield full, f"{path}.{name}"


def _mapped_paths(properties: dict, prefix: str = "") -> Iterator[str]:
    for name, mapping in properties.items():
        full = f"{prefix}{name}"
        yield full
        if isinstance(mapping, dict) and isinstance(mapping.get("properties"), dict):
            yield from _mapped_paths(mapping["properties"], f"{full}.")
