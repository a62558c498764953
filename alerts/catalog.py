"""The alerts the live daemon raises itself, built in one place so their titles stay stable (the
router de-duplicates on title and text, so volatile numbers go into fields, not the text).

Breaker trips and re-arms (``trading state active -> halted``), rejected orders (``order
rejected: SPY``), stale data (``stale data: SPY``) and strategy crashes (``strategy X disabled``)
are raised by the engine itself; this module covers what only the daemon knows: start and stop,
data resumed, queue backpressure, health thresholds and the end-of-day summary
(:class:`DailySummary` collects it from the engine's published events).

Each helper returns an :class:`Alert`; ``alert.send(sink)`` hands it to any
:class:`core.ports.AlertSink`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from core.enums import TradingState
from core.events import OrderFilled, TradeClosed, TradingStateChanged
from core.ports import AlertSink
from core.time import iso

__all__ = ["Alert", "DailySummary", "daemon_started", "daemon_stopped", "data_resumed", "health_threshold",
           "queue_backpressure"]


class Alert(NamedTuple):
    """One alert: severity, title, text and fields (see :meth:`core.ports.AlertSink.alert`)."""

    severity: str
    title: str
    text: str
    fields: Mapping[str, Any] = {}

    def send(self, sink: AlertSink) -> None:
        """Hand the alert to ``sink``."""
        sink.alert(self.severity, self.title, self.text, **dict(self.fields))


def daemon_started(*, account: str, mode: str, strategy: str, symbols: Sequence[str], feed: str,
                   recovered: str = "") -> Alert:
    """The daemon is up and trading (info, sent to Slack: an unexpected restart must be seen).

    Parameters
    ----------
    account, mode
        Account name and ``paper`` | ``live``.
    strategy, symbols, feed
        What it trades, on what, fed by what (``file`` | ``mqtt`` | ``alpaca``).
    recovered
        One line on the state recovered from the store (positions, open orders, trading state).

    Examples
    --------
    >>> a = daemon_started(account="paper", mode="paper", strategy="sma_cross", symbols=["SPY"], feed="mqtt")
    >>> a.title, a.text
    ('tradingd started: paper', 'paper trading sma_cross on SPY, feed mqtt')
    """
    text = f"{mode} trading {strategy} on {', '.join(symbols)}, feed {feed}"
    return Alert("info", f"tradingd started: {account}", f"{text}\n{recovered}" if recovered else text,
                 {"account": account, "mode": mode, "notify": True})


def daemon_stopped(*, account: str, reason: str, uptime_s: float, clean: bool = True) -> Alert:
    """The daemon stopped: info after a clean shutdown (SIGTERM, drained), error otherwise.

    Parameters
    ----------
    reason
        Why (``SIGTERM``, ``fatal: ...``).
    uptime_s
        Seconds it ran.
    clean
        Queue drained and store flushed.

    Examples
    --------
    >>> daemon_stopped(account="paper", reason="SIGTERM", uptime_s=7200).severity
    'info'
    """
    return Alert("info" if clean else "error", f"tradingd stopped: {account}",
                 reason if clean else f"{reason} (not a clean shutdown)",
                 {"account": account, "uptime": _duration(uptime_s), "notify": True})


def data_resumed(*, symbol: str, gap_s: float) -> Alert:
    """Bars of ``symbol`` arrive again after a stale-data alert (the breaker cause clears).

    >>> data_resumed(symbol="SPY", gap_s=420).title
    'data resumed: SPY'
    """
    return Alert("info", f"data resumed: {symbol}", "bars arrive again; the stale-data breaker clears",
                 {"symbol": symbol, "gap": _duration(gap_s), "notify": True})


def queue_backpressure(*, depth: int, capacity: int, waited_s: float, source: str) -> Alert:
    """The event queue is full and ``source`` (a feed, the broker stream) waits on it; nothing is
    dropped, but the engine is behind. ``waited_s``: how long the producer waited, seconds.

    >>> queue_backpressure(depth=1000, capacity=1000, waited_s=0.25, source="mqtt").title
    'event queue full'
    """
    return Alert("warning", "event queue full", f"{source} waits for the engine (no event is dropped)",
                 {"source": source, "depth": depth, "capacity": capacity, "waited_ms": round(waited_s * 1000, 1)})


def health_threshold(*, metric: str, value: float, limit: float, unit: str) -> Alert:
    """A health figure crossed its threshold (disk free, RSS growth, event-loop lag ...).

    >>> health_threshold(metric="disk free", value=0.4, limit=1.0, unit="GB").text
    'disk free 0.4 GB (threshold 1 GB)'
    """
    return Alert("warning", f"health: {metric}", f"{metric} {value:g} {unit} (threshold {limit:g} {unit})",
                 {"metric": metric})


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


@dataclass
class DailySummary:
    """Collect the trading day from the engine's published events and build the end-of-day alert.

    Subscribe :meth:`on_event` to ``TradeClosed``, ``OrderFilled`` and ``TradingStateChanged``;
    at the exchange close call :meth:`build`, then :meth:`reset`.
    """

    trades: list[TradeClosed] = field(default_factory=list)
    fills: int = 0
    commission: float = 0.0
    state_changes: list[TradingStateChanged] = field(default_factory=list)

    def on_event(self, event: object) -> None:
        """Record one event (other types are ignored)."""
        if isinstance(event, TradeClosed):
            self.trades.append(event)
        elif isinstance(event, OrderFilled):
            self.fills += 1
            self.commission += event.commission
        elif isinstance(event, TradingStateChanged):
            self.state_changes.append(event)

    def reset(self) -> None:
        """Start a new day."""
        self.trades.clear()
        self.state_changes.clear()
        self.fills = 0
        self.commission = 0.0

    def build(self, *, account: str, day: str, start_equity: float, end_equity: float, state: TradingState,
              open_positions: int) -> Alert:
        """Return the daily summary alert (info, sent to Slack).

        Parameters
        ----------
        account, day
            Account name and the session date (``YYYY-MM-DD``, exchange time).
        start_equity, end_equity
            Equity at the day's start and now, USD; their difference is the day's P&L.
        state, open_positions
            The trading state and the number of open positions at the close.

        Returns
        -------
        Alert
            Text: P&L (USD and fraction of the start equity), trades (won/lost, realized P&L),
            fills and commission, then one line per breaker event.
        """
        pnl = end_equity - start_equity
        ret = pnl / start_equity if start_equity else 0.0
        won = sum(1 for t in self.trades if t.pnl > 0)
        realized = sum(t.pnl for t in self.trades)
        lines = [f"P&L {pnl:+,.2f} USD ({ret:+.2%}), equity {end_equity:,.2f} USD",
                 f"{len(self.trades)} trades ({won} won, {len(self.trades) - won} lost), realized {realized:+,.2f} USD",
                 f"{self.fills} fills, commission {self.commission:,.2f} USD"]
        if self.state_changes:
            lines.append(f"{len(self.state_changes)} breaker events:")
            lines += [f"• {iso(c.ts_event)[11:19]} {c.previous.value} -> {c.current.value}: {c.reason}"
                      for c in self.state_changes]
        else:
            lines.append("no breaker events")
        return Alert("info", f"daily summary {day}: {account}", "\n".join(lines),
                     {"account": account, "pnl_usd": round(pnl, 2), "trades": len(self.trades),
                      "trading_state": state.value, "open_positions": open_positions, "notify": True})
