"""The ``tradingd sizing`` report in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): a sweep of four levels of a real replay (SPY + AAPL hourly, first half of 2019) must
render with no console or page error and no network request, show every section with its chart,
list every level, and label the recommended one. Missing Chromium or Playwright is a failure, not
a skip (see tests/research/test_report_browser.py).
"""

from __future__ import annotations

from datetime import datetime, timezone

from backtest.fill_model import FillConfig
from backtest.sources import load_bars
from backtest.spec import RunSpec
from research.reports.sizing_page import write_sizing_report
from research.sizing import run_sizing
from risk.config import RiskConfig
from tests.browser_support import chart_ids, chromium, headings, open_report
from tests.support import DATA

HEADINGS = ["Recommendation", "Efficient frontier", "Metrics by level", "Equity by level", "Levels"]


def test_sizing_report_renders_in_chromium_without_errors(tmp_path):
    start, end = datetime(2019, 1, 1, tzinfo=timezone.utc), datetime(2019, 7, 1, tzinfo=timezone.utc)
    bars = [load_bars(DATA / f"{sym}.csv.gz", start=start, end=end) for sym in ("SPY", "AAPL")]
    spec = RunSpec(strategy="sma_cross", params={"fast": 10, "slow": 40}, risk=RiskConfig(max_consecutive_losses=1000),
                   fill=FillConfig(slippage_bps=2.0))
    result = run_sizing(spec, bars, [0.02, 0.04, 0.06, 0.08], max_drawdown=0.006, run_id="browser-run")
    assert result.recommended is not None and result.recommended.level < 0.08  # the tolerance bites
    report = write_sizing_report(result, tmp_path / "sizing")

    with chromium(tmp_path / "profile") as browser:
        opened = open_report(browser, report)
        page = opened.page
        opened.assert_clean()
        assert headings(page) == HEADINGS
        assert chart_ids(page) == ["frontier-chart", "metrics-chart", "equity-chart"]
        for chart in chart_ids(page):
            assert page.locator(f"#{chart} .main-svg").first.is_visible()
        # every level is labelled on the frontier chart, and the tolerance is drawn
        labels = page.eval_on_selector_all("#frontier-chart .textpoint text", "ts => ts.map(t => t.textContent)")
        assert sorted(labels) == sorted(["2%", "4%", "6%", "8%"])
        assert "tolerance 0.6%" in page.inner_text("#frontier-chart")
        rows = page.eval_on_selector_all("#levels-table tbody tr", "rs => rs.map(r => r.cells[0].textContent)")
        assert rows == ["2%", "4%", "6%", "8%"]
        assert f"fixed_fraction = {result.recommended.level:g}" in page.inner_text("#recommended")
        assert "risk_per_trade has no effect" in page.inner_text("#sizing-notes")
