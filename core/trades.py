"""Round-trip trade tracking: a trade opens when a position leaves zero and closes when it returns
to zero (or flips through it). Fed by fills; emits :class:`core.events.TradeClosed`."""

from __future__ import annotations

from core.enums import Side
from core.events import TradeClosed


class _OpenTrade:
    __slots__ = ("side", "entry_ts", "entry_qty", "entry_notional", "exit_qty", "exit_notional",
                 "max_qty", "realized", "commission")

    def __init__(self, side: Side, ts: int) -> None:
        self.side = side
        self.entry_ts = ts
        self.entry_qty = self.entry_notional = self.exit_qty = self.exit_notional = 0.0
        self.max_qty = self.realized = self.commission = 0.0


class TradeTracker:
    """Turn fills into round trips. Quantities shares, prices and P&L USD, times ns UTC."""

    __slots__ = ("_open", "closed")

    def __init__(self) -> None:
        self._open: dict[str, _OpenTrade] = {}
        self.closed: list[TradeClosed] = []

    def entry_ts(self, symbol: str) -> int | None:
        """Time of the first fill of the open trade in ``symbol``, if any."""
        trade = self._open.get(symbol)
        return trade.entry_ts if trade is not None else None

    def restore(self, symbol: str, quantity: float, avg_price: float, entry_ts: int) -> None:
        """Re-open the trade behind a restored position of ``quantity`` signed shares at
        ``avg_price`` USD, first filled at ``entry_ts`` (after a restart)."""
        if quantity == 0.0:
            return
        trade = self._open[symbol] = _OpenTrade(Side.BUY if quantity > 0 else Side.SELL, entry_ts)
        trade.entry_qty = trade.max_qty = abs(quantity)
        trade.entry_notional = abs(quantity) * avg_price

    def on_fill(self, symbol: str, side: Side, quantity: float, price: float, commission: float,
                realized: float, position_before: float, position_after: float, ts: int,
                reason: str, ts_init: int | None = None) -> TradeClosed | None:
        """Account one fill; return the trade it closed, if any.

        ``realized`` is the gross P&L the portfolio booked for this fill; positions are signed shares.
        ``ts`` is the fill's ``ts_event`` (the bar it traded on); ``ts_init`` (default ``ts``) is when
        the engine learned of it, which becomes the closed trade's ``ts_init``.
        """
        closed: TradeClosed | None = None
        trade = self._open.get(symbol)
        opening = quantity
        if trade is not None and position_before != 0.0 and (position_before > 0) != (side is Side.BUY):
            # reducing (maybe flipping): only the part up to zero belongs to this trade
            reducing = min(quantity, abs(position_before))
            share = reducing / quantity
            trade.exit_qty += reducing
            trade.exit_notional += reducing * price
            trade.realized += realized
            trade.commission += commission * share
            opening = quantity - reducing
            commission -= commission * share
            if position_after == 0.0 or (position_after > 0) != (position_before > 0):
                closed = TradeClosed(
                    symbol=symbol, side=trade.side, quantity=trade.max_qty, entry_ts=trade.entry_ts, exit_ts=ts,
                    entry_price=trade.entry_notional / trade.entry_qty,
                    exit_price=trade.exit_notional / trade.exit_qty, pnl=trade.realized - trade.commission,
                    commission=trade.commission, exit_reason=reason, ts_event=ts,
                    ts_init=ts if ts_init is None else ts_init)
                self.closed.append(closed)
                del self._open[symbol]
                trade = None
        if opening > 1e-12:
            if trade is None:
                trade = self._open[symbol] = _OpenTrade(side, ts)
            trade.entry_qty += opening
            trade.entry_notional += opening * price
            trade.commission += commission
            trade.max_qty = max(trade.max_qty, abs(position_after))
        return closed
