"""Flat Splunk-style JSON exports of Windows authentication events, mapped to ECS."""

from __future__ import annotations

import json

SPLUNK_MARKER_KEYS = frozenset({"signature_id", "TimeCreated", "src_user", "EventCode"})


def looks_like_splunk(line: str) -> bool:
    """A flat object with Splunk CIM-style keys and no ECS @timestamp."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and "@timestamp" not in value and bool(SPLUNK_MARKER_KEYS & value.keys())
