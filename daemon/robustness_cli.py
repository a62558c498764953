"""The ``tradingd robustness`` command: a finished run's strategy replayed in other market periods,
on other universes, through injected stress and under pessimistic assumptions, scored 0-100
(:mod:`research.robustness`).

``register(app)`` adds it to the CLI. Like every command it imports only typer and rich at import
time; the research machinery loads when it runs.

Output in ``--out`` (default ``<run folder>/robustness/``): ``report.html``, ``robustness.json``
(score, parts, weakest scenario, one entry per scenario; ``tradingd readiness`` reads it) and
``scenarios.csv``. A config file as RUN is replayed first into ``<out>/base``.
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from daemon.cli_common import console, err
from daemon.cli_common import fail as _fail
from daemon.cli_common import out_problem as _out_problem
from daemon.research_cli import (ConfigOption, Counter, DataOption, DbOption, ProgressOption, bad_input, expand_data,
                                 find_run, interruptible, out_folder, out_option, read_config, register_command,
                                 run_argument, wrote)

if TYPE_CHECKING:
    from research.finished_run import FinishedRun
    from research.robustness import RobustnessResult

FILES = ("report.html", "robustness.json", "scenarios.csv")


def robustness(
    run: Annotated[Optional[str], run_argument("a config file (.toml) to replay first")] = None,
    period: Annotated[Optional[list[str]], typer.Option(
        "--period", metavar="NAME=START:END", show_default=False,
        help="A market period to replay, dates UTC (e.g. gfc=2008-09-01:2009-03-31; with times START..END); "
             "repeatable. Replaces the detected bull, bear, high-volatility and sideways quarters. A period "
             "running past the data is cut to it (with a note). NAME must be unique and not base, crypto, mixed, "
             "a stress or an assumption scenario.")] = None,
    universe: Annotated[Optional[list[str]], typer.Option(
        "--universe", metavar="NAME=GLOB", show_default=False,
        help="Another set of bar files to run the strategy on (at the run's timeframe); repeatable. Built in: "
             "crypto (bundled BTC-USD) and mixed (the run's equities + BTC-USD); a NAME crypto or mixed replaces "
             "that one. NAME must be unique and not base, a period, a stress or an assumption scenario.")] = None,
    stress: Annotated[bool, typer.Option(
        "--stress/--no-stress", help="Replay the injected stress scenarios (-20% month, flash crash, -35% over "
                                     "6 months, low volatility).")] = True,
    stress_at: Annotated[Optional[str], typer.Option(
        "--stress-at", metavar="DATE", show_default=False,
        help="Where every stress window starts (UTC; before the first bar: at the first bar, with a note). "
             "Default: centred on the middle of the run.")] = None,
    jobs: Annotated[int, typer.Option(metavar="N", help="Replays at a time (worker processes).")] = 1,
    pass_score: Annotated[float, typer.Option(
        metavar="SCORE", help="Score (0-100) at or above which the run passes.")] = 60.0,
    min_trades: Annotated[int, typer.Option(
        "--min-trades", metavar="N", help="Closed trades the base replay needs before the run can pass, whatever "
                                          "its score (scenarios with fewer than 5 count as thin).")] = 20,
    out: Annotated[Optional[Path], out_option(FILES, "robustness", "runs/robustness-<config>/ for a config file")]
    = None,
    data: DataOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    config_run: Annotated[Optional[Path], typer.Option(
        "--config-run", metavar="FILE", show_default=False,
        help="Replay this configuration first (into <out>/base) and study that run, instead of RUN.")] = None,
    progress: ProgressOption = True,
) -> None:
    from research.robustness import RobustnessError, check_names, parse_period, parse_time, parse_universe

    started = time.perf_counter()
    with bad_input(RobustnessError):
        periods = [parse_period(p) for p in period or []]
        universes = [parse_universe(u) for u in universe or []]
        check_names([name for name, _, _ in periods], [name for name, _ in universes])
        at = parse_time(stress_at, "--stress-at") if stress_at is not None else None
        if jobs < 1:
            raise RobustnessError(f"--jobs {jobs}: must be 1 or more")
        if not 0.0 <= pass_score <= 100.0:
            raise RobustnessError(f"--pass-score {pass_score:g}: must be between 0 and 100")
        if min_trades < 1:
            raise RobustnessError(f"--min-trades {min_trades}: must be 1 or more")
        if config_run is None and run is not None and run.endswith(".toml"):
            config_run, run = Path(run), None
        if config_run is not None and run is not None:
            raise RobustnessError("give RUN or --config-run, not both")
        if config_run is None and run is None:
            raise RobustnessError("give RUN (an output folder, a run id or a config .toml) or --config-run FILE")
        if config_run is not None and data:
            raise RobustnessError(f"--data is for a finished RUN whose bar files moved; {config_run} names its own "
                                  "data ([data] paths)")
        if config_run is not None:
            out_dir = out_folder(out, Path("runs") / f"robustness-{config_run.stem}")
            finished = _replay_config(config_run, db, out_dir / "base", progress)
        else:
            from daemon.run_source import default_out_dir

            assert run is not None
            finished = find_run(run, config, db)
            out_dir = out_folder(out, default_out_dir(finished, "robustness"))
        finished.require_trades("robustness")
        bars, variants, found, notes = _plan(finished, universes, periods, stress, at, expand_data(data))
    console.print(f"Robustness of run [bold]{escape(finished.run_id)}[/] ({escape(finished.strategy)} on "
                  f"{escape(', '.join(finished.symbols))}): {len(variants) - 1} scenarios + the base replay",
                  highlight=False, soft_wrap=True)
    try:
        with interruptible():
            result = _run(finished, bars, variants, jobs, pass_score, min_trades, found, notes, progress)
    except (RobustnessError, ValueError) as exc:
        _fail(str(exc))
    from research.robustness import write_robustness

    written = write_robustness(result, out_dir)
    _print(result)
    wrote(out_dir, written, started)


def _replay_config(path: Path, db: Optional[str], base: Path, progress: bool) -> "FinishedRun":
    """Replay the configuration ``path`` (with ``--db``) into ``base`` and read that run back."""
    from alerts.logging import configure_logging
    from daemon.config import ConfigError
    from daemon.replay_job import load_data, run_replay_job
    from research.finished_run import load_run_folder

    cfg = read_config(path, db)
    configure_logging(cfg.logging.format, cfg.logging.level)
    problem = _out_problem(base)
    if problem:
        raise ConfigError(problem)
    series = load_data(cfg)
    console.print(f"Replaying {escape(str(path))} into {escape(str(base))}/ first", highlight=False, soft_wrap=True)
    with Counter("base replay", sum(len(s) for s in series), progress, unit="bars") as bar:
        run_replay_job(cfg, series, base, progress=bar.update if progress else None)
    return load_run_folder(base)


def _plan(run: "FinishedRun", universes: list[tuple[str, str]], periods: list[tuple[str, int, int]], stress: bool,
          at: Optional[int], files: Optional[list[str]]) -> tuple[dict[str, Any], list[Any], list[Any], list[str]]:
    from research.finished_run import load_run_bars
    from research.robustness import load_universes, plan_scenarios

    bars = load_run_bars(run, files)
    others, notes = load_universes(run, bars, universes)
    data = {"base": bars, **others}
    variants, found, more = plan_scenarios(run, data, periods=periods, stress=stress, stress_at=at)
    return data, variants, found, notes + more


def _run(run: "FinishedRun", data: dict[str, Any], variants: list[Any], jobs: int, pass_score: float, min_trades: int,
         found: list[Any], notes: list[str], progress: bool) -> "RobustnessResult":
    from research.robustness import run_robustness

    with Counter("scenarios", len(variants), progress) as bar:
        return run_robustness(run, data, variants, jobs=jobs, pass_score=pass_score, min_trades=min_trades,
                              periods=found, notes=notes,
                              progress=lambda result: bar.update(last=result.name + (" (failed)" if result.error
                                                                                      else "")))


def _print(result: "RobustnessResult") -> None:
    from rich.table import Table

    from research.reports.formatting import fmt_num, fmt_pct
    from research.robustness import WEIGHTS

    table = Table(title_justify="left")
    for name, justify in (("scenario", "left"), ("kind", "left"), ("return", "right"), ("Sharpe", "right"),
                          ("max DD", "right"), ("trades", "right"), ("Δ return", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in result.rows():
        if row["error"]:
            table.add_row(escape(row["name"]), row["kind"], "[red]failed[/]", "", "", "", escape(row["error"][:60]))
            continue
        table.add_row(escape(row["name"]), row["kind"], fmt_pct(row["total_return"]), fmt_num(row["sharpe"]),
                      fmt_pct(row["max_drawdown"]),
                      str(row["trades"]) + (" thin" if row["thin"] and row["kind"] != "base" else ""),
                      "" if row["kind"] == "base" else fmt_pct(row["vs_base_return"]))
    console.print(table)
    score = result.score
    colour = "green" if result.passed else "red"
    parts = ", ".join(f"{name} {score.parts[name]:.1f}/{WEIGHTS[name]:g}" for name in WEIGHTS)
    passed, why = result.verdict
    console.print(f"Robustness score [bold {colour}]{score.score:.1f}[/]/100 "
                  f"({'passed' if passed else 'failed'}: {escape(why)}): {parts}", highlight=False, soft_wrap=True)
    if score.weakest is not None:
        w = score.weakest
        console.print(f"Weakest scenario: [bold]{escape(w.name)}[/] ({w.kind}): Sharpe {fmt_num(w.sharpe)}, "
                      f"return {fmt_pct(w.total_return)}, max drawdown {fmt_pct(w.max_drawdown)}",
                      highlight=False, soft_wrap=True)
    for note in result.notes:
        err.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``robustness`` to ``app``."""
    register_command(app, "robustness", robustness, (
        "Stress-test a finished run: replay its strategy and settings in bull, bear, high-volatility and "
        "sideways periods, on crypto and mixed universes, through injected crashes and a low-volatility stretch, "
        "and under 2x slippage, 2x commission, entries one bar late and partial fills; score the result 0-100 "
        "and name the weakest scenario."))


__all__ = ["FILES", "register", "robustness"]
