"""The read-only context a strategy sees on each bar.

It is built from narrow read-only views (clock, portfolio, order book, trade tracker, signals,
trading state), not from the Engine, so a strategy cannot reach anything it may not touch and
``core.context`` does not depend on ``core.engine``.
"""

from __future__ import annotations

from collections.abc import Callable

from core.clock import Clock
from core.enums import Regime, TradingState
from core.order_book import OrderBook
from core.portfolio import Portfolio
from core.ports import SignalModel
from core.trades import TradeTracker


class StrategyContext:
    """Read-only window for strategies: account, positions, working orders, signals, clock.

    Every accessor returns plain values (floats, str, enums) or a copy; quantities are signed
    shares, money USD, times epoch ns UTC.
    """

    __slots__ = ("_clock", "_portfolio", "_book", "_trades", "_signals", "_state")

    def __init__(self, *, clock: Clock, portfolio: Portfolio, book: OrderBook, trades: TradeTracker,
                 signals: SignalModel | None, trading_state: Callable[[], TradingState]) -> None:
        self._clock = clock
        self._portfolio = portfolio
        self._book = book
        self._trades = trades
        self._signals = signals
        self._state = trading_state

    @property
    def now(self) -> int:
        """Current clock time, epoch ns UTC (= the bar's close time during ``on_bar``)."""
        return self._clock.now

    @property
    def cash(self) -> float:
        """Cash balance, USD (negative when a short's proceeds were spent)."""
        return self._portfolio.cash

    @property
    def equity(self) -> float:
        """Cash plus positions at their last marks, USD."""
        return self._portfolio.equity

    @property
    def trading_state(self) -> TradingState:
        """ACTIVE, REDUCING (exits only) or HALTED (nothing goes through)."""
        return self._state()

    def position(self, symbol: str) -> float:
        """Signed shares held (0.0 when flat)."""
        return self._portfolio.position(symbol)

    def avg_price(self, symbol: str) -> float:
        """Average entry price of the open position, USD (0.0 when flat)."""
        return self._portfolio.avg_price(symbol)

    def entry_time(self, symbol: str) -> int | None:
        """Epoch ns of the first fill of the open trade in ``symbol``, or None when flat."""
        return self._trades.entry_ts(symbol)

    def pending(self, symbol: str) -> float:
        """Signed shares still to fill in every working order of ``symbol`` (entries + exits)."""
        return self._book.pending(symbol)

    def pending_entries(self, symbol: str) -> float:
        """Signed shares still to fill in working entries of ``symbol``."""
        return self._book.pending_entries(symbol)

    def pending_exits(self, symbol: str) -> float:
        """Signed shares still to fill in working ``reduce_only`` orders of ``symbol``."""
        return self._book.pending_exits(symbol)

    def features(self, symbol: str) -> dict[str, float] | None:
        """A copy of the latest streaming features of ``symbol`` (see ``learning.features``), or
        None when the learner pipeline is off or still warming up."""
        signals = self._signals
        if signals is None:
            return None
        features = signals.features(symbol)
        return dict(features) if features is not None else None

    def prediction(self, symbol: str) -> float | None:
        """Online learner's probability that the forward return beats its threshold, or None."""
        signals = self._signals
        return signals.prediction(symbol) if signals is not None else None

    def regime(self, symbol: str) -> Regime:
        """Current regime of ``symbol`` (UNKNOWN during warm-up or when the detector is off)."""
        signals = self._signals
        return signals.regime(symbol) if signals is not None else Regime.UNKNOWN
