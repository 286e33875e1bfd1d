"""authml's own lint rules about assets and how they refer to one another: names, versions,
pipelines and their processors, enrich policies, index templates, lookup indices and indices.
Each rule yields (json_path, rule, message); ``authml.assets.lint`` turns them into Findings."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

from authml.assets.catalogue import NAME_PATTERN, VERSIONED_NAME, Asset, version_location

Problem = tuple[str, str, str]  # (json_path, rule, message)

ENRICH_MAX_MATCHES = 128
# Key types ES|QL LOOKUP JOIN can match on (docs: esql-lookup-join.md).
LOOKUP_KEY_TYPES = {
    "keyword", "constant_keyword", "long", "integer", "short", "byte", "double", "float", "half_float",
    "scaled_float", "date", "date_nanos", "boolean", "ip",
}  # fmt: skip


def check_name(asset: Asset) -> Iterator[Problem]:
    if not NAME_PATTERN.match(asset.name):
        yield (
            "$",
            "name.prefix",
            f"asset name [{asset.name}] must start with authml- and use a-z, 0-9, - and _",
        )


def check_version(asset: Asset) -> Iterator[Problem]:
    if asset.version is not None:
        return
    location = version_location(asset.kind)
    if location:
        yield "$." + ".".join(location), "version.missing", "the asset must carry an integer version here"
    else:
        yield (
            "$",
            "version.missing",
            f"a {asset.kind} name must end with -v<version> (it cannot change in place)",
        )


def check_pipeline(asset: Asset, catalogue: list[Asset]) -> Iterator[Problem]:
    body = asset.body
    if not body.get("on_failure"):
        yield (
            "$",
            "pipeline.on_failure",
            "the pipeline needs an on_failure that keeps the event and records why",
        )
    policies = {a.name for a in catalogue if a.kind == "enrich_policies"}
    for path, kind, config in _processors(body):
        if not isinstance(config, dict):
            continue
        for required in ("tag", "description"):
            if not config.get(required):
                yield (
                    f"{path}.{kind}",
                    f"pipeline.processor_{required}",
                    f"the {kind} processor has no {required}",
                )
        if kind == "enrich":
            yield from _check_enrich_processor(config, f"{path}.{kind}", policies)


def _processors(body: dict, path: str = "$") -> Iterator[tuple[str, str, Any]]:
    """Every processor, including on_failure handlers and foreach's inner processor."""
    for list_key in ("processors", "on_failure"):
        for index, container in enumerate(as_list(body.get(list_key))):
            if not isinstance(container, dict) or len(container) != 1:
                continue  # the spec check reports malformed containers
            ((kind, config),) = container.items()
            here = f"{path}.{list_key}[{index}]"
            yield here, kind, config
            if isinstance(config, dict):
                yield from _processors(config, f"{here}.{kind}")
                inner = config.get("processor")
                if kind == "foreach" and isinstance(inner, dict) and len(inner) == 1:
                    ((inner_kind, inner_config),) = inner.items()
                    yield f"{here}.{kind}.processor", inner_kind, inner_config


def _check_enrich_processor(config: dict, path: str, policies: set[str]) -> Iterator[Problem]:
    name = config.get("policy_name")
    if name not in policies:
        yield (
            f"{path}.policy_name",
            "enrich.policy_unknown",
            f"enrich policy [{name}] is not an asset under enrich_policies/",
        )
    matches = config.get("max_matches", 1)
    if not (isinstance(matches, int) and 1 <= matches <= ENRICH_MAX_MATCHES):
        yield (
            f"{path}.max_matches",
            "enrich.max_matches",
            f"max_matches must be from 1 to {ENRICH_MAX_MATCHES}",
        )


def check_enrich_policy(asset: Asset, catalogue: list[Asset]) -> Iterator[Problem]:
    if not VERSIONED_NAME.search(asset.name):
        return  # check_version already reports it
    for policy_type, config in asset.body.items():
        if not isinstance(config, dict):
            continue
        for index, source in enumerate(as_list(config.get("indices"))):
            if not _index_is_declared(str(source), catalogue):
                yield (
                    f"$.{policy_type}.indices[{index}]",
                    "enrich.source_unknown",
                    f"[{source}] is not an index or alias declared under indices/",
                )


def _index_is_declared(name: str, catalogue: list[Asset]) -> bool:
    for asset in catalogue:
        if asset.kind != "indices":
            continue
        if fnmatch.fnmatchcase(asset.name, name) or name in (asset.body.get("aliases") or {}):
            return True
    return False


def check_index_template(asset: Asset, catalogue: list[Asset]) -> Iterator[Problem]:
    body = asset.body
    components = {a.name for a in catalogue if a.kind == "component_templates"}
    for index, name in enumerate(as_list(body.get("composed_of"))):
        if str(name).startswith("authml-") and name not in components:
            yield (
                f"$.composed_of[{index}]",
                "template.component_unknown",
                f"no component template asset [{name}]",
            )
    settings = flat_settings((body.get("template") or {}).get("settings") or {})
    pipelines = {a.name for a in catalogue if a.kind == "ingest_pipelines"}
    for key in ("index.default_pipeline", "index.final_pipeline"):
        name = settings.get(key)
        if name and str(name).startswith("authml-") and name not in pipelines:
            yield (
                f"$.template.settings.{key}",
                "template.pipeline_unknown",
                f"no ingest pipeline asset [{name}]",
            )
    if settings.get("index.mode") == "lookup":
        yield from _check_lookup(body, settings)


def _check_lookup(body: dict, settings: dict[str, Any]) -> Iterator[Problem]:
    shards = settings.get("index.number_of_shards")
    if shards is not None and str(shards) != "1":
        yield (
            "$.template.settings.index.number_of_shards",
            "lookup.shards",
            "a lookup index has exactly one shard",
        )
    keys = as_list((body.get("_meta") or {}).get("lookup_keys"))
    if not keys:
        yield (
            "$._meta",
            "lookup.keys_missing",
            "a lookup index template must list its join keys in _meta.lookup_keys",
        )
    mappings = (body.get("template") or {}).get("mappings") or {}
    types = dict(mapped_types(mappings.get("properties") or {}))
    for index, key in enumerate(keys):
        mapped = types.get(str(key))
        if mapped is None:
            yield f"$._meta.lookup_keys[{index}]", "lookup.key_unmapped", f"join key [{key}] is not mapped"
        elif mapped not in LOOKUP_KEY_TYPES:
            yield (
                f"$._meta.lookup_keys[{index}]",
                "lookup.key_type",
                f"join key [{key}] is mapped as {mapped}, which LOOKUP JOIN cannot match on",
            )


def mapped_types(properties: dict, prefix: str = "") -> Iterator[tuple[str, str]]:
    for name, mapping in properties.items():
        if not isinstance(mapping, dict):
            continue
        full = f"{prefix}{name}"
        if isinstance(mapping.get("properties"), dict):
            yield full, mapping.get("type", "object")
            yield from mapped_types(mapping["properties"], f"{full}.")
        else:
            yield full, mapping.get("type", "object")


def check_index(asset: Asset, catalogue: list[Asset]) -> Iterator[Problem]:
    match = VERSIONED_NAME.search(asset.name)
    if match and asset.version is not None and int(match.group(1)) != asset.version:
        yield (
            "$.mappings._meta.authml_version",
            "index.version_name",
            f"index [{asset.name}] is named for version {match.group(1)} but carries version {asset.version}",
        )
    if template_for_index(asset.name, catalogue) is None and not asset.body.get("mappings", {}).get(
        "properties"
    ):
        yield (
            "$",
            "index.no_template",
            f"no index template of the assets matches [{asset.name}] and it has no mappings",
        )


def flat_settings(settings: dict, prefix: str = "") -> dict[str, Any]:
    """Index settings as dotted keys, with the ``index.`` prefix Elasticsearch adds."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_settings(value, f"{full}."))
        else:
            flat[full if full.startswith("index.") else f"index.{full}"] = value
    return flat


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def template_for_index(index: str, catalogue: list[Asset]) -> Asset | None:
    """The highest-priority index template asset whose patterns match ``index``."""
    matching = [
        a
        for a in catalogue
        if a.kind == "index_templates"
        and any(fnmatch.fnmatchcase(index, str(p)) for p in as_list(a.body.get("index_patterns")))
    ]
    return max(matching, key=lambda a: a.body.get("priority", 0), default=None)
