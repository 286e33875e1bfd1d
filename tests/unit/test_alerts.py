"""Alerts: scored events grouped by where they came from within an hour, ranked by their top event
(authml.embedded.score_views.alerts_sql), as the report lists them and the demo counts them."""

from __future__ import annotations

from datetime import datetime

import pytest

from authml.embedded.score_views import alerts_sql, top_alerts
from authml.embedded.scores import create_score_tables
from authml.embedded.store import Store
from authml.report.summary import attack_summary

# event id, time, account, source address, host, event code, score, evidence
SCORED = [
    ("a1", datetime(2025, 3, 1, 10, 5), "ann", "10.0.0.5", "dc01", "4625", 90.0, 20.0),
    ("a2", datetime(2025, 3, 1, 10, 40), "bob", "10.0.0.5", "dc01", "4625", 95.0, 21.0),
    ("a3", datetime(2025, 3, 1, 11, 1), "ann", "10.0.0.5", "dc01", "4625", 50.0, 9.0),  # the next hour
    ("n1", datetime(2025, 3, 1, 10, 10), "cat", None, "dc01", "4776", 99.0, 30.0),
    ("n2", datetime(2025, 3, 1, 10, 20), "dan", "-", "dc01", "4776", 10.0, 1.0),  # "-" is no address
    ("n3", datetime(2025, 3, 1, 10, 25), "dan", "::1", "dc01", "4624", 99.0, 31.0),  # another code
    ("h1", datetime(2025, 3, 1, 10, 30), "eve", None, None, "4624", 40.0, 7.0),  # no host either
]


def _store_with_scores(project_dir) -> Store:
    store = Store.open(project_dir, create=True)
    with store.transaction():
        create_score_tables(store)
        for event_id, moment, user, source, host, code, score, evidence in SCORED:
            store.connection.execute(
                """INSERT INTO scores (event_id, "@timestamp", "user.name", user_key, "source.ip", "host.name",
                   "event.code", score, evidence, detector_scores, reasons, is_anomaly, threshold, model_version,
                   scored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '{}', [], ? >= 45, 45, 'v2', TIMESTAMP '2025-03-02')""",
                [event_id, moment, user, user, source, host, code, score, evidence, score],
            )
        # an older model version's score of a1 does not count: each event's newest score does
        store.connection.execute(
            """INSERT INTO scores (event_id, "@timestamp", "user.name", user_key, "source.ip", score, evidence,
               detector_scores, reasons, is_anomaly, threshold, model_version, scored_at)
               VALUES ('a1', TIMESTAMP '2025-03-01 10:05:00', 'ann', 'ann', '10.9.9.9', 100, 99, '{}', [], true,
               45, 'v1', TIMESTAMP '2025-03-01')"""
        )
    return store


def test_events_group_by_source_address_then_host_and_code_then_account_per_hour(tmp_path):
    with _store_with_scores(tmp_path) as store:
        rows = store.connection.execute(
            f"SELECT rank, alert_by, alert_key, alert_hour, events, anomalies, accounts, top_event_id, top_score "
            f"FROM ({alerts_sql()}) ORDER BY rank"
        ).fetchall()
    ten, eleven = datetime(2025, 3, 1, 10), datetime(2025, 3, 1, 11)
    assert rows == [
        (1, "host.name", "4624 on dc01", ten, 1, 1, 1, "n3", 99.0),  # 99 with more evidence than n1
        (2, "host.name", "4776 on dc01", ten, 2, 1, 2, "n1", 99.0),
        (3, "source.ip", "10.0.0.5", ten, 2, 2, 2, "a2", 95.0),
        (4, "source.ip", "10.0.0.5", eleven, 1, 1, 1, "a3", 50.0),
        (5, "account", "eve", ten, 1, 0, 1, "h1", 40.0),
    ]


def test_top_alerts_give_each_alerts_top_event_with_the_alert(tmp_path):
    with _store_with_scores(tmp_path) as store:
        top = top_alerts(store, 3)
        none_asked = top_alerts(store, 0)
    # five alerts, four of them holding an event at or above the threshold (eve's 40 is not)
    assert (top.alerts, top.with_anomalies) == (5, 4)
    assert (none_asked.events, none_asked.alerts, none_asked.with_anomalies) == ([], 5, 4)
    top = top.events
    assert [row["event_id"] for row in top] == ["n3", "n1", "a2"]
    assert [row["alert"]["rank"] for row in top] == [1, 2, 3]
    assert top[2]["score"] == 95.0 and top[2]["user.name"] == "bob"
    assert top[2]["alert"] == {
        "alert_by": "source.ip",
        "alert_key": "10.0.0.5",
        "alert_hour": datetime(2025, 3, 1, 10),
        "events": 2,
        "anomalies": 2,
        "accounts": 2,
        "rank": 3,
    }


def test_an_injected_scenarios_best_alert_ranks_no_lower_than_its_best_event(scored_project):
    """An alert ranks by its top event, and the alerts above it have top events above that one:
    so the alert holding a scenario's best event ranks at or above that event."""
    from authml.score.run import ScoreOptions, run_scoring

    project_dir, model = scored_project
    run_scoring(project_dir, model, ScoreOptions())
    with Store.open(project_dir, read_only=True) as store:
        summary = attack_summary(store, 20)
        (alerts,) = store.connection.execute(f"SELECT count(*) FROM ({alerts_sql()})").fetchone()
        (events,) = store.connection.execute("SELECT count(DISTINCT event_id) FROM scores").fetchone()
    assert summary["scenarios"] and alerts < events
    for scenario in summary["scenarios"]:
        assert scenario["best_alert_rank"] <= scenario["best_rank"], scenario
    assert summary["scenarios_in_top_alerts"] >= summary["scenarios_in_top"]
    assert summary["scenarios_in_top_alerts"] == sum(
        1 for s in summary["scenarios"] if s["best_alert_rank"] <= 20
    )


@pytest.mark.parametrize("limit", [1, 5, 50])
def test_top_alerts_are_as_many_as_asked_and_alerts_exist(tmp_path, limit):
    with _store_with_scores(tmp_path) as store:
        assert len(top_alerts(store, limit).events) == min(limit, 5)


def test_the_newest_scores_are_every_row_when_one_model_version_scored(tmp_path):
    from authml.embedded.score_views import latest_scores_sql

    with _store_with_scores(tmp_path) as store:

        def rows(sql: str) -> list[tuple]:
            return sorted(store.connection.execute(f"SELECT event_id, score FROM ({sql})").fetchall())

        assert latest_scores_sql(store) == latest_scores_sql()  # two versions: the newest of each
        assert len(rows(latest_scores_sql(store))) == len(SCORED) and ("a1", 90.0) in rows(
            latest_scores_sql()
        )
        store.connection.execute("DELETE FROM scores WHERE model_version = 'v1'")
        assert latest_scores_sql(store) == "SELECT * FROM scores"
        assert rows(latest_scores_sql(store)) == rows(latest_scores_sql())


def test_the_newest_score_condition_keeps_each_events_newest_row(tmp_path):
    from authml.embedded.score_views import newest_score_condition
    from authml.embedded.scores import read_scores

    with _store_with_scores(tmp_path) as store:
        rows = read_scores(store, where=newest_score_condition(store))
        assert sorted((r["event_id"], r["model_version"]) for r in rows) == sorted(
            (event_id, "v2") for event_id, *_ in SCORED
        )  # a1's older v1 score is left out
        store.connection.execute("DELETE FROM scores WHERE model_version = 'v1'")
        assert newest_score_condition(store) == "true"  # one version: every row is the newest
