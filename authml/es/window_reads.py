"""What a feature read from the cluster fetches for a window with a start, so that it costs what
the window costs and not what the history kept in the cluster costs:

- raw events only from an hour before the start (`authml.es.feature_reader.events_query`);
- for earlier events, only how many there were per (account, source IP, event code), from a
  ``composite`` aggregation (exact document counts, paged with ``after_key``) restricted by a
  ``terms`` filter to the accounts with events in the window, a batch of accounts at a time, so
  that it never walks every account of a large domain;
- from the feature indices, only the rows the SQL reads for those accounts: their hourly rows
  before the window's end, their first sightings of source IPs and hosts, the source-IP hours
  from the hour before the first event on, and the earliest hour of all (how long the data has
  been observed).

The embedded SQL makes the same cut (`authml.train.feature_sql.event_rows_sql` and
``history_sql``): both engines compute the rows with one query. Pure: these functions build
request bodies and read responses; `ElasticsearchFeatureReader` sends them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from authml.ecs import get_path
from authml.es.apply import Request
from authml.train.feature_sql import (
    SOURCE_IP_HOURLY,
    USER_HOST,
    USER_HOURLY,
    USER_SOURCE_IP,
    FeatureWindow,
)

CONTEXT = timedelta(hours=1)
# Accounts per terms filter: well under index.max_terms_count (65,536 by default).
ACCOUNT_BATCH = 5000
# Buckets per composite page (a page is one search; search.max_buckets is 65,536 by default).
COMPOSITE_PAGE = 5000
SEARCH_PARAMS = {"ignore_unavailable": "true", "allow_no_indices": "true"}
PRIOR_AGGREGATION = "prior"
# Composite sources: the prior-count table's column, the event field, and whether events without
# the field form their own (null) bucket. The SQL groups a missing source IP as NULL and joins it
# with IS NOT DISTINCT FROM, so source.ip needs the missing bucket; the filter requires the others.
PRIOR_SOURCES = (
    ("user_name", "user.name", False),
    ("source_ip", "source.ip", True),
    ("event_code", "event.code", False),
)


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _iso_after(moment: datetime) -> str:
    """An exclusive upper bound at whole milliseconds (the precision of dates in the cluster) that
    keeps everything before ``moment``: rounded up. The SQL then cuts at ``moment`` itself."""
    below = moment.microsecond % 1000
    return _iso(moment + timedelta(microseconds=1000 - below) if below else moment)


def context_start(window: FeatureWindow) -> datetime | None:
    """Where the raw events a window needs begin: an hour before its start (the trailing-hour
    counts reach back that far); earlier events are only counted (`prior_counts_request`)."""
    return None if window.start is None else window.start - CONTEXT


def account_batches(accounts: list[str], size: int = ACCOUNT_BATCH) -> Iterator[list[str]]:
    for first in range(0, len(accounts), size):
        yield accounts[first : first + size]


def _search(index: str, body: dict[str, Any]) -> Request:
    return Request("POST", f"/{index}/_search", body, params=dict(SEARCH_PARAMS))


def prior_counts_request(
    window: FeatureWindow,
    codes: list[str],
    accounts: list[str],
    index: str,
    *,
    after: dict[str, Any] | None = None,
    size: int = COMPOSITE_PAGE,
) -> Request:
    """One page of the counts of ``accounts``' authentication events before the window's context
    hour (the events `events_query` does not fetch), per account, source IP and event code."""
    if window.start is None:
        raise ValueError("prior counts need a window with a start")
    composite: dict[str, Any] = {
        "size": size,
        "sources": [
            {column: {"terms": {"field": field, **({"missing_bucket": True} if missing else {})}}}
            for column, field, missing in PRIOR_SOURCES
        ],
    }
    if after is not None:
        composite["after"] = after
    body = {
        "size": 0,
        "track_total_hits": False,
        "query": {
            "bool": {
                "filter": [
                    {"terms": {"event.code": codes}},
                    {"terms": {"user.name": accounts}},
                    {"range": {"@timestamp": {"lt": _iso(context_start(window))}}},
                ]
            }
        },
        "aggs": {PRIOR_AGGREGATION: {"composite": composite}},
    }
    return _search(index, body)


def prior_count_page(response: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The rows of one composite page (the key's columns and ``n``), and the ``after`` of the next
    page (None when this one was the last)."""
    aggregation = (response.get("aggregations") or {}).get(PRIOR_AGGREGATION) or {}
    buckets = aggregation.get("buckets") or []
    rows = [{**bucket["key"], "n": bucket["doc_count"]} for bucket in buckets]
    return rows, (aggregation.get("after_key") if buckets else None)


def _filtered(*filters: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"filter": list(filters)}}


def _before_end(window: FeatureWindow) -> list[dict[str, Any]]:
    return [{"range": {"@timestamp": {"lt": _iso_after(window.end)}}}] if window.end is not None else []


def feature_reads(
    window: FeatureWindow,
    window_accounts: list[str],
    context_accounts: list[str],
    *,
    batch: int = ACCOUNT_BATCH,
) -> list[tuple[str, dict[str, Any]]]:
    """(feature index, query) for each read the window needs: ``window_accounts`` have events in
    the window, ``context_accounts`` any event from its context hour on."""
    start = context_start(window)
    if start is None:
        raise ValueError("bounded feature reads need a window with a start")
    reads = [
        (USER_HOURLY, _filtered({"terms": {"user.name": accounts}}, *_before_end(window)))
        for accounts in account_batches(window_accounts, batch)
    ]
    for accounts in account_batches(context_accounts, batch):
        reads += [
            (index, _filtered({"terms": {"user.name": accounts}})) for index in (USER_SOURCE_IP, USER_HOST)
        ]
    # each event looks up its source IP's previous hour
    first_hour = start.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    hours = {"gte": _iso(first_hour), **({"lt": _iso_after(window.end)} if window.end is not None else {})}
    reads.append((SOURCE_IP_HOURLY, _filtered({"range": {"@timestamp": hours}})))
    return reads


def earliest_hour_request(fields: tuple[str, ...]) -> Request:
    """The user-hourly row with the earliest hour: the SQL measures how long data has been observed
    from it, whichever account it belongs to."""
    body = {
        "size": 1,
        "sort": [{"@timestamp": "asc"}],
        "_source": list(fields),
        "track_total_hits": False,
    }
    return _search(USER_HOURLY, body)


def earliest_hour_to_add(
    response: dict[str, Any], window: FeatureWindow, window_accounts: set[str]
) -> dict[str, Any] | None:
    """The earliest hour's hit, unless `feature_reads` already reads it (or the index is empty)."""
    hits = response.get("hits", {}).get("hits", [])
    if not hits:
        return None
    (hit,) = hits
    hour = datetime.fromtimestamp(hit["sort"][0] / 1000, UTC).replace(tzinfo=None)
    account = get_path(hit.get("_source", {}), "user.name")
    read_already = account in window_accounts and (window.end is None or hour < window.end)
    return None if read_already else hit
