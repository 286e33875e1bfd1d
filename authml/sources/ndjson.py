"""ECS NDJSON as Winlogbeat, the Elastic Agent or an Elasticsearch export writes it, plain or gzip."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from authml.sources import SourceRecord

BLOCK_BYTES = 32 * 2**20
_WHITESPACE = b" \t\n\r\x0b\x0c"


def _open(path: Path) -> BinaryIO:
    with path.open("rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if compressed else path.open("rb")


def open_binary_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for a plain or gzip-compressed file; a truncated gzip ends the
    iteration with an OSError/EOFError that the caller turns into a dead letter."""
    with _open(path) as handle:
        yield from enumerate(handle, start=1)


def parse_line(line_number: int, line: bytes) -> tuple[str, str, dict[str, Any] | None, str | None] | None:
    """(position, raw line, object or None, error or None) for one line; None for a blank line."""
    if not line.strip(_WHITESPACE):
        return None
    raw = line.rstrip(b"\r\n").decode("utf-8", "replace")
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"line {line_number}", raw, None, f"not valid JSON: {exc}"
    if not isinstance(value, dict):
        return f"line {line_number}", raw, None, f"a JSON {type(value).__name__}, not an object"
    return f"line {line_number}", raw, value, None


def truncated(after_line: int, exc: BaseException) -> tuple[str, None, None, str]:
    return f"after line {after_line}", None, None, f"file is truncated or corrupt: {exc}"


def iter_json_objects(path: Path) -> Iterator[tuple[str, str | None, dict[str, Any] | None, str | None]]:
    """(position, raw line, object or None, error or None) for each non-blank line."""
    line_number = 0
    try:
        for line_number, line in open_binary_lines(path):
            parsed = parse_line(line_number, line)
            if parsed is not None:
                yield parsed
    except (OSError, EOFError) as exc:
        yield truncated(line_number, exc)


def record_from_parsed(
    position: str, raw: str | None, value: dict[str, Any] | None, error: str | None
) -> SourceRecord:
    if error is not None:
        return SourceRecord(position, raw, error=error)
    # An export of search hits carries the event under _source.
    document = value["_source"] if isinstance(value.get("_source"), dict) else value
    return SourceRecord(position, raw, document=document)


def read_ndjson(path: Path) -> Iterator[SourceRecord]:
    for parsed in iter_json_objects(path):
        yield record_from_parsed(*parsed)


@dataclass(slots=True)
class LineBlock:
    """Whole lines of a file: ``data[starts[i]:ends[i]]`` is line ``first_line + i`` without its
    newline. ``utf8`` says whether every line decodes (the columnar reader needs valid text)."""

    first_line: int
    data: bytes
    starts: np.ndarray
    ends: np.ndarray
    utf8: bool

    def __len__(self) -> int:
        return len(self.starts)

    def line(self, index: int) -> bytes:
        return self.data[self.starts[index] : self.ends[index]]


@dataclass(slots=True)
class ReadFailure:
    """The file could not be read past ``after_line`` (a truncated or corrupt gzip)."""

    after_line: int
    error: BaseException


def read_line_blocks(path: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[LineBlock | ReadFailure]:
    """The file in blocks of about ``block_bytes`` of whole lines, for readers that parse many lines
    at once; the lines are the ones ``open_binary_lines`` yields, numbered the same."""
    next_line = 1
    carry = b""
    try:
        with _open(path) as handle:
            while True:
                chunk = handle.read(block_bytes)
                if not chunk:
                    if carry:
                        yield _block(next_line, carry, final=True)
                    return
                data = carry + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                carry = data[cut + 1 :]
                block = _block(next_line, data[: cut + 1], final=False)
                next_line += len(block)
                yield block
    except (OSError, EOFError) as exc:
        yield ReadFailure(next_line - 1, exc)


def _block(first_line: int, data: bytes, *, final: bool) -> LineBlock:
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
    ends = newlines if not final else np.append(newlines, len(data))
    starts = np.empty(len(ends), dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    try:
        data.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    return LineBlock(first_line, data, starts, ends.astype(np.int64), utf8)
