"""What `authml explain` says about an event or an account: a JSON-able document and its lines."""

from __future__ import annotations

from typing import Any

from authml.errors import InputError, NotReadyError
from authml.score.baseline import baseline_lines, usual_hours_text
from authml.score.records import iso_utc

# Raw event fields an analyst wants beside a score, when the event has them.
CONTEXT_FIELDS = (
    "@timestamp",
    "event.code",
    "event.action",
    "event.outcome",
    "user.name",
    "user.domain",
    "source.ip",
    "source.domain",
    "host.name",
    "winlog.logon.type",
    "winlog.event_data.AuthenticationPackageName",
    "winlog.event_data.LogonProcessName",
    "winlog.event_data.WorkstationName",
    "winlog.event_data.ServiceName",
    "winlog.event_data.TicketEncryptionType",
    "winlog.event_data.Status",
    "winlog.logon.failure.reason",
    "winlog.computer_name",
    "winlog.record_id",
)


def raw_context(document: dict[str, Any] | None) -> dict[str, Any]:
    from authml.ecs import get_path

    if document is None:
        return {}
    context = {}
    for field in CONTEXT_FIELDS:
        value = get_path(document, field)
        if value not in (None, "", "-"):
            context[field] = value
    return context


def alert_text(alert: dict[str, Any]) -> str:
    """What an alert (a row of authml.embedded.score_views.alerts_sql) holds, in one line."""
    start = alert["alert_hour"]
    origin = {
        "source.ip": f"from source {alert['alert_key']}",
        "host.name": f"without a source address: event {alert['alert_key']}",
        "account": f"of account {alert['alert_key']} without a source address",
    }[alert["alert_by"]]
    events = f"{alert['events']} event{'s' if alert['events'] != 1 else ''}"
    accounts = f", {alert['accounts']} accounts" if alert["accounts"] != 1 else ""
    return (
        f"alert: {events} ({alert['anomalies']} anomalous){accounts} {origin}, "
        f"{start:%Y-%m-%d %H}:00-{(start.hour + 1) % 24:02d}:00 UTC"
    )


def _require_scores(store) -> None:
    from authml.embedded.scores import has_score_tables

    if not has_score_tables(store):
        raise NotReadyError(f"the store {store.path} has no scores yet; run `authml score` first")


def explain_event(store, event_id: str, time_zone: str = "UTC") -> tuple[dict[str, Any], list[str]]:
    from authml.embedded.score_views import account_baseline, alert_of, event_document
    from authml.embedded.scores import read_scores
    from authml.train.feature_sql import authentication_event_codes

    _require_scores(store)
    rows = read_scores(store, where="event_id = ?", parameters=[event_id], order_by="scored_at DESC", limit=1)
    if not rows:
        known = store.connection.execute("SELECT count(*) FROM events WHERE _id = ?", [event_id]).fetchone()[
            0
        ]
        if known:
            raise NotReadyError(f"event {event_id} is stored but not scored; run `authml score`")
        raise InputError(
            f"no event with id {event_id} in {store.path} (ids are in `authml score --output -`)"
        )
    row = rows[0]
    context = raw_context(event_document(store, event_id))
    baseline = account_baseline(
        store,
        row["user.name"],
        before=row["@timestamp"],
        codes=authentication_event_codes(),
        time_zone=time_zone,
    )
    verdict = "an anomaly" if row["is_anomaly"] else "below the alert threshold"
    alert = alert_of(store, event_id)
    lines = [
        f"event {event_id}",
        f"score {row['score']:.1f}/100 ({verdict}, threshold {row['threshold']:.1f}), model {row['model_version']}",
        *([f"{alert_text(alert)}, ranked {alert['rank']}"] if alert else []),
        "detectors: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(row["detector_scores"].items())),
        "reasons:",
        *(
            [f"  - {reason}" for reason in row["reasons"]]
            or ["  (none: nothing about this event was unusual)"]
        ),
        "event:",
        *[f"  {field}: {value}" for field, value in context.items()],
        f"baseline of {row['user.name']}:",
        *[f"  {line}" for line in baseline_lines(baseline, time_zone)],
    ]
    document = {
        "event_id": event_id,
        "score": row["score"],
        "is_anomaly": row["is_anomaly"],
        "threshold": row["threshold"],
        "detector_scores": row["detector_scores"],
        "reasons": row["reasons"],
        "model_version": row["model_version"],
        "alert": {**alert, "alert_hour": iso_utc(alert["alert_hour"])} if alert else None,
        "event": context,
        "baseline": {**baseline, "usual_hours": usual_hours_text(baseline["hours"])},
    }
    return document, lines


def explain_user(
    store, user_name: str, *, top: int = 5, time_zone: str = "UTC"
) -> tuple[dict[str, Any], list[str]]:
    from authml.embedded.score_views import account_baseline, newest_score_condition
    from authml.embedded.scores import read_scores, read_user_risk
    from authml.train.feature_sql import authentication_event_codes

    _require_scores(store)
    risks = read_user_risk(store, user=user_name)
    if not risks:
        raise InputError(f"no scored account {user_name!r} in {store.path}; try a name from `authml report`")
    risk = risks[0]
    events = read_scores(
        store,
        where=f'{newest_score_condition(store)} AND lower("user.name") = lower(?)',
        parameters=[risk["user.name"]],
        order_by="score DESC, evidence DESC, event_id",
        limit=top,
    )
    baseline = account_baseline(
        store, risk["user.name"], before=None, codes=authentication_event_codes(), time_zone=time_zone
    )
    lines = [
        f"account {risk['user_key']}: risk {risk['score']:.1f}/100 ({risk['level']}), "
        f"{risk['anomalies']} anomalies in {risk['events_scored']} recent events, "
        f"last anomaly {iso_utc(risk['last_anomaly']) or 'never'}",
        "top reasons:",
        *([f"  - {reason}" for reason in risk["top_reasons"]] or ["  (none)"]),
        "highest scoring events:",
        *[
            f"  {row['score']:5.1f}  {iso_utc(row['@timestamp'])}  {row['event.code']}  "
            f"from {row['source.ip'] or '-'} to {row['host.name'] or '-'}  {row['event_id']}"
            for row in events
        ],
        f"baseline of {risk['user.name']}:",
        *[f"  {line}" for line in baseline_lines(baseline, time_zone)],
    ]
    document = {
        "risk": risk,
        "events": events,
        "baseline": {**baseline, "usual_hours": usual_hours_text(baseline["hours"])},
    }
    return document, lines
