"""A small simulated book behind the :class:`~strategies.view.StrategyView` API, for the
conformance checks (:mod:`strategies.checks`).

It is not the engine: no risk engine, no commissions, no store. It is just enough of a market
that a strategy's entries and exits happen, so the checks see it in every state a real run
reaches: flat, positioned, with entries and exits still working, and both at once.

* An intent becomes a working order; it fills against the symbol's **next** bar (market at the
  open, limit and stop when the bar reaches their price, a stop-limit once its stop was reached
  and then its limit, with the paper broker's trigger-bar rule), never the bar that produced it.
* Each working order fills at most :data:`FILL_FRACTION` of its quantity per bar, as under a
  volume participation cap. Partial fills are where exit-sizing bugs live: a position, a working
  entry and a working exit at the same time (issue 5, B1).
* Entries without a quantity get :data:`ENTRY_FRACTION` of equity; exits are capped at what the
  position still has uncovered, like the risk engine's reduce-only rule.
* ``features``/``prediction`` are simple deterministic functions of the symbol's past closes
  (None during warm-up, and always None when the strategy does not declare ``uses_learner``,
  as in the engine); the context records that they were read.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from core.enums import OrderType, Regime, Side, TradingState
from core.events import Bar
from core.intents import OrderIntent

FILL_FRACTION = 0.25
"""Largest fraction of an order's quantity that fills on one bar (so an order needs 4 bars)."""
ENTRY_FRACTION = 0.1
"""Entry size when an intent leaves it to the sizer: this fraction of equity, in whole shares."""
WARMUP_BARS = 20
"""Bars of a symbol before its features, prediction and regime are available."""
STARTING_CASH = 100_000.0
"""USD."""
_EPS = 1e-9


@dataclass(slots=True)
class _Order:
    symbol: str
    side: Side
    quantity: float
    remaining: float
    order_type: OrderType
    limit_price: float | None
    stop_price: float | None
    reduce_only: bool
    triggered: bool = False  # a STOP_LIMIT whose stop was reached: it works as a LIMIT


def _limit_fill(buy: bool, limit: float, bar: Bar) -> float | None:
    if buy:
        return min(bar.open, limit) if bar.low <= limit else None
    return max(bar.open, limit) if bar.high >= limit else None


def _fill_price(order: _Order, bar: Bar) -> float | None:
    """Price at which ``order`` trades on ``bar`` (USD), or None when the bar never reaches it.

    A STOP_LIMIT follows :mod:`backtest.broker`'s rule without slippage: triggered by a high at or
    above its stop (buy; a low at or below it for a sell), then a LIMIT; on the trigger bar a gap
    through the stop applies the LIMIT rule to the whole bar, an intrabar trigger fills at the stop
    when the limit is marketable there, else at the limit only if the close reached it.
    """
    buy = order.side is Side.BUY
    if order.order_type is OrderType.LIMIT and order.limit_price is not None:
        return _limit_fill(buy, order.limit_price, bar)
    if order.order_type is OrderType.STOP and order.stop_price is not None:
        stop = order.stop_price
        if buy:
            return max(bar.open, stop) if bar.high >= stop else None
        return min(bar.open, stop) if bar.low <= stop else None
    if order.order_type is OrderType.STOP_LIMIT and order.stop_price is not None and order.limit_price is not None:
        stop, limit = order.stop_price, order.limit_price
        if order.triggered:
            return _limit_fill(buy, limit, bar)
        if not (bar.high >= stop if buy else bar.low <= stop):
            return None
        order.triggered = True
        if bar.open >= stop if buy else bar.open <= stop:  # gapped through: all the bar follows the trigger
            return _limit_fill(buy, limit, bar)
        if limit >= stop if buy else limit <= stop:  # marketable where the stop was crossed
            return stop
        reached = bar.close <= limit if buy else bar.close >= limit  # the close is known to follow the trigger
        return limit if reached else None
    return bar.open


class CheckContext:
    """The read-only context of the conformance checks, over a simulated book.

    The strategy sees only the :class:`~strategies.view.StrategyView` accessors; the check driver
    calls :meth:`begin_bar` before and :meth:`submit` after each ``on_bar``.

    Parameters
    ----------
    learner
        Whether the strategy declared ``uses_learner``; when False, ``features`` and
        ``prediction`` return None, as the engine's do.
    """

    __slots__ = ("_learner", "_now", "_cash", "_positions", "_avg", "_entry", "_marks", "_closes",
                 "_orders", "reads")

    def __init__(self, *, learner: bool) -> None:
        self._learner = learner
        self._now = 0
        self._cash = STARTING_CASH
        self._positions: dict[str, float] = {}
        self._avg: dict[str, float] = {}
        self._entry: dict[str, int] = {}
        self._marks: dict[str, float] = {}
        self._closes: dict[str, deque[float]] = {}
        self._orders: list[_Order] = []
        self.reads: set[str] = set()
        """Names of the learner accessors (``features``, ``prediction``) the strategy called."""

    # --- StrategyView ---------------------------------------------------------------------

    @property
    def now(self) -> int:
        """Current time, epoch ns UTC (the bar's release time during ``on_bar``)."""
        return self._now

    @property
    def cash(self) -> float:
        """Cash balance, USD."""
        return self._cash

    @property
    def equity(self) -> float:
        """Cash plus positions at their last marks, USD."""
        return self._cash + sum(q * self._marks.get(s, 0.0) for s, q in self._positions.items())

    @property
    def trading_state(self) -> TradingState:
        """Always ACTIVE (the checks exercise the strategy, not the breakers)."""
        return TradingState.ACTIVE

    def position(self, symbol: str) -> float:
        """Signed shares held (0.0 when flat)."""
        return self._positions.get(symbol, 0.0)

    def avg_price(self, symbol: str) -> float:
        """Average entry price of the open position, USD (0.0 when flat)."""
        return self._avg.get(symbol, 0.0)

    def entry_time(self, symbol: str) -> int | None:
        """Epoch ns UTC of the open trade's first fill, or None when flat."""
        return self._entry.get(symbol)

    def pending(self, symbol: str) -> float:
        """Net signed shares still to fill in working orders."""
        return self.pending_entries(symbol) + self.pending_exits(symbol)

    def pending_entries(self, symbol: str) -> float:
        """Signed shares still to fill in working orders that are not ``reduce_only``."""
        return sum(o.side.sign * o.remaining for o in self._orders if o.symbol == symbol and not o.reduce_only)

    def pending_exits(self, symbol: str) -> float:
        """Signed shares still to fill in working ``reduce_only`` orders."""
        return sum(o.side.sign * o.remaining for o in self._orders if o.symbol == symbol and o.reduce_only)

    def features(self, symbol: str) -> dict[str, float] | None:
        """Fresh dict of ``ret_1``, ``ret_5``, ``ret_20`` (log returns) and ``realized_vol``, or None."""
        self.reads.add("features")
        closes = self._warm(symbol)
        if closes is None:
            return None
        last = closes[-1]
        rets = [math.log(b / a) for a, b in zip(list(closes)[:-1], list(closes)[1:])]
        mean = sum(rets) / len(rets)
        vol = math.sqrt(sum((r - mean) ** 2 for r in rets) / len(rets))
        return {"ret_1": math.log(last / closes[-2]), "ret_5": math.log(last / closes[-6]),
                "ret_20": math.log(last / closes[0]), "realized_vol": vol}

    def prediction(self, symbol: str) -> float | None:
        """A momentum-driven pseudo-probability in (0, 1) that swings both ways, or None."""
        self.reads.add("prediction")
        closes = self._warm(symbol)
        if closes is None:
            return None
        return 0.5 + 0.45 * math.tanh(200.0 * math.log(closes[-1] / closes[-6]))

    def regime(self, symbol: str) -> Regime:
        """Trend x volatility of the last :data:`WARMUP_BARS` closes (UNKNOWN during warm-up)."""
        closes = self._closes.get(symbol)
        if closes is None or len(closes) <= WARMUP_BARS:
            return Regime.UNKNOWN
        move = abs(math.log(closes[-1] / closes[0]))
        swing = max(closes) / min(closes) - 1.0
        trending = move > 0.5 * swing
        if swing > 0.03:
            return Regime.HIGH_VOL_TRENDING if trending else Regime.HIGH_VOL_MEAN_REVERTING
        return Regime.LOW_VOL_TRENDING if trending else Regime.LOW_VOL_SIDEWAYS

    # --- driver ---------------------------------------------------------------------------

    def begin_bar(self, bar: Bar) -> None:
        """Fill working orders of ``bar.symbol`` against it, then mark it and set the clock."""
        for order in [o for o in self._orders if o.symbol == bar.symbol]:
            price = _fill_price(order, bar)
            if price is None:
                continue
            quantity = min(order.remaining, order.quantity * FILL_FRACTION)
            if order.reduce_only:  # never through zero, as a broker's reduce-only order
                held = self.position(bar.symbol)
                if held * order.side.sign >= 0.0:
                    order.remaining = 0.0  # nothing left to reduce: the broker cancels the rest
                    continue
                quantity = min(quantity, abs(held))
            self._book(bar.symbol, order.side.sign * quantity, price, bar.ts_event)
            order.remaining -= quantity
        self._orders = [o for o in self._orders if o.remaining > _EPS]
        closes = self._closes.setdefault(bar.symbol, deque(maxlen=WARMUP_BARS + 1))
        closes.append(bar.close)
        self._marks[bar.symbol] = bar.close
        self._now = bar.ts_init

    def submit(self, intents: object) -> None:
        """Turn well-formed intents into working orders (anything malformed is skipped: judging
        intents is the checks' job, not the book's)."""
        if not isinstance(intents, (list, tuple)):
            return
        for intent in intents:
            if not (isinstance(intent, OrderIntent) and isinstance(intent.side, Side)
                    and isinstance(intent.order_type, OrderType)):
                continue
            quantity = intent.quantity
            if quantity is not None and not (isinstance(quantity, (int, float)) and 0 < quantity < math.inf):
                continue
            symbol = intent.symbol
            if intent.reduce_only:
                open_ = self.position(symbol) + self.pending_exits(symbol)
                if open_ * intent.side.sign >= 0:
                    continue  # nothing of the position is left to close on this side
                quantity = min(abs(open_), quantity if quantity is not None else math.inf)
            elif quantity is None:
                mark = self._marks.get(symbol)
                if mark is None:
                    continue
                quantity = max(1.0, math.floor(ENTRY_FRACTION * max(self.equity, 0.0) / mark))
            self._orders.append(_Order(symbol, intent.side, float(quantity), float(quantity), intent.order_type,
                                       intent.limit_price, intent.stop_price, intent.reduce_only))

    def state(self) -> tuple[object, ...]:
        """A comparable copy of everything the book holds (to detect a strategy mutating it)."""
        return (self._now, self._cash, dict(self._positions), dict(self._avg), dict(self._entry),
                dict(self._marks), {s: tuple(c) for s, c in self._closes.items()},
                [(o.symbol, o.side, o.quantity, o.remaining, o.order_type, o.limit_price, o.stop_price,
                  o.reduce_only, o.triggered) for o in self._orders])

    def _warm(self, symbol: str) -> deque[float] | None:
        closes = self._closes.get(symbol)
        if not self._learner or closes is None or len(closes) <= WARMUP_BARS:
            return None
        return closes

    def _book(self, symbol: str, signed: float, price: float, ts: int) -> None:
        if signed == 0.0:
            return
        before = self.position(symbol)
        after = before + signed
        if abs(after) < _EPS:
            after = 0.0
        self._cash -= signed * price
        if after == 0.0:
            self._positions.pop(symbol, None)
            self._avg.pop(symbol, None)
            self._entry.pop(symbol, None)
            return
        self._positions[symbol] = after
        if before == 0.0 or before * after < 0.0:  # opened, or flipped through zero
            self._avg[symbol] = price
            self._entry[symbol] = ts
        elif abs(after) > abs(before):  # added to the position
            self._avg[symbol] = (abs(before) * self._avg.get(symbol, price) + abs(signed) * price) / abs(after)


__all__ = ["ENTRY_FRACTION", "FILL_FRACTION", "STARTING_CASH", "WARMUP_BARS", "CheckContext"]
