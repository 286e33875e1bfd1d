"""The two detectors teams use today, evaluated beside authml's in `authml eval`.

- An autoencoder 5-16-3-16-5 trained with MSE on five standardised features: hour, day of week,
  failure flag, the account's event count and the account-and-source-IP event count (both
  point-in-time, as log(1 + n)), scored by reconstruction error.
- k-means over hour/23, success flag, event code (min-max scaled), private-source flag and the
  account's hour z-score, flagging events beyond each account's 95th percentile of distance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from authml.detect.autoencoder import AutoencoderDetector
from authml.detect.base import Detector, frame_index, frame_text
from authml.detect.clusters import kmeans, nearest, silhouette
from authml.train.matrix import EventFrame

BASELINE_AUTOENCODER_FEATURES = (
    "hour",
    "day_of_week",
    "failure",
    "log_user_events_before",
    "log_user_ip_events_before",
)


def baseline_autoencoder(*, epochs: int, random_state: int, device: str = "auto") -> AutoencoderDetector:
    return AutoencoderDetector(
        features=BASELINE_AUTOENCODER_FEATURES,
        hidden=(16, 3),
        epochs=epochs,
        random_state=random_state,
        device=device,
    )


class BaselineKMeans(Detector):
    """The Splunk-sidecar style behaviour clusters, as commonly deployed."""

    name = "baseline_kmeans"
    explanation_names_ = ("hour/23", "success", "event_code", "private_source", "hour_zscore")

    def __init__(self, *, percentile: float = 95.0, contamination: float = 0.05, random_state: int = 0):
        super().__init__(contamination=contamination, random_state=random_state)
        self.percentile = percentile

    def _points(self, X: EventFrame) -> np.ndarray:
        users = frame_index(X, "user", self.users_)
        hour = X.feature("hour").astype(np.float64)
        mean = np.where(users >= 0, self.hour_mean_[np.maximum(users, 0)], 12.0)
        std = np.where(users >= 0, self.hour_std_[np.maximum(users, 0)], 6.0)
        code = np.asarray([float(c) if c else 0.0 for c in X.columns["event_code"]])
        return np.column_stack(
            [
                hour / 23.0,
                1.0 - X.feature("failure"),
                (code - self.code_range_[0]) / max(self.code_range_[1] - self.code_range_[0], 1.0),
                X.feature("private_source"),
                (hour - mean) / std,
            ]
        ).astype(np.float32)

    def _fit(self, X: EventFrame) -> None:
        users = frame_text(X, "user")
        self.users_, inverse = np.unique(users, return_inverse=True)
        hour = X.feature("hour").astype(np.float64)
        counts = np.bincount(inverse, minlength=len(self.users_))
        self.hour_mean_ = np.bincount(inverse, hour, minlength=len(self.users_)) / counts
        variance = np.bincount(inverse, hour**2, minlength=len(self.users_)) / counts - self.hour_mean_**2
        self.hour_std_ = np.maximum(np.sqrt(np.maximum(variance, 0.0)), 1.0)
        codes = np.asarray([float(c) if c else 0.0 for c in X.columns["event_code"]])
        self.code_range_ = np.array([codes.min(), codes.max()])
        points = self._points(X)
        rng = np.random.default_rng(self.random_state)
        sample = points[rng.choice(len(points), size=min(2000, len(points)), replace=False)]
        scores = {}
        for k in (2, 3, 4, 5, 6, 8):
            labels, _ = nearest(sample, kmeans(sample, k, np.random.default_rng(self.random_state)))
            scores[k] = silhouette(sample, labels)
        self.k_ = max(scores, key=scores.get)
        self.centres_ = kmeans(points, self.k_, np.random.default_rng(self.random_state))
        distance = np.sqrt(nearest(points, self.centres_)[1])
        self.global_limit_ = float(np.percentile(distance, self.percentile))
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(self.users_) + 1))
        self.user_limits_ = np.array(
            [
                np.percentile(distance[order][bounds[i] : bounds[i + 1]], self.percentile)
                for i in range(len(self.users_))
            ]
        )

    def score(self, X: EventFrame) -> np.ndarray:
        distance = np.sqrt(nearest(self._points(X), self.centres_)[1])
        users = frame_index(X, "user", self.users_)
        limit = np.where(users >= 0, self.user_limits_[np.maximum(users, 0)], self.global_limit_)
        return distance / np.maximum(limit, 1e-3)

    def explain(self, X: EventFrame) -> np.ndarray:
        points = self._points(X)
        labels, _ = nearest(points, self.centres_)
        return (points - self.centres_[labels]) ** 2

    def config(self) -> dict[str, Any]:
        return {**super().config(), "percentile": self.percentile, "k": getattr(self, "k_", None)}
