"""Several files in one run (authml.ingest.ingest_files): small files share the embedded store's
batches, and every file keeps exactly the counts, rows and dead letters it would get alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from authml.embedded.sink import EmbeddedSink
from authml.embedded.store import Store
from authml.ingest import BatchOutcome, DeadLetterFile, IngestOptions, ingest_file, ingest_files
from authml.sources import expand_paths
from tests.helpers import auth_event, write_ndjson


def _ingest(project: Path, paths: list[Path], options: IngestOptions, *, together: bool):
    """Summaries and what the store holds, with all files in one call or one call per file."""
    with Store.open(project, create=True) as store:
        sink = EmbeddedSink(store)
        letters = DeadLetterFile(project / "dead.ndjson")
        if together:
            summaries = ingest_files(paths, sink, letters, options)
        else:
            summaries = [ingest_file(path, sink, letters, options) for path in paths]
        sink.flush()
        letters.close()
        # the documents without event.ingested, the time of each run
        rows = store.connection.execute(
            'SELECT _id, source_file, source_position, json_merge_patch(document, \'{"event": {"ingested": null}}\') '
            "FROM events ORDER BY _id"
        ).fetchall()
        dead = store.connection.execute(
            "SELECT source_file, position, reason FROM dead_letters ORDER BY ALL"
        ).fetchall()
    counts = [(s.path, s.read, s.stored, s.duplicates, s.dead_lettered, s.skipped) for s in summaries]
    return counts, rows, dead


@pytest.fixture
def inserts(monkeypatch) -> list[int]:
    """Events per insert into the store, whichever way it was made."""
    sizes: list[int] = []
    for name in ("insert_batch", "insert_batch_by_file"):
        original = getattr(Store, name)

        def spy(self, events, dead_letters, original=original):
            sizes.append(len(events))
            return original(self, events, dead_letters)

        monkeypatch.setattr(Store, name, spy)
    return sizes


def test_small_files_share_a_batch_and_keep_their_own_counts(tmp_path, inserts):
    first = write_ndjson(
        tmp_path / "in" / "a.ndjson", [auth_event(1), auth_event(2), "{not json", auth_event(3)]
    )
    second = write_ndjson(tmp_path / "in" / "b.ndjson", [auth_event(2), auth_event(4)])  # 2 is a's
    third = write_ndjson(tmp_path / "in" / "c.ndjson", [auth_event(1), auth_event(5, code="4688")])
    paths = [first, second, third]
    options = IngestOptions(columnar=False, only_auth=True)
    together = _ingest(tmp_path / "together", paths, options, together=True)
    assert inserts == [4]  # one insert: 1, 2, 3 of a, 4 of b (2 again is a's, 1 again too)
    inserts.clear()
    alone = _ingest(tmp_path / "alone", paths, options, together=False)
    assert len(inserts) == 3
    counts, rows, dead = together
    assert counts == [
        (str(first), 4, 3, 0, 1, 0),
        (str(second), 2, 1, 1, 0, 0),
        (str(third), 2, 0, 1, 0, 1),  # 5 is not an authentication code: skipped
    ]
    assert together == alone
    assert sorted(source for _, source, _, _ in rows) == [str(first)] * 3 + [str(second)]
    assert dead == [(str(first), "line 3", dead[0][2])]


def test_batches_still_fill_to_the_batch_size(tmp_path, inserts):
    paths = [
        write_ndjson(tmp_path / "in" / f"{index}.ndjson", [auth_event(index * 10 + n) for n in range(3)])
        for index in range(5)
    ]
    counts, rows, _ = _ingest(
        tmp_path / "p", paths, IngestOptions(columnar=False, batch_size=7), together=True
    )
    assert inserts == [9, 6]  # whole files: three files reach 7 records, the other two are the rest
    assert [c[1:4] for c in counts] == [(3, 3, 0)] * 5 and len(rows) == 15


def test_a_file_given_twice_counts_each_time_apart(tmp_path, inserts):
    path = write_ndjson(tmp_path / "in" / "a.ndjson", [auth_event(1), auth_event(2)])
    counts, rows, _ = _ingest(tmp_path / "p", [path, path], IngestOptions(columnar=False), together=True)
    assert counts == [(str(path), 2, 2, 0, 0, 0), (str(path), 2, 0, 2, 0, 0)]
    assert len(inserts) == 2 and len(rows) == 2


def test_evtx_folders_store_what_they_store_file_by_file(tmp_path, evtx_samples, inserts):
    for copy in ("one", "two"):  # a second copy: every record of it is a duplicate of the first
        shutil.copytree(evtx_samples, tmp_path / "in" / copy)
    paths = expand_paths([tmp_path / "in"])
    together = _ingest(tmp_path / "together", paths, IngestOptions(), together=True)
    batched = len(inserts)
    inserts.clear()
    alone = _ingest(tmp_path / "alone", paths, IngestOptions(), together=False)
    assert batched < len(inserts) / 4, (batched, len(inserts))
    assert together == alone
    counts = together[0]
    assert all(
        read == stored + duplicates + dead + skipped for _, read, stored, duplicates, dead, skipped in counts
    )
    halves = len(counts) // 2
    assert sum(c[3] for c in counts[halves:]) == sum(c[2] + c[3] for c in counts[:halves])


def test_a_sink_that_cannot_say_whose_events_are_new_gets_one_file_a_batch(tmp_path):
    class OneCountSink:  # as the Elasticsearch sink: one outcome per batch
        def __init__(self):
            self.batches: list[set[str]] = []

        def write_batch(self, events, dead_letters):
            self.batches.append({event.source_file for event in events})
            return BatchOutcome(stored=len(events), duplicates=0)

    paths = [write_ndjson(tmp_path / f"{index}.ndjson", [auth_event(index)]) for index in range(3)]
    sink = OneCountSink()
    letters = DeadLetterFile(tmp_path / "dead.ndjson")
    summaries = ingest_files(paths, sink, letters, IngestOptions(columnar=False))
    letters.close()
    assert sink.batches == [{str(path)} for path in paths]
    assert [(s.read, s.stored) for s in summaries] == [(1, 1)] * 3


def test_an_interrupted_run_keeps_whole_batches_and_a_rerun_finishes_it(tmp_path, monkeypatch):
    import authml.ingest as ingest

    paths = [
        write_ndjson(tmp_path / "in" / f"{index}.ndjson", [auth_event(index * 10 + n) for n in range(3)])
        for index in range(6)
    ]
    real_read = ingest.read_records

    def read_until_the_fifth(path, fmt):
        if path == paths[4]:
            raise KeyboardInterrupt
        return real_read(path, fmt)

    project = tmp_path / "p"
    options = IngestOptions(columnar=False, batch_size=7)  # files 0-2 fill a batch, 3 waits
    monkeypatch.setattr(ingest, "read_records", read_until_the_fifth)
    with Store.open(project, create=True) as store:
        sink = EmbeddedSink(store)
        letters = DeadLetterFile(project / "dead.ndjson")
        with pytest.raises(KeyboardInterrupt):
            ingest_files(paths, sink, letters, options)
        sink.flush()  # as the command's exit does: what was written is committed
        letters.close()
        (kept,) = store.connection.execute("SELECT count(*) FROM events").fetchone()
    assert kept == 9  # the first batch, whole; file 3 was staged, not written
    monkeypatch.setattr(ingest, "read_records", real_read)
    counts, rows, _ = _ingest(project, paths, options, together=True)
    assert [(c[1], c[2], c[3]) for c in counts] == [(3, 0, 3)] * 3 + [(3, 3, 0)] * 3
    assert len(rows) == 18


def test_elasticsearch_takes_several_small_files_in_one_bulk_request(tmp_path):
    from authml.es.sink import ElasticsearchSink
    from tests.unit.test_es_sink import ScriptedClient, _item

    first = write_ndjson(tmp_path / "a.ndjson", [auth_event(1), auth_event(2)])
    second = write_ndjson(tmp_path / "b.ndjson", [auth_event(2), auth_event(3), "{not json"])  # 2 is a's
    # the request holds 1, 2 and 3 once: 3 was indexed before (409)
    client = ScriptedClient([_item(201), _item(201), _item(409, "version_conflict_engine_exception")])
    letters = DeadLetterFile(tmp_path / "dead.ndjson")
    summaries = ingest_files([first, second], ElasticsearchSink(client), letters, IngestOptions())
    letters.close()
    assert len(client.calls) == 1 and len(client.calls[0]) == 6
    assert [(s.read, s.stored, s.duplicates, s.dead_lettered) for s in summaries] == [
        (2, 2, 0, 0),
        (3, 0, 2, 1),
    ]
