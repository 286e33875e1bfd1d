"""Ranking metrics and alert budgets, in plain numpy.

An *alert* is what an analyst opens: the events of one subject on one day, scored by the highest
of them. The subject is the source IP when the event's strongest finding is about the source
(password spray, failures from one address), else the account. The alert budget is a number of
alerts per active account-day in the evaluated window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SOURCE_FINDINGS = ("password_spray", "source_failure_burst", "success_from_spraying_source")
HOST_FINDINGS = ("host_failure_spread", "account_failure_burst")
# Loopback and placeholder addresses name no machine: they are never an alert's subject.
NOT_AN_ADDRESS = ("127.0.0.1", "::1", "-", "::ffff:127.0.0.1", "0.0.0.0", "")


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


def alert_subjects(
    users: np.ndarray,
    source_ips: np.ndarray,
    days: np.ndarray,
    source_strength: np.ndarray | None,
    hosts: np.ndarray | None = None,
    host_finding: np.ndarray | None = None,
    credential_targets: np.ndarray | None = None,
    finding: np.ndarray | None = None,
) -> np.ndarray:
    """The subject of each event's alert. Where any event of a source IP on a day has a source
    finding (spray, failures from one address), every event of that IP on that day belongs to the
    source's alert: one incident, not one alert per sprayed account. Failures without a source
    address that spread over many accounts on one host (NTLM checks at a DC) belong to that
    host's alert, and an address-less event with any ``finding`` (the DC's check of the one
    password that worked) of an account a source alert holds that day joins that alert.
    Otherwise the account. An account whose credentials another account used
    explicitly (run-as, event 4648) that day shares the user's alert: one incident."""
    by_user = np.char.add("account:", np.where(users == None, "", users).astype(str))  # noqa: E711
    if source_strength is None:
        return by_user
    source_finding = source_strength > 0
    has_ip = (source_ips != None) & ~np.isin(source_ips, NOT_AN_ADDRESS)  # noqa: E711
    ip_day = np.char.add(np.char.add(np.where(has_ip, source_ips, "").astype(str), "|"), days.astype(str))
    flagged = np.unique(ip_day[source_finding & has_ip])
    in_source_alert = has_ip & np.isin(ip_day, flagged)
    by_source = np.char.add("source:", np.where(has_ip, source_ips, "").astype(str))
    subjects = np.where(in_source_alert, by_source, by_user)
    if hosts is not None and host_finding is not None:
        # A failure without an address joins the source alert that already holds its account
        # that day (the DC's NTLM check of a sprayed password), else its host's alert; so does
        # an address-less success with a finding (the check of the password that worked).
        user_day = np.char.add(np.char.add(by_user, "|"), days.astype(str))
        # an account in several source alerts that day (its own workstation's typos, and the
        # sprayer) is held by the one with the strongest source finding: later entries win
        held = np.flatnonzero(in_source_alert)
        held = held[np.argsort(source_strength[held], kind="stable")]
        holder = dict(zip(user_day[held].tolist(), by_source[held].tolist(), strict=True))
        joined = np.array([holder.get(key, "") for key in user_day.tolist()], dtype=object)
        by_host = np.char.add("host:", np.where(hosts == None, "", hosts).astype(str))  # noqa: E711
        to_holder = ~has_ip & (joined != "") & (host_finding if finding is None else host_finding | finding)
        to_host = host_finding & ~has_ip & (joined == "")
        subjects = np.where(to_holder, joined, np.where(to_host, by_host, subjects)).astype(str)
    if credential_targets is not None:
        subjects = _merge_credential_targets(subjects, credential_targets, days)
    return subjects


def _merge_credential_targets(subjects: np.ndarray, targets: np.ndarray, days: np.ndarray) -> np.ndarray:
    # a computer account ($) logs 4648 for every interactive logon on its machine: not a run-as
    machine = np.char.endswith(subjects.astype(str), "$")
    has_target = (targets != None) & ~machine  # noqa: E711
    if not has_target.any():
        return subjects
    day_text = days.astype(str)
    used_by = {
        f"account:{target}|{day}": subject
        for target, day, subject in zip(
            targets[has_target], day_text[has_target], subjects[has_target], strict=True
        )
    }
    keys = np.char.add(np.char.add(subjects.astype(str), "|"), day_text)
    return np.array(
        [used_by.get(key, subject) for key, subject in zip(keys.tolist(), subjects.tolist(), strict=True)]
    )


def budget_alerts(user_days: float, budget: float) -> int:
    """Alerts allowed in the window: budget per account-day, at least one."""
    return max(1, int(np.floor(budget * user_days)))
