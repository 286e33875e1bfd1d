"""The asset catalogue, canonical form, `authml assets fmt` and the lock."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from authml.assets import assets_dir
from authml.assets.canonical import body_sha256, format_asset_text
from authml.assets.catalogue import KINDS, asset_version, load_catalogue, lock_path
from authml.assets.lock import check_lock, lock_entries, read_lock, updated_lock
from authml.cli import cli
from authml.errors import AssetError


def test_every_kind_has_assets_and_every_asset_carries_a_version():
    catalogue = load_catalogue()
    assert {a.kind for a in catalogue} == set(KINDS)
    assert all(a.name.startswith("authml-") for a in catalogue)
    assert [a.key for a in catalogue if a.version is None] == []


def test_versions_are_read_where_each_api_keeps_them():
    assert asset_version("transforms", "x", {"_meta": {"authml_version": 3}}) == 3
    assert asset_version("roles", "x", {"metadata": {"authml_version": 2}}) == 2
    assert asset_version("indices", "x", {"mappings": {"_meta": {"authml_version": 5}}}) == 5
    assert asset_version("index_templates", "x", {"version": 7}) == 7
    assert asset_version("enrich_policies", "authml-user-risk-v4", {}) == 4
    assert asset_version("enrich_policies", "authml-user-risk", {}) is None
    assert asset_version("index_templates", "x", {"version": True}) is None


def test_unknown_asset_folder_is_an_error(tmp_path: Path):
    (tmp_path / "transfroms").mkdir()
    with pytest.raises(AssetError, match="unknown asset kind"):
        load_catalogue(tmp_path)


def test_canonical_hash_ignores_key_order_and_formatting():
    body = {"b": [1, {"y": 2, "x": 1}], "a": "s"}
    assert body_sha256(body) == body_sha256({"a": "s", "b": [1, {"x": 1, "y": 2}]})
    assert body_sha256(body) != body_sha256({"a": "s", "b": [{"x": 1, "y": 2}, 1]})


def test_format_round_trips_and_is_stable():
    text = (
        "# header\n"
        "description: 'quoted: yes'\n"
        "pivot:\n"
        "    group_by:\n"
        "        user.name:   {terms: {field: user.name}}\n"
        "        '@timestamp': {date_histogram: {field: '@timestamp', fixed_interval: 1h}}\n"
        "codes: ['4624', '4625']\n"
        "script: |\n  line one\n  line two\n"
        "flags: {yes_: true, n: null, f: 1.5}\n"
    )
    formatted = format_asset_text(text)
    assert yaml.safe_load(formatted) == yaml.safe_load(text)
    assert format_asset_text(formatted) == formatted
    assert formatted.startswith("# header\n")
    assert "    user.name: {terms: {field: user.name}}\n" in formatted
    assert 'codes: ["4624", "4625"]\n' in formatted
    assert "script: |\n  line one\n  line two\n" in formatted


def test_format_refuses_to_drop_comments_below_the_header():
    with pytest.raises(AssetError, match=":3: comments belong in the header"):
        format_asset_text("# ok\na: 1\n# lost\nb: 2\n", "x.yml")


def test_asset_files_are_in_canonical_form():
    runner = CliRunner()
    result = runner.invoke(cli, ["assets", "fmt", "--check"])
    assert result.exit_code == 0, result.output


def test_fmt_check_reports_and_fmt_fixes(tmp_path: Path, monkeypatch):
    root = tmp_path / "es_assets"
    shutil.copytree(assets_dir(), root)
    target = root / "roles" / "authml-ingest.yml"
    original = "    privileges: [create_doc, auto_configure]\n"
    target.write_text(
        target.read_text().replace(original, "    privileges:\n      - create_doc\n      - auto_configure\n")
    )
    monkeypatch.setenv("AUTHML_ASSETS_DIR", str(root))
    runner = CliRunner()
    checked = runner.invoke(cli, ["assets", "fmt", "--check"])
    assert checked.exit_code != 0 and "authml-ingest.yml" in checked.output
    assert runner.invoke(cli, ["assets", "fmt"]).exit_code == 0
    assert original in target.read_text()


def test_lock_matches_the_assets():
    """Fails when an asset changed without a version bump, or its version disagrees with the lock."""
    problems = check_lock(load_catalogue(), read_lock(lock_path()))
    assert [str(p) for p in problems] == []


def _changed(catalogue, key, mutate):
    out = []
    for asset in catalogue:
        if asset.key == key:
            body = copy.deepcopy(asset.body)
            mutate(body)
            asset = type(asset)(asset.kind, asset.name, body, asset.file)
        out.append(asset)
    return out


def test_lock_check_catches_content_change_without_bump():
    catalogue = load_catalogue()
    locked = lock_entries(catalogue)
    edited = _changed(catalogue, "transforms/authml-user-hourly", lambda b: b.update(frequency="5m"))
    problems = check_lock(edited, locked)
    assert len(problems) == 1 and "bump the version" in str(problems[0])
    with pytest.raises(AssetError, match="changed without a version bump"):
        updated_lock(edited, locked)


def test_lock_check_catches_version_that_disagrees_with_the_lock():
    catalogue = load_catalogue()
    locked = lock_entries(catalogue)
    bumped = _changed(catalogue, "roles/authml-trainer", lambda b: b["metadata"].update(authml_version=2))
    problems = check_lock(bumped, locked)
    assert len(problems) == 1 and "version 2 in the object but 1 in the lock" in str(problems[0])
    assert updated_lock(bumped, locked)["roles/authml-trainer"]["version"] == 2


def test_lock_check_catches_missing_and_removed_assets():
    catalogue = load_catalogue()
    locked = lock_entries(catalogue)
    locked["roles/authml-gone"] = {"version": 1, "sha256": "0"}
    del locked["roles/authml-ingest"]
    messages = [str(p) for p in check_lock(catalogue, locked)]
    assert any("authml-gone" in m and "no longer on disk" in m for m in messages)
    assert any("authml-ingest" in m and "not in the lock" in m for m in messages)
