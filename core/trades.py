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

    def on_fill(self, symbol: str, side: Side, quantity: float, price: float, commission: float,
                realized: float, position_before: float, position_after: float, ts: int,
                reason: str) -> TradeClosed | None:
        """Account one fill; return the trade it closed, if any.

        ``realized`` is the gross P&L the portfolio booked for this fill; positions are signed shares.
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
                    symbol, trade.side, trade.max_qty, trade.entry_ts, ts,
                    trade.entry_notional / trade.entry_qty, trade.exit_notional / trade.exit_qty,
                    trade.realized - trade.commission, trade.commission, reason, ts)
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
