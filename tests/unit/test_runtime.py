"""The run-wide helpers of authml.runtime: reading ahead on a background thread."""

from __future__ import annotations

import threading
import time

import pytest

from authml.runtime import read_ahead


def test_items_arrive_in_order_made_on_another_thread():
    makers: list[str] = []

    def produce():
        for item in range(5):
            makers.append(threading.current_thread().name)
            yield item

    with read_ahead(produce()) as items:
        assert list(items) == [0, 1, 2, 3, 4]
    assert set(makers) == {"authml-read-ahead"}


def test_the_next_item_is_made_while_the_caller_works_on_the_last():
    made: list[int] = []

    def produce():
        for item in range(5):
            made.append(item)
            yield item

    with read_ahead(produce(), depth=1) as items:
        first = next(items)
        deadline = time.monotonic() + 5
        while len(made) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        # one waiting in the queue and one in the producer's hand, no more
        assert first == 0 and made == [0, 1, 2]
        time.sleep(0.05)
        assert made == [0, 1, 2]
        assert list(items) == [1, 2, 3, 4]


def test_a_producer_error_is_raised_in_the_caller_after_the_items_before_it():
    def produce():
        yield "a"
        raise LookupError("part 2 is broken")

    seen = []
    with pytest.raises(LookupError, match="part 2 is broken"), read_ahead(produce()) as items:
        for item in items:
            seen.append(item)
    assert seen == ["a"]


def test_leaving_early_stops_the_producer_and_closes_it_in_its_thread():
    closed_in: list[str] = []

    def produce():
        try:
            yield from range(1000)
        finally:
            closed_in.append(threading.current_thread().name)

    with pytest.raises(RuntimeError, match="caller failed"), read_ahead(produce()) as items:
        next(items)
        raise RuntimeError("caller failed")
    assert closed_in == ["authml-read-ahead"]  # closed before the block returned
    assert not any(thread.name == "authml-read-ahead" for thread in threading.enumerate())
