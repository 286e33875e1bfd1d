"""The model registry as an Elasticsearch index (``authml-models-v2``): one document per model
version, ``_id`` = the version, and one pointer document, ``_id`` = ``current``, naming the version
the scorer uses.

A version document holds the fields worth querying (version, training window, counts, asset-lock
hash, evaluation figures), the whole ``metadata.json`` document under ``metadata`` (not indexed),
and the exact bytes of ``state.npz`` in base64 under ``state`` (a binary field: stored, never
indexed) with their SHA-256, checked on load. It is written with the create API, so a version is
never overwritten.

The pointer only moves forward (versions are UTC timestamps, so they sort by age) and only by a
conditional write: ``_create`` when there is none, else ``if_seq_no``/``if_primary_term`` of the
pointer as read. Two trainers racing to publish cannot lose an update: the loser's write is
refused with 409, it reads the pointer again, and moves it only if its own version is newer.

Builders are pure and return ``Request``s; ``ElasticsearchModelRegistry`` sends them.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authml.errors import InputError, NotReadyError, StoreError
from authml.es.apply import Request
from authml.train.registry import ModelArtifact

REGISTRY_INDEX = "authml-models-v2"
POINTER_ID = "current"
MODEL_DOC, POINTER_DOC = "model", "current"
# Elasticsearch refuses request bodies above http.max_content_length (100mb by default).
MAX_REQUEST_BYTES = 100 * 1024 * 1024
PUBLISH_ATTEMPTS = 20  # each refusal means another publisher moved the pointer


def _iso_now(now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _pick(source: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: source[name] for name in names if source.get(name) is not None}


def version_document(artifact: ModelArtifact) -> dict[str, Any]:
    """The registry document of one version."""
    metadata = artifact.metadata
    window = metadata.get("training_window") or {}
    document: dict[str, Any] = {
        "doc_type": MODEL_DOC,
        "version": artifact.version,
        **_pick(
            metadata,
            "trained_at",
            "authml_version",
            "engine",
            "time_zone",
            "trained_because",
            "feature_names",
            "asset_lock_sha256",
        ),
        "training_window": _pick(window, "start", "end"),
        "counts": _pick(metadata.get("counts") or {}, "events", "users", "user_days"),
        "evaluation": _pick(
            metadata.get("evaluation") or {}, "threshold_score", "training_alerts_per_user_day"
        ),
        "metadata": metadata,
        "state": base64.b64encode(artifact.state).decode("ascii"),
        "state_sha256": artifact.state_sha256,
        "state_bytes": len(artifact.state),
    }
    return document


def pointer_document(version: str, previous: str | None, now: datetime | None = None) -> dict[str, Any]:
    document = {"doc_type": POINTER_DOC, "current_version": version, "updated_at": _iso_now(now)}
    if previous is not None:
        document["previous_version"] = previous
    return document


def create_version_request(artifact: ModelArtifact, index: str = REGISTRY_INDEX) -> Request:
    """Create the version's document; 409 when that version is already there."""
    return Request(
        "PUT",
        f"/{index}/_create/{artifact.version}",
        version_document(artifact),
        params={"refresh": "wait_for"},
    )


def get_request(doc_id: str, index: str = REGISTRY_INDEX, *, fields: tuple[str, ...] = ()) -> Request:
    params = {"_source_includes": ",".join(fields)} if fields else {}
    return Request("GET", f"/{index}/_doc/{doc_id}", params=params, tolerate=(404,))


def set_pointer_request(
    version: str,
    *,
    previous: str | None,
    seq_no: int | None,
    primary_term: int | None,
    index: str = REGISTRY_INDEX,
    now: datetime | None = None,
) -> Request:
    """Point ``current`` at ``version``: created when there is no pointer (``seq_no`` None), else
    replaced only if it is still the pointer that was read."""
    body = pointer_document(version, previous, now)
    if seq_no is None:
        return Request("PUT", f"/{index}/_create/{POINTER_ID}", body, params={"refresh": "wait_for"})
    if primary_term is None:
        raise ValueError("a conditional pointer update needs both seq_no and primary_term")
    return Request(
        "PUT",
        f"/{index}/_doc/{POINTER_ID}",
        body,
        params={"if_seq_no": str(seq_no), "if_primary_term": str(primary_term), "refresh": "wait_for"},
    )


def list_versions_request(index: str = REGISTRY_INDEX, size: int = 100) -> Request:
    """The newest versions without their state, for listing."""
    body = {
        "size": size,
        "query": {"term": {"doc_type": MODEL_DOC}},
        "sort": [{"version": "desc"}],
        "_source": {"excludes": ["state", "metadata"]},
    }
    return Request("POST", f"/{index}/_search", body)


@dataclass(frozen=True, slots=True)
class Pointer:
    version: str
    seq_no: int
    primary_term: int


def pointer_from_response(response: dict[str, Any] | None) -> Pointer | None:
    """The pointer in a GET response (None when not found)."""
    if not response or not response.get("found"):
        return None
    source = response.get("_source") or {}
    version = source.get("current_version")
    if not isinstance(version, str):
        raise StoreError(f"the registry pointer {response.get('_index')}/{POINTER_ID} names no version")
    return Pointer(version, int(response["_seq_no"]), int(response["_primary_term"]))


def artifact_from_response(response: dict[str, Any], index: str = REGISTRY_INDEX) -> ModelArtifact:
    """The artifact in a GET response of a version document, its state checked against its SHA-256."""
    source = response.get("_source") or {}
    where = f"{response.get('_index', index)}/{response.get('_id')}"
    try:
        state = base64.b64decode(source["state"], validate=True)
        metadata = source["metadata"]
        expected = source["state_sha256"]
    except (KeyError, TypeError, binascii.Error) as exc:
        raise StoreError(f"the registry document {where} has no readable state ({exc})") from exc
    artifact = ModelArtifact(source.get("version") or metadata.get("version"), metadata, state)
    if artifact.state_sha256 != expected:
        raise StoreError(
            f"the state of {where} does not match its state_sha256 (truncated or altered); "
            "run `authml train --engine elasticsearch --force` to publish a new version"
        )
    return artifact


def check_size(artifact: ModelArtifact, limit: int = MAX_REQUEST_BYTES) -> None:
    """Refuse a version whose request would exceed Elasticsearch's http.max_content_length."""
    encoded = 4 * ((len(artifact.state) + 2) // 3)
    if encoded + len(json.dumps(artifact.metadata)) > limit:
        raise InputError(
            f"model {artifact.version} would be a {encoded / 2**20:.0f} MiB registry document, above "
            f"Elasticsearch's request limit ({limit / 2**20:.0f} MiB, http.max_content_length); raise "
            "that setting or keep this model in the directory registry only (--registry directory)"
        )


# Sending ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishResult:
    index: str
    version: str
    created: bool  # False: the version was already in the registry
    current: str  # the version the pointer names afterwards


def _body(response: Any) -> Any:
    return getattr(response, "body", response)


class ElasticsearchModelRegistry:
    """The registry index of one cluster; ``client`` is an ``elasticsearch.Elasticsearch``.
    Errors are the client's (wrap calls in ``authml.es.client.cluster_errors``)."""

    def __init__(self, client: Any, index: str = REGISTRY_INDEX):
        self.client = client
        self.index = index

    def _get(self, doc_id: str, fields: tuple[str, ...] = ()) -> dict[str, Any] | None:
        from elasticsearch import NotFoundError

        try:
            return _body(get_request(doc_id, self.index, fields=fields).send(self.client))
        except NotFoundError as exc:
            if _is_missing_index(exc):
                raise NotReadyError(
                    f"the registry index {self.index} does not exist; run `authml assets apply`"
                ) from None
            return None

    def pointer(self) -> Pointer | None:
        return pointer_from_response(self._get(POINTER_ID))

    def publish(self, artifact: ModelArtifact) -> PublishResult:
        """Store the version unless it is there already (same state), then move the pointer to
        it unless the pointer already names a version at least as new."""
        from elasticsearch import ConflictError

        check_size(artifact)
        pointer = self.pointer()
        if pointer is not None and pointer.version == artifact.version:
            self._check_same_state(artifact)  # the usual case of a reused model: nothing to send
            return PublishResult(self.index, artifact.version, False, artifact.version)
        created = True
        try:
            create_version_request(artifact, self.index).send(self.client)
        except ConflictError:
            created = False
            self._check_same_state(artifact)
        for _ in range(PUBLISH_ATTEMPTS):
            pointer = self.pointer()
            if pointer is not None and pointer.version >= artifact.version:
                return PublishResult(self.index, artifact.version, created, pointer.version)
            request = set_pointer_request(
                artifact.version,
                previous=pointer.version if pointer else None,
                seq_no=pointer.seq_no if pointer else None,
                primary_term=pointer.primary_term if pointer else None,
                index=self.index,
            )
            try:
                request.send(self.client)
            except ConflictError:
                continue  # another trainer moved the pointer since it was read: read it again
            return PublishResult(self.index, artifact.version, created, artifact.version)
        raise StoreError(
            f"the registry pointer {self.index}/{POINTER_ID} changed {PUBLISH_ATTEMPTS} times while "
            f"publishing {artifact.version}; run `authml train --engine elasticsearch` again"
        )

    def _check_same_state(self, artifact: ModelArtifact) -> None:
        stored = (self._get(artifact.version, fields=("state_sha256",)) or {}).get("_source") or {}
        if stored.get("state_sha256") != artifact.state_sha256:
            raise StoreError(
                f"{self.index} already holds a different model {artifact.version}; "
                "run `authml train --force` for a new version"
            )

    def load(self, version: str | None = None) -> ModelArtifact:
        """A version (default: the one the pointer names), its state verified."""
        if version is None:
            pointer = self.pointer()
            if pointer is None:
                raise NotReadyError(
                    f"the registry index {self.index} names no current model; "
                    "run `authml train --engine elasticsearch` first"
                )
            version = pointer.version
        response = self._get(version)
        if response is None:
            raise StoreError(
                f"the registry index {self.index} has no model {version}; "
                "run `authml train --engine elasticsearch --force`"
            )
        return artifact_from_response(response, self.index)


def _is_missing_index(exc: Any) -> bool:
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and error.get("type") == "index_not_found_exception"


def pull_current(registry: ElasticsearchModelRegistry, project_dir: Any) -> ModelArtifact | None:
    """The version the index's pointer names, also kept in the project's model directory (made
    current there unless a newer local version is); None when the index names no model yet."""
    from authml.train.registry import adopt_artifact

    pointer = registry.pointer()
    if pointer is None:
        return None
    artifact = registry.load(pointer.version)
    adopt_artifact(project_dir, artifact)
    return artifact
