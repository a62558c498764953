"""The replay node: equity curve and store snapshots, progress, input checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from backtest.replay import ReplayConfig
from backtest.sources import BarSeries
from core.time import NANOS_PER_DAY, NANOS_PER_MINUTE
from tests.support import replay


def test_one_equity_point_per_timestamp_and_one_store_snapshot_per_day(two_symbols):
    result, store, _ = replay(two_symbols, "sma_cross")
    all_ts = np.unique(np.concatenate([s.ts_init for s in two_symbols]))
    np.testing.assert_array_equal(result.equity_ts, all_ts)  # two symbols share timestamps: one point each
    days = pd.Series(result.equity, index=result.equity_ts // NANOS_PER_DAY)
    last_of_day = days.groupby(level=0).last()
    assert [s.ts // NANOS_PER_DAY for s in store.equity] == list(last_of_day.index)
    np.testing.assert_allclose([s.equity for s in store.equity], last_of_day.to_numpy())
    assert store.equity[-1].ts == result.equity_ts[-1]


def test_progress_is_reported_up_to_the_total(two_symbols):
    from alerts.sinks import MemoryAlertSink
    from backtest.replay import run_replay
    from backtest.spec import RunSpec
    from state.memory import MemoryStore

    seen: list[int] = []
    run_replay(two_symbols, RunSpec(replay=ReplayConfig(progress_every=1000)), store=MemoryStore(),
               alerts=MemoryAlertSink(), progress=seen.append)
    total = sum(len(s) for s in two_symbols)
    assert seen[-1] == total and seen[:3] == [1000, 2000, 3000]


def test_mixed_timeframes_and_empty_input_are_refused(two_symbols):
    spy = two_symbols[0]
    minute = BarSeries("M", NANOS_PER_MINUTE, spy.ts_event, spy.open, spy.high, spy.low, spy.close, spy.volume)
    with pytest.raises(ValueError, match="mix timeframes"):
        replay([spy, minute], "sma_cross")
    with pytest.raises(ValueError, match="no bar series"):
        replay([], "sma_cross")


def test_replay_config_is_validated():
    with pytest.raises(ValidationError, match="starting_cash"):
        ReplayConfig(starting_cash=0)
    with pytest.raises(ValidationError, match="invalid timeframe"):
        ReplayConfig(snapshot_interval="daily")
