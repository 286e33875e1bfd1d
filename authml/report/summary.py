"""How the injected attacks of a generated scenario rank among the alerts (labels come from
``labels.authml_scenario`` on the generated events)."""

from __future__ import annotations

from typing import Any


def attack_summary(store, top: int) -> dict[str, Any]:
    """Per scenario: events injected, how many rank in the top ``top`` scores, and the best rank."""
    from authml.embedded.score_views import latest_scores_sql

    label = "document->>'$.labels.authml_scenario'"
    rows = store.connection.execute(
        f"""WITH ranked AS (
  SELECT event_id, score, row_number() OVER (ORDER BY score DESC, event_id) AS rank FROM ({latest_scores_sql()})
)
SELECT {label} AS scenario, count(*) AS injected, count(r.rank) AS scored,
       count(*) FILTER (WHERE r.rank <= $top) AS in_top, min(r.rank) AS best_rank
FROM events e LEFT JOIN ranked r ON r.event_id = e._id
WHERE {label} IS NOT NULL GROUP BY 1 ORDER BY 1""",
        {"top": top},
    ).fetchall()
    scenarios = [
        {"scenario": s, "injected": n, "scored": scored, "in_top": in_top, "best_rank": best}
        for s, n, scored, in_top, best in rows
    ]
    return {
        "top": top,
        "scenarios": scenarios,
        "scenarios_in_top": sum(1 for s in scenarios if s["in_top"]),
        "events_in_top": sum(s["in_top"] for s in scenarios),
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    scenarios = summary["scenarios"]
    if not scenarios:
        return ["no labelled (injected) attacks in this store"]
    lines = [
        f"{summary['scenarios_in_top']} of {len(scenarios)} injected attack scenarios rank in the top "
        f"{summary['top']} alerts ({summary['events_in_top']} of the top {summary['top']} events are injected):"
    ]
    for s in scenarios:
        best = f"best rank {s['best_rank']}" if s["best_rank"] is not None else "not scored"
        lines.append(
            f"  {s['scenario']:<22} {s['in_top']:>4} of {s['injected']:>4} events in the top, {best}"
        )
    return lines
