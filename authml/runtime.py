"""What a long run changes for its duration (process-wide settings) and runs beside itself."""

from __future__ import annotations

import ctypes
import gc
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from itertools import islice
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


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


@cache
def _openblas_thread_calls() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """OpenBLAS's get/set-threads functions, from the copy numpy loaded (found in the process's
    memory map, as numpy names it per build: ``openblas_set_num_threads``, or with a ``scipy_``
    prefix and ``64_`` suffix in the PyPI wheels); None where there is none (another BLAS, or
    not Linux)."""
    import numpy  # noqa: F401  (loads the BLAS it links)

    try:
        mapped = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    paths = sorted({line.split()[-1] for line in mapped if "openblas" in line.rsplit("/", 1)[-1].lower()})
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", "_64", ""):
                getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                if getter is not None and setter is not None:
                    getter.restype, setter.restype = ctypes.c_int, None
                    setter.argtypes = [ctypes.c_int]
                    return getter, setter
    return None


@contextmanager
def blas_threads(threads: int) -> Iterator[None]:
    """Let numpy's BLAS (OpenBLAS) use at most ``threads`` threads for a while, then restore it.

    For runs whose own threads each call numpy's matrix products (scoring workers): each call
    would otherwise start a BLAS thread per core, and two callers on two cores spin against
    each other's threads (two threads of 50,000 x 40 by 40 x 64 products: 2.1 s with OpenBLAS's
    two threads, 1.6 s with one; measured). Where numpy's BLAS is not OpenBLAS, nothing changes."""
    calls = _openblas_thread_calls()
    if calls is None:
        yield
        return
    get_threads, set_threads = calls
    previous = get_threads()
    set_threads(threads)
    try:
        yield
    finally:
        set_threads(previous)


@contextmanager
def map_ahead(
    function: Callable[[T], R], items: Iterable[T], *, workers: int = 2, ahead: int | None = None
) -> Iterator[Iterator[R]]:
    """``function(item)`` for each of ``items``, results in the items' order, made on ``workers``
    background threads ahead of the caller (``ahead``, by default ``workers``, made or being made
    beyond the result in the caller's hands, no more: more than ``workers`` lets a worker start
    the next item while the caller is still busy with a result).

    For functions whose work mostly releases the GIL (DuckDB queries, Arrow, numpy and torch on
    large arrays): scoring reads and scores the parts of a window this way. ``items`` is drawn
    in the caller's thread (what drawing makes, such as a database cursor per item, is made
    there). An exception in ``function`` is raised in the caller at that item's place; leaving
    the block (also by an exception or Ctrl-C) cancels the items not started and waits for
    those being made, so no thread outlives the block."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    ahead = workers if ahead is None else ahead
    if ahead < 1:
        raise ValueError(f"ahead must be at least 1, not {ahead}")
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="authml-ahead")
    pending: deque[Future[R]] = deque()
    source = iter(items)

    def results() -> Iterator[R]:
        pending.extend(pool.submit(function, item) for item in islice(source, ahead))
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(function, item) for item in islice(source, 1))
            yield result

    try:
        yield results()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
