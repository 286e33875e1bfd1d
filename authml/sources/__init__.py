"""Readers for the formats people have: EVTX files, ECS NDJSON (Winlogbeat, Elastic Agent), and
flat Splunk-style JSON. Each reader yields one SourceRecord per input record, good or bad, so the
ingest loop can account for every record."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authml.errors import InputError

FORMATS = ("evtx", "ndjson", "splunk")


@dataclass(slots=True)
class SourceRecord:
    """One input record. Exactly one of ``document`` and ``error`` is set."""

    position: str  # where it is in its file, for a person: "line 17", "record 1234", "chunk 3"
    raw: str | None  # the record as read, kept for the dead-letter file
    document: dict[str, Any] | None = None  # the ECS document
    error: str | None = None  # why it could not be read or normalised


def detect_format(path: Path) -> str:
    """Guess a file's format from its first bytes (and the .evtx name)."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"ElfFile\x00") or path.suffix.lower() == ".evtx":
        return "evtx"
    opener = gzip.open if head.startswith(b"\x1f\x8b") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as text:
            for line in text:
                if line.strip():
                    return _detect_json_line(line)
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot be read: {exc}") from exc
    return "ndjson"  # an empty file; any reader yields nothing


def _detect_json_line(line: str) -> str:
    from authml.sources.splunk import looks_like_splunk

    return "splunk" if looks_like_splunk(line) else "ndjson"


def read_records(path: Path, fmt: str) -> Iterator[SourceRecord]:
    """Every record of one file, in the given format."""
    if fmt == "evtx":
        from authml.sources.evtx import read_evtx

        return read_evtx(path)
    if fmt == "ndjson":
        from authml.sources.ndjson import read_ndjson

        return read_ndjson(path)
    if fmt == "splunk":
        from authml.sources.splunk import read_splunk

        return read_splunk(path)
    raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


INPUT_SUFFIXES = (".evtx", ".json", ".ndjson", ".jsonl", ".gz", ".log")


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files named directly, and the input files found recursively in named folders."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path} does not exist")
    return files
