"""A real `tradingd run --broker alpaca --feed alpaca` process against the local Alpaca server
(the real alpaca-py clients on both sides of the wire): it trades paper through every fault the
server can inject and loses nothing; kill -9 at many random moments never duplicates an order
nor loses a fill; a planted API key never shows in logs, the database or MQTT.

``TRADINGD_KILL_POINTS`` sets the number of kills (50 in CI; ``benchmarks/kill_recovery.py``-style
long runs: 300+).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.enums import TERMINAL_STATUSES
from state.config import StoreConfig
from state.recovery import load_restored
from state.store import SqlStore
from tests.alpaca_fake import FakeAlpaca

TRADINGD = str(Path(sys.executable).with_name("tradingd"))
SYMBOLS = ("SPY", "QQQ")
KILL_POINTS = int(os.environ.get("TRADINGD_KILL_POINTS", "50"))


def _config(tmp: Path, fake: FakeAlpaca, *, db: str | None = None, extra: str = "") -> Path:
    text = f'''
[strategy]
name = "sma_cross"
[strategy.params]
fast = 2
slow = 4
[risk]
fixed_fraction = 0.05
max_position_fraction = 0.2
max_drawdown = 0.9
daily_loss_limit = 0.9
max_consecutive_losses = 100000
max_orders_per_minute = 100000
[state]
database_url = "{db or f'sqlite:///{tmp / "state.db"}'}"
[logging]
level = "INFO"
format = "json"
[live]
account = "alpaca-paper"
broker = "alpaca"
feed = "alpaca"
clock = "bars"
tick = 0.2
stale_periods = 0
[alpaca]
trading_url = "{fake.rest_url}"
data_url = "{fake.rest_url}"
trading_stream_url = "{fake.trading_ws_url}"
data_stream_url = "{fake.data_ws_url}"
symbols = {json.dumps(list(SYMBOLS))}
read_timeout = 1.0
reconcile_interval = 5.0
backfill_max_minutes = 10000
{extra}
'''
    path = tmp / "config.toml"
    path.write_text(text)
    return path


def _env(fake: FakeAlpaca) -> dict[str, str]:
    return {**os.environ, "ALPACA_API_KEY_ID": fake.key_id, "ALPACA_API_SECRET_KEY": fake.secret_key}


class _Market:
    """Publishes a minute bar of every symbol every ``interval`` seconds while running."""

    def __init__(self, fake: FakeAlpaca, interval: float) -> None:
        self.fake, self.interval = fake, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.fake.advance(1)

    def __enter__(self) -> _Market:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _start(config: Path, fake: FakeAlpaca, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([TRADINGD, "run", "-c", str(config)], env=_env(fake), stdout=out, stderr=out)


def _stop(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()


def _books(db: str, account: str = "alpaca-paper") -> tuple[dict[str, Any], dict[str, float]]:
    """Every order the account knows (latest state) and its positions, as the state database says."""
    with SqlStore(StoreConfig(database_url=db), account=account) as store:
        orders = {o.client_order_id: o for o in store.account_orders(account)}
        restored = load_restored(store, account, starting_cash=0.0)
    positions = {p.symbol: p.quantity for p in restored.positions} if restored else {}
    return orders, positions


def _assert_books_match(db: str, fake: FakeAlpaca) -> None:
    """Nothing duplicated, nothing lost: the broker's orders, fills and positions are the local ones."""
    local, positions = _books(db)
    remote = fake.orders()
    ids = [o["client_order_id"] for o in remote]
    assert len(ids) == len(set(ids))
    # one order per decision (strategy, symbol, decision time): sma_cross makes at most one per bar
    decisions = Counter(cid.rsplit("-", 1)[0] for cid in ids)
    assert [d for d, n in decisions.items() if n > 1] == [], "a decision was sent twice"
    unknown = [cid for cid in ids if cid not in local]
    assert unknown == [], f"orders at the broker the state database does not know: {unknown[:5]}"
    for order in remote:
        mine = local[order["client_order_id"]]
        assert abs(mine.filled_quantity - float(order["filled_qty"])) < 1e-6, (order, mine.filled_quantity)
        if order["status"] in ("filled", "canceled", "expired", "rejected"):
            assert mine.status in TERMINAL_STATUSES, (order["status"], mine.status)
    executed = Counter()
    for execution in fake.executions():
        executed[execution["client_order_id"]] += float(execution["qty"])
    for cid, qty in executed.items():
        assert abs(local[cid].filled_quantity - qty) < 1e-6, (cid, qty, local[cid].filled_quantity)
    broker_positions = {s: q for s, q in fake.positions().items() if abs(q) > 1e-9}
    assert {s: round(q, 6) for s, q in positions.items()} == {s: round(q, 6) for s, q in broker_positions.items()}


def _reconciled(db: str, since_ns: int, account: str = "alpaca-paper") -> bool:
    """A reconciliation of the account was saved after ``since_ns`` (wall clock)."""
    with SqlStore(StoreConfig(database_url=db), account=account) as store:
        last = store.last_reconciliation(account)
    return last is not None and last["ts"] >= since_ns


def _tradingd(*args: str, fake: FakeAlpaca, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRADINGD, *args], capture_output=True, text=True, env=_env(fake), timeout=timeout)


def test_paper_session_survives_every_fault_and_loses_nothing(tmp_path):
    with FakeAlpaca(symbols=SYMBOLS) as fake:
        config = _config(tmp_path, fake)
        db = f"sqlite:///{tmp_path / 'state.db'}"
        log = tmp_path / "daemon.log"
        daemon = _start(config, fake, log)
        try:
            with _Market(fake, 0.05):
                _wait(lambda: len(fake.orders()) >= 3, 60, "the first orders")
                faults = fake.faults
                for inject in (lambda: faults.rate_limit(6, path="/v2/orders"),
                               lambda: faults.server_error(2, status=502, html=True, path="/v2/orders", method="POST"),
                               lambda: faults.server_error(2, status=500, path="/v2/orders", method="POST"),
                               lambda: faults.stall(1, 2.0, path="/v2/orders", method="POST", execute=True),
                               lambda: faults.stall(1, 2.0, path="/v2/orders", method="POST", execute=False),
                               lambda: faults.execute_then_504(2),
                               lambda: faults.drop_trading_stream(refuse_for=1.0),
                               lambda: faults.drop_data_stream(refuse_for=1.0)):
                    before = fake.submit_attempts
                    inject()
                    _wait(lambda: fake.submit_attempts >= before + 2, 60, "orders after a fault")
                faults.duplicate_updates = True
                faults.reorder_updates = True
                faults.partial_fills = 3
                count = len(fake.orders())
                _wait(lambda: len(fake.orders()) >= count + 6, 60, "orders with duplicated, reordered partial fills")
                faults.duplicate_updates = faults.reorder_updates = False
                faults.partial_fills = 0
            time.sleep(2.0)  # the last answers arrive; the scheduled reconciliation runs
            assert daemon.poll() is None, log.read_text()[-3000:]
            status = json.loads(_tradingd("status", "-c", str(config), fake=fake).stdout or "{}")
            assert _stop(daemon) == 0, log.read_text()[-3000:]
            # a fill whose stream update was in flight at SIGTERM is booked by the next start's
            # reconciliation (the documented guarantee): one more start settles the books
            since = time.time_ns()
            daemon = _start(config, fake, log)
            _wait(lambda: _reconciled(db, since), 120, "the next start's reconciliation")
            time.sleep(0.5)
            assert _stop(daemon) == 0, log.read_text()[-3000:]
        finally:
            if daemon.poll() is None:
                daemon.kill()
        _assert_books_match(db, fake)
        assert status.get("broker", {}).get("name") == "alpaca" or "state database" in status.get("source", "")
        reconcile = _tradingd("reconcile", "-c", str(config), fake=fake)
        assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
        text = log.read_text()
        assert fake.secret_key not in text and fake.key_id not in text
        assert "Traceback" not in text, text[text.find("Traceback") - 500:][:3000]


def test_kill_9_at_random_moments_never_duplicates_an_order_nor_loses_a_fill(tmp_path):
    rng = random.Random(int(os.environ.get("TRADINGD_KILL_SEED", "20261201")))
    with FakeAlpaca(symbols=SYMBOLS) as fake:
        config = _config(tmp_path, fake)
        db = f"sqlite:///{tmp_path / 'state.db'}"
        log = tmp_path / "daemon.log"
        with _Market(fake, 0.05):
            # how long a start takes here (imports, migration, recovery, reconciliation) until it trades:
            # the kills then fall anywhere from the first import to well into trading
            started = time.monotonic()
            first = _start(config, fake, log)
            _wait(lambda: len(fake.orders()) >= 1, 120, "the first session's first order")
            window = time.monotonic() - started + 2.0
            first.kill()
            first.wait(timeout=10)
            for _ in range(KILL_POINTS):
                victim = _start(config, fake, log)
                time.sleep(rng.uniform(0.1, window))
                victim.kill()
                victim.wait(timeout=10)
        assert len(fake.orders()) > KILL_POINTS // 5, "the sessions hardly traded: the test proves nothing"
        # the market is closed now: a last session reconciles what the kills left, then stops
        since = time.time_ns()
        final = _start(config, fake, log)
        try:
            _wait(lambda: _reconciled(db, since), 120, "the final session's startup reconciliation")
            time.sleep(0.5)
            assert final.poll() is None, log.read_text()[-3000:]
            assert _stop(final) == 0, log.read_text()[-3000:]
        finally:
            if final.poll() is None:
                final.kill()
        _assert_books_match(db, fake)
        with SqlStore(StoreConfig(database_url=db), account="alpaca-paper") as store:
            runs = store.find_runs()
            risk = store.load_risk_state("alpaca-paper")
            equity = [e.equity for r in runs for e in store.equity(r["id"])]
        assert "running" not in {r["status"] for r in runs}
        assert risk is not None and risk.peak_equity is not None and risk.peak_equity >= max(equity) - 1e-6


@pytest.mark.parametrize("scenario", ["fill_while_down", "position_mismatch"])
def test_startup_reconciliation_of_a_real_process(tmp_path, scenario):
    with FakeAlpaca(symbols=SYMBOLS) as fake:
        config = _config(tmp_path, fake)
        db = f"sqlite:///{tmp_path / 'state.db'}"
        log = tmp_path / "daemon.log"
        daemon = _start(config, fake, log)
        held = lambda: any(abs(q) > 1e-9 for q in fake.positions().values())  # noqa: E731
        for _ in range(10):  # the market stops while tradingd holds a position (crossovers may end flat)
            with _Market(fake, 0.05):
                _wait(lambda: len(fake.orders()) >= 2 and held(), 60, "the first orders and a position")
            time.sleep(0.5)  # answers in flight arrive
            if held():
                break
        assert _stop(daemon) == 0
        if scenario == "fill_while_down":
            fake.faults.hold_fills = True
            daemon = _start(config, fake, log)
            with _Market(fake, 0.05):
                _wait(lambda: any(o["status"] in ("new", "accepted") for o in fake.orders()), 60, "a working order")
            daemon.kill()
            daemon.wait(timeout=10)
            fake.faults.hold_fills = False
            fake.advance(1)  # the working order fills while tradingd is down
        else:  # a position tradingd holds changes size behind its back
            held = {s: q for s, q in fake.positions().items() if abs(q) > 1e-9}
            assert held, "the first session left no position to tamper with"
            symbol, quantity = sorted(held.items())[0]
            fake.set_position(symbol, quantity + 7.0, fake.last_price(symbol))
        since = time.time_ns()
        daemon = _start(config, fake, log)
        try:
            _wait(lambda: _reconciled(db, since), 120, "the startup reconciliation")
            time.sleep(0.5)  # its events (fills, the halt) are handled
            status = json.loads(_tradingd("status", "-c", str(config), fake=fake).stdout or "{}")
            assert _stop(daemon) == 0, log.read_text()[-3000:]
        finally:
            if daemon.poll() is None:
                daemon.kill()
        with SqlStore(StoreConfig(database_url=db), account="alpaca-paper") as store:
            risk = store.load_risk_state("alpaca-paper")
        reconcile = _tradingd("reconcile", "-c", str(config), fake=fake)
        if scenario == "fill_while_down":
            _assert_books_match(db, fake)
            assert risk is None or risk.state.value != "halted"
            assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
        else:
            assert risk is not None and risk.state.value == "halted" and "reconciliation" in risk.reason
            assert reconcile.returncode == 1 and "position_mismatch" in reconcile.stdout, reconcile.stdout
        assert status  # the running daemon answered (from the database when MQTT is off)
