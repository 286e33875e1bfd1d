"""Reading features from a cluster costs what the window costs: the request builders of
authml.es.window_reads (against the API specification), the composite aggregation of the
in-memory stand-in (tests/unit/es_fake_cluster.py), and the Elasticsearch reader returning exactly
the embedded reader's rows for windows that start mid-history, last one hour or are unbounded,
while fetching only the window's raw events (and the hour before it)."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import datetime, timedelta

import numpy as np
import pytest

from authml.embedded.feature_reader import EmbeddedFeatureReader
from authml.embedded.store import Store
from authml.es.apply import Request
from authml.es.feature_reader import (
    FEATURE_INDEX_FIELDS,
    ElasticsearchFeatureReader,
    events_query,
    search_body,
)
from authml.es.window_reads import (
    account_batches,
    earliest_hour_request,
    earliest_hour_to_add,
    feature_reads,
    prior_count_page,
    prior_counts_request,
)
from authml.train.feature_sql import (
    FEATURE_TABLES,
    SOURCE_IP_HOURLY,
    USER_HOURLY,
    FeatureWindow,
    authentication_event_codes,
)
from tests.unit.es_fake_cluster import FakeCluster, composite, documents_from_store
from tests.unit.score_project import build_project
from tests.unit.spec_requests import load_spec_or_skip, request_problems

pytestmark = pytest.mark.timeout(300)

EVENTS = "events"
WINDOW = FeatureWindow(start=datetime(2024, 3, 1, 8, 30), end=datetime(2024, 3, 1, 9, 30))


def test_requests_match_the_specification():
    spec = load_spec_or_skip()
    codes = authentication_event_codes()
    requests = [
        prior_counts_request(WINDOW, codes, ["alice", "bob"], "logs-*,authml-events-*"),
        prior_counts_request(WINDOW, codes, ["alice"], EVENTS, after={"user_name": "a", "source_ip": None}),
        earliest_hour_request(FEATURE_INDEX_FIELDS[USER_HOURLY]),
        Request("POST", "/_search", search_body("pit", query=events_query(WINDOW, codes), fields=("*",))),
    ]
    requests += [
        Request("POST", "/_search", search_body("pit", query=query, fields=FEATURE_INDEX_FIELDS[index]))
        for index, query in feature_reads(WINDOW, ["alice"], ["alice", "bob"])
    ]
    assert [p for r in requests for p in request_problems(spec, r)] == []


def test_prior_counts_cover_the_accounts_before_the_context_hour():
    request = prior_counts_request(WINDOW, ["4624"], ["alice"], EVENTS, after={"user_name": "a"}, size=7)
    assert request.path == "/events/_search"
    filters = request.body["query"]["bool"]["filter"]
    assert {"terms": {"user.name": ["alice"]}} in filters
    assert {"range": {"@timestamp": {"lt": "2024-03-01T07:30:00.000Z"}}} in filters
    agg = request.body["aggs"]["prior"]["composite"]
    assert agg["size"] == 7 and agg["after"] == {"user_name": "a"}
    assert agg["sources"][1] == {"source_ip": {"terms": {"field": "source.ip", "missing_bucket": True}}}
    assert request.body["size"] == 0
    with pytest.raises(ValueError, match="start"):
        prior_counts_request(FeatureWindow(), ["4624"], ["alice"], EVENTS)
    page = {
        "aggregations": {"prior": {"buckets": [{"key": {"user_name": "a"}, "doc_count": 3}], "after_key": {}}}
    }
    assert prior_count_page(page) == ([{"user_name": "a", "n": 3}], {})
    assert prior_count_page({"aggregations": {"prior": {"buckets": []}}}) == ([], None)


def test_feature_reads_batch_the_accounts_and_bound_the_hours():
    reads = feature_reads(WINDOW, ["a", "b", "c"], ["a", "b", "c", "d"], batch=2)
    assert [index for index, _ in reads].count(USER_HOURLY) == 2
    hourly = [q["bool"]["filter"] for i, q in reads if i == USER_HOURLY]
    assert hourly[0] == [
        {"terms": {"user.name": ["a", "b"]}},
        {"range": {"@timestamp": {"lt": "2024-03-01T09:30:00.000Z"}}},
    ]
    assert len(reads) == 2 + 2 * 2 + 1
    ((_, source_hours),) = [(i, q) for i, q in reads if i == SOURCE_IP_HOURLY]
    # the first context event (07:30) looks up its source's 06:00 hour
    assert source_hours["bool"]["filter"] == [
        {"range": {"@timestamp": {"gte": "2024-03-01T06:00:00.000Z", "lt": "2024-03-01T09:30:00.000Z"}}}
    ]


def test_the_earliest_hour_is_added_unless_already_read():
    def response(user: str, hour: datetime) -> dict:
        millis = int((hour - datetime(1970, 1, 1)).total_seconds() * 1000)
        return {"hits": {"hits": [{"_source": {"user.name": user}, "sort": [millis]}]}}

    early = datetime(2024, 1, 1)
    assert earliest_hour_to_add(response("alice", early), WINDOW, {"alice"}) is None
    assert earliest_hour_to_add(response("carol", early), WINDOW, {"alice"}) is not None
    assert earliest_hour_to_add(response("alice", datetime(2024, 3, 2)), WINDOW, {"alice"}) is not None
    assert earliest_hour_to_add({"hits": {"hits": []}}, WINDOW, {"alice"}) is None


def test_the_fake_composite_counts_exactly_and_pages_with_after():
    docs = [
        {"user": {"name": "bob"}, "source": {"ip": "10.0.0.2"}},
        {"user": {"name": "alice"}},
        {"user": {"name": "alice"}, "source": {"ip": "10.0.0.1"}},
        {"user": {"name": "alice"}, "source": {"ip": ["10.0.0.1", "10.0.0.3"]}},
        {"source": {"ip": "10.0.0.1"}},
    ]
    sources = [
        {"u": {"terms": {"field": "user.name"}}},
        {"ip": {"terms": {"field": "source.ip", "missing_bucket": True}}},
    ]
    pages, after = [], None
    while True:
        spec = {"size": 2, "sources": sources, **({"after": after} if after else {})}
        result = composite(docs, spec)
        if not result["buckets"]:
            break
        pages.append(result["buckets"])
        after = result["after_key"]
    buckets = [b for page in pages for b in page]
    assert [len(page) for page in pages] == [2, 2]
    assert buckets == [
        {"key": {"u": "alice", "ip": None}, "doc_count": 1},
        {"key": {"u": "alice", "ip": "10.0.0.1"}, "doc_count": 2},
        {"key": {"u": "alice", "ip": "10.0.0.3"}, "doc_count": 1},
        {"key": {"u": "bob", "ip": "10.0.0.2"}, "doc_count": 1},
    ]
    without_missing = composite(docs, {"size": 10, "sources": [{"ip": {"terms": {"field": "source.ip"}}}]})
    assert [b["doc_count"] for b in without_missing["buckets"]] == [3, 1, 1]


# The reader against the stand-in --------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    project = build_project(tmp_path_factory.mktemp("es-window") / "project", users=10, days=6)
    store = Store.open(project, read_only=True)
    codes = ", ".join(f"'{c}'" for c in authentication_event_codes())
    first, last = store.connection.execute(
        f'SELECT min("@timestamp"), max("@timestamp") FROM events WHERE "event.code" IN ({codes})'
    ).fetchone()
    documents = documents_from_store(store, EVENTS)
    yield store, first, last, documents
    store.close()


def _windows(first: datetime, last: datetime, store: Store) -> dict[str, FeatureWindow]:
    middle = first + (last - first) / 2
    odd = middle.replace(minute=17, second=29, microsecond=123456)
    # an event a third of a millisecond before the context hour begins: the cluster (whole
    # milliseconds) returns it as a raw event, the SQL counts it as an earlier one
    (late,) = store.connection.execute(
        'SELECT min("@timestamp") FROM events WHERE "@timestamp" > ?', [middle]
    ).fetchone()
    return {
        "unbounded": FeatureWindow(),
        "from mid-history": FeatureWindow(start=odd),
        "one hour": FeatureWindow(start=odd, end=odd + timedelta(hours=1)),
        "one day, Berlin hours": FeatureWindow(
            start=odd, end=odd + timedelta(days=1), time_zone="Europe/Berlin"
        ),
        "start inside a millisecond": FeatureWindow(
            start=late + timedelta(hours=1, microseconds=333), end=late + timedelta(hours=5)
        ),
        "nothing in it": FeatureWindow(start=last + timedelta(days=1)),
    }


def _assert_same_frames(embedded, remote) -> None:
    assert len(remote) == len(embedded)
    assert remote.columns.keys() == embedded.columns.keys()
    for name, values in embedded.columns.items():
        np.testing.assert_array_equal(remote.columns[name], values, err_msg=name)
    np.testing.assert_array_equal(remote.matrix, embedded.matrix)


def _count(store: Store, window: FeatureWindow, *, since: datetime | None) -> int:
    codes = ", ".join(f"'{c}'" for c in authentication_event_codes())
    filters = [f'"event.code" IN ({codes})', '"user.name" IS NOT NULL']
    parameters = []
    if since is not None:
        filters.append('"@timestamp" >= ?')
        parameters.append(since)
    if window.end is not None:
        filters.append('"@timestamp" < ?')
        parameters.append(window.end)
    sql = f"SELECT count(*) FROM events WHERE {' AND '.join(filters)}"
    return store.connection.execute(sql, parameters).fetchone()[0]


WINDOW_NAMES = [
    "unbounded",
    "from mid-history",
    "one hour",
    "one day, Berlin hours",
    "start inside a millisecond",
    "nothing in it",
]


@pytest.mark.parametrize("name", WINDOW_NAMES)
def test_same_rows_as_the_embedded_reader_from_the_windows_events_only(generated, name):
    store, first, last, documents = generated
    window = _windows(first, last, store)[name]
    embedded = EmbeddedFeatureReader(store).read_events(window, with_labels=True)
    cluster = FakeCluster(copy.deepcopy(documents), [], last)
    reader = ElasticsearchFeatureReader(
        cluster, events_index=EVENTS, batch_size=97, account_batch=3, composite_page=5
    )
    remote = reader.read_events(window, with_labels=True)
    _assert_same_frames(embedded, remote)
    assert cluster.open_pits == {}, "every point in time is closed"
    history = _count(store, window, since=None)
    fetched = cluster.hits_served[EVENTS]
    if window.start is None:
        assert fetched == history > 0
        assert all(cluster.hits_served[t] == len(documents[t]) for t in FEATURE_TABLES)
        return
    if name != "nothing in it":
        assert len(remote) > 0
    # the window's events and the hour before it (from its whole millisecond), never the history
    context = window.start - timedelta(hours=1)
    assert fetched == _count(
        store, window, since=context.replace(microsecond=context.microsecond // 1000 * 1000)
    )
    assert fetched < history / 2 or name == "from mid-history"
    assert fetched < history
    served_rows = sum(cluster.hits_served[t] for t in FEATURE_TABLES)
    assert served_rows < sum(len(documents[t]) for t in FEATURE_TABLES)


def test_prior_counts_page_through_every_account(generated, monkeypatch):
    """The composite's pages and account batches add up to the counts the SQL makes itself."""
    store, first, last, documents = generated
    window = _windows(first, last, store)["one day, Berlin hours"]
    cluster = FakeCluster(copy.deepcopy(documents), [], last)
    reader = ElasticsearchFeatureReader(cluster, events_index=EVENTS, account_batch=2, composite_page=3)
    accounts = sorted({d["_source"]["user"]["name"] for d in documents[EVENTS] if d["_source"].get("user")})
    got = Counter()
    pages = 0
    for batch in account_batches(accounts, 2):
        for rows in reader.iter_prior_counts(window, authentication_event_codes(), list(batch)):
            pages += 1
            for row in rows:
                got[(row["user_name"], row["source_ip"], row["event_code"])] += row["n"]
    codes = ", ".join(f"'{c}'" for c in authentication_event_codes())
    expected = {
        (u, ip, code): n
        for u, ip, code, n in store.connection.execute(
            f'SELECT "user.name", "source.ip", "event.code", count(*) FROM events '
            f'WHERE "event.code" IN ({codes}) AND "user.name" IS NOT NULL AND "@timestamp" < ? GROUP BY ALL',
            [window.start - timedelta(hours=1)],
        ).fetchall()
    }
    assert dict(got) == expected
    assert pages > len(accounts) / 2, "several composite pages per batch of accounts"
