"""``tradingd data fetch``: download Alpaca bars into files ``tradingd replay`` reads.

Only typer and rich are imported at module level; alpaca-py, pandas and pyarrow load inside the
command, so ``tradingd --help`` stays fast. Registered with ``app.add_typer(data_app, name="data")``.
"""

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials
    from daemon.adapters.alpaca.history import FetchRequest, FetchResult

data_app = typer.Typer(help="Market data: download historical bars from Alpaca.", no_args_is_help=True,
                       add_completion=False)

def _consoles() -> tuple[Console, Console]:
    """stdout and stderr consoles, made when a command runs (so they size to that terminal/COLUMNS)."""
    return Console(), Console(stderr=True)


class Feed(str, Enum):
    iex = "iex"
    sip = "sip"


class Adjustment(str, Enum):  # member names upper case: "split" would shadow str.split
    RAW = "raw"
    SPLIT = "split"
    DIVIDEND = "dividend"
    ALL = "all"


class AssetClass(str, Enum):
    us_equity = "us_equity"
    crypto = "crypto"


class ChunkPeriod(str, Enum):
    month = "month"
    week = "week"
    day = "day"


@data_app.callback()
def _group() -> None:
    """Market data: download historical bars from Alpaca."""  # keeps `fetch` a subcommand


def _fail(message: str) -> NoReturn:
    _, err = _consoles()
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@data_app.command("fetch")
def fetch(
    symbols: Annotated[list[str], typer.Argument(help="Alpaca symbols, e.g. SPY QQQ (crypto: BTC/USD).",
                                                 show_default=False)],
    start: Annotated[str, typer.Option(help="First bar start (inclusive): a date (its midnight, New York time "
                                            "for US equities, UTC for crypto) or ISO-8601 with offset.",
                                       show_default=False)],
    end: Annotated[str, typer.Option(help="Bar start to stop before (exclusive): a date or ISO-8601 with offset.",
                                     show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", show_default=False,
                                      help="Folder for one SYMBOL.csv per symbol, quality.json and the fetch "
                                           "state (resumes an interrupted fetch).")],
    timeframe: Annotated[str, typer.Option(help="Bar length: 1Min, 5Min, 15Min, 30Min, 1Hour or 1Day "
                                                "(also 1min, 1h, 1d).")] = "1Min",
    feed: Annotated[Optional[Feed], typer.Option(help="US-equity feed (default: \\[alpaca] data_feed, else iex).",
                                                 show_default=False)] = None,
    adjustment: Annotated[Adjustment, typer.Option(help="Corporate-action adjustment of US-equity prices.")] = (
        Adjustment.RAW),
    asset_class: Annotated[Optional[AssetClass], typer.Option(
        help="us_equity or crypto (default: \\[alpaca] asset_class, else us_equity).", show_default=False)] = None,
    chunk: Annotated[ChunkPeriod, typer.Option(help="Request unit per symbol; each finished chunk is kept.")] = (
        ChunkPeriod.month),
    retries: Annotated[int, typer.Option(help="Retries of a request after 429, 5xx or a timeout.", min=0,
                                         max=10)] = 3,
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", metavar="FILE", show_default=False,
        help="TOML configuration (its \\[alpaca] section); default ./config.toml if present.")] = None,
    data_url: Annotated[Optional[str], typer.Option(
        metavar="URL", show_default=False,
        help="Data API base URL without /v2 (default: \\[alpaca] data_url, else https://data.alpaca.markets).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr).")] = True,
) -> None:
    """Download bars of SYMBOLS into OUT, resumably, and check their quality.

    Keys: ALPACA_API_KEY_ID and ALPACA_API_SECRET_KEY (or systemd credentials). Writes OUT/SYMBOL.csv (columns timestamp,open,high,low,close,volume; BTC/USD becomes BTCUSD.csv) and OUT/quality.json, for `tradingd replay --data OUT`. An interrupted fetch resumes where it stopped when run again.
    """
    from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials, CredentialsError
    from daemon.adapters.alpaca.history import EXCHANGE_TZ, FetchError, FetchRequest, parse_moment, parse_timeframe
    from daemon.config import ConfigError, load_config
    from daemon.help_defaults import DEFAULT_CONFIG

    path = config if config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    try:
        app_config = load_config(path)
    except ConfigError as exc:
        _fail(str(exc))
    alpaca = getattr(app_config, "alpaca", None) or AlpacaConfig()
    if data_url is not None:
        if not data_url.startswith(("http://", "https://")):
            _fail(f"--data-url {data_url!r}: expected http(s)://host[:port] without /v2")
        alpaca = alpaca.model_copy(update={"data_url": data_url.rstrip("/")})
    kind: Any = asset_class.value if asset_class is not None else alpaca.asset_class
    period: Any = chunk.value
    try:
        frame = parse_timeframe(timeframe)
        tz = EXCHANGE_TZ[kind]
        request = FetchRequest(symbols=tuple(symbols), timeframe=frame, start_ns=parse_moment(start, tz, "--start"),
                               end_ns=parse_moment(end, tz, "--end"), asset_class=kind,
                               feed=feed.value if feed is not None else alpaca.data_feed,
                               adjustment=adjustment.value, period=period)
        if out.exists() and not out.is_dir():
            raise FetchError(f"--out {out} is a file, not a folder")
    except FetchError as exc:
        _fail(str(exc))
    try:
        creds = AlpacaCredentials.load()
    except CredentialsError as exc:
        _fail(str(exc))
    console, err = _consoles()
    result = _run(request, alpaca, creds, out, err, retries=retries, progress=progress)
    _print_result(result, out, console, err)


def _run(request: "FetchRequest", alpaca: "AlpacaConfig", creds: "AlpacaCredentials", out: Path, err: Console, *,
         retries: int, progress: bool) -> "FetchResult":
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from daemon.adapters.alpaca.clients import RequestBudget, crypto_data_client, data_client, metered
    from daemon.adapters.alpaca.history import ChunkDone, FetchError, fetch_history

    make = crypto_data_client if request.asset_class == "crypto" else data_client
    client = metered(make(creds, alpaca, raw_data=True), RequestBudget(alpaca.requests_per_minute))
    done = [0, 0]  # chunks finished, of total

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("chunks, {task.fields[bars]:,} bars"), TimeElapsedColumn(), console=err,
                   disable=not progress)
    task = bar.add_task("fetching", total=None, bars=0)
    fetched = [0]

    def on_chunk(event: ChunkDone) -> None:
        done[:] = [event.done, event.total]
        fetched[0] += event.bars
        label = "reused" if event.reused else "fetched"
        bar.update(task, completed=event.done, total=event.total, bars=fetched[0],
                   description=f"{label} {event.chunk.symbol}")

    try:
        with bar:
            return fetch_history(client, request, out, on_chunk=on_chunk, retries=retries)
    except FetchError as exc:
        kept = f" ({done[0]} of {done[1]} chunks kept; run it again to resume)" if done[0] else ""
        _fail(f"{exc}{kept}")
    except KeyboardInterrupt:
        err.print(f"interrupted: {done[0]} of {done[1] or '?'} chunks are kept in {escape(str(out))}; run the same "
                  "command again to resume", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None


def _print_result(result: "FetchResult", out: Path, console: Console, err: Console) -> None:
    from rich.table import Table

    table = Table(title="data quality (as received)", title_justify="left")
    for name in ("symbol", "bars", "first", "last", "duplicates", "OHLC violations", "missing / expected",
                 "days without bars", "outside session"):
        stamp = name in ("first", "last")
        table.add_column(name, justify="left" if stamp or name == "symbol" else "right", no_wrap=stamp,
                         min_width=20 if stamp else None)
    for r in result.reports:
        gaps = r.gaps
        if gaps is None or not gaps.checked:
            missing, empty, outside = "not checked", "-", "-"
        else:
            missing = f"{gaps.missing:,} / {gaps.expected:,}"
            empty = f"{len(gaps.days_without_bars):,}" if gaps.calendar != "24/7" else "-"
            outside = f"{gaps.outside_session:,}" if gaps.calendar != "24/7" else "-"
        table.add_row(escape(r.symbol), f"{r.bars:,}", r.first or "-", r.last or "-", f"{r.duplicates:,}",
                      f"{r.ohlc_violations:,}", missing, empty, outside)
    console.print(table)
    for r in result.reports:
        if r.ohlc_violations:
            err.print(f"[yellow]warning:[/] {escape(r.symbol)}: {r.ohlc_violations} bars break OHLC rules (first at "
                      f"{r.violation_examples[0]}); `tradingd replay` refuses such files until they are fixed",
                      highlight=False, soft_wrap=True)
    for symbol in result.empty:
        err.print(f"[yellow]warning:[/] {escape(symbol)}: no bars in the window; no file written",
                  highlight=False, soft_wrap=True)
    written = ", ".join(p.name for p in result.files.values())
    console.print(f"Wrote {result.bars_written:,} bars to {escape(str(out))}/ ({escape(written)}) and "
                  f"{escape(result.quality_file.name)}; chunks: {result.chunks_fetched} fetched, "
                  f"{result.chunks_reused} reused", highlight=False, soft_wrap=True)
