"""A finished replay read back for the research commands: from its output folder and from the state
database, with the same trades, P&L, decisions and settings, and clear errors for what is not a run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from daemon.cli import app
from daemon.run_source import default_out_dir, resolve_run
from research.finished_run import RunLoadError, load_run_bars, load_run_folder, run_from_rows, run_spec
from research.metrics import compute_metrics
from state.store import SqlStore
from state import StoreConfig
from tests.daemon.test_cli import replay_args
from tests.daemon.conftest import sqlite_url


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("finished")
    db = sqlite_url(tmp / "x.db")
    result = CliRunner().invoke(app, [str(a) for a in replay_args(tmp, db=db)])
    assert result.exit_code == 0, result.output
    return tmp / "out", db


def test_folder_and_database_give_the_same_run(replayed: tuple[Path, str]) -> None:
    out, db = replayed
    folder = load_run_folder(out)
    assert len(folder.trades) > 0 and len(folder.decisions) >= len(folder.trades)
    # every trade's entry order is a submitted decision of the same symbol
    decided = folder.decisions.set_index("client_order_id")
    for _, trade in folder.trades.iterrows():
        first = trade["entry_order_ids"].split(";")[0]
        assert decided.loc[first, "symbol"] == trade["symbol"]
        assert decided.loc[first, "outcome"] == "submitted"
    # accounting: equity change = closed P&L + what the open positions made (net of entry commissions)
    metrics = json.loads((out / "metrics.json").read_text())
    assert folder.total_pnl == pytest.approx(metrics["strategy"]["total_return"] * folder.starting_cash, abs=1e-6)

    store = StoreConfig(database_url=db)
    by_id = resolve_run(folder.run_id, store)
    assert by_id.folder == out.resolve()  # the recorded folder still holds the run: read from it

    (out / "metrics.json").rename(out / "metrics.moved")  # the folder no longer holds it: database rows
    try:
        rows = resolve_run(folder.run_id[:-3], store)
    finally:
        (out / "metrics.moved").rename(out / "metrics.json")
    assert rows.folder is None
    assert rows.trades["pnl"].tolist() == pytest.approx(folder.trades["pnl"].tolist())
    assert rows.decisions["client_order_id"].tolist() == folder.decisions["client_order_id"].tolist()
    assert rows.equity.iloc[-1] == pytest.approx(folder.equity.iloc[-1])
    assert rows.run_info["risk"] == folder.run_info["risk"]
    # the daily snapshots start where the folder's curve does, at the starting cash, so the run's
    # figures are the same read either way (only the drawdown is seen at the snapshot interval)
    assert len(rows.equity) < len(folder.equity) / 5
    assert (rows.equity.index[0], rows.equity.iloc[0]) == (folder.equity.index[0], folder.starting_cash)
    assert folder.equity.iloc[0] == folder.starting_cash
    by_rows, by_folder = compute_metrics(rows.equity), compute_metrics(folder.equity)
    for key in ("total_return", "cagr", "sharpe", "volatility"):
        assert getattr(by_rows, key) == pytest.approx(getattr(by_folder, key), rel=1e-12), key
    assert default_out_dir(rows, "journal") == Path("runs") / folder.run_id / "journal"
    assert default_out_dir(folder, "journal") == out / "journal"


def test_a_run_recorded_before_its_equity_span_starts_at_its_first_snapshot(replayed: tuple[Path, str]) -> None:
    out, db = replayed
    folder = load_run_folder(out)
    assert folder.run_info["equity_span"] == {"first": folder.equity.index[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
                                              "last": folder.equity.index[-1].strftime("%Y-%m-%dT%H:%M:%SZ")}
    with SqlStore(StoreConfig(database_url=db)) as store:
        row = store.run(folder.run_id)
        assert row is not None
        old = {**row, "metrics": {**row["metrics"], "run": {
            k: v for k, v in row["metrics"]["run"].items() if k != "equity_span"}}}
        rows = run_from_rows(old, store.trades(folder.run_id), store.equity(folder.run_id), [], [], [])
        snapshots = store.equity(folder.run_id)
    assert rows.equity.index[0] == pd.Timestamp(snapshots[0].ts, unit="ns", tz="UTC") > folder.equity.index[0]
    assert len(rows.equity) == len({s.ts for s in snapshots})


def test_settings_and_bars_come_back(replayed: tuple[Path, str]) -> None:
    run = load_run_folder(replayed[0])
    spec = run_spec(run)
    assert (spec.strategy, spec.params) == ("sma_cross", {**spec.params, "fast": 5, "slow": 20})
    assert spec.fill.model_dump(mode="json") == run.run_info["fill"]
    bars = load_run_bars(run)
    assert sorted(s.symbol for s in bars) == sorted(run.symbols)
    first = min(int(s.ts_event[0]) for s in bars)
    assert pd.Timestamp(first, unit="ns", tz="UTC") >= pd.Timestamp(run.run_info["data"]["start"])
    assert sum(len(s) for s in bars) == run.metrics["bars"]


def test_what_is_not_a_run_says_so(replayed: tuple[Path, str], tmp_path: Path) -> None:
    store = StoreConfig(database_url=replayed[1])
    with pytest.raises(RunLoadError, match="no run 'nope'"):
        resolve_run("nope", store)
    with pytest.raises(RunLoadError, match="not a folder"):
        resolve_run(str(tmp_path / "missing" / "dir"), store)
    with pytest.raises(RunLoadError, match="no metrics.json"):
        load_run_folder(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("metrics.json", "equity.csv"):
        (broken / name).write_bytes((replayed[0] / name).read_bytes())
    with pytest.raises(RunLoadError, match="trades.csv is missing"):
        load_run_folder(broken)
    run = load_run_folder(replayed[0])
    with pytest.raises(RunLoadError, match="needs at least 100000"):
        run.require_trades("montecarlo", minimum=100_000)
