"""The ``tradingd walkforward`` command: walk-forward validation over replays
(:mod:`research.walk_forward`).

``register(app)`` adds it to the CLI. Like every command it imports only typer and rich at import
time; the research machinery (Optuna, pandas, the store) loads when it runs.

Output in ``--out``: ``report.html``, ``report.pdf``, ``folds.csv``, ``oos_equity.csv``, ``walkforward.json``, ``summary.txt`` and
``best.toml`` (the base configuration with the best set of the latest training window, for the
next live period; ``tradingd replay --config best.toml`` and ``tradingd run`` accept it as it is).
Each window's study lives in the state database, so running the same command again resumes.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from daemon.cli_common import StopOnSignals as _Stop
from daemon.cli_common import console, err
from daemon.cli_common import fail as _fail
from daemon.cli_common import out_problem as _out_problem
from daemon.help_defaults import DEFAULT_CONFIG, HelpCommand, with_defaults
from daemon.study_cli import (BaseConfigOpt, CacheOpt, DataOpt, EndOpt, FilesArg, JobsOpt, StartOpt, StrategyOpt,
                              StudyDbOpt, load_study_setup)

if TYPE_CHECKING:
    from daemon.config import AppConfig
    from research.optimize import StudyData
    from research.walk_forward import WalkForwardResult


BEST_CONFIG = "best.toml"
"""The configuration of the set for the next live period, written into ``--out``."""


def _config_default() -> str:
    return f"./{DEFAULT_CONFIG} if it exists, else the built-in defaults"


def _steps(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def walkforward(
    files: FilesArg = None,
    strategy: StrategyOpt = None,
    space: Annotated[Optional[Path], typer.Option(
        "--space", metavar="FILE", show_default=False,
        help="Search space (TOML), as for tradingd optimize. Default spaces/<strategy>.toml.")] = None,
    method: Annotated[str, typer.Option(
        metavar="NAME", help="Search in each training window: grid, random, lhs, sobol (or qmc), tpe, cmaes or "
                             "nsga2.")] = "tpe",
    trials: Annotated[Optional[int], typer.Option(
        metavar="N", show_default=False,
        help="Trials per training window. Default: every combination for grid, else 50.")] = None,
    objective: Annotated[str, typer.Option(
        metavar="NAMES", help="Metric(s) to optimize (the first picks the set): sharpe, sortino, calmar, "
                              "total_return, cagr, win_rate, profit_factor, expectancy, max_drawdown, "
                              "volatility.")] = "sharpe",
    train: Annotated[str, typer.Option(
        metavar="PERIOD", help="Training window: a number and y, m (months), w or d.")] = "2y",
    test: Annotated[str, typer.Option(metavar="PERIOD", help="Test (out-of-sample) window after each.")] = "6m",
    step: Annotated[Optional[str], typer.Option(
        metavar="PERIOD", show_default=False,
        help="How far each fold moves (= re-optimization interval), at most --test. Default: --test.")] = None,
    anchored: Annotated[bool, typer.Option(
        "--anchored", help="Training windows all start at the first bar (growing) instead of rolling.")] = False,
    regime_aware: Annotated[bool, typer.Option(
        "--regime-aware", help="Also pick the best set per market regime of each training window and apply it "
                               "out of sample by regime, against the single best set.")] = False,
    regime_symbol: Annotated[Optional[str], typer.Option(
        metavar="SYMBOL", show_default=False,
        help="Whose regime is the market's (--regime-aware). Default SPY when in the data, else the first.")] = None,
    compare_steps: Annotated[Optional[str], typer.Option(
        metavar="PERIODS", show_default=False,
        help="Re-optimization steps to compare, comma-separated (e.g. 1m,3m,6m): a walk-forward with test = step "
             "for each.")] = None,
    benchmark: Annotated[str, typer.Option(
        metavar="NAME", help="Buy-and-hold to compare with: a symbol (spy), equal_weight, equal_weight_hold, none; "
                             "auto = SPY when in the data, else equal_weight.")] = "auto",
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", metavar="DIR", show_default=False,
        help="Output folder (report.html, report.pdf, folds.csv, oos_equity.csv, walkforward.json, summary.txt, best.toml). Default "
             "runs/walkforward-<strategy>-<method>-<train>-<test>-<step>.")] = None,
    jobs: JobsOpt = 1,
    config: BaseConfigOpt = None,
    seed: Annotated[Optional[int], typer.Option(
        metavar="N", show_default=False, help="Sampler seed of every window's study (default: random, kept "
                                              "with each study).")] = None,
    min_trades: Annotated[int, typer.Option(
        metavar="N", help="Rank only sets with at least N round trips in the training window.")] = 20,
    max_drawdown: Annotated[Optional[float], typer.Option(
        metavar="FRACTION", show_default=False,
        help="Rank only sets whose training max drawdown is at most this (0.3 = 30%).")] = None,
    db: StudyDbOpt = None,
    data: DataOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    prune: Annotated[Optional[bool], typer.Option(
        "--prune/--no-prune", show_default=False,
        help="Median pruning inside each study. Default: on for one objective except grid.")] = None,
    cache: CacheOpt = True,
    statistics: Annotated[bool, typer.Option(
        "--statistics/--no-statistics", help="PSR, DSR, MinTRL, PBO and the overfitting verdict (from the daily "
                                             "returns each trial's replay kept).")] = True,
) -> None:
    from backtest.sources import DataError
    from daemon.config import ConfigError
    from research.benchmark import BenchmarkError
    from research.optimize import OptimizeError, StudyData, TrialFilters, parse_objectives
    from research.search_space import SpaceError
    from research.walk_forward import WalkForwardError, parse_period
    from state.db import StoreError

    steps = _steps(compare_steps)
    try:
        for label, period in (("--train", train), ("--test", test), ("--step", step), *(
                ("--compare-steps", s) for s in steps)):
            if period is not None:
                try:
                    parse_period(period)
                except WalkForwardError as exc:
                    raise WalkForwardError(f"{label}: {exc}") from None
        if jobs < 1:
            raise OptimizeError(f"--jobs {jobs}: must be 1 or more")
        if trials is not None and trials < 1:
            raise OptimizeError(f"--trials {trials}: must be 1 or more")
        objectives = parse_objectives(objective)
        filters = TrialFilters(min_trades=min_trades, max_drawdown=max_drawdown)
        config_path, cfg, wf_space = load_study_setup(config, files, data, start, end, db, space, strategy)
        from alerts.logging import configure_logging

        configure_logging(cfg.logging.format, cfg.logging.level)
        base = cfg.run_spec()
        bars = StudyData.load(cfg.data_files(), timeframe=cfg.data.timeframe, timeframes=wf_space.timeframes() or (),
                              start=cfg.data.start, end=cfg.data.end, calendars=cfg.fill.calendars)
        method_name = "sobol" if method == "qmc" else method
        n_trials = trials if trials is not None else (None if method_name == "grid" else 50)
        out_dir = out if out is not None else Path("runs") / (
            f"walkforward-{wf_space.strategy}-{method_name}-{train}-{test}-{step or test}"
            + ("-anchored" if anchored else ""))
        problem = _out_problem(out_dir)
        if problem:
            raise ConfigError(problem)
        _prepare_database(cfg)
    except (ConfigError, DataError, SpaceError, OptimizeError, StoreError, WalkForwardError) as exc:
        _fail(str(exc))
    n_bars = sum(len(s) for s in bars.get(None))
    console.print(f"Walk-forward of [bold]{escape(wf_space.strategy)}[/] ({escape(method_name)}, {escape(objective)}; "
                  f"{'anchored' if anchored else 'rolling'} train {escape(train)}, test {escape(test)}, step "
                  f"{escape(step or test)}) over {n_bars:,} bars of "
                  f"{escape(', '.join(s.symbol for s in bars.get(None)))}", highlight=False, soft_wrap=True)
    from research.walk_forward import walk_forward

    def progress(line: str) -> None:
        err.print(escape(line), highlight=False, soft_wrap=True)

    try:
        with _Stop():
            result = walk_forward(
                base, wf_space, bars, storage=cfg.state.database_url, train=train, test=test, step=step,
                anchored=anchored, method=method_name, n_trials=n_trials, objectives=objectives, jobs=jobs, seed=seed,
                filters=filters, prune=prune, use_cache=cache, regime_aware=regime_aware, regime_symbol=regime_symbol,
                compare_steps=steps, benchmark=benchmark, statistics=statistics, progress=progress)
    except KeyboardInterrupt:
        err.print("interrupted: every window's study keeps its finished trials in the state database; run the same "
                  "command to continue", highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    except (WalkForwardError, OptimizeError, BenchmarkError, DataError) as exc:
        _fail(str(exc))
    _write(result, out_dir, config_path, cfg, bars)


def _prepare_database(cfg: "AppConfig") -> None:
    """Open the state store once, so its tables (and Alembic revision) exist before Optuna adds its own."""
    from state.store import SqlStore

    SqlStore(cfg.state).close()


def _write(result: "WalkForwardResult", out_dir: Path, config_path: Path | None, cfg: "AppConfig",
           bars: "StudyData") -> None:
    from daemon.optimize_cli import best_config, write_best
    from research.walk_forward import write_walk_forward_outputs

    written: list[str] = []
    if result.final_study is not None:  # report.html / report.pdf of the latest window's study and every fold
        from research.reports.study_page import write_study_report

        report = write_study_report(result.final_study, out_dir, walk_forward=result, statistics=result.statistics,
                                    data=bars)
        written += [name for name in report if name != "summary.txt"]
    written += write_walk_forward_outputs(result, out_dir)  # its summary.txt: every fold, then the latest study
    text = None
    if result.final_study is not None and result.final_window is not None:
        from core.time import to_datetime

        # [data] start = the latest training window's, so `tradingd replay --config best.toml` re-runs it
        start = to_datetime(result.final_window[0])
        window_cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"start": start})})
        text = best_config(config_path, window_cfg, result.final_study)
    if text is not None and result.final_window is not None:
        first, _, rest = text.partition("\n")
        window = f"{to_datetime(result.final_window[0]).date()}..{to_datetime(result.final_window[1]).date()}"
        text = (f"# tradingd walkforward: the set for the next live period, best of the latest training window "
                f"{window}\n# ([data] start is that window's: tradingd replay --config best.toml re-runs it)\n"
                f"{first.replace('# tradingd optimize: ', '# ')}\n{rest}")
    write_best(out_dir, text, written, "no trial of the latest training window passed the filters: no best.toml written")


def register(app: typer.Typer) -> None:
    """Add ``walkforward`` to ``app``."""
    command = with_defaults(config=_config_default, db="state.database_url")(walkforward)
    app.command("walkforward", cls=HelpCommand, help=(
        "Walk-forward validation: optimize on each training window, replay the chosen set on the window after "
        "it, stitch the out-of-sample curve and compare it with buy-and-hold; efficiency, profitable folds, "
        "parameter stability, re-optimization frequency, regime-aware sets and the overfitting verdict."))(command)


__all__ = ["BEST_CONFIG", "register", "walkforward"]
