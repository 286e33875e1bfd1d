"""Settings precedence: flag, then AUTHML_* environment variable, then config file, then default."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from authml.cli import cli
from tests.helpers import auth_event, write_ndjson


@pytest.fixture
def source(tmp_path):
    return write_ndjson(tmp_path / "e.ndjson", [auth_event(1), "broken line"])


def invoke(tmp_path, args, env=None):
    return CliRunner().invoke(cli, args, env=env or {}, catch_exceptions=False)


def test_config_file_sets_global_and_command_options(tmp_path, source, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "authml.toml").write_text('project_dir = "from-file"\n[ingest]\nstrict = true\n')
    result = invoke(tmp_path, ["ingest", str(source)])
    assert result.exit_code != 0 and "--strict" in result.output  # strict came from the file
    assert (tmp_path / "from-file" / "store.duckdb").exists()


def test_environment_beats_config_file(tmp_path, source, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "authml.toml").write_text('project_dir = "from-file"\n[ingest]\nstrict = true\n')
    result = invoke(
        tmp_path,
        ["ingest", str(source)],
        env={"AUTHML_PROJECT_DIR": "from-env", "AUTHML_INGEST_STRICT": "false"},
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-env" / "store.duckdb").exists()
    assert not (tmp_path / "from-file").exists()


def test_flag_beats_environment(tmp_path, source, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(
        tmp_path,
        ["--project-dir", "from-flag", "ingest", "--json", str(source)],
        env={"AUTHML_PROJECT_DIR": "from-env"},
    )
    assert result.exit_code == 0
    assert json.loads(result.output)["total"]["stored"] == 1
    assert (tmp_path / "from-flag" / "store.duckdb").exists() and not (tmp_path / "from-env").exists()


def test_defaults_apply_without_anything(tmp_path, source, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert invoke(tmp_path, ["ingest", str(source)]).exit_code == 0
    assert (tmp_path / ".authml" / "store.duckdb").exists()


def test_explicit_config_file_must_exist(tmp_path):
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "missing.toml"), "store", "summary"])
    assert result.exit_code != 0
