"""Values of an EVTX record as the `evtx` parser renders them in JSON, read the way Winlogbeat reads
the same record's XML: every EventData value a string, unnamed <Data> elements numbered, Windows'
placeholders left out, GUIDs in braces."""

from __future__ import annotations

import re
from typing import Any

# event_data values the default pipeline removes before mapping: Windows' "no value" placeholders.
PLACEHOLDERS = frozenset({"", "-", "{00000000-0000-0000-0000-000000000000}"})
_BARE_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def read_event_data(section: Any) -> dict[str, Any]:
    """<EventData> as Winlogbeat keys it (unnamed <Data> become paramN), every value a string,
    with the placeholders the default pipeline drops already left out."""
    if not isinstance(section, dict):
        return {}
    pairs: dict[str, Any] = {}
    index = 0
    placeholders = PLACEHOLDERS
    for key, value in section.items():
        index += 1
        kind = type(value)
        if key == "Data":  # unnamed <Data> elements: Winlogbeat numbers them paramN
            index -= 1
            texts = value.get("#text") if kind is dict else value
            for text in texts if isinstance(texts, list) else [texts]:
                index += 1
                add_pair(pairs, f"param{index}", text, placeholders)
        # Most values are plain strings and integers: handled here, the rest in as_text.
        elif kind is str:
            if value in placeholders or value.isspace():
                continue
            if len(value) == 36 and value[8] == "-" and _BARE_GUID.fullmatch(value):
                value = "{" + value + "}"
                if value in placeholders:
                    continue
            elif "\r" in value:
                value = value.replace("\r\n", "\n")
            pairs[key] = value
        elif kind is int:
            pairs[key] = str(value)
        elif key == "#attributes":
            index -= 1
        else:
            add_pair(pairs, key, value, placeholders)
    return pairs


def read_user_data(section: Any) -> dict[str, Any]:
    if not isinstance(section, dict):
        return {}
    for name, inner in section.items():
        if isinstance(inner, dict):
            pairs: dict[str, Any] = {}
            for key, value in inner.items():
                if key != "#attributes":
                    add_pair(pairs, key, value, frozenset({""}))
            if pairs:
                pairs["xml_name"] = name
            return pairs
    return {}


def add_pair(pairs: dict[str, Any], key: str, value: Any, dropped: frozenset[str]) -> None:
    text = as_text(value)
    if text is None or key in pairs:
        return
    if text in dropped or not text.strip():
        return
    pairs[key] = text


def as_text(value: Any) -> str | None:
    """A value as Windows renders it in XML, which is what Winlogbeat reads."""
    if isinstance(value, str):
        if len(value) == 36 and value[8] == "-" and _BARE_GUID.fullmatch(value):
            return "{" + value + "}"
        return value.replace("\r\n", "\n")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return as_text(value.get("#text"))
    if isinstance(value, list):
        return as_text(value[0]) if value else None
    return None


def attributes(element: Any) -> dict[str, Any]:
    if isinstance(element, dict):
        attributes = element.get("#attributes")
        if isinstance(attributes, dict):
            return attributes
    return {}


def element_text(value: Any) -> Any:
    return value.get("#text") if isinstance(value, dict) else value


def braced(guid: str | None) -> str | None:
    return "{" + guid.strip("{}") + "}" if guid else None


def put(target: dict[str, Any], key: str, value: Any) -> None:
    if value:
        target[key] = value


def hex_int(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError:
            return None
    return None


def decode_long(value: Any) -> int | None:
    """Java's Long.decode, which the pipeline uses: decimal, 0x/# hex, leading-zero octal."""
    text = str(value).strip()
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    try:
        if body[:2].lower() == "0x":
            return sign * int(body[2:], 16)
        if body.startswith("#"):
            return sign * int(body[1:], 16)
        if len(body) > 1 and body.startswith("0"):
            return sign * int(body[1:], 8)
        return sign * int(body, 10)
    except ValueError:
        return None
