"""One scoring run in embedded mode: which events, scoring them in chunks, writing the rows, the
checkpoint and the per-account risk in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from authml.errors import InputError, NotReadyError
from authml.runtime import cyclic_gc_paused
from authml.score.model import ScoringModel

CHUNK_ROWS = 200_000
DEFAULT_RISK_DAYS = 7.0
# Events below this combined score (the "medium" risk level) get no reasons: they are not
# alerts, and `authml explain` computes the reasons of any event on demand.
REASONS_FROM_SCORE = 25.0


@dataclass(slots=True)
class ScoreOptions:
    since: datetime | None = None  # explicit @timestamp window; without it: since the checkpoint
    until: datetime | None = None
    risk_days: float = DEFAULT_RISK_DAYS
    chunk_rows: int = CHUNK_ROWS


@dataclass(slots=True)
class ScoreOutcome:
    model_version: str
    window: tuple[datetime | None, datetime | None]
    events_scored: int = 0
    anomalies: int = 0
    accounts: int = 0
    threshold: float = 0.0
    mode: str = "checkpoint"  # checkpoint | window
    event_ids: list[str] = field(default_factory=list)


def run_scoring(
    project_dir: Path,
    model: ScoringModel,
    options: ScoreOptions,
    progress: Callable[[str], None] = lambda message: None,
    source=None,  # authml.es.score_source.ElasticsearchScoreSource; None: the embedded store
) -> ScoreOutcome:
    from authml.embedded.feature_reader import EmbeddedFeatureReader
    from authml.embedded.scores import (
        ScoreBatch,
        create_score_tables,
        features_lag,
        pending_events,
        read_checkpoint,
        update_user_risk,
        write_checkpoint,
        write_scores,
    )
    from authml.embedded.store import Store
    from authml.train.feature_sql import FeatureWindow, authentication_event_codes

    if options.since and options.until and options.since >= options.until:
        raise InputError(f"--since ({options.since}) must be before --until ({options.until})")
    now = datetime.now(UTC)
    with cyclic_gc_paused(), Store.open(project_dir) as store:
        lag = features_lag(store) if source is None else source.check_ready()
        if lag is not None:
            raise NotReadyError(
                f"the feature tables stop at events ingested by {lag.isoformat()}, but newer events are "
                "stored; run `authml features build` first"
            )
        with store.transaction():
            create_score_tables(store)
        explicit = options.since is not None or options.until is not None
        pending = None
        if explicit:
            window = (options.since, options.until)
        else:
            pending = (
                source.pending()
                if source is not None
                else pending_events(store, read_checkpoint(store), authentication_event_codes())
            )
            if pending.events == 0:
                return ScoreOutcome(model.version, (None, None), threshold=model.threshold)
            window = (pending.first, pending.last + timedelta(microseconds=1))
        outcome = ScoreOutcome(
            model.version, window, threshold=model.threshold, mode="window" if explicit else "checkpoint"
        )
        progress(f"reading features for {_describe(window)}")
        features = FeatureWindow(window[0], window[1], model.time_zone)
        if source is None:  # the identity of the score rows comes from the same scan
            frame = EmbeddedFeatureReader(store).read_events(features, with_identity=True)
        else:
            frame = source.feature_reader(store).read_events(features)
        # The model runs in chunks (its explanation matrix is the largest thing in memory); the
        # scores are written in one statement.
        scores, reasons, detector_parts = [], [], []
        for start in range(0, len(frame), options.chunk_rows):
            chunk = frame.take(slice(start, start + options.chunk_rows))  # views, not copies
            progress(f"scoring events {start + 1}-{start + len(chunk)} of {len(frame)}")
            scored = model.score(chunk, reasons_from=REASONS_FROM_SCORE)
            scores.append(scored.scores)
            reasons.extend(scored.reasons)
            detector_parts.append(scored.detector_scores)
        all_scores = np.concatenate(scores) if scores else np.zeros(0)
        ids, times = frame.columns["_id"], frame.columns["ts"]  # in time order
        batch = ScoreBatch(
            ids,
            all_scores,
            {name: np.concatenate([part[name] for part in detector_parts]) for name in detector_parts[0]}
            if detector_parts
            else {},
            reasons,
            # the frame's times are the store's own only when the features were read from it
            time_range=(times[0].item(), times[-1].item()) if len(frame) and source is None else None,
            identity=frame.identity,
        )
        outcome.events_scored = len(frame)
        outcome.anomalies = int(np.sum(all_scores >= model.threshold))
        outcome.event_ids = ids.tolist()
        with store.transaction():
            progress(f"writing {len(frame)} scores")
            write_scores(store, batch, model_version=model.version, threshold=model.threshold, scored_at=now)
            if pending is not None and source is None:
                write_checkpoint(store, pending.ingested_upper, model.version, now)
            progress("updating per-account risk")
            outcome.accounts = update_user_risk(
                store, model_version=model.version, window_days=options.risk_days, now=now
            )
        if pending is not None and source is not None:
            source.commit_checkpoint(pending, model.version, now)  # after the scores are committed
    return outcome


def _describe(window: tuple[datetime | None, datetime | None]) -> str:
    start, end = window
    return f"{start.isoformat() if start else 'the first event'} to {end.isoformat() if end else 'the last'}"
