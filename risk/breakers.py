"""Circuit breakers and the trading state they drive (ACTIVE / REDUCING / HALTED).

* Drawdown from the equity high-water mark >= ``max_drawdown`` -> HALTED. Only :meth:`rearm`
  leaves HALTED (an explicit operator command); it resets the high-water mark to the last equity.
* Loss versus the equity at the start of the trading day >= ``daily_loss_limit`` -> REDUCING until
  the clock timer ``"risk.daily_reset"`` fires when the day ends. The day's start equity is the
  last equity seen before the day's first bar (the previous close), so an overnight gap counts and
  the anchor does not depend on which symbol's bar comes first. A day ends at local midnight of
  ``trading_day_timezone`` (New York: the exchange session date of US equities; UTC for crypto).
* ``max_consecutive_losses`` losing trades in a row -> REDUCING until the timer ``"risk.cooldown"``
  fires ``loss_cooldown`` after the last of them.

REDUCING lasts while any of its causes is active; each cause is cleared by its own timer. Time comes
only from ``ts`` arguments and the :class:`core.clock.Clock` (timers come back via :meth:`on_timer`).
Money USD, fractions of equity, times ns UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from core.clock import Clock
from core.enums import TradingState
from core.events import TradeClosed, TradingStateChanged
from core.recovery import RiskSnapshot
from core.time import NANOS_PER_DAY
from risk.config import RiskConfig

DAILY_RESET_TIMER = "risk.daily_reset"
COOLDOWN_TIMER = "risk.cooldown"

_EPS = 1e-12  # a drawdown or loss of exactly the limit trips, whatever the float rounding
_DAILY, _STREAK, _RESTORED = "daily_loss", "loss_streak", "restored"
_NS = 1_000_000_000


def day_end_ns(ts: int, tz: ZoneInfo | None) -> int:
    """Epoch ns of the first local midnight of ``tz`` after ``ts`` (UTC midnight when ``tz`` is None).

    Examples
    --------
    >>> day_end_ns(0, None)
    86400000000000
    >>> day_end_ns(0, ZoneInfo("America/New_York")) // 3_600_000_000_000  # 1970-01-01 05:00Z
    5
    """
    if tz is None:
        return (ts // NANOS_PER_DAY + 1) * NANOS_PER_DAY
    local = datetime.fromtimestamp(ts // _NS, tz)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tz)
    return int(midnight.astimezone(timezone.utc).timestamp()) * _NS


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.2f}%"


class CircuitBreakers:
    """Own the trading state and move it on equity updates, closed trades, timers and commands.

    Parameters
    ----------
    config
        Breaker thresholds.
    clock
        Where the daily-reset and cool-down timers are scheduled.
    initial_state, initial_reason
        State restored from the store. HALTED stays HALTED until :meth:`rearm`; a restored
        REDUCING lasts until the next UTC midnight after the first equity update.
    peak_equity
        Restored high-water mark in USD, or None to start from the first equity seen.
    restored
        A persisted :class:`core.recovery.RiskSnapshot`; overrides the three arguments above and
        resumes the causes (with their timers), the day's anchor and the loss streak exactly.
    """

    __slots__ = ("config", "clock", "state", "version", "_halt_reason", "_causes", "_last_reason", "_peak",
                 "_halt_level", "_last_equity", "_day_end", "_day_start", "_daily_floor", "_losses", "_tz",
                 "_cooldown_until")

    def __init__(self, config: RiskConfig, clock: Clock, initial_state: TradingState = TradingState.ACTIVE,
                 initial_reason: str = "", peak_equity: float | None = None,
                 restored: RiskSnapshot | None = None) -> None:
        self.config = config
        self.clock = clock
        self.version = 0  # bumped on every change worth persisting (see :meth:`snapshot`)
        self._tz = None if config.trading_day_timezone == "UTC" else ZoneInfo(config.trading_day_timezone)
        if restored is not None:
            initial_state, initial_reason, peak_equity = restored.state, restored.reason, restored.peak_equity
        self.state = TradingState(initial_state)
        self._halt_reason = (initial_reason or "restored halted state") if self.state is TradingState.HALTED else ""
        self._causes: dict[str, str] = {}
        self._last_reason = initial_reason
        self._peak = 0.0
        self._halt_level = float("-inf")
        if peak_equity is not None and peak_equity > 0.0:
            self._set_peak(peak_equity)
        self._last_equity: float | None = None
        self._day_end = -1  # ns at which the current trading day ends; -1 before any bar
        self._day_start = 0.0
        self._daily_floor = float("-inf")
        self._losses = 0
        self._cooldown_until = -1
        if restored is not None:
            self._restore(restored)
        elif self.state is TradingState.REDUCING:
            self._causes[_RESTORED] = initial_reason or "restored reducing state"

    def _restore(self, snap: RiskSnapshot) -> None:
        """Resume the breakers exactly: causes with their timers, the day's anchor, the streak."""
        self._causes = dict(snap.causes)
        if self.state is TradingState.REDUCING and not self._causes:
            self._causes[_RESTORED] = snap.reason or "restored reducing state"
        self._losses = snap.loss_streak
        if snap.day_start_equity is not None and snap.day_end_ns > 0:
            self._day_end = snap.day_end_ns
            self._day_start = snap.day_start_equity
            self._daily_floor = snap.day_start_equity * (1.0 - self.config.daily_loss_limit + _EPS)
        if _DAILY in self._causes and self._day_end > 0:
            self.clock.set_timer(DAILY_RESET_TIMER, self._day_end)
        if _STREAK in self._causes and snap.cooldown_until_ns > 0:
            self._cooldown_until = snap.cooldown_until_ns
            self.clock.set_timer(COOLDOWN_TIMER, snap.cooldown_until_ns)

    def snapshot(self, ts: int) -> RiskSnapshot:
        """Everything needed to resume these breakers after a restart (persisted by the store)."""
        return RiskSnapshot(state=self.state, reason=self.reason, causes=dict(self._causes),
                            peak_equity=self.peak_equity, day_start_equity=self._day_start if self._day_end > 0 else None,
                            day_end_ns=self._day_end, cooldown_until_ns=self._cooldown_until if _STREAK in self._causes else -1,
                            loss_streak=self._losses, ts=ts)

    # --- reads -------------------------------------------------------------------------------
    @property
    def reason(self) -> str:
        """Why the state is what it is (the halt reason, the REDUCING causes, or the last change)."""
        if self.state is TradingState.HALTED:
            return self._halt_reason
        if self._causes:
            return "; ".join(self._causes.values())
        return self._last_reason

    @property
    def peak_equity(self) -> float | None:
        """High-water mark of equity in USD (None before the first equity update)."""
        return self._peak if self._peak > 0.0 else None

    @property
    def consecutive_losses(self) -> int:
        return self._losses

    # --- inputs ------------------------------------------------------------------------------
    def on_equity(self, equity: float, ts: int) -> TradingStateChanged | None:
        """Update the high-water mark and the day's start equity; trip drawdown or daily loss.

        Called on every bar, so the common path only compares and stores (no new objects):
        thresholds are precomputed when the peak or the day changes.

        Parameters
        ----------
        equity
            Account equity, USD.
        ts
            Event time, ns UTC; the first call of each trading day anchors the daily loss on the
            equity of the call before it.

        Returns
        -------
        TradingStateChanged or None
            The change to HALTED (drawdown) or REDUCING (daily loss), or None.
        """
        previous = self._last_equity
        self._last_equity = equity
        if equity > self._peak:
            self._set_peak(equity)
        if ts >= self._day_end:
            # anchor on the equity before the day's first bar: an overnight gap is the new day's loss
            self._new_day(previous if previous is not None else equity, ts)
        if self.state is TradingState.HALTED:
            return None
        if equity <= self._halt_level:
            drawdown = 1.0 - equity / self._peak
            return self._halt(f"drawdown {_pct(drawdown)} >= max_drawdown {_pct(self.config.max_drawdown)} "
                              f"(equity {equity:.2f} USD, peak {self._peak:.2f} USD)", ts)
        if equity <= self._daily_floor and _DAILY not in self._causes:
            loss = 1.0 - equity / self._day_start
            self.clock.set_timer(DAILY_RESET_TIMER, self._day_end)
            return self._add_cause(_DAILY, f"daily loss {_pct(loss)} >= daily_loss_limit "
                                           f"{_pct(self.config.daily_loss_limit)} (equity {equity:.2f} USD, "
                                           f"day start {self._day_start:.2f} USD)", ts)
        return None

    def on_trade_closed(self, trade: TradeClosed) -> TradingStateChanged | None:
        """Count losing trades in a row; trip the cool-down at ``max_consecutive_losses``.

        A loser (``pnl < 0`` USD) adds one, a winner (``pnl > 0``) resets the count, a break-even
        trade leaves it. Reaching the limit -> REDUCING until the ``"risk.cooldown"`` timer at
        ``trade.ts_init + loss_cooldown``, and the count starts over (another full streak during
        the cool-down re-schedules it).

        Parameters
        ----------
        trade
            The round trip that just closed.

        Returns
        -------
        TradingStateChanged or None
            The change to REDUCING, or None when the state did not change.
        """
        if trade.pnl > 0.0:
            if self._losses:
                self._losses = 0
                self.version += 1
            return None
        if not trade.pnl < 0.0:
            return None
        self._losses += 1
        self.version += 1
        limit = self.config.max_consecutive_losses
        if self._losses < limit:
            return None
        self._losses = 0
        ts = trade.ts_init
        self._cooldown_until = ts + self.config.loss_cooldown_ns
        self.clock.set_timer(COOLDOWN_TIMER, self._cooldown_until)
        return self._add_cause(_STREAK, f"{limit} consecutive losing trades >= max_consecutive_losses {limit} "
                                        f"(cool-down {self.config.loss_cooldown})", ts)

    def on_timer(self, name: str, ts: int) -> TradingStateChanged | None:
        """Clear the cause a ``"risk.*"`` timer ends; other timer names are ignored.

        Returns to ACTIVE from REDUCING only when no other cause is still active; never leaves HALTED.
        """
        if name == DAILY_RESET_TIMER:
            cleared = [_DAILY, _RESTORED]
            why = f"daily loss window ended (trading day over, {self.config.trading_day_timezone})"
        elif name == COOLDOWN_TIMER:
            cleared = [_STREAK, _RESTORED]
            why = f"loss cool-down of {self.config.loss_cooldown} ended"
        else:
            return None
        for cause in cleared:
            self._causes.pop(cause, None)
        return self._settle(why, ts)

    def add_cause(self, cause: str, reason: str, ts: int) -> TradingStateChanged | None:
        """Add a REDUCING cause named ``cause`` (e.g. ``"stale_data"``) until :meth:`clear_cause`."""
        return self._add_cause(cause, reason, ts)

    def clear_cause(self, cause: str, reason: str, ts: int) -> TradingStateChanged | None:
        """Clear REDUCING cause ``cause``; back to ACTIVE when no other cause is active."""
        if self._causes.pop(cause, None) is None:
            return None
        self.version += 1
        return self._settle(reason, ts)

    def halt(self, reason: str, ts: int) -> TradingStateChanged | None:
        """Move to HALTED (operator or breaker); None when already HALTED."""
        if self.state is TradingState.HALTED:
            return None
        return self._halt(reason, ts)

    def rearm(self, reason: str, ts: int) -> TradingStateChanged | None:
        """Return to ACTIVE from HALTED or REDUCING (the only way out of HALTED).

        Clears every cause and its timer, resets the loss streak, and re-anchors the high-water
        mark and the day's start equity to the last equity seen (else the breakers would trip
        again at once). None when already ACTIVE.
        """
        if self.state is TradingState.ACTIVE:
            return None
        self._halt_reason = ""
        self._causes.clear()
        self.clock.cancel_timer(DAILY_RESET_TIMER)
        self.clock.cancel_timer(COOLDOWN_TIMER)
        self._losses = 0
        self._cooldown_until = -1
        self.version += 1
        equity = self._last_equity
        if equity is not None and equity > 0.0:
            self._set_peak(equity)
            self._day_start = equity
            self._daily_floor = equity * (1.0 - self.config.daily_loss_limit + _EPS)
        else:
            self._peak, self._halt_level = 0.0, float("-inf")
        return self._settle(reason or "re-armed", ts)

    # --- internals ---------------------------------------------------------------------------
    def _set_peak(self, equity: float) -> None:
        self.version += 1
        self._peak = equity
        self._halt_level = equity * (1.0 - self.config.max_drawdown + _EPS)

    def _new_day(self, equity: float, ts: int) -> None:
        self.version += 1
        self._day_end = day_end_ns(ts, self._tz)
        self._day_start = equity
        self._daily_floor = equity * (1.0 - self.config.daily_loss_limit + _EPS) if equity > 0.0 else float("-inf")
        if _RESTORED in self._causes:  # restored REDUCING of unknown origin: lasts to midnight
            self.clock.set_timer(DAILY_RESET_TIMER, self._day_end)

    def _halt(self, reason: str, ts: int) -> TradingStateChanged | None:
        self._halt_reason = reason or "halted"
        self.version += 1
        return self._settle(self._halt_reason, ts)

    def _add_cause(self, cause: str, reason: str, ts: int) -> TradingStateChanged | None:
        self.version += 1
        self._causes[cause] = reason
        return self._settle(reason, ts)

    def _settle(self, reason: str, ts: int) -> TradingStateChanged | None:
        if self._halt_reason:
            new = TradingState.HALTED
        elif self._causes:
            new = TradingState.REDUCING
        else:
            new = TradingState.ACTIVE
        previous = self.state
        if new is previous:
            return None
        self.state = new
        self._last_reason = reason
        if new is TradingState.REDUCING:
            reason = self.reason
        return TradingStateChanged(previous=previous, current=new, reason=reason, ts_event=ts, ts_init=ts)


__all__ = ["COOLDOWN_TIMER", "DAILY_RESET_TIMER", "CircuitBreakers", "day_end_ns"]
