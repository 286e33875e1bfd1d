"""Reading input files into a sink (the embedded store, or Elasticsearch) without losing a record.

Per file, every record read is exactly one of: stored, a duplicate of an event already stored,
dead-lettered (with its reason and raw content), or skipped by the ``--only-auth`` choice. The
summary shows the four counts and checks that they add up to the records read.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from authml.ecs import get_path, user_key, utc_timestamp
from authml.embedded.schema import event_columns
from authml.embedded.store import DeadLetter, StoredEvent
from authml.ids import event_id
from authml.runtime import cyclic_gc_paused
from authml.sources import SourceRecord, detect_format, read_records
from authml.sources.ndjson import ReadFailure, parse_line, read_line_blocks, record_from_parsed, truncated

BATCH_SIZE = 5000


@dataclass(slots=True)
class BatchOutcome:
    stored: int
    duplicates: int
    failed: list[DeadLetter] = field(default_factory=list)  # events the sink could not store


class EventSink(Protocol):
    def write_batch(
        self, events: Sequence[StoredEvent], dead_letters: Sequence[DeadLetter]
    ) -> BatchOutcome: ...


@dataclass(slots=True)
class FileSummary:
    path: str
    format: str
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    skipped: int = 0

    @property
    def balanced(self) -> bool:
        return self.read == self.stored + self.duplicates + self.dead_lettered + self.skipped

    def add(self, other: FileSummary) -> None:
        self.read += other.read
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.dead_lettered += other.dead_lettered
        self.skipped += other.skipped


@dataclass(slots=True)
class IngestOptions:
    format: str | None = None  # None: detect per file
    only_auth: bool = False  # skip records whose event.code is not an authentication code
    batch_size: int = BATCH_SIZE
    # NDJSON into the embedded store: plain records through DuckDB's JSON reader (see
    # authml.embedded.ndjson_columnar); False sends every record through the Python path.
    columnar: bool = True


class InvalidEvent(ValueError):
    """A document that cannot be stored as an event; the message is the dead-letter reason."""


def parse_timestamp(value: Any) -> datetime:
    """@timestamp as a naive UTC datetime. Accepts ISO 8601 (with Z or an offset) and epoch millis."""
    if value is None or value == "":
        raise InvalidEvent("missing @timestamp")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None)
    if not isinstance(value, str):
        raise InvalidEvent(f"@timestamp {value!r} is not a date")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"@timestamp {value!r} is not an ISO 8601 date") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def prepare_event(document: dict[str, Any], source_file: str, position: str, ingested: str) -> StoredEvent:
    """Validate a normalised ECS document and add authml's fields; raises InvalidEvent."""
    timestamp = parse_timestamp(get_path(document, "@timestamp"))
    source_ip = get_path(document, "source.ip")
    if source_ip is not None and source_ip not in _VALID_IPS:
        _check_ip(source_ip)
    try:
        identity = event_id(document)  # from the document as the source gave it
    except ValueError as exc:
        raise InvalidEvent(str(exc)) from None
    event = document.get("event")
    if not isinstance(event, dict):
        event = document["event"] = {}
    authml_fields = document.get("authml")
    if not isinstance(authml_fields, dict):
        authml_fields = document["authml"] = {}
    previous_ingested = get_path(document, "event.ingested")
    if previous_ingested is not None:
        authml_fields["source_ingested"] = previous_ingested
    event.pop("ingested", None)
    document.pop("event.ingested", None)  # a literal dotted key would shadow the nested one
    authml_fields["event_id"] = identity
    key = user_key(get_path(document, "user.name"))
    if key is not None:
        authml_fields["user_key"] = key
    values, multi_valued = _typed_values(document)
    layout = _column_layout()
    values[layout.timestamp_index] = timestamp.isoformat()
    event["ingested"] = values[layout.ingested_index] = ingested
    return StoredEvent(identity, document, values, source_file, position, multi_valued)


# Source IPs repeat heavily; remembering the valid ones spares a parse per record.
_VALID_IPS: set[str] = set()
_VALID_IPS_LIMIT = 100_000


def _check_ip(value: Any) -> None:
    try:
        ipaddress.ip_address(value)
    except (ValueError, TypeError):
        raise InvalidEvent(f"source.ip {value!r} is not an IP address") from None
    if len(_VALID_IPS) >= _VALID_IPS_LIMIT:
        _VALID_IPS.clear()
    _VALID_IPS.add(value)


@dataclass(frozen=True, slots=True)
class _ColumnLayout:
    tree: dict[str, Any]  # nested like the mapping; a leaf is its column index
    es_types: tuple[str, ...]
    fields: tuple[str, ...]
    timestamp_index: int
    ingested_index: int


@cache
def _column_layout() -> _ColumnLayout:
    columns = event_columns()
    tree: dict[str, Any] = {}
    for index, column in enumerate(columns):
        *parents, leaf = column.field.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = index
    fields = tuple(c.field for c in columns)
    return _ColumnLayout(
        tree,
        tuple(c.es_type for c in columns),
        fields,
        fields.index("@timestamp"),
        fields.index("event.ingested"),
    )


def _typed_values(document: dict[str, Any]) -> tuple[list[Any], tuple[str, ...]]:
    """One value per typed column, and the typed fields that held several values.

    Walks the document along the mapping's tree, so subtrees no column reads (the many
    EventData fields, `related`, `data_stream`, ...) are skipped; this runs for every record."""
    layout = _column_layout()
    values: list[Any] = [None] * len(layout.es_types)
    multi_valued: list[str] = []
    _walk(document, layout.tree, layout, values, multi_valued)
    return values, tuple(multi_valued)


def _walk(
    node: dict[str, Any], tree: dict[str, Any], layout: _ColumnLayout, values: list[Any], multi: list[str]
) -> None:
    for key, value in node.items():
        branch = tree.get(key)
        if branch is None:
            if "." in key:  # a literal dotted key ("user.name": ...) means the same as nested objects
                _walk(_nest_dotted(key, value), tree, layout, values, multi)
            continue
        if value is None:
            continue
        if isinstance(branch, dict):
            if isinstance(value, dict):
                _walk(value, branch, layout, values, multi)
            continue
        if value.__class__ is str and layout.es_types[branch] != "date":
            values[branch] = value
        elif isinstance(value, list) and len(value) > 1:
            multi.append(layout.fields[branch])
        else:
            values[branch] = _coerce(value, layout.es_types[branch])


def _nest_dotted(key: str, value: Any) -> dict[str, Any]:
    *parents, leaf = key.split(".")
    nested: dict[str, Any] = {leaf: value}
    for part in reversed(parents):
        nested = {part: nested}
    return nested


def _coerce(value: Any, es_type: str) -> Any:
    if isinstance(value, list):
        # As in Elasticsearch, an array of one value is that value and an empty one is no value
        # (arrays of several values never reach here: _walk lists them as multi-valued).
        value = value[0] if len(value) == 1 else None
    if value is None or isinstance(value, dict):
        return None
    if es_type == "date":
        try:
            return parse_timestamp(value).isoformat()
        except InvalidEvent:
            return None
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, bool) else str(value)


class DeadLetterFile:
    """This run's dead letters as NDJSON, one object per record with its file, position and reason."""

    def __init__(self, path: Path):
        self.path = path
        self._handle = None
        self.count = 0

    def write(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        for letter in letters:
            self._handle.write(json.dumps(letter.as_json(), ensure_ascii=False) + "\n")
        self._handle.flush()
        self.count += len(letters)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


ProgressCallback = Callable[[int], None]  # called with the number of records just read


def ingest_file(
    path: Path,
    sink: EventSink,
    dead_letter_file: DeadLetterFile,
    options: IngestOptions,
    on_progress: ProgressCallback | None = None,
) -> FileSummary:
    """Read one file into the sink (see ingest_files)."""
    return ingest_files([path], sink, dead_letter_file, options, on_progress=on_progress)[0]


def ingest_files(
    paths: Sequence[Path],
    sink: EventSink,
    dead_letter_file: DeadLetterFile,
    options: IngestOptions,
    *,
    on_file: Callable[[Path], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[FileSummary]:
    """Read the files into the sink, one after the other; one summary per file. Writing a batch
    overlaps with reading and preparing the next (at most one write is pending at a time, and
    batches are written in the order they were read). A sink that says what became of each
    file's events (the embedded store, Elasticsearch) takes several small files in one batch: a
    folder of EVTX files is mostly files of a few hundred records, and an insert into the store
    costs about 20 ms however few its rows (a bulk request, a round trip)."""
    summaries: list[FileSummary] = []
    auth_codes = _auth_codes() if options.only_auth else None
    with cyclic_gc_paused(), _BatchWriter(sink, dead_letter_file, options.batch_size, on_progress) as writer:
        for path in paths:
            if on_file is not None:
                on_file(path)
            fmt = options.format or detect_format(path)
            summary = FileSummary(str(path), fmt)
            summaries.append(summary)
            if fmt == "ndjson" and options.columnar and hasattr(sink, "write_line_block"):
                writer.settle()  # the block path writes through the sink itself
                _ingest_line_blocks(path, sink, dead_letter_file, summary, auth_codes, on_progress)
                continue
            for batch in _batches(read_records(path, fmt), options.batch_size):
                events, letters, skipped = _prepare_batch(batch, str(path), auth_codes)
                summary.skipped += skipped
                writer.add(_Segment(summary, len(batch), events, letters))
        writer.settle()
    return summaries


@dataclass(slots=True)
class _Segment:
    """Records of one file prepared for the sink: read = events + letters + skipped (counted)."""

    summary: FileSummary
    read: int
    events: list[StoredEvent]
    letters: list[DeadLetter]


class _BatchWriter:
    """Writes batches into the sink on one background thread, one at a time, and counts each
    file's part of a batch into its summary once the batch is written. With a sink that reports
    what became of each file's events (``write_batch_by_file``), segments of several files wait to
    fill a batch."""

    def __init__(
        self,
        sink: EventSink,
        dead_letter_file: DeadLetterFile,
        batch_size: int,
        on_progress: ProgressCallback | None,
    ):
        self._sink, self._dead_letters, self._on_progress = sink, dead_letter_file, on_progress
        self._batch_size = batch_size
        self._by_file = hasattr(sink, "write_batch_by_file")
        self._staged: list[_Segment] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="authml-writer")
        self._pending: tuple[Future, list[_Segment]] | None = None

    def __enter__(self) -> _BatchWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if self._pending is not None:  # interrupted: let the write in flight finish or fail as a whole
                self._pending[0].cancel() or self._pending[0].exception()
                self._pending = None
        finally:
            self._pool.shutdown()

    def add(self, segment: _Segment) -> None:
        if not self._by_file:
            self._submit([segment])
            return
        if any(staged.summary.path == segment.summary.path for staged in self._staged):
            self._submit_staged()  # the same file twice (given twice): its counts stay apart
        self._staged.append(segment)
        if sum(staged.read for staged in self._staged) >= self._batch_size:
            self._submit_staged()

    def settle(self) -> None:
        """Write what is staged and wait for every write, counting each."""
        self._submit_staged()
        self._settle_pending()

    def _submit_staged(self) -> None:
        if self._staged:
            segments, self._staged = self._staged, []
            self._submit(segments)

    def _submit(self, segments: list[_Segment]) -> None:
        self._settle_pending()
        self._pending = (self._pool.submit(self._write, segments), segments)

    def _write(self, segments: list[_Segment]) -> list[BatchOutcome]:
        """Each segment's outcome. A batch of several files holds each event id once (the first
        read wins, as if the files were stored one after the other; the later ones count as
        duplicates of their files), and the sink says what became of each file's events."""
        if len(segments) == 1:
            return [self._sink.write_batch(segments[0].events, segments[0].letters)]
        seen: set[str] = set()
        events: list[StoredEvent] = []
        repeated: Counter[str] = Counter()
        for segment in segments:
            for event in segment.events:
                if event.event_id in seen:
                    repeated[segment.summary.path] += 1
                else:
                    seen.add(event.event_id)
                    events.append(event)
        letters = [letter for segment in segments for letter in segment.letters]
        by_file = self._sink.write_batch_by_file(events, letters)  # type: ignore[attr-defined]
        outcomes = []
        for segment in segments:
            outcome = by_file.get(segment.summary.path, BatchOutcome(stored=0, duplicates=0))
            outcome.duplicates += repeated[segment.summary.path]
            outcomes.append(outcome)
        return outcomes

    def _settle_pending(self) -> None:
        if self._pending is None:
            return
        future, segments = self._pending
        outcomes = future.result()
        self._pending = None
        for segment, outcome in zip(segments, outcomes, strict=True):
            _account(
                segment.summary,
                self._dead_letters,
                self._on_progress,
                read=segment.read,
                stored=outcome.stored,
                duplicates=outcome.duplicates,
                letters=[*segment.letters, *outcome.failed],
            )


def _account(
    summary: FileSummary,
    dead_letter_file: DeadLetterFile,
    on_progress: ProgressCallback | None,
    *,
    read: int,
    stored: int,
    duplicates: int,
    letters: list[DeadLetter],
    skipped: int = 0,
) -> None:
    """Count what a write did with records of one file into its summary, keep their dead letters,
    and report them read."""
    dead_letter_file.write(letters)
    summary.read += read
    summary.stored += stored
    summary.duplicates += duplicates
    summary.skipped += skipped
    summary.dead_lettered += len(letters)
    if on_progress is not None:
        on_progress(read)


def _ingest_line_blocks(
    path: Path,
    sink: Any,  # authml.embedded.sink.EmbeddedSink (which imports this module)
    dead_letter_file: DeadLetterFile,
    summary: FileSummary,
    auth_codes: frozenset[str] | None,
    on_progress: ProgressCallback | None,
) -> None:
    """NDJSON a block of lines at a time: the sink stores the plain records itself and hands back
    the others, which take the Python path line by line, so every line is accounted for once."""
    with sink.parsed_line_blocks(read_line_blocks(path), str(path)) as parsed_blocks:
        for parsed in parsed_blocks:
            if isinstance(parsed, ReadFailure):
                failure = record_from_parsed(*truncated(parsed.after_line, parsed.error))
                events, letters, skipped = _prepare_batch([failure], str(path), auth_codes)
                outcome = sink.write_batch(events, letters)
                _account(
                    summary,
                    dead_letter_file,
                    on_progress,
                    read=1,
                    stored=outcome.stored,
                    duplicates=outcome.duplicates,
                    letters=[*letters, *outcome.failed],
                    skipped=skipped,
                )
                continue

            def python_path(indexes: list[int], block=parsed.block):
                lines = (parse_line(block.first_line + i, block.line(i)) for i in indexes)
                records = [record_from_parsed(*p) for p in lines if p is not None]
                return _prepare_batch(records, str(path), auth_codes)

            block = sink.write_line_block(parsed, str(path), auth_codes, python_path)
            _account(
                summary,
                dead_letter_file,
                on_progress,
                read=block.read,
                stored=block.stored,
                duplicates=block.duplicates,
                letters=block.dead_letters,
                skipped=block.skipped,
            )


def _prepare_batch(
    batch: list[SourceRecord], source_file: str, auth_codes: frozenset[str] | None
) -> tuple[list[StoredEvent], list[DeadLetter], int]:
    ingested = utc_timestamp(datetime.now(UTC))
    events: list[StoredEvent] = []
    letters: list[DeadLetter] = []
    skipped = 0
    for record in batch:
        if record.error is not None:
            letters.append(DeadLetter(source_file, record.position, record.error, record.raw))
            continue
        if auth_codes is not None and str(get_path(record.document, "event.code")) not in auth_codes:
            skipped += 1
            continue
        try:
            events.append(prepare_event(record.document, source_file, record.position, ingested))
        except InvalidEvent as exc:
            letters.append(DeadLetter(source_file, record.position, str(exc), record.raw))
    return events, letters, skipped


def _batches(records: Iterator[SourceRecord], size: int) -> Iterator[list[SourceRecord]]:
    batch: list[SourceRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _auth_codes() -> frozenset[str]:
    from authml.sources.winlog import AUTH_EVENT_CODES

    return AUTH_EVENT_CODES


def run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{time.monotonic_ns() % 100000:05d}"
