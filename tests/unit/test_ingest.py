"""Ingest accounting: every record is stored, a duplicate, dead-lettered or skipped, and says so."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from authml.cli import cli
from tests.helpers import auth_event, write_ndjson


def run(project_dir: Path, *args: str):
    return CliRunner().invoke(cli, ["--project-dir", str(project_dir), *args], catch_exceptions=False)


def ingest_json(project_dir: Path, *paths: Path, extra: tuple[str, ...] = ()) -> dict:
    result = run(project_dir, "ingest", "--json", *extra, *map(str, paths))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def store_rows(project_dir: Path, sql: str):
    with duckdb.connect(str(project_dir / "store.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


BAD_LINES = [
    "this is not json",
    "[1, 2, 3]",
    {"event": {"code": "4624"}},  # no @timestamp
    {"@timestamp": "yesterday", "event": {"code": "4624"}},
    {"@timestamp": "2025-01-06T09:00:00Z", "source": {"ip": "300.1.2.3"}},
]


def test_every_bad_record_is_dead_lettered_with_file_position_and_reason(tmp_path, project_dir):
    source = write_ndjson(tmp_path / "mixed.ndjson", [auth_event(1), *BAD_LINES, auth_event(2)])
    summary = ingest_json(project_dir, source)
    total = summary["total"]
    assert (total["read"], total["stored"], total["dead_lettered"], total["duplicates"]) == (7, 2, 5, 0)

    letters = [json.loads(line) for line in Path(summary["dead_letter_file"]).read_text().splitlines()]
    assert [letter["position"] for letter in letters] == ["line 2", "line 3", "line 4", "line 5", "line 6"]
    reasons = " | ".join(letter["reason"] for letter in letters)
    for expected in (
        "not valid JSON",
        "not an object",
        "missing @timestamp",
        "not an ISO 8601 date",
        "not an IP address",
    ):
        assert expected in reasons
    assert all(letter["source_file"] == str(source) for letter in letters)
    assert letters[0]["raw"] == "this is not json"
    assert store_rows(project_dir, "SELECT count(*) FROM dead_letters") == [(5,)]


def test_ingesting_twice_stores_nothing_new(tmp_path, project_dir):
    source = write_ndjson(tmp_path / "events.ndjson", [auth_event(i) for i in range(1, 51)])
    first = ingest_json(project_dir, source)["total"]
    second = ingest_json(project_dir, source)["total"]
    assert (first["stored"], first["duplicates"]) == (50, 0)
    assert (second["stored"], second["duplicates"]) == (0, 50)
    assert store_rows(project_dir, "SELECT count(*) FROM events") == [(50,)]


def test_gzip_ndjson_and_truncated_gzip(tmp_path, project_dir):
    payload = "".join(json.dumps(auth_event(i)) + "\n" for i in range(1, 2001)).encode()
    good = tmp_path / "good.ndjson.gz"
    good.write_bytes(gzip.compress(payload))
    truncated = tmp_path / "truncated.ndjson.gz"
    truncated.write_bytes(gzip.compress(payload.replace(b'"WS01"', b'"WS02"'))[:-200])
    summary = ingest_json(project_dir, good, truncated)
    by_file = {Path(f["path"]).name: f for f in summary["files"]}
    assert by_file["good.ndjson.gz"]["stored"] == 2000
    cut = by_file["truncated.ndjson.gz"]
    assert cut["dead_lettered"] >= 1 and cut["stored"] < 2000
    assert cut["read"] == cut["stored"] + cut["duplicates"] + cut["dead_lettered"]
    letters = Path(summary["dead_letter_file"]).read_text()
    assert "truncated" in letters


def test_authml_fields_are_added_and_nothing_is_overwritten(tmp_path, project_dir):
    event = auth_event(7, user="Alice")
    event["event"]["ingested"] = "2024-12-31T00:00:00Z"
    ingest_json(project_dir, write_ndjson(tmp_path / "one.ndjson", [event]))
    (document,) = store_rows(project_dir, "SELECT document FROM events")[0]
    stored = json.loads(document)
    assert stored["authml"]["source_ingested"] == "2024-12-31T00:00:00Z"
    assert stored["authml"]["user_key"] == "alice"
    assert stored["user"]["name"] == "Alice"
    assert stored["event"]["ingested"] != "2024-12-31T00:00:00Z"
    (user, ts) = store_rows(project_dir, 'SELECT "user.name", "@timestamp" FROM events')[0]
    assert user == "Alice" and ts.isoformat() == "2025-01-06T09:00:00"


def test_offsets_are_converted_to_utc(tmp_path, project_dir):
    event = auth_event(1, timestamp="2025-01-06T11:30:00+02:00")
    ingest_json(project_dir, write_ndjson(tmp_path / "tz.ndjson", [event]))
    assert store_rows(project_dir, "SELECT strftime(\"@timestamp\", '%H:%M') FROM events") == [("09:30",)]


def test_strict_fails_when_anything_was_dead_lettered(tmp_path, project_dir):
    source = write_ndjson(tmp_path / "bad.ndjson", [auth_event(1), "oops"])
    result = CliRunner().invoke(cli, ["--project-dir", str(project_dir), "ingest", "--strict", str(source)])
    assert result.exit_code != 0
    assert "dead-lettered" in result.output


def test_missing_path_is_one_clear_sentence(tmp_path, capsys):
    from authml.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--project-dir", str(tmp_path / "p"), "ingest", str(tmp_path / "nope.evtx")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "nope.evtx does not exist" in err and "Traceback" not in err


def test_summary_without_a_store_says_what_to_do(tmp_path, capsys):
    from authml.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--project-dir", str(tmp_path / "empty"), "store", "summary"])
    assert exit_info.value.code == 3
    assert "authml ingest" in capsys.readouterr().err


def test_forced_format_overrides_detection(tmp_path, project_dir):
    source = write_ndjson(tmp_path / "events.log", [auth_event(1)])
    summary = ingest_json(project_dir, source, extra=("--format", "ndjson"))
    assert summary["files"][0]["format"] == "ndjson" and summary["total"]["stored"] == 1


def test_typed_columns_follow_es_semantics_for_arrays_and_dotted_keys(tmp_path, project_dir):
    several = auth_event(1)
    several["host"]["name"] = ["WS01", "WS02"]  # two values: the column cannot hold them
    single = auth_event(2)
    single["event"]["category"] = ["authentication"]  # one value in an array is that value
    dotted = {
        "@timestamp": "2025-01-06T09:00:00Z",
        "user.name": "bob",
        "event.code": "4625",
        "winlog": {"computer_name": "WS09", "channel": "Security", "record_id": "3"},
    }
    ingest_json(project_dir, write_ndjson(tmp_path / "shapes.ndjson", [several, single, dotted]))
    rows = store_rows(
        project_dir,
        'SELECT "winlog.record_id", "host.name", "event.category", "user.name", "event.code", multi_valued_fields '
        'FROM events ORDER BY "winlog.record_id"',
    )
    assert rows[0] == ("1", None, None, "alice", "4624", ["host.name"])
    assert rows[1][2] == "authentication" and rows[1][5] is None
    assert rows[2][3:5] == ("bob", "4625")
    (document,) = store_rows(project_dir, """SELECT document FROM events WHERE "winlog.record_id" = '1'""")[0]
    assert json.loads(document)["host"]["name"] == ["WS01", "WS02"]  # nothing lost
