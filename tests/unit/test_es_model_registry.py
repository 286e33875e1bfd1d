"""The model registry index without a cluster: documents and requests (checked against the index
template's strict mapping and the API specification), the round trip from a saved version to a
response-shaped document and back to identical scores, and the pointer's conditional moves
against an in-memory stand-in for the document APIs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import numpy as np
import pytest

from authml.assets import load_asset
from authml.assets.rules import mapped_types
from authml.detect.combined import CombinedDetector
from authml.embedded.feature_reader import EmbeddedFeatureReader
from authml.errors import InputError, NotReadyError, StoreError
from authml.es.model_registry import (
    POINTER_ID,
    REGISTRY_INDEX,
    ElasticsearchModelRegistry,
    artifact_from_response,
    check_size,
    create_version_request,
    get_request,
    list_versions_request,
    pointer_document,
    pointer_from_response,
    pull_current,
    set_pointer_request,
    version_document,
)
from authml.train.feature_sql import FeatureWindow
from authml.train.registry import (
    ModelArtifact,
    adopt_artifact,
    current_version,
    detector_from_artifact,
    load_model,
    models_dir,
    read_artifact,
    save_model,
)
from tests.unit.es_fake_cluster import DocumentStore, get_response
from tests.unit.spec_requests import load_spec_or_skip, request_problems
from tests.unit.train_store import benign_history, build_feature_tables, write_events


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A small fitted detector, its saved version directory, and a frame to score."""
    store = write_events(tmp_path_factory.mktemp("registry") / "events", benign_history(8, 10, seed=2))
    build_feature_tables(store)
    with EmbeddedFeatureReader(store) as reader:
        frame = reader.read_events(FeatureWindow())
    detector = CombinedDetector(
        autoencoder={"epochs": 1, "device": "cpu"}, clusters={"k_candidates": (2, 3)}
    ).fit(frame)
    project = tmp_path_factory.mktemp("registry") / "project"
    metadata = {
        "trained_at": "2024-03-14T10:00:00+00:00",
        "training_window": {
            "start": "2024-03-04T08:00:00",
            "end": "2024-03-13T18:00:00",
            "requested_end": None,
        },
        "counts": {"events": len(frame), "users": 8, "user_days": 64.0, "by_event_code": {"4624": 10}},
        "evaluation": {"threshold_score": 49.5, "training_alerts_per_user_day": 0.02},
        "asset_lock_sha256": "ab" * 32,
        "feature_names": list(frame.feature_names),
        "time_zone": "UTC",
        "engine": "embedded",
        "trained_because": "no model yet",
    }
    version = save_model(project, detector, metadata, version="20240314T100000000000Z")
    return project, version, frame


def test_round_trip_through_the_index_document_gives_identical_scores(fitted):
    project, version, frame = fitted
    saved = read_artifact(project, version)
    assert saved.state == (models_dir(project) / version / "state.npz").read_bytes()
    request = create_version_request(saved)
    assert (request.method, request.path) == ("PUT", f"/{REGISTRY_INDEX}/_create/{version}")
    assert base64.b64decode(request.body["state"]) == saved.state, "the same npz bytes as the directory"

    loaded = artifact_from_response(get_response(request.body, version))
    assert loaded == saved
    from_index = detector_from_artifact(loaded, "test")
    from_directory, _ = load_model(project, version)
    np.testing.assert_array_equal(from_index.score(frame), from_directory.score(frame))
    np.testing.assert_array_equal(from_index.explain(frame), from_directory.explain(frame))


def test_a_damaged_state_is_refused(fitted):
    project, version, _ = fitted
    body = version_document(read_artifact(project, version))
    state = bytearray(base64.b64decode(body["state"]))
    state[len(state) // 2] ^= 0xFF
    body["state"] = base64.b64encode(bytes(state)).decode()
    with pytest.raises(StoreError, match="does not match its state_sha256"):
        artifact_from_response(get_response(body, version))
    body["state"] = "not base64!"
    with pytest.raises(StoreError, match="no readable state"):
        artifact_from_response(get_response(body, version))


def test_queryable_fields_come_from_the_metadata(fitted):
    project, version, _ = fitted
    document = version_document(read_artifact(project, version))
    assert document["doc_type"] == "model" and document["version"] == version
    assert document["training_window"] == {"start": "2024-03-04T08:00:00", "end": "2024-03-13T18:00:00"}
    assert document["counts"] == {
        "events": document["metadata"]["counts"]["events"],
        "users": 8,
        "user_days": 64.0,
    }
    assert document["evaluation"] == {"threshold_score": 49.5, "training_alerts_per_user_day": 0.02}
    assert document["asset_lock_sha256"] == "ab" * 32
    assert document["state_bytes"] == len(read_artifact(project, version).state)
    assert document["metadata"] == read_artifact(project, version).metadata


def _leaves(document: dict, prefix: str = ""):
    for key, value in document.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


TYPE_CHECKS = {
    "keyword": lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "date": lambda v: isinstance(v, str) and datetime.fromisoformat(v.replace("Z", "+00:00")) is not None,
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "binary": lambda v: isinstance(v, str) and base64.b64decode(v, validate=True) is not None,
}


@pytest.mark.parametrize("kind", ["version", "pointer"])
def test_documents_fit_the_strict_mapping_of_the_template(fitted, kind):
    project, version, _ = fitted
    template = load_asset("index_templates", "authml-models")
    mappings = template["template"]["mappings"]
    assert mappings["dynamic"] == "strict"
    types = dict(mapped_types(mappings["properties"]))
    if kind == "version":
        document = version_document(read_artifact(project, version))
    else:
        document = pointer_document(version, "20240101T000000000000Z", datetime(2024, 3, 14, tzinfo=UTC))
    unindexed = {name for name, mapping in mappings["properties"].items() if mapping.get("enabled") is False}
    for path, value in _leaves({k: v for k, v in document.items() if k not in unindexed}):
        assert path in types, f"{path} is not mapped: a strict index would refuse the document"
        assert TYPE_CHECKS[types[path]](value), f"{path}={value!r} does not fit {types[path]}"
    assert set(document) & unindexed <= {"metadata"}
    assert mappings["properties"]["state"] == {"type": "binary"}, "the state is never indexed"


def test_requests_match_the_specification(fitted):
    spec = load_spec_or_skip()
    project, version, _ = fitted
    artifact = read_artifact(project, version)
    requests = [
        create_version_request(artifact),
        get_request(POINTER_ID),
        get_request(version, fields=("state_sha256",)),
        set_pointer_request(version, previous=None, seq_no=None, primary_term=None),
        set_pointer_request(version, previous="20240101T000000000000Z", seq_no=7, primary_term=2),
        list_versions_request(),
    ]
    assert [p for r in requests for p in request_problems(spec, r)] == []
    conditional = requests[4]
    assert conditional.params["if_seq_no"] == "7" and conditional.params["if_primary_term"] == "2"
    assert requests[3].path.endswith(f"/_create/{POINTER_ID}"), (
        "the first pointer is created, never overwritten"
    )
    wrong = set_pointer_request(version, previous=None, seq_no=1, primary_term=1)
    bad = type(wrong)(wrong.method, wrong.path, wrong.body, {**wrong.params, "if_seqno": "1"})
    assert any("if_seqno" in p for p in request_problems(spec, bad)), "the checker can fail"


def test_a_model_above_the_request_limit_is_refused_with_a_reason():
    artifact = ModelArtifact("v1", {"version": "v1"}, b"x" * 3000)
    check_size(artifact, limit=5000)
    with pytest.raises(InputError, match="http.max_content_length"):
        check_size(artifact, limit=3000)


def _artifact(version: str, state: bytes = b"npz") -> ModelArtifact:
    return ModelArtifact(version, {"version": version, "time_zone": "UTC"}, state)


def test_publish_creates_the_version_and_the_first_pointer():
    cluster = DocumentStore()
    result = ElasticsearchModelRegistry(cluster).publish(_artifact("20240102T000000000000Z"))
    assert (result.created, result.current) == (True, "20240102T000000000000Z")
    assert cluster.current() == "20240102T000000000000Z"
    assert f"PUT /{REGISTRY_INDEX}/_create/{POINTER_ID}" in cluster.calls


def test_the_pointer_only_moves_forward_and_a_republish_is_idempotent():
    cluster = DocumentStore()
    registry = ElasticsearchModelRegistry(cluster)
    registry.publish(_artifact("20240105T000000000000Z"))
    older = registry.publish(_artifact("20240101T000000000000Z"))
    assert (older.created, older.current) == (True, "20240105T000000000000Z")
    writes = sum(call.startswith("PUT") for call in cluster.calls)
    again = registry.publish(_artifact("20240105T000000000000Z"))
    assert (again.created, again.current) == (False, "20240105T000000000000Z")
    assert sum(call.startswith("PUT") for call in cluster.calls) == writes, "a reused model sends nothing"
    with pytest.raises(StoreError, match="different model"):
        registry.publish(_artifact("20240105T000000000000Z", state=b"other"))
    newer = registry.publish(_artifact("20240107T000000000000Z"))
    assert newer.current == cluster.current() == "20240107T000000000000Z"
    assert cluster.docs[POINTER_ID][1]["previous_version"] == "20240105T000000000000Z"
    with pytest.raises(StoreError, match="different model"):
        registry.publish(_artifact("20240107T000000000000Z", state=b"other"))


def test_a_rival_trainer_moving_the_pointer_first_is_not_overwritten():
    cluster = DocumentStore()
    registry = ElasticsearchModelRegistry(cluster)
    registry.publish(_artifact("20240101T000000000000Z"))

    def rival_publishes_first(path: str) -> None:
        if path.endswith(f"/_doc/{POINTER_ID}") and cluster.current() == "20240101T000000000000Z":
            cluster.put("20240109T000000000000Z", version_document(_artifact("20240109T000000000000Z")))
            cluster.put(POINTER_ID, pointer_document("20240109T000000000000Z", "20240101T000000000000Z"))

    cluster.before_write = rival_publishes_first
    result = registry.publish(_artifact("20240105T000000000000Z"))
    assert result.current == cluster.current() == "20240109T000000000000Z", "the newer rival version stays"
    assert result.created, "our version is kept in the registry, just not current"

    rival_writes = []

    def rival_rewrites_the_pointer_once(path: str) -> None:
        if path.endswith(f"/_doc/{POINTER_ID}") and not rival_writes:
            rival_writes.append(path)
            cluster.put(POINTER_ID, pointer_document("20240109T000000000000Z", None))  # seq_no moves on

    cluster.before_write = rival_rewrites_the_pointer_once
    result = registry.publish(_artifact("20240111T000000000000Z"))
    assert result.current == cluster.current() == "20240111T000000000000Z", "retried after the conflict"
    assert rival_writes, "the conflict happened"


def test_loading_names_what_is_missing():
    with pytest.raises(NotReadyError, match="does not exist; run `authml assets apply`"):
        ElasticsearchModelRegistry(DocumentStore(exists=False)).load()
    with pytest.raises(NotReadyError, match="names no current model"):
        ElasticsearchModelRegistry(DocumentStore()).load()
    cluster = DocumentStore()
    cluster.put(POINTER_ID, pointer_document("20240101T000000000000Z", None))
    with pytest.raises(StoreError, match="has no model 20240101T000000000000Z"):
        ElasticsearchModelRegistry(cluster).load()
    assert pointer_from_response({"found": False}) is None


def test_pull_current_keeps_the_index_version_in_the_directory(fitted, tmp_path):
    project, version, frame = fitted
    artifact = read_artifact(project, version)
    cluster = DocumentStore()
    registry = ElasticsearchModelRegistry(cluster)
    registry.publish(artifact)
    elsewhere = tmp_path / "scorer"
    assert pull_current(registry, elsewhere) == artifact
    assert current_version(elsewhere) == version
    assert read_artifact(elsewhere, version) == artifact
    adopted, _ = load_model(elsewhere)
    np.testing.assert_array_equal(adopted.score(frame), detector_from_artifact(artifact, "t").score(frame))
    # An older index version never replaces a newer local current one.
    older = ModelArtifact(
        "20200101T000000000000Z", {**artifact.metadata, "version": "20200101T000000000000Z"}, artifact.state
    )
    assert adopt_artifact(elsewhere, older) is False
    assert current_version(elsewhere) == version
    assert pull_current(ElasticsearchModelRegistry(DocumentStore()), tmp_path / "none") is None


def test_the_registry_index_is_the_newest_declared_one():
    from authml.assets.catalogue import load_catalogue
    from authml.assets.rules import template_for_index

    catalogue = load_catalogue()
    declared = [a.name for a in catalogue if a.kind == "indices" and a.name.startswith("authml-models-v")]
    assert max(declared, key=lambda name: int(name.rsplit("-v", 1)[1])) == REGISTRY_INDEX
    assert template_for_index(REGISTRY_INDEX, catalogue).name == "authml-models"


def test_the_documented_listing_query_is_the_builders():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "elasticsearch.md").read_text(encoding="utf-8")
    block = page.split(f"GET {REGISTRY_INDEX}/_search\n", 1)[1].split("```", 1)[0]
    body = list_versions_request().body
    assert json.loads(block) == {k: v for k, v in body.items() if k != "size"}
