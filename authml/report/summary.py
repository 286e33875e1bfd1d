"""How the injected attacks of a generated scenario rank among the alerts (labels come from
``labels.authml_scenario`` on the generated events): by event, and by account risk, since one
attack is often hundreds of events while an analyst triages accounts."""

from __future__ import annotations

from typing import Any


def attack_summary(store, top: int) -> dict[str, Any]:
    """Per scenario: events injected, how many rank in the top ``top`` scores, the best event
    rank, and the best rank of one of its accounts among the accounts ordered by risk."""
    from authml.embedded.score_views import latest_scores_sql

    label = "document->>'$.labels.authml_scenario'"
    rows = store.connection.execute(
        f"""WITH ranked AS (
  SELECT event_id, user_key, score, row_number() OVER (ORDER BY score DESC, evidence DESC, event_id) AS rank
  FROM ({latest_scores_sql()})
),
accounts AS (SELECT user_key, row_number() OVER (ORDER BY score DESC, evidence DESC, user_key) AS rank FROM user_risk)
SELECT {label} AS scenario, count(*) AS injected, count(r.rank) AS scored,
       count(*) FILTER (WHERE r.rank <= $top) AS in_top, min(r.rank) AS best_rank, min(a.rank) AS best_account
FROM events e LEFT JOIN ranked r ON r.event_id = e._id LEFT JOIN accounts a ON a.user_key = r.user_key
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
            "best_account_rank": account,
        }
        for s, n, scored, in_top, best, account in rows
    ]
    return {
        "top": top,
        "scenarios": scenarios,
        "scenarios_in_top": sum(1 for s in scenarios if s["in_top"]),
        "events_in_top": sum(s["in_top"] for s in scenarios),
        "scenarios_with_account_in_top": sum(
            1 for s in scenarios if s["best_account_rank"] is not None and s["best_account_rank"] <= top
        ),
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    scenarios = summary["scenarios"]
    if not scenarios:
        return ["no labelled (injected) attacks in this store"]
    top = summary["top"]
    lines = [
        f"{summary['scenarios_in_top']} of {len(scenarios)} injected attack scenarios have events in the top "
        f"{top} alerts ({summary['events_in_top']} of the top {top} events are injected); "
        f"{summary['scenarios_with_account_in_top']} of {len(scenarios)} have an account among the top {top} "
        "accounts by risk:"
    ]
    for s in scenarios:
        best = s["best_rank"] if s["best_rank"] is not None else "-"
        account = s["best_account_rank"] if s["best_account_rank"] is not None else "-"
        lines.append(
            f"  {s['scenario']:<22} {s['in_top']:>4} of {s['injected']:>4} events in the top {top}; "
            f"best event rank {best}, best account rank {account}"
        )
    return lines
