"""The HTML report in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

A report of a real short replay (SPY + AAPL hourly, 2018-2019, with breaker trips and a position
left open) must render with no console or page error and no network request, show every section,
sort its trade list by a clicked header, and leave a screenshot. Missing Chromium or Playwright is
a failure, not a skip: setup must install them (``apt-get install chromium``; ``pip install
playwright``, never ``playwright install``, which would download a browser build).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from research.benchmark import buy_and_hold
from research.frames import closes_series, equity_frame, fills_frame, trades_frame
from research.metrics import compute_metrics
from research.report import write_report
from risk.config import RiskConfig
from tests.browser_support import chromium, open_report
from tests.support import load_two_symbols, replay

HEADINGS = ["Metrics", "Risk", "Equity", "Drawdown", "Worst drawdowns", "Monthly returns", "Yearly returns", "Daily returns",
            "Rolling Sharpe", "Rolling volatility", "Exposure", "Trading-state changes", "Trade statistics", "Costs",
            "P&L by symbol", "Positions open at the end", "Trades", "Prices and trades"]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, int, int]:
    """Write the report of a real replay; return (path, number of trades, number of state changes)."""
    # a loss streak of 2 trips REDUCING for 2 days: the run has breaker events to draw
    result, _, _ = replay(load_two_symbols(), "sma_cross",
                          risk=RiskConfig(max_consecutive_losses=2, loss_cooldown="2d"))
    state_changes = getattr(result, "state_changes", [])
    assert result.trades and state_changes and any(p.quantity for p in result.positions.values())
    eq, trades = equity_frame(result), trades_frame(result)
    fills = fills_frame(result)
    if "slippage" not in fills.columns:
        fills["slippage"] = [f.slippage for f in result.fills]
    equity = pd.Series(eq["equity"].to_numpy(), index=pd.DatetimeIndex(eq["time"]))
    exposure = pd.Series(eq["exposure"].to_numpy(), index=equity.index)
    closes = closes_series(result)
    bench = buy_and_hold(closes, result.starting_cash, pd.DatetimeIndex(equity.index))
    path = write_report(tmp_path_factory.mktemp("report") / "report.html", equity, bench,
                        compute_metrics(equity, trades=trades, fills=fills, exposure=exposure),
                        compute_metrics(bench), trades, closes, "tradingd replay: sma_cross",
                        {"strategy": result.strategy_id, "params": result.params}, fills=fills, exposure=exposure,
                        state_changes=state_changes, positions=result.positions)
    return path, len(result.trades), len(state_changes)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture(scope="module")
def loaded(report, browser):
    """The report opened once in Chromium, with every console error, page error and request seen."""
    opened = open_report(browser, report[0])
    yield opened.page, {"problems": opened.problems, "requests": opened.requests}
    opened.page.close()


def _column(page, table: str, column: int) -> list[str]:
    return page.eval_on_selector_all(
        f"#{table} tbody tr", f"rows => rows.map(r => r.cells[{column}].getAttribute('data-v') ?? r.cells[{column}].textContent)")


def test_report_renders_in_chromium_without_errors(report, loaded, tmp_path):
    _, n_trades, n_changes = report
    page, seen = loaded
    charts = page.eval_on_selector_all(".plotly-graph-div", "divs => divs.length")
    assert charts == 10  # equity, drawdown, monthly, yearly, daily returns, 2 rolling, exposure, SPY, AAPL
    page.wait_for_function(
        "n => document.querySelectorAll('.plotly-graph-div .main-svg').length >= n", arg=charts, timeout=30_000)
    assert seen["problems"] == []
    assert [url for url in seen["requests"] if not url.startswith(("file:", "data:", "blob:"))] == []  # no network

    headings = page.eval_on_selector_all("section > h2", "hs => hs.map(h => h.textContent)")
    assert headings == HEADINGS
    for heading in HEADINGS:
        assert page.get_by_role("heading", name=heading, exact=True).is_visible()
    # the equity chart draws the breaker history: bands for the REDUCING spells and one marker per change
    assert page.eval_on_selector_all("#equity-chart .shapelayer path", "ps => ps.length") >= 1
    assert page.eval_on_selector_all("#equity-chart .scatterlayer .trace:last-child .point", "ps => ps.length") == n_changes
    assert page.eval_on_selector_all("#breaker-events tbody tr", "rs => rs.length") == n_changes
    assert page.eval_on_selector_all("#open-positions tbody tr", "rs => rs.length") >= 1
    assert page.eval_on_selector_all("#trade-list tbody tr", "rs => rs.length") == n_trades
    assert page.eval_on_selector_all("#monthly-returns .xtick text", "ts => ts.map(t => t.textContent)")[-1] == "Year"

    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 50_000


def test_trade_list_sorts_when_a_header_is_clicked(report, loaded):
    page, seen = loaded
    headers = page.eval_on_selector_all("#trade-list thead th", "ths => ths.map(th => th.textContent)")
    number, pnl, symbol = headers.index("#"), headers.index("P&L (USD)"), headers.index("Symbol")

    def click(column: int) -> None:
        page.click(f"#trade-list thead th:nth-child({column + 1})")

    click(number)  # start from the trade order, whatever ran before
    original = _column(page, "trade-list", pnl)
    assert len(original) == report[1]
    click(pnl)
    ascending = [float(v) for v in _column(page, "trade-list", pnl)]
    assert ascending == sorted(float(v) for v in original)  # numeric, not text order
    assert ascending[0] < 0 < ascending[-1]
    assert page.get_attribute(f"#trade-list thead th:nth-child({pnl + 1})", "aria-sort") == "ascending"
    click(pnl)
    assert [float(v) for v in _column(page, "trade-list", pnl)] == sorted(ascending, reverse=True)
    click(symbol)
    symbols = _column(page, "trade-list", symbol)
    assert symbols == sorted(symbols) and set(symbols) == {"AAPL", "SPY"}
    # whole rows move: every trade is still listed once, with its own P&L
    rows = page.eval_on_selector_all(
        "#trade-list tbody tr", f"rs => rs.map(r => [r.cells[0].textContent, r.cells[{pnl}].getAttribute('data-v')])")
    assert sorted(rows, key=lambda r: int(r[0])) == [[str(i), v] for i, v in enumerate(original, start=1)]
    assert seen["problems"] == []
