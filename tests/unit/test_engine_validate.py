"""validate_transform: the rejections Elasticsearch gives, as Findings with file and JSON path."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from authml.engine.timeunits import TimeValueError, fixed_interval_ms, resolve_date_math
from authml.engine.validate import validate_transform

BASE = {
    "source": {"index": ["logs-*"], "query": {"term": {"event.code": "4624"}}},
    "dest": {"index": "features"},
    "sync": {"time": {"field": "event.ingested", "delay": "60s"}},
    "pivot": {
        "group_by": {"user.name": {"terms": {"field": "user.name"}}},
        "aggregations": {"events": {"value_count": {"field": "event.code"}}},
    },
}


def _with(path: list, value):
    body = copy.deepcopy(BASE)
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


def _rules(body, **kwargs):
    return {(f.json_path, f.rule) for f in validate_transform(body, "t.yml", **kwargs)}


def test_valid_body_has_no_findings():
    assert validate_transform(BASE, "t.yml", transform_id="authml-x") == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["pivot", "group_by", "user.name"], {"terms": {"field": "user.name", "order": "asc"}},
         ("$.pivot.group_by['user.name'].terms.order", "transform.group_by.unknown_parameter")),
        (["pivot", "group_by", "user.name"], {"terms": {"missing_bucket": True}},
         ("$.pivot.group_by['user.name'].terms", "transform.group_by.no_field")),
        (["pivot", "group_by", "t"], {"date_histogram": {"field": "@timestamp", "interval": "1h"}},
         ("$.pivot.group_by.t.date_histogram.interval", "transform.group_by.unknown_parameter")),
        (["pivot", "group_by", "t"], {"date_histogram": {"field": "@timestamp", "calendar_interval": "3h"}},
         ("$.pivot.group_by.t.date_histogram.calendar_interval", "transform.group_by.calendar_interval")),
        (["pivot", "group_by", "t"], {"date_histogram": {"field": "@timestamp", "fixed_interval": "1M"}},
         ("$.pivot.group_by.t.date_histogram.fixed_interval", "transform.time_value")),
        (["pivot", "group_by", "g"], {"geohash_grid": {"field": "loc"}},
         ("$.pivot.group_by.g.geohash_grid", "transform.group_by.unknown_type")),
        (["pivot", "aggregations", "x"], {"top_hits": {"size": 1}},
         ("$.pivot.aggregations.x.top_hits", "transform.aggs.unsupported")),
        (["pivot", "aggregations", "f"], {"filter": {"match_all": {}}, "aggs": {"r": {"rate": {"unit": "day"}}}},
         ("$.pivot.aggregations.f.aggs.r.rate", "transform.aggs.unsupported")),
        (["pivot", "aggregations", "user"], {"max": {"field": "n"}},
         ("$.pivot.group_by['user.name']", "transform.names.object_and_field")),
        (["pivot", "aggregations", "user.name"], {"max": {"field": "n"}},
         ("$.pivot.aggregations['user.name']", "transform.names.duplicate")),
        (["source", "query"], {"match": {"message": "failed"}},
         ("$.source.query.match", "transform.engine.query_unsupported")),
        (["source", "query"], {"bool": {"filter": [{"wildcard": {"user.name": "a*"}}]}},
         ("$.source.query.bool.filter[0].wildcard", "transform.engine.query_unsupported")),
        (["dest", "index"], "logs-features", ("$.dest.index", "transform.dest.in_source")),
        (["settings"], {"max_page_search_size": 5}, ("$.settings.max_page_search_size", "transform.settings.page_size")),
        (["frequency"], "2h", ("$.frequency", "transform.frequency")),
        (["sync"], {"time": {"delay": "60s"}}, ("$.sync", "transform.sync")),
    ],
)  # fmt: skip
def test_rejections(path, value, expected):
    assert expected in _rules(_with(path, value))


def test_both_aggs_spellings_and_pivot_with_latest():
    body = copy.deepcopy(BASE)
    body["pivot"]["aggs"] = {"n": {"value_count": {"field": "x"}}}
    body["latest"] = {"unique_key": ["user.name"], "sort": "@timestamp"}
    rules = _rules(body)
    assert ("$.pivot", "transform.pivot.aggs_twice") in rules
    assert ("$", "transform.function") in rules


def test_transform_id_and_preview_dest():
    assert ("$", "transform.id") in _rules(BASE, transform_id="Bad_ID")
    body = copy.deepcopy(BASE)
    del body["dest"]
    assert ("$.dest", "transform.dest") in _rules(body)
    assert _rules(body, for_preview=True) == set()


def test_finding_names_file_and_path():
    (finding,) = validate_transform(_with(["frequency"], "2h"), "es_assets/transforms/x.yml")
    assert str(finding).startswith("es_assets/transforms/x.yml: $.frequency: ")


NOW = datetime(2017, 2, 20, 15, 30, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "round_up", "expected"),
    [
        ("now", False, "2017-02-20T15:30:10"),
        ("now-1d/d", False, "2017-02-19T00:00:00"),
        ("now-1d/d", True, "2017-02-19T23:59:59.999000"),
        ("now/M", False, "2017-02-01T00:00:00"),
        ("now+1M/M", True, "2017-03-31T23:59:59.999000"),
        ("now/w", False, "2017-02-20T00:00:00"),
        ("2017-01-31||+1M", False, "2017-02-28T00:00:00"),
        ("2017-02-18T10:15:00Z||/h", False, "2017-02-18T10:00:00"),
        (1487376000000, False, "2017-02-18T00:00:00"),
    ],
)
def test_date_math(expression, round_up, expected):
    assert resolve_date_math(expression, NOW, round_up=round_up).replace(tzinfo=None).isoformat() == expected


def test_intervals():
    assert fixed_interval_ms("90m") == 5_400_000
    with pytest.raises(TimeValueError):
        fixed_interval_ms("1w")
    with pytest.raises(TimeValueError):
        resolve_date_math("now-1x", NOW, round_up=False)
