"""The Elasticsearch ingest sink against a scripted bulk API: ids, duplicates, retries, dead letters."""

from __future__ import annotations

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError

from authml.embedded.store import DeadLetter, StoredEvent
from authml.es.sink import ElasticsearchSink, backoff_seconds, bulk_operations


def _event(n: int) -> StoredEvent:
    return StoredEvent(f"id-{n}", {"user": {"name": f"u{n}"}}, (), "f.ndjson", f"line {n}")


def _item(status: int, error_type: str | None = None) -> dict:
    result = {"_id": "x", "status": status}
    if error_type:
        result["error"] = {"type": error_type, "reason": f"{error_type} happened"}
    return {"create": result}


def _api_error(status: int) -> ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "localhost", 9200))
    return ApiError("boom", meta=meta, body={"error": {"type": "x", "reason": "y"}})


class ScriptedClient:
    """Answers each bulk call with the next scripted response (a list of items or an exception)."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.calls: list[list[dict]] = []

    def bulk(self, operations, **params):
        self.calls.append(operations)
        answer = self.responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return {"errors": True, "items": answer}


def test_bulk_body_creates_each_event_under_its_deterministic_id():
    operations = bulk_operations([_event(1), _event(2)], "authml-events-default")
    assert operations == [
        {"create": {"_index": "authml-events-default", "_id": "id-1"}},
        {"user": {"name": "u1"}},
        {"create": {"_index": "authml-events-default", "_id": "id-2"}},
        {"user": {"name": "u2"}},
    ]


def test_stored_duplicates_and_rejections_are_all_accounted_for():
    client = ScriptedClient(
        [_item(201), _item(409, "version_conflict_engine_exception"), _item(400, "mapper_parsing_exception")]
    )
    outcome = ElasticsearchSink(client, sleep=lambda s: None).write_batch(
        [_event(1), _event(2), _event(3)], []
    )
    assert (outcome.stored, outcome.duplicates) == (1, 1)
    assert outcome.failed == [
        DeadLetter(
            "f.ndjson",
            "line 3",
            "HTTP 400: mapper_parsing_exception: mapper_parsing_exception happened",
            '{"user":{"name":"u3"}}',
        )
    ]


def test_items_rejected_with_429_are_retried_alone_with_backoff():
    sleeps: list[float] = []
    client = ScriptedClient(
        [_item(201), _item(429, "es_rejected_execution_exception"), _item(503, "unavailable")],
        [_item(201), _item(201)],
    )
    outcome = ElasticsearchSink(client, backoff_base_s=0.5, sleep=sleeps.append).write_batch(
        [_event(1), _event(2), _event(3)], []
    )
    assert (outcome.stored, outcome.duplicates, outcome.failed) == (3, 0, [])
    assert [op["create"]["_id"] for op in client.calls[1] if "create" in op] == ["id-2", "id-3"]
    assert sleeps == [0.5]


def test_persistent_429_ends_as_a_dead_letter_with_the_reason():
    client = ScriptedClient(*[[_item(429, "es_rejected_execution_exception")]] * 3)
    outcome = ElasticsearchSink(client, max_retries=2, sleep=lambda s: None).write_batch([_event(1)], [])
    assert outcome.stored == 0 and len(outcome.failed) == 1
    assert "still refused it after 2 retries" in outcome.failed[0].reason
    assert len(client.calls) == 3


def test_whole_request_5xx_is_retried_then_succeeds():
    client = ScriptedClient(_api_error(503), [_item(201)])
    outcome = ElasticsearchSink(client, sleep=lambda s: None).write_batch([_event(1)], [])
    assert outcome.stored == 1 and len(client.calls) == 2


def test_whole_request_failure_after_retries_raises_and_counts_nothing():
    client = ScriptedClient(_api_error(503), _api_error(503))
    with pytest.raises(ApiError):
        ElasticsearchSink(client, max_retries=1, sleep=lambda s: None).write_batch([_event(1)], [])


def test_a_4xx_request_error_is_not_retried():
    client = ScriptedClient(_api_error(400))
    with pytest.raises(ApiError):
        ElasticsearchSink(client, sleep=lambda s: None).write_batch([_event(1)], [])
    assert len(client.calls) == 1


def test_backoff_doubles_up_to_a_cap():
    assert [backoff_seconds(n, 0.5, cap_s=3) for n in range(5)] == [0.5, 1.0, 2.0, 3, 3]


def test_a_batch_of_several_files_is_one_request_answered_per_file():
    def event(n: int, file: str) -> StoredEvent:
        return StoredEvent(f"id-{n}", {"user": {"name": f"u{n}"}}, (), file, f"line {n}")

    client = ScriptedClient(
        [_item(201), _item(429), _item(409, "version_conflict_engine_exception"), _item(400, "x")],
        [_item(201)],  # the 429 again, alone
    )
    events = [event(1, "a.evtx"), event(2, "a.evtx"), event(3, "b.evtx"), event(4, "b.evtx")]
    outcomes = ElasticsearchSink(client, sleep=lambda s: None).write_batch_by_file(events, [])
    assert len(client.calls) == 2 and len(client.calls[0]) == 8
    assert {f: (o.stored, o.duplicates, len(o.failed)) for f, o in outcomes.items()} == {
        "a.evtx": (2, 0, 0),
        "b.evtx": (0, 1, 1),
    }
    assert outcomes["b.evtx"].failed[0].position == "line 4"
