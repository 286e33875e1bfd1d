"""Killing a real ingest process after it committed some of its batches leaves the store
consistent with those batches stored; running it again loses nothing and duplicates nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import orjson
import pytest

from tests.helpers import auth_event

pytestmark = pytest.mark.slow

# Enough events for two commits (one about every 246,000 records, authml.embedded.sink.COMMIT_ROWS)
# and the rest after them: the process is stopped after its first commit.
EVENTS = 600_000
BAD_EVERY = 10_000  # one unparseable line in every BAD_EVERY


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("input") / "events.ndjson"
    with path.open("wb") as handle:
        for i in range(EVENTS):
            if i % BAD_EVERY == 0:
                handle.write(b"{truncated json\n")
            else:
                event = auth_event(i, user=f"user{i % 300}", ip=f"10.1.{i % 250}.{i % 200 + 1}")
                handle.write(orjson.dumps(event) + b"\n")
    return path


def start_ingest(project_dir: Path, source: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "authml",
        "--project-dir",
        str(project_dir),
        "ingest",
        "--json",
        "--batch-size",
        "2000",
        str(source),
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def counts(project_dir: Path) -> tuple[int, int, int]:
    with duckdb.connect(str(project_dir / "store.duckdb"), read_only=True) as con:
        events, distinct = con.execute("SELECT count(*), count(DISTINCT _id) FROM events").fetchone()
        (letters,) = con.execute("SELECT count(*) FROM dead_letters").fetchone()
    return events, distinct, letters


def wait_for_first_commit(process: subprocess.Popen, project_dir: Path) -> None:
    """Until the ingest's first batches are committed: DuckDB appends to its write-ahead log at a
    commit (the row data itself goes to the database file as it is inserted), so the log grows
    past what creating the store's tables wrote to it, then stays as it is until the next commit
    seconds later. (A signal while the log is being written interrupts that commit: the store
    then holds nothing, consistently, but the test wants committed rows to keep.) The test checks
    that rows were stored, so a log that grew for another reason fails it rather than passing."""
    wal = project_dir / "store.duckdb.wal"
    deadline = time.monotonic() + 300
    created_size = None
    sizes: list[int] = []
    while True:
        assert process.poll() is None, f"ingest ended before its first commit: {process.stderr.read()}"
        assert time.monotonic() < deadline, "ingest committed nothing in 5 minutes"
        if wal.exists():
            created_size = wal.stat().st_size if created_size is None else created_size
            sizes = [*sizes[-24:], wal.stat().st_size]
            if len(sizes) == 25 and sizes[0] > created_size and len(set(sizes)) == 1:
                return  # grown, and unchanged for the last half second
        time.sleep(0.02)


def finish_and_check(project_dir: Path, source: Path, stored_before: int) -> None:
    rerun = start_ingest(project_dir, source)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    total = json.loads(out)["total"]
    bad_lines = len(range(0, EVENTS, BAD_EVERY))
    assert total["read"] == EVENTS
    assert total["duplicates"] == stored_before
    assert total["stored"] == EVENTS - bad_lines - stored_before
    assert total["dead_lettered"] == bad_lines
    events, distinct, letters = counts(project_dir)
    assert events == distinct == EVENTS - bad_lines
    assert letters == bad_lines


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_ingest_resumes_without_loss_or_duplicates(tmp_path, big_input, how):
    project_dir = tmp_path / "project"
    process = start_ingest(project_dir, big_input)
    wait_for_first_commit(process, project_dir)
    process.send_signal(how)
    _, err = process.communicate(timeout=120)
    if how == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 130, err
        assert "interrupted" in err and "Traceback" not in err

    events, distinct, _ = counts(project_dir)  # the store opens and is consistent
    assert events == distinct
    assert 0 < events < EVENTS - len(range(0, EVENTS, BAD_EVERY)), "the committed batches, not all"
    finish_and_check(project_dir, big_input, events)
