"""B16: kill -9 never leaves a fill whose order row says less filled than the fill, and recovery
after it books exactly the fills the database kept.

A child process writes orders and fills through ``SqlStore`` exactly as the engine does (apply
the fill to the order, then ``save_fill(fill, order)``), now and then an account snapshot, with
a small batch size so flushes happen every few rows; the test SIGKILLs it at a random point and
reads what the database kept. With the old write path (``save_fill`` buffered alone,
``save_order`` after it) 10 of 15 kills per backend left such a fill behind.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from typing import Any

import pytest

from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.events import OrderFilled, SubmitOrder
from core.orders import Order
from core.portfolio import Portfolio
from core.ports import EquitySnapshot
from core.recovery import RestoredPosition
from state import SqlStore, StoreConfig, load_restored

T0 = 1_700_000_000_000_000_000
TRIALS = 15
CASH = 1_000_000.0
_FORK = multiprocessing.get_context("fork")  # a fresh interpreter per trial would cost ~0.5 s of imports
_DEADLINE_S = 60.0  # only a hung child ever gets near it


def _write_until_killed(url: str, run_id: str, batch_size: int, progress: Any, seed: int) -> None:
    """Child process: orders with 1-4 partial fills each, interleaved with equity rows, forever."""
    rng = random.Random(seed)
    portfolio = Portfolio(CASH)
    store = SqlStore(StoreConfig(database_url=url, batch_size=batch_size), account=run_id)
    store.start_run(run_id, "live", "crash", {}, "c", "d", T0)
    for i in range(10**9):
        ts = T0 + i * 1_000_000
        order = Order(SubmitOrder(client_order_id=f"{run_id}-{i}", strategy_id="crash", symbol="AAPL",
                                  side=Side.BUY, quantity=100.0, order_type=OrderType.MARKET,
                                  time_in_force=TimeInForce.GTC, ts_event=ts, ts_init=ts))
        store.save_order(order)
        order.transition(OrderStatus.SUBMITTED, ts)
        order.transition(OrderStatus.ACCEPTED, ts)
        store.save_order(order)
        parts = rng.randint(1, 4)
        for k in range(1, parts + 1):
            cum = 100.0 * k / parts
            order.apply_fill(cum, 50.0 + k, 0.1, ts)  # the engine applies the fill, then saves both
            store.save_fill(OrderFilled(client_order_id=order.client_order_id, fill_id=f"{order.client_order_id}-{k}",
                                        symbol="AAPL", side=Side.BUY, quantity=100.0 / parts, price=50.0 + k,
                                        cum_quantity=cum, commission=0.1, ts_event=ts, ts_init=ts), order)
            portfolio.apply_fill("AAPL", Side.BUY, 100.0 / parts, 50.0 + k, 0.1)
            if rng.random() < 0.5:  # other rows move the flush points around the fills
                store.save_equity(EquitySnapshot(ts, 1.0, 1.0, 0.0, 0))
            if rng.random() < 0.3:
                store.save_account(portfolio.cash, [RestoredPosition(
                    symbol="AAPL", quantity=portfolio.position("AAPL"), avg_price=portfolio.avg_price("AAPL"),
                    mark=50.0 + k, entry_ts=T0)], ts)
            progress.value += 1


def _kill_at_random(url: str, run_id: str, rng: random.Random) -> None:
    progress = _FORK.Value("q", 0, lock=False)
    child = _FORK.Process(target=_write_until_killed, args=(url, run_id, rng.randint(2, 9), progress,
                                                             rng.getrandbits(32)), daemon=True)
    target = rng.randint(1, 100)
    child.start()
    deadline = time.monotonic() + _DEADLINE_S
    try:
        while progress.value < target:
            if not child.is_alive():
                pytest.fail(f"writer {run_id} died on its own (exit code {child.exitcode})")
            if time.monotonic() > deadline:
                pytest.fail(f"writer {run_id} made no progress in {_DEADLINE_S} s")
            time.sleep(0.0002)
        if rng.random() < 0.5:  # let it run on into the middle of whatever it does next
            time.sleep(rng.random() * 0.002)
    finally:
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join()
    assert child.exitcode == -signal.SIGKILL


def test_kill_9_never_leaves_a_fill_without_its_order_update(database_url: str) -> None:
    rng = random.Random()
    broken, committed = [], 0
    for trial in range(TRIALS):
        run_id = f"crash-{trial}"
        _kill_at_random(database_url, run_id, rng)
        with SqlStore(StoreConfig(database_url=database_url), account=run_id) as reader:
            orders = {o["client_order_id"]: o for o in reader.orders(run_id)}
            fills = reader.fills(run_id)
            restored = load_restored(reader, run_id, starting_cash=CASH)
        committed += len(fills)
        bad = [f"{f['fill_id']} cum {f['cum_quantity']:g}: order "
               + (f"{orders[f['client_order_id']]['status'].value} filled {orders[f['client_order_id']]['filled_quantity']:g}"
                  if f["client_order_id"] in orders else "missing")
               for f in fills
               if f["client_order_id"] not in orders
               or orders[f["client_order_id"]]["filled_quantity"] < f["cum_quantity"]]
        if bad:
            broken.append(f"trial {trial}: {bad[:3]}")
        # recovery books exactly the fills the database kept, whether or not a snapshot followed them
        booked = Portfolio(CASH)
        for f in fills:
            booked.apply_fill("AAPL", Side.BUY, f["quantity"], f["price"], f["commission"])
        if restored is None:  # killed before its first flush: nothing of the account reached the database
            assert not orders and not fills, f"trial {trial}: state saved but nothing restored"
            continue
        assert restored.cash == pytest.approx(booked.cash, rel=1e-12), f"trial {trial}: cash"
        assert [p.symbol for p in restored.positions] == (["AAPL"] if fills else []), f"trial {trial}: positions"
        assert sum(p.quantity for p in restored.positions) == pytest.approx(booked.position("AAPL")), \
            f"trial {trial}: shares"
    assert committed > 0, "no trial committed a fill before it was killed: the test proves nothing"
    assert not broken, f"{len(broken)} of {TRIALS} kill -9 trials left a fill without its order update: {broken}"
