"""Where a run's P&L came from: closed trades bucketed by symbol, asset class, regime, time of day,
weekday, exit type, holding period, entry signal strength, strategy and model, one line for the
positions still open at the end, and a beta-adjusted split into a market and an alpha part.

Reconciliation (checked, not assumed): for every dimension, the buckets' P&L (closed trades, USD
net of commission) plus the open-at-end P&L equals ``equity end - starting cash``. The open-at-end
P&L is computed from the positions (``positions.csv``: ``unrealized_pnl`` = (mark - average price)
x signed quantity, before commission) plus what the open round trips already realised on partial
exits, minus the commissions their fills already paid (from ``fills.csv``), and is checked
against ``equity end - starting cash - closed P&L``; a difference above the tolerance
(:func:`reconcile_tolerance`: :data:`RECONCILE_TOLERANCE` USD, or :data:`RELATIVE_TOLERANCE` of the
account's scale when that is larger, since the equity curve's float rounding grows with the dollars
it adds up) is reported as an error (:attr:`Attribution.reconciled`).

Factor split (Sharpe 1964 single-index model; Jensen 1968): with daily strategy P&L ``pnl_d =
E_d - E_{d-1}`` (``E`` the last equity of each trading day: the date a bar *starts* in the
benchmark exchange's time zone, so a Friday's daily bar, which ends on Saturday UTC, is Friday's;
``E_0`` the starting cash), benchmark
daily return ``b_d`` (buy and hold of SPY, else the first symbol, from the run's bars:
:func:`research.benchmark.buy_and_hold`) and ``beta`` the OLS slope of the strategy's daily returns
on ``b`` over the whole run (with intercept; :func:`research.tearsheet.relative_stats`, the days
both have a return), the market part of a day is ``beta x b_d x E_{d-1}`` and the alpha part the
rest, so market + alpha = total P&L exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.sources import BarSeries
from core.time import format_timeframe
from research.benchmark import buy_and_hold
from research.finished_run import FinishedRun
from research.safe_files import json_safe
from research.tearsheet import relative_stats
from research.trade_context import EXIT_TYPES, WEEKDAYS, TradeContext, benchmark_symbol, local_zone

__all__ = ["DIMENSIONS", "DIMENSION_TITLES", "HOLDING_EDGES", "OPEN_AT_END", "RECONCILE_TOLERANCE",
           "RELATIVE_TOLERANCE", "Attribution", "Bucket", "FactorSplit", "OpenAtEnd", "attribute",
           "attribution_document", "attribution_rows", "bucket_frame", "factor_split", "holding_buckets",
           "open_at_end", "reconcile_tolerance", "write_attribution_files"]

RECONCILE_TOLERANCE = 1e-6
"""USD: the smallest tolerance of the open-at-end check (:func:`reconcile_tolerance`)."""
RELATIVE_TOLERANCE = 1e-12
"""Fraction of the account's scale (the larger of the gross traded notional and the largest
equity, USD) accepted as float rounding by the open-at-end check: about 10,000 times float64's
relative precision (2.2e-16), for the rounding of the thousands of additions behind an equity
curve, and still a millionth of a cent per USD 10,000 traded."""
OPEN_AT_END = "open at end"
"""Label of the line of positions still open at the end."""
DIMENSIONS = ("symbol", "asset_class", "regime", "time_of_day", "weekday", "exit_type", "holding_period",
              "signal_strength", "strategy", "model")
"""The dimensions P&L is bucketed by, in report order."""
DIMENSION_TITLES = {"symbol": "Symbol", "asset_class": "Asset class", "regime": "Regime at entry",
                    "time_of_day": "Time of day (exchange-local hour of entry)", "weekday": "Weekday of entry",
                    "exit_type": "Exit type", "holding_period": "Holding period",
                    "signal_strength": "Entry signal strength (confidence quartile)", "strategy": "Strategy",
                    "model": "Model version"}
HOLDING_EDGES = (10, 20, 30)
"""Holding-period bucket edges: <10, 10-20, 20-30, >30 (a trade of exactly 20 is in 20-30, of 30 too)."""
_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class Bucket:
    """One bucket of one dimension: closed trades only; ``pnl`` USD net of commission, ``hit_rate``
    the share of trades with ``pnl > 0``, ``expectancy`` the mean ``pnl`` (USD per trade)."""

    bucket: str
    pnl: float
    trades: int
    hit_rate: float
    expectancy: float

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "pnl": self.pnl, "trades": self.trades, "hit_rate": self.hit_rate,
                "expectancy": self.expectancy}


@dataclass(frozen=True)
class OpenAtEnd:
    """P&L of the positions still open at the end, USD.

    Attributes
    ----------
    pnl : float
        From the positions: unrealized + realised on partial exits - commissions paid.
    from_equity : float
        ``equity end - starting cash - closed trades' pnl``.
    unrealized, realized_partial, commissions : float
        The parts of ``pnl``.
    positions : int
        Open positions.
    tolerance : float
        Largest accepted ``difference``, USD (:func:`reconcile_tolerance`).
    """

    pnl: float
    from_equity: float
    unrealized: float
    realized_partial: float
    commissions: float
    positions: int
    tolerance: float = RECONCILE_TOLERANCE

    @property
    def difference(self) -> float:
        return self.pnl - self.from_equity


@dataclass(frozen=True)
class FactorSplit:
    """Beta-adjusted split of the run's P&L against a benchmark.

    Attributes
    ----------
    benchmark : str
        Benchmark symbol (bought and held).
    beta : float or None
        OLS slope of daily strategy returns on benchmark returns; ``None`` with fewer than two
        daily returns or a benchmark that never moves (everything is then alpha).
    market_pnl, alpha_pnl : float
        USD; they sum to the total P&L.
    days : int
        Daily returns behind ``beta``.
    daily : pd.DataFrame
        Per trading day (index: naive dates, the day a bar starts in the exchange's time zone):
        ``pnl``, ``equity_before`` (USD), ``benchmark_return`` (fraction), ``market``, ``alpha``
        (USD).
    """

    benchmark: str
    beta: float | None
    market_pnl: float
    alpha_pnl: float
    days: int
    daily: pd.DataFrame


@dataclass(frozen=True)
class Attribution:
    """The attribution of one run (see the module docstring).

    Attributes
    ----------
    run_id : str
    total_pnl : float
        ``equity end - starting cash``, USD.
    closed_pnl : float
        Sum of the closed trades' ``pnl``, USD.
    open_at_end : OpenAtEnd
    dimensions : dict[str, list[Bucket]]
        Per dimension of :data:`DIMENSIONS`, its buckets in display order.
    factor : FactorSplit
    holding_unit : str
        What the holding-period buckets count (``"bars of 1h"``, ``"trading days (1d bars)"``).
    context : TradeContext
        The trades with their context (``holding_period`` and ``signal_strength`` columns added).
    """

    run_id: str
    total_pnl: float
    closed_pnl: float
    open_at_end: OpenAtEnd
    dimensions: dict[str, list[Bucket]]
    factor: FactorSplit
    holding_unit: str
    context: TradeContext = field(repr=False)

    @property
    def reconciled(self) -> bool:
        """Whether the open-at-end P&L from the positions matches the equity curve within
        :attr:`OpenAtEnd.tolerance`."""
        return abs(self.open_at_end.difference) <= self.open_at_end.tolerance


def _open_leg(fills: pd.DataFrame) -> tuple[float, float]:
    """Realised P&L of partial exits and commissions of the round trip still open, from one
    symbol's fills in time order (legs split as :func:`research.frames._legs` does)."""
    position = avg = realized = commissions = 0.0
    for side, quantity, price, commission in zip(fills["side"].astype(str), fills["quantity"].astype(float),
                                                 fills["price"].astype(float), fills["commission"].astype(float)):
        buy = side == "buy"
        signed = quantity if buy else -quantity
        reducing = position != 0.0 and (position > 0) != buy
        if reducing:
            closing = min(quantity, abs(position))
            realized += closing * (price - avg) * (1.0 if position > 0 else -1.0)
            commissions += commission * closing / quantity
            new = position + signed
            if abs(new) < 1e-9 or (new > 0) != (position > 0):  # flat or flipped: a new leg starts
                realized = commissions = 0.0
                new = 0.0 if abs(new) < 1e-9 else new
                if new != 0.0:
                    avg, commissions = price, commission * (quantity - closing) / quantity
            position = new
        else:
            total = abs(position) + quantity
            avg = (avg * abs(position) + price * quantity) / total
            commissions += commission
            position += signed
    return realized, commissions


def reconcile_tolerance(run: FinishedRun) -> float:
    """Largest accepted difference (USD) between the open-at-end P&L from the positions and from
    the equity curve: ``max(RECONCILE_TOLERANCE, RELATIVE_TOLERANCE x scale)`` with ``scale`` the
    larger of the gross traded notional (sum of ``|quantity x price|`` over the fills; over the
    trades' entries and exits when the run has no fills) and the largest ``|equity|``, USD.

    A replay's equity is cash plus marked positions, cash the running sum of every fill's
    notional and commission: its float rounding grows with those amounts (a 1e9 USD account shows
    a few 1e-6 USD), so a fixed tolerance would fail large accounts on noise.

    Examples
    --------
    >>> from research.finished_run import FinishedRun
    >>> r = FinishedRun("r", "s", {}, ["X"], "1h", 1e9, pd.Series([1e9, 1.2e9]), pd.DataFrame(),
    ...                 pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    >>> reconcile_tolerance(r)
    0.0012
    """
    fills, trades = run.fills, run.trades
    if len(fills):
        gross = math.fsum((fills["quantity"].astype(float) * fills["price"].astype(float)).abs())
    elif len(trades):
        quantity = trades["quantity"].astype(float).abs()
        gross = math.fsum(quantity * (trades["entry_price"].astype(float).abs()
                                      + trades["exit_price"].astype(float).abs()))
    else:
        gross = 0.0
    peak = float(run.equity.abs().max()) if len(run.equity) else 0.0
    scale = max(gross, peak, abs(run.starting_cash))
    return max(RECONCILE_TOLERANCE, RELATIVE_TOLERANCE * scale) if math.isfinite(scale) else RECONCILE_TOLERANCE


def open_at_end(run: FinishedRun, bars: Sequence[BarSeries] | None = None) -> OpenAtEnd:
    """Return the P&L of the positions still open at the end (see the module docstring).

    ``unrealized_pnl`` missing (a database run) is computed from ``avg_price`` and the last close
    of the symbol in ``bars``.

    Raises
    ------
    ValueError
        If a position has no ``unrealized_pnl`` and no bars of its symbol are given.
    """
    closed = float(math.fsum(run.trades["pnl"].astype(float))) if len(run.trades) else 0.0
    from_equity = run.total_pnl - closed
    positions = run.positions
    open_rows = positions[positions["quantity"].astype(float) != 0.0] if len(positions) else positions
    closes = {s.symbol: float(s.close[-1]) for s in bars or () if len(s)}
    unrealized: list[float] = []
    realized: list[float] = []
    paid: list[float] = []
    for row in open_rows.to_dict("records"):
        symbol, quantity = str(row['symbol']), float(row['quantity'])
        value = float(row['unrealized_pnl']) if pd.notna(row['unrealized_pnl']) else math.nan
        if math.isnan(value):
            if symbol not in closes:
                raise ValueError(f"run {run.run_id}: position in {symbol} has no unrealized P&L and no bars of "
                                 f"{symbol} were given to mark it")
            value = (closes[symbol] - float(row['avg_price'])) * quantity
        unrealized.append(value)
        fills = run.fills[run.fills["symbol"].astype(str) == symbol]
        part, fee = _open_leg(fills) if len(fills) else (0.0, 0.0)
        realized.append(part)
        paid.append(fee)
    u, r, c = math.fsum(unrealized), math.fsum(realized), math.fsum(paid)
    return OpenAtEnd(u + r - c, from_equity, u, r, c, len(unrealized), reconcile_tolerance(run))


def holding_buckets(bars_held: pd.Series, holding_s: pd.Series, timeframe_ns: int) -> tuple[pd.Series, str]:
    """Return each trade's holding-period bucket and the unit the buckets count.

    Daily bars count trading days (bars held); longer bars count calendar days of holding time;
    intraday bars count bars (``"bars of 1h"``). Buckets: ``<10``, ``10-20``, ``20-30``, ``>30``.

    Examples
    --------
    >>> b, unit = holding_buckets(pd.Series([3, 10, 30, 31]), pd.Series([0.0] * 4), 3_600 * 10**9)
    >>> b.tolist(), unit
    (['<10', '10-20', '20-30', '>30'], 'bars of 1h')
    """
    if timeframe_ns == _DAY_NS:
        values, unit = bars_held.astype(float), "trading days (1d bars)"
    elif timeframe_ns > _DAY_NS:
        values, unit = holding_s.astype(float) / 86_400.0, "calendar days"
    else:
        values, unit = bars_held.astype(float), f"bars of {format_timeframe(timeframe_ns)}"
    low, mid, high = HOLDING_EDGES
    labels = np.where(values < low, f"<{low}", np.where(values < mid, f"{low}-{mid}", np.where(
        values <= high, f"{mid}-{high}", f">{high}")))
    return pd.Series(labels, index=bars_held.index, dtype=object), unit


def _signal_buckets(confidence: pd.Series) -> pd.Series:
    """Quartile of the entry confidence (``Q1 [0.51, 0.56]``), ``none`` without one."""
    out = pd.Series("none", index=confidence.index, dtype=object)
    known = confidence.dropna()
    if len(known) == 0:
        return out
    quartile = pd.qcut(known.rank(method="first"), min(4, len(known)), labels=False)
    for q in sorted(quartile.unique()):
        members = known[quartile == q]
        out[members.index] = f"Q{int(q) + 1} [{members.min():.2f}, {members.max():.2f}]"
    return out


def _order(dimension: str, labels: Sequence[str]) -> list[str]:
    unique = list(dict.fromkeys(labels))
    if dimension == "weekday":
        return [d for d in WEEKDAYS if d in unique]
    if dimension == "exit_type":
        return [t for t in EXIT_TYPES if t in unique]
    if dimension == "holding_period":
        low, mid, high = HOLDING_EDGES
        return [b for b in (f"<{low}", f"{low}-{mid}", f"{mid}-{high}", f">{high}") if b in unique]
    if dimension == "time_of_day":
        return sorted(unique)  # "09:00" < "10:00"
    if dimension == "signal_strength":
        return sorted(b for b in unique if b != "none") + (["none"] if "none" in unique else [])
    return sorted(unique)


def bucket_frame(trades: pd.DataFrame, column: str) -> list[Bucket]:
    """Return the buckets of ``trades`` by the labels in ``column`` (display order by :func:`_order`).

    Parameters
    ----------
    trades : pd.DataFrame
        Closed trades with ``pnl`` (USD) and ``column``.
    column : str
        The dimension's label column (one of :data:`DIMENSIONS`).

    Examples
    --------
    >>> t = pd.DataFrame({"pnl": [10.0, -4.0, 6.0], "weekday": ["Tue", "Mon", "Tue"]})
    >>> [(b.bucket, b.pnl, b.trades, b.hit_rate) for b in bucket_frame(t, "weekday")]
    [('Mon', -4.0, 1, 0.0), ('Tue', 16.0, 2, 1.0)]
    """
    labels = trades[column].astype(str)
    buckets = []
    for label in _order(column, labels.tolist()):
        pnl = trades["pnl"].astype(float)[labels == label]
        total = math.fsum(pnl)
        buckets.append(Bucket(label, total, int(len(pnl)), float((pnl > 0).mean()), total / len(pnl)))
    return buckets


def factor_split(equity: pd.Series, starting_cash: float, benchmark_close: pd.Series,
                 benchmark: str = "benchmark", *, timeframe_ns: int = 0, zone: str = "UTC") -> FactorSplit:
    """Split the P&L of ``equity`` into a market (beta x benchmark) and an alpha part, per trading
    day: the date each bar starts (its end minus ``timeframe_ns``) in ``zone``.

    Parameters
    ----------
    equity : pd.Series
        Strategy equity, USD, strictly increasing tz-aware index (bar end).
    starting_cash : float
        USD, the equity before the first day.
    benchmark_close : pd.Series
        The benchmark's close, USD, stamped at bar end (tz-aware).
    benchmark : str
        Its name, for the result.
    timeframe_ns : int
        Bar length (ns): the index holds bar ends, the day is the bar's start's.
    zone : str
        The exchange's time zone (:func:`research.trade_context.local_zone`; UTC for 24/7).

    Returns
    -------
    FactorSplit
        ``market_pnl + alpha_pnl == equity end - starting_cash`` (to float rounding).

    Raises
    ------
    ValueError
        For an empty or invalid curve (:func:`research.benchmark.buy_and_hold`).
    """
    curve = buy_and_hold({benchmark: benchmark_close}, starting_cash, pd.DatetimeIndex(equity.index))
    stats = relative_stats(equity, curve, 252.0)
    starts = pd.DatetimeIndex(equity.index) - pd.Timedelta(timeframe_ns, unit="ns")
    day = starts.tz_convert(zone).tz_localize(None).normalize().rename("date")
    strategy_daily = equity.groupby(day).last()
    bench_daily = curve.groupby(day).last()
    before = strategy_daily.shift(1)
    before.iloc[0] = starting_cash
    bench_before = bench_daily.shift(1)
    bench_before.iloc[0] = float(curve.iloc[0])
    pnl = strategy_daily - before
    bench_return = (bench_daily / bench_before - 1.0).fillna(0.0)
    beta = stats.beta
    market = beta * bench_return * before if beta is not None else pnl * 0.0
    alpha = pnl - market
    daily = pd.DataFrame({"pnl": pnl, "equity_before": before, "benchmark_return": bench_return, "market": market,
                          "alpha": alpha})
    total = float(equity.iloc[-1] - starting_cash)
    market_pnl = float(math.fsum(market))
    return FactorSplit(benchmark, beta, market_pnl, total - market_pnl, stats.days, daily)


def attribute(run: FinishedRun, context: TradeContext, bars: Sequence[BarSeries]) -> Attribution:
    """Attribute the P&L of ``run`` (see the module docstring).

    Parameters
    ----------
    run : FinishedRun
    context : TradeContext
        :func:`research.trade_context.build_trade_context` of the run.
    bars : Sequence[BarSeries]
        The run's bars (the benchmark's closes, marks of open positions without one).

    Returns
    -------
    Attribution
        Check :attr:`Attribution.reconciled` before trusting the open-at-end line.

    Raises
    ------
    ValueError
        If an open position cannot be marked, or the equity curve is invalid.
    """
    trades = context.trades.copy()
    trades["holding_period"], unit = holding_buckets(trades["holding_bars"], trades["holding_time_s"],
                                                     context.timeframe_ns)
    trades["signal_strength"] = _signal_buckets(trades["confidence"])
    trades["time_of_day"] = [f"{int(h):02d}:00" for h in trades["entry_hour"]]
    dimensions = {name: bucket_frame(trades, name) for name in DIMENSIONS} if len(trades) else {
        name: [] for name in DIMENSIONS}
    series = {s.symbol: s for s in bars}
    symbol = benchmark_symbol(list(series))
    bench = series[symbol]
    close = pd.Series(bench.close, index=pd.DatetimeIndex(pd.to_datetime(bench.ts_init, unit="ns", utc=True)))
    calendars = (run.run_info.get("fill") or {}).get("calendars") or {}
    factor = factor_split(run.equity, run.starting_cash, close, symbol, timeframe_ns=context.timeframe_ns,
                          zone=local_zone(symbol, calendars))
    closed = float(math.fsum(trades["pnl"])) if len(trades) else 0.0
    return Attribution(run.run_id, run.total_pnl, closed, open_at_end(run, bars), dimensions, factor, unit,
                       TradeContext(trades, context.benchmark, context.timeframe_ns, context.has_confidence))


def attribution_document(result: Attribution) -> dict[str, Any]:
    """Return ``attribution.json``: ``run_id``, ``total_pnl``, ``dimensions`` (name -> list of
    ``{"bucket", "pnl", "trades", "hit_rate", "expectancy"}``, closed trades only),
    ``open_at_end_pnl``, ``factor`` (``beta``, ``market_pnl``, ``alpha_pnl``), and for people:
    ``closed_pnl``, ``reconciliation`` (with ``tolerance`` USD and ``tolerance_rule``),
    ``holding_unit``, ``benchmark``. USD, fractions; no NaN."""
    o, f = result.open_at_end, result.factor
    return json_safe({
        "run_id": result.run_id, "total_pnl": result.total_pnl,
        "dimensions": {name: [b.to_dict() for b in buckets] for name, buckets in result.dimensions.items()},
        "open_at_end_pnl": o.pnl,
        "factor": {"beta": f.beta, "market_pnl": f.market_pnl, "alpha_pnl": f.alpha_pnl},
        "closed_pnl": result.closed_pnl,
        "reconciliation": {"open_at_end_from_positions": o.pnl, "open_at_end_from_equity": o.from_equity,
                           "difference": o.difference, "tolerance": o.tolerance,
                           "tolerance_rule": f"max({RECONCILE_TOLERANCE:g} USD, {RELATIVE_TOLERANCE:g} x the larger of "
                                             "the gross traded notional and the largest equity)",
                           "ok": result.reconciled, "open_positions": o.positions, "unrealized": o.unrealized,
                           "realized_on_partial_exits": o.realized_partial, "commissions_paid": o.commissions},
        "holding_unit": result.holding_unit,
        "benchmark": {"symbol": f.benchmark, "beta_days": f.days,
                      "rule": "beta = OLS slope of daily strategy returns on the benchmark's buy-and-hold daily "
                              "returns over the whole run (with intercept)"},
    })


def attribution_rows(result: Attribution) -> pd.DataFrame:
    """Return the long table of ``attribution.csv``: dimension, bucket, kind (``closed`` or
    ``open``), pnl, trades, hit_rate, expectancy; each dimension ends with its open-at-end line."""
    rows: list[dict[str, Any]] = []
    for name, buckets in result.dimensions.items():
        rows += [{"dimension": name, "kind": "closed", **b.to_dict()} for b in buckets]
        rows.append({"dimension": name, "kind": "open", "bucket": OPEN_AT_END, "pnl": result.open_at_end.pnl,
                     "trades": result.open_at_end.positions, "hit_rate": None, "expectancy": None})
    return pd.DataFrame(rows, columns=["dimension", "bucket", "kind", "pnl", "trades", "hit_rate", "expectancy"])


def write_attribution_files(result: Attribution, out_dir: Path) -> list[str]:
    """Write ``attribution.json``, ``attribution.csv`` (long table), ``attribution_trades.csv``
    (every trade with its context and buckets) and ``attribution_daily.csv`` (the factor split per
    trading day) into ``out_dir`` (created); return the names written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "attribution.json").write_text(json.dumps(attribution_document(result), indent=2, allow_nan=False))
    attribution_rows(result).to_csv(out_dir / "attribution.csv", index=False)
    trades = result.context.trades.copy()
    for column in ("entry_time", "exit_time", "decision_time"):
        trades[column] = pd.to_datetime(trades[column], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    trades.to_csv(out_dir / "attribution_trades.csv", index=False)
    daily = result.factor.daily.copy()
    daily.index = pd.DatetimeIndex(daily.index).strftime("%Y-%m-%d")
    daily.rename_axis("date").to_csv(out_dir / "attribution_daily.csv")
    return ["attribution.json", "attribution.csv", "attribution_trades.csv", "attribution_daily.csv"]
