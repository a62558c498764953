"""A real `tradingd run` process: bars over MQTT from `tradingd mqtt publish-bars` (a producer
account), commands and status from the operator account, telemetry retained, SIGTERM -> exit 0
with a consistent store and a journal in parity; the paced file feed out of the box; kill -9 and
restart trade nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from state.config import StoreConfig
from state.store import SqlStore
from tests.mqtt_broker import DAEMON, OPERATOR, PREFIX, PRODUCER, mosquitto  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]
TRADINGD = str(Path(sys.executable).with_name("tradingd"))
SPY = REPO / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"


def _config(tmp_path: Path, port: int | None, feed: str) -> Path:
    text = f'''
[strategy]
name = "sma_cross"
[strategy.params]
fast = 5
slow = 20
[data]
paths = ["{SPY}"]
start = "2019-01-01T00:00:00Z"
end = "2019-04-01T00:00:00Z"
[risk]
max_consecutive_losses = 1000
[state]
database_url = "sqlite:///{tmp_path / 'state.db'}"
[logging]
level = "WARNING"
[live]
account = "paper"
feed = "{feed}"
clock = "bars"
speed = 0
tick = 0.2
stale_periods = 0
'''
    if port is not None:
        text += f'''
[mqtt]
port = {port}
username = "{DAEMON[0]}"
password_env = "TT_DAEMON_PASSWORD"
prefix = "{PREFIX}"
bar_timeframe = "1h"
keepalive_s = 5
reconnect_min_s = 0.05
reconnect_max_s = 0.5
'''
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "TT_DAEMON_PASSWORD": DAEMON[1], "TRADINGD_MQTT_OPERATOR_PASSWORD": OPERATOR[1],
            "TT_PRODUCER_PASSWORD": PRODUCER[1]}


def _tradingd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRADINGD, *args], capture_output=True, text=True, env=_env(), timeout=timeout)


def _wait(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _live_run(db: Path) -> str:
    with SqlStore(StoreConfig(database_url=f"sqlite:///{db}"), account="paper") as store:
        runs = [r for r in store.find_runs() if r["kind"] == "live"] if hasattr(store, "find_runs") else []
    return runs[0]["id"] if runs else ""


def test_run_over_mqtt_with_auth_commands_status_and_a_clean_sigterm(tmp_path, mosquitto):  # noqa: F811
    config = _config(tmp_path, mosquitto.port, "mqtt")
    daemon = subprocess.Popen([TRADINGD, "run", "-c", str(config)], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        def online() -> bool:
            result = _tradingd("status", "-c", str(config))
            return '"running daemon (MQTT)"' in result.stdout
        _wait(online, what="the daemon to answer status over MQTT")
        published = _tradingd("mqtt", "publish-bars", str(SPY), "--port", str(mosquitto.port), "--user",
                              PRODUCER[0], "--password-env", "TT_PRODUCER_PASSWORD", "--prefix", PREFIX,
                              "--start", "2019-01-01T00:00:00Z", "--end", "2019-04-01T00:00:00Z", timeout=120)
        assert published.returncode == 0, published.stderr

        def all_bars_in() -> bool:
            status = json.loads(_tradingd("status", "-c", str(config)).stdout)
            return status.get("last_bar", {}).get("SPY", {}).get("start", "").startswith("2019-03-29T19")
        _wait(all_bars_in, what="the last published bar to reach the engine")
        halted = _tradingd("halt", "--account", "paper", "--reason", "operator check", "-c", str(config))
        assert halted.returncode == 0 and "daemon: halt done" in halted.stdout, halted.stdout + halted.stderr
        status = json.loads(_tradingd("status", "-c", str(config)).stdout)
        assert status["trading_state"] == "halted" and status["reason"] == "operator check"
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    out = daemon.stdout.read() if daemon.stdout else ""
    assert "stopped (received SIGTERM)" in out
    run_id = _live_run(tmp_path / "state.db")
    parity = _tradingd("parity", run_id, "-c", str(config))
    assert parity.returncode == 0 and "matches every decision and order" in parity.stdout, parity.stdout + parity.stderr
    # the daemon is down now: status comes from the database and says so
    offline = json.loads(_tradingd("status", "-c", str(config)).stdout)
    assert offline["trading_state"] == "halted" and "state database" in offline["source"]


def test_run_out_of_the_box_on_the_paced_file_feed_and_restart_after_kill_9(tmp_path):
    config = _config(tmp_path, None, "file")
    first = _tradingd("run", "-c", str(config), "--exit-at-end", timeout=120)
    assert first.returncode == 0, first.stderr
    assert "stopped (feeds finished)" in first.stdout
    db = f"sqlite:///{tmp_path / 'state.db'}"
    # a second session with more data, killed -9 at a random moment, then a third that finishes
    text = config.read_text().replace('end = "2019-04-01T00:00:00Z"', 'end = "2019-09-01T00:00:00Z"')
    config.write_text(text.replace("speed = 0", "speed = 200000").replace('clock = "bars"', 'clock = "auto"'))
    import random

    rng = random.Random(20261201)
    for _ in range(4):  # kill -9 at random moments (startup, recovery, mid-stream)
        victim = subprocess.Popen([TRADINGD, "run", "-c", str(config), "--exit-at-end"], env=_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 3.0))
        victim.kill()
        victim.wait(timeout=10)
        with SqlStore(StoreConfig(database_url=db), account="paper") as store:
            risk = store.load_risk_state("paper")
            equity = [e.equity for r in store.find_runs() for e in store.equity(r["id"])]
        if risk is not None and equity:  # the high-water mark survived every kill
            assert risk.peak_equity is not None and risk.peak_equity >= max(equity) - 1e-6
    config.write_text(config.read_text().replace("speed = 200000", "speed = 0"))
    third = _tradingd("run", "-c", str(config), "--exit-at-end", timeout=120)
    assert third.returncode == 0, third.stderr
    with SqlStore(StoreConfig(database_url=db), account="paper") as store:
        orders = [o for r in store.find_runs() for o in store.orders(r["id"])]
        ids = [o["client_order_id"] for o in orders]
        assert len(ids) == len(set(ids)), "an order was placed twice"
        fills = [f for r in store.find_runs() for f in store.fills(r["id"])]
        for fill in fills:  # no fill without its order's update (written together)
            order = next(o for o in orders if o["client_order_id"] == fill["client_order_id"])
            assert order["filled_quantity"] + 1e-9 >= fill["cum_quantity"]
        runs = {r["id"]: r["status"] for r in store.find_runs()}
    assert "running" not in runs.values()  # killed sessions are found and marked interrupted
    status = json.loads(_tradingd("status", "-c", str(config)).stdout)
    assert status["last_bar"]["SPY"].startswith("2019-08-30")  # resumed to the end of the file


def test_run_speaks_sd_notify_ready_watchdog_and_stopping(tmp_path):
    import socket

    config = _config(tmp_path, None, "file")
    config.write_text(config.read_text().replace("speed = 0", "speed = 3600"))  # a bar a second: stays up
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    env = {**_env(), "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"}  # ping every 0.5 s
    daemon = subprocess.Popen([TRADINGD, "run", "-c", str(config)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in messages) < 3:
            messages.append(sock.recv(4096).decode())
        assert any("READY=1" in m for m in messages), messages
        ready_at = next(i for i, m in enumerate(messages) if "READY=1" in m)
        assert sum("WATCHDOG=1" in m for m in messages[ready_at:]) >= 3  # pings keep coming while healthy
        daemon.send_signal(signal.SIGTERM)
        while True:
            message = sock.recv(4096).decode()
            if "STOPPING=1" in message:
                break
        assert daemon.wait(timeout=15) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        sock.close()
