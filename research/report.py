"""Self-contained HTML tear sheet of one replay: metrics, charts and tables, no network access.

The file embeds plotly.js once (inline, about 4.8 MB) so it opens offline; every curve longer than
:data:`MAX_PLOT_POINTS` is decimated (:func:`downsample`) to keep the file small and fast to write.
Timestamps are shown in UTC. The parts live in :mod:`research.reports` (formatting, figures,
tables, page) and the statistics in :mod:`research.tearsheet` and :mod:`research.trade_stats`.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from core.events import TradingStateChanged
from core.portfolio import Position
from research.metrics import PerformanceMetrics, daily_returns
from research.reports import charts, tables
from research.reports.page import Section, info_table, note, render_page, write_page
from research.reports.plotting import MAX_PLOT_POINTS, Charts, downsample, render
from research.reports.tables import format_metrics_table
from research.risk_metrics import compute_risk_metrics
from research.state_history import state_changes_frame, state_spells
from research.tearsheet import ROLLING_WINDOW, drawdown_periods, relative_stats
from research.trade_stats import cost_totals, open_positions_frame, symbol_pnl, trade_summary

__all__ = ["MAX_PLOT_POINTS", "WORST_DRAWDOWNS", "downsample", "format_metrics_table", "write_report"]

WORST_DRAWDOWNS = 5
"""Number of drawdown spells listed in the worst-drawdowns table."""


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").lower() or "symbol"


def _info_value(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _grid(*parts: str) -> str:
    return '<div class="grid">' + "".join(f"<div>{p}</div>" for p in parts) + "</div>"


def write_report(
    path: str | os.PathLike[str],
    equity: pd.Series,
    benchmark: pd.Series | None,
    metrics: PerformanceMetrics,
    benchmark_metrics: PerformanceMetrics | None,
    trades: pd.DataFrame | None,
    closes: dict[str, pd.Series] | None,
    title: str,
    run_info: dict[str, Any] | None = None,
    *,
    fills: pd.DataFrame | None = None,
    exposure: pd.Series | None = None,
    state_changes: Sequence[TradingStateChanged] | None = None,
    positions: Mapping[str, Position] | None = None,
    benchmark_name: str = "Buy & hold",
) -> Path:
    """Write a self-contained HTML tear sheet of a replay and return its path.

    Sections, in order (each a ``<section>`` with an ``<h2>`` and listed in an index at the top):
    Metrics (headline table strategy vs benchmark ``id="metrics-table"``, alpha/beta/correlation
    ``id="relative-table"``), Risk (daily VaR and CVaR at 95 % and 99 %, rolling Sharpe and
    volatility summary, distance from the equity high: ``id="risk-table"``, from
    :func:`research.risk_metrics.compute_risk_metrics`), Equity (``id="equity-chart"``, with REDUCING/HALTED bands and a
    marker per trading-state change), Drawdown (``id="drawdown-chart"``), Worst drawdowns (the
    :data:`WORST_DRAWDOWNS` deepest, ``id="drawdowns-table"``), Monthly returns
    (``id="monthly-returns"``), Yearly returns (``id="yearly-returns"``), Daily returns
    (histogram, ``id="daily-returns"``), Rolling Sharpe and Rolling volatility (over
    :data:`research.tearsheet.ROLLING_WINDOW` daily returns, ``id="rolling-sharpe"``,
    ``id="rolling-volatility"``), Exposure (``id="exposure-chart"``), Trading-state changes
    (``id="breaker-events"``), Trade statistics (``id="trade-stats"``), Costs
    (``id="costs-table"``), P&L by symbol (``id="symbol-pnl"``), Positions open at the end
    (``id="open-positions"``), Trades (sortable list ``id="trade-list"``) and Prices and trades
    (one chart per symbol, ``id="price-<symbol>"``, log axis when a price spans > 10x). Tables
    with ``class="sortable"`` sort by a clicked header. plotly.js is embedded inline exactly once;
    nothing is loaded from the network.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (parents are created). If it is an existing directory, ``report.html`` is
        written inside it. The file is written to a temporary name and renamed, so a reader never
        sees a half-written report.
    equity : pd.Series
        Strategy equity in USD on a strictly increasing tz-aware DatetimeIndex.
    benchmark : pd.Series, optional
        Benchmark equity in USD on the same kind of index, or ``None``.
    metrics : PerformanceMetrics
        Metrics of ``equity``.
    benchmark_metrics : PerformanceMetrics, optional
        Metrics of ``benchmark``, or ``None``.
    trades : pd.DataFrame, optional
        Round trips (columns symbol, side, quantity, entry_time, exit_time, entry_price,
        exit_price, pnl (net USD), commission, exit_reason; optional return, trade_id); may be
        empty or ``None``.
    closes : dict[str, pd.Series], optional
        Close price per symbol in USD (tz-aware index), one chart each, in the dict's order.
    title : str
        Report title (HTML-escaped).
    run_info : dict, optional
        Key/values shown in the header (strategy, params, data files, config hash...); dicts and
        lists are rendered as JSON, everything else with ``str``; all text is HTML-escaped.
    fills : pd.DataFrame, optional
        Fills with symbol, commission and (optionally) slippage in USD, for the costs and per-symbol
        tables; without a ``slippage`` column slippage shows as n/a.
    exposure : pd.Series, optional
        Gross exposure / equity (fraction) on the equity index, for the exposure chart.
    state_changes : Sequence[core.events.TradingStateChanged], optional
        Every trading-state change of the run (``ReplayResult.state_changes``), at replay time.
    positions : Mapping[str, core.portfolio.Position], optional
        Final positions (``ReplayResult.positions``); the non-flat ones are listed as open.
    benchmark_name : str, default "Buy & hold"
        How the benchmark is labelled in tables and legends.

    Returns
    -------
    pathlib.Path
        Path of the written file.

    Raises
    ------
    ValueError
        If ``equity`` (or ``benchmark``) is empty, not positive at the start or not strictly
        increasing (from :func:`research.metrics.drawdown_series`).
    OSError
        If the file cannot be written.
    """
    bench = benchmark if benchmark is not None and len(benchmark) and benchmark.iloc[0] > 0 else None
    ppy = metrics.periods_per_year
    chart = Charts(render)  # looked up here: the bytes-a-bar test (test_csv_writer.py) swaps research.report.render
    changes = state_changes_frame(state_changes)
    spells = state_spells(state_changes, equity.index[-1])
    returns = daily_returns(equity)
    bench_returns = daily_returns(bench) if bench is not None else None
    open_positions = open_positions_frame(positions, float(equity.iloc[-1]))
    costs = cost_totals(fills)
    sections: list[Section] = []

    relative = relative_stats(equity, bench, ppy) if bench is not None else None
    sections.append(Section("section-metrics", "Metrics", _grid(
        tables.metrics_table(metrics, benchmark_metrics, benchmark_name),
        tables.relative_table(relative, benchmark_name)
        + note("Daily returns, risk-free rate 0. Beta = cov(r, r_b) / var(r_b); alpha = Jensen's alpha, "
               "(1 + mean(r - beta r_b)) ^ periods per year - 1; correlation = Pearson's r."),
    ) + note(f"Fractions shown in percent. Ratios annualised from daily returns ({ppy:.1f} periods/year); "
             "Sharpe (Sharpe 1994), Sortino (Sortino & Price 1994), Calmar = CAGR / max drawdown (Young 1991). "
             f"Charts with more than {MAX_PLOT_POINTS} points are decimated (min/max per bucket).")))

    risk = compute_risk_metrics(equity, ppy)
    bench_risk = compute_risk_metrics(bench, benchmark_metrics.periods_per_year) if (
        bench is not None and benchmark_metrics is not None) else None
    sections.append(Section("section-risk", "Risk", tables.risk_table(risk, bench_risk, benchmark_name) + note(
        f"From {risk.observations} daily returns. Historical VaR = the loss of the empirical lower p-quantile "
        "day, -r(ceil(n p)) with p = 1 - level (Jorion, Value at Risk); CVaR (expected shortfall) = the mean loss "
        "of the worst n p days, the boundary day weighted by its share (Acerbi & Tasche 2002); positive = a loss, "
        "n/a when the tail holds less than one day. Rolling Sharpe and volatility over "
        f"{risk.rolling_sharpe.window} daily returns, annualised (the charts below). Distance from the equity "
        "high = last equity / running peak - 1.")))

    equity_note = (f"Shaded: time spent reducing (orange) or halted (dark red); diamonds mark the "
                   f"{len(changes)} trading-state changes (hover for the reason)." if len(changes)
                   else "The trading state stayed active throughout.")
    sections.append(Section("section-equity", "Equity", chart(
        charts.equity_figure(equity, bench, benchmark_name, spells, changes), "equity-chart") + note(equity_note)))
    sections.append(Section("section-drawdown", "Drawdown",
                            chart(charts.drawdown_figure(equity, bench, benchmark_name), "drawdown-chart")))
    sections.append(Section("section-worst-drawdowns", "Worst drawdowns", tables.drawdowns_table(
        drawdown_periods(equity, WORST_DRAWDOWNS)) + note(
        "Depth: decline from the peak to the trough of the full-resolution curve (negative = below the peak). "
        "Length: calendar days from the peak to the recovery, or to the end of the run if not recovered.")))
    sections.append(Section("section-monthly", "Monthly returns",
                            chart(charts.monthly_figure(equity), "monthly-returns")))
    sections.append(Section("section-yearly", "Yearly returns",
                            chart(charts.yearly_figure(equity, bench, benchmark_name), "yearly-returns")))
    sections.append(Section("section-daily", "Daily returns", chart(
        charts.distribution_figure(returns, bench_returns, benchmark_name), "daily-returns")))
    enough = len(returns) >= ROLLING_WINDOW
    short_note = note(f"Needs at least {ROLLING_WINDOW} daily returns; this run has {len(returns)}.")
    sections.append(Section("section-rolling-sharpe", "Rolling Sharpe", chart(
        charts.rolling_sharpe_figure(returns, bench_returns, ppy, benchmark_name), "rolling-sharpe")
        if enough else short_note))
    sections.append(Section("section-rolling-volatility", "Rolling volatility", chart(
        charts.rolling_volatility_figure(returns, bench_returns, ppy, benchmark_name), "rolling-volatility")
        if enough else short_note))
    sections.append(Section("section-exposure", "Exposure", chart(charts.exposure_figure(exposure), "exposure-chart")
                            if exposure is not None and len(exposure) else note("No exposure series given.")))

    state_table, state_note = tables.state_changes_table(changes)
    final = f" Trading state at the end: {changes['current'].iloc[-1]}." if len(changes) else ""
    sections.append(Section("section-breakers", "Trading-state changes",
                            f'<div class="scroll">{state_table}</div>' + note(state_note + final)))
    sections.append(Section("section-trade-stats", "Trade statistics", tables.trade_stats_table(
        trade_summary(trades), metrics) + note("P&L is net of commission; slippage is inside the fill prices.")))
    sections.append(Section("section-costs", "Costs", tables.costs_table(costs, metrics.starting_equity) + note(
        "Commission and slippage summed over every fill (also fills of positions still open). Slippage = "
        "quantity x |fill price - reference price|; it is already in the fill prices and the P&L, not an extra charge.")))
    sections.append(Section("section-symbol-pnl", "P&L by symbol", '<div class="wide">' + tables.symbol_pnl_table(
        symbol_pnl(trades, fills, open_positions)) + "</div>" + note(
        "Closed P&L is net of commission; unrealized P&L is of positions still open at the end.")))
    sections.append(Section("section-open-positions", "Positions open at the end", (
        '<div class="wide">' + tables.open_positions_table(open_positions) + "</div>"
        + note("Marked at the last close of each symbol."))
        if len(open_positions) else note("None: every position was closed by the end of the run.")))
    trade_table, trade_note = tables.trade_list_table(trades)
    sections.append(Section("section-trades", "Trades", note(trade_note + " Click a header to sort.")
                            + f'<div class="scroll">{trade_table}</div>'))
    prices = [f"<h3>{html.escape(symbol)}</h3>\n" + chart(charts.price_figure(symbol, close, trades),
                                                         f"price-{_slug(symbol)}")
              for symbol, close in (closes or {}).items()]
    sections.append(Section("section-prices", "Prices and trades", "\n".join(prices) or note("No prices given.")))

    n_trades = 0 if trades is None else len(trades)
    subtitle = (f"{metrics.start.isoformat()} → {metrics.end.isoformat()} (UTC) · {len(equity)} equity points · "
                f"{n_trades} trades · {len(changes)} trading-state changes")
    info = info_table((str(key), _info_value(value)) for key, value in (run_info or {}).items())
    return write_page(path, render_page(title, subtitle, info, sections))
