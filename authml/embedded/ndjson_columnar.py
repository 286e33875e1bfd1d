"""NDJSON into the events table by DuckDB's own JSON reader, for the records whose shape it can
store exactly as the Python ingest path would; every other record is handed back to that path.

The Python path (authml.ingest) decodes each record, walks it and fingerprints it: a few thousand
records a second. Most NDJSON records are plain: nested objects, string or integer values, a
Windows identity (channel, computer, record id), an ISO 8601 UTC @timestamp, an IPv4 source. For
those, a few SQL statements per block of lines compute the same typed columns, the same event id
(the fingerprint's bytes built in SQL) and the same stored document (the record with authml's
fields merged in). A record is taken here only when every value it contributes is one of the forms
decoded below; anything else (invalid JSON or UTF-8, literal dotted keys, floats, escaped quotes
or \\u escapes, arrays of several values in a typed field, offsets in @timestamp, IPv6, records
with no Windows identity or an ``authml`` or ``_source`` key of their own) goes back to the Python
path, so the outcome of an ingest does not depend on which path stored a record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import duckdb
import numpy as np
import pyarrow as pa

from authml.ecs import utc_timestamp
from authml.embedded.duck import registered
from authml.embedded.schema import event_columns, quote
from authml.embedded.store import DeadLetter, Store, StoredEvent
from authml.ids import IDENTITY_FIELDS, IDENTITY_SALT, java_order
from authml.sources.ndjson import LineBlock

# Fields read as raw JSON (their type matters: the fingerprint hashes a string and an integer
# differently; ECS array fields hold one value in a list); every other typed field is read as text.
_JSON_FIELDS = frozenset({"event.category", "event.type", "event.ingested", "user.name", *IDENTITY_FIELDS})

# A line matching this goes to the Python path: an escaped quote or \u escape (the checks below
# read strings without decoding escapes), an `authml` or `_source` key, a key containing a dot
# (ES and the Python path read `{"user.name": x}` as `user.name`), a number with a fraction or an
# exponent, minus zero or 19+ digits (the Python path re-serialises those differently).
_PYTHON_PATH_LINE = (
    r'\\"|\\u|"(authml|_source)"\s*:|"[^"]*\.[^"]*"\s*:|("\s*:|[\[,])\s*(-0|-?[0-9]+[.eE]|-?[0-9]{19})'
)
# A JSON string without escapes, alone or as the only item of a list, and its text.
_PLAIN_STRING = r'"([^"\\]*)"|\["([^"\\]*)"\]'
_SMALL_INTEGER = r"-?[0-9]{1,18}"
_PRINTABLE_ASCII_STRING = r'"[ !#-\[\]-~]*"'
_UTC_TIMESTAMP = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z?"
_IPV4_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_IPV4_OCTET}(\.{_IPV4_OCTET}){{3}}"


# Lines per Arrow record batch handed to DuckDB; each batch is one task for its threads. A block of
# 24,700 generated events (32 MB): one batch 1.4 s to parse, batches of 1,024 lines 0.8-0.9 s.
LINES_PER_BATCH = 1024

# Given the indexes (into the block) of the lines left to the Python path: those records prepared
# as the Python path prepares them (events, dead letters, how many --only-auth skipped).
PythonPath = Callable[[list[int]], tuple[list[StoredEvent], list[DeadLetter], int]]


@dataclass(slots=True)
class BlockOutcome:
    read: int  # non-blank lines of the block
    stored: int
    duplicates: int
    skipped: int  # not an authentication event, with --only-auth
    dead_letters: list[DeadLetter]


@dataclass(slots=True)
class ParsedBlock:
    block: LineBlock
    rows: pa.Table  # one row per non-blank UTF-8 line: typed values, event id, document, ``columnar``
    undecodable: list[int]  # indexes of the lines that are not UTF-8, for the Python path


def parse_block(connection: duckdb.DuckDBPyConnection, block: LineBlock, ingested: datetime) -> ParsedBlock:
    """The block's lines parsed by DuckDB. Touches no table, so it runs on any connection to the
    store (a cursor in another thread parses the next block while this one is stored)."""
    lines, undecodable = _line_table(block)
    with registered(connection, "authml_lines", lines):
        rows = connection.sql(_parse_sql(), params=[utc_timestamp(ingested)]).to_arrow_table()
    return ParsedBlock(block, rows, undecodable)


def load_block(
    store: Store,
    parsed: ParsedBlock,
    source_file: str,
    auth_codes: frozenset[str] | None,
    python_path: PythonPath,
) -> BlockOutcome:
    """Store a parsed block's records (inside the caller's transaction): the plain ones here, the
    others prepared by ``python_path``. As when every line takes the Python path, of several
    records with one id the first in the file is stored and the others count as duplicates."""
    connection = store.connection
    block = parsed.block
    with registered(connection, "authml_parsed", parsed.rows):
        read, columnar, left = _counts(connection)
        events, letters, python_skipped = python_path(sorted(left + parsed.undecodable))
        skip = (
            "false"
            if auth_codes is None
            else f"NOT coalesce({quote('event.code')} IN ({_sql_list(auth_codes)}), false)"
        )
        (skipped,) = connection.execute(
            f"SELECT count(*) FROM authml_parsed WHERE columnar AND {skip}"
        ).fetchall()[0]
        with registered(connection, "authml_python_ids", _python_ids(events, block.first_line)):
            # Of several records with one id, the first line is stored, whichever path read it.
            # The anti-join, not ON CONFLICT DO NOTHING, skips ids already stored: measured 3x faster.
            event_id = quote("authml.event_id")
            (inserted,) = connection.execute(
                f"""WITH candidates AS (
                  SELECT {event_id} AS event_id, line_index FROM authml_parsed WHERE columnar AND NOT ({skip})
                  UNION ALL SELECT event_id, line_index FROM authml_python_ids
                ), first_lines AS (SELECT event_id, min(line_index) AS line_index FROM candidates GROUP BY event_id)
                INSERT INTO events SELECT {_insert_columns()} FROM authml_parsed AS p
                JOIN first_lines AS f ON f.event_id = p.{event_id} AND f.line_index = p.line_index
                WHERE p.columnar AND NOT EXISTS (SELECT 1 FROM events AS e WHERE e._id = p.{event_id})""",
                {"source_file": source_file, "first_line": block.first_line},
            ).fetchall()[0]
    python_inserted = store.insert_batch(events, letters)
    return BlockOutcome(
        read=read + len(parsed.undecodable),
        stored=int(inserted) + python_inserted,
        duplicates=(columnar - skipped - int(inserted)) + (len(events) - python_inserted),
        skipped=skipped + python_skipped,
        dead_letters=letters,
    )


def _counts(connection: duckdb.DuckDBPyConnection) -> tuple[int, int, list[int]]:
    read, columnar, left = connection.execute(
        "SELECT count(*), count(*) FILTER (WHERE columnar), "
        "list(line_index ORDER BY line_index) FILTER (WHERE NOT columnar) FROM authml_parsed"
    ).fetchall()[0]
    return read, columnar, left or []


def _python_ids(events: list[StoredEvent], first_line: int) -> pa.Table:
    """(event id, line index) of the records the Python path prepared; positions are "line N"."""
    return pa.table(
        {
            "event_id": pa.array([e.event_id for e in events], pa.string()),
            "line_index": pa.array(
                [int(e.source_position.removeprefix("line ")) - first_line for e in events], pa.int64()
            ),
        }
    )


def _line_table(block: LineBlock) -> tuple[pa.Table, list[int]]:
    """The block's lines as an Arrow string column without copying them; lines that are not
    UTF-8 are left out (blanked) and returned for the Python path, which dead-letters them."""
    starts, ends, data = block.starts, block.ends, block.data
    undecodable: list[int] = []
    if not block.utf8:
        keep = []
        for index in range(len(block)):
            try:
                block.line(index).decode("utf-8")
                keep.append(index)
            except UnicodeDecodeError:
                undecodable.append(index)
        pieces = [block.line(index) for index in keep]
        lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
        data = b"".join(pieces)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        indexes = np.asarray(keep, dtype=np.int64)
    else:
        indexes = np.arange(len(block), dtype=np.int64)
    # Each line's slice of `data` starts at its own offset; the newline between lines is part of
    # the preceding string, and JSON parsing ignores it.
    offsets = np.append(starts, ends[-1] if len(ends) else 0).astype(np.int64)
    text = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(data))
    whole = pa.table({"line_index": pa.array(indexes), "line": text})
    # DuckDB hands an Arrow table's record batches to its threads: one batch would be parsed on one
    # core. The slices share the buffers above.
    return pa.Table.from_batches(whole.to_batches(max_chunksize=LINES_PER_BATCH), whole.schema), undecodable


def _sql_list(values: frozenset[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


@cache
def _transform_spec() -> str:
    tree: dict = {}
    for column in event_columns():
        if column.field.startswith("authml."):
            continue
        *parents, leaf = column.field.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = "JSON" if column.field in _JSON_FIELDS else "VARCHAR"
    return json.dumps(tree).replace("'", "''")


def _value(field: str) -> str:
    return "v." + ".".join(quote(part) for part in field.split("."))


def _json_text(field: str) -> tuple[str, str]:
    """(the field's value as the Python path stores it, whether it is in a form decoded here)
    for a field read as raw JSON: a plain string (alone or the only item of a list), an integer,
    true, false, null or []."""
    j = _value(field)
    value = (
        f"CASE WHEN {j} IS NULL OR {j} IN ('null', '[]') THEN NULL "
        f"WHEN regexp_full_match({j}, '{_PLAIN_STRING}') "
        f"THEN coalesce(nullif(regexp_extract({j}, '^\"([^\"\\\\]*)\"$', 1), ''), regexp_extract({j}, '{_PLAIN_STRING}', 2)) "
        f"ELSE {j}::VARCHAR END"
    )
    ok = (
        f"({j} IS NULL OR {j} IN ('null', '[]', 'true', 'false') "
        f"OR regexp_full_match({j}, '{_PLAIN_STRING}|{_SMALL_INTEGER}'))"
    )
    return value, ok


def _identity_bytes(field: str) -> str:
    """The fingerprint's bytes for one identity value: 0x00, then a string's UTF-8 bytes or an
    integer's 4 (or, outside 32 bits, 8) little-endian bytes."""
    j = _value(field)
    number = f"TRY_CAST({j}::VARCHAR AS BIGINT)"

    def little_endian(size: int) -> str:
        return (
            f"printf('{'%02x' * size}', "
            + ", ".join(f"({number} >> {8 * i}) & 255" for i in range(size))
            + ")"
        )

    integer = f"unhex(CASE WHEN {number} BETWEEN -2147483648 AND 2147483647 THEN {little_endian(4)} ELSE {little_endian(8)} END)"
    return (
        f"'\\x00'::BLOB || CASE WHEN starts_with({j}::VARCHAR, '\"') "
        f"THEN encode(regexp_extract({j}::VARCHAR, '^\"(.*)\"$', 1)) ELSE {integer} END"
    )


@cache
def _parse_sql() -> str:
    """One row per non-blank line: the typed values, the event id, the document to store, and
    whether the record is stored here (``columnar``) or left to the Python path."""
    identity_ok = " AND ".join(
        f"{_value(f)} IS NOT NULL AND {_value(f)} NOT IN ('null', '\"\"') "
        f'AND regexp_full_match({_value(f)}, \'"[^"\\\\]*"|{_SMALL_INTEGER}\')'
        for f in IDENTITY_FIELDS
    )
    fingerprint = " || ".join(_identity_bytes(f) for f in sorted(IDENTITY_FIELDS, key=java_order))
    event_id = f"to_base64(unhex(sha256('{IDENTITY_SALT}'::BLOB || {fingerprint})))"
    user_name = _value("user.name")
    user_key = (
        f"CASE WHEN {user_name} IS NULL OR {user_name} = 'null' THEN NULL "
        f"ELSE nullif(lower(trim(regexp_extract({user_name}::VARCHAR, '^\"(.*)\"$', 1))), '') END"
    )
    typed: list[str] = []
    checks = [
        "v IS NOT NULL",
        "starts_with(ltrim(line), '{')",
        f"NOT regexp_matches(line, '{_PYTHON_PATH_LINE}')",
        identity_ok,
        f"({user_name} IS NULL OR {user_name} = 'null' OR regexp_full_match({user_name}, '{_PRINTABLE_ASCII_STRING}'))",
        f"regexp_full_match({_value('@timestamp')}, '{_UTC_TIMESTAMP}')",
        f"TRY_CAST(rtrim({_value('@timestamp')}, 'Z') AS TIMESTAMP) IS NOT NULL",
        f"({_value('source.ip')} IS NULL OR regexp_full_match({_value('source.ip')}, '{_IPV4}'))",
    ]
    for column in event_columns():
        name = quote(column.field)
        if column.field == "authml.event_id":
            typed.append(f"{event_id} AS {name}")
        elif column.field == "authml.user_key":
            typed.append(f"{user_key} AS {name}")
        elif column.field == "event.ingested":
            typed.append(f"CAST(rtrim($1, 'Z') AS TIMESTAMP) AS {name}")
        elif column.field == "@timestamp":
            typed.append(f"TRY_CAST(rtrim({_value(column.field)}, 'Z') AS TIMESTAMP) AS {name}")
        elif column.field in _JSON_FIELDS:
            value, ok = _json_text(column.field)
            typed.append(f"TRY_CAST({value} AS {column.sql_type}) AS {name}")
            checks.append(ok)
        else:
            value = _value(column.field)
            typed.append(f"TRY_CAST({value} AS {column.sql_type}) AS {name}")
            checks.append(
                f"({value} IS NULL OR NOT (starts_with({value}, '[') OR starts_with({value}, '{{')))"
            )
    previous_ingested = _value("event.ingested")
    authml_fields = (
        f"'{{\"event_id\":' || to_json({quote('authml.event_id')}) "
        f"|| CASE WHEN {quote('authml.user_key')} IS NULL THEN '' ELSE ',\"user_key\":' || to_json({quote('authml.user_key')}) END "
        f"|| CASE WHEN {previous_ingested} IS NULL OR {previous_ingested} = 'null' THEN '' "
        f"ELSE ',\"source_ingested\":' || {previous_ingested}::VARCHAR END || '}}'"
    )
    document = f"json_merge_patch(line, '{{\"event\":{{\"ingested\":' || to_json($1) || '}},\"authml\":' || {authml_fields} || '}}')"
    return f"""
WITH parsed AS (
  SELECT line_index, line, try(json_transform(line, '{_transform_spec()}')) AS v
  FROM authml_lines
  WHERE NOT regexp_full_match(line, '[ \\t\\n\\r\\x0b\\x0c]*')
), typed AS (
  SELECT line_index, line, v, coalesce({" AND ".join(checks)}, false) AS columnar, {", ".join(typed)}
  FROM parsed
)
SELECT * EXCLUDE (line, v), CASE WHEN columnar THEN {document} END AS document FROM typed"""


@cache
def _insert_columns() -> str:
    typed = ", ".join(quote(c.field) for c in event_columns())
    return f"p.{quote('authml.event_id')}, {typed}, document, $source_file, 'line ' || (p.line_index + $first_line), NULL"
