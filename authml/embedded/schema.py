"""The raw events table, derived from the raw events mappings in es_assets/ so that both engines
agree on which ECS fields are typed and how."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from authml.assets import load_asset
from authml.engine.fields import mapping_leaves

EVENTS_MAPPINGS_ASSET = ("component_templates", "authml-events-mappings")

# Elasticsearch field type -> DuckDB column type. Dates are stored as UTC TIMESTAMP.
DUCKDB_TYPES = {
    "keyword": "VARCHAR",
    "constant_keyword": "VARCHAR",
    "wildcard": "VARCHAR",
    "text": "VARCHAR",
    "match_only_text": "VARCHAR",
    "ip": "VARCHAR",
    "date": "TIMESTAMP",
    "date_nanos": "TIMESTAMP",
    "long": "BIGINT",
    "integer": "INTEGER",
    "short": "SMALLINT",
    "byte": "TINYINT",
    "unsigned_long": "UBIGINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "half_float": "FLOAT",
    "scaled_float": "DOUBLE",
    "boolean": "BOOLEAN",
}


@dataclass(frozen=True, slots=True)
class Column:
    field: str  # the ECS path, which is also the column's name
    es_type: str

    @property
    def sql_type(self) -> str:
        return DUCKDB_TYPES[self.es_type]


@cache
def event_columns() -> tuple[Column, ...]:
    """The typed columns of the events table, in a stable order."""
    body = load_asset(*EVENTS_MAPPINGS_ASSET)
    properties = body["template"]["mappings"]["properties"]
    leaves = (
        leaf for leaf in mapping_leaves(properties) if leaf.parent is None
    )  # a multi-field reads its parent
    return tuple(Column(leaf.path, leaf.es_type) for leaf in sorted(leaves, key=lambda leaf: leaf.path))


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def events_ddl() -> str:
    typed = ",\n  ".join(f"{quote(c.field)} {c.sql_type}" for c in event_columns())
    return f"""CREATE TABLE IF NOT EXISTS events (
  _id VARCHAR PRIMARY KEY,
  {typed},
  document JSON NOT NULL USING COMPRESSION zstd,
  source_file VARCHAR,
  source_position VARCHAR,
  multi_valued_fields VARCHAR[]
)"""


STORE_DDL = (
    """CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS dead_letters (
  source_file VARCHAR NOT NULL,
  position VARCHAR NOT NULL,
  reason VARCHAR NOT NULL,
  raw VARCHAR,
  recorded_at TIMESTAMP NOT NULL,
  PRIMARY KEY (source_file, position)
)""",
    """CREATE TABLE IF NOT EXISTS ingest_runs (
  run_id VARCHAR PRIMARY KEY,
  started_at TIMESTAMP NOT NULL,
  finished_at TIMESTAMP,
  summary JSON
)""",
)
