"""The point-in-time parts of the per-event features, in numpy: running counts over an account's
earlier raw events, counts and distinct counts over the trailing hour, and "as of the hour
before" lookups into the hourly history. Pure: arrays in, arrays out.

They give exactly what the window functions and ASOF joins of the SQL definition
(tests/unit/feature_sql_reference.py) give, at a fraction of the cost: every one of them is a
sort of integer keys plus binary searches, where the SQL sorted the whole event rows once per
partitioning. Strings arrive as integer codes (``-1`` for NULL, which SQL's PARTITION BY also
groups together), times as int64 microseconds.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HOUR_US = 3_600_000_000


def _group_starts(sorted_groups: np.ndarray) -> np.ndarray:
    """Index of the first row of each row's group, for rows sorted by group."""
    n = len(sorted_groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    is_start = np.empty(n, dtype=bool)
    is_start[0] = True
    np.not_equal(sorted_groups[1:], sorted_groups[:-1], out=is_start[1:])
    return np.maximum.accumulate(np.where(is_start, np.arange(n), 0))


def combine(codes: list[np.ndarray], widths: list[int]) -> np.ndarray:
    """One int64 code per distinct tuple of codes (each >= -1 and < its width - 1)."""
    combined = np.zeros(len(codes[0]), dtype=np.int64)
    for code, width in zip(codes, widths, strict=True):
        combined = combined * width + (code.astype(np.int64) + 1)
    return combined


def width(*codes: np.ndarray) -> int:
    """The width ``combine`` needs for codes drawn from these arrays."""
    return max(int(code.max(initial=-1)) for code in codes) + 2


def earlier_in_group(groups: np.ndarray) -> np.ndarray:
    """For rows in time order: how many earlier rows share the row's group (SQL ``row_number()
    OVER (PARTITION BY group ORDER BY time) - 1``)."""
    order = np.argsort(groups, kind="stable")
    rank = np.arange(len(groups)) - _group_starts(groups[order])
    earlier = np.empty(len(groups), dtype=np.int64)
    earlier[order] = rank
    return earlier


class TimeKeys:
    """Sortable int64 keys for (group, time) pairs: a group code times the number of time points
    plus the time's rank among them, so one binary search finds a time within its group."""

    def __init__(self, *times: np.ndarray):
        self.points = np.unique(np.concatenate(times))
        self.width = len(self.points) + 1

    def key(self, groups: np.ndarray, times: np.ndarray) -> np.ndarray:
        return groups * self.width + np.searchsorted(self.points, times)


def trailing_hour_count(groups: np.ndarray, ts: np.ndarray, flag: np.ndarray) -> np.ndarray:
    """Flagged rows of the row's group with a time in [ts - 1 hour, ts], rows at the same time
    included (SQL ``count(*) FILTER (WHERE flag) OVER (PARTITION BY group ORDER BY ts RANGE
    BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW)``)."""
    keys = TimeKeys(ts, ts - HOUR_US)
    flagged = np.sort(keys.key(groups[flag], ts[flag]))
    upto = np.searchsorted(flagged, keys.key(groups, ts), side="right")
    before = np.searchsorted(flagged, keys.key(groups, ts - HOUR_US), side="left")
    return (upto - before).astype(np.int64)


def trailing_hour_distinct(
    groups: np.ndarray, values: np.ndarray, ts: np.ndarray, flag: np.ndarray
) -> np.ndarray:
    """Distinct non-NULL values (codes >= 0) among the flagged rows of the row's group in
    [ts - 1 hour, ts] (SQL ``count(DISTINCT value) FILTER (WHERE flag) OVER`` the same frame).

    Each occurrence of a value keeps it in the count for the hour after it; overlapping hours of
    one value merge into one interval, so a value's intervals are disjoint and the distinct count
    at a time is the number of intervals holding it: those started by then less those ended
    before it."""
    keep = flag & (values >= 0)
    g, v, t = groups[keep], values[keep], ts[keep]
    order = np.lexsort((t, v, g))
    g, v, t = g[order], v[order], t[order]
    n = len(t)
    new_value = np.ones(n, dtype=bool)
    if n:
        new_value[1:] = (g[1:] != g[:-1]) | (v[1:] != v[:-1])
    opens = new_value.copy()
    opens[1:] |= t[1:] > t[:-1] + HOUR_US
    closes = np.zeros(n, dtype=bool)
    if n:
        closes[:-1] = opens[1:]
        closes[-1] = True
    keys = TimeKeys(ts, ts - HOUR_US, t)
    starts = np.sort(keys.key(g[opens], t[opens]))
    last_times = np.sort(keys.key(g[closes], t[closes]))
    started = np.searchsorted(starts, keys.key(groups, ts), side="right")
    # an interval whose last occurrence is before ts - 1 hour has ended before ts
    ended = np.searchsorted(last_times, keys.key(groups, ts - HOUR_US), side="left")
    return (started - ended).astype(np.int64)


class HourlyHistory:
    """Rows of an hourly history (a group, an hour bucket, values), sorted by group and bucket,
    with running values; ``lookup`` finds, for each query, the group's last row strictly before
    the query's bucket (SQL ``ASOF LEFT JOIN ... ON group = group AND query.bucket > bucket``)."""

    def __init__(self, groups: np.ndarray, buckets: np.ndarray):
        self.order = np.lexsort((buckets, groups))
        self.groups = groups[self.order]
        self.buckets = buckets[self.order]
        self._starts = _group_starts(self.groups)

    def running_sum(self, values: np.ndarray) -> np.ndarray:
        """Running sum within each group (NULLs given as 0). Exact for integers and for floats
        that are multiples of a power of two, as the counts and weights here are."""
        ordered = values[self.order]
        total = np.cumsum(ordered)
        if len(total) == 0:
            return total
        return total - (total[self._starts] - ordered[self._starts])

    def running_max(self, values: np.ndarray) -> np.ndarray:
        """Running maximum within each group of non-negative integers (NULLs given as 0)."""
        ordered = values[self.order].astype(np.int64)
        if len(ordered) == 0:
            return ordered
        group_rank = np.cumsum(self._starts == np.arange(len(ordered))) - 1
        lift = group_rank * (int(ordered.max()) + 1)
        return np.maximum.accumulate(ordered + lift) - lift

    def lookup(self, groups: np.ndarray, buckets: np.ndarray) -> np.ndarray:
        """Per query: the index (into the sorted rows) of its as-of row, -1 where there is none."""
        if len(self.groups) == 0:
            return np.full(len(groups), -1, dtype=np.int64)
        keys = TimeKeys(self.buckets, buckets)
        rows = keys.key(self.groups, self.buckets)
        found = np.searchsorted(rows, keys.key(groups, buckets), side="left") - 1
        clipped = np.maximum(found, 0)
        return np.where((found >= 0) & (self.groups[clipped] == groups), found, -1)


def gather(values: np.ndarray, index: np.ndarray, default: float = 0) -> np.ndarray:
    """values[index], ``default`` where the index is -1."""
    if len(values) == 0:
        return np.full(len(index), default, dtype=values.dtype)
    return np.where(index >= 0, values[np.maximum(index, 0)], default)


# Assembling the rows ---------------------------------------------------------------------------


def _codes(*columns: pa.ChunkedArray | pa.Array) -> list[np.ndarray]:
    """Integer codes shared across columns (the same string gets the same code), -1 for NULL."""
    chunks = [chunk for column in columns for chunk in getattr(column, "chunks", [column])]
    joined = pa.chunked_array(chunks, type=pa.string()) if chunks else pa.chunked_array([], pa.string())
    encoded = pc.dictionary_encode(joined.combine_chunks())
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    splits = np.cumsum([len(column) for column in columns])[:-1]
    return np.split(codes, splits)


def _ints(column: pa.ChunkedArray, fill: int = 0) -> np.ndarray:
    return pc.fill_null(column, fill).to_numpy().astype(np.int64)


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(column, 0).to_numpy().astype(np.float64)


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    return column.to_numpy().astype("datetime64[us]").view(np.int64)


def _column(column: pa.ChunkedArray) -> np.ndarray:
    """A column as the reader returns it: strings as objects (None for NULL), numbers as masked
    arrays where any is NULL, times as datetime64 (NaT for NULL)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(column.type):
        return column.to_numpy().astype("datetime64[us]")
    if column.null_count:
        mask = column.is_null().to_numpy(zero_copy_only=False)
        filled = pc.fill_null(column, False if pa.types.is_boolean(column.type) else 0)
        return np.ma.masked_array(filled.to_numpy(zero_copy_only=False), mask=mask)
    return column.to_numpy()


PASSED_THROUGH = (
    "_id",
    "ts",
    "user_name",
    "source_ip",
    "host_name",
    "event_code",
    "failed",
    "logon_type_number",
    "logon_type",
    "enc_type",
    "service_name",
    "no_preauth",
    "local_hour",
    "local_dow",
    "scenario",
    "credential_target",
    "source_failed_users_prev_hour",
    "source_ip_first_seen",
    "host_first_seen",
    "hours_observed",
)


def assemble_rows(
    events: pa.Table, history: dict[str, pa.Table], loopback: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """The per-event columns (authml.train.feature_sql.RAW_COLUMNS) of the window's events, from
    the rows of ``event_rows_sql`` (in time order, context rows first) and of ``history_sql``."""
    hourly, hour_of_day = history["hourly"], history["hour_of_day"]
    logon_types, encryption_types = history["logon_types"], history["encryption_types"]
    user, *history_users = _codes(
        events["user_name"],
        hourly["user_name"],
        hour_of_day["user_name"],
        logon_types["user_name"],
        encryption_types["user_name"],
    )
    hourly_user, hour_user, logon_user, encryption_user = history_users
    logon_type, logon_term = _codes(events["logon_type"], logon_types["term"])
    enc_type, encryption_term = _codes(events["enc_type"], encryption_types["term"])
    (source,) = _codes(events["source_ip"])
    (host,) = _codes(events["host_name"])
    (code,) = _codes(events["event_code"])
    (service,) = _codes(events["service_name"])
    ts, bucket = _micros(events["ts"]), _micros(events["bucket"])
    failed = events["failed"].to_numpy(zero_copy_only=False).astype(bool)
    user_width = width(user, *history_users)
    out: dict[str, np.ndarray] = {}

    # raw events: running counts and the trailing hour
    out["user_ip_events_before"] = _ints(events["prior_ip"]) + earlier_in_group(
        combine([user, source], [user_width, width(source)])
    )
    out["user_code_events_before"] = _ints(events["prior_code"]) + earlier_in_group(
        combine([user, code], [user_width, width(code)])
    )
    out["user_raw_events_before"] = _ints(events["prior_user"]) + earlier_in_group(user)
    out["user_failures_1h"] = trailing_hour_count(user, ts, failed) - failed
    no_source = (source < 0) | pc.fill_null(
        pc.is_in(events["source_ip"], pa.array(loopback)), False
    ).to_numpy(zero_copy_only=False)
    out["source_failures_1h"] = np.where(no_source, 0, trailing_hour_count(source, ts, failed) - failed)
    out["source_failed_users_1h"] = np.where(no_source, 0, trailing_hour_distinct(source, user, ts, failed))
    tickets = pc.fill_null(pc.equal(events["event_code"], "4769"), False).to_numpy(zero_copy_only=False)
    out["services_1h"] = trailing_hour_distinct(user, service, ts, tickets)
    out["hosts_1h"] = trailing_hour_distinct(user, host, ts, np.ones(len(ts), dtype=bool))
    out["host_failed_users_1h"] = np.where(host < 0, 0, trailing_hour_distinct(host, user, ts, failed))

    # hourly history, as of the hour before the event's own
    past = HourlyHistory(hourly_user, _micros(hourly["bucket"]))
    at = past.lookup(user, bucket)
    out["user_events_before"] = gather(past.running_sum(_ints(hourly["events"])), at)
    out["user_active_hours_before"] = gather(past.running_sum(_ints(hourly["hours"])), at)
    out["hours_since_last_active"] = np.where(at >= 0, (bucket - gather(past.buckets, at)) // HOUR_US, 0)
    out["max_hosts_per_hour_before"] = gather(past.running_max(_ints(hourly["hosts"])), at)
    out["max_services_per_hour_before"] = gather(past.running_max(_ints(hourly["services"])), at)

    local_hour = _ints(events["local_hour"])
    hours = HourlyHistory(
        combine([hour_user, _ints(hour_of_day["target_hour"])], [user_width, 25]),
        _micros(hour_of_day["bucket"]),
    )
    at = hours.lookup(combine([user, local_hour], [user_width, 25]), bucket)
    out["hour_weight_before"] = gather(hours.running_sum(_floats(hour_of_day["weighted"])), at, 0.0)

    for prefix, table, term_user, term, event_term in (
        ("logon_type", logon_types, logon_user, logon_term, logon_type),
        ("enc_type", encryption_types, encryption_user, encryption_term, enc_type),
    ):
        term_width = width(term, event_term)
        counts = _floats(table["n"])
        term_bucket = _micros(table["bucket"])
        per_term = HourlyHistory(combine([term_user, term], [user_width, term_width]), term_bucket)
        at = per_term.lookup(combine([user, event_term], [user_width, term_width]), bucket)
        out[f"{prefix}_events_before"] = gather(per_term.running_sum(counts), at, 0.0)
        every_term = HourlyHistory(term_user, term_bucket)
        at = every_term.lookup(user, bucket)
        out[f"{prefix.removesuffix('_type')}_typed_events_before"] = gather(
            every_term.running_sum(counts), at, 0.0
        )

    for name in PASSED_THROUGH:
        out[name] = _column(events[name])
    in_window = events["in_window"].to_numpy(zero_copy_only=False).astype(bool)
    if not in_window.all():
        out = {name: values[in_window] for name, values in out.items()}
    return out
