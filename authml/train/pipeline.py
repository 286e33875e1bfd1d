"""One training run: reuse the current model unless it is stale or behaviour drifted, else fit and
save a new version. Engine-neutral: it talks to a FeatureReader and the registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from authml import __version__
from authml.detect.base import frame_text
from authml.detect.combined import CombinedDetector
from authml.errors import NotReadyError
from authml.train.drift import check_drift, feature_profile
from authml.train.feature_sql import FeatureWindow
from authml.train.lock import TrainingLock
from authml.train.matrix import FEATURES, EventFrame
from authml.train.reader import FeatureReader
from authml.train.registry import (
    asset_lock_hash,
    current_version,
    load_model,
    models_dir,
    read_metadata,
    save_model,
)

MIN_TRAINING_ROWS = 100
DRIFT_LOG = "drift-checks.jsonl"  # every drift check against a version, appended


@dataclass(slots=True)
class TrainOptions:
    start: datetime | None = None
    end: datetime | None = None
    time_zone: str = "UTC"
    force: bool = False
    contamination: float = 0.001
    seed: int = 0
    epochs: int = 8
    device: str = "auto"
    threads: int = 1
    min_drift_rows: int = 1000
    psi_threshold: float = 0.25


@dataclass(slots=True)
class TrainOutcome:
    decision: str  # "trained" or "reused"
    version: str
    reason: str
    rows: int = 0
    drift: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _staleness(metadata: dict[str, Any], options: TrainOptions) -> str | None:
    """Why the current model cannot be reused whatever the data says, or None."""
    if metadata.get("asset_lock_sha256") != asset_lock_hash():
        return "the feature assets changed since the model was trained (asset lock hash differs)"
    if metadata.get("feature_names") != list(FEATURES):
        return "the per-event features changed since the model was trained"
    if metadata.get("time_zone") != options.time_zone:
        return f"the time zone changed from {metadata.get('time_zone')} to {options.time_zone}"
    return None


def user_days(frame: EventFrame) -> float:
    """Active account-days in the frame: the denominator of alerts per user-day."""
    if len(frame) == 0:
        return 0.0
    days = frame.columns["ts"].astype("datetime64[D]")
    users = frame_text(frame, "user")
    return float(len(set(zip(users.tolist(), days.tolist(), strict=True))))


def run_training(
    reader: FeatureReader,
    project_dir: Path,
    options: TrainOptions,
    progress: Callable[[str], None] = lambda message: None,
) -> TrainOutcome:
    with TrainingLock(models_dir(project_dir)):
        if current_version(project_dir) and not options.force:
            reused = _try_reuse(reader, project_dir, options, progress)
            if reused.decision == "reused":
                return reused
            reason, drift = reused.reason, reused.drift
        else:
            reason, drift = ("--force given" if options.force else "no model yet"), None
        progress("reading training features")
        frame = reader.read_events(FeatureWindow(options.start, options.end, options.time_zone))
        if len(frame) < MIN_TRAINING_ROWS:
            # no option names: `authml train` bounds the window with --start/--end, triage with --train-until
            bounded = options.start is not None or options.end is not None
            raise NotReadyError(
                f"only {len(frame)} authentication events in the training window (at least {MIN_TRAINING_ROWS} needed); "
                f"ingest more data{' or widen the window' if bounded else ''}"
            )
        progress(f"fitting detectors on {len(frame)} events")
        detector = CombinedDetector(
            contamination=options.contamination,
            random_state=options.seed,
            autoencoder={"epochs": options.epochs, "device": options.device, "threads": options.threads},
        ).fit(frame)
        metadata = {
            **training_metadata(frame, detector, options),
            "engine": getattr(reader, "engine", "embedded"),
            "trained_because": reason,
            "drift": drift,
        }
        progress("saving the model")
        version = save_model(project_dir, detector, metadata)
        return TrainOutcome("trained", version, reason, len(frame), metadata=metadata)


def _try_reuse(
    reader: FeatureReader, project_dir: Path, options: TrainOptions, progress: Callable[[str], None]
) -> TrainOutcome:
    metadata = read_metadata(project_dir)
    version = metadata["version"]
    stale = _staleness(metadata, options)
    if stale:
        return TrainOutcome("retrain", version, stale)
    since = datetime.fromisoformat(metadata["training_window"]["end"])
    progress(f"checking drift since {since.isoformat()}")
    new = reader.read_events(FeatureWindow(since, options.end, options.time_zone))
    detector, _ = load_model(project_dir, version)
    clusters = detector.parts.get("clusters")
    new_shares = None
    if clusters is not None and len(new):
        new_shares = np.bincount(clusters.cluster_of(new), minlength=clusters.k_) / len(new)
    report = check_drift(
        metadata["feature_profile"],
        new.matrix,
        new.feature_names,
        cluster_shares=None if clusters is None else clusters.cluster_shares_,
        new_cluster_shares=new_shares,
        min_rows=options.min_drift_rows,
        threshold=options.psi_threshold,
    )
    decision = "retrain" if report.decision == "retrain" else "reused"
    with (models_dir(project_dir) / version / DRIFT_LOG).open("a") as log:
        log.write(
            json.dumps({"checked_at": datetime.now().astimezone().isoformat(), **report.as_json()}) + "\n"
        )
    return TrainOutcome(
        decision, version, report.reason, report.rows, drift=report.as_json(), metadata=metadata
    )


def training_metadata(frame: EventFrame, detector: CombinedDetector, options: TrainOptions) -> dict[str, Any]:
    ts = frame.columns["ts"]
    end = (ts.max() + np.timedelta64(1, "us")).astype(datetime)
    training_scores = detector.training_scores_
    days = user_days(frame)
    mean = frame.matrix.mean(axis=0, dtype=np.float64)
    std = frame.matrix.std(axis=0, dtype=np.float64)
    codes, code_counts = np.unique(frame.columns["event_code"].astype(str), return_counts=True)
    return {
        "authml_version": __version__,
        "asset_lock_sha256": asset_lock_hash(),
        "time_zone": options.time_zone,
        "training_window": {
            "start": ts.min().astype(datetime).isoformat(),
            "end": end.isoformat(),
            "requested_start": options.start.isoformat() if options.start else None,
            "requested_end": options.end.isoformat() if options.end else None,
        },
        "feature_names": list(frame.feature_names),
        "features": {
            name: {
                "description": FEATURES[name],
                "mean": round(float(mean[i]), 6),
                "std": round(float(std[i]), 6),
            }
            for i, name in enumerate(frame.feature_names)
        },
        "feature_profile": feature_profile(frame.matrix, frame.feature_names),
        "counts": {
            "events": len(frame),
            "users": int(len(np.unique(frame.columns["user"].astype(str)))),
            "user_days": days,
            "by_event_code": {str(c): int(n) for c, n in zip(codes, code_counts, strict=True)},
        },
        "evaluation": {
            "threshold_score": round(float(detector.threshold_), 3),
            "training_alerts_per_user_day": round(
                float(np.sum(training_scores > detector.threshold_)) / max(days, 1.0), 5
            ),
            "training_score_quantiles": {
                str(q): round(float(np.quantile(training_scores, q)), 3) for q in (0.5, 0.9, 0.99, 0.999)
            },
        },
        "drift_policy": {
            "min_rows": options.min_drift_rows,
            "psi_threshold": options.psi_threshold,
            "bins": 10,
        },
        "options": {"seed": options.seed, "epochs": options.epochs, "contamination": options.contamination},
        "trained_at": datetime.now().astimezone().isoformat(),
        "training_days": round((ts.max() - ts.min()) / np.timedelta64(1, "D"), 3),
    }
