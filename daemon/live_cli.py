"""The live commands of the CLI: ``run``, ``status``, ``parity`` (registered by ``daemon.cli``).

Heavy modules (the kernel, the store, aiomqtt) are imported inside the commands so ``tradingd
--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _load(config: Path | None, overrides: dict[str, Any]) -> Any:
    from daemon.config import load_config

    path = config if config is not None else (Path("config.toml") if Path("config.toml").exists() else None)
    return load_config(path, {k: v for k, v in overrides.items() if v is not None})


def run(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", metavar="FILE", show_default=False,
                                                   help="TOML configuration (default ./config.toml if present).")] = None,
    feed: Annotated[Optional[str], typer.Option(metavar="file|mqtt", show_default=False,
                                                help="Where bars come from (default [live] feed = file).")] = None,
    speed: Annotated[Optional[float], typer.Option(metavar="N", show_default=False,
                                                   help="File feed: bar-seconds per second (default [live] speed "
                                                        "= 600); 0 = as fast as possible.")] = None,
    account: Annotated[Optional[str], typer.Option(metavar="NAME", show_default=False,
                                                   help="Account to resume and trade (default [live] account).")] = None,
    clock: Annotated[Optional[str], typer.Option(metavar="auto|bars|wall", show_default=False,
                                                 help="Time source (default [live] clock = auto).")] = None,
    db: Annotated[Optional[str], typer.Option("--db", metavar="URL", show_default=False,
                                              help="State database URL (default [state] database_url).")] = None,
    exit_at_end: Annotated[bool, typer.Option("--exit-at-end", show_default=False,
                                              help="Stop when the file feed has no more bars.")] = False,
) -> None:
    """Run the live node: recover the account, then trade bars from the paced file feed or MQTT
    through the same engine as `replay`, with the paper broker. Ctrl-C / SIGTERM stop it cleanly."""
    import asyncio

    from backtest.sources import DataError
    from daemon.config import ConfigError
    from daemon.live.app import describe, open_session
    from daemon.replay_job import load_data
    from state.db import StoreError
    from state.recovery import RecoveryError

    try:
        cfg = _load(config, {"live.feed": feed, "live.speed": speed, "live.account": account,
                             "live.clock": clock, "state.database_url": db})
        from alerts.logging import configure_logging

        configure_logging(cfg.logging.format, cfg.logging.level)
        series = load_data(cfg) if cfg.live.feed == "file" else None
        extra = _live_parts(cfg)
        session = open_session(cfg, cfg.live, series=series, **extra)
    except (ConfigError, DataError, StoreError, RecoveryError) as exc:
        _fail(str(exc))
        return
    console.print(f"tradingd run: {cfg.live.mode} account [bold]{cfg.live.account}[/], feed {cfg.live.feed}, "
                  f"session {session.session_id}; recovery: {describe(session)}", highlight=False, soft_wrap=True)
    try:
        asyncio.run(session.node.run(stop_when_feeds_end=exit_at_end))
    finally:
        session.close()
    node = session.node
    console.print(f"stopped ({node.stop_reason}): {node.handled:,} events, trading state "
                  f"{node.engine.risk.state.value}, equity {session.kernel.portfolio.equity:,.2f} USD", highlight=False)


def _live_parts(cfg: Any) -> dict[str, Any]:
    """Notifier (systemd) and alert routing (Slack from the environment) of a live session."""
    from alerts.router import AlertRouter
    from alerts.sinks import LogAlertSink
    from alerts.slack import SlackAlertSink
    from daemon.systemd import Notifier

    slack = SlackAlertSink.from_env()
    parts: dict[str, Any] = {"notifier": _NotifierAdapter(Notifier.from_environ())}
    if slack is not None:
        parts["alerts"] = AlertRouter(slack, LogAlertSink())
    return parts


class _NotifierAdapter:
    """daemon.systemd.Notifier behind the node's Notifier protocol."""

    def __init__(self, notifier: Any) -> None:
        self._n = notifier

    def ready(self, status: str = "") -> None:
        self._n.ready(status)

    def watchdog(self) -> None:
        self._n.watchdog()

    def stopping(self, status: str = "") -> None:
        self._n.stopping(status)

    def status(self, text: str) -> None:
        self._n.status(text)


def status(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", metavar="FILE", show_default=False,
                                                   help="TOML configuration.")] = None,
    account: Annotated[Optional[str], typer.Option(metavar="NAME", show_default=False,
                                                   help="Account (default [live] account).")] = None,
    db: Annotated[Optional[str], typer.Option("--db", metavar="URL", show_default=False,
                                              help="State database URL.")] = None,
) -> None:
    """Show an account's trading state and its reason, cash, positions, open orders, breakers and
    last bars, from the state database."""
    import json

    from daemon.config import ConfigError
    from state import mask_url
    from state.db import StoreError
    from state.recovery import RecoveryError, load_restored
    from state.store import SqlStore

    try:
        cfg = _load(config, {"live.account": account, "state.database_url": db})
        name = cfg.live.account
        with SqlStore(cfg.state, account=name) as store:
            restored = load_restored(store, name, starting_cash=cfg.replay.starting_cash)
    except (ConfigError, StoreError, RecoveryError) as exc:
        _fail(str(exc))
        return
    if restored is None:
        _fail(f"account {name!r} has no persisted state in {mask_url(cfg.state.database_url)}")
        return
    from core.time import iso

    risk = restored.risk
    report = {
        "account": name, "source": f"state database {mask_url(cfg.state.database_url)} (no daemon queried)",
        "trading_state": risk.state.value, "reason": risk.reason, "causes": risk.causes,
        "peak_equity": risk.peak_equity, "loss_streak": risk.loss_streak, "cash": restored.cash,
        "positions": {p.symbol: {"quantity": p.quantity, "avg_price": p.avg_price, "mark": p.mark}
                      for p in restored.positions},
        "open_orders": [{"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side.value,
                         "quantity": o.quantity, "filled": o.filled_quantity, "status": o.status.value}
                        for o in restored.open_orders],
        "last_bar": {s: iso(ts) for s, ts in sorted(restored.last_bar_ts.items())},
        "equity": restored.cash + sum(p.quantity * p.mark for p in restored.positions),
    }
    console.print_json(json.dumps(report))


def parity(
    session: Annotated[str, typer.Argument(metavar="SESSION", help="Live session (run id) to check.")],
    config: Annotated[Optional[Path], typer.Option("--config", "-c", metavar="FILE", show_default=False,
                                                   help="TOML configuration.")] = None,
    db: Annotated[Optional[str], typer.Option("--db", metavar="URL", show_default=False,
                                              help="State database URL.")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", metavar="KEY=VALUE", show_default=False,
                                                       help="Strategy parameter to change for the replay.")] = None,
) -> None:
    """Replay a live session's journal through a fresh engine and report whether every decision and
    order matches, or the first divergence (exit 1)."""
    from daemon.config import ConfigError
    from daemon.parity import check_parity
    from state.db import StoreError
    from state.journal import JournalError
    from state.queries import UnknownRunError
    from state.store import SqlStore

    params: dict[str, Any] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--param {item!r}: expected KEY=VALUE")
        params[key.strip()] = value.strip()
    try:
        cfg = _load(config, {"state.database_url": db})
        with SqlStore(cfg.state) as store:
            run_id = store.resolve_run(session)
            report = check_parity(store, run_id, params=params or None)
    except (ConfigError, StoreError, JournalError, UnknownRunError) as exc:
        _fail(str(exc))
        return
    head = f"session {report.session}: {report.events:,} journaled events, {report.decisions:,} decisions, " \
           f"{report.orders:,} orders"
    if report.ok:
        console.print(f"[green]parity[/]: {head}; the replay of the journal matches every decision and order",
                      highlight=False, soft_wrap=True)
        return
    console.print(f"[red]divergence[/]: {head}; first difference: {escape(report.divergence or '')}",
                  highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the live commands to ``app``."""
    app.command()(run)
    app.command()(status)
    app.command()(parity)


__all__ = ["parity", "register", "run", "status"]
