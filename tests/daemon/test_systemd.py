"""sd_notify against a real datagram socket, the watchdog's cadence and stall rule, and the unit file
checked by systemd's own tools (``systemd-analyze verify`` and ``security``) and by running our
Python stack under its seccomp rules. Needs the Debian packages ``systemd`` (systemd-analyze) and
``linux-libc-dev`` (the x86_64 system call numbers); these tests fail, not skip, without them."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.systemd import Notifier, Watchdog, watchdog_interval

from .conftest import REPO, SLICE, SPY

UNIT = REPO / "systemd" / "tradingd.service"
ENV_EXAMPLE = REPO / "systemd" / "tradingd.env.example"
EXEC_START = "/opt/tradingd/.venv/bin/tradingd run --config /etc/tradingd/config.toml"


# --- the notification socket -------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A real AF_UNIX datagram socket bound in tmp_path, as systemd binds /run/systemd/notify."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield str(path), sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on ``sock`` (without blocking), decoded."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2.0)
    return out


def test_ready_status_and_stopping_arrive_as_sd_notify_datagrams(notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("trading: 2 symbols")
    assert sock.recv(4096) == b"READY=1\nSTATUS=trading: 2 symbols"
    assert notifier.status("reconciling\n3 open orders")  # a newline would start a new assignment
    assert sock.recv(4096) == b"STATUS=reconciling 3 open orders"
    assert notifier.extend_timeout(90)
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=90000000"
    assert notifier.stopping("draining the queue")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=draining the queue"
    notifier.close()


def test_abstract_notify_socket_is_reached() -> None:
    name = f"tradingd-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_outside_systemd_every_call_is_a_harmless_no_op() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None
    assert not notifier.ready() and not notifier.status("x") and not notifier.stopping()
    watchdog = Watchdog(notifier)
    asyncio.run(asyncio.wait_for(watchdog.run(), timeout=1.0))  # returns at once: no watchdog asked for
    assert watchdog.pings == 0


def test_a_dead_notify_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    assert notifier.ready() is False


@pytest.mark.parametrize(("environ", "expected"), [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}, 0.1),
    ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}, None),  # inherited: meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval_is_half_of_watchdog_usec(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ) == expected


# --- the watchdog ------------------------------------------------------------------------------


def test_watchdog_pings_at_half_of_watchdog_usec_while_the_pump_kicks(
        notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})  # 200 ms -> ping every 100 ms
    watchdog = Watchdog(notifier)

    async def session() -> None:
        async def pump() -> None:  # stands in for the pump: handles an item every 20 ms
            while True:
                watchdog.kick()
                await asyncio.sleep(0.02)

        tasks = [asyncio.create_task(pump()), asyncio.create_task(watchdog.run())]
        await asyncio.sleep(1.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(session())
    pings = received(sock)
    assert set(pings) == {"WATCHDOG=1"}
    # 1 s at one ping per 100 ms: 10 (11 if the last lands on the edge); fewer only on a very busy machine
    assert 6 <= len(pings) <= 11, len(pings)
    assert watchdog.pings == len(pings) and watchdog.missed == 0


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_stalled_pump_gets_no_watchdog_ping_and_a_kick_brings_it_back(
        notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    clock = FakeMonotonic()
    watchdog = Watchdog(Notifier(path, watchdog_interval_s=15.0), monotonic=clock)
    assert watchdog.stale_after_s == 15.0  # default: one ping interval
    assert watchdog.beat()
    clock.now += 15.0
    assert watchdog.beat()  # exactly at the limit: still alive
    clock.now += 0.5
    assert not watchdog.beat()  # no kick for 15.5 s: withheld, systemd restarts us after WatchdogSec
    watchdog.kick()
    assert watchdog.beat()
    assert received(sock) == ["WATCHDOG=1"] * 3
    assert (watchdog.pings, watchdog.missed) == (3, 1)


# --- the unit file -----------------------------------------------------------------------------


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key`` -> every value it is given in ``path`` (systemd allows repeated keys)."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: apt-get install -y systemd"
    return found


@pytest.fixture
def unit_root(tmp_path: Path) -> Path:
    """A file-system root holding the unit as installed, the units it refers to (copied from the
    host) and an executable at the ExecStart path, so ``verify`` checks the real file unchanged."""
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system/tradingd.service")
    host_units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir())
    shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    binary = root / EXEC_START.split()[0].lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    return root


def verify(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([systemd_analyze(), "verify", "--man=no", "--generators=no", f"--root={root}",
                           "tradingd.service"], capture_output=True, text=True, timeout=60)


def test_unit_file_passes_systemd_analyze_verify_without_a_warning(unit_root: Path) -> None:
    result = verify(unit_root)
    # verify exits 0 on unknown keys and bad values ("..., ignoring"): a clean stderr is the real check
    assert (result.returncode, result.stderr.strip()) == (0, ""), result.stderr


def test_verify_catches_a_typo_and_a_missing_binary(unit_root: Path) -> None:
    """Guards the check above: it would notice a broken unit."""
    installed = unit_root / "etc/systemd/system/tradingd.service"
    installed.write_text(installed.read_text().replace("LockPersonality=yes", "LockPersonalty=yes"))
    assert "Unknown key" in verify(unit_root).stderr
    (unit_root / EXEC_START.split()[0].lstrip("/")).unlink()
    assert verify(unit_root).returncode != 0


def test_unit_file_runs_tradingd_as_a_notify_service_with_watchdog_and_restart() -> None:
    s = unit_settings(UNIT)
    assert s["ExecStart"] == [EXEC_START]
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["on-failure"]
    assert 10 <= int(s["WatchdogSec"][0]) <= 120
    assert s["StateDirectory"] == ["tradingd"] and s["ReadWritePaths"] == ["/var/lib/tradingd"]
    assert int(s["TimeoutStopSec"][0]) > 10  # tradingd exits within 10 s of SIGTERM
    assert s["EnvironmentFile"] == ["/etc/tradingd/tradingd.env"]
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                       ("ProtectHome", "yes"), ("CapabilityBoundingSet", ""), ("MemoryDenyWriteExecute", "yes"),
                       ("LockPersonality", "yes"), ("ProtectKernelTunables", "yes"),
                       ("ProtectKernelModules", "yes"), ("ProtectKernelLogs", "yes"),
                       ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6")]:
        assert s.get(key) == [value], key
    assert "@system-service" in s["SystemCallFilter"]


def test_unit_hardening_scores_ok_in_systemd_analyze_security(unit_root: Path) -> None:
    result = subprocess.run([systemd_analyze(), "security", "--offline=yes", f"--root={unit_root}",
                             "--threshold=20", "tradingd.service"], capture_output=True, text=True, timeout=60)
    # exposure 0.0 (locked down) .. 10.0 (unprotected); an unhardened service scores 9.6
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Overall exposure level for tradingd.service: 1." in result.stdout


def test_env_example_is_keys_only_and_names_the_database_url() -> None:
    lines = [ln for ln in ENV_EXAMPLE.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines, "the example sets at least the database URL"
    for line in lines:
        key, sep, _ = line.partition("=")
        assert sep and key.isupper() and " " not in key and not line.startswith("export"), line
    assert any(line.startswith("TRADINGD_DATABASE_URL=sqlite:////var/lib/tradingd/") for line in lines)


# --- the unit's seccomp rules work with our Python stack ------------------------------------------
#
# ProtectSystem=, PrivateTmp= and the like are mount namespaces: they only hide or freeze paths,
# which the README's paths respect. The rules that can break a Python stack are the seccomp ones,
# so the child process below runs under the same rules systemd compiles from the unit:
# * SystemCallFilter=@system-service minus ~@privileged @resources, with the group contents taken
#   from the installed systemd-analyze; anything else fails with EPERM (SystemCallErrorNumber=);
# * MemoryDenyWriteExecute=yes (seccomp_memory_deny_write_execute in systemd's seccomp-util.c):
#   EPERM for mmap with PROT_WRITE|PROT_EXEC, mprotect/pkey_mprotect adding PROT_EXEC, shmat with
#   SHM_EXEC;
# * RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6: socket() of another family fails with
#   EAFNOSUPPORT; SystemCallArchitectures=native.
# It first checks that the rules are in force, then runs a real replay through the CLI against the
# test PostgreSQL server (TCP) and the node's parts (asyncio, scheduler, psutil, sd_notify).

UNISTD_64 = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")  # Debian package linux-libc-dev
AUDIT_ARCH_X86_64 = 0xC000003E
LD_W_ABS, JEQ_K, AND_K, RET_K = 0x20, 0x15, 0x54, 0x06
ALLOW, ERRNO = 0x7FFF0000, 0x00050000
EPERM, EAFNOSUPPORT = 1, 97
NR_OFFSET, ARCH_OFFSET, ARG0_OFFSET, ARG2_OFFSET = 0, 4, 16, 32  # struct seccomp_data (args[i] low 32 bits)


def syscall_groups() -> dict[str, list[str]]:
    """``@group`` -> its members, as this systemd defines them."""
    out = subprocess.run([systemd_analyze(), "syscall-filter"], capture_output=True, text=True, check=True).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.startswith(" ") and current is not None and not line.strip().startswith("#") and line.strip():
            current.append(line.strip())
        elif not line.startswith(" "):
            current = None
    return groups


def expand(name: str, groups: dict[str, list[str]]) -> set[str]:
    if not name.startswith("@"):
        return {name}
    return set().union(*(expand(member, groups) for member in groups[name]))


def ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def unit_seccomp_program(settings: dict[str, list[str]]) -> bytes:
    """The BPF program of the unit's SystemCallFilter=, MemoryDenyWriteExecute= and
    RestrictAddressFamilies= on x86_64."""
    assert UNISTD_64.is_file(), f"{UNISTD_64} is missing: apt-get install -y linux-libc-dev"
    numbers = {m.group(1): int(m.group(2)) for m in re.finditer(r"#define __NR_(\w+) (\d+)", UNISTD_64.read_text())}
    groups = syscall_groups()
    allowed: set[str] = set()
    for value in settings["SystemCallFilter"]:
        if value.startswith("~"):
            allowed -= set().union(*(expand(n, groups) for n in value[1:].split()))
        else:
            allowed |= set().union(*(expand(n, groups) for n in value.split()))
    assert settings["SystemCallErrorNumber"] == ["EPERM"] and settings["MemoryDenyWriteExecute"] == ["yes"]
    families = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10}
    allowed_families = [families[f] for f in settings["RestrictAddressFamilies"][0].split()]

    def deny_if_masked(offset: int, mask: int) -> list[bytes]:
        return [ins(LD_W_ABS, offset), ins(AND_K, mask), ins(JEQ_K, mask, 0, 1), ins(RET_K, ERRNO | EPERM),
                ins(RET_K, ALLOW)]

    socket_block = [ins(LD_W_ABS, ARG0_OFFSET)]
    for i, family in enumerate(allowed_families):
        socket_block.append(ins(JEQ_K, family, len(allowed_families) - i, 0))
    socket_block += [ins(RET_K, ERRNO | EAFNOSUPPORT), ins(RET_K, ALLOW)]
    special = {"mmap": deny_if_masked(ARG2_OFFSET, 0x6),  # PROT_WRITE|PROT_EXEC
               "mprotect": deny_if_masked(ARG2_OFFSET, 0x4), "pkey_mprotect": deny_if_masked(ARG2_OFFSET, 0x4),
               "shmat": deny_if_masked(ARG2_OFFSET, 0o100000),  # SHM_EXEC
               "socket": socket_block}
    assert {"mmap", "mprotect", "socket"} <= allowed
    special = {name: block for name, block in special.items() if name in allowed}  # the rest: denied anyway
    prog = [ins(LD_W_ABS, ARCH_OFFSET), ins(JEQ_K, AUDIT_ARCH_X86_64, 1, 0), ins(RET_K, ERRNO | EPERM),
            ins(LD_W_ABS, NR_OFFSET)]
    for name, block in special.items():  # each block returns, so A still holds the number after a miss
        prog += [ins(JEQ_K, numbers[name], 0, len(block)), *block]
    for nr in sorted(numbers[n] for n in allowed - set(special) if n in numbers):
        prog += [ins(JEQ_K, nr, 0, 1), ins(RET_K, ALLOW)]
    prog.append(ins(RET_K, ERRNO | EPERM))
    assert len(prog) <= 4096
    return b"".join(prog)


SANDBOXED_CHILD = r"""
import ctypes, errno, mmap, os, socket, sys

code = open(sys.argv[1], "rb").read()
buf = ctypes.create_string_buffer(code, len(code))
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(len(code) // 8, ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, os.strerror(ctypes.get_errno())
assert libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0, os.strerror(ctypes.get_errno())

def refused(action, code):
    try:
        action()
    except OSError as exc:
        return exc.errno == code
    return False

assert refused(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC), errno.EPERM)
assert refused(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW), errno.EAFNOSUPPORT)
assert refused(lambda: os.sched_setaffinity(0, {0}), errno.EPERM)  # @resources is filtered out
print("rules in force", flush=True)

import asyncio, tempfile
from daemon.health import HealthConfig, HealthMonitor, LoopLagProbe
from daemon.scheduler import DaemonScheduler, HealthTick, SchedulerConfig
from daemon.systemd import Notifier
from alerts.sinks import MemoryAlertSink

async def node_parts():
    probe = LoopLagProbe(0.01)
    monitor = HealthMonitor(HealthConfig(), state_dir=tempfile.gettempdir(), alerts=MemoryAlertSink(), lag_probe=probe)
    queue = asyncio.Queue()
    scheduler = DaemonScheduler(SchedulerConfig(health_interval_s=0.05, equity_snapshot_interval_s=0),
                                enqueue=queue.put, status=dict, health_check=monitor.check)
    tasks = [asyncio.create_task(probe.run()), asyncio.create_task(scheduler.run())]
    tick = await asyncio.wait_for(queue.get(), 10)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(tick, HealthTick) and tick.report["rss_bytes"] > 0, tick
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind("\0tradingd-sandbox-%d" % os.getpid())
    assert Notifier("@tradingd-sandbox-%d" % os.getpid()).ready() and listener.recv(64) == b"READY=1"

asyncio.run(node_parts())
print("node parts ok", flush=True)
from daemon.cli import main
sys.argv = ["tradingd", *sys.argv[2:]]
main()
"""


def test_our_python_stack_runs_under_the_units_seccomp_rules(tmp_path: Path, postgres_url: str) -> None:
    assert platform.machine() == "x86_64", "this test knows the x86_64 system call numbers only"
    program = tmp_path / "filter.bpf"
    program.write_bytes(unit_seccomp_program(unit_settings(UNIT)))
    args = ["replay", "--data", str(SPY), *SLICE, "--db", postgres_url, "--out", str(tmp_path / "out")]
    result = subprocess.run([sys.executable, "-c", SANDBOXED_CHILD, str(program), *args], capture_output=True,
                            text=True, cwd=REPO, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.stdout.startswith("rules in force\n"), result.stdout + result.stderr[-3000:]
    assert "node parts ok\n" in result.stdout, result.stdout + result.stderr[-3000:]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert any((tmp_path / "out").rglob("*")), "the replay wrote its outputs"


def unit_environment(settings: dict[str, list[str]]) -> dict[str, str]:
    return dict(pair.split("=", 1) for value in settings["Environment"] for pair in value.split())


def test_a_watchdog_kill_leaves_the_stuck_python_stack_in_the_journal() -> None:
    """WatchdogSignal=SIGABRT with the unit's environment (PYTHONFAULTHANDLER=1) makes a stuck
    daemon print where it was stuck to stderr, which systemd puts in the journal."""
    settings = unit_settings(UNIT)
    assert settings["WatchdogSignal"] == ["SIGABRT"]
    child = ("import sys, time\n"
             "def stuck_in_engine_handle():\n"
             "    print('stuck', flush=True)\n"
             "    while True: time.sleep(0.01)\n"
             "stuck_in_engine_handle()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**env, **unit_environment(settings)})
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "stuck\n"
        proc.send_signal(signal.SIGABRT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGABRT
    assert "Fatal Python error: Aborted" in stderr and "in stuck_in_engine_handle" in stderr, stderr
