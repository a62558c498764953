"""Run the fake Alpaca server standalone until SIGTERM or SIGINT.

``python -m tests.alpaca_fake --symbols SPY,QQQ --bar-interval 0.5 --port-file F`` serves on a free
loopback port and writes ``{"rest_url", "trading_ws_url", "data_ws_url", "crypto_ws_url", "key_id",
"account_number"}`` as JSON to ``F`` (atomically: the file appears complete). The secret is the
``--secret-key`` given (default ``fake-secret-0000``); it is never written or logged.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from tests.alpaca_fake.server import FakeAlpaca


def _symbols(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(prog="python -m tests.alpaca_fake", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--symbols", type=_symbols, default=("SPY",), help="equity symbols, comma-separated")
    p.add_argument("--crypto-symbols", type=_symbols, default=("BTC/USD",), help="crypto pairs, comma-separated")
    p.add_argument("--bar-interval", type=float, default=None, help="publish a minute bar every N wall seconds")
    p.add_argument("--port-file", type=Path, required=True, help="where to write the URLs as JSON")
    p.add_argument("--start", default="2024-01-02T14:30:00Z", help="UTC start of the first live bar")
    p.add_argument("--history-minutes", type=int, default=600, help="minute bars published before --start")
    p.add_argument("--price", type=float, default=100.0, help="first open of every symbol, USD")
    p.add_argument("--seed", type=int, default=0, help="seed of the random walk")
    p.add_argument("--cash", type=float, default=100_000.0, help="opening cash, USD")
    p.add_argument("--fill-mode", choices=("immediate", "next_bar"), default="immediate")
    p.add_argument("--page-limit", type=int, default=10_000, help="largest page of historical bars")
    p.add_argument("--key-id", default="PKFAKEKEY0000000")
    p.add_argument("--secret-key", default="fake-secret-0000")
    p.add_argument("--account-number", default="PA0FAKE00001")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit status (2 for bad options)."""
    args = parse_args(argv)
    if not args.port_file.resolve().parent.is_dir():
        print(f"tests.alpaca_fake: --port-file {args.port_file}: its folder does not exist", file=sys.stderr)
        return 2
    try:
        fake = FakeAlpaca(symbols=args.symbols, crypto_symbols=args.crypto_symbols, key_id=args.key_id,
                          secret_key=args.secret_key, start=args.start, price=args.price, seed=args.seed,
                          cash=args.cash, account_number=args.account_number, bar_interval=args.bar_interval,
                          history_minutes=args.history_minutes, fill_mode=args.fill_mode,
                          page_limit=args.page_limit)
    except ValueError as exc:
        print(f"tests.alpaca_fake: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with fake:
        info = {"rest_url": fake.rest_url, "trading_ws_url": fake.trading_ws_url, "data_ws_url": fake.data_ws_url,
                "crypto_ws_url": fake.crypto_ws_url, "key_id": fake.key_id, "account_number": fake.account_number}
        target = args.port_file.resolve()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh)
        os.replace(tmp, target)
        print(f"fake alpaca serving at {fake.rest_url}", file=sys.stderr, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
