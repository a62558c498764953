"""The ``RUN`` argument of the research commands: an output folder, or a run id (or a unique
prefix of one) in the state database.

A run id whose recorded output folder still holds that run is read from the folder (full
equity curve, order/fill links); otherwise from the database rows (equity at the snapshot
interval). Imported inside the commands only, so ``tradingd --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

from research.finished_run import FinishedRun, RunLoadError, load_run_folder, run_from_rows
from state.config import StoreConfig
from state.db import StoreError
from state.store import SqlStore

__all__ = ["default_out_dir", "resolve_run"]


def _folder_holds(folder: Path, run_id: str) -> bool:
    try:
        return bool(json.loads((folder / "metrics.json").read_text())["run"]["run_id"] == run_id)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def resolve_run(arg: str, store_config: StoreConfig) -> FinishedRun:
    """Return the finished run ``arg`` names.

    Parameters
    ----------
    arg : str
        A replay output folder, or a run id / unique prefix in the database ``store_config`` opens.
    store_config : StoreConfig
        The state database (opened only when ``arg`` is not a folder).

    Raises
    ------
    RunLoadError
        If ``arg`` is neither a readable output folder nor a finished run in the database (the
        message says which, and how to list the runs).
    """
    path = Path(arg)
    if path.is_dir():
        return load_run_folder(path)
    if path.suffix or "/" in arg:
        raise RunLoadError(f"{arg} is not a folder; give a replay output folder or a run id (`tradingd runs list`)")
    try:
        with SqlStore(store_config) as store:
            try:
                run_id = store.resolve_run(arg)
            except StoreError as exc:
                raise RunLoadError(f"{exc} (`tradingd runs list` shows the runs; or give an output folder)") from None
            run = store.run(run_id)
            assert run is not None
            if run["status"] != "finished":
                raise RunLoadError(f"run {run_id} is {run['status']}, not finished: replay it again")
            out = ((run.get("metrics") or {}).get("run") or {}).get("out_dir")
            if out and _folder_holds(Path(out), run_id):
                return load_run_folder(Path(out))
            return run_from_rows(run, store.trades(run_id), store.equity(run_id), store.fills(run_id),
                                 store.orders(run_id), store.decisions(run_id), store.positions(run_id))
    except StoreError as exc:
        raise RunLoadError(f"cannot read run {arg!r} from the state database: {exc}") from None


def default_out_dir(run: FinishedRun, command: str) -> Path:
    """Where a command writes when ``--out`` is not given: ``<run folder>/<command>/``, or
    ``runs/<run id>/<command>/`` for a run read from the database."""
    base = run.folder if run.folder is not None else Path("runs") / run.run_id
    return base / command
