"""The staleness watchdog: a symbol whose bars stop arriving while its market is open moves
trading to REDUCING (a stale-data cause per symbol, through the engine) and clears when bars
resume.

A symbol is stale when no bar was released for more than ``max_periods`` bar periods of time
during which its exchange was open (exchange-calendars; 24/7 for crypto), so nights, weekends
and holidays never count.
"""

from __future__ import annotations

from collections.abc import Callable

from core.events import Bar, DataResumed, DataStale


def exchange_open(symbol: str) -> Callable[[int], bool]:
    """``is_open(ts)`` for ``symbol``'s exchange (XNYS for equities, always for crypto)."""
    from backtest.calendar import calendar_for

    name = calendar_for(symbol)
    if name == "24/7":
        return lambda ts: True
    import pandas as pd

    from backtest.calendar import exchange_calendar

    calendar = exchange_calendar(name)

    def is_open(ts: int) -> bool:
        minute = pd.Timestamp(ts, unit="ns", tz="UTC").floor("min")
        if not calendar.first_minute <= minute <= calendar.last_minute:
            return False
        return bool(calendar.is_open_on_minute(minute))

    return is_open


class StalenessWatchdog:
    """Track the last bar per symbol; report stale symbols and their recovery.

    Parameters
    ----------
    timeframe_ns
        The feed's bar period, ns.
    max_periods
        Open-market bar periods without a bar before the symbol is stale (>= 1).
    is_open
        ``is_open(symbol) -> (ts -> bool)``; default :func:`exchange_open`.
    """

    def __init__(self, timeframe_ns: int, max_periods: int = 5,
                 is_open: Callable[[str], Callable[[int], bool]] = exchange_open) -> None:
        if max_periods < 1:
            raise ValueError(f"max_periods must be >= 1, got {max_periods}")
        self.limit_ns = timeframe_ns * max_periods
        self._timeframe = timeframe_ns
        self._is_open_for = is_open
        self._open: dict[str, Callable[[int], bool]] = {}
        self._last: dict[str, int] = {}  # symbol -> release time of its last bar
        self._open_ns: dict[str, int] = {}  # symbol -> open-market ns since its last bar
        self._checked: dict[str, int] = {}
        self.stale: set[str] = set()

    def on_bar(self, bar: Bar) -> DataResumed | None:
        """A bar passed the gate; returns the recovery event when its symbol was stale."""
        symbol = bar.symbol
        if symbol not in self._open:
            self._open[symbol] = self._is_open_for(symbol)
        self._last[symbol] = bar.ts_init
        self._open_ns[symbol] = 0
        self._checked[symbol] = bar.ts_init
        if symbol in self.stale:
            self.stale.discard(symbol)
            return DataResumed(symbol=symbol, ts_event=bar.ts_init, ts_init=bar.ts_init)
        return None

    def check(self, now: int) -> list[DataStale]:
        """Advance to ``now`` and return the symbols that just became stale."""
        out = []
        for symbol, checked in self._checked.items():
            if now <= checked:
                continue
            # count open-market time since the last check, sampled once per bar period
            is_open = self._open[symbol]
            step = self._timeframe
            t = checked + step
            while t <= now:
                if is_open(t):
                    self._open_ns[symbol] += step
                t += step
            self._checked[symbol] = t - step
            if symbol not in self.stale and self._open_ns[symbol] > self.limit_ns:
                self.stale.add(symbol)
                out.append(DataStale(symbol=symbol, ts_event=self._last[symbol], ts_init=now,
                                     reason=(f"no {symbol} bar for {self._open_ns[symbol] // 1_000_000_000} s of "
                                             f"open market (limit {self.limit_ns // 1_000_000_000} s)")))
        return out


__all__ = ["StalenessWatchdog", "exchange_open"]
