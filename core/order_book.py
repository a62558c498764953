"""The order book: every order the engine knows, the working ones, and pending shares per symbol.

Pending quantity is kept **separately for entries and exits** (``reduce_only`` orders): one net
number per symbol hides exits already working behind a partially filled entry, which let a
long-only account go short (issue 5, B1). Reconciliation with a real broker reuses this book.

Also home of the one ``client_order_id`` rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from core.orders import Order

_EPS = 1e-9  # shares: pending amounts this close to zero are zero (float noise of partial fills)


def client_order_id(strategy_id: str, symbol: str, ts: int, seq: int, tag: str = "") -> str:
    """Return the deterministic id of the ``seq``-th order of ``strategy_id`` in ``symbol`` at ``ts``.

    ``ts`` is the decision time in epoch ns UTC (not seconds: sub-second decisions and a halt,
    re-arm and halt within one second must not collide); ``tag`` marks engine-made orders
    (``"halt"``, ``"flatten"``). Deterministic, so a replay of the same events derives the same ids.

    Examples
    --------
    >>> client_order_id("sma_cross", "SPY", 1_546_300_800_000_000_000, 1)
    'sma_cross-SPY-1546300800000000000-1'
    >>> client_order_id("sma_cross", "SPY", 5, 2, "halt")
    'sma_cross-SPY-5-halt2'
    """
    return f"{strategy_id}-{symbol}-{ts}-{tag}{seq}"


class OrderBook:
    """Orders by ``client_order_id``, the open ones, and signed pending shares per symbol.

    Implements :class:`core.ports.PendingOrdersView`. Quantities are signed shares still to fill
    (+ buy, - sell).
    """

    __slots__ = ("orders", "open", "_entries", "_exits", "_seq_ts", "_seq", "_reserved")

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.open: dict[str, Order] = {}
        self._entries: dict[str, float] = {}
        self._exits: dict[str, float] = {}
        self._seq_ts = -1
        self._seq: dict[tuple[str, str, str], int] = {}
        self._reserved: set[str] = set()

    # --- ids ---------------------------------------------------------------------------------
    def next_client_order_id(self, strategy_id: str, symbol: str, ts: int, tag: str = "") -> str:
        """Return a fresh id by :func:`client_order_id`, unique among every order this book knows.

        The sequence counts per (strategy, symbol, tag) within one decision time ``ts``, however
        intents of different symbols interleave; ids already known (e.g. restored after a restart)
        are skipped.
        """
        if ts != self._seq_ts:
            self._seq_ts = ts
            self._seq.clear()
        key = (strategy_id, symbol, tag)
        seq = self._seq.get(key, 0)
        orders = self.orders
        while True:
            seq += 1
            candidate = client_order_id(strategy_id, symbol, ts, seq, tag)
            if candidate not in orders and candidate not in self._reserved:
                self._seq[key] = seq
                return candidate

    def reserve(self, client_order_ids: Iterable[str]) -> None:
        """Never hand out these ids (orders persisted before a restart that are not in the book)."""
        self._reserved.update(client_order_ids)

    # --- changes -----------------------------------------------------------------------------
    def add(self, order: Order) -> None:
        """Record ``order`` (known from now on, its id never reused); if it is open, it works."""
        self.orders[order.client_order_id] = order
        if order.is_open:
            self.open[order.client_order_id] = order
            self._shift(order, order.leaves_quantity)

    def filled(self, order: Order, shares: float) -> None:
        """``shares`` more of open ``order`` filled: they are no longer pending."""
        if order.client_order_id in self.open:
            self._shift(order, -shares)

    def close(self, order: Order, leaves_before: float) -> None:
        """``order`` became terminal with ``leaves_before`` shares still unfilled: stop working it."""
        if self.open.pop(order.client_order_id, None) is not None:
            self._shift(order, -leaves_before)

    def _shift(self, order: Order, shares: float) -> None:
        book = self._exits if order.reduce_only else self._entries
        symbol = order.symbol
        value = book.get(symbol, 0.0) + shares * order.side.sign
        if -_EPS < value < _EPS:
            book.pop(symbol, None)
        else:
            book[symbol] = value

    # --- reads (PendingOrdersView) -------------------------------------------------------------
    def get(self, client_order_id: str) -> Order | None:
        """The order with this id, or None."""
        return self.orders.get(client_order_id)

    def pending(self, symbol: str) -> float:
        """Signed shares still to fill in every working order of ``symbol``."""
        return self._entries.get(symbol, 0.0) + self._exits.get(symbol, 0.0)

    def pending_entries(self, symbol: str) -> float:
        """Signed shares still to fill in working entries (not ``reduce_only``) of ``symbol``."""
        return self._entries.get(symbol, 0.0)

    def pending_exits(self, symbol: str) -> float:
        """Signed shares still to fill in working ``reduce_only`` orders of ``symbol``."""
        return self._exits.get(symbol, 0.0)

    def symbols_with_pending_entries(self) -> Iterable[str]:
        """Symbols with a working entry (any side)."""
        return self._entries.keys()

    def open_orders(self, symbol: str | None = None) -> Iterator[Order]:
        """Working orders (of ``symbol`` when given), in submission order."""
        for order in list(self.open.values()):
            if symbol is None or order.symbol == symbol:
                yield order


__all__ = ["OrderBook", "client_order_id"]
