"""``authml assets lint``: every asset checked against the Elasticsearch specification (shape) and
against the rules Elasticsearch enforces that the specification does not encode (meaning).

Transform semantics (supported aggregations, group_by parameters, name collisions, intervals) are
the embedded engine's rules, in ``authml.engine.validate``; this module adds the rules about assets
and how they refer to one another.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authml.assets.catalogue import NAME_PATTERN, VERSIONED_NAME, Asset, version_location
from authml.assets.findings import Finding
from authml.assets.spec import ENDPOINT_BY_KIND, Spec, SpecUnavailable

TRANSFORM_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$")
TRANSFORM_ID_MAX = 64
FREQUENCY_RANGE_MS = (1_000, 3_600_000)
PAGE_SIZE_RANGE = (10, 65_536)
ENRICH_MAX_MATCHES = 128
# Key types ES|QL LOOKUP JOIN can match on (docs: esql-lookup-join.md).
LOOKUP_KEY_TYPES = {
    "keyword", "constant_keyword", "long", "integer", "short", "byte", "double", "float", "half_float",
    "scaled_float", "date", "date_nanos", "boolean", "ip",
}  # fmt: skip
_DURATION = re.compile(r"^(\d+)(nanos|micros|ms|s|m|h|d)$")
_UNIT_MS = {"nanos": 1e-6, "micros": 1e-3, "ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    spec_checked: bool = False
    spec_skipped_reason: str | None = None


def lint_catalogue(catalogue: list[Asset], *, spec: Spec | None = None, fetch_spec: bool = True) -> LintReport:
    """All findings for the catalogue. Without a specification the semantic rules still run and
    the report says why the specification was not checked."""
    report = LintReport()
    if spec is None:
        try:
            spec = Spec.load(None if fetch_spec else _cached_only())
        except SpecUnavailable as exc:
            report.spec_skipped_reason = str(exc)
    if spec is not None:
        report.spec_checked = True
        for asset in catalogue:
            report.findings += spec.validate_body(ENDPOINT_BY_KIND[asset.kind], asset.body, display_path(asset))
    report.findings += semantic_findings(catalogue)
    return report


def _cached_only() -> Path:
    from authml.assets.spec import ensure_spec

    return ensure_spec(fetch=False)


def display_path(asset: Asset) -> str:
    """The asset file as a person finds it: relative to the project root where possible."""
    parts = asset.file.parts
    if "es_assets" in parts:
        return str(Path(*parts[parts.index("es_assets") :]))
    return str(asset.file)


def semantic_findings(catalogue: list[Asset]) -> list[Finding]:
    findings: list[Finding] = []
    for asset in catalogue:
        findings += [Finding(display_path(asset), path, rule, message) for path, rule, message in _rules(asset, catalogue)]
    return findings


Problem = tuple[str, str, str]  # (json_path, rule, message)


def _rules(asset: Asset, catalogue: list[Asset]) -> Iterator[Problem]:
    yield from check_name(asset)
    yield from check_version(asset)
    checks = {
        "transforms": check_transform,
        "ingest_pipelines": check_pipeline,
        "enrich_policies": check_enrich_policy,
        "index_templates": check_index_template,
        "indices": check_index,
    }
    if asset.kind in checks:
        yield from checks[asset.kind](asset, catalogue)


def check_name(asset: Asset) -> Iterator[Problem]:
    if not NAME_PATTERN.match(asset.name):
        yield "$", "name.prefix", f"asset name [{asset.name}] must start with authml- and use a-z, 0-9, - and _"


def check_version(asset: Asset) -> Iterator[Problem]:
    if asset.version is not None:
        return
    location = version_location(asset.kind)
    if location:
        yield "$." + ".".join(location), "version.missing", "the asset must carry an integer version here"
    else:
        yield "$", "version.missing", f"a {asset.kind} name must end with -v<version> (it cannot change in place)"


def check_transform(asset: Asset, catalogue: list[Asset]) -> Iterator[Problem]:
    body = asset.body
    if len(asset.name) > TRANSFORM_ID_MAX or not TRANSFORM_ID.match(asset.name):
        yield (
            "$",
            "transform.id",
            f"transform id [{asset.name}] must be at most {TRANSFORM_ID_MAX} of a-z, 0-9, - and _, "
            "starting and ending with a letter or digit",
        )
    dest = (body.get("dest") or {}).get("index")
    sources = (body.get("source") or {}).get("index") or []
    sources = [sources] if isinstance(sources, str) else sources
    for position, pattern in enumerate(sources):
        if dest and fnmatch.fnmatchcase(dest, str(pattern)):
            yield (
                f"$.source.index[{position}]",
                "transform.dest_in_source",
                f"the dest index [{dest}] matches the source pattern [{pattern}]",
            )
    if "frequency" in body:
        yield from _range_of_duration(body["frequency"], "$.frequency", "transform.frequency", FREQUENCY_RANGE_MS)
    settings = body.get("settings") or {}
    page = settings.get("max_page_search_size")
    if page is not None and not (isinstance(page, int) and PAGE_SIZE_RANGE[0] <= page <= PAGE_SIZE_RANGE[1]):
        yield (
            "$.settings.max_page_search_size",
            "transform.page_size",
            f"max_page_search_size must be an integer from {PAGE_SIZE_RANGE[0]} to {PAGE_SIZE_RANGE[1]}",
        )
    if dest:
        yield from _check_dest_declared(dest, catalogue)
        template = _template_for_index(dest, catalogue)
        if template is not None and isinstance(body.get("pivot"), dict):
            yield from _check_dest_covers_output(body["pivot"], template)


def _range_of_duration(value: Any, path: str, rule: str, bounds: tuple[int, int]) -> Iterator[Problem]:
    match = _DURATION.match(str(value))
    if not match:
        yield path, rule, f"[{value}] is not a time value such as 30s, 1m or 1h"
        return
    millis = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if not bounds[0] <= millis <= bounds[1]:
        yield path, rule, f"[{value}] must be between 1s and 1h"


def _check_dest_declared(dest: str, catalogue: list[Asset]) -> Iterator[Problem]:
    declared = any(a.kind == "indices" and a.name == dest for a in catalogue)
    if not declared:
        yield (
            "$.dest.index",
            "transform.dest_not_declared",
            f"no indices/{dest}.yml: the dest index must be created from its template before the transform "
            "starts, or mappings deduced by the transform win",
        )
    if _template_for_index(dest, catalogue) is None:
        yield "$.dest.index", "transform.dest_no_template", f"no index template of the assets matches [{dest}]"


def _template_for_index(index: str, catalogue: list[Asset]) -> Asset | None:
    """The highest-priority index template asset whose patterns match ``index``."""
    matching = [
        a
        for a in catalogue
        if a.kind == "index_templates"
        and any(fnmatch.fnmatchcase(index, str(p)) for p in _as_list(a.body.get("index_patterns")))
    ]
    return max(matching, key=lambda a: a.body.get("priority", 0), default=None)


def _check_dest_covers_output(pivot: dict, template: Asset) -> Iterator[Problem]:
    """With ``dynamic: strict`` a field the transform writes but the template does not declare
    makes every bulk write fail and the transform stop."""
    mappings = (template.body.get("template") or {}).get("mappings") or {}
    if mappings.get("dynamic") not in ("strict", "false", False):
        return
    declared = set(_mapped_paths(mappings.get("properties") or {}))
    for name, path in _pivot_outputs(pivot):
        if name not in declared:
            yield (
                path,
                "transform.dest_mapping",
                f"[{name}] is written by the transform but not mapped in index template {template.name}",
            )


def _pivot_outputs(pivot: dict) -> Iterator[tuple[str, str]]:
    for name in pivot.get("group_by") or {}:
        yield name, f"$.pivot.group_by[{name!r}]"
    aggs = pivot.get("aggregations") or pivot.get("aggs") or {}
    key = "aggregations" if "aggregations" in pivot else "aggs"
    yield from _agg_outputs(aggs, "", f"$.pivot.{key}")


def _agg_outputs(aggs: dict, prefix: str, path: str) -> Iterator[tuple[str, str]]:
    for name, agg in aggs.items():
        full = f"{prefix}{name}"
        subs = (agg or {}).get("aggregations") or (agg or {}).get("aggs")
        kind = next((k for k in agg or {} if k not in ("aggregations", "aggs", "meta")), None)
        if subs and kind in ("filter", "missing"):
            yield from _agg_outputs(subs, f"{full}.", f"{path}.{name}.aggregations")
        else:
            yield full, f"{path}.{name}"


def _mapped_paths(properties: dict, prefix: str = "") -> Iterator[str]:
    for name, mapping in properties.items():
        full = f"{prefix}{name}"
        yield full
        if isinstance(mapping, dict) and isinstance(mapping.get("properties"), dict):
            yield from _mapped_paths(mapping["properties"], f"{full}.")


def check_pipeline(asset: Asset, catalogue: list[Asset]) -> Iterator[Problem]:
    body = asset.body
    if not body.get("on_failure"):
        yield "$", "pipeline.on_failure", "the pipeline needs an on_failure that keeps the event and records why"
    policies = {a.name for a in catalogue if a.kind == "enrich_policies"}
    for path, kind, config in _processors(body):
        if not isinstance(config, dict):
            continue
        for required in ("tag", "description"):
            if not config.get(required):
                yield f"{path}.{kind}", f"pipeline.processor_{required}", f"the {kind} processor has no {required}"
        if kind == "enrich":
            yield from _check_enrich_processor(config, f"{path}.{kind}", policies)


def _processors(body: dict, path: str = "$") -> Iterator[tuple[str, str, Any]]:
    """Every processor, including on_failure handlers and foreach's inner processor."""
    for list_key in ("processors", "on_failure"):
        for index, container in enumerate(_as_list(body.get(list_key))):
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
        yield f"{path}.max_matches", "enrich.max_matches", f"max_matches must be from 1 to {ENRICH_MAX_MATCHES}"


def check_enrich_policy(asset: Asset, catalogue: list[Asset]) -> Iterator[Problem]:
    if not VERSIONED_NAME.search(asset.name):
        return  # check_version already reports it
    for policy_type, config in asset.body.items():
        if not isinstance(config, dict):
            continue
        for index, source in enumerate(_as_list(config.get("indices"))):
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
    for index, name in enumerate(_as_list(body.get("composed_of"))):
        if str(name).startswith("authml-") and name not in components:
            yield f"$.composed_of[{index}]", "template.component_unknown", f"no component template asset [{name}]"
    settings = _flat_settings((body.get("template") or {}).get("settings") or {})
    pipelines = {a.name for a in catalogue if a.kind == "ingest_pipelines"}
    for key in ("index.default_pipeline", "index.final_pipeline"):
        name = settings.get(key)
        if name and str(name).startswith("authml-") and name not in pipelines:
            yield f"$.template.settings.{key}", "template.pipeline_unknown", f"no ingest pipeline asset [{name}]"
    if settings.get("index.mode") == "lookup":
        yield from _check_lookup(body, settings)


def _check_lookup(body: dict, settings: dict[str, Any]) -> Iterator[Problem]:
    shards = settings.get("index.number_of_shards")
    if shards is not None and str(shards) != "1":
        yield "$.template.settings.index.number_of_shards", "lookup.shards", "a lookup index has exactly one shard"
    keys = _as_list((body.get("_meta") or {}).get("lookup_keys"))
    if not keys:
        yield "$._meta", "lookup.keys_missing", "a lookup index template must list its join keys in _meta.lookup_keys"
    mappings = (body.get("template") or {}).get("mappings") or {}
    types = dict(_mapped_types(mappings.get("properties") or {}))
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


def _mapped_types(properties: dict, prefix: str = "") -> Iterator[tuple[str, str]]:
    for name, mapping in properties.items():
        if not isinstance(mapping, dict):
            continue
        full = f"{prefix}{name}"
        if isinstance(mapping.get("properties"), dict):
            yield full, mapping.get("type", "object")
            yield from _mapped_types(mapping["properties"], f"{full}.")
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
    if _template_for_index(asset.name, catalogue) is None and not asset.body.get("mappings", {}).get("properties"):
        yield "$", "index.no_template", f"no index template of the assets matches [{asset.name}] and it has no mappings"


def _flat_settings(settings: dict, prefix: str = "") -> dict[str, Any]:
    """Index settings as dotted keys, with the ``index.`` prefix Elasticsearch adds."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_settings(value, f"{full}."))
        else:
            flat[full if full.startswith("index.") else f"index.{full}"] = value
    return flat


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
