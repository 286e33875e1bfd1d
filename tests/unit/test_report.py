"""The report's pure parts: SVG charts and the page around them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

from authml.report.collect import ReportData
from authml.report.html import render_report
from authml.report.svg import bar_chart, column_chart, heatmap

SVG = "{http://www.w3.org/2000/svg}"


def _rects(svg: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall(f".//{SVG}rect")


def test_column_heights_are_proportional_and_the_line_is_capped():
    svg = column_chart(["a", "b", "c"], [1, 2, 4], [10, 50, 250], label="t", bar_name="n", line_name="m")
    heights = [float(r.get("height")) for r in _rects(svg)]
    assert heights[2] == 2 * heights[1] == 4 * heights[0] > 0
    points = ET.fromstring(svg).find(f".//{SVG}polyline").get("points").split()
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[2] == min(ys) and ys[2] >= 20  # 250 drawn at the top of the 0-100 axis, not above it


def test_bars_respect_the_maximum_and_names_are_escaped():
    svg = bar_chart(["<alice>", "bob"], [50.0, 100.0], label="risk", maximum=100.0)
    widths = [float(r.get("width")) for r in _rects(svg)]
    assert widths[1] == 2 * widths[0]
    assert "&lt;alice&gt;" in svg


def test_heatmap_leaves_empty_hours_white():
    grid = [[0] * 24 for _ in range(7)]
    grid[0][9] = 4
    grid[1][10] = 2
    fills = [
        r.get("fill")
        for r in _rects(heatmap(grid, ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], label="h"))
    ]
    assert len(fills) == 7 * 24
    assert fills.count("#ffffff") == 7 * 24 - 2
    assert fills[9] == "rgba(44,111,187,1.00)"


def _data(**overrides) -> ReportData:
    baseline = {
        "user": "<b>eve</b>",
        "before": datetime(2025, 1, 2),
        "events": 10,
        "failures": 1,
        "first_seen": datetime(2025, 1, 1),
        "last_seen": datetime(2025, 1, 1, 12),
        "hours": [0] * 9 + [10] + [0] * 14,
        "source_ips": [("10.0.0.1", 10)],
        "source_ip_count": 1,
        "hosts": [("ws1", 10)],
        "host_count": 1,
        "logon_types": [("Network", 10)],
        "event_codes": [("4624", 10)],
    }
    event = {
        "event_id": "id-1",
        "score": 88.5,
        "@timestamp": datetime(2025, 1, 2, 3, 4),
        "user.name": "<b>eve</b>",
        "event.code": "4624",
        "reasons": ["first logon from 10.9.9.9 for <b>eve</b>"],
        "detector_scores": {"rarity": 9.0},
        "context": {"source.ip": "10.9.9.9"},
        "baseline": baseline,
    }
    values = {
        "store": "s",
        "generated_at": datetime(2025, 1, 3),
        "time_zone": "UTC",
        "model_versions": ["v1"],
        "events_scored": 100,
        "anomalies": 1,
        "threshold": 50.0,
        "alerts": 1,
        "per_day": [{"day": datetime(2025, 1, 2), "events": 100, "anomalies": 1, "max_score": 88.5}],
        "accounts": [],
        "heatmaps": [],
        "sources": [],
        "anomalous_events": [event],
        "labels": {"id-1": "spray"},
    }
    return ReportData(**{**values, **overrides})


def test_page_escapes_what_the_logs_say_and_lists_the_event():
    html = render_report(_data())
    assert "<b>eve</b>" not in html and "&lt;b&gt;eve&lt;/b&gt;" in html
    assert "first logon from 10.9.9.9" in html and "injected: spray" in html
    assert "usual hours (UTC): 09:00-10:00" in html
    assert "alerts with anomalies</span><b>1</b>" in html
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "").lower()


def test_each_event_says_what_its_alert_holds():
    alert = {
        "alert_by": "host.name",
        "alert_key": "4776 on dc01",
        "alert_hour": datetime(2025, 1, 2, 23),
        "events": 31,
        "anomalies": 30,
        "accounts": 29,
        "rank": 1,
    }
    event = {**_data().anomalous_events[0], "alert": alert}
    html = render_report(_data(anomalous_events=[event]))
    assert (
        "its alert: 31 events (30 anomalous), 29 accounts without a source address: event 4776 on dc01, "
        "2025-01-02 23:00-00:00 UTC" in html
    )
    single = {
        **alert,
        "alert_by": "source.ip",
        "alert_key": "10.9.9.9",
        "events": 1,
        "anomalies": 1,
        "accounts": 1,
    }
    html = render_report(_data(anomalous_events=[{**event, "alert": single}]))
    assert "its alert: 1 event (1 anomalous) from source 10.9.9.9, 2025-01-02 23:00-00:00 UTC" in html
