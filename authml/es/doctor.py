"""``authml doctor``: checks of the cluster, each one clear line. The checks are pure functions of
the responses; ``run_checks`` sends the (read-only) requests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

SOURCE_PATTERNS = ["logs-system.security-*", "winlogbeat-*"]
MIN_VERSION = (8, 18)  # LOOKUP JOIN (technical preview in 8.18, GA in 9.1)
CHECKPOINT_LAG_WARN_S = 15 * 60

# What each authml command needs. `assets apply` runs as an administrator; the others match the
# roles in es_assets/roles/.
REQUIRED_PRIVILEGES: dict[str, dict[str, Any]] = {
    "assets apply": {
        "cluster": [
            "manage_index_templates",
            "manage_ingest_pipelines",
            "manage_transform",
            "manage_enrich",
            "manage_security",
        ],
        "index": [
            {"names": ["authml-*"], "privileges": ["manage", "create_index", "read", "view_index_metadata"]},
            {"names": SOURCE_PATTERNS, "privileges": ["read", "view_index_metadata"]},
        ],
    },
    "ingest --es": {
        "cluster": [],
        "index": [{"names": ["authml-events-*"], "privileges": ["create_doc"]}],
    },
    "train / score": {
        "cluster": ["manage_enrich", "monitor_transform"],
        "index": [
            {"names": ["authml-features-*", "authml-events-*", *SOURCE_PATTERNS], "privileges": ["read"]},
            {
                "names": ["authml-scores*", "authml-user-risk*", "authml-models*"],
                "privileges": ["read", "write"],
            },
        ],
    },
    "doctor": {"cluster": ["monitor", "monitor_transform"], "index": []},
}


@dataclass(frozen=True)
class Check:
    status: str  # "ok", "warn" or "fail"
    topic: str
    detail: str

    def __str__(self) -> str:
        return f"{self.status:<4} {self.topic}: {self.detail}"


def has_privileges_body(requirements: dict[str, dict[str, Any]] = REQUIRED_PRIVILEGES) -> dict[str, Any]:
    """One ``_security/user/_has_privileges`` body asking for everything every command needs."""
    cluster = sorted({p for need in requirements.values() for p in need["cluster"]})
    index: dict[str, set[str]] = {}
    for need in requirements.values():
        for entry in need["index"]:
            for name in entry["names"]:
                index.setdefault(name, set()).update(entry["privileges"])
    return {
        "cluster": cluster,
        "index": [{"names": [name], "privileges": sorted(privs)} for name, privs in sorted(index.items())],
    }


def privilege_checks(response: dict[str, Any], requirements=REQUIRED_PRIVILEGES) -> list[Check]:
    held_cluster = response.get("cluster", {})
    held_index = response.get("index", {})
    checks = []
    for command, need in requirements.items():
        missing = [p for p in need["cluster"] if not held_cluster.get(p)]
        for entry in need["index"]:
            for name in entry["names"]:
                missing += [
                    f"{p} on {name}" for p in entry["privileges"] if not held_index.get(name, {}).get(p)
                ]
        if missing:
            checks.append(
                Check("warn", f"privileges for `authml {command}`", "missing " + ", ".join(missing))
            )
        else:
            checks.append(Check("ok", f"privileges for `authml {command}`", "all held"))
    return checks


def version_check(info: dict[str, Any]) -> Check:
    number = info.get("version", {}).get("number", "unknown")
    try:
        major_minor = tuple(int(part) for part in number.split(".")[:2])
    except ValueError:
        return Check("warn", "cluster version", f"{number}: cannot tell whether it is supported")
    name = info.get("cluster_name", "?")
    if major_minor < MIN_VERSION:
        return Check(
            "warn", "cluster version", f"{number} ({name}): ES|QL LOOKUP JOIN of scores needs 8.18 or later"
        )
    return Check("ok", "cluster version", f"{number} ({name})")


def licence_check(licence: dict[str, Any]) -> Check:
    body = licence.get("license", {})
    status, kind = body.get("status", "unknown"), body.get("type", "unknown")
    if status != "active":
        return Check("fail", "licence", f"{kind} licence is {status}")
    return Check("ok", "licence", f"{kind}, {status} (transforms and enrich work on every licence)")


def transform_checks(stats: dict[str, Any], expected: list[str], now_ms: int | None = None) -> list[Check]:
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    found = {t["id"]: t for t in stats.get("transforms", [])}
    checks = []
    for name in expected:
        if name not in found:
            checks.append(Check("fail", f"transform {name}", "not installed; run `authml assets apply`"))
            continue
        entry = found[name]
        state = entry.get("state", "unknown")
        health = (entry.get("health") or {}).get("status", "unknown")
        checkpointing = entry.get("checkpointing") or {}
        last = checkpointing.get("last") or {}
        behind = checkpointing.get("operations_behind", 0)
        upper = last.get("time_upper_bound_millis") or last.get("timestamp_millis")
        lag = f"{(now_ms - upper) / 1000:.0f} s behind" if upper else "no checkpoint yet"
        detail = f"{state}, health {health}, checkpoint {last.get('checkpoint', 0)}, {lag}, {behind} operations behind"
        if state == "failed" or health == "red":
            reason = entry.get("reason") or (entry.get("health") or {}).get("issues", "")
            checks.append(Check("fail", f"transform {name}", f"{detail}; {reason}"))
        elif (
            state not in ("started", "indexing")
            or health == "yellow"
            or upper
            and now_ms - upper > CHECKPOINT_LAG_WARN_S * 1000
        ):
            checks.append(Check("warn", f"transform {name}", detail))
        else:
            checks.append(Check("ok", f"transform {name}", detail))
    return checks


def run_checks(client, options, expected_transforms: list[str]) -> list[Check]:
    """Every check, in order; a connection failure ends the list early with one clear line."""
    from elasticsearch import ApiError, NotFoundError

    from authml.es.client import ClusterError, cluster_errors

    try:
        with cluster_errors(options, "connecting"):
            info = dict(client.info().body)
    except ClusterError as exc:
        return [Check("fail", "connectivity", str(exc))]
    checks = [Check("ok", "connectivity", f"{options.url} answers"), version_check(info)]
    with cluster_errors(options, "reading the licence"):
        checks.append(licence_check(dict(client.license.get().body)))
    try:
        response = client.security.has_privileges(**has_privileges_body())
        checks += privilege_checks(dict(response.body))
    except ApiError as exc:
        checks.append(Check("warn", "privileges", f"cannot be checked (HTTP {exc.meta.status})"))
    try:
        stats = dict(client.transform.get_transform_stats(transform_id="authml-*", size=1000).body)
    except NotFoundError:
        stats = {}
    checks += transform_checks(stats, expected_transforms)
    return checks
