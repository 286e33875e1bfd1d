"""Read-only queries over the scores, risk and events tables for `authml explain` and
`authml report`: plain rows and numbers, no presentation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from authml.embedded.duck import fetch_dicts
from authml.embedded.store import Store
from authml.train.feature_sql import LOOPBACK_ADDRESSES

TOP_VALUES = 5


def _codes_sql(codes: list[str]) -> str:
    return ", ".join("'" + c.replace("'", "''") + "'" for c in codes)


def _local_hour(time_zone: str) -> str:
    zone = time_zone.replace("'", "''")
    return f"hour(timezone('{zone}', timezone('UTC', \"@timestamp\")))"


def event_document(store: Store, event_id: str) -> dict[str, Any] | None:
    row = store.connection.execute("SELECT document FROM events WHERE _id = ?", [event_id]).fetchone()
    return orjson.loads(row[0]) if row else None


def account_baseline(
    store: Store, user_name: str, *, before: datetime | None, codes: list[str], time_zone: str
) -> dict[str, Any]:
    """The account's authentication history before ``before``: events and failures, events per
    local hour of day, and its most frequent source IPs, hosts and logon types with counts."""
    return account_baselines(store, [(user_name, before)], codes=codes, time_zone=time_zone)[0]


# What account_baselines ranks the most frequent values of, by the key each baseline holds them under.
_TOP_VALUES_OF = {
    "source_ips": "source_ip",
    "hosts": "host",
    "logon_types": "logon_type",
    "event_codes": "code",
}


def account_baselines(
    store: Store, accounts: list[tuple[str, datetime | None]], *, codes: list[str], time_zone: str
) -> list[dict[str, Any]]:
    """`account_baseline` of each (account, before), in the order given: the events of all of
    them found in two scans, where a report's 25 alerts took six queries each over every stored
    event (1.1 s of a 2.5 s report over a million events). Nothing is registered on the
    connection, so a caller's unfinished result does not get in the way."""
    if not accounts:
        return []
    wanted = ", ".join("(?::INTEGER, ?::VARCHAR, ?::TIMESTAMP)" for _ in accounts)
    parameters = [value for i, (user, before) in enumerate(accounts) for value in (i, user, before)]
    picked = f"""WITH picked AS MATERIALIZED (
  SELECT w.i, e."@timestamp" AS ts, e."event.outcome" = 'failure' AS failed,
         {_local_hour(time_zone)} AS hour, e."source.ip" AS source_ip, e."host.name" AS host,
         coalesce(e."winlog.logon.type", e."winlog.event_data.LogonType") AS logon_type, e."event.code" AS code
  FROM events e JOIN (VALUES {wanted}) w(i, account, before) ON lower(e."user.name") = lower(w.account)
  WHERE e."event.code" IN ({_codes_sql(codes)}) AND (w.before IS NULL OR e."@timestamp" < w.before)
)
"""
    baselines = [
        {
            "user": user,
            "before": before,
            "events": 0,
            "failures": 0,
            "first_seen": None,
            "last_seen": None,
            "hours": [0] * 24,
            **{key: [] for key in _TOP_VALUES_OF},
            "source_ip_count": 0,
            "host_count": 0,
        }
        for user, before in accounts
    ]
    connection = store.connection
    for i, events, failures, first, last, source_ips, hosts in connection.execute(
        picked
        + """SELECT i, count(*), count(*) FILTER (WHERE failed), min(ts), max(ts),
       count(DISTINCT source_ip), count(DISTINCT host)
FROM picked GROUP BY i""",
        parameters,
    ).fetchall():
        baselines[i].update(
            events=events,
            failures=failures,
            first_seen=first,
            last_seen=last,
            source_ip_count=source_ips,
            host_count=hosts,
        )
    # each local hour's count, and each kind's most frequent values: (kind, i, value, count)
    ranked = " UNION ALL ".join(
        f"""SELECT '{key}' AS kind, i, {column} AS v, count(*) AS n,
       row_number() OVER (PARTITION BY i ORDER BY count(*) DESC, {column}) AS r
FROM picked WHERE {column} IS NOT NULL GROUP BY i, {column}"""
        for key, column in _TOP_VALUES_OF.items()
    )
    for kind, i, value, count in connection.execute(
        picked
        + f"""SELECT 'hours' AS kind, i, CAST(hour AS VARCHAR), count(*) FROM picked GROUP BY i, hour
UNION ALL
SELECT kind, i, v, n FROM ({ranked}) WHERE r <= {TOP_VALUES}
ORDER BY kind, i, n DESC, v""",
        parameters,
    ).fetchall():
        if kind == "hours":
            baselines[i]["hours"][int(value)] = int(count)
        else:
            baselines[i][kind].append((str(value), int(count)))
    return baselines


def anomalies_per_day(store: Store) -> list[dict[str, Any]]:
    """Per day of event time: events scored, anomalies, highest score (newest score per event)."""
    return fetch_dicts(
        store.connection,
        f"""SELECT date_trunc('day', "@timestamp") AS day, count(*) AS events,
       count(*) FILTER (WHERE is_anomaly) AS anomalies, max(score) AS max_score
FROM ({latest_scores_sql(store)}) GROUP BY 1 ORDER BY 1""",
    )


def _one_model_version(store: Store) -> bool:
    """Whether at most one model version scored the store: then every score row is its event's
    newest, and the newest-row join (about half a second per million scores) can be left out."""
    (versions,) = store.connection.execute("SELECT count(DISTINCT model_version) FROM scores").fetchone()
    return versions <= 1


def latest_scores_sql(store: Store | None = None) -> str:
    """Every event's newest score row (an event scored by several model versions counts once).
    Given the store, and its scores hold one model version, that is every row (see
    `_one_model_version`), for each query of a report."""
    if store is not None and _one_model_version(store):
        return "SELECT * FROM scores"
    return """SELECT s.* FROM scores s JOIN (
  SELECT event_id, arg_max(score_id, scored_at) AS score_id FROM scores GROUP BY event_id
) latest USING (score_id)"""


def newest_score_condition(store: Store) -> str:
    """An SQL condition over the scores table: the row is its event's newest score. ``true`` when
    one model version scored the store, where the test against `latest_scores_sql` still computed
    the score id of every row (0.1-0.2 s per million scores for 25 events)."""
    if _one_model_version(store):
        return "true"
    return f"score_id IN (SELECT score_id FROM ({latest_scores_sql()}))"


# Alerts: what an analyst triages. One attack is often hundreds of events (a password spray is one
# source failing on dozens of accounts, a brute force hundreds of failures on one), so the scored
# events are grouped into alerts by where they came from, per clock hour (UTC): their source
# address; for events without a routable one (NTLM validations name only a workstation), the host
# that logged them and the event code; failing both, the account. An alert ranks by its top event
# (score, then evidence, then event id).
_NO_SOURCE = f""""source.ip" IS NULL OR "source.ip" IN ({_codes_sql(list(LOOPBACK_ADDRESSES))})"""
ALERT_KEY_SQL = {
    "by": f"""CASE WHEN NOT ({_NO_SOURCE}) THEN 'source.ip'
       WHEN "host.name" IS NOT NULL THEN 'host.name' ELSE 'account' END""",
    "key": f"""CASE WHEN NOT ({_NO_SOURCE}) THEN "source.ip"
       WHEN "host.name" IS NOT NULL THEN coalesce("event.code", '-') || ' on ' || "host.name"
       ELSE coalesce(user_key, '') END""",
    "hour": """date_trunc('hour', "@timestamp")""",
}


def alerts_sql(store: Store | None = None) -> str:
    """Every alert (see ALERT_KEY_SQL), with its rank, its top event and what it holds: ``alert_by``
    ('source.ip', 'host.name' or 'account'), ``alert_key``, ``alert_hour``, ``events``, ``anomalies`` (events at
    or above the threshold), ``accounts``, ``top_event_id``, ``top_score``, ``rank``. ``store``: see
    latest_scores_sql."""
    # The top event is the least of (-score, -evidence, event id): one comparison of structs per
    # row, where two ordered aggregates (first(... ORDER BY ...)) sorted every alert's events
    # (top_alerts over a million scores: 0.53 s against 0.75 s).
    top = "{'score': -score, 'evidence': -evidence, 'event_id': event_id}"
    return f"""SELECT * EXCLUDE (top), top.event_id AS top_event_id, -top.score AS top_score,
       -top.evidence AS top_evidence, row_number() OVER (ORDER BY top) AS rank
FROM (
  SELECT {ALERT_KEY_SQL["by"]} AS alert_by, {ALERT_KEY_SQL["key"]} AS alert_key,
         {ALERT_KEY_SQL["hour"]} AS alert_hour, count(*) AS events,
         count(*) FILTER (WHERE is_anomaly) AS anomalies, count(DISTINCT user_key) AS accounts,
         min({top}) AS top
  FROM ({latest_scores_sql(store)}) GROUP BY ALL
)"""


@dataclass(frozen=True, slots=True)
class TopAlerts:
    """The highest-ranked alerts, and how many alerts there are: from one evaluation of
    `alerts_sql`, which groups every scored event (about half a second per million scores)."""

    events: list[dict[str, Any]]  # the top event's score row of each top alert, in rank order
    alerts: int  # every alert
    with_anomalies: int  # alerts holding an event at or above the threshold


def top_alerts(store: Store, limit: int) -> TopAlerts:
    """The ``limit`` highest-ranked alerts: each one's top event's score row, with ``alert``: the
    alert's row of `alerts_sql` (without the top event's own columns); and the counts."""
    # The counts from the same materialised alerts as the ranks (window counts over every alert
    # instead took 35 s over 400,000 alerts).
    ((total, with_anomalies, alerts),) = store.connection.execute(
        f"""WITH alerts AS MATERIALIZED ({alerts_sql(store)})
SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM alerts WHERE anomalies > 0),
       (SELECT coalesce(list(a ORDER BY rank), []) FROM alerts a WHERE rank <= ?)""",
        [limit],
    ).fetchall()
    if not alerts:
        return TopAlerts([], total, with_anomalies)
    from authml.embedded.scores import read_scores

    ids = [alert["top_event_id"] for alert in alerts]
    rows = {
        row["event_id"]: row
        for row in read_scores(
            store,
            where=f"event_id IN (SELECT unnest(?::VARCHAR[])) AND {newest_score_condition(store)}",
            parameters=[ids],
        )
    }
    hidden = ("top_event_id", "top_score", "top_evidence")
    events = [
        {**rows[alert["top_event_id"]], "alert": {k: v for k, v in alert.items() if k not in hidden}}
        for alert in alerts
    ]
    return TopAlerts(events, total, with_anomalies)


def alert_of(store: Store, event_id: str) -> dict[str, Any] | None:
    """The alert (a row of `alerts_sql`) that holds the event's newest score, if it was scored."""
    keys = ", ".join(f"{sql} AS alert_{name}" for name, sql in ALERT_KEY_SQL.items())
    rows = fetch_dicts(
        store.connection,
        f"""SELECT a.* FROM ({alerts_sql(store)}) a
JOIN (SELECT {keys} FROM ({latest_scores_sql(store)}) WHERE event_id = ?) k
  ON a.alert_by = k.alert_by AND a.alert_key = k.alert_key AND a.alert_hour = k.alert_hour""",
        [event_id],
    )
    return rows[0] if rows else None


def hour_of_day_by_weekday(store: Store, user_name: str, time_zone: str) -> list[list[int]]:
    """7 x 24 counts of the account's scored events: Monday first, local hours."""
    zone = time_zone.replace("'", "''")
    local = f"timezone('{zone}', timezone('UTC', \"@timestamp\"))"
    grid = [[0] * 24 for _ in range(7)]
    for dow, hour, count in store.connection.execute(
        f"SELECT isodow({local}) - 1, hour({local}), count(*) FROM ({latest_scores_sql(store)}) "
        'WHERE lower("user.name") = lower(?) GROUP BY 1, 2',
        [user_name],
    ).fetchall():
        grid[int(dow)][int(hour)] = int(count)
    return grid


def sources_by_failures(store: Store, codes: list[str], limit: int) -> list[dict[str, Any]]:
    """Source IPs with the most failed authentications, and how many accounts they touched."""
    return fetch_dicts(
        store.connection,
        f"""SELECT "source.ip" AS source_ip,
       count(*) FILTER (WHERE "event.outcome" = 'failure') AS failures,
       count(DISTINCT "user.name") AS accounts,
       count(DISTINCT "user.name") FILTER (WHERE "event.outcome" = 'failure') AS failed_accounts,
       count(*) AS events
FROM events WHERE "source.ip" IS NOT NULL AND "event.code" IN ({_codes_sql(codes)})
GROUP BY 1 HAVING failures > 0 ORDER BY failures DESC, accounts DESC, 1 LIMIT {int(limit)}""",
    )


def scenario_labels(store: Store, event_ids: list[str]) -> dict[str, str]:
    """The generator's scenario label of each event that has one (``labels.authml_scenario``)."""
    # The events are found by id before their documents are read: with the label's test in the
    # same WHERE, DuckDB read the label from every stored document (1.3 s per million events).
    rows = store.connection.execute(
        "SELECT _id, document->>'$.labels.authml_scenario' FROM events WHERE _id IN (SELECT unnest(?::VARCHAR[]))",
        [event_ids],
    ).fetchall()
    return {event_id: label for event_id, label in rows if label is not None}
