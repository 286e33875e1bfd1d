"""Evaluation: ranking metrics against hand-computed values, alert grouping, and `authml eval`
end to end on a small generated scenario."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from authml.cli import cli
from authml.train.metrics import (
    alert_subjects,
    average_precision,
    average_ranks,
    budget_alerts,
    group_alerts,
    roc_auc,
)


def test_roc_auc_counts_pairs_and_half_ties():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    positive = np.array([True, False, True, False])
    assert roc_auc(scores, positive) == pytest.approx(0.75)
    assert roc_auc(np.array([1.0, 1.0]), np.array([True, False])) == pytest.approx(0.5)
    assert np.isnan(roc_auc(scores, np.zeros(4, dtype=bool)))


def test_average_precision_is_the_step_sum():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    positive = np.array([True, False, True, False])
    assert average_precision(scores, positive) == pytest.approx((1 / 1 + 2 / 3) / 2)
    # a tie between a positive and a negative counts as flagged together
    assert average_precision(np.array([1.0, 1.0, 0.0]), np.array([True, False, False])) == pytest.approx(0.5)


def test_average_ranks_share_ties():
    np.testing.assert_allclose(average_ranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1.0, 3.5, 2.0])


def test_a_spray_is_one_alert_not_one_per_account():
    users = np.array(["a", "b", "c", "d", "a"], dtype=object)
    ips = np.array(["10.6.6.6", "10.6.6.6", "10.6.6.6", "10.1.1.1", "10.6.6.6"], dtype=object)
    days = np.array(["2024-01-01"] * 4 + ["2024-01-02"])
    strength = np.array([5.0, 0.0, 0.0, 0.0, 0.0])
    subjects = alert_subjects(users, ips, days, strength)
    assert subjects.tolist() == ["source:10.6.6.6"] * 3 + ["account:d", "account:a"]
    alerts = group_alerts(np.array([9.0, 1.0, 2.0, 5.0, 3.0]), subjects, days)
    assert alerts.keys.tolist() == [
        "source:10.6.6.6|2024-01-01",
        "account:d|2024-01-01",
        "account:a|2024-01-02",
    ]
    assert alerts.group_of_event.tolist() == [0, 0, 0, 1, 2]


def test_loopback_is_never_a_source_alert():
    users = np.array(["a", "b"], dtype=object)
    ips = np.array(["127.0.0.1", "127.0.0.1"], dtype=object)
    subjects = alert_subjects(users, ips, np.array(["d", "d"]), np.array([3.0, 3.0]))
    assert subjects.tolist() == ["account:a", "account:b"]


def test_budget_is_alerts_per_account_day_at_least_one():
    assert budget_alerts(170, 0.05) == 8
    assert budget_alerts(3, 0.05) == 1


@pytest.mark.slow
def test_eval_end_to_end_on_a_generated_scenario(tmp_path):
    runner = CliRunner()
    project = ["--project-dir", str(tmp_path / "project")]
    generated = tmp_path / "generated"
    steps = [
        [
            "generate",
            "--users",
            "12",
            "--days",
            "10",
            "--attacks",
            "--attack-days",
            "3",
            "--out",
            str(generated),
        ],
        ["ingest", str(generated / "events.ndjson")],
        ["features", "build"],
    ]
    for step in steps:
        result = runner.invoke(cli, [*project, *step])
        assert result.exit_code == 0, (step, result.output)
    result = runner.invoke(
        cli, [*project, "eval", "--epochs", "2", "--json", "--out", str(tmp_path / "eval.json")]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert json.loads((tmp_path / "eval.json").read_text()) == figures
    labels = {json.loads(line)["scenario"] for line in (generated / "labels.ndjson").read_text().splitlines()}
    assert set(figures["scenarios"]) == labels
    for scenario, by_detector in figures["scenarios"].items():
        assert set(by_detector) == {"authml", "baseline_autoencoder", "baseline_kmeans"}, scenario
        ours = by_detector["authml"]
        assert 0.0 <= ours["pr_auc"] <= 1.0 and ours["first_alert_rank"] >= 1
        assert 1 <= ours["first_event_rank"] <= figures["eval_events"]
        assert ours["roc_auc"] > 0.8, (scenario, ours)
    assert figures["top_alerts"] and all(alert["reason"] for alert in figures["top_alerts"])


def test_run_as_user_and_the_borrowed_account_share_one_alert():
    users = np.array(["brian", "adm_sara", "adm_sara", "carol"], dtype=object)
    ips = np.array(["10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2"], dtype=object)
    days = np.array(["d1", "d1", "d2", "d1"])
    targets = np.array(["adm_sara", None, None, None], dtype=object)
    subjects = alert_subjects(
        users, ips, days, np.zeros(4), np.array(["h"] * 4, dtype=object), np.zeros(4, bool), targets
    )
    assert subjects.tolist() == ["account:brian", "account:brian", "account:adm_sara", "account:carol"]


def test_eval_without_labels_is_a_benign_only_run(tmp_path):
    from tests.unit.train_store import benign_history, build_feature_tables, write_events

    store = write_events(tmp_path / "project", benign_history(6, 14, seed=2))
    build_feature_tables(store)
    store.close()
    result = CliRunner().invoke(
        cli, ["--project-dir", str(tmp_path / "project"), "eval", "--epochs", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["scenarios"] == {}
    assert set(figures["benign"]) == {"authml", "baseline_autoencoder", "baseline_kmeans"}
    assert figures["benign"]["authml"]["user_days"] > 0


def test_an_address_less_failure_joins_the_strongest_source_alert_of_its_account():
    """Carol's own workstation had two typos (a weak source finding) and a sprayer failed her
    (a strong one): the DC's address-less check of the sprayed password joins the sprayer."""
    users = np.array(["carol", "carol", "carol"], dtype=object)
    ips = np.array(["10.6.6.6", "10.0.0.7", None], dtype=object)
    days = np.array(["d1"] * 3)
    strength = np.array([9.0, 1.0, 0.0])
    host_finding = np.array([False, False, True])
    hosts = np.array(["dc01"] * 3, dtype=object)
    for order in ([0, 1, 2], [1, 0, 2]):
        subjects = alert_subjects(users[order], ips[order], days, strength[order], hosts, host_finding[order])
        assert subjects[order.index(2)] == "source:10.6.6.6"


def test_the_check_of_the_password_that_worked_joins_the_sprayers_alert():
    users = np.array(["carol", "carol", "carol"], dtype=object)
    ips = np.array(["10.6.6.6", None, None], dtype=object)
    days = np.array(["d1"] * 3)
    hosts = np.array(["dc01"] * 3, dtype=object)
    no_host_finding = np.zeros(3, dtype=bool)
    finding = np.array([True, True, False])  # the success validated at the DC has a finding
    subjects = alert_subjects(
        users, ips, days, np.array([9.0, 0.0, 0.0]), hosts, no_host_finding, finding=finding
    )
    assert subjects.tolist() == ["source:10.6.6.6", "source:10.6.6.6", "account:carol"]
