"""Alpaca order round trip and reconciliation time, in-process, against the local fake Alpaca server
(``tests.alpaca_fake.FakeAlpaca`` on 127.0.0.1) with the real alpaca-py client and our adapters.

Round trip: the live node (``LiveNode``: queue, pump, a real Engine from ``build_kernel`` with the
``AlpacaBroker`` and no simulated venue) and the ``AlpacaTradeUpdates`` feed. Each order is a 1-share
market order submitted through the engine's own path (persist, ``broker.submit``), one at a time:
the next is sent once the engine has handled the previous one's ``OrderFilled``. Figures: ms from
the submit to ``OrderAccepted`` handled and to ``OrderFilled`` handled, split by the path that
produced the event (``rest`` = the ``POST /v2/orders`` reply, ``stream`` = trade_updates; the
tracker emits each event once, from whichever report arrives first), and the ``POST`` call itself
in its worker thread. Three modes: the fake writes the HTTP reply before the trade updates
(its default), the trade updates before the reply (``events_before_reply``, as real Alpaca may),
and no stream at all (acceptance from the reply only; a fill is then never heard).

Reconciliation: ``--recon-orders`` orders placed by tradingd over ``--recon-positions`` symbols
(all filled, one long position per symbol), the engine's book/portfolio as the ``LocalSnapshot``;
``AlpacaReconciler.check`` and ``.run`` timed (wall seconds, REST requests from the fake's log);
then the same for as many orders placed outside tradingd (external orders and positions).

The fake has no request limit of its own. Our ``RequestBudget`` (190 requests/min, a burst of 19,
in production) would pace 300 sequential submits to 3.2/s, so the round trip and the set-up use a
raised budget (said in the output); reconciliation is timed with both.

    .venv/bin/python benchmarks/alpaca_roundtrip.py [--orders 300] [--warmup 10]
        [--recon-orders 1000] [--recon-positions 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.sinks import MemoryAlertSink  # noqa: E402
from backtest.kernel import build_kernel  # noqa: E402
from backtest.spec import RunSpec  # noqa: E402
from core.clock import Clock  # noqa: E402
from core.enums import OrderType, Side, TimeInForce  # noqa: E402
from core.events import OrderAccepted, OrderFilled, SubmitOrder  # noqa: E402
from daemon.adapters.alpaca.clients import RequestBudget, trading_client  # noqa: E402
from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials  # noqa: E402
from daemon.live.node import LiveNode  # noqa: E402
from daemon.live.time_source import WallTime  # noqa: E402
from state.memory import MemoryStore  # noqa: E402
from state.reconcile import LocalSnapshot  # noqa: E402
from tests.alpaca_fake import FakeAlpaca  # noqa: E402

with warnings.catch_warnings():  # websockets.legacy, imported by alpaca-py's streams
    warnings.simplefilter("ignore", DeprecationWarning)
    import alpaca.trading  # noqa: F401,E402  (the reconciler imports it lazily)
    from daemon.adapters.alpaca.broker import AlpacaBroker  # noqa: E402
    from daemon.adapters.alpaca.reconcile import AlpacaReconciler  # noqa: E402
    from daemon.adapters.alpaca.updates import AlpacaTradeUpdates  # noqa: E402

ACCOUNT = "bench"
CASH = 1e9  # USD: buying power never refuses an order
RAISED = (1_000_000, 10_000)  # requests/min, burst: the budget never waits
WAIT_S = 120.0  # the longest any one wait may take before the benchmark gives up


@dataclass
class Trip:
    """One order's timeline (perf_counter ns) and the path of each event."""

    sent: int
    accepted: int = 0
    filled: int = 0
    accept_path: str = "?"
    fill_path: str = "?"
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Desk:
    """The live node on the fake: LiveNode + Engine + AlpacaBroker (+ trade_updates feed)."""

    def __init__(self, fake: FakeAlpaca, budget: RequestBudget, *, stream: bool) -> None:
        self.fake = fake
        self.cfg = AlpacaConfig(trading_url=fake.rest_url, trading_stream_url=fake.trading_ws_url, read_timeout=10.0)
        self.creds = AlpacaCredentials(fake.key_id, fake.secret_key)
        self.client = trading_client(self.creds, self.cfg, paper=True)
        self.budget = budget
        self.alerts = MemoryAlertSink()
        self.broker = AlpacaBroker(self.client, budget=budget, alerts=self.alerts, now=time.time_ns)
        self.store = MemoryStore(ACCOUNT)
        self.kernel = build_kernel(RunSpec(replay={"starting_cash": CASH}), clock=Clock(time.time_ns()),
                                   broker=self.broker, store=self.store, alerts=self.alerts)
        self.engine = self.kernel.engine
        self.feed = AlpacaTradeUpdates(self.creds, self.cfg, self.broker, paper=True) if stream else None
        self.trips: dict[str, Trip] = {}
        self.post_ms: dict[str, float] = {}  # client_order_id -> ms of its POST /v2/orders call
        self._path: dict[int, str] = {}
        self._keep: list[Any] = []  # the tagged events stay alive, so their id() is not reused
        self._tag_paths()

    # --- instrumentation (wrappers that call through; nothing is replaced) -------------------------
    def _tag_paths(self) -> None:
        def tagged(fn: Callable[..., list[Any]], path: str) -> Callable[..., list[Any]]:
            def wrapper(*args: Any, **kwargs: Any) -> list[Any]:
                events = fn(*args, **kwargs)
                for event in events:
                    self._path[id(event)] = path
                    self._keep.append(event)
                return events
            return wrapper

        # REST replies and lookups go through tracker.from_snapshot, stream updates through on_trade_update
        setattr(self.broker, "on_trade_update", tagged(self.broker.on_trade_update, "stream"))
        setattr(self.broker.tracker, "from_snapshot", tagged(self.broker.tracker.from_snapshot, "rest"))
        submit_order = self.client.submit_order

        def timed_submit(request: Any) -> Any:
            began = time.perf_counter_ns()
            try:
                return submit_order(request)
            finally:
                self.post_ms[str(request.client_order_id)] = (time.perf_counter_ns() - began) / 1e6

        setattr(self.client, "submit_order", timed_submit)

    def _on_handled(self, event: Any, enqueued: int) -> None:
        trip = self.trips.get(getattr(event, "client_order_id", None) or "")
        if trip is None:
            return
        now = time.perf_counter_ns()
        if isinstance(event, OrderAccepted) and not trip.accepted:
            trip.accepted, trip.accept_path = now, self._path.get(id(event), "?")
            if self.feed is None:
                trip.done.set()
        elif isinstance(event, OrderFilled) and not trip.filled:
            trip.filled, trip.fill_path = now, self._path.get(id(event), "?")
            trip.done.set()

    # --- running -----------------------------------------------------------------------------------
    def submit(self, coid: str, symbol: str, side: Side, quantity: float = 1.0) -> Trip:
        """A market order through the engine's own submit path (what a strategy's intent becomes)."""
        now = time.time_ns()
        self.engine.clock.now = max(self.engine.clock.now, now)
        trip = self.trips[coid] = Trip(time.perf_counter_ns())
        self.engine._submit(SubmitOrder(client_order_id=coid, strategy_id="bench", symbol=symbol, side=side,
                                        quantity=quantity, order_type=OrderType.MARKET,
                                        time_in_force=TimeInForce.GTC, ts_event=now, ts_init=now))
        return trip

    def local(self) -> LocalSnapshot:
        """What the node believes now (as the live session builds it)."""
        return LocalSnapshot(orders=dict(self.kernel.book.orders), cash=self.kernel.portfolio.cash,
                             positions={s: p.quantity for s, p in self.kernel.portfolio.positions().items()
                                        if p.quantity})

    def run(self, body: Callable[[Desk, LiveNode], Awaitable[Any]]) -> Any:
        """Run the node until ``await body(desk, node)`` returns; return its result (or raise its error)."""
        outcome: dict[str, Any] = {}

        async def bind(node: LiveNode) -> None:
            self.broker.bind(node.enqueue)

        async def driver(node: LiveNode) -> None:
            try:
                if self.feed is not None:
                    await until(lambda: self.feed is not None and self.feed.connected, "the trade_updates stream")
                outcome["result"] = await body(self, node)
            except BaseException as exc:  # re-raised below: the node would only alert it
                outcome["error"] = exc
            finally:
                node.stop("benchmark done")

        node = LiveNode(self.kernel, time=WallTime(), store=self.store, alerts=self.alerts,
                        feeds=[self.feed] if self.feed is not None else [], services=[driver], before_ready=[bind],
                        queue_size=100_000, account=ACCOUNT)
        node.drain_hooks.append(self.broker.drain)
        node.on_handled.append(self._on_handled)
        asyncio.run(node.run(install_signals=False))
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")


async def until(predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.005)


def row(label: str, values: list[float]) -> str:
    """One figure line: ``label`` and the count and p50/p90/p99/max of ``values`` (ms)."""
    if not values:
        return f"  {label:<48} n/a"
    ms = sorted(values)

    def at(q: float) -> float:
        return ms[int(q * (len(ms) - 1))]

    return (f"  {label:<48} n {len(ms):>4}  p50 {statistics.median(ms):7.2f}  p90 {at(0.90):7.2f}  p99 {at(0.99):7.2f}  "
            f"max {ms[-1]:7.2f} ms")


# ===================================================================================== round trip

def round_trip(orders: int, warmup: int, mode: str) -> None:
    stream = mode != "rest only"
    with FakeAlpaca(symbols=("SPY",), cash=CASH, history_minutes=30) as fake:
        fake.faults.events_before_reply = mode == "updates first"
        desk = Desk(fake, RequestBudget(RAISED[0], burst=RAISED[1]), stream=stream)

        async def body(desk: Desk, node: LiveNode) -> float:
            began = 0.0
            for i in range(warmup + orders):
                if i == warmup:
                    began = time.perf_counter()
                trip = desk.submit(f"rt-{i}", "SPY", Side.BUY if i % 2 == 0 else Side.SELL)
                await asyncio.wait_for(trip.done.wait(), WAIT_S)
            return time.perf_counter() - began

        seconds = desk.run(body)
        stats = desk.broker.stats
    trips = [desk.trips[f"rt-{i}"] for i in range(warmup, warmup + orders)]
    print(f"\n[{mode}] {orders} orders, sequential, {orders / seconds:,.0f} round trips/s; "
          f"lookups {stats['lookups']}, unknown {stats['unknown']}")
    for path in ("rest", "stream"):
        acc = [(t.accepted - t.sent) / 1e6 for t in trips if t.accepted and t.accept_path == path]
        if acc:
            print(row(f"submit -> OrderAccepted handled, via {path}", acc))
    if stream:
        fills = [(t.filled - t.sent) / 1e6 for t in trips if t.filled]
        paths = sorted({t.fill_path for t in trips if t.filled})
        print(row(f"submit -> OrderFilled handled, via {'+'.join(paths)}", fills))
        after = [(t.filled - t.accepted) / 1e6 for t in trips if t.filled and t.accepted]
        print(row("OrderAccepted -> OrderFilled handled", after))
    print(row("POST /v2/orders call (alpaca-py, worker thread)",
              [desk.post_ms[f"rt-{i}"] for i in range(warmup, warmup + orders) if f"rt-{i}" in desk.post_ms]))


# ===================================================================================== reconciliation

def budgets() -> list[tuple[str, Callable[[], RequestBudget]]]:
    per_minute = AlpacaConfig().requests_per_minute

    def drained() -> RequestBudget:
        budget = RequestBudget(per_minute)
        for _ in range(int(budget.capacity)):  # a busy node spent its burst already
            budget.acquire()
        budget.waited_s = 0.0
        return budget

    return [(f"raised budget ({RAISED[0]:,}/min)", lambda: RequestBudget(RAISED[0], burst=RAISED[1])),
            (f"{per_minute}/min budget, full bucket", lambda: RequestBudget(per_minute)),
            (f"{per_minute}/min budget, empty bucket", drained)]


async def time_reconcile(desk: Desk, node: LiveNode, local: LocalSnapshot, repeat: int,
                         all_budgets: bool) -> list[str]:
    lines = []
    for label, make in budgets() if all_budgets else budgets()[:1]:
        for how in ("check", "run"):
            walls, requests, waited, verdict = [], 0, 0.0, ""
            for _ in range(repeat if label.startswith("raised") else 1):
                budget = make()
                reconciler = AlpacaReconciler(desk.client, desk.broker, budget=budget, alerts=desk.alerts,
                                              cfg=desk.cfg, store=desk.store, account=ACCOUNT)
                before = len(desk.fake.requests())
                began = time.perf_counter()
                if how == "check":
                    report = await reconciler.check(local, "bench", save=False)
                else:
                    report = await reconciler.run(local, node.enqueue, "bench")
                walls.append(time.perf_counter() - began)
                requests, waited = len(desk.fake.requests()) - before, budget.waited_s
                kinds: dict[str, int] = {}
                for d in report.differences:
                    kinds[d.kind] = kinds.get(d.kind, 0) + 1
                verdict = ("ok" if report.ok else "NOT ok") + (f" ({', '.join(f'{n} {k}' for k, n in kinds.items())})"
                                                              if kinds else ", no difference")
            spread = f" (best of {len(walls)}; median {statistics.median(walls):.3f})" if len(walls) > 1 else ""
            lines.append(f"  {how:<5} {label:<34} {min(walls):7.3f} s{spread}  {requests:>3} REST requests  "
                         f"budget waited {waited:5.2f} s  {verdict}")
    return lines


def reconciliation(n_orders: int, n_positions: int, repeat: int) -> None:
    symbols = tuple(f"S{i:03d}" for i in range(n_positions))
    with FakeAlpaca(symbols=symbols, crypto_symbols=(), cash=CASH, history_minutes=30) as fake:
        desk = Desk(fake, RequestBudget(RAISED[0], burst=RAISED[1]), stream=True)

        async def own(desk: Desk, node: LiveNode) -> tuple[float, list[str]]:
            began = time.perf_counter()
            trips = [desk.submit(f"rc-{i}", symbols[i % n_positions], Side.BUY) for i in range(n_orders)]
            await asyncio.wait_for(asyncio.gather(*(t.done.wait() for t in trips)), WAIT_S)
            placed = time.perf_counter() - began
            await until(lambda: node.queue.empty(), "the node's queue to drain")
            local = desk.local()
            assert len(local.orders) == n_orders and len(local.positions) == n_positions, "set-up incomplete"
            return placed, await time_reconcile(desk, node, local, repeat, all_budgets=True)

        placed, lines = desk.run(own)
    print(f"\n[reconcile, tradingd's own orders] {n_orders:,} orders (all filled) / {n_positions} positions / "
          f"{n_orders:,} fills; set-up: placed concurrently (4 REST slots) and filled via the stream in "
          f"{placed:.2f} s ({n_orders / placed:,.0f} orders/s)")
    print("\n".join(lines))

    with FakeAlpaca(symbols=symbols, crypto_symbols=(), cash=CASH, history_minutes=30) as fake:
        for i in range(n_orders):
            fake.external_order(symbols[i % n_positions], "buy", 1.0)
        desk = Desk(fake, RequestBudget(RAISED[0], burst=RAISED[1]), stream=False)
        local = LocalSnapshot(cash=fake.cash, external=frozenset(symbols))

        async def external(desk: Desk, node: LiveNode) -> list[str]:
            return await time_reconcile(desk, node, local, repeat, all_budgets=False)

        lines = desk.run(external)
    print(f"\n[reconcile, placed outside tradingd] {n_orders:,} external orders / {n_positions} external "
          "positions (tagged external before) / the same fills")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300, help="timed sequential round trips per mode")
    parser.add_argument("--warmup", type=int, default=10, help="untimed round trips first (connections, caches)")
    parser.add_argument("--recon-orders", type=int, default=1_000, help="orders at the broker to reconcile")
    parser.add_argument("--recon-positions", type=int, default=100, help="positions (symbols) to reconcile")
    parser.add_argument("--repeat", type=int, default=3, help="reconciliations per figure with the raised budget")
    args = parser.parse_args()
    for name in ("orders", "recon_orders", "recon_positions", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (1/5/15 min), Python {platform.python_version()}, "
          f"alpaca-py {version('alpaca-py')}, {platform.system()} {platform.machine()}")
    print(f"fake Alpaca on 127.0.0.1 (no request limit of its own); RequestBudget raised to {RAISED[0]:,}/min "
          f"(burst {RAISED[1]:,}) for the round trips and the set-up, so it never waits: at the production "
          f"{AlpacaConfig().requests_per_minute}/min, sequential submits would be paced to "
          f"{AlpacaConfig().requests_per_minute / 60:.1f}/s after a burst of {AlpacaConfig().requests_per_minute // 10}")
    for mode in ("reply first", "updates first", "rest only"):
        round_trip(args.orders, args.warmup, mode)
    reconciliation(args.recon_orders, args.recon_positions, args.repeat)


if __name__ == "__main__":
    main()
