"""Score rows as documents other tools read: the NDJSON of `authml score --output`.

A record holds exactly the event's id, its ECS identity, the combined score, each detector's
score, the reasons and the model version; authml's own values sit under ``authml.*`` and the ECS
identity keeps its ECS paths, so the record reads like the event it scores.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from authml.ecs import set_path

IDENTITY_FIELDS = (
    "@timestamp",
    "user.name",
    "user.domain",
    "source.ip",
    "host.name",
    "event.code",
    "winlog.logon.type",
    "winlog.computer_name",
    "winlog.channel",
    "winlog.record_id",
    "event.id",
)


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 with a Z; naive datetimes from the store are UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def score_record(row: dict[str, Any]) -> dict[str, Any]:
    """The NDJSON record of one scores-table row. Identity fields the event lacks are left out
    (``event.id`` only exists when the source had one)."""
    record: dict[str, Any] = {}
    for field in IDENTITY_FIELDS:
        value = row.get(field)
        if value is None:
            continue
        set_path(record, field, iso_utc(value) if field == "@timestamp" else value)
    record["authml"] = {
        "event_id": row["event_id"],
        "score": round(float(row["score"]), 3),
        "detector_scores": {k: round(float(v), 4) for k, v in sorted(row["detector_scores"].items())},
        "reasons": list(row["reasons"]),
        "model_version": row["model_version"],
    }
    return record
