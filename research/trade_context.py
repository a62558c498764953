"""What each closed trade looked like when it was entered, and what happened while it was open:
the per-trade context shared by ``tradingd attribution`` and ``tradingd journal``.

One row per closed round trip of a :class:`~research.finished_run.FinishedRun` (its ``trades``)
with:

* the **entry decision**: the decision (``decisions.csv``) whose ``client_order_id`` is the
  trade's first entry order (``entry_order_ids``); for a run read from the database (no order
  links), the last *submitted* decision of that symbol and side at or before the entry fill. Its
  ``time`` (bar end), ``confidence`` (signal strength in [0, 1], NaN when the strategy gave none),
  ``regime`` (``"none"`` when the detector was off) and ``strategy_id``;
* **market context known at the decision** (bars whose end is at or before the decision time; the
  entry fill's own bar is never used): ``volatility`` = sample standard deviation (ddof 1) of the
  last :data:`VOLATILITY_BARS` close-to-close returns of the symbol, a fraction per bar (not
  annualised); ``benchmark_trend`` = ``"above"`` when the benchmark's (SPY, else the first symbol)
  last close is above the mean of its last :data:`TREND_BARS` closes, ``"below"`` when at or
  under it, ``"unknown"`` with fewer bars;
* the **path while open**: ``mae`` / ``mfe``, the maximum adverse / favourable excursion (Sweeney
  1996, "Maximum Adverse Excursion"), from the lows and highs of the symbol's bars that started at
  or after the entry fill and before the exit fill, and the exit fill price, as fractions of the
  entry price. Sign convention: ``mae <= 0 <= mfe`` for both sides; a long's ``mae = min(0, min
  low / entry - 1)``, ``mfe = max(0, max high / entry - 1)``; a short's ``mae = min(0, 1 - max
  high / entry)``, ``mfe = max(0, 1 - min low / entry)``. Market orders fill at a bar's open, so
  the entry bar's whole range happened after the entry; for an order filled inside a bar that
  bar's whole range counts (a conservative bound). ``holding_bars`` counts those bars;
* ``exit_type`` (:data:`EXIT_TYPES`, from the raw ``exit_reason`` by :func:`exit_type`),
  ``asset_class`` (``"crypto"`` on the 24/7 calendar of :mod:`backtest.calendar`, else
  ``"equity"``), ``entry_hour`` and ``weekday`` of the entry fill in the exchange's local time
  (New York for XNYS, UTC for 24/7), and ``model``: the online learner the run used
  (``run_info["signals"]["learner"]``), ``"none"`` without one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtest.calendar import ALWAYS_OPEN, DEFAULT_CALENDAR, calendar_for
from backtest.sources import BarSeries
from research.finished_run import FinishedRun, RunLoadError
from research.frames import ID_SEPARATOR

__all__ = ["CONTEXT_COLUMNS", "EXIT_TYPES", "TREND_BARS", "VOLATILITY_BARS", "WEEKDAYS", "TradeContext",
           "asset_class", "benchmark_symbol", "build_trade_context", "excursions", "exit_type", "local_zone",
           "model_version"]

VOLATILITY_BARS = 20
"""Close-to-close returns in the volatility-at-entry estimate."""
TREND_BARS = 50
"""Closes in the benchmark's moving average for the trend at entry."""
EXIT_TYPES = ("stop", "target", "trailing", "time", "signal", "halt/flatten", "other")
"""Exit categories, in report order."""
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CONTEXT_COLUMNS = [
    "trade_id", "symbol", "side", "quantity", "entry_time", "exit_time", "entry_price", "exit_price", "pnl",
    "return", "commission", "exit_reason", "exit_type", "decision_time", "decision_link", "confidence", "regime",
    "volatility", "benchmark_trend", "mae", "mfe", "holding_bars", "holding_time_s", "asset_class", "entry_hour",
    "weekday", "strategy", "model"]
"""Columns of :attr:`TradeContext.trades` (``side`` is ``long`` or ``short``; ``decision_link`` is
``order`` (linked by order id), ``last decision`` (the fallback) or ``none``)."""

# raw exit reasons of the built-in strategies and the engine -> exit type
_KNOWN_REASONS = {
    "stop_loss": "stop", "profit_target": "target", "trailing_stop": "trailing", "max_holding": "time",
    "sma_cross_up": "signal", "sma_cross_down": "signal", "ml_exit": "signal", "halt_flatten": "halt/flatten",
    "flatten": "halt/flatten",
}
# keyword rules for other strategies' free-text reasons, first match wins (trailing before stop)
_KEYWORDS = (("halt", "halt/flatten"), ("flatten", "halt/flatten"), ("trail", "trailing"), ("stop", "stop"),
             ("target", "target"), ("take_profit", "target"), ("take profit", "target"), ("profit", "target"),
             ("time", "time"), ("holding", "time"), ("expir", "time"), ("max_bars", "time"), ("signal", "signal"),
             ("cross", "signal"))


def exit_type(reason: str) -> str:
    """Return the exit type (one of :data:`EXIT_TYPES`) of a raw exit reason.

    The built-in reasons map exactly (``stop_loss`` -> stop, ``profit_target`` -> target,
    ``trailing_stop`` -> trailing, ``max_holding`` -> time, ``sma_cross_*`` / ``ml_exit`` ->
    signal, ``halt_flatten`` / ``flatten`` (the engine's) -> halt/flatten); any other text by
    keyword (halt, flatten, trail, stop, target/profit, time/holding/expiry, signal/cross), else
    ``"other"``.

    Examples
    --------
    >>> [exit_type(r) for r in ("stop_loss", "trailing_stop", "time exit", "ml_exit", "halt_flatten", "why")]
    ['stop', 'trailing', 'time', 'signal', 'halt/flatten', 'other']
    """
    text = str(reason).strip().lower()
    known = _KNOWN_REASONS.get(text)
    if known is not None:
        return known
    for word, kind in _KEYWORDS:
        if word in text:
            return kind
    return "other"


def asset_class(symbol: str, calendars: Mapping[str, str] | None = None) -> str:
    """Return ``"crypto"`` for a symbol on the 24/7 calendar, else ``"equity"``.

    Examples
    --------
    >>> asset_class("COINBASE_BTCUSD"), asset_class("SPY"), asset_class("XYZ", {"XYZ": "24/7"})
    ('crypto', 'equity', 'crypto')
    """
    return "crypto" if calendar_for(symbol, calendars) == ALWAYS_OPEN else "equity"


def local_zone(symbol: str, calendars: Mapping[str, str] | None = None) -> str:
    """Return the time zone of the exchange ``symbol`` trades on (UTC for 24/7 markets).

    Raises
    ------
    backtest.calendar.CalendarError
        If an override names a calendar exchange-calendars does not know.

    Examples
    --------
    >>> local_zone("SPY"), local_zone("BTCUSD")
    ('America/New_York', 'UTC')
    """
    name = calendar_for(symbol, calendars)
    if name == ALWAYS_OPEN:
        return "UTC"
    if name == DEFAULT_CALENDAR:  # no exchange-calendars import for the usual case
        return "America/New_York"
    from backtest.calendar import exchange_calendar

    return str(exchange_calendar(name).tz)


def benchmark_symbol(symbols: Sequence[str]) -> str:
    """Return the benchmark of the context and the factor split: SPY when traded, else the first symbol.

    Raises
    ------
    ValueError
        If ``symbols`` is empty.

    Examples
    --------
    >>> benchmark_symbol(["AAPL", "SPY"]), benchmark_symbol(["COINBASE_BTCUSD"])
    ('SPY', 'COINBASE_BTCUSD')
    """
    if not symbols:
        raise ValueError("no symbols: the run's bars are empty")
    return "SPY" if "SPY" in symbols else symbols[0]


def model_version(run: FinishedRun) -> str:
    """Return the online learner the run used (``"logistic (horizon 5 bars, threshold 0, seed 42)"``), or ``"none"``.

    A run used one when ``[signals] learner_enabled`` was set or its strategy reads predictions
    (``Strategy.uses_learner``; the kernel then turns the learner on).
    """
    signals = run.run_info.get("signals") or {}
    enabled = bool(signals.get("learner_enabled"))
    if not enabled:
        try:
            from strategies.registry import resolve_strategy

            enabled = bool(resolve_strategy(run.strategy).uses_learner)
        except Exception:  # a plug-in strategy no longer importable: say what the run recorded
            enabled = False
    learner = signals.get("learner") or {}
    if not enabled or not learner:
        return "none"
    return (f"{learner.get('model', 'learner')} (horizon {learner.get('horizon_bars', '?')} bars, threshold "
            f"{learner.get('label_threshold', 0):g}, seed {learner.get('seed', '?')})")


def excursions(long: bool, entry_price: float, highs: np.ndarray, lows: np.ndarray,
               exit_price: float) -> tuple[float, float]:
    """Return ``(mae, mfe)`` of one trade as fractions of the entry price (``mae <= 0 <= mfe``).

    Parameters
    ----------
    long : bool
        True for a long trade, False for a short.
    entry_price, exit_price : float
        Average entry and exit fill prices, USD per share.
    highs, lows : np.ndarray
        Highs and lows (USD) of the bars held (may be empty: the exit price alone is the path).

    Examples
    --------
    >>> highs, lows = np.array([100.0, 90.0]), np.array([70.0, 75.0])
    >>> excursions(True, 80.0, highs, lows, 85.0), excursions(False, 80.0, highs, lows, 85.0)
    ((-0.125, 0.25), (-0.25, 0.125))
    """
    high = max(float(highs.max()) if len(highs) else exit_price, exit_price)
    low = min(float(lows.min()) if len(lows) else exit_price, exit_price)
    if long:
        return min(0.0, low / entry_price - 1.0), max(0.0, high / entry_price - 1.0)
    return min(0.0, 1.0 - high / entry_price), max(0.0, 1.0 - low / entry_price)


@dataclass(frozen=True)
class TradeContext:
    """The closed trades of a run with their context.

    Attributes
    ----------
    trades : pd.DataFrame
        One row per closed trade, columns :data:`CONTEXT_COLUMNS` (times UTC, prices USD per
        share, ``pnl`` USD net of commission, ``return`` / ``volatility`` / ``mae`` / ``mfe``
        fractions, ``holding_time_s`` seconds, ``entry_hour`` 0-23 exchange-local).
    benchmark : str
        The symbol whose trend is ``benchmark_trend``.
    timeframe_ns : int
        The run's bar length, ns (what ``holding_bars`` counts).
    has_confidence : bool
        Whether any entry decision carried a confidence.
    """

    trades: pd.DataFrame
    benchmark: str
    timeframe_ns: int
    has_confidence: bool


def _ns(times: pd.Series) -> np.ndarray:
    """Epoch ns (int64) of tz-aware times."""
    return pd.to_datetime(times, utc=True).to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _first_id(ids: Any) -> str:
    text = "" if ids is None or (isinstance(ids, float) and np.isnan(ids)) else str(ids)
    return text.split(ID_SEPARATOR)[0] if text else ""


def _entry_decisions(trades: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """Per trade: the entry decision's time, link kind, confidence, regime and strategy id."""
    n = len(trades)
    out = pd.DataFrame({"decision_time": pd.Series([pd.NaT] * n, dtype="datetime64[ns, UTC]"),
                        "decision_link": ["none"] * n, "confidence": np.full(n, np.nan), "regime": ["none"] * n,
                        "strategy": [""] * n})
    if n == 0 or len(decisions) == 0:
        return out
    submitted = decisions[decisions["outcome"].astype(str) == "submitted"].reset_index(drop=True)
    order_ids = submitted["client_order_id"].astype(str).tolist()
    by_order = {cid: i for i, cid in enumerate(order_ids) if cid}
    times = pd.to_datetime(submitted["time"], utc=True)
    stamps = _ns(times)
    confidence = pd.to_numeric(submitted["confidence"], errors="coerce").to_numpy(dtype=float)
    regimes = ["" if pd.isna(r) else str(r) for r in submitted["regime"].tolist()]
    strategies = submitted["strategy_id"].astype(str).tolist()
    grouped: dict[tuple[str, str], list[int]] = {}  # (symbol, side) -> row numbers
    for i, key in enumerate(zip(submitted["symbol"].astype(str).tolist(), submitted["side"].astype(str).tolist())):
        grouped.setdefault(key, []).append(i)
    groups = {key: np.array(rows)[np.argsort(stamps[rows], kind="stable")] for key, rows in grouped.items()}
    entry_ids = (trades["entry_order_ids"].tolist() if "entry_order_ids" in trades else [""] * n)
    entry_ns = _ns(trades["entry_time"])
    for k, (ids, symbol, side) in enumerate(zip(entry_ids, trades["symbol"].astype(str).tolist(),
                                                trades["side"].astype(str).tolist())):
        row = by_order.get(_first_id(ids))
        link = "order"
        if row is None:  # no order link (a database run): the last submitted decision before the entry
            rows = groups.get((symbol, "buy" if side in ("buy", "long") else "sell"))
            if rows is not None:
                position = int(np.searchsorted(stamps[rows], entry_ns[k], side="right")) - 1
                row = int(rows[position]) if position >= 0 else None
            link = "last decision"
        if row is None:
            continue
        out.at[k, "decision_time"] = times.iloc[row]
        out.at[k, "decision_link"] = link
        out.at[k, "confidence"] = confidence[row]
        out.at[k, "regime"] = regimes[row] or "none"
        out.at[k, "strategy"] = strategies[row]
    return out


def _known_index(ts_init: np.ndarray, when: np.ndarray) -> np.ndarray:
    """Index of the last bar whose end is at or before each time (-1: none yet)."""
    return np.searchsorted(ts_init, when, side="right") - 1


def _rolling_volatility(close: np.ndarray) -> np.ndarray:
    returns = pd.Series(close).pct_change()
    return returns.rolling(VOLATILITY_BARS, min_periods=VOLATILITY_BARS).std(ddof=1).to_numpy()


def build_trade_context(run: FinishedRun, bars: Sequence[BarSeries]) -> TradeContext:
    """Return every closed trade of ``run`` with its context (see the module docstring).

    Parameters
    ----------
    run : FinishedRun
        The run (trades, decisions, run_info).
    bars : Sequence[BarSeries]
        The run's bars (:func:`research.finished_run.load_run_bars`), every traded symbol included.

    Returns
    -------
    TradeContext

    Raises
    ------
    research.finished_run.RunLoadError
        If ``bars`` is empty or lacks a symbol the run traded.
    """
    if not bars:
        raise RunLoadError(f"run {run.run_id}: no bars loaded; the context needs the run's data (--data)")
    series = {s.symbol: s for s in bars}
    trades = run.trades.reset_index(drop=True)
    missing = sorted(set(trades["symbol"].astype(str)) - set(series))
    if missing:
        raise RunLoadError(f"run {run.run_id} traded {', '.join(missing)} but the bars given hold only "
                           f"{', '.join(series)}; pass the run's data files with --data")
    benchmark = benchmark_symbol([s.symbol for s in bars])
    calendars = (run.run_info.get("fill") or {}).get("calendars") or None
    timeframe_ns = int(bars[0].timeframe_ns)
    n = len(trades)
    decided = _entry_decisions(trades, run.decisions)
    entry = pd.to_datetime(trades["entry_time"], utc=True)
    exit_ = pd.to_datetime(trades["exit_time"], utc=True)
    # context is read at the decision, or (no decision found) at the entry fill: bars ended by then
    when = decided["decision_time"].where(decided["decision_time"].notna(), entry)
    when_ns, entry_ns, exit_ns = _ns(when), _ns(entry), _ns(exit_)

    bench = series[benchmark]
    bench_close = pd.Series(bench.close)
    above = (bench_close > bench_close.rolling(TREND_BARS, min_periods=TREND_BARS).mean()).to_numpy()
    enough = np.arange(len(bench_close)) >= TREND_BARS - 1
    known = _known_index(bench.ts_init, when_ns)
    at = np.maximum(known, 0)
    ok = (known >= 0) & enough[at] if len(bench) else np.zeros(n, dtype=bool)
    trend = np.where(ok, np.where(above[at] if len(bench) else ok, "above", "below"), "unknown")

    volatility, mae, mfe, held = np.full(n, np.nan), np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64)
    hours, weekdays, classes = np.zeros(n, dtype=np.int64), np.empty(n, dtype=object), np.empty(n, dtype=object)
    side = trades["side"].astype(str).str.lower()
    long = side.isin(["buy", "long"]).to_numpy()
    entry_price = trades["entry_price"].to_numpy(dtype=float)
    exit_price = trades["exit_price"].to_numpy(dtype=float)
    for symbol, rows in trades.groupby(trades["symbol"].astype(str)).indices.items():
        s = series[str(symbol)]
        vol = _rolling_volatility(s.close)
        at = _known_index(s.ts_init, when_ns[rows])
        volatility[rows] = np.where(at >= 0, vol[np.maximum(at, 0)], np.nan) if len(s) else np.nan
        first = np.searchsorted(s.ts_event, entry_ns[rows], side="left")
        last = np.searchsorted(s.ts_event, exit_ns[rows], side="left")  # the exit fill's bar is not held
        for row, lo, hi in zip(rows, first, last):
            hi = max(int(hi), int(lo))
            held[row] = hi - lo
            mae[row], mfe[row] = excursions(bool(long[row]), float(entry_price[row]), s.high[lo:hi], s.low[lo:hi],
                                            float(exit_price[row]))
        local = entry.iloc[rows].dt.tz_convert(local_zone(str(symbol), calendars))
        hours[rows] = local.dt.hour.to_numpy()
        weekdays[rows] = [WEEKDAYS[d] for d in local.dt.day_of_week]
        classes[rows] = asset_class(str(symbol), calendars)

    frame = pd.DataFrame({
        "trade_id": trades["trade_id"].to_numpy() if "trade_id" in trades else np.arange(1, n + 1),
        "symbol": trades["symbol"].astype(str).to_numpy(), "side": np.where(long, "long", "short"),
        "quantity": trades["quantity"].astype(float).to_numpy(), "entry_time": entry, "exit_time": exit_,
        "entry_price": trades["entry_price"].astype(float).to_numpy(),
        "exit_price": trades["exit_price"].astype(float).to_numpy(), "pnl": trades["pnl"].astype(float).to_numpy(),
        "return": trades["return"].astype(float).to_numpy(),
        "commission": trades["commission"].astype(float).to_numpy(),
        "exit_reason": trades["exit_reason"].astype(str).to_numpy(),
        "exit_type": [exit_type(r) for r in trades["exit_reason"].astype(str)],
        "decision_time": decided["decision_time"], "decision_link": decided["decision_link"],
        "confidence": decided["confidence"], "regime": decided["regime"], "volatility": volatility,
        "benchmark_trend": trend, "mae": mae, "mfe": mfe, "holding_bars": held,
        "holding_time_s": ((exit_ - entry).dt.total_seconds()).to_numpy(), "asset_class": classes,
        "entry_hour": hours, "weekday": weekdays,
        "strategy": [s or run.strategy for s in decided["strategy"]], "model": model_version(run),
    }, columns=CONTEXT_COLUMNS)
    return TradeContext(frame, benchmark, timeframe_ns, bool(frame["confidence"].notna().any()))
