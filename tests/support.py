"""Shared test support: small real slices of the bundled hourly data and a replay helper."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from alerts.sinks import MemoryAlertSink
from backtest.fill_model import FillConfig
from backtest.replay import ReplayConfig, run_replay
from backtest.sources import BarSeries, load_bars
from learning.pipeline import SignalConfig
from risk.config import RiskConfig
from state.memory import MemoryStore
from strategies.registry import build_strategy

DATA = Path(__file__).resolve().parents[1] / "data" / "us_equity_1hour_adjusted"
START = datetime(2018, 1, 1, tzinfo=timezone.utc)
END = datetime(2020, 1, 1, tzinfo=timezone.utc)

# parameters chosen to trade often on a two-year slice, so the properties are exercised
STRATEGY_PARAMS = {
    "sma_cross": {"fast": 10, "slow": 40},
    "rsi_momentum": {"rsi_min": 50, "rsi_max": 80, "trend_period": 30},
    "online_ml": {"threshold": 0.55, "exit_threshold": 0.5},
}


def load_two_symbols() -> list[BarSeries]:
    """SPY and AAPL hourly bars, 2018-2019 (real data, ~7k bars)."""
    return [load_bars(DATA / f"{sym}.csv.gz", start=START, end=END) for sym in ("SPY", "AAPL")]


def replay(series, name, *, fill=None, risk=None, signals=None, params=None):
    """Run one replay into a MemoryStore; return (result, store, alerts)."""
    store, alerts = MemoryStore(), MemoryAlertSink()
    strategy = build_strategy(name, params if params is not None else STRATEGY_PARAMS[name])
    result = run_replay(series, strategy, risk_config=risk or RiskConfig(max_consecutive_losses=1000),
                        fill_config=fill or FillConfig(slippage_bps=2.0, commission_bps=1.0),
                        signal_config=signals or SignalConfig(learner={"min_samples": 50}),
                        replay_config=ReplayConfig(), store=store, alerts=alerts)
    return result, store, alerts
