"""``tradingd runs list|show|compare|prune`` over the state database, as a user sees them.

The sub-app is invoked directly (``daemon.runs.runs_app``): the ``tradingd`` app mounts it as
``tradingd runs``. Runs come from real replays of a small slice where the numbers matter, and
from the store's own API where only the bookkeeping does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from core.time import NANOS_PER_DAY
from daemon.runs import runs_app
from state import SqlStore, StoreConfig
from tests.daemon.conftest import REPO_CONFIG, SLICE, SPY, sqlite_url

T0 = 1_700_000_000 * 1_000_000_000


@pytest.fixture
def runs() -> Callable[..., Result]:
    """``runs(*args)`` runs ``tradingd runs *args`` in-process (wide terminal: no wrapping)."""
    runner = CliRunner()

    def invoke(*args: object) -> Result:
        return runner.invoke(runs_app, [str(a) for a in args], prog_name="tradingd runs",
                             env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})

    return invoke


def replay(cli: Callable[..., Result], tmp: Path, db: str, *params: str) -> str:
    """Run a real replay of SPY in 2019; return its run id."""
    args: list[Any] = ["replay", "-c", REPO_CONFIG, "--data", SPY, "--strategy", "sma_cross", *SLICE,
                       "--out", tmp / "out", "--db", db, "--no-progress", "--no-report"]
    for param in params:
        args += ["--param", param]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return str(json.loads((tmp / "out" / "metrics.json").read_text())["run"]["run_id"])


def synthetic(db: str, run_id: str, status: str, day: int, *, metrics: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None, kind: str = "replay", account: str | None = None) -> None:
    """A run with one equity row, started ``day`` days after T0 (finished unless ``running``)."""
    from core.ports import EquitySnapshot

    with SqlStore(StoreConfig(database_url=db), account=account or run_id) as store:
        store.start_run(run_id, kind, "sma_cross", params or {"fast": 10}, "cfg", "data", T0 + day * NANOS_PER_DAY)
        store.save_equity(EquitySnapshot(T0, 1.0, 1.0, 0.0, 0))
        if status != "running":
            store.finish_run(run_id, T0 + day * NANOS_PER_DAY + 1, status, metrics or {})


def lines_of(result: Result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]


def db_size(path: Path) -> int:
    """Bytes of a SQLite database and its write-ahead log (gone when the last connection closed)."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def ids_in_db(db: str) -> list[str]:
    with SqlStore(StoreConfig(database_url=db)) as store:
        return [r["id"] for r in store.find_runs()]


# --- list / show / compare -----------------------------------------------------------------------


def test_list_shows_one_run_per_line_newest_first_with_key_metrics(runs, tmp_path: Path) -> None:
    db = sqlite_url(tmp_path / "x.db")
    for day, (run_id, status) in enumerate([("old", "finished"), ("mid", "failed"), ("new", "interrupted")]):
        synthetic(db, run_id, status, day, metrics={"strategy": {"total_return": 0.1234, "sharpe": 1.5,
                                                                 "max_drawdown": 0.05, "trades": 42},
                                                    "bars": 1000} if status == "finished" else {})
    result = runs("list", "--db", db)
    assert result.exit_code == 0, result.output
    header, *rows = lines_of(result)
    assert header.split() == ["id", "kind", "strategy", "status", "started", "(UTC)", "bars", "return", "sharpe",
                              "max", "dd", "trades"]
    assert [row.split()[0] for row in rows] == ["new", "mid", "old"]
    assert rows[2].split()[3:] == ["finished", "2023-11-14", "22:13:20", "1,000", "12.34%", "1.50", "5.00%", "42"]
    assert rows[0].split()[3] == "interrupted" and rows[0].split()[-4:] == ["-", "-", "-", "-"]
    assert [line.split()[0] for line in lines_of(runs("list", "--db", db, "--limit", "2"))[1:]] == ["new", "mid"]
    assert [line.split()[0] for line in lines_of(runs("list", "--db", db, "--status", "failed,finished"))[1:]] \
        == ["mid", "old"]


def test_show_prints_setup_metrics_state_changes_and_row_counts(cli, runs, tmp_path: Path) -> None:
    db = sqlite_url(tmp_path / "x.db")
    run_id = replay(cli, tmp_path, db, "fast=5", "slow=20")
    result = runs("show", run_id[:14], "--db", db)  # a unique prefix is enough
    assert result.exit_code == 0, result.output
    text = result.stdout
    with SqlStore(StoreConfig(database_url=db)) as store:
        run = store.run(run_id)
        orders, fills, trades = len(store.orders(run_id)), len(store.fills(run_id)), len(store.trades(run_id))
        changes = store.run_state_changes(run_id)
    assert run is not None and orders > 0
    assert run_id in text and "finished" in text
    assert run["config_hash"] in text and run["data_hash"] in text
    assert re.search(r"fast\s+5\b", text) and re.search(r"slow\s+20\b", text)
    assert f"{orders:,} orders, {fills:,} fills, {trades:,} trades" in text
    total_return = run["metrics"]["strategy"]["total_return"]
    assert re.search(rf"total_return\s+{total_return * 100:.2f}%", text)
    assert f"bars         {run['metrics']['bars']:,}" in text
    if changes:
        assert f"trading-state changes ({len(changes)})" in text and changes[0]["reason"][:30] in text
    else:
        assert "no trading-state changes" in text


def test_compare_highlights_differing_parameters_and_shows_metric_deltas(runs, tmp_path: Path) -> None:
    db = sqlite_url(tmp_path / "x.db")
    synthetic(db, "run-a", "finished", 0, params={"fast": 10, "slow": 30},
              metrics={"strategy": {"total_return": 0.10, "sharpe": 1.0, "trades": 40}})
    synthetic(db, "run-b", "finished", 1, params={"fast": 20, "slow": 30},
              metrics={"strategy": {"total_return": 0.15, "sharpe": 0.75, "trades": 35}})
    result = runs("compare", "run-a", "run-b", "--db", db)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0] + (" " + line.split()[1] if line.startswith("param") else ""): line.split()
            for line in lines_of(result)[1:]}
    assert rows["param fast"][2:] == ["10", "20", "differs"]
    assert rows["param slow"][2:] == ["30", "30"]  # equal: no mark
    assert rows["total_return"][1:] == ["10.00%", "15.00%", "+5.00", "pp"]
    assert rows["sharpe"][1:] == ["1.00", "0.75", "-0.25"]
    assert rows["trades"][1:] == ["40", "35", "-5"]


@pytest.mark.parametrize("command", [("show", "nope"), ("compare", "run-a", "nope"), ("show", "run-")])
def test_unknown_or_ambiguous_run_ids_are_clear_errors(runs, tmp_path: Path, command: tuple[str, ...]) -> None:
    db = sqlite_url(tmp_path / "x.db")
    synthetic(db, "run-a", "finished", 0)
    synthetic(db, "run-b", "finished", 1)
    result = runs(*command, "--db", db)
    assert result.exit_code == 2
    expected = "ambiguous: run-b, run-a" if command[-1] == "run-" else "no run 'nope'"
    assert expected in result.stderr and "Traceback" not in result.output


# --- prune -------------------------------------------------------------------------------------------


def test_prune_deletes_the_selected_runs_with_all_their_rows_and_the_file_shrinks(cli, runs, tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = sqlite_url(path)
    first = replay(cli, tmp_path, db, "fast=5", "slow=20")
    second = replay(cli, tmp_path, db, "fast=10", "slow=40")
    with SqlStore(StoreConfig(database_url=db)) as store:
        orders = len(store.orders(first))
    size = db_size(path)

    result = runs("prune", "--keep", "1", "--db", db)
    assert result.exit_code == 0, result.output
    assert f"removed {first}" in result.stdout and second not in result.stdout
    assert f"removed 1 run and {orders:,} orders" in result.stdout
    assert ids_in_db(db) == [second]
    with SqlStore(StoreConfig(database_url=db)) as store:
        assert store.orders(first) == [] and store.fills(first) == [] and store.equity(first) == []
        assert store.count_run_rows([first]) == {"runs": 0, "orders": 0, "fills": 0, "trades": 0, "decisions": 0,
                                                 "equity_snapshots": 0, "positions": 0, "journal": 0,
                                                 "account_state": 0}
        assert len(store.orders(second)) > 0
    assert db_size(path) < size * 0.8  # the first run's pages went back to the file system
    assert "database file" in result.stdout


def test_prune_dry_run_shows_what_would_go_and_changes_nothing(runs, tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = sqlite_url(path)
    synthetic(db, "bad", "failed", 0)
    synthetic(db, "good", "finished", 1)
    result = runs("prune", "--status", "failed", "--dry-run", "--db", db)
    assert result.exit_code == 0, result.output
    assert "would remove bad" in result.stdout and "would remove 1 run and 0 orders" in result.stdout
    assert "1 equity snapshots" in result.stdout and "good" not in result.stdout
    assert sorted(ids_in_db(db)) == ["bad", "good"]


def test_prune_selects_by_status_age_and_keep_and_spares_running_and_live_runs(runs, tmp_path: Path) -> None:
    db = sqlite_url(tmp_path / "x.db")
    # T0 is long ago; "recent" starts now-ish, so --older-than 30d leaves it
    synthetic(db, "failed-1", "failed", 0)
    synthetic(db, "interrupted-1", "interrupted", 1)
    synthetic(db, "interrupted-2", "interrupted", 2)
    synthetic(db, "finished-1", "finished", 3)
    synthetic(db, "busy", "running", 4)
    synthetic(db, "live-1", "stopped", 5, kind="live", account="default")
    synthetic(db, "recent", "failed", (1_900_000_000 - 1_700_000_000) // 86_400)  # 2030: never older than 30d
    result = runs("prune", "--status", "failed,interrupted", "--older-than", "30d", "--keep", "1", "--db", db)
    assert result.exit_code == 0, result.output
    # selected: interrupted-2, interrupted-1, failed-1 (not "recent"); --keep 1 spares interrupted-2
    assert sorted(set(ids_in_db(db))) == ["busy", "finished-1", "interrupted-2", "live-1", "recent"]
    assert runs("prune", "--keep", "0", "--db", db).exit_code == 0
    assert sorted(ids_in_db(db)) == ["busy", "live-1"]  # running and live runs are never pruned
    assert "nothing to prune" in runs("prune", "--keep", "0", "--db", db).stdout


@pytest.mark.parametrize(("args", "message"), [
    ((), "say what to prune"),
    (("--status", "running"), "running runs are never pruned"),
    (("--older-than", "soon"), "--older-than 'soon'"),
])
def test_prune_refuses_unclear_requests(runs, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    db = sqlite_url(tmp_path / "x.db")
    synthetic(db, "a", "finished", 0)
    result = runs("prune", *args, "--db", db)
    assert result.exit_code == 2 and message in result.stderr
    assert ids_in_db(db) == ["a"]


def test_prune_on_postgresql(runs, postgres_url: str) -> None:
    synthetic(postgres_url, "old", "failed", 0)
    synthetic(postgres_url, "new", "finished", 1)
    result = runs("prune", "--status", "failed", "--db", postgres_url)
    assert result.exit_code == 0, result.output
    assert "removed old" in result.stdout and ids_in_db(postgres_url) == ["new"]
