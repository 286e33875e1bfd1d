"""``authml assets plan``: what the cluster holds compared with the assets.

``fetch_live`` is the only function here that sends requests (GETs only); ``make_plan`` and the
diff are pure. An object is *unchanged* when its installed version equals the asset's and every
property the asset sets has the same value in the cluster (properties the cluster adds itself,
such as defaults and timestamps, are not compared).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from authml.assets.catalogue import KINDS, Asset, asset_version

ACTIONS = ("create", "update", "unchanged", "remove")
MANAGED_PREFIX = "authml-"


@dataclass(frozen=True)
class Difference:
    path: str
    installed: Any
    wanted: Any

    def __str__(self) -> str:
        return f"{self.path}: {_short(self.installed)} -> {_short(self.wanted)}"


@dataclass
class Change:
    kind: str
    name: str
    action: str
    wanted_version: int | None = None
    installed_version: int | None = None
    differences: list[Difference] = field(default_factory=list)
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    def as_json(self) -> dict[str, Any]:
        return {
            "asset": self.key,
            "action": self.action,
            "wanted_version": self.wanted_version,
            "installed_version": self.installed_version,
            "differences": [
                {"path": d.path, "installed": d.installed, "wanted": d.wanted} for d in self.differences
            ],
            "note": self.note,
        }


@dataclass
class LiveState:
    """What the cluster holds: per kind, name -> body as the GET APIs return it (reshaped like a
    PUT body), plus transform states and which enrich policies have been executed."""

    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {k: {} for k in KINDS})
    transform_states: dict[str, str] = field(default_factory=dict)
    executed_policies: set[str] = field(default_factory=set)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(kind, {}).get(name)


def make_plan(catalogue: list[Asset], live: LiveState) -> list[Change]:
    changes: list[Change] = []
    wanted = {(a.kind, a.name) for a in catalogue}
    for asset in catalogue:
        installed = live.get(asset.kind, asset.name)
        if installed is None:
            changes.append(Change(asset.kind, asset.name, "create", wanted_version=asset.version))
            continue
        installed_version = asset_version(asset.kind, asset.name, installed)
        differences = diff_bodies(_comparable(asset.kind, asset.body), installed)
        action = "unchanged" if installed_version == asset.version and not differences else "update"
        note = ""
        if (
            asset.kind == "transforms"
            and action == "unchanged"
            and live.transform_states.get(asset.name)
            not in (
                "started",
                "indexing",
            )
        ):
            note = f"transform is {live.transform_states.get(asset.name, 'not started')}; apply starts it"
        if asset.kind == "enrich_policies" and asset.name not in live.executed_policies:
            note = "policy has not been executed; apply executes it"
        changes.append(
            Change(asset.kind, asset.name, action, asset.version, installed_version, differences, note)
        )
    for kind in KINDS:
        if kind == "indices":
            continue  # indices hold data: apply never removes them
        for name, body in sorted(live.objects.get(kind, {}).items()):
            if (kind, name) not in wanted and is_managed(kind, name, body):
                changes.append(
                    Change(kind, name, "remove", installed_version=asset_version(kind, name, body))
                )
    return changes


def is_managed(kind: str, name: str, body: dict[str, Any]) -> bool:
    """Objects authml may remove: named authml-* and, where the API keeps metadata, marked as ours."""
    if not name.startswith(MANAGED_PREFIX):
        return False
    if kind == "enrich_policies":
        return True
    meta = body.get("metadata") if kind == "roles" else body.get("_meta")
    return isinstance(meta, dict) and meta.get("managed_by") == "authml"


def _comparable(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The part of a local body the cluster reports back for comparison."""
    if kind == "indices":
        comparable: dict[str, Any] = {"mappings": {"_meta": (body.get("mappings") or {}).get("_meta", {})}}
        if body.get("aliases"):
            comparable["aliases"] = body["aliases"]
        return comparable
    return body


def diff_bodies(wanted: Any, installed: Any, path: str = "$") -> list[Difference]:
    """Where ``installed`` differs from ``wanted``, looking only at what ``wanted`` sets."""
    if isinstance(wanted, dict):
        if not isinstance(installed, dict):
            return [Difference(path, installed, wanted)]
        differences = []
        for key, value in wanted.items():
            if key not in installed:
                if key == "type" and value == "object":
                    continue  # Elasticsearch leaves the default object type out of GET mappings
                differences.append(Difference(f"{path}.{key}", None, value))
            else:
                differences += diff_bodies(value, installed[key], f"{path}.{key}")
        return differences
    if isinstance(wanted, list):
        if not isinstance(installed, list) or len(installed) != len(wanted):
            return [Difference(path, installed, wanted)]
        differences = []
        for index, (want, have) in enumerate(zip(wanted, installed, strict=True)):
            differences += diff_bodies(want, have, f"{path}[{index}]")
        return differences
    return [] if _same_scalar(wanted, installed) else [Difference(path, installed, wanted)]


def _same_scalar(wanted: Any, installed: Any) -> bool:
    """Settings come back as strings (``"1"``, ``"true"``), so compare scalars by their text."""
    return _scalar_text(wanted) == _scalar_text(installed)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render_plan(changes: list[Change]) -> list[str]:
    symbols = {"create": "+", "update": "~", "unchanged": "=", "remove": "-"}
    lines = []
    for change in changes:
        version = ""
        if change.action == "update" and change.installed_version != change.wanted_version:
            version = f" (version {change.installed_version} -> {change.wanted_version})"
        elif change.wanted_version is not None:
            version = f" (version {change.wanted_version})"
        lines.append(f"{symbols[change.action]} {change.action:<9} {change.key}{version}")
        for difference in change.differences:
            lines.append(f"      {difference}")
        if change.note:
            lines.append(f"      note: {change.note}")
    counts = {action: sum(1 for c in changes if c.action == action) for action in ACTIONS}
    lines.append(
        ", ".join(f"{counts[a]} to {a}" if a != "unchanged" else f"{counts[a]} unchanged" for a in ACTIONS)
    )
    return lines


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def fetch_live(client, catalogue: list[Asset]) -> LiveState:
    """GET every authml-* object of every kind (and those the assets name) from the cluster."""
    from authml.es.live import read_live

    return read_live(client, catalogue)
