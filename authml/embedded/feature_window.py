"""Which events an incremental run reads: checkpoints, late arrivals and missed events (ES-NOTES 2.6).

The events table only grows: ingest appends rows, and nothing updates or deletes one. DuckDB
numbers a table's rows densely by position (``rowid``), so the rows stored since a checkpoint are
exactly those at or past the number of rows it recorded. A checkpoint records its upper bound
(the newest sync value it read), that number, and the id of its last row, which tells a run that
the table was rewritten behind its back (a row deleted, positions shifted).

Of the rows stored since a checkpoint, the next run reads, as Elasticsearch does, those with a
sync value after ``checkpoint - sync.time.delay``: new ones, and late ones stored within the
delay. Those with a value at or before it were stored later than the delay: the run misses them
as ES would, and counts them so that merging stops until ``features build --full`` picks them up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from authml.embedded.features import _timestamp

EVENTS = "events"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    upper: datetime
    stored_events: int  # rows of the events table when it was built
    last_event_id: str | None  # the id of the last of them


@dataclass(frozen=True, slots=True)
class Window:
    condition: str  # the events to read (on top of the new upper bound)
    missed: int  # events stored later than the delay, never read by an incremental run


def last_event_id(connection, stored_events: int) -> str | None:
    """The id of the last of the first ``stored_events`` rows, recorded with a checkpoint."""
    if not stored_events:
        return None
    return connection.execute(f"SELECT _id FROM {EVENTS} WHERE rowid = {stored_events - 1}").fetchone()[0]


def window_since(sync: str, checkpoint: Checkpoint, delay_ms: int) -> Window:
    """The events an incremental run reads after ``checkpoint`` (see the module docstring),
    before check_window has counted what it misses."""
    lower = _timestamp(checkpoint.upper - timedelta(milliseconds=delay_ms))
    return Window(f"rowid >= {checkpoint.stored_events} AND {sync} > {lower}", missed=0)


def check_window(
    connection, sync: str, checkpoint: Checkpoint, delay_ms: int, stored_events: int
) -> Window | None:
    """``window_since`` with the events it misses counted, or None where the checkpoint's rows
    are not where it left them (a row deleted or the table rewritten): the table is then built
    in full."""
    lower = _timestamp(checkpoint.upper - timedelta(milliseconds=delay_ms))
    recorded = checkpoint.stored_events
    last_id, new, missed = connection.execute(
        f"SELECT (SELECT _id FROM {EVENTS} WHERE rowid = {recorded - 1}), count(*), "
        f"count(*) FILTER ({sync} <= {lower}) FROM {EVENTS} WHERE rowid >= {recorded}"
    ).fetchone()
    if stored_events - new != recorded or last_id != checkpoint.last_event_id:
        return None
    return Window(window_since(sync, checkpoint, delay_ms).condition, missed=missed)
