"""Result rows shaped into the documents Elasticsearch writes, in the order it writes them."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from authml.engine.compile import CompiledPivot, GroupKey
from authml.engine.timeunits import format_millis, to_millis


def render_value(value: Any, value_type: str, dates_as_epoch_millis: bool) -> Any:
    if value is None:
        return None
    if value_type == "date":
        millis = to_millis(value) if isinstance(value, datetime) else int(value)
        return millis if dates_as_epoch_millis else format_millis(millis)
    if value_type == "long":
        return int(value)
    if value_type in ("double", "float"):
        return float(value)
    if value_type == "terms":
        items = value.items() if isinstance(value, dict) else zip(value["key"], value["value"], strict=True)
        return {str(key): int(count) for key, count in items}
    return value


def _put(document: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = document
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def to_document(pivot: CompiledPivot, row: dict[str, Any], *, with_id: bool = True) -> dict[str, Any]:
    """One result row (column name -> value) as the nested document ES would index."""
    document: dict[str, Any] = {}
    for group in pivot.groups:
        value = render_value(row[group.column], group.value_type, pivot.dates_as_epoch_millis)
        _put(document, group.name.split("."), value)
    for leaf in pivot.leaves:
        value = render_value(row[leaf.column], leaf.value_type, pivot.dates_as_epoch_millis)
        if value is None and leaf.omit_if_null:
            _ensure_object(document, leaf.path[:-1])
            continue
        _put(document, leaf.path, value)
    if with_id:
        document["_id"] = row["_id"]
    return document


def _ensure_object(document: dict[str, Any], path: Sequence[str]) -> None:
    node = document
    for part in path:
        node = node.setdefault(part, {})


def _sort_value(group: GroupKey, value: Any) -> tuple:
    # Composite buckets sort ascending with the missing bucket first.
    if value is None:
        return (0,)
    if group.value_type == "ip":
        address = ipaddress.ip_address(value)
        packed = address.packed if address.version == 6 else ipaddress.IPv6Address(f"::ffff:{address}").packed
        return (1, packed)
    if isinstance(value, str):
        return (1, value.encode("utf-8"))
    return (1, value)


def composite_order(pivot: CompiledPivot, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in the order ES's composite aggregation returns them (GroupByOptimizer order)."""
    ordered = pivot.sorted_groups
    return sorted(rows, key=lambda row: tuple(_sort_value(g, row[g.column]) for g in ordered))
