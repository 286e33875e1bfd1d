"""Kibana saved objects from ``es_assets/kibana/``: loading, the NDJSON the import API takes, and
the import call.

Files hold each object as Kibana exports it, except that attributes Kibana keeps as JSON text
(``panelsJSON``, ``searchSourceJSON``, a data view's ``fieldFormatMap``, ...) are written as
structures, so they can be read and diffed; ``import_object`` turns them back into text, as
elastic-package does for integration packages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authml.assets import assets_dir
from authml.errors import AssetError

KIBANA_FOLDER = "kibana"
# Import order: what an object references comes first.
TYPE_ORDER = ("index-pattern", "lens", "dashboard")
# Attributes that Kibana stores as JSON text, per saved object type (dotted inside attributes).
STRINGIFIED: dict[str, tuple[str, ...]] = {
    "index-pattern": (
        "fieldAttrs",
        "fieldFormatMap",
        "fields",
        "runtimeFieldMap",
        "sourceFilters",
        "typeMeta",
    ),
    "lens": (),
    "dashboard": ("optionsJSON", "panelsJSON", "kibanaSavedObjectMeta.searchSourceJSON"),
}
ENVELOPE = (
    "id",
    "type",
    "attributes",
    "references",
    "coreMigrationVersion",
    "typeMigrationVersion",
    "managed",
)


@dataclass(frozen=True, slots=True)
class SavedObject:
    file: Path
    body: dict[str, Any]

    @property
    def id(self) -> str:
        return self.body["id"]

    @property
    def type(self) -> str:
        return self.body["type"]


def kibana_dir() -> Path:
    return assets_dir() / KIBANA_FOLDER


def load_saved_objects(directory: Path | None = None) -> list[SavedObject]:
    """Every object under es_assets/kibana/<type>/<id>.json, in import order."""
    folder = directory or kibana_dir()
    objects = []
    for path in sorted(folder.glob("*/*.json")):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise AssetError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
        missing = [key for key in ("id", "type", "attributes", "references") if key not in body]
        if missing:
            raise AssetError(f"{path}: a saved object needs {', '.join(missing)}")
        if body["type"] not in TYPE_ORDER:
            raise AssetError(
                f"{path}: saved object type {body['type']!r} is not one of {', '.join(TYPE_ORDER)}"
            )
        if path.stem != body["id"] or path.parent.name != body["type"].replace("-", "_"):
            raise AssetError(f"{path}: the file must be <type>/<id>.json ({body['type']}, {body['id']})")
        objects.append(SavedObject(path, body))
    return sorted(objects, key=lambda o: (TYPE_ORDER.index(o.type), o.id))


def canonical_text(body: dict[str, Any]) -> str:
    """The normalised file content: sorted keys, two-space indent, one trailing newline."""
    return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def import_object(saved: SavedObject) -> dict[str, Any]:
    """The object as the import API reads it: envelope keys only, JSON-text attributes as text."""
    body = json.loads(json.dumps(saved.body))
    attributes = body["attributes"]
    for dotted in STRINGIFIED[saved.type]:
        *parents, leaf = dotted.split(".")
        node = attributes
        for part in parents:
            node = node.get(part, {})
        if leaf in node and not isinstance(node[leaf], str):
            node[leaf] = json.dumps(node[leaf], separators=(",", ":"), sort_keys=True)
    return {key: body[key] for key in ENVELOPE if key in body}


def build_ndjson(objects: Iterable[SavedObject]) -> str:
    return "".join(
        json.dumps(import_object(o), separators=(",", ":"), sort_keys=True) + "\n" for o in objects
    )


def import_errors(response: dict[str, Any]) -> list[str]:
    """One line per object the import refused, naming it and why."""
    lines = []
    for error in response.get("errors", []) or []:
        detail = error.get("error", {})
        reason = detail.get("type", "error")
        if detail.get("references"):
            reason += " " + ", ".join(f"{r.get('type')}/{r.get('id')}" for r in detail["references"])
        lines.append(f"{error.get('type')}/{error.get('id')}: {reason}")
    return lines


@dataclass(frozen=True, slots=True)
class KibanaOptions:
    url: str
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    space: str | None = None
    verify_certs: bool = True
    timeout_s: float = 60.0


def import_url(options: KibanaOptions) -> str:
    space = f"/s/{options.space}" if options.space and options.space != "default" else ""
    return f"{options.url.rstrip('/')}{space}/api/saved_objects/_import"


def import_saved_objects(options: KibanaOptions, ndjson: str) -> dict[str, Any]:
    """POST the NDJSON to the saved objects import API with ``overwrite=true`` (re-running
    bootstrap replaces authml's objects in place). Raises ClusterError unless every object imported."""
    import urllib3

    from authml.es.client import ClusterError

    headers = {"kbn-xsrf": "authml"}
    if options.api_key:
        headers["Authorization"] = f"ApiKey {options.api_key}"
    elif options.username:
        headers.update(urllib3.make_headers(basic_auth=f"{options.username}:{options.password or ''}"))
    pool = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED" if options.verify_certs else "CERT_NONE",
        timeout=urllib3.Timeout(total=options.timeout_s),
    )
    try:
        response = pool.request(
            "POST",
            import_url(options) + "?overwrite=true",
            fields={"file": ("authml-kibana.ndjson", ndjson.encode(), "application/ndjson")},
            headers=headers,
        )
    except urllib3.exceptions.HTTPError as exc:
        raise ClusterError(f"cannot reach Kibana at {options.url}: {exc}") from None
    try:
        body = json.loads(response.data or b"{}")
    except json.JSONDecodeError:
        body = {}
    if response.status >= 300:
        message = body.get("message") or response.data[:200].decode(errors="replace")
        raise ClusterError(
            f"Kibana at {options.url} answered HTTP {response.status} to the import: {message}"
        )
    problems = import_errors(body)
    if problems or not body.get("success", False):
        raise ClusterError(
            f"Kibana imported {body.get('successCount', 0)} objects but refused {len(problems)}: "
            + "; ".join(problems[:5])
        )
    return body
