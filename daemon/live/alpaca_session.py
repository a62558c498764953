"""The Alpaca side of a live session: keys, clients, the broker, its order-update stream, the
market-data feed, and reconciliation at startup, after every stream reconnect and on a schedule.

:func:`connect` runs before the kernel is built (it checks the account and the database binding:
paper and live never share a state database); :func:`attach` runs once the node exists (it binds
the broker to the node's queue and registers the feeds, the startup reconciliation that must
finish before READY, the periodic reconciliation and the status section).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from alerts.logging import redact_in_logs
from core.ports import AlertSink
from daemon.adapters.alpaca.clients import RequestBudget, classify, trading_client
from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials
from daemon.live.config import LiveConfig
from daemon.live.node import LiveNode
from state.store import SqlStore

__all__ = ["SHUTDOWN_SETTLE_S", "AlpacaLink", "AlpacaStartupError", "connect"]

SHUTDOWN_SETTLE_S = 1.0
"""At shutdown, seconds before a second look at market orders still working after the first
lookup (an accepted market order normally fills within it during the session)."""


class AlpacaStartupError(RuntimeError):
    """Alpaca cannot be used as configured (keys, account, confirmation, database binding); the
    message says what and never contains a key."""


@dataclass
class AlpacaLink:
    """What a session holds of Alpaca (see the module docstring)."""

    cfg: AlpacaConfig
    live: LiveConfig
    creds: AlpacaCredentials
    client: Any
    budget: RequestBudget
    account_number: str
    cash: float
    broker: Any = None
    reconciler: Any = None
    trade_updates: Any = None
    market_data: Any = None
    last_report: dict[str, Any] | None = None
    known: frozenset[str] = frozenset()  # ids of the account's ended orders from earlier sessions
    reconciliations: int = 0
    _lock: asyncio.Lock | None = field(default=None, repr=False)

    @property
    def paper(self) -> bool:
        return self.live.mode == "paper"

    # --- wiring ----------------------------------------------------------------------------
    def make_broker(self, alerts: AlertSink, now: Any) -> Any:
        """The :class:`~daemon.adapters.alpaca.broker.AlpacaBroker` of this session."""
        from daemon.adapters.alpaca.broker import AlpacaBroker

        self.broker = AlpacaBroker(self.client, budget=self.budget, alerts=alerts, now=now,
                                   crypto=self.cfg.asset_class == "crypto")
        return self.broker

    def attach(self, node: LiveNode, store: SqlStore, *, last_bar_ts: dict[str, int],
               known: frozenset[str] = frozenset()) -> None:
        """Register the Alpaca feeds, the startup and periodic reconciliation and the status part."""
        from daemon.adapters.alpaca.reconcile import AlpacaReconciler
        from daemon.adapters.alpaca.updates import AlpacaTradeUpdates

        broker = self.broker
        broker.seed(node.kernel.book.orders.values())
        self.known = known
        if self.last_report is None:  # symbols tagged external earlier stay tagged across restarts
            self.last_report = store.last_reconciliation(node.account)
        self.reconciler = AlpacaReconciler(self.client, broker, budget=self.budget, alerts=node.alerts,
                                           cfg=self.cfg, store=store, account=node.account)
        self.trade_updates = AlpacaTradeUpdates(self.creds, self.cfg, broker, paper=self.paper,
                                                on_reconnect=lambda: self.reconcile(node, "stream reconnect"))
        node.feeds.insert(0, self.trade_updates)
        if self.live.feed == "alpaca":
            from daemon.adapters.alpaca.clients import crypto_data_client, data_client
            from daemon.adapters.alpaca.feed import AlpacaMarketDataFeed

            history = (crypto_data_client if self.cfg.asset_class == "crypto" else data_client)(self.creds, self.cfg)
            self.market_data = AlpacaMarketDataFeed(self.creds, self.cfg, history=history, budget=self.budget,
                                                    alerts=node.alerts, now=node.time.now, last_bar_ts=last_bar_ts)
            node.feeds.append(self.market_data)

        async def startup(n: LiveNode) -> None:
            broker.bind(n.enqueue)
            await self.reconcile(n, "startup")

        async def periodic(n: LiveNode) -> None:
            while True:
                await asyncio.sleep(self.cfg.reconcile_interval)
                await self.reconcile(n, "scheduled")

        node.before_ready.append(startup)
        async def shutdown_drain() -> None:  # the stream is stopped: look working market orders up
            await broker.drain(9.0, settle=SHUTDOWN_SETTLE_S)

        node.drain_hooks.append(shutdown_drain)
        node.services.append(periodic)
        node.status_parts.append(self.status)

    # --- reconciliation ----------------------------------------------------------------------
    async def reconcile(self, node: LiveNode, reason: str) -> Any:
        """Reconcile the node's books with Alpaca now (one at a time); return the report."""
        from state.reconcile import LocalSnapshot

        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            kernel = node.kernel
            external = frozenset((self.last_report or {}).get("external_positions", ()))

            def local() -> LocalSnapshot:  # read again for each confirming pass: the engine goes on
                return LocalSnapshot(orders=dict(kernel.book.orders),
                                     positions={s: p.quantity for s, p in kernel.portfolio.positions().items()
                                                if p.quantity},
                                     cash=kernel.portfolio.cash, external=external, known=self.known,
                                     broker_account_number=self.account_number)

            started = time.perf_counter()
            try:
                report = await self.reconciler.run(local, node.enqueue, reason)
            except Exception as exc:  # the broker is unreachable: say so, try again on schedule
                text = classify(exc).text
                node.alerts.alert("error", "reconciliation failed", f"{reason}: {text}")
                if reason == "startup":
                    raise AlpacaStartupError(f"startup reconciliation with Alpaca failed: {text}") from None
                return None
            self.reconciliations += 1
            self.last_report = {**report.summary(), "reason": reason,
                                "seconds": round(time.perf_counter() - started, 3)}
            return report

    def status(self) -> dict[str, Any]:
        """The ``broker`` section of ``tradingd status``."""
        updates, market = self.trade_updates, self.market_data
        broker_stats = dict(self.broker.stats) if self.broker is not None else {}
        return {"broker": {
            "name": "alpaca", "mode": self.live.mode, "account_number": self.account_number,
            "trade_updates_connected": bool(getattr(updates, "connected", False)),
            "trade_updates_connects": getattr(updates, "connects", 0),
            "market_data": dict(getattr(market, "stats", {})) if market is not None else None,
            "unresolved_orders": sorted(self.broker.unresolved) if self.broker is not None else [],
            "stats": broker_stats, "requests_waited_s": round(self.budget.waited_s, 3),
            "last_reconciliation": self.last_report, "reconciliations": self.reconciliations,
        }}


def connect(cfg: AlpacaConfig, live: LiveConfig, store: SqlStore, *, environ: Any = None) -> AlpacaLink:
    """Load the keys, open the trading client, check the account and bind the database to it.

    Raises
    ------
    AlpacaStartupError
        Keys missing, the account unreachable or not ACTIVE, a live account number other than the
        confirmed one, or a state database already bound to the other mode or account.
    """
    from daemon.adapters.alpaca.config import CredentialsError
    from state.db import StoreError

    try:
        creds = AlpacaCredentials.load(environ)
    except CredentialsError as exc:
        raise AlpacaStartupError(str(exc)) from None
    redact_in_logs(*creds.secrets)
    paper = live.mode == "paper"
    budget = RequestBudget(cfg.requests_per_minute)
    client = trading_client(creds, cfg, paper=paper)
    budget.acquire()
    try:
        account = client.get_account()
    except Exception as exc:
        raise AlpacaStartupError(f"Alpaca account unreachable at {cfg.trading_base_url(paper)}: "
                                 f"{classify(exc).text}") from None
    number = str(account.account_number)
    status = getattr(account.status, "value", account.status)
    if str(status).upper() != "ACTIVE":
        raise AlpacaStartupError(f"Alpaca account {number} is {status}, not ACTIVE: refusing to trade")
    if not paper and number != cfg.live_account_number:
        raise AlpacaStartupError(f"[alpaca] live_account_number = {cfg.live_account_number!r} but the keys belong to "
                                 f"account {number}: refusing to trade real money on an unconfirmed account")
    try:
        store.bind_broker_account(live.account, "alpaca", live.mode, number)
    except StoreError as exc:
        raise AlpacaStartupError(str(exc)) from None
    return AlpacaLink(cfg=cfg, live=live, creds=creds, client=client, budget=budget, account_number=number,
                      cash=float(account.cash or 0.0))

