"""A one-line progress display on stderr, shown only when stderr is a terminal (quiet in pipes and CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts records (and files) and redraws at most a few times a second."""

    def __init__(
        self,
        total_files: int,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        unit: str = "records",
        min_interval: float = 0.2,
    ):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total_files = total_files
        self.unit = unit
        self.file_index = 0
        self.file_name = ""
        self.records = 0
        self.started = time.monotonic()
        self._last_draw = 0.0
        self.min_interval = min_interval

    def start_file(self, name: str) -> None:
        self.file_index += 1
        self.file_name = name
        self._draw(force=True)

    def advance(self, records: int) -> None:
        self.records += records
        self._draw()

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.records / elapsed if elapsed > 0 else 0.0

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        line = (
            f"file {self.file_index}/{self.total_files}  {self.records:,} {self.unit}  "
            f"{self.rate:,.0f}/s  {self.file_name[-40:]}"
        )
        self.stream.write("\r\x1b[2K" + line)
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
