"""Writing ECS events into a test store the way ingest does: typed columns plus the document."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from authml.embedded.store import Store, StoredEvent
from authml.ingest import prepare_event


def stored(document: dict[str, Any], position: int) -> StoredEvent:
    """The event as `authml ingest` stores it (typed columns, authml fields), keeping the
    document's own event.ingested so tests control the sync field."""
    ingested = document["event"]["ingested"]
    return prepare_event(copy.deepcopy(document), "test.ndjson", str(position), ingested)


def write_events(project_dir: Path, documents: list[dict[str, Any]], start: int = 0) -> Store:
    store = Store.open(project_dir, create=True)
    store.write_batch([stored(d, start + i) for i, d in enumerate(documents)], [])
    return store


def auth_event(
    user: str | None,
    timestamp: str,
    ingested: str,
    *,
    code: str = "4624",
    outcome: str = "success",
    host: str | None = "ws1",
    ip: str | None = "10.0.0.1",
    logon_type: str | None = "3",
    record: int = 0,
    service: str | None = None,
    encryption: str | None = None,
) -> dict[str, Any]:
    """A Windows authentication event as ECS (the fields the feature transforms read)."""
    document: dict[str, Any] = {
        "@timestamp": timestamp,
        "event": {"code": code, "outcome": outcome, "ingested": ingested, "category": ["authentication"]},
        "winlog": {"computer_name": "dc1", "channel": "Security", "record_id": str(record)},
    }
    if user is not None:
        document["user"] = {"name": user}
    if host is not None:
        document["host"] = {"name": host}
    if ip is not None:
        document["source"] = {"ip": ip}
    if logon_type is not None:
        document["winlog"]["logon"] = {"type": logon_type}
    event_data = {
        k: v for k, v in (("ServiceName", service), ("TicketEncryptionType", encryption)) if v is not None
    }
    if event_data:
        document["winlog"]["event_data"] = event_data
    return document
