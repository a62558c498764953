"""Bar-to-order latency through the live node, in-process: a bar is enqueued (as a feed would after
receiving it), journaled, handled by the Engine (strategy, risk, paper order) and persisted.

Prints p50/p99/max of enqueue -> handled latency at a steady rate (default 100 bars/s) and for a
burst (default 10,000 bars at once), and whether every bar was handled. The MQTT leg before the
queue is measured by ``benchmarks/mqtt_ingest.py``.

    .venv/bin/python benchmarks/live_latency.py [--rate 100] [--seconds 10] [--burst 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.events import Bar  # noqa: E402
from daemon.config import load_config  # noqa: E402
from daemon.live.app import open_session  # noqa: E402
from daemon.live.config import LiveConfig  # noqa: E402

MINUTE = 60_000_000_000
T0 = 1_700_000_000 * 1_000_000_000


class SyntheticFeed:
    """A random walk of one-minute bars put on the queue at ``rate`` per second (0: all at once)."""

    name = "synthetic"

    def __init__(self, count: int, rate: float, start: int = 0) -> None:
        self.count, self.rate, self.start = count, rate, start

    async def run(self, enqueue) -> None:
        import random

        rng = random.Random(7)
        price = 100.0
        began = time.perf_counter()
        for i in range(self.start, self.start + self.count):
            price *= 1.0 + rng.gauss(0.0, 0.002)
            ts = T0 + i * MINUTE
            await enqueue(Bar("BENCH", ts, ts + MINUTE, price, price * 1.001, price * 0.999, price, 10_000.0))
            if self.rate:
                delay = began + (i - self.start + 1) / self.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)


def measure(count: int, rate: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, {"state.database_url": f"sqlite:///{tmp}/bench.db", "strategy.name": "sma_cross",
                                 "strategy.params": {"fast": 5, "slow": 20}, "signals.regime_enabled": True})
        live = LiveConfig(account="bench", feed="mqtt", clock="bars", tick=0.5, stale_periods=0,
                          queue_size=max(20_000, count + 10))
        session = open_session(cfg, live, feeds=[SyntheticFeed(count, rate)])
        latencies: list[int] = []
        session.node.on_handled.append(lambda event, enqueued: latencies.append(time.perf_counter_ns() - enqueued))
        started = time.perf_counter()
        asyncio.run(session.node.run(stop_when_feeds_end=True, install_signals=False))
        elapsed = time.perf_counter() - started
        orders = len(session.kernel.book.orders)
        session.close()
    bars = [x for x in latencies]
    ms = sorted(x / 1e6 for x in bars)
    return {"bars": count, "handled": len(ms), "p50_ms": statistics.median(ms),
            "p99_ms": ms[int(0.99 * (len(ms) - 1))], "max_ms": ms[-1], "seconds": elapsed, "orders": orders}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="steady bars per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the steady run")
    parser.add_argument("--burst", type=int, default=10_000, help="bars enqueued at once")
    args = parser.parse_args()
    steady = measure(int(args.rate * args.seconds), args.rate)
    burst = measure(args.burst, 0.0)
    for name, r in (("steady", steady), ("burst", burst)):
        print(f"{name:<7} {r['bars']:>6,} bars  handled {r['handled']:>6,}  p50 {r['p50_ms']:7.3f} ms  "
              f"p99 {r['p99_ms']:7.3f} ms  max {r['max_ms']:8.3f} ms  orders {r['orders']:>4}  "
              f"({r['bars'] / r['seconds']:,.0f} bars/s wall)")


if __name__ == "__main__":
    main()
