"""The asset lock, ``es_assets/assets.lock.json``: each asset's version and the sha256 of its
canonical form. A change of content must come with a version bump, so a cluster that reports
version N of an object really has the content locked for N."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authml.assets.canonical import body_sha256
from authml.assets.catalogue import Asset
from authml.errors import AssetError


@dataclass(frozen=True, slots=True)
class LockProblem:
    asset: str
    message: str

    def __str__(self) -> str:
        return f"{self.asset}: {self.message}"


def lock_entries(catalogue: list[Asset]) -> dict[str, dict[str, Any]]:
    return {a.key: {"version": a.version, "sha256": body_sha256(a.body)} for a in catalogue}


def read_lock(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise AssetError(f"{path}: cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise AssetError(f"{path}: the lock must be a JSON object of asset -> {{version, sha256}}")
    return data


def render_lock(entries: dict[str, dict[str, Any]]) -> str:
    return json.dumps(entries, indent=2, sort_keys=True) + "\n"


def check_lock(catalogue: list[Asset], locked: dict[str, dict[str, Any]]) -> list[LockProblem]:
    """What is wrong between the assets and the lock: a missing version, content changed without
    a bump, a version that disagrees with the lock, assets missing from the lock or gone from disk."""
    problems: list[LockProblem] = []
    current = lock_entries(catalogue)
    for key, entry in current.items():
        if entry["version"] is None:
            problems.append(LockProblem(key, "carries no integer version inside the object"))
            continue
        old = locked.get(key)
        if old is None:
            problems.append(LockProblem(key, "is not in the lock; run `authml assets lock`"))
        elif entry["sha256"] != old.get("sha256") and entry["version"] == old.get("version"):
            problems.append(
                LockProblem(
                    key, f"content changed but its version is still {entry['version']}; bump the version"
                )
            )
        elif entry["version"] != old.get("version") or entry["sha256"] != old.get("sha256"):
            problems.append(
                LockProblem(
                    key,
                    f"version {entry['version']} in the object but {old.get('version')} in the lock; "
                    "run `authml assets lock`",
                )
            )
    for key in sorted(set(locked) - set(current)):
        problems.append(LockProblem(key, "is in the lock but no longer on disk; run `authml assets lock`"))
    return problems


def updated_lock(catalogue: list[Asset], locked: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The new lock. Refuses content changes that keep the locked version, and versions that go
    backwards, so `lock` can never bless an unversioned change."""
    refused = []
    for key, entry in lock_entries(catalogue).items():
        old = locked.get(key)
        if entry["version"] is None:
            refused.append(f"{key} carries no integer version inside the object")
        elif old and entry["sha256"] != old.get("sha256") and entry["version"] <= (old.get("version") or 0):
            refused.append(f"{key} changed without a version bump (locked version {old.get('version')})")
    if refused:
        raise AssetError("the lock was not updated: " + "; ".join(refused))
    return lock_entries(catalogue)
