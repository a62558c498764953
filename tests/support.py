"""Shared test support: small real slices of the bundled hourly data and a replay helper."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from alerts.sinks import MemoryAlertSink
from backtest.fill_model import FillConfig
from backtest.replay import run_replay
from backtest.spec import RunSpec
from backtest.sources import BarSeries, load_bars
from learning.pipeline import SignalConfig
from risk.config import RiskConfig
from state.memory import MemoryStore
from strategies.registry import BUILTINS

DATA = Path(__file__).resolve().parents[1] / "data" / "us_equity_1hour_adjusted"
START = datetime(2018, 1, 1, tzinfo=timezone.utc)
END = datetime(2020, 1, 1, tzinfo=timezone.utc)

# parameters under which each built-in trades often, so the properties are exercised; each strategy
# declares its own (Strategy.check_params), so a new built-in can never be missing here
STRATEGY_PARAMS = {name: cls.check_params() for name, cls in BUILTINS.items()}


def load_two_symbols() -> list[BarSeries]:
    """SPY and AAPL hourly bars, 2018-2019 (real data, ~7k bars)."""
    return [load_bars(DATA / f"{sym}.csv.gz", start=START, end=END) for sym in ("SPY", "AAPL")]


def replay(series, name, *, fill=None, risk=None, signals=None, params=None):
    """Run one replay into a MemoryStore; return (result, store, alerts)."""
    store, alerts = MemoryStore(), MemoryAlertSink()
    spec = RunSpec(strategy=name, params=params if params is not None else STRATEGY_PARAMS[name],
                   risk=risk or RiskConfig(max_consecutive_losses=1000),
                   fill=fill or FillConfig(slippage_bps=2.0, commission_bps=1.0),
                   signals=signals or SignalConfig(learner={"min_samples": 50}))
    result = run_replay(series, spec, store=store, alerts=alerts)
    return result, store, alerts


def paper_kernel(strategy, *, risk=None, fill=None, signals=None, start_ns=0, store=None, cash=100_000.0):
    """A paper kernel (simulated clock, PaperBroker as broker and venue) around a ready strategy.

    Returns (kernel, store, alerts, equity curve).
    """
    from backtest.kernel import build_kernel, paper_venue
    from backtest.replay import EquityCurve
    from backtest.spec import ReplayConfig
    from core.clock import Clock

    store = store if store is not None else MemoryStore()
    alerts, curve = MemoryAlertSink(), EquityCurve()
    spec = RunSpec(strategy=strategy.name or "custom", risk=risk or RiskConfig(), fill=fill or FillConfig(slippage_bps=0),
                   signals=signals or SignalConfig(), replay=ReplayConfig(starting_cash=cash))
    venue = paper_venue(spec)
    kernel = build_kernel(spec, clock=Clock(start_ns), broker=venue, venue=venue, store=store, alerts=alerts,
                          strategy=strategy, equity_recorder=curve)
    return kernel, store, alerts, curve
