"""The Monte Carlo report in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The report of ``tradingd montecarlo`` on a real short replay (bundled hourly equities 2019-01 ..
2020-06, with two cost re-replays) must render with no console or page error and no network
request, show the verdict, every section, a fan chart per method and the histograms. Missing
Chromium or Playwright is a failure, not a skip (see tests/research/test_report_browser.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser_support import chart_ids, chromium, count, headings, open_report, screenshot, sort_by
from tests.daemon.conftest import REPO_CONFIG, invoke, replay_into, sqlite_url

HEADINGS = ["Verdict", "Outcomes", "Risk of ruin and circuit breakers", "Fan charts", "Distributions", "Methods"]
FANS = ["fan-trade-shuffle", "fan-trade-bootstrap", "fan-daily-bootstrap", "fan-price-noise", "fan-cost-replays"]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("mc-report")
    run = replay_into(base / "run", sqlite_url(base / "state.db"), "--config", REPO_CONFIG, "--start",
                      "2019-01-01T00:00:00Z", "--end", "2020-06-01T00:00:00Z")
    result = invoke("montecarlo", run.folder, "--config", REPO_CONFIG, "--sims", "1000", "--cost-replays", "2",
                    "--out", base / "mc", "--no-progress")
    assert result.exit_code == 0, result.output
    return base / "mc" / "report.html"


def test_monte_carlo_report_renders_in_chromium_without_errors(report, tmp_path):
    doc = json.loads((report.parent / "montecarlo.json").read_text())
    with chromium(tmp_path / "profile") as browser:
        opened = open_report(browser, report)
        page = opened.page
        assert chart_ids(page) == [*FANS, "hist-total-return", "hist-max-drawdown", "hist-sharpe",
                                   "hist-losing-streak"]
        opened.assert_clean()
        assert headings(page) == HEADINGS
        assert page.text_content("#verdict-text") == doc["acceptable_reason"]
        # 5 methods x (total return, max drawdown, Sharpe); 3 circuit breakers
        assert count(page, "#outcomes-table tbody tr") == 15
        assert count(page, "#breaker-table tbody tr") == 3
        # each fan chart draws the two bands, the median and the run's own path
        for fan in FANS:
            assert count(page, f"#{fan} .scatterlayer .trace") == 6
        # clicking a header sorts the outcome table by that column
        medians = sort_by(page, "outcomes-table", "p50")
        assert medians == sorted(medians)
        screenshot(page, tmp_path / "report.png", 50_000)
        opened.assert_clean()
