"""The ``tradingd optimize`` command: a parameter study over replays (:mod:`research.optimize`).

``register(app)`` adds it to the CLI. Like every command it imports only typer and rich at import
time; the study machinery (Optuna, pandas, the store) loads when it runs.

Output in ``--out``: ``report.html``, ``report.pdf``, ``statistics.json``, ``trials.csv``, ``summary.json``, ``summary.txt`` and ``best.toml``, the base
configuration with the best trial's strategy params, risk and fill keys and timeframe applied, which
``tradingd replay --config best.toml`` and ``tradingd run`` accept as it is (data paths and a
SQLite database made absolute, since the file lives in another folder).
"""

import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from daemon.cli_common import StopOnSignals as _Stop
from daemon.cli_common import console, err
from daemon.cli_common import fail as _fail
from daemon.cli_common import out_problem as _out_problem
from daemon.cli_common import warn as _warn
from daemon.help_defaults import DEFAULT_CONFIG, HelpCommand, with_defaults
from daemon.study_cli import (BaseConfigOpt, CacheOpt, DataOpt, EndOpt, FilesArg, JobsOpt, StartOpt, StrategyOpt,
                              StudyDbOpt, load_study_setup)

if TYPE_CHECKING:
    from daemon.config import AppConfig
    from research.optimize import StudyProgress, StudyResult


BEST_CONFIG = "best.toml"
"""The configuration file of the best trial, written into ``--out``."""
_DEFAULT_DB = "sqlite:///tradingd.db"  # the built-in [state] database_url (daemon.config)


def _config_default() -> str:
    return f"./{DEFAULT_CONFIG} if it exists, else the built-in defaults"


# --- best.toml ----------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: Any, where: str) -> str:
    """``value`` as a TOML value (JSON string escapes are valid TOML basic-string escapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value} cannot be written to TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v, where)}" for k, v in value.items()
                                if v is not None) + " }"
    raise ValueError(f"{where}: a {type(value).__name__} cannot be written to TOML")


def toml_document(table: Mapping[str, Any], _prefix: tuple[str, ...] = ()) -> str:
    """Write ``table`` (nested dicts of TOML values; ``None`` values are left out) as TOML text.

    Examples
    --------
    >>> print(toml_document({"strategy": {"name": "sma_cross", "params": {"fast": 10}}}), end="")
    [strategy]
    name = "sma_cross"
    <BLANKLINE>
    [strategy.params]
    fast = 10
    """
    lines: list[str] = []
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping) and v is not None}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if _prefix and (scalars or not tables):
        lines.append(f"[{'.'.join(_toml_key(p) for p in _prefix)}]")
    for key, value in scalars.items():
        lines.append(f"{_toml_key(key)} = {_toml_value(value, '.'.join((*_prefix, key)))}")
    for key, value in tables.items():
        if lines:
            lines.append("")
        lines.append(toml_document(value, (*_prefix, key)).rstrip("\n"))
    return "\n".join(lines) + "\n"


def best_config(config_path: Path | None, cfg: "AppConfig", result: "StudyResult") -> str | None:
    """Return the text of ``best.toml`` for ``result`` (None when no trial is ranked).

    The base file's table (or an empty one for the built-in defaults) with: ``[strategy]`` name
    and every parameter of the best trial; the searched and fixed ``[risk]``/``[fill]`` keys;
    ``[data] timeframe`` when the space sets it; ``[data] paths`` as the absolute files the study
    read and the study's ``start``/``end``; ``[state] database_url`` as the file's (or the built-in)
    URL with a relative SQLite path made absolute. A URL given by ``--db`` or the environment is
    not written (it may hold a password); the environment still applies when the file is used.
    """
    from state.config import resolve_sqlite

    best, setup = result.best, result.best_setup
    if best is None or setup is None:
        return None
    raw: dict[str, Any] = tomllib.loads(config_path.read_text()) if config_path is not None else {}
    spec = setup.spec
    raw["strategy"] = {"name": spec.strategy, "params": dict(spec.params)}
    changed = {**result.space.fixed, **best.params}
    for section, model in (("risk", spec.risk), ("fill", spec.fill)):
        values = model.model_dump(mode="json")
        keys = [k.split(".", 1)[1] for k in changed if k.startswith(f"{section}.")]
        if keys:
            raw[section] = {**raw.get(section, {}), **{k: values[k] for k in keys}}
    data = dict(raw.get("data", {}))
    data["paths"] = [str(p.resolve()) for p in cfg.data_files()]
    data["start"], data["end"] = cfg.data.start, cfg.data.end
    if "timeframe" in changed:
        data["timeframe"] = setup.timeframe
    raw["data"] = data
    state = dict(raw.get("state", {}))
    state["database_url"] = resolve_sqlite(str(state.get("database_url", _DEFAULT_DB)), cfg.base_dir)
    raw["state"] = state
    metrics = best.metrics or {}
    shown = ", ".join(f"{name} {metrics.get(name)!r}" for name in result.objectives)
    header = (f"# tradingd optimize: best trial #{best.number} of study {result.study_name} ({result.method}; "
              f"{shown})\n# base: {config_path if config_path is not None else 'built-in defaults'}; "
              f"space: {result.space.source}\n\n")
    return header + toml_document(raw)


# --- the command ----------------------------------------------------------------------------------

def _progress_text(p: "StudyProgress", objective: str) -> str:
    best = p.best.values[0] if p.best is not None and p.best.values else None
    return f"best {objective} {best:.4f}" if best is not None else "no ranked trial yet"


def optimize(
    files: FilesArg = None,
    strategy: StrategyOpt = None,
    space: Annotated[Optional[Path], typer.Option(
        "--space", metavar="FILE", show_default=False,
        help="Search space (TOML): \\[params.<name>], \\[risk.<key>], \\[fill.<key>], \\[timeframe], constraints, "
             "\\[fixed]. Default spaces/<strategy>.toml.")] = None,
    method: Annotated[str, typer.Option(
        metavar="NAME", help="grid, random, lhs, sobol (or qmc), tpe, cmaes or nsga2.")] = "tpe",
    trials: Annotated[Optional[int], typer.Option(
        metavar="N", show_default=False,
        help="Trials of the study in all: a resumed study runs only the rest. Default: every combination for "
             "grid, else 100.")] = None,
    objective: Annotated[str, typer.Option(
        metavar="NAMES", help="Metric(s) to optimize, comma-separated for several (a Pareto front): sharpe, sortino, "
                              "calmar, total_return, cagr, win_rate, profit_factor, expectancy, max_drawdown, "
                              "volatility.")] = "sharpe",
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", metavar="DIR", show_default=False,
        help="Output folder (report.html, report.pdf, summary.txt, statistics.json, trials.csv, summary.json, "
             "best.toml). Default runs/<study name>.")] = None,
    jobs: JobsOpt = 1,
    config: BaseConfigOpt = None,
    seed: Annotated[Optional[int], typer.Option(
        metavar="N", show_default=False, help="Sampler seed (default: random, kept with the study).")] = None,
    min_trades: Annotated[int, typer.Option(metavar="N", help="Rank only trials with at least N round trips.")] = 20,
    max_drawdown: Annotated[Optional[float], typer.Option(
        metavar="FRACTION", show_default=False,
        help="Rank only trials whose max drawdown is at most this (0.3 = 30%); a filter, not the risk breaker.")] = None,
    min_win_rate: Annotated[float, typer.Option(
        metavar="FRACTION", help="Rank only trials winning at least this fraction of round trips (0 = off).")] = 0.0,
    study_name: Annotated[Optional[str], typer.Option(
        metavar="NAME", show_default=False,
        help="Study to create or resume. Default: derived from strategy, method, space, settings and data, so "
             "the same command resumes.")] = None,
    db: StudyDbOpt = None,
    data: DataOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    prune: Annotated[Optional[bool], typer.Option(
        "--prune/--no-prune", show_default=False,
        help="Replay the first half of the period first and let the median pruner stop poor trials. Default: on "
             "for one objective except grid.")] = None,
    cache: CacheOpt = True,
    progress: Annotated[bool, typer.Option(metavar="", help="Show a progress bar (on stderr).")] = True,
    dask: Annotated[Optional[str], typer.Option(
        "--dask", metavar="tcp://HOST:PORT", show_default=False,
        help="Run the trials on the Dask cluster of this scheduler (started with `dask scheduler` and `dask worker "
             "--nthreads 1`); the study must then be in PostgreSQL (--db). --jobs N > 1 keeps N trials in flight; "
             "default one per worker thread.")] = None,
) -> None:
    from backtest.sources import DataError
    from daemon.config import ConfigError
    from research.optimize import (OptimizeError, StudyData, TrialFilters, default_study_name, parse_objectives,
                                   require_shared_storage)
    from research.search_space import SpaceError
    from state.db import StoreError

    try:
        objectives = parse_objectives(objective)
        filters = TrialFilters(min_trades=min_trades, max_drawdown=max_drawdown, min_win_rate=min_win_rate or None)
        config_path, cfg, study_space = load_study_setup(config, files, data, start, end, db, space, strategy)
        if dask is not None:  # before loading any bars
            from research.distributed import parse_dask_address

            dask = parse_dask_address(dask)
            require_shared_storage(cfg.state.database_url, "--dask")
        from alerts.logging import configure_logging

        configure_logging(cfg.logging.format, cfg.logging.level)
        base = cfg.run_spec()
        study_data = StudyData.load(cfg.data_files(), timeframe=cfg.data.timeframe,
                                    timeframes=study_space.timeframes() or (), start=cfg.data.start, end=cfg.data.end,
                                    calendars=cfg.fill.calendars)
        method_name = "sobol" if method == "qmc" else method
        name = study_name or default_study_name(study_space.strategy, method_name, study_space, base, study_data,
                                                objectives)
        out_dir = out if out is not None else Path("runs") / name
        problem = _out_problem(out_dir)
        if problem:
            raise ConfigError(problem)
        _prepare_database(cfg)
    except (ConfigError, DataError, SpaceError, OptimizeError, StoreError) as exc:
        _fail(str(exc))
    bars = sum(len(s) for s in study_data.get(None))
    console.print(f"Optimizing [bold]{escape(study_space.strategy)}[/] ({escape(method_name)}, {escape(objective)}) "
                  f"over {bars:,} bars of {escape(', '.join(s.symbol for s in study_data.get(None)))}; study "
                  f"[bold]{escape(name)}[/]", highlight=False, soft_wrap=True)
    result = _run(base, study_space, study_data, cfg, name, method_name, objectives, trials, jobs, seed, filters,
                  prune, cache, progress, dask)
    _write(result, out_dir, config_path, cfg, study_data, jobs)
    if result.interrupted:
        err.print(f"interrupted: study {escape(name)} keeps its finished trials in "
                  f"{escape(result.storage)}; run the same command (or --study-name {escape(name)}) to continue",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(130)


def _prepare_database(cfg: "AppConfig") -> None:
    """Open the state store once, so the state tables (and their Alembic revision) exist before
    Optuna adds its tables to the same database."""
    from state.store import SqlStore

    SqlStore(cfg.state).close()


def _run(base: Any, space: Any, data: Any, cfg: "AppConfig", name: str, method: str, objectives: tuple[str, ...],
         trials: int | None, jobs: int, seed: int | None, filters: Any, prune: bool | None, cache: bool,
         progress: bool, dask: str | None = None) -> "StudyResult":
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from research.optimize import OptimizeError, run_study

    def study(on_progress: Any) -> "StudyResult":
        return run_study(base, space, data, storage=cfg.state.database_url, study_name=name, method=method,
                         objectives=objectives, n_trials=trials, jobs=jobs, seed=seed, filters=filters, prune=prune,
                         use_cache=cache, progress=on_progress, warn=_warn, dask_address=dask)

    try:
        with _Stop():
            if not progress:
                return study(None)
            # no refresh thread: worker processes are forked from this one
            with Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[best]}"),
                          TimeElapsedColumn(), console=err, auto_refresh=False) as bar:
                task = bar.add_task("trials", total=None, best="starting")

                def update(p: "StudyProgress") -> None:
                    bar.update(task, completed=p.done, total=p.target, best=_progress_text(p, objectives[0]))
                    bar.refresh()

                return study(update)
    except OptimizeError as exc:
        _fail(str(exc))


def _write(result: "StudyResult", out_dir: Path, config_path: Path | None, cfg: "AppConfig", data: Any,
           jobs: int) -> None:
    import json

    from research.optimize import write_study_outputs
    from research.reports.study_page import write_study_report
    from research.study_stats import study_statistics

    written = write_study_outputs(result, out_dir)
    # PSR, DSR, MinTRL, PBO and the overfitting verdict, from the daily returns each trial brought back (no replay)
    try:
        statistics: dict[str, Any] | None = study_statistics(result, data, jobs=jobs)
    except Exception as exc:  # too few trials or returns for a statistic: the report says what is missing
        _warn(f"overfitting statistics not computed: {exc}")
        statistics = None
    if statistics is not None:
        (out_dir / "statistics.json").write_text(json.dumps(statistics, indent=2, default=str))
        written.append("statistics.json")
    # report.html, report.pdf and summary.txt (summary, top 10, sensitivity, overfitting,
    # recommended configuration, implementation notes)
    report = write_study_report(result, out_dir, statistics=statistics, data=data)
    written += [name for name in report if name not in written]
    write_best(out_dir, best_config(config_path, cfg, result), written,
               "no trial passed the filters (see the reason column of trials.csv): no best.toml written")


def write_best(out_dir: Path, text: str | None, written: list[str], none_reason: str) -> None:
    """Write ``best.toml`` (moved into place whole) and append it to ``written``; with no ``text``,
    remove an earlier study's file and warn ``none_reason``. Then print summary.txt and the files."""
    best_path = out_dir / BEST_CONFIG
    if text is not None:
        tmp = out_dir / f".{BEST_CONFIG}.tmp"
        tmp.write_text(text)
        os.replace(tmp, best_path)
        written.append(BEST_CONFIG)
    else:
        best_path.unlink(missing_ok=True)  # never leave an earlier study's best next to this summary
        _warn(none_reason)
    console.print((out_dir / "summary.txt").read_text(), highlight=False, soft_wrap=True, markup=False)
    console.print(f"Wrote {escape(str(out_dir))}/ ({', '.join(written)})", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``optimize`` to ``app``."""
    command = with_defaults(config=_config_default, db="state.database_url")(optimize)
    app.command("optimize", cls=HelpCommand, help=(
        "Search strategy parameters, risk and fill keys and the timeframe over replays of the one engine "
        "(Optuna: grid, random, lhs, sobol, tpe, cmaes, nsga2), with filters, pruning, a result cache and a "
        "resumable study in the state database."))(command)


__all__ = ["BEST_CONFIG", "best_config", "optimize", "register", "toml_document", "write_best"]
