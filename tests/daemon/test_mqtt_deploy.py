"""The shipped Mosquitto example (deploy/mosquitto/) starts and matches the daemon's topics."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

from daemon.adapters.mqtt_config import TELEMETRY_KINDS, MqttConfig
from tests.mqtt_broker import DAEMON, OPERATOR, PRODUCER, SHIPPED, free_port


def rules(user: str) -> set[str]:
    """``"<access> <topic>"`` lines of ``user`` in the shipped ACL."""
    found: set[str] = set()
    current = None
    for line in (SHIPPED / "tradingd.acl").read_text().splitlines():
        if line.startswith("user "):
            current = line.split()[1]
        elif line.startswith("topic ") and current == user:
            found.add(line.removeprefix("topic "))
    return found


def test_shipped_acl_grants_the_daemon_exactly_its_topics() -> None:
    topics = MqttConfig(username=DAEMON[0]).topics  # the defaults the ACL is written for
    assert rules(DAEMON[0]) == {f"read {topics.bars.replace('+', '#')}", f"read {topics.cmd}",
                                f"write {topics.reply_root}/#",
                                *(f"write {topics.telemetry(kind)}" for kind in TELEMETRY_KINDS)}
    assert rules(OPERATOR[0]) == {"write tradingd/+/cmd", "read tradingd/#"}
    assert rules(PRODUCER[0]) == {"write tradingd/bars/#"}


def test_shipped_mosquitto_conf_starts(tmp_path: Path) -> None:
    port = free_port()
    text = (SHIPPED / "mosquitto.conf").read_text()
    text = text.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
    text = text.replace("/etc/mosquitto/tradingd.acl", str(SHIPPED / "tradingd.acl"))
    text = text.replace("/etc/mosquitto/tradingd.passwd", str(tmp_path / "passwd"))
    text = text.replace("/var/lib/mosquitto/", f"{tmp_path}/")
    text = re.sub(r"(?m)^log_dest syslog$", f"log_dest file {tmp_path / 'log'}", text) + "user root\n"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(tmp_path / "passwd"), *DAEMON], check=True)
    (tmp_path / "tradingd.conf").write_text(text)
    process = subprocess.Popen(["mosquitto", "-c", str(tmp_path / "tradingd.conf")], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the shipped config did not start listening"
                time.sleep(0.02)
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr:
            process.stderr.close()
