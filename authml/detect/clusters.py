"""Behaviour clusters: k-means over standardised features, k chosen by silhouette on a sample.

An event's distance to its nearest centre is compared with a threshold learnt from TRAINING
history: the account's own percentile when it has enough training events, else the cluster's,
else the global one. Scoring a batch never moves a threshold, and no rule flags a fixed share of
each account's events (the mistake of the Splunk sidecar this detector descends from).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from authml.detect.base import Detector, frame_index, frame_text, standardise_fit
from authml.errors import InputError
from authml.train.matrix import FEATURE_NAMES, EventFrame

CHUNK = 65536


def nearest(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest centre, squared distance to it), in chunks to bound memory."""
    labels = np.empty(len(points), dtype=np.int32)
    distances = np.empty(len(points), dtype=np.float32)
    centre_norms = (centres**2).sum(axis=1)
    for begin in range(0, len(points), CHUNK):
        chunk = points[begin : begin + CHUNK]
        d2 = (chunk**2).sum(axis=1)[:, None] - 2 * chunk @ centres.T + centre_norms[None, :]
        labels[begin : begin + CHUNK] = d2.argmin(axis=1)
        distances[begin : begin + CHUNK] = np.maximum(d2.min(axis=1), 0)
    return labels, distances


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 30) -> np.ndarray:
    """Lloyd's algorithm from a k-means++ start; returns the centres."""
    centres = [points[rng.integers(len(points))]]
    closest = ((points - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = closest.sum()
        pick = rng.choice(len(points), p=closest / total) if total > 0 else rng.integers(len(points))
        centres.append(points[pick])
        closest = np.minimum(closest, ((points - points[pick]) ** 2).sum(axis=1))
    centres = np.array(centres, dtype=np.float32)
    for _ in range(iterations):
        labels, _ = nearest(points, centres)
        # per-cluster sums by one sort and reduceat: np.add.at is an order of magnitude slower
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=k)
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        sums = np.zeros_like(centres, dtype=np.float64)
        present = counts > 0
        sums[present] = np.add.reduceat(points[order].astype(np.float64), starts[present], axis=0)
        moved = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres).astype(
            np.float32
        )
        if np.allclose(moved, centres, atol=1e-4):
            break
        centres = moved
    return centres


def silhouette(points: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient (exact, O(n^2): call it on a sample)."""
    norms = (points.astype(np.float64) ** 2).sum(axis=1)
    d = np.sqrt(np.maximum(norms[:, None] + norms[None, :] - 2 * points @ points.T.astype(np.float64), 0))
    clusters = np.unique(labels)
    if len(clusters) < 2:
        return -1.0
    mean_to = np.column_stack([d[:, labels == c].mean(axis=1) for c in clusters])
    own = np.searchsorted(clusters, labels)
    sizes = np.bincount(own, minlength=len(clusters))
    a = mean_to[np.arange(len(points)), own] * sizes[own] / np.maximum(sizes[own] - 1, 1)
    mean_to[np.arange(len(points)), own] = np.inf
    b = mean_to.min(axis=1)
    s = np.where(sizes[own] > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


class ClusterDetector(Detector):
    name = "clusters"

    def __init__(
        self,
        *,
        features: Sequence[str] = FEATURE_NAMES,
        k_candidates: Sequence[int] = (2, 3, 4, 6, 8, 10, 12),
        sample_size: int = 2000,
        percentile: float = 99.0,
        min_group_events: int = 30,
        contamination: float = 0.001,
        random_state: int = 0,
    ):
        super().__init__(contamination=contamination, random_state=random_state)
        if not 50.0 <= percentile < 100.0:
            raise InputError(f"clusters: percentile must be in [50, 100), got {percentile}")
        if not k_candidates or min(k_candidates) < 2:
            raise InputError("clusters: k_candidates must hold values of at least 2")
        self.features = tuple(features)
        self.k_candidates = tuple(int(k) for k in k_candidates)
        self.sample_size = int(sample_size)
        self.percentile = float(percentile)
        self.min_group_events = int(min_group_events)
        self.explanation_names_ = self.features

    def _points(self, X: EventFrame) -> np.ndarray:
        columns = [X.feature_names.index(name) for name in self.features]
        return ((X.matrix[:, columns] - self.mean_) / self.scale_).astype(np.float32)

    def _fit(self, X: EventFrame) -> None:
        columns = [X.feature_names.index(name) for name in self.features]
        self.mean_, self.scale_ = standardise_fit(X.matrix[:, columns])
        points = self._points(X)
        rng = np.random.default_rng(self.random_state)
        sample = points[rng.choice(len(points), size=min(self.sample_size, len(points)), replace=False)]
        best_k, best_score, self.silhouettes_ = None, -np.inf, {}
        for k in self.k_candidates:
            if k >= len(sample):
                continue
            labels, _ = nearest(sample, kmeans(sample, k, np.random.default_rng(self.random_state)))
            self.silhouettes_[k] = silhouette(sample, labels)
            if self.silhouettes_[k] > best_score:
                best_k, best_score = k, self.silhouettes_[k]
        if best_k is None:
            raise InputError(f"clusters: {len(points)} training rows are too few for k-means")
        self.k_ = best_k
        self.centres_ = kmeans(points, best_k, np.random.default_rng(self.random_state))
        labels, d2 = nearest(points, self.centres_)
        distance = np.sqrt(d2)
        self.global_threshold_ = float(np.percentile(distance, self.percentile))
        self.cluster_thresholds_ = self._group_thresholds(labels, distance, best_k)
        users = frame_text(X, "user")
        self.users_, user_index = np.unique(users, return_inverse=True)
        self.user_thresholds_ = self._group_thresholds(user_index, distance, len(self.users_))
        self.cluster_shares_ = (np.bincount(labels, minlength=best_k) / len(labels)).astype(np.float64)

    def _group_thresholds(self, groups: np.ndarray, distance: np.ndarray, count: int) -> np.ndarray:
        """Percentile of distance per group; NaN where the group has too few training events."""
        order = np.argsort(groups, kind="stable")
        bounds = np.searchsorted(groups[order], np.arange(count + 1))
        sorted_distance = distance[order]
        thresholds = np.full(count, np.nan, dtype=np.float64)
        for group in range(count):
            values = sorted_distance[bounds[group] : bounds[group + 1]]
            if len(values) >= self.min_group_events:
                thresholds[group] = np.percentile(values, self.percentile)
        return thresholds

    def thresholds_for(self, X: EventFrame, labels: np.ndarray) -> np.ndarray:
        user_index = frame_index(X, "user", self.users_)
        per_user = np.where(user_index >= 0, self.user_thresholds_[np.maximum(user_index, 0)], np.nan)
        per_cluster = self.cluster_thresholds_[labels]
        chosen = np.where(np.isnan(per_user), per_cluster, per_user)
        chosen = np.where(np.isnan(chosen), self.global_threshold_, chosen)
        return np.maximum(chosen, 1e-3)

    def cluster_of(self, X: EventFrame) -> np.ndarray:
        return nearest(self._points(X), self.centres_)[0]

    def score(self, X: EventFrame) -> np.ndarray:
        """Distance to the nearest centre over the account's (or cluster's, or global) threshold."""
        labels, d2 = nearest(self._points(X), self.centres_)
        return np.sqrt(d2) / self.thresholds_for(X, labels)

    def explain(self, X: EventFrame) -> np.ndarray:
        points = self._points(X)
        labels, _ = nearest(points, self.centres_)
        return (points - self.centres_[labels]) ** 2

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "features": list(self.features),
            "k_candidates": list(self.k_candidates),
            "sample_size": self.sample_size,
            "percentile": self.percentile,
            "min_group_events": self.min_group_events,
            "k": getattr(self, "k_", None),
            "silhouettes": {str(k): v for k, v in getattr(self, "silhouettes_", {}).items()},
            "global_threshold": getattr(self, "global_threshold_", None),
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        return {
            "mean": self.mean_,
            "scale": self.scale_,
            "centres": self.centres_,
            "cluster_thresholds": self.cluster_thresholds_,
            "cluster_shares": self.cluster_shares_,
            "users": self.users_,
            "user_thresholds": self.user_thresholds_,
        }

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> ClusterDetector:
        detector = cls(
            features=config["features"],
            k_candidates=config["k_candidates"],
            sample_size=config["sample_size"],
            percentile=config["percentile"],
            min_group_events=config["min_group_events"],
            contamination=config["contamination"],
            random_state=config["random_state"],
        )
        for key in (
            "mean",
            "scale",
            "centres",
            "cluster_thresholds",
            "cluster_shares",
            "users",
            "user_thresholds",
        ):
            setattr(detector, f"{key}_", state[key])
        detector.k_ = int(config["k"])
        detector.global_threshold_ = float(config["global_threshold"])
        detector.silhouettes_ = {int(k): v for k, v in config["silhouettes"].items()}
        detector.threshold_ = float(config["threshold"])
        return detector
