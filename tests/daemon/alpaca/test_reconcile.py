"""Reconciliation against the local fake Alpaca server: the real alpaca-py client, a real Engine and
a real store (SQLite file and PostgreSQL).

The four situations an operator meets: a fill while tradingd was down, an order canceled outside
tradingd, a position held outside it, and a position that does not add up (trading halts and
``tradingd reconcile`` exits 1). Plus paging past Alpaca's 500-order limit and the paper/live
database binding of the CLI.
"""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from alerts.sinks import MemoryAlertSink
from backtest.kernel import build_kernel
from backtest.spec import RunSpec
from core.clock import Clock
from core.enums import OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.events import SubmitOrder
from core.orders import Order
from daemon.adapters.alpaca.clients import RequestBudget, trading_client
from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials
from daemon.adapters.alpaca.reconcile import AlpacaReconciler, ReconcileError
from daemon.reconcile_cli import register
from state.config import StoreConfig
from state.reconcile import LocalSnapshot
from state.recovery import load_restored
from state.store import SqlStore
from tests.alpaca_fake import FakeAlpaca

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # websockets.legacy, imported by alpaca-py's streams
    import alpaca.trading  # noqa: F401  (the reconciler imports it lazily: the warning would surface there)
    from daemon.adapters.alpaca.broker import AlpacaBroker

ACCOUNT = "alpaca-paper"
CASH = 100_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres_url")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca(symbols=("SPY", "QQQ"), cash=CASH, fill_mode="next_bar") as server:
        yield server


class Desk:
    """One session of the live node, in miniature: a real Engine behind a queue (a pump task feeds
    it), the AlpacaBroker bound to that queue and no trade_updates stream (its events are lost, as
    while tradingd is down), a store with a run of its own and the reconciler."""

    def __init__(self, fake: FakeAlpaca, url: str, session: str, **cfg: Any) -> None:
        self.fake = fake
        self.cfg = AlpacaConfig(trading_url=fake.rest_url, read_timeout=2.0, **cfg)
        self.client = trading_client(AlpacaCredentials(fake.key_id, fake.secret_key), self.cfg, paper=True)
        self.alerts = MemoryAlertSink()
        self.budget = RequestBudget(6000, burst=200)
        self.broker = AlpacaBroker(self.client, budget=self.budget, alerts=self.alerts, now=time.time_ns,
                                   lookup_attempts=2, lookup_backoff=0.05, cancel_check_delay=0.2)
        self.store = SqlStore(StoreConfig(database_url=url, durable_orders=True), account=ACCOUNT)
        self.restored = load_restored(self.store, ACCOUNT, starting_cash=CASH)
        self.store.start_run(session, "live", "sma_cross", {}, "c", "d", time.time_ns())
        self.kernel = build_kernel(RunSpec(), clock=Clock(time.time_ns()), broker=self.broker, store=self.store,
                                   alerts=self.alerts, restored=self.restored)
        self.engine = self.kernel.engine
        self.broker.seed(self.kernel.book.orders.values())
        self.reconciler = AlpacaReconciler(self.client, self.broker, budget=self.budget, alerts=self.alerts,
                                           cfg=self.cfg, store=self.store, account=ACCOUNT, confirm_delay=0.05)
        self.applied: list[Any] = []

    async def __aenter__(self) -> Desk:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.broker.bind(self.enqueue)
        self.pump = asyncio.create_task(self._pump())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.broker.drain(5)
        await self.queue.join()
        self.pump.cancel()
        await asyncio.gather(self.pump, return_exceptions=True)
        self.store.close()

    async def enqueue(self, event: Any) -> None:
        self.applied.append(event)
        await self.queue.put(event)

    async def _pump(self) -> None:
        while True:
            event = await self.queue.get()
            self.engine.handle(event)
            self.queue.task_done()

    def submit(self, cid: str, *, symbol: str = "SPY", quantity: float = 10.0, limit: float | None = None) -> Order:
        now = time.time_ns()
        self.engine.clock.now = max(self.engine.clock.now, now)
        self.engine._submit(SubmitOrder(client_order_id=cid, strategy_id="sma_cross", symbol=symbol, side=Side.BUY,
                                        quantity=quantity,
                                        order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
                                        limit_price=limit, time_in_force=TimeInForce.GTC, ts_event=now, ts_init=now))
        order = self.engine.book.get(cid)
        assert order is not None
        return order

    async def settle(self) -> None:
        await self.broker.drain(10)
        await self.queue.join()

    def local(self) -> LocalSnapshot:
        """What the node believes now (as the live session builds it)."""
        book, portfolio = self.kernel.book, self.kernel.portfolio
        known = self.restored.known_client_order_ids if self.restored is not None else frozenset()
        return LocalSnapshot(orders=dict(book.orders), cash=portfolio.cash, known=frozenset(known) - set(book.orders),
                             positions={s: p.quantity for s, p in portfolio.positions().items() if p.quantity})

    async def reconcile(self, reason: str = "test") -> Any:
        report = await self.reconciler.run(self.local(), self.enqueue, reason)
        await self.settle()
        return report

    async def bought(self, cid: str = "sma_cross-SPY-1-1") -> Order:
        """10 SPY bought and booked (the fill is learnt by reconciling: there is no stream)."""
        order = self.submit(cid)
        await self.settle()
        self.fake.advance(1)
        await self.reconcile("fill")
        assert order.status is OrderStatus.FILLED and self.position() == 10.0
        return order

    def position(self, symbol: str = "SPY") -> float:
        return self.kernel.portfolio.position(symbol)

    def fills(self) -> list[Any]:
        self.store.flush()
        return self.store.account_fills(ACCOUNT)

    def critical(self) -> list[str]:
        return [f"{title}: {text}" for severity, title, text, _ in self.alerts.alerts if severity == "critical"]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _kinds(report: Any) -> list[tuple[str, bool]]:
    return [(d.kind, d.explained) for d in report.differences]


def _cli(fake: FakeAlpaca, tmp_path: Path, url: str, *args: str, mode: str = "paper") -> Any:
    config = tmp_path / "reconcile.toml"
    live_number = f'live_account_number = "{fake.account_number}"\n' if mode == "live" else ""
    broker = 'broker = "alpaca"\n' if mode == "live" else ""
    config.write_text(f'[state]\ndatabase_url = "{url}"\n[live]\naccount = "{ACCOUNT}"\nmode = "{mode}"\n{broker}'
                      f'[alpaca]\ntrading_url = "{fake.rest_url}"\nread_timeout = 2.0\n{live_number}')
    app = typer.Typer()
    register(app)

    @app.command("noop", hidden=True)
    def _noop() -> None:  # a second command keeps typer's subcommand mode ("reconcile" stays an argument)
        pass

    return CliRunner().invoke(app, ["reconcile", "--config", str(config), *args],
                              env={"ALPACA_API_KEY_ID": fake.key_id, "ALPACA_API_SECRET_KEY": fake.secret_key,
                                   "COLUMNS": "250"})


# --- the four situations ---------------------------------------------------------------------------------


def test_a_fill_while_down_is_applied_once_and_positions_agree(fake: FakeAlpaca, db_url: str) -> None:
    async def before() -> str:
        async with Desk(fake, db_url, "s1") as desk:
            order = desk.submit("sma_cross-SPY-1-1")
            await desk.settle()
            assert order.status is OrderStatus.ACCEPTED and desk.position() == 0.0  # working at the broker
            return order.client_order_id

    cid = run(before())
    fake.advance(1)  # tradingd is down: the order fills, nobody hears of it
    assert fake.positions() == {"SPY": 10.0}

    async def after() -> None:
        async with Desk(fake, db_url, "s2") as desk:
            order = desk.kernel.book.get(cid)
            assert order is not None and order.status is OrderStatus.ACCEPTED
            report = await desk.reconcile("startup")
            assert _kinds(report) == [("missed_fill", True), ("cash_difference", True)] and report.ok
            assert report.to_apply == (cid,)
            assert order.status is OrderStatus.FILLED and desk.position() == fake.positions()["SPY"] == 10.0
            assert desk.kernel.portfolio.cash == pytest.approx(fake.cash)
            assert [f.fill_id for f in desk.fills()] == [f"alpaca-{order.broker_order_id}-10"]
            again = await desk.reconcile("scheduled")  # nothing left to apply: booked once
            assert again.differences == () and len(desk.fills()) == 1
            assert desk.engine.risk.state is TradingState.ACTIVE and desk.critical() == []
            last = desk.store.last_reconciliation()
            assert last is not None and last["reason"] == "scheduled" and last["ok"]

    run(after())


def test_an_order_canceled_outside_is_a_missed_cancel(fake: FakeAlpaca, sqlite_url: str) -> None:
    async def scenario() -> None:
        async with Desk(fake, sqlite_url, "s1") as desk:
            order = desk.submit("sma_cross-SPY-1-1", limit=1.0)  # far below the market: it works
            await desk.settle()
            fake.cancel_outside(order.client_order_id)  # from Alpaca's web page; the stream is off
            assert order.is_open
            report = await desk.reconcile()
            assert _kinds(report) == [("missed_cancel", True)] and report.ok
            assert order.status is OrderStatus.CANCELED and not list(desk.kernel.book.open_orders())
            assert desk.engine.risk.state is TradingState.ACTIVE

    run(scenario())


def test_an_external_position_is_reported_explained_and_trading_goes_on(fake: FakeAlpaca, sqlite_url: str) -> None:
    async def scenario() -> None:
        async with Desk(fake, sqlite_url, "s1") as desk:
            await desk.bought()
            fake.set_position("QQQ", 5.0, 400.0)  # bought by hand, a symbol tradingd never traded
            fake.external_order("QQQ", "buy", 2.0)
            report = await desk.reconcile()
            assert report.ok, report.verdict()
            assert report.external_positions == ("QQQ",) and len(report.external_orders) == 1
            assert ("external_position", True) in _kinds(report) and ("external_order", True) in _kinds(report)
            assert desk.engine.risk.state is TradingState.ACTIVE and desk.critical() == []
            assert desk.position("QQQ") == 0.0  # not adopted into tradingd's books
            again = await desk.reconcile()  # tagged now; still explained
            assert again.ok and "tagged external before" in next(
                d.detail for d in again.differences if d.kind == "external_position")

    run(scenario())


def test_a_position_mismatch_halts_trading_alerts_and_the_cli_exits_1(fake: FakeAlpaca, db_url: str,
                                                                       tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Desk(fake, db_url, "s1") as desk:
            await desk.bought()
            fake.set_position("SPY", 7.0, 100.0)  # 3 shares gone, nobody knows where
            report = await desk.reconcile()
            assert _kinds(report) == [("position_mismatch", False)] and not report.ok
            assert desk.engine.risk.state is TradingState.HALTED
            assert desk.engine.risk.reason == "reconciliation: position_mismatch SPY"
            (alert,) = desk.critical()[:1]
            assert "reconciliation mismatch: trading halted" in alert and "the broker holds 7" in alert
            last = desk.store.last_reconciliation()
            assert last is not None and not last["ok"] and last["counts"]["unexplained"] == 1

    run(scenario())
    result = _cli(fake, tmp_path, db_url)
    assert result.exit_code == 1, result.output
    assert "position_mismatch" in result.output and "MISMATCH: 1 unexplained difference" in result.output
    as_json = _cli(fake, tmp_path, db_url, "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["counts"]["position_mismatch"] == 1
    with SqlStore(StoreConfig(database_url=db_url), account=ACCOUNT) as store:
        last = store.last_reconciliation()
        assert last is not None and last["reason"] == "cli" and not last["ok"]
        assert store.broker_account()["broker_account_number"] == fake.account_number  # type: ignore[index]
    for secret in (fake.key_id, fake.secret_key):
        assert secret not in result.output + as_json.output


def test_on_mismatch_alert_reports_without_halting(fake: FakeAlpaca, sqlite_url: str) -> None:
    async def scenario() -> None:
        async with Desk(fake, sqlite_url, "s1", on_mismatch="alert") as desk:
            await desk.bought()
            fake.set_position("SPY", 12.0, 100.0)
            report = await desk.reconcile()
            assert not report.ok and desk.engine.risk.state is TradingState.ACTIVE
            assert any("on_mismatch = alert" in a for a in desk.critical())

    run(scenario())


def test_the_cli_exits_0_when_everything_is_explained_and_2_on_errors(fake: FakeAlpaca, sqlite_url: str,
                                                                      tmp_path: Path) -> None:
    fake.set_position("QQQ", 3.0, 400.0)
    ok = _cli(fake, tmp_path, sqlite_url)
    assert ok.exit_code == 0, ok.output
    assert "external_position" in ok.output and "OK: 1 difference with the broker, all explained" in ok.output
    fake.faults.server_error(10, path="/v2/positions")
    down = _cli(fake, tmp_path, sqlite_url)
    assert down.exit_code == 2 and "GET /v2/positions failed after 3 attempts" in down.output


def test_the_cli_refuses_a_database_of_the_other_mode(fake: FakeAlpaca, sqlite_url: str, tmp_path: Path) -> None:
    with SqlStore(StoreConfig(database_url=sqlite_url), account="real-money") as store:
        store.bind_broker_account("real-money", "alpaca", "live", "LIVE0001")
    result = _cli(fake, tmp_path, sqlite_url)
    assert result.exit_code == 2
    assert "paper and live never share a state database" in result.output and "LIVE0001" in result.output


# --- scale and paging --------------------------------------------------------------------------------------


def test_orders_are_paged_past_500_and_a_large_account_reconciles_quickly(sqlite_url: str) -> None:
    symbols = tuple(f"S{i:03d}" for i in range(100))
    with FakeAlpaca(symbols=symbols, cash=1e9) as fake:
        for i in range(1_200):
            fake.external_order(symbols[i % 100], "buy", 1.0)

        async def scenario() -> tuple[Any, float, int]:
            async with Desk(fake, sqlite_url, "s1") as desk:
                started = time.perf_counter()
                report = await desk.reconciler.check(desk.local(), "test")
                return report, time.perf_counter() - started, desk.reconciler.requests

        report, seconds, requests = run(scenario())
        pages = [r for r in fake.request_log() if r["path"] == "/v2/orders" and r["method"] == "GET"]
    assert len(set(report.external_orders)) == 1_200 and len(report.external_positions) == 100
    assert len(pages) == 3 and all(p["query"]["limit"] == "500" for p in pages)
    assert [p["query"]["direction"] for p in pages] == ["asc"] * 3
    assert requests == 3 + 1 + 1 + 13  # order pages, positions, account, 1,200 fills by 100
    print(f"\n1,200 orders / 100 positions / 1,200 fills reconciled in {seconds:.2f} s, {requests} requests")


def test_a_broker_that_cannot_be_read_raises_and_saves_nothing(fake: FakeAlpaca, sqlite_url: str) -> None:
    async def scenario() -> None:
        async with Desk(fake, sqlite_url, "s1") as desk:
            fake.faults.server_error(10, path="/v2/account")
            with pytest.raises(ReconcileError, match="GET /v2/account failed after 3 attempts"):
                await desk.reconcile()
            assert desk.store.last_reconciliation() is None and desk.engine.risk.state is TradingState.ACTIVE

    run(scenario())
