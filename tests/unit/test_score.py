"""Scoring in embedded mode: idempotent upserts, checkpoints, records, per-account risk, explain."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pyarrow as pa
import pytest

from authml.embedded.feature_reader import EmbeddedFeatureReader
from authml.embedded.score_views import scenario_labels
from authml.embedded.scores import read_scores, read_user_risk, risk_level
from authml.embedded.store import Store
from authml.errors import InputError, NotReadyError
from authml.score.explain import explain_event, explain_user
from authml.score.records import IDENTITY_FIELDS, score_record
from authml.score.run import ScoreOptions, run_scoring
from authml.train.feature_sql import FeatureWindow

pytestmark = pytest.mark.timeout(300)


def _scores(project_dir):
    with Store.open(project_dir, read_only=True) as store:
        return read_scores(store)


def test_same_window_twice_gives_same_scores_and_no_duplicates(scored_project):
    project_dir, model = scored_project
    window = ScoreOptions(since=datetime(2025, 11, 3), until=datetime(2025, 11, 20))
    first = run_scoring(project_dir, model, window)
    before = {r["score_id"]: (r["score"], r["reasons"], r["detector_scores"]) for r in _scores(project_dir)}
    second = run_scoring(project_dir, model, window)
    after = _scores(project_dir)
    assert first.events_scored == second.events_scored == len(before) > 1000
    assert len(after) == len(before) == len({r["event_id"] for r in after})
    assert {r["score_id"]: (r["score"], r["reasons"], r["detector_scores"]) for r in after} == before
    assert all(r["score_id"] == f"{r['event_id']}:test-model-1" for r in after)


def test_checkpoint_scores_only_what_arrived_since_the_last_run(scored_project):
    project_dir, model = scored_project
    first = run_scoring(project_dir, model, ScoreOptions())
    again = run_scoring(project_dir, model, ScoreOptions())
    assert first.events_scored > 1000 and first.mode == "checkpoint"
    assert again.events_scored == 0
    with Store.open(project_dir) as store:
        store.connection.execute(
            """UPDATE events SET "event.ingested" = "event.ingested" + INTERVAL 1 DAY
               WHERE _id IN (SELECT _id FROM events WHERE "event.code" IN ('4624', '4625')
                             AND "user.name" IS NOT NULL ORDER BY "@timestamp" DESC LIMIT 5)"""
        )
        store.connection.execute("UPDATE feature_checkpoints SET sync_upper = sync_upper + INTERVAL 1 DAY")
    later = run_scoring(project_dir, model, ScoreOptions())
    assert 5 <= later.events_scored < first.events_scored
    assert len(_scores(project_dir)) == first.events_scored


def test_scoring_refuses_when_features_are_behind_the_events(scored_project):
    project_dir, model = scored_project
    with Store.open(project_dir) as store:
        store.connection.execute("UPDATE feature_checkpoints SET sync_upper = sync_upper - INTERVAL 1 HOUR")
    with pytest.raises(NotReadyError, match="authml features build"):
        run_scoring(project_dir, model, ScoreOptions())


def test_adapter_agrees_with_the_detector(scored_project_source):
    project_dir, model = scored_project_source
    with EmbeddedFeatureReader.open(project_dir) as reader:
        frame = reader.read_events(FeatureWindow())
    scored = model.score(frame)
    np.testing.assert_allclose(scored.scores, model.detector.score(frame))
    np.testing.assert_allclose(scored.detector_scores["rarity"], model.detector.rarity.score(frame))
    assert set(scored.detector_scores) == {"rarity", *model.detector.parts}
    top = int(np.argmax(scored.scores))
    assert scored.reasons[top] and all(scored.reasons[top])
    assert not any(scored.reasons[i] for i in np.flatnonzero(scored.contributions.max(axis=1) == 0))


def test_the_detector_in_passes_of_rows_gives_what_one_pass_gives(scored_project_source, monkeypatch):
    import authml.detect.combined as combined_module

    project_dir, model = scored_project_source
    with EmbeddedFeatureReader.open(project_dir) as reader:
        frame = reader.read_events(FeatureWindow())
    once = model.score(frame, reasons_from=20.0)
    passes: list[int] = []
    explain = type(model.detector.rarity).explain
    monkeypatch.setattr(
        type(model.detector.rarity),
        "explain",
        lambda self, rows: passes.append(len(rows)) or explain(self, rows),
    )
    monkeypatch.setattr(combined_module, "ROWS_PER_PASS", 300)
    in_passes = model.score(frame, reasons_from=20.0)
    assert len(passes) == -(-len(frame) // 300) >= 4 and max(passes) == 300
    np.testing.assert_array_equal(in_passes.scores, once.scores)
    np.testing.assert_array_equal(in_passes.contributions, once.contributions)
    assert in_passes.detector_scores.keys() == once.detector_scores.keys()
    for name, values in once.detector_scores.items():
        np.testing.assert_array_equal(in_passes.detector_scores[name], values)
    assert in_passes.reasons == once.reasons and any(once.reasons)
    np.testing.assert_array_equal(model.detector.score(frame), once.scores)


def test_record_holds_exactly_the_listed_fields(scored_project):
    project_dir, model = scored_project
    run_scoring(project_dir, model, ScoreOptions())
    row = max(_scores(project_dir), key=lambda r: r["score"])
    record = json.loads(json.dumps(score_record(row)))
    flat = set()

    def walk(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict) and key != "detector_scores":
                walk(value, f"{prefix}{key}.")
            else:
                flat.add(prefix + key)

    walk(record)
    authml = {
        "authml.event_id",
        "authml.score",
        "authml.detector_scores",
        "authml.reasons",
        "authml.model_version",
    }
    assert authml <= flat and flat - authml <= set(IDENTITY_FIELDS)
    assert {"@timestamp", "user.name", "event.code", "winlog.record_id"} <= flat
    assert record["@timestamp"].endswith("Z") and record["authml"]["reasons"] == row["reasons"]
    row_without_source_id = {**row, "event.id": None}
    assert "id" not in score_record(row_without_source_id)["event"]


def test_user_risk_is_the_highest_recent_score(scored_project):
    project_dir, model = scored_project
    run_scoring(project_dir, model, ScoreOptions(risk_days=1000))
    rows = _scores(project_dir)
    with Store.open(project_dir, read_only=True) as store:
        risks = read_user_risk(store)
    assert risks and risks == sorted(risks, key=lambda r: (-r["score"], -r["evidence"], r["user_key"]))
    top = risks[0]
    own = [r for r in rows if r["user_key"] == top["user_key"]]
    assert top["score"] == pytest.approx(max(r["score"] for r in own))
    assert top["level"] == risk_level(top["score"])
    assert top["anomalies"] == sum(r["is_anomaly"] for r in own)
    best = max(own, key=lambda r: r["score"])
    assert top["top_reasons"][: len(best["reasons"])] == best["reasons"][:5]


def test_risk_levels():
    assert [risk_level(s) for s in (0, 30, 55, 90)] == ["low", "medium", "high", "critical"]


def test_top_reasons_keep_score_order_and_drop_repeats(scored_project):
    project_dir, model = scored_project
    run_scoring(project_dir, model, ScoreOptions(risk_days=1000))
    with Store.open(project_dir, read_only=True) as store:
        risks = read_user_risk(store)
        for risk in risks[:10]:
            rows = read_scores(
                store,
                where="user_key = ?",
                parameters=[risk["user_key"]],
                order_by="score DESC, evidence DESC, event_id DESC",
                limit=3,
            )
            expected = list(dict.fromkeys(r for row in rows for r in row["reasons"]))[:5]
            assert risk["top_reasons"] == expected


def test_injected_attacks_rank_among_the_top_alerts(scored_project):
    project_dir, model = scored_project
    run_scoring(project_dir, model, ScoreOptions())
    top = sorted(_scores(project_dir), key=lambda r: -r["score"])[:20]
    with Store.open(project_dir, read_only=True) as store:
        labels = scenario_labels(store, [r["event_id"] for r in top])
    assert len(labels) >= 5, labels
    # only the labelled events: the generator's benign events carry no scenario
    assert all(isinstance(label, str) and label for label in labels.values()), labels


def test_explain_event_and_user(scored_project):
    project_dir, model = scored_project
    run_scoring(project_dir, model, ScoreOptions())
    row = max(_scores(project_dir), key=lambda r: r["score"])
    with Store.open(project_dir, read_only=True) as store:
        document, lines = explain_event(store, row["event_id"])
        text = "\n".join(lines)
        assert row["reasons"] and all(reason in text for reason in row["reasons"])
        # the top event is its alert's top event, and its alert ranks first
        assert document["alert"]["rank"] == 1 and document["alert"]["events"] >= 1
        assert "alert: " in text and ", ranked 1" in text
        assert "usual hours (UTC):" in text and f"baseline of {row['user.name']}" in text
        assert document["event"]["event.code"] == row["event.code"]
        assert document["baseline"]["before"] == row["@timestamp"]
        user_document, user_lines = explain_user(store, row["user.name"])
        assert user_document["events"][0]["event_id"] == row["event_id"]
        assert "source IPs:" in "\n".join(user_lines)
        with pytest.raises(InputError, match="no event with id"):
            explain_event(store, "not-an-id")
        with pytest.raises(InputError, match="no scored account"):
            explain_user(store, "nobody-here")


def test_evidence_orders_events_that_reach_the_cap(scored_project):
    """Alerts rank by their top event's score and, among events capped at 100, its evidence."""
    from authml.embedded.score_views import alerts_sql

    project_dir, model = scored_project
    run_scoring(project_dir, model, ScoreOptions())
    rows = _scores(project_dir)
    for row in rows:
        assert row["evidence"] == pytest.approx(sum(row["detector_scores"].values()))
    capped = {r["event_id"]: r["evidence"] for r in rows if r["score"] >= 100.0}
    with Store.open(project_dir, read_only=True) as store:
        ranked = store.connection.execute(
            f"SELECT top_event_id, top_score, top_evidence FROM ({alerts_sql()}) ORDER BY rank"
        ).fetchall()
    at_cap = [(event_id, evidence) for event_id, score, evidence in ranked if score >= 100.0]
    assert [evidence for _, evidence in at_cap] == sorted((e for _, e in at_cap), reverse=True)
    assert all(capped[event_id] == evidence for event_id, evidence in at_cap)
    assert len(at_cap) <= len(capped) and bool(at_cap) == bool(capped)


def test_cli_usage_errors_say_what_to_do(tmp_path):
    from click.testing import CliRunner

    from authml.cli import cli

    runner = CliRunner()
    backfill = runner.invoke(cli, ["--project-dir", str(tmp_path), "score", "--backfill"])
    assert backfill.exit_code == 2 and "add --es" in backfill.output
    neither = runner.invoke(cli, ["--project-dir", str(tmp_path), "explain"])
    assert neither.exit_code == 2 and "EVENT_ID or --user" in neither.output


def test_user_risk_reads_each_events_newest_score_within_the_window(scored_project):
    """A second model version rescoring part of the events replaces their scores in the risk;
    a short window keeps only the events in the days before the newest one."""
    from datetime import timedelta

    from authml.embedded.scores import ScoreBatch, update_user_risk, write_scores

    project_dir, model = scored_project
    run_scoring(project_dir, model, ScoreOptions(risk_days=1000))
    first = _scores(project_dir)
    rescored = first[::3]
    later = max(r["scored_at"] for r in first) + timedelta(hours=1)
    with Store.open(project_dir) as store:
        with store.transaction():
            write_scores(
                store,
                ScoreBatch(
                    [r["event_id"] for r in rescored],
                    [100.0 - r["score"] for r in rescored],
                    {"rarity": [1.0] * len(rescored)},
                    [("second model",)] * len(rescored),
                ),
                model_version="test-model-2",
                threshold=50.0,
                scored_at=later,
            )
            update_user_risk(store, model_version="test-model-2", window_days=1.5, now=later)
        risks = {r["user_key"]: r for r in read_user_risk(store)}
    newest = {r["event_id"]: r for r in first}
    newest.update({r["event_id"]: r for r in _scores(project_dir) if r["model_version"] == "test-model-2"})
    since = max(r["@timestamp"] for r in newest.values()) - timedelta(days=1.5)
    assert set(risks) == {r["user_key"] for r in newest.values()}
    for key, risk in risks.items():
        recent = [r for r in newest.values() if r["user_key"] == key and r["@timestamp"] > since]
        assert risk["score"] == pytest.approx(max((r["score"] for r in recent), default=0.0)), key
        assert risk["anomalies"] == sum(r["is_anomaly"] for r in recent), key
        assert risk["events_scored"] == len(recent), key


def test_reasons_array_holds_each_rows_reasons_made_from_the_explained_rows_alone():
    from authml.score.model import ScoredFrame

    reasons = [(), ("new source IP", "rare hour"), (), ("burst of failures",), (), ()]
    scored = ScoredFrame(
        scores=np.array([1.0, 90.0, 2.0, 80.0, 60.0, 3.0]),
        detector_scores={},
        contributions=np.zeros((6, 1)),
        explained=np.array([1, 3, 4]),  # row 4 was explained and has no reason line
        explained_reasons=pa.array([["new source IP", "rare hour"], ["burst of failures"], []]),
    )
    assert scored.reasons == reasons
    assert scored.reasons_array().to_pylist() == [list(r) for r in reasons]
    sliced = pa.array([["x"], ["new source IP", "rare hour"], ["burst of failures"], [], ["y"]]).slice(1, 3)
    scored.explained_reasons = sliced  # a slice of a larger array: its own rows' sentences only
    assert scored.reasons_array().to_pylist() == [list(r) for r in reasons]


def test_cli_says_whether_a_window_or_the_checkpoint_had_nothing_to_score(scored_project, monkeypatch):
    from click.testing import CliRunner

    import authml.score.model as model_module
    from authml.cli import cli

    project_dir, model = scored_project
    monkeypatch.setattr(model_module, "load_current_model", lambda project: model)
    runner = CliRunner()
    score = ["--project-dir", str(project_dir), "score"]
    empty = runner.invoke(cli, [*score, "--since", "2030-01-01", "--until", "2030-01-02"])
    assert empty.exit_code == 0, empty.output
    assert "no authentication events to score from 2030-01-01T00:00:00 to 2030-01-02T00:00:00" in empty.output
    first, again = runner.invoke(cli, score), runner.invoke(cli, score)
    assert first.exit_code == again.exit_code == 0
    assert "scored " in first.output and "no new events to score since the last run" in again.output
