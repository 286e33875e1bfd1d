"""Asset bodies against the official Elasticsearch API specification (schema.json of the npm
package @elastic/request-converter, fetched with `npm pack` and cached outside the repository)."""

from __future__ import annotations

import copy

import pytest
from click.testing import CliRunner

from authml.assets.catalogue import load_catalogue
from authml.assets.spec import ENDPOINT_BY_KIND, Spec, SpecUnavailable, ensure_spec
from authml.cli import cli


@pytest.fixture(scope="module")
def spec() -> Spec:
    try:
        return Spec.load(ensure_spec())
    except SpecUnavailable as exc:
        pytest.skip(f"the Elasticsearch specification is unavailable: {exc}")


@pytest.fixture(scope="module")
def bodies() -> dict:
    return {a.key: a.body for a in load_catalogue()}


def _messages(spec: Spec, kind: str, body: dict) -> list[str]:
    return [f"{f.json_path}: {f.message}" for f in spec.validate_body(ENDPOINT_BY_KIND[kind], body, "t.yml")]


def test_every_asset_matches_the_specification(spec):
    findings = [
        str(f) for a in load_catalogue() for f in spec.validate_body(ENDPOINT_BY_KIND[a.kind], a.body, a.key)
    ]
    assert findings == []


def test_transform_typos_and_missing_fields(spec, bodies):
    body = copy.deepcopy(bodies["transforms/authml-user-hourly"])
    body["pivot"]["group_by"]["user.name"]["terms"]["feild"] = "user.name"
    body["sync"]["time"]["dealy"] = "60s"
    body["pivot"]["aggregations"]["two"] = {"avg": {"field": "a"}, "max": {"field": "b"}}
    del body["dest"]
    messages = _messages(spec, "transforms", body)
    assert any(
        '$.pivot.group_by["user.name"].terms.feild' in m and "did you mean [field]" in m for m in messages
    )
    assert any("$.sync.time.dealy" in m and "did you mean [delay]" in m for m in messages)
    assert any("$.pivot.aggregations.two" in m and "exactly one" in m for m in messages)
    assert any("missing required field [dest]" in m for m in messages)


def test_pipeline_processor_errors(spec, bodies):
    body = copy.deepcopy(bodies["ingest_pipelines/authml-events"])
    body["processors"] += [
        {"rname": {"field": "a", "target_field": "b"}},
        {"set": {"field": "a", "value": 1}, "rename": {"field": "a", "target_field": "b"}},
        {"convert": {"field": "a", "type": "int"}},
    ]
    messages = _messages(spec, "ingest_pipelines", body)
    assert any("rname" in m and "did you mean [rename]" in m for m in messages)
    assert any("found: set, rename" in m for m in messages)
    assert any("convert.type" in m and "'int' is not one of" in m for m in messages)


def test_enrich_policy_takes_no_max_matches(spec, bodies):
    body = copy.deepcopy(bodies["enrich_policies/authml-user-risk-v1"])
    body["match"]["max_matches"] = 2
    assert any("max_matches" in m for m in _messages(spec, "enrich_policies", body))


def test_mapping_type_and_enum_errors(spec, bodies):
    body = copy.deepcopy(bodies["index_templates/authml-scores"])
    body["template"]["mappings"]["properties"]["authml"]["properties"]["score"] = {"type": "flaot"}
    body["template"]["mappings"]["dynamic"] = "sometimes"
    messages = _messages(spec, "index_templates", body)
    assert any("unknown type [flaot]" in m and "did you mean [float]" in m for m in messages)
    assert any("$.template.mappings.dynamic" in m for m in messages)


def test_component_template_index_and_role_bodies(spec, bodies):
    component = copy.deepcopy(bodies["component_templates/authml-events-settings"])
    component["templat"] = component.pop("template")
    assert any("[templat]" in m for m in _messages(spec, "component_templates", component))
    index = {"mapping": {}}
    assert any("did you mean [mappings]" in m for m in _messages(spec, "indices", index))
    role = copy.deepcopy(bodies["roles/authml-ingest"])
    role["indices"][0]["privilege"] = role["indices"][0].pop("privileges")
    assert any("did you mean [privileges]" in m for m in _messages(spec, "roles", role))


def test_lint_reports_an_unavailable_spec_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTHML_ES_SPEC_CACHE", str(tmp_path / "empty"))
    result = CliRunner().invoke(cli, ["assets", "lint", "--offline"])
    assert "specification: NOT checked" in result.output
    assert result.exit_code == 0  # the semantic rules ran and found nothing
    required = CliRunner().invoke(cli, ["assets", "lint", "--offline", "--require-spec"])
    assert required.exit_code != 0 and "was required" in required.output


def _fake_npm(bin_dir, script: str) -> None:
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\n" + script)
    npm.chmod(0o755)


def test_fetch_packs_extracts_and_caches_outside_the_repo(tmp_path, monkeypatch):
    schema = tmp_path / "package" / "dist" / "schema.json"
    schema.parent.mkdir(parents=True)
    schema.write_text('{"types": [], "endpoints": []}')
    tarball = tmp_path / "spec.tgz"
    import tarfile

    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(schema, arcname="package/dist/schema.json")
    _fake_npm(tmp_path / "bin", f'cp "{tarball}" ./elastic-request-converter-9.5.0.tgz\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("AUTHML_ES_SPEC_CACHE", str(tmp_path / "cache"))
    path = ensure_spec("9.5.0")
    assert path == tmp_path / "cache" / "9.5.0" / "schema.json"
    assert path.read_text() == '{"types": [], "endpoints": []}'
    assert not list((tmp_path / "cache" / "9.5.0").glob("tmp*")), "the scratch folder is removed"


def test_fetch_failure_says_why(tmp_path, monkeypatch):
    _fake_npm(tmp_path / "bin", 'echo "npm error code E404" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("AUTHML_ES_SPEC_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SpecUnavailable, match="failed .*E404"):
        ensure_spec("9.5.0")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(SpecUnavailable, match="npm is not installed"):
        ensure_spec("9.5.0")
