"""Streams generated events to disk in time order, with record ids that increase per computer,
and writes the ground truth (labels.ndjson) beside them.

Events arrive roughly a day at a time; ``flush(before)`` sorts what is buffered and writes
everything older than ``before``. Memory therefore holds about two days of compact tuples,
whatever the length of the run.
"""

from __future__ import annotations

import gzip
import io
import json
from bisect import bisect_left
from collections import Counter
from operator import itemgetter
from pathlib import Path
from typing import TextIO

from authml.ecs import get_path
from authml.generate.clock import TimestampFormatter
from authml.generate.events import Event
from authml.generate.population import stable_hash
from authml.generate.render import render
from authml.ids import event_id

_BY_TIME = itemgetter(0)


def open_text(path: Path, compress: bool) -> TextIO:
    """A text file for writing; gzip without a name or time in its header, so that the same
    content always gives the same bytes."""
    if not compress:
        return path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20)
    raw = path.open("wb")
    zipped = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=3)
    return io.TextIOWrapper(zipped, encoding="utf-8", newline="\n", write_through=False)


class EventWriter:
    """Writes ``events.ndjson[.gz]`` and ``labels.ndjson`` under ``out_dir``."""

    def __init__(self, out_dir: Path, *, compress: bool, start_ms: int, end_ms: int) -> None:
        self.events_path = out_dir / ("events.ndjson.gz" if compress else "events.ndjson")
        self.labels_path = out_dir / "labels.ndjson"
        self._events = open_text(self.events_path, compress)
        self._labels = self.labels_path.open("w", encoding="utf-8", newline="\n")
        self.start_ms, self.end_ms = start_ms, end_ms
        self._buffer: list[Event] = []
        self._record_ids: dict[str, int] = {}
        self._timestamp = TimestampFormatter()
        self.written = 0
        self.outside_window = 0
        self.by_code: Counter[str] = Counter()
        self.by_scenario: Counter[str] = Counter()

    def add(self, events: list[Event]) -> None:
        self._buffer.extend(events)

    def flush(self, before_ms: int | None = None) -> int:
        """Write buffered events older than ``before_ms`` (all when None); returns how many."""
        self._buffer.sort(key=_BY_TIME)  # stable: equal times keep the order they were made in
        if before_ms is None:
            ready, self._buffer = self._buffer, []
        else:
            cut = bisect_left(self._buffer, before_ms, key=_BY_TIME)
            ready, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return self._write(ready)

    def _write(self, events: list[Event]) -> int:
        lines: list[str] = []
        start, end = self.start_ms, self.end_ms
        record_ids = self._record_ids
        timestamp = self._timestamp
        kept = 0
        for event in events:
            ts = event[0]
            if ts < start or ts >= end:
                self.outside_window += 1
                continue
            host = event[2].name
            record_id = record_ids.get(host)
            record_id = (record_id if record_id is not None else _first_record_id(host)) + 1
            record_ids[host] = record_id
            line = render(event, record_id, timestamp(ts))
            lines.append(line)
            self.by_code[event[1]] += 1
            if event[4] is not None:
                self._label(line, event[4])
            kept += 1
            if len(lines) >= 2_000:
                self._events.write("\n".join(lines) + "\n")
                lines.clear()
        if lines:
            self._events.write("\n".join(lines) + "\n")
        self.written += kept
        return kept

    def _label(self, line: str, scenario: str) -> None:
        doc = json.loads(line)
        self.by_scenario[scenario] += 1
        record = {
            "event_id": event_id(doc),
            "scenario": scenario,
            "@timestamp": doc["@timestamp"],
            "event.code": get_path(doc, "event.code"),
            "user.name": get_path(doc, "user.name"),
            "source.ip": get_path(doc, "source.ip"),
            "host.name": get_path(doc, "host.name"),
        }
        self._labels.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._events.close()
        self._labels.close()


def _first_record_id(host: str) -> int:
    """Each computer's Security log has been running for a while: start its numbering somewhere."""
    return 10_000 + stable_hash(host) * 37 % 4_000_000
