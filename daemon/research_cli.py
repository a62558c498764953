"""What the seven commands on a finished run share (``montecarlo``, ``benchmark``, ``robustness``,
``sizing``, ``attribution``, ``journal``, ``readiness``), written once:

* the ``RUN`` argument and the ``--out``, ``--db``, ``--config``, ``--progress`` (and, for the
  commands that load the run's bars, ``--data``) options, with one wording;
* reading RUN back (a replay output folder, or a run id / unique prefix in the state database
  that ``--config``/``--db`` name), where every bad configuration, run, data file or database
  exits 2 with its message (:func:`bad_input`);
* the output folder (``--out`` or ``<run folder>/<command>/``), refused with exit 2 when it
  cannot be written;
* the progress bars on stderr (:class:`Steps` over named steps, :class:`Counter` over replays);
* Ctrl-C, SIGTERM and SIGHUP during the work: ``interrupted: nothing written``, exit 130;
* the closing ``Wrote DIR/ (files) in T s`` and :func:`register_command`.

Import-light like every CLI module: typer and rich at module level; the configuration, the
store, pandas and the research code load inside the functions, when a command runs.
"""

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from daemon.cli_common import StopOnSignals, config_with_path, console, err, fail, out_problem
from daemon.help_defaults import DEFAULT_CONFIG, HelpCommand, with_defaults

if TYPE_CHECKING:
    from backtest.sources import BarSeries
    from daemon.config import AppConfig
    from research.finished_run import FinishedRun
    from research.trade_context import TradeContext

__all__ = ["ConfigOption", "Counter", "DataOption", "DbOption", "ProgressOption", "RunArgument", "Steps", "bad_input",
           "config_default", "db_option", "expand_data", "find_run", "interruptible", "out_folder", "out_option",
           "read_config", "register_command", "run_argument", "run_with_bars", "trades_in_context", "wrote"]

INTERRUPTED_EXIT = 130
"""Exit status after Ctrl-C, SIGTERM or SIGHUP (128 + SIGINT, as a shell reports Ctrl-C)."""
_DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_REFRESH_S = 0.1  # a Counter redraws at most this often (a replay reports every few hundred bars)


def _listing(items: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


# --- the argument and options ---------------------------------------------------------------------

def run_argument(*also: str) -> Any:
    """The ``RUN`` argument's definition; ``also`` names what else the command accepts (e.g.
    ``"a configuration file (.toml) to replay first"``)."""
    return typer.Argument(metavar="RUN", show_default=False, help=_listing([
        "A replay output folder (tradingd replay --out DIR)",
        "a run id / unique prefix in the state database (tradingd runs list)", *also]) + ".")


def out_option(files: Sequence[str], command: str, *also: str) -> Any:
    """The ``--out`` option's definition: the ``files`` written, the default folder, and ``also``
    (other defaults, e.g. ``"runs/sizing-<name>/ for a config file"``)."""
    defaults = [f"<run folder>/{command}/", f"runs/<run id>/{command}/ for a run read from the database", *also]
    return typer.Option("--out", "-o", metavar="DIR", show_default=False,
                        help=f"Output folder ({', '.join(files)}). Default {'; '.join(defaults)}.")


def db_option(holding: str = "the run ids") -> Any:
    """The ``--db`` option's definition (``holding``: what the command looks up in it)."""
    return typer.Option("--db", metavar="URL", show_default=False,
                        help=f"State database holding {holding}: sqlite:///path.db or postgresql+psycopg://user@host/db.")


RunArgument = Annotated[str, run_argument()]
DbOption = Annotated[Optional[str], db_option()]
ConfigOption = Annotated[Optional[Path], typer.Option(
    "--config", "-c", metavar="FILE", show_default=False,
    help="Configuration (TOML) naming the state database (\\[state] database_url).")]
ProgressOption = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")]
DataOption = Annotated[Optional[list[Path]], typer.Option(
    "--data", "-d", metavar="FILE|DIR", show_default=False,
    help="The run's bar files or folders, when they moved since the replay; repeatable. Default: the files the "
         "run recorded.")]


def config_default() -> str:
    """The text ``--config``'s help shows as its default."""
    return f"./{DEFAULT_CONFIG} if it exists, else the built-in defaults"


def register_command(app: typer.Typer, name: str, command: Callable[..., Any], help: str) -> None:
    """Add ``command`` to ``app`` as ``tradingd name``; its help shows where ``--config`` and
    ``--db`` default from."""
    app.command(name, cls=HelpCommand, help=help)(with_defaults(config=config_default, db="state.database_url")(command))


# --- reading RUN ----------------------------------------------------------------------------------

@contextmanager
def bad_input(*errors: type[Exception]) -> Iterator[None]:
    """Within the block, a bad configuration, run, data file or database (``ConfigError``,
    ``RunLoadError``, ``DataError``, ``StoreError``) or one of ``errors`` exits 2 with its message
    (:func:`daemon.cli_common.fail`)."""
    from backtest.sources import DataError
    from daemon.config import ConfigError
    from research.finished_run import RunLoadError
    from state.db import StoreError

    caught: tuple[type[Exception], ...] = (ConfigError, RunLoadError, DataError, StoreError, *errors)
    try:
        yield
    except caught as exc:
        fail(str(exc))


def read_config(config: Path | None, db: str | None) -> "AppConfig":
    """``--config`` (default ``./config.toml`` when present, else the built-in defaults) with
    ``--db`` over its ``[state] database_url`` (messages about it name ``--db``).

    Raises
    ------
    daemon.config.ConfigError
        If the file or a value is invalid.
    """
    if db is None:
        return config_with_path(config, {}, {})[1]
    return config_with_path(config, {"state.database_url": db}, {"state.database_url": "--db"})[1]


def find_run(arg: str, config: Path | None, db: str | None, command: str | None = None,
             trades: int = 1) -> "FinishedRun":
    """The finished run RUN names (:func:`daemon.run_source.resolve_run`); with ``command``, it
    must have closed at least ``trades`` trades.

    Raises
    ------
    daemon.config.ConfigError
        If the configuration or ``--db`` is invalid.
    research.finished_run.RunLoadError
        If RUN is neither a readable output folder nor a finished run in the database, or it
        closed too few trades.
    """
    from daemon.run_source import resolve_run

    run = resolve_run(arg, read_config(config, db).state)
    if command is not None:
        run.require_trades(command, trades)
    return run


def out_folder(out: Path | None, default: Path) -> Path:
    """``--out``, or ``default`` when it is not given; exits 2 when the folder cannot be written
    (the message names ``--out``, or the default output folder)."""
    chosen = out if out is not None else default
    problem = out_problem(chosen)
    if problem:
        fail(problem if out is not None else problem.replace("--out", "default output folder", 1))
    return chosen


def expand_data(paths: list[Path] | None) -> list[str] | None:
    """``--data`` as absolute file names: a folder gives its bar files (sorted); None when not given.

    Raises
    ------
    research.finished_run.RunLoadError
        If a path does not exist or a folder holds no bar file.
    """
    from research.finished_run import RunLoadError

    if not paths:
        return None
    files: list[str] = []
    for path in paths:
        if path.is_dir():
            found = sorted(str(p.resolve()) for p in path.iterdir()
                           if p.is_file() and p.name.lower().endswith(_DATA_SUFFIXES))
            if not found:
                raise RunLoadError(f"--data {path}: the folder holds no {', '.join(_DATA_SUFFIXES)} file")
            files += found
        elif path.is_file():
            files.append(str(path.resolve()))
        else:
            raise RunLoadError(f"--data {path}: no such file or folder")
    return files


def run_with_bars(arg: str, config: Path | None, db: str | None, data: list[Path] | None, out: Path | None,
                  command: str, steps: "Steps", check: Callable[["FinishedRun"], None] | None = None,
                  ) -> tuple["FinishedRun", list["BarSeries"], Path]:
    """RUN read back (it must have closed a trade), ``check(run)`` (more validation before the
    bars load; it may raise ``ValueError``), the output folder, then the run's bars (from
    ``--data`` when given). Every bad input exits 2 with a message saying what was wrong."""
    from daemon.run_source import default_out_dir
    from research.finished_run import load_run_bars

    with bad_input(ValueError):
        steps.step("reading the run")
        run = find_run(arg, config, db, command)
        if check is not None:
            check(run)
        out_dir = out_folder(out, default_out_dir(run, command))
        steps.step("loading bars")
        bars = load_run_bars(run, expand_data(data))
    return run, bars, out_dir


def trades_in_context(arg: str, config: Path | None, db: str | None, data: list[Path] | None, out: Path | None,
                      command: str, steps: "Steps", check: Callable[["FinishedRun"], None] | None = None,
                      ) -> tuple["FinishedRun", "TradeContext", list["BarSeries"], Path]:
    """:func:`run_with_bars`, then every trade of the run with its entry context and path
    (:func:`research.trade_context.build_trade_context`); Ctrl-C meanwhile writes nothing."""
    from research.trade_context import build_trade_context

    run, bars, out_dir = run_with_bars(arg, config, db, data, out, command, steps, check)
    with interruptible(), bad_input(ValueError):
        steps.step("trade context")
        context = build_trade_context(run, bars)
    return run, context, bars, out_dir


# --- while the work runs --------------------------------------------------------------------------

@contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, Ctrl-C, SIGTERM and SIGHUP stop the command with ``interrupted: nothing
    written`` on stderr and exit status 130. Hold only the work before any file is written."""
    try:
        with StopOnSignals():
            yield
    except KeyboardInterrupt:
        err.print("interrupted: nothing written", highlight=False)
        raise typer.Exit(INTERRUPTED_EXIT) from None


class Steps:
    """A progress bar over a command's ``total`` named steps, on stderr and gone when done;
    nothing when ``show`` is false."""

    def __init__(self, total: int, show: bool) -> None:
        self.total, self.show = total, show
        self._bar: Any = None
        self._task: Any = None
        self._done = -1

    def __enter__(self) -> "Steps":
        if self.show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("starting", total=self.total)
        return self

    def step(self, description: str) -> None:
        """Mark the previous step done and show ``description`` (plain text)."""
        self._done += 1
        if self._bar is not None:
            self._bar.update(self._task, description=escape(description), completed=min(self._done, self.total))

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.total)
            self._bar.__exit__(*exc)


class Counter:
    """A progress bar counting ``total`` pieces of work (``label``: what is counted, e.g.
    ``"levels"``; ``unit`` after the count, e.g. ``"bars"``) with the latest piece's text, on
    stderr; nothing when ``show`` is false.

    It has no refresh thread (worker processes may be forked from this one, and a thread holding
    the console lock would deadlock them): each :meth:`update` redraws, at most every 0.1 s.
    """

    def __init__(self, label: str, total: int, show: bool, unit: str = "") -> None:
        self.label, self.total, self.show, self.unit = label, total, show, unit
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        self._drawn = 0.0

    def __enter__(self) -> "Counter":
        if self.show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            unit = [TextColumn(escape(self.unit))] if self.unit else []
            self._bar = Progress(TextColumn(escape(self.label)), BarColumn(), MofNCompleteColumn(), *unit,
                                 TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=err,
                                 auto_refresh=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, last="")
            self._bar.refresh()
        return self

    def update(self, done: int | None = None, last: str | None = None) -> None:
        """``done`` pieces finished so far (None: one more); ``last``, plain text about the latest."""
        self.done = self.done + 1 if done is None else done
        if self._bar is None:
            return
        fields = {} if last is None else {"last": escape(last)}
        self._bar.update(self._task, completed=self.done, **fields)
        now = time.monotonic()
        if now - self._drawn >= _REFRESH_S or self.done >= self.total:
            self._drawn = now
            self._bar.refresh()

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


# --- the end --------------------------------------------------------------------------------------

def wrote(out_dir: Path, files: Sequence[str], started: float) -> None:
    """Print ``Wrote DIR/ (files) in T s`` (``started``: :func:`time.perf_counter` when the command
    began); the path is never wrapped, for copying."""
    console.print(f"Wrote {escape(str(out_dir))}/ ({escape(', '.join(files))}) in "
                  f"{time.perf_counter() - started:.1f} s", highlight=False, soft_wrap=True)
