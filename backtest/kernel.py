"""The one assembly of the trading kernel, shared by replay, the live node and research.

:func:`build_kernel` turns a :class:`backtest.spec.RunSpec` plus the node's own parts (clock,
broker, store, alerts; the simulated venue for paper trading) into a wired
:class:`core.engine.Engine` with its risk engine, signals and strategy; with ``restored`` (from
``state.recovery.load_restored``) it resumes a persisted account instead of starting flat.

It lives in ``backtest/`` because that is the lowest layer that sees risk, learning, strategies
and the fill model together; the live node imports ``backtest`` for the paper broker anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from backtest.broker import PaperBroker
from backtest.spec import RunSpec
from core.clock import Clock
from core.engine import Engine, EquityRecorder
from core.order_book import OrderBook
from core.portfolio import Portfolio
from core.ports import AlertSink, Broker, SimulatedVenue, Store, Strategy
from core.recovery import RestoredState
from core.time import parse_timeframe
from core.trades import TradeTracker
from learning.pipeline import SignalPipeline
from risk.engine import RiskEngine
from strategies.registry import build_strategy


@dataclass
class Kernel:
    """The wired parts of one trading kernel. Feed it events through ``engine.handle``."""

    spec: RunSpec
    engine: Engine
    strategy: Strategy
    risk: RiskEngine
    signals: SignalPipeline | None
    clock: Clock
    portfolio: Portfolio
    book: OrderBook


def paper_venue(spec: RunSpec, id_prefix: str = "paper") -> PaperBroker:
    """The paper broker for ``spec``: the fill model of ``spec.fill`` with the risk config's
    whole-share rule. It is both the :class:`~core.ports.Broker` and the
    :class:`~core.ports.SimulatedVenue` of a paper kernel.

    A kernel resumed after a restart needs an ``id_prefix`` of its own (e.g. with the restart
    time), so broker order ids and fill ids never repeat those stored before the restart.
    """
    fill = spec.fill.model_copy(update={"fractional_shares": spec.risk.fractional_shares})
    return PaperBroker(fill, id_prefix)


def build_kernel(spec: RunSpec, *, clock: Clock, broker: Broker, store: Store, alerts: AlertSink,
                 venue: SimulatedVenue | None = None, restored: RestoredState | None = None,
                 strategy: Strategy | None = None, equity_recorder: EquityRecorder | None = None,
                 snapshot_interval_ns: int | None = None, max_bar_lead_ns: int | None = None) -> Kernel:
    """Assemble the kernel for ``spec``.

    Parameters
    ----------
    spec
        Strategy, parameters and component configurations.
    clock, broker, store, alerts
        The node's parts (simulated clock and paper broker in replay; live clock and a real or
        paper broker live).
    venue
        The simulated venue that fills orders against bars (paper trading); None for a real broker.
    restored
        A persisted account to resume (cash, positions, open orders, breakers, learner state).
    strategy
        A ready strategy instance (tests, user code); default: built from ``spec.strategy`` and
        ``spec.params``.
    equity_recorder
        Callback for every post-bar equity point (replay's curve).
    snapshot_interval_ns
        Store snapshot cadence; default ``spec.replay.snapshot_interval``.
    max_bar_lead_ns
        Live only: refuse bars released further ahead of the clock than this.

    Raises
    ------
    strategies.registry.StrategyConfigError
        For an unknown strategy or invalid parameters.
    """
    if strategy is None:
        strategy = build_strategy(spec.strategy, spec.params)
    signal_config = spec.signals
    if strategy.uses_learner and not signal_config.learner_enabled:
        signal_config = signal_config.model_copy(update={"learner_enabled": True})
    signals = (SignalPipeline(signal_config)
               if (signal_config.regime_enabled or signal_config.learner_enabled) else None)
    portfolio = Portfolio(spec.replay.starting_cash)
    book, trades = OrderBook(), TradeTracker()
    risk = RiskEngine(spec.risk, clock, restored=restored.risk if restored is not None else None)
    if restored is not None:
        _restore(restored, portfolio, book, trades, signals)
    engine = Engine(clock=clock, portfolio=portfolio, strategy=strategy, risk=risk, broker=broker, store=store,
                    alerts=alerts, venue=venue, signals=signals, book=book, trades=trades,
                    equity_recorder=equity_recorder,
                    snapshot_interval_ns=(parse_timeframe(spec.replay.snapshot_interval)
                                          if snapshot_interval_ns is None else snapshot_interval_ns),
                    max_bar_lead_ns=max_bar_lead_ns)
    if restored is not None:
        engine.last_bar_ts.update(restored.last_bar_ts)
        if isinstance(venue, PaperBroker):  # paper trading resumes its working orders
            for order in restored.open_orders:
                venue.restore(order, clock.now)
    return Kernel(spec=spec, engine=engine, strategy=strategy, risk=risk, signals=signals, clock=clock,
                  portfolio=portfolio, book=book)


def _restore(restored: RestoredState, portfolio: Portfolio, book: OrderBook, trades: TradeTracker,
             signals: SignalPipeline | None) -> None:
    portfolio.restore(restored.cash, ((p.symbol, p.quantity, p.avg_price, p.mark) for p in restored.positions))
    for position in restored.positions:
        if position.entry_ts is not None:
            trades.restore(position.symbol, position.quantity, position.avg_price, position.entry_ts)
    book.reserve(restored.known_client_order_ids)
    for order in restored.open_orders:
        book.add(order)
    if signals is not None and restored.learner_state:
        signals.restore_learners(restored.learner_state)


__all__ = ["Kernel", "build_kernel", "paper_venue"]
