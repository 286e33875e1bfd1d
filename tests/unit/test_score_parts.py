"""Scoring a window part by part (parts read and scored side by side on worker threads) gives the
rows that reading and scoring it at once gives."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import numpy as np
import pytest

from authml.embedded.feature_reader import EmbeddedFeatureReader, _part_ends, split_window
from authml.embedded.store import Store
from authml.score.run import ScoreOptions, run_scoring
from authml.train.feature_sql import FeatureWindow
from tests.unit.score_project import copy_project


def _scores(project_dir) -> list[tuple]:
    with Store.open(project_dir, read_only=True) as store:
        return store.connection.execute(
            "SELECT * EXCLUDE (scored_at) FROM scores ORDER BY event_id, model_version"
        ).fetchall()


def _risk(project_dir) -> list[tuple]:
    with Store.open(project_dir, read_only=True) as store:
        return store.connection.execute("SELECT * EXCLUDE (updated_at) FROM user_risk ORDER BY 1").fetchall()


@pytest.mark.parametrize(
    "window", [{}, {"since": datetime(2025, 11, 6, 7, 30), "until": datetime(2025, 11, 9)}]
)
def test_scoring_in_parts_writes_the_rows_of_one_pass(scored_project_source, tmp_path, window):
    source, model = scored_project_source
    whole = copy_project(source, tmp_path / "whole")
    in_parts = copy_project(source, tmp_path / "parts")
    once = run_scoring(whole, model, ScoreOptions(chunk_rows=10**9, **window))
    messages: list[str] = []
    parts = run_scoring(in_parts, model, ScoreOptions(chunk_rows=400, **window), messages.append)

    assert sum(message.startswith("scored events") for message in messages) >= 3
    assert parts.events_scored == once.events_scored > 1200
    assert parts.anomalies == once.anomalies
    assert parts.event_ids == once.event_ids
    assert _scores(in_parts) == _scores(whole)
    assert _risk(in_parts) == _risk(whole)


@pytest.mark.parametrize("last_pieces", [1, 2])
@pytest.mark.parametrize(
    "window",
    [
        FeatureWindow(),
        FeatureWindow(datetime(2025, 11, 5, 13, 0), datetime(2025, 11, 8, 2, 0)),
        # local hours of day in another zone: the hour profiles collapsed for the later parts
        FeatureWindow(datetime(2025, 11, 5, 13, 0), datetime(2025, 11, 8, 2, 0), "Asia/Kolkata"),
    ],
    ids=["all", "bounded", "bounded-kolkata"],
)
def test_parts_hold_the_rows_of_one_read(scored_project_source, window, last_pieces):
    project_dir, _ = scored_project_source
    with EmbeddedFeatureReader.open(project_dir) as reader:
        one = reader.read_events(window, with_identity=True)
        events, parts = reader.window_parts(window, rows_per_part=300, last_pieces=last_pieces)
        frames = [read() for read in reader.part_reads(parts, with_identity=True)]
    assert len(frames) >= 4
    sizes = [len(frame) for frame in frames]
    if last_pieces == 2:  # the last part in halves, so that two workers finish together
        assert max(sizes[-2:]) < 0.7 * min(sizes[:-2])
    assert events == len(one) == sum(len(frame) for frame in frames)
    np.testing.assert_array_equal(np.concatenate([frame.matrix for frame in frames]), one.matrix)
    for name, values in one.columns.items():
        joined = np.concatenate([frame.columns[name] for frame in frames])
        assert joined.tolist() == values.tolist(), name
    joined_identity = [row for frame in frames for row in frame.identity_in_order().to_pylist()]
    assert len(joined_identity) == len(one)
    assert joined_identity == one.identity_in_order().to_pylist()
    assert [row["event_id"] for row in joined_identity] == one.columns["_id"].tolist()


def test_parts_starting_within_one_hour_see_what_came_before_them_as_a_read_at_once(scored_project_source):
    """The time before each later part (prior counts, collapsed hourly history) is read for all
    parts in one pass (authml.train.part_context_sql), at the level of each part's bound; parts a
    few events long put several bounds in one clock hour, where the collapsed hours are the same."""
    project_dir, _ = scored_project_source
    window = FeatureWindow(datetime(2025, 11, 5, 13, 0), datetime(2025, 11, 5, 17, 0))
    with EmbeddedFeatureReader.open(project_dir) as reader:
        one = reader.read_events(window, with_identity=True)
        _, parts = reader.window_parts(window, rows_per_part=10)
        frames = [read() for read in reader.part_reads(parts, with_identity=True)]
    hours = [part.start.replace(minute=0, second=0, microsecond=0) for part in parts]
    assert len(parts) > 10 and len(set(hours)) < len(hours)  # bounds that share an hour
    np.testing.assert_array_equal(np.concatenate([frame.matrix for frame in frames]), one.matrix)
    assert np.concatenate([frame.columns["_id"] for frame in frames]).tolist() == one.columns["_id"].tolist()


def _times(connection) -> list[datetime]:
    return [row[0] for row in connection.execute('SELECT "@timestamp" FROM events ORDER BY 1').fetchall()]


@pytest.fixture
def tied_events():
    """Ten 4624 events, three of them at one time."""
    connection = duckdb.connect()
    connection.execute(
        'CREATE TABLE events ("user.name" VARCHAR, "@timestamp" TIMESTAMP, "event.code" VARCHAR)'
    )
    times = [datetime(2025, 1, 1, hour) for hour in (1, 2, 3, 4, 4, 4, 5, 6, 7, 8)]
    connection.executemany("INSERT INTO events VALUES ('u', ?, '4624')", [[t] for t in times])
    connection.execute("INSERT INTO events VALUES ('u', '2025-01-01 04:30', '1102')")  # not authentication
    return connection


def test_split_window_covers_the_window_in_consecutive_parts(tied_events):
    events, parts = split_window(tied_events, FeatureWindow(), 3)
    assert events == 10
    assert parts[0].start is None and parts[-1].end is None
    assert all(a.end == b.start for a, b in zip(parts, parts[1:], strict=False))
    times = _times(tied_events)
    per_part = [
        sum(1 for t in times if (p.start is None or t >= p.start) and (p.end is None or t < p.end))
        for p in parts
    ]
    # the three events at 04:00 stay together; the part sizes still add up
    assert sum(per_part) == 11 and len(parts) >= 3


def test_split_window_keeps_the_window_bounds_and_their_time_zone(tied_events):
    window = FeatureWindow(datetime(2025, 1, 1, 2, tzinfo=UTC), datetime(2025, 1, 1, 7, tzinfo=UTC), "UTC")
    events, parts = split_window(tied_events, window, 2)
    assert events == 7  # 02:00 up to 06:00, three at 04:00
    assert parts[0].start == window.start and parts[-1].end == window.end
    assert all(p.start.tzinfo is UTC and p.end.tzinfo is UTC for p in parts)
    assert len(parts) >= 2


def test_split_window_of_few_events_is_the_window(tied_events):
    window = FeatureWindow(datetime(2025, 1, 1, 5), None)
    assert split_window(tied_events, window, 100) == (4, [window])
    assert split_window(tied_events, window, 100, last_pieces=2) == (4, [window])
    with pytest.raises(ValueError, match="rows_per_part"):
        split_window(tied_events, window, 0)


def test_each_score_row_holds_its_own_events_identity_and_score(scored_project):
    """Score rows are written in the scan's order, not the frames': each must still get its own
    event's identity and score (a chunk smaller than a part takes the slower path)."""
    project_dir, model = scored_project
    run_scoring(project_dir, model, ScoreOptions(chunk_rows=500))
    with EmbeddedFeatureReader.open(project_dir) as reader:
        frame = reader.read_events(FeatureWindow(time_zone=model.time_zone))
    expected = dict(zip(frame.columns["_id"].tolist(), model.score(frame).scores.tolist(), strict=True))
    with Store.open(project_dir, read_only=True) as store:
        rows = store.connection.execute(
            """SELECT s.event_id, s.score, s."user.name" = e."user.name", s."@timestamp" = e."@timestamp",
                      s."winlog.record_id" IS NOT DISTINCT FROM e."winlog.record_id"
               FROM scores s JOIN events e ON e._id = s.event_id"""
        ).fetchall()
    assert len(rows) == len(expected)
    assert all(same_user and same_time and same_record for _, _, same_user, same_time, same_record in rows)
    assert {event_id: score for event_id, score, *_ in rows} == pytest.approx(expected)


def _rows(ids, scores, reasons) -> dict[str, tuple[float, tuple[str, ...]]]:
    return {
        event_id: (score, tuple(reason))
        for event_id, score, reason in zip(ids, scores.tolist(), reasons, strict=True)
    }


def test_a_scored_part_holds_its_rows_in_its_identitys_order(scored_project_source):
    from authml.score.run import ScoredPart

    project_dir, model = scored_project_source
    with EmbeddedFeatureReader.open(project_dir) as reader:
        frame = reader.read_events(FeatureWindow(), with_identity=True)
    assert frame.identity_rows is not None and not np.array_equal(frame.identity_rows, np.arange(len(frame)))
    for chunk, in_scan_order in ((frame, True), (frame.take(slice(100, 900)), False)):
        scored = model.score(chunk, reasons_from=0.0)
        part = ScoredPart.of(chunk, scored)
        ids = part.ids.to_pylist()
        assert part.identity.column("event_id").to_pylist() == ids
        # a whole frame keeps the scan's order; a chunk's identity rows are gathered in its own
        assert (ids == chunk.columns["_id"].tolist()) != in_scan_order
        assert any(scored.reasons)
        assert _rows(ids, part.scores, part.reasons.to_pylist()) == _rows(
            chunk.columns["_id"].tolist(), scored.scores, scored.reasons
        )


def test_a_window_without_events_scores_nothing(scored_project_source, tmp_path):
    source, model = scored_project_source
    project = copy_project(source, tmp_path / "empty")
    outcome = run_scoring(
        project, model, ScoreOptions(since=datetime(2001, 1, 1), until=datetime(2001, 1, 2))
    )
    assert (outcome.events_scored, outcome.event_ids, outcome.anomalies) == (0, [], 0)


def test_a_run_that_fails_partway_keeps_none_of_its_rows(scored_project, monkeypatch):
    """Parts' rows are written as they arrive, in the run's one transaction: a part that fails
    after others were written leaves no score rows, no risk and no checkpoint."""
    import authml.embedded.scores as scores_module
    from authml.embedded.scores import read_checkpoint
    from authml.score.model import ScoringModel

    project_dir, model = scored_project
    written: list[int] = []
    write = scores_module.write_scores
    monkeypatch.setattr(
        scores_module,
        "write_scores",
        lambda *args, **kwargs: written.append(write(*args, **kwargs)) or written[-1],
    )
    score, calls = ScoringModel.score, []

    def fails_on_the_fourth_part(self, frame, **kwargs):
        calls.append(len(frame))
        if len(calls) == 4:
            raise RuntimeError("the model failed on part 4")
        return score(self, frame, **kwargs)

    monkeypatch.setattr(ScoringModel, "score", fails_on_the_fourth_part)
    with pytest.raises(RuntimeError, match="part 4"):
        run_scoring(project_dir, model, ScoreOptions(chunk_rows=300))
    assert sum(written) >= 300  # rows of the first parts were written before the failure
    with Store.open(project_dir, read_only=True) as store:
        assert store.connection.execute("SELECT count(*) FROM scores").fetchone() == (0,)
        assert store.connection.execute("SELECT count(*) FROM user_risk").fetchone() == (0,)
        assert read_checkpoint(store) is None


def test_parts_are_equal_but_the_last_pieces():
    def sizes(events: int, rows_per_part: int, last_pieces: int) -> list[int]:
        ends = [round(end * events) for end in _part_ends(events, rows_per_part, last_pieces)]
        return [b - a for a, b in zip([0, *ends], [*ends, events], strict=True)]

    assert sizes(1000, 100, 1) == [100] * 10
    assert sizes(1000, 300, 1) == [250] * 4  # equal parts, none above rows_per_part
    assert sizes(1000, 100, 2) == [*[100] * 9, 50, 50]
    assert sizes(1200, 100, 4) == [*[100] * 11, 25, 25, 25, 25]
    assert sizes(150, 100, 2) == [75, 37, 38]  # ends 75 and 112.5, which round() makes 112
    with pytest.raises(ValueError, match="last_pieces"):
        split_window(duckdb.connect(), FeatureWindow(), 100, last_pieces=0)
