"""AlpacaTradeUpdates: the ``trade_updates`` websocket as a live-node feed.

alpaca-py's ``TradingStream`` runs inside the node's loop as ALPACA_MQTT_NOTES §8 prescribes: the
handler is subscribed before the stream starts (subscribing later from the loop thread
deadlocks), ``_run_forever()`` runs as a task, and it is stopped with ``await stop_ws()`` (never
``stop()``/``run()``, which block or start a second loop). The SDK reconnects by itself but says
nothing about it and Alpaca does not replay what was missed, so ``_start_ws`` is hooked: every
connect after the first runs ``on_reconnect()`` (reconciliation through REST).
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from daemon.adapters.alpaca.broker import AlpacaBroker
from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials

with warnings.catch_warnings():  # alpaca-py 0.44 streams use websockets.legacy (deprecated, still works)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"websockets(\.|$)")
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*websockets\.legacy.*")
    from alpaca.trading.stream import TradingStream

__all__ = ["AlpacaTradeUpdates"]

Enqueue = Callable[[Any], Awaitable[None]]
_STOP_WAIT_S = 6.0  # the SDK notices stop_ws within 5 s; the task is cancelled after this


class _ReconnectAwareStream(TradingStream):
    """``TradingStream`` that reports every (re)connect and every close (no public hook exists)."""

    def __init__(self, *args: Any, on_connected: Callable[[], None], on_closed: Callable[[], None],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_connected = on_connected
        self._on_closed = on_closed

    async def _start_ws(self) -> None:  # connect + auth + listen
        await super()._start_ws()
        self._on_connected()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self._on_closed()


class AlpacaTradeUpdates:
    """The account's order updates, turned into core events by the broker and enqueued.

    Parameters
    ----------
    creds : AlpacaCredentials
        The API keys (sent only in the stream's auth message).
    cfg : AlpacaConfig
        ``trading_stream_url`` (None: Alpaca's paper or live ``/stream``).
    broker : AlpacaBroker
        Turns each update into events (:meth:`AlpacaBroker.on_trade_update`); its ``emission``
        lock is held while they are enqueued, so REST replies and stream updates never interleave.
    paper : bool
        Paper or live account (picks Alpaca's host when no URL is configured).
    on_reconnect : callable, optional
        ``await on_reconnect()`` after every connect but the first (Alpaca does not replay what was
        missed while disconnected: reconcile). It runs as its own task, so updates keep flowing;
        reconnects while one runs coalesce into one more run. Its errors are alerted.

    Attributes
    ----------
    connected : bool
        A socket is authorised and listening now.
    connects : int
        Successful connects so far (1 + reconnects).
    last_update_wall : float or None
        Wall time (epoch seconds) of the last update received.
    """

    name = "alpaca-trade-updates"

    def __init__(self, creds: AlpacaCredentials, cfg: AlpacaConfig, broker: AlpacaBroker, *, paper: bool,
                 on_reconnect: Callable[[], Awaitable[None]] | None = None) -> None:
        self._creds = creds
        self._cfg = cfg
        self.broker = broker
        self.paper = paper
        self.on_reconnect = on_reconnect
        self.connected = False
        self.connects = 0
        self.reconciles = 0
        self.last_update_wall: float | None = None
        self._reconcile_task: asyncio.Task[None] | None = None
        self._reconcile_again = False

    async def run(self, enqueue: Enqueue) -> None:
        """Stream updates until cancelled (the node cancels feeds at shutdown); then stop the
        socket (within ~6 s) and return by re-raising the cancellation."""
        broker = self.broker

        async def on_update(u: Any) -> None:  # inline in the SDK's reader: compute and enqueue only
            self.last_update_wall = time.time()
            try:
                async with broker.emission:
                    for event in broker.on_trade_update(u):
                        await enqueue(event)
            except Exception as exc:
                broker.alerts.alert("critical", "trade update not delivered", f"{type(exc).__name__}: {exc}")

        stream = _ReconnectAwareStream(self._creds.key_id, self._creds.secret_key, paper=self.paper,
                                       url_override=self._cfg.trading_stream_url,
                                       on_connected=self._connected, on_closed=self._closed)
        stream.subscribe_trade_updates(on_update)  # before the task starts (see the module docstring)
        task = asyncio.create_task(stream._run_forever(), name="alpaca-trade-updates")
        try:
            await asyncio.shield(task)  # returns only if the SDK gave up (it does not for this stream)
        finally:
            await self._shutdown(stream, task)

    async def _shutdown(self, stream: _ReconnectAwareStream, task: asyncio.Task[Any]) -> None:
        reconcile = self._reconcile_task
        if reconcile is not None and not reconcile.done():
            reconcile.cancel()
        await stream.stop_ws()
        # _consume polls the stop flag between 5 s receive timeouts; cancelling the task ends the
        # receive at once (the socket is closed just below), so shutdown does not wait for it
        task.cancel()
        await asyncio.wait([task], timeout=_STOP_WAIT_S)
        await stream.close()
        self.connected = False

    # --- connection hooks ------------------------------------------------------------------------
    def _connected(self) -> None:
        self.connected = True
        self.connects += 1
        if self.connects > 1 and self.on_reconnect is not None:
            if self._reconcile_task is not None and not self._reconcile_task.done():
                self._reconcile_again = True  # one more run after the current one: it may predate the gap
            else:
                self._reconcile_task = asyncio.get_running_loop().create_task(self._reconcile())

    def _closed(self) -> None:
        self.connected = False

    async def _reconcile(self) -> None:
        assert self.on_reconnect is not None
        while True:
            self._reconcile_again = False
            self.reconciles += 1
            try:
                await self.on_reconnect()
            except Exception as exc:  # a failed reconciliation must not stop the stream
                self.broker.alerts.alert("error", "reconciliation after reconnect failed",
                                         f"{type(exc).__name__}: {exc}")
            if not self._reconcile_again:
                return
