"""The ``tradingd readiness`` command: the production checklist of a run, evaluated from the
evidence the other research commands and the live node left (:mod:`research.readiness`).

``register(app)`` adds it to the CLI. Like every command it imports only typer and rich at import
time; pandas, the store and the replay machinery load when it runs.

Output in ``--out`` (default ``<run folder>/readiness/``): ``report.html`` and ``readiness.json``.
Exit status 0 for go, 1 for no-go, 2 for bad input.
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from daemon.cli_common import console
from daemon.cli_common import fail as _fail
from daemon.research_cli import (ConfigOption, ProgressOption, Steps, bad_input, db_option, interruptible, out_folder,
                                 out_option, read_config, register_command, run_argument, wrote)

if TYPE_CHECKING:
    from research.finished_run import FinishedRun
    from research.readiness import PaperSession, Readiness
    from state.config import StoreConfig

FILES = ("report.html", "readiness.json")
_STATUS_STYLE = {"pass": "bold green", "fail": "bold red"}
_STUDY_FILES = ("walkforward.json", "statistics.json", "summary.json")


def _is_study(arg: str) -> bool:
    """Whether RUN names an optimize or walk-forward folder rather than a replay's."""
    path = Path(arg)
    return path.is_dir() and not (path / "metrics.json").is_file() and any((path / f).is_file() for f in _STUDY_FILES)


def _session(store: Any, row: dict[str, Any]) -> "PaperSession":
    """One live-node session read back: equity, journaled bars, trading-state changes, mode."""
    import pandas as pd

    from research.readiness import PaperSession, paper_bars

    binding = store.broker_account(row["account"])
    snapshots = store.equity(row["id"])
    equity = pd.Series([s.equity for s in snapshots], dtype="float64",
                       index=pd.DatetimeIndex(pd.to_datetime([s.ts for s in snapshots], unit="ns", utc=True)))
    equity = equity[~equity.index.duplicated(keep="last")]
    bars = paper_bars(entry["payload"]["bar"] for entry in store.journal(row["id"]) if entry["kind"] == "Bar")
    return PaperSession(session_id=row["id"], account=row["account"] or "",
                        mode=str(binding["mode"]) if binding else "unknown", strategy=row["strategy_id"],
                        params=dict(row["params"] or {}), equity=equity, bars=bars,
                        state_changes=_state_changes(store, row["id"]))


def _state_changes(store: Any, run_id: str) -> list[dict[str, Any]]:
    """A run's trading-state changes as the checklist reads them: ``time`` ISO UTC (the store
    keeps epoch ns), states as text."""
    import pandas as pd

    return [{"time": pd.Timestamp(c["ts"], unit="ns", tz="UTC").isoformat(), "previous": c["previous"].value,
             "current": c["state"].value, "reason": c["reason"]} for c in store.run_state_changes(run_id)]


def _read_database(state: "StoreConfig", strategy: str, run: "FinishedRun | None",
                   explicit: bool) -> tuple[list["PaperSession"] | None, str, list[dict[str, Any]] | None]:
    """(live and paper sessions of ``strategy``, where they came from, the run's state changes when
    it was read from the database). A missing default SQLite file is no database (None), not an error."""
    from state.config import mask_url
    from state.db import StoreError
    from state.store import SqlStore

    url = state.database_url
    label = f"state database {mask_url(url)}"
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        if explicit:
            _fail(f"--db {mask_url(url)}: no such database file")
        return None, f"{label} (no such file)", None
    try:
        with SqlStore(state) as store:
            rows = [r for r in store.find_runs(kinds=["live"]) if r["strategy_id"] == strategy]
            sessions = [_session(store, r) for r in reversed(rows)]  # oldest first
            changes = _state_changes(store, run.run_id) if run is not None and run.folder is None else None
    except StoreError as exc:
        if explicit:
            _fail(str(exc))
        return None, f"{label} (cannot be read: {exc})", None
    except ValueError as exc:  # journaled bars that do not form one timeframe
        _fail(f"{label}: {exc}")
    return sessions, label, changes


def readiness(
    run_arg: Annotated[str, run_argument("an optimize/walk-forward folder (only its lines are measured then)")],
    study: Annotated[Optional[Path], typer.Option(
        "--study", metavar="DIR", show_default=False,
        help="A tradingd optimize (statistics.json) or walkforward (walkforward.json) output folder: the "
             "overfitting verdict (and the out-of-sample line for a walk-forward).")] = None,
    walkforward: Annotated[Optional[Path], typer.Option(
        "--walkforward", metavar="DIR", show_default=False,
        help="A tradingd walkforward --out folder: out-of-sample return and overfitting verdict.")] = None,
    min_paper_days: Annotated[int, typer.Option(
        "--min-paper-days", metavar="N", help="Paper-trading days the paper line needs.")] = 20,
    out: Annotated[Optional[Path], out_option(FILES, "readiness", "<study>/readiness/ for a study folder")] = None,
    db: Annotated[Optional[str], db_option("the run ids and the paper sessions")] = None,
    config: ConfigOption = None,
    progress: ProgressOption = True,
) -> None:
    from daemon.run_source import default_out_dir, resolve_run
    from research.readiness import ReadinessError, StudyEvidence, evaluate, load_study_folder, write_readiness

    started = time.perf_counter()
    run: FinishedRun | None = None
    positional: StudyEvidence | None = None
    with bad_input(ReadinessError):
        cfg = read_config(config, db)
        if _is_study(run_arg):
            positional = load_study_folder(run_arg, "RUN")
        else:
            run = resolve_run(run_arg, cfg.state)
        given_study = load_study_folder(study, "--study") if study is not None else positional
        given_wf = load_study_folder(walkforward, "--walkforward") if walkforward is not None else None
    if run is None and positional is not None and not positional.strategy:
        _fail(f"RUN {run_arg}: the study folder does not name its strategy (no summary.json or walkforward.json "
              "strategy); give the replay of its best set as RUN and the folder with --study")
    strategy = run.strategy if run is not None else (positional.strategy if positional is not None else "")
    if run is not None:
        evidence_dir: Path | None = default_out_dir(run, "readiness").parent
        out_dir = out_folder(out, default_out_dir(run, "readiness"))
    else:
        assert positional is not None
        evidence_dir, out_dir = None, out_folder(out, positional.folder / "readiness")
    explicit_db = db is not None  # a database named on the command line must exist; the default may not

    with Steps(3, progress) as steps:
        with interruptible(), bad_input(ReadinessError):
            steps.step("read the paper and live sessions")
            sessions, source, run_changes = _read_database(cfg.state, strategy, run, explicit_db)
            steps.step("evaluate the checklist (replays the run on the paper bars)")
            result = evaluate(run, run_ref=run_arg, walkforward=given_wf, study=given_study, sessions=sessions,
                              paper_source=source, run_changes=run_changes, evidence_dir=evidence_dir,
                              min_paper_days=min_paper_days, strategy=strategy)
        steps.step("write readiness.json and the report")
        written = write_readiness(result, out_dir)
    _print(result)
    wrote(out_dir, written, started)
    if result.decision != "go":
        raise typer.Exit(1)


def _print(result: "Readiness") -> None:
    from rich.table import Table

    from research.reports.readiness_page import format_value

    who = escape(result.strategy) + (f", run {escape(result.run_id)}" if result.run_id else "")
    table = Table(title=f"Production readiness: {who}")
    table.add_column("#", style="dim", justify="right")
    table.add_column("Check", style="bold")
    table.add_column("Status", no_wrap=True)
    table.add_column("Value", justify="right", no_wrap=True)
    table.add_column("Threshold", overflow="fold")
    for n, check in enumerate(result.checks, start=1):
        style = _STATUS_STYLE.get(check.status, "bold yellow")
        table.add_row(str(n), escape(check.name), f"[{style}]{escape(check.status)}[/]", escape(format_value(check)),
                      escape(check.threshold))
    console.print(table)
    for n, check in enumerate(result.checks, start=1):  # the why and where of each line, unwrapped paths
        source = f" [dim](source: {escape(check.source)})[/]" if check.source else ""
        console.print(f"{n}. {escape(check.detail)}{source}", highlight=False, soft_wrap=True)
    passed = sum(c.status == "pass" for c in result.checks)
    if result.decision == "go":
        console.print(f"[bold green]GO[/]: all {len(result.checks)} lines pass", highlight=False)
    else:
        console.print(f"[bold red]NO-GO[/]: {passed} of {len(result.checks)} lines pass; "
                      f"{len(result.reasons)} failing or not yet measured", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``readiness`` to ``app``."""
    register_command(app, "readiness", readiness, (
        "Production checklist of a run from the evidence on disk and in the state database: backtest Sharpe, "
        "walk-forward out-of-sample return, overfitting, robustness, benchmark, Monte Carlo, circuit breakers "
        "exercised, paper-trading days and paper vs backtest agreement; each line pass, fail or not yet measured "
        "(with the command that measures it). Exit 0 for go, 1 for no-go, 2 for bad input."))


__all__ = ["FILES", "readiness", "register"]
