"""`authml score --engine elasticsearch`: which events to score and their features, read from the
cluster, so a cluster-only deployment (assets applied, transforms running, periodic `authml train`
and `authml score`) needs no local ingest.

- **Checkpoint by the cluster's data.** Events are pending when their ``event.ingested`` (the
  transforms' sync field) lies in ``[checkpoint, bound)``, where the bound is the oldest last
  checkpoint (``time_upper_bound``) of the feature transforms: every pending event has reached
  every feature index, as `features_lag` guarantees in embedded mode. The next checkpoint is that
  bound. It is kept per cluster and events pattern in ``<project_dir>/score-checkpoints-es.json``,
  written only after the scores are committed: a run killed before that scores the same events
  again, and scores are keyed by event and model version, so nothing is duplicated.
- **Features** come from ``ElasticsearchFeatureReader`` (raw events plus the feature indices).
- **Identity.** The scores table takes each event's ECS identity from the local ``events`` table,
  so the scored window's events are copied there (``source_file`` ``elasticsearch:<index>``,
  ``_id`` = the cluster's ``_id``); `authml explain`, `authml report` and ``--output`` then work
  as in embedded mode. A document the store cannot take becomes a dead letter with its reason.

Request bodies are built by pure functions; the classes are the thin part that sends them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from authml.errors import NotReadyError, StoreError
from authml.es.apply import Request
from authml.es.feature_reader import (
    DEFAULT_EVENTS_INDEX,
    ElasticsearchFeatureReader,
    _iso,
    events_query,
)
from authml.train.feature_sql import FEATURE_TABLES, FeatureWindow, authentication_event_codes
from authml.train.matrix import EventFrame

CHECKPOINT_FILE = "score-checkpoints-es.json"
EVERY_FIELD = ("*",)


def feature_transforms() -> list[str]:
    """The transforms whose dest indices the per-event features read."""
    from authml.assets.catalogue import load_catalogue

    return sorted(
        a.name
        for a in load_catalogue()
        if a.kind == "transforms" and (a.body.get("dest") or {}).get("index") in FEATURE_TABLES
    )


def transform_stats_request(transforms: list[str]) -> Request:
    return Request("GET", f"/_transform/{','.join(transforms)}/_stats", params={"allow_no_match": "true"})


def features_bound(stats: dict[str, Any], transforms: list[str]) -> datetime:
    """The newest ``event.ingested`` every feature transform has processed: the oldest of their
    last checkpoints' upper bounds (naive UTC). Raises NotReadyError naming what is missing."""
    found = {entry.get("id"): entry for entry in stats.get("transforms", [])}
    bounds = []
    for name in transforms:
        entry = found.get(name)
        if entry is None:
            raise NotReadyError(f"the transform {name} is not installed; run `authml assets apply`")
        last = (entry.get("checkpointing") or {}).get("last") or {}
        upper = last.get("time_upper_bound_millis")
        if not upper:
            raise NotReadyError(
                f"the transform {name} has not completed a checkpoint yet ({entry.get('state', 'unknown')}); "
                "wait for it (`authml doctor` shows its progress) and score again"
            )
        bounds.append(int(upper))
    return datetime.fromtimestamp(min(bounds) / 1000, UTC).replace(tzinfo=None)


def _scoreable(codes: list[str]) -> list[dict[str, Any]]:
    return [
        {"terms": {"event.code": codes}},
        {"exists": {"field": "user.name"}},
        {"exists": {"field": "@timestamp"}},
    ]


def pending_request(
    after: datetime | None, bound: datetime, codes: list[str], index: str = DEFAULT_EVENTS_INDEX
) -> Request:
    """How many scoreable events were ingested in ``[after, bound)``, and their @timestamp span."""
    ingested: dict[str, str] = {"lt": _iso(bound)}
    if after is not None:
        ingested["gte"] = _iso(after)
    body = {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": [*_scoreable(codes), {"range": {"event.ingested": ingested}}]}},
        "aggs": {"first": {"min": {"field": "@timestamp"}}, "last": {"max": {"field": "@timestamp"}}},
    }
    return Request(
        "POST", f"/{index}/_search", body, params={"ignore_unavailable": "true", "allow_no_indices": "true"}
    )


@dataclass(frozen=True, slots=True)
class ClusterPending:
    """Like ``authml.embedded.scores.Pending``: what the scorer needs to know about a run."""

    events: int
    first: datetime | None
    last: datetime | None
    ingested_upper: datetime


def pending_from_response(response: dict[str, Any], bound: datetime) -> ClusterPending:
    """@timestamp in the cluster has millisecond precision, so ``last`` is the end of the newest
    event's millisecond: the window the scorer derives (up to ``last`` + 1 µs) then includes it."""
    total = response["hits"]["total"]
    count = total["value"] if isinstance(total, dict) else int(total)
    aggregations = response.get("aggregations") or {}

    def moment(name: str) -> datetime | None:
        value = (aggregations.get(name) or {}).get("value")
        return None if value is None else datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None)

    first, last = moment("first"), moment("last")
    if last is not None:
        last += timedelta(microseconds=999)
    return ClusterPending(count, first, last, bound)


def window_events_query(window: FeatureWindow, codes: list[str]) -> dict[str, Any]:
    """The scoreable events inside the window (those the scorer writes a score for)."""
    query = events_query(window, codes)
    filters = query["bool"]["filter"]
    filters.append({"exists": {"field": "@timestamp"}})
    if window.start is not None:
        filters.append({"range": {"@timestamp": {"gte": _iso(window.start)}}})
    return query


# Checkpoints -----------------------------------------------------------------------------------


def checkpoint_key(cluster: str, events_index: str) -> str:
    return f"{cluster} {events_index}"


def read_checkpoints(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(
            f"{path} is not readable JSON ({exc}); delete it to score every event in the cluster again"
        ) from exc
    if not isinstance(data, dict):
        raise StoreError(f"{path} must hold a JSON object; delete it to score every event again")
    return data


def write_checkpoints(path: Path, checkpoints: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(checkpoints, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


# Sending ---------------------------------------------------------------------------------------


def _body(response: Any) -> Any:
    return getattr(response, "body", response)


class MirroringReader:
    """The feature reader the scorer uses: copies the window's events into the local store, then
    reads features from the cluster."""

    engine = "elasticsearch"

    def __init__(self, source: ElasticsearchScoreSource, store: Any):
        self.source = source
        self.store = store

    def read_events(self, window: FeatureWindow, *, with_labels: bool = False) -> EventFrame:
        self.source.copy_events(self.store, window)
        return self.source.reader.read_events(window, with_labels=with_labels)


class ElasticsearchScoreSource:
    """The cluster side of a scoring run (see the module docstring); ``client`` is an
    ``elasticsearch.Elasticsearch``."""

    def __init__(
        self,
        client: Any,
        project_dir: Path,
        *,
        cluster: str,
        events_index: str = DEFAULT_EVENTS_INDEX,
        slices: int = 1,
        progress: Callable[[str], None] = lambda message: None,
    ):
        self.client = client
        self.checkpoint_path = Path(project_dir) / CHECKPOINT_FILE
        self.key = checkpoint_key(cluster, events_index)
        self.events_index = events_index
        self.reader = ElasticsearchFeatureReader(client, events_index=events_index, slices=slices)
        self.progress = progress
        self.bound: datetime | None = None
        self.copied = 0
        self.dead_lettered = 0

    def check_ready(self) -> None:
        transforms = feature_transforms()
        stats = _body(transform_stats_request(transforms).send(self.client))
        self.bound = features_bound(stats, transforms)

    def checkpoint(self) -> datetime | None:
        entry = read_checkpoints(self.checkpoint_path).get(self.key)
        return datetime.fromisoformat(entry["ingested_upper"]) if entry else None

    def pending(self) -> ClusterPending:
        if self.bound is None:
            self.check_ready()
        assert self.bound is not None
        request = pending_request(
            self.checkpoint(), self.bound, authentication_event_codes(), self.events_index
        )
        return pending_from_response(_body(request.send(self.client)), self.bound)

    def commit_checkpoint(self, pending: ClusterPending, model_version: str, now: datetime) -> None:
        checkpoints = read_checkpoints(self.checkpoint_path)
        checkpoints[self.key] = {
            "ingested_upper": pending.ingested_upper.isoformat(),
            "model_version": model_version,
            "recorded_at": now.isoformat(),
            "events": pending.events,
        }
        write_checkpoints(self.checkpoint_path, checkpoints)

    def feature_reader(self, store: Any) -> MirroringReader:
        return MirroringReader(self, store)

    def iter_window_hits(self, window: FeatureWindow) -> Iterator[list[dict[str, Any]]]:
        query = window_events_query(window, authentication_event_codes())
        yield from self.reader.iter_hits(self.events_index, query, EVERY_FIELD)

    def copy_events(self, store: Any, window: FeatureWindow) -> None:
        """Copy the window's events into the local store (ids already there are kept)."""
        for hits in self.iter_window_hits(window):
            events, letters = stored_events(hits)
            store.write_batch(events, letters)
            self.copied += len(events)
            self.dead_lettered += len(letters)
        self.progress(f"copied {self.copied} events from the cluster into the local store")


def stored_events(hits: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """Store rows for a page of hits: each keeps the cluster's ``_id`` (the id its score is
    written under, so ES|QL can join on it); documents the store refuses become dead letters."""
    from authml.embedded.store import DeadLetter
    from authml.ingest import InvalidEvent, prepare_event

    events, letters = [], []
    for hit in hits:
        source_file = f"elasticsearch:{hit.get('_index')}"
        document = hit.get("_source") or {}
        raw = json.dumps(document, default=str)
        ingested = (document.get("event") or {}).get("ingested") or _iso(datetime.now(UTC))
        try:
            event = prepare_event(json.loads(raw), source_file, hit["_id"], str(ingested))
        except InvalidEvent as exc:
            letters.append(DeadLetter(source_file, hit["_id"], str(exc), raw))
            continue
        events.append(replace(event, event_id=hit["_id"]))
    return events, letters
