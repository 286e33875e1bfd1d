"""EVTX files, read with the `evtx` parser (pyevtx-rs) and normalised to ECS by winlog.py.

What the parser (0.14) does with damage, found on the corrupt samples and on truncated copies:
- a chunk it cannot open (bad magic, bad header, string cache it cannot build) raises
  ``RuntimeError("Failed to parse chunk number N: ...")`` from ``next()``; iteration can go on and
  continues with the next chunk, so the chunk's records are lost and that one error names them;
- a record whose binary XML fails raises ``"Failed to parse record number N"`` and reading goes on
  with the next record;
- a record header it cannot read (for example a zero data size) raises an error that names neither
  record nor chunk, and the rest of that chunk is skipped;
- a record with a bad magic inside a chunk ends that chunk *without any error*, and a chunk cut short
  by the end of the file is skipped *without any error*.
So this reader reads every chunk header itself (128 bytes each) and compares the record ids each
chunk declares with the ids the parser returned. Every id the parser did not return is dead-lettered
with the parser's error when there was one, or with what the chunk header says when there was not.
A chunk cut short by the end of the file is parsed again from a zero-padded copy, which recovers
every record that lies wholly inside the bytes that are there."""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from authml.sources import SourceRecord
from authml.sources.winlog import NormaliseError, normalise_record

FILE_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
FILE_HEADER_SIZE = 4096
CHUNK_SIZE = 65536
# A record takes at least 28 bytes and a chunk's records start after its 512-byte header.
MAX_RECORDS_PER_CHUNK = (CHUNK_SIZE - 512) // 28
_CHUNK_ERROR = re.compile(r"chunk number (\d+)")
_RECORD_ERROR = re.compile(r"record number (\d+)")
_CHUNK_IDS_ERROR = re.compile(r"record IDs (\d+)\.\.(\d+)")


@dataclass(slots=True)
class ChunkSpan:
    """A chunk with a readable header: where it is and which record ids it declares."""

    number: int
    first_record: int
    last_record: int
    bytes_present: int = CHUNK_SIZE  # fewer when the file ends inside the chunk
    reported: bool = False  # a chunk-level error already accounted for all its records


def read_evtx(path: Path) -> Iterator[SourceRecord]:
    """Every record of one EVTX file as an ECS document, and every unreadable part as an error."""
    try:
        with path.open("rb") as handle:
            head = handle.read(FILE_HEADER_SIZE)
            if head.startswith(FILE_MAGIC) and len(head) == FILE_HEADER_SIZE:
                spans, corrupt_headers = _survey_chunks(handle)
    except OSError as exc:
        yield SourceRecord("file", None, error=f"cannot be read: {exc}")
        return
    if not head.startswith(FILE_MAGIC):
        yield SourceRecord(
            "file header", None, error=f"not an EVTX file: it starts with {head[:8]!r}, not 'ElfFile'"
        )
        return
    if len(head) < FILE_HEADER_SIZE:
        yield SourceRecord(
            "file header", None, error=f"the file is {len(head)} bytes, shorter than an EVTX header"
        )
        return
    accountant = _Accountant(spans)
    yield from _parse(str(path), accountant)
    truncated = spans[-1] if spans and spans[-1].bytes_present < CHUNK_SIZE else None
    if truncated is not None and not accountant.returned_any(truncated):
        yield from _parse_padded(path, head, truncated, accountant)
    yield from accountant.finish()
    yield from corrupt_headers
    missing = _missing_chunks(head, path.stat().st_size)
    if missing:
        yield SourceRecord("end of file", None, error=missing)


def _missing_chunks(head: bytes, size: int) -> str | None:
    """Chunks the file header declares that the file is too short to hold (a cut-off copy)."""
    declared = struct.unpack_from("<H", head, 42)[0]
    present = max(0, -(-(size - FILE_HEADER_SIZE) // CHUNK_SIZE))
    if present >= declared:
        return None
    return (
        f"the file is truncated: its header declares {declared} chunks but it ends after {present}; "
        f"whatever chunks {present} to {declared - 1} held is lost"
    )


def _survey_chunks(handle: io.BufferedReader) -> tuple[list[ChunkSpan], list[SourceRecord]]:
    """The chunks whose headers declare a plausible range of record ids, and an error for each
    chunk header whose range is impossible (so what that chunk lost cannot be counted)."""
    spans: list[ChunkSpan] = []
    corrupt: list[SourceRecord] = []
    size = _file_size(handle)
    number = 0
    while True:
        handle.seek(FILE_HEADER_SIZE + number * CHUNK_SIZE)
        header = handle.read(40)
        if len(header) < 40:
            break
        if header.startswith(CHUNK_MAGIC):
            first, last = struct.unpack_from("<QQ", header, 24)
            present = min(CHUNK_SIZE, size - FILE_HEADER_SIZE - number * CHUNK_SIZE)
            if first <= last < first + MAX_RECORDS_PER_CHUNK:
                spans.append(ChunkSpan(number, first, last, present))
            else:
                corrupt.append(
                    SourceRecord(
                        f"chunk {number}",
                        None,
                        error=f"the chunk header declares records {first} to {last}, which no chunk can hold; "
                        "the header is corrupt, so the records this chunk may have lost cannot be counted",
                    )
                )
        number += 1
    return spans, corrupt


def _file_size(handle: io.BufferedReader) -> int:
    position = handle.tell()
    size = handle.seek(0, io.SEEK_END)
    handle.seek(position)
    return size


def _parse(source: str | io.BytesIO, accountant: _Accountant) -> Iterator[SourceRecord]:
    from evtx import PyEvtxParser

    try:
        records = PyEvtxParser(source, indent=False).records_json()
    except (OSError, RuntimeError) as exc:
        yield SourceRecord("file header", None, error=f"the EVTX parser cannot open it: {exc}")
        return
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except RuntimeError as exc:
            yield from accountant.parser_error(str(exc))
            continue
        record_id = record["event_record_id"]
        gaps = accountant.returned(record_id)
        if gaps:
            yield from gaps
        yield _to_source_record(record_id, record["data"])


def _parse_padded(
    path: Path, head: bytes, span: ChunkSpan, accountant: _Accountant
) -> Iterator[SourceRecord]:
    """Re-read a chunk cut short by the end of the file from a copy padded with zeros."""
    with path.open("rb") as handle:
        handle.seek(FILE_HEADER_SIZE + span.number * CHUNK_SIZE)
        present = handle.read(CHUNK_SIZE)
    accountant.explain(span, f"the file ends {len(present)} bytes into chunk {span.number}")
    padded = head + present + bytes(CHUNK_SIZE - len(present))
    accountant.renumber(span, 0)
    yield from _parse(io.BytesIO(padded), accountant)
    accountant.renumber(span, span.number)


def _to_source_record(record_id: int, data: str) -> SourceRecord:
    position = f"record {record_id}"
    try:
        return SourceRecord(position, data, document=normalise_record(data))
    except NormaliseError as exc:
        return SourceRecord(position, data, error=str(exc))


class _Accountant:
    """Follows the parser through the chunks, in file order, and dead-letters every record id a
    chunk header declares that the parser neither returned nor reported an error for."""

    def __init__(self, spans: list[ChunkSpan]) -> None:
        self._spans = spans
        self._by_number = {span.number: span for span in spans}
        self._current = -1  # index into _spans of the chunk being read
        self._next_id = 0  # the next record id expected in the current chunk
        self._pending: str | None = None  # a parser error not yet tied to a chunk
        self._reasons: dict[int, str] = {}
        self._returned_chunks: set[int] = set()
        self._renumbered: dict[int, int] = {}

    def returned_any(self, span: ChunkSpan) -> bool:
        return span.number in self._returned_chunks

    def explain(self, span: ChunkSpan, reason: str) -> None:
        self._reasons[span.number] = reason

    def renumber(self, span: ChunkSpan, parser_number: int) -> None:
        """The padded copy holds the chunk as its chunk 0; map the parser's numbers back."""
        self._renumbered = {} if parser_number == span.number else {parser_number: span.number}

    def returned(self, record_id: int) -> list[SourceRecord]:
        """Called before a record (or a record-level error) with this id is passed on; the gaps
        that its id reveals, to pass on first."""
        index = self._locate(record_id)
        if index is None:
            return []  # outside every declared range (a stale chunk header): nothing to compare with
        gaps: list[SourceRecord] = []
        if index != self._current:
            gaps.extend(self._close_until(index))
            self._current = index
            self._next_id = self._spans[index].first_record
        span = self._spans[index]
        self._returned_chunks.add(span.number)
        if record_id > self._next_id:
            gaps.append(self._gap(span, self._next_id, record_id - 1))
        self._next_id = max(self._next_id, record_id + 1)
        return gaps

    def parser_error(self, message: str) -> Iterator[SourceRecord]:
        chunk = _CHUNK_ERROR.search(message)
        if chunk:
            number = self._renumbered.get(int(chunk.group(1)), int(chunk.group(1)))
            span = self._by_number.get(number)
            if span is not None:
                span.reported = True
                message += f" (records {span.first_record} to {span.last_record} are lost)"
            yield SourceRecord(f"chunk {number}", None, error=message)
            return
        ids = _CHUNK_IDS_ERROR.search(message)
        span = next((s for s in self._spans if ids and s.first_record == int(ids.group(1))), None)
        if span is not None:  # the chunk's missing ids are dead-lettered with this reason
            self._reasons[span.number] = message
            return
        record = _RECORD_ERROR.search(message)
        if record:
            yield from self.returned(int(record.group(1)))
            yield SourceRecord(f"record {record.group(1)}", None, error=message)
            return
        self._pending = message

    def finish(self) -> Iterator[SourceRecord]:
        yield from self._close_until(len(self._spans))
        self._current = len(self._spans)
        if self._pending is not None:
            yield SourceRecord("file", None, error=self._pending)

    def _locate(self, record_id: int) -> int | None:
        current = self._spans[self._current] if self._current >= 0 else None
        if current is not None and current.first_record <= record_id <= current.last_record:
            return self._current
        following = self._spans[self._current + 1] if self._current + 1 < len(self._spans) else None
        if following is not None and following.first_record <= record_id <= following.last_record:
            return self._current + 1
        if current is not None and record_id == self._next_id:
            return None  # the current chunk goes on past what its header declares
        for index in range(self._current + 1, len(self._spans)):
            if self._spans[index].first_record <= record_id <= self._spans[index].last_record:
                return index
        return None

    def _close_until(self, index: int) -> Iterator[SourceRecord]:
        """Dead-letter what is missing in the current chunk and in every chunk skipped before index."""
        if self._current >= 0:
            span = self._spans[self._current]
            if self._next_id <= span.last_record and not span.reported:
                yield self._gap(span, self._next_id, span.last_record)
        for skipped in self._spans[self._current + 1 : index]:
            if not skipped.reported:
                yield self._gap(skipped, skipped.first_record, skipped.last_record)

    def _gap(self, span: ChunkSpan, first: int, last: int) -> SourceRecord:
        reason = self._reasons.get(span.number) or self._pending
        self._pending = None
        if reason is None:
            reason = (
                f"the parser stopped reading chunk {span.number} without an error; its data is corrupt there"
            )
        ids = f"record {first}" if first == last else f"records {first} to {last}"
        return SourceRecord(
            f"chunk {span.number}, {ids}",
            None,
            error=f"{ids} of chunk {span.number} could not be read: {reason}",
        )
