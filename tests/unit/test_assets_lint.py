"""`authml assets lint`: each semantic rule has a body that must fail, and the real assets pass."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from authml.assets.catalogue import Asset, load_catalogue
from authml.assets.lint import lint_catalogue, semantic_findings
from authml.assets.transform_rules import check_transform


@pytest.fixture(scope="module")
def catalogue() -> list[Asset]:
    return load_catalogue()


def _with(catalogue: list[Asset], kind: str, name: str, mutate=None, body=None) -> list[Asset]:
    """The catalogue with one asset changed (or added)."""
    out = [a for a in catalogue if not (a.kind == kind and a.name == name)]
    original = next((a for a in catalogue if a.kind == kind and a.name == name), None)
    new_body = copy.deepcopy(body if body is not None else original.body)
    if mutate:
        mutate(new_body)
    out.append(Asset(kind, name, new_body, Path(f"es_assets/{kind}/{name}.yml")))
    return out


def _rules(catalogue: list[Asset], key: str) -> set[str]:
    return {f.rule for f in semantic_findings(catalogue) if f.file.endswith(f"{key}.yml")}


def test_the_assets_pass_the_semantic_rules(catalogue):
    assert [str(f) for f in semantic_findings(catalogue)] == []


def test_name_must_start_with_authml(catalogue):
    bad = _with(catalogue, "roles", "reader", body={"metadata": {"authml_version": 1}})
    assert "name.prefix" in _rules(bad, "roles/reader")


def test_version_must_be_inside_the_object(catalogue):
    bad = _with(catalogue, "roles", "authml-ingest", lambda b: b.pop("metadata"))
    findings = [f for f in semantic_findings(bad) if f.rule == "version.missing"]
    assert findings and findings[0].json_path == "$.metadata.authml_version"


def test_enrich_policy_name_must_carry_its_version(catalogue):
    bad = _with(catalogue, "enrich_policies", "authml-user-risk", body={"match": {"indices": ["x"]}})
    assert "version.missing" in _rules(bad, "enrich_policies/authml-user-risk")


def test_transform_id_rules(catalogue):
    base = next(a for a in catalogue if a.name == "authml-user-hourly").body
    too_long = "authml-" + "x" * 60
    assert "transform.id" in _rules(
        _with(catalogue, "transforms", too_long, body=base), f"transforms/{too_long}"
    )
    assert "transform.id" in _rules(
        _with(catalogue, "transforms", "authml-bad-", body=base), "transforms/authml-bad-"
    )


def test_dest_must_not_match_a_source_pattern(catalogue):
    bad = _with(
        catalogue,
        "transforms",
        "authml-user-hourly",
        lambda b: b["source"]["index"].append("authml-features-*"),
    )
    findings = [
        f
        for f in semantic_findings(bad)
        if f.rule in ("transform.dest_in_source", "transform.dest.in_source")
    ]
    assert len(findings) == 1, "reported once, by this module or by the engine's validator"
    assert findings[0].json_path in ("$.source.index[3]", "$.dest.index")
    own = [
        rule for _, rule, _ in check_transform(next(a for a in bad if a.name == "authml-user-hourly"), bad)
    ]
    assert "transform.dest_in_source" in own


@pytest.mark.parametrize("frequency", ["500ms", "2h", "soon"])
def test_frequency_between_1s_and_1h(catalogue, frequency):
    bad = _with(catalogue, "transforms", "authml-user-hourly", lambda b: b.update(frequency=frequency))
    assert "transform.frequency" in _rules(bad, "transforms/authml-user-hourly")


@pytest.mark.parametrize("size", [9, 65537, "500"])
def test_max_page_search_size_range(catalogue, size):
    bad = _with(
        catalogue,
        "transforms",
        "authml-user-hourly",
        lambda b: b["settings"].update(max_page_search_size=size),
    )
    assert {"transform.page_size", "transform.settings.page_size"} & _rules(
        bad, "transforms/authml-user-hourly"
    )
    own = [
        rule for _, rule, _ in check_transform(next(a for a in bad if a.name == "authml-user-hourly"), bad)
    ]
    assert "transform.page_size" in own


def test_dest_index_must_be_declared_and_templated(catalogue):
    bad = _with(
        catalogue, "transforms", "authml-user-hourly", lambda b: b["dest"].update(index="authml-other-v1")
    )
    assert {"transform.dest_not_declared", "transform.dest_no_template"} <= _rules(
        bad, "transforms/authml-user-hourly"
    )


def test_strict_dest_mapping_must_cover_every_output(catalogue):
    bad = _with(
        catalogue,
        "transforms",
        "authml-user-hourly",
        lambda b: b["pivot"]["aggregations"].update(new_metric={"max": {"field": "source.port"}}),
    )
    findings = [f for f in semantic_findings(bad) if f.rule == "transform.dest_mapping"]
    assert findings and "[new_metric]" in findings[0].message


def test_dest_mapping_types_match_what_the_transform_writes(catalogue):
    def keyword_count(body):
        body["template"]["mappings"]["properties"]["source_ips"] = {"type": "keyword"}

    bad = _with(catalogue, "index_templates", "authml-features-user-hourly", keyword_count)
    findings = [f for f in semantic_findings(bad) if f.rule == "transform.dest_mapping_type"]
    assert len(findings) == 1
    assert findings[0].file.endswith("transforms/authml-user-hourly.yml")
    assert "[source_ips] is mapped as keyword" in findings[0].message and "writes long" in findings[0].message


def test_sub_aggregations_of_a_filter_are_checked_by_full_name(catalogue):
    def rename(body):
        body["pivot"]["aggregations"]["failed_logons"]["aggregations"] = {
            "hosts": {"cardinality": {"field": "h"}}
        }

    bad = _with(catalogue, "transforms", "authml-source-ip-hourly", rename)
    findings = [f for f in semantic_findings(bad) if f.rule == "transform.dest_mapping"]
    assert findings and "[failed_logons.hosts]" in findings[0].message


def test_every_processor_has_tag_and_description(catalogue):
    def strip(body):
        del body["processors"][0]["remove"]["tag"]
        del body["on_failure"][0]["set"]["description"]

    rules = _rules(
        _with(catalogue, "ingest_pipelines", "authml-events", strip), "ingest_pipelines/authml-events"
    )
    assert {"pipeline.processor_tag", "pipeline.processor_description"} <= rules


def test_processor_inside_foreach_is_checked(catalogue):
    foreach = {
        "foreach": {
            "tag": "t",
            "description": "d",
            "field": "f",
            "processor": {"lowercase": {"field": "_ingest._value"}},
        }
    }
    bad = _with(catalogue, "ingest_pipelines", "authml-events", lambda b: b["processors"].append(foreach))
    assert "pipeline.processor_tag" in _rules(bad, "ingest_pipelines/authml-events")


def test_pipeline_needs_on_failure(catalogue):
    bad = _with(catalogue, "ingest_pipelines", "authml-events", lambda b: b.pop("on_failure"))
    assert "pipeline.on_failure" in _rules(bad, "ingest_pipelines/authml-events")


def _enrich_processor(body):
    return next(p["enrich"] for p in body["processors"] if "enrich" in p)


def test_enrich_processor_names_an_existing_policy(catalogue):
    bad = _with(
        catalogue,
        "ingest_pipelines",
        "authml-events",
        lambda b: _enrich_processor(b).update(policy_name="authml-user-risk-v9"),
    )
    assert "enrich.policy_unknown" in _rules(bad, "ingest_pipelines/authml-events")


@pytest.mark.parametrize("matches", [0, 129])
def test_enrich_max_matches_at_most_128(catalogue, matches):
    bad = _with(
        catalogue,
        "ingest_pipelines",
        "authml-events",
        lambda b: _enrich_processor(b).update(max_matches=matches),
    )
    assert "enrich.max_matches" in _rules(bad, "ingest_pipelines/authml-events")


def test_enrich_policy_source_must_be_a_declared_index(catalogue):
    bad = _with(
        catalogue, "enrich_policies", "authml-user-risk-v1", lambda b: b["match"].update(indices=["nowhere"])
    )
    assert "enrich.source_unknown" in _rules(bad, "enrich_policies/authml-user-risk-v1")


def test_lookup_key_must_be_mapped_with_a_joinable_type(catalogue):
    def version_key(body):
        body["template"]["mappings"]["properties"]["authml"]["properties"]["event_id"] = {"type": "version"}

    bad = _with(catalogue, "index_templates", "authml-scores", version_key)
    assert "lookup.key_type" in _rules(bad, "index_templates/authml-scores")
    unmapped = _with(
        catalogue, "index_templates", "authml-scores", lambda b: b["_meta"].update(lookup_keys=["nope"])
    )
    assert "lookup.key_unmapped" in _rules(unmapped, "index_templates/authml-scores")
    missing = _with(catalogue, "index_templates", "authml-scores", lambda b: b["_meta"].pop("lookup_keys"))
    assert "lookup.keys_missing" in _rules(missing, "index_templates/authml-scores")


def test_lookup_index_has_one_shard(catalogue):
    bad = _with(
        catalogue,
        "index_templates",
        "authml-scores",
        lambda b: b["template"]["settings"]["index"].update(number_of_shards=2),
    )
    assert "lookup.shards" in _rules(bad, "index_templates/authml-scores")


def test_template_references_must_exist(catalogue):
    bad = _with(
        catalogue, "index_templates", "authml-events", lambda b: b["composed_of"].append("authml-missing")
    )
    assert "template.component_unknown" in _rules(bad, "index_templates/authml-events")

    def pipeline(body):
        body["template"]["settings"]["index"]["default_pipeline"] = "authml-nope"

    assert "template.pipeline_unknown" in _rules(
        _with(catalogue, "index_templates", "authml-events", pipeline), "index_templates/authml-events"
    )


def test_versioned_index_name_matches_its_version(catalogue):
    bad = _with(
        catalogue, "indices", "authml-scores-v1", lambda b: b["mappings"]["_meta"].update(authml_version=2)
    )
    assert "index.version_name" in _rules(bad, "indices/authml-scores-v1")


def test_engine_transform_rules_run_in_lint(catalogue):
    def unsupported(body):
        body["pivot"]["aggregations"]["rare"] = {"significant_terms": {"field": "source.ip"}}
        body["pivot"]["group_by"]["user.name"]["terms"]["size"] = 10

    findings = semantic_findings(_with(catalogue, "transforms", "authml-user-hourly", unsupported))
    paths = {f.json_path for f in findings if f.file.endswith("authml-user-hourly.yml")}
    assert "$.pivot.aggregations.rare" in paths or any(
        p.startswith("$.pivot.aggregations.rare") for p in paths
    )
    assert any("size" in p for p in paths)


def test_findings_name_file_and_json_path(catalogue):
    bad = _with(catalogue, "transforms", "authml-user-hourly", lambda b: b.update(frequency="2h"))
    finding = next(f for f in semantic_findings(bad) if f.rule == "transform.frequency")
    assert finding.file == "es_assets/transforms/authml-user-hourly.yml"
    assert finding.json_path == "$.frequency"


def test_without_the_spec_lint_says_so_and_still_runs_semantic_rules(catalogue, monkeypatch, tmp_path):
    monkeypatch.setenv("AUTHML_ES_SPEC_CACHE", str(tmp_path / "empty"))
    bad = _with(catalogue, "transforms", "authml-user-hourly", lambda b: b.update(frequency="2h"))
    report = lint_catalogue(bad, fetch_spec=False)
    assert not report.spec_checked
    assert "not cached" in report.spec_skipped_reason
    assert any(f.rule == "transform.frequency" for f in report.findings)
