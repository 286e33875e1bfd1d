"""The columnar NDJSON path stores exactly what the Python path stores, and takes the records it
claims to take (so the comparison is not vacuous)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from authml.cli import cli
from authml.embedded import ndjson_columnar
from authml.embedded import sink as sink_module
from authml.embedded.ndjson_columnar import load_block, parse_block
from authml.embedded.sink import EmbeddedSink
from authml.embedded.store import Store
from authml.errors import StoreError
from authml.ingest import DeadLetterFile, IngestOptions, ingest_file
from authml.sources.ndjson import read_line_blocks
from tests.helpers import auth_event


def variant(record_id: int, **paths) -> dict:
    """auth_event(record_id) with dotted paths set (None removes the field)."""
    event = copy.deepcopy(auth_event(record_id))
    for dotted, value in paths.items():
        *parents, leaf = dotted.replace("__", ".").split(".")
        node = event
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return event


def line(document) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode() + b"\n"


# Records the columnar path must store itself: the forms of value it decodes.
COLUMNAR = [
    line(auth_event(1)),
    line(variant(2, winlog__record_id=2)),  # an integer identity: 4 bytes in the fingerprint
    line(variant(3, winlog__record_id=5_000_000_000)),  # 8 bytes
    line(variant(4, event__code=4624, source__port=445)),
    line(variant(5, event__category=["authentication"], event__type=[], event__action=True)),
    line(variant(6, **{"@timestamp": "2025-01-06T09:00:00.5"})),
    line(variant(7, user__name="  Alice.Smith  ")),
    line(variant(8, user__name=None)),
    line(variant(9, source__ip=None, user=None)),
    line(variant(10, event__ingested="2025-01-01T00:00:00Z")),
    line(variant(11, event__ingested=1735689600000)),
    line(variant(12, user__domain="CORP\\alice", source__port="445")).replace(b"\n", b"\r\n"),
    line(variant(13, winlog__computer_name="SRV-Ü", host__name="Zürich-PC")),
    line(auth_event(1)),  # a duplicate
    line(variant(14, event__code=None)),
    line(variant(15, winlog__event_data={"TargetUserName": "x", "LogonType": 3, "Other": [1, 2]})),
    line(variant(16, event="not an object")),  # replaced by an object holding event.ingested
    b'{"@timestamp": "2025-01-06T09:00:00Z",  "event" : {"code":"4625"}, "winlog":{"channel":"Security",'
    b'"computer_name":"DC1","record_id":"16"}}\n',
]
# Records left to the Python path, which stores or dead-letters each as it always did.
PYTHON = [
    line({**auth_event(20), "user.name": "bob"}),  # stored: the last line, plain, has the same id
    line({**auth_event(1), "user.name": "eve"}),  # a duplicate: the first line has the same id
    line(variant(21, source__port=445.0)),
    line(variant(22, user__domain='say "hi"')),
    json.dumps(variant(23, host__name="Zürich")).encode() + b"\n",  # \u escapes
    line(variant(24, **{"@timestamp": "2025-01-06T11:00:00+02:00"})),
    line(variant(25, **{"@timestamp": 1736154000000})),
    line(variant(26, source__ip="fe80::1")),
    line(variant(27, source__ip="300.1.2.3")),
    line(variant(28, winlog={"logon": {"type": "Network"}})),
    line(variant(29, authml={"note": "kept"})),
    line({"_index": "x", "_source": auth_event(30)}),
    line(variant(31, event__category=["authentication", "iam"])),
    line(variant(32, user__name="Jörg")),
    line(variant(34, winlog__record_id=12345678901234567890)),
    line(variant(35, user__name=7)),
    line(variant(36, winlog__record_id=True)),
    b"not json at all\n",
    b"[1, 2, 3]\n",
    b'{"@timestamp": "2025-01-06T09:00:00Z", "user": {"name": "\xff\xfe"}}\n',
    b"\t" + line(auth_event(37)),
]
BLANK = [b"\n", b"   \r\n"]


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.ndjson"
    lines = [*COLUMNAR, BLANK[0], *PYTHON, BLANK[1], line(auth_event(20))]
    path.write_bytes(b"".join(lines))
    return path


def test_columnar_path_takes_the_plain_records_and_leaves_the_others(corpus, tmp_path):
    with Store.open(tmp_path / "p", create=True) as store:
        blocks = list(read_line_blocks(corpus))
        assert len(blocks) == 1
        left: list[int] = []

        def python_path(indexes):
            left.extend(indexes)
            return [], [], 0

        parsed = parse_block(store.connection, blocks[0], datetime.now(UTC))
        outcome = load_block(store, parsed, str(corpus), None, python_path)
    first_python = len(COLUMNAR) + 1
    assert left == list(range(first_python, first_python + len(PYTHON)))
    assert outcome.read == len(COLUMNAR) + len(PYTHON) + 1  # the last line is plain too
    # One plain record is a duplicate of an earlier one; the last line's id is that of a record left
    # to the Python path (which prepared nothing here), so the columnar path stores it.
    assert (outcome.stored, outcome.duplicates) == (len(COLUMNAR), 1)


def ingest(project: Path, path: Path, *options: str) -> dict:
    result = CliRunner().invoke(
        cli, ["--project-dir", str(project), "ingest", "--json", *options, str(path)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    summary.pop("dead_letter_file")
    for file in summary["files"]:
        file.pop("path")
    return summary


def stored(project: Path) -> tuple[list, list]:
    with duckdb.connect(str(project / "store.duckdb"), read_only=True) as connection:
        columns = [row[0] for row in connection.execute("DESCRIBE events").fetchall()]
        keep = [c for c in columns if c not in ("event.ingested", "document")]
        rows = connection.execute(
            f"SELECT {', '.join(json.dumps(c) for c in keep)}, document FROM events ORDER BY _id"
        ).fetchall()
        letters = connection.execute(
            "SELECT position, reason, raw FROM dead_letters ORDER BY position"
        ).fetchall()
    events = []
    for *values, document in rows:
        parsed = json.loads(document)
        assert parsed["event"].pop("ingested")  # the time of each ingest: compared without it
        events.append((*values, parsed))
    return events, letters


@pytest.mark.parametrize("lines_per_batch", [ndjson_columnar.LINES_PER_BATCH, 4])
@pytest.mark.parametrize("options", [(), ("--only-auth",)])
def test_both_paths_store_the_same_rows_documents_and_dead_letters(
    corpus, tmp_path, options, lines_per_batch, monkeypatch
):
    # With 4 lines a batch, DuckDB's threads parse the block's batches side by side.
    monkeypatch.setattr(ndjson_columnar, "LINES_PER_BATCH", lines_per_batch)
    columnar = ingest(tmp_path / "columnar", corpus, *options)
    python = ingest(tmp_path / "python", corpus, "--no-columnar", *options)
    assert columnar == python
    assert columnar["total"]["stored"] > len(COLUMNAR) // 2
    columnar_events, columnar_letters = stored(tmp_path / "columnar")
    python_events, python_letters = stored(tmp_path / "python")
    assert columnar_letters == python_letters
    assert len(columnar_letters) >= 5
    assert columnar_events == python_events


def test_reingesting_through_the_columnar_path_stores_nothing_new(corpus, tmp_path):
    first = ingest(tmp_path / "p", corpus)
    again = ingest(tmp_path / "p", corpus)
    assert again["total"]["stored"] == 0
    assert again["total"]["duplicates"] == first["total"]["stored"] + first["total"]["duplicates"]


def test_a_block_reaches_duckdb_in_record_batches_holding_every_line_once(corpus, monkeypatch):
    monkeypatch.setattr(ndjson_columnar, "LINES_PER_BATCH", 5)
    (block,) = read_line_blocks(corpus)
    table, undecodable = ndjson_columnar._line_table(block)
    batches = table.to_batches()
    assert len(batches) == -(-table.num_rows // 5) > 1
    assert all(batch.num_rows <= 5 for batch in batches)
    # Every line once, in order: the undecodable one is left to the Python path.
    indexes = table.column("line_index").to_pylist()
    assert sorted(indexes + undecodable) == list(range(len(block)))
    assert undecodable == [i for i in range(len(block)) if b"\xff" in block.line(i)]
    lines = table.column("line").to_pylist()
    assert [text.rstrip("\r\n") for text in lines] == [block.line(i).decode().rstrip("\r") for i in indexes]


def test_lines_are_numbered_across_blocks(tmp_path):
    path = tmp_path / "many.ndjson"
    path.write_bytes(b"".join(line(auth_event(i)) for i in range(1, 301)) + b"oops\n")
    blocks = list(read_line_blocks(path, block_bytes=4096))
    assert len(blocks) > 3
    assert [b.first_line for b in blocks[1:]] == [prior.first_line + len(prior) for prior in blocks[:-1]]
    assert blocks[-1].line(len(blocks[-1]) - 1) == b"oops"


def test_generated_events_take_the_columnar_path_and_store_what_the_python_path_stores(tmp_path):
    generated = tmp_path / "generated"
    result = CliRunner().invoke(
        cli,
        [
            "generate",
            "--users",
            "10",
            "--days",
            "4",
            "--attack-days",
            "1",
            "--seed",
            "5",
            "--attacks",
            "--out",
            str(generated),
        ],
    )
    assert result.exit_code == 0, result.output
    events = generated / "events.ndjson"
    left: list[int] = []
    with Store.open(tmp_path / "probe", create=True) as store:
        for block in read_line_blocks(events):
            parsed = parse_block(store.connection, block, datetime.now(UTC))
            load_block(store, parsed, str(events), None, lambda i: (left.extend(i), ([], [], 0))[1])
    total = sum(1 for _ in events.open())
    assert len(left) <= total // 100  # IPv6 sources (::1 on run-as logons) take the Python path

    columnar = ingest(tmp_path / "columnar", events)
    python = ingest(tmp_path / "python", events, "--no-columnar")
    assert columnar == python
    assert columnar["total"]["stored"] == total
    assert stored(tmp_path / "columnar") == stored(tmp_path / "python")


def test_a_block_duckdb_cannot_parse_is_a_clear_error_and_the_blocks_before_it_stay(tmp_path, monkeypatch):
    path = tmp_path / "many.ndjson"
    path.write_bytes(b"".join(line(auth_event(i)) for i in range(1, 301)))
    monkeypatch.setattr("authml.ingest.read_line_blocks", lambda p: read_line_blocks(p, block_bytes=8192))
    parse = sink_module.parse_block
    failing_first_lines = []

    def parse_or_fail(connection, block, ingested):
        if block.first_line > 100:
            failing_first_lines.append(block.first_line)
            raise duckdb.ConversionException("no parse")
        return parse(connection, block, ingested)

    monkeypatch.setattr(sink_module, "parse_block", parse_or_fail)
    with Store.open(tmp_path / "p", create=True) as store:
        sink = EmbeddedSink(store)
        with pytest.raises(
            StoreError, match=r"could not parse lines (\d+)-\d+ of .*many\.ndjson: .*no parse"
        ) as error:
            ingest_file(path, sink, DeadLetterFile(tmp_path / "dead.ndjson"), IngestOptions())
        sink.flush()  # what the command does on its way out
        first_failing = int(error.value.args[0].split("lines ")[1].split("-")[0])
        assert first_failing == failing_first_lines[0] > 100
        # The blocks before the failing one were stored whole; nothing of it or after it.
        assert store.count_events() == first_failing - 1
