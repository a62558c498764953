"""Measure SqlStore's buffered write path: 100k equity snapshots + 10k orders (saved when created,
when accepted, and with their fill: ``save_fill(fill, order)``) + 10k fills, with the default batch
size (5000).

Usage: .venv/bin/python benchmarks/store_writes.py [database_url]
(default: a fresh SQLite file in a temp dir; a PostgreSQL URL keeps the bench run in that database)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.enums import OrderStatus, OrderType, Side, TimeInForce  # noqa: E402 - after the path fix
from core.events import OrderFilled, SubmitOrder
from core.orders import Order
from core.ports import EquitySnapshot
from core.time import NANOS_PER_MINUTE
from state import SqlStore, StoreConfig

T0 = 1_700_000_000_000_000_000
N_EQUITY, N_ORDERS = 100_000, 10_000


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    store = SqlStore(StoreConfig(database_url=url))
    store.start_run(f"bench-{time.time_ns()}", "replay", "bench", {}, "c", "d", T0)
    run_id = store.run_id
    assert run_id is not None

    snapshots = [EquitySnapshot(T0 + i * NANOS_PER_MINUTE, 1e5 - i, 1e5 + i, 10.0 * i, i % 5) for i in range(N_EQUITY)]
    started = time.perf_counter()
    for snapshot in snapshots:
        store.save_equity(snapshot)
    store.flush()
    equity_s = time.perf_counter() - started

    orders = [Order(SubmitOrder(client_order_id=f"bench-AAPL-{i}-1", strategy_id="bench", symbol="AAPL",
                                side=Side.BUY, quantity=10.0, order_type=OrderType.MARKET,
                                time_in_force=TimeInForce.DAY, reason="bench", ts_event=T0 + i * NANOS_PER_MINUTE,
                                ts_init=T0 + i * NANOS_PER_MINUTE)) for i in range(N_ORDERS)]
    started = time.perf_counter()
    for i, order in enumerate(orders):
        ts = T0 + i * NANOS_PER_MINUTE
        store.save_order(order)
        order.transition(OrderStatus.SUBMITTED, ts)
        order.transition(OrderStatus.ACCEPTED, ts)
        store.save_order(order)
        order.apply_fill(10.0, 100.0, 0.1, ts)
        store.save_fill(OrderFilled(client_order_id=order.client_order_id, fill_id=f"f{i}", symbol="AAPL",
                                    side=Side.BUY, quantity=10.0, price=100.0, cum_quantity=10.0, commission=0.1,
                                    ts_event=ts, ts_init=ts), order)
    store.flush()
    orders_s = time.perf_counter() - started
    store.close()

    check = SqlStore(StoreConfig(database_url=url))
    assert len(check.equity(run_id)) == N_EQUITY and len(check.orders(run_id)) == N_ORDERS
    assert len(check.fills(run_id)) == N_ORDERS
    check.close()
    print(f"{url.split(':')[0]}: equity {N_EQUITY / equity_s:,.0f} rows/s ({equity_s:.2f} s); "
          f"orders+fills {2 * N_ORDERS / orders_s:,.0f} rows/s written, "
          f"{3 * N_ORDERS / orders_s:,.0f} save calls/s ({orders_s:.2f} s)")


if __name__ == "__main__":
    main()
