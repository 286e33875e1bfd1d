"""authml/ids.py must give the same id as the ingest pipeline's fingerprint processor.

The expected values are built byte by byte from the format of Elasticsearch's
FingerprintProcessor (salt, then per value a 0x00 delimiter and its bytes; map keys sorted;
integers little-endian; Base64 of SHA-256), independently of the code under test. The
integration tests check the same documents against a real cluster."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest

from authml.assets import load_asset
from authml.ids import CONTENT_FIELDS, CONTENT_SALT, IDENTITY_FIELDS, IDENTITY_SALT, event_id, fingerprint


def _expected(*chunks: bytes) -> str:
    return base64.b64encode(hashlib.sha256(b"".join(chunks)).digest()).decode()


def test_windows_identity_with_integer_record_id():
    doc = {"winlog": {"computer_name": "DC01.corp.local", "channel": "Security", "record_id": 4242}}
    # fields in sorted order: winlog.channel, winlog.computer_name, winlog.record_id
    assert event_id(doc) == _expected(
        b"authml:winlog:v1", b"\x00Security", b"\x00DC01.corp.local", b"\x00", (4242).to_bytes(4, "little")
    )


def test_record_id_as_string_and_as_long_are_hashed_as_they_are_sent():
    base = {"winlog": {"computer_name": "WS1", "channel": "Security"}}
    as_text = {"winlog": {**base["winlog"], "record_id": "4242"}}
    as_long = {"winlog": {**base["winlog"], "record_id": 2**40}}
    assert event_id(as_text) == _expected(b"authml:winlog:v1", b"\x00Security", b"\x00WS1", b"\x004242")
    assert event_id(as_long) == _expected(
        b"authml:winlog:v1", b"\x00Security", b"\x00WS1", b"\x00", struct.pack("<q", 2**40)
    )


def test_identity_ignores_everything_else():
    one = {"winlog": {"computer_name": "A", "channel": "Security", "record_id": 1}, "message": "x"}
    two = {"winlog": {"computer_name": "A", "channel": "Security", "record_id": 1}, "message": "y"}
    assert event_id(one) == event_id(two)


def test_content_fingerprint_byte_format():
    doc = {
        "@timestamp": "2024-01-01T00:00:00Z",
        "user": {"name": "alice", "domain": "CORP"},
        "event": {"code": "4624", "ingested": "2024-01-02T00:00:00Z"},
        "tags": ["a", True, 1.5, None, False],
        "authml": {"user_key": "corp\\alice"},
        "unlisted": "does not count",
    }
    expected = _expected(
        b"authml:content:v1",
        b"\x002024-01-01T00:00:00Z",
        b"\x00code\x004624",  # event.ingested is left out
        b"\x00a\x00\x01\x00" + struct.pack("<d", 1.5) + b"\x00\x00\x02",
        b"\x00domain\x00CORP\x00name\x00alice",
    )
    assert event_id(doc) == expected


def test_content_id_ignores_ingest_time_and_authml_fields():
    doc = {"@timestamp": "2024-01-01T00:00:00Z", "user": {"name": "bob"}, "event": {"code": "4625"}}
    restamped = {**doc, "event": {"code": "4625", "ingested": "now"}, "authml": {"event_id": "old"}}
    assert event_id(doc) == event_id(restamped)
    assert event_id(doc) != event_id({**doc, "user": {"name": "carol"}})


def test_a_record_with_nothing_to_identify_it_is_refused():
    with pytest.raises(ValueError, match="no winlog.computer_name"):
        event_id({"authml": {"user_key": "x"}, "labels": {"a": "b"}})


def test_map_keys_sort_by_utf16_code_units_like_java():
    # U+1F600 is a surrogate pair (D83D DE00) and sorts before U+E000 in Java, after it by code point.
    doc = {"user": {"\ue000": "x", "\U0001f600": "y"}}
    expected = _expected(
        b"salt", b"\x00" + "\U0001f600".encode(), b"\x00y", b"\x00" + "\ue000".encode(), b"\x00x"
    )
    assert fingerprint(doc, ["user"], salt="salt") == expected


def test_integers_beyond_64_bits_cannot_be_fingerprinted():
    with pytest.raises(ValueError, match="64 bits"):
        fingerprint({"a": 2**70}, ["a"])


def test_dotted_literal_keys_are_not_followed_like_the_pipeline():
    nested = {"winlog": {"computer_name": "A", "channel": "S", "record_id": 1}, "@timestamp": "t"}
    dotted = {"winlog.computer_name": "A", "winlog.channel": "S", "winlog.record_id": 1, "@timestamp": "t"}
    assert event_id(nested) != event_id(dotted)


def test_the_pipeline_fingerprints_exactly_these_fields_and_salts():
    processors = [
        next(iter(p.items())) for p in load_asset("ingest_pipelines", "authml-events")["processors"]
    ]
    fingerprints = {config["tag"]: config for kind, config in processors if kind == "fingerprint"}
    winlog, content = fingerprints["authml-event-id-winlog"], fingerprints["authml-event-id-content"]
    assert sorted(winlog["fields"]) == sorted(IDENTITY_FIELDS) and winlog["salt"] == IDENTITY_SALT
    assert sorted(content["fields"]) == sorted(CONTENT_FIELDS) and content["salt"] == CONTENT_SALT
    assert winlog["method"] == content["method"] == "SHA-256"
    assert content["ignore_missing"] is True and "ignore_missing" not in winlog
    assert winlog["target_field"] == content["target_field"] == "authml.event_id"
