"""The ``tradingd attribution`` command: where a finished run's P&L came from
(:mod:`research.attribution`), by symbol, asset class, regime, time of day, weekday, exit type,
holding period, entry signal strength, strategy and model, plus the positions open at the end and
a beta-adjusted market/alpha split.

``register(app)`` adds it to the CLI. Only typer and rich are imported at module level; pandas,
the store and the research code load when the command runs.

Output in ``--out`` (default ``<run folder>/attribution/``): ``report.html``,
``attribution.json``, ``attribution.csv`` (every dimension's buckets and its open-at-end line),
``attribution_trades.csv`` (every trade with its context) and ``attribution_daily.csv`` (the
factor split per trading day). Exit status 2 for bad input, 1 when the open-at-end P&L from the positions
does not match the equity curve (the files are written, the error says by how much).
"""

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from daemon.cli_common import console, err
from daemon.research_cli import (ConfigOption, DataOption, DbOption, ProgressOption, RunArgument, Steps, bad_input,
                                 interruptible, out_option, register_command, trades_in_context, wrote)

__all__ = ["FILES", "attribution", "register"]

FILES = ("report.html", "attribution.json", "attribution.csv", "attribution_trades.csv", "attribution_daily.csv")


def attribution(
    run: RunArgument,
    out: Annotated[Optional[Path], out_option(FILES, "attribution")] = None,
    data: DataOption = None,
    config: ConfigOption = None,
    db: DbOption = None,
    progress: ProgressOption = True,
) -> None:
    started = time.perf_counter()
    with Steps(6, progress) as steps:
        finished, context, bars, out_dir = trades_in_context(run, config, db, data, out, "attribution", steps)
        from research.attribution import attribute, write_attribution_files
        from research.reports.attribution_page import write_attribution_report

        with interruptible(), bad_input(ValueError):
            steps.step("attribution")
            result = attribute(finished, context, bars)
        steps.step("writing")
        written = write_attribution_files(result, out_dir)
        steps.step("report")
        write_attribution_report(result, finished, out_dir / "report.html")
    _print_summary(result)
    wrote(out_dir, ["report.html", *written], started)
    if not result.reconciled:
        o = result.open_at_end
        err.print(f"[bold red]error:[/] open-at-end P&L from the positions ({o.pnl:,.6f} USD) differs from the equity "
                  f"curve's ({o.from_equity:,.6f} USD) by {o.difference:.3g} USD (> the tolerance {o.tolerance:.3g} "
                  "USD): the run's positions.csv, fills.csv, trades.csv and equity.csv disagree", highlight=False,
                  soft_wrap=True)
        raise typer.Exit(1)


def _print_summary(result: Any) -> None:
    from rich.table import Table

    from research.reports.formatting import fmt_num, fmt_pct, fmt_usd

    o, f = result.open_at_end, result.factor
    console.print(f"P&L attribution of [bold]{escape(result.run_id)}[/]: total {fmt_usd(result.total_pnl)} = closed "
                  f"trades {fmt_usd(result.closed_pnl)} + open at end {fmt_usd(o.pnl)} "
                  f"({'reconciled' if result.reconciled else 'NOT reconciled'}, difference {o.difference:.2g} USD, "
                  f"tolerance {o.tolerance:.2g} USD)",
                  highlight=False, soft_wrap=True)
    console.print(f"Factor split vs {escape(f.benchmark)}: beta {fmt_num(f.beta, 3)} (OLS over {f.days} daily "
                  f"returns), market {fmt_usd(f.market_pnl)}, alpha {fmt_usd(f.alpha_pnl)}", highlight=False,
                  soft_wrap=True)
    table = Table(title="Best and worst bucket per dimension (closed trades)", title_justify="left")
    for column in ("dimension", "buckets", "best", "worst"):
        table.add_column(column)
    for name, buckets in result.dimensions.items():
        if not buckets:
            continue
        best, worst = max(buckets, key=lambda b: b.pnl), min(buckets, key=lambda b: b.pnl)
        if len(buckets) == 1:
            table.add_row(name, "1", f"{escape(best.bucket)}: all", "")
            continue
        table.add_row(name, str(len(buckets)),
                      *(f"{escape(b.bucket)} {fmt_usd(b.pnl)} ({b.trades} trades, {fmt_pct(b.hit_rate, 0)} hit)"
                        for b in (best, worst)))
    console.print(table)
    console.print(f"Holding periods in {escape(result.holding_unit)}.", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``attribution`` to ``app``."""
    register_command(app, "attribution", attribution, (
        "Where a finished run's P&L came from: P&L, trades, hit rate and expectancy by symbol, asset class, regime, "
        "time of day, weekday, exit type, holding period, entry signal strength, strategy and model; the positions "
        "open at the end; and a beta-adjusted market/alpha split vs SPY (or the first symbol). Every dimension "
        "adds up to the run's P&L exactly."))
