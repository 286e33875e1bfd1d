"""The HTML report as a person sees it: generated, ingested, trained and scored through the real
commands, then opened in headless Chromium, read back and photographed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.browser import Browser, find_browser
from tests.unit.score_project import build_project, invoke

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "artifacts"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    project = build_project(tmp_path_factory.mktemp("report") / "project")
    invoke(project, "train", "--epochs", "2", "--end", "2025-11-08")
    records = project / "scores.ndjson"
    invoke(project, "score", "--output", str(records))
    out = project / "report.html"
    output = invoke(project, "report", "--out", str(out), "--summary", "20")
    return project, out, [json.loads(line) for line in records.read_text().splitlines()], output


def test_report_is_one_file_that_needs_no_network(reported):
    _, out, records, output = reported
    html = out.read_text()
    assert (
        str(out.resolve()) in output
        and "injected attack scenarios have an alert among the top 20 alerts" in output
    )
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the report fetches something"
    assert "<script" not in html and html.count("<svg") >= 5
    best = max(r["authml"]["score"] for r in records)
    assert any(r["authml"]["event_id"] in html for r in records if r["authml"]["score"] == best)


@pytest.mark.browser
def test_top_anomaly_and_its_reasons_are_visible_in_chromium(reported, tmp_path):
    paths = find_browser()
    if paths is None:
        pytest.skip(
            "headless Chromium and chromedriver are not installed (Debian: apt-get install chromium "
            "chromium-driver; `make test` installs them where it runs as root with apt-get)"
        )
    _, out, records, _ = reported
    best = max(r["authml"]["score"] for r in records)
    browser = Browser(*paths)
    try:
        browser.open(out)
        first = browser.element("#event-1")
        assert browser.displayed(first)
        text = browser.visible_text(first)
        (top,) = [r for r in records if r["authml"]["event_id"] in text]
        assert top["authml"]["score"] == best
        assert top["user"]["name"] in text and f"{top['authml']['score']:.1f}" in text
        for reason in top["authml"]["reasons"]:
            assert reason in text
        assert "baseline of" in text and "usual hours" in text
        assert browser.count("svg rect") > 50  # the charts were drawn
        header = browser.visible_text(browser.element("#accounts"))
        assert "Top anomalous accounts" in header
        width = browser.script("return document.documentElement.scrollWidth")
        assert width <= 1280, "the report scrolls sideways at 1280 pixels"
        shot = browser.screenshot(tmp_path / "report.png")
    finally:
        browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report.png")
