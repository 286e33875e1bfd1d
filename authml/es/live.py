"""Reading what the cluster holds, reshaped into the same form as the asset bodies.

``reshape_*`` are pure functions of GET responses (tested against recorded response shapes);
``read_live`` sends the GETs.
"""

from __future__ import annotations

from typing import Any

from authml.assets.catalogue import Asset
from authml.es.plan import LiveState

PATTERN = "authml-*"
_TRANSFORM_READ_ONLY = ("id", "version", "create_time", "authorization")


def reshape_component_templates(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t["component_template"] for t in response.get("component_templates", [])}


def reshape_index_templates(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t["index_template"] for t in response.get("index_templates", [])}


def reshape_pipelines(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in response.items() if name.startswith("authml-")}


def reshape_enrich_policies(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    policies = {}
    for entry in response.get("policies", []):
        for policy_type, config in entry.get("config", {}).items():
            config = dict(config)
            name = config.pop("name")
            if name.startswith("authml-"):
                policies[name] = {policy_type: config}
    return policies


def reshape_transforms(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        t["id"]: {k: v for k, v in t.items() if k not in _TRANSFORM_READ_ONLY}
        for t in response.get("transforms", [])
    }


def reshape_transform_states(response: dict[str, Any]) -> dict[str, str]:
    return {t["id"]: t.get("state", "unknown") for t in response.get("transforms", [])}


def reshape_roles(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in response.items() if name.startswith("authml-")}


def reshape_indices(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "mappings": {"_meta": (body.get("mappings") or {}).get("_meta", {})},
            "aliases": body.get("aliases", {}),
        }
        for name, body in response.items()
        if name.startswith("authml-")
    }


def read_live(client, catalogue: list[Asset]) -> LiveState:
    from elasticsearch import NotFoundError

    def get(call, **kwargs) -> dict[str, Any]:
        try:
            return dict(call(**kwargs).body)
        except NotFoundError:
            return {}

    live = LiveState()
    live.objects["component_templates"] = reshape_component_templates(
        get(client.cluster.get_component_template, name=PATTERN)
    )
    live.objects["index_templates"] = reshape_index_templates(
        get(client.indices.get_index_template, name=PATTERN)
    )
    live.objects["indices"] = reshape_indices(
        get(client.indices.get, index=PATTERN, allow_no_indices=True, expand_wildcards="open,hidden")
    )
    live.objects["enrich_policies"] = reshape_enrich_policies(get(client.enrich.get_policy))
    live.objects["ingest_pipelines"] = reshape_pipelines(get(client.ingest.get_pipeline, id=PATTERN))
    live.objects["transforms"] = reshape_transforms(
        get(client.transform.get_transform, transform_id=PATTERN, size=1000)
    )
    live.transform_states = reshape_transform_states(
        get(client.transform.get_transform_stats, transform_id=PATTERN, size=1000)
    )
    live.objects["roles"] = reshape_roles(get(client.security.get_role))
    for name in live.objects["enrich_policies"]:
        if client.indices.exists_alias(name=f".enrich-{name}"):
            live.executed_policies.add(name)
    return live
