"""``tradingd runs list|show|compare|prune``: the runs in the state database.

Only typer and rich are imported here at module level; the store and the configuration are
imported inside the commands, so ``tradingd --help`` stays fast. Register with
``app.add_typer(runs_app, name="runs")``.

Opening the store marks runs of this host still ``running`` whose process is gone (kill -9)
``interrupted``; every command says so when it happens.
"""

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from state.store import SqlStore

runs_app = typer.Typer(help="List, inspect, compare and prune the runs in the state database.",
                       no_args_is_help=True, add_completion=False)
from daemon.cli_common import console, err
from daemon.cli_common import fail as _fail

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="TOML configuration file (for \\[state] database_url).")]
DbOpt = Annotated[Optional[str], typer.Option("--db", help="State database URL (default \\[state] database_url).")]
RunArg = Annotated[str, typer.Argument(help="Run id, or a unique prefix of it.", show_default=False)]

# (metrics key, column label, kind): kind "pct" fractions shown as percent, "num" 2 decimals, "int"
KEY_METRICS = (("total_return", "return", "pct"), ("sharpe", "sharpe", "num"), ("max_drawdown", "max dd", "pct"),
               ("trades", "trades", "int"))
_PCT_METRICS = {"total_return", "cagr", "volatility", "max_drawdown", "win_rate", "exposure", "turnover"}
_MAX_CHANGES_SHOWN = 20
_UNITS_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def _open(config: Path, db: str | None) -> "SqlStore":
    """Open the configured store (errors exit 2) and report runs found stale on opening."""
    from daemon.config import ConfigError, load_config
    from state.store import SqlStore, StoreError

    try:  # like replay: only the default config.toml may be absent (built-in defaults then)
        cfg = load_config(config if config.exists() or config != Path("config.toml") else None,
                          {"state.database_url": db} if db else None)
        store = SqlStore(cfg.state)
    except (ConfigError, StoreError) as exc:
        _fail(str(exc))
    for run_id, note in store.stale_runs:
        err.print(f"[yellow]marked run {escape(run_id)} interrupted[/]: {escape(note)}", highlight=False)
    return store


def _resolve(store: "SqlStore", prefix: str) -> dict[str, Any]:
    from state.store import StoreError

    try:
        run = store.run(store.resolve_run(prefix))
    except StoreError as exc:
        _fail(str(exc))
    assert run is not None
    return run


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _fmt(key: str, value: Any) -> str:
    """A metric as a person reads it: fractions as percent, ratios with 2 decimals."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    if key in _PCT_METRICS:
        return f"{value * 100:.2f}%"
    if isinstance(value, int) or key in ("trades", "bars"):
        return f"{int(value):,}"
    return f"{value:.2f}"


def _strategy_metrics(run: dict[str, Any]) -> dict[str, Any]:
    metrics = run.get("metrics") or {}
    strategy = metrics.get("strategy")
    return strategy if isinstance(strategy, dict) else {}


def _bars(run: dict[str, Any]) -> str:
    metrics = run.get("metrics") or {}
    bars, total = metrics.get("bars"), metrics.get("bars_total")
    if bars is None:
        return "-"
    return f"{bars:,}" if total in (None, bars) else f"{bars:,}/{total:,}"


def _status(status: str) -> str:
    colour = {"finished": "green", "running": "cyan", "failed": "red", "interrupted": "yellow"}.get(status)
    return f"[{colour}]{status}[/]" if colour else escape(status)


def _print_wide(table: Table) -> None:
    """Print ``table`` without squeezing it: one run per line even in a pipe or a narrow terminal."""
    natural = console.measure(table, options=console.options.update(max_width=100_000)).maximum
    width = max(console.width, natural)
    Console(width=width, force_terminal=console.is_terminal, no_color=console.no_color).print(table)


def _parse_age(text: str) -> int:
    """``"30d"`` -> seconds (units s, m/min, h, d, w)."""
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number):] or "d"
    if not number.isdigit() or int(number) <= 0 or unit not in _UNITS_S:
        raise ValueError(f"--older-than {text!r}: expected a positive age like 30d, 12h, 2w")
    return int(number) * _UNITS_S[unit]


@runs_app.command("list")
def list_runs(limit: Annotated[int, typer.Option(min=1, help="Show at most this many runs (the newest).")] = 20,
              status: Annotated[Optional[str], typer.Option(help="Only these statuses, comma-separated "
                                                                 "(finished, failed, interrupted, running).")] = None,
              config: ConfigOpt = Path("config.toml"), db: DbOpt = None) -> None:
    """List runs, newest first, one per line: id, kind, strategy, status, start (UTC), bars and key
    metrics (total return, Sharpe, max drawdown, closed trades)."""
    store = _open(config, db)
    try:
        statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
        runs = store.find_runs(statuses=statuses, limit=limit)
    finally:
        store.close()
    if not runs:
        console.print(f"no runs in {store.url}")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("id", "kind", "strategy", "status", "started (UTC)", "bars"):
        table.add_column(name, no_wrap=True)
    for _key, label, _kind in KEY_METRICS:
        table.add_column(label, justify="right", no_wrap=True)
    for run in runs:
        metrics = _strategy_metrics(run)
        table.add_row(escape(run["id"]), run["kind"], escape(run["strategy_id"]), _status(run["status"]),
                      _when(run["started_ns"]), _bars(run), *(_fmt(key, metrics.get(key)) for key, _l, _k in KEY_METRICS))
    _print_wide(table)


@runs_app.command()
def show(run_id: RunArg, config: ConfigOpt = Path("config.toml"), db: DbOpt = None) -> None:
    """Show one run: status and how it ended, parameters, config and data hashes, metrics,
    trading-state changes and how many orders, fills and trades it stored."""
    store = _open(config, db)
    try:
        run = _resolve(store, run_id)
        changes = store.run_state_changes(run["id"])
        counts = store.count_run_rows([run["id"]])
    finally:
        store.close()
    console.print(f"[bold]{escape(run['id'])}[/]  {run['kind']} of {escape(run['strategy_id'])}  "
                  f"{_status(run['status'])}", highlight=False)
    info = Table(box=None, show_header=False, pad_edge=False)
    info.add_column(style="dim")
    info.add_column()
    info.add_row("started", f"{_when(run['started_ns'])} UTC")
    info.add_row("finished", f"{_when(run['finished_ns'])} UTC" if run["finished_ns"] else "-")
    if run.get("note"):
        info.add_row("note", escape(run["note"]))
    info.add_row("account", escape(run["account"]))
    if run.get("pid") is not None:
        info.add_row("process", f"{run['pid']} on {escape(run.get('hostname') or '?')}")
    info.add_row("bars", _bars(run))
    info.add_row("config hash", run["config_hash"] or "-")
    info.add_row("data hash", run["data_hash"] or "-")
    info.add_row("rows", ", ".join(f"{counts[name]:,} {label}" for name, label in (
        ("orders", "orders"), ("fills", "fills"), ("trades", "trades"), ("decisions", "decisions"),
        ("equity_snapshots", "equity snapshots"), ("positions", "positions"))))
    console.print(info)
    params = run.get("params") or {}
    if params:
        table = Table(title="parameters", title_justify="left", box=None, pad_edge=False)
        table.add_column("param")
        table.add_column("value", justify="right")
        for key in sorted(params):
            table.add_row(escape(key), escape(repr(params[key])))
        console.print(table)
    metrics = run.get("metrics") or {}
    strategy = _strategy_metrics(run)
    if strategy:
        bench = metrics.get("benchmark") or metrics.get("buy_and_hold") or {}
        table = Table(title="metrics", title_justify="left", box=None, pad_edge=False)
        table.add_column("metric")
        table.add_column("strategy", justify="right")
        name = metrics.get("benchmark_name") or ("buy_and_hold" if "buy_and_hold" in metrics else "")
        if bench:
            table.add_column(f"benchmark ({name})" if name else "benchmark", justify="right")
        for key, value in strategy.items():
            if isinstance(value, (int, float)) or value is None:
                table.add_row(key, _fmt(key, value), *([_fmt(key, bench.get(key))] if bench else []))
        console.print(table)
    elif run["status"] != "running":
        console.print("[dim]no metrics: the run did not complete[/]")
    if changes:
        table = Table(title=f"trading-state changes ({len(changes)})", title_justify="left", box=None, pad_edge=False)
        for column in ("time (UTC)", "from", "to", "reason"):
            table.add_column(column)
        for change in changes[:_MAX_CHANGES_SHOWN]:
            table.add_row(_when(change["ts"]), change["previous"].value, change["state"].value, escape(change["reason"]))
        console.print(table)
        if len(changes) > _MAX_CHANGES_SHOWN:
            console.print(f"[dim]... {len(changes) - _MAX_CHANGES_SHOWN} more (all in the run's breakers.csv)[/]")
    else:
        console.print("[dim]no trading-state changes[/]")


@runs_app.command()
def compare(run_a: Annotated[str, typer.Argument(help="First run (id or unique prefix).", show_default=False)],
            run_b: Annotated[str, typer.Argument(help="Second run (id or unique prefix).", show_default=False)],
            config: ConfigOpt = Path("config.toml"), db: DbOpt = None) -> None:
    """Compare two runs side by side: setup (differences highlighted), parameters and metrics with
    the change from the first run to the second."""
    store = _open(config, db)
    try:
        a, b = _resolve(store, run_a), _resolve(store, run_b)
    finally:
        store.close()
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("")
    table.add_column(escape(a["id"]), justify="right")
    table.add_column(escape(b["id"]), justify="right")
    table.add_column("change", justify="right")

    def row(label: str, left: str, right: str, change: str = "") -> None:
        if left != right:  # a difference in the setup is what a reader looks for first
            table.add_row(f"[bold yellow]{escape(label)}[/]", f"[yellow]{left}[/]", f"[yellow]{right}[/]",
                          change or "[yellow]differs[/]")
        else:
            table.add_row(escape(label), left, right, change)

    for label, key in (("kind", "kind"), ("strategy", "strategy_id"), ("status", "status"),
                       ("config hash", "config_hash"), ("data hash", "data_hash")):
        left, right = str(a.get(key) or "-"), str(b.get(key) or "-")
        if key.endswith("hash"):
            left, right = left[:12], right[:12]
        row(label, escape(left), escape(right))
    row("started (UTC)", _when(a["started_ns"]), _when(b["started_ns"]), " ")
    row("bars", _bars(a), _bars(b))
    params_a, params_b = a.get("params") or {}, b.get("params") or {}
    for key in sorted(set(params_a) | set(params_b)):
        row(f"param {key}", *(escape(repr(p[key])) if key in p else "-" for p in (params_a, params_b)))
    metrics_a, metrics_b = _strategy_metrics(a), _strategy_metrics(b)
    for key in [*metrics_a, *(k for k in metrics_b if k not in metrics_a)]:
        va, vb = metrics_a.get(key), metrics_b.get(key)
        table.add_row(escape(key), escape(_fmt(key, va)), escape(_fmt(key, vb)), _delta(key, va, vb))
    if not metrics_a or not metrics_b:
        table.add_row("[dim]metrics[/]", "-" if not metrics_a else "", "-" if not metrics_b else "",
                      "[dim]a run without metrics did not complete[/]")
    _print_wide(table)


@runs_app.command()
def prune(keep: Annotated[Optional[int], typer.Option(min=0, help="Keep the N newest of the selected runs.")] = None,
          older_than: Annotated[Optional[str], typer.Option(help="Only runs started longer ago than this, "
                                                                 "e.g. 30d, 12h, 2w.")] = None,
          status: Annotated[Optional[str], typer.Option(help="Only these statuses, comma-separated, e.g. "
                                                             "failed,interrupted.")] = None,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed; change nothing.")] = False,
          config: ConfigOpt = Path("config.toml"), db: DbOpt = None) -> None:
    """Delete replay runs and all their rows (orders, fills, trades, decisions, equity, positions and
    the run's own account state) in one transaction, then VACUUM a SQLite file so it shrinks.

    Select with --status and/or --older-than (both: runs matching both); --keep N spares the N
    newest of them. Running runs and live runs are never pruned.
    """
    import time

    from state.store import StoreError

    if keep is None and older_than is None and status is None:
        _fail("say what to prune: --keep N, --older-than AGE and/or --status LIST (see --help)")
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
    if statuses is not None and "running" in statuses:
        _fail("--status running: running runs are never pruned (a run whose process died is marked "
              "interrupted when the store is opened)")
    try:
        before_ns = time.time_ns() - _parse_age(older_than) * 1_000_000_000 if older_than else None
    except ValueError as exc:
        _fail(str(exc))
        return
    store = _open(config, db)
    try:
        selected = [r for r in store.find_runs(statuses=statuses, kinds=["replay"], started_before_ns=before_ns)
                    if r["status"] != "running"]
        doomed = selected[keep:] if keep is not None else selected
        if not doomed:
            console.print(f"nothing to prune in {store.url}")
            return
        ids = [r["id"] for r in doomed]
        path = store.sqlite_path
        size_before = _file_size(path)
        counts = store.count_run_rows(ids) if dry_run else store.delete_runs(ids)
        vacuumed = False if dry_run else store.vacuum()
    except StoreError as exc:
        _fail(str(exc))
        return
    finally:
        store.close()
    verb = "would remove" if dry_run else "removed"
    for run in doomed:
        console.print(f"{verb} {escape(run['id'])}  {_status(run['status'])}  started {_when(run['started_ns'])}",
                      highlight=False)
    rows = ", ".join(f"{counts.get(name, 0):,} {label}" for name, label in (
        ("orders", "orders"), ("fills", "fills"), ("trades", "trades"), ("decisions", "decisions"),
        ("equity_snapshots", "equity snapshots"), ("positions", "positions"), ("journal", "journal entries"),
        ("account_state", "account-state rows")))
    console.print(f"{verb} {len(doomed)} run{'s' if len(doomed) != 1 else ''} and {rows} from {store.url}",
                  highlight=False, soft_wrap=True)
    if not dry_run and path is not None:
        size_after = _file_size(path)
        note = "" if vacuumed else " (VACUUM skipped: the database is busy; space is reused by later runs)"
        console.print(f"database file {_mb(size_before)} -> {_mb(size_after)}{note}", highlight=False)


def _delta(key: str, a: Any, b: Any) -> str:
    """``b - a`` signed: percentage points for fractions; blank unless both are numbers."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (a, b)):
        return ""
    delta = b - a
    if key in _PCT_METRICS:
        return f"{delta * 100:+.2f} pp"
    return f"{delta:+,}" if isinstance(delta, int) else f"{delta:+.2f}"


def _file_size(path: Path | None) -> int:
    """Bytes of a SQLite database with its write-ahead log."""
    if path is None:
        return 0
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


__all__ = ["runs_app"]

if __name__ == "__main__":  # python -m daemon.runs ... (until the tradingd app registers it)
    runs_app(prog_name="tradingd runs")
