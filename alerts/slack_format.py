"""Slack message layout for one alert (pure: no I/O).

Severity emoji and colour, the title as the visible line, the text, the fields as a grid, a
traceback as a code block and the live / replay time in a context line, escaped for Slack's
mrkdwn and clipped to its limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from alerts.sinks import SEVERITIES
from core.time import iso

__all__ = ["format_message", "severity_rank"]

# Severity -> (emoji, attachment colour). Unknown severities look like warnings (as in LogAlertSink).
_STYLE = {"debug": (":mag:", "#9E9E9E"), "info": (":information_source:", "#439FE0"),
          "warning": (":warning:", "#ECB22E"), "error": (":x:", "#E01E5A"),
          "critical": (":rotating_light:", "#8B0000")}
# Fields rendered specially rather than as a "name / value" pair.
_TIME_FIELDS = ("live_time", "replay_time")
_LONG_FIELDS = ("traceback",)
_HIDDEN_FIELDS = ("event",)  # the engine's repr(event): too long for a phone, it is in the log
# Slack's limits: 3000 characters per section text, 2000 per field, 10 fields per section.
_MAX_TEXT = 2900
_MAX_FIELD = 1900
_FIELDS_PER_SECTION = 10
_MAX_TRACEBACK = 2500


def severity_rank(severity: str) -> int:
    """Return 0 (debug) .. 4 (critical); unknown severities rank as warning.

    >>> severity_rank("error") > severity_rank("warning")
    True
    """
    return SEVERITIES.index(severity) if severity in SEVERITIES else SEVERITIES.index("warning")


def _escape(text: str) -> str:
    # Slack mrkdwn treats &, < and > as control characters (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.2f}"
    return str(value)


def format_message(severity: str, title: str, text: str, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the Slack message (a ``chat.postMessage`` / webhook JSON body) for one alert.

    The visible line is the severity emoji and the bold title (also the notification text); a
    colour-coded attachment holds the text, the fields as a two-column grid, a ``traceback``
    field as a code block, and a context line with the severity and the ``live_time`` or
    ``replay_time`` field when given (ISO-8601 text, or epoch ns UTC). Texts are escaped for
    Slack and clipped to its limits.

    Parameters
    ----------
    severity
        ``debug``, ``info``, ``warning``, ``error`` or ``critical`` (others render as warning).
    title, text
        The alert's one-line title and its body.
    fields
        Extra facts (``account``, ``symbol``, ``client_order_id``, ...), rendered in order.

    Returns
    -------
    dict
        ``{"text": ..., "attachments": [{"color": ..., "blocks": [...]}]}``.

    Examples
    --------
    >>> message = format_message("critical", "trading halted", "drawdown 21% >= 20%", {"account": "paper"})
    >>> message["text"]
    ':rotating_light: *trading halted*'
    >>> message["attachments"][0]["color"]
    '#8B0000'
    >>> message["attachments"][0]["blocks"][1]["fields"][0]["text"]
    '*account*\\npaper'
    """
    fields = dict(fields or {})
    known = severity if severity in _STYLE else "warning"
    emoji, colour = _STYLE[known]
    blocks: list[dict[str, Any]] = []
    if text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(_escape(text), _MAX_TEXT)}})
    shown = [(name, value) for name, value in fields.items()
             if name not in _TIME_FIELDS + _LONG_FIELDS + _HIDDEN_FIELDS and value is not None]
    for start in range(0, len(shown), _FIELDS_PER_SECTION):
        chunk = shown[start:start + _FIELDS_PER_SECTION]
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": _clip(f"*{_escape(str(name))}*\n{_escape(_value(value))}", _MAX_FIELD)}
            for name, value in chunk]})
    for name in _LONG_FIELDS:
        if fields.get(name):
            tail = str(fields[name])[-_MAX_TRACEBACK:]  # the end of a traceback names the error
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{_escape(tail)}```"}})
    context = [severity.upper()]
    for name in _TIME_FIELDS:
        moment = fields.get(name)
        if moment is not None:
            context.append(f"{name.replace('_', ' ')} {_iso(moment)}")
    context.append("tradingd")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _escape(" · ".join(context))}]})
    return {"text": f"{emoji} *{_clip(_escape(title), 300)}*", "attachments": [{"color": colour, "blocks": blocks}]}


def _iso(moment: Any) -> str:
    if isinstance(moment, int) and not isinstance(moment, bool):
        return iso(moment)
    return str(moment)
