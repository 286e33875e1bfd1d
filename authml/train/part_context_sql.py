"""What the parts of a window see of the time before them, for all parts in one pass.

A window scored in consecutive parts (`authml.embedded.feature_reader.split_window`) reads, for
each part, the events before it only as totals: per account, source IP and event code, the events
before the part's context hour (`feature_sql.event_rows_sql`'s ``prior``); per account, the
hourly history before the part's first hour, collapsed (`feature_sql.history_sql`). Computed per
part, each part scans everything before it again: the later parts of a million events spent more
on those totals than on their own rows. Here every such total is computed once, from one scan of
each table: each row is counted at its *level* (how many of the parts' bounds it is at or after),
and a part's total sums the levels below its own bound.

Pure: SQL text. Each query returns the rows of every part, with its index in ``part``; the reader
gives each part its rows (`feature_sql.event_rows_sql`'s ``prior_counts``, `history_sql`'s
``collapsed``), which are the rows the part's own queries compute.
"""

from __future__ import annotations

from datetime import datetime

from authml.train.feature_sql import (
    TERM_HISTORY_COLUMNS,
    USER_HOURLY,
    _local,
    _q,
    _ts,
    authentication_filter_sql,
    hour_spread_sql,
    term_rows_sql,
)

PRIOR = "prior"


def _levels(bounds: list[tuple[int, str]], value: str) -> tuple[str, str]:
    """(the level of ``value``: how many bounds are at or before it; VALUES of (part, level below
    which a row counts for the part)). ``bounds``: (part index, SQL time) in time order."""
    level = " + ".join(f"CAST({value} >= {bound} AS INTEGER)" for _, bound in bounds)
    parts = ", ".join(f"({part}, {position})" for position, (part, _) in enumerate(bounds, start=1))
    return level, parts


def part_context_sql(
    starts: list[tuple[int, datetime]], *, time_zone: str, codes: list[str]
) -> dict[str, str]:
    """For parts starting at ``starts`` ((part index, start), in time order): ``prior`` (part,
    user_name, source_ip, event_code, n: events before the part's start less an hour), and the
    collapsed hourly history before the part's first hour, one query per kind of
    `feature_sql.HISTORY_KINDS`, with the columns `history_sql` reads (local hours in
    ``time_zone``)."""
    if not starts:
        raise ValueError("no part starts: there is no time before any part to read")
    tz = time_zone
    queries = {PRIOR: _prior_sql(starts, codes)}
    hour_bounds = [(index, f"date_trunc('hour', {_ts(start)})") for index, start in starts]
    last = hour_bounds[-1][1]
    uh = _q(USER_HOURLY)
    level, below = _levels(hour_bounds, "bucket")
    rows = f"""uh_raw AS (
  SELECT h.{_q("user.name")} AS user_name, h.{_q("@timestamp")} AS bucket, h.events, h.hosts, h.services,
         h.logon_types, h.ticket_encryption_types
  FROM {uh} h WHERE h.{_q("@timestamp")} < {last}
),
parts(part, below) AS (VALUES {below})"""

    def collapsed(source: str, keys: str, aggregates: dict[str, str], totals: dict[str, str]) -> str:
        # per key and level, then per part the levels below its bound: max(bucket) is the
        # collapsed row's bucket, as in feature_sql._history
        inner = ", ".join(f"{sql} AS {name}" for name, sql in aggregates.items())
        outer = ", ".join(f"{sql} AS {name}" for name, sql in totals.items())
        return f"""WITH {rows},
leveled AS (SELECT {keys}, {level} AS level, max(bucket) AS last_bucket, {inner} FROM {source} GROUP BY ALL)
SELECT p.part, {keys}, max(l.last_bucket) AS bucket, {outer}
FROM leveled l JOIN parts p ON l.level < p.below
GROUP BY ALL"""

    queries["hourly"] = collapsed(
        "uh_raw",
        "user_name",
        {"e": "sum(events)", "h": "count(*)", "mh": "max(hosts)", "ms": "max(services)"},
        {
            "events": "CAST(sum(l.e) AS BIGINT)",
            "hours": "CAST(sum(l.h) AS BIGINT)",
            "hosts": "max(l.mh)",
            "services": "max(l.ms)",
        },
    )
    # summed per account, local hour and level before the spread over neighbouring hours: the
    # same totals from a third of the rows (a group's latest bucket has the group's level)
    by_hour = f"""(SELECT user_name, max(bucket) AS bucket, sum(events) AS events FROM uh_raw
      GROUP BY user_name, hour({_local("bucket", tz)}), {level})"""
    queries["hour_of_day"] = collapsed(
        f"({hour_spread_sql(by_hour, tz)})",
        "user_name, target_hour",
        {"w": "sum(weighted)"},
        {"weighted": "sum(l.w)"},
    )
    for kind, column in TERM_HISTORY_COLUMNS.items():
        queries[kind] = collapsed(
            f"({term_rows_sql('uh_raw', column)})", "user_name, term", {"s": "sum(n)"}, {"n": "sum(l.s)"}
        )
    return queries


def _prior_sql(starts: list[tuple[int, datetime]], codes: list[str]) -> str:
    bounds = [(index, f"{_ts(start)} - INTERVAL 1 HOUR") for index, start in starts]
    level, below = _levels(bounds, '"@timestamp"')
    return f"""WITH parts(part, below) AS (VALUES {below}),
leveled AS (
  SELECT "user.name" AS user_name, "source.ip" AS source_ip, "event.code" AS event_code, {level} AS level,
         count(*) AS n
  FROM events WHERE {authentication_filter_sql(codes)} AND "@timestamp" < {bounds[-1][1]}
  GROUP BY ALL
)
SELECT p.part, l.user_name, l.source_ip, l.event_code, CAST(sum(l.n) AS BIGINT) AS n
FROM leveled l JOIN parts p ON l.level < p.below
GROUP BY ALL"""
