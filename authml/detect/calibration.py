"""Turning any score into a surprise, -ln P(training score >= x), so detectors add up and scores of
different runs mean the same thing."""

from __future__ import annotations

import numpy as np

from authml.errors import StoreError

# Quantile levels kept for the body of the distribution; above the last one the tail is modelled.
BODY_LEVELS = np.linspace(0.0, 0.99, 100)
SOFT_CAP = 20.0


class TailCalibrator:
    """The training distribution of one score: its body as quantiles, its top 1% as an exponential.

    ``surprise(x)`` is ``-ln`` of the smoothed share of training scores at or above ``x``. Up to the
    99th percentile that share is read from the quantiles. Above it, the training scores are too
    few to rank by one at a time (a handful of points would decide whether an event is one in a
    thousand or one in a million), so the excesses over the 99th percentile are modelled as
    exponential (peaks over threshold, scale = their mean): the share falls smoothly, by one
    e-fold per ``tail_scale_``, and keeps falling beyond the training maximum."""

    def __init__(self) -> None:
        self.levels_ = np.zeros(0)
        self.values_ = np.zeros(0)
        self.count_ = 0
        self.tail_scale_ = 1.0
        self.exceedances_ = 0

    def fit(self, scores: np.ndarray) -> TailCalibrator:
        scores = np.asarray(scores, dtype=np.float64)
        self.count_ = len(scores)
        self.levels_ = BODY_LEVELS.copy()
        self.values_ = np.quantile(scores, self.levels_)
        threshold = self.values_[-1]
        excess = scores[scores > threshold] - threshold
        self.exceedances_ = len(excess)
        spread = float(excess.mean()) if len(excess) else 0.0
        # Without spread in training (a finding never seen), one unit of evidence is one e-fold.
        self.tail_scale_ = max(spread, float(np.std(scores)) * 0.1) or 1.0
        return self

    def log_tail(self, x: np.ndarray) -> np.ndarray:
        """ln of the smoothed P(training score >= x)."""
        x = np.asarray(x, dtype=np.float64)
        n = self.count_
        below = np.searchsorted(self.values_, x, side="left")  # quantile points strictly below x
        share_below = np.where(below > 0, self.levels_[np.maximum(below - 1, 0)], 0.0)
        body = np.log((n * (1.0 - share_below) + 1.0) / (n + 1.0))
        threshold = self.values_[-1]
        tail = np.log((self.exceedances_ + 1.0) / (n + 1.0)) - (x - threshold) / self.tail_scale_
        return np.where(x > threshold, np.minimum(tail, body), body)

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
            f"{prefix}.meta": np.array([self.count_, self.tail_scale_, self.exceedances_], dtype=np.float64),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], prefix: str) -> TailCalibrator:
        meta = state[f"{prefix}.meta"].tolist()
        if len(meta) != 3:
            raise StoreError(
                f"the calibration {prefix} was saved by an older authml (empirical tail); "
                "run `authml train --force` to replace the model"
            )
        calibrator = cls()
        calibrator.levels_ = state[f"{prefix}.levels"]
        calibrator.values_ = state[f"{prefix}.values"]
        count, scale, exceedances = meta
        calibrator.count_ = int(count)
        calibrator.tail_scale_ = float(scale)
        calibrator.exceedances_ = int(exceedances)
        return calibrator
