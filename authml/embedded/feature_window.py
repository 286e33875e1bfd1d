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


def write_tail(connection, sync: str, upper: datetime, delay_ms: int, key: str) -> tuple[int, int]:
    """Record the events per sync value within the delay before ``upper``; returns (events up
    to ``upper``, events within the delay)."""
    since = upper - timedelta(milliseconds=delay_ms)
    bounds = f"{sync} > {_timestamp(since)} AND {sync} <= {_timestamp(upper)}"
    connection.execute(
        f"INSERT INTO feature_checkpoint_tail SELECT {sql_string(key)}, {sync}, count(*) "
        f"FROM {EVENTS} WHERE {bounds} GROUP BY ALL"
    )
    # The newest value and the count of values cost about a millisecond per million events, a
    # filtered count several.
    newest, with_value, tail = connection.execute(
        f"SELECT max({sync}), count({sync}), (SELECT coalesce(sum(events), 0) FROM feature_checkpoint_tail "
        f"WHERE tail_key = ?) FROM {EVENTS}",
        [key],
    ).fetchone()
    if newest is None or newest <= upper:
        return with_value, int(tail)
    (upto,) = connection.execute(
        f"SELECT count(*) FROM {EVENTS} WHERE {sync} <= {_timestamp(upper)}"
    ).fetchone()
    return upto, int(tail)


def window_since(connection, sync: str, checkpoint: Checkpoint, delay_ms: int) -> Window:
    """The events an incremental run reads after ``checkpoint`` (see the module docstring)."""
    lower = checkpoint.upper - timedelta(milliseconds=delay_ms)
    past = f"{sync} > {_timestamp(checkpoint.upper)}"
    if checkpoint.events_upto is None or checkpoint.tail_events is None or checkpoint.tail_key is None:
        return Window(f"{sync} > {_timestamp(lower)}", exact=False, missed=0)
    # The values after ``lower`` counted one by one (a range DuckDB can skip row groups for),
    # beside the tail's counts; and, as the row with value NULL, the events up to ``lower``: those
    # with a sync value, less those after it (cheaper than a filtered count over every event).
    rows = connection.execute(
        f"WITH arrived AS MATERIALIZED (SELECT {sync} AS value, count(*) AS events FROM {EVENTS} "
        f"WHERE {sync} > {_timestamp(lower)} AND {sync} <= {_timestamp(checkpoint.upper)} GROUP BY ALL) "
        f"SELECT NULL, (SELECT count({sync}) FROM {EVENTS}) - (SELECT count(*) FROM {EVENTS} WHERE {past}) "
        f"- (SELECT coalesce(sum(events), 0) FROM arrived), 0 "
        f"UNION ALL SELECT arrived.value, arrived.events, coalesce(tail.events, 0) FROM arrived "
        f"LEFT JOIN (SELECT sync_value, events FROM feature_checkpoint_tail WHERE tail_key = ?) AS tail "
        f"ON tail.sync_value = arrived.value WHERE arrived.events <> coalesce(tail.events, 0)",
        [checkpoint.tail_key],
    ).fetchall()
    before = sum(events for value, events, _ in rows if value is None)
    missed = before - (checkpoint.events_upto - checkpoint.tail_events)
    grown = [(value, tail_events) for value, _, tail_events in rows if value is not None]
    if not grown:
        return Window(past, exact=True, missed=missed)
    if len(grown) > MAX_INLINE_VALUES:
        return Window(f"{sync} > {_timestamp(lower)}", exact=False, missed=missed)
    values = ", ".join(_timestamp(value) for value, _ in grown)
    exact = all(before_count == 0 for _, before_count in grown)
    return Window(f"({past} OR {sync} IN ({values}))", exact=exact, missed=missed)
