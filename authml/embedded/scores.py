"""The scores and per-account risk tables of the embedded store.

``scores`` holds one row per (event, model version): ``score_id`` (a virtual column) is ``<event id>:<model version>``,
so scoring the same window again with the same model replaces rows instead of adding any. The ECS
identity of each row comes from the scan that read its features, or else is copied from the
``events`` table inside the same INSERT, by event id.
``user_risk`` is recomputed from ``scores`` after every run. ``score_checkpoints`` remembers the
newest ``event.ingested`` already scored, which is what "events since the last run" means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

from authml.embedded.duck import fetch_dicts, registered, thread_count
from authml.embedded.schema import quote
from authml.embedded.store import Store
from authml.score.records import IDENTITY_FIELDS

# Columns written to ``scores``, in its order. ``score_id`` is not among them: it is a virtual
# column computed from the event id and model version when read, because a million distinct
# strings cost a second and a half to store. The random event ids, record ids and per-row JSON
# are stored uncompressed: they do not compress, and DuckDB's search for a compression
# (dictionary + FSST) costs several times the write itself.
UNCOMPRESSED = ("event_id", "winlog.record_id", "detector_scores")
STORED_COLUMNS: dict[str, str] = {
    "event_id": "VARCHAR NOT NULL",
    "@timestamp": "TIMESTAMP",
    **{field: "VARCHAR" for field in IDENTITY_FIELDS[1:]},
    "user_key": "VARCHAR",
    "score": "DOUBLE NOT NULL",
    "evidence": "DOUBLE NOT NULL",
    "detector_scores": "JSON NOT NULL",
    "reasons": "VARCHAR[] NOT NULL",
    "is_anomaly": "BOOLEAN NOT NULL",
    "threshold": "DOUBLE NOT NULL",
    "model_version": "VARCHAR NOT NULL",
    "scored_at": "TIMESTAMP NOT NULL",
}
SCORE_ID_SQL = "event_id || ':' || model_version"


def _scores_ddl(table: str) -> str:
    columns = [f"score_id VARCHAR GENERATED ALWAYS AS ({SCORE_ID_SQL}) VIRTUAL"]
    for name, sql_type in STORED_COLUMNS.items():
        base, _, constraint = sql_type.partition(" ")
        compression = " USING COMPRESSION uncompressed" if name in UNCOMPRESSED else ""
        columns.append(f"{quote(name)} {base}{compression} {constraint}".rstrip())
    return f"CREATE TABLE {table} (\n  " + ",\n  ".join(columns) + "\n)"


RISK_AND_CHECKPOINT_DDL = (
    """CREATE TABLE IF NOT EXISTS user_risk (
  user_key VARCHAR PRIMARY KEY,
  "user.name" VARCHAR,
  "user.domain" VARCHAR,
  score DOUBLE NOT NULL,
  evidence DOUBLE NOT NULL,
  level VARCHAR NOT NULL,
  top_reasons VARCHAR[] NOT NULL,
  last_anomaly TIMESTAMP,
  anomalies BIGINT NOT NULL,
  events_scored BIGINT NOT NULL,
  model_version VARCHAR NOT NULL,
  updated_at TIMESTAMP NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS score_checkpoints (
  name VARCHAR PRIMARY KEY,
  ingested_upper TIMESTAMP NOT NULL,
  model_version VARCHAR NOT NULL,
  recorded_at TIMESTAMP NOT NULL
)""",
)
CHECKPOINT_NAME = "default"

# Risk levels by the account's current score (the combined 0-100 scale): 50 is about one training
# event in a thousand, 75 one in thirty thousand.
RISK_LEVELS = ((75.0, "critical"), (50.0, "high"), (25.0, "medium"), (0.0, "low"))
TOP_REASONS = 5


def create_score_tables(store: Store) -> None:
    """Create the tables, or bring a ``scores`` table of an earlier version (a stored
    ``score_id``, compressed ids) to the current layout. Call it inside ``store.transaction()``."""
    if not has_score_tables(store):
        store.connection.execute(_scores_ddl("scores"))
    elif not _scores_layout_is_current(store):
        _migrate_scores(store)
    for ddl in RISK_AND_CHECKPOINT_DDL:
        store.connection.execute(ddl)


def _scores_layout_is_current(store: Store) -> bool:
    (generated,) = store.connection.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'scores' "
        "AND table_schema = current_schema() AND column_name = 'score_id' AND is_generated = 'ALWAYS'"
    ).fetchone()
    return generated > 0


def _migrate_scores(store: Store) -> None:
    """Copy the rows into a table of the current layout: once per store, the cost of one write
    of its scores. Earlier stores' score ids were already ``<event id>:<model version>``."""
    columns = ", ".join(quote(name) for name in STORED_COLUMNS)
    connection = store.connection
    connection.execute("DROP TABLE IF EXISTS authml_scores_migrated")
    connection.execute(_scores_ddl("authml_scores_migrated"))
    connection.execute(f"INSERT INTO authml_scores_migrated ({columns}) SELECT {columns} FROM scores")
    connection.execute("DROP TABLE scores")
    connection.execute("ALTER TABLE authml_scores_migrated RENAME TO scores")


def has_score_tables(store: Store) -> bool:
    (count,) = store.connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'scores'"
    ).fetchone()
    return count > 0


@dataclass(slots=True)
class ScoreBatch:
    """Scores of some events by one model: arrays in the same row order. ``time_range`` (the
    first and last event @timestamp, when the caller knows them) lets the write skip the parts of
    ``events`` and ``scores`` outside it, so a run costs what its window holds, not the store."""

    event_ids: Sequence[str]
    scores: Sequence[float]
    detector_scores: dict[str, Sequence[float]]  # detector name -> one value per event
    reasons: Sequence[Sequence[str]] | pa.Array
    time_range: tuple[datetime, datetime] | None = None
    # The rows' ECS identity (authml.train.feature_sql.IDENTITY_COLUMNS) when the feature read
    # selected it; without it the write joins the events table by event id to copy it.
    identity: pa.Table | None = None


def reasons_array(reasons: Sequence[Sequence[str]] | pa.Array) -> pa.Array:
    """A list<string> array without a Python list per row: most rows have no reasons."""
    if isinstance(reasons, pa.Array):
        return reasons
    lengths = np.fromiter(map(len, reasons), dtype=np.int32, count=len(reasons))
    offsets = np.zeros(len(reasons) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = pa.array(list(chain.from_iterable(reasons)), pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def write_scores(
    store: Store, batch: ScoreBatch, *, model_version: str, threshold: float, scored_at: datetime
) -> int:
    """Replace the batch's rows (identity from ``batch.identity``, else read from ``events``);
    returns rows written. Call it inside ``store.transaction()`` so the delete and the insert
    commit together."""
    if not len(batch.event_ids):
        return 0
    detectors = sorted(batch.detector_scores)
    arrays = {
        "score": pa.array(np.asarray(batch.scores, dtype=np.float64)),
        "reasons": reasons_array(batch.reasons),
    }
    for index, name in enumerate(detectors):
        arrays[f"d{index}"] = pa.array(np.asarray(batch.detector_scores[name], dtype=np.float64))
    parameters: dict[str, Any] = {"version": model_version}
    within = ""
    if batch.time_range is not None:
        # a score row's @timestamp is its event's: rows outside the range are neither replaced
        # nor joined, and the zone maps of both tables skip them
        within = 'AND "@timestamp" BETWEEN $first AND $last'
        parameters |= {"first": _naive(batch.time_range[0]), "last": _naive(batch.time_range[1])}
    if batch.identity is not None:
        if batch.identity.num_rows != len(batch.event_ids):
            raise ValueError(f"{batch.identity.num_rows} identity rows for {len(batch.event_ids)} scores")
        identity = batch.identity
        if identity.column(0).num_chunks > 1 and thread_count(store.connection) > 1:
            # on several threads DuckDB inserts the chunks side by side, each into row groups of its
            # own, part-filled; on one, one after the other into the same: the copy is for nothing
            # there (measured: the same row groups either way, 35 ms per 250,000 rows saved)
            identity = identity.combine_chunks()
        arrays |= dict(zip(identity.column_names, identity.columns, strict=True))
        identity = ", ".join(f"b.{quote(f)}" for f in ("event_id", *IDENTITY_FIELDS, "user_key"))
        source = "authml_score_batch b"
    else:
        arrays["event_id"] = pa.array(np.asarray(batch.event_ids, dtype=object), pa.string())
        # Events stored before authml.user_key existed fall back to the same rule (authml/ecs.py user_key).
        user_key = 'coalesce(e."authml.user_key", nullif(lower(trim(e."user.name")), \'\'))'
        identity = ", ".join(["b.event_id", *(f"e.{quote(f)}" for f in IDENTITY_FIELDS), user_key])
        source = (
            f"authml_score_batch b JOIN (SELECT * FROM events WHERE true {within}) e ON e._id = b.event_id"
        )
    # The detectors' nats added up: the combined score before its 0-100 cap, so it orders events
    # (and accounts) that all reach 100.
    evidence = " + ".join(f"b.d{i}" for i in range(len(detectors))) or "0.0"
    detector_json = ", ".join(f"'{name}', b.d{i}" for i, name in enumerate(detectors))
    # No primary key on scores: maintaining one costs 30x the insert at a million rows. The store
    # has one writer at a time (DuckDB's file lock), so delete-then-insert in the caller's
    # transaction keeps one row per (event, model version), that is per score_id.
    delete = (
        "DELETE FROM scores WHERE model_version = $version "
        f"AND event_id IN (SELECT event_id FROM authml_score_batch) {within}"
    )
    columns = ", ".join(quote(name) for name in STORED_COLUMNS)
    sql = f"""INSERT INTO scores ({columns})
SELECT {identity}, b.score, {evidence}, json_object({detector_json}), b.reasons, b.score >= $threshold,
       $threshold, $version, $scored_at
FROM {source}"""
    with registered(store.connection, "authml_score_batch", pa.table(arrays)):
        store.connection.execute(delete, parameters)
        if batch.identity is not None:  # no join, so no time range in the insert
            parameters = {"version": model_version}
        store.connection.execute(sql, parameters | {"threshold": threshold, "scored_at": _naive(scored_at)})
    return len(batch.event_ids)


def _naive(moment: datetime) -> datetime:
    """DuckDB TIMESTAMP columns hold naive UTC."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


# Checkpoints and pending events --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    """Events stored since the last scoring run: how many, their @timestamp span, and the newest
    ``event.ingested`` (the next checkpoint)."""

    events: int
    first: datetime | None
    last: datetime | None
    ingested_upper: datetime | None


def read_checkpoint(store: Store) -> datetime | None:
    if not has_score_tables(store):
        return None
    row = store.connection.execute(
        "SELECT ingested_upper FROM score_checkpoints WHERE name = ?", [CHECKPOINT_NAME]
    ).fetchone()
    return row[0] if row else None


def write_checkpoint(store: Store, ingested_upper: datetime, model_version: str, now: datetime) -> None:
    store.connection.execute(
        "INSERT OR REPLACE INTO score_checkpoints VALUES (?, ?, ?, ?)",
        [CHECKPOINT_NAME, _naive(ingested_upper), model_version, _naive(now)],
    )


def pending_events(store: Store, after: datetime | None, codes: Sequence[str]) -> Pending:
    """The scoreable events (an account, a time, an authentication code) ingested after ``after``."""
    code_list = ", ".join("'" + c.replace("'", "''") + "'" for c in codes)
    condition = '"event.ingested" > ?' if after is not None else "true"
    count, first, last, upper = store.connection.execute(
        f'SELECT count(*), min("@timestamp"), max("@timestamp"), max("event.ingested") FROM events '
        f'WHERE {condition} AND "user.name" IS NOT NULL AND "@timestamp" IS NOT NULL '
        f'AND "event.code" IN ({code_list})',
        [_naive(after)] if after is not None else [],
    ).fetchone()
    return Pending(count, first, last, upper)


def newest_ingested(store: Store) -> datetime | None:
    return store.connection.execute('SELECT max("event.ingested") FROM events').fetchone()[0]


def features_lag(store: Store) -> datetime | None:
    """The oldest feature checkpoint when it is behind the newest stored event, else None."""
    exists = store.connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'feature_checkpoints'"
    ).fetchone()[0]
    if not exists:
        return None
    (oldest,) = store.connection.execute("SELECT min(sync_upper) FROM feature_checkpoints").fetchone()
    newest = newest_ingested(store)
    if oldest is not None and newest is not None and newest > oldest:
        return oldest
    return None


# Per-account risk ---------------------------------------------------------------------------


def risk_level(score: float) -> str:
    return next(name for bound, name in RISK_LEVELS if score >= bound)


def update_user_risk(store: Store, *, model_version: str, window_days: float, now: datetime) -> int:
    """Rewrite ``user_risk`` from the newest score of every event: risk is the account's highest
    score in the ``window_days`` before the newest scored event (event time, so old log folders
    work), top reasons the distinct reasons of its three highest events there, in score order.
    In SQL: the accounts never pass through Python. Returns the number of accounts.

    Cost stays near a scan of the account columns: the per-event "newest score" step runs only
    when several model versions scored, and the costly figures (highest scores, reasons) read
    only the rows inside the window, which the zone maps of ``@timestamp`` find."""
    connection = store.connection
    (versions,) = connection.execute("SELECT count(DISTINCT model_version) FROM scores").fetchone()
    current = "SELECT * FROM scores WHERE user_key IS NOT NULL"  # one row per event already
    if versions > 1:  # each event's newest row, computed once for the three reads below
        connection.execute(
            """CREATE OR REPLACE TEMP TABLE authml_current_scores AS
SELECT s.event_id, s.user_key, s."user.name", s."user.domain", s."@timestamp", s.score, s.evidence,
       s.reasons, s.is_anomaly
FROM scores s JOIN (
  SELECT event_id, arg_max(score_id, scored_at) AS score_id FROM scores GROUP BY event_id
) latest USING (score_id) WHERE s.user_key IS NOT NULL"""
        )
        current = "SELECT * FROM authml_current_scores"
    try:
        return _rewrite_user_risk(connection, current, model_version, window_days, now)
    finally:
        connection.execute("DROP TABLE IF EXISTS authml_current_scores")


def _rewrite_user_risk(
    connection: Any, current: str, model_version: str, window_days: float, now: datetime
) -> int:
    levels = " ".join(f"WHEN score >= {bound} THEN '{name}'" for bound, name in RISK_LEVELS)
    (newest,) = connection.execute(f'SELECT max("@timestamp") FROM ({current})').fetchone()
    connection.execute("DELETE FROM user_risk")
    if newest is None:
        return 0
    since = newest - timedelta(microseconds=int(window_days * 86_400_000_000))
    connection.execute(
        f"""
INSERT INTO user_risk
WITH all_time AS (
  SELECT user_key, arg_max("user.name", "@timestamp") AS name, arg_max("user.domain", "@timestamp") AS domain,
         max("@timestamp") FILTER (WHERE is_anomaly) AS last_anomaly
  FROM ({current}) GROUP BY user_key
),
recent AS (
  SELECT user_key, max(score) AS score, max(evidence) AS evidence,
         flatten(coalesce(max_by(reasons, {{'score': score, 'evidence': evidence, 'event_id': event_id}}, 3)
                 FILTER (WHERE len(reasons) > 0), [])) AS reasons,
         count(*) FILTER (WHERE is_anomaly) AS anomalies, count(*) AS scored
  FROM ({current}) WHERE "@timestamp" > $since
  GROUP BY user_key
),
per_account AS (
  SELECT a.user_key, a.name, a.domain, coalesce(r.score, 0) AS score, coalesce(r.evidence, 0) AS evidence,
         coalesce(r.reasons, []) AS reasons, a.last_anomaly, coalesce(r.anomalies, 0) AS anomalies,
         coalesce(r.scored, 0) AS scored
  FROM all_time a LEFT JOIN recent r USING (user_key)
)
SELECT user_key, name, domain, score, evidence, CASE {levels} END,
       list_filter(reasons, lambda reason, i: list_position(reasons, reason) = i)[1:{TOP_REASONS}],
       last_anomaly, anomalies, scored, $version, $updated_at
FROM per_account""",
        {"since": since, "version": model_version, "updated_at": _naive(now)},
    )
    return connection.execute("SELECT count(*) FROM user_risk").fetchone()[0]


# Reading -------------------------------------------------------------------------------------

SCORE_COLUMNS = (
    "score_id",
    "event_id",
    *IDENTITY_FIELDS,
    "user_key",
    "score",
    "evidence",
    "detector_scores",
    "reasons",
    "is_anomaly",
    "threshold",
    "model_version",
    "scored_at",
)


def read_scores(
    store: Store,
    *,
    where: str = "true",
    parameters: list[Any] | None = None,
    order_by: str = '"@timestamp", event_id',
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Score rows as dicts (``detector_scores`` decoded); ``where`` is SQL over the scores table."""
    import json

    columns = ", ".join(quote(c) for c in SCORE_COLUMNS)
    sql = f"SELECT {columns} FROM scores WHERE {where} ORDER BY {order_by}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    rows = fetch_dicts(store.connection, sql, parameters)
    for row in rows:
        row["detector_scores"] = json.loads(row["detector_scores"])
    return rows


def read_user_risk(store: Store, *, limit: int | None = None, user: str | None = None) -> list[dict]:
    sql = "SELECT * FROM user_risk"
    parameters: list[Any] = []
    if user is not None:
        sql += ' WHERE user_key = lower(?) OR lower("user.name") = lower(?)'
        parameters = [user, user]
    sql += " ORDER BY score DESC, evidence DESC, user_key"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return fetch_dicts(store.connection, sql, parameters)
