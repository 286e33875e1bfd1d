"""One scoring run in embedded mode: which events, scoring them in chunks, writing the rows, the
checkpoint and the per-account risk in one transaction."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from authml.errors import InputError, NotReadyError
from authml.runtime import blas_threads, cyclic_gc_paused, map_ahead
from authml.score.model import ScoredFrame, ScoringModel
from authml.train.matrix import EventFrame

if TYPE_CHECKING:
    from authml.embedded.scores import ScoreBatch

# Events per part of a window (and per model chunk). Each part pays for its own history and
# context queries, so fewer, larger parts cost less CPU: a million events (1,013,330) in four
# parts instead of six, seven alternating runs 6.02-6.26 s against 6.38-6.55 s on average (11.0-11.5 s
# of CPU against 11.6-11.9 s), 50 MB more at the peak (measured); in two or three parts the two
# workers shared the work less evenly.
CHUNK_ROWS = 256_000
# Parts of a window read and scored at once: one per core, at most four (each holds a part's
# features and explanation matrix).
SCORING_WORKERS = max(1, min(4, os.cpu_count() or 1))
# DuckDB's threads and numpy's BLAS threads while the workers run: each worker's share of the cores.
CORES_PER_WORKER = max(1, (os.cpu_count() or 1) // SCORING_WORKERS)
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
    # The scored events' ids, per part: made into one list only when asked for (`event_ids`),
    # since most runs never need a Python string per event (0.1 s per million).
    event_id_parts: list[np.ndarray] = field(default_factory=list)

    @property
    def event_ids(self) -> list[str]:
        """The scored events' ids in time order."""
        return np.concatenate(self.event_id_parts).tolist() if self.event_id_parts else []


def run_scoring(
    project_dir: Path,
    model: ScoringModel,
    options: ScoreOptions,
    progress: Callable[[str], None] = lambda message: None,
    source=None,  # authml.es.score_source.ElasticsearchScoreSource; None: the embedded store
) -> ScoreOutcome:
    from authml.embedded.feature_reader import EmbeddedFeatureReader
    from authml.embedded.scores import (
        create_score_tables,
        features_lag,
        pending_events,
        read_checkpoint,
        update_user_risk,
        write_checkpoint,
        write_scores,
    )
    from authml.embedded.store import Store
    from authml.embedded.write_behind import WriteBehind
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
        progress(f"reading features for {describe_window(window)}")
        features = FeatureWindow(window[0], window[1], model.time_zone)

        def score_frame(frame: EventFrame) -> list[ScoredPart]:
            # in chunks: the model's explanation matrix is the largest thing in memory
            return [
                ScoredPart.of(chunk, model.score(chunk, reasons_from=REASONS_FROM_SCORE))
                for chunk in (
                    frame.take(slice(start, start + options.chunk_rows))  # views, not copies
                    for start in range(0, len(frame), options.chunk_rows)
                )
            ]

        if source is None:
            # Parts of the window, each read and scored on one of the workers (features and
            # model together): a part's read alone leaves a core idle while its numpy runs, and
            # a model thread of its own waited for the reads. The identity of the score rows
            # comes from the same scan as the features. The workers share the cores with
            # DuckDB's threads: one each per worker's share (on two cores, with one DuckDB
            # thread three runs took 25.1-27.6 s of CPU time, with two 27.4-29.3 s; measured).
            reader = EmbeddedFeatureReader(store)
            # Equal parts, the last cut in one piece per worker so that the workers finish
            # together. The first part needs no head start of its own: the second worker first
            # reads what every later part sees of the time before it (about as long as a part's
            # read), so one worker reads while the other scores. Fifteen alternating
            # runs over a million events: 7.54 s on average against 7.79 s with a half part
            # first and last (measured).
            events, parts = reader.window_parts(  # on every core: nothing else runs yet
                features, rows_per_part=options.chunk_rows, last_pieces=SCORING_WORKERS
            )
            store.connection.execute(f"SET threads = {CORES_PER_WORKER}")
            scoring = map_ahead(
                lambda read: score_frame(read()),
                reader.part_reads(parts, with_identity=True),
                workers=SCORING_WORKERS,
                ahead=SCORING_WORKERS + 1,  # a worker goes on while the caller writes a part
            )
        else:  # one frame: the reader copies the window's events from the cluster into the store first
            frame = source.feature_reader(store).read_events(features)
            events, scoring = len(frame), nullcontext(iter([score_frame(frame)]))
        with store.transaction():
            # The rows are written as the parts arrive, while the workers score the next ones:
            # written after the last part, the write ran on one core with the other idle. Each
            # part in one insert: DuckDB fills the row group an earlier insert of the same
            # transaction left part-filled, so holding rows back until they filled whole ones
            # (as the sixth to ninth sessions did) only moved them to the end of the run
            # (measured with DuckDB 2.0: the same row groups, commit and close either way).
            write = partial(
                write_scores, store, model_version=model.version, threshold=model.threshold, scored_at=now
            )
            # Each whole row group of scores is compressed and written as its insert fills it,
            # beside the workers, where DuckDB holds up to five for the commit, which then wrote
            # them on one core with the other idle (0.55 s of a million; 0.22 s this way). Six
            # alternating runs: 8.50 s mean against 8.64 s, faster in four (measured). The
            # setting lasts as long as the store's connection, closed at the end of the run.
            store.connection.execute("SET write_buffer_row_group_count = 1")
            # The model's matrix products in numpy: one BLAS thread per worker's share of the
            # cores, as DuckDB's, so two workers' products do not each start a BLAS thread per
            # core. A small part of a run (the cluster distances): nine alternating runs over a
            # million events, 11.7 s on average against 12.1 s, faster in six (measured).
            cores = blas_threads(CORES_PER_WORKER) if source is None else nullcontext()
            # the rows go to disk as the parts are written, not all at the commit (write_behind)
            with WriteBehind(store.path) as flushing:
                with cores, scoring as scored_parts:
                    for chunks in scored_parts:  # in time order
                        rows = sum(len(chunk.frame) for chunk in chunks)
                        progress(
                            f"scored events {outcome.events_scored + 1}-{outcome.events_scored + rows} of {events}"
                        )
                        for chunk in chunks:
                            write(chunk.as_batch(store_times=source is None))
                            outcome.anomalies += int(np.sum(chunk.scores >= model.threshold))
                            outcome.event_id_parts.append(chunk.frame.columns["_id"])
                        flushing.request()
                        outcome.events_scored += rows
                if source is None:  # the workers are done: the rest (risk, commit) may use every core
                    store.connection.execute("RESET threads")
                if pending is not None and source is None:
                    write_checkpoint(store, pending.ingested_upper, model.version, now)
                progress("updating per-account risk")
                outcome.accounts = update_user_risk(
                    store, model_version=model.version, window_days=options.risk_days, now=now
                )
        if pending is not None and source is not None:
            source.commit_checkpoint(pending, model.version, now)  # after the scores are committed
    return outcome


def identity_order(frame: EventFrame) -> tuple[pa.Table | None, np.ndarray]:
    """The identity table of a frame's rows (None without one) and, for each of its rows, the
    frame's row that it belongs to: score rows are written in the identity's order, since moving
    the scores costs less than gathering the identity's strings."""
    identity, rows = frame.identity, frame.identity_rows
    if identity is None or rows is None:
        return identity, np.arange(len(frame))
    if len(rows) == identity.num_rows:  # all of the table's rows, in the frame's order
        position = np.empty_like(rows)
        position[rows] = np.arange(len(rows))
        return identity, position
    return identity.take(rows), np.arange(len(frame))  # a chunk of a larger frame


@dataclass(slots=True)
class ScoredPart:
    """A chunk of the window's frame and what the model made of it, as score rows: in the order
    of the chunk's identity table (`identity_order`), arranged where the chunk was scored (on a
    worker), so that the run only joins the parts. Not the explanation matrix: only one chunk's
    is held at a time."""

    frame: EventFrame
    identity: pa.Table | None
    # the rows' event ids, in the identity's order (as everything below): the identity's own
    # column where there is one, since gathering the frame's Python strings held Python's lock
    ids: np.ndarray | pa.ChunkedArray
    scores: np.ndarray
    detector_scores: dict[str, np.ndarray]
    reasons: pa.Array  # list<string>

    @classmethod
    def of(cls, frame: EventFrame, scored: ScoredFrame) -> ScoredPart:
        identity, position = identity_order(frame)
        return cls(
            frame,
            identity,
            frame.columns["_id"][position] if identity is None else identity.column("event_id"),
            scored.scores[position],
            {name: values[position] for name, values in scored.detector_scores.items()},
            scored.reasons_array().take(position),
        )

    def as_batch(self, *, store_times: bool) -> ScoreBatch:
        """This part's score rows. ``store_times``: the frame's times are the store's own (its
        features were read from it), so the write can skip the rest of the table by time."""
        from authml.embedded.scores import ScoreBatch

        times = self.frame.columns["ts"]  # in time order
        return ScoreBatch(
            self.ids,
            self.scores,
            self.detector_scores,
            self.reasons,
            time_range=(times[0].item(), times[-1].item()) if store_times and len(times) else None,
            identity=self.identity,
        )


def describe_window(window: tuple[datetime | None, datetime | None]) -> str:
    start, end = window
    return f"{start.isoformat() if start else 'the first event'} to {end.isoformat() if end else 'the last'}"
