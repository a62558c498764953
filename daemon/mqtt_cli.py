"""``tradingd mqtt publish-bars``: send bar files to the daemon's MQTT feed (a producer for testing and demos).

Only typer and rich are imported here at module level; the bar loader and aiomqtt are imported
inside the command, so ``tradingd --help`` stays fast. Register with
``app.add_typer(mqtt_app, name="mqtt")``.
"""

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

mqtt_app = typer.Typer(help="MQTT tools: publish bar files to the live daemon's MQTT feed.", no_args_is_help=True,
                       add_completion=False)
from daemon.cli_common import console, err
from daemon.cli_common import fail as _fail


@mqtt_app.callback()
def _group() -> None:
    """MQTT tools: publish bar files to the live daemon's MQTT feed."""  # keeps `publish-bars` a subcommand


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"{option} {text!r}: not ISO-8601 (e.g. 2020-01-02T14:30:00Z)")
    if moment.tzinfo is None:
        _fail(f"{option} {text!r}: needs a timezone, e.g. 2020-01-02T14:30:00Z")
    return moment


@mqtt_app.command("publish-bars")
def publish_bars(
    files: Annotated[list[Path], typer.Argument(help="Bar files (.csv, .csv.gz, .parquet), one symbol each.",
                                                show_default=False)],
    speed: Annotated[float, typer.Option(help="Bar-seconds per second (3600: one hourly bar a second); "
                                              "0 = as fast as the broker acknowledges.", min=0)] = 0.0,
    host: Annotated[str, typer.Option(help="MQTT broker host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="MQTT broker port.", min=1, max=65535)] = 1883,
    user: Annotated[Optional[str], typer.Option(help="Broker username (a bar-producer account).",
                                                show_default=False)] = None,
    password_env: Annotated[str, typer.Option(help="Environment variable holding the password.")] = (
        "TRADINGD_MQTT_PASSWORD"),
    prefix: Annotated[str, typer.Option(help="Topic prefix: bars go to PREFIX/bars/SYMBOL.")] = "tradingd",
    timeframe: Annotated[Optional[str], typer.Option(help="Bar length such as 1min or 1h (inferred from the "
                                                          "files when absent).", show_default=False)] = None,
    start: Annotated[Optional[str], typer.Option(help="First bar start to send (inclusive), ISO-8601 with "
                                                      "timezone.", show_default=False)] = None,
    end: Annotated[Optional[str], typer.Option(help="Bar start to stop before (exclusive), ISO-8601 with "
                                                    "timezone.", show_default=False)] = None,
    client_id: Annotated[Optional[str], typer.Option(help="MQTT client identifier (random when absent).",
                                                     show_default=False)] = None,
) -> None:
    """Publish bar files to PREFIX/bars/SYMBOL as JSON frames at QoS 1, reconnecting until every bar is
    acknowledged (a bar may arrive twice after a broker restart; the daemon drops the duplicate)."""
    import asyncio

    from alerts.logging import configure_logging
    from backtest.data import load_data
    from backtest.sources import DataError
    from daemon.adapters.mqtt_producer import ProducerError
    from daemon.adapters.mqtt_producer import publish_bars as publish

    password = None
    if user is not None:
        password = os.environ.get(password_env)
        if password is None:
            _fail(f"user {user!r} needs its password in the environment variable {password_env}")
    try:
        series = load_data(files, timeframe=timeframe, start=_moment(start, "--start"), end=_moment(end, "--end"))
    except (DataError, OSError, ValueError) as exc:
        _fail(str(exc))
    configure_logging("console", "INFO")
    total = sum(len(s) for s in series)
    console.print(f"publishing {total:,} bars of {', '.join(s.symbol for s in series)} to "
                  f"{escape(prefix)}/bars/<symbol> on {escape(host)}:{port}", highlight=False)
    try:
        report = asyncio.run(publish(series, host=host, port=port, username=user, password=password, prefix=prefix,
                                     speed=speed, client_id=client_id))
    except ProducerError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        raise typer.Exit(130) from None
    console.print(f"published {report.published:,} bars in {report.seconds:.1f} s "
                  f"({report.reconnects} reconnects, {report.resent} sent again)", highlight=False)
