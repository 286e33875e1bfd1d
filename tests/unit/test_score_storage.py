"""How scores are stored: each row's ECS identity, read in the feature scan, is its event's; a
store whose ``scores`` table was written by an earlier version (``score_id`` stored, ids
compressed) still opens, reads and scores, and the first scoring run moves it to the current layout."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pytest

from authml.embedded.schema import quote
from authml.embedded.scores import (
    ScoreBatch,
    create_score_tables,
    read_scores,
    read_user_risk,
    write_scores,
)
from authml.embedded.store import Store
from authml.score.records import IDENTITY_FIELDS
from authml.score.run import ScoreOptions, run_scoring
from authml.train.feature_sql import IDENTITY_COLUMNS

pytestmark = pytest.mark.timeout(300)

# The scores table as authml created it before score_id became a virtual column (frozen copy).
EARLIER_SCORES_DDL = f"""CREATE TABLE scores (
  score_id VARCHAR NOT NULL,
  event_id VARCHAR NOT NULL,
  {quote("@timestamp")} TIMESTAMP,
  {", ".join(f"{quote(f)} VARCHAR" for f in IDENTITY_FIELDS[1:])},
  user_key VARCHAR,
  score DOUBLE NOT NULL,
  evidence DOUBLE NOT NULL,
  detector_scores JSON NOT NULL,
  reasons VARCHAR[] NOT NULL,
  is_anomaly BOOLEAN NOT NULL,
  threshold DOUBLE NOT NULL,
  model_version VARCHAR NOT NULL,
  scored_at TIMESTAMP NOT NULL
)"""


def _score_id_is_generated(project_dir) -> bool:
    with Store.open(project_dir, read_only=True) as store:
        (kind,) = store.connection.execute(
            "SELECT is_generated FROM information_schema.columns "
            "WHERE table_name = 'scores' AND column_name = 'score_id'"
        ).fetchone()
    return kind == "ALWAYS"


def _rows(project_dir):
    with Store.open(project_dir, read_only=True) as store:
        rows = read_scores(store)
    return {r["score_id"]: {k: v for k, v in r.items() if k != "scored_at"} for r in rows}


def test_a_store_scored_by_an_earlier_version_still_reads_and_scores(scored_project):
    project_dir, model = scored_project
    window = ScoreOptions(since=datetime(2025, 11, 3), until=datetime(2025, 11, 20))
    run_scoring(project_dir, model, window)
    current = _rows(project_dir)
    assert _score_id_is_generated(project_dir)

    # turn the table back into the earlier layout, rows unchanged, score_id stored
    with Store.open(project_dir) as store:
        connection = store.connection
        connection.execute("ALTER TABLE scores RENAME TO scores_now")
        connection.execute(EARLIER_SCORES_DDL)
        connection.execute("INSERT INTO scores SELECT * FROM scores_now")  # score_id comes first
        connection.execute("DROP TABLE scores_now")
    assert not _score_id_is_generated(project_dir)
    assert _rows(project_dir) == current  # read before any migration: report and explain work

    again = run_scoring(project_dir, model, window)  # the same window: replaced, not added
    assert _score_id_is_generated(project_dir)
    after = _rows(project_dir)
    assert again.events_scored == len(after) == len(current) > 1000
    assert after.keys() == current.keys()
    assert {k: (r["score"], r["reasons"], r["user.name"]) for k, r in after.items()} == {
        k: (r["score"], r["reasons"], r["user.name"]) for k, r in current.items()
    }
    with Store.open(project_dir, read_only=True) as store:
        assert read_user_risk(store)


def test_a_store_migrated_with_rows_of_another_model_keeps_both(scored_project):
    project_dir, model = scored_project
    window = ScoreOptions(since=datetime(2025, 11, 3), until=datetime(2025, 11, 20))
    run_scoring(project_dir, model, window)
    with Store.open(project_dir) as store:
        connection = store.connection
        connection.execute("ALTER TABLE scores RENAME TO scores_now")
        connection.execute(EARLIER_SCORES_DDL)
        connection.execute(
            "INSERT INTO scores SELECT * REPLACE (event_id || ':older' AS score_id, 'older' AS model_version) "
            "FROM scores_now"
        )
        connection.execute("DROP TABLE scores_now")
    run_scoring(project_dir, model, window)
    rows = _rows(project_dir)
    versions = {r["model_version"] for r in rows.values()}
    assert versions == {"older", model.version}
    assert all(score_id == f"{r['event_id']}:{r['model_version']}" for score_id, r in rows.items())
    assert len(rows) == 2 * len({r["event_id"] for r in rows.values()})


def test_identity_read_with_the_features_is_the_events_own(scored_project):
    project_dir, model = scored_project
    # a window starting mid-history: the rows before it that the features read are not scored
    outcome = run_scoring(project_dir, model, ScoreOptions(since=datetime(2025, 11, 6, 13, 17)))
    assert outcome.events_scored > 1000
    fields = (*IDENTITY_FIELDS, "user_key")
    events_user_key = """coalesce(e."authml.user_key", nullif(lower(trim(e."user.name")), ''))"""
    differing = " OR ".join(
        f"s.{quote(f)} IS DISTINCT FROM " + (events_user_key if f == "user_key" else f"e.{quote(f)}")
        for f in fields
    )
    with Store.open(project_dir, read_only=True) as store:
        joined, differ, domains, channels = store.connection.execute(
            f"""SELECT count(*), count(*) FILTER (WHERE {differing}),
                       count(s."user.domain"), count(s."winlog.channel")
                FROM scores s JOIN events e ON e._id = s.event_id"""
        ).fetchone()
        (earliest,) = store.connection.execute('SELECT min("@timestamp") FROM scores').fetchone()
    assert joined == outcome.events_scored and differ == 0
    assert domains > 0 and channels > 0  # the fields the features do not need are there too
    assert earliest >= datetime(2025, 11, 6, 13, 17)


def _score_batch(numbers: range) -> ScoreBatch:
    moments = [datetime(2025, 11, 3, 8, n) for n in numbers]
    identity = {field: [f"{field}-{n}" for n in numbers] for field in IDENTITY_COLUMNS}
    identity["@timestamp"] = moments
    return ScoreBatch(
        np.array([f"event-{n}" for n in numbers], dtype=object),
        np.array([float(n) for n in numbers]),
        {"rarity": np.array([n / 2 for n in numbers]), "autoencoder": np.array([n / 4 for n in numbers])},
        [(f"reason {n}",) if n % 2 else () for n in numbers],
        time_range=(moments[0], moments[-1]) if moments else None,
        identity=pa.table(identity),
    )


def _write_all(project_dir, batches: list[ScoreBatch]) -> tuple[list[int], list[tuple]]:
    with Store.open(project_dir, create=True) as store:
        with store.transaction():
            create_score_tables(store)
            settings = {"model_version": "v1", "threshold": 5.0, "scored_at": datetime(2025, 11, 4)}
            written = [write_scores(store, batch, **settings) for batch in batches]
        rows = store.connection.execute("SELECT * FROM scores ORDER BY event_id").fetchall()
    return written, rows


def test_a_run_written_part_by_part_holds_what_one_write_of_all_its_rows_holds(tmp_path):
    batches = [_score_batch(range(0, 3)), _score_batch(range(3, 6)), _score_batch(range(0))]
    batches += [_score_batch(range(6, 9)), _score_batch(range(9, 10))]
    written, rows = _write_all(tmp_path / "parts", batches)
    once, rows_once = _write_all(tmp_path / "once", [_score_batch(range(0, 10))])
    assert written == [3, 3, 0, 3, 1]
    assert once == [10] and len(rows) == 10
    assert rows == rows_once
