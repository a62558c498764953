"""Alert sinks (the :class:`core.ports.AlertSink` port). A sink never blocks or raises into the engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from core.time import iso

SEVERITIES = ("debug", "info", "warning", "error", "critical")


class LogAlertSink:
    """Write alerts as structured log events (``alert=True`` so they can be filtered).

    Parameters
    ----------
    logger
        A structlog logger; default ``tradingd.alerts``.
    time_source
        Returns the time of the event being handled, epoch ns UTC (in a replay: the simulated
        clock, ``lambda: clock.now``). Each alert then carries it as ``replay_time``
        (ISO-8601 ``...Z``) next to the wall-clock ``timestamp`` of the log line. Live, leave it
        out: the event time is the wall-clock time.
    """

    def __init__(self, logger: Any | None = None, *, time_source: Callable[[], int] | None = None) -> None:
        self._log = logger or structlog.get_logger("tradingd.alerts")
        self._time_source = time_source

    def alert(self, severity: str, title: str, text: str, **fields: Any) -> None:
        """Log one alert. Unknown severities are logged as ``warning`` rather than lost."""
        method = severity if severity in SEVERITIES else "warning"
        try:
            if self._time_source is not None:
                fields = {"replay_time": iso(self._time_source()), **fields}
            getattr(self._log, method)(title, alert=True, severity=severity, text=text, **fields)
        except Exception:  # an alert must never take the engine down
            pass


class MemoryAlertSink:
    """Keep alerts in a list (replay summaries and tests read them)."""

    def __init__(self) -> None:
        self.alerts: list[tuple[str, str, str, dict[str, Any]]] = []

    def alert(self, severity: str, title: str, text: str, **fields: Any) -> None:
        self.alerts.append((severity, title, text, fields))


class FanOutAlertSink:
    """Send each alert to several sinks; one failing sink does not stop the others."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def alert(self, severity: str, title: str, text: str, **fields: Any) -> None:
        for sink in self.sinks:
            try:
                sink.alert(severity, title, text, **fields)
            except Exception:
                pass
