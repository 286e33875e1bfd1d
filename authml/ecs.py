"""Small helpers for ECS documents: dotted paths into nested objects, and authml's own keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

_MISSING = object()


def get_path(doc: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """The value at a dotted ECS path. Accepts both nested objects and literal dotted keys,
    since Elasticsearch treats ``{"user": {"name": x}}`` and ``{"user.name": x}`` alike."""
    if dotted in doc:
        return doc[dotted]
    head, _, rest = dotted.partition(".")
    while rest:
        node = doc.get(head, _MISSING)
        if isinstance(node, dict):
            value = get_path(node, rest, _MISSING)
            if value is not _MISSING:
                return value
        more, _, rest = rest.partition(".")
        head = f"{head}.{more}"
    return default


def set_path(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted path, creating nested objects on the way."""
    *parents, leaf = dotted.split(".")
    node = doc
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def user_key(name: str | None, domain: str | None = None) -> str | None:
    """authml.user_key: one spelling per account, the account name stripped and in lower case.

    The domain is deliberately not part of the key: Windows names the same account with its NetBIOS
    domain on logons (CORP), its DNS domain on Kerberos tickets (corp.example.com) and no domain at
    all on 4771 and 4776, so a key with the domain would split one account into three. In a forest
    where two domains hold the same account name, those accounts share a key. ``domain`` is accepted
    so callers can pass what they have. The ingest pipeline computes the same string."""
    if not isinstance(name, str) or not name:  # as the pipeline's script: a number is no name
        return None
    key = name.strip().lower()
    return key or None


def utc_timestamp(moment: datetime) -> str:
    """An ECS date as authml writes it: UTC with microseconds, ``2025-01-06T09:00:00.000000Z``
    (a naive moment is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
