"""The combined detector: rarity findings, autoencoder and behaviour clusters on one 0-100 scale.

Each part's training scores calibrate it into a surprise (-ln of the share of training events
scoring at least as high); parts add up beyond a floor; the sum is calibrated once more on the
training distribution, and ``score = 100 * surprise / ln(10^6)`` capped at 100. So a score means
the same in every run: 50 is about one training event in a thousand, 100 one in a million.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from authml.detect.autoencoder import AutoencoderDetector
from authml.detect.base import Detector
from authml.detect.calibration import TailCalibrator
from authml.detect.clusters import ClusterDetector
from authml.detect.rarity import FINDING_NAMES, RarityDetector
from authml.detect.reasons import as_lines, reason_lists
from authml.errors import InputError
from authml.train.matrix import EventFrame

SURPRISE_AT_100 = float(np.log(1e6))
MODEL_PARTS = ("autoencoder", "clusters")
# Rows per pass of ``explain``: the temporaries of 50,000 rows mostly stay in the processor's
# caches (which two scoring workers share). One pass over a million rows took 6.9-8.3 s, passes
# over 50,000 rows 4.8-5.6 s; four scoring parts of 170,000 rows on two threads took 3.4-4.0 s
# in one pass each, 3.0-3.5 s in passes (measured).
ROWS_PER_PASS = 50_000


class CombinedDetector(Detector):
    name = "combined"

    def __init__(
        self,
        *,
        weights: dict[str, float] | None = None,
        floor: float = float(np.log(20)),
        autoencoder: dict[str, Any] | None = None,
        clusters: dict[str, Any] | None = None,
        contamination: float = 0.001,
        random_state: int = 0,
    ):
        super().__init__(contamination=contamination, random_state=random_state)
        self.weights = {"autoencoder": 0.5, "clusters": 0.5, **(weights or {})}
        if any(w < 0 for w in self.weights.values()) or set(self.weights) - set(MODEL_PARTS):
            raise InputError(f"combined: weights are non-negative and only for {', '.join(MODEL_PARTS)}")
        self.floor = float(floor)
        self.rarity = RarityDetector(contamination=contamination, random_state=random_state, floor=floor)
        self.parts: dict[str, Detector] = {}
        if self.weights["autoencoder"] > 0:
            self.parts["autoencoder"] = AutoencoderDetector(
                **{"contamination": contamination, "random_state": random_state, **(autoencoder or {})}
            )
        if self.weights["clusters"] > 0:
            self.parts["clusters"] = ClusterDetector(
                **{"contamination": contamination, "random_state": random_state, **(clusters or {})}
            )
        self.explanation_names_ = (*FINDING_NAMES, *self.parts)

    def _fit(self, X: EventFrame) -> None:
        self.rarity.fit(X)
        self.calibrators_ = {
            name: TailCalibrator().fit(part.fit(X).training_scores_) for name, part in self.parts.items()
        }
        self.total_calibrator_ = TailCalibrator().fit(self.raw(X))

    def explain(self, X: EventFrame) -> np.ndarray:
        """Nats beyond the floor per finding and per model part (columns: explanation_names_).
        Each row's values depend on that row alone, so they are computed in passes of
        ``ROWS_PER_PASS`` rows."""
        if len(X) > ROWS_PER_PASS:
            passes = range(0, len(X), ROWS_PER_PASS)
            return np.vstack([self.explain(X.take(slice(start, start + ROWS_PER_PASS))) for start in passes])
        columns = [self.rarity.explain(X)]
        for name, part in self.parts.items():
            surprise = self.calibrators_[name].surprise(part.score(X))
            columns.append((self.weights[name] * np.maximum(surprise - self.floor, 0.0))[:, None])
        return np.hstack(columns)

    def raw(self, X: EventFrame) -> np.ndarray:
        """The uncalibrated sum of contributions: keeps order among events beyond the 100 cap."""
        return self.explain(X).sum(axis=1)

    def score_from_raw(self, raw: np.ndarray) -> np.ndarray:
        # + 0.0: an event without evidence has the surprise -0.0 (the log of 1, negated), which
        # records, the scores index and the report wrote as "-0.0"
        return np.minimum(100.0 * self.total_calibrator_.surprise(raw) / SURPRISE_AT_100, 100.0) + 0.0

    def score(self, X: EventFrame) -> np.ndarray:
        return self.score_from_raw(self.raw(X))

    def reasons(self, X: EventFrame, contributions: np.ndarray | None = None, top: int = 3) -> list[str]:
        """One line per row: its reasons joined by ``"; "``."""
        return as_lines(self.reason_lists(X, contributions, top=top))

    def reason_lists(
        self, X: EventFrame, contributions: np.ndarray | None = None, top: int = 3
    ) -> pa.ListArray:
        """Each row's reasons, an Arrow list of sentences per row (`authml.detect.reasons.reason_lists`)."""
        if contributions is None:
            contributions = self.explain(X)
        usual = self.rarity.usual_hours_of(X)
        return reason_lists(X, contributions, self.explanation_names_, usual, top=top)

    # Saving ---------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "weights": self.weights,
            "floor": self.floor,
            "parts": {"rarity": self.rarity.config(), **{n: p.config() for n, p in self.parts.items()}},
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {f"rarity.{k}": v for k, v in self.rarity.state_dict().items()}
        for name, part in self.parts.items():
            state.update({f"{name}.{k}": v for k, v in part.state_dict().items()})
            state.update(self.calibrators_[name].state(f"calibration.{name}"))
        state.update(self.total_calibrator_.state("calibration.total"))
        return state

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> CombinedDetector:
        detector = cls(
            weights=config["weights"],
            floor=config["floor"],
            contamination=config["contamination"],
            random_state=config["random_state"],
        )

        def part_state(name: str) -> dict[str, np.ndarray]:
            return {k.removeprefix(f"{name}."): v for k, v in state.items() if k.startswith(f"{name}.")}

        detector.rarity = RarityDetector.from_state(config["parts"]["rarity"], part_state("rarity"))
        kinds = {"autoencoder": AutoencoderDetector, "clusters": ClusterDetector}
        detector.parts = {n: kinds[n].from_state(config["parts"][n], part_state(n)) for n in detector.parts}
        detector.calibrators_ = {
            n: TailCalibrator.from_state(state, f"calibration.{n}") for n in detector.parts
        }
        detector.total_calibrator_ = TailCalibrator.from_state(state, "calibration.total")
        detector.threshold_ = float(config["threshold"])
        return detector
