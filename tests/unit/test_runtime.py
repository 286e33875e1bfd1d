"""The run-wide helpers of authml.runtime: making results ahead of the caller on background threads,
and numpy's BLAS threads limited for a block."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from authml.runtime import _openblas_thread_calls, blas_threads, map_ahead


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_results_arrive_in_the_items_order_made_on_other_threads():
    makers: set[str] = set()

    def make(item: int) -> int:
        makers.add(threading.current_thread().name)
        time.sleep(0.02 * (5 - item))  # later items finish first
        return item * 10

    with map_ahead(make, range(5), workers=2) as results:
        assert list(results) == [0, 10, 20, 30, 40]
    assert makers and all(name.startswith("authml-ahead") for name in makers)


def test_workers_items_are_made_ahead_of_the_caller_and_no_more():
    started: list[int] = []
    drawn_in: set[str] = set()

    def items():
        for item in range(6):
            drawn_in.add(threading.current_thread().name)
            yield item

    def make(item: int) -> int:
        started.append(item)
        return item

    with map_ahead(make, items(), workers=2) as results:
        assert next(results) == 0
        _wait_for(lambda: len(started) >= 3)
        time.sleep(0.05)
        assert sorted(started) == [0, 1, 2]  # the one in the caller's hands and two more
        assert list(results) == [1, 2, 3, 4, 5]
    assert drawn_in == {threading.current_thread().name}


def test_more_can_be_made_ahead_than_there_are_workers():
    started: list[int] = []

    def make(item: int) -> int:
        started.append(item)
        return item

    with map_ahead(make, range(6), workers=1, ahead=3) as results:
        assert next(results) == 0
        _wait_for(lambda: len(started) >= 4)
        time.sleep(0.05)
        assert sorted(started) == [0, 1, 2, 3]  # the one in the caller's hands and three more
        assert list(results) == [1, 2, 3, 4, 5]


def test_an_error_is_raised_in_the_caller_at_its_items_place():
    def make(item: str) -> str:
        if item == "b":
            raise LookupError("part 2 is broken")
        return item

    seen = []
    with pytest.raises(LookupError, match="part 2 is broken"), map_ahead(make, "abc") as results:
        for result in results:
            seen.append(result)
    assert seen == ["a"]


def test_leaving_early_cancels_what_has_not_started_and_waits_for_the_rest():
    started: list[int] = []
    finished: list[int] = []

    def make(item: int) -> int:
        started.append(item)
        time.sleep(0.05)
        finished.append(item)
        return item

    with pytest.raises(RuntimeError, match="caller failed"), map_ahead(make, range(1000)) as results:
        next(results)
        raise RuntimeError("caller failed")
    assert len(started) <= 3 and sorted(finished) == sorted(started)  # none left running
    assert not any(thread.name.startswith("authml-ahead") for thread in threading.enumerate())


def test_workers_and_ahead_must_be_at_least_one():
    with pytest.raises(ValueError, match="ahead must be at least 1"), map_ahead(str, [1], ahead=0):
        pass
    with pytest.raises(ValueError, match="at least 1"), map_ahead(str, [1], workers=0):
        pass


def test_blas_threads_limits_numpys_openblas_for_the_block_and_restores_it():
    calls = _openblas_thread_calls()
    if calls is None:
        pytest.skip("numpy's BLAS here is not OpenBLAS (the PyPI wheels' is): nothing to limit")
    get_threads, set_threads = calls
    before = get_threads()
    set_threads(2)  # a machine with one core starts at 1, which would hide the change
    try:
        with blas_threads(1):
            assert get_threads() == 1
            product = np.ones((300, 40)) @ np.ones((40, 7))  # still computes, on one thread
        assert get_threads() == 2
        with pytest.raises(RuntimeError), blas_threads(1):
            raise RuntimeError("an error inside the block")
        assert get_threads() == 2
    finally:
        set_threads(before)
    assert product.shape == (300, 7) and float(product[0, 0]) == 40.0
