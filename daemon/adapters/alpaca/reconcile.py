"""The broker side of reconciliation: Alpaca's REST state as a :class:`state.reconcile.BrokerSnapshot`,
compared with tradingd's, the missed events applied, and trading halted on what nothing explains.

Events of the trade_updates stream are lost while it is disconnected and while the daemon is
down (ALPACA_MQTT_NOTES §6), so the node reconciles at startup, after every stream reconnect and
every ``reconcile_interval``. Every call is a read (GET): a failed one is retried (429: the
shared budget is penalized for the server's Retry-After; timeouts and 5xx: twice more with
backoff), then :class:`ReconcileError` is raised; nothing is then applied or saved (the caller
must not start trading on a reconciliation that did not happen).

REST calls run in worker threads (``asyncio.to_thread``) after taking a token of the account's
shared :class:`~daemon.adapters.alpaca.clients.RequestBudget`. Orders are paged 500 at a time
with ``after`` = the last page's newest ``created_at`` (Alpaca's orders endpoint has no page
token), account FILL activities 100 at a time by ``page_token``. The store is called on the
loop's thread (the engine's), as it is not thread-safe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from core.enums import Side
from core.events import HaltTrading
from core.orders import Order
from core.ports import AlertSink
from core.time import NANOS_PER_DAY, NANOS_PER_MINUTE, to_datetime
from daemon.adapters.alpaca.clients import CallOutcome, RequestBudget, classify
from daemon.adapters.alpaca.config import AlpacaConfig
from daemon.adapters.alpaca.orders import to_ns
from state.reconcile import (EXTERNAL_ORDER, BrokerFill, BrokerOrder, BrokerPosition, BrokerSnapshot, LocalSnapshot,
                             ReconcileReport, reconcile)

__all__ = ["AlpacaReconciler", "ReconcileError", "broker_order", "broker_position"]

Apply = Callable[[Any], Awaitable[None]]

ORDER_PAGE = 500  # Alpaca's maximum for GET /v2/orders
ACTIVITY_PAGE = 100  # Alpaca's maximum for GET /v2/account/activities
_ONE_US = timedelta(microseconds=1)


class ReconcileError(RuntimeError):
    """The broker's state could not be read (the message says which call and why; never a key)."""


class _NotFound(Exception):
    """404 of a lookup."""


def _float(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ReconcileError(f"{what}: {value!r} is not a number") from None
    return number


def _side(value: Any, what: str) -> Side:
    try:
        return Side(str(getattr(value, "value", value)).lower())
    except ValueError:
        raise ReconcileError(f"{what}: side {value!r} is neither buy nor sell") from None


def broker_order(o: Any) -> BrokerOrder:
    """Map an ``alpaca.trading.models.Order`` to a :class:`BrokerOrder` (quantities in shares;
    a notional order's missing ``qty`` is 0; prices USD).

    Raises
    ------
    ReconcileError
        If a number or the side cannot be read (the message names the order).
    """
    cid = str(o.client_order_id)
    what = f"Alpaca order {cid!r}"
    try:
        return BrokerOrder(
            client_order_id=cid, broker_order_id=str(o.id), symbol=str(o.symbol or ""), side=_side(o.side, what),
            quantity=_float(o.qty, f"{what} qty") if o.qty is not None else 0.0,
            filled_quantity=_float(o.filled_qty or 0, f"{what} filled_qty"),
            avg_fill_price=_float(o.filled_avg_price or 0, f"{what} filled_avg_price"),
            status=str(getattr(o.status, "value", o.status)), created_ns=to_ns(o.created_at),
            updated_ns=to_ns(o.updated_at or o.created_at))
    except ValueError as exc:
        raise ReconcileError(f"{what}: {exc}") from None


def broker_position(p: Any) -> BrokerPosition:
    """Map an ``alpaca.trading.models.Position`` to a :class:`BrokerPosition` (signed shares:
    a ``short`` position is negative whichever sign Alpaca gives its ``qty``).

    Raises
    ------
    ReconcileError
        If a number cannot be read.
    """
    what = f"Alpaca position {p.symbol!r}"
    quantity = _float(p.qty, f"{what} qty")
    if str(getattr(p.side, "value", p.side)).lower() == "short":
        quantity = -abs(quantity)
    try:
        return BrokerPosition(symbol=str(p.symbol), quantity=quantity,
                              avg_price=_float(p.avg_entry_price or 0, f"{what} avg_entry_price"))
    except ValueError as exc:
        raise ReconcileError(str(exc)) from None


def _fill(a: dict[str, Any]) -> BrokerFill:
    what = f"Alpaca FILL activity {a.get('id')!r}"
    try:
        moment = datetime.fromisoformat(str(a["transaction_time"]).replace("Z", "+00:00"))
        return BrokerFill(activity_id=str(a["id"]), broker_order_id=str(a["order_id"]), symbol=str(a["symbol"]),
                          side=_side(a["side"], what), quantity=_float(a["qty"], f"{what} qty"),
                          price=_float(a["price"], f"{what} price"),
                          cum_quantity=_float(a.get("cum_qty", a["qty"]), f"{what} cum_qty"), ts=to_ns(moment))
    except KeyError as exc:
        raise ReconcileError(f"{what}: field {exc} missing") from None
    except ValueError as exc:
        raise ReconcileError(f"{what}: {exc}") from None


def _reader(local: LocalSnapshot | Callable[[], LocalSnapshot]) -> Callable[[], LocalSnapshot]:
    if isinstance(local, LocalSnapshot):
        return lambda: local
    return local


class AlpacaReconciler:
    """Reconcile one tradingd account with its Alpaca account.

    Parameters
    ----------
    client : alpaca.trading.client.TradingClient
        Built by :func:`daemon.adapters.alpaca.clients.trading_client` (timeouts, SDK retries off).
    broker : AlpacaBroker or None
        Turns the broker's orders into events (``on_order_snapshot``, ``emission``) and looks its
        unresolved submits up (``resolve_unknown``). None: read-only use (:meth:`check`).
    budget : RequestBudget
        The account's shared REST budget.
    alerts : AlertSink
        Critical alert on an unexplained difference, warning when missed events were applied.
    cfg : AlpacaConfig
        ``on_mismatch`` (``"halt"`` or ``"alert"``) and ``cash_tolerance`` (USD).
    store
        ``SqlStore`` or ``MemoryStore``: ``last_reconciliation``, ``save_reconciliation``,
        ``broker_account``, and ``account_orders`` (read only when the broker reports an order
        of our id form that ``local`` does not hold).
    account : str
        tradingd account name (the rows saved belong to it).
    now : callable
        ``now() -> int``, wall time in epoch ns UTC.
    confirm_delay : float
        Seconds before a second snapshot confirms an unexplained difference (the REST calls are
        not one atomic read: a fill between two of them looks like a mismatch once).
    attempts : int
        Tries per REST call for timeouts, 5xx and 429 (>= 1).
    confirmations : int
        Further snapshots (``confirm_delay`` apart, each against a fresh local reading) an
        unexplained difference must survive before it counts.

    Raises
    ------
    ValueError
        For ``attempts`` < 1 or a negative ``confirm_delay``.
    """

    def __init__(self, client: Any, broker: Any, *, budget: RequestBudget, alerts: AlertSink, cfg: AlpacaConfig,
                 store: Any, account: str, now: Callable[[], int] = time.time_ns, confirm_delay: float = 1.0,
                 attempts: int = 3, qty_tolerance: float = 1e-6, confirmations: int = 2) -> None:
        if not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"AlpacaReconciler: attempts must be an int >= 1, got {attempts!r}")
        if not 0.0 <= confirm_delay <= 60.0:
            raise ValueError(f"AlpacaReconciler: confirm_delay must be seconds in [0, 60], got {confirm_delay!r}")
        self.client = client
        self.broker = broker
        self.budget = budget
        self.alerts = alerts
        self.cfg = cfg
        self.store = store
        self.account = account
        self.confirm_delay = float(confirm_delay)
        self.attempts = attempts
        self.confirmations = max(0, confirmations)
        self.qty_tolerance = qty_tolerance
        self._now = now
        self.orders: dict[str, Any] = {}
        """client_order_id -> the alpaca-py ``Order`` of the last snapshot."""
        self.requests = 0
        """REST requests the last snapshot made."""

    # --- REST ----------------------------------------------------------------------------------
    def _blocking(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        self.budget.acquire()
        return fn(*args)

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One read, retried on 429 / timeouts / 5xx; 404 raises :class:`_NotFound`."""
        for attempt in range(self.attempts):
            self.requests += 1
            try:
                return await asyncio.to_thread(self._blocking, fn, args)
            except Exception as exc:
                err = classify(exc)
                if err.outcome is CallOutcome.NOT_FOUND:
                    raise _NotFound(what) from None
                last = attempt == self.attempts - 1
                if err.outcome is CallOutcome.RATE_LIMITED and not last:
                    self.budget.penalize(err.retry_after or 1.0)
                    continue
                if err.outcome is CallOutcome.UNKNOWN and not last:
                    await asyncio.sleep(0.25 * 2 ** attempt)
                    continue
                raise ReconcileError(f"reconciliation: {what} failed after {attempt + 1} attempt"
                                     f"{'s' if attempt else ''}: {err.text}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the snapshot ----------------------------------------------------------------------------
    def window_start(self, local_orders: Iterable[Order], taken_ns: int) -> int:
        """Epoch ns UTC the broker's orders and fills are read from: the oldest open local order
        (minus a minute of clock difference) or the last reconciliation minus a day, whichever is
        earlier (a day before ``taken_ns`` when neither exists)."""
        last = self.store.last_reconciliation(self.account)
        starts = [o.ts_created - NANOS_PER_MINUTE for o in local_orders if o.is_open]
        starts.append((int(last["ts"]) if last is not None else taken_ns) - NANOS_PER_DAY)
        return min(starts)

    async def snapshot(self, local_orders: Iterable[Order], *, symbols: Iterable[str] = ()) -> BrokerSnapshot:
        """Read the broker's orders (since :meth:`window_start`), positions, account and fills.

        Local open orders missing from the order list are looked up by client_order_id (404:
        the broker does not know them). The alpaca-py orders are kept in :attr:`orders`. Alpaca
        names a crypto pair ``BTCUSD`` in positions and ``BTC/USD`` elsewhere: broker symbols are
        given the spelling of the local orders, ``symbols`` and ``cfg.symbols``.

        Raises
        ------
        ReconcileError
            If a call fails for good or an answer cannot be read.
        """
        from alpaca.common.enums import Sort
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        local = list(local_orders)
        taken = self._now()
        self.requests = 0
        start = to_datetime(self.window_start(local, taken))
        after = start
        raw: dict[str, Any] = {}
        while True:  # page by `after` = the newest created_at seen (minus 1 us: ties are not lost)
            page = await self._call("GET /v2/orders", self.client.get_orders, GetOrdersRequest(
                status=QueryOrderStatus.ALL, after=after, limit=ORDER_PAGE, direction=Sort.ASC))
            new = [o for o in page if str(o.client_order_id) not in raw]
            for o in new:
                raw[str(o.client_order_id)] = o
            if len(page) < ORDER_PAGE or not new:
                break
            after = max(o.created_at for o in page) - _ONE_US
        for order in local:
            if order.is_open and order.client_order_id not in raw:
                try:
                    raw[order.client_order_id] = await self._call(
                        f"lookup of order {order.client_order_id!r}", self.client.get_order_by_client_id,
                        order.client_order_id)
                except _NotFound:
                    pass  # the broker does not know it
        positions = await self._call("GET /v2/positions", self.client.get_all_positions)
        account = await self._call("GET /v2/account", self.client.get_account)
        fills = await self._fills(after=start)
        self.orders = raw
        names = {s.replace("/", ""): s for s in (*(o.symbol for o in local), *symbols, *self.cfg.symbols) if "/" in s}

        def named(item: Any) -> Any:
            return replace(item, symbol=names[item.symbol]) if item.symbol in names else item

        return BrokerSnapshot(
            orders=tuple(sorted((named(broker_order(o)) for o in raw.values()),
                                key=lambda b: (b.created_ns, b.client_order_id))),
            positions=tuple(named(broker_position(p)) for p in positions), fills=tuple(named(f) for f in fills),
            cash=_float(account.cash or 0, "Alpaca account cash"),
            equity=_float(account.equity or 0, "Alpaca account equity"),
            account_number=str(account.account_number), taken_ns=taken)

    async def _fills(self, *, after: datetime) -> list[BrokerFill]:
        fills: list[BrokerFill] = []
        token: str | None = None
        stamp = after.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        while True:
            params: dict[str, Any] = {"after": stamp, "direction": "asc", "page_size": ACTIVITY_PAGE}
            if token is not None:
                params["page_token"] = token
            page = await self._call("GET /v2/account/activities/FILL", self.client.get,
                                    "/account/activities/FILL", params)
            if not isinstance(page, list):
                raise ReconcileError(f"reconciliation: account activities: expected a list, got "
                                     f"{type(page).__name__}")
            fills.extend(_fill(a) for a in page if isinstance(a, dict))
            if len(page) < ACTIVITY_PAGE:
                return fills
            token = str(page[-1].get("id"))

    # --- reconciling ---------------------------------------------------------------------------
    def _complete(self, local: LocalSnapshot) -> LocalSnapshot:
        """Add what the store knows: the bound broker account, symbols tagged external before."""
        changes: dict[str, Any] = {}
        if local.broker_account_number is None:
            binding = self.store.broker_account(self.account)
            if binding is not None and binding["broker"] == "alpaca":
                changes["broker_account_number"] = binding["broker_account_number"]
        last = self.store.last_reconciliation(self.account)
        if last is not None and last.get("external_positions"):
            changes["external"] = local.external | frozenset(last["external_positions"])
        return replace(local, **changes) if changes else local

    async def _reconcile(self, local: LocalSnapshot) -> ReconcileReport:
        snap = await self.snapshot(local.orders.values(), symbols=(*local.positions, *local.external))
        report = self._compare(local, snap)
        if any(d.kind == EXTERNAL_ORDER and not d.explained for d in report.differences):
            # an order of our id form we do not hold: it may be an ended order of an earlier
            # session that the running engine no longer keeps (its book has the open ones only)
            stored = {o.client_order_id for o in self.store.account_orders(self.account)} - set(local.orders)
            if stored - local.known:
                report = self._compare(replace(local, known=local.known | stored), snap)
        return report

    def _compare(self, local: LocalSnapshot, snap: BrokerSnapshot) -> ReconcileReport:
        return reconcile(local, snap, qty_tolerance=self.qty_tolerance, cash_tolerance=self.cfg.cash_tolerance)

    async def check(self, local: LocalSnapshot, reason: str, *, save: bool = True) -> ReconcileReport:
        """Reconcile without changing anything (the offline ``tradingd reconcile``): snapshot,
        compare, save the result (``save``) and return it; no event, no halt, no alert.

        Raises
        ------
        ReconcileError
            If the broker's state cannot be read (nothing is saved then).
        """
        report = await self._reconcile(self._complete(local))
        if save:
            self.store.save_reconciliation(report, reason, account=self.account)
        return report

    async def run(self, local: LocalSnapshot | Callable[[], LocalSnapshot], apply: Apply, reason: str) -> ReconcileReport:
        """Reconcile the running node with the broker and act on the result.

        Looks the broker's unresolved submits up first (``broker.resolve_unknown()``), takes a
        snapshot and compares it with ``local``; an unexplained difference is confirmed by a
        second snapshot ``confirm_delay`` later (the REST reads are not atomic). Then every order
        of ``report.to_apply`` becomes the broker's events (``broker.on_order_snapshot``,
        delivered with ``await apply(event)`` under ``broker.emission``, so they keep their order
        with the stream's). When the report is not ok: ``cfg.on_mismatch == "halt"`` applies
        ``HaltTrading(reason="reconciliation: <kinds>")`` and alerts critical; ``"alert"`` only
        alerts. The report is saved with ``reason``.

        Parameters
        ----------
        local
            The node's orders (at least the open ones), positions, cash and external symbols, or a
            callable that reads them now: the confirming second pass then compares the broker's
            later state with the node's later state (the engine went on handling events meanwhile;
            comparing it with the first reading would call in-flight fills a mismatch).
        apply
            ``await apply(event)`` hands an event or command to the engine (the node's enqueue).
        reason
            Why it runs: ``"startup"``, ``"reconnect"``, ``"scheduled"``, ...

        Raises
        ------
        ReconcileError
            If the broker's state cannot be read (nothing is applied or saved then).
        RuntimeError
            If the reconciler has no broker.
        """
        broker = self.broker
        if broker is None:
            raise RuntimeError("AlpacaReconciler.run needs the AlpacaBroker (use check() read-only)")
        await broker.resolve_unknown()
        read = _reader(local)
        current = self._complete(read())
        report = await self._reconcile(current)
        for _ in range(self.confirmations):
            if report.ok:
                break
            await asyncio.sleep(self.confirm_delay)
            current = self._complete(read())
            report = await self._reconcile(current)
        local = current
        applied = 0
        for cid in report.to_apply:
            o = self.orders.get(cid)
            if o is None:  # pragma: no cover - to_apply only names orders of the snapshot
                continue
            async with broker.emission:
                for event in broker.on_order_snapshot(o):
                    await apply(event)
                    applied += 1
        self.store.save_reconciliation(report, reason, account=self.account)
        if not report.ok:
            halt = self.cfg.on_mismatch == "halt"
            if halt:
                ts = self._now()
                await apply(HaltTrading(reason=report.halt_reason(), ts_event=ts, ts_init=ts))
            lines = [f"{d.kind} {d.symbol or ''} {d.client_order_id or ''}: {d.detail}".replace("  ", " ")
                     for d in report.unexplained]
            self._alert("critical", "reconciliation mismatch: trading halted" if halt else
                        "reconciliation mismatch (on_mismatch = alert: trading goes on)",
                        "\n".join(lines[:10]) + (f"\n... and {len(lines) - 10} more" if len(lines) > 10 else ""),
                        reason=reason, kinds=sorted({d.kind for d in report.unexplained}))
        elif report.to_apply or set(report.external_positions) - local.external:
            self._alert("warning", "reconciliation applied missed broker events" if report.to_apply else
                        "reconciliation found positions held outside tradingd",
                        f"{len(report.to_apply)} orders updated ({applied} events); external positions: "
                        f"{', '.join(report.external_positions) or 'none'}", reason=reason)
        return report

    def _alert(self, severity: str, title: str, text: str, **fields: Any) -> None:
        try:
            self.alerts.alert(severity, title, text, account=self.account, **fields)
        except Exception:  # an AlertSink must not raise; if one does, reconciliation goes on
            pass
