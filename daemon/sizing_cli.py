"""The ``tradingd sizing`` command: replay a run at several position-sizing levels and recommend the
level with the best return within a drawdown tolerance (:mod:`research.sizing`).

``register(app)`` adds it to the CLI. Like every command it imports only typer and rich at import
time; the research machinery loads when it runs.

Output in ``--out`` (default ``<run folder>/sizing/``): ``report.html``, ``sizing.json`` and
``levels.csv``.
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from daemon.cli_common import console
from daemon.cli_common import fail as _fail
from daemon.research_cli import (ConfigOption, Counter, DataOption, DbOption, ProgressOption, bad_input, expand_data,
                                 find_run, interruptible, out_folder, out_option, read_config, register_command,
                                 run_argument, wrote)

if TYPE_CHECKING:
    from backtest.sources import BarSeries
    from backtest.spec import RunSpec
    from research.sizing import SizingResult

FILES = ("report.html", "sizing.json", "levels.csv")


def _from_config(path: Path, config: Path | None, db: str | None,
                 data: list[Path] | None) -> tuple[str, "RunSpec", list["BarSeries"], Path]:
    """RUN is a configuration file: its run spec and bars, run id ``config:<path>``, default out."""
    from backtest.data import load_data
    from daemon.config import ConfigError

    if config is not None:
        raise ConfigError(f"RUN {path} is itself a configuration file; drop --config {config}")
    if data:
        raise ConfigError(f"--data is for a finished RUN whose bar files moved; {path} names its own data "
                          "([data] paths)")
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    cfg = read_config(path, db)
    series = load_data(cfg.data_files(), timeframe=cfg.data.timeframe, start=cfg.data.start, end=cfg.data.end,
                       calendars=cfg.fill.calendars)
    return f"config:{path}", cfg.run_spec(), series, Path("runs") / f"sizing-{path.stem}"


def _from_run(arg: str, config: Path | None, db: str | None,
              data: list[Path] | None) -> tuple[str, "RunSpec", list["BarSeries"], Path]:
    """RUN is an output folder or a run id (it must have closed a trade): the run's recorded spec
    and bars (from ``--data`` when given), default out."""
    from daemon.run_source import default_out_dir
    from research.finished_run import load_run_bars, run_spec

    run = find_run(arg, config, db, "sizing")
    return run.run_id, run_spec(run), load_run_bars(run, expand_data(data)), default_out_dir(run, "sizing")


def sizing(
    run: Annotated[str, run_argument("a configuration file (.toml) to replay")],
    risk: Annotated[str, typer.Option(
        "--risk", metavar="START:STOP:STEP", show_default=False,
        help="Sizing levels, fractions of equity, STOP included when on the grid, each in (0, 0.1], e.g. "
             "0.005:0.02:0.0025. Sets risk_per_trade, or fixed_fraction when the run sizes with "
             "sizing = \"fixed_fraction\".")],
    max_drawdown: Annotated[float, typer.Option(
        "--max-drawdown", metavar="FRACTION",
        help="Drawdown tolerance of the recommendation (0.15 = 15%).")] = 0.15,
    jobs: Annotated[int, typer.Option(metavar="N", help="Replays at a time (worker processes).")] = 1,
    out: Annotated[Optional[Path], out_option(FILES, "sizing", "runs/sizing-<name>/ for a config file")] = None,
    data: DataOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    progress: ProgressOption = True,
) -> None:
    from research.sizing import SizingError, parse_levels, recommend

    started = time.perf_counter()
    with bad_input(SizingError):
        levels = parse_levels(risk)
        recommend([], max_drawdown)  # validates the tolerance
        if jobs < 1:
            raise SizingError(f"--jobs {jobs}: must be 1 or more")
        if run.endswith(".toml"):
            run_id, base, series, default_out = _from_config(Path(run), config, db, data)
        else:
            run_id, base, series, default_out = _from_run(run, config, db, data)
    out_dir = out_folder(out, default_out)
    with interruptible():
        result = _run(base, series, levels, max_drawdown, run_id, jobs, progress)
    wrote(out_dir, _write(result, out_dir), started)


def _run(base: "RunSpec", series: list["BarSeries"], levels: list[float], max_drawdown: float, run_id: str,
         jobs: int, progress: bool) -> "SizingResult":
    from research.reports.sizing_page import level_label
    from research.sizing import SizingError, SizingLevel, run_sizing, sizing_key

    key = sizing_key(base.risk)[0]
    n_bars = sum(len(s) for s in series)
    console.print(f"Sizing [bold]{escape(base.strategy)}[/] ({escape(run_id)}): {len(levels)} levels of "
                  f"{escape(key)} over {n_bars:,} bars of {escape(', '.join(s.symbol for s in series))}",
                  highlight=False, soft_wrap=True)
    with Counter("levels", len(levels), progress) as bar:
        def advance(done: int, total: int, level: SizingLevel) -> None:
            bar.update(done, f"{level_label(level.level)}: return {level.total_return:.2%}, max drawdown "
                             f"{level.max_drawdown:.2%}")

        try:
            return run_sizing(base, series, levels, max_drawdown=max_drawdown, run_id=run_id, jobs=jobs,
                              progress=advance)
        except SizingError as exc:
            _fail(str(exc))


def _write(result: "SizingResult", out_dir: Path) -> list[str]:
    """Print the levels and the recommendation, write the files; return their names."""
    from rich import box
    from rich.table import Table

    from research.reports.formatting import fmt_num, fmt_pct
    from research.reports.sizing_page import level_label, write_sizing_report
    from research.sizing import write_sizing_outputs

    chosen = result.recommended.level if result.recommended is not None else None
    table = Table(title=f"{result.key} (* efficient frontier, > recommended)", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for header in ("level", "return", "CAGR", "Sharpe", "Sortino", "max DD", "Ulcer", "recovery", "trades",
                   "rounds to 0"):
        table.add_column(header, justify="right", no_wrap=True)
    for x in result.levels:
        mark = (">" if x.level == chosen else " ") + ("*" if x.on_frontier else " ")
        table.add_row(f"{mark} {level_label(x.level)}", fmt_pct(x.total_return), fmt_pct(x.cagr), fmt_num(x.sharpe),
                      fmt_num(x.sortino), fmt_pct(x.max_drawdown), fmt_pct(x.ulcer_index),
                      fmt_num(x.recovery_factor), str(x.trades), str(x.rounded_to_zero))
    console.print(table)
    for note in result.notes:
        console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    name = result.key.partition(".")[2]
    if result.recommended is not None:
        console.print(f"[bold]recommended: {escape(name)} = {result.recommended.level:g}[/] ({escape(result.recommended_reason)}); "
                      f"the run has {result.current:g}", highlight=False, soft_wrap=True)
    else:
        console.print(f"[bold]no recommendation[/]: {escape(result.recommended_reason)}", highlight=False,
                      soft_wrap=True)
    written = write_sizing_outputs(result, out_dir)
    write_sizing_report(result, out_dir)
    return ["report.html", *written]


def register(app: typer.Typer) -> None:
    """Add ``sizing`` to ``app``."""
    register_command(app, "sizing", sizing, (
        "Position-sizing sweep: replay a run once per level of risk_per_trade (or fixed_fraction, the key its "
        "sizing mode uses), compare return, CAGR, Sharpe, Sortino, recovery factor, Ulcer index and max drawdown, "
        "mark the efficient frontier of return against drawdown, and recommend the highest-return frontier level "
        "that traded and made money within --max-drawdown. Entries denied because their size rounds to zero "
        "whole shares are counted per level."))


__all__ = ["FILES", "register", "sizing"]
