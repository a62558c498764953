"""The robustness report in a real headless Chromium (Debian's ``chromium``, driven by Playwright): a
report of a short real study (SPY and AAPL hourly, January to April 2019) renders with no console or
page error and no network request, shows the score, one row per scenario and an equity overlay per
scenario kind, and sorts its scenario table numerically when a header is clicked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser_support import chart_ids, chromium, count, headings, open_report, screenshot, sort_by
from tests.daemon.conftest import invoke, sqlite_url
from tests.daemon.test_robustness_cli import replay_window

HEADINGS = ["Robustness score", "Scenarios", "Market periods", "Universes", "Stress scenarios",
            "Pessimistic assumptions", "Notes"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("robustness-report")
    run = replay_window(tmp, "run", "--param", "fast=5", "--param", "slow=20")
    study = invoke("robustness", run, "--out", tmp / "rob", "--db", sqlite_url(tmp / "x.db"), "--no-progress")
    assert study.exit_code == 0, study.output
    return tmp / "rob"


def test_report_renders_in_chromium_and_sorts(report: Path, tmp_path: Path) -> None:
    doc = json.loads((report / "robustness.json").read_text())
    with chromium(tmp_path / "profile") as browser:
        opened = open_report(browser, report / "report.html")
        page = opened.page
        assert len(chart_ids(page)) == 4  # one equity overlay per scenario kind
        assert headings(page) == HEADINGS
        assert f"{doc['score']:.1f}" in page.inner_text("#score-value")
        assert doc["weakest"]["name"] in page.inner_text("#weakest")
        assert count(page, "#score-parts tbody tr") == 4
        names = page.eval_on_selector_all("#scenario-table tbody tr", "rs => rs.map(r => r.cells[0].textContent)")
        assert names == ["base", *(s["name"] for s in doc["scenarios"])]
        # each overlay draws the base plus every scenario of its kind
        for kind in ("period", "universe", "stress", "assumption"):
            lines = count(page, f"#{kind}-chart .scatterlayer .trace")
            assert lines == 1 + sum(1 for s in doc["scenarios"] if s["kind"] == kind)
        values = sort_by(page, "scenario-table", "Sharpe")
        assert values == sorted(values) and len(values) == len(names)
        screenshot(page, tmp_path / "robustness.png")
        opened.assert_clean()
