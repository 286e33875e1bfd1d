"""ECS NDJSON as Winlogbeat, the Elastic Agent or an Elasticsearch export writes it, plain or gzip."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from authml.sources import SourceRecord


def open_binary_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for a plain or gzip-compressed file; a truncated gzip ends the
    iteration with an OSError/EOFError that the caller turns into a dead letter."""
    with path.open("rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:
        yield from enumerate(handle, start=1)


def iter_json_objects(path: Path) -> Iterator[tuple[str, str, dict[str, Any] | None, str | None]]:
    """(position, raw line, object or None, error or None) for each non-blank line."""
    line_number = 0
    try:
        for line_number, line in open_binary_lines(path):
            if not line.strip():
                continue
            raw = line.rstrip(b"\r\n").decode("utf-8", "replace")
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield f"line {line_number}", raw, None, f"not valid JSON: {exc}"
                continue
            if not isinstance(value, dict):
                yield f"line {line_number}", raw, None, f"a JSON {type(value).__name__}, not an object"
                continue
            yield f"line {line_number}", raw, value, None
    except (OSError, EOFError) as exc:
        yield f"after line {line_number}", None, None, f"file is truncated or corrupt: {exc}"


def read_ndjson(path: Path) -> Iterator[SourceRecord]:
    for position, raw, value, error in iter_json_objects(path):
        if error is not None:
            yield SourceRecord(position, raw, error=error)
        else:
            # An export of search hits carries the event under _source.
            document = value["_source"] if isinstance(value.get("_source"), dict) else value
            yield SourceRecord(position, raw, document=document)
