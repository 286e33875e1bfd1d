"""``authml ingest --es``: normalised events into Elasticsearch through the bulk API.

Each event is a bulk ``create`` with ``_id`` = its deterministic event id, so re-sending a file
stores nothing twice (Elasticsearch answers 409 for an id it already holds). The raw index's
default pipeline (authml-events) adds ingest time, user key and risk. Rejections that may pass
later (429, 5xx) are retried with exponential backoff; any other per-document rejection becomes
a dead letter carrying Elasticsearch's reason, so every event is stored, a duplicate, or
dead-lettered. A request that fails as a whole after the retries raises ClusterError: nothing
of that batch is counted, and re-running the ingest fills the gap without duplicates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from authml.embedded.store import DeadLetter, StoredEvent
from authml.ingest import BatchOutcome

DEFAULT_INDEX = "authml-events-default"
RETRYABLE = frozenset({429, 500, 502, 503, 504})


def bulk_operations(events: Sequence[StoredEvent], index: str) -> list[dict[str, Any]]:
    """The bulk body: an action line and a document per event."""
    operations: list[dict[str, Any]] = []
    for event in events:
        operations.append({"create": {"_index": index, "_id": event.event_id}})
        operations.append(event.document)
    return operations


def backoff_seconds(attempt: int, base_s: float, cap_s: float = 30.0) -> float:
    return min(cap_s, base_s * 2**attempt)


class ElasticsearchSink:
    """An EventSink writing to an Elasticsearch index (a ``client`` from authml.es.client.connect)."""

    def __init__(
        self,
        client: Any,
        index: str = DEFAULT_INDEX,
        *,
        pipeline: str | None = None,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client = client
        self.index = index
        self.pipeline = pipeline  # None: the index's default_pipeline applies
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.sleep = sleep

    def write_batch(self, events: Sequence[StoredEvent], dead_letters: Sequence[DeadLetter]) -> BatchOutcome:
        """Send ``events``. ``dead_letters`` (records that could not be read) stay with the caller,
        which records them; only events Elasticsearch refuses come back in ``failed``."""
        outcome = BatchOutcome(stored=0, duplicates=0)
        for _event, result in self._results(events):
            _count(outcome, result)
        return outcome

    def write_batch_by_file(
        self, events: Sequence[StoredEvent], dead_letters: Sequence[DeadLetter]
    ) -> dict[str, BatchOutcome]:
        """write_batch for the events of several files, in one bulk request: each file's outcome
        (by source_file; every bulk item answers for one document)."""
        outcomes = {event.source_file: BatchOutcome(stored=0, duplicates=0) for event in events}
        for event, result in self._results(events):
            _count(outcomes[event.source_file], result)
        return outcomes

    def _results(self, events: Sequence[StoredEvent]) -> list[tuple[StoredEvent, int | DeadLetter]]:
        """Each event with what became of it: its HTTP status (201 stored, 409 a duplicate), or the
        dead letter of a refusal; retryable refusals are sent again with backoff first."""
        results: list[tuple[StoredEvent, int | DeadLetter]] = []
        pending = list(events)
        attempt = 0
        while pending:
            items = self._send(pending, attempt)
            retry: list[StoredEvent] = []
            for event, item in zip(pending, items, strict=True):
                status, reason = _item_result(item)
                if status in (200, 201, 409):
                    results.append((event, status))
                elif status in RETRYABLE and attempt < self.max_retries:
                    retry.append(event)
                else:
                    prefix = (
                        f"Elasticsearch still refused it after {attempt} retries: "
                        if status in RETRYABLE
                        else ""
                    )
                    results.append((event, _dead_letter(event, f"{prefix}HTTP {status}: {reason}")))
            if retry:
                self.sleep(backoff_seconds(attempt, self.backoff_base_s))
                attempt += 1
            pending = retry
        return results

    def _send(self, events: list[StoredEvent], attempt: int) -> list[dict[str, Any]]:
        """One bulk request, retrying the whole request on 429, 5xx and connection failures."""
        from elasticsearch import ApiError, ConnectionError, ConnectionTimeout

        operations = bulk_operations(events, self.index)
        params = {"pipeline": self.pipeline} if self.pipeline else {}
        while True:
            try:
                response = self.client.bulk(operations=operations, **params)
                items = list(response["items"])
                if len(items) != len(events):
                    raise RuntimeError(
                        f"the bulk response has {len(items)} items for {len(events)} documents"
                    )
                return items
            except (ConnectionError, ConnectionTimeout, ApiError) as exc:
                status = getattr(getattr(exc, "meta", None), "status", None)
                retryable = status is None or status in RETRYABLE
                if not retryable or attempt >= self.max_retries:
                    raise
                self.sleep(backoff_seconds(attempt, self.backoff_base_s))
                attempt += 1


def _count(outcome: BatchOutcome, result: int | DeadLetter) -> None:
    if isinstance(result, DeadLetter):
        outcome.failed.append(result)
    elif result == 409:
        outcome.duplicates += 1
    else:
        outcome.stored += 1


def _item_result(item: dict[str, Any]) -> tuple[int, str]:
    result = item.get("create") or next(iter(item.values()), {})
    status = int(result.get("status", 0))
    error = result.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        caused = error.get("caused_by")
        if isinstance(caused, dict) and caused.get("reason"):
            reason += f" (caused by {caused.get('type', 'error')}: {caused['reason']})"
    else:
        reason = str(error or result.get("result", ""))
    return status, reason


def _dead_letter(event: StoredEvent, reason: str) -> DeadLetter:
    raw = json.dumps(event.document, separators=(",", ":"), default=str, ensure_ascii=False)
    return DeadLetter(event.source_file, event.source_position, reason, raw)
