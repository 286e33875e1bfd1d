"""Connection options: precedence, TLS defaults, and credentials never shown (sentinel secret)."""

from __future__ import annotations

import logging
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from authml.cli import cli
from authml.errors import InputError
from authml.es.client import ClusterError, client_kwargs
from authml.es.options import Secret, es_connection_options, make_options

SENTINEL = "s3ntinel-Secret-7f3a9"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused


@click.group("root")
@click.pass_context
def _root(ctx: click.Context) -> None:
    ctx.obj = {"config": {"es": {"url": "http://from-config:9200", "username": "config-user"}}}


@_root.command("show")
@es_connection_options
def _show(es_options) -> None:
    click.echo(f"{es_options.url} {es_options.username} {es_options.verify_certs}")


def test_precedence_flag_over_env_over_config(monkeypatch):
    runner = CliRunner()
    monkeypatch.delenv("AUTHML_ES_URL", raising=False)
    monkeypatch.delenv("AUTHML_ES_USERNAME", raising=False)
    assert runner.invoke(_root, ["show"]).output.strip() == "http://from-config:9200 config-user True"
    monkeypatch.setenv("AUTHML_ES_URL", "http://from-env:9200")
    assert runner.invoke(_root, ["show"]).output.strip() == "http://from-env:9200 config-user True"
    flagged = runner.invoke(_root, ["show", "--es-url", "http://from-flag:9200", "--es-insecure"])
    assert flagged.output.strip() == "http://from-flag:9200 config-user False"


def test_tls_verification_is_on_by_default_and_ca_cert_is_used(tmp_path: Path):
    assert client_kwargs(make_options("https://es:9200"))["verify_certs"] is True
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    kwargs = client_kwargs(make_options("https://es:9200", ca_cert=ca))
    assert kwargs["ca_certs"] == str(ca) and kwargs["verify_certs"] is True
    with pytest.raises(ClusterError, match="does not exist"):
        client_kwargs(make_options("https://es:9200", ca_cert=tmp_path / "missing.crt"))


def test_api_key_wins_over_basic_auth_and_credentials_leave_the_url():
    kwargs = client_kwargs(make_options("https://es:9200", api_key=SENTINEL, username="u", password="p"))
    assert kwargs["api_key"] == SENTINEL and "basic_auth" not in kwargs
    options = make_options(f"https://elastic:{SENTINEL}@es:9200")
    assert options.url == "https://es:9200" and options.username == "elastic"
    assert options.password.reveal() == SENTINEL
    assert SENTINEL not in repr(options) and SENTINEL not in str(Secret(SENTINEL))


def test_bad_url_is_refused_without_showing_the_password():
    with pytest.raises(InputError) as caught:
        make_options(f"ftp://elastic:{SENTINEL}@es")
    assert SENTINEL not in str(caught.value)


def test_help_never_shows_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("AUTHML_ES_PASSWORD", SENTINEL)
    monkeypatch.setenv("AUTHML_ES_API_KEY", SENTINEL)
    for command in (["assets", "plan", "--help"], ["assets", "apply", "--help"], ["doctor", "--help"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 0, result.output
        assert SENTINEL not in result.output


@pytest.mark.parametrize(
    "arguments",
    [
        ["--es-url", CLOSED_PORT_URL, "--es-username", "elastic", "--es-password", SENTINEL],
        ["--es-url", CLOSED_PORT_URL, "--es-api-key", SENTINEL],
        ["--es-url", f"http://elastic:{SENTINEL}@127.0.0.1:9"],
    ],
)
def test_errors_and_logs_never_show_credentials(arguments, caplog):
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(cli, ["assets", "plan", "--es-timeout", "2", *arguments])
    assert result.exit_code != 0
    assert isinstance(result.exception, ClusterError)
    message = str(result.exception)
    assert "cannot reach Elasticsearch at http://127.0.0.1:9" in message
    assert SENTINEL not in message and SENTINEL not in result.output
    assert SENTINEL not in caplog.text
