"""Test helper: an in-memory stand-in for the part of Elasticsearch that `authml score --engine
elasticsearch` and the feature reader use: point-in-time searches (sliced) and plain searches
that evaluate the filters authml sends (terms, exists, range on dates), min/max and composite
``terms`` aggregations (exact counts, ``missing_bucket``, ``after`` paging), a sort on one field,
transform stats, and the registry index's document APIs (through ``DocumentStore``). It is a
test double, not Elasticsearch: the integration tier runs the same flows against a real cluster.
Known simplifications: composite keys are ordered as strings (an ip field sorts by its bytes in
Elasticsearch), and dates keep the precision of the document (the cluster keeps milliseconds)."""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ConflictError, NotFoundError

from authml.ecs import get_path
from authml.es.feature_reader import FEATURE_INDEX_FIELDS
from authml.es.model_registry import POINTER_ID, REGISTRY_INDEX


def get_response(document: dict, doc_id: str, seq_no: int = 0) -> dict:
    """What GET /<index>/_doc/<id> answers for a stored document."""
    return {
        "_index": REGISTRY_INDEX,
        "_id": doc_id,
        "_seq_no": seq_no,
        "_primary_term": 1,
        "found": True,
        "_source": copy.deepcopy(document),
    }


def _error(kind, status: int, error_type: str):
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "localhost", 9200))
    return kind(error_type, meta=meta, body={"error": {"type": error_type, "reason": error_type}})


class DocumentStore:
    """GET, create and conditional index of one index's documents, with sequence numbers.
    ``before_write`` runs before each write (to let a rival trainer move the pointer)."""

    def __init__(self, index: str = REGISTRY_INDEX, exists: bool = True):
        self.index = index
        self.exists = exists
        self.docs: dict[str, tuple[int, dict]] = {}
        self.seq_no = 0
        self.calls: list[str] = []
        self.before_write = lambda path: None

    def put(self, doc_id: str, document: dict) -> None:
        self.seq_no += 1
        self.docs[doc_id] = (self.seq_no, copy.deepcopy(document))

    def perform_request(self, method, path, params=None, headers=None, body=None):
        params = params or {}
        self.calls.append(f"{method} {path}")
        if not self.exists:
            raise _error(NotFoundError, 404, "index_not_found_exception")
        _, index, api, doc_id = path.split("/")
        assert index == self.index
        if method == "GET":
            if doc_id not in self.docs:  # Elasticsearch answers 404 with {"found": false}
                meta = ApiResponseMeta(404, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "localhost", 9200))
                raise NotFoundError(
                    "not found", meta=meta, body={"_index": index, "_id": doc_id, "found": False}
                )
            seq_no, document = self.docs[doc_id]
            if "_source_includes" in params:
                wanted = params["_source_includes"].split(",")
                document = {k: v for k, v in document.items() if k in wanted}
            return get_response(document, doc_id, seq_no)
        self.before_write(path)
        created_twice = api == "_create" and doc_id in self.docs
        stale = "if_seq_no" in params and self.docs.get(doc_id, (None,))[0] != int(params["if_seq_no"])
        if created_twice or stale:
            raise _error(ConflictError, 409, "version_conflict_engine_exception")
        self.put(doc_id, body)
        return {"result": "created"}

    def current(self) -> str | None:
        pointer = self.docs.get(POINTER_ID)
        return pointer[1]["current_version"] if pointer else None


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None)
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def matches(source: dict[str, Any], query: dict[str, Any] | None) -> bool:
    if query is None:
        return True
    for clause in query["bool"]["filter"]:
        ((kind, spec),) = clause.items()
        if kind == "exists":
            if get_path(source, spec["field"]) is None:
                return False
            continue
        ((field, condition),) = spec.items()
        value = get_path(source, field)
        if kind == "terms":
            if value is None or str(value) not in condition:
                return False
        elif kind == "range":
            moment = _moment(value)
            if moment is None:
                return False
            bounds = {op: _moment(limit) for op, limit in condition.items()}
            if ("gte" in bounds and moment < bounds["gte"]) or ("lt" in bounds and moment >= bounds["lt"]):
                return False
        else:
            raise AssertionError(f"the fake cluster does not evaluate {kind} queries")
    return True


def _millis(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


def _values(source: dict[str, Any], field: str) -> list[Any]:
    """A field's values as an aggregation sees them: none when missing, each one of an array."""
    value = get_path(source, field)
    if value is None:
        return []
    return [str(v) for v in value if v is not None] if isinstance(value, list) else [str(value)]


def composite(sources_list: list[dict[str, Any]], spec: dict[str, Any]) -> dict[str, Any]:
    """A composite aggregation of ``terms`` sources over the matching documents' sources: one
    bucket per distinct key (a document with several values in a field counts once in each), in
    ascending key order with the missing bucket first, ``size`` buckets after ``after``."""
    names, fields, missing = [], [], []
    for entry in spec["sources"]:
        ((name, source),) = entry.items()
        ((kind, options),) = source.items()
        assert kind == "terms", f"the fake cluster does not build {kind} composite sources"
        names.append(name)
        fields.append(options["field"])
        missing.append(bool(options.get("missing_bucket", False)))
    counts: Counter[tuple] = Counter()
    for document in sources_list:
        per_field = []
        for field, keep_missing in zip(fields, missing, strict=True):
            values = _values(document, field) or ([None] if keep_missing else [])
            per_field.append(sorted(set(values), key=_order))
        for key in itertools.product(*per_field):
            counts[key] += 1
    ordered = sorted(counts, key=lambda key: tuple(_order(v) for v in key))
    if "after" in spec:
        after = tuple(_order(spec["after"][name]) for name in names)
        ordered = [key for key in ordered if tuple(_order(v) for v in key) > after]
    page = ordered[: spec.get("size", 10)]
    buckets = [{"key": dict(zip(names, key, strict=True)), "doc_count": counts[key]} for key in page]
    result: dict[str, Any] = {"buckets": buckets}
    if buckets:
        result["after_key"] = buckets[-1]["key"]
    return result


def _order(value: Any) -> tuple[int, str]:
    return (0, "") if value is None else (1, str(value))


class FakeCluster:
    def __init__(self, documents: dict[str, list[dict]], transforms: list[str], bound: datetime):
        self.documents = documents
        self.transforms = transforms
        self.bound = bound
        self.open_pits: dict[str, str] = {}
        self.registry = DocumentStore(REGISTRY_INDEX)
        self.requests: list[str] = []
        self.hits_served: Counter[str] = Counter()  # documents returned per index, as hits
        self.searches = 0

    # point in time
    def open_point_in_time(self, index, keep_alive, ignore_unavailable):
        pit_id = f"pit-{len(self.open_pits)}-{index}"
        self.open_pits[pit_id] = index
        return {"id": pit_id}

    def close_point_in_time(self, id):
        del self.open_pits[id]

    def search(self, pit, size, search_after=None, slice=None, query=None, **_):
        self.searches += 1
        index = self.open_pits[pit["id"]]
        docs = [
            d
            for position, d in enumerate(self.documents[index])
            if (slice is None or position % slice["max"] == slice["id"]) and matches(d["_source"], query)
        ]
        start = search_after[0] + 1 if search_after else 0
        page = docs[start : start + size]
        self.hits_served[index] += len(page)
        return {
            "pit_id": pit["id"],
            "hits": {"hits": [{**d, "sort": [start + i]} for i, d in enumerate(page)]},
        }

    # everything sent with perform_request
    def perform_request(self, method, path, params=None, headers=None, body=None):
        self.requests.append(f"{method} {path}")
        if path.startswith(f"/{REGISTRY_INDEX}/"):
            return self.registry.perform_request(method, path, params, headers, body)
        if path.startswith("/_transform/"):
            bound_ms = int(self.bound.replace(tzinfo=UTC).timestamp() * 1000)
            return {
                "transforms": [
                    {
                        "id": t,
                        "state": "started",
                        "checkpointing": {"last": {"checkpoint": 3, "time_upper_bound_millis": bound_ms}},
                    }
                    for t in self.transforms
                ]
            }
        index, api = path.strip("/").split("/")
        assert api == "_search" and method == "POST", path
        self.searches += 1
        hits = [d for d in self.documents.get(index, []) if matches(d["_source"], body.get("query"))]
        docs = [d["_source"] for d in hits]
        aggregations = {}
        for name, agg in body.get("aggs", {}).items():
            ((kind, spec),) = agg.items()
            if kind == "composite":
                aggregations[name] = composite(docs, spec)
                continue
            assert kind in ("min", "max") and spec["field"] == "@timestamp", agg
            times = [_moment(get_path(d, "@timestamp")) for d in docs]
            chosen = (min if kind == "min" else max)(times, default=None)
            aggregations[name] = {
                "value": None if chosen is None else chosen.replace(tzinfo=UTC).timestamp() * 1000
            }
        page = self._sorted_page(hits, body)
        self.hits_served[index] += len(page)
        return {
            "hits": {"total": {"value": len(docs), "relation": "eq"}, "hits": page},
            "aggregations": aggregations,
        }

    @staticmethod
    def _sorted_page(hits: list[dict], body: dict) -> list[dict]:
        """The first ``size`` hits (10 by default), sorted on one date field when asked, with the
        sort value in epoch milliseconds and ``_source`` limited to the fields asked for."""
        size = body.get("size", 10)
        if not size:
            return []
        sort_values: list[list] = [[] for _ in hits]
        for clause in body.get("sort", []):
            ((field, order),) = clause.items()
            keyed = [(_moment(get_path(h["_source"], field)), i) for i, h in enumerate(hits)]
            present = sorted((k for k in keyed if k[0] is not None), reverse=order == "desc")
            hits = [hits[i] for _, i in present] + [hits[i] for m, i in keyed if m is None]
            sort_values = [[_millis(m)] for m, _ in present] + [[None] for m, _ in keyed if m is None]
        wanted = body.get("_source")
        page = []
        for hit, sort in list(zip(hits, sort_values, strict=True))[:size]:
            source = hit["_source"]
            if isinstance(wanted, list):
                source = {f: get_path(source, f) for f in wanted if get_path(source, f) is not None}
            page.append({**hit, "_source": source, **({"sort": sort} if sort else {})})
        return page


def documents_from_store(store, events_index: str = "events") -> dict[str, list[dict]]:
    """The store's events and feature tables as the documents a cluster would hold."""
    connection = store.connection
    events = connection.execute("SELECT _id, document FROM events").fetchall()
    documents = {
        events_index: [{"_index": events_index, "_id": i, "_source": json.loads(doc)} for i, doc in events]
    }
    for index, fields in FEATURE_INDEX_FIELDS.items():
        names = ", ".join(f'"{f}"' for f in fields)
        docs = []
        for _id, *values in connection.execute(f'SELECT _id, {names} FROM "{index}"').fetchall():
            source = {}
            for field, value in zip(fields, values, strict=True):
                if isinstance(value, datetime):
                    value = (
                        int(value.replace(tzinfo=UTC).timestamp() * 1000)
                        if field == "@timestamp"
                        else value.isoformat() + "Z"
                    )
                elif isinstance(value, str) and value.startswith("{"):
                    value = json.loads(value)
                source[field] = value
            docs.append({"_index": index, "_id": _id, "_source": source})
        documents[index] = docs
    return documents
