"""The report page: inline CSS, inline SVG, no script and nothing fetched. Pure."""

from __future__ import annotations

from html import escape

from authml.report.collect import ReportData
from authml.report.svg import bar_chart, column_chart, heatmap, hour_strip
from authml.score.baseline import baseline_lines
from authml.score.explain import alert_text
from authml.score.records import iso_utc

LEVEL_COLOURS = {"critical": "#8e1b10", "high": "#c0392b", "medium": "#e67e22", "low": "#7f8c8d"}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f4f5f7;color:#1d232a}
header{background:#1d2b3a;color:#fff;padding:18px 28px}
header h1{margin:0 0 6px;font-size:22px}
header p{margin:0;color:#c9d3de;font-size:13px}
main{padding:18px 28px;max-width:1200px}
section{background:#fff;border-radius:6px;padding:14px 18px;margin:0 0 18px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:17px;margin:0 0 10px}
.kpis{display:flex;gap:14px;flex-wrap:wrap}
.kpi{background:#fff;border-radius:6px;padding:10px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08);min-width:140px}
.kpi b{display:block;font-size:22px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef1;vertical-align:top}
th{background:#f0f2f5}
.score{font-weight:700;color:#fff;border-radius:4px;padding:2px 6px;display:inline-block;min-width:34px;text-align:center}
.event{border-left:4px solid #c0392b;padding:8px 12px;margin:0 0 14px;background:#fbfbfc}
.event h3{margin:0 0 6px;font-size:15px}
.reasons{margin:4px 0 8px;padding-left:20px;font-size:14px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.muted{color:#66707a;font-size:12px}
code{font-size:12px;word-break:break-all}
.label{background:#fdebd0;color:#7e5109;border-radius:3px;padding:1px 5px;font-size:12px}
.heatmaps{display:flex;flex-wrap:wrap;gap:18px}
"""


def _level_colour(score: float) -> str:
    from authml.embedded.scores import risk_level

    return LEVEL_COLOURS[risk_level(score)]


def _badge(score: float) -> str:
    return f'<span class="score" style="background:{_level_colour(score)}">{score:.1f}</span>'


def _when(moment) -> str:
    """Minutes are enough to read; the full timestamp is in the raw event."""
    return "never" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _cell(value: object) -> str:
    return escape("" if value is None else str(value))


def render_report(data: ReportData) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>authml report</title>",
        f"<style>{CSS}</style></head><body>",
        "<header><h1>authml: authentication anomalies</h1>",
        f"<p>store {escape(data.store)} · model {escape(', '.join(data.model_versions))} · "
        f"hours in {escape(data.time_zone)} · generated {escape(iso_utc(data.generated_at) or '')}</p></header>",
        "<main>",
        _kpis(data),
        _over_time(data),
        _accounts(data),
        _heatmaps(data),
        _sources(data),
        _events(data),
        "</main></body></html>",
    ]
    return "\n".join(parts)


def _kpis(data: ReportData) -> str:
    top = data.anomalous_events[0] if data.anomalous_events else None
    items = [
        ("events scored", f"{data.events_scored:,}"),
        ("anomalies", f"{data.anomalies:,}"),
        ("alerts with anomalies", f"{data.alerts:,}"),
        ("alert threshold", f"{data.threshold:.1f}" if data.threshold is not None else "-"),
        ("top score", f"{top['score']:.1f}" if top else "-"),
        ("accounts at high risk", str(sum(1 for a in data.accounts if a["score"] >= 50))),
    ]
    cells = "".join(
        f'<div class="kpi"><span class="muted">{escape(k)}</span><b>{escape(v)}</b></div>' for k, v in items
    )
    return f'<section class="kpis" style="background:none;box-shadow:none;padding:0">{cells}</section>'


def _over_time(data: ReportData) -> str:
    labels = [f"{row['day']:%m-%d}" for row in data.per_day]
    chart = column_chart(
        labels,
        [row["anomalies"] for row in data.per_day],
        [row["max_score"] for row in data.per_day],
        label="Anomalies per day and the highest score of each day",
        bar_name="anomalies per day",
        line_name="highest score of the day (0-100)",
    )
    return f'<section id="over-time"><h2>Anomalies over time</h2>{chart}</section>'


def _accounts(data: ReportData) -> str:
    if not data.accounts:
        return '<section id="accounts"><h2>Top anomalous accounts</h2><p>No accounts scored.</p></section>'
    chart = bar_chart(
        [a["user_key"] for a in data.accounts],
        [float(a["score"]) for a in data.accounts],
        label="Current risk of the most anomalous accounts",
        maximum=100.0,
        colours=[LEVEL_COLOURS[a["level"]] for a in data.accounts],
    )
    rows = "".join(
        f"<tr><td>{_cell(a['user_key'])}</td><td>{_badge(a['score'])} {_cell(a['level'])}</td>"
        f"<td>{a['anomalies']}</td><td>{_when(a['last_anomaly'])}</td>"
        f"<td>{'<br>'.join(escape(r) for r in a['top_reasons'])}</td></tr>"
        for a in data.accounts
    )
    table = (
        "<table><tr><th>account</th><th>risk</th><th>anomalies</th><th>last anomaly</th>"
        f"<th>top reasons</th></tr>{rows}</table>"
    )
    return f'<section id="accounts"><h2>Top anomalous accounts</h2>{chart}{table}</section>'


def _heatmaps(data: ReportData) -> str:
    maps = "".join(
        f'<div><b style="display:block">{escape(user)}</b>{heatmap(grid, WEEKDAYS, label=f"Scored events of {user} by weekday and hour")}</div>'
        for user, grid in data.heatmaps
    )
    return (
        f'<section id="heatmap"><h2>Hour of day of the riskiest accounts ({escape(data.time_zone)})</h2>'
        f'<div class="heatmaps">{maps}</div></section>'
    )


def _sources(data: ReportData) -> str:
    if not data.sources:
        return '<section id="sources"><h2>Failures per source</h2><p>No failed authentications.</p></section>'
    chart = bar_chart(
        [s["source_ip"] for s in data.sources],
        [int(s["failures"]) for s in data.sources],
        label="Failed authentications per source IP",
    )
    rows = "".join(
        f"<tr><td>{_cell(s['source_ip'])}</td><td>{s['failures']}</td><td>{s['failed_accounts']}</td>"
        f"<td>{s['accounts']}</td><td>{s['events']}</td></tr>"
        for s in data.sources
    )
    table = (
        "<table><tr><th>source IP</th><th>failures</th><th>accounts failing</th><th>distinct accounts</th>"
        f"<th>events</th></tr>{rows}</table>"
    )
    return (
        '<section id="sources"><h2>Failures and distinct accounts per source</h2>'
        f'<div class="grid"><div>{chart}</div><div>{table}</div></div></section>'
    )


def _events(data: ReportData) -> str:
    cards = []
    for rank, row in enumerate(data.anomalous_events, start=1):
        label = data.labels.get(row["event_id"])
        tag = f' <span class="label">injected: {escape(label)}</span>' if label else ""
        reasons = "".join(f"<li>{escape(r)}</li>" for r in row["reasons"]) or "<li>(no single reason)</li>"
        context = "".join(
            f"<tr><th>{escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in row["context"].items()
        )
        detectors = ", ".join(f"{escape(k)} {v:.2f}" for k, v in sorted(row["detector_scores"].items()))
        baseline = "".join(
            f"<li>{escape(line)}</li>" for line in baseline_lines(row["baseline"], data.time_zone)
        )
        strip = hour_strip(row["baseline"]["hours"], label=f"Hours of {row['user.name']}'s earlier events")
        alert = f'<p class="muted">its {escape(alert_text(row["alert"]))}</p>' if row.get("alert") else ""
        cards.append(
            f'<div class="event" id="event-{rank}"><h3>#{rank} {_badge(row["score"])} '
            f"{_cell(row['user.name'])} · event {_cell(row['event.code'])} · {_when(row['@timestamp'])}{tag}</h3>"
            f'{alert}<ul class="reasons">{reasons}</ul>'
            f'<div class="grid"><div><b>raw event</b><table>{context}</table>'
            f'<p class="muted">detectors (nats of evidence): {detectors}<br>id <code>{escape(row["event_id"])}</code></p></div>'
            f"<div><b>baseline of {_cell(row['user.name'])} before this event</b><ul>{baseline}</ul>"
            f"{strip}</div></div></div>"
        )
    body = "".join(cards) or "<p>No scored events.</p>"
    return (
        '<section id="events"><h2>Top alerts: the most anomalous event of each</h2>'
        '<p class="muted">An alert holds the scored events of one hour (UTC) from one source address; '
        "events without one group by event code and the host that logged them, or by account. An alert "
        "ranks by its most anomalous event.</p>"
        f"{body}</section>"
    )
