"""The report's HTML tables. Every builder returns an HTML fragment with all text escaped.

Tables with class ``sortable`` sort when a header is clicked (script in
:mod:`research.reports.page`); a cell's ``data-v`` attribute holds its raw sort key (a number, or
a number); other cells sort by their text (UTC times are shown as sortable ``YYYY-MM-DD HH:MM``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from research.metrics import PerformanceMetrics
from research.reports.formatting import (NOT_AVAILABLE, fmt_days, fmt_duration, fmt_num, fmt_pct, fmt_time,
                                         fmt_usd)
from research.risk_metrics import RiskMetrics
from research.tearsheet import DrawdownPeriod, RelativeStats
from research.trade_stats import CostTotals, TradeSummary, holding_times

__all__ = ["MAX_STATE_ROWS", "MAX_TRADE_ROWS", "Column", "costs_table", "drawdowns_table", "format_metrics_table",
           "html_table", "metrics_table", "open_positions_table", "relative_table", "risk_table", "state_changes_table",
           "symbol_pnl_table", "trade_list_table", "trade_stats_table"]

MAX_TRADE_ROWS = 5000
"""Most round trips listed; beyond it the trades with the largest absolute P&L are listed."""
MAX_STATE_ROWS = 2000
"""Most trading-state changes listed; beyond it the first ones are listed."""
_TRADE_LABELS = frozenset({"Win rate", "Profit factor", "Expectancy", "Trades"})

Cell = str | tuple[str, float | str | None]
"""Display text, or ``(display text, sort key)``; a ``None``/NaN key sorts last."""


@dataclass(frozen=True)
class Column:
    """A table column: header text and whether it holds numbers (right-aligned, numeric sort)."""

    header: str
    numeric: bool = False


def _sort_key(key: float | str | None) -> str:
    if key is None or (isinstance(key, float) and not math.isfinite(key)):
        return ""
    # 12 significant digits order any two values a reader could tell apart, and keep rows short
    return f"{float(key):.12g}" if isinstance(key, (int, float, np.floating, np.integer)) else str(key)


def html_table(table_id: str, columns: Sequence[Column], rows: Iterable[Sequence[Cell]], *,
               sortable: bool = False) -> str:
    """Return an HTML ``<table>`` with a header row and one ``<tr>`` per row.

    Parameters
    ----------
    table_id : str
        ``id`` attribute of the table.
    columns : Sequence[Column]
        Header cells; numeric columns get ``class="num"`` and ``data-type="num"``.
    rows : Iterable[Sequence[Cell]]
        Cells per row, as many as ``columns``.
    sortable : bool, default False
        Add ``class="sortable"`` so headers sort the rows on click.

    Returns
    -------
    str
        The escaped HTML fragment.

    Examples
    --------
    >>> html_table("t", [Column("a"), Column("b", numeric=True)], [["x<y", ("2", 2.0)]])
    '<table id="t"><thead><tr><th>a</th><th class="num" data-type="num">b</th></tr></thead>\\n<tbody>\\n<tr><td>x&lt;y</td><td class="num" data-v="2">2</td></tr>\\n</tbody></table>'
    """
    head = "".join(f'<th class="num" data-type="num">{html.escape(c.header)}</th>' if c.numeric
                   else f"<th>{html.escape(c.header)}</th>" for c in columns)
    numeric = [c.numeric for c in columns]
    body = []
    for row in rows:
        cells = []
        for is_num, cell in zip(numeric, row):
            attrs = ' class="num"' if is_num else ""
            if isinstance(cell, tuple):
                text, key = cell
                attrs += f' data-v="{html.escape(_sort_key(key))}"'
            else:
                text = cell
            cells.append(f"<td{attrs}>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    klass = ' class="sortable"' if sortable else ""
    return (f'<table id="{html.escape(table_id)}"{klass}><thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(body) + "\n</tbody></table>")


def _metric_cells(m: PerformanceMetrics) -> dict[str, str]:
    return {
        "Total return": fmt_pct(m.total_return),
        "CAGR": fmt_pct(m.cagr),
        "Volatility": fmt_pct(m.volatility),
        "Sharpe": fmt_num(m.sharpe),
        "Sortino": fmt_num(m.sortino),
        "Calmar": fmt_num(m.calmar),
        "Max drawdown": fmt_pct(m.max_drawdown),
        "Max DD duration": fmt_duration(m.max_drawdown_duration),
        "Win rate": fmt_pct(m.win_rate),
        "Profit factor": fmt_num(m.profit_factor),
        "Expectancy": fmt_usd(m.expectancy),
        "Exposure": fmt_pct(m.exposure),
        "Turnover": fmt_num(m.turnover),
        "Trades": str(int(m.trades)),
    }


def format_metrics_table(
    metrics: PerformanceMetrics, benchmark_metrics: PerformanceMetrics | None = None
) -> list[tuple[str, str, str]]:
    """Return display rows ``(label, strategy, benchmark)`` of the headline metrics.

    Fractions are shown as percentages with 2 decimals (``0.2134`` -> ``"21.34%"``), ratios with 2
    decimals, ``Expectancy`` in USD (``"$12.50"``), ``Max DD duration`` as ``"3d 4h"`` or
    ``"2h 0m"``, turnover as times per year. ``None`` shows as ``"n/a"`` and ``inf`` as ``"∞"``.
    The benchmark's trade statistics (win rate, profit factor, expectancy, trades) are always
    ``"n/a"``.

    Parameters
    ----------
    metrics : PerformanceMetrics
        Metrics of the strategy.
    benchmark_metrics : PerformanceMetrics, optional
        Metrics of the benchmark; without it the benchmark column is all ``"n/a"``.

    Returns
    -------
    list[tuple[str, str, str]]
        14 rows in the order Total return, CAGR, Volatility, Sharpe, Sortino, Calmar, Max drawdown,
        Max DD duration, Win rate, Profit factor, Expectancy, Exposure, Turnover, Trades.
    """
    strategy = _metric_cells(metrics)
    bench = _metric_cells(benchmark_metrics) if benchmark_metrics is not None else {}
    rows = []
    for label, value in strategy.items():
        other = NOT_AVAILABLE if label in _TRADE_LABELS else bench.get(label, NOT_AVAILABLE)
        rows.append((label, value, other))
    return rows


def metrics_table(metrics: PerformanceMetrics, benchmark_metrics: PerformanceMetrics | None,
                  benchmark_name: str) -> str:
    """Return the headline metrics table (``id="metrics-table"``), strategy vs benchmark."""
    rows = format_metrics_table(metrics, benchmark_metrics)
    return html_table("metrics-table", [Column("Metric"), Column("Strategy"), Column(benchmark_name)], rows)


def relative_table(stats: RelativeStats | None, benchmark_name: str) -> str:
    """Return alpha, beta and correlation vs the benchmark (``id="relative-table"``)."""
    s = stats or RelativeStats(None, None, None, 0)
    rows = [("Alpha (annualised)", fmt_pct(s.alpha)), ("Beta", fmt_num(s.beta)),
            ("Correlation", fmt_num(s.correlation)), ("Daily returns compared", str(s.days))]
    return html_table("relative-table", [Column("Statistic"), Column(f"vs {benchmark_name}")], rows)


def _risk_cells(risk: RiskMetrics) -> list[tuple[str, str]]:
    rows = []
    for tail in risk.tails:
        level = f"{tail.level * 100:g}%"
        rows += [(f"Daily VaR {level} (historical)", fmt_pct(tail.var)),
                 (f"Daily CVaR {level} (expected shortfall)", fmt_pct(tail.cvar))]
    sharpe, vol, high = risk.rolling_sharpe, risk.rolling_volatility, risk.high
    rows += [("Rolling Sharpe, last", fmt_num(sharpe.last)), ("Rolling Sharpe, lowest", fmt_num(sharpe.min)),
             ("Rolling Sharpe, highest", fmt_num(sharpe.max)), ("Rolling volatility, last", fmt_pct(vol.last)),
             ("Rolling volatility, lowest", fmt_pct(vol.min)), ("Rolling volatility, highest", fmt_pct(vol.max)),
             ("Distance from the equity high", fmt_pct(high.distance)), ("Equity high", fmt_usd(high.peak)),
             ("Equity high reached (UTC)", fmt_time(high.peak_time)), ("Time since the high", fmt_duration(high.since)),
             ("Daily returns", str(risk.observations))]
    return rows


def risk_table(risk: RiskMetrics, benchmark_risk: RiskMetrics | None, benchmark_name: str) -> str:
    """Return the risk table (``id="risk-table"``), strategy vs benchmark: daily VaR and CVaR at each
    level (losses as positive percent), rolling Sharpe and volatility (last, lowest, highest), the
    distance from the equity high and the time since it."""
    strategy = _risk_cells(risk)
    bench = dict(_risk_cells(benchmark_risk)) if benchmark_risk is not None else {}
    rows = [(label, value, bench.get(label, NOT_AVAILABLE)) for label, value in strategy]
    return html_table("risk-table", [Column("Risk"), Column("Strategy", True), Column(benchmark_name, True)], rows)


def trade_stats_table(summary: TradeSummary, metrics: PerformanceMetrics) -> str:
    """Return win/loss and holding-time statistics (``id="trade-stats"``), USD net of commission."""
    rows = [
        ("Trades (winners / losers)", f"{summary.trades} ({summary.winners} / {summary.losers})"),
        ("Win rate", fmt_pct(metrics.win_rate)),
        ("Average win", fmt_usd(summary.avg_win)),
        ("Average loss", fmt_usd(summary.avg_loss)),
        ("Payoff ratio (avg win / avg loss)", fmt_num(summary.payoff_ratio)),
        ("Expectancy (mean P&L per trade)", fmt_usd(metrics.expectancy)),
        ("Largest win", fmt_usd(summary.largest_win)),
        ("Largest loss", fmt_usd(summary.largest_loss)),
        ("Average holding time", fmt_duration(summary.avg_holding)),
        ("Average holding time, winners", fmt_duration(summary.avg_holding_win)),
        ("Average holding time, losers", fmt_duration(summary.avg_holding_loss)),
    ]
    return html_table("trade-stats", [Column("Statistic"), Column("Value")], rows)


def costs_table(costs: CostTotals, starting_equity: float) -> str:
    """Return total commission and slippage in USD and as a fraction of starting equity (``id="costs-table"``)."""
    def share(value: float | None) -> str:
        return fmt_pct(None if value is None else value / starting_equity, 3)

    rows = [("Commission", fmt_usd(costs.commission), share(costs.commission)),
            ("Slippage", fmt_usd(costs.slippage), share(costs.slippage)),
            ("Total costs", fmt_usd(costs.total), share(costs.total)),
            ("Fills", str(costs.fills), ""),
            ("Costs per fill", fmt_usd(costs.total / costs.fills if costs.fills else None), "")]
    return html_table("costs-table", [Column("Cost"), Column("USD", True), Column("of starting equity", True)],
                      rows)


def drawdowns_table(periods: Sequence[DrawdownPeriod]) -> str:
    """Return the worst drawdowns (``id="drawdowns-table"``): start, trough, recovery, depth, length."""
    columns = [Column("#", True), Column("Start (peak)"), Column("Trough"), Column("Recovery"),
               Column("Depth", True), Column("Length (days)", True)]
    rows: list[list[Cell]] = [[(str(n), n), fmt_time(p.start), fmt_time(p.trough),
             fmt_time(p.recovery) if p.recovery is not None else "not recovered",
             (fmt_pct(-p.depth), -p.depth), (fmt_days(p.days), p.days)]
            for n, p in enumerate(periods, start=1)]
    return html_table("drawdowns-table", columns, rows, sortable=True)


def _num(value: float, text: str) -> Cell:
    return (text, float(value))


def trade_list_table(trades: pd.DataFrame | None) -> tuple[str, str]:
    """Return the sortable round-trip list (``id="trade-list"``) and a note on what it shows.

    At most :data:`MAX_TRADE_ROWS` rows: a longer list keeps the trades with the largest absolute
    P&L, in time order. ``#`` is the trade's position in the full list (or its ``trade_id``).
    """
    columns = [Column("#", True), Column("Symbol"), Column("Side"), Column("Quantity", True),
               Column("Entry (UTC)"), Column("Exit (UTC)"), Column("Holding", True), Column("Entry price", True),
               Column("Exit price", True), Column("P&L (USD)", True), Column("Return", True),
               Column("Commission (USD)", True), Column("Exit reason")]
    if trades is None or len(trades) == 0:
        return html_table("trade-list", columns, [], sortable=True), "No closed trades."
    frame = trades.reset_index(drop=True)
    note = f"All {len(frame)} closed trades."
    if len(frame) > MAX_TRADE_ROWS:
        keep = frame["pnl"].astype(float).abs().nlargest(MAX_TRADE_ROWS).index.sort_values()
        frame = frame.loc[keep]
        note = (f"The {MAX_TRADE_ROWS} trades with the largest absolute P&L of {len(trades)}; "
                "every trade is in trades.csv.")
    ids = frame["trade_id"].astype(str).tolist() if "trade_id" in frame.columns else [str(i + 1) for i in frame.index]
    id_keys = [float(i + 1) for i in frame.index]
    held = holding_times(frame)
    entry = pd.to_datetime(frame["entry_time"], utc=True)
    exit_ = pd.to_datetime(frame["exit_time"], utc=True)
    ret = (frame["return"].astype(float) if "return" in frame.columns
           else frame["pnl"].astype(float) / (frame["entry_price"].astype(float) * frame["quantity"].astype(float)))
    rows: list[list[Cell]] = []
    for (tid, key, sym, side, qty, t0, t1, h, p0, p1, pnl, r, fee, why) in zip(
            ids, id_keys, frame["symbol"], frame["side"].astype(str), frame["quantity"].astype(float),
            entry, exit_, held, frame["entry_price"].astype(float), frame["exit_price"].astype(float),
            frame["pnl"].astype(float), ret, frame["commission"].astype(float), frame["exit_reason"].astype(str)):
        rows.append([(tid, key), str(sym), "long" if side.lower() == "buy" else "short", _num(qty, f"{qty:g}"),
                     fmt_time(t0), fmt_time(t1),
                     _num(h / pd.Timedelta(seconds=1), fmt_duration(h)), _num(p0, f"{p0:,.4g}"),
                     _num(p1, f"{p1:,.4g}"), _num(pnl, f"{pnl:+,.2f}"), _num(r, fmt_pct(r)),
                     _num(fee, f"{fee:,.2f}"), why])
    return html_table("trade-list", columns, rows, sortable=True), note


def symbol_pnl_table(frame: pd.DataFrame) -> str:
    """Return P&L per symbol (``id="symbol-pnl"``, from :func:`research.trade_stats.symbol_pnl`), USD."""
    columns = [Column("Symbol"), Column("Trades", True), Column("Win rate", True), Column("Net P&L (closed)", True),
               Column("Average P&L", True), Column("Best trade", True), Column("Worst trade", True),
               Column("Commission", True), Column("Slippage", True), Column("Unrealized (open)", True)]
    rows: list[list[Cell]] = []
    for record in frame.to_dict("records"):
        trades, win_rate = int(record["trades"]), float(record["win_rate"])
        usd = [float(record[k]) for k in ("pnl", "avg_pnl", "best", "worst", "commission", "slippage",
                                           "unrealized_pnl")]
        rows.append([str(record["symbol"]), _num(trades, str(trades)), _num(win_rate, fmt_pct(win_rate)),
                     *(_num(v, fmt_usd(v)) for v in usd)])
    return html_table("symbol-pnl", columns, rows, sortable=True)


def open_positions_table(frame: pd.DataFrame) -> str:
    """Return positions still open at the end (``id="open-positions"``, from ``open_positions_frame``)."""
    columns = [Column("Symbol"), Column("Side"), Column("Quantity (shares)", True), Column("Average price", True),
               Column("Last mark", True), Column("Market value", True), Column("Unrealized P&L", True),
               Column("of equity", True)]
    rows: list[list[Cell]] = []
    for record in frame.to_dict("records"):
        quantity, weight = float(record["quantity"]), float(record["weight"])
        usd = [float(record[k]) for k in ("avg_price", "mark", "market_value", "unrealized_pnl")]
        rows.append([str(record["symbol"]), str(record["side"]), _num(quantity, f"{quantity:g}"),
                     *(_num(v, fmt_usd(v)) for v in usd), _num(weight, fmt_pct(weight))])
    return html_table("open-positions", columns, rows, sortable=True)


def state_changes_table(frame: pd.DataFrame) -> tuple[str, str]:
    """Return the trading-state changes (``id="breaker-events"``) and a note on what it shows."""
    columns = [Column("#", True), Column("Replay time (UTC)"), Column("From"), Column("To"), Column("Reason")]
    note = f"All {len(frame)} trading-state changes, at the replay time they happened."
    shown = frame
    if len(frame) > MAX_STATE_ROWS:
        shown = frame.iloc[:MAX_STATE_ROWS]
        note = f"The first {MAX_STATE_ROWS} of {len(frame)} trading-state changes."
    rows: list[list[Cell]] = [[(str(n), n), fmt_time(t), str(p), str(c), str(why)]
            for n, (t, p, c, why) in enumerate(zip(shown["time"], shown["previous"], shown["current"],
                                                   shown["reason"]), start=1)]
    return html_table("breaker-events", columns, rows, sortable=True), note
