"""``source.query`` and ``filter`` aggregation queries compiled into SQL predicates.

The subset: match_all, match_none, term, terms, range (with date math against a fixed "now"),
exists and bool. A predicate is NULL for a document without the field, which WHERE and FILTER
read as no match; ``must_not`` and ``should`` counts turn NULL into FALSE first, so such a
document matches ``must_not`` of a term or range, as in Elasticsearch. (Plain comparisons, not
wrapped in coalesce, let DuckDB push them into the scan and skip row groups.)
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from authml.engine.fields import (
    DATE_TYPES,
    FLOAT_TYPES,
    INTEGER_TYPES,
    KEYWORD_LIKE,
    FieldCatalog,
    SourceField,
    UnsupportedConstruct,
    member,
    sql_string,
)
from authml.engine.timeunits import TimeValueError, resolve_date_math


class QueryCompiler:
    def __init__(self, catalog: FieldCatalog, file: str, now: datetime):
        self.catalog, self.file, self.now = catalog, file, now

    def fail(self, path: str, message: str) -> UnsupportedConstruct:
        return UnsupportedConstruct(self.file, path, message)

    def compile(self, query: Any, path: str) -> str:
        if query is None:
            return "TRUE"
        if not isinstance(query, dict) or len(query) != 1:
            raise self.fail(path, "a query must be an object with exactly one query type")
        ((kind, params),) = query.items()
        handler = getattr(self, f"_{kind}", None)
        if handler is None:
            raise self.fail(f"{path}.{kind}", f"query type [{kind}] is not supported by the embedded engine")
        return handler(params, f"{path}.{kind}")

    def _match_all(self, params: Any, path: str) -> str:
        self._only(params or {}, {"boost"}, path)
        return "TRUE"

    def _match_none(self, params: Any, path: str) -> str:
        return "FALSE"

    def _single_field(self, params: Any, path: str) -> tuple[str, Any]:
        extra = (
            {k: v for k, v in params.items() if k not in ("boost", "_name")}
            if isinstance(params, dict)
            else {}
        )
        if len(extra) != 1:
            raise self.fail(path, "expected exactly one field")
        return next(iter(extra.items()))

    def _term(self, params: Any, path: str) -> str:
        name, spec = self._single_field(params, path)
        options = spec if isinstance(spec, dict) else {"value": spec}
        self._only(options, {"value", "boost", "case_insensitive", "_name"}, member(path, name))
        if "value" not in options:
            raise self.fail(member(path, name), "term query needs a [value]")
        field = self._field(name, member(path, name))
        if field.es_type is None:
            return "FALSE"
        literal = self._literal(field, options["value"], member(path, name))
        if options.get("case_insensitive"):
            if field.es_type not in KEYWORD_LIKE:
                raise self.fail(
                    member(member(path, name), "case_insensitive"),
                    "case_insensitive works on keyword fields only",
                )
            return f"(lower({field.sql}) = lower({literal}))"
        return f"({field.sql} = {literal})"

    def _terms(self, params: Any, path: str) -> str:
        name, values = self._single_field(params, path)
        if not isinstance(values, list):
            raise self.fail(member(path, name), "terms lookup is not supported; give a list of values")
        field = self._field(name, member(path, name))
        if field.es_type is None or not values:
            return "FALSE"
        literals = ", ".join(self._literal(field, value, member(path, name)) for value in values)
        return f"({field.sql} IN ({literals}))"

    def _exists(self, params: Any, path: str) -> str:
        self._only(params, {"field", "boost", "_name"}, path)
        field = self._field(params.get("field"), f"{path}.field")
        return "FALSE" if field.es_type is None else f"({field.sql} IS NOT NULL)"

    def _range(self, params: Any, path: str) -> str:
        name, bounds = self._single_field(params, path)
        bounds_path = member(path, name)
        if not isinstance(bounds, dict):
            raise self.fail(bounds_path, "range needs an object of bounds")
        self._only(
            bounds,
            {"gte", "gt", "lte", "lt", "boost", "time_zone", "format", "relation", "_name"},
            bounds_path,
        )
        if bounds.get("format") is not None:
            raise self.fail(
                f"{bounds_path}.format",
                "range [format] is not supported; write bounds as ISO dates or date math",
            )
        if str(bounds.get("time_zone", "UTC")).upper() not in ("UTC", "Z", "+00:00", "ETC/UTC"):
            raise self.fail(f"{bounds_path}.time_zone", "range [time_zone] other than UTC is not supported")
        if str(bounds.get("relation", "intersects")).lower() != "intersects":
            raise self.fail(
                f"{bounds_path}.relation", "range [relation] applies to range fields, which are not supported"
            )
        field = self._field(name, bounds_path)
        if field.es_type is None:
            return "FALSE"
        if field.es_type == "ip":
            raise self.fail(bounds_path, "range on an ip field is not supported")
        clauses = []
        for op, sql_op in (("gte", ">="), ("gt", ">"), ("lte", "<="), ("lt", "<")):
            if bounds.get(op) is None:
                continue
            if field.es_type in DATE_TYPES:
                literal = self._date_literal(
                    bounds[op], round_up=op in ("gt", "lte"), path=f"{bounds_path}.{op}"
                )
            else:
                literal = self._literal(field, bounds[op], f"{bounds_path}.{op}")
            clauses.append(f"{field.sql} {sql_op} {literal}")
        return f"({' AND '.join(clauses) or field.sql + ' IS NOT NULL'})"

    def _bool(self, params: Any, path: str) -> str:
        if not isinstance(params, dict):
            raise self.fail(path, "bool needs an object")
        self._only(
            params, {"must", "filter", "should", "must_not", "minimum_should_match", "boost", "_name"}, path
        )

        def clauses(kind: str) -> list[str]:
            value = params.get(kind, [])
            items = value if isinstance(value, list) else [value]
            paths = (
                [f"{path}.{kind}[{i}]" for i in range(len(items))]
                if isinstance(value, list)
                else [f"{path}.{kind}"]
            )
            return [self.compile(item, item_path) for item, item_path in zip(items, paths, strict=True)]

        required = clauses("must") + clauses("filter")
        excluded = clauses("must_not")
        optional = clauses("should")
        parts = [f"({c})" for c in required] + [f"NOT coalesce(({c}), FALSE)" for c in excluded]
        minimum = params.get("minimum_should_match")
        if minimum is None:
            minimum = 0 if required else (1 if optional else 0)
        elif isinstance(minimum, str) and minimum.isdigit():
            minimum = int(minimum)
        if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 0:
            raise self.fail(f"{path}.minimum_should_match", "only a non-negative whole number is supported")
        if minimum:
            count = " + ".join(f"CAST(coalesce(({c}), FALSE) AS INTEGER)" for c in optional) or "0"
            parts.append(f"({count}) >= {minimum}")
        return " AND ".join(parts) or "TRUE"

    # Helpers ------------------------------------------------------------------------------

    def _only(self, params: Any, allowed: set[str], path: str) -> None:
        if not isinstance(params, dict):
            raise self.fail(path, "expected an object")
        for key in params:
            if key not in allowed:
                raise self.fail(f"{path}.{key}", f"parameter [{key}] is not supported by the embedded engine")

    def _field(self, name: Any, path: str) -> SourceField:
        if not isinstance(name, str) or not name:
            raise self.fail(path, "a field name is required")
        field = self.catalog.resolve(name)
        if field.es_type == "text":
            raise self.fail(
                path,
                f"[{name}] is a text field; exact queries on analysed text are not supported, use [{name}.keyword]",
            )
        return field

    def _date_literal(self, value: Any, *, round_up: bool, path: str) -> str:
        try:
            moment = resolve_date_math(value, self.now, round_up=round_up)
        except TimeValueError as exc:
            raise self.fail(path, str(exc)) from exc
        return f"TIMESTAMP '{moment.strftime('%Y-%m-%d %H:%M:%S.%f')}'"

    def _literal(self, field: SourceField, value: Any, path: str) -> str:
        es_type = field.es_type
        if isinstance(value, dict | list):
            raise self.fail(path, "expected a single value")
        if es_type in DATE_TYPES:
            return self._date_literal(value, round_up=False, path=path)
        if es_type in INTEGER_TYPES:
            try:
                number = float(value)
            except (TypeError, ValueError) as exc:
                raise self.fail(
                    path, f"[{value}] is not a number for the {es_type} field [{field.name}]"
                ) from exc
            if not number.is_integer():
                raise self.fail(
                    path, f"[{value}] is not a whole number for the {es_type} field [{field.name}]"
                )
            return str(int(number))
        if es_type in FLOAT_TYPES:
            try:
                number = float(value)
            except (TypeError, ValueError) as exc:
                raise self.fail(path, f"[{value}] is not a number for the field [{field.name}]") from exc
            if not math.isfinite(number):
                raise self.fail(path, "the value must be finite")
            cast = "FLOAT" if es_type != "double" else "DOUBLE"
            return f"CAST({number!r} AS {cast})"
        if es_type == "boolean":
            if value in (True, "true"):
                return "TRUE"
            if value in (False, "false"):
                return "FALSE"
            raise self.fail(path, f"[{value}] is not a boolean")
        if es_type == "ip" and "/" in str(value):
            raise self.fail(path, "CIDR ranges in term queries on ip fields are not supported")
        if es_type in KEYWORD_LIKE or es_type == "ip":
            return sql_string(str(value).lower() if isinstance(value, bool) else str(value))
        raise self.fail(path, f"queries on fields of type [{es_type}] are not supported")
