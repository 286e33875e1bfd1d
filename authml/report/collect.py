"""Everything the report shows, read from the store into plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from authml.errors import NotReadyError


@dataclass(slots=True)
class ReportData:
    store: str
    generated_at: datetime
    time_zone: str
    model_versions: list[str]
    events_scored: int
    anomalies: int
    threshold: float | None
    alerts: int  # alerts holding at least one anomaly (score_views.alerts_sql)
    per_day: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    heatmaps: list[tuple[str, list[list[int]]]]
    sources: list[dict[str, Any]]
    # the top event of each top alert: its score row with "alert", "context" and "baseline"
    anomalous_events: list[dict[str, Any]]
    labels: dict[str, str] = field(default_factory=dict)  # event id -> generator scenario


def collect_report(
    store, *, time_zone: str = "UTC", alerts: int = 25, top_accounts: int = 15, heatmap_accounts: int = 3
) -> ReportData:
    from authml.embedded.score_views import (
        account_baselines,
        anomalies_per_day,
        event_document,
        hour_of_day_by_weekday,
        latest_scores_sql,
        scenario_labels,
        sources_by_failures,
        top_alerts,
    )
    from authml.embedded.scores import has_score_tables, read_user_risk
    from authml.score.explain import raw_context
    from authml.train.feature_sql import authentication_event_codes

    if not has_score_tables(store):
        raise NotReadyError(f"the store {store.path} has no scores yet; run `authml score` first")
    codes = authentication_event_codes()
    scored, anomalies, threshold = store.connection.execute(
        f"SELECT count(*), count(*) FILTER (WHERE is_anomaly), max(threshold) FROM ({latest_scores_sql(store)})"
    ).fetchone()
    if not scored:
        raise NotReadyError(f"the store {store.path} has no scored events; run `authml score` first")
    versions = [
        v
        for (v,) in store.connection.execute(
            "SELECT DISTINCT model_version FROM scores ORDER BY 1"
        ).fetchall()
    ]
    accounts = read_user_risk(store, limit=top_accounts)
    top = top_alerts(store, alerts)
    events = top.events
    baselines = account_baselines(
        store, [(row["user.name"], row["@timestamp"]) for row in events], codes=codes, time_zone=time_zone
    )
    for row, baseline in zip(events, baselines, strict=True):
        row["context"] = raw_context(event_document(store, row["event_id"]))
        row["baseline"] = baseline
    heatmaps = [
        (account["user.name"], hour_of_day_by_weekday(store, account["user.name"], time_zone))
        for account in accounts[:heatmap_accounts]
        if account["user.name"]
    ]
    return ReportData(
        store=str(store.path),
        generated_at=datetime.now(UTC),
        time_zone=time_zone,
        model_versions=versions,
        events_scored=scored,
        anomalies=anomalies,
        alerts=top.with_anomalies,
        threshold=threshold,
        per_day=anomalies_per_day(store),
        accounts=accounts,
        heatmaps=heatmaps,
        sources=sources_by_failures(store, codes, 15),
        anomalous_events=events,
        labels=scenario_labels(store, [row["event_id"] for row in events]),
    )
