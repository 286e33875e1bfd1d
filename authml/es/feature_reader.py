"""Reading per-event features from an Elasticsearch cluster: the raw events and the four feature
indices the transforms maintain, streamed with a point in time and ``search_after`` (optionally
sliced), in batches, into an on-disk scratch database where the same SQL as in embedded mode
computes the same rows. Nothing holds a whole index in memory. For a window with a start, only
what the window needs is read (`authml.es.window_reads`): its cost follows the window, not the
history kept in the cluster.

The request bodies are built by pure functions below and unit-tested; `ElasticsearchFeatureReader`
is the thin part that sends them with the official client.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from authml.ecs import get_path
from authml.es.window_reads import (
    ACCOUNT_BATCH,
    COMPOSITE_PAGE,
    _iso,
    _iso_after,
    account_batches,
    context_start,
    earliest_hour_request,
    earliest_hour_to_add,
    feature_reads,
    prior_count_page,
    prior_counts_request,
)
from authml.train.feature_sql import (
    SOURCE_IP_HOURLY,
    USER_HOST,
    USER_HOURLY,
    USER_SOURCE_IP,
    FeatureWindow,
    authentication_event_codes,
)
from authml.train.matrix import EventFrame

DEFAULT_EVENTS_INDEX = "logs-system.security-*,winlogbeat-*,authml-events-*"
KEEP_ALIVE = "2m"
BATCH_SIZE = 5000
# Fields of a raw event the features read; labels only for `authml eval`.
EVENT_FIELDS = (
    "@timestamp",
    "user.name",
    "source.ip",
    "host.name",
    "event.code",
    "event.outcome",
    "winlog.logon.type",
    "winlog.event_data.LogonType",
    "winlog.event_data.TicketEncryptionType",
    "winlog.event_data.ServiceName",
    "winlog.event_data.PreAuthType",
    "winlog.event_data.TargetUserName",
    "user.target.name",
)
LABEL_FIELD = "labels.authml_scenario"
# Per feature index: the fields read, and the group-by fields that order it.
FEATURE_INDEX_FIELDS: dict[str, tuple[str, ...]] = {
    USER_HOURLY: (
        "user.name",
        "@timestamp",
        "events",
        "hosts",
        "services",
        "logon_types",
        "ticket_encryption_types",
    ),
    USER_SOURCE_IP: ("user.name", "source.ip", "first_seen"),
    USER_HOST: ("user.name", "host.name", "first_seen"),
    SOURCE_IP_HOURLY: ("source.ip", "@timestamp", "failed_logons.users"),
}


def events_query(window: FeatureWindow, codes: list[str]) -> dict[str, Any]:
    """Authentication events with an account, from an hour before the window's start (from the
    beginning without one) to its end. Dates in the cluster have millisecond precision, so the
    lower bound is cut to a whole millisecond: at most a millisecond of extra events, which the
    scratch database counts as earlier ones (`ScratchFeatureStore.read_events`)."""
    filters: list[dict[str, Any]] = [{"terms": {"event.code": codes}}, {"exists": {"field": "user.name"}}]
    bounds = {}
    if window.start is not None:
        bounds["gte"] = _iso(context_start(window))
    if window.end is not None:
        bounds["lt"] = _iso_after(window.end)
    if bounds:
        filters.append({"range": {"@timestamp": bounds}})
    return {"bool": {"filter": filters}}


def open_pit_params(index: str, keep_alive: str = KEEP_ALIVE) -> dict[str, Any]:
    return {"index": index, "keep_alive": keep_alive, "ignore_unavailable": True}


def search_body(
    pit_id: str,
    *,
    query: dict[str, Any] | None,
    fields: tuple[str, ...],
    size: int = BATCH_SIZE,
    search_after: list[Any] | None = None,
    slice_id: int | None = None,
    slices: int = 1,
    keep_alive: str = KEEP_ALIVE,
) -> dict[str, Any]:
    """One page of a point-in-time read, in ``_shard_doc`` order (the cheapest total order)."""
    body: dict[str, Any] = {
        "size": size,
        "pit": {"id": pit_id, "keep_alive": keep_alive},
        "sort": [{"_shard_doc": "asc"}],
        "_source": list(fields),
        "track_total_hits": False,
    }
    if query is not None:
        body["query"] = query
    if search_after is not None:
        body["search_after"] = search_after
    if slices > 1:
        if slice_id is None or not 0 <= slice_id < slices:
            raise ValueError(f"slice_id must be in [0, {slices}), got {slice_id}")
        body["slice"] = {"id": slice_id, "max": slices}
    return body


def hit_row(
    hit: dict[str, Any], fields: tuple[str, ...], *, with_document_labels: bool = False
) -> dict[str, Any]:
    """The values of ``fields`` in a hit's _source (dotted or nested); objects kept whole."""
    source = hit.get("_source", {})
    row = {field: get_path(source, field) for field in fields}
    row["_id"] = hit.get("_id")
    if with_document_labels:
        label = get_path(source, LABEL_FIELD)
        row["document"] = {"labels": {"authml_scenario": label}} if label is not None else {}
    return row


def _body(response: Any) -> Any:
    return getattr(response, "body", response)


def next_search_after(response: dict[str, Any]) -> list[Any] | None:
    hits = response.get("hits", {}).get("hits", [])
    return hits[-1]["sort"] if hits else None


class ElasticsearchFeatureReader:
    """FeatureReader over a cluster; ``client`` is an ``elasticsearch.Elasticsearch``."""

    engine = "elasticsearch"

    def __init__(
        self,
        client: Any,
        *,
        events_index: str = DEFAULT_EVENTS_INDEX,
        slices: int = 1,
        batch_size: int = BATCH_SIZE,
        account_batch: int = ACCOUNT_BATCH,
        composite_page: int = COMPOSITE_PAGE,
    ):
        self.client = client
        self.events_index = events_index
        self.slices = slices
        self.batch_size = batch_size
        self.account_batch = account_batch  # accounts per terms filter
        self.composite_page = composite_page  # buckets per page of prior counts

    def iter_batches(
        self, index: str, query: dict[str, Any] | None, fields: tuple[str, ...], *, labels: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """Batches of rows of one index through a point in time, slice after slice; the point in
        time is closed however the read ends."""
        wanted = (*fields, LABEL_FIELD) if labels else fields
        for hits in self.iter_hits(index, query, wanted):
            yield [hit_row(hit, fields, with_document_labels=labels) for hit in hits]

    def iter_hits(
        self, index: str, query: dict[str, Any] | None, source: tuple[str, ...]
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of raw hits (``_source`` limited to ``source``, which may hold wildcards)."""
        pit_id = self.client.open_point_in_time(**open_pit_params(index))["id"]
        try:
            for slice_id in range(self.slices):
                search_after = None
                while True:
                    body = search_body(
                        pit_id,
                        query=query,
                        fields=source,
                        size=self.batch_size,
                        search_after=search_after,
                        slice_id=slice_id if self.slices > 1 else None,
                        slices=self.slices,
                    )
                    response = self.client.search(**body)
                    pit_id = response.get("pit_id", pit_id)
                    hits = response["hits"]["hits"]
                    if not hits:
                        break
                    yield hits
                    search_after = next_search_after(response)
        finally:
            self.client.close_point_in_time(id=pit_id)

    def read_events(self, window: FeatureWindow, *, with_labels: bool = False) -> EventFrame:
        """The window's rows. Without a start, every event before its end and the whole feature
        indices are read; with one, only what `authml.es.window_reads` describes."""
        from authml.embedded.feature_reader import ScratchFeatureStore

        with tempfile.TemporaryDirectory(prefix="authml-features-") as directory:
            scratch = ScratchFeatureStore(Path(directory))
            try:
                codes = authentication_event_codes()
                query = events_query(window, codes)
                for batch in self.iter_batches(self.events_index, query, EVENT_FIELDS, labels=with_labels):
                    scratch.load("events", batch)
                if window.start is None:
                    for index, fields in FEATURE_INDEX_FIELDS.items():
                        for batch in self.iter_batches(index, None, fields):
                            scratch.load(index, batch)
                    return scratch.read_events(window, with_labels=with_labels)
                self.load_window_context(scratch, window, codes)
                return scratch.read_events(window, with_labels=with_labels, prior_loaded=True)
            finally:
                scratch.close()

    def load_window_context(self, scratch: Any, window: FeatureWindow, codes: list[str]) -> None:
        """Into a scratch store that holds the events from the window's context hour on: the
        counts of earlier events and the feature-index rows of the accounts involved."""
        from authml.embedded.feature_reader import PRIOR_COUNTS

        window_accounts = scratch.accounts(since=window.start)
        for accounts in account_batches(window_accounts, self.account_batch):
            for rows in self.iter_prior_counts(window, codes, accounts):
                scratch.load(PRIOR_COUNTS, rows)
        reads = feature_reads(window, window_accounts, scratch.accounts(), batch=self.account_batch)
        for index, query in reads:
            for batch in self.iter_batches(index, query, FEATURE_INDEX_FIELDS[index]):
                scratch.load(index, batch)
        fields = FEATURE_INDEX_FIELDS[USER_HOURLY]
        earliest = _body(earliest_hour_request(fields).send(self.client))
        hit = earliest_hour_to_add(earliest, window, set(window_accounts))
        if hit is not None:
            scratch.load(USER_HOURLY, [hit_row(hit, fields)])

    def iter_prior_counts(
        self, window: FeatureWindow, codes: list[str], accounts: list[str]
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of prior-count rows of ``accounts``, following the composite's ``after_key``."""
        after = None
        while True:
            request = prior_counts_request(
                window, codes, accounts, self.events_index, after=after, size=self.composite_page
            )
            rows, after = prior_count_page(_body(request.send(self.client)))
            if rows:
                yield rows
            if after is None or len(rows) < self.composite_page:  # a short page is the last one
                return

    def time_range(self) -> tuple[object, object]:
        response = self.client.search(
            index=self.events_index,
            size=0,
            query={"terms": {"event.code": authentication_event_codes()}},
            aggs={"first": {"min": {"field": "@timestamp"}}, "last": {"max": {"field": "@timestamp"}}},
        )
        aggregations = response["aggregations"]

        def moment(name: str) -> datetime | None:
            value = aggregations[name].get("value_as_string")
            return (
                datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None) if value else None
            )

        return moment("first"), moment("last")
