"""Conformance checks every :class:`core.ports.Broker` adapter must pass (River's
``check_estimator`` pattern): shipped with the code, so the paper broker today and the Alpaca
adapter later run the very same checks.

=========================================== =============================================== ======
check                                       what must hold                                  market
=========================================== =============================================== ======
``submit_answers_accepted_or_rejected``     a submit is answered by exactly one accepted or
                                            rejected for its ``client_order_id``, first
``invalid_order_rejected_not_raised``       a zero, negative or NaN quantity, a LIMIT
                                            without a price, or a STOP_LIMIT without its
                                            stop or its limit price, is rejected, never
                                            raised
``duplicate_client_order_id_rejected``      a second submit of a working id is rejected and
                                            leaves the first order working
``rejected_id_may_be_reused``               after a rejection the same id may be submitted
``cancel_unknown_is_noop``                  cancel of an id never submitted: no event
``cancel_finished_is_noop``                 cancel of a canceled, rejected or filled order:  filled
                                            no event
``fills_cum_quantity_monotone_and_bounded`` fills' ``cum_quantity`` never decreases, never     yes
                                            exceeds the quantity and adds up the fills;
                                            side, symbol, price and commission are sane
``events_carry_id_and_ordered_ts``          every event names a submitted order and, per     yes
                                            order, ``ts_event``/``ts_init`` never decrease
``inputs_not_mutated``                      no :class:`~core.orders.Order` passed in is      yes
                                            modified by submit, cancel or fills
=========================================== =============================================== ======

A broker is driven through a *harness* that returns the events an action caused, whichever way
the adapter delivers them: :class:`SyncHarness` for a broker that answers in the call (the
paper broker; it also trades the market by feeding the venue a bar), :class:`DrainingHarness` for
an asynchronous adapter whose events arrive later through a queue (it appends what a ``drain``
callable collects after each action). Checks marked *market* need the harness to make the market
trade (``trade`` returns None when it cannot); without it they are skipped, and
``cancel_finished_is_noop`` then checks canceled and rejected orders only.

Examples
--------
>>> from backtest.broker import PaperBroker
>>> from backtest.fill_model import FillConfig
>>> report = check_broker(lambda: PaperBroker(FillConfig()))
>>> sorted(set(report.values()))
['passed']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.enums import OrderType, Side, TimeInForce
from core.events import Bar, OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderRejected, SubmitOrder
from core.orders import Order
from core.ports import Broker

_KNOWN_EVENTS = (OrderAccepted, OrderRejected, OrderCanceled, OrderExpired, OrderFilled)
_ANSWERS = (OrderAccepted, OrderRejected)
_MINUTE = 60_000_000_000
_RESTING = object()  # default limit of a check's LIMIT buy: far below the market, so it rests


class BrokerCheckFailed(AssertionError):
    """A broker failed the conformance check named :attr:`check`."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"broker check {check!r} failed: {message}")
        self.check = check


class BrokerHarness(Protocol):
    """Drives one broker and returns, in order, the events each action caused."""

    def submit(self, order: Order, ts: int) -> Sequence[Any]: ...
    def cancel(self, order: Order, ts: int) -> Sequence[Any]: ...
    def trade(self, symbol: str, ts: int) -> Sequence[Any] | None:
        """Let the market trade ``symbol`` once from ``ts`` (ns UTC); None if the harness cannot."""
        ...


class SyncHarness:
    """Harness of a broker that answers in the call (``submit``/``cancel`` return its events).

    If the broker is also a :class:`core.ports.SimulatedVenue` (has ``on_bar``), :meth:`trade`
    feeds it one bar of ``symbol`` starting at ``ts``: open and close ``price`` USD, a 0.1 % range
    and ``volume`` shares, lasting ``bar_ns``.

    Parameters
    ----------
    broker : Broker
        The adapter under test.
    price : float
        Bar price, USD (> 0).
    volume : float
        Bar volume, shares (>= 0); a small one exercises partial fills under a participation cap.
    bar_ns : int
        Bar length, ns (> 0).
    """

    def __init__(self, broker: Broker, *, price: float = 100.0, volume: float = 1_000_000.0,
                 bar_ns: int = _MINUTE) -> None:
        self.broker = broker
        self.price = price
        self.volume = volume
        self.bar_ns = bar_ns

    def submit(self, order: Order, ts: int) -> Sequence[Any]:
        return list(self.broker.submit(order, ts))

    def cancel(self, order: Order, ts: int) -> Sequence[Any]:
        return list(self.broker.cancel(order, ts))

    def trade(self, symbol: str, ts: int) -> Sequence[Any] | None:
        on_bar = getattr(self.broker, "on_bar", None)
        if on_bar is None:
            return None
        p = self.price
        return list(on_bar(Bar(symbol, ts, ts + self.bar_ns, p, p * 1.001, p * 0.999, p, self.volume)))


class DrainingHarness:
    """Harness of an asynchronous broker whose events arrive later (the live node's queue).

    After each action it appends ``drain()``: everything the adapter delivered since, e.g. by
    waiting on the order-update queue until it has been quiet for a moment.

    Parameters
    ----------
    broker : Broker
        The adapter under test.
    drain : callable
        ``drain() -> sequence of events`` delivered since the previous call, in arrival order.
    trade : callable, optional
        ``trade(symbol, ts) -> sequence of events`` that lets the market trade the working orders
        of ``symbol`` (e.g. waits for a paper account's fills); omitted, market checks are skipped.
    """

    def __init__(self, broker: Broker, drain: Callable[[], Sequence[Any]],
                 trade: Callable[[str, int], Sequence[Any]] | None = None) -> None:
        self.broker = broker
        self._drain = drain
        self._trade = trade

    def submit(self, order: Order, ts: int) -> Sequence[Any]:
        answered = list(self.broker.submit(order, ts))
        return answered + list(self._drain())

    def cancel(self, order: Order, ts: int) -> Sequence[Any]:
        answered = list(self.broker.cancel(order, ts))
        return answered + list(self._drain())

    def trade(self, symbol: str, ts: int) -> Sequence[Any] | None:
        if self._trade is None:
            return None
        traded = list(self._trade(symbol, ts))
        return traded + list(self._drain())


@dataclass(frozen=True)
class CheckSettings:
    """What the checks trade: ``symbol``, ``quantity`` shares per order, ``price`` USD (limit
    orders rest at half of it, so they never fill), times from ``ts0`` in steps of ``step_ns``
    (ns UTC), client_order_ids starting with ``id_prefix`` (make it unique per run against a real
    account), and at most ``max_trade_steps`` market steps to fill an order."""

    symbol: str = "AAA"
    quantity: float = 100.0
    price: float = 100.0
    ts0: int = 1_700_000_040 * 1_000_000_000
    step_ns: int = _MINUTE
    id_prefix: str = "check"
    max_trade_steps: int = 50


class _Run:
    """One check against one fresh broker: places orders, logs every event it sees."""

    def __init__(self, name: str, harness: BrokerHarness, settings: CheckSettings) -> None:
        self.name = name
        self.harness = harness
        self.s = settings
        self.ts = settings.ts0
        self.count = 0
        self.events: list[Any] = []
        self.orders: dict[str, Order] = {}

    def fail(self, message: str) -> BrokerCheckFailed:
        return BrokerCheckFailed(self.name, message)

    def order(self, *, client_order_id: str | None = None, quantity: float | None = None,
              order_type: OrderType = OrderType.MARKET, limit: float | None | object = _RESTING,
              stop: float | None = None, side: Side = Side.BUY) -> Order:
        """A GTC order of the settings' symbol; a LIMIT buy rests at half the price by default;
        ``stop`` is the stop price (USD) of a STOP or STOP_LIMIT."""
        if client_order_id is None:
            self.count += 1
            client_order_id = f"{self.s.id_prefix}-{self.name}-{self.count}"
        if limit is _RESTING:
            limit = self.s.price * 0.5 if order_type is OrderType.LIMIT else None
        assert limit is None or isinstance(limit, float)
        command = SubmitOrder(client_order_id=client_order_id, strategy_id="broker-check", symbol=self.s.symbol,
                              side=side, quantity=self.s.quantity if quantity is None else quantity,
                              order_type=order_type, limit_price=limit, stop_price=stop,
                              time_in_force=TimeInForce.GTC,
                              reason=self.name, ts_event=self.ts, ts_init=self.ts)
        return Order(command)

    def _tick(self) -> int:
        self.ts += self.s.step_ns
        return self.ts

    def _call(self, what: str, action: Callable[[], Sequence[Any] | None]) -> list[Any] | None:
        try:
            events = action()
        except Exception as exc:  # a broker answers with events; it never raises at the engine
            raise self.fail(f"{what} raised {type(exc).__name__}: {exc}") from exc
        if events is None:
            return None
        events = list(events)
        for event in events:
            if not isinstance(event, _KNOWN_EVENTS):
                raise self.fail(f"{what} returned {type(event).__name__}, not an order event")
        self.events.extend(events)
        return events

    def submit(self, order: Order) -> list[Any]:
        self.orders.setdefault(order.client_order_id, order)
        ts = self._tick()
        events = self._call(f"submit({order.client_order_id!r})", lambda: self.harness.submit(order, ts))
        assert events is not None
        return events

    def cancel(self, order: Order) -> list[Any]:
        ts = self._tick()
        events = self._call(f"cancel({order.client_order_id!r})", lambda: self.harness.cancel(order, ts))
        assert events is not None
        return events

    def trade(self) -> list[Any] | None:
        ts = self._tick()
        return self._call(f"trade({self.s.symbol!r})", lambda: self.harness.trade(self.s.symbol, ts))

    def fill_completely(self, order: Order, require: bool = True) -> list[OrderFilled] | None:
        """Trade until ``order`` filled (at most ``max_trade_steps``); all its fills, or None when
        the harness cannot trade. With ``require``, an order still unfilled then fails the check."""
        for step in range(self.s.max_trade_steps + 1):
            fills = [e for e in self.events if isinstance(e, OrderFilled) and e.client_order_id == order.client_order_id]
            if fills and fills[-1].cum_quantity >= order.quantity * (1 - 1e-12):
                return fills
            if step == self.s.max_trade_steps:
                break
            if self.trade() is None:
                return None
        if require:
            raise self.fail(f"order {order.client_order_id!r} not filled after {self.s.max_trade_steps} market steps")
        return fills

    def answer(self, events: Sequence[Any], client_order_id: str) -> Any:
        """The one OrderAccepted/OrderRejected for ``client_order_id`` that must come first."""
        mine = [e for e in events if getattr(e, "client_order_id", None) == client_order_id]
        answers = [e for e in mine if isinstance(e, _ANSWERS)]
        if len(answers) != 1:
            raise self.fail(f"submit of {client_order_id!r} answered with {len(answers)} accepted/rejected events "
                            f"(events: {list(events)!r})")
        if mine[0] is not answers[0]:
            raise self.fail(f"{type(mine[0]).__name__} for {client_order_id!r} came before its accept/reject")
        return answers[0]


# --- the checks ------------------------------------------------------------------------------------
def _submit_answers_accepted_or_rejected(run: _Run) -> None:
    for order in (run.order(), run.order(order_type=OrderType.LIMIT)):
        run.answer(run.submit(order), order.client_order_id)


def _invalid_order_rejected_not_raised(run: _Run) -> None:
    # the stop-limit buys' given prices never trade (limit at half, stop at twice the price), so a
    # broker that wrongly accepts one leaves a resting order, not a position, on a real account
    resting, far = run.s.price * 0.5, run.s.price * 2.0
    for order in (run.order(quantity=0.0), run.order(quantity=-5.0), run.order(quantity=math.nan),
                  run.order(order_type=OrderType.LIMIT, limit=None),
                  run.order(order_type=OrderType.STOP_LIMIT, limit=resting, stop=None),
                  run.order(order_type=OrderType.STOP_LIMIT, limit=None, stop=far)):
        answer = run.answer(run.submit(order), order.client_order_id)
        if not isinstance(answer, OrderRejected):
            raise run.fail(f"invalid {order.order_type.value} order {order.client_order_id!r} (quantity "
                           f"{order.quantity!r}, limit {order.limit_price!r}, stop {order.stop_price!r}) was "
                           f"{type(answer).__name__}, not rejected")


def _duplicate_client_order_id_rejected(run: _Run) -> None:
    first = run.order(order_type=OrderType.LIMIT)
    if not isinstance(run.answer(run.submit(first), first.client_order_id), OrderAccepted):
        raise run.fail(f"a valid resting limit order {first.client_order_id!r} was not accepted")
    again = run.order(client_order_id=first.client_order_id, order_type=OrderType.LIMIT)
    answer = run.answer(run.submit(again), first.client_order_id)
    if not isinstance(answer, OrderRejected):
        raise run.fail(f"a second submit of working id {first.client_order_id!r} was {type(answer).__name__}")
    canceled = [e for e in run.cancel(first) if isinstance(e, OrderCanceled)]
    if len(canceled) != 1 or canceled[0].client_order_id != first.client_order_id:
        raise run.fail("after a rejected duplicate the first order should still be working and cancelable, "
                       f"cancel gave {canceled!r}")


def _rejected_id_may_be_reused(run: _Run) -> None:
    bad = run.order(quantity=0.0)
    if not isinstance(run.answer(run.submit(bad), bad.client_order_id), OrderRejected):
        raise run.fail("a zero-quantity order was not rejected")
    good = run.order(client_order_id=bad.client_order_id, order_type=OrderType.LIMIT)
    answer = run.answer(run.submit(good), good.client_order_id)
    if not isinstance(answer, OrderAccepted):
        raise run.fail(f"resubmitting rejected id {bad.client_order_id!r} was {type(answer).__name__}, not accepted")


def _cancel_unknown_is_noop(run: _Run) -> None:
    events = run.cancel(run.order(client_order_id=f"{run.s.id_prefix}-never-submitted"))
    if events:
        raise run.fail(f"cancel of an unknown order gave {events!r}")


def _cancel_finished_is_noop(run: _Run) -> str:
    resting = run.order(order_type=OrderType.LIMIT)
    run.submit(resting)
    if len([e for e in run.cancel(resting) if isinstance(e, OrderCanceled)]) != 1:
        raise run.fail("cancel of a working order did not give exactly one OrderCanceled")
    rejected = run.order(quantity=0.0)
    run.submit(rejected)
    for order, what in ((resting, "canceled"), (rejected, "rejected")):
        events = run.cancel(order)
        if events:
            raise run.fail(f"cancel of a {what} order gave {events!r}")
    market = run.order()
    run.submit(market)
    if run.fill_completely(market) is None:
        return "partly"  # no market to fill an order: canceled and rejected ones were checked
    events = run.cancel(market)
    if events:
        raise run.fail(f"cancel of a filled order gave {events!r}")
    return "passed"


def _fills_cum_quantity_monotone_and_bounded(run: _Run) -> str:
    orders = [run.order(), run.order(side=Side.SELL, quantity=run.s.quantity * 2.5)]
    for order in orders:
        run.submit(order)
    for order in orders:
        fills = run.fill_completely(order, require=False)
        if fills is None:
            return "skipped"
        previous, total, ids = 0.0, 0.0, set()
        for fill in fills:
            if fill.symbol != order.symbol or fill.side is not order.side:
                raise run.fail(f"fill {fill!r} does not match its order's symbol and side")
            if not (fill.quantity > 0 and math.isfinite(fill.quantity)):
                raise run.fail(f"fill quantity {fill.quantity!r} is not a positive number of shares")
            if not (fill.price > 0 and math.isfinite(fill.price)):
                raise run.fail(f"fill price {fill.price!r} is not a positive finite USD price")
            if not (fill.commission >= 0 and math.isfinite(fill.commission)):
                raise run.fail(f"fill commission {fill.commission!r} is not a non-negative USD amount")
            if fill.cum_quantity < previous:
                raise run.fail(f"cum_quantity went down from {previous} to {fill.cum_quantity}")
            if fill.cum_quantity > order.quantity * (1 + 1e-9):
                raise run.fail(f"cum_quantity {fill.cum_quantity} exceeds the order quantity {order.quantity}")
            if fill.fill_id in ids:
                raise run.fail(f"fill id {fill.fill_id!r} reported twice")
            ids.add(fill.fill_id)
            total += fill.quantity
            if not math.isclose(total, fill.cum_quantity, rel_tol=1e-9, abs_tol=1e-9):
                raise run.fail(f"fills add up to {total} shares but cum_quantity says {fill.cum_quantity}")
            previous = fill.cum_quantity
        if not fills or fills[-1].cum_quantity < order.quantity * (1 - 1e-12):
            raise run.fail(f"order {order.client_order_id!r} filled {previous} of {order.quantity} shares after "
                           f"{run.s.max_trade_steps} market steps")
    return "passed"


def _events_carry_id_and_ordered_ts(run: _Run) -> str:
    market, resting, rejected = run.order(), run.order(order_type=OrderType.LIMIT), run.order(quantity=0.0)
    for order in (market, resting, rejected):
        run.submit(order)
    traded = run.fill_completely(market)
    run.cancel(resting)
    last: dict[str, tuple[int, int]] = {}
    for event in run.events:
        client_order_id = getattr(event, "client_order_id", None)
        if client_order_id not in run.orders:
            raise run.fail(f"{type(event).__name__} carries client_order_id {client_order_id!r}, "
                           "which was never submitted")
        assert client_order_id is not None
        ts = (event.ts_event, event.ts_init)
        if not all(isinstance(t, int) for t in ts):
            raise run.fail(f"{event!r}: ts_event/ts_init must be int ns UTC")
        before = last.get(client_order_id)
        if before is not None and (ts[0] < before[0] or ts[1] < before[1]):
            raise run.fail(f"{type(event).__name__} of {client_order_id!r} at (ts_event, ts_init) {ts} is earlier "
                           f"than the order's previous event at {before}")
        last[client_order_id] = ts
    return "skipped" if traded is None else "passed"


def _inputs_not_mutated(run: _Run) -> str:
    orders = [run.order(), run.order(order_type=OrderType.LIMIT), run.order(quantity=0.0)]
    before = [_snapshot(order) for order in orders]
    for order in orders:
        run.submit(order)
    run.submit(orders[1])  # a duplicate
    traded = run.fill_completely(orders[0])
    for order in orders:
        run.cancel(order)
    for order, snapshot in zip(orders, before):
        after = _snapshot(order)
        if after != snapshot:
            changed = sorted(k for k in snapshot if snapshot[k] != after[k] and not _both_nan(snapshot[k], after[k]))
            if changed:
                raise run.fail(f"order {order.client_order_id!r} was modified: {changed}")
    return "skipped" if traded is None else "passed"


def _snapshot(order: Order) -> dict[str, Any]:
    return {name: getattr(order, name) for name in Order.__slots__}


def _both_nan(a: Any, b: Any) -> bool:
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


CHECKS: dict[str, Callable[[_Run], str | None]] = {
    "submit_answers_accepted_or_rejected": _submit_answers_accepted_or_rejected,
    "invalid_order_rejected_not_raised": _invalid_order_rejected_not_raised,
    "duplicate_client_order_id_rejected": _duplicate_client_order_id_rejected,
    "rejected_id_may_be_reused": _rejected_id_may_be_reused,
    "cancel_unknown_is_noop": _cancel_unknown_is_noop,
    "cancel_finished_is_noop": _cancel_finished_is_noop,
    "fills_cum_quantity_monotone_and_bounded": _fills_cum_quantity_monotone_and_bounded,
    "events_carry_id_and_ordered_ts": _events_carry_id_and_ordered_ts,
    "inputs_not_mutated": _inputs_not_mutated,
}
"""Name -> check, in the order :func:`check_broker` runs them (see the module docstring)."""


def yield_checks(make_broker: Callable[[], Broker], *,
                 harness: Callable[[Broker], BrokerHarness] = SyncHarness,
                 settings: CheckSettings | None = None) -> Iterator[tuple[str, Callable[[], str]]]:
    """Yield ``(name, run)`` for every check; ``run()`` checks one fresh broker.

    Use it to give each check its own test (``pytest.mark.parametrize`` with the names as ids).

    Parameters
    ----------
    make_broker : callable
        Returns a new broker, with no orders, for each check.
    harness : callable
        Wraps a broker in the :class:`BrokerHarness` that collects the events of each action
        (default :class:`SyncHarness`).
    settings : CheckSettings, optional
        Symbol, sizes, prices, times and id prefix of the orders the checks place.

    Returns
    -------
    iterator of (str, callable)
        ``run()`` returns ``"passed"``, ``"partly"`` (some parts needed a market the harness could
        not trade) or ``"skipped"`` (the check needs a market).

    Raises
    ------
    BrokerCheckFailed
        From ``run()``, naming the check, when the broker breaks the contract.
    """
    chosen = settings if settings is not None else CheckSettings()
    for name, check in CHECKS.items():
        def run(name: str = name, check: Callable[[_Run], str | None] = check) -> str:
            return check(_Run(name, harness(make_broker()), chosen)) or "passed"

        yield name, run


def check_broker(make_broker: Callable[[], Broker], *,
                 harness: Callable[[Broker], BrokerHarness] = SyncHarness,
                 settings: CheckSettings | None = None) -> dict[str, str]:
    """Run every conformance check against fresh brokers from ``make_broker``.

    Parameters are those of :func:`yield_checks`.

    Returns
    -------
    dict of str to str
        Check name -> ``"passed"``, ``"partly"`` or ``"skipped"``, in run order.

    Raises
    ------
    BrokerCheckFailed
        At the first check the broker fails; ``.check`` names it.
    """
    return {name: run() for name, run in yield_checks(make_broker, harness=harness, settings=settings)}


__all__ = ["CHECKS", "BrokerCheckFailed", "BrokerHarness", "CheckSettings", "DrainingHarness", "SyncHarness",
           "check_broker", "yield_checks"]
