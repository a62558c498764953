"""MQTT ingest throughput: QoS-1 bars queued at a real local Mosquitto drain through the daemon's
MQTT feed (aiomqtt -> frame validation -> Bar -> the node's queue). Starts its own broker on a
free loopback port (auth + the shipped ACL), prints bars/s.

    .venv/bin/python benchmarks/mqtt_ingest.py [--bars 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.adapters.mqtt_bench import ingest_throughput  # noqa: E402
from tests.mqtt_broker import PASSWORD_ENV, DAEMON, PRODUCER, MosquittoBroker, daemon_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(Path(tmp) / "mosquitto")
        broker.start()
        try:
            os.environ[PASSWORD_ENV] = DAEMON[1]
            result = asyncio.run(ingest_throughput(daemon_config(broker), producer_user=PRODUCER[0],
                                                   producer_password=PRODUCER[1], n_bars=args.bars))
        finally:
            broker.stop()
    print(result)


if __name__ == "__main__":
    main()
