"""A finished run against passive benchmarks: the statistics and files of ``tradingd benchmark``.

Four benchmarks are valued on the strategy's own equity index (:mod:`research.benchmark`,
:mod:`research.benchmark_portfolios`): buy and hold of one symbol (the *primary* benchmark, SPY by
default), the run's symbols in equal weights rebalanced monthly, 60/40 stock/bond rebalanced
monthly and naive 12-1 momentum. Like
every benchmark of the project they trade fractional shares at the last known close with no
commission and no slippage; idle cash earns nothing.

Conventions follow :mod:`research.metrics` (fractions, not percent; daily returns are the last
equity of each UTC day with data; ``periods_per_year`` inferred from the strategy's curve):

* total return, CAGR, Sharpe, volatility, max drawdown: :func:`research.metrics.compute_metrics`;
* recovery time: the longest spell under water until a peak is regained, in days
  (``PerformanceMetrics.max_drawdown_duration``), ``None`` when that longest spell is still under
  water at the end (never regained: the time since the equity high,
  :func:`research.risk_metrics.equity_high`, is at least as long);
* monthly win rate: the share of UTC calendar months with a return > 0
  (:func:`research.metrics.monthly_returns`; the first and last month may be partial);
* against each benchmark, from the aligned daily returns ``r_s``, ``r_b`` (risk-free rate 0), all
  from :func:`research.tearsheet.relative_stats`: beta and correlation (Sharpe 1964; Pearson);
  alpha = the CAPM regression intercept ``mean(r_s - beta * r_b)`` x ``periods_per_year``
  (Jensen 1968; simple annualisation; the compounded ``(1 + intercept) ** ppy - 1`` of
  ``relative_stats`` and empyrical is kept as ``alpha_compounded``); tracking error =
  ``std(r_s - r_b, ddof=1) * sqrt(ppy)`` and information ratio = ``mean(r_s - r_b) /
  std(r_s - r_b, ddof=1) * sqrt(ppy)`` (Grinold & Kahn 1999, "Active Portfolio Management").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from research.benchmark import EQUAL_WEIGHT, BenchmarkCurve, BenchmarkError, benchmark_curve
from research.benchmark_portfolios import momentum_curve, momentum_picks, sixty_forty_curve
from research.metrics import compute_metrics, monthly_returns
from research.risk_metrics import equity_high
from research.safe_files import json_safe
from research.tearsheet import relative_stats

__all__ = ["BENCHMARK_JSON", "EQUITY_CSV", "FULL_COVERAGE", "MONTHLY_CSV", "NO_COSTS", "STRATEGY", "BenchmarkResult",
           "Comparison", "CurveStats", "VersusStats", "build_benchmarks", "compare", "coverage", "curve_stats",
           "favourable", "find_symbol", "monthly_table", "partial_coverage_note", "versus", "write_comparison_files"]

STRATEGY = "strategy"
"""Column and key naming the strategy in the files."""
BENCHMARK_JSON, EQUITY_CSV, MONTHLY_CSV = "benchmark.json", "benchmark_equity.csv", "monthly_returns.csv"
NO_COSTS = ("Benchmarks trade fractional shares at the last known close with no commission and no slippage; idle "
            "cash earns nothing. The strategy's curve is net of its costs.")
FULL_COVERAGE = 0.99
"""Share of the run's period the primary benchmark's closes must span for the comparison to be
stated without a caution (a daily series on an hourly run ends a few hours short of it)."""


@dataclass(frozen=True)
class CurveStats:
    """Stand-alone statistics of one equity curve (fractions, not percent).

    Attributes
    ----------
    total_return, cagr, sharpe, volatility, max_drawdown : float or None
        As :class:`research.metrics.PerformanceMetrics` (max drawdown positive: 0.23 = 23 %).
    recovery_days : float or None
        Longest time under water until a peak was regained, calendar days; ``None`` when that
        longest spell had not ended by the last point (never regained); 0 without a drawdown.
    underwater_days : float
        Longest time under water, calendar days, counting a spell still open at the end.
    win_rate_months : float or None
        Share of UTC calendar months with a return > 0 (``None`` without a month).
    months : int
        Months with a return.
    """

    total_return: float
    cagr: float | None
    sharpe: float | None
    volatility: float | None
    max_drawdown: float
    recovery_days: float | None
    underwater_days: float
    win_rate_months: float | None
    months: int


def curve_stats(equity: pd.Series) -> CurveStats:
    """Return the stand-alone :class:`CurveStats` of an equity curve (USD, bar-end UTC index).

    Raises ``ValueError`` for a curve :func:`research.metrics.compute_metrics` refuses.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-01", "2024-01-31", "2024-02-10", "2024-02-29", "2024-03-05"], tz="UTC")
    >>> s = curve_stats(pd.Series([100.0, 110.0, 99.0, 121.0, 115.0], index=idx))
    >>> round(s.max_drawdown, 4), s.recovery_days, s.win_rate_months, s.months
    (0.1, 29.0, 0.6666666666666666, 3)
    """
    metrics = compute_metrics(equity)
    underwater = metrics.max_drawdown_duration / pd.Timedelta(days=1)
    high = equity_high(equity)
    # under water at the end since the last point at the high: when that spell is the longest, the
    # longest was never regained
    never = high.distance < 0 and high.since / pd.Timedelta(days=1) >= underwater
    recovery: float | None = None if never else underwater
    months = monthly_returns(equity).to_numpy().ravel()
    months = months[~np.isnan(months)]
    win = float((months > 0).mean()) if len(months) else None
    return CurveStats(total_return=metrics.total_return, cagr=metrics.cagr, sharpe=metrics.sharpe,
                      volatility=metrics.volatility, max_drawdown=abs(metrics.max_drawdown),  # never -0.0
                      recovery_days=recovery,
                      underwater_days=float(underwater), win_rate_months=win, months=int(len(months)))


@dataclass(frozen=True)
class VersusStats:
    """The strategy against one benchmark, from aligned daily returns (risk-free rate 0).

    Attributes
    ----------
    alpha : float or None
        CAPM regression intercept x periods per year (fraction per year; Jensen 1968).
    alpha_compounded : float or None
        ``(1 + intercept) ** periods_per_year - 1``, as :func:`research.tearsheet.relative_stats`.
    beta, correlation : float or None
        OLS slope of strategy on benchmark daily returns; Pearson's r.
    information_ratio : float or None
        Annualised mean over standard deviation of the active daily return ``r_s - r_b``.
    tracking_error : float or None
        Annualised standard deviation (ddof=1) of the active daily return, a fraction.
    days : int
        Aligned daily returns used.
    """

    alpha: float | None
    alpha_compounded: float | None
    beta: float | None
    correlation: float | None
    information_ratio: float | None
    tracking_error: float | None
    days: int


def versus(equity: pd.Series, benchmark: pd.Series, periods_per_year: float) -> VersusStats:
    """Return alpha, beta, correlation, information ratio and tracking error of ``equity`` against
    ``benchmark``: :func:`research.tearsheet.relative_stats` with alpha annualised simply (the
    intercept x ``periods_per_year``; see the module docstring for the formulas and their sources).

    Takes and raises what ``relative_stats`` does (``periods_per_year``: the strategy's
    ``PerformanceMetrics.periods_per_year``); its ``None`` fields stay ``None``.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    >>> bench = pd.Series([100.0, 101.0, 99.0, 102.0, 101.0], index=idx)
    >>> v = versus(100.0 * (1 + 2 * bench.pct_change().fillna(0) + 0.001).cumprod(), bench, 252.0)
    >>> round(v.beta, 6), round(v.alpha, 6), round(v.alpha_compounded, 6), v.days
    (2.0, 0.252, 0.286434, 4)
    """
    rel = relative_stats(equity, benchmark, periods_per_year)
    alpha = None if rel.alpha_daily is None else rel.alpha_daily * periods_per_year
    return VersusStats(alpha=alpha, alpha_compounded=rel.alpha, beta=rel.beta, correlation=rel.correlation,
                       information_ratio=rel.information_ratio, tracking_error=rel.tracking_error, days=rel.days)


def favourable(strategy: CurveStats, primary: CurveStats, against: VersusStats, primary_label: str) -> tuple[bool, str]:
    """Return whether the run compares favourably with its primary benchmark, and why.

    Favourable: the strategy's Sharpe is positive and at least the primary benchmark's, or its
    alpha against it is positive with a max drawdown no worse than the benchmark's. A losing run
    is never favourable on Sharpe alone (a Sharpe of -0.2 "beats" a falling market's -1.5 but
    still loses money); a Sharpe that is undefined (flat curve) fails the first test.

    Examples
    --------
    >>> s = CurveStats(0.5, 0.04, 0.4, 0.1, 0.2, 100.0, 100.0, 0.5, 12)
    >>> b = CurveStats(1.0, 0.08, 0.6, 0.2, 0.5, 300.0, 300.0, 0.6, 12)
    >>> favourable(s, b, VersusStats(0.01, 0.01, 0.3, 0.5, -0.2, 0.15, 250), "SPY buy & hold")[0]
    True
    """
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 100:.2f}%"

    def num(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    sharpe_ok = (strategy.sharpe is not None and primary.sharpe is not None and strategy.sharpe > 0
                 and strategy.sharpe >= primary.sharpe)
    alpha_ok = against.alpha is not None and against.alpha > 0 and strategy.max_drawdown <= primary.max_drawdown
    reason = (f"rule: favourable when the strategy's Sharpe is > 0 and >= {primary_label}'s, or its alpha against "
              f"{primary_label} > 0 with a max drawdown no worse. Sharpe {num(strategy.sharpe)} vs "
              f"{num(primary.sharpe)} ({'met' if sharpe_ok else 'not met'}); alpha {pct(against.alpha)} a year, max "
              f"drawdown {pct(strategy.max_drawdown)} vs {pct(primary.max_drawdown)} "
              f"({'met' if alpha_ok else 'not met'}).")
    return sharpe_ok or alpha_ok, reason


def coverage(close: pd.Series, index: pd.DatetimeIndex) -> float:
    """Return the share of the time from ``index[0]`` to ``index[-1]`` that lies between the first
    and the last close of ``close`` (1.0: the series spans the whole period).

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    >>> coverage(pd.Series([1.0, 2.0], index=idx[1:3]), idx)
    0.25
    """
    clean = close.dropna()
    span = index[-1] - index[0] if len(index) else pd.Timedelta(0)
    if not len(clean) or not len(index):
        return 0.0
    first, last = pd.Timestamp(clean.index.min()), pd.Timestamp(clean.index.max())
    if span <= pd.Timedelta(0):
        return 1.0 if first <= index[0] <= last else 0.0
    overlap = min(last, index[-1]) - max(first, index[0])
    return float(max(overlap, pd.Timedelta(0)) / span)


def find_symbol(name: str, available: Iterable[str], option: str) -> str:
    """Return the symbol of ``available`` that ``name`` names (any case), as spelled there.

    Raises
    ------
    BenchmarkError
        If none does (the message names ``option`` and lists the symbols).

    Examples
    --------
    >>> find_symbol("spy", ["AAPL", "SPY"], "--benchmark")
    'SPY'
    """
    symbols = list(available)
    matches = [s for s in symbols if s.lower() == name.strip().lower()]
    if not matches:
        raise BenchmarkError(f"{option} {name}: no such symbol in the run's data or --data "
                             f"({', '.join(sorted(symbols))}); pass its bars with --data FILE")
    return name if name in matches else matches[0]


@dataclass(frozen=True)
class BenchmarkResult:
    """One benchmark with its statistics and what else its JSON entry says (``extra``)."""

    curve: BenchmarkCurve
    stats: CurveStats
    versus: VersusStats
    extra: dict[str, Any] = field(default_factory=dict)


def build_benchmarks(universe: Mapping[str, pd.Series], benchmark: tuple[str, pd.Series], bond: tuple[str, pd.Series],
                     starting_cash: float, index: pd.DatetimeIndex,
                     momentum_top: int = 2) -> list[tuple[BenchmarkCurve, dict[str, Any]]]:
    """Build the four benchmarks of ``tradingd benchmark`` on the strategy's equity index.

    Parameters
    ----------
    universe : Mapping[str, pd.Series]
        Closes of the run's symbols in USD, stamped when known (bar end), tz-aware; closes before
        ``index[0]`` are the momentum's formation period.
    benchmark, bond : tuple[str, pd.Series]
        (symbol, closes) of the buy-and-hold symbol (the 60 % side) and of the bond (the 40 %).
    starting_cash : float
        USD.
    index : pd.DatetimeIndex
        The strategy's equity index.
    momentum_top : int, default 2
        Symbols the momentum benchmark holds, ``1 <= momentum_top <= len(universe)``.

    Returns
    -------
    list[tuple[BenchmarkCurve, dict]]
        Buy and hold (first: the primary), equal weight, 60/40, momentum; each with the extra keys
        of its JSON entry (the primary's and the bond's :func:`coverage` of the period, with their
        first and last close; the momentum's monthly holdings).

    Raises
    ------
    BenchmarkError
        If ``momentum_top`` is out of range, or the primary benchmark has no close in the run's
        period (coverage 0: a verdict against it would compare with cash or a flat line).
    ValueError
        For invalid closes, cash or index (:func:`research.benchmark.buy_and_hold`).
    """
    if not 1 <= momentum_top <= len(universe):
        raise BenchmarkError(f"--momentum-top {momentum_top}: must be between 1 and the {len(universe)} symbols "
                             f"of the run ({', '.join(universe)})")
    closes = dict(universe)
    symbol, close = benchmark
    bond_symbol, bond_close = bond
    primary_known = close.dropna()
    primary_coverage = coverage(close, index)
    if primary_coverage <= 0.0:
        span = (f"its closes run {_iso(primary_known.index.min())} to {_iso(primary_known.index.max())}"
                if len(primary_known) else "it has no close")
        raise BenchmarkError(f"--benchmark {symbol}: no data in the run's period {_iso(index[0]) if len(index) else '?'}"
                             f" to {_iso(index[-1]) if len(index) else '?'} ({span}); pass bars of {symbol} that "
                             "cover the run with --data FILE, or choose another --benchmark")
    hold = benchmark_curve(symbol, {symbol: close}, starting_cash, index)
    equal = benchmark_curve(EQUAL_WEIGHT, closes, starting_cash, index)
    assert hold is not None and equal is not None
    mix = sixty_forty_curve(symbol, close, bond_symbol, bond_close, starting_cash, index)
    momentum = momentum_curve(closes, starting_cash, index, top=momentum_top)
    picks = momentum_picks(closes, index, top=momentum_top)
    invested = next((t for t, held in picks if held), None)
    bond_known = bond_close.dropna()
    return [
        (hold, {"symbol": symbol, "coverage": primary_coverage, "first": _iso(primary_known.index.min()),
                "last": _iso(primary_known.index.max())}),
        (equal, {"symbols": list(closes)}),
        (mix, {"stock": symbol, "bond": bond_symbol, "stock_weight": 0.6, "bond_coverage": coverage(bond_close, index),
               "bond_first": _iso(bond_known.index.min()) if len(bond_known) else None,
               "bond_last": _iso(bond_known.index.max()) if len(bond_known) else None}),
        (momentum, {"top": momentum_top, "lookback_months": 12, "skip_months": 1, "first_invested": _iso(invested),
                    "holdings": [{"time": _iso(t), "symbols": list(held)} for t, held in picks]}),
    ]


def _iso(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return str(pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))


def monthly_table(curves: Mapping[str, pd.Series]) -> pd.DataFrame:
    """Return each curve's UTC calendar-month returns side by side.

    Returns
    -------
    pd.DataFrame
        Index: months as ``"YYYY-MM"`` strings (named ``month``, ascending); one column per curve
        (fractions; NaN where a curve has no return that month).

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-01", "2024-01-31", "2024-02-29"], tz="UTC")
    >>> monthly_table({"a": pd.Series([100.0, 110.0, 121.0], index=idx)}).round(4)["a"].tolist()
    [0.1, 0.1]
    """
    columns = {}
    for name, equity in curves.items():
        table = monthly_returns(equity)
        long = table.stack().dropna()
        long.index = [f"{int(y):04d}-{int(m):02d}" for y, m in long.index]
        columns[name] = long
    frame = pd.DataFrame(columns).sort_index()
    frame.index.name = "month"
    return frame


@dataclass(frozen=True)
class Comparison:
    """A run against its benchmarks: what ``benchmark.json``, the CSVs and the report show.

    Attributes
    ----------
    run_id, strategy : str
        The run and its strategy id.
    equity : pd.Series
        The strategy's equity, USD, bar-end UTC index.
    stats : CurveStats
        The strategy's statistics.
    periods_per_year : float
        Daily periods per year every annualised figure uses.
    benchmarks : tuple[BenchmarkResult, ...]
        The primary (buy and hold) first.
    favourable : bool
        See :func:`favourable`.
    favourable_reason : str
        The rule and the figures it was decided on.
    monthly : pd.DataFrame
        :func:`monthly_table` of the strategy and every benchmark.
    """

    run_id: str
    strategy: str
    equity: pd.Series
    stats: CurveStats
    periods_per_year: float
    benchmarks: tuple[BenchmarkResult, ...]
    favourable: bool
    favourable_reason: str
    monthly: pd.DataFrame

    @property
    def primary(self) -> BenchmarkResult:
        """The buy-and-hold benchmark the verdict is against."""
        return self.benchmarks[0]

    @property
    def primary_coverage(self) -> float | None:
        """:func:`coverage` of the run's period by the primary benchmark's closes (``None`` when
        the curves were not built by :func:`build_benchmarks`)."""
        value = self.primary.extra.get("coverage")
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        """Return the ``benchmark.json`` document (NaN and inf as ``None``)."""
        def entry(stats: CurveStats) -> dict[str, Any]:
            return asdict(stats)

        benchmarks = {}
        for b in self.benchmarks:
            benchmarks[b.curve.name] = {"label": b.curve.label, "rule": b.curve.rule, **entry(b.stats),
                                        **asdict(b.versus), **b.extra}
        index = pd.DatetimeIndex(self.equity.index)
        doc = {"run_id": self.run_id, "strategy_id": self.strategy, "primary": self.primary.curve.name,
               "start": _iso(index[0]), "end": _iso(index[-1]), "primary_coverage": self.primary_coverage,
               "periods_per_year": self.periods_per_year,
               "strategy": entry(self.stats), "benchmarks": benchmarks, "favourable": self.favourable,
               "favourable_reason": self.favourable_reason, "costs": NO_COSTS,
               "win_rate_months_rule": "share of UTC calendar months with a return > 0 (first and last may be "
                                       "partial)",
               "alpha_rule": "CAPM regression intercept of daily returns x periods_per_year (risk-free rate 0); "
                             "alpha_compounded = (1 + intercept) ** periods_per_year - 1"}
        return json_safe(doc)


def compare(run_id: str, strategy: str, equity: pd.Series,
            benchmarks: Sequence[tuple[BenchmarkCurve, dict[str, Any]]]) -> Comparison:
    """Compare ``equity`` with ``benchmarks`` (the first is the primary one).

    Parameters
    ----------
    run_id, strategy : str
        The run and its strategy id.
    equity : pd.Series
        The strategy's equity, USD, on the index the benchmarks were valued on.
    benchmarks : Sequence[tuple[BenchmarkCurve, dict]]
        :func:`build_benchmarks`' result (or any curves with the extra keys of their entries).

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        If ``benchmarks`` is empty or a curve fails the checks of :func:`compute_metrics`.
    """
    if not benchmarks:
        raise ValueError("benchmarks is empty: need at least the primary benchmark")
    ppy = compute_metrics(equity).periods_per_year
    stats = curve_stats(equity)
    results = tuple(BenchmarkResult(curve, curve_stats(curve.equity), versus(equity, curve.equity, ppy), dict(extra))
                    for curve, extra in benchmarks)
    ok, reason = favourable(stats, results[0].stats, results[0].versus, results[0].curve.label)
    caution = partial_coverage_note(results[0])
    if caution:
        reason = f"{reason} {caution}"
    monthly = monthly_table({STRATEGY: equity, **{r.curve.name: r.curve.equity for r in results}})
    return Comparison(run_id=run_id, strategy=strategy, equity=equity, stats=stats, periods_per_year=ppy,
                      benchmarks=results, favourable=ok, favourable_reason=reason, monthly=monthly)


def partial_coverage_note(primary: BenchmarkResult) -> str:
    """The caution a verdict carries when the primary benchmark's closes span less than
    :data:`FULL_COVERAGE` of the run's period ("" otherwise, or when its coverage is not known)."""
    share = primary.extra.get("coverage")
    if share is None or share >= FULL_COVERAGE:
        return ""
    first, last = primary.extra.get("first"), primary.extra.get("last")
    span = f" ({first} to {last})" if first and last else ""
    return (f"Caution: {primary.curve.label} has closes for only {share * 100:.1f}% of the run's period{span}: "
            "before its first close it is cash, after its last it is held flat, so the comparison is weaker.")


def write_comparison_files(comparison: Comparison, out_dir: str | Path) -> list[str]:
    """Write ``benchmark.json``, ``benchmark_equity.csv`` (time UTC, strategy and each benchmark,
    USD) and ``monthly_returns.csv`` (month, strategy and each benchmark, fractions) into
    ``out_dir`` (created if needed); return the file names written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / BENCHMARK_JSON).write_text(json.dumps(comparison.to_json(), indent=2, allow_nan=False) + "\n")
    index = pd.DatetimeIndex(comparison.equity.index).tz_convert("UTC")
    curves = pd.DataFrame({STRATEGY: comparison.equity.to_numpy(dtype=float),
                           **{b.curve.name: b.curve.equity.to_numpy(dtype=float) for b in comparison.benchmarks}})
    curves.insert(0, "time", index.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    curves.to_csv(out / EQUITY_CSV, index=False)
    comparison.monthly.to_csv(out / MONTHLY_CSV)
    return [BENCHMARK_JSON, EQUITY_CSV, MONTHLY_CSV]
