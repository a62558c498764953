"""The report's plotly figures. Each builder takes pandas data (USD, fractions, UTC times) and returns
a figure dict (:data:`research.reports.plotting.Figure`); nothing here writes files.

Percent axes show fractions with plotly's ``%`` tick format; times are naive-UTC strings
(:func:`research.reports.plotting.plot_times`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from plotly.colors import get_colorscale

from core.enums import TradingState
from research.metrics import drawdown_series, monthly_returns
from research.reports.plotting import (Figure, axis, downsample, figure, log_axis, plot_times,
                                       spans_orders_of_magnitude, typed)
from research.state_history import StateSpell
from research.tearsheet import ROLLING_WINDOW, rolling_sharpe, rolling_volatility, yearly_returns

__all__ = ["STATE_COLOURS", "distribution_figure", "drawdown_figure", "equity_figure", "exposure_figure",
           "monthly_figure", "price_figure", "rolling_sharpe_figure", "rolling_volatility_figure",
           "yearly_figure"]

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
STATE_COLOURS = {TradingState.ACTIVE: "#1a9850", TradingState.REDUCING: "#f46d43", TradingState.HALTED: "#a50026"}
"""Marker and band colour per trading state."""
_STRATEGY, _BENCHMARK = "#1f77b4", "#ff7f0e"
_COLOURSCALE = get_colorscale("RdYlGn")  # plotly.js knows only a few scale names; send the colours
_MAX_BANDS = 1000  # more state spells than this are merged for display (the table lists them all)


def _line(series: pd.Series, name: str, colour: str, **extra: Any) -> dict[str, Any]:
    """Return a line trace of ``series`` (decimated to at most MAX_PLOT_POINTS)."""
    shown = downsample(series.astype(float))
    return {"type": "scatter", "mode": "lines", "name": name, "x": plot_times(shown.index),
            "y": typed(shown.to_numpy()), "line": {"color": colour, **extra.pop("line", {})}, **extra}


def _finite_range(*arrays: np.ndarray) -> np.ndarray:
    """The smallest and largest finite value over ``arrays`` (empty if none): all that the axis
    choice and the log ticks look at, without a copy of curves millions of points long."""
    ends: list[float] = []
    for values in arrays:
        finite = np.isfinite(values)
        part = values if finite.all() else values[finite]
        if len(part):
            ends += [float(part.min()), float(part.max())]
    return np.array([min(ends), max(ends)] if ends else [], dtype=float)


def _merge_spells(spells: Sequence[StateSpell], span: pd.Timedelta) -> list[tuple[TradingState, pd.Timestamp, pd.Timestamp]]:
    """Merge same-state spells separated by less than ``span / _MAX_BANDS`` so the chart stays light."""
    gap = span / _MAX_BANDS
    merged: list[tuple[TradingState, pd.Timestamp, pd.Timestamp]] = []
    for spell in spells:
        if merged and merged[-1][0] is spell.state and spell.start - merged[-1][2] <= gap:
            merged[-1] = (spell.state, merged[-1][1], max(merged[-1][2], spell.end))
        else:
            merged.append((spell.state, spell.start, spell.end))
    return merged


def equity_figure(equity: pd.Series, benchmark: pd.Series | None, benchmark_name: str = "Buy & hold",
                  spells: Sequence[StateSpell] = (), changes: pd.DataFrame | None = None) -> Figure:
    """Return strategy (and benchmark) equity in USD with the trading-state history drawn on it.

    Shaded bands (layout shapes) cover the time spent REDUCING (orange) and HALTED (dark red); a
    diamond on the equity curve at each state change carries its replay time and reason. The
    value axis is logarithmic when the curves span more than 10x.

    Parameters
    ----------
    equity, benchmark : pd.Series
        Equity in USD on tz-aware indexes; ``benchmark`` may be ``None``.
    benchmark_name : str
        Legend name of the benchmark.
    spells : Sequence[StateSpell]
        Non-ACTIVE spells (:func:`research.state_history.state_spells`).
    changes : pd.DataFrame, optional
        State changes (:func:`research.state_history.state_changes_frame`).
    """
    data = [_line(equity, "Strategy", _STRATEGY)]
    if benchmark is not None and len(benchmark):
        data.append(_line(benchmark, benchmark_name, _BENCHMARK))
    shapes: list[dict[str, Any]] = []
    legend_done: set[TradingState] = set()
    for state, start, end in _merge_spells(spells, equity.index[-1] - equity.index[0]):
        x0, x1 = plot_times(pd.DatetimeIndex([start, end]))
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1, "y0": 0, "y1": 1,
                       "fillcolor": STATE_COLOURS[state], "opacity": 0.15, "line": {"width": 0}, "layer": "below",
                       "name": f"{state.value} (band)", "legendgroup": state.value,
                       "showlegend": state not in legend_done})
        legend_done.add(state)
    if changes is not None and len(changes):
        times = pd.DatetimeIndex(changes["time"])
        pos = np.clip(equity.index.searchsorted(times, side="right") - 1, 0, len(equity) - 1)
        labels = plot_times(times)
        text = [f"{t}: {p} → {c}<br>{r}" for t, p, c, r in
                zip(labels, changes["previous"], changes["current"], changes["reason"])]
        data.append({"type": "scatter", "mode": "markers", "name": "Trading-state change", "x": labels,
                     "y": typed(equity.to_numpy()[pos]), "text": text, "hovertemplate": "%{text}<extra></extra>",
                     "marker": {"symbol": "diamond", "size": 9, "line": {"width": 1, "color": "#333"},
                                "color": [STATE_COLOURS[TradingState(c)] for c in changes["current"]]}})
    values = _finite_range(equity.to_numpy(dtype=float), *([benchmark.to_numpy(dtype=float)] if benchmark is not None else []))
    yaxis = (log_axis("USD (log scale)", values, prefix="$") if spans_orders_of_magnitude(values)
             else axis("USD", tickprefix="$", type="linear"))
    return figure(data, "Equity (USD)", yaxis, height=460, shapes=shapes)


def drawdown_figure(equity: pd.Series, benchmark: pd.Series | None, benchmark_name: str = "Buy & hold") -> Figure:
    """Return the underwater curve(s): drawdown from the running peak, a fraction <= 0 shown in %."""
    data = [_line(drawdown_series(equity), "Strategy", _STRATEGY, fill="tozeroy", hovertemplate="%{y:.2%}")]
    if benchmark is not None and len(benchmark) and benchmark.iloc[0] > 0:
        data.append(_line(drawdown_series(benchmark), benchmark_name, _BENCHMARK, hovertemplate="%{y:.2%}"))
    return figure(data, "Drawdown", axis("drawdown", tickformat=".0%"), height=320)


def _symmetric_limit(values: np.ndarray) -> float:
    """Largest absolute finite value (at least 0.01 %) so a diverging scale centres on 0."""
    finite = np.abs(values[np.isfinite(values)])
    return float(max(finite.max(), 0.01)) if len(finite) else 1.0


def monthly_figure(equity: pd.Series) -> Figure:
    """Return the monthly-returns heat map in percent, years down, months across, plus a Year column.

    The months and the Year column are coloured on separate scales, both centred on 0 and
    symmetric (red losses, green gains): the compounded Year values are larger than any month's
    and would otherwise wash every month out. To keep one trace (one grid), ``z`` holds each cell's
    value divided by its part's largest absolute value, so ``z`` is in [-1, 1]; the cell text and
    hover show the return itself, and the colour bar is labelled in monthly returns.
    """
    table = monthly_returns(equity)
    yearly = (1.0 + table).prod(axis=1, min_count=1) - 1.0
    months, years = table.to_numpy() * 100.0, yearly.to_numpy()[:, None] * 100.0
    month_limit, year_limit = _symmetric_limit(months), _symmetric_limit(years)
    values = np.column_stack([months, years])
    z = np.column_stack([months / month_limit, years / year_limit])
    text = [["" if np.isnan(v) else f"{v:+.1f}%" for v in row] for row in values]
    ticks = [-1.0, -0.5, 0.0, 0.5, 1.0]
    trace = {"type": "heatmap", "x": [*MONTHS, "Year"], "y": [str(y) for y in table.index],
             "z": [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in z], "text": text,
             "texttemplate": "%{text}", "hoverongaps": False, "xgap": 1, "ygap": 1, "zmin": -1.0, "zmax": 1.0,
             "zmid": 0.0, "colorscale": _COLOURSCALE, "hovertemplate": "%{y} %{x}: %{text}<extra></extra>",
             "colorbar": {"title": {"text": "month"}, "tickvals": ticks,
                          "ticktext": [f"{t * month_limit:+.1f}%" for t in ticks]}}
    return figure([trace], "Monthly returns (UTC months; Year = compounded, on its own colour scale)",
                  {"autorange": "reversed", "type": "category"}, height=max(220, 90 + 28 * len(table)),
                  xaxis={"type": "category"}, hovermode="closest")


def yearly_figure(equity: pd.Series, benchmark: pd.Series | None, benchmark_name: str = "Buy & hold") -> Figure:
    """Return calendar-year returns as grouped bars (strategy vs benchmark), fractions shown in %."""
    data = []
    for curve, name, colour in ((equity, "Strategy", _STRATEGY), (benchmark, benchmark_name, _BENCHMARK)):
        if curve is None or not len(curve):
            continue
        years = yearly_returns(curve)
        data.append({"type": "bar", "name": name, "x": [str(y) for y in years.index], "y": typed(years.to_numpy()),
                     "marker": {"color": colour}, "hovertemplate": "%{x}: %{y:.2%}"})
    return figure(data, "Yearly returns (UTC calendar years)", axis("return", tickformat=".0%"), height=340,
                  xaxis=axis("year", type="category"), barmode="group", bargap=0.3)


def distribution_figure(returns: pd.Series, benchmark_returns: pd.Series | None,
                        benchmark_name: str = "Buy & hold") -> Figure:
    """Return histograms of daily returns (strategy and benchmark on shared bins), in % of days."""
    pairs = [(returns, "Strategy", _STRATEGY), (benchmark_returns, benchmark_name, _BENCHMARK)]
    present = [(r.dropna().to_numpy(), n, c) for r, n, c in pairs if r is not None and len(r.dropna())]
    data = []
    if present:
        values = np.concatenate([p[0] for p in present])
        low, high = float(values.min()), float(values.max())
        # bin width from the central 99 % so one crash day does not make every bin coarse
        core_low, core_high = np.quantile(values, [0.005, 0.995])
        size = max(float(core_high - core_low) / 60.0, (high - low) / 400.0, 1e-6)
        for sample, name, colour in present:
            data.append({"type": "histogram", "name": f"{name} ({len(sample)} days)", "x": typed(sample),
                         "histnorm": "percent", "xbins": {"start": low, "end": high + size, "size": size},
                         "opacity": 0.6, "marker": {"color": colour},
                         "hovertemplate": "%{x:.2%}: %{y:.1f}% of days<extra></extra>"})
    return figure(data, "Distribution of daily returns", axis("% of days"), height=340,
                  xaxis=axis("daily return", tickformat=".1%"), hovermode="closest", barmode="overlay")


def _rolling_figure(title: str, yaxis: dict[str, Any], curves: list[tuple[pd.Series, str, str]]) -> Figure:
    return figure([_line(series.dropna(), name, colour) for series, name, colour in curves], title, yaxis, height=320)


def rolling_sharpe_figure(returns: pd.Series, benchmark_returns: pd.Series | None, periods_per_year: float,
                          benchmark_name: str = "Buy & hold", window: int = ROLLING_WINDOW) -> Figure:
    """Return the rolling annualised Sharpe ratio over ``window`` daily returns (strategy, benchmark)."""
    curves = [(rolling_sharpe(returns, periods_per_year, window), "Strategy", _STRATEGY)]
    if benchmark_returns is not None:
        curves.append((rolling_sharpe(benchmark_returns, periods_per_year, window), benchmark_name, _BENCHMARK))
    return _rolling_figure(f"Rolling Sharpe ratio ({window} daily returns, annualised)", axis("Sharpe"), curves)


def rolling_volatility_figure(returns: pd.Series, benchmark_returns: pd.Series | None, periods_per_year: float,
                              benchmark_name: str = "Buy & hold", window: int = ROLLING_WINDOW) -> Figure:
    """Return the rolling annualised volatility over ``window`` daily returns, a fraction shown in %."""
    curves = [(rolling_volatility(returns, periods_per_year, window), "Strategy", _STRATEGY)]
    if benchmark_returns is not None:
        curves.append((rolling_volatility(benchmark_returns, periods_per_year, window), benchmark_name, _BENCHMARK))
    return _rolling_figure(f"Rolling volatility ({window} daily returns, annualised)",
                           axis("volatility", tickformat=".0%"), curves)


def exposure_figure(exposure: pd.Series) -> Figure:
    """Return gross exposure over time as a fraction of equity (1.0 = fully invested), shown in %."""
    trace = _line(exposure, "Gross exposure", _STRATEGY, fill="tozeroy", line={"width": 1}, hovertemplate="%{y:.1%}")
    return figure([trace], "Exposure (gross exposure / equity)", axis("of equity", tickformat=".0%"), height=300)


def _markers(frame: pd.DataFrame, time_col: str, price_col: str, name: str, symbol: str, colour: str,
             text: list[str]) -> dict[str, Any]:
    return {"type": "scatter", "mode": "markers", "name": name, "x": plot_times(pd.DatetimeIndex(frame[time_col])),
            "y": typed(frame[price_col].astype(float).to_numpy()), "text": text,
            "hovertemplate": "%{text}<extra></extra>",
            "marker": {"symbol": symbol, "color": colour, "size": 9, "line": {"width": 1, "color": "#333"}}}


def price_figure(symbol: str, close: pd.Series, trades: pd.DataFrame | None) -> Figure:
    """Return a symbol's close in USD with its trades (triangles = entries, x = exits by win/loss).

    The price axis is logarithmic when the closes span more than 10x (e.g. split-adjusted AAPL
    from 1998), so early prices and trades stay readable.
    """
    data = [_line(close, "Close", "#555", line={"width": 1})]
    if trades is not None and len(trades):
        mine = trades[trades["symbol"] == symbol]
        long = mine["side"].astype(str).str.lower() == "buy"
        for mask, name, marker, colour in ((long, "Long entry", "triangle-up", "#1a9850"),
                                           (~long, "Short entry", "triangle-down", "#d73027")):
            part = mine[mask]
            if len(part):
                text = [f"{name}: {q:g} @ {p:,.2f}" for q, p in zip(part["quantity"], part["entry_price"])]
                data.append(_markers(part, "entry_time", "entry_price", name, marker, colour, text))
        win = mine["pnl"].astype(float) > 0
        for mask, name, colour in ((win, "Exit (win)", "#1a9850"), (~win, "Exit (loss)", "#d73027")):
            part = mine[mask]
            if len(part):
                text = [f"{name}: @ {p:,.2f}, pnl {pnl:+,.2f} USD ({reason})"
                        for p, pnl, reason in zip(part["exit_price"], part["pnl"], part["exit_reason"])]
                data.append(_markers(part, "exit_time", "exit_price", name, "x", colour, text))
    prices = _finite_range(close.to_numpy(dtype=float))
    yaxis = (log_axis("USD (log scale)", prices, prefix="$") if spans_orders_of_magnitude(prices)
             else axis("USD", tickprefix="$", type="linear"))
    return figure(data, f"{symbol}: close and trades", yaxis)
