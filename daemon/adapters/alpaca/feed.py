"""Alpaca's 1-minute bars as a live-node :class:`~daemon.live.node.Feed`, with gap backfill.

The SDK's data stream runs inside the node's loop (``_run_forever`` as a task, notes §8):
subscribe before the task starts, ``stop_ws()`` + ``close()`` to stop. It reconnects by itself but
says nothing about it and never replays what was missed, so a subclass hooks ``_start_ws`` (every
connect) and ``_send_subscribe_msg`` (subscribed): after every reconnect, and at the first
connect when the caller knows the last bar it booked (``last_bar_ts``, after a restart), the
missed minutes are fetched from the historical API and enqueued in time order (ties by symbol)
before any live bar that arrived meanwhile (those wait in a buffer and are released after).

A bar is enqueued only when it starts after the last one enqueued for its symbol, so a bar that
arrives both live and from history, or twice, reaches the engine once (``duplicates_dropped``).

Failure policy: a backfill request that fails is alerted (the missing window is named) and the
feed goes on live; a window longer than ``backfill_max_minutes`` is cut to its newest minutes
and the rest alerted as a gap. The data task ending by itself (the stream's ``409 insufficient
subscription``: the SDK gives up and returns quietly) is a critical alert and raises
:class:`FeedStopped`, which the node reports as a crashed feed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from core.events import Bar
from core.ports import AlertSink
from core.time import NANOS_PER_MINUTE, iso
from daemon.adapters.alpaca.clients import RequestBudget, classify, metered
from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials
from daemon.adapters.alpaca.history import fetch_bars

__all__ = ["AlpacaMarketDataFeed", "FeedStopped", "bar_from_stream"]

Enqueue = Callable[[Any], Awaitable[None]]
_log = structlog.get_logger("tradingd.alpaca.feed")
_MAX_ROUNDS = 3  # backfill rounds per connect: later rounds only close a hole a slow subscribe left


class _DropRestartNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "restarting connection" not in record.getMessage()


class FeedStopped(RuntimeError):
    """The market-data stream ended without being asked to (e.g. ``409 insufficient subscription``)."""


def bar_from_stream(msg: Mapping[str, Any]) -> Bar:
    """Convert one raw stream bar (``{"T": "b", "S", "o", "h", "l", "c", "v", "t"}``) to a 1-minute Bar.

    ``t`` is the msgpack Timestamp the SDK leaves in raw mode (or an aware ``datetime``);
    ``ts_event`` = bar start, ``ts_init`` = start + 60 s (when the minute is complete).

    Examples
    --------
    >>> import msgpack
    >>> bar = bar_from_stream({"T": "b", "S": "SPY", "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 100,
    ...                        "t": msgpack.Timestamp(1704207600, 0), "n": 3, "vw": 1.2})
    >>> iso(bar.ts_event), iso(bar.ts_init), bar.volume
    ('2024-01-02T15:00:00Z', '2024-01-02T15:01:00Z', 100.0)
    """
    stamp = msg["t"]
    if hasattr(stamp, "to_unix_nano"):
        start = int(stamp.to_unix_nano())
    else:
        from core.time import to_nanos

        start = to_nanos(stamp)
    return Bar(str(msg["S"]), start, start + NANOS_PER_MINUTE, float(msg["o"]), float(msg["h"]), float(msg["l"]),
               float(msg["c"]), float(msg["v"]))


def _stream_class(crypto: bool) -> type:
    """The SDK stream class with connect/subscribe hooks (built lazily: importing alpaca-py costs)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="websockets.legacy")
        if crypto:
            from alpaca.data.live.crypto import CryptoDataStream as base
        else:
            from alpaca.data.live.stock import StockDataStream as base  # type: ignore[assignment]

    class HookedStream(base):
        on_connected: Callable[[], None] = staticmethod(lambda: None)
        on_subscribed: Callable[[], None] = staticmethod(lambda: None)

        async def _start_ws(self) -> None:  # connect + auth: every (re)connect passes here
            await super()._start_ws()
            self.on_connected()

        async def _send_subscribe_msg(self) -> None:
            await super()._send_subscribe_msg()
            self.on_subscribed()

    return HookedStream


class AlpacaMarketDataFeed:
    """Stream 1-minute bars of ``cfg.symbols`` from Alpaca and fill gaps from the historical API.

    Parameters
    ----------
    creds : AlpacaCredentials
    cfg : AlpacaConfig
        ``symbols``, ``asset_class`` (StockDataStream or CryptoDataStream), ``data_feed`` (iex or
        sip), ``data_stream_url`` (None: Alpaca's), ``backfill_max_minutes``.
    history
        The historical client (``data_client()`` / ``crypto_data_client()``, raw or not; None:
        one is built from ``creds`` and ``cfg``); its requests are metered by ``budget``.
    budget : RequestBudget
        The account's REST budget.
    alerts : AlertSink
    now : callable
        Current time, epoch ns UTC (the node's clock): the backfill fetches minutes that are
        complete by then.
    last_bar_ts : mapping of str to int, optional
        Start (epoch ns UTC) of the last bar already booked per symbol (after a restart): the
        first connect backfills after it, and nothing at or before it is enqueued again.

    Attributes
    ----------
    name : str
        ``"alpaca-bars"``.

    Raises
    ------
    ValueError
        If ``cfg.symbols`` is empty.
    """

    name = "alpaca-bars"

    def __init__(self, creds: AlpacaCredentials, cfg: AlpacaConfig, *, history: Any, budget: RequestBudget,
                 alerts: AlertSink, now: Callable[[], int], last_bar_ts: Mapping[str, int] | None = None) -> None:
        if not cfg.symbols:
            raise ValueError("[alpaca] symbols is empty: the market-data feed needs at least one symbol")
        self.creds, self.cfg = creds, cfg
        self.symbols = tuple(dict.fromkeys(cfg.symbols))
        if history is None:
            from daemon.adapters.alpaca.clients import crypto_data_client, data_client

            make = crypto_data_client if cfg.asset_class == "crypto" else data_client
            history = make(creds, cfg, raw_data=True)
        self.history = metered(history, budget)
        self.budget = budget
        self.alerts = alerts
        self.now = now
        self._last: dict[str, int] = {s: int(t) for s, t in (last_bar_ts or {}).items() if s in self.symbols}
        self._restarted = bool(self._last)
        self._first_connect_ns: int | None = None
        self._enqueue: Enqueue | None = None
        self._buffer: collections.deque[Bar] = collections.deque()
        self._backfilling = False
        self._backfill_due = False
        self._again = False
        self._verify: set[str] = set()  # symbols whose next live bar is checked for a hole before it
        self._backfill_task: asyncio.Task[None] | None = None
        self._stop_requested = False
        self.connects = 0
        self.live_bars = 0
        self.backfilled_bars = 0
        self.duplicates_dropped = 0
        self.backfill_failures = 0
        self.minutes_not_backfilled = 0

    @property
    def stats(self) -> dict[str, int]:
        """Counters: connects, reconnects, live_bars, backfilled_bars, duplicates_dropped,
        backfill_failures, minutes_not_backfilled (market-open minutes cut by ``backfill_max_minutes``)."""
        return {"connects": self.connects, "reconnects": max(0, self.connects - 1), "live_bars": self.live_bars,
                "backfilled_bars": self.backfilled_bars, "duplicates_dropped": self.duplicates_dropped,
                "backfill_failures": self.backfill_failures, "minutes_not_backfilled": self.minutes_not_backfilled}

    @property
    def last_bar_ts(self) -> dict[str, int]:
        """Start (epoch ns UTC) of the last bar enqueued per symbol."""
        return dict(self._last)

    # --- running ---------------------------------------------------------------------------------
    async def run(self, enqueue: Enqueue) -> None:
        """Stream until cancelled; ``await enqueue(bar)`` for every new bar, in time order per symbol.

        Raises
        ------
        FeedStopped
            If the stream ended without being cancelled (alerted as critical first).
        """
        from alpaca.data.enums import DataFeed

        self._enqueue = enqueue
        crypto = self.cfg.asset_class == "crypto"
        cls = _stream_class(crypto)
        kwargs: dict[str, Any] = {"raw_data": True, "url_override": self.cfg.data_stream_url}
        if not crypto:
            kwargs["feed"] = DataFeed(self.cfg.data_feed)
        stream = cls(self.creds.key_id, self.creds.secret_key, **kwargs)
        stream.on_connected = self._on_connected
        stream.on_subscribed = self._on_subscribed
        stream.subscribe_bars(self._on_bar, *self.symbols)  # before the task starts (notes §8)
        task = asyncio.create_task(stream._run_forever(), name="alpaca-data")
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self._stop_requested = True
            await self._stop(stream, task)
            raise
        except Exception:
            pass  # reported below
        finally:
            if self._backfill_task is not None and not self._backfill_task.done():
                self._backfill_task.cancel()
        if not self._stop_requested:
            exc = task.exception()
            reason = f"{type(exc).__name__}: {exc}" if exc else (
                "the stream gave up (insufficient subscription for this feed? check [alpaca] data_feed; "
                "the SDK logged the reason)")
            self.alerts.alert("critical", "market-data stream ended",
                              f"{self.cfg.asset_class} bars of {', '.join(self.symbols)}: {reason}; no more bars arrive")
            raise FeedStopped(f"Alpaca market-data stream ended: {reason}")

    @staticmethod
    async def _stop(stream: Any, task: asyncio.Task[None]) -> None:
        """Stop the SDK's loop from inside ours (``stop()`` would block on this very thread)."""
        sdk_log = logging.getLogger("alpaca.data.live.websocket")
        quiet = _DropRestartNotice()
        sdk_log.addFilter(quiet)  # closing it ourselves reads to the SDK as an error it "restarts" from
        try:
            await stream.stop_ws()
            await stream.close()  # ends its pending recv now instead of at the next 5 s poll
            done, _ = await asyncio.wait({task}, timeout=8.0)
            if not done:
                task.cancel()
            await stream.close()
        finally:
            sdk_log.removeFilter(quiet)

    # --- SDK hooks (run in the stream's task) --------------------------------------------------------
    def _on_connected(self) -> None:
        self.connects += 1
        now = self.now()
        if self._first_connect_ns is None:
            self._first_connect_ns = now
        _log.info("alpaca data stream connected", connects=self.connects, asset_class=self.cfg.asset_class)
        if self.connects > 1 or self._restarted:
            self._backfilling = True  # live bars wait in the buffer until the backfill is enqueued
            self._backfill_due = True

    def _on_subscribed(self) -> None:
        if not self._backfill_due:
            return
        self._backfill_due = False
        if self._backfill_task is not None and not self._backfill_task.done():
            self._again = True  # a reconnect during a backfill: one more round
        else:
            self._backfill_task = asyncio.get_running_loop().create_task(self._backfill(), name="alpaca-backfill")

    async def _on_bar(self, msg: Any) -> None:
        """The stream's handler: convert and enqueue (or buffer during a backfill); nothing else."""
        bar = bar_from_stream(msg)
        if self._backfilling:
            self._buffer.append(bar)
            return
        if bar.symbol in self._verify:
            # the first live bar after a backfill: a minute published between the history request
            # and the subscription taking effect would be a hole before it; fetch it once
            self._verify.discard(bar.symbol)
            last = self._last.get(bar.symbol)
            if last is not None and bar.ts_event > last + NANOS_PER_MINUTE:
                self._buffer.append(bar)
                self._backfilling = True
                self._backfill_task = asyncio.get_running_loop().create_task(
                    self._backfill(verify_after=False), name="alpaca-backfill")
                return
        await self._emit(bar, backfilled=False)

    async def _emit(self, bar: Bar, *, backfilled: bool) -> None:
        last = self._last.get(bar.symbol)
        if last is not None and bar.ts_event <= last:
            self.duplicates_dropped += 1
            return
        self._last[bar.symbol] = bar.ts_event
        if backfilled:
            self.backfilled_bars += 1
        else:
            self.live_bars += 1
        assert self._enqueue is not None
        await self._enqueue(bar)

    # --- backfill ------------------------------------------------------------------------------------
    async def _backfill(self, verify_after: bool = True) -> None:
        try:
            await self._backfill_rounds(verify_after)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave live bars parked in the buffer for good
            self.backfill_failures += 1
            self.alerts.alert("error", "market-data backfill crashed", f"{type(exc).__name__}: {exc}; "
                              f"{len(self._buffer)} buffered live bars dropped, continuing live")
            self._buffer.clear()
            self._backfilling = False

    async def _backfill_rounds(self, verify_after: bool) -> None:
        rounds = 0
        while True:
            self._again = False
            end = await self._backfill_round()
            rounds += 1
            if end is None:  # failed and alerted: that gap stays, no later fetch fills it
                verify_after = False
            if self._again:  # reconnected meanwhile: fetch again from what is enqueued now
                continue
            if end is not None and rounds < _MAX_ROUNDS and self._hole_before_buffer(end):
                continue
            while self._buffer and not self._again:
                await self._emit(self._buffer.popleft(), backfilled=False)
            if not self._again:
                break
        self._backfilling = False  # no await since the buffer was seen empty: no bar can slip past
        self._verify = set(self.symbols) if verify_after else set()

    def _hole_before_buffer(self, end: int) -> bool:
        """Whether a buffered live bar starts after ``end`` (the history window's exclusive end):
        bars between them (published while the subscription took effect) would be lost."""
        firsts: dict[str, int] = {}
        for bar in self._buffer:
            firsts.setdefault(bar.symbol, bar.ts_event)
        return any(start > end for start in firsts.values())

    async def _state_gap(self, symbol: str, start: int, end: int) -> None:
        """Alert the part of a missed window that is too old to backfill, ``[start, end)`` ns UTC,
        counting only minutes the market was open (a night or a weekend is no gap)."""
        from backtest.calendar import ALWAYS_OPEN, calendar_for
        from backtest.data_quality import session_minutes

        calendar = ALWAYS_OPEN if self.cfg.asset_class == "crypto" else calendar_for(symbol)
        minutes = await asyncio.to_thread(session_minutes, calendar, start, end)  # builds the calendar once
        if not minutes:
            _log.info("alpaca backfill window cut, market closed in the cut part", symbol=symbol, start=iso(start),
                      end=iso(end))
            return
        self.minutes_not_backfilled += minutes
        where = "" if calendar == ALWAYS_OPEN else f" of {calendar} sessions"
        self.alerts.alert("warning", "market-data gap not backfilled",
                          f"{symbol}: bars {iso(start)} to {iso(end)} are missing ({minutes} min{where}; only the "
                          f"last {self.cfg.backfill_max_minutes} min are fetched, [alpaca] backfill_max_minutes)")

    async def _backfill_round(self) -> int | None:
        """Fetch and enqueue the missed minutes once; return the window's end (exclusive), or None."""
        now = self.now()
        end = now // NANOS_PER_MINUTE * NANOS_PER_MINUTE  # bars starting before it are complete by now
        limit = self.cfg.backfill_max_minutes * NANOS_PER_MINUTE
        starts: dict[str, int] = {}
        for symbol in self.symbols:
            last = self._last.get(symbol)
            if last is None:  # nothing seen yet: the minutes since the first connect
                assert self._first_connect_ns is not None
                first = self._first_connect_ns // NANOS_PER_MINUTE * NANOS_PER_MINUTE
            else:
                first = last + NANOS_PER_MINUTE
            if first >= end:
                continue
            if end - first > limit:
                await self._state_gap(symbol, first, end - limit)
                first = end - limit
            if first < end:
                starts[symbol] = first
        if not starts:
            return end
        try:
            fetched = await asyncio.to_thread(
                fetch_bars, self.history, list(starts), min(starts.values()), end, asset_class=self.cfg.asset_class,
                feed=self.cfg.data_feed)
        except Exception as exc:
            self.backfill_failures += 1
            window = ", ".join(f"{s} {iso(t)}" for s, t in starts.items())
            self.alerts.alert("error", "market-data backfill failed",
                              f"missed bars after reconnect not fetched ({window} to {iso(end)}): "
                              f"{classify(exc).text}; continuing live with that gap")
            return None
        bars = [Bar(symbol, int(t), int(t) + NANOS_PER_MINUTE, float(o), float(h), float(lo), float(c), float(v))
                for symbol, columns in fetched.items()
                for t, o, h, lo, c, v in zip(*columns) if t >= starts[symbol]]
        bars.sort(key=lambda b: (b.ts_event, b.symbol))
        for bar in bars:
            await self._emit(bar, backfilled=True)
        _log.info("alpaca bars backfilled", bars=len(bars), symbols=len(starts), end=iso(end))
        return end
