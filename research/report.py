"""Self-contained HTML report of one replay: metrics table and plotly charts, no network access.

The file embeds plotly.js once (inline, about 4.8 MB) so it opens offline; every curve longer than
:data:`MAX_PLOT_POINTS` is decimated with a min/max-per-bucket scheme (keeps first, last and every
bucket's extremes, so drawdown troughs and price spikes stay visible) to keep the file small and
fast to write. Timestamps are plotted in UTC.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from research.metrics import PerformanceMetrics, drawdown_series, monthly_returns

__all__ = ["MAX_PLOT_POINTS", "downsample", "format_metrics_table", "write_report"]

MAX_PLOT_POINTS = 5000
"""Largest number of points plotted per curve; longer curves are decimated by :func:`downsample`."""
NOT_AVAILABLE = "n/a"
_TRADE_LABELS = frozenset({"Win rate", "Profit factor", "Expectancy", "Trades"})
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt_pct(value: float | None) -> str:
    if _is_missing(value):
        return NOT_AVAILABLE
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value * 100:.2f}%"


def _fmt_num(value: float | None) -> str:
    if _is_missing(value):
        return NOT_AVAILABLE
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.2f}"


def _fmt_usd(value: float | None) -> str:
    if _is_missing(value) or math.isinf(value):
        return NOT_AVAILABLE
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def _fmt_duration(value: pd.Timedelta | None) -> str:
    if value is None or pd.isna(value):
        return NOT_AVAILABLE
    minutes = int(value / pd.Timedelta(minutes=1))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m"


def _metric_cells(m: PerformanceMetrics) -> dict[str, str]:
    return {
        "Total return": _fmt_pct(m.total_return),
        "CAGR": _fmt_pct(m.cagr),
        "Volatility": _fmt_pct(m.volatility),
        "Sharpe": _fmt_num(m.sharpe),
        "Sortino": _fmt_num(m.sortino),
        "Calmar": _fmt_num(m.calmar),
        "Max drawdown": _fmt_pct(m.max_drawdown),
        "Max DD duration": _fmt_duration(m.max_drawdown_duration),
        "Win rate": _fmt_pct(m.win_rate),
        "Profit factor": _fmt_num(m.profit_factor),
        "Expectancy": _fmt_usd(m.expectancy),
        "Exposure": _fmt_pct(m.exposure),
        "Turnover": _fmt_num(m.turnover),
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
        Metrics of the buy-and-hold benchmark; without it the benchmark column is all ``"n/a"``.

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


def downsample(series: pd.Series, max_points: int = MAX_PLOT_POINTS) -> pd.Series:
    """Return at most about ``max_points`` points of ``series`` for plotting.

    The series is cut into ``(max_points - 2) // 2`` equal-count buckets; the first point, the
    last point and each bucket's minimum and maximum are kept, in time order (min/max decimation).
    NaN values are dropped first. Shorter series are returned unchanged (minus NaN).

    Parameters
    ----------
    series : pd.Series
        Numeric values on a sorted index.
    max_points : int, default :data:`MAX_PLOT_POINTS`
        Target size, at least 4.

    Returns
    -------
    pd.Series
        A subset of ``series`` (same index labels and values), at most ``max_points`` long.

    Raises
    ------
    ValueError
        If ``max_points < 4``.

    Examples
    --------
    >>> s = pd.Series(np.arange(10_000.0))
    >>> small = downsample(s, 100)
    >>> len(small) <= 100, float(small.iloc[0]), float(small.iloc[-1])
    (True, 0.0, 9999.0)
    """
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    clean = series.dropna()
    n = len(clean)
    if n <= max_points:
        return clean
    buckets = (max_points - 2) // 2
    values = clean.to_numpy(dtype=float)
    bucket = (np.arange(n) * buckets) // n
    order = np.lexsort((values, bucket))  # by bucket, then by value within the bucket
    firsts = np.searchsorted(bucket, np.arange(buckets), side="left")
    lasts = np.searchsorted(bucket, np.arange(buckets), side="right") - 1
    keep = np.unique(np.concatenate(([0, n - 1], order[firsts], order[lasts])))
    return clean.iloc[keep]


def _plot_times(index: pd.Index) -> list[str]:
    """Return compact naive-UTC time strings for plotly (shown as-is, whatever the browser zone).

    ``"2024-01-02 15:30"`` (or with seconds when any are non-zero) is about a third shorter in the
    file than plotly's default ISO microsecond encoding.
    """
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    fmt = "%Y-%m-%d %H:%M" if (idx.second == 0).all() else "%Y-%m-%d %H:%M:%S"
    return list(idx.strftime(fmt))


def _layout(fig: go.Figure, title: str, yaxis: dict[str, Any] | None = None, height: int = 420) -> go.Figure:
    fig.update_layout(
        title=title,
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        hovermode="x unified",
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        yaxis=yaxis or {},
        xaxis={"title": "time (UTC)"},
    )
    return fig


def _equity_figure(equity: pd.Series, benchmark: pd.Series | None) -> go.Figure:
    fig = go.Figure()
    shown = downsample(equity)
    fig.add_trace(go.Scatter(x=_plot_times(shown.index), y=shown.to_numpy(), name="Strategy", mode="lines"))
    if benchmark is not None and len(benchmark):
        shown = downsample(benchmark)
        fig.add_trace(
            go.Scatter(x=_plot_times(shown.index), y=shown.to_numpy(), name="Buy & hold", mode="lines")
        )
    # a long replay can span orders of magnitude: a log axis keeps both curves readable
    values = pd.concat([equity, benchmark]) if benchmark is not None else equity
    log = bool(values.min() > 0 and values.max() / values.min() > 10)
    axis = {"title": "USD (log scale)" if log else "USD", "tickprefix": "$", "type": "log" if log else "linear"}
    return _layout(fig, "Equity (USD)", axis)


def _drawdown_figure(equity: pd.Series, benchmark: pd.Series | None) -> go.Figure:
    fig = go.Figure()
    shown = downsample(drawdown_series(equity))
    fig.add_trace(
        go.Scatter(
            x=_plot_times(shown.index), y=shown.to_numpy(), name="Strategy", mode="lines",
            fill="tozeroy", hovertemplate="%{y:.2%}",
        )
    )
    if benchmark is not None and len(benchmark) and benchmark.iloc[0] > 0:
        shown = downsample(drawdown_series(benchmark))
        fig.add_trace(
            go.Scatter(
                x=_plot_times(shown.index), y=shown.to_numpy(), name="Buy & hold", mode="lines",
                hovertemplate="%{y:.2%}",
            )
        )
    return _layout(fig, "Drawdown", {"title": "drawdown", "tickformat": ".0%"}, height=320)


def _monthly_figure(equity: pd.Series) -> go.Figure:
    table = monthly_returns(equity)
    yearly = (1.0 + table).prod(axis=1, min_count=1) - 1.0
    z = np.column_stack([table.to_numpy(), yearly.to_numpy()]) * 100.0
    text = [["" if np.isnan(v) else f"{v:+.1f}%" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=[*_MONTHS, "Year"], y=[str(y) for y in table.index], text=text,
            texttemplate="%{text}", colorscale="RdYlGn", zmid=0.0, hoverongaps=False,
            hovertemplate="%{y} %{x}: %{text}<extra></extra>", colorbar={"ticksuffix": "%"},
        )
    )
    fig.update_layout(
        title="Monthly returns (UTC months; Year = compounded)", template="plotly_white",
        height=max(220, 90 + 40 * len(table)), margin={"l": 60, "r": 20, "t": 50, "b": 40},
        yaxis={"autorange": "reversed", "type": "category"},
    )
    return fig


def _marker_trace(frame: pd.DataFrame, time_col: str, price_col: str, name: str, symbol: str,
                  color: str, text: list[str]) -> go.Scatter:
    return go.Scatter(
        x=_plot_times(pd.DatetimeIndex(frame[time_col])), y=frame[price_col].astype(float).to_numpy(),
        mode="markers", name=name, text=text, hovertemplate="%{text}<extra></extra>",
        marker={"symbol": symbol, "color": color, "size": 9, "line": {"width": 1, "color": "#333"}},
    )


def _price_figure(symbol: str, close: pd.Series, trades: pd.DataFrame | None) -> go.Figure:
    fig = go.Figure()
    shown = downsample(close.astype(float))
    fig.add_trace(go.Scatter(x=_plot_times(shown.index), y=shown.to_numpy(), name="Close", mode="lines",
                             line={"color": "#555", "width": 1}))
    if trades is not None and len(trades):
        mine = trades[trades["symbol"] == symbol]
        long = mine["side"].astype(str).str.lower() == "buy"
        for mask, name, marker, color in ((long, "Long entry", "triangle-up", "#1a9850"),
                                          (~long, "Short entry", "triangle-down", "#d73027")):
            part = mine[mask]
            if len(part):
                text = [f"{name}: {q:g} @ {p:,.2f}" for q, p in zip(part["quantity"], part["entry_price"])]
                fig.add_trace(_marker_trace(part, "entry_time", "entry_price", name, marker, color, text))
        win = mine["pnl"].astype(float) > 0
        for mask, name, color in ((win, "Exit (win)", "#1a9850"), (~win, "Exit (loss)", "#d73027")):
            part = mine[mask]
            if len(part):
                text = [f"{name}: @ {p:,.2f}, pnl {pnl:+,.2f} USD ({reason})"
                        for p, pnl, reason in zip(part["exit_price"], part["pnl"], part["exit_reason"])]
                fig.add_trace(_marker_trace(part, "exit_time", "exit_price", name, "x", color, text))
    return _layout(fig, f"{symbol}: close and trades", {"title": "USD"})


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").lower() or "symbol"


def _info_value(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 24px auto;
       max-width: 1200px; color: #222; }
h1 { margin-bottom: 4px; } h2 { margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
#metrics-table td:nth-child(n+2) { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #777; font-size: 90%; }
code { word-break: break-all; }
"""


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
) -> Path:
    """Write a self-contained HTML report of a replay and return its path.

    Sections: header (title, period, ``run_info`` key/values), metrics table strategy vs buy-and-hold
    (``id="metrics-table"``, rows from :func:`format_metrics_table`), equity vs benchmark chart
    (``id="equity-chart"``), drawdown chart (``id="drawdown-chart"``), monthly returns heat map in %
    (``id="monthly-returns"``) and one close-price chart per symbol with trade markers
    (``id="price-<symbol>"``: triangle-up long entries, triangle-down short entries, x exits
    coloured by win/loss). plotly.js is embedded inline exactly once; nothing is loaded from the
    network. Curves longer than :data:`MAX_PLOT_POINTS` are decimated with :func:`downsample`.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (parents are created). If it is an existing directory, ``report.html`` is
        written inside it. The file is written to a temporary name and renamed, so a reader never
        sees a half-written report.
    equity : pd.Series
        Strategy equity in USD on a strictly increasing tz-aware DatetimeIndex.
    benchmark : pd.Series, optional
        Benchmark equity in USD (e.g. :func:`research.benchmark.buy_and_hold`), or ``None``.
    metrics : PerformanceMetrics
        Metrics of ``equity``.
    benchmark_metrics : PerformanceMetrics, optional
        Metrics of ``benchmark``, or ``None``.
    trades : pd.DataFrame, optional
        Round trips (columns symbol, side, quantity, entry_time, exit_time, entry_price,
        exit_price, pnl, commission, exit_reason); may be empty or ``None``.
    closes : dict[str, pd.Series], optional
        Close price per symbol in USD (tz-aware index), one chart each, in the dict's order.
    title : str
        Report title (HTML-escaped).
    run_info : dict, optional
        Key/values shown in the header (strategy, params, data files, config hash...); dicts and
        lists are rendered as JSON, everything else with ``str``; all text is HTML-escaped.

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
    target = Path(path)
    if target.is_dir():
        target = target / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)

    figures: list[tuple[str, str, go.Figure]] = [
        ("Equity", "equity-chart", _equity_figure(equity, benchmark)),
        ("Drawdown", "drawdown-chart", _drawdown_figure(equity, benchmark)),
        ("Monthly returns", "monthly-returns", _monthly_figure(equity)),
    ]
    for symbol, close in (closes or {}).items():
        figures.append((f"{symbol}", f"price-{_slug(symbol)}", _price_figure(symbol, close, trades)))

    parts: list[str] = []
    for number, (heading, div_id, fig) in enumerate(figures):
        chart = fig.to_html(full_html=False, include_plotlyjs=(number == 0), div_id=div_id,
                            config=_PLOT_CONFIG, include_mathjax=False)
        parts.append(f"<h2>{html.escape(heading)}</h2>\n{chart}")

    rows = "\n".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>"
        for label, a, b in format_metrics_table(metrics, benchmark_metrics)
    )
    info_rows = "\n".join(
        f"<tr><th>{html.escape(str(key))}</th><td><code>{html.escape(_info_value(value))}</code></td></tr>"
        for key, value in (run_info or {}).items()
    )
    period = f"{metrics.start.isoformat()} → {metrics.end.isoformat()} (UTC)"
    n_trades = 0 if trades is None else len(trades)
    document = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="muted">{html.escape(period)} · {len(equity)} equity points · {n_trades} trades</p>
<table id="run-info">
{info_rows}
</table>
<h2>Metrics</h2>
<table id="metrics-table">
<tr><th>Metric</th><th>Strategy</th><th>Buy &amp; hold</th></tr>
{rows}
</table>
<p class="muted">Fractions shown in percent. Ratios annualised from daily returns
({metrics.periods_per_year:.1f} periods/year); Sharpe (Sharpe 1994), Sortino (Sortino &amp; Price 1994),
Calmar = CAGR / max drawdown (Young 1991). Charts with more than {MAX_PLOT_POINTS} points are decimated
(min/max per bucket).</p>
{chr(10).join(parts)}
</body>
</html>
"""
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(document, encoding="utf-8")
    os.replace(tmp, target)
    return target
