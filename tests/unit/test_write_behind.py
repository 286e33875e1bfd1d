"""The write-behind flush: the store's file synced on a thread of its own as a long run writes,
so that the commit finds little left to sync; best effort, never in the way."""

from __future__ import annotations

import os
import threading

import pytest

from authml.embedded import write_behind
from authml.embedded.write_behind import WriteBehind
from authml.score.run import ScoreOptions, run_scoring
from tests.unit.score_project import copy_project


@pytest.fixture
def synced(monkeypatch) -> list[tuple[int, str]]:
    """The descriptors synced, each with the file it is open on, recorded instead of syncing."""
    calls: list[tuple[int, str]] = []

    def record(descriptor: int) -> None:
        calls.append((descriptor, os.readlink(f"/proc/self/fd/{descriptor}")))

    monkeypatch.setattr(write_behind, "_sync", record)
    return calls


pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names open files through /proc")


def test_each_request_syncs_the_file_once_on_another_thread(tmp_path, synced, monkeypatch):
    path = tmp_path / "store.duckdb"
    path.write_bytes(b"rows")
    threads: list[str] = []
    recording = write_behind._sync
    monkeypatch.setattr(
        write_behind, "_sync", lambda fd: (threads.append(threading.current_thread().name), recording(fd))
    )
    with WriteBehind(path) as flushing:
        flushing.request()
        for _ in range(200):  # the thread picks the request up
            if synced:
                break
            threading.Event().wait(0.005)
        assert len(synced) == 1
    assert synced[0][1] == str(path)
    assert threads == ["authml-write-behind"]
    with pytest.raises(OSError):  # closed on the way out
        os.fstat(synced[0][0])


def test_requests_made_during_a_sync_are_merged_into_one(tmp_path, monkeypatch):
    path = tmp_path / "store.duckdb"
    path.write_bytes(b"rows")
    syncing, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow_sync(descriptor: int) -> None:
        calls.append(descriptor)
        syncing.set()
        release.wait(5)

    monkeypatch.setattr(write_behind, "_sync", slow_sync)
    with WriteBehind(path) as flushing:
        flushing.request()
        assert syncing.wait(5)
        for _ in range(5):
            flushing.request()
        release.set()
    assert len(calls) <= 2  # the one under way, then at most one for all that came during it


def test_a_failing_sync_or_a_missing_file_is_given_up_silently(tmp_path, monkeypatch):
    def failing(descriptor: int) -> None:
        raise OSError("not supported here")

    path = tmp_path / "store.duckdb"
    path.write_bytes(b"rows")
    monkeypatch.setattr(write_behind, "_sync", failing)
    with WriteBehind(path) as flushing:
        flushing.request()
        flushing.request()
    with WriteBehind(tmp_path / "missing.duckdb") as flushing:
        flushing.request()


def test_a_scoring_run_syncs_the_store_as_its_parts_are_written(scored_project_source, tmp_path, synced):
    source, model = scored_project_source
    project = copy_project(source, tmp_path / "project")
    messages: list[str] = []
    run_scoring(project, model, ScoreOptions(chunk_rows=400), messages.append)
    parts = sum(message.startswith("scored events") for message in messages)
    assert parts >= 3
    assert 1 <= len(synced) <= parts
    assert {name for _, name in synced} == {str(project / "store.duckdb")}
