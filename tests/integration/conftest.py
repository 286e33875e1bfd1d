"""A real Elasticsearch for the integration tests, started with testcontainers from the image that
docker-compose.yml pins. Without a Docker engine every test here skips, saying so."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from authml.assets.catalogue import load_catalogue
from authml.cli import cli
from authml.es.apply import apply_plan, plan_steps
from authml.es.client import connect
from authml.es.options import EsOptions, make_options
from authml.es.plan import fetch_live, make_plan

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 240


def compose_image(service: str = "elasticsearch") -> str:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return compose["services"][service]["image"]


def _docker_or_skip() -> None:
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # any failure to reach the engine means: skip, with its reason
        pytest.skip(f"no Docker engine answers ({type(exc).__name__}: {exc}); integration tests need one")


@pytest.fixture(scope="session")
def es_options() -> Iterator[EsOptions]:
    _docker_or_skip()
    from testcontainers.core.container import DockerContainer

    password = secrets.token_urlsafe(16)
    container = (
        DockerContainer(compose_image())
        .with_env("discovery.type", "single-node")
        .with_env("xpack.security.enabled", "true")
        .with_env("xpack.security.http.ssl.enabled", "false")
        .with_env("xpack.license.self_generated.type", "basic")
        .with_env("ELASTIC_PASSWORD", password)
        .with_env("ES_JAVA_OPTS", "-Xms1g -Xmx1g")
        .with_exposed_ports(9200)
    )
    container.start()
    try:
        url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(9200)}"
        options = make_options(url, username="elastic", password=password, timeout_s=60)
        _wait_until_healthy(options)
        yield options
    finally:
        container.stop()


def _wait_until_healthy(options: EsOptions) -> None:
    client = connect(options)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client.cluster.health(wait_for_status="yellow", timeout="5s")
            return
        except Exception as exc:  # the node is still starting; keep the last reason for the failure
            last_error = exc
            time.sleep(2)
    raise RuntimeError(f"Elasticsearch did not become healthy in {STARTUP_TIMEOUT_S} s: {last_error}")


@pytest.fixture(scope="session")
def es(es_options):
    return connect(es_options)


def apply_assets(client, catalogue=None) -> list:
    """Apply the assets; returns the steps taken."""
    catalogue = catalogue or load_catalogue()
    live = fetch_live(client, catalogue)
    steps = plan_steps(make_plan(catalogue, live), catalogue, live)
    apply_plan(client, steps)
    return steps


@pytest.fixture(scope="session")
def applied(es):
    """The cluster with every asset installed."""
    apply_assets(es)
    return es


def cli_env(es_options: EsOptions) -> dict[str, str]:
    """The environment that points authml commands at the test cluster."""
    return {
        "AUTHML_ES_URL": es_options.url,
        "AUTHML_ES_USERNAME": es_options.username,
        "AUTHML_ES_PASSWORD": es_options.password.reveal(),
    }


def run_cli(project: Path, es_options: EsOptions, *args: str) -> str:
    """Run one authml command against the test cluster; its output, after checking it succeeded."""
    result = CliRunner().invoke(
        cli, ["--project-dir", str(project), *args], env=cli_env(es_options), catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output
