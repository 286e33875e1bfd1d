"""The contract every detector keeps, after pyod's BaseDetector.

- ``fit(X)`` learns from training rows and returns the detector; fitted attributes end in ``_``.
- ``score(X)``: one number per row, higher is more anomalous, comparable with ``threshold_``.
- ``explain(X)``: per-row contributions, one column per name in ``explanation_names_``; the
  contributions of a row say which features or findings drove its score.
- ``threshold_`` is the training score at the ``1 - contamination`` quantile; ``contamination``
  is validated; every random choice is seeded by ``random_state``.
- ``state_dict()`` (numpy arrays) and ``config()`` (JSON) save a fitted detector;
  ``from_state(config, state)`` restores it. Nothing is pickled.

``X`` is an `authml.train.matrix.EventFrame`: the feature matrix plus identity columns (user,
source IP, ...) that per-account detectors need.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from authml.errors import InputError, NotReadyError
from authml.train.matrix import EventFrame


def validate_contamination(contamination: float) -> float:
    if not isinstance(contamination, int | float) or not 0.0 < float(contamination) <= 0.5:
        raise InputError(f"contamination must be a number in (0, 0.5], got {contamination!r}")
    return float(contamination)


class Detector:
    """Base class: threshold handling, fitted-state checks, and the save/load shape."""

    name: ClassVar[str] = "detector"

    def __init__(self, *, contamination: float = 0.001, random_state: int = 0):
        self.contamination = validate_contamination(contamination)
        if not isinstance(random_state, int) or random_state < 0:
            raise InputError(f"random_state must be a non-negative integer, got {random_state!r}")
        self.random_state = random_state

    # Subclasses implement these three.
    def _fit(self, X: EventFrame) -> None:
        raise NotImplementedError

    def score(self, X: EventFrame) -> np.ndarray:
        raise NotImplementedError

    def explain(self, X: EventFrame) -> np.ndarray:
        raise NotImplementedError

    def fit(self, X: EventFrame) -> Detector:
        if len(X) == 0:
            raise InputError(f"{self.name}: cannot fit on zero training rows")
        self._fit(X)
        self.training_scores_ = self.score(X)
        self.threshold_ = float(np.quantile(self.training_scores_, 1.0 - self.contamination))
        return self

    def predict(self, X: EventFrame) -> np.ndarray:
        """True where the score is above the training threshold."""
        self.check_fitted()
        return self.score(X) > self.threshold_

    def check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotReadyError(f"the {self.name} detector is not fitted; call fit() or load a trained model")

    # Saving ---------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "contamination": self.contamination,
            "random_state": self.random_state,
            "threshold": getattr(self, "threshold_", None),
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def _load(self, config: dict[str, Any], state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> Detector:
        detector = cls(contamination=config["contamination"], random_state=config["random_state"])
        detector._load(config, state)
        if config.get("threshold") is not None:
            detector.threshold_ = float(config["threshold"])
        return detector


def standardise_fit(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale per column; a constant column gets scale 1 so it stays 0 after scaling."""
    mean = matrix.mean(axis=0, dtype=np.float64)
    std = matrix.std(axis=0, dtype=np.float64)
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def group_index(keys: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Position of each key in the sorted array ``known``, or -1 where unknown."""
    return _positions(_as_text(keys), known)


def frame_text(X: EventFrame, column: str) -> np.ndarray:
    """A column of the frame as fixed-width text ("" for none), converted once per frame."""
    key = ("text", column)
    if key not in X.derived:
        X.derived[key] = _as_text(X.columns[column])
    return X.derived[key]


def frame_index(X: EventFrame, column: str, known: np.ndarray) -> np.ndarray:
    """``group_index`` of one of the frame's columns, found once per frame and array of known
    values: the detectors look the same accounts up in the same training values several times
    (a million-row score spent 1.2 s in these lookups)."""
    for seen_known, seen in X.derived.setdefault(("index", column), []):
        if seen_known is known or np.array_equal(seen_known, known):
            return seen
    found = _positions(frame_text(X, column), known)
    X.derived[("index", column)].append((known, found))
    return found


def _as_text(keys: np.ndarray) -> np.ndarray:
    return np.where(keys == None, "", keys).astype(str)  # noqa: E711


def _positions(as_text: np.ndarray, known: np.ndarray) -> np.ndarray:
    if len(known) == 0:
        return np.full(len(as_text), -1, dtype=np.int64)
    position = np.searchsorted(known, as_text)
    position = np.clip(position, 0, len(known) - 1)
    return np.where(known[position] == as_text, position, -1)
