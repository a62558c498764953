"""The ``tradingd benchmark`` report in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): a real replay against its four benchmarks renders with no console or page error and
no network request, shows every section and chart, and sorts its table by a clicked header.
Missing Chromium or Playwright is a failure, not a skip (see test_report_browser.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backtest.sources import load_bars
from research.benchmark_compare import build_benchmarks, compare
from research.frames import closes_series, equity_frame
from research.reports.benchmark_page import HEADINGS, write_benchmark_report
from tests.browser_support import chart_ids, chromium, count, headings, open_report, screenshot, sort_by
from tests.support import load_two_symbols, replay

IEF = Path(__file__).resolve().parents[2] / "data" / "us_equity_daily_adjusted" / "IEF.csv.gz"


def test_benchmark_report_renders_in_chromium_without_errors(tmp_path) -> None:
    result, _, _ = replay(load_two_symbols(), "sma_cross")
    frame = equity_frame(result)
    equity = pd.Series(frame["equity"].to_numpy(), index=pd.DatetimeIndex(frame["time"]))
    closes = closes_series(result)
    ief = load_bars(IEF)
    bond = pd.Series(ief.close, index=pd.to_datetime(ief.ts_init, unit="ns", utc=True))
    comparison = compare("run-x", "sma_cross", equity,
                         build_benchmarks(closes, ("SPY", closes["SPY"]), ("IEF", bond), result.starting_cash,
                                          equity.index))
    path = write_benchmark_report(comparison, tmp_path / "bench" / "report.html")

    with chromium(tmp_path / "profile") as browser:
        opened = open_report(browser, path)
        page = opened.page
        assert chart_ids(page) == ["equity-overlay", "drawdown-comparison", "monthly-correlation", "risk-return"]
        opened.assert_clean()
        assert headings(page) == list(HEADINGS)
        # one line per curve on the overlays, a 5 x 5 correlation matrix, one marker per curve
        for chart in ("equity-overlay", "drawdown-comparison"):
            assert count(page, f"#{chart} .scatterlayer .trace") == 5
        cells = page.eval_on_selector_all("#monthly-correlation .heatmaplayer text", "ts => ts.map(t => t.textContent)")
        assert len(cells) == 25 and cells.count("+1.00") >= 5
        assert count(page, "#risk-return .scatterlayer .point") == 5
        assert page.text_content("#verdict").strip().startswith(("Favourable", "Not favourable"))
        assert "IEF" in page.text_content("#rules-list") and "no costs" in page.text_content("#rules-list")

        # the table lists the strategy and the four benchmarks, and sorts numerically by a clicked header
        labels = page.eval_on_selector_all("#benchmark-table tbody tr", "rs => rs.map(r => r.cells[0].textContent)")
        assert labels == ["Strategy (sma_cross)", *(b.curve.label for b in comparison.benchmarks)]
        expected = sorted([comparison.stats.sharpe, *(b.stats.sharpe for b in comparison.benchmarks)])
        assert sort_by(page, "benchmark-table", "Sharpe") == pytest.approx(expected, rel=1e-9)
        screenshot(page, tmp_path / "benchmark.png", 50_000)
        opened.assert_clean()
