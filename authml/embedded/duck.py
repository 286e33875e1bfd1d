"""Running engine SQL on DuckDB: connection settings and rows as dicts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import duckdb

from authml.embedded.schema import DUCKDB_TYPES


@contextmanager
def registered(connection: duckdb.DuckDBPyConnection, name: str, data: Any) -> Iterator[None]:
    """``data`` (an Arrow table, or columns of numpy arrays) visible to SQL as ``name`` for a
    while. If a statement failed or was interrupted (Ctrl-C), its transaction is aborted and
    unregistering fails too ("Current transaction is aborted"): the first error is the one
    reported, so that an interruption stays one and a refused batch names its own cause."""
    connection.register(name, data)
    try:
        yield
    except BaseException:
        with suppress(duckdb.Error):
            connection.unregister(name)
        raise
    connection.unregister(name)


@contextmanager
def transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction on ``connection``: committed at the end, rolled back on any error."""
    connection.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def prepare(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Session settings the engine's SQL relies on: naive TIMESTAMPs are UTC."""
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def thread_count(connection: duckdb.DuckDBPyConnection) -> int:
    """The threads DuckDB runs a statement on (the setting is the database's)."""
    ((count,),) = connection.execute("SELECT current_setting('threads')").fetchall()
    return int(count)


def fetch_dicts(
    connection: duckdb.DuckDBPyConnection, sql: str, parameters: list | None = None
) -> list[dict[str, Any]]:
    cursor = connection.execute(sql, parameters or [])
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def sql_type(es_type: str) -> str:
    """The DuckDB column type for an ES field type (text is read as its string)."""
    return DUCKDB_TYPES.get(es_type, "VARCHAR")
