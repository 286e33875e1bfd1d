"""Flushing a file's written pages to disk behind a long transaction, on a thread of its own.

DuckDB writes the row groups of a large insert into the database file as they fill, and syncs the
file once, at commit. After a whole-history scoring run that sync waited for every page the run
had written (about 0.2 s for a million score rows, with a core idle). Synced as the run goes,
while the workers compute, the commit only waits for the pages of the last part. Best effort: the
commit's own sync is what makes the data durable, so a flush that fails is given up silently.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

# fdatasync where the platform has it (Linux), else fsync: the file's size is DuckDB's to sync.
_sync = getattr(os, "fdatasync", os.fsync)


class WriteBehind:
    """``request()`` asks for the file's written pages to go to disk; the thread syncs at most
    once per request and merges requests made while it syncs. Use as a context manager: leaving
    it waits for a sync under way and stops the thread."""

    def __init__(self, path: Path):
        self._path = path
        self._wanted = threading.Event()
        self._stopping = False
        self._descriptor: int | None = None
        self._thread = threading.Thread(target=self._run, name="authml-write-behind", daemon=True)

    def __enter__(self) -> WriteBehind:
        try:
            self._descriptor = os.open(self._path, os.O_RDONLY)
        except OSError:
            return self  # nothing to flush through; the commit syncs as it always does
        self._thread.start()
        return self

    def request(self) -> None:
        self._wanted.set()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._descriptor is None:
            return
        self._stopping = True
        self._wanted.set()
        self._thread.join()
        os.close(self._descriptor)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stopping:
                return
            try:
                _sync(self._descriptor)
            except OSError:
                return
