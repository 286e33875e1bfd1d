"""Running engine SQL on DuckDB: connection settings and rows as dicts."""

from __future__ import annotations

from typing import Any

import duckdb

from authml.embedded.schema import DUCKDB_TYPES


def prepare(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Session settings the engine's SQL relies on: naive TIMESTAMPs are UTC."""
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def fetch_dicts(
    connection: duckdb.DuckDBPyConnection, sql: str, parameters: list | None = None
) -> list[dict[str, Any]]:
    cursor = connection.execute(sql, parameters or [])
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def sql_type(es_type: str) -> str:
    """The DuckDB column type for an ES field type (text is read as its string)."""
    return DUCKDB_TYPES.get(es_type, "VARCHAR")
