"""Portfolio accounting: cash, positions, average cost, realized and unrealized P&L, equity.

Invariant (tested by property tests): ``equity == cash + sum(quantity * mark)`` after every
event. Equity is computed, never stored, so it cannot drift from its parts; the sum runs over
open positions only, which the risk limits keep few, so it stays O(1) per bar in practice.
Money USD; quantities signed shares (+ long, - short); commissions USD reduce cash.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.enums import Side


class Position:
    """Holding in one symbol. ``quantity`` signed shares, ``avg_price`` USD per share."""

    __slots__ = ("symbol", "quantity", "avg_price", "realized_pnl", "commission", "mark")

    def __init__(self, symbol: str, mark: float) -> None:
        self.symbol = symbol
        self.quantity = 0.0
        self.avg_price = 0.0
        self.realized_pnl = 0.0  # USD, gross of commission
        self.commission = 0.0  # USD paid on this symbol
        self.mark = mark

    @property
    def market_value(self) -> float:
        """Signed USD value at the mark (negative for shorts)."""
        return self.quantity * self.mark

    @property
    def unrealized_pnl(self) -> float:
        """``quantity * (mark - avg_price)``, USD."""
        return self.quantity * (self.mark - self.avg_price)


class Portfolio:
    """Cash and positions of one account.

    ``open_positions`` is the number of symbols with a non-zero position (read-only).

    Parameters
    ----------
    starting_cash
        USD, > 0.

    Raises
    ------
    ValueError
        If ``starting_cash`` is not positive.
    """

    __slots__ = ("starting_cash", "cash", "open_positions", "_positions", "_open", "_marks")

    def __init__(self, starting_cash: float) -> None:
        if not starting_cash > 0:
            raise ValueError(f"starting_cash must be > 0 USD, got {starting_cash!r}")
        self.starting_cash = float(starting_cash)
        self.cash = float(starting_cash)
        self._positions: dict[str, Position] = {}
        self._open: dict[str, Position] = {}  # quantity != 0 only
        # number of symbols with a non-zero position, kept equal to len(_open) by every write: the
        # engine reads it after every bar, and a plain attribute is cheaper than a property
        self.open_positions = 0
        self._marks: dict[str, float] = {}

    # --- reads (the PortfolioView protocol) ------------------------------------------------
    @property
    def equity(self) -> float:
        """Cash plus the market value of every open position, USD."""
        equity = self.cash
        for pos in self._open.values():
            equity += pos.quantity * pos.mark
        return equity

    @property
    def gross_exposure(self) -> float:
        """Sum of absolute position market values, USD."""
        gross = 0.0  # a plain loop: the same sums as sum() over a generator, at half the cost
        for p in self._open.values():
            gross += abs(p.quantity * p.mark)
        return gross

    def position(self, symbol: str) -> float:
        """Signed shares held in ``symbol`` (0.0 when flat)."""
        pos = self._open.get(symbol)
        return pos.quantity if pos is not None else 0.0

    def avg_price(self, symbol: str) -> float:
        """Average entry price of the open position in ``symbol``, USD per share (0.0 when flat)."""
        pos = self._open.get(symbol)
        return pos.avg_price if pos is not None else 0.0

    def mark(self, symbol: str) -> float | None:
        """Last price seen for ``symbol`` (USD) or ``None`` before its first bar."""
        return self._marks.get(symbol)

    def positions(self) -> dict[str, Position]:
        """Every symbol ever traded (including flat ones, for realized P&L)."""
        return dict(self._positions)

    @property
    def realized_pnl(self) -> float:
        """Realized P&L over every symbol, USD, gross of commission."""
        return sum(p.realized_pnl for p in self._positions.values())

    # --- writes -----------------------------------------------------------------------------
    def restore(self, cash: float, positions: Iterable[tuple[str, float, float, float]]) -> None:
        """Put back a persisted account: ``cash`` USD and (symbol, signed shares, avg price USD,
        last mark USD) per open position (after a restart; replaces what is there)."""
        self.cash = float(cash)
        self._positions.clear()
        self._open.clear()
        for symbol, quantity, avg_price, mark in positions:
            if quantity == 0.0:
                continue
            pos = self._positions[symbol] = Position(symbol, mark)
            pos.quantity, pos.avg_price = float(quantity), float(avg_price)
            self._open[symbol] = pos
            self._marks[symbol] = mark
        self.open_positions = len(self._open)

    def update_mark(self, symbol: str, price: float) -> float:
        """Mark ``symbol`` at ``price`` (USD), normally a bar close, and return the new equity
        (USD, as :attr:`equity`: the engine needs it right after every mark). O(open positions)."""
        self._marks[symbol] = price
        open_ = self._open
        equity = self.cash
        if open_:
            pos = open_.get(symbol)
            if pos is not None:
                pos.mark = price
            for pos in open_.values():
                equity += pos.quantity * pos.mark
        return equity

    def apply_fill(self, symbol: str, side: Side, quantity: float, price: float, commission: float) -> float:
        """Book a fill of ``quantity`` shares (> 0) at ``price`` USD; return realized P&L (gross, USD).

        Reducing a position realizes ``closed * (price - avg_price)`` (sign-adjusted for shorts);
        crossing through zero closes the old position and opens the remainder at ``price``.

        Raises
        ------
        ValueError
            If quantity or price is not positive, or commission is negative.
        """
        if not (quantity > 0 and price > 0 and commission >= 0):
            raise ValueError(f"invalid fill for {symbol}: quantity={quantity}, price={price}, commission={commission}")
        pos = self._positions.get(symbol)
        if pos is None:
            pos = self._positions[symbol] = Position(symbol, self._marks.get(symbol, price))
        signed = quantity if side is Side.BUY else -quantity
        self.cash -= signed * price + commission
        pos.commission += commission
        old = pos.quantity
        new = old + signed
        realized = 0.0
        if old == 0.0 or (old > 0) == (signed > 0):
            pos.avg_price = (abs(old) * pos.avg_price + quantity * price) / abs(new)
        else:
            closed = min(quantity, abs(old))
            realized = closed * (price - pos.avg_price) * (1.0 if old > 0 else -1.0)
            pos.realized_pnl += realized
            if abs(new) < 1e-9:
                new = 0.0
                pos.avg_price = 0.0
            elif (new > 0) != (old > 0):
                pos.avg_price = price  # flipped: the remainder opened at this fill
        pos.quantity = new
        if new == 0.0:
            self._open.pop(symbol, None)
        else:
            if symbol not in self._open:
                pos.mark = self._marks.get(symbol, price)
            self._open[symbol] = pos
        self.open_positions = len(self._open)
        return realized
