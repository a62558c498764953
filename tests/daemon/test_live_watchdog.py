"""The live node's staleness watchdog and bar aggregation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backtest.data import load_data
from backtest.merge import merge_bars
from core.enums import TradingState
from core.events import Bar, DataResumed, DataStale
from daemon.config import load_config
from daemon.live.app import open_session
from daemon.live.config import LiveConfig
from daemon.live.watchdog import StalenessWatchdog
from state.config import StoreConfig
from state.store import SqlStore

MIN = 60_000_000_000
T0 = 1_700_000_000 * 1_000_000_000
MINUTE_SPY = Path(__file__).resolve().parents[1] / "data" / "us_equity_1min" / "SPY.csv.gz"


def bar(symbol: str, i: int) -> Bar:
    ts = T0 + i * MIN
    return Bar(symbol, ts, ts + MIN, 100.0, 100.5, 99.5, 100.0, 1000.0)


def always_open(symbol: str):
    return lambda ts: True


def test_a_symbol_is_stale_after_n_open_periods_and_resumes_with_its_next_bar():
    dog = StalenessWatchdog(MIN, max_periods=3, is_open=always_open)
    assert dog.on_bar(bar("B", 0)) is None
    assert dog.check(bar("B", 0).ts_init + 3 * MIN) == []  # exactly the limit: not yet
    [stale] = dog.check(bar("B", 0).ts_init + 4 * MIN)
    assert isinstance(stale, DataStale) and stale.symbol == "B" and "no B bar" in stale.reason
    assert dog.check(bar("B", 0).ts_init + 9 * MIN) == []  # reported once
    resumed = dog.on_bar(bar("B", 10))
    assert isinstance(resumed, DataResumed) and dog.stale == set()


def test_closed_market_time_never_counts():
    dog = StalenessWatchdog(MIN, max_periods=2, is_open=lambda symbol: (lambda ts: False))
    dog.on_bar(bar("B", 0))
    assert dog.check(bar("B", 0).ts_init + 1_000 * MIN) == []


def test_the_new_york_calendar_counts_only_session_minutes():
    from daemon.live.watchdog import exchange_open
    is_open = exchange_open("SPY")
    saturday_noon = 1_700_913_600 * 1_000_000_000  # 2023-11-25T12:00Z
    tuesday_1530z = 1_700_580_600 * 1_000_000_000  # 2023-11-21T15:30Z = 10:30 New York
    assert not is_open(saturday_noon) and is_open(tuesday_1530z)


class _Bars:
    name = "bars"

    def __init__(self, bars: list[Bar], pause_s: float = 0.0) -> None:
        self.bars, self.pause_s = bars, pause_s

    async def run(self, enqueue) -> None:
        for b in self.bars:
            await enqueue(b)
            await asyncio.sleep(self.pause_s)


def _session(tmp_path, live, feeds, **overrides):
    cfg = load_config(None, {"state.database_url": f"sqlite:///{tmp_path / 's.db'}", "strategy.name": "sma_cross",
                             "strategy.params": {"fast": 3, "slow": 6}, **overrides})
    return open_session(cfg, live, feeds=feeds)


def test_the_stale_data_breaker_trips_and_clears_through_the_engine(tmp_path, monkeypatch):
    import daemon.live.app as app

    monkeypatch.setattr(app, "StalenessWatchdog",
                        lambda tf, periods: StalenessWatchdog(tf, periods, is_open=always_open))
    bars = [bar("A", i) for i in range(40)] + [bar("B", i) for i in range(3)] + [bar("B", 40)]
    bars.sort(key=lambda b: (b.ts_init, b.symbol))
    live = LiveConfig(account="w", feed="mqtt", clock="bars", tick=0.005, stale_periods=5)
    session = _session(tmp_path, live, [_Bars(bars, pause_s=0.01)])
    asyncio.run(session.node.run(stop_when_feeds_end=True, install_signals=False))
    session.close()
    with SqlStore(StoreConfig(database_url=f"sqlite:///{tmp_path / 's.db'}"), account="w") as store:
        history = [(h["previous"], h["state"], h["reason"]) for h in store.trading_state_history()]
    assert (TradingState.ACTIVE, TradingState.REDUCING) == history[0][:2] and "no B bar" in history[0][2]
    assert history[-1][:2] == (TradingState.REDUCING, TradingState.ACTIVE)
    assert "bars of B resumed" in history[-1][2]


def test_live_aggregation_builds_the_bars_replay_builds(tmp_path):
    minutes = load_data([MINUTE_SPY])
    hourly = load_data([MINUTE_SPY], timeframe="1h")
    live = LiveConfig(account="agg", feed="mqtt", clock="bars", tick=0.005, stale_periods=0, timeframe="1h")
    session = _session(tmp_path, live, [_Bars(list(merge_bars(minutes)))])
    asyncio.run(session.node.run(stop_when_feeds_end=True, install_signals=False))
    session.close()
    with SqlStore(StoreConfig(database_url=f"sqlite:///{tmp_path / 's.db'}"), account="agg") as store:
        seen = [tuple(r["payload"]["bar"]) for r in store.journal(session.session_id) if r["kind"] == "Bar"]
    expected = [tuple(b) for b in merge_bars(hourly)]
    assert seen and seen[:-1] == expected[:-1]  # the last bucket closes only on time or a later bar
    assert all(isinstance(b[1], int) for b in seen)
