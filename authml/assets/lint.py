"""``authml assets lint``: every asset checked against the Elasticsearch specification (shape) and
against the rules Elasticsearch enforces that the specification does not encode (meaning).

Transform semantics (supported aggregations, group_by parameters, name collisions, intervals) are
the embedded engine's rules, in ``authml.engine.validate``; authml's own rules are in
``authml.assets.rules`` (assets and their references) and ``authml.assets.transform_rules``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from authml.assets.catalogue import Asset
from authml.assets.findings import Finding
from authml.assets.rules import (
    Problem,
    check_enrich_policy,
    check_index,
    check_index_template,
    check_name,
    check_pipeline,
    check_version,
)
from authml.assets.spec import ENDPOINT_BY_KIND, Spec, SpecUnavailable
from authml.assets.transform_rules import check_transform


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    spec_checked: bool = False
    spec_skipped_reason: str | None = None


def lint_catalogue(
    catalogue: list[Asset], *, spec: Spec | None = None, fetch_spec: bool = True
) -> LintReport:
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
            report.findings += spec.validate_body(
                ENDPOINT_BY_KIND[asset.kind], asset.body, display_path(asset)
            )
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


# Rules of this module that the transform engine's validator also checks: when the engine
# reports one for a file, this module's copy is dropped so a problem is reported once.
ENGINE_EQUIVALENTS = {
    "transform.id": "transform.id",
    "transform.frequency": "transform.frequency",
    "transform.page_size": "transform.settings.page_size",
    "transform.dest_in_source": "transform.dest.in_source",
}


def semantic_findings(catalogue: list[Asset]) -> list[Finding]:
    findings: list[Finding] = []
    for asset in catalogue:
        file = display_path(asset)
        own = [Finding(file, path, rule, message) for path, rule, message in _rules(asset, catalogue)]
        if asset.kind == "transforms":
            engine = engine_transform_findings(asset, file)
            engine_rules = {f.rule for f in engine}
            own = [f for f in own if ENGINE_EQUIVALENTS.get(f.rule) not in engine_rules]
            findings += engine
        findings += own
    return findings


def engine_transform_findings(asset: Asset, file: str) -> list[Finding]:
    """The transform rules Elasticsearch enforces at PUT (supported aggregations, group_by
    parameters, name collisions, intervals), from the embedded engine's validator."""
    from authml.engine.validate import validate_transform

    return validate_transform(asset.body, file, transform_id=asset.name)


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
