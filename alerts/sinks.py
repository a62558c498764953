"""Alert sinks (the :class:`core.ports.AlertSink` port). A sink never blocks or raises into the engine."""

from __future__ import annotations

from typing import Any

import structlog

SEVERITIES = ("debug", "info", "warning", "error", "critical")


class LogAlertSink:
    """Write alerts as structured log events (``alert=True`` so they can be filtered)."""

    def __init__(self, logger: Any | None = None) -> None:
        self._log = logger or structlog.get_logger("tradingd.alerts")

    def alert(self, severity: str, title: str, text: str, **fields: Any) -> None:
        """Log one alert. Unknown severities are logged as ``warning`` rather than lost."""
        method = severity if severity in SEVERITIES else "warning"
        try:
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
