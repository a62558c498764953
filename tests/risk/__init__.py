"""Tests of the risk layer, plus the minimal :class:`core.ports.PortfolioView` they share."""

from __future__ import annotations

from core.clock import Clock
from core.enums import TradingState
from core.time import NANOS_PER_DAY, NANOS_PER_HOUR
from risk.config import RiskConfig
from risk.engine import RiskEngine

DAY0 = 19_723 * NANOS_PER_DAY  # 2024-01-01T00:00Z
T0 = DAY0 + 15 * NANOS_PER_HOUR  # 15:00 UTC, mid-session


class View:
    """A read-only account for tests: given equity (USD), signed positions (shares), marks (USD).

    ``cash`` is whatever makes ``equity == cash + sum(quantity * mark)`` hold.
    """

    def __init__(self, equity: float = 100_000.0, positions: dict[str, float] | None = None,
                 marks: dict[str, float] | None = None) -> None:
        self._equity = equity
        self._positions = {s: q for s, q in (positions or {}).items() if q != 0.0}
        self._marks = dict(marks or {})

    @property
    def equity(self) -> float:
        return self._equity

    @property
    def cash(self) -> float:
        return self._equity - sum(q * self._marks[s] for s, q in self._positions.items())

    @property
    def gross_exposure(self) -> float:
        return sum(abs(q * self._marks[s]) for s, q in self._positions.items())

    @property
    def open_positions(self) -> int:
        return len(self._positions)

    def position(self, symbol: str) -> float:
        return self._positions.get(symbol, 0.0)

    def avg_price(self, symbol: str) -> float:
        return self._marks.get(symbol, 0.0) if symbol in self._positions else 0.0

    def mark(self, symbol: str) -> float | None:
        return self._marks.get(symbol)


def make_engine(state: TradingState = TradingState.ACTIVE, reason: str = "", clock: Clock | None = None,
                **config: object) -> tuple[RiskEngine, Clock]:
    """Return a RiskEngine with ``RiskConfig(**config)`` (trading days in UTC unless given) and its
    clock (started at ``T0``)."""
    config.setdefault("trading_day_timezone", "UTC")
    clock = clock if clock is not None else Clock(T0)
    return RiskEngine(RiskConfig(**config), clock, state, reason), clock


class Working:
    """A read-only :class:`core.ports.PendingOrdersView` for tests: signed pending entry and exit
    shares per symbol."""

    def __init__(self, entries: dict[str, float] | None = None, exits: dict[str, float] | None = None) -> None:
        self._entries = {s: q for s, q in (entries or {}).items() if q != 0.0}
        self._exits = {s: q for s, q in (exits or {}).items() if q != 0.0}

    @classmethod
    def net(cls, view: View, symbol: str, pending: float) -> Working:
        """Old-style single pending number: an exit when it works against the position, else an entry."""
        if pending * view.position(symbol) < 0:
            return cls(exits={symbol: pending})
        return cls(entries={symbol: pending})

    def pending(self, symbol: str) -> float:
        return self._entries.get(symbol, 0.0) + self._exits.get(symbol, 0.0)

    def pending_entries(self, symbol: str) -> float:
        return self._entries.get(symbol, 0.0)

    def pending_exits(self, symbol: str) -> float:
        return self._exits.get(symbol, 0.0)

    def symbols_with_pending_entries(self) -> list[str]:
        return list(self._entries)


NO_ORDERS = Working()
