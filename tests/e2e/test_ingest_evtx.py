"""The real EVTX recordings, corrupt ones included, through the whole ingest command."""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
from click.testing import CliRunner

from authml.cli import cli
from authml.progress import Progress


def ingest(project_dir: Path, path: Path) -> dict:
    result = CliRunner().invoke(
        cli, ["--project-dir", str(project_dir), "ingest", "--json", str(path)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_every_sample_file_balances_and_corruption_is_dead_lettered(evtx_samples, project_dir):
    summary = ingest(project_dir, evtx_samples)
    files = {Path(f["path"]).name: f for f in summary["files"]}
    assert len(files) == len(list(evtx_samples.rglob("*.evtx")))
    for name, counts in files.items():
        assert counts["format"] == "evtx", name
        assert (
            counts["read"]
            == counts["stored"] + counts["duplicates"] + counts["dead_lettered"] + counts["skipped"]
        ), name
    for corrupt in ("sample_with_a_bad_chunk_magic.evtx", "sample-with-zero-data-size-event.evtx"):
        assert files[corrupt]["dead_lettered"] > 0 and files[corrupt]["stored"] > 0, corrupt

    letters = [json.loads(line) for line in Path(summary["dead_letter_file"]).read_text().splitlines()]
    assert letters and all(
        letter["reason"] and letter["position"] and letter["source_file"] for letter in letters
    )
    with duckdb.connect(str(project_dir / "store.duckdb"), read_only=True) as con:
        stored, with_users = con.execute('SELECT count(*), count("user.name") FROM events').fetchone()
        logons = con.execute(
            """SELECT count(*) FROM events WHERE "event.code" = '4624' AND "winlog.logon.type" IS NOT NULL"""
        ).fetchone()[0]
    assert stored == summary["total"]["stored"]
    assert with_users > 0 and logons > 0

    again = ingest(project_dir, evtx_samples)["total"]
    assert again["stored"] == 0
    assert again["duplicates"] == summary["total"]["stored"] + summary["total"]["duplicates"]


def test_only_auth_counts_other_records_as_skipped(evtx_samples, project_dir):
    result = CliRunner().invoke(
        cli,
        [
            "--project-dir",
            str(project_dir),
            "ingest",
            "--json",
            "--only-auth",
            str(evtx_samples / "parser-samples" / "system.evtx"),
        ],
    )
    total = json.loads(result.output)["total"]
    assert total["skipped"] == total["read"] > 0  # the System channel holds no logon events
    assert total["stored"] == 0


def test_progress_is_drawn_on_a_terminal_only():
    quiet, loud = io.StringIO(), io.StringIO()
    for stream, enabled in ((quiet, False), (loud, True)):
        progress = Progress(2, stream=stream, enabled=enabled, min_interval=0)
        progress.start_file("a.evtx")
        progress.advance(1234)
        progress.finish()
    assert quiet.getvalue() == ""
    assert "file 1/2" in loud.getvalue() and "1,234 records" in loud.getvalue() and "/s" in loud.getvalue()
    assert Progress(1, stream=io.StringIO()).enabled is False  # a pipe is not a terminal
