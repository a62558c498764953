"""Out-of-sample replays of a fold's chosen set, and the stitched out-of-sample curve.

Out of sample the chosen set is replayed from the start of its training window (at most ``train``
back) with its orders blocked until the OOS start (:class:`TradeFrom`): indicators, the regime
detector and learners are warm, as a live node started with history would be, but every trade
happens out of sample and the equity is flat until then. Each fold starts flat with the starting
cash; :func:`stitch` chains the folds' returns (a position open at a fold's end is valued at its
mark, as if sold there without costs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtest.replay import ReplayResult
from backtest.spec import RunSpec
from core.events import Bar
from core.intents import OrderIntent
from research.metrics import compute_metrics
from research.optimize import METRIC_KEYS, StudyData
from research.rerun import quiet_replay
from research.wf_windows import FoldWindow, slice_series
from strategies.registry import build_strategy
from strategies.wrapper import WrappedStrategy

__all__ = ["OosRun", "TradeFrom", "cut_curve", "replay_oos", "stitch", "window_metrics"]


class TradeFrom(WrappedStrategy):
    """A strategy that sees every bar but trades only from ``start_ns`` on.

    Every bar goes to ``inner`` (its indicators and state stay warm); its intents pass only for
    bars starting at or after ``start_ns`` (epoch ns UTC), so a replay that begins earlier warms up
    on past bars and trades none of them.

    Parameters
    ----------
    inner
        The strategy (anything with ``strategy_id``, ``params``, ``uses_learner``, ``on_bar``).
    start_ns
        First bar start that may trade.
    """

    def __init__(self, inner: Any, start_ns: int) -> None:
        super().__init__(inner)
        self.start_ns = start_ns

    def on_bar(self, ctx: Any, bar: Bar) -> Sequence[OrderIntent]:
        intents = self.inner.on_bar(ctx, bar)
        return intents if bar.ts_event >= self.start_ns else ()


@dataclass(frozen=True)
class OosRun:
    """A fold's out-of-sample run over part of its test window; ``error`` says why it stayed in
    cash (empty when it traded)."""

    equity: pd.Series  # USD, from the OOS start (first point = the value then)
    metrics: dict[str, Any]
    trades: list[Any]
    error: str = ""


def window_metrics(equity: pd.Series, result: ReplayResult | None, start: int, end: int) -> dict[str, Any]:
    """:data:`research.optimize.METRIC_KEYS` of ``equity`` (USD) with the round trips, fills and
    exposure of ``result`` released in ``[start, end]`` (epoch ns UTC); ``result`` None: no trade."""
    trades = [t for t in (result.trades if result is not None else []) if start <= t.ts_init <= end]
    fills = [f for f in (result.fills if result is not None else []) if start <= f.ts_init <= end]
    exposure = None
    if result is not None:
        keep = (result.equity_ts > start) & (result.equity_ts <= end)
        exposure = pd.Series(result.gross_exposure[keep] / result.equity[keep])
    m = compute_metrics(equity, trades=pd.DataFrame({"pnl": [t.pnl for t in trades]}),
                        fills=pd.DataFrame({"quantity": [f.quantity for f in fills], "price": [f.price for f in fills]}),
                        exposure=exposure).to_dict()
    return {k: m.get(k) for k in METRIC_KEYS}


def cut_curve(equity_ts: np.ndarray, equity: np.ndarray, start: int, end: int, cash: float) -> pd.Series:
    """The curve on ``(start, end]`` with its value at ``start`` (the last point by then, else
    ``cash``) as the first point."""
    before = int(np.searchsorted(equity_ts, start, side="right"))
    stop = int(np.searchsorted(equity_ts, end, side="right"))
    anchor = float(equity[before - 1]) if before > 0 else cash
    ts = np.concatenate(([start], equity_ts[before:stop]))
    values = np.concatenate(([anchor], equity[before:stop]))
    if len(ts) == 1:  # no bar in the window: flat
        ts, values = np.array([start, end]), np.array([anchor, anchor])
    return pd.Series(values, index=pd.to_datetime(ts, unit="ns", utc=True), name="equity")


def replay_oos(data: StudyData, spec: RunSpec, timeframe: str | None, window: FoldWindow, warm_start: int,
               strategy: Any = None) -> tuple[OosRun, OosRun]:
    """Replay on ``[warm_start, oos_end]``, trading from ``oos_start``; return the fold's run (whole
    test window) and its stitched part (to ``stitch_end``). ``strategy`` defaults to the set of
    ``spec`` behind :class:`TradeFrom`; a replay that raises leaves the fold in cash with the
    reason in :attr:`OosRun.error`."""
    cash = spec.replay.starting_cash
    series = [s for s in (slice_series(one, warm_start, window.oos_end) for one in data.get(timeframe)) if len(s)]
    try:
        if strategy is None:
            strategy = TradeFrom(build_strategy(spec.strategy, spec.params), window.oos_start)
        result, crash = quiet_replay(series, spec, f"oos-{window.index}", strategy)
        error = crash or ""
    except Exception as exc:  # a fold that cannot replay stays in cash and says why
        reason = f"{type(exc).__name__}: {exc}"
        flat = [cut_curve(np.array([], dtype=np.int64), np.array([]), window.oos_start, end, cash)
                for end in (window.oos_end, window.stitch_end)]
        return (OosRun(flat[0], window_metrics(flat[0], None, window.oos_start, window.oos_end), [], reason),
                OosRun(flat[1], {}, [], reason))
    runs = []
    for end in (window.oos_end, window.stitch_end):
        equity = cut_curve(result.equity_ts, result.equity, window.oos_start, end, cash)
        trades = [t for t in result.trades if window.oos_start <= t.ts_init <= end]
        runs.append(OosRun(equity, window_metrics(equity, result, window.oos_start, end), trades, error))
    return runs[0], runs[1]


def stitch(segments: Sequence[tuple[int, pd.Series]], cash: float) -> tuple[pd.Series, pd.Series]:
    """Chain the segments' returns from ``cash``: (equity USD, fold index) on one UTC index."""
    values: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    folds: list[np.ndarray] = []
    capital, last = cash, None
    for index, seg in segments:
        ts = pd.DatetimeIndex(seg.index).asi8
        growth = seg.to_numpy() / float(seg.iloc[0])
        keep = ts > last if last is not None else np.ones(len(ts), dtype=bool)
        values.append(capital * growth[keep])
        stamps.append(ts[keep])
        folds.append(np.full(int(keep.sum()), index))
        capital *= float(growth[-1])
        last = int(ts[-1]) if len(ts) else last
    index_ = pd.to_datetime(np.concatenate(stamps), unit="ns", utc=True)
    return (pd.Series(np.concatenate(values), index=index_, name="equity"),
            pd.Series(np.concatenate(folds), index=index_, name="fold"))
