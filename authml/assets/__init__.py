"""The Elasticsearch assets under es_assets/: locating and loading them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from authml.errors import AssetError

ASSETS_ENV = "AUTHML_ASSETS_DIR"
# libyaml's safe loader where PyYAML was built with it: the same documents, parsed about ten times
# faster (a build reads its transforms, and event_columns the mappings, on every run).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def assets_dir() -> Path:
    """The es_assets/ directory: $AUTHML_ASSETS_DIR, else the one beside the authml package."""
    override = os.environ.get(ASSETS_ENV)
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "es_assets"
    if not path.is_dir():
        raise AssetError(f"asset directory {path} not found; set {ASSETS_ENV} to the es_assets/ folder")
    return path


def load_asset_file(path: Path) -> dict[str, Any]:
    """One asset body (YAML or JSON) as a dict, with the file named in any error."""
    try:
        body = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise AssetError(f"{path}: cannot be read as YAML or JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise AssetError(f"{path}: an asset must be a mapping at the top level")
    return body


def load_asset(kind: str, name: str) -> dict[str, Any]:
    """The asset ``es_assets/<kind>/<name>.yml``."""
    return load_asset_file(assets_dir() / kind / f"{name}.yml")
