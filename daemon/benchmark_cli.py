"""The ``tradingd benchmark`` command: a finished run against passive benchmarks
(:mod:`research.benchmark_compare`).

``register(app)`` adds it to the CLI. Like every command it imports only typer and rich at import
time; pandas, the data loader and the store load when it runs.

Output in ``--out`` (default ``<run folder>/benchmark/``): ``report.html``, ``benchmark.json``,
``benchmark_equity.csv`` and ``monthly_returns.csv``.
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from daemon.cli_common import console
from daemon.cli_common import fail as _fail
from daemon.cli_common import warn as _warn
from daemon.research_cli import (ConfigOption, DbOption, ProgressOption, RunArgument, Steps, bad_input, find_run,
                                 interruptible, out_folder, out_option, register_command, wrote)

if TYPE_CHECKING:
    import pandas as pd

    from research.benchmark_compare import Comparison
    from research.finished_run import FinishedRun

FILES = ("report.html", "benchmark.json", "benchmark_equity.csv", "monthly_returns.csv")
BUNDLED_BOND = Path(__file__).resolve().parents[1] / "data" / "us_equity_daily_adjusted" / "IEF.csv.gz"
"""The bond series used when ``--bond IEF`` (the default) is not in the run's data or ``--data``."""
DEFAULT_MOMENTUM_TOP = 2
"""Symbols the momentum benchmark holds without ``--momentum-top`` (fewer when the run has fewer)."""
_BAR_SUFFIXES = (".csv", ".gz", ".parquet")


def _closes(series: Any) -> "pd.Series":
    """A BarSeries' closes stamped when known (bar end, UTC)."""
    import pandas as pd

    return pd.Series(series.close, index=pd.to_datetime(series.ts_init, unit="ns", utc=True), name=series.symbol)


def _load_file(path: Path, option: str) -> tuple[str, "pd.Series"]:
    """(symbol, closes) of a bar file of any timeframe."""
    from backtest.sources import DataError, load_bars

    if not path.is_file():
        _fail(f"{option} {path}: no such file")
    try:
        series = load_bars(path)
    except (DataError, OSError, ValueError) as exc:
        _fail(f"{option} {path}: {exc}")
    if not len(series):
        _fail(f"{option} {path}: the file has no bars")
    return series.symbol, _closes(series)


def _run_closes(run: "FinishedRun", stand_ins: list[Path]) -> tuple[dict[str, "pd.Series"], bool]:
    """The run's closes from its data files (or, when those are gone, the ``--data`` files of
    its symbols), from the files' first bar (the momentum's formation period before the run)
    through the run's end; and whether the stand-ins were used."""
    import dataclasses

    from backtest.sources import DataError
    from research.finished_run import RunLoadError, load_run_bars

    window = dict(run.run_info.get("data") or {})
    warm = dataclasses.replace(run, run_info={**run.run_info, "data": {**window, "start": None}})
    recorded = [str(p) for p in run.run_info.get("data_files") or []]
    gone = not recorded or not all(Path(p).is_file() for p in recorded)
    use = gone and bool(stand_ins)
    try:
        bars = load_run_bars(warm, stand_ins if use else None)
    except (RunLoadError, DataError, ValueError) as exc:
        _fail(str(exc))
    return {s.symbol: _closes(s) for s in bars if len(s)}, use


def _bond(name: str, available: dict[str, "pd.Series"]) -> tuple[str, "pd.Series"]:
    """The bond series ``--bond`` names: a bar file, a symbol of the data, or the bundled IEF."""
    from research.benchmark import BenchmarkError
    from research.benchmark_compare import find_symbol

    path = Path(name)
    if "/" in name or name.lower().endswith(_BAR_SUFFIXES):
        return _load_file(path, "--bond")
    try:
        symbol = find_symbol(name, available, "--bond")
        return symbol, available[symbol]
    except BenchmarkError as exc:
        if name.strip().upper() != BUNDLED_BOND.name.split(".")[0]:
            _fail(f"{exc}, or give the bond's bar file: --bond FILE")
    if not BUNDLED_BOND.is_file():
        _fail(f"--bond {name}: not in the run's data or --data, and the bundled bond file {BUNDLED_BOND} is missing; "
              "pass the bond's bars with --data FILE or --bond FILE")
    return _load_file(BUNDLED_BOND, "--bond")


def benchmark(
    run_arg: RunArgument,
    symbol: Annotated[str, typer.Option(
        "--benchmark", metavar="SYMBOL",
        help="Symbol to buy and hold (the primary benchmark, and the 60% of 60/40); from the run's data or --data.")]
    = "SPY",
    bond: Annotated[str, typer.Option(
        "--bond", metavar="SYMBOL|FILE",
        help="The 40% of 60/40: a symbol of the run's data or --data, or a bar file. IEF defaults to the bundled "
             "daily IEF (2007-2013; its share is cash before, held flat after).")] = "IEF",
    data: Annotated[Optional[list[Path]], typer.Option(
        "--data", "-d", metavar="FILE", show_default=False,
        help="More bar files (any timeframe) for a benchmark or bond series not in the run's data; repeatable.")]
    = None,
    momentum_top: Annotated[Optional[int], typer.Option(
        "--momentum-top", metavar="N", show_default=False,
        help="Symbols the momentum benchmark holds each month (best trailing 12-1 month return). Default 2, or "
             "the run's number of symbols when it has fewer.")] = None,
    out: Annotated[Optional[Path], out_option(FILES, "benchmark")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    progress: ProgressOption = True,
) -> None:
    from daemon.run_source import default_out_dir
    from research.benchmark_compare import write_comparison_files
    from research.reports.benchmark_page import write_benchmark_report

    started = time.perf_counter()
    with bad_input():
        run = find_run(run_arg, config, db)
    out_dir = out_folder(out, default_out_dir(run, "benchmark"))
    for path in data or []:
        if not path.is_file():
            _fail(f"--data {path}: no such file")
    if momentum_top is not None and momentum_top < 1:
        _fail(f"--momentum-top {momentum_top}: must be 1 or more")
    with Steps(4, progress) as steps:
        with interruptible():
            comparison = _compute(run, symbol, bond, data or [], momentum_top, steps)
        steps.step("write the files and report")
        written = write_comparison_files(comparison, out_dir)
        write_benchmark_report(comparison, out_dir / "report.html")
    _print(comparison)
    wrote(out_dir, ["report.html", *written], started)


def _compute(run: "FinishedRun", symbol: str, bond: str, data: list[Path], momentum_top: int | None,
             steps: Steps) -> "Comparison":
    import pandas as pd

    from research.benchmark import BenchmarkError
    from research.benchmark_compare import build_benchmarks, compare, find_symbol

    steps.step("load the run's closes")
    extra = {path: _load_file(path, "--data") for path in data}
    # --data files of the run's own symbols stand in for its data files when those have moved
    stand_ins = [path for path, (name, _) in extra.items() if name in run.symbols]
    universe, replaced = _run_closes(run, stand_ins)
    missing = sorted(set(run.symbols) - set(universe))
    if missing:
        _fail(f"run {run.run_id}: no bars of {', '.join(missing)}; pass the run's data files with --data")
    top = momentum_top if momentum_top is not None else min(DEFAULT_MOMENTUM_TOP, len(universe))
    available = dict(universe)
    for path, (name, closes) in extra.items():
        if name not in universe:
            available[name] = closes
        elif not replaced:
            _warn(f"--data {path}: {name} is in the run's data already; the run's own bars are used")
    steps.step("build the benchmarks")
    try:
        primary = find_symbol(symbol, available, "--benchmark")
        bond_symbol, bond_closes = _bond(bond, available)
        curves = build_benchmarks(universe, (primary, available[primary]), (bond_symbol, bond_closes),
                                  run.starting_cash, pd.DatetimeIndex(run.equity.index), top)
        steps.step("compare")
        return compare(run.run_id, run.strategy, run.equity, curves)
    except (BenchmarkError, ValueError) as exc:
        _fail(str(exc))


def _print(c: "Comparison") -> None:
    from rich.table import Table

    from research.reports.formatting import fmt_num, fmt_pct

    table = Table(title=f"Run {c.run_id} against its benchmarks (no costs for the benchmarks)", title_justify="left")
    for header in ("", "Return", "CAGR", "Sharpe", "Max DD", "Alpha/yr", "Beta"):
        table.add_column(header, justify="left" if not header else "right", no_wrap=bool(header))
    s = c.stats
    table.add_row(f"Strategy ({escape(c.strategy)})", fmt_pct(s.total_return), fmt_pct(s.cagr), fmt_num(s.sharpe),
                  fmt_pct(s.max_drawdown), "", "")
    for b in c.benchmarks:
        table.add_row(escape(b.curve.label), fmt_pct(b.stats.total_return), fmt_pct(b.stats.cagr),
                      fmt_num(b.stats.sharpe), fmt_pct(b.stats.max_drawdown), fmt_pct(b.versus.alpha),
                      fmt_num(b.versus.beta))
    console.print(table)
    mix = next((b for b in c.benchmarks if "bond_coverage" in b.extra), None)
    if mix is not None:
        console.print(f"60/40: the bond {escape(str(mix.extra['bond']))} covers "
                      f"{fmt_pct(mix.extra['bond_coverage'], 1)} of the period (cash before its first bar, held flat "
                      "after its last).", highlight=False, soft_wrap=True)
    verdict = "[bold green]favourable[/]" if c.favourable else "[bold red]not favourable[/]"
    console.print(f"{verdict} against {escape(c.primary.curve.label)}: {escape(c.favourable_reason)}",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``benchmark`` to ``app``."""
    register_command(app, "benchmark", benchmark, (
        "Compare a finished run with passive benchmarks from the same starting cash: buy-and-hold of --benchmark, "
        "the run's symbols in equal weights, 60/40 with --bond, and naive 12-1 momentum (all rebalanced monthly, no "
        "costs): return, CAGR, Sharpe, drawdown, recovery, monthly win rate, alpha, beta, correlation, information "
        "ratio, tracking error, and whether the run compares favourably."))


__all__ = ["BUNDLED_BOND", "DEFAULT_MOMENTUM_TOP", "FILES", "benchmark", "register"]
