"""The ``tradingd montecarlo RUN`` command: Monte Carlo analysis of a finished replay
(:mod:`research.monte_carlo`): trade-order shuffle and bootstrap of trade returns, circular block
bootstrap of daily returns, entry/exit price noise and optional re-replays with higher costs.

``register(app)`` adds it to the CLI. Like every command it imports only typer and rich at import
time; numpy, pandas and the replay machinery load when it runs.

Output in ``--out`` (default ``<run folder>/montecarlo/``): ``report.html``, ``montecarlo.json``,
``paths_quantiles.csv`` and ``simulations.csv``.
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from daemon.cli_common import console
from daemon.cli_common import fail as _fail
from daemon.research_cli import (ConfigOption, Counter, DbOption, ProgressOption, RunArgument, bad_input, find_run,
                                 interruptible, out_folder, out_option, register_command, wrote)

if TYPE_CHECKING:
    from research.monte_carlo import MonteCarloResult

FILES = ("report.html", "montecarlo.json", "paths_quantiles.csv", "simulations.csv")


def montecarlo(
    run: RunArgument,
    sims: Annotated[int, typer.Option(
        metavar="N", help="Simulations per method; below 100 the verdict is \"not acceptable: not enough "
                          "simulations\".")] = 5000,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of numpy's default_rng: same seed, same numbers.")] = 7,
    ruin: Annotated[float, typer.Option(
        metavar="FRACTION", help="Loss of starting equity that counts as ruin (0.5 = equity halves at some "
                                 "point).")] = 0.5,
    noise_bps: Annotated[float, typer.Option(
        "--noise-bps", metavar="BPS", help="Standard deviation of the noise added to each entry and exit price.")] = 5.0,
    block_days: Annotated[int, typer.Option(
        "--block-days", metavar="DAYS", help="Block length of the circular block bootstrap of daily returns.")] = 20,
    cost_replays: Annotated[int, typer.Option(
        "--cost-replays", metavar="N", help="Re-replay the run N times with slippage and commission x U(1, 3) "
                                            "(slow; 0 skips).")] = 0,
    jobs: Annotated[int, typer.Option(metavar="N", help="Cost replays at a time (worker processes).")] = 1,
    out: Annotated[Optional[Path], out_option(FILES, "montecarlo")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    progress: ProgressOption = True,
) -> None:
    from daemon.run_source import default_out_dir
    from research.finished_run import RunLoadError
    from research.monte_carlo import MonteCarloError, run_monte_carlo

    started = time.perf_counter()
    # the numbers first: a typo should not wait for the database
    checks = [(sims >= 1, f"--sims {sims}: must be 1 or more"),
              (0 < ruin <= 1, f"--ruin {ruin}: must be a loss fraction in (0, 1], e.g. 0.5 for losing half"),
              (noise_bps >= 0, f"--noise-bps {noise_bps}: must be 0 or more"),
              (block_days >= 1, f"--block-days {block_days}: must be 1 or more"),
              (cost_replays >= 0, f"--cost-replays {cost_replays}: must be 0 or more"),
              (jobs >= 1, f"--jobs {jobs}: must be 1 or more")]
    for ok, message in checks:
        if not ok:
            _fail(message)
    with bad_input():
        finished = find_run(run, config, db, "montecarlo", trades=2)
    out_dir = out_folder(out, default_out_dir(finished, "montecarlo"))
    console.print(f"Monte Carlo of run [bold]{escape(finished.run_id)}[/] ({escape(finished.strategy)}, "
                  f"{len(finished.trades)} trades): {sims:,} simulations per method, seed {seed}"
                  + (f", {cost_replays} cost replays" if cost_replays else ""), highlight=False, soft_wrap=True)
    computing = time.perf_counter()
    try:
        with interruptible(), Counter("cost replays", cost_replays, progress and cost_replays > 0) as bar:
            result = run_monte_carlo(finished, sims=sims, seed=seed, ruin=ruin, noise_bps=noise_bps,
                                     block_days=block_days, n_cost_replays=cost_replays, jobs=jobs,
                                     progress=lambda done, _total: bar.update(done))
    except (MonteCarloError, RunLoadError) as exc:
        _fail(str(exc))
    except ValueError as exc:  # bar data of a cost replay that no longer loads (backtest.sources.DataError)
        _fail(f"run {finished.run_id}: {exc}")
    elapsed = time.perf_counter() - computing
    written = _write(result, out_dir)
    _print(result, elapsed)
    wrote(out_dir, written, started)


def _write(result: "MonteCarloResult", out_dir: Path) -> list[str]:
    from research.monte_carlo import write_monte_carlo_outputs
    from research.reports.monte_carlo_page import write_monte_carlo_report

    written = write_monte_carlo_outputs(result, out_dir)
    write_monte_carlo_report(result, out_dir)
    return ["report.html", *written]


def _print(result: "MonteCarloResult", elapsed: float) -> None:
    from rich.table import Table

    from research.monte_carlo import LOWER_BOUNDS, TRADE_METHODS, quantiles
    from research.reports.formatting import fmt_num, fmt_pct
    from research.reports.monte_carlo_page import LABELS

    def fmt(value: float | None, percent: bool) -> str:
        return fmt_pct(value, 1) if percent else fmt_num(value)

    outcomes = (("total_return", "total return", True), ("max_drawdown", "max drawdown", True),
                ("sharpe", "Sharpe", False))
    table = Table(title="Outcomes: median [90% interval: p5, p95]; actual: the run's own value on the same basis",
                  title_justify="left")
    table.add_column("method")
    table.add_column("basis")
    for _, header, _ in outcomes:
        table.add_column(header, justify="right")
        table.add_column("actual", justify="right", style="dim")
    for name, s in result.simulations.items():
        actual = result.actual_for(name)
        cells = [LABELS[name], "trades" if name in TRADE_METHODS else "days"]
        for key, _, percent in outcomes:
            q = quantiles(getattr(s, key))
            cells += [f"{fmt(q['p50'], percent)} [{fmt(q['p5'], percent)}, {fmt(q['p95'], percent)}]",
                      fmt(actual[key], percent)]
        table.add_row(*cells)
    console.print(table)
    console.print(f"Basis trades: the closed trades' returns on account compounded (Sharpe per trade x "
                  f"sqrt({result.trades_per_year:.1f} trades a year)); days: the daily equity (Sharpe of daily "
                  f"returns x sqrt({result.days_per_year:.1f} days a year)); the two Sharpes are not comparable.",
                  highlight=False, soft_wrap=True)
    ruin, method = result.risk_of_ruin()
    console.print(f"Risk of ruin (losing {result.ruin:.0%} at some point): {fmt_pct(ruin)} ({LABELS[method]})",
                  highlight=False)
    probs, limits = result.breaker_probabilities(), result.limits
    trips = [f"{name} {'at least ' if name in LOWER_BOUNDS and probs[name] is not None else ''}{fmt_pct(probs[name])} "
             f"(limit {limit})" for name, limit in (
                 ("max_drawdown", fmt_pct(limits["max_drawdown"])),
                 ("daily_loss", fmt_pct(limits["daily_loss_limit"])),
                 ("consecutive_losses", "n/a" if limits["max_consecutive_losses"] is None
                  else f"{limits['max_consecutive_losses']:g}"))]
    console.print("Circuit-breaker trip probability: " + "; ".join(trips), highlight=False, soft_wrap=True)
    console.print("  (max_drawdown and daily_loss are lower bounds: the daily bootstrap sees close-to-close UTC daily "
                  "returns, the breakers trip intraday against the high-water mark and the day's start equity)",
                  highlight=False, soft_wrap=True, style="dim")
    ok, reason = result.verdict()
    console.print(f"[{'green' if ok else 'red'}]{escape(reason)}[/]", highlight=False, soft_wrap=True)
    console.print(f"{result.sims:,} simulations x {len(result.simulations)} methods in {elapsed:.2f} s",
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``montecarlo`` to ``app``."""
    register_command(app, "montecarlo", montecarlo, (
        "Monte Carlo analysis of a finished run: trade-order shuffle and bootstrap of trade returns, circular "
        "block bootstrap of daily returns, entry/exit price noise and optional cost re-replays; percentiles, "
        "risk of ruin, circuit-breaker trip probabilities and a fan-chart report."))


__all__ = ["FILES", "montecarlo", "register"]
