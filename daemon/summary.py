"""The replay's console summary: metrics vs the benchmark, exposure, costs, the trading-state
history (breaker trips with their replay time and reason, aggregated when there are many), time
spent REDUCING/HALTED, and the alerts raised. Times are replay time, UTC."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd

    from daemon.replay_job import ReplayOutcome

__all__ = ["MAX_LISTED_CHANGES", "print_summary", "reason_template"]

MAX_LISTED_CHANGES = 10
"""Up to this many trading-state changes are printed one per line; more are aggregated."""
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_REASON_WIDTH = 100


def reason_template(reason: str) -> str:
    """Return ``reason`` with its numbers replaced by ``#``, so repeated trips of one rule group.

    Examples
    --------
    >>> reason_template("daily loss 5.20% >= daily_loss_limit 5.00% (equity 94,800.00 USD)")
    'daily loss #% >= daily_loss_limit #% (equity # USD)'
    """
    return _NUMBER.sub("#", reason)


def _short(text: str) -> str:
    return text if len(text) <= _REASON_WIDTH else text[: _REASON_WIDTH - 1] + "…"


def _years(days: float) -> str:
    return f"{days / 365.25:.1f} years" if days >= 365.25 else f"{days:,.1f} days"


def _print_state_history(console: Console, outcome: ReplayOutcome) -> None:
    from research.reports.formatting import fmt_time

    summary = outcome.summary
    state = summary.state
    if state is None:
        return
    changes = state.changes
    where = (f"every one in {summary.out_dir / 'breakers.csv'}" if summary.out_dir is not None and summary.files
             else "breakers.csv not written")
    if len(changes) == 0:
        console.print(f"Trading state: {state.final.value} throughout (no breaker tripped).", highlight=False)
    else:
        console.print(f"Trading-state changes: {len(changes)} (replay time, UTC; {escape(where)}):", highlight=False)
    if 0 < len(changes) <= MAX_LISTED_CHANGES:
        for time, previous, current, reason in changes.itertuples(index=False):
            console.print(f"  {fmt_time(time)}  {previous} -> {current}  {escape(_short(reason))}", highlight=False)
    elif len(changes) > MAX_LISTED_CHANGES:
        groups: dict[tuple[str, str, str], list[tuple[pd.Timestamp, str]]] = {}
        for time, previous, current, reason in changes.itertuples(index=False):
            groups.setdefault((previous, current, reason_template(reason)), []).append((time, reason))
        for (previous, current, _), seen in groups.items():  # in order of first occurrence
            example = escape(_short(seen[0][1]))
            when = (f"at {fmt_time(seen[0][0])}" if len(seen) == 1
                    else f"first {fmt_time(seen[0][0])}, last {fmt_time(seen[-1][0])}")
            console.print(f"  {previous} -> {current} x {len(seen)} ({example}), {when}", highlight=False)
    spent = [(name, value) for name, value in state.time_in.items() if value.total_seconds() > 0]
    if spent:
        span = state.span.total_seconds()
        parts = [f"{name} {_years(value.total_seconds() / 86_400)}"
                 + (f" ({value.total_seconds() / span:.1%} of the run)" if span > 0 else "") for name, value in spent]
        console.print("Time spent " + ", ".join(parts) + ".", highlight=False)
    if state.since is not None:
        flat_days = (summary.metrics.end - state.since).total_seconds() / 86_400
        colour = "red" if state.final.value == "halted" else "yellow"
        console.print(
            f"[{colour}]Ended {state.final.value.upper()}[/] since {fmt_time(state.since)} UTC "
            f"({escape(_short(state.reason))}): the last {_years(flat_days)} of the run were spent in that state; "
            "CAGR, Sharpe and the other ratios above average over that period too.", highlight=False)


def print_summary(console: Console, outcome: ReplayOutcome) -> None:
    """Print the summary of a finished replay job to ``console``.

    Prints, in order: the metrics table (strategy vs the benchmark, same numbers as
    metrics.json), the benchmark's rule and both average exposures, total costs, throughput and
    final trading state, every trading-state change with its replay time and reason (one line
    each up to :data:`MAX_LISTED_CHANGES`, else one line per transition and rule with a count and
    the first and last time), time spent REDUCING/HALTED, a note when the run ended in a
    non-ACTIVE state, and the alerts (counted by severity and title; error texts in full).

    Parameters
    ----------
    console : rich.console.Console
        Where to print.
    outcome : daemon.replay_job.ReplayOutcome
        The finished job (its ``result``, ``summary`` and ``alerts``).
    """
    from research.reports.formatting import fmt_pct, fmt_usd
    from research.reports.tables import format_metrics_table

    result, summary = outcome.result, outcome.summary
    has_benchmark = summary.benchmark is not None
    versus = f" vs {summary.benchmark_label}" if has_benchmark else ""
    table = Table(title=f"{result.strategy_id}{versus} ({', '.join(result.symbols)})")
    table.add_column("metric")
    table.add_column("strategy", justify="right")
    if has_benchmark:
        table.add_column(summary.benchmark_label, justify="right")
    for label, ours, theirs in format_metrics_table(summary.metrics, summary.benchmark):
        table.add_row(label, ours, *((theirs,) if has_benchmark else ()))
    console.print(table)
    ours = fmt_pct(summary.metrics.exposure, 1)
    if summary.benchmark is not None:
        console.print(f"Benchmark: {escape(summary.benchmark_label)}: {escape(summary.benchmark_rule)}. Average "
                      f"exposure: strategy {ours}, benchmark {fmt_pct(summary.benchmark.exposure, 1)}.",
                      highlight=False)
    else:
        console.print(f"No benchmark (--benchmark none). Average exposure of the strategy {ours}.", highlight=False)
    costs = summary.costs
    share = costs.total / summary.metrics.starting_equity if summary.metrics.starting_equity else None
    console.print(f"Costs: commission {fmt_usd(costs.commission)}, slippage {fmt_usd(costs.slippage)}, total "
                  f"{fmt_usd(costs.total)} ({fmt_pct(share)} of starting equity) over {costs.fills:,} fills; "
                  "equity and P&L are net of them.", highlight=False)
    console.print(f"{result.bars:,} bars in {result.elapsed_s:.2f} s ({result.bars_per_second:,.0f} bars/s); "
                  f"trading state {result.trading_state.value}"
                  + ("" if result.strategy_enabled else "; [red]strategy was disabled after an error[/]"))
    _print_state_history(console, outcome)
    counts: dict[tuple[str, str], int] = {}
    for severity, title, _text, _ in outcome.alerts.alerts:
        counts[(severity, title)] = counts.get((severity, title), 0) + 1
    for (severity, title), n in sorted(counts.items()):
        colour = "red" if severity in ("error", "critical") else "yellow"
        console.print(f"[{colour}]{severity}[/] {escape(title)}" + (f" (x{n})" if n > 1 else ""))
    for severity, title, text, _ in outcome.alerts.alerts:
        if severity in ("error", "critical"):
            console.print(f"  {escape(title)}: {escape(text)}", highlight=False)
