"""The readiness report (``tradingd readiness``): the go / no-go decision, the checklist with the
number and the source behind each line, what to run next for every line not yet passed, and how
each line is judged. One self-contained HTML page (no script or style is loaded from anywhere).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from research.readiness import (BREAKERS, FAIL, MAX_OVERFITTING_SCORE, MAX_PAPER_DEVIATION, MIN_SHARPE, PASS, Check,
                                Readiness)
from research.reports.formatting import fmt_num, fmt_pct
from research.reports.page import Section, render_page, write_page

__all__ = ["SECTION_IDS", "format_value", "render_readiness_page", "write_readiness_report"]

SECTION_IDS = ("section-decision", "section-checklist", "section-next", "section-rules")
"""Section anchors in page order."""
_STATUS_STYLE = {PASS: "background:#e3f4e1;color:#1b5e20", FAIL: "background:#fde2e1;color:#b71c1c"}
_UNMEASURED_STYLE = "background:#fff4d6;color:#8a5a00"
_PERCENT = {"walkforward_oos", "paper_agreement", "montecarlo"}  # values that are fractions


def format_value(check: Check) -> str:
    """The value of a line as shown: fractions in percent, scores and ratios with 2 decimals,
    booleans as yes/no, ``"n/a"`` when not measured.

    Examples
    --------
    >>> format_value(Check("walkforward_oos", "x", "pass", 0.1234, "", "", ""))
    '12.34%'
    >>> format_value(Check("benchmark", "x", "fail", False, "", "", "")), format_value(Check("a", "x", "", None, "", "", ""))
    ('no', 'n/a')
    """
    value = check.value
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return fmt_pct(value) if check.id in _PERCENT else fmt_num(value)
    return str(value)


def _status(status: str) -> str:
    style = _STATUS_STYLE.get(status, _UNMEASURED_STYLE)
    return f'<td class="status" style="{style};font-weight:600;white-space:nowrap">{html.escape(status)}</td>'


def _checklist(readiness: Readiness) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("#", "Check", "Status", "Value", "Threshold", "Source",
                                                          "Detail"))
    rows = []
    for n, check in enumerate(readiness.checks, start=1):
        rows.append(f'<tr data-id="{html.escape(check.id)}" data-status="{html.escape(check.status)}">'
                    f'<td class="num">{n}</td><td>{html.escape(check.name)}</td>{_status(check.status)}'
                    f'<td class="num">{html.escape(format_value(check))}</td><td>{html.escape(check.threshold)}</td>'
                    f"<td><code>{html.escape(check.source or '-')}</code></td><td>{html.escape(check.detail)}</td></tr>")
    return f'<table id="checklist"><thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody></table>"


def _decision(readiness: Readiness) -> str:
    go = readiness.decision == "go"
    style = _STATUS_STYLE[PASS if go else FAIL]
    passed = sum(c.status == PASS for c in readiness.checks)
    failed = sum(c.status == FAIL for c in readiness.checks)
    unmeasured = len(readiness.checks) - passed - failed
    body = (f'<p id="decision" style="{style};display:inline-block;padding:8px 18px;font-size:160%;'
            f'font-weight:700;border-radius:4px">{"GO" if go else "NO-GO"}</p>\n'
            f'<p>{passed} of {len(readiness.checks)} lines pass, {failed} fail, {unmeasured} not yet measured. '
            "Go only when every line passes.</p>\n")
    if readiness.reasons:
        items = "".join(f"<li>{html.escape(r)}</li>" for r in readiness.reasons)
        body += f'<ul id="reasons">{items}</ul>'
    return body


def _next_steps(readiness: Readiness) -> str:
    items = [f"<li><b>{html.escape(c.name)}</b> ({html.escape(c.status)}): {html.escape(c.detail)}</li>"
             for c in readiness.checks if c.status != PASS]
    if not items:
        return '<p id="next-steps">Nothing: every line passes.</p>'
    return f'<ul id="next-steps">{"".join(items)}</ul>'


def _rules() -> str:
    rules = [
        ("Backtest Sharpe > 1", f"strategy.sharpe of the run's metrics.json (annualised from daily returns, Sharpe "
                                f"1994) above {MIN_SHARPE:.2f}."),
        ("Walk-forward out-of-sample positive", "the stitched out-of-sample total return of walkforward.json "
                                                "(tradingd walkforward --out DIR) above 0."),
        ("No significant overfitting", f"the 0-100 overfitting score (degradation, PBO, DSR, parameters per trade, "
                                       f"trade count, period concentration) below {MAX_OVERFITTING_SCORE:.0f}; "
                                       "from walkforward.json and/or an optimize folder's statistics.json (the worst "
                                       "counts)."),
        ("Robustness passed", "passed of <run>/robustness/robustness.json (tradingd robustness RUN)."),
        ("Benchmark comparison favourable", "favourable of <run>/benchmark/benchmark.json (tradingd benchmark RUN)."),
        ("Monte Carlo risk acceptable", "acceptable of <run>/montecarlo/montecarlo.json (tradingd montecarlo RUN); "
                                        "the value shown is the risk of ruin, or the daily-bootstrap 95th-percentile "
                                        "max drawdown when that is what fails."),
        ("Circuit breakers exercised", "each of " + ", ".join(f"{k} ({v})" for k, v in BREAKERS.items())
         + " tripped at least once in the replay or in a live or paper session of the strategy."),
        ("Paper-trading days", "distinct UTC days with equity data in paper sessions of the strategy (state "
                               "database)."),
        ("Paper vs backtest agreement", "the run's settings replayed on the bars the paper sessions saw; "
                                        "|paper P&L - backtest P&L| / |backtest P&L| at most "
                                        f"{MAX_PAPER_DEVIATION:.0%} (P&Ls below 0.1% of equity compare on that "
                                        "scale)."),
    ]
    rows = "".join(f"<tr><th>{html.escape(name)}</th><td>{html.escape(text)}</td></tr>" for name, text in rules)
    return (f'<table id="rules">{rows}</table><p class="muted">A line whose evidence is missing is "not yet '
            'measured", with the command that measures it. The thresholds are this project\'s conventions.</p>')


def render_readiness_page(readiness: Readiness, title: str | None = None) -> str:
    """Return the readiness report as a complete HTML document.

    Sections (``<section id=...>``, in :data:`SECTION_IDS` order): Decision (``id="decision"``,
    ``id="reasons"``), Checklist (``id="checklist"``, one row per line with ``data-id`` and
    ``data-status``), Next steps (``id="next-steps"``) and How each line is judged (``id="rules"``).
    All text is HTML-escaped.
    """
    who = f"{readiness.strategy or 'strategy'}" + (f", run {readiness.run_id}" if readiness.run_id else "")
    sections = [
        Section(SECTION_IDS[0], "Decision", _decision(readiness)),
        Section(SECTION_IDS[1], "Checklist", '<div class="wide">' + _checklist(readiness) + "</div>"),
        Section(SECTION_IDS[2], "Next steps", _next_steps(readiness)),
        Section(SECTION_IDS[3], "How each line is judged", _rules()),
    ]
    return render_page(title or f"tradingd readiness: {who}", f"Production checklist of {who}: "
                       f"{readiness.decision}", "", sections)


def write_readiness_report(readiness: Readiness, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write :func:`render_readiness_page` to ``path`` (via a temporary file, moved into place
    whole) and return the path.

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    return write_page(path, render_readiness_page(readiness, title))
