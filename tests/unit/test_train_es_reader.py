"""The Elasticsearch feature reader: request bodies, and the same rows as the embedded reader when
a fake client serves the same data (the real cluster is exercised by integration tests)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from authml.embedded.feature_reader import EmbeddedFeatureReader
from authml.es.feature_reader import (
    EVENT_FIELDS,
    ElasticsearchFeatureReader,
    events_query,
    hit_row,
    next_search_after,
    search_body,
)
from authml.train.feature_sql import FeatureWindow
from tests.unit.es_fake_cluster import FakeCluster, documents_from_store
from tests.unit.train_store import benign_history, build_feature_tables, logon, write_events


def test_search_body_pages_a_point_in_time_in_shard_doc_order():
    body = search_body(
        "pit-1",
        query={"match_all": {}},
        fields=("user.name",),
        size=10,
        search_after=[7],
        slice_id=1,
        slices=4,
    )
    assert body["pit"] == {"id": "pit-1", "keep_alive": "2m"}
    assert body["sort"] == [{"_shard_doc": "asc"}]
    assert body["search_after"] == [7] and body["slice"] == {"id": 1, "max": 4}
    assert body["_source"] == ["user.name"] and body["size"] == 10
    assert "slice" not in search_body("pit-1", query=None, fields=(), slices=1)
    with pytest.raises(ValueError, match="slice_id"):
        search_body("pit-1", query=None, fields=(), slice_id=4, slices=4)


def test_events_query_reads_from_an_hour_before_the_start_to_the_end():
    window = FeatureWindow(start=datetime(2024, 1, 1), end=datetime(2024, 2, 1, 0, 0, 0, 1500))
    filters = events_query(window, ["4624"])["bool"]["filter"]
    assert {"terms": {"event.code": ["4624"]}} in filters
    # the end rounded up to the cluster's whole milliseconds (the SQL cuts at the exact end)
    bounds = {"gte": "2023-12-31T23:00:00.000Z", "lt": "2024-02-01T00:00:00.002Z"}
    assert {"range": {"@timestamp": bounds}} in filters
    unbounded = events_query(FeatureWindow(end=datetime(2024, 2, 1)), ["4624"])["bool"]["filter"]
    assert {"range": {"@timestamp": {"lt": "2024-02-01T00:00:00.000Z"}}} in unbounded
    assert len(events_query(FeatureWindow(), ["4624"])["bool"]["filter"]) == 2, "no time bound at all"


def test_hit_row_reads_nested_and_dotted_sources():
    hit = {
        "_id": "a",
        "_source": {"user": {"name": "alice"}, "source.ip": "10.0.0.1", "logon_types": {"Network": 2}},
    }
    row = hit_row(hit, ("user.name", "source.ip", "logon_types", "host.name"))
    assert row == {
        "_id": "a",
        "user.name": "alice",
        "source.ip": "10.0.0.1",
        "logon_types": {"Network": 2},
        "host.name": None,
    }
    assert next_search_after({"hits": {"hits": [{"sort": [1]}, {"sort": [2]}]}}) == [2]
    assert next_search_after({"hits": {"hits": []}}) is None


@pytest.mark.parametrize("slices", [1, 3])
def test_same_rows_as_the_embedded_reader(project_dir, slices):
    docs = benign_history(4, 8, seed=5)
    docs.append(
        logon(datetime(2024, 3, 9, 3), "user001", ip="10.9.9.9", logon_type="RemoteInteractive", record=10**6)
    )
    store = write_events(project_dir, docs)
    build_feature_tables(store)
    window = FeatureWindow(start=datetime(2024, 3, 7))
    embedded = EmbeddedFeatureReader(store).read_events(window)
    documents = documents_from_store(store)
    cluster = FakeCluster(documents, [], datetime(2024, 4, 1))
    reader = ElasticsearchFeatureReader(cluster, events_index="events", slices=slices, batch_size=50)
    remote = reader.read_events(window)
    assert len(remote) == len(embedded) > 0
    assert cluster.open_pits == {}, "every point in time is closed"
    assert cluster.searches > len(documents["events"]) / 50
    order_e, order_r = np.argsort(embedded.columns["_id"]), np.argsort(remote.columns["_id"])
    np.testing.assert_array_equal(embedded.columns["_id"][order_e], remote.columns["_id"][order_r])
    np.testing.assert_allclose(embedded.matrix[order_e], remote.matrix[order_r], rtol=1e-6)
    assert set(EVENT_FIELDS) >= {"@timestamp", "user.name", "source.ip"}
