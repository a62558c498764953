"""Measure SqlStore's buffered write path: 100k equity snapshots + 10k orders (each saved 3 times:
submitted, accepted, filled) + 10k fills, with the default batch size (5000).

Usage: .venv/bin/python benchmarks/store_writes.py [database_url]
(default: a fresh SQLite file in a temp dir; a PostgreSQL URL keeps the bench run in that database)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from core.enums import OrderStatus, OrderType, Side, TimeInForce
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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

    snapshots = [EquitySnapshot(T0 + i * NANOS_PER_MINUTE, 1e5 - i, 1e5 + i, 10.0 * i, i % 5) for i in range(N_EQUITY)]
    started = time.perf_counter()
    for snapshot in snapshots:
        store.save_equity(snapshot)
    store.flush()
    equity_s = time.perf_counter() - started

    orders = [Order(SubmitOrder(f"bench-AAPL-{i}-1", "bench", "AAPL", Side.BUY, 10.0, OrderType.MARKET, None, None,
                                TimeInForce.DAY, "bench", T0 + i * NANOS_PER_MINUTE)) for i in range(N_ORDERS)]
    started = time.perf_counter()
    for i, order in enumerate(orders):
        ts = T0 + i * NANOS_PER_MINUTE
        store.save_order(order)
        order.transition(OrderStatus.SUBMITTED, ts)
        order.transition(OrderStatus.ACCEPTED, ts)
        store.save_order(order)
        order.apply_fill(10.0, 100.0, 0.1, ts)
        store.save_fill(OrderFilled(order.client_order_id, f"f{i}", "AAPL", Side.BUY, 10.0, 100.0, 10.0, 0.1, ts, ts))
        store.save_order(order)
    store.flush()
    orders_s = time.perf_counter() - started
    store.close()

    check = SqlStore(StoreConfig(database_url=url))
    assert len(check.equity(run_id)) == N_EQUITY and len(check.orders(run_id)) == N_ORDERS
    assert len(check.fills(run_id)) == N_ORDERS
    check.close()
    print(f"{url.split(':')[0]}: equity {N_EQUITY / equity_s:,.0f} rows/s ({equity_s:.2f} s); "
          f"orders+fills {2 * N_ORDERS / orders_s:,.0f} rows/s written, "
          f"{4 * N_ORDERS / orders_s:,.0f} save calls/s ({orders_s:.2f} s)")


if __name__ == "__main__":
    main()
