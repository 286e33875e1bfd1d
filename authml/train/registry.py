"""The model registry of the embedded engine: ``<project_dir>/models/<version>/`` holding
``state.npz`` (numpy arrays only, read back with ``allow_pickle=False``) and ``metadata.json``;
``models/CURRENT`` names the version the scorer uses.

A version directory appears in one ``rename`` after both files are written, and CURRENT is replaced
atomically, so a run killed at any moment leaves the previous model in place; the half-written
``.partial-*`` directory it leaves is removed by the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from authml.assets import assets_dir
from authml.detect.combined import CombinedDetector
from authml.errors import AssetError, NotReadyError, StoreError

MODELS_DIR = "models"
CURRENT_FILE = "CURRENT"
STATE_FILE = "state.npz"
METADATA_FILE = "metadata.json"
METADATA_FORMAT = 1


def models_dir(project_dir: Path) -> Path:
    return Path(project_dir) / MODELS_DIR


def asset_lock_hash() -> str | None:
    """SHA-256 of es_assets/assets.lock.json, which changes whenever a feature definition does."""
    try:
        lock = assets_dir() / "assets.lock.json"
    except AssetError:
        return None
    return hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else None


def new_version(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


def save_model(
    project_dir: Path, detector: CombinedDetector, metadata: dict[str, Any], version: str | None = None
) -> str:
    """Write a new version and make it current; returns the version."""
    root = models_dir(project_dir)
    root.mkdir(parents=True, exist_ok=True)
    remove_partial_versions(project_dir)
    version = version or new_version()
    partial = root / f".partial-{version}"
    partial.mkdir()
    state = detector.state_dict()
    np.savez(partial / STATE_FILE, **state)
    document = {
        "format": METADATA_FORMAT,
        "version": version,
        "detector": detector.config(),
        **metadata,
    }
    (partial / METADATA_FILE).write_text(
        json.dumps(document, indent=2, sort_keys=True, default=_json_default)
    )
    final = root / version
    if final.exists():
        raise StoreError(f"model version {final} already exists; wait a second and run again")
    partial.rename(final)
    set_current(project_dir, version)
    return version


def set_current(project_dir: Path, version: str) -> None:
    root = models_dir(project_dir)
    if not (root / version / METADATA_FILE).is_file():
        raise NotReadyError(f"no model version {version} under {root}")
    pointer = root / f".{CURRENT_FILE}.tmp"
    pointer.write_text(version + "\n")
    os.replace(pointer, root / CURRENT_FILE)


def current_version(project_dir: Path) -> str | None:
    pointer = models_dir(project_dir) / CURRENT_FILE
    return pointer.read_text().strip() if pointer.is_file() else None


def list_versions(project_dir: Path) -> list[str]:
    root = models_dir(project_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / METADATA_FILE).is_file())


def read_metadata(project_dir: Path, version: str | None = None) -> dict[str, Any]:
    version = version or current_version(project_dir)
    if version is None:
        raise NotReadyError(f"no trained model under {models_dir(project_dir)}; run `authml train` first")
    path = models_dir(project_dir) / version / METADATA_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise NotReadyError(f"model version {version} has no {path}; run `authml train --force`") from exc
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"{path} is not valid JSON ({exc}); run `authml train --force` to replace it"
        ) from exc


def load_model(project_dir: Path, version: str | None = None) -> tuple[CombinedDetector, dict[str, Any]]:
    """The detector and metadata of a version (default: the current one)."""
    metadata = read_metadata(project_dir, version)
    path = models_dir(project_dir) / metadata["version"] / STATE_FILE
    try:
        with np.load(path, allow_pickle=False) as archive:
            state = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path} ({exc}); run `authml train --force` to replace it") from exc
    return CombinedDetector.from_state(metadata["detector"], state), metadata


def remove_partial_versions(project_dir: Path) -> None:
    root = models_dir(project_dir)
    for partial in root.glob(".partial-*"):
        shutil.rmtree(partial, ignore_errors=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in model metadata")
