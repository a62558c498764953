"""The ``tradingd journal`` command: the trade journal of a finished run
(:mod:`research.trade_journal`): every trade with its context, winners against losers, the
features that separate them, a monthly journal and adjustments to test, stated as hypotheses.

``register(app)`` adds it to the CLI. Only typer and rich are imported at module level; pandas,
the store and the research code load when the command runs.

Output in ``--out`` (default ``<run folder>/journal/``): ``report.html``, ``journal.csv`` (the
trades with their context), ``journal.json`` and ``journal.md`` (the text journal). ``--month
YYYY-MM`` narrows everything to the trades closed in that month (UTC). Exit status 2 for bad
input (unknown run, a run without trades, a malformed month or one outside the run).
"""

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from daemon.cli_common import console
from daemon.research_cli import (ConfigOption, DataOption, DbOption, ProgressOption, RunArgument, Steps, bad_input,
                                 interruptible, out_option, register_command, trades_in_context, wrote)

__all__ = ["FILES", "journal", "register"]

FILES = ("report.html", "journal.csv", "journal.json", "journal.md")


def journal(
    run: RunArgument,
    month: Annotated[Optional[str], typer.Option(
        "--month", "-m", metavar="YYYY-MM", show_default=False,
        help="Only the trades closed in this calendar month (UTC), e.g. 2020-03. Default: the whole run.")] = None,
    out: Annotated[Optional[Path], out_option(FILES, "journal")] = None,
    data: DataOption = None,
    config: ConfigOption = None,
    db: DbOption = None,
    progress: ProgressOption = True,
) -> None:
    from research.trade_journal import parse_month

    started = time.perf_counter()

    def check(finished: Any) -> None:  # a bad month is refused before the bars load
        if month is not None:
            parse_month(month, finished.equity)

    with Steps(5, progress) as steps:
        finished, context, _, out_dir = trades_in_context(run, config, db, data, out, "journal", steps, check)
        from research.reports.journal_page import write_journal_report
        from research.trade_journal import build_journal, write_journal_files

        with interruptible(), bad_input(ValueError):
            steps.step("journal")
            result = build_journal(finished, context, month)
        steps.step("writing")
        written = write_journal_files(result, out_dir)
        write_journal_report(result, finished, out_dir / "report.html")
    _print_summary(result)
    wrote(out_dir, ["report.html", *written], started)


def _print_summary(result: Any) -> None:
    from research.reports.formatting import fmt_usd

    trades = result.trades
    closed = float(trades["pnl"].astype(float).sum()) if len(trades) else 0.0
    scope = f" in {result.month}" if result.month else ""
    console.print(f"Trade journal of [bold]{escape(result.run_id)}[/]{escape(scope)}: {len(trades)} trades, "
                  f"{result.winners} winners, {result.losers} losers, closed P&L {fmt_usd(closed)}",
                  highlight=False, soft_wrap=True)
    console.print(escape(result.evidence), highlight=False, soft_wrap=True)
    summary = result.month_summary
    if summary is not None:
        for note in summary.stood_out:
            console.print(f"  - {escape(note)}", highlight=False, soft_wrap=True)
    if result.patterns:
        console.print("Patterns that separate winners from losers (strongest first):", highlight=False)
        for pattern in result.patterns[:5]:
            console.print(f"  {escape(pattern.label)}: {escape(pattern.summary)} [{pattern.evidence}]",
                          highlight=False, soft_wrap=True)
    if result.hypotheses:
        console.print("Hypotheses to test (not promises):", highlight=False)
        for hypothesis in result.hypotheses[:5]:
            console.print(f"  - {escape(hypothesis.finding)} -> {escape(hypothesis.test)}", highlight=False,
                          soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``journal`` to ``app``."""
    register_command(app, "journal", journal, (
        "The trade journal of a finished run: every trade with its entry context (signal strength, regime, "
        "volatility, market trend) and path (MAE, MFE, holding period), winners against losers, the features "
        "that separate them (Mann-Whitney U, chi-square), a monthly journal (--month) and adjustments to test, "
        "stated as hypotheses."))
