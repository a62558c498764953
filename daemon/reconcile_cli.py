"""``tradingd reconcile``: compare an account's stored state with its Alpaca account, offline.

Read-only towards trading: nothing is sent to the broker and no event is applied. It reads the
account from the state database (as ``tradingd status`` does) and the broker's orders,
positions, cash and fills through REST, prints the differences and a verdict, binds the account
to the broker account on first use (paper and live never share a state database) and saves the
result (reason ``"cli"``). Exit status: 0 everything explained, 1 unexplained differences, 2 the
check could not be made (the message says why; never a key).

Heavy modules are imported inside the command so ``tradingd --help`` stays fast.
"""

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from daemon.cli_common import fail as _fail

__all__ = ["reconcile", "register"]


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.2f}"
    return str(value)


def _table(report: Any) -> Any:
    from rich.table import Table

    table = Table(title=f"reconciliation with Alpaca account {report.account_number}", title_justify="left")
    for name in ("kind", "symbol", "client_order_id", "local", "broker", "explained", "detail"):
        table.add_column(name, overflow="fold")
    for d in report.differences:
        table.add_row(d.kind, d.symbol or "-", d.client_order_id or "-", escape(_shown(d.local)),
                      escape(_shown(d.broker)), "yes" if d.explained else "[bold red]NO[/]", escape(d.detail))
    return table


def reconcile(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", metavar="FILE", show_default=False,
                                                   help="TOML configuration (default ./config.toml if present).")] = None,
    account: Annotated[Optional[str], typer.Option(metavar="NAME", show_default=False,
                                                   help="Account (default [live] account).")] = None,
    db: Annotated[Optional[str], typer.Option("--db", metavar="URL", show_default=False,
                                              help="State database URL (default [state] database_url).")] = None,
    as_json: Annotated[bool, typer.Option("--json", show_default=False,
                                          help="Print the report as JSON instead of a table.")] = False,
) -> None:
    """Compare the account's stored orders, positions and cash with its Alpaca account (keys from
    ALPACA_API_KEY_ID / ALPACA_API_SECRET_KEY) and explain every difference; nothing is traded.
    Exit 0: all explained; 1: unexplained differences (the daemon would halt); 2: error."""
    import asyncio

    from alerts.sinks import MemoryAlertSink
    from daemon.adapters.alpaca.clients import RequestBudget, trading_client
    from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials, CredentialsError
    from daemon.adapters.alpaca.reconcile import AlpacaReconciler, ReconcileError
    from daemon.config import ConfigError, load_config
    from state.db import StoreError
    from state.reconcile import LocalSnapshot
    from state.recovery import RecoveryError, load_restored
    from state.store import SqlStore

    try:
        path = config if config is not None else (Path("config.toml") if Path("config.toml").exists() else None)
        cfg = load_config(path, {k: v for k, v in {"live.account": account, "state.database_url": db}.items()
                                 if v is not None})
        creds = AlpacaCredentials.load()
    except (ConfigError, CredentialsError) as exc:
        _fail(str(exc))
        return
    alpaca_cfg = getattr(cfg, "alpaca", None) or AlpacaConfig()
    mode = str(getattr(cfg.live, "mode", "paper"))
    name = cfg.live.account
    try:
        with SqlStore(cfg.state, account=name) as store:
            restored = load_restored(store, name, starting_cash=cfg.replay.starting_cash)
            bound = store.broker_account(name)
            number = (bound["broker_account_number"] if bound is not None and bound["broker"] == "alpaca"
                      else alpaca_cfg.live_account_number if mode == "live" else None)
            local = LocalSnapshot.from_restored(restored, store.account_orders(name), broker_account_number=number,
                                                cash=cfg.replay.starting_cash)
            client = trading_client(creds, alpaca_cfg, paper=mode != "live")
            reconciler = AlpacaReconciler(client, None, budget=RequestBudget(alpaca_cfg.requests_per_minute),
                                          alerts=MemoryAlertSink(), cfg=alpaca_cfg, store=store, account=name)
            report = asyncio.run(reconciler.check(local, "cli", save=False))
            if not any(d.kind == "account_mismatch" for d in report.differences):
                store.bind_broker_account(name, "alpaca", mode, report.account_number)
            store.save_reconciliation(report, "cli", account=name)
    except (StoreError, RecoveryError, ReconcileError, ValueError) as exc:
        _fail(str(exc))
        return
    console = Console()  # made now, not at import: it takes the terminal width of this run
    if as_json:
        console.print_json(json.dumps({"account": name, "mode": mode, **report.summary()}))
    else:
        if report.differences:
            console.print(_table(report))
        colour = "green" if report.ok else "bold red"
        console.print(f"[{colour}]{escape(report.verdict())}[/] (account {escape(name)}, {mode}, "
                      f"{len(local.orders)} stored orders)", highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``reconcile`` to ``app`` (called by ``daemon.cli``)."""
    app.command("reconcile", help=" ".join((reconcile.__doc__ or "").split()))(reconcile)
