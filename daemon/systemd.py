"""The systemd notification protocol (sd_notify) and the watchdog ping, with the stdlib only.

Under a ``Type=notify`` unit systemd passes ``$NOTIFY_SOCKET``: a ``AF_UNIX``/``SOCK_DGRAM``
socket path, or an abstract socket when it starts with ``@``. Each datagram holds newline
separated ``KEY=VALUE`` assignments: ``READY=1`` (startup and recovery done), ``STOPPING=1``
(shutdown begun), ``STATUS=...`` (one line shown by ``systemctl status``), ``WATCHDOG=1`` (still
alive) and ``EXTEND_TIMEOUT_USEC=...`` (startup needs longer). With ``WatchdogSec=`` set systemd
also passes ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``) and restarts the service when no
``WATCHDOG=1`` arrives within that time; we ping at half of it, as sd_watchdog_enabled(3) advises.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op, so ``tradingd run`` behaves the
same in a terminal. A send that fails is logged and reported as ``False``, never raised: losing a
status line must not take the daemon down (a lost ``READY=1`` shows up as a start timeout).

The ping proves more than "the process exists": :class:`Watchdog` pings only while the pump
(the one caller of ``Engine.handle``) keeps calling :meth:`Watchdog.kick`. An engine stuck inside
``handle`` blocks the event loop, so no ping is sent at all; a pump task that died or deadlocked
stops kicking, so the pings stop too; either way systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

_log = structlog.get_logger("tradingd.systemd")


def socket_address(path: str) -> str | bytes:
    """Return the ``sendto`` address of a ``$NOTIFY_SOCKET`` value.

    A leading ``@`` names a Linux abstract socket, whose address starts with a NUL byte.

    Examples
    --------
    >>> socket_address("/run/systemd/notify")
    '/run/systemd/notify'
    >>> socket_address("@/org/freedesktop/systemd1/notify/42")
    b'\\x00/org/freedesktop/systemd1/notify/42'
    """
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Return the watchdog ping interval in seconds (half of ``$WATCHDOG_USEC``), or None.

    None when systemd asked for no watchdog: ``$WATCHDOG_USEC`` unset, not a positive integer,
    or ``$WATCHDOG_PID`` naming another process (the variable was inherited, not meant for us).

    Parameters
    ----------
    environ : mapping of str to str
        The process environment.
    pid : int, optional
        This process's id (default :func:`os.getpid`).

    Examples
    --------
    >>> watchdog_interval({"WATCHDOG_USEC": "30000000"})
    15.0
    >>> watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    True
    >>> watchdog_interval({}) is None
    True
    """
    raw = environ.get("WATCHDOG_USEC", "").strip()
    if not raw.isdigit() or int(raw) == 0:
        return None
    owner = environ.get("WATCHDOG_PID", "").strip()
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(raw) / 2 / 1_000_000


def one_line(text: str) -> str:
    """Return ``text`` with line breaks turned into spaces (a newline would start a new assignment).

    >>> one_line("recovering\\n3 open orders")
    'recovering 3 open orders'
    """
    return " ".join(text.splitlines())


class Notifier:
    """Send sd_notify messages to ``$NOTIFY_SOCKET``; every method is a no-op outside systemd.

    Parameters
    ----------
    socket_path : str or None
        The ``$NOTIFY_SOCKET`` value (a path, or ``@name`` for an abstract socket); None disables
        notification. Use :meth:`from_environ` to read it from the environment.
    watchdog_interval_s : float or None
        Seconds between watchdog pings (see :func:`watchdog_interval`); None when systemd runs no
        watchdog for us.
    """

    def __init__(self, socket_path: str | None, *, watchdog_interval_s: float | None = None) -> None:
        self.socket_path = socket_path or None
        self.watchdog_interval_s = watchdog_interval_s
        self._sock: socket.socket | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Build a notifier from ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` (default :data:`os.environ`).

        The variables are left in place (``sd_notify(unset_environment=0)``): tradingd starts no
        child process that could pick them up by mistake, and ``$WATCHDOG_PID`` guards against it.
        """
        environ = os.environ if environ is None else environ
        return cls(environ.get("NOTIFY_SOCKET", "").strip() or None,
                   watchdog_interval_s=watchdog_interval(environ))

    @property
    def enabled(self) -> bool:
        """Whether a notification socket is known (the process runs under a ``Type=notify`` unit)."""
        return self.socket_path is not None

    def notify(self, **assignments: str | int) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines, e.g. ``notify(READY=1, STATUS="trading")``.

        Returns
        -------
        bool
            True when sent; False outside systemd or when the send failed (logged, not raised).
        """
        if self.socket_path is None or not assignments:
            return False
        payload = "\n".join(f"{key}={one_line(str(value))}" for key, value in assignments.items())
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload.encode(), socket_address(self.socket_path))
        except OSError as exc:
            _log.warning("sd_notify failed", socket=self.socket_path, error=str(exc),
                         message=payload.partition("\n")[0])
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Send ``READY=1`` (recovery and reconciliation are done), with an optional status line."""
        return self.notify(READY=1, **({"STATUS": status} if status else {}))

    def stopping(self, status: str | None = None) -> bool:
        """Send ``STOPPING=1`` (shutdown has begun: intake stopped, the queue drains)."""
        return self.notify(STOPPING=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        """Send ``STATUS=text`` (one line; line breaks become spaces), shown by ``systemctl status``."""
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        """Send ``WATCHDOG=1`` (alive). Prefer :class:`Watchdog`, which sends it only while the pump runs."""
        return self.notify(WATCHDOG=1)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before systemd gives up on startup or shutdown (``EXTEND_TIMEOUT_USEC``).

        For a recovery or reconciliation that may outlast ``TimeoutStartSec=``; send it again
        before the extension runs out.
        """
        return self.notify(EXTEND_TIMEOUT_USEC=max(1, round(seconds * 1_000_000)))

    def close(self) -> None:
        """Close the socket (further calls reopen it)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Watchdog:
    """Ping systemd's watchdog while the pump makes progress.

    The pump calls :meth:`kick` after each item it handles (one clock read, no I/O); the live
    node's timer ticks keep it kicking when the market is quiet. :meth:`run` sends ``WATCHDOG=1``
    every ``notifier.watchdog_interval_s`` seconds, but only when the last kick is at most
    ``stale_after_s`` old; otherwise it logs the stall and lets systemd restart the daemon.

    Parameters
    ----------
    notifier : Notifier
        Where the pings go; nothing is sent when it has no watchdog interval.
    stale_after_s : float, optional
        Longest time in seconds without a kick that still counts as alive. Default: the ping
        interval (half of ``WatchdogSec=``), so a stall is noticed within one ``WatchdogSec``.
        It must exceed the period of the node's timer tick.
    monotonic : callable, optional
        Clock in seconds (default :func:`time.monotonic`); tests inject their own.
    """

    def __init__(self, notifier: Notifier, *, stale_after_s: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        interval = notifier.watchdog_interval_s
        self.stale_after_s = stale_after_s if stale_after_s is not None else interval
        self._monotonic = monotonic
        self._last_kick = monotonic()
        self.pings = 0
        """Watchdog pings sent so far."""
        self.missed = 0
        """Ping times skipped because the pump had not kicked within ``stale_after_s``."""

    def kick(self) -> None:
        """Record that the pump handled an item just now (cheap: call it on every item)."""
        self._last_kick = self._monotonic()

    def alive(self) -> bool:
        """Return whether the pump kicked within ``stale_after_s`` (always True without a limit)."""
        return self.stale_after_s is None or self._monotonic() - self._last_kick <= self.stale_after_s

    def beat(self) -> bool:
        """Send one ``WATCHDOG=1`` if the pump is alive; return whether it was sent."""
        if not self.alive():
            self.missed += 1
            _log.error("pump stalled: withholding the systemd watchdog ping",
                       seconds_since_progress=round(self._monotonic() - self._last_kick, 3))
            return False
        sent = self.notifier.watchdog()
        self.pings += sent
        return sent

    async def run(self) -> None:
        """Ping every ``watchdog_interval_s`` seconds until cancelled; return at once without a watchdog.

        Run it as a task of the node's ``TaskGroup``, started after ``READY=1``.
        """
        interval = self.notifier.watchdog_interval_s
        if interval is None or not self.notifier.enabled:
            return
        self._last_kick = self._monotonic()  # the pump starts now; startup time is not a stall
        while True:
            self.beat()
            await asyncio.sleep(interval)


__all__ = ["Notifier", "Watchdog", "one_line", "socket_address", "watchdog_interval"]
