"""One canonical form per asset: canonical JSON for hashing, canonical YAML for the files.

The hash ignores key order and formatting, so only a change of content needs a version bump.
The YAML form keeps the author's key order (it reads top-down: description, source, dest, ...)
and fixes everything else: two-space indents, flow style ``{a: 1}`` / ``[a, b]`` for short
collections of scalars, quoting only where YAML needs it, literal blocks for multi-line strings.
Comments are kept only as the header block at the top of the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import yaml

from authml.errors import AssetError

MAX_FLOW_WIDTH = 100
_PLAIN_FORBIDDEN_START = set("-?:,[]{}#&*!|>'\"%@`")
_FLOW_INDICATORS = set(",[]{}")


def canonical_json(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def body_sha256(body: Any) -> str:
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def header_comment(text: str) -> list[str]:
    """The comment lines at the top of a file (before the first line of YAML content)."""
    header = []
    for line in text.splitlines():
        if line.startswith("#"):
            header.append(line.rstrip())
        elif line.strip():
            break
    return header


def format_asset_text(text: str, source: str = "<input>") -> str:
    """The canonical text of one asset file. Refuses files whose comments it would drop."""
    header = header_comment(text)
    content_lines = text.splitlines()[len(header) :]
    for number, line in enumerate(content_lines, start=len(header) + 1):
        if line.lstrip().startswith("#"):
            raise AssetError(f"{source}:{number}: comments belong in the header at the top of the file")
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AssetError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(body, dict):
        raise AssetError(f"{source}: an asset must be a mapping at the top level")
    lines = [*header, *_block_mapping(body, 0)]
    return "\n".join(lines) + "\n"


def _block_mapping(mapping: dict[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, value in mapping.items():
        label = f"{pad}{_scalar(str(key), flow=False)}:"
        lines.extend(_keyed_value(label, value, indent))
    return lines


def _keyed_value(label: str, value: Any, indent: int) -> list[str]:
    if isinstance(value, str) and "\n" in value:
        return _literal_block(label, value, indent + 2)
    if not isinstance(value, dict | list) or not value:
        return [f"{label} {_flow(value) if isinstance(value, dict | list) else _scalar(value, flow=False)}"]
    key = label.strip().rstrip(":").strip('"')
    flow = _flow_if_short(value, len(label) + 1) if _prefers_flow(key, value, indent) else None
    if flow is not None:
        return [f"{label} {flow}"]
    if isinstance(value, dict):
        return [label, *_block_mapping(value, indent + 2)]
    return [label, *_block_sequence(value, indent + 2)]


def _block_sequence(items: list[Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for item in items:
        if isinstance(item, dict) and item:
            inner = _block_mapping(item, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines.extend(inner[1:])
        elif isinstance(item, list) and item:
            flow = _flow_if_short(item, indent + 2)
            if flow is None:
                raise AssetError("a list directly inside a list must be short enough for one line")
            lines.append(f"{pad}- {flow}")
        elif isinstance(item, str) and "\n" in item:
            lines.extend(_literal_block(f"{pad}-", item, indent + 2))
        else:
            lines.append(
                f"{pad}- {_flow(item) if isinstance(item, dict | list) else _scalar(item, flow=False)}"
            )
    return lines


def _literal_block(label: str, text: str, indent: int) -> list[str]:
    chomp = "" if text.endswith("\n") and not text.endswith("\n\n") else "-"
    if text.endswith("\n\n") or text != text.rstrip(" ") or text[:1] in (" ", "\n"):
        return [f"{label} {json.dumps(text, ensure_ascii=False)}"]
    pad = " " * indent
    body = [f"{pad}{line}" if line else "" for line in text.rstrip("\n").split("\n")]
    return [f"{label} |{chomp}", *body]


# Structural keys stay in block style, so a mapping or a template reads the same at every size.
_BLOCK_KEYS = frozenset(
    {"properties", "_meta", "mappings", "settings", "template", "aliases", "aggregations", "aggs"}
)


def _prefers_flow(key: str, value: dict | list, indent: int) -> bool:
    """Lists of scalars always; below the top level, small leaf mappings (``{type: keyword}``) and
    one-key wrappers of them (``{terms: {field: user.name}}``), except under structural keys."""
    if isinstance(value, list):
        return True
    return indent > 0 and key not in _BLOCK_KEYS and _small_or_wrapper(value)


def _small_or_wrapper(mapping: dict) -> bool:
    if _is_small_leaf(mapping):
        return True
    if len(mapping) != 1:
        return False
    ((key, inner),) = mapping.items()
    return key not in _BLOCK_KEYS and isinstance(inner, dict) and _small_or_wrapper(inner)


def _is_small_leaf(mapping: dict) -> bool:
    return len(mapping) <= 3 and all(not isinstance(v, dict) and _flowable(v) for v in mapping.values())


def _flow_if_short(value: dict | list, used: int) -> str | None:
    if not _flowable(value):
        return None
    text = _flow(value)
    return text if used + len(text) <= MAX_FLOW_WIDTH else None


def _flowable(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_flowable(v) for v in value.values())
    if isinstance(value, list):
        return all(not isinstance(v, dict | list) and _flowable(v) for v in value)
    return not (isinstance(value, str) and "\n" in value)


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(str(k), flow=True)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value, flow=True)


def _scalar(value: Any, *, flow: bool) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AssetError(f"{value} cannot be written to an Elasticsearch body")
        return repr(value)
    if isinstance(value, str):
        return value if _plain_ok(value, flow) else json.dumps(value, ensure_ascii=False)
    raise AssetError(f"values of type {type(value).__name__} cannot appear in an asset")


def _plain_ok(text: str, flow: bool) -> bool:
    if not text or text != text.strip() or text[0] in _PLAIN_FORBIDDEN_START:
        return False
    if ": " in text or " #" in text or text.endswith(":") or any(ord(c) < 32 for c in text):
        return False
    if flow and any(c in _FLOW_INDICATORS for c in text):
        return False
    try:
        return yaml.safe_load(text) == text
    except yaml.YAMLError:
        return False
