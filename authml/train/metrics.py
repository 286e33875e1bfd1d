"""Ranking metrics and alert budgets, in plain numpy.

An *alert* is what an analyst opens: the events of one subject on one day, scored by the highest
of them. The subject is the source IP when the event's strongest finding is about the source
(password spray, failures from one address), else the account. The alert budget is a number of
alerts per active account-day in the evaluated window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SOURCE_FINDINGS = ("password_spray", "source_failure_burst")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, counts)
    return ranks


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive outscores a negative (ties count half); NaN without both."""
    positives, negatives = int(positive.sum()), int((~positive).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[positive].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the precision-recall curve as the step sum over distinct score thresholds."""
    positives = int(positive.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    ordered_scores, hits = np.asarray(scores)[order], positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(ordered_scores) != 0), len(ordered_scores) - 1]
    true_positives = np.cumsum(hits)[last_of_tie]
    flagged = last_of_tie + 1
    precision = true_positives / flagged
    recall = true_positives / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(slots=True)
class Alerts:
    """Events grouped into alerts, best alert first."""

    group_of_event: np.ndarray  # alert index (0 = best) of each event
    group_scores: np.ndarray  # max event score per alert, descending
    keys: np.ndarray  # subject|day per alert


def group_alerts(scores: np.ndarray, subjects: np.ndarray, days: np.ndarray) -> Alerts:
    keys = np.char.add(np.char.add(subjects.astype(str), "|"), days.astype(str))
    unique, inverse = np.unique(keys, return_inverse=True)
    best = np.full(len(unique), -np.inf)
    np.maximum.at(best, inverse, scores)
    order = np.argsort(-best, kind="mergesort")
    position = np.empty(len(unique), dtype=np.int64)
    position[order] = np.arange(len(unique))
    return Alerts(position[inverse], best[order], unique[order])


def alert_subjects(users: np.ndarray, source_ips: np.ndarray, top_finding: np.ndarray | None) -> np.ndarray:
    """The subject of each event's alert: its source IP for source findings, else its account."""
    by_user = np.char.add("account:", np.where(users == None, "", users).astype(str))  # noqa: E711
    if top_finding is None:
        return by_user
    by_source = np.char.add("source:", np.where(source_ips == None, "", source_ips).astype(str))  # noqa: E711
    return np.where(np.isin(top_finding, SOURCE_FINDINGS) & (source_ips != None), by_source, by_user)  # noqa: E711


def budget_alerts(user_days: float, budget: float) -> int:
    """Alerts allowed in the window: budget per account-day, at least one."""
    return max(1, int(np.floor(budget * user_days)))
