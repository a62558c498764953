"""The live commands of the CLI: ``run``, ``status``, ``parity`` (registered by ``daemon.cli``).

Heavy modules (the kernel, the store, aiomqtt) are imported inside the commands so ``tradingd
--help`` stays fast.
"""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from daemon.cli_common import console, err
from daemon.cli_common import fail as _fail
from daemon.cli_common import load_app_config as _load


def run(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", metavar="FILE", show_default=False,
                                                   help="TOML configuration (default ./config.toml if present).")] = None,
    feed: Annotated[Optional[str], typer.Option(metavar="file|mqtt|alpaca", show_default=False,
                                                help="Where bars come from (default [live] feed = file).")] = None,
    broker: Annotated[Optional[str], typer.Option(metavar="paper|alpaca", show_default=False,
                                                  help="Where orders go (default [live] broker = paper). "
                                                       "alpaca: keys from ALPACA_API_KEY_ID / "
                                                       "ALPACA_API_SECRET_KEY; paper account unless [live] "
                                                       "mode = \"live\".")] = None,
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
    """Run the live node: recover the account (with Alpaca: reconcile it with the broker), then trade
    bars from the paced file feed, MQTT or Alpaca's stream through the same engine as `replay`,
    with the paper broker or Alpaca. Ctrl-C / SIGTERM stop it cleanly."""
    import asyncio

    from backtest.sources import DataError
    from daemon.config import ConfigError
    from daemon.live.alpaca_session import AlpacaStartupError
    from daemon.live.app import describe, open_session
    from daemon.replay_job import load_data
    from state.db import StoreError
    from state.recovery import RecoveryError

    try:
        cfg = _load(config, {"live.feed": feed, "live.broker": broker, "live.speed": speed, "live.account": account,
                             "live.clock": clock, "state.database_url": db})
        from alerts.logging import configure_logging

        configure_logging(cfg.logging.format, cfg.logging.level)
        series = load_data(cfg) if cfg.live.feed == "file" else None
        extra = _live_parts(cfg)
        session = open_session(cfg, cfg.live, series=series, **extra)
    except (ConfigError, DataError, StoreError, RecoveryError, AlpacaStartupError) as exc:
        _fail(str(exc))
        return
    if cfg.live.feed == "mqtt" or cfg.mqtt is not None:
        _attach_mqtt(cfg, session)
    _attach_operations(cfg, session, extra["notifier"])
    console.print(f"tradingd run: {cfg.live.mode} account [bold]{cfg.live.account}[/], broker {cfg.live.broker}, "
                  f"feed {cfg.live.feed}, "
                  f"session {session.session_id}; recovery: {describe(session)}", highlight=False, soft_wrap=True)
    try:
        asyncio.run(session.node.run(stop_when_feeds_end=exit_at_end))
    except AlpacaStartupError as exc:  # the startup reconciliation could not be done: nothing traded
        _fail(str(exc))
        return
    finally:
        session.close()
    node = session.node
    console.print(f"stopped ({node.stop_reason}): {node.handled:,} events, trading state "
                  f"{node.engine.risk.state.value}, equity {session.kernel.portfolio.equity:,.2f} USD", highlight=False)


def mqtt_settings(cfg: Any) -> Any:
    """The ``[mqtt]`` settings for the daemon's account (its topics are named after ``[live] account``)."""
    from daemon.adapters.mqtt_config import MqttConfig

    base = cfg.mqtt if cfg.mqtt is not None else MqttConfig()
    return base.model_copy(update={"account": cfg.live.account})


def _attach_mqtt(cfg: Any, session: Any) -> None:
    """One MQTT link for the session: bars in (``--feed mqtt``), control and telemetry."""
    import time

    from daemon.adapters.mqtt_bars import MqttBarFeed
    from daemon.adapters.mqtt_control import MqttControl
    from daemon.adapters.mqtt_link import MqttLink
    from daemon.adapters.mqtt_telemetry import MqttTelemetry

    settings = mqtt_settings(cfg)
    link = MqttLink(settings)
    node = session.node
    node.telemetry = MqttTelemetry(settings, link)
    seed = dict(node.engine.last_bar_ts)

    async def service(live_node: Any) -> None:
        if cfg.live.feed == "mqtt":
            # the producer-clock check is against the wall clock, also when the node's clock follows
            # historical bars (clock = "bars"); commands are stamped on the node's clock
            feed = MqttBarFeed(settings, live_node.enqueue, now_ns=time.time_ns)
            if seed:
                feed.seed(seed)
            link.subscribe(settings.topics.bars, feed.on_message)
        control = MqttControl(settings, live_node.enqueue, live_node.status, link, now_ns=live_node.time.now)
        link.subscribe(settings.topics.cmd, control.on_message)
        await link.run()

    node.services.append(service)
    node.on_stop.append(link.stop)


def _attach_operations(cfg: Any, session: Any, notifier: Any) -> None:
    """Health checks (heartbeat), the scheduler (end-of-day summary, equity snapshots) and the
    systemd watchdog, as services of the node; their events are handled by the node itself."""
    import time

    from daemon.health import HealthConfig, HealthMonitor, LoopLagProbe
    from daemon.scheduler import DaemonScheduler, EndOfDay, EquitySnapshot, HealthTick, SchedulerConfig
    from daemon.systemd import Watchdog

    node = session.node
    url = cfg.state.database_url
    state_dir = Path(url.split("///", 1)[1]).parent if url.startswith("sqlite:///") else Path.cwd()
    probe = LoopLagProbe()
    monitor = HealthMonitor(HealthConfig(), state_dir=state_dir, alerts=node.alerts, queue_depth=node.queue.qsize,
                            queue_capacity=node.queue.maxsize, last_bars=lambda: dict(node.engine.last_bar_ts),
                            lag_probe=probe, now_ns=time.time_ns)
    scheduler = DaemonScheduler(SchedulerConfig(), enqueue=node.enqueue, status=node.status,
                                health_check=monitor.check)
    watchdog = Watchdog(notifier.inner)
    notifier.kick = watchdog.kick

    def on_health(tick: HealthTick) -> None:
        node.last_heartbeat = tick.ts_init
        node.telemetry_publish("heartbeat", {**tick.report, "status": node.status()}, retain=True)

    def on_equity(snapshot: EquitySnapshot) -> None:
        node.telemetry_publish("equity", {"cash": snapshot.cash, "equity": snapshot.equity,
                                          "account": snapshot.account})

    def on_close(eod: EndOfDay) -> None:
        status = node.status()
        node.alerts.alert("info", f"daily summary {eod.session_date}",
                          f"equity {status['equity']:,.2f} USD, cash {status['cash']:,.2f} USD, "
                          f"{len(status['positions'])} positions, trading state {status['trading_state']}",
                          notify=True, account=node.account)

    node.node_handlers.update({HealthTick: on_health, EquitySnapshot: on_equity, EndOfDay: on_close})
    node.services += [lambda _n: probe.run(), lambda _n: scheduler.run(), lambda _n: watchdog.run()]


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
        self.inner = notifier
        self.kick: Any = None  # the systemd Watchdog's kick, once attached

    def ready(self, status: str = "") -> None:
        self._n.ready(status)

    def watchdog(self) -> None:
        if self.kick is not None:
            self.kick()

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
    except ConfigError as exc:
        _fail(str(exc))
        return
    reply = ask_daemon(cfg, "status")
    if reply is not None and reply.get("ok"):
        console.print_json(json.dumps({"source": "running daemon (MQTT)", **reply.get("result", {})}, default=str))
        return
    try:
        name = cfg.live.account
        with SqlStore(cfg.state, account=name) as store:
            restored = load_restored(store, name, starting_cash=cfg.replay.starting_cash)
            reconciliation = store.last_reconciliation(name)
            binding = store.broker_account(name)
    except (StoreError, RecoveryError) as exc:
        _fail(str(exc))
        return
    if restored is None:
        _fail(f"account {name!r} has no persisted state in {mask_url(cfg.state.database_url)}")
        return
    from core.time import iso

    risk = restored.risk
    report = {
        "account": name, "source": f"state database {mask_url(cfg.state.database_url)} (no daemon answered)",
        "trading_state": risk.state.value, "reason": risk.reason, "causes": risk.causes,
        "peak_equity": risk.peak_equity, "loss_streak": risk.loss_streak, "cash": restored.cash,
        "positions": {p.symbol: {"quantity": p.quantity, "avg_price": p.avg_price, "mark": p.mark}
                      for p in restored.positions},
        "open_orders": [{"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side.value,
                         "quantity": o.quantity, "filled": o.filled_quantity, "status": o.status.value}
                        for o in restored.open_orders],
        "last_bar": {s: iso(ts) for s, ts in sorted(restored.last_bar_ts.items())},
        "equity": restored.cash + sum(p.quantity * p.mark for p in restored.positions),
        "broker": {**(binding or {"broker": "paper"}), "connection": "unknown (no daemon answered)",
                   "last_reconciliation": reconciliation},
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


OPERATOR_PASSWORD_ENV = "TRADINGD_MQTT_OPERATOR_PASSWORD"


def ask_daemon(cfg: Any, command: str, reason: str = "", *, operator: str = "operator",
               timeout_s: float = 3.0) -> dict[str, Any] | None:
    """Send ``command`` to the running daemon of ``[live] account`` over MQTT and return its reply,
    or None when no daemon answers (or ``[mqtt]`` is not configured). The operator account's
    password comes from ``TRADINGD_MQTT_OPERATOR_PASSWORD``."""
    if cfg.mqtt is None:
        return None
    import asyncio

    from daemon.adapters.mqtt_config import MqttConfigError
    from daemon.adapters.mqtt_request import send_command

    settings = mqtt_settings(cfg).model_copy(update={"username": operator, "password_env": OPERATOR_PASSWORD_ENV,
                                                     "client_id": None})
    try:
        return asyncio.run(send_command(settings, command, reason=reason, timeout_s=timeout_s))
    except TimeoutError:
        return None
    except MqttConfigError as exc:
        err.print(f"[yellow]note:[/] cannot ask a running daemon ({escape(str(exc))}); using the state database",
                  highlight=False, soft_wrap=True)
        return None
    except Exception as exc:  # broker down or credentials refused: no daemon reachable
        err.print(f"[yellow]note:[/] no daemon reachable over MQTT ({type(exc).__name__}: {escape(str(exc))})",
                  highlight=False, soft_wrap=True)
        return None


def _reply(verb: str, reply: dict[str, Any]) -> None:
    import json

    if not reply.get("ok", False):
        _fail(f"the daemon refused {verb}: {reply.get('error', reply)}")
    console.print(f"daemon: {verb} done")
    console.print_json(json.dumps(reply.get("result", {}), default=str))


def _operator_command(verb: str, config: Path | None, account: str | None, reason: str, db: str | None,
                      operator: str) -> None:
    """pause / resume / flatten: to the running daemon; pause and resume also work on the stored
    state when no daemon runs (flatten needs a broker, so it needs the daemon)."""
    import time

    from core.events import PauseTrading, ResumeTrading
    from daemon.config import ConfigError
    from daemon.control import UnknownAccountError, apply_offline
    from state import mask_url
    from state.db import StoreError
    from state.recovery import RecoveryError
    from state.store import SqlStore

    try:
        cfg = _load(config, {"live.account": account, "state.database_url": db})
    except ConfigError as exc:
        _fail(str(exc))
        return
    reply = ask_daemon(cfg, verb, reason, operator=operator)
    if reply is not None:
        _reply(verb, reply)
        return
    if verb == "flatten":
        _fail(f"no running daemon answered for account {cfg.live.account!r}: flatten needs the daemon (it trades "
              "through the broker); start `tradingd run` or check [mqtt] and TRADINGD_MQTT_OPERATOR_PASSWORD")
        return
    ts = time.time_ns()
    command = (PauseTrading(reason=reason, ts_event=ts, ts_init=ts) if verb == "pause"
               else ResumeTrading(reason=reason, ts_event=ts, ts_init=ts))
    try:
        with SqlStore(cfg.state, account=cfg.live.account) as store:
            before, change = apply_offline(store, cfg.live.account, command, cfg.risk)
    except (StoreError, UnknownAccountError, RecoveryError) as exc:
        _fail(str(exc))
        return
    where = mask_url(cfg.state.database_url)
    if change is None:
        console.print(f"account {cfg.live.account}: {verb} changed nothing (state {before.value}); {where}")
    else:
        console.print(f"account {cfg.live.account}: {change.previous.value} -> {change.current.value} ({reason}); "
                      f"no daemon running: written to {where}")


def _command(verb: str, doc: str) -> Any:
    def command(
        reason: Annotated[str, typer.Option(metavar="TEXT", help="Why (recorded).")] = f"operator {verb}",
        account: Annotated[Optional[str], typer.Option(metavar="NAME", show_default=False,
                                                       help="Account (default [live] account).")] = None,
        config: Annotated[Optional[Path], typer.Option("--config", "-c", metavar="FILE", show_default=False,
                                                       help="TOML configuration.")] = None,
        db: Annotated[Optional[str], typer.Option("--db", metavar="URL", show_default=False,
                                                  help="State database URL (when no daemon runs).")] = None,
        operator: Annotated[str, typer.Option(metavar="USER", help="MQTT operator account (password in "
                                                                    "TRADINGD_MQTT_OPERATOR_PASSWORD).")] = "operator",
    ) -> None:
        _operator_command(verb, config, account, reason, db, operator)

    command.__doc__ = doc
    command.__name__ = verb
    return command


def register(app: typer.Typer) -> None:
    """Add the live commands to ``app``."""
    for command in (run, status, parity):  # one paragraph each: rich wraps it to the terminal
        app.command(help=" ".join((command.__doc__ or "").split()))(command)
    app.command("pause")(_command("pause", "Stop opening positions (exits still go through) until `resume`: on the "
                                           "running daemon over MQTT, else on the stored state."))
    app.command("resume")(_command("resume", "End a pause (other breakers and HALTED are unaffected)."))
    app.command("flatten")(_command("flatten", "Close every position of the running daemon's account with market "
                                               "orders (the trading state is unchanged)."))


__all__ = ["parity", "register", "run", "status"]
