"""structlog, configured once per process: console rendering for humans, JSON lines for machines."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

_configured = False


def configure_logging(fmt: Literal["console", "json"] = "console", level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger (idempotent: later calls reconfigure).

    Parameters
    ----------
    fmt
        ``"console"`` for coloured key=value lines, ``"json"`` for one JSON object per line
        (journald / log shippers).
    level
        Standard level name.

    Raises
    ------
    ValueError
        For an unknown format or level.
    """
    global _configured
    if fmt not in ("console", "json"):
        raise ValueError(f"log format must be 'console' or 'json', got {fmt!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True)
    _configured = True
