"""Killing a real ingest process leaves the store consistent; running it again loses nothing and
duplicates nothing."""

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

EVENTS = 150_000
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


def wait_until_started(process: subprocess.Popen, project_dir: Path) -> None:
    deadline = time.monotonic() + 60
    while not (project_dir / "store.duckdb").exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "ingest never created its store"
        time.sleep(0.05)
    time.sleep(2.0)  # let a few batches commit


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
    wait_until_started(process, project_dir)
    if process.poll() is not None:
        pytest.fail("ingest finished before it could be interrupted; make the input larger")
    process.send_signal(how)
    _, err = process.communicate(timeout=120)
    if how == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 130, err
        assert "interrupted" in err and "Traceback" not in err

    events, distinct, _ = counts(project_dir)  # the store opens and is consistent
    assert events == distinct
    assert events < EVENTS
    finish_and_check(project_dir, big_input, events)
