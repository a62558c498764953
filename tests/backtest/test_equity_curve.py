"""backtest.replay.EquityCurve and Engine.handle_bars: what a replay records, however long it runs."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.sinks import MemoryAlertSink
from backtest.replay import EquityCurve, run_replay
from backtest.spec import RunSpec
from core.events import Bar
from tests.support import STRATEGY_PARAMS, load_two_symbols, paper_kernel
from strategies.registry import build_strategy
from state.memory import MemoryStore


def test_points_beyond_the_allocated_room_are_kept_and_equal_timestamps_collapse() -> None:
    curve = EquityCurve(capacity=2)
    for k in range(5):
        curve(k * 10, 100.0 + k, 200.0 + k, 1.0 * k)
        curve(k * 10, 100.5 + k, 200.5 + k, 0.5 + k)  # a second symbol at the same time: the last wins
    assert len(curve) == 5 and curve.ts.tolist() == [0, 10, 20, 30, 40]
    assert curve.cash.tolist() == [100.5, 101.5, 102.5, 103.5, 104.5]
    assert curve.equity.tolist() == [200.5, 201.5, 202.5, 203.5, 204.5]
    assert curve.gross.tolist() == [0.5, 1.5, 2.5, 3.5, 4.5]
    ts, cash, equity, gross = curve.arrays()
    assert ts.dtype == np.int64 and equity.dtype == np.float64 and len(ts) == len(gross) == 5


def test_a_replay_allocates_its_curve_once_and_hands_over_exactly_its_points() -> None:
    series = load_two_symbols()
    result = run_replay(series, RunSpec(strategy="sma_cross", params=STRATEGY_PARAMS["sma_cross"]),
                        store=MemoryStore(), alerts=MemoryAlertSink())
    stamps = np.unique(np.concatenate([s.ts_init for s in series]))
    assert result.equity_ts.tolist() == stamps.tolist()  # one point per bar end time, none left unused
    assert len(result.cash) == len(result.equity) == len(result.gross_exposure) == len(stamps)


def test_handle_bars_contains_a_failing_step_and_refuses_what_is_not_a_bar() -> None:
    kernel, _, alerts, _ = paper_kernel(build_strategy("sma_cross", STRATEGY_PARAMS["sma_cross"]))
    engine = kernel.engine
    calls = []

    class FlakyVenue:
        idle = False  # core.ports.SimulatedVenue

        def on_bar(self, bar: Bar) -> tuple[()]:
            calls.append(bar)
            if len(calls) == 2:
                raise RuntimeError("a bug in a component")
            return ()

    engine.venue = FlakyVenue()
    bars = [Bar("X", i * 60_000_000_000, (i + 1) * 60_000_000_000, 10.0, 10.0, 10.0, 10.0, 100.0)
            for i in range(4)]
    assert engine.handle_bars(iter(bars)) == 4
    assert len(calls) == 4 and engine.broker_event_errors == 1  # contained, the later bars still handled
    assert any(title == "engine error on Bar" for _, title, _, _ in alerts.alerts)
    with pytest.raises(TypeError, match="no handler"):
        engine.handle_bars([bars[0], "not a bar"])  # type: ignore[list-item,unused-ignore]
