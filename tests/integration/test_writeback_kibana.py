"""The Kibana saved objects imported into a real Kibana of the pinned release: the import reports
success with no errors, and every object reads back."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from authml.es.kibana import KibanaOptions, build_ndjson, import_saved_objects, load_saved_objects
from tests.integration.conftest import _docker_or_skip, compose_image

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
STARTUP_TIMEOUT_S = 300


def _wait_for_kibana(url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=10) as response:
                status = json.loads(response.read())
            if status.get("status", {}).get("overall", {}).get("level") == "available":
                return
            last = status.get("status", {}).get("overall")
        except OSError as exc:  # still starting: keep the reason for the failure message
            last = exc
        time.sleep(3)
    raise RuntimeError(f"Kibana did not become available in {STARTUP_TIMEOUT_S} s: {last}")


@pytest.fixture(scope="module")
def kibana_url():
    _docker_or_skip()
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

    # Security off on this pair: the test is about the saved objects, not about credentials.
    with Network() as network:
        elasticsearch = (
            DockerContainer(compose_image("elasticsearch"))
            .with_network(network)
            .with_network_aliases("elasticsearch")
            .with_env("discovery.type", "single-node")
            .with_env("xpack.security.enabled", "false")
            .with_env("ES_JAVA_OPTS", "-Xms1g -Xmx1g")
        )
        kibana = (
            DockerContainer(compose_image("kibana"))
            .with_network(network)
            .with_env("ELASTICSEARCH_HOSTS", "http://elasticsearch:9200")
            .with_exposed_ports(5601)
        )
        with elasticsearch, kibana:
            url = f"http://{kibana.get_container_host_ip()}:{kibana.get_exposed_port(5601)}"
            _wait_for_kibana(url)
            yield url


def test_import_succeeds_and_every_object_reads_back(kibana_url):
    objects = load_saved_objects()
    result = import_saved_objects(KibanaOptions(kibana_url), build_ndjson(objects))
    assert result["success"] is True and result.get("errors", []) == []
    assert result["successCount"] == len(objects)
    again = import_saved_objects(KibanaOptions(kibana_url), build_ndjson(objects))
    assert again["successCount"] == len(objects)  # overwrite: re-running bootstrap is safe
    for saved in objects:
        with urllib.request.urlopen(
            f"{kibana_url}/api/saved_objects/{saved.type}/{saved.id}", timeout=30
        ) as response:
            body = json.loads(response.read())
        assert body["id"] == saved.id and not body.get("error")
