"""Small builders shared by tests (never imported by production code)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def auth_event(
    record_id: int,
    *,
    user: str = "alice",
    ip: str | None = "10.0.0.1",
    code: str = "4624",
    outcome: str = "success",
    timestamp: str = "2025-01-06T09:00:00.000Z",
    host: str = "WS01",
) -> dict[str, Any]:
    """A minimal Winlogbeat-shaped authentication event."""
    event: dict[str, Any] = {
        "@timestamp": timestamp,
        "event": {"code": code, "outcome": outcome, "kind": "event"},
        "user": {"name": user, "domain": "CORP"},
        "host": {"name": host},
        "winlog": {
            "computer_name": host,
            "channel": "Security",
            "record_id": str(record_id),
            "logon": {"type": "Network"},
        },
    }
    if ip is not None:
        event["source"] = {"ip": ip}
    return event


def write_ndjson(path: Path, lines: list[Any]) -> Path:
    """Write objects as JSON lines; strings are written verbatim (to make bad lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path
