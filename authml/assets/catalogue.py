"""Every asset under es_assets/, with its kind, name, body, file and version.

An asset is one Elasticsearch object in one file, ``es_assets/<kind>/<name>.yml``; the body is
exactly what the object's create/PUT API takes. The version lives inside the object, where that
API keeps it, so a GET from the cluster shows which version is installed:

- templates and ingest pipelines: the top-level ``version``;
- transforms: ``_meta.authml_version``; roles: ``metadata.authml_version``;
- indices: ``mappings._meta.authml_version``;
- enrich policies (which have no metadata and can never change): the ``-vN`` suffix of the name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authml.assets import assets_dir, load_asset_file
from authml.errors import AssetError

# In the order apply installs them: each kind only refers to kinds installed before it.
KINDS = (
    "component_templates",
    "index_templates",
    "indices",
    "enrich_policies",
    "ingest_pipelines",
    "transforms",
    "roles",
)
NAME_PATTERN = re.compile(r"^authml-[a-z0-9][a-z0-9_-]*$")
VERSIONED_NAME = re.compile(r"-v(\d+)$")
LOCK_FILE_NAME = "assets.lock.json"
# Folders of es_assets/ that hold no Elasticsearch objects: Kibana saved objects (authml.es.kibana).
NOT_ES_KINDS = ("kibana",)


@dataclass(frozen=True, slots=True)
class Asset:
    kind: str
    name: str
    body: dict[str, Any]
    file: Path

    @property
    def key(self) -> str:
        """``<kind>/<name>``: the asset's id in the lock and in findings."""
        return f"{self.kind}/{self.name}"

    @property
    def version(self) -> int | None:
        return asset_version(self.kind, self.name, self.body)


def version_location(kind: str) -> tuple[str, ...]:
    """The path of the version inside a body of this kind (empty for enrich policies)."""
    return {
        "component_templates": ("version",),
        "index_templates": ("version",),
        "ingest_pipelines": ("version",),
        "transforms": ("_meta", "authml_version"),
        "roles": ("metadata", "authml_version"),
        "indices": ("mappings", "_meta", "authml_version"),
        "enrich_policies": (),
    }[kind]


def asset_version(kind: str, name: str, body: dict[str, Any]) -> int | None:
    """The version written into the object, or None when it is missing or not an integer."""
    location = version_location(kind)
    if not location:
        match = VERSIONED_NAME.search(name)
        return int(match.group(1)) if match else None
    node: Any = body
    for part in location:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node if isinstance(node, int) and not isinstance(node, bool) else None


def load_catalogue(root: Path | None = None) -> list[Asset]:
    """Every asset, in install order (kind, then name). Unknown folders are an error, so a typo in
    a folder name cannot hide an asset from lint and apply."""
    root = root or assets_dir()
    known = set(KINDS) | set(NOT_ES_KINDS)
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and entry.name not in known and not entry.name.startswith("."):
            raise AssetError(f"{entry}: unknown asset kind; expected one of {', '.join(KINDS)}")
    return [asset for kind in KINDS for asset in _load_kind(root, kind)]


def _load_kind(root: Path, kind: str) -> Iterator[Asset]:
    folder = root / kind
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.suffix == ".yml":
            yield Asset(kind=kind, name=path.stem, body=load_asset_file(path), file=path)
        elif not path.name.startswith("."):
            raise AssetError(f"{path}: asset files end in .yml")


def find_asset(catalogue: list[Asset], kind: str, name: str) -> Asset | None:
    return next((a for a in catalogue if a.kind == kind and a.name == name), None)


def lock_path(root: Path | None = None) -> Path:
    return (root or assets_dir()) / LOCK_FILE_NAME
