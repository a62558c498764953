"""AlpacaBroker: :class:`core.ports.Broker` on Alpaca's trading REST API (alpaca-py, sync client).

``submit`` and ``cancel`` return nothing at once: they schedule a task on the running loop, the
REST call runs in a worker thread (``asyncio.to_thread``; the shared :class:`RequestBudget` is
acquired there first) and the events reach the engine through the live node's queue (``bind``).

A submit has three outcomes (ALPACA_MQTT_NOTES gotcha 3):

============================== ==============================================================
Alpaca answers                 what the broker does
============================== ==============================================================
200 + order                    the snapshot's events (acceptance, fills) via :class:`FillTracker`
403 / 422 validation (refused) ``OrderRejected`` naming the HTTP status (nothing was created)
429                            ``budget.penalize(Retry-After or 1 s)``, send again (nothing was created)
422 client_order_id not unique the order exists: look it up by client_order_id and adopt it
timeout, connection error, 5xx look it up by client_order_id (``lookup_attempts``, exponential
                               backoff): found -> adopt it; not found -> it never arrived: send it
                               again with the SAME client_order_id (Alpaca refuses a second order
                               with that id, so this cannot duplicate) at most ``max_resubmits``
                               times; lookups failing -> keep it in :attr:`unresolved` and alert
                               (never resent blindly, never rejected locally while it may exist)
============================== ==============================================================

Events of one order come from the REST replies, the trade_updates stream and reconciliation in
any order and any number of times; the tracker emits each acceptance, fill increment and end
once, and :attr:`emission` serialises turning reports into events and enqueueing them, so the
queue sees them in the order the tracker produced them (an increment's price is only right in
that order). Alerts and exception texts use :func:`classify`'s safe text (the SDK's ``APIError``
text is the raw response body, possibly an HTML page; the keys are never in it).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from enum import Enum
from typing import Any

from core.enums import OrderStatus, OrderType
from core.events import OrderRejected
from core.orders import Order
from core.ports import AlertSink
from daemon.adapters.alpaca.clients import CallOutcome, ClassifiedError, RequestBudget, classify
from daemon.adapters.alpaca.orders import FillTracker, OrderEvent, order_request

__all__ = ["AlpacaBroker"]

Enqueue = Callable[[Any], Awaitable[None]]


class _Lookup(Enum):
    FOUND = "found"
    ABSENT = "absent"  # 404 by client_order_id: Alpaca has no such order
    UNKNOWN = "unknown"  # the lookups themselves failed


def _event_name(event: Any) -> str:
    return str(getattr(event, "value", event))


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


class AlpacaBroker:
    """Orders to Alpaca; their events back through the live node's queue.

    Parameters
    ----------
    client : alpaca.trading.client.TradingClient
        Built by :func:`daemon.adapters.alpaca.clients.trading_client` (timeouts set, SDK retries off).
    budget : RequestBudget
        The account's shared REST budget; acquired in the worker thread before every call.
    alerts : AlertSink
        Unknown outcomes, failed cancels and internal errors go here (never a key or an HTML body).
    now : callable
        ``now() -> int``: wall time, epoch ns UTC (the events' ``ts_init``).
    crypto : bool
        The account trades crypto (GTC only; see :func:`order_request`).
    lookup_attempts : int
        Lookups by client_order_id (>= 1) before an outcome is left unresolved.
    lookup_backoff : float
        Seconds before the second lookup, doubling after each (>= 0).
    max_concurrency : int
        REST calls in flight at once (worker threads, >= 1).
    cancel_check_delay : float
        Seconds to wait after a cancel for its terminal event before looking the order up (a lost
        stream event); the same pause separates later checks.
    max_resubmits : int
        Sends again with the same client_order_id after "not found" (>= 0).
    max_rate_limit_retries : int
        Consecutive 429s on one submit before giving up (the order was then never placed).

    Raises
    ------
    ValueError
        For a parameter out of range (the message names it).
    """

    def __init__(self, client: Any, *, budget: RequestBudget, alerts: AlertSink, now: Callable[[], int],
                 crypto: bool = False, lookup_attempts: int = 5, lookup_backoff: float = 0.5,
                 max_concurrency: int = 4, cancel_check_delay: float = 2.0, max_resubmits: int = 2,
                 max_rate_limit_retries: int = 10) -> None:
        for name, value, low in (("lookup_attempts", lookup_attempts, 1), ("max_concurrency", max_concurrency, 1),
                                 ("max_resubmits", max_resubmits, 0),
                                 ("max_rate_limit_retries", max_rate_limit_retries, 0)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"AlpacaBroker: {name} must be an int >= {low}, got {value!r}")
        for name, seconds in (("lookup_backoff", lookup_backoff), ("cancel_check_delay", cancel_check_delay)):
            if not (isinstance(seconds, (int, float)) and 0.0 <= seconds <= 600.0):
                raise ValueError(f"AlpacaBroker: {name} must be seconds in [0, 600], got {seconds!r}")
        self.client = client
        self.budget = budget
        self.alerts = alerts
        self.crypto = crypto
        self.lookup_attempts = lookup_attempts
        self.lookup_backoff = float(lookup_backoff)
        self.cancel_check_delay = float(cancel_check_delay)
        self.max_resubmits = max_resubmits
        self.max_rate_limit_retries = max_rate_limit_retries
        self.tracker = FillTracker()
        self.emission = asyncio.Lock()
        """Held while reports become events and are enqueued (the stream feed takes it too)."""
        self._now = now
        self._enqueue: Enqueue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rest_slots = asyncio.Semaphore(max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._submitting: dict[str, asyncio.Task[None]] = {}
        self._live: set[str] = set()  # ids that reached (or may have reached) Alpaca and were not refused
        self._canceling: set[str] = set()  # ids with a cancel flow running (a repeat sends nothing)
        self._unresolved: set[str] = set()
        self._market: set[str] = set()  # market orders of this session not seen done (booked at drain)
        self._restored: set[str] = set()  # seeded with an unknown outcome (from before a restart)
        self._resubmits: Counter[str] = Counter()
        self._waiters: dict[str, asyncio.Event] = {}  # cancel follow-ups waiting for an end
        self._stats: Counter[str] = Counter()
        self._foreign: set[str] = set()  # ids of updates for orders not ours (alerted once each)

    # --- wiring --------------------------------------------------------------------------------
    def bind(self, enqueue: Enqueue) -> None:
        """Deliver events with ``await enqueue(event)`` (the live node's); call inside the loop.

        Raises
        ------
        RuntimeError
            When called outside a running event loop.
        """
        self._loop = asyncio.get_running_loop()
        self._enqueue = enqueue

    @property
    def unresolved(self) -> set[str]:
        """client_order_ids whose submit outcome is still unknown (looked up again by
        :meth:`resolve_unknown`)."""
        return set(self._unresolved)

    @property
    def stats(self) -> dict[str, int]:
        """Counters: submits, accepted, rejected, unknown, lookups, rate_limited, resubmits,
        cancels, updates, in_flight (tasks running now) and unresolved (ids now)."""
        out = {key: self._stats[key] for key in ("submits", "accepted", "rejected", "unknown", "lookups",
                                                 "rate_limited", "resubmits", "cancels", "updates")}
        out["in_flight"] = len(self._tasks)
        out["unresolved"] = len(self._unresolved)
        return out

    def seed(self, orders: Iterable[Order]) -> None:
        """Know the orders restored after a restart: their fills count as booked, and those whose
        submit outcome was unknown (INITIALIZED/SUBMITTED) become :attr:`unresolved`."""
        for order in orders:
            coid = order.client_order_id
            self.tracker.seed(order)
            if order.status in (OrderStatus.INITIALIZED, OrderStatus.SUBMITTED):
                self._unresolved.add(coid)
                self._restored.add(coid)
                self._live.add(coid)
            elif order.status is not OrderStatus.REJECTED:
                self._live.add(coid)

    # --- Broker port ---------------------------------------------------------------------------
    def submit(self, order: Order, ts: int) -> tuple[()]:
        """Send ``order`` (read, never modified); its events arrive through the queue.

        A second submit of an id that reached Alpaca (working, done or unresolved) is answered with
        ``OrderRejected`` and sends nothing; an order Alpaca cannot express (:func:`order_request`)
        is rejected without a request.

        Raises
        ------
        RuntimeError
            If :meth:`bind` was not called.
        """
        self._soon(self._submit_now, order, ts)
        return ()

    def cancel(self, order: Order, ts: int) -> tuple[()]:
        """Cancel ``order``'s working remainder; ``OrderCanceled`` arrives through the queue (from
        the stream or, when that event is lost, from a lookup ``cancel_check_delay`` later). An
        order already done, never placed or unknown to Alpaca gives no event.

        Raises
        ------
        RuntimeError
            If :meth:`bind` was not called.
        """
        self._soon(self._cancel_now, order.client_order_id, ts)
        return ()

    # --- reports from the stream and reconciliation ----------------------------------------------
    def on_trade_update(self, u: Any) -> list[OrderEvent]:
        """Events of one ``trade_updates`` message (called on the loop thread by the stream feed,
        which enqueues them while holding :attr:`emission`). An update of an order neither
        submitted through this broker nor seeded (placed outside tradingd) gives no event: one
        warning per order, reconciliation reports it. Never raises."""
        self._stats["updates"] += 1
        try:
            coid = str(u.order.client_order_id)
            if not self.tracker.known(coid):  # placed outside tradingd: reconciliation reports it
                if coid not in self._foreign:
                    self._foreign.add(coid)
                    self._alert("warning", "update of an order tradingd did not place",
                                f"{coid}: {u.order.symbol} {_event_name(u.event)} (left to reconciliation)",
                                client_order_id=coid)
                return []
            events = self.tracker.from_trade_update(u, ts_init=self._now())
            self._seen(str(u.order.client_order_id))
        except Exception as exc:  # a malformed report must not kill the stream's reader
            self._internal_error("trade update", exc)
            return []
        return events

    def on_order_snapshot(self, o: Any) -> list[OrderEvent]:
        """Events of an Alpaca order seen by reconciliation (idempotent). Never raises."""
        try:
            events = self.tracker.from_snapshot(o, ts_init=self._now())
            self._seen(str(o.client_order_id))
        except Exception as exc:
            self._internal_error("order snapshot", exc)
            return []
        return events

    async def resolve_unknown(self) -> None:
        """Look up every unresolved id again (reconciliation calls this). Found: its events are
        delivered. Not found: it never reached Alpaca and, being no longer fresh, is not sent late:
        ``OrderRejected`` says so. Lookups failing again: it stays unresolved."""
        for coid in sorted(self._unresolved):
            if coid in self._submitting:
                continue  # its submit is still working on it
            state, found, _ = await self._lookup(coid)
            if state is _Lookup.FOUND:
                await self._adopt(coid, found)
            elif state is _Lookup.ABSENT:
                self._unresolved.discard(coid)
                self._live.discard(coid)
                when = "before the restart" if coid in self._restored else "earlier"
                await self._reject(coid, f"never reached Alpaca: client_order_id not found after a submit {when} of "
                                   "unknown outcome; not sent late")

    async def drain(self, timeout: float = 10.0, settle: float | None = None) -> None:
        """Wait until no submit, cancel or follow-up task runs; with ``settle`` (shutdown), then
        book the market orders still working. At most ``timeout`` seconds in all.

        At shutdown the trade_updates stream is already stopped, so the fill of a market order
        accepted moments before SIGTERM would only be booked by the next start's reconciliation.
        With ``settle``, each market order of this session that reached Alpaca and is not done is
        looked up (one REST call each, within the request budget) and its snapshot booked; those
        still working get a second look ``settle`` seconds later. A failed lookup is left to the
        next start's reconciliation.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await asyncio.sleep(0)  # let calls scheduled from other threads start their tasks
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.wait(set(self._tasks), timeout=remaining)
        if settle is not None:
            await self._book_working_market_orders(deadline, settle)

    async def _book_working_market_orders(self, deadline: float, settle: float) -> None:
        loop = asyncio.get_running_loop()
        for look in range(2):
            working = sorted(c for c in self._market if c in self._live and c not in self._unresolved
                             and not self.tracker.is_done(c))
            if not working:
                return
            if look:
                await asyncio.sleep(max(0.0, min(settle, deadline - loop.time())))
            for coid in working:
                if loop.time() >= deadline:
                    return
                self._stats["lookups"] += 1
                try:
                    o = await self._rest(self.client.get_order_by_client_id, coid)
                except Exception:
                    continue  # the next start's reconciliation books it
                await self._deliver(functools.partial(self._snapshot_events, o))
                self._seen(coid)

    def _snapshot_events(self, o: Any) -> list[OrderEvent]:
        return self.tracker.from_snapshot(o, ts_init=self._now())

    # --- submit --------------------------------------------------------------------------------
    def _submit_now(self, order: Order, ts: int) -> None:
        coid = order.client_order_id
        try:
            if coid in self._live:
                self._stats["rejected"] += 1
                event, init = self.tracker.stamp(coid, ts, self._now())
                self._spawn(self._deliver(lambda: [OrderRejected(
                    client_order_id=coid, reason="duplicate client_order_id: this id was already sent to Alpaca "
                    "(the first order is not affected)", ts_event=event, ts_init=init)]))
                return
            try:
                request = order_request(order, crypto=self.crypto)
            except ValueError as exc:
                self._stats["rejected"] += 1
                event, init = self.tracker.stamp(coid, ts, self._now())
                reason = f"not sent to Alpaca: {exc}"
                self._spawn(self._deliver(lambda: [OrderRejected(client_order_id=coid, reason=reason,
                                                                 ts_event=event, ts_init=init)]))
                return
            self._live.add(coid)
            self.tracker.seed(order)
            if order.order_type is OrderType.MARKET:
                self._market.add(coid)
            self._stats["submits"] += 1
            self._submitting[coid] = self._spawn(self._submit_flow(coid, request))
        except Exception as exc:  # scheduling itself failed: the engine keeps the order SUBMITTED
            self._internal_error(f"submit of {coid}", exc)

    async def _submit_flow(self, coid: str, request: Any) -> None:
        try:
            await self._place(coid, request)
        except Exception as exc:  # nothing may escape a task; the outcome is unknown now
            self._unknown(coid, f"internal error: {type(exc).__name__}")
            self._internal_error(f"submit of {coid}", exc)
        finally:
            self._submitting.pop(coid, None)

    async def _place(self, coid: str, request: Any) -> None:
        may_exist = False  # an earlier attempt of this flow may have created the order
        throttled = 0
        while True:
            try:
                reply = await self._rest(self.client.submit_order, request)
            except Exception as exc:
                err = classify(exc)
                if err.outcome is CallOutcome.REJECTED:
                    self._stats["rejected"] += 1
                    self._live.discard(coid)
                    await self._reject(coid, f"Alpaca refused the order (HTTP {err.status}): {err.text}")
                    return
                if err.outcome is CallOutcome.RATE_LIMITED:
                    self._stats["rate_limited"] += 1
                    self.budget.penalize(err.retry_after or 1.0)
                    throttled += 1
                    if throttled <= self.max_rate_limit_retries:
                        continue
                    if not may_exist:
                        self._stats["rejected"] += 1
                        self._live.discard(coid)
                        await self._reject(coid, f"not placed: Alpaca rate-limited {throttled} submits in a row")
                        return
                if err.outcome is CallOutcome.UNKNOWN:
                    self._alert("warning", "order submit outcome unknown, looking it up",
                                f"{coid}: {err.text}", client_order_id=coid)
                state, found, lookup_text = await self._lookup(coid)
                if state is _Lookup.FOUND:
                    await self._adopt(coid, found)
                    return
                if self._reported(coid):
                    self._stats["accepted"] += 1
                    return  # the stream reported the order meanwhile: it exists, its events are out
                if (state is _Lookup.ABSENT and err.outcome is not CallOutcome.DUPLICATE
                        and self._resubmits[coid] < self.max_resubmits):
                    self._resubmits[coid] += 1
                    self._stats["resubmits"] += 1
                    may_exist = True
                    throttled = 0
                    continue  # it never arrived: the same client_order_id again cannot duplicate it
                why = (f"{err.text}; lookup by client_order_id: "
                       + (lookup_text if state is _Lookup.UNKNOWN else "not found"))
                self._unknown(coid, why)
                return
            await self._adopt(coid, reply)
            return

    async def _adopt(self, coid: str, o: Any) -> None:
        self._stats["accepted"] += 1
        await self._deliver(lambda: self.tracker.from_snapshot(o, ts_init=self._now()))
        self._seen(coid)

    async def _reject(self, coid: str, reason: str) -> None:
        def rejection() -> list[OrderEvent]:
            now = self._now()
            event, init = self.tracker.stamp(coid, now, now)
            return [OrderRejected(client_order_id=coid, reason=reason, ts_event=event, ts_init=init)]

        await self._deliver(rejection)

    def _unknown(self, coid: str, why: str) -> None:
        self._stats["unknown"] += 1
        self._unresolved.add(coid)
        self._alert("error", "order outcome unknown",
                    f"{coid}: {why}. Kept unresolved (looked up again at reconciliation); not resent blindly.",
                    client_order_id=coid)

    async def _lookup(self, coid: str) -> tuple[_Lookup, Any, str]:
        """Find ``coid`` at Alpaca: (FOUND, order, ""), (ABSENT, None, "") or (UNKNOWN, None, why)."""
        last = "no attempt"
        for attempt in range(self.lookup_attempts):
            if attempt:
                await asyncio.sleep(self.lookup_backoff * 2 ** (attempt - 1))
            self._stats["lookups"] += 1
            try:
                return _Lookup.FOUND, await self._rest(self.client.get_order_by_client_id, coid), ""
            except Exception as exc:
                err = classify(exc)
                if err.outcome is CallOutcome.NOT_FOUND:
                    return _Lookup.ABSENT, None, ""
                if err.outcome is CallOutcome.RATE_LIMITED:
                    self._stats["rate_limited"] += 1
                    self.budget.penalize(err.retry_after or 1.0)
                last = err.text if err.status is None or err.text.startswith("HTTP") else f"HTTP {err.status}: {err.text}"
        return _Lookup.UNKNOWN, None, f"{self.lookup_attempts} lookups failed, last: {last}"

    # --- cancel --------------------------------------------------------------------------------
    def _cancel_now(self, coid: str, ts: int) -> None:
        try:
            if self.tracker.is_done(coid) or coid in self._canceling:
                return  # done already (nothing to cancel, no event) or being canceled
            self._stats["cancels"] += 1
            self._canceling.add(coid)
            self._spawn(self._cancel_flow(coid))
        except Exception as exc:
            self._internal_error(f"cancel of {coid}", exc)

    async def _cancel_flow(self, coid: str) -> None:
        try:
            pending = self._submitting.get(coid)
            if pending is not None:
                await asyncio.wait([pending])  # the submit's outcome decides what there is to cancel
            if self.tracker.is_done(coid):
                return
            broker_id = self.tracker.broker_order_id(coid)
            if not _is_uuid(broker_id):
                state, found, why = await self._lookup(coid)
                if state is _Lookup.ABSENT:
                    return  # never reached Alpaca: nothing to cancel
                if state is _Lookup.UNKNOWN:
                    self._alert("error", "cancel not sent: order not found", f"{coid}: {why}", client_order_id=coid)
                    return
                await self._deliver(lambda: self.tracker.from_snapshot(found, ts_init=self._now()))
                self._seen(coid)
                if self.tracker.is_done(coid):
                    return
                broker_id = str(found.id)
            outcome = await self._send_cancel(coid, broker_id)
            if outcome is not CallOutcome.NOT_FOUND:
                await self._follow_up(coid, broker_id)
        except Exception as exc:
            self._internal_error(f"cancel of {coid}", exc)
        finally:
            self._canceling.discard(coid)

    async def _send_cancel(self, coid: str, broker_id: str) -> CallOutcome | None:
        """DELETE the order; None on 204, else the failure's outcome (422 = already final)."""
        err: ClassifiedError | None = None
        for _ in range(3):  # DELETE is idempotent: a repeat after a timeout is safe
            try:
                await self._rest(self.client.cancel_order_by_id, broker_id)
                return None
            except Exception as exc:
                err = classify(exc)
                if err.outcome is CallOutcome.RATE_LIMITED:
                    self._stats["rate_limited"] += 1
                    self.budget.penalize(err.retry_after or 1.0)
                    continue
                if err.outcome in (CallOutcome.NOT_FOUND, CallOutcome.REJECTED):
                    return err.outcome  # 422 "already filled/canceled": that end arrives by stream or lookup
        assert err is not None
        self._alert("error", "cancel outcome unknown", f"{coid}: {err.text}; looking the order up",
                    client_order_id=coid)
        return err.outcome

    async def _follow_up(self, coid: str, broker_id: str) -> None:
        """Wait for the order's end; when the stream does not bring it, look the order up."""
        for _ in range(self.lookup_attempts):
            if not self.tracker.is_done(coid):
                waiter = self._waiters.setdefault(coid, asyncio.Event())
                try:
                    await asyncio.wait_for(waiter.wait(), self.cancel_check_delay)
                except TimeoutError:
                    pass
            if self.tracker.is_done(coid):
                return
            try:
                o = await self._rest(self.client.get_order_by_id, broker_id)
            except Exception as exc:
                err = classify(exc)
                if err.outcome is CallOutcome.RATE_LIMITED:
                    self.budget.penalize(err.retry_after or 1.0)
                continue
            await self._deliver(lambda: self.tracker.from_snapshot(o, ts_init=self._now()))
            self._seen(coid)
        if not self.tracker.is_done(coid):
            self._alert("warning", "cancel not confirmed", f"{coid}: Alpaca still reports it working",
                        client_order_id=coid)

    # --- plumbing ------------------------------------------------------------------------------
    def _soon(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the loop thread: now when called there (the engine's pump), else queued."""
        loop = self._loop
        if loop is None or self._enqueue is None:
            raise RuntimeError("AlpacaBroker.bind(enqueue) must be called inside the running loop first")
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if here:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _rest(self, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._rest_slots:
            return await asyncio.to_thread(self._blocking, fn, args)

    def _blocking(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        self.budget.acquire()
        return fn(*args)

    async def _deliver(self, compute: Callable[[], list[OrderEvent]]) -> None:
        """Compute events and enqueue them under :attr:`emission` (their order is the tracker's)."""
        enqueue = self._enqueue
        assert enqueue is not None
        async with self.emission:
            for event in compute():
                await enqueue(event)

    def _reported(self, coid: str) -> bool:
        """True once any Alpaca snapshot of ``coid`` (reply, lookup, stream) was turned into events."""
        return bool(self.tracker.broker_order_id(coid))

    def _seen(self, coid: str) -> None:
        """A snapshot of ``coid`` arrived: its outcome is known; wake a cancel follow-up if done."""
        self._unresolved.discard(coid)
        if self.tracker.is_done(coid):
            self._market.discard(coid)
            waiter = self._waiters.pop(coid, None)
            if waiter is not None:
                waiter.set()

    def _alert(self, severity: str, title: str, text: str, **fields: Any) -> None:
        try:
            self.alerts.alert(severity, title, text, **fields)
        except Exception:  # an AlertSink must not raise; if one does, trading goes on
            pass

    def _internal_error(self, what: str, exc: Exception) -> None:
        self._alert("critical", f"AlpacaBroker internal error in {what}", f"{type(exc).__name__}: {classify(exc).text}")
