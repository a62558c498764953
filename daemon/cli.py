"""The ``tradingd`` command line (typer + rich).

Each command imports what it needs when it runs: ``tradingd --help`` and ``tradingd strategies``
load neither pandas, SciPy, River, SQLAlchemy nor plotly (a test keeps it so). Every option's help
shows its default: the value ``config.toml`` sets, or the built-in one (:mod:`daemon.help_defaults`).
"""

import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from daemon.help_defaults import DEFAULT_CONFIG, HelpCommand, HelpGroup, with_defaults
from daemon import live_cli, optimize_cli, reconcile_cli, walkforward_cli  # typer and rich only at import time
from daemon import (attribution_cli, benchmark_cli, journal_cli, montecarlo_cli, readiness_cli, robustness_cli,
                    sizing_cli)
from daemon.data_cli import data_app  # typer and rich only at import time
from daemon.mqtt_cli import mqtt_app  # typer and rich only at import time
from daemon.runs import runs_app  # imports typer and rich only; its commands import the rest

if TYPE_CHECKING:
    from backtest.sources import BarSeries
    from daemon.config import AppConfig
    from daemon.replay_job import ReplayOutcome

from daemon.cli_common import console, err
from daemon.cli_common import fail as _fail

app = typer.Typer(help="tradingd: an event-driven trading daemon. It replays history through the same engine "
                       "that trades live.", no_args_is_help=True, add_completion=False, cls=HelpGroup,
                  rich_markup_mode="rich")


# --- options shared by several commands ---------------------------------------------------------

ConfigOpt = Annotated[Optional[Path], typer.Option(
    "--config", "-c", metavar="FILE", show_default=False,
    help="TOML configuration file. Relative \\[data] paths and a relative SQLite \\[state] database_url "
         "resolve against its folder.")]
DbOpt = Annotated[Optional[str], typer.Option(
    "--db", metavar="URL", show_default=False,
    help="State database: sqlite:///path.db or postgresql+psycopg://user@host/db (password: "
         "TRADINGD_DATABASE_PASSWORD). Overrides TRADINGD_DATABASE_URL and \\[state] database_url.")]


def _config_default() -> str:
    return (f"./{DEFAULT_CONFIG} if it exists, else the built-in defaults (here: "
            + ("found" if DEFAULT_CONFIG.exists() else "none, so built-in defaults") + ")")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("tradingd")
        except PackageNotFoundError:  # running from a source tree that is not installed
            number = "unknown (not installed)"
        console.print(f"tradingd {number}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, metavar="",
                                                help="Print the version and exit.")] = False) -> None:
    """tradingd: an event-driven trading daemon. It replays history through the same engine that trades live."""


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _config_path(config: Path | None) -> Path | None:
    """The file to load: ``--config`` as given (it must exist), else ./config.toml when present,
    else None (built-in defaults, said on stderr: replay, check-config, halt and rearm alike)."""
    if config is not None:
        return config
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    err.print(f"note: no {DEFAULT_CONFIG} in {Path.cwd()}: using the built-in defaults "
              "(`tradingd check-config` prints them)", highlight=False, soft_wrap=True)
    return None


def _mask(url: str) -> str:
    from state.config import mask_url

    return mask_url(url)


# --- replay ---------------------------------------------------------------------------------------

# option -> the setting it overrides, as the user typed it (errors about its value name the option)
_REPLAY_KEYS = {
    "start": ("data.start", "--start"), "end": ("data.end", "--end"), "timeframe": ("data.timeframe", "--timeframe"),
    "cash": ("replay.starting_cash", "--cash"), "slippage_bps": ("fill.slippage_bps", "--slippage-bps"),
    "slippage_volatility": ("fill.slippage_volatility", "--slippage-volatility"),
    "participation_cap": ("fill.participation_cap", "--participation-cap"),
    "seed": ("signals.learner.seed", "--seed"), "db": ("state.database_url", "--db"),
    "benchmark": ("output.benchmark", "--benchmark"),
}
_COMMISSION_KEYS = {"commission": ("fill.commission_per_share", "--commission"),
                    "commission_min": ("fill.commission_minimum", "--commission-min"),
                    "commission_bps": ("fill.commission_bps", "--commission-bps")}


def _parse_params(items: Sequence[str]) -> dict[str, str]:
    from daemon.config import ConfigError

    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE, e.g. --param fast=10")
        params[key.strip()] = value.strip()
    return params


def _out_problem(out_dir: Path, label: str) -> str | None:
    """Why the replay could not write its output folder (checked before the replay runs), or None."""
    if out_dir.exists():
        if not out_dir.is_dir():
            return f"{label} {out_dir}: exists and is a file, not a folder"
        return None if os.access(out_dir, os.W_OK) else f"{label} {out_dir}: folder is not writable"
    parent = out_dir.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{label} {out_dir}: {parent} is a file, so the folder cannot be created"
    return None if os.access(parent, os.W_OK) else f"{label} {out_dir}: cannot create it, {parent} is not writable"


_WINDOW_PARAMS = ("fast", "slow", "period", "window", "lookback")


def _warmup(cfg: "AppConfig") -> tuple[int, str] | None:
    """Bars a strategy needs before its first decision, and why; None when unknown.

    Asks the strategy (``warmup_bars()``) when it says; else takes the longest window among its
    integer parameters named fast/slow/period/window/lookback or ``*_period``/``*_window``; a
    strategy that reads predictions also waits for the learner's ``min_samples`` + ``horizon_bars``.
    """
    from strategies.registry import build_strategy

    strategy = build_strategy(cfg.strategy.name, cfg.strategy.params)
    found: list[tuple[int, str]] = []
    asked = getattr(strategy, "warmup_bars", None)
    if callable(asked):
        found.append((int(asked()), f"{cfg.strategy.name}.warmup_bars()"))
    else:
        for key, value in cfg.strategy.params.items():
            named = key in _WINDOW_PARAMS or key.endswith(("_period", "_window", "_lookback"))
            if named and isinstance(value, int) and not isinstance(value, bool):
                found.append((value, f"{key} = {value}"))
    if getattr(strategy, "uses_learner", False):
        learner = cfg.signals.learner
        found.append((learner.min_samples + learner.horizon_bars,
                      f"[signals.learner] min_samples + horizon_bars = {learner.min_samples + learner.horizon_bars}"))
    return max(found) if found else None


def _never_trades(cfg: "AppConfig", series: Sequence["BarSeries"]) -> str | None:
    """A warning when the data is too short for the strategy ever to decide, else None."""
    need = _warmup(cfg)
    if need is None:
        return None
    bars, why = need
    short = [s for s in series if len(s) <= bars]
    if not short:
        return None
    counts = ", ".join(f"{s.symbol} {len(s):,}" for s in short)
    if len(short) == len(series):
        return (f"{cfg.strategy.name} can never trade on this data: it needs more than {bars:,} bars of a symbol "
                f"before its first decision ({why}), and the data has {counts} bars")
    return f"{cfg.strategy.name} can never trade {', '.join(s.symbol for s in short)}: fewer than {bars:,} bars ({why}; {counts})"


def _check_benchmark(cfg: "AppConfig", series: list[Any], given: bool) -> None:
    """Refuse an unknown benchmark, or a symbol not in the data, before the replay runs."""
    from daemon.config import ConfigError
    from research.benchmark import BenchmarkError, resolve_benchmark

    try:
        resolve_benchmark(cfg.output.benchmark, [s.symbol for s in series])
    except BenchmarkError as exc:
        where = "--benchmark" if given else "[output] benchmark"
        raise ConfigError(f"{where} {cfg.output.benchmark!r}: {exc}") from None


def _replay_config(config: Path | None, paths: list[str], strategy: str | None, param: list[str] | None,
                   values: dict[str, Any], commissions: dict[str, Any], report: bool) -> "AppConfig":
    from daemon.config import load_config

    overrides: dict[str, Any] = {}
    options: dict[str, str] = {}
    if paths:  # relative to the working directory, as a shell user means them
        overrides["data.paths"] = [str(Path(p).resolve()) for p in paths]
        options["data.paths"] = "--data"
    for name, value in values.items():
        if value is not None:
            key, option = _REPLAY_KEYS[name]
            overrides[key], options[key] = value, option
    if any(value is not None for value in commissions.values()):  # replaces the configured commission model
        for name, value in commissions.items():
            key, option = _COMMISSION_KEYS[name]
            overrides[key] = 0.0 if value is None else value
            if value is not None:
                options[key] = option
    if not report:
        overrides["output.report"] = False
    path = _config_path(config)
    base = load_config(path)
    if strategy is not None:
        overrides["strategy.name"], options["strategy.name"] = strategy, "--strategy"
        if strategy != base.strategy.name:
            overrides["strategy.params"] = {}
    if param:
        params = dict(overrides.get("strategy.params", base.strategy.params))
        params.update(_parse_params(param))
        overrides["strategy.params"], options["strategy.params"] = params, "--param"
    return load_config(path, overrides, options=options)


@app.command(cls=HelpCommand, help=(
    "Replay historical bars through the full pipeline and write metrics, trades, orders, fills, equity and an "
    "HTML report.\n\n"
    "Market orders fill at the next bar's open plus slippage; commissions as configured. Everything is "
    "validated before anything runs. Options override config.toml."))
@with_defaults(config=_config_default, files="data.paths", data="data.paths", strategy="strategy.name",
           param="strategy.params", out="output.dir", start="data.start", end="data.end",
           timeframe="data.timeframe", cash="replay.starting_cash", slippage_bps="fill.slippage_bps",
           slippage_volatility="fill.slippage_volatility", commission="fill.commission_per_share",
           commission_min="fill.commission_minimum", commission_bps="fill.commission_bps",
           participation_cap="fill.participation_cap", seed="signals.learner.seed", db="state.database_url",
           report="output.report", benchmark="output.benchmark", progress=lambda: "on")
def replay(
    files: Annotated[Optional[list[Path]], typer.Argument(
        metavar="FILE|DIR", show_default=False,
        help="Bar files (.csv, .csv.gz, .parquet) or folders of them; same as --data.")] = None,
    config: ConfigOpt = None,
    data: Annotated[Optional[list[Path]], typer.Option(
        "--data", "-d", metavar="FILE|DIR", show_default=False,
        help="Bar file, or a folder (all its .csv, .csv.gz and .parquet files); repeat, or list more after "
             "the options. Overrides \\[data] paths.")] = None,
    strategy: Annotated[Optional[str], typer.Option(
        "--strategy", "-s", metavar="NAME", show_default=False,
        help="Strategy name (see `tradingd strategies`) or package.module:Class.")] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", metavar="KEY=VALUE", show_default=False,
        help="Strategy parameter; repeatable. Replaces \\[strategy.params] when --strategy changes the "
             "strategy.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", metavar="DIR", show_default=False,
        help="Output folder, relative to the working directory.")] = None,
    start: Annotated[Optional[str], typer.Option(
        metavar="TIME", show_default=False,
        help="First bar start, ISO-8601 with timezone, e.g. 2019-01-01T00:00:00Z (inclusive).")] = None,
    end: Annotated[Optional[str], typer.Option(
        metavar="TIME", show_default=False, help="Last bar start, ISO-8601 with timezone (exclusive).")] = None,
    timeframe: Annotated[Optional[str], typer.Option(
        metavar="LENGTH", show_default=False,
        help="Bar length, e.g. 1min, 1h, 1d; not shorter than the data's bar spacing.")] = None,
    cash: Annotated[Optional[float], typer.Option(metavar="USD", show_default=False, help="Starting cash, USD.")] = None,
    slippage_bps: Annotated[Optional[float], typer.Option(
        metavar="BPS", show_default=False, help="Fixed adverse slippage per fill, basis points.")] = None,
    slippage_volatility: Annotated[Optional[float], typer.Option(
        metavar="MULTIPLE", show_default=False,
        help="Extra slippage as a multiple of the previous bar's (high-low)/close.")] = None,
    commission: Annotated[Optional[float], typer.Option(
        metavar="USD", show_default=False,
        help="Commission per share, USD. Any --commission* option replaces the configured commission: the "
             "parts not given become 0.")] = None,
    commission_min: Annotated[Optional[float], typer.Option(
        metavar="USD", show_default=False, help="Minimum commission per fill, USD (with --commission).")] = None,
    commission_bps: Annotated[Optional[float], typer.Option(
        metavar="BPS", show_default=False, help="Commission as basis points of notional.")] = None,
    participation_cap: Annotated[Optional[float], typer.Option(
        metavar="FRACTION", show_default=False,
        help="Max fraction of a bar's volume one order may fill (the rest fills on later bars).")] = None,
    seed: Annotated[Optional[int], typer.Option(metavar="N", show_default=False,
                                                help="Seed of the online learners.")] = None,
    db: DbOpt = None,
    report: Annotated[bool, typer.Option(metavar="", show_default=False, help="Write report.html.")] = True,
    benchmark: Annotated[Optional[str], typer.Option(
        metavar="NAME", show_default=False,
        help="Compare with: auto (SPY when in the data, else equal_weight), a symbol of the data (buy and hold), "
             "equal_weight (rebalanced monthly), equal_weight_hold or none.")] = None,
    progress: Annotated[bool, typer.Option(metavar="", show_default=False,
                                           help="Show a progress bar (on stderr).")] = True,
) -> None:
    from alerts.logging import collapse_repeats, configure_logging, log_to_console
    from backtest.sources import DataError
    from daemon.config import ConfigError
    from daemon.replay_job import load_data, run_replay_job
    from state.db import StoreError

    paths = [str(p) for p in (data or [])] + [str(p) for p in (files or [])]
    values = {"start": start, "end": end, "timeframe": timeframe, "cash": cash, "slippage_bps": slippage_bps,
              "slippage_volatility": slippage_volatility, "participation_cap": participation_cap, "seed": seed,
              "db": db, "benchmark": benchmark}
    commissions = {"commission": commission, "commission_min": commission_min, "commission_bps": commission_bps}
    try:
        cfg = _replay_config(config, paths, strategy, param, values, commissions, report)
        configure_logging(cfg.logging.format, cfg.logging.level)
        out_dir = out if out is not None else Path(cfg.output.dir)
        problem = _out_problem(out_dir, "--out" if out is not None else "[output] dir")
        if problem:
            raise ConfigError(problem)
        series = load_data(cfg)
        _check_benchmark(cfg, series, benchmark is not None)
    except (ConfigError, DataError) as exc:
        _fail(str(exc))
    warning = _never_trades(cfg, series)
    if warning:
        _warn(warning)
    total = sum(len(s) for s in series)
    console.print(f"Replaying [bold]{total:,}[/] bars of {escape(', '.join(s.symbol for s in series))} "
                  f"with [bold]{escape(cfg.strategy.name)}[/] {escape(str(cfg.strategy.params or ''))}")
    try:
        # log lines go through the bar's console while it is live, repeats collapse into one line
        with log_to_console(err) if progress else nullcontext(), collapse_repeats():
            if progress:
                outcome = _run_with_progress(cfg, series, out_dir, total)
            else:
                outcome = run_replay_job(cfg, series, out_dir)
    except StoreError as exc:
        _fail(str(exc))
    _print_outcome(outcome)
    files_written = ", ".join(getattr(outcome.summary, "files", ()) or ())
    console.print(f"Wrote {escape(str(out_dir))}/" + (f" ({escape(files_written)})" if files_written else "")
                  + f"; run [bold]{escape(outcome.run_id)}[/] in {escape(_mask(cfg.state.database_url))}",
                  highlight=False, soft_wrap=True)  # paths and URLs stay whole, for copying


def _run_with_progress(cfg: "AppConfig", series: Sequence["BarSeries"], out_dir: Path, total: int) -> "ReplayOutcome":
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from daemon.replay_job import run_replay_job

    # On stderr, with the log lines (see log_to_console), so stdout carries only the results.
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("bars"), TimeElapsedColumn(), TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("replay", total=total)
        return run_replay_job(cfg, list(series), out_dir, progress=lambda n: bar.update(task, completed=n))


def _print_outcome(outcome: "ReplayOutcome") -> None:
    from daemon.summary import print_summary

    print_summary(console, outcome)


# --- strategies -----------------------------------------------------------------------------------


@app.command(cls=HelpCommand, help=(
    "List the built-in strategies and those installed through the entry-point group tradingd.strategies: "
    "what each does, and its parameters with defaults."))
def strategies() -> None:
    from rich.table import Table
    from rich.text import Text

    from strategies.registry import ENTRY_POINT_GROUP, list_strategies

    out = Console()  # measured now, so descriptions wrap to the terminal as it is at this call
    for listing in list_strategies():
        cls = listing.strategy
        heading = Text(f"{listing.name}: ", style="bold")
        heading.append(f"{cls.__module__}:{cls.__qualname__}" if cls is not None else "failed to load", style="cyan")
        heading.append(f" ({listing.source})", style="dim")
        out.print(heading)
        if cls is None:
            out.print(Text(listing.error, style="red"))
            out.print()
            continue
        # the full description, re-flowed by the console to the terminal width
        out.print(Text(cls.description() or "(no description)"))
        fields = cls.Params.model_fields
        if fields:
            table = Table(title_justify="left")
            table.add_column("param")
            table.add_column("default", justify="right")
            table.add_column("meaning")
            for field_name, info in fields.items():
                default = "required" if info.is_required() else repr(info.get_default(call_default_factory=True))
                table.add_row(field_name, default, info.description or "")
            out.print(table)
        else:
            out.print(Text("no parameters", style="dim"))
        out.print()
    out.print(Text(f"Your own strategy: --strategy package.module:Class, or an entry point in the group "
                   f"{ENTRY_POINT_GROUP} (see the README).", style="dim"))


# --- check-config ---------------------------------------------------------------------------------


@app.command("check-config", cls=HelpCommand, help=(
    "Validate a configuration file (or the built-in defaults when there is no config.toml) and print the "
    "resolved values, database password masked."))
@with_defaults(config=_config_default)
def check_config(config: ConfigOpt = None) -> None:
    from daemon.config import ConfigError, load_config

    path = _config_path(config)
    try:
        cfg = load_config(path)
        cfg.data_files()
    except ConfigError as exc:
        _fail(str(exc))
    console.print_json(data=cfg.redacted())
    console.print(f"[green]ok[/] {escape(cfg.origin)} (config hash {cfg.config_hash()[:12]}; database "
                  f"{escape(_mask(cfg.state.database_url))})", highlight=False, soft_wrap=True)


# --- halt / rearm ---------------------------------------------------------------------------------

ReasonOpt = Annotated[str, typer.Option(metavar="TEXT", help="Why (recorded with the change).")]
AccountOpt = Annotated[str, typer.Option(metavar="NAME", help="Account whose trading state to change.")]


@app.command(cls=HelpCommand, help=(
    "HALT trading of an account. Sends a HaltTrading command; with no daemon running it is applied to the "
    "stored state, which the daemon resumes from at its next start. Prints the database it wrote."))
@with_defaults(config=_config_default, db="state.database_url")
def halt(reason: ReasonOpt = "operator halt", account: AccountOpt = "default", config: ConfigOpt = None,
         db: DbOpt = None) -> None:
    _send(config, account, "halt", reason, db)


@app.command(cls=HelpCommand, help=(
    "Re-arm a HALTED account: the only way out of HALTED is this explicit command. An account the database "
    "does not know is an error. Prints the database it wrote."))
@with_defaults(config=_config_default, db="state.database_url")
def rearm(reason: ReasonOpt = "operator re-arm", account: AccountOpt = "default", config: ConfigOpt = None,
          db: DbOpt = None) -> None:
    _send(config, account, "rearm", reason, db)


def _send(config: Path | None, account: str, verb: str, reason: str, db: str | None) -> None:
    import time

    from core.events import HaltTrading, RearmTrading
    from daemon.config import ConfigError, load_config
    from daemon.control import UnknownAccountError, apply_offline
    from state.db import StoreError
    from state.recovery import RecoveryError
    from state.store import SqlStore

    ts = time.time_ns()  # the operator's command is stamped when it is issued
    command = (HaltTrading(reason=reason, ts_event=ts, ts_init=ts) if verb == "halt"
               else RearmTrading(reason=reason, ts_event=ts, ts_init=ts))
    try:
        cfg = load_config(_config_path(config), {"state.database_url": db} if db else None,
                          options={"state.database_url": "--db"})
        # a running daemon of this account takes the command on its queue (the one path)
        reply = live_cli.ask_daemon(cfg.model_copy(update={"live": cfg.live.model_copy(update={"account": account})}),
                                    verb, reason)
        if reply is not None:
            live_cli._reply(verb, reply)
            return
        store = SqlStore(cfg.state, account=account)
        try:
            before, change = apply_offline(store, account, command, cfg.risk)
        finally:
            store.close()
    except (ConfigError, StoreError, UnknownAccountError, RecoveryError) as exc:
        _fail(str(exc))
    where = escape(_mask(cfg.state.database_url))
    if change is None:
        console.print(f"account {escape(account)}: already {before.value}; nothing changed ({where})", highlight=False,
                      soft_wrap=True)
    else:
        console.print(f"account {escape(account)}: {change.previous.value} -> {change.current.value} "
                      f"({escape(reason)}); no daemon running: written to {where}", highlight=False, soft_wrap=True)


app.add_typer(runs_app, name="runs")
app.add_typer(mqtt_app, name="mqtt")
app.add_typer(data_app, name="data")
live_cli.register(app)
reconcile_cli.register(app)
optimize_cli.register(app)
walkforward_cli.register(app)
for _research in (montecarlo_cli, benchmark_cli, robustness_cli, sizing_cli, attribution_cli, journal_cli,
                  readiness_cli):
    _research.register(app)


def main() -> None:  # console script entry point
    app()


if __name__ == "__main__":
    main()
