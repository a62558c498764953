"""Assemble a live session from the configuration: recovery, kernel, journal, feeds, node.

Startup is recovery: the account's persisted state (cash, positions, working orders, breakers,
peak equity, learner state) is loaded, the kernel is built on it, the session's first journal
entry records what it started from, and only then does the node report READY and trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from alerts.sinks import FanOutAlertSink, LogAlertSink, MemoryAlertSink
from backtest.data import data_hash
from backtest.kernel import Kernel, build_kernel, paper_venue
from backtest.sources import BarSeries
from core.clock import Clock
from core.ports import AlertSink, Broker, SimulatedVenue
from core.recovery import RestoredState
from core.time import parse_timeframe, to_nanos
from daemon.config import AppConfig
from daemon.live.config import LiveConfig
from daemon.live.file_feed import PacedFileFeed
from daemon.live.node import Feed, LiveNode, Notifier, Service, Telemetry
from daemon.live.time_source import BarTime, PacedTime, TimeSource, WallTime
from daemon.live.watchdog import StalenessWatchdog
from state.journal import JournalWriter

if TYPE_CHECKING:
    from daemon.live.alpaca_session import AlpacaLink
from state.recovery import load_restored
from state.store import SqlStore

MAX_BAR_LEAD_NS = 5 * 60 * 1_000_000_000
"""Wall-clock feeds: a bar released more than 5 minutes in the future is refused (broken clock)."""


@dataclass
class LiveSession:
    """A ready live session: run ``await session.node.run()``, then ``session.close()``."""

    session_id: str
    node: LiveNode
    kernel: Kernel
    store: SqlStore
    restored: RestoredState | None
    memory: MemoryAlertSink
    alpaca: AlpacaLink | None = None

    def close(self) -> None:
        """Record how the session ended and close the store."""
        now = to_nanos(datetime.now(timezone.utc))
        status = "finished" if self.node.stop_reason in ("feeds finished", "") else "stopped"
        try:
            self.store.finish_run(self.session_id, now, status, {"events": self.node.handled,
                                                                  "reason": self.node.stop_reason})
        finally:
            self.store.close()


def open_session(cfg: AppConfig, live: LiveConfig, *, series: list[BarSeries] | None = None,
                 feeds: list[Feed] | None = None, services: list[Service] | None = None,
                 telemetry: Telemetry | None = None, notifier: Notifier | None = None,
                 alerts: AlertSink | None = None) -> LiveSession:
    """Recover the account and build the node of one live session.

    Parameters
    ----------
    cfg, live
        The configuration (strategy, risk, fill, signals, state) and the ``[live]`` settings.
    series
        Bars for the paced file feed (``live.feed == "file"``).
    feeds, services, telemetry, notifier, alerts
        Extra feeds (MQTT bars), services (MQTT control, scheduler), sinks.

    Raises
    ------
    state.store.StoreError
        If the state database cannot be opened.
    state.recovery.RecoveryError
        If the persisted state of the account is inconsistent.
    """
    spec = cfg.run_spec()
    store = SqlStore(cfg.state.model_copy(update={"durable_orders": True}), account=live.account)
    link = None
    try:
        if live.broker == "alpaca":
            from daemon.live.alpaca_session import connect

            link = connect(cfg.alpaca, live, store)  # keys, account check, paper/live database binding
            if store.load_account(live.account) is None:  # a new account starts from the broker's cash
                spec = spec.model_copy(update={"replay": spec.replay.model_copy(update={"starting_cash": link.cash})})
        else:
            store.bind_broker_account(live.account, "paper", live.mode, None)
        restored = load_restored(store, live.account, starting_cash=spec.replay.starting_cash)
        resume_after = max(restored.last_bar_ts.values()) if restored and restored.last_bar_ts else None
        time_source = _time_source(live, series, resume_after)
        start = time_source.now()
        wall = to_nanos(datetime.now(timezone.utc))
        session_id = f"live-{live.account}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
        store.start_run(session_id, "live", spec.strategy, spec.params, spec.spec_hash(),
                        data_hash(series) if series else "", wall)
        memory = MemoryAlertSink()
        sink = alerts if alerts is not None else FanOutAlertSink(memory, LogAlertSink())
        prefix = f"paper-{wall}"
        venue: SimulatedVenue | None = None
        if link is None:
            venue = paper = paper_venue(spec, id_prefix=prefix)
            broker: Broker = paper
        else:
            broker = link.make_broker(sink, time_source.now)
        kernel = build_kernel(spec, clock=Clock(start), broker=broker, venue=venue, store=store, alerts=sink,
                              restored=restored, snapshot_interval_ns=0,
                              max_bar_lead_ns=MAX_BAR_LEAD_NS if isinstance(time_source, WallTime) else None)
        journal = JournalWriter(store)
        journal.start(spec.model_dump(mode="json"), restored, start, venue_prefix=prefix if link is None else "",
                      account=live.account, mode=live.mode, broker=live.broker)
        store.flush()
        all_feeds: list[Feed] = list(feeds or [])
        timeframe = series[0].timeframe_ns if series else 60_000_000_000
        if live.feed == "file" and series:
            all_feeds.insert(0, PacedFileFeed(series, time_source, skip_until=_last_release(restored, series)))
        aggregator = None
        if live.timeframe is not None and live.feed != "file":  # files are aggregated when loaded
            from backtest.aggregator import BarAggregator

            timeframe = parse_timeframe(live.timeframe)
            aggregator = BarAggregator(timeframe, source_ns=_feed_timeframe(cfg))
        watchdog = StalenessWatchdog(timeframe, live.stale_periods) if live.stale_periods else None
        node = LiveNode(kernel, time=time_source, store=store, alerts=sink, journal=journal, feeds=all_feeds,
                        services=services or [], telemetry=telemetry, notifier=notifier, watchdog=watchdog,
                        queue_size=live.queue_size, tick_s=live.tick, account=live.account, mode=live.mode,
                        aggregator=aggregator)
        if link is not None:
            link.attach(node, store, last_bar_ts=dict(restored.last_bar_ts) if restored else {},
                        known=restored.known_client_order_ids if restored else frozenset())
    except BaseException:
        store.close()
        raise
    return LiveSession(session_id, node, kernel, store, restored, memory, link)


def _feed_timeframe(cfg: AppConfig) -> int:
    """Bar length of the MQTT feed (``[mqtt] bar_timeframe``, 1 min by default), ns."""
    return parse_timeframe(cfg.mqtt.bar_timeframe) if cfg.mqtt is not None else 60_000_000_000


def _time_source(live: LiveConfig, series: list[BarSeries] | None, resume_after: int | None) -> TimeSource:
    if live.clock == "wall" or (live.clock == "auto" and live.feed != "file"):
        return WallTime()
    if live.clock == "bars" or not series:
        return BarTime(resume_after or 0)
    first = min(int(s.ts_event[0]) for s in series if len(s))
    origin = first if resume_after is None else resume_after
    return PacedTime(origin, live.speed)


def _last_release(restored: RestoredState | None, series: list[BarSeries]) -> int | None:
    """The release time of the last bar the account had accepted (the file feed resumes after it)."""
    if restored is None or not restored.last_bar_ts:
        return None
    timeframe = series[0].timeframe_ns
    return max(restored.last_bar_ts.values()) + timeframe


def describe(session: LiveSession) -> dict[str, Any]:
    """What recovery found, for the startup log line."""
    restored = session.restored
    if restored is None:
        return {"account": session.node.account, "recovered": False}
    return {"account": restored.account, "recovered": True, "cash": restored.cash,
            "positions": {p.symbol: p.quantity for p in restored.positions},
            "open_orders": len(restored.open_orders), "trading_state": restored.risk.state.value,
            "peak_equity": restored.risk.peak_equity}


__all__ = ["LiveSession", "describe", "open_session"]
