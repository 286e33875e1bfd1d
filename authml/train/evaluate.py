"""`authml eval`: train on the first weeks of a labelled scenario, evaluate on the last days.

Per attack scenario (``labels.authml_scenario`` on its events): whether an alert budget catches
it, the rank of the first alert that contains it, and ROC-AUC and PR-AUC over events (the
scenario's events against the unlabelled ones). Also the false-alert rate on the unlabelled events
alone, and the same figures for the two baselines of `authml.train.baselines`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from authml.detect.base import frame_text
from authml.detect.combined import CombinedDetector
from authml.errors import NotReadyError
from authml.train.baselines import BaselineKMeans, baseline_autoencoder
from authml.train.feature_sql import FeatureWindow
from authml.train.matrix import EventFrame
from authml.train.metrics import (
    HOST_FINDINGS,
    SOURCE_FINDINGS,
    alert_subjects,
    average_precision,
    budget_alerts,
    group_alerts,
    roc_auc,
)
from authml.train.pipeline import user_days
from authml.train.reader import FeatureReader

DETECTORS = ("authml", "baseline_autoencoder", "baseline_kmeans")


@dataclass(slots=True)
class EvalOptions:
    split: datetime | None = None
    eval_days: int = 3
    budget: float = 0.05
    time_zone: str = "UTC"
    epochs: int = 8
    seed: int = 0
    device: str = "auto"


@dataclass(slots=True)
class EvalResult:
    split: str
    train_events: int
    eval_events: int
    eval_user_days: float
    alert_budget: int
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)
    benign: dict[str, dict[str, Any]] = field(default_factory=dict)
    top_alerts: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def _labels(frame: EventFrame) -> np.ndarray:
    return frame_text(frame, "scenario")


def _scenario_figures(
    scores: np.ndarray, alerts, labels: np.ndarray, budget: int, times: np.ndarray
) -> dict[str, dict[str, Any]]:
    benign = labels == ""
    event_rank = np.empty(len(scores), dtype=np.int64)
    event_rank[np.argsort(-scores, kind="mergesort")] = np.arange(1, len(scores) + 1)
    figures = {}
    for scenario in sorted(set(labels.tolist()) - {""}):
        members = labels == scenario
        considered = members | benign
        first_alert = int(alerts.group_of_event[members].min()) + 1
        figures[scenario] = {
            "events": int(members.sum()),
            "caught": first_alert <= budget,
            "first_alert_rank": first_alert,
            # where the scenario's chronologically first event ranks among all evaluated events
            "first_event_rank": int(event_rank[np.flatnonzero(members)[np.argmin(times[members])]]),
            "roc_auc": round(roc_auc(scores[considered], members[considered]), 4),
            "pr_auc": round(average_precision(scores[considered], members[considered]), 4),
        }
    return figures


def run_evaluation(reader: FeatureReader, options: EvalOptions, progress=lambda message: None) -> EvalResult:
    first, last = reader.time_range()
    if first is None:
        raise NotReadyError("the store holds no authentication events; run `authml ingest` first")
    split = options.split or (
        datetime.combine(last.date(), datetime.min.time()) - timedelta(days=options.eval_days - 1)
    )
    progress(f"reading features (train before {split.isoformat()}, evaluate after)")
    train = reader.read_events(FeatureWindow(end=split, time_zone=options.time_zone), with_labels=True)
    test = reader.read_events(FeatureWindow(start=split, time_zone=options.time_zone), with_labels=True)
    if len(train) < 100 or len(test) == 0:
        raise NotReadyError(
            f"{len(train)} training and {len(test)} evaluation events around {split}; choose another --split"
        )
    labels = _labels(test)
    # Without labelled attacks this is a benign-only run: only the alert rates are reported.
    days = user_days(test)
    budget = budget_alerts(days, options.budget)
    result = EvalResult(split.isoformat(), len(train), len(test), days, budget)
    test_days = test.columns["ts"].astype("datetime64[D]")
    benign = labels == ""
    benign_days = user_days(test.take(np.flatnonzero(benign)))

    progress(f"fitting authml's detectors on {len(train)} events")
    combined = CombinedDetector(
        random_state=options.seed, autoencoder={"epochs": options.epochs, "device": options.device}
    ).fit(train)
    contributions = combined.explain(test)
    raw = contributions.sum(axis=1)
    source_columns = [combined.explanation_names_.index(name) for name in SOURCE_FINDINGS]
    source_strength = contributions[:, source_columns].sum(axis=1)
    host_columns = [combined.explanation_names_.index(name) for name in HOST_FINDINGS]
    host_finding = (contributions[:, host_columns] > 0).any(axis=1)
    subjects = alert_subjects(
        test.columns["user"],
        test.columns["source_ip"],
        test_days,
        source_strength,
        test.columns["host"],
        host_finding,
        test.columns["credential_target"],
        finding=raw > 0,
    )
    runs = {"authml": (raw, subjects, _raw_threshold(combined))}

    progress("fitting the baseline autoencoder (5-16-3-16-5)")
    auto = baseline_autoencoder(epochs=options.epochs, random_state=options.seed, device=options.device).fit(
        train
    )
    user_subjects = alert_subjects(test.columns["user"], test.columns["source_ip"], test_days, None)
    runs["baseline_autoencoder"] = (auto.score(test), user_subjects, auto.threshold_)
    progress("fitting the baseline k-means")
    km = BaselineKMeans(random_state=options.seed).fit(train)
    runs["baseline_kmeans"] = (km.score(test), user_subjects, 1.0)  # above the account's 95th percentile

    for name, (scores, subject, threshold) in runs.items():
        alerts = group_alerts(scores, subject, test_days)
        for scenario, figures in _scenario_figures(
            scores, alerts, labels, budget, test.columns["ts"]
        ).items():
            result.scenarios.setdefault(scenario, {})[name] = figures
        benign_alerts = group_alerts(scores[benign], subject[benign], test_days[benign])
        result.benign[name] = {
            "threshold": round(float(threshold), 4),
            "alerts": int((benign_alerts.group_scores > threshold).sum()),
            "alerts_per_user_day": round(
                float((benign_alerts.group_scores > threshold).sum()) / max(benign_days, 1.0), 4
            ),
            "user_days": benign_days,
        }
    result.top_alerts = _top_alerts(test, combined, raw, contributions, subjects, test_days, labels, budget)
    return result


def _raw_threshold(combined: CombinedDetector) -> float:
    """The raw score at which the calibrated 0-100 score reaches the model's threshold_ (the
    calibration is monotone: bisection)."""
    low, high = 0.0, 1.0
    while combined.score_from_raw(np.array([high]))[0] < combined.threshold_ and high < 1e6:
        low, high = high, high * 2
    for _ in range(60):
        middle = (low + high) / 2
        if combined.score_from_raw(np.array([middle]))[0] < combined.threshold_:
            low = middle
        else:
            high = middle
    return high


def _top_alerts(test, combined, raw, contributions, subjects, days, labels, budget) -> list[dict[str, Any]]:
    alerts = group_alerts(raw, subjects, days)
    rows = []
    for rank in range(min(budget, len(alerts.keys))):
        members = np.flatnonzero(alerts.group_of_event == rank)
        best = members[np.argmax(raw[members])]
        (reason,) = combined.reasons(test.take(np.array([best])), contributions[best : best + 1])
        rows.append(
            {
                "rank": rank + 1,
                "alert": str(alerts.keys[rank]),
                "score": round(float(combined.score_from_raw(raw[best : best + 1])[0]), 1),
                "events": int(len(members)),
                "scenario": sorted(set(labels[members].tolist()) - {""}) or ["(benign)"],
                "reason": reason,
            }
        )
    return rows
