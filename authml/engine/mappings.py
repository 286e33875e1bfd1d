"""Source documents and their mapping, as Elasticsearch would index them, for ``preview``.

Types come from an explicit mapping where given, else from dynamic mapping rules: JSON strings
become ``text`` with a ``keyword`` sub-field (``ignore_above: 256``) unless date detection
recognises them as ``strict_date_optional_time``; whole numbers become ``long``, other numbers
``float``, true/false ``boolean``. The first value seen fixes a field's type; a later value that
cannot be indexed as that type is an error naming the document, as ES would reject it.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from authml.engine.fields import DATE_TYPES, FLOAT_TYPES, INTEGER_TYPES, KEYWORD_LIKE, mapping_leaves
from authml.engine.timeunits import TimeValueError, parse_date
from authml.errors import InputError

_STRICT_DATE_OPTIONAL_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}(T\d{2}(:\d{2}(:\d{2}([.,]\d{1,9})?)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)
DYNAMIC_KEYWORD_IGNORE_ABOVE = 256
SUPPORTED_SOURCE_TYPES = KEYWORD_LIKE | INTEGER_TYPES | FLOAT_TYPES | DATE_TYPES | {"ip", "boolean", "text"}


def mapping_properties(mappings: dict[str, Any]) -> dict[str, Any]:
    """The mapping (holding ``properties``) given as ``{"mappings": ...}``, ``{"properties": ...}``,
    a ``GET <index>/_mapping`` response or a component/index template."""
    if "properties" in mappings:
        return mappings
    if "mappings" in mappings:
        return mapping_properties(mappings["mappings"])
    if isinstance(mappings.get("template"), dict) and "mappings" in mappings["template"]:
        return mapping_properties(mappings["template"]["mappings"])  # an index or component template
    if len(mappings) == 1:
        (only,) = mappings.values()
        if isinstance(only, dict) and "mappings" in only:
            return mapping_properties(only["mappings"])
    raise InputError('the mappings file must hold {"mappings": {"properties": ...}} or {"properties": ...}')


@dataclass
class SourceTable:
    """Documents flattened to dotted-path columns, with each column's ES type."""

    types: dict[str, str] = field(default_factory=dict)
    ignore_above: dict[str, int] = field(default_factory=dict)  # keyword sub-field -> limit
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return sorted(self.types)


def explicit_types(mappings: dict[str, Any] | None) -> tuple[dict[str, str], dict[str, int]]:
    types: dict[str, str] = {}
    ignore_above: dict[str, int] = {}
    if mappings:
        for leaf in mapping_leaves(mapping_properties(mappings).get("properties", {})):
            types[leaf.path] = leaf.es_type
            if "ignore_above" in leaf.spec:
                ignore_above[leaf.path] = int(leaf.spec["ignore_above"])
    return types, ignore_above


def _flatten(value: Any, prefix: str, out: dict[str, Any], where: str) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            _flatten(child, f"{prefix}{key}.", out, where)
        return
    path = prefix[:-1]
    if isinstance(value, list):
        present = [v for v in value if v is not None]
        if any(isinstance(v, dict | list) for v in present):
            raise InputError(
                f"{where}: field [{path}] holds objects or nested arrays, which the engine does not support"
            )
        if len(present) > 1:
            raise InputError(
                f"{where}: field [{path}] holds {len(present)} values; multi-valued fields are not supported "
                "by the embedded engine (it never uses just one of them)"
            )
        value = present[0] if present else None
    if value is not None:
        out[path] = value


def _dynamic_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str) and _STRICT_DATE_OPTIONAL_TIME.match(value):
        return "date"
    return "text"


def build_source_table(
    documents: list[tuple[str, dict[str, Any]]], mappings: dict[str, Any] | None
) -> SourceTable:
    """``documents`` are (where, document) pairs; ``where`` names the record in errors."""
    types, ignore_above = explicit_types(mappings)
    for path, es_type in types.items():
        if es_type not in SUPPORTED_SOURCE_TYPES and es_type != "object":
            raise InputError(
                f"mappings: field [{path}] has type [{es_type}], which the engine does not support"
            )
    table = SourceTable(types=types, ignore_above=ignore_above)
    for where, document in documents:
        flat: dict[str, Any] = {}
        _flatten(document, "", flat, where)
        row: dict[str, Any] = {}
        for path, value in flat.items():
            if path not in table.types:
                es_type = _dynamic_type(value)
                table.types[path] = es_type
                if es_type == "text":
                    table.types[f"{path}.keyword"] = "keyword"
                    table.ignore_above[f"{path}.keyword"] = DYNAMIC_KEYWORD_IGNORE_ABOVE
            es_type = table.types[path]
            row[path] = _coerce(value, es_type, path, where)
            keyword = f"{path}.keyword"
            if table.types.get(keyword) in KEYWORD_LIKE and table.types[path] == "text":
                text = row[path]
                row[keyword] = text if len(text) <= table.ignore_above.get(keyword, 1 << 31) else None
        for path in list(row):
            limit = table.ignore_above.get(path)
            if limit is not None and isinstance(row[path], str) and len(row[path]) > limit:
                row[path] = None
        table.rows.append(row)
    return table


def _coerce(value: Any, es_type: str, path: str, where: str) -> Any:
    """The value as ES indexes it into a field of ``es_type`` (coercion on, as by default)."""

    def reject(reason: str) -> InputError:
        return InputError(
            f"{where}: field [{path}] of type [{es_type}] cannot hold {value!r}: {reason}; Elasticsearch would reject this document"
        )

    if es_type in KEYWORD_LIKE or es_type == "text":
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value) if not isinstance(value, float) else repr(value)
    if es_type in INTEGER_TYPES or es_type in FLOAT_TYPES:
        try:
            number = float(value) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or not math.isfinite(number):
            raise reject("not a number")
        return int(number) if es_type in INTEGER_TYPES else number
    if es_type in DATE_TYPES:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None)
        try:
            return parse_date(str(value)).replace(tzinfo=None)
        except TimeValueError as exc:
            raise reject("not a date") from exc
    if es_type == "boolean":
        if value in (True, "true"):
            return True
        if value in (False, "false", ""):
            return False
        raise reject("not a boolean")
    if es_type == "ip":
        try:
            address = ipaddress.ip_address(str(value))
            # ES stores every address as IPv6 and prints IPv4-mapped ones as IPv4.
            mapped = getattr(address, "ipv4_mapped", None)
            return str(mapped or address)
        except ValueError as exc:
            raise reject("not an IP address") from exc
    raise reject("unsupported type")
