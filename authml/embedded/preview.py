"""``_preview`` without a cluster: a transform evaluated over documents held in memory."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import numpy as np

from authml.embedded.duck import fetch_dicts, prepare, registered, sql_type
from authml.engine.compile import compile_pivot
from authml.engine.fields import FieldCatalog, quote
from authml.engine.mappings import build_source_table
from authml.engine.output import composite_order, to_document

PREVIEW_SIZE = 100  # ES previews the first 100 buckets


def preview(
    body: dict[str, Any],
    file: str,
    documents: list[tuple[str, dict[str, Any]]],
    *,
    mappings: dict[str, Any] | None = None,
    now: datetime,
) -> dict[str, Any]:
    """What ``POST _transform/_preview`` returns for ``body`` over ``documents``."""
    table = build_source_table(documents, mappings)
    types = {path: es_type for path, es_type in table.types.items() if es_type != "object"}
    pivot = compile_pivot(body, file, FieldCatalog(types), now=now, for_preview=True)
    connection = prepare(duckdb.connect())
    try:
        _load(connection, table.rows, types)
        rows = fetch_dicts(connection, pivot.select_sql("preview_source"))
    finally:
        connection.close()
    ordered = composite_order(pivot, rows)[:PREVIEW_SIZE]
    return {
        "preview": [to_document(pivot, row, with_id=False) for row in ordered],
        "generated_dest_index": {
            "mappings": {"properties": pivot.dest_mappings()},
            "settings": {"index": {"number_of_shards": "1", "auto_expand_replicas": "0-1"}},
            "aliases": {},
        },
    }


def _load(connection: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]], types: dict[str, str]) -> None:
    columns = sorted(types)
    if not columns:
        connection.execute("CREATE TABLE preview_source (__empty INTEGER)")
        return
    definitions = ", ".join(f"{quote(c)} {sql_type(types[c])}" for c in columns)
    connection.execute(f"CREATE TABLE preview_source ({definitions})")
    if not rows:
        return
    batch = {f"c{i}": np.array([row.get(c) for row in rows], dtype=object) for i, c in enumerate(columns)}
    selects = ", ".join(f"CAST(c{i} AS {sql_type(types[c])})" for i, c in enumerate(columns))
    with registered(connection, "preview_batch", batch):
        connection.execute(f"INSERT INTO preview_source SELECT {selects} FROM preview_batch")
