"""The ``tradingd`` command line (typer + rich)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from alerts.logging import configure_logging
from backtest.sources import DataError
from daemon.config import ConfigError, load_config

app = typer.Typer(help="tradingd: an event-driven trading daemon. Replays history through the same "
                       "engine that trades live.", no_args_is_help=True, add_completion=False)
console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="TOML configuration file.")]


def _parse_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE, e.g. --param fast=10")
        params[key.strip()] = value.strip()
    return params


def _fail(message: str) -> None:
    # The message is plain text ("[risk] max_drawdown = ..."), not markup; never hard-wrap it (paths).
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def replay(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Bar files (CSV, CSV.gz, Parquet); same as --data.", show_default=False)] = None,
    config: ConfigOpt = Path("config.toml"),
    data: Annotated[Optional[list[Path]], typer.Option("--data", "-d", help="Bar file; repeat, or list files after it. Overrides \\[data] paths.")] = None,
    strategy: Annotated[Optional[str], typer.Option("--strategy", "-s", help="Strategy name (see `tradingd strategies`).")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Strategy parameter KEY=VALUE; repeatable. Replaces \\[strategy.params] when --strategy changes the strategy.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default \\[output] dir).")] = None,
    start: Annotated[Optional[str], typer.Option(help="First bar start, ISO-8601 with timezone (inclusive).")] = None,
    end: Annotated[Optional[str], typer.Option(help="Last bar start, ISO-8601 with timezone (exclusive).")] = None,
    timeframe: Annotated[Optional[str], typer.Option(help="Bar length, e.g. 1min, 1h, 1d (default: inferred).")] = None,
    cash: Annotated[Optional[float], typer.Option(help="Starting cash, USD.")] = None,
    slippage_bps: Annotated[Optional[float], typer.Option(help="Fixed adverse slippage per fill, basis points.")] = None,
    slippage_volatility: Annotated[Optional[float], typer.Option(help="Extra slippage as a multiple of the previous bar's (high-low)/close.")] = None,
    commission: Annotated[Optional[float], typer.Option(help="Commission per share, USD. Any --commission* option replaces the configured commission: the parts not given become 0.")] = None,
    commission_min: Annotated[Optional[float], typer.Option(help="Minimum commission per fill, USD (with --commission).")] = None,
    commission_bps: Annotated[Optional[float], typer.Option(help="Commission as basis points of notional.")] = None,
    participation_cap: Annotated[Optional[float], typer.Option(help="Max fraction of a bar's volume one order may fill (partial fills).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the online learners.")] = None,
    db: Annotated[Optional[str], typer.Option(help="State database URL (default \\[state] database_url).")] = None,
    report: Annotated[bool, typer.Option(help="Write report.html.")] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Replay historical bars through the full pipeline and write metrics, trades, orders, fills,
    equity and an HTML report.

    Fills: market orders fill at the next bar's open plus slippage; commissions as configured.
    """
    from daemon.replay_job import load_data, run_replay_job
    from state.store import StoreError

    overrides: dict[str, Any] = {}
    paths = [str(p) for p in (data or [])] + [str(p) for p in (files or [])]
    if paths:
        overrides["data.paths"] = [str(Path(p).resolve()) for p in paths]
    for key, value in (("data.start", start), ("data.end", end), ("data.timeframe", timeframe),
                       ("replay.starting_cash", cash), ("fill.slippage_bps", slippage_bps),
                       ("fill.slippage_volatility", slippage_volatility),
                       ("fill.participation_cap", participation_cap), ("signals.learner.seed", seed),
                       ("state.database_url", db)):
        if value is not None:
            overrides[key] = value
    commissions = {"fill.commission_per_share": commission, "fill.commission_minimum": commission_min,
                   "fill.commission_bps": commission_bps}
    if any(value is not None for value in commissions.values()):  # replace the configured commission model
        overrides.update({key: 0.0 if value is None else value for key, value in commissions.items()})
    if not report:
        overrides["output.report"] = False
    try:
        cfg_path = config if config.exists() or config != Path("config.toml") else None
        base = load_config(cfg_path)
        if strategy is not None:
            overrides["strategy.name"] = strategy
            if strategy != base.strategy.name:
                overrides["strategy.params"] = {}
        if param:
            params = dict(overrides.get("strategy.params", base.strategy.params))
            params.update(_parse_params(param))
            overrides["strategy.params"] = params
        cfg = load_config(cfg_path, overrides)
        configure_logging(cfg.logging.format, "WARNING" if progress else cfg.logging.level)
        series = load_data(cfg)
    except (ConfigError, DataError) as exc:
        _fail(str(exc))
        return
    total = sum(len(s) for s in series)
    out_dir = out if out is not None else Path(cfg.output.dir)
    console.print(f"Replaying [bold]{total:,}[/] bars of {', '.join(s.symbol for s in series)} "
                  f"with [bold]{cfg.strategy.name}[/] {cfg.strategy.params or ''}")
    try:
        outcome = _run_with_progress(cfg, series, out_dir, total) if progress else run_replay_job(cfg, series, out_dir)
    except StoreError as exc:
        _fail(str(exc))
        return
    _print_summary(outcome)
    console.print(f"Wrote {out_dir}/ (report.html, metrics.json, trades.csv, orders.csv, fills.csv, equity.csv); "
                  f"run [bold]{outcome.run_id}[/] in {cfg.state.database_url}")


def _run_with_progress(cfg, series, out_dir: Path, total: int):
    from daemon.replay_job import run_replay_job

    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("bars"), TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("replay", total=total)
        return run_replay_job(cfg, series, out_dir, progress=lambda n: bar.update(task, completed=n))


def _print_summary(outcome) -> None:
    from research.report import format_metrics_table

    result = outcome.result
    table = Table(title=f"{result.strategy_id} vs buy-and-hold ({', '.join(result.symbols)})")
    table.add_column("metric")
    table.add_column("strategy", justify="right")
    table.add_column("buy & hold", justify="right")
    for label, ours, theirs in format_metrics_table(outcome.summary.metrics, outcome.summary.benchmark):
        table.add_row(label, ours, theirs)
    console.print(table)
    console.print(f"{result.bars:,} bars in {result.elapsed_s:.2f} s ({result.bars_per_second:,.0f} bars/s); "
                  f"trading state {result.trading_state.value}"
                  + ("" if result.strategy_enabled else "; [red]strategy was disabled after an error[/]"))
    counts: dict[tuple[str, str], int] = {}
    for severity, title, _text, _ in outcome.alerts.alerts:
        counts[(severity, title)] = counts.get((severity, title), 0) + 1
    for (severity, title), n in sorted(counts.items()):
        colour = "red" if severity in ("error", "critical") else "yellow"
        console.print(f"[{colour}]{severity}[/] {title}" + (f" (x{n})" if n > 1 else ""))
    for severity, title, text, _ in outcome.alerts.alerts:
        if severity in ("error", "critical"):
            console.print(f"  {escape(title)}: {escape(text)}", highlight=False)


@app.command()
def strategies() -> None:
    """List the built-in strategies and their parameters."""
    from strategies.registry import STRATEGIES

    for name, cls in sorted(STRATEGIES.items()):
        table = Table(title=f"{name}: {(cls.__doc__ or '').strip().splitlines()[0]}", title_justify="left")
        table.add_column("param")
        table.add_column("default", justify="right")
        table.add_column("meaning")
        for field_name, info in cls.Params.model_fields.items():
            table.add_row(field_name, repr(info.default), info.description or "")
        console.print(table)


@app.command("check-config")
def check_config(config: ConfigOpt = Path("config.toml")) -> None:
    """Validate a configuration file and print the resolved values."""
    try:
        cfg = load_config(config)
        cfg.data_files()
    except ConfigError as exc:
        _fail(str(exc))
        return
    console.print_json(cfg.model_dump_json())
    console.print(f"[green]ok[/] {escape(str(config))} (config hash {cfg.config_hash()[:12]})")


@app.command()
def halt(reason: Annotated[str, typer.Option(help="Why (recorded).")] = "operator halt",
         account: Annotated[str, typer.Option(help="Account whose trading state to change.")] = "default",
         config: ConfigOpt = Path("config.toml")) -> None:
    """Set the persisted trading state of ACCOUNT to HALTED (a running daemon picks it up at start)."""
    _set_state(config, account, "halted", reason)


@app.command()
def rearm(reason: Annotated[str, typer.Option(help="Why (recorded).")] = "operator re-arm",
          account: Annotated[str, typer.Option(help="Account whose trading state to change.")] = "default",
          config: ConfigOpt = Path("config.toml")) -> None:
    """Re-arm a HALTED account: the only way out of HALTED is this explicit command."""
    _set_state(config, account, "active", reason)


def _set_state(config: Path, account: str, state: str, reason: str) -> None:
    import time

    from core.enums import TradingState
    from core.events import TradingStateChanged
    from state.store import SqlStore, StoreError

    try:  # like replay: only the default config.toml may be absent (built-in defaults then)
        cfg = load_config(config if config.exists() or config != Path("config.toml") else None)
        store = SqlStore(cfg.state, account=account)
        try:
            current = store.load_trading_state()
            previous = current[0] if current else TradingState.ACTIVE
            store.save_trading_state(TradingStateChanged(previous, TradingState(state), reason, time.time_ns()))
        finally:
            store.close()
    except (ConfigError, StoreError) as exc:
        _fail(str(exc))
        return
    console.print(f"account {account}: {previous.value} -> {state} ({reason})")


def main() -> None:  # console script entry point
    app()


if __name__ == "__main__":
    main()
