"""The model registry of the embedded engine: ``<project_dir>/models/<version>/`` holding
``state.npz`` (numpy arrays only, read back with ``allow_pickle=False``) and ``metadata.json``;
``models/CURRENT`` names the version the scorer uses.

A version directory appears in one ``rename`` after both files are written, and CURRENT is replaced
atomically, so a run killed at any moment leaves the previous model in place; the half-written
``.partial-*`` directory it leaves is removed by the next run.

A version travels as a ``ModelArtifact``: the metadata document (plain JSON) and the exact bytes
of ``state.npz``. The directory holds those bytes; the Elasticsearch registry index
(``authml.es.model_registry``) holds the same bytes in base64 with their SHA-256, so a version
loaded from either place gives the same detector.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class ModelArtifact:
    """One model version as it is stored: the metadata document and the bytes of state.npz."""

    version: str
    metadata: dict[str, Any]  # metadata.json: plain JSON values only
    state: bytes  # an .npz archive of numpy arrays (no object arrays, so no pickle)

    @property
    def state_sha256(self) -> str:
        return hashlib.sha256(self.state).hexdigest()


def state_bytes(state: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    return buffer.getvalue()


def build_artifact(
    detector: CombinedDetector, metadata: dict[str, Any], version: str | None = None
) -> ModelArtifact:
    version = version or new_version()
    document = {"format": METADATA_FORMAT, "version": version, "detector": detector.config(), **metadata}
    plain = json.loads(json.dumps(document, default=_json_default))
    return ModelArtifact(version, plain, state_bytes(detector.state_dict()))


def detector_from_artifact(artifact: ModelArtifact, origin: str) -> CombinedDetector:
    """The detector an artifact holds; ``origin`` names where it came from, for errors."""
    try:
        with np.load(io.BytesIO(artifact.state), allow_pickle=False) as archive:
            state = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {origin} ({exc}); run `authml train --force` to replace it") from exc
    return CombinedDetector.from_state(artifact.metadata["detector"], state)


def save_model(
    project_dir: Path, detector: CombinedDetector, metadata: dict[str, Any], version: str | None = None
) -> str:
    """Write a new version and make it current; returns the version."""
    artifact = build_artifact(detector, metadata, version)
    write_artifact(project_dir, artifact)
    return artifact.version


def write_artifact(project_dir: Path, artifact: ModelArtifact) -> None:
    """Write a version directory holding exactly the artifact's bytes, and make it current."""
    root = models_dir(project_dir)
    root.mkdir(parents=True, exist_ok=True)
    remove_partial_versions(project_dir)
    final = root / artifact.version
    if final.exists():
        raise StoreError(f"model version {final} already exists; wait a second and run again")
    partial = root / f".partial-{artifact.version}"
    partial.mkdir()
    (partial / STATE_FILE).write_bytes(artifact.state)
    (partial / METADATA_FILE).write_text(json.dumps(artifact.metadata, indent=2, sort_keys=True))
    partial.rename(final)
    set_current(project_dir, artifact.version)


def adopt_artifact(project_dir: Path, artifact: ModelArtifact) -> bool:
    """Keep a version that came from elsewhere (the registry index) in the directory, and make it
    current unless the current one is newer (versions are UTC timestamps). Safe beside a running
    `authml train`: it never removes another process's partial directory. Returns True when the
    version became current."""
    root = models_dir(project_dir)
    final = root / artifact.version
    if not (final / METADATA_FILE).is_file():
        root.mkdir(parents=True, exist_ok=True)
        partial = root / f".partial-{artifact.version}-{os.getpid()}"
        partial.mkdir()
        (partial / STATE_FILE).write_bytes(artifact.state)
        (partial / METADATA_FILE).write_text(json.dumps(artifact.metadata, indent=2, sort_keys=True))
        try:
            partial.rename(final)
        except OSError:
            shutil.rmtree(partial)  # another process adopted the same version first
            if not (final / METADATA_FILE).is_file():
                raise
    current = current_version(project_dir)
    if current is not None and current >= artifact.version:
        return False
    set_current(project_dir, artifact.version)
    return True


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


def read_artifact(project_dir: Path, version: str | None = None) -> ModelArtifact:
    """A version (default: the current one) as stored in its directory."""
    metadata = read_metadata(project_dir, version)
    path = models_dir(project_dir) / metadata["version"] / STATE_FILE
    try:
        state = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read {path} ({exc}); run `authml train --force` to replace it") from exc
    return ModelArtifact(metadata["version"], metadata, state)


def load_model(project_dir: Path, version: str | None = None) -> tuple[CombinedDetector, dict[str, Any]]:
    """The detector and metadata of a version (default: the current one)."""
    artifact = read_artifact(project_dir, version)
    path = models_dir(project_dir) / artifact.version / STATE_FILE
    return detector_from_artifact(artifact, str(path)), artifact.metadata


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
