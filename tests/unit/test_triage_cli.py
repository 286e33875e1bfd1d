"""`authml triage`: real EVTX recordings to ranked alerts in one command, and a second run over
the same files that adds nothing."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from authml.cli import cli, main
from authml.embedded.store import Store
from authml.score.explain import explain_event


def _triage(project, *args):
    return CliRunner().invoke(cli, ["--project-dir", str(project), "triage", *args])


def test_a_folder_of_evtx_files_becomes_ranked_alerts_in_one_command(evtx_samples, tmp_path):
    project = tmp_path / "case"
    report = tmp_path / "out" / "case.html"
    first = _triage(project, str(evtx_samples), "--out", str(report), "--top", "3")
    assert first.exit_code == 0, first.output
    steps = re.findall(r"== authml triage (\d)/5: ([a-z ]+)", first.output)
    assert steps == [
        ("1", "ingest"),
        ("2", "features build"),
        ("3", "train"),
        ("4", "score"),
        ("5", "report"),
    ]
    assert "trained model" in first.output and "scored " in first.output
    listed = re.findall(
        r"^\s+#(\d+)\s+([\d.]+) .*\n\s+authml --project-dir \S+ explain (\S+)$", first.output, re.M
    )
    assert [rank for rank, _, _ in listed] == ["1", "2", "3"]
    scores = [float(score) for _, score, _ in listed]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    top_event = listed[0][2]
    assert top_event in report.read_text(encoding="utf-8")
    with Store.open(project, read_only=True) as store:
        document, lines = explain_event(store, top_event)  # the printed hint names a scored event
    assert document["event_id"] == top_event and lines

    again = _triage(project, str(evtx_samples), "--out", str(report), "--top", "3")
    assert again.exit_code == 0, again.output
    assert "reused model" in again.output and "no new events to score" in again.output
    assert re.findall(r"explain (\S+)$", again.output, re.M) == [event for _, _, event in listed]


def test_no_input_stops_before_anything_is_made(tmp_path):
    project = tmp_path / "case"
    result = _triage(project, str(tmp_path / "missing"))
    assert result.exit_code != 0
    assert "missing does not exist" in str(result.exception)
    assert "2/5" not in result.output
    assert not (project / "store.duckdb").exists()


def test_logs_without_authentication_events_stop_at_training_and_say_why(evtx_samples, tmp_path, capsys):
    system_log = evtx_samples / "parser-samples" / "system.evtx"
    with pytest.raises(SystemExit) as stopped:
        main(["--project-dir", str(tmp_path / "case"), "triage", str(system_log)])
    assert stopped.value.code == 5  # not ready, as `authml train` says it
    error = capsys.readouterr().err
    assert "only 0 authentication events in the training window" in error
    assert error.rstrip().endswith("ingest more data")  # no bound was given, so none to widen
