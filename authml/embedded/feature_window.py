"""Which events an incremental run reads: checkpoints, their tail, and late arrivals (ES-NOTES 2.6).

A checkpoint records its upper bound (the newest sync value it read), how many events had a sync
value up to it, and its *tail*: how many events held each sync value within ``sync.time.delay``
before it. The store only ever adds events, so comparing those counts with today's tells the next
run exactly what arrived since:

* events past the checkpoint: all new;
* events with a sync value inside the delay whose count grew: stored late, within the delay, and
  read as ES reads them. When the value had no event at the checkpoint, all its events are new;
  when it had some (only possible if an event is stored with exactly the sync value of events
  already built), the run cannot tell old from new and reads them all: its window is then a
  superset, which a whole-history recompute of the touched buckets absorbs but a merge would not;
* events at or before ``checkpoint - delay`` that were not counted: stored later than the delay,
  missed by the window as in ES (``features build --full`` picks them up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from authml.embedded.features import _timestamp
from authml.engine.fields import sql_string

EVENTS = "events"
TAIL_DDL = (
    "CREATE TABLE IF NOT EXISTS feature_checkpoint_tail "
    "(tail_key VARCHAR NOT NULL, sync_value TIMESTAMP NOT NULL, events BIGINT NOT NULL)"
)
TAIL_LAYOUT = ["tail_key", "sync_value", "events"]
MAX_INLINE_VALUES = 5000


@dataclass(frozen=True, slots=True)
class Checkpoint:
    upper: datetime
    tail_key: str | None
    events_upto: int | None  # events with a sync value up to ``upper`` when it was built
    tail_events: int | None  # of which within the delay before ``upper``


@dataclass(frozen=True, slots=True)
class Window:
    condition: str  # the events to read (on top of the new upper bound)
    exact: bool  # exactly the events stored since the checkpoint (else a superset)
    missed: int  # events stored later than the delay, never read by an incremental run


def tail_key(sync_field: str, upper: datetime, delay_ms: int, build: str) -> str:
    """Shared by the transforms of one build; a later build with the same upper bound (late
    events only) counts again under its own key."""
    return f"{sync_field}|{upper.isoformat()}|{delay_ms}|{build}"


@dataclass(frozen=True, slots=True)
class SyncCounts:
    """The events per value of a sync field after ``since`` (a scratch table), and how many
    events have a value at all: one pass over the column that every window of a run and the
    new checkpoints' tail are read from."""

    table: str
    sync: str
    since: datetime
    with_value: int

    def sums(self, connection, ranges: list[tuple[datetime, datetime | None]]) -> list[int]:
        """The events with a value in each (after, up to] range (None: no upper end); every
        ``after`` is at or past ``since``."""
        sums = []
        for after, upto in ranges:
            assert after >= self.since, "a range before the counted values"
            condition = f"sync_value > {_timestamp(after)}"
            if upto is not None:
                condition += f" AND sync_value <= {_timestamp(upto)}"
            sums.append(f"coalesce(sum(events) FILTER ({condition}), 0)")
        return [
            int(value)
            for value in connection.execute(f"SELECT {', '.join(sums)} FROM {self.table}").fetchone()
        ]


def count_sync_values(connection, sync: str, since: datetime, into: str) -> SyncCounts:
    connection.execute(
        f"CREATE OR REPLACE TABLE {into} AS SELECT {sync} AS sync_value, count(*) AS events "
        f"FROM {EVENTS} WHERE {sync} > {_timestamp(since)} GROUP BY ALL"
    )
    (with_value,) = connection.execute(f"SELECT count({sync}) FROM {EVENTS}").fetchone()
    return SyncCounts(into, sync, since, with_value)


def tail_start(upper: datetime, delay_ms: int) -> datetime:
    """Sync values after this and up to ``upper`` are a checkpoint's tail."""
    return upper - timedelta(milliseconds=delay_ms)


def count_tail(connection, counts: SyncCounts, upper: datetime, delay_ms: int) -> tuple[int, int]:
    """For a checkpoint at ``upper``: (events with a value up to it, of which within the delay)."""
    within, later = counts.sums(connection, [(tail_start(upper, delay_ms), upper), (upper, None)])
    return counts.with_value - later, within


def write_tail(connection, key: str, counts: SyncCounts, upper: datetime, delay_ms: int) -> None:
    """Record the events per sync value within the delay before ``upper`` as the tail ``key``."""
    connection.execute(
        f"INSERT INTO feature_checkpoint_tail SELECT {sql_string(key)}, sync_value, events FROM {counts.table} "
        f"WHERE sync_value > {_timestamp(tail_start(upper, delay_ms))} AND sync_value <= {_timestamp(upper)}"
    )


def window_since(
    connection, sync: str, checkpoint: Checkpoint, delay_ms: int, counts: SyncCounts | None
) -> Window:
    """The events an incremental run reads after ``checkpoint`` (see the module docstring);
    ``counts`` holds the values after the checkpoint's tail start where it has a tail."""
    lower = tail_start(checkpoint.upper, delay_ms)
    past = f"{sync} > {_timestamp(checkpoint.upper)}"
    if not has_tail(checkpoint):
        return Window(f"{sync} > {_timestamp(lower)}", exact=False, missed=0)
    assert counts is not None and counts.sync == sync
    past_count, within = counts.sums(connection, [(checkpoint.upper, None), (lower, checkpoint.upper)])
    # Events with a value up to ``lower`` now, against those the checkpoint counted there.
    missed = counts.with_value - past_count - within - (checkpoint.events_upto - checkpoint.tail_events)
    if within == checkpoint.tail_events:
        # Counts per value only grow (the store only adds events): the same total within the
        # delay means that no value grew, so that no event arrived late.
        return Window(past, exact=True, missed=missed)
    grown = connection.execute(
        f"SELECT c.sync_value, coalesce(t.events, 0) FROM {counts.table} AS c "
        f"LEFT JOIN (SELECT sync_value, events FROM feature_checkpoint_tail WHERE tail_key = ?) AS t "
        f"ON t.sync_value = c.sync_value WHERE c.sync_value > {_timestamp(lower)} "
        f"AND c.sync_value <= {_timestamp(checkpoint.upper)} AND c.events <> coalesce(t.events, 0)",
        [checkpoint.tail_key],
    ).fetchall()
    if not grown:
        return Window(past, exact=True, missed=missed)
    if len(grown) > MAX_INLINE_VALUES:
        return Window(f"{sync} > {_timestamp(lower)}", exact=False, missed=missed)
    values = ", ".join(_timestamp(value) for value, _ in grown)
    exact = all(before_count == 0 for _, before_count in grown)
    return Window(f"({past} OR {sync} IN ({values}))", exact=exact, missed=missed)


def has_tail(checkpoint: Checkpoint) -> bool:
    """Whether the checkpoint recorded its tail (else its window is everything after its start)."""
    return None not in (checkpoint.events_upto, checkpoint.tail_events, checkpoint.tail_key)
