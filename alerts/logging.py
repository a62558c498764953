"""Logging for the whole process, configured once: tradingd's structlog events and the standard
library's loggers (alembic, SQLAlchemy, ...) go through one handler and look alike, as coloured
``key=value`` lines for people (``console``) or one JSON object per line (``json``).

* **Where lines go.** To stderr; while :func:`log_to_console` is active, through that rich
  console instead, so a live progress bar on it is redrawn below each line rather than
  overwritten by it. Lines are never wrapped (a JSON line stays one line).
* **Levels.** ``level`` applies to tradingd's own loggers. Third-party loggers print WARNING and
  above unless ``level`` is DEBUG: their INFO lines (alembic's "Context impl SQLiteImpl", "Will
  assume transactional DDL") are chatter for an operator.
* **Repeats.** Inside :func:`collapse_repeats` (a replay) only the first line of each kind
  (logger, level, event) is printed; when the block ends, one line per repeated kind gives the
  count and the first and last ``replay_time``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import structlog

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["OWN_LOGGERS", "collapse_repeats", "configure_logging", "log_to_console", "redact_in_logs"]

OWN_LOGGERS = "tradingd"
"""Prefix of tradingd's own logger names; every other logger is third-party."""
_THIRD_PARTY_FLOOR = logging.WARNING
_SECRETS: set[str] = set()  # values no log line may contain (API keys): replaced by "***"


def redact_in_logs(*values: str) -> None:
    """Never print these values (API keys, tokens) in any log line of this process, whoever logs
    them (tradingd or a third-party library): they are replaced by ``***`` when a line is rendered.
    Values shorter than 6 characters are ignored (they would mangle ordinary text)."""
    _SECRETS.update(v for v in values if v and len(v) >= 6)


def _redact(line: str) -> str:
    for secret in _SECRETS:
        if secret in line:
            line = line.replace(secret, "***")
    return line


class _Output(logging.Handler):
    """The process's one log handler: renders a record and writes it to stderr or a rich console."""

    def __init__(self, level: int, colors: bool) -> None:
        super().__init__()
        self.threshold = level
        self.colors = colors
        self.console: Console | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == OWN_LOGGERS or record.name.startswith(OWN_LOGGERS + ".")
        floor = self.threshold if own or self.threshold <= logging.DEBUG else max(self.threshold, _THIRD_PARTY_FLOOR)
        return record.levelno >= floor and bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if _SECRETS:
                line = _redact(line)
            console = self.console
            if console is not None:
                from rich.text import Text

                console.print(Text.from_ansi(line) if self.colors else Text(line), soft_wrap=True, highlight=False)
            else:
                stream = sys.stderr  # looked up now: pytest and rich swap it
                stream.write(line + "\n")
                stream.flush()
        except Exception:  # logging must never take the caller down
            self.handleError(record)


class _Repeats(logging.Filter):
    """Let the first record of each (logger, level, event) through; count the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[tuple[str, int, str], list[Any]] = {}  # key -> [count, first fields, last fields]

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.msg if isinstance(record.msg, dict) else {}
        event = str(fields.get("event", "")) if fields else str(record.msg)
        key = (record.name, record.levelno, event)
        entry = self.seen.get(key)
        if entry is None:
            self.seen[key] = [1, fields, fields]
            return True
        entry[0] += 1
        entry[2] = fields
        return False


def _handler() -> _Output | None:
    return next((h for h in logging.getLogger().handlers if isinstance(h, _Output)), None)


def _replay_time_first(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # The console renderer prints fields in insertion order: the replay time right after the event.
    if "replay_time" in event_dict:
        return {"replay_time": event_dict.pop("replay_time"), **event_dict}
    return event_dict


def configure_logging(fmt: Literal["console", "json"] = "console", level: str = "INFO") -> None:
    """Configure structlog and the standard library's root logger (later calls reconfigure).

    Parameters
    ----------
    fmt
        ``"console"`` for ``key=value`` lines (coloured on a terminal), ``"json"`` for one JSON
        object per line (journald / log shippers), for tradingd's and third-party loggers alike.
    level
        Standard level name for tradingd's loggers; third-party loggers print WARNING and above
        unless it is DEBUG.

    Raises
    ------
    ValueError
        For an unknown format or level.
    """
    if fmt not in ("console", "json"):
        raise ValueError(f"log format must be 'console' or 'json', got {fmt!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    colors = fmt == "console" and sys.stderr.isatty()
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        finish: list[Any] = [structlog.processors.format_exc_info, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=colors, sort_keys=False)
        finish = [_replay_time_first, renderer]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.stdlib.add_logger_name, stamp,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    handler = _Output(numeric, colors)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, stamp],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *finish],
    ))
    root = logging.getLogger()
    previous = _handler()
    if previous is not None:
        root.removeHandler(previous)
        handler.console = previous.console
    root.addHandler(handler)
    root.setLevel(numeric)


@contextmanager
def log_to_console(console: Console) -> Iterator[None]:
    """Within the block, write log lines through ``console`` (use the console a live progress
    bar draws on: rich then prints each line above the bar). A no-op before
    :func:`configure_logging`."""
    handler = _handler()
    if handler is None:
        yield
        return
    before, handler.console = handler.console, console
    try:
        yield
    finally:
        handler.console = before


@contextmanager
def collapse_repeats() -> Iterator[dict[tuple[str, int, str], int]]:
    """Within the block, print only the first log line of each (logger, level, event); at its
    end, log one line per repeated kind with ``count`` (all occurrences) and the first and last
    ``replay_time`` when the lines carried one. Yields the live counts, keyed by (logger name,
    level number, event). A no-op before :func:`configure_logging`."""
    handler = _handler()
    repeats = _Repeats()
    counts: dict[tuple[str, int, str], int] = {}
    if handler is not None:
        handler.addFilter(repeats)
    try:
        yield counts
    finally:
        if handler is not None:
            handler.removeFilter(repeats)
        for (name, levelno, event), (count, first, last) in repeats.seen.items():
            counts[(name, levelno, event)] = count
            if count < 2:
                continue
            times = {key: fields["replay_time"] for key, fields in (("first_replay_time", first),
                                                                    ("last_replay_time", last))
                     if "replay_time" in fields}
            structlog.get_logger(name).log(levelno, f"{event} (repeated)", count=count, **times)
