"""Turning any score into a surprise, -ln P(training score >= x), so detectors add up and scores of
different runs mean the same thing."""

from __future__ import annotations

import numpy as np

# Quantile levels kept: evenly spaced in the body, geometrically denser towards the top tail.
BODY_LEVELS = np.linspace(0.0, 0.99, 100)
SOFT_CAP = 20.0


class TailCalibrator:
    """The training distribution of one score, summarised by quantiles (a few hundred numbers).

    ``surprise(x)`` is ``-ln`` of the smoothed share of training scores at or above ``x``; above
    the training maximum the tail continues exponentially, so ranks are kept beyond what training
    saw instead of tying at the top."""

    def __init__(self) -> None:
        self.levels_ = np.zeros(0)
        self.values_ = np.zeros(0)
        self.count_ = 0
        self.tail_scale_ = 1.0

    def fit(self, scores: np.ndarray) -> TailCalibrator:
        scores = np.asarray(scores, dtype=np.float64)
        n = len(scores)
        top = 1.0 - np.logspace(-2, np.log10(1.0 / max(n, 101)), 60)
        self.levels_ = np.unique(np.concatenate([BODY_LEVELS, top, [1.0]]))
        self.values_ = np.quantile(scores, self.levels_)
        self.count_ = n
        q99 = self.values_[np.searchsorted(self.levels_, 0.99)]
        excess = scores[scores > q99] - q99
        spread = float(excess.mean()) if len(excess) else 0.0
        # Without spread in training (a finding never seen), one unit of evidence is one e-fold.
        self.tail_scale_ = max(spread, float(np.std(scores)) * 0.1) or 1.0
        return self

    def log_tail(self, x: np.ndarray) -> np.ndarray:
        """ln of the smoothed P(training score >= x); exact arithmetic far beyond the maximum."""
        x = np.asarray(x, dtype=np.float64)
        below = np.searchsorted(self.values_, x, side="left")  # quantile points strictly below x
        share_below = np.where(below > 0, self.levels_[np.maximum(below - 1, 0)], 0.0)
        n = self.count_
        log_tail = np.log((n * (1.0 - share_below) + 1.0) / (n + 1.0))
        beyond = x > self.values_[-1]
        return np.where(beyond, -(x - self.values_[-1]) / self.tail_scale_ - np.log(n + 1.0), log_tail)

    def tail(self, x: np.ndarray) -> np.ndarray:
        return np.exp(self.log_tail(x))

    def surprise(self, x: np.ndarray) -> np.ndarray:
        """-ln tail, growing only logarithmically beyond SOFT_CAP nats, so one finding cannot drown
        all others while ranks stay strict."""
        surprise = -self.log_tail(x)
        return np.where(
            surprise > SOFT_CAP, SOFT_CAP + np.log1p(np.maximum(surprise - SOFT_CAP, 0.0)), surprise
        )

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}.levels": self.levels_,
            f"{prefix}.values": self.values_,
            f"{prefix}.meta": np.array([self.count_, self.tail_scale_], dtype=np.float64),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], prefix: str) -> TailCalibrator:
        calibrator = cls()
        calibrator.levels_ = state[f"{prefix}.levels"]
        calibrator.values_ = state[f"{prefix}.values"]
        count, scale = state[f"{prefix}.meta"].tolist()
        calibrator.count_ = int(count)
        calibrator.tail_scale_ = float(scale)
        return calibrator
