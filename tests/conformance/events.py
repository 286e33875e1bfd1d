"""Writing ECS events into a test store the way ingest does: typed columns plus the document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from authml.ecs import get_path
from authml.embedded.schema import event_columns
from authml.embedded.store import Store, StoredEvent
from authml.ids import event_id


def _typed(value: Any, field: str) -> Any:
    # A one-element array is the same single value to ES; more values need the engine's
    # multi-value handling, which the store's typed columns cannot represent.
    if isinstance(value, list):
        if len(value) > 1:
            raise ValueError(f"multi-valued [{field}] cannot be written to a typed column")
        return value[0] if value else None
    return value


def stored(document: dict[str, Any], position: int) -> StoredEvent:
    typed = tuple(_typed(get_path(document, column.field), column.field) for column in event_columns())
    return StoredEvent(event_id(document), document, typed, "test.ndjson", str(position))


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
