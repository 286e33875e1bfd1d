"""`authml ingest --es` against a real cluster: the same accounting and ids as the embedded path."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from authml.cli import cli
from tests.helpers import auth_event, write_ndjson

pytestmark = pytest.mark.integration

INDEX = "authml-events-default"


def ingest_es(tmp_path, es_options, source):
    env = {
        "AUTHML_ES_URL": es_options.url,
        "AUTHML_ES_USERNAME": es_options.username,
        "AUTHML_ES_PASSWORD": es_options.password.reveal(),
    }
    result = CliRunner().invoke(
        cli, ["--project-dir", str(tmp_path / "p"), "ingest", "--es", "--json", str(source)], env=env
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["total"]


def test_resending_a_file_stores_nothing_twice_and_bad_lines_are_dead_lettered(tmp_path, applied, es_options):
    events = [auth_event(i, user=f"user{i % 7}") for i in range(1, 201)]
    source = write_ndjson(tmp_path / "events.ndjson", [*events, "not json"])
    first = ingest_es(tmp_path, es_options, source)
    assert (first["read"], first["stored"], first["duplicates"], first["dead_lettered"]) == (201, 200, 0, 1)
    second = ingest_es(tmp_path, es_options, source)
    assert (second["stored"], second["duplicates"], second["dead_lettered"]) == (0, 200, 1)

    applied.indices.refresh(index=INDEX)
    hits = applied.search(index=INDEX, query={"term": {"winlog.record_id": "17"}})["hits"]["hits"]
    assert len(hits) == 1
    # The pipeline computed the same id the client sent as _id.
    assert hits[0]["_source"]["authml"]["event_id"] == hits[0]["_id"]
    assert hits[0]["_source"]["authml"]["user_key"] == "corp\\user3"
