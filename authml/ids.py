"""Deterministic event ids, so that re-ingesting the same record never stores it twice.

Both engines must give an event the same id: the embedded store computes it here, and in
Elasticsearch the ``authml-events`` ingest pipeline computes it with the ``fingerprint`` processor.
This module therefore reproduces that processor's byte format exactly (read from
elastic/elasticsearch ``FingerprintProcessor.java``):

- the salt's UTF-8 bytes come first (nothing when the salt is empty);
- the listed fields are taken in sorted order; a missing field is skipped (``ignore_missing``);
- each scalar contributes a 0x00 delimiter and then its bytes: strings as UTF-8, 32-bit integers as
  4 little-endian bytes, other integers as 8, floats as 8-byte little-endian doubles, true as 0x01,
  false as 0x02, null as nothing;
- a list contributes its items in order; a mapping contributes, per key in sorted order, a 0x00,
  the key's UTF-8 bytes, then the value (field names at the top level are *not* hashed);
- the result is the standard, padded Base64 of the SHA-256 digest.

The identity of a Windows event is (channel, computer, record id). Records without that identity
(flat exports, synthetic events) are identified by the content of the ECS field sets below,
leaving out ``event.ingested`` and authml's own ``authml.*`` fields, which change on every ingest.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterable
from typing import Any

IDENTITY_FIELDS = ("winlog.computer_name", "winlog.channel", "winlog.record_id")
IDENTITY_SALT = "authml:winlog:v1"
CONTENT_SALT = "authml:content:v1"
# Top-level ECS field sets hashed when a record has no Windows identity. A key outside this list
# does not change the id; the ingest pipeline lists the same fields.
CONTENT_FIELDS = (
    "@timestamp",
    "agent",
    "client",
    "destination",
    "event",
    "host",
    "log",
    "message",
    "network",
    "observer",
    "process",
    "related",
    "server",
    "service",
    "source",
    "tags",
    "user",
    "winlog",
)

_DELIMITER = b"\x00"
_INT32 = range(-(2**31), 2**31)
_INT64 = range(-(2**63), 2**63)
_MISSING = object()


def event_id(doc: dict[str, Any]) -> str:
    """The event's id: a fingerprint of its Windows identity, or of its content. Raises ValueError
    for a record with neither (nothing to identify it by)."""
    identity = [nested_value(doc, field) for field in IDENTITY_FIELDS]
    if all(value not in (_MISSING, None, "") for value in identity):
        return fingerprint(doc, IDENTITY_FIELDS, salt=IDENTITY_SALT)
    content = _without_ingest_fields(doc)
    if all(nested_value(content, field) in (_MISSING, None) for field in CONTENT_FIELDS):
        # The pipeline's fingerprint writes nothing for such a record and its fail processor
        # rejects it; here too it has no identity, so it must be dead-lettered, not stored.
        raise ValueError(
            f"the record has no {', '.join(IDENTITY_FIELDS)} and none of the ECS fields {', '.join(CONTENT_FIELDS)}"
        )
    return fingerprint(content, CONTENT_FIELDS, salt=CONTENT_SALT)


def fingerprint(doc: dict[str, Any], fields: Iterable[str], *, salt: str = "") -> str:
    """What ``{"fingerprint": {"fields": fields, "salt": salt, "method": "SHA-256",
    "ignore_missing": true}}`` writes for ``doc``."""
    digest = hashlib.sha256(salt.encode("utf-8"))
    for field in sorted(fields, key=java_order):
        value = nested_value(doc, field)
        if value is _MISSING or value is None:
            continue
        for chunk in _value_bytes(value):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode("ascii")


def nested_value(doc: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted path through nested objects, as an ingest pipeline resolves it
    (a literal key containing dots is not followed), or ``_MISSING``."""
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _value_bytes(value: Any) -> Iterable[bytes]:
    if isinstance(value, dict):
        for key in sorted(value, key=java_order):
            yield _DELIMITER
            yield str(key).encode("utf-8")
            yield from _value_bytes(value[key])
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _value_bytes(item)
    else:
        yield _DELIMITER
        yield _scalar_bytes(value)


def java_order(text: Any) -> bytes:
    """Java compares strings by UTF-16 code unit; comparing UTF-16BE bytes gives the same order."""
    return str(text).encode("utf-16-be", "surrogatepass")


def _scalar_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bool):  # before int: bool is an int in Python
        return b"\x01" if value else b"\x02"
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, int):
        if value in _INT32:
            return struct.pack("<i", value)
        if value in _INT64:
            return struct.pack("<q", value)
        raise ValueError(f"integer {value} does not fit in 64 bits; Elasticsearch cannot fingerprint it")
    if isinstance(value, float):
        return struct.pack("<d", value)
    raise ValueError(f"cannot fingerprint a value of type {type(value).__name__}")


def _without_ingest_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as the pipeline sees it when it fingerprints content: ``event.ingested``
    already moved away and ``authml.*`` not part of the hashed fields."""
    event = doc.get("event")
    if isinstance(event, dict) and "ingested" in event:
        doc = {**doc, "event": {k: v for k, v in event.items() if k != "ingested"}}
    return doc
