"""The live node: one ``asyncio.TaskGroup`` around the one Engine.

Feed tasks, the broker's event stream, control commands, scheduler jobs and the clock ticker put
events on one bounded queue (:meth:`LiveNode.enqueue`: a full queue is measured and alerted, and
the producer waits: bars and broker events are never dropped). The pump task takes them off in
order, journals each (so ``tradingd parity`` can replay the session exactly) and is the only
caller of ``Engine.handle``. Telemetry subscribes to the engine's events and never blocks it.

Shutdown (:meth:`LiveNode.stop`, wired to SIGTERM/SIGINT): stop intake, drain the queue, flush the
store, publish "offline", return.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from backtest.aggregator import BarAggregator
from backtest.kernel import Kernel
from core.enums import TradingState
from core.events import (Bar, ClockTick, OrderCanceled, OrderDenied, OrderExpired, OrderFilled, OrderRejected,
                         TradeClosed, TradingStateChanged)
from core.ports import AlertSink, Store
from core.time import iso
from daemon.live.time_source import TimeSource
from daemon.live.watchdog import StalenessWatchdog
from state.journal import JournalWriter

Enqueue = Callable[[Any], Awaitable[None]]


class Feed(Protocol):
    """A source of events (bars, broker updates) that runs until cancelled or exhausted."""

    name: str

    async def run(self, enqueue: Enqueue) -> None: ...


class Telemetry(Protocol):
    """Where the node publishes what happens (MQTT); must never block or raise."""

    def publish(self, kind: str, payload: dict[str, Any], *, retain: bool = False) -> None: ...


class Notifier(Protocol):
    """systemd's sd_notify (no-ops outside systemd)."""

    def ready(self, status: str = "") -> None: ...
    def watchdog(self) -> None: ...
    def stopping(self, status: str = "") -> None: ...
    def status(self, text: str) -> None: ...


class _NullTelemetry:
    def publish(self, kind: str, payload: dict[str, Any], *, retain: bool = False) -> None:
        return None


class _NullNotifier:
    def ready(self, status: str = "") -> None:
        return None

    def watchdog(self) -> None:
        return None

    def stopping(self, status: str = "") -> None:
        return None

    def status(self, text: str) -> None:
        return None


_STOP = object()


class _CloseBuckets:
    """Ticker -> pump: close the aggregator's buckets that ended at or before ``ts`` (epoch ns)."""

    __slots__ = ("ts",)

    def __init__(self, ts: int) -> None:
        self.ts = ts
Service = Callable[["LiveNode"], Awaitable[None]]


class LiveNode:
    """Run one kernel live.

    Parameters
    ----------
    kernel
        Built by :func:`backtest.kernel.build_kernel` (restored from the store after a restart).
    time
        The node's time source (wall, paced file time, or bar time).
    store, alerts
        The kernel's store (flushed on shutdown and after every batch of events) and alert sink.
    journal
        Journal writer of this session (None: no journal).
    feeds
        Event sources (bars, broker updates); each runs as its own task.
    services
        Further tasks that get the node (MQTT control, scheduler, health): ``await service(node)``.
    before_ready
        Awaited in order before READY and before any feed starts (``await hook(node)``): the
        broker's startup reconciliation. Events they enqueue are handled before the first bar; an
        exception stops the start (the process exits non-zero, systemd restarts it).
    telemetry, notifier
        MQTT telemetry and systemd notification (no-ops by default).
    watchdog
        The staleness watchdog (None: off).
    aggregator
        Builds the strategy's bars from the feed's (e.g. 1-minute bars into 1 h), the same
        :class:`backtest.aggregator.BarAggregator` replay uses; the engine and the journal see the
        aggregated bars. ``aggregation_grace_ns``: a bucket is closed this long after its end when
        no later bar arrived (minute bars arrive a few seconds late).
    queue_size
        Bound of the event queue.
    tick_s
        Wall seconds between clock ticks (timers fire even when no bar arrives).
    account, mode
        Shown in the status ("paper" or "live").
    """

    def __init__(self, kernel: Kernel, *, time: TimeSource, store: Store, alerts: AlertSink,
                 journal: JournalWriter | None = None, feeds: Sequence[Feed] = (), services: Sequence[Service] = (),
                 before_ready: Sequence[Service] = (), telemetry: Telemetry | None = None, notifier: Notifier | None = None,
                 watchdog: StalenessWatchdog | None = None, queue_size: int = 10_000, tick_s: float = 1.0,
                 account: str = "default", mode: str = "paper", aggregator: BarAggregator | None = None,
                 aggregation_grace_ns: int = 5_000_000_000) -> None:
        self.kernel = kernel
        self.engine = kernel.engine
        self.time = time
        self.store = store
        self.alerts = alerts
        self.journal = journal
        self.feeds = list(feeds)
        self.services = list(services)
        self.before_ready = list(before_ready)
        self.status_parts: list[Callable[[], dict[str, Any]]] = []  # extra status sections (broker, reconciliation)
        self.telemetry: Telemetry = telemetry if telemetry is not None else _NullTelemetry()
        self.notifier: Notifier = notifier if notifier is not None else _NullNotifier()
        self.watchdog = watchdog
        self.aggregator = aggregator  # feed bars (1 min) -> the strategy's bars, as replay builds them
        self.aggregation_grace_ns = aggregation_grace_ns
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self.tick_s = tick_s
        self.account, self.mode = account, mode
        self.handled = 0
        self.backpressure_waits = 0
        self.max_queue_depth = 0
        self.started_wall = time_ns_wall()
        self.last_heartbeat: int | None = None
        self.stop_reason = ""
        self.on_handled: list[Callable[[Any, int], None]] = []  # (event, wall ns when enqueued) hooks
        self.on_stop: list[Callable[[], None]] = []  # after the final flush: let services finish (MQTT outbox)
        # awaited when a stop is requested, before the queue's last event: in-flight broker calls
        self.drain_hooks: list[Callable[[], Awaitable[None]]] = []
        self._drain_task: asyncio.Task[None] | None = None
        # node-level events (health ticks, equity snapshots, end of day): handled here, not by the
        # engine, and not journaled (they change nothing the engine decides on)
        self.node_handlers: dict[type, Callable[[Any], None]] = {}
        self._stopping = asyncio.Event()
        self._intake: list[asyncio.Task[None]] = []
        self._last_backpressure_alert = 0
        self._subscribe()

    # --- producers ---------------------------------------------------------------------------
    async def enqueue(self, event: Any) -> None:
        """Put ``event`` on the queue; when it is full, count it, alert (once a minute) and wait."""
        queue = self.queue
        if queue.full():
            self.backpressure_waits += 1
            now = time_ns_wall()
            if now - self._last_backpressure_alert > 60_000_000_000:
                self._last_backpressure_alert = now
                self.alerts.alert("warning", "event queue full", f"{queue.qsize()} events waiting; producers "
                                  f"wait (backpressure #{self.backpressure_waits}), nothing is dropped")
        await queue.put((event, time.perf_counter_ns()))
        depth = queue.qsize()
        if depth > self.max_queue_depth:
            self.max_queue_depth = depth

    def enqueue_threadsafe(self, event: Any, loop: asyncio.AbstractEventLoop) -> None:
        """Enqueue from another thread (APScheduler's, a broker SDK's)."""
        asyncio.run_coroutine_threadsafe(self.enqueue(event), loop)

    def stop(self, reason: str = "stop requested") -> None:
        """Stop intake, drain what is queued, then shut down (idempotent; safe in a signal handler)."""
        if self._stopping.is_set():
            return
        self.stop_reason = reason
        self._stopping.set()
        for task in self._intake:
            task.cancel()
        if self.drain_hooks:  # a real broker's calls in flight: their answers are booked before STOP
            self._drain_task = asyncio.get_running_loop().create_task(self._drain_then_stop())
            return
        try:
            self.queue.put_nowait(_STOP)
        except asyncio.QueueFull:  # the cancelled producers free room; the pump drains up to STOP
            asyncio.get_running_loop().create_task(self.queue.put(_STOP))

    async def _drain_then_stop(self) -> None:
        for drain in self.drain_hooks:
            try:
                await asyncio.wait_for(drain(), timeout=10.0)
            except Exception as exc:  # a broker that does not answer must not keep the node up
                self.alerts.alert("warning", "shutdown: broker calls still in flight",
                                  f"{type(exc).__name__}: {exc}; reconciliation at the next start books them")
        await self.queue.put(_STOP)

    # --- running -----------------------------------------------------------------------------
    async def run(self, *, stop_when_feeds_end: bool = False, install_signals: bool = True) -> None:
        """Run until :meth:`stop` (or SIGTERM/SIGINT); with ``stop_when_feeds_end``, also stop once
        every feed has finished (a file fed through the live node)."""
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop, f"received {sig.name}")
        try:
            for startup in self.before_ready:  # startup reconciliation: nothing trades before it is done
                await startup(self)
        except BaseException:
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            raise
        self.alerts.alert("info", "tradingd started", f"{self.mode} account {self.account}, "
                          f"trading state {self.engine.risk.state.value}")
        self.telemetry.publish("status", {"state": "online", "mode": self.mode, "account": self.account},
                               retain=True)
        self.notifier.ready(f"{self.mode} {self.account}: {self.engine.risk.state.value}")
        shut = False
        try:
            async with asyncio.TaskGroup() as group:
                pump = group.create_task(self._pump())
                feeds = [group.create_task(self._run_feed(feed)) for feed in self.feeds]
                services = [group.create_task(self._run_service(service)) for service in self.services]
                self._intake = feeds + [group.create_task(self._ticker())]
                if stop_when_feeds_end:
                    group.create_task(self._stop_after_feeds(feeds))
                await pump
                for task in self._intake:
                    if not task.cancelling():  # a second cancel would cut a feed's own clean-up short
                        task.cancel()
                self._shutdown()
                shut = True
                for hook in self.on_stop:  # e.g. the MQTT link sends its outbox, then "offline"
                    hook()
                if services:
                    done, pending = await asyncio.wait(services, timeout=5.0)
                    for task in pending:
                        task.cancel()
        finally:
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            if not shut:
                self._shutdown()

    async def _stop_after_feeds(self, feeds: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*feeds, return_exceptions=True)
        self.stop("feeds finished")

    async def _run_feed(self, feed: Feed) -> None:
        try:
            await feed.run(self.enqueue)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a feed crash must not take the node down: alert, the rest runs
            self.alerts.alert("error", f"feed {feed.name} crashed", f"{type(exc).__name__}: {exc}")

    async def _run_service(self, service: Service) -> None:
        try:
            await service(self)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.alerts.alert("error", "service crashed", f"{getattr(service, '__name__', service)}: "
                              f"{type(exc).__name__}: {exc}")

    async def _ticker(self) -> None:
        """Fire due timers and check staleness even when no event arrives."""
        while True:
            await asyncio.sleep(self.tick_s)
            self.notifier.watchdog()  # the loop is alive (a stuck engine blocks this loop too)
            now = self.time.now()
            due = self.engine.clock.next_timer()
            if due is not None and due <= now:
                await self.enqueue(ClockTick(ts_event=now, ts_init=now))
            if self.watchdog is not None:
                for stale in self.watchdog.check(now):
                    await self.enqueue(stale)
            if self.aggregator is not None:
                due_bucket = self.aggregator.next_due()
                if due_bucket is not None and due_bucket + self.aggregation_grace_ns <= now:
                    await self.enqueue(_CloseBuckets(now - self.aggregation_grace_ns))

    async def _pump(self) -> None:
        """The only caller of ``Engine.handle``: take events in order, journal, handle."""
        queue, engine, journal = self.queue, self.engine, self.journal
        notifier, hooks = self.notifier, self.on_handled
        while True:
            item = await queue.get()
            if item is _STOP:
                return
            event, enqueued = item
            own = self.node_handlers.get(type(event))
            if own is not None:
                try:
                    own(event)
                except Exception as exc:
                    self.alerts.alert("error", f"{type(event).__name__} handler failed", f"{type(exc).__name__}: {exc}")
                continue
            aggregator = self.aggregator
            if type(event) is Bar:
                if aggregator is None:
                    self._handle_bar(event)
                else:
                    for bar in aggregator.on_bar(event):
                        self._handle_bar(bar)
            elif isinstance(event, _CloseBuckets):
                if aggregator is not None:
                    for bar in aggregator.on_time(event.ts):
                        self._handle_bar(bar)
            else:
                if journal is not None:
                    journal.append(event)
                engine.handle(event)
            self.handled += 1
            notifier.watchdog()
            for hook in hooks:
                hook(event, enqueued)
            if queue.empty():
                self.store.flush()  # batch writes while busy, persist as soon as idle

    def _handle_bar(self, bar: Bar) -> None:
        """Journal and handle one bar of the strategy's timeframe; feed the staleness watchdog."""
        engine, journal, watchdog = self.engine, self.journal, self.watchdog
        if journal is not None:
            journal.append(bar)
        self.time.observe_bar(bar.ts_init)
        dropped = engine.dropped_bars
        engine.handle(bar)
        if watchdog is not None and engine.dropped_bars == dropped:
            resumed = watchdog.on_bar(bar)
            if resumed is not None:
                if journal is not None:
                    journal.append(resumed)
                engine.handle(resumed)

    def _shutdown(self) -> None:
        self.notifier.stopping(self.stop_reason or "stopping")
        try:
            self.engine.finish()
        except Exception as exc:  # the store may be gone; say so, the process still exits
            self.alerts.alert("critical", "final flush failed", f"{type(exc).__name__}: {exc}")
        self.telemetry.publish("status", {"state": "offline", "reason": self.stop_reason}, retain=True)
        self.alerts.alert("info", "tradingd stopped", self.stop_reason or "stopped")

    # --- views -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """JSON-able snapshot: mode, account, trading state and reason, positions, open orders, cash,
        equity (USD), last bar per symbol with its age (s), uptime (s), queue and counters."""
        engine, kernel = self.engine, self.kernel
        now = self.time.now()
        portfolio = kernel.portfolio
        return {
            "mode": self.mode, "account": self.account, "trading_state": engine.risk.state.value,
            "reason": engine.risk.reason, "cash": portfolio.cash, "equity": portfolio.equity,
            "positions": {s: {"quantity": p.quantity, "avg_price": p.avg_price, "mark": p.mark}
                          for s, p in portfolio.positions().items() if p.quantity},
            "open_orders": [{"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side.value,
                             "quantity": o.quantity, "filled": o.filled_quantity, "status": o.status.value}
                            for o in kernel.book.open_orders()],
            "last_bar": {s: {"start": iso(ts), "age_s": max(0.0, (now - ts) / 1e9)}
                         for s, ts in engine.last_bar_ts.items()},
            "stale": sorted(self.watchdog.stale) if self.watchdog is not None else [],
            "uptime_s": (time_ns_wall() - self.started_wall) / 1e9, "now": iso(now),
            "events_handled": self.handled, "queue_depth": self.queue.qsize(),
            "backpressure_waits": self.backpressure_waits, "dropped_bars": engine.dropped_bars,
            "last_heartbeat": iso(self.last_heartbeat) if self.last_heartbeat else None,
            "strategy_enabled": engine.strategy_enabled,
            **{key: value for part in self.status_parts for key, value in _safe_part(part).items()},
        }

    def _subscribe(self) -> None:
        publish = self.telemetry_publish
        engine = self.engine
        engine.subscribe(OrderFilled, lambda f: publish("fills", {
            "client_order_id": f.client_order_id, "symbol": f.symbol, "side": f.side.value, "quantity": f.quantity,
            "price": f.price, "commission": f.commission, "time": iso(f.ts_event)}))
        engine.subscribe(OrderDenied, lambda d: publish("decisions", {
            "outcome": "denied", "client_order_id": d.client_order_id, "symbol": d.symbol, "side": d.side.value,
            "quantity": d.quantity, "reason": d.reason, "time": iso(d.ts_init)}))
        for kind in (OrderRejected, OrderCanceled, OrderExpired):
            engine.subscribe(kind, lambda e: publish("orders", {
                "event": type(e).__name__, "client_order_id": e.client_order_id, "reason": e.reason,
                "time": iso(e.ts_init)}))
        engine.subscribe(TradeClosed, lambda t: publish("trades", {
            "symbol": t.symbol, "side": t.side.value, "quantity": t.quantity, "pnl": t.pnl,
            "exit_reason": t.exit_reason, "time": iso(t.ts_init)}))
        engine.subscribe(TradingStateChanged, self._on_state)

    def telemetry_publish(self, kind: str, payload: dict[str, Any], retain: bool = False) -> None:
        """Publish through the telemetry sink; a failing sink is alerted, never raised."""
        try:
            self.telemetry.publish(kind, payload, retain=retain)
        except Exception as exc:
            self.alerts.alert("warning", "telemetry failed", f"{type(exc).__name__}: {exc}")

    def _on_state(self, change: TradingStateChanged) -> None:
        self.telemetry_publish("state", {"previous": change.previous.value, "state": change.current.value,
                                         "reason": change.reason, "time": iso(change.ts_init)}, retain=True)
        self.notifier.status(f"{self.mode} {self.account}: {change.current.value} ({change.reason})")
        if change.current is TradingState.HALTED:
            self.alerts.alert("critical", "trading HALTED", change.reason, account=self.account)


def _safe_part(part: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return part()
    except Exception as exc:  # a status must always answer
        return {"status_error": f"{type(exc).__name__}: {exc}"}


def time_ns_wall() -> int:
    """Wall-clock epoch ns (uptime and alert pacing only; never a trading decision)."""
    return time.time_ns()


__all__ = ["Feed", "LiveNode", "Notifier", "Service", "Telemetry"]
