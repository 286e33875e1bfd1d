"""What a long run changes for its duration (process-wide settings) and runs beside itself."""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a run that allocates millions of objects.

    Each full pass of the collector walks every container alive, so it runs often and slowly
    while records stream through (ingest: every record allocates dozens of dicts and lists;
    measured at 1.6 KB per event, it tripled JSON decoding and doubled the write) or while a million
    rows of strings and per-row lists are held (scoring a million events: 17.8 s with it, 14.8 s
    without). What these runs allocate holds no cycles, so reference counting frees it all the
    same; the collector is restored afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[Iterator[T]]:
    """The items of ``items``, each made in a background thread while the caller works on the
    one before (at most ``depth`` waiting, and one more being made).

    For producers whose work releases the GIL (DuckDB queries, Arrow and numpy on large arrays)
    and consumers that leave a core idle: scoring runs its model on one thread, so reading the
    next part's features on the other core hides most of the read. An exception in the
    producer is raised in the caller at the item it would have made; leaving the block (also
    by an exception or Ctrl-C) stops the producer after the item in hand and closes it in its
    own thread, before the block returns."""
    finished = object()
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(entry: tuple[object, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                waiting.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over((item, None)):
                    break
            else:
                hand_over((finished, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            hand_over((None, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def consume() -> Iterator[T]:
        while True:
            item, error = waiting.get()
            if error is not None:
                raise error
            if item is finished:
                return
            yield item

    worker = threading.Thread(target=produce, name="authml-read-ahead", daemon=True)
    worker.start()
    try:
        yield consume()
    finally:
        stop.set()
        worker.join()
