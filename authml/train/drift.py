"""Has behaviour drifted since the model was trained? Population stability index (PSI) per feature
and over the behaviour clusters' shares, decided only with enough new rows to mean anything.

PSI = sum (actual - expected) * ln(actual / expected) over bins; the usual reading is < 0.1 stable,
0.1-0.25 moderate, > 0.25 a real shift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

BINS = 10
EPSILON = 1e-4  # keeps an empty bin from making PSI infinite


def feature_profile(matrix: np.ndarray, names: tuple[str, ...], bins: int = BINS) -> dict[str, Any]:
    """Per-feature bin edges (training quantiles) and the share of training rows in each bin."""
    profile: dict[str, Any] = {}
    for index, name in enumerate(names):
        column = matrix[:, index].astype(np.float64)
        edges = np.unique(np.quantile(column, np.linspace(0, 1, bins + 1)[1:-1]))
        profile[name] = {"edges": edges.tolist(), "shares": _shares(column, edges).tolist()}
    return profile


def _shares(column: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, column, side="right"), minlength=len(edges) + 1)
    return counts / max(len(column), 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    actual = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclass(slots=True)
class DriftReport:
    decision: str  # "retrain", "reuse" or "too-few-rows"
    reason: str
    rows: int
    min_rows: int
    threshold: float
    max_psi: float = 0.0
    feature_psi: dict[str, float] = field(default_factory=dict)
    cluster_psi: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def check_drift(
    profile: dict[str, Any],
    matrix: np.ndarray,
    names: tuple[str, ...],
    *,
    cluster_shares: np.ndarray | None = None,
    new_cluster_shares: np.ndarray | None = None,
    min_rows: int = 1000,
    threshold: float = 0.25,
) -> DriftReport:
    """Compare rows seen since training with the training profile."""
    rows = len(matrix)
    if rows < min_rows:
        return DriftReport(
            "too-few-rows",
            f"{rows} new rows, fewer than the {min_rows} needed to judge drift",
            rows,
            min_rows,
            threshold,
        )
    feature_psi = {}
    for index, name in enumerate(names):
        if name not in profile:
            return DriftReport(
                "retrain", f"feature {name} is new since the model was trained", rows, min_rows, threshold
            )
        edges = np.asarray(profile[name]["edges"])
        feature_psi[name] = round(
            psi(profile[name]["shares"], _shares(matrix[:, index].astype(np.float64), edges)), 4
        )
    cluster_psi = None
    if cluster_shares is not None and new_cluster_shares is not None:
        cluster_psi = round(psi(cluster_shares, new_cluster_shares), 4)
    worst = max(feature_psi, key=feature_psi.get)
    max_psi = max(feature_psi[worst], cluster_psi or 0.0)
    if max_psi > threshold:
        what = "cluster shares" if (cluster_psi or 0.0) >= feature_psi[worst] else f"feature {worst}"
        decision, reason = "retrain", f"{what} drifted (PSI {max_psi:.3f} > {threshold})"
    else:
        decision, reason = "reuse", f"largest PSI {max_psi:.3f} ({worst}) is within {threshold}"
    return DriftReport(decision, reason, rows, min_rows, threshold, max_psi, feature_psi, cluster_psi)
