"""A real Mosquitto broker for tests: free loopback port, password file, ACL, persistence.

:class:`MosquittoBroker` writes a config into a folder of its own, creates the password file with
``mosquitto_passwd -b`` and starts ``mosquitto -c`` as a subprocess; it is stopped by its PID
(SIGTERM, so it saves its persistence database as a production broker does on shutdown) and can be
started again **on the same port** mid-test, which is how the reconnect tests cut the connection.

The accounts and the ACL are the shipped ones (``deploy/mosquitto/tradingd.acl``) with the test's
topic prefix: the daemon reads bars and its command topic and writes its telemetry and replies;
the operator writes commands and reads everything; a bar producer writes bars only; anonymous
clients are refused.

Mosquitto is a hard requirement (``apt-get install -y mosquitto``): without it the tests fail with
that message, they never skip (CI must not pass silently).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "deploy" / "mosquitto"
PREFIX = "tt"
ACCOUNT = "paper"
DAEMON = ("tradingd", "daemon-secret")
OPERATOR = ("operator", "operator-secret")
PRODUCER = ("producer", "producer-secret")


def acl_text(prefix: str = PREFIX, account: str = ACCOUNT) -> str:
    """The shipped ACL (``deploy/mosquitto/tradingd.acl``, written for ``tradingd``/``paper``) for
    ``prefix``/``account``: the tests check the very rules a user installs."""
    lines = []
    for line in (SHIPPED / "tradingd.acl").read_text().splitlines():
        if line.startswith("topic "):
            line = re.sub(r" tradingd/", f" {prefix}/", line)
            line = re.sub(rf" {re.escape(prefix)}/paper/", f" {prefix}/{account}/", line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MosquittoBroker:
    """One mosquitto process on ``127.0.0.1:port`` with auth, ACL and persistence in ``folder``.

    Parameters
    ----------
    folder : Path
        Holds the config, password file, ACL, persistence database and ``mosquitto.log``.
    port : int, optional
        Defaults to a free port, kept across :meth:`restart`.
    users : dict of str to str
        Username -> password written to the password file.
    acl : str
        The ACL file's text.
    persistence : bool
        Keep sessions, subscriptions and queued QoS-1 messages across a restart (saved on SIGTERM).
    """

    folder: Path
    port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=lambda: dict([DAEMON, OPERATOR, PRODUCER]))
    acl: str = field(default_factory=acl_text)
    persistence: bool = True
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        for tool in ("mosquitto", "mosquitto_passwd"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} is not installed: apt-get install -y mosquitto (the MQTT tests need a real "
                            "broker; they fail rather than skip)", pytrace=False)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "data").mkdir(exist_ok=True)
        passwd = self.folder / "passwd"
        for index, (user, password) in enumerate(self.users.items()):
            subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if index == 0 else []), str(passwd), user, password],
                           check=True, capture_output=True)
        (self.folder / "acl").write_text(self.acl)
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous false", f"password_file {passwd}",
                 f"acl_file {self.folder / 'acl'}", f"persistence {str(self.persistence).lower()}", f"persistence_location {self.folder / 'data'}/",
                 "max_queued_messages 100000", "max_inflight_messages 100", f"log_dest file {self.folder / 'mosquitto.log'}",
                 "log_type error", "log_type warning", "log_type notice", "log_type information"]
        if os.geteuid() == 0:  # as root mosquitto would switch to its own user, who cannot read tmp_path
            lines.append("user root")
        (self.folder / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and return once it accepts TCP connections on the port."""
        assert not self.running, "already running"
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.folder / "mosquitto.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {error}\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop the process by its PID (SIGTERM saves the persistence database) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout)
        if process.stderr:
            process.stderr.close()

    def restart(self) -> None:
        """Stop and start again on the same port with the same persistence database."""
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A running :class:`MosquittoBroker` with the module's users and ACL; stopped afterwards."""
    broker = MosquittoBroker(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# --- helpers for the daemon's MQTT tests ---------------------------------------------------------

PASSWORD_ENV = "TT_MQTT_DAEMON_PASSWORD"


def daemon_config(broker: MosquittoBroker, **overrides: object) -> Any:
    """An :class:`daemon.adapters.mqtt_config.MqttConfig` for the daemon account on ``broker``, with
    quick reconnects; the caller sets ``PASSWORD_ENV`` (``monkeypatch.setenv``)."""
    from daemon.adapters.mqtt_config import MqttConfig

    settings: dict[str, object] = dict(port=broker.port, username=DAEMON[0], password_env=PASSWORD_ENV,
                                       prefix=PREFIX, account=ACCOUNT, client_id=f"daemon-{uuid.uuid4().hex[:8]}",
                                       keepalive_s=5, timeout_s=3.0, reconnect_min_s=0.05, reconnect_max_s=0.5,
                                       log_every_s=0.0)
    settings.update(overrides)
    return MqttConfig.model_validate(settings)


def client(broker: MosquittoBroker, account: tuple[str, str] | None = OPERATOR, **options: Any) -> Any:
    """An aiomqtt client on ``broker`` as ``account`` (None: anonymous); use inside a running loop."""
    import aiomqtt

    user, password = account if account else (None, None)
    return aiomqtt.Client("127.0.0.1", broker.port, username=user, password=password, timeout=5, **options)


@asynccontextmanager
async def running(link: Any, timeout: float = 10.0) -> AsyncIterator[Any]:
    """Run ``link`` (an MqttLink) in a task until the block ends; enter once it is connected."""
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.connected.wait(), timeout)
        yield link
    finally:
        link.stop()
        try:
            await asyncio.wait_for(task, timeout)
        finally:
            task.cancel()


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 10 ms; raise AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


class Collector:
    """Collect messages of ``topic_filter`` from an operator client (inside ``async with``)."""

    def __init__(self, broker: MosquittoBroker, topic_filter: str, account: tuple[str, str] = OPERATOR) -> None:
        self.broker, self.topic_filter, self.account = broker, topic_filter, account
        self.messages: list[tuple[str, bytes, bool]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        self.client = client(self.broker, self.account)
        await self.client.__aenter__()
        await self.client.subscribe(self.topic_filter, qos=1)
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        async for message in self.client.messages:
            self.messages.append((message.topic.value, bytes(message.payload), bool(message.retain)))

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.__aexit__(None, None, None)

    def on(self, topic: str) -> list[bytes]:
        return [payload for t, payload, _ in self.messages if t == topic]

    async def wait_for(self, topic: str, count: int = 1, timeout: float = 10.0) -> list[bytes]:
        await wait_until(lambda: len(self.on(topic)) >= count, timeout, f"{count} message(s) on {topic}")
        return self.on(topic)
