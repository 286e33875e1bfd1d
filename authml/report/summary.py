"""How the injected attacks of a generated scenario rank among the alerts (labels come from
``labels.authml_scenario`` on the generated events): by alert (`authml.embedded.score_views.alerts_sql`:
the scored events of one hour from one source address), by event, and by account
risk, since one attack is often hundreds of events while an analyst triages alerts and accounts."""

from __future__ import annotations

from typing import Any


def attack_summary(store, top: int) -> dict[str, Any]:
    """Per scenario: events injected, how many rank in the top ``top`` scores, the best event
    rank, the best rank of an alert holding one of its events, and the best rank of one of its
    accounts among the accounts ordered by risk."""
    from authml.embedded.score_views import ALERT_KEY_SQL, alerts_sql, latest_scores_sql

    label = "document->>'$.labels.authml_scenario'"
    rows = store.connection.execute(
        f"""WITH latest AS ({latest_scores_sql(store)}),
ranked AS (
  SELECT event_id, user_key, score, row_number() OVER (ORDER BY score DESC, evidence DESC, event_id) AS rank,
         {ALERT_KEY_SQL["by"]} AS alert_by, {ALERT_KEY_SQL["key"]} AS alert_key, {ALERT_KEY_SQL["hour"]} AS alert_hour
  FROM latest
),
alerts AS (SELECT alert_by, alert_key, alert_hour, rank FROM ({alerts_sql(store)})),
accounts AS (SELECT user_key, row_number() OVER (ORDER BY score DESC, evidence DESC, user_key) AS rank FROM user_risk)
SELECT {label} AS scenario, count(*) AS injected, count(r.rank) AS scored,
       count(*) FILTER (WHERE r.rank <= $top) AS in_top, min(r.rank) AS best_rank, min(al.rank) AS best_alert,
       min(a.rank) AS best_account
FROM events e LEFT JOIN ranked r ON r.event_id = e._id
LEFT JOIN alerts al USING (alert_by, alert_key, alert_hour)
LEFT JOIN accounts a ON a.user_key = r.user_key
WHERE {label} IS NOT NULL GROUP BY 1 ORDER BY 1""",
        {"top": top},
    ).fetchall()
    scenarios = [
        {
            "scenario": s,
            "injected": n,
            "scored": scored,
            "in_top": in_top,
            "best_rank": best,
            "best_alert_rank": alert,
            "best_account_rank": account,
        }
        for s, n, scored, in_top, best, alert, account in rows
    ]

    def within_top(rank: int | None) -> bool:
        return rank is not None and rank <= top

    return {
        "top": top,
        "scenarios": scenarios,
        "scenarios_in_top_alerts": sum(1 for s in scenarios if within_top(s["best_alert_rank"])),
        "scenarios_in_top": sum(1 for s in scenarios if s["in_top"]),
        "events_in_top": sum(s["in_top"] for s in scenarios),
        "scenarios_with_account_in_top": sum(1 for s in scenarios if within_top(s["best_account_rank"])),
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    scenarios = summary["scenarios"]
    if not scenarios:
        return ["no labelled (injected) attacks in this store"]
    top, total = summary["top"], len(scenarios)
    lines = [
        f"{summary['scenarios_in_top_alerts']} of {total} injected attack scenarios have an alert among the top "
        f"{top} alerts, {summary['scenarios_in_top']} of {total} an event among the top {top} events "
        f"({summary['events_in_top']} of those are injected), {summary['scenarios_with_account_in_top']} of "
        f"{total} an account among the top {top} accounts by risk",
        "(an alert: the scored events of one hour from one source address; without one, of one event code on "
        "one host, or of one account)",
    ]

    def rank(value: int | None) -> str:
        return str(value) if value is not None else "-"

    for s in scenarios:
        lines.append(
            f"  {s['scenario']:<22} best alert rank {rank(s['best_alert_rank']):>4}; {s['in_top']:>4} of "
            f"{s['injected']:>4} events in the top {top}, best event rank {rank(s['best_rank']):>5}; "
            f"best account rank {rank(s['best_account_rank'])}"
        )
    return lines
