"""Deterministic event ids, so that re-ingesting the same record never stores it twice.

The identity of a Windows event is (computer, channel, record id). Records without that identity
(flat exports, synthetic events) are identified by a hash of their canonical content instead.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from authml.ecs import get_path

IDENTITY_FIELDS = ("winlog.computer_name", "winlog.channel", "winlog.record_id")


def event_id(doc: dict[str, Any], flat: dict[str, Any] | None = None) -> str:
    """The event's id: a hex SHA-256 of its Windows identity, or of its content. ``flat`` is the
    document's flattened view when the caller already has it."""
    identity = [(flat.get(field) if flat is not None else get_path(doc, field)) for field in IDENTITY_FIELDS]
    if all(value not in (None, "") for value in identity):
        material = "|".join(["winlog", *(str(value) for value in identity)])
    else:
        material = "content|" + json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
