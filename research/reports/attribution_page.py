"""``report.html`` of ``tradingd attribution``: the reconciliation, the factor split and, per
dimension, P&L by bucket (bars), its table (with the open-at-end line and the total) and the
cumulative closed P&L of each bucket over time. Self-contained (plotly.js inlined once), no network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from research.attribution import (DIMENSION_TITLES, OPEN_AT_END, RECONCILE_TOLERANCE, RELATIVE_TOLERANCE,
                                  Attribution)
from research.finished_run import FinishedRun
from research.reports.formatting import fmt_num, fmt_pct, fmt_time, fmt_usd
from research.reports.page import Section, info_table, note, render_page, write_page
from research.reports.plotting import Charts, Figure, axis, figure, plot_times, typed
from research.reports.tables import Cell, Column, html_table

__all__ = ["MAX_CONTEXT_ROWS", "write_attribution_report"]

MAX_CONTEXT_ROWS = 3000
"""Most trades listed in the report (all are in attribution_trades.csv)."""
_GAIN, _LOSS, _OPEN = "#1a9850", "#d73027", "#888888"
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf"]


def _usd(value: float) -> Cell:
    return (fmt_usd(value), value)


def _bars_figure(result: Attribution, dimension: str) -> Figure:
    buckets = result.dimensions[dimension]
    labels = [b.bucket for b in buckets] + [OPEN_AT_END]
    values = [b.pnl for b in buckets] + [result.open_at_end.pnl]
    colours = [_GAIN if v >= 0 else _LOSS for v in values[:-1]] + [_OPEN]
    counts = [f"{b.trades} trades, hit rate {fmt_pct(b.hit_rate, 0)}" for b in buckets] + [
        f"{result.open_at_end.positions} open positions"]
    trace = {"type": "bar", "x": labels, "y": typed(values), "marker": {"color": colours}, "customdata": counts,
             "hovertemplate": "%{x}: %{y:$,.2f} (%{customdata})<extra></extra>", "name": "P&L"}
    return figure([trace], f"P&L by {DIMENSION_TITLES[dimension].lower()} (USD; grey: positions open at the end)",
                  axis("P&L (USD)", tickformat="$,.0f"), height=340, xaxis=axis("", type="category"),
                  hovermode="closest", showlegend=False)


def _cumulative_figure(trades: pd.DataFrame, dimension: str, buckets: list[str]) -> Figure:
    data = []
    ordered = trades.sort_values("exit_time", kind="stable")
    for k, bucket in enumerate(buckets):
        part = ordered[ordered[dimension].astype(str) == bucket]
        if not len(part):
            continue
        data.append({"type": "scatter", "mode": "lines", "line": {"shape": "hv", "color": _PALETTE[k % len(_PALETTE)]},
                     "name": bucket, "x": plot_times(pd.DatetimeIndex(part["exit_time"])),
                     "y": typed(part["pnl"].astype(float).cumsum().to_numpy())})
    return figure(data, f"Cumulative closed P&L by {DIMENSION_TITLES[dimension].lower()} (at each trade's exit)",
                  axis("USD", tickformat="$,.0f"), height=360, hovermode="closest")


def _factor_figure(result: Attribution) -> Figure:
    daily = result.factor.daily
    x = plot_times(pd.DatetimeIndex(daily.index))
    curves = [("Total", daily["pnl"], "#222222"), (f"Market (beta x {result.factor.benchmark})", daily["market"],
                                                   "#ff7f0e"), ("Alpha", daily["alpha"], "#1f77b4")]
    data = [{"type": "scatter", "mode": "lines", "name": name, "x": x, "y": typed(values.cumsum().to_numpy()),
             "line": {"color": colour}} for name, values, colour in curves]
    return figure(data, "Cumulative P&L: market part and alpha part (trading days)", axis("USD", tickformat="$,.0f"),
                  height=380)


def _dimension_table(result: Attribution, dimension: str) -> str:
    columns = [Column("Bucket"), Column("Trades", True), Column("P&L (USD)", True), Column("Hit rate", True),
               Column("Expectancy (USD/trade)", True)]
    rows: list[list[Cell]] = [[b.bucket, (str(b.trades), b.trades), _usd(b.pnl), (fmt_pct(b.hit_rate), b.hit_rate),
                               _usd(b.expectancy)] for b in result.dimensions[dimension]]
    o = result.open_at_end
    rows.append([OPEN_AT_END, (f"{o.positions} open", None), _usd(o.pnl), "", ""])
    total = sum(b.pnl for b in result.dimensions[dimension]) + o.pnl
    rows.append(["Total = equity end - starting cash", (str(sum(b.trades for b in result.dimensions[dimension])),
                                                        None), _usd(total), "", ""])
    return html_table(f"attr-{dimension}", columns, rows)


def _reconciliation(result: Attribution) -> str:
    o = result.open_at_end
    status = "reconciled" if result.reconciled else "ERROR: the run's files disagree"
    rows: list[list[Cell]] = [
        ["Total P&L (equity end - starting cash)", _usd(result.total_pnl)],
        ["Closed trades (sum of pnl, net of commission)", _usd(result.closed_pnl)],
        ["Open at end, from the positions", _usd(o.pnl)],
        ["  unrealized P&L (mark - average price) x quantity", _usd(o.unrealized)],
        ["  realised on partial exits of open positions", _usd(o.realized_partial)],
        ["  commissions already paid by open positions", _usd(-o.commissions)],
        ["Open at end, from the equity curve (total - closed)", _usd(o.from_equity)],
        ["Difference", (f"{o.difference:.3g} USD", o.difference)],
        ["Tolerance", (f"{o.tolerance:.3g} USD", o.tolerance)],
        ["Status", status],
    ]
    table = html_table("reconciliation", [Column("Line"), Column("USD", True)], rows)
    return table + note(f"Every dimension's buckets plus the open-at-end line add up to the total P&L. A difference "
                        f"above {o.tolerance:.3g} USD (the larger of {RECONCILE_TOLERANCE:g} USD and "
                        f"{RELATIVE_TOLERANCE:g} x "
                        "the larger of the gross traded notional and the largest equity: float rounding grows with "
                        "the dollars an equity curve adds up) between the two open-at-end values is an error.")


def _factor_table(result: Attribution) -> str:
    f = result.factor
    rows: list[list[Cell]] = [["Benchmark", f"{f.benchmark} buy & hold"],
                              ["Beta (OLS, daily returns)", fmt_num(f.beta, 3)],
                              ["Daily returns behind beta", str(f.days)], ["Market part (USD)", _usd(f.market_pnl)],
                              ["Alpha part (USD)", _usd(f.alpha_pnl)],
                              ["Total (USD)", _usd(f.market_pnl + f.alpha_pnl)]]
    return html_table("factor-table", [Column("Statistic"), Column("Value", True)], rows)


def _context_table(trades: pd.DataFrame) -> tuple[str, str]:
    columns = [Column("#", True), Column("Symbol"), Column("Side"), Column("Entry (UTC)"), Column("Exit (UTC)"),
               Column("P&L (USD)", True), Column("Return", True), Column("Exit type"), Column("Exit reason"),
               Column("Regime"), Column("Confidence", True), Column("Volatility", True), Column("Trend"),
               Column("MAE", True), Column("MFE", True), Column("Bars held", True), Column("Holding bucket")]
    frame = trades
    caption = f"All {len(trades)} closed trades (attribution_trades.csv has every column)."
    if len(frame) > MAX_CONTEXT_ROWS:
        frame = frame.loc[frame["pnl"].abs().nlargest(MAX_CONTEXT_ROWS).index.sort_values()]
        caption = (f"The {MAX_CONTEXT_ROWS} trades with the largest absolute P&L of {len(trades)} (all in "
                "attribution_trades.csv).")
    rows: list[list[Cell]] = []
    for t in frame.to_dict("records"):
        conf, ret, vol, mae, mfe = (float(t[k]) for k in ("confidence", "return", "volatility", "mae", "mfe"))
        held = int(t['holding_bars'])
        rows.append([(str(t['trade_id']), float(t['trade_id'])), str(t['symbol']), str(t['side']),
                     fmt_time(t['entry_time']), fmt_time(t['exit_time']), _usd(float(t['pnl'])), (fmt_pct(ret), ret),
                     str(t['exit_type']), str(t['exit_reason']), str(t['regime']),
                     ("n/a" if np.isnan(conf) else f"{conf:.2f}", conf), (fmt_pct(vol, 3), vol),
                     str(t['benchmark_trend']), (fmt_pct(mae), mae), (fmt_pct(mfe), mfe), (str(held), held),
                     str(t['holding_period'])])
    return html_table("context-trades", columns, rows, sortable=True), caption


def write_attribution_report(result: Attribution, run: FinishedRun, path: str | os.PathLike[str]) -> Path:
    """Write the attribution report and return its path.

    Sections: Reconciliation (``id="reconciliation"``), Factor split (``id="factor-table"``,
    chart ``id="factor-chart"``), one per dimension of :data:`research.attribution.DIMENSIONS`
    (bars ``id="attr-<dimension>-bars"``, table ``id="attr-<dimension>"``, cumulative chart
    ``id="attr-<dimension>-cumulative"`` when it has more than one bucket) and Trades (sortable,
    ``id="context-trades"``).

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    chart = Charts()
    trades = result.context.trades
    sections = [Section("section-reconciliation", "Reconciliation", _reconciliation(result))]
    f = result.factor
    beta_text = (f"beta {f.beta:.3f} = OLS slope (with intercept) of the strategy's daily returns on {f.benchmark}'s "
                 f"over {f.days} days" if f.beta is not None else "beta undefined (fewer than two daily returns or a "
                                                                  "flat benchmark): everything is alpha")
    sections.append(Section("section-factor", "Factor split", '<div class="grid"><div>' + _factor_table(result)
                            + "</div></div>" + chart(_factor_figure(result), "factor-chart") + note(
        "Per trading day (the date a bar starts, in the exchange's time zone): market = beta x benchmark return x "
        f"equity at the previous day's end; alpha = the day's P&L - market. {beta_text}. Sharpe (1964) single-index "
        "model; Jensen (1968).")))
    for dimension, buckets in result.dimensions.items():
        body = chart(_bars_figure(result, dimension), f"attr-{dimension}-bars") + _dimension_table(result, dimension)
        if dimension == "holding_period":
            body += note(f"Holding period counted in {result.holding_unit}: <10, 10-20, 20-30, >30.")
        if dimension == "time_of_day" and result.context.timeframe_ns >= 86_400 * 10**9:
            body += note("Bars of a day or longer: every entry fills at a bar's open, so the hour is the bar's start.")
        if dimension == "signal_strength" and not result.context.has_confidence:
            body += note("The strategy gives no confidence with its entries: every trade is 'none'.")
        if len(buckets) > 1:
            body += chart(_cumulative_figure(trades, dimension, [b.bucket for b in buckets]),
                          f"attr-{dimension}-cumulative")
        sections.append(Section(f"section-{dimension.replace('_', '-')}", DIMENSION_TITLES[dimension], body))
    table, caption = _context_table(trades)
    sections.append(Section("section-trades", "Trades", note(caption + " Click a header to sort.")
                            + f'<div class="scroll wide">{table}</div>'))
    info: dict[str, Any] = {"run": run.run_id, "strategy": run.strategy, "params": run.params,
                            "symbols": run.symbols, "timeframe": run.timeframe,
                            "starting cash": fmt_usd(run.starting_cash),
                            "source": str(run.folder) if run.folder is not None else "state database"}
    shown = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in info.items()}
    index = pd.DatetimeIndex(run.equity.index)
    subtitle = (f"{fmt_time(index[0])} → {fmt_time(index[-1])} (UTC) · {len(trades)} closed trades · total P&L "
                f"{fmt_usd(result.total_pnl)} · {'reconciled' if result.reconciled else 'NOT reconciled'}")
    return write_page(path, render_page(f"P&L attribution: {run.run_id}", subtitle, info_table(shown.items()),
                                        sections))
