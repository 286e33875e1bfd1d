"""Source fields as the engine sees them: an Elasticsearch type and a SQL expression.

A catalog maps a field name used in a transform (``user.name``, ``message.keyword``) to the column
or JSON expression that holds it in the source relation. Fields absent from the mappings are
"unmapped": Elasticsearch treats them as missing in every document, and so does the engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from authml.errors import AssetError

KEYWORD_LIKE = {"keyword", "constant_keyword", "wildcard"}
INTEGER_TYPES = {"long", "integer", "short", "byte", "unsigned_long"}
FLOAT_TYPES = {"double", "float", "half_float", "scaled_float"}
NUMERIC_TYPES = INTEGER_TYPES | FLOAT_TYPES
DATE_TYPES = {"date", "date_nanos"}


@dataclass(frozen=True, slots=True)
class SourceField:
    name: str
    es_type: str | None  # None: unmapped, missing in every document
    sql: str  # the expression over the source relation


class UnsupportedConstruct(AssetError):
    """The transform is valid for Elasticsearch but outside what the embedded engine evaluates."""

    def __init__(self, file: str, json_path: str, message: str):
        super().__init__(f"{file}: {json_path}: {message}")
        self.file, self.json_path, self.reason = file, json_path, message


_PLAIN_MEMBER = re.compile(r"^[A-Za-z0-9_\-]+$")


def member(path: str, name: str) -> str:
    """``path.name``, or ``path['name']`` when the name holds dots or other punctuation, so a
    JSON path stays unambiguous for names such as ``user.name``."""
    return f"{path}.{name}" if _PLAIN_MEMBER.match(name) else f"{path}['{name}']"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class FieldCatalog:
    """Field name -> SourceField, from a flat {dotted path: ES type} map.

    ``column_sql`` turns a dotted path into its SQL expression; by default the column of that name.
    A ``text`` field with a ``keyword`` sub-field is listed twice: ``x`` as text, ``x.keyword`` as
    keyword (reading the same value)."""

    def __init__(self, types: dict[str, str], column_sql: dict[str, str] | None = None):
        self.types = dict(types)
        self.column_sql = dict(column_sql or {})

    def resolve(self, name: str) -> SourceField:
        es_type = self.types.get(name)
        if es_type is None:
            return SourceField(name, None, "NULL")
        return SourceField(name, es_type, self.column_sql.get(name, quote(name)))

    @classmethod
    def from_mappings(cls, mappings: dict[str, Any]) -> FieldCatalog:
        """A catalog from an index mapping (``{"properties": ...}``), multi-fields included.
        Sub-fields read their parent's column."""
        types: dict[str, str] = {}
        columns: dict[str, str] = {}
        for leaf in mapping_leaves(mappings.get("properties", {})):
            types[leaf.path] = leaf.es_type
            if leaf.parent is not None:
                columns[leaf.path] = quote(leaf.parent)
        return cls(types, columns)


@dataclass(frozen=True, slots=True)
class MappingLeaf:
    path: str  # dotted
    es_type: str
    spec: dict[str, Any]
    parent: str | None  # for a multi-field (``x.keyword``), the field it indexes again


def mapping_leaves(properties: dict[str, Any], prefix: str = "") -> Iterator[MappingLeaf]:
    """Every leaf field of a mapping's ``properties``, each multi-field right after its parent."""
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            yield from mapping_leaves(spec["properties"], f"{path}.")
            continue
        yield MappingLeaf(path, spec.get("type", "object"), spec, None)
        for sub_name, sub_spec in spec.get("fields", {}).items():
            yield MappingLeaf(f"{path}.{sub_name}", sub_spec.get("type", "keyword"), sub_spec, path)
