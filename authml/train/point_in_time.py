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

from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from authml.train.feature_sql import CODE_SUFFIX, DISTINCT_SUFFIX, RAW_COLUMNS

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


def _stable_argsort(codes: np.ndarray) -> np.ndarray:
    """A stable argsort of integer codes (>= -1); on narrow integers numpy sorts by radix."""
    top = int(codes.max(initial=0))
    narrow = np.int16 if top < 2**15 else np.int32 if top < 2**31 else np.int64
    return np.argsort(codes.astype(narrow), kind="stable")


def _by_group_then_code(groups: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Rows (in time order) sorted stably by (group, code): a stable sort by code, then by group,
    two radix sorts of narrow integers where one sort of the combined keys costs more."""
    by_code = _stable_argsort(codes)
    return by_code[_stable_argsort(groups[by_code])]


def _distinct_sorted(values: np.ndarray) -> np.ndarray:
    # np.unique hashes in numpy 2, many times slower than a sort for a million int64; a stable
    # sort (timsort) merges the already sorted runs it is given in one pass
    ordered = np.sort(values, kind="stable")
    keep = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


class TimeKeys:
    """Sortable int64 keys for (group, time) pairs: a group code times the number of distinct
    times plus the time's rank among them, so one binary search finds a time within its group.
    Built over the events' times (sorted), with each one's rank and the rank of an hour before."""

    def __init__(self, ts: np.ndarray):
        self.points = _distinct_sorted(np.concatenate([ts, ts - HOUR_US]))
        self.width = len(self.points) + 1
        self.rank = np.searchsorted(self.points, ts)
        self.hour_before_rank = np.searchsorted(self.points, ts - HOUR_US)


class TrailingHour:
    """The rows of one partitioning (a group code per row, times in microseconds) in (group, time)
    order, for counts over each row's trailing hour: rows of its group with a time in
    [time - 1 hour, time], rows at the same time included (SQL ``OVER (PARTITION BY group ORDER
    BY ts RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW)``)."""

    def __init__(self, groups: np.ndarray, ts: np.ndarray, keys: TimeKeys):
        # rows come in time order, so a stable sort by group alone orders them by (group, time)
        self.order = _stable_argsort(groups)
        self.groups = groups[self.order]
        self._ts, self._time_keys = ts, keys

    @cached_property
    def ts(self) -> np.ndarray:
        return self._ts[self.order]

    @cached_property
    def rank(self) -> np.ndarray:
        return self._time_keys.rank[self.order]

    @cached_property
    def keys(self) -> np.ndarray:
        """Where each row's frame ends (inclusive), as a (group, time) key."""
        return self.groups * self._time_keys.width + self.rank

    @cached_property
    def lower(self) -> np.ndarray:
        """Where each row's frame starts."""
        return self.groups * self._time_keys.width + self._time_keys.hour_before_rank[self.order]

    def _unsorted(self, values: np.ndarray) -> np.ndarray:
        out = np.empty(len(values), dtype=np.int64)
        out[self.order] = values
        return out

    def earlier(self) -> np.ndarray:
        """Earlier rows of each row's group (``row_number() - 1`` in time order)."""
        return self._unsorted(np.arange(len(self.groups)) - _group_starts(self.groups))

    def count(self, flag: np.ndarray) -> np.ndarray:
        """Flagged rows in each row's frame (``count(*) FILTER (WHERE flag)``)."""
        flagged = self.keys[flag[self.order]]
        upto = np.searchsorted(flagged, self.keys, side="right")
        before = np.searchsorted(flagged, self.lower, side="left")
        return self._unsorted(upto - before)

    def distinct(self, values: np.ndarray, flag: np.ndarray) -> np.ndarray:
        """Distinct non-NULL values (codes >= 0) among the flagged rows in each row's frame
        (``count(DISTINCT value) FILTER (WHERE flag)``).

        Each occurrence of a value keeps it in the count for the hour after it; overlapping hours
        of one value merge into one interval, so a value's intervals are disjoint and the distinct
        count at a time is the number of intervals holding it: those started by then less those
        whose last occurrence is more than an hour before."""
        keep = (flag & (values >= 0))[self.order]
        g, v, t, rank = self.groups[keep], values[self.order][keep], self.ts[keep], self.rank[keep]
        order = _stable_argsort(combine([g, v], [width(g), width(v)]))  # (group, value, time)
        g, v, t, rank = g[order], v[order], t[order], rank[order]
        opens = np.ones(len(t), dtype=bool)
        opens[1:] = (g[1:] != g[:-1]) | (v[1:] != v[:-1]) | (t[1:] > t[:-1] + HOUR_US)
        closes = np.ones(len(t), dtype=bool)
        closes[:-1] = opens[1:]
        time_width = self._time_keys.width
        starts = np.sort(g[opens] * time_width + rank[opens])
        last_times = np.sort(g[closes] * time_width + rank[closes])
        started = np.searchsorted(starts, self.keys, side="right")
        ended = np.searchsorted(last_times, self.lower, side="left")
        return self._unsorted(started - ended)


class HourlyHistory:
    """Rows of an hourly history (a group, an hour bucket, values), sorted by group and bucket,
    with running values; ``lookup`` finds, for each query, the group's last row strictly before
    the query's bucket (SQL ``ASOF LEFT JOIN ... ON group = group AND query.bucket > bucket``)."""

    def __init__(self, groups: np.ndarray, buckets: np.ndarray):
        # ranks among the history's own hours (a few thousand): a query's rank counts those before
        # its bucket, so the row found is the group's last one strictly before it
        self.hours = _distinct_sorted(buckets)
        self.width = len(self.hours) + 1
        keys = groups * self.width + np.searchsorted(self.hours, buckets)
        self.order = np.argsort(keys)  # rows of one group and hour (terms) add up in any order
        self.keys = keys[self.order]
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

    def lookup(self, groups: np.ndarray, buckets: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
        """Per query: the index (into the sorted rows) of its as-of row, -1 where there is none.
        ``order``: the queries sorted by group, stably (queries come in time order, so that sorts
        them by (group, bucket) too), when the caller has it already."""
        if len(self.groups) == 0:
            return np.full(len(groups), -1, dtype=np.int64)
        queries = groups * self.width + np.searchsorted(self.hours, buckets)
        if order is None:
            order = np.argsort(queries)  # sorted queries keep the binary searches in cache
        found = np.empty(len(queries), dtype=np.int64)
        found[order] = np.searchsorted(self.keys, queries[order], side="left") - 1
        clipped = np.maximum(found, 0)
        return np.where((found >= 0) & (self.groups[clipped] == groups), found, -1)


def gather(values: np.ndarray, index: np.ndarray, default: float = 0) -> np.ndarray:
    """values[index], ``default`` where the index is -1."""
    if len(values) == 0:
        return np.full(len(index), default, dtype=values.dtype)
    return np.where(index >= 0, values[np.maximum(index, 0)], default)


# Assembling the rows ---------------------------------------------------------------------------


class _Encoded:
    """String columns as integer codes shared across them (the same string gets the same code),
    -1 for NULL; ``strings(codes)`` turns codes back into the column as the reader returns it."""

    def __init__(self, *columns: pa.ChunkedArray | pa.Array):
        # one string type whatever Arrow layout a column came in (string, large or view strings)
        chunks = [
            chunk.cast(pa.string()) for column in columns for chunk in getattr(column, "chunks", [column])
        ]
        joined = pa.chunked_array(chunks, type=pa.string())
        encoded = pc.dictionary_encode(joined.combine_chunks())
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        splits = np.cumsum([len(column) for column in columns])[:-1]
        self.codes = np.split(codes, splits)
        self._lookup = np.empty(len(encoded.dictionary) + 1, dtype=object)  # the last one stays None
        self._lookup[:-1] = encoded.dictionary.to_numpy(zero_copy_only=False)

    def strings(self, codes: np.ndarray) -> np.ndarray:
        """Python strings, one object per distinct value (None for NULL): see `_strings`."""
        return self._lookup[codes]

    @property
    def distinct(self) -> np.ndarray:
        """The distinct strings, as objects: code ``i`` is ``distinct[i]``."""
        return self._lookup[:-1]


def _ints(column: pa.ChunkedArray, fill: int = 0) -> np.ndarray:
    return pc.fill_null(column, fill).to_numpy().astype(np.int64)


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(column, 0).to_numpy().astype(np.float64)


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    return column.to_numpy().astype("datetime64[us]").view(np.int64)


def _column(column: pa.ChunkedArray, *, few_distinct: bool = True) -> np.ndarray:
    """A column as the reader returns it: strings as objects (None for NULL), numbers as masked
    arrays where any is NULL, times as datetime64 (NaT for NULL)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return _strings(column) if few_distinct else column.to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(column.type):
        return column.to_numpy().astype("datetime64[us]")
    if column.null_count:
        mask = column.is_null().to_numpy(zero_copy_only=False)
        filled = pc.fill_null(column, False if pa.types.is_boolean(column.type) else 0)
        return np.ma.masked_array(filled.to_numpy(zero_copy_only=False), mask=mask)
    return column.to_numpy()


def _strings(column: pa.ChunkedArray) -> np.ndarray:
    """Strings as Python objects, one object per distinct value: users, hosts or codes repeat
    over a million rows, and making a Python string per row costs more than hashing them."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    lookup = np.empty(len(encoded.dictionary) + 1, dtype=object)  # the last one stays None
    lookup[:-1] = encoded.dictionary.to_numpy(zero_copy_only=False)
    return lookup[pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)]


def assemble_rows(
    events: pa.Table,
    history: dict[str, pa.Table],
    loopback: tuple[str, ...],
    order: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The per-event columns (authml.train.feature_sql.RAW_COLUMNS) of the window's events, in
    (time, id) order, from the rows of ``event_rows_sql`` and of ``history_sql``. ``order``: the
    permutation that puts the event rows in that order, where the table is not in it already
    (each column is permuted once converted: numbers and codes cost far less to move than the
    table's strings)."""

    def ordered(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    hourly, hour_of_day = history["hourly"], history["hour_of_day"]
    logon_types, encryption_types = history["logon_types"], history["encryption_types"]
    # each string column is encoded once: its codes, and its values as the reader returns them
    strings: dict[str, tuple[_Encoded, np.ndarray]] = {}

    def encode(name: str, *history_columns: pa.ChunkedArray) -> list[np.ndarray]:
        encoded = _Encoded(events[name], *history_columns)
        codes = [ordered(encoded.codes[0]), *encoded.codes[1:]]
        strings[name] = (encoded, codes[0])
        return codes

    user, *history_users = encode(
        "user_name",
        hourly["user_name"],
        hour_of_day["user_name"],
        logon_types["user_name"],
        encryption_types["user_name"],
    )
    hourly_user, hour_user, logon_user, encryption_user = history_users
    logon_type, logon_term = encode("logon_type", logon_types["term"])
    enc_type, encryption_term = encode("enc_type", encryption_types["term"])
    (source,) = encode("source_ip")
    (host,) = encode("host_name")
    (code,) = encode("event_code")
    (service,) = encode("service_name")
    ts, bucket = ordered(_micros(events["ts"])), ordered(_micros(events["bucket"]))
    failed = ordered(events["failed"].to_numpy(zero_copy_only=False).astype(bool))
    user_width = width(user, *history_users)
    out: dict[str, np.ndarray] = {}

    # raw events: running counts and the trailing hour
    time_keys = TimeKeys(ts)
    by_user = TrailingHour(user, ts, time_keys)
    by_source = TrailingHour(source, ts, time_keys)
    by_host = TrailingHour(host, ts, time_keys)
    by_user_source = TrailingHour(combine([user, source], [user_width, width(source)]), ts, time_keys)
    by_user_code = TrailingHour(combine([user, code], [user_width, width(code)]), ts, time_keys)
    out["user_ip_events_before"] = ordered(_ints(events["prior_ip"])) + by_user_source.earlier()
    out["user_code_events_before"] = ordered(_ints(events["prior_code"])) + by_user_code.earlier()
    out["user_raw_events_before"] = ordered(_ints(events["prior_user"])) + by_user.earlier()
    out["user_failures_1h"] = by_user.count(failed) - failed
    no_source = (source < 0) | ordered(
        pc.fill_null(pc.is_in(events["source_ip"], pa.array(loopback)), False).to_numpy(zero_copy_only=False)
    )
    out["source_failures_1h"] = np.where(no_source, 0, by_source.count(failed) - failed)
    out["source_failed_users_1h"] = np.where(no_source, 0, by_source.distinct(user, failed))
    tickets = ordered(
        pc.fill_null(pc.equal(events["event_code"], "4769"), False).to_numpy(zero_copy_only=False)
    )
    out["services_1h"] = by_user.distinct(service, tickets)
    out["hosts_1h"] = by_user.distinct(host, np.ones(len(ts), dtype=bool))
    out["host_failed_users_1h"] = np.where(host < 0, 0, by_host.distinct(user, failed))

    # hourly history, as of the hour before the event's own
    past = HourlyHistory(hourly_user, _micros(hourly["bucket"]))
    at = past.lookup(user, bucket, by_user.order)
    out["user_events_before"] = gather(past.running_sum(_ints(hourly["events"])), at)
    out["user_active_hours_before"] = gather(past.running_sum(_ints(hourly["hours"])), at)
    out["hours_since_last_active"] = np.where(at >= 0, (bucket - gather(past.buckets, at)) // HOUR_US, 0)
    out["max_hosts_per_hour_before"] = gather(past.running_max(_ints(hourly["hosts"])), at)
    out["max_services_per_hour_before"] = gather(past.running_max(_ints(hourly["services"])), at)

    local_hour = ordered(_ints(events["local_hour"]))
    hours = HourlyHistory(
        combine([hour_user, _ints(hour_of_day["target_hour"])], [user_width, 25]),
        _micros(hour_of_day["bucket"]),
    )
    at = hours.lookup(
        combine([user, local_hour], [user_width, 25]), bucket, _by_group_then_code(user, local_hour)
    )
    out["hour_weight_before"] = gather(hours.running_sum(_floats(hour_of_day["weighted"])), at, 0.0)

    for prefix, table, term_user, term, event_term in (
        ("logon_type", logon_types, logon_user, logon_term, logon_type),
        ("enc_type", encryption_types, encryption_user, encryption_term, enc_type),
    ):
        term_width = width(term, event_term)
        counts = _floats(table["n"])
        term_bucket = _micros(table["bucket"])
        per_term = HourlyHistory(combine([term_user, term], [user_width, term_width]), term_bucket)
        at = per_term.lookup(
            combine([user, event_term], [user_width, term_width]),
            bucket,
            _by_group_then_code(user, event_term),
        )
        out[f"{prefix}_events_before"] = gather(per_term.running_sum(counts), at, 0.0)
        every_term = HourlyHistory(term_user, term_bucket)
        at = every_term.lookup(user, bucket, by_user.order)
        out[f"{prefix.removesuffix('_type')}_typed_events_before"] = gather(
            every_term.running_sum(counts), at, 0.0
        )

    # Only the window's rows are returned (not the hour before it that the trailing counts read):
    # numbers are cut here; strings are made as Python objects for the rows kept only, since
    # every object an array holds or moves costs a reference count under Python's lock, which
    # the other scoring worker then waits for.
    in_window = ordered(events["in_window"].to_numpy(zero_copy_only=False).astype(bool))
    keep = None if in_window.all() else in_window
    if keep is not None:
        out = {name: values[keep] for name, values in out.items()}
    rows = order if keep is None else (np.flatnonzero(keep) if order is None else order[keep])
    # the other columns of RAW_COLUMNS come from the event SQL as they are
    for name in RAW_COLUMNS:
        if name in out:
            continue
        if name in strings:
            encoded, codes = strings[name]
            kept = codes if keep is None else codes[keep]
            out[name] = encoded.strings(kept)
            out[name + CODE_SUFFIX], out[name + DISTINCT_SUFFIX] = kept, encoded.distinct
        else:
            column = events[name] if rows is None else events[name].take(pa.array(rows))
            out[name] = _column(column, few_distinct=name != "_id")
    return out
