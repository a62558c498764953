"""The replay's output folder as a user reads it: which files, no temporary leftovers, breaker history,
open positions, costs, trades linked to their orders and fills, the benchmark, metrics.json and schema.json.

Every check reads the written files back (CSV/JSON) and recomputes what it asserts independently of
the writers; replays are real short runs of the bundled data.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from backtest.fill_model import FillConfig
from research.benchmark import BenchmarkError, build_benchmark
from research.frames import closes_series
from research.output import OUTPUT_FILES, write_outputs
from risk.config import RiskConfig
from tests.support import STRATEGY_PARAMS, load_two_symbols, replay

DATA_FILES = [f for f in OUTPUT_FILES if f != "report.html"]


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def strict_json(path: Path):
    def refuse(token):
        raise AssertionError(f"{path.name} holds {token}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def utc(values) -> pd.Series:
    return pd.to_datetime(pd.Series(values), utc=True, format="ISO8601")


@pytest.fixture(scope="module")
def two_symbols_data():
    return load_two_symbols()


@pytest.fixture(scope="module")
def halted(two_symbols_data, tmp_path_factory):
    """Loss streaks trip REDUCING six times, then a 3% drawdown HALTS the account until the end."""
    result, _, _ = replay(two_symbols_data, "sma_cross",
                          risk=RiskConfig(max_consecutive_losses=2, loss_cooldown="2d", max_drawdown=0.03))
    out = tmp_path_factory.mktemp("halted")
    summary = write_outputs(result, out, {"run_id": "halted"}, report=False)
    return result, summary, out


@pytest.fixture(scope="module")
def busy(two_symbols_data, tmp_path_factory):
    """Long and short, partial fills under a tight participation cap, reversals, positions open at the end."""
    params = {**STRATEGY_PARAMS["sma_cross"], "allow_short": True}
    result, _, _ = replay(two_symbols_data, "sma_cross", params=params,
                          fill=FillConfig(slippage_bps=2.0, commission_bps=1.0, participation_cap=1e-5),
                          risk=RiskConfig(max_consecutive_losses=1000, allow_short=True))
    out = tmp_path_factory.mktemp("busy")
    summary = write_outputs(result, out, {"run_id": "busy"}, report=False)
    return result, summary, out


# --- the folder ----------------------------------------------------------------------------------


def test_every_file_is_written_under_its_final_name_and_no_temporary_file_is_left(two_symbols_data, tmp_path):
    result, _, _ = replay(two_symbols_data, "sma_cross")
    out = tmp_path / "run"
    summary = write_outputs(result, out, {"run_id": "r"})
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert sorted(summary.files) == sorted(OUTPUT_FILES) and summary.out_dir == out
    assert "<html" in (out / "report.html").read_text(encoding="utf-8")[:2000].lower()


def test_leftovers_of_a_killed_run_and_a_stale_report_are_removed(two_symbols_data, tmp_path):
    result, _, _ = replay(two_symbols_data, "sma_cross")
    out = tmp_path / "run"
    out.mkdir()
    leftovers = [".trades.csv.tmp", ".metrics.json.tmp", ".report.html.tmp.tmp", "report.html.tmp"]
    for name in leftovers:
        (out / name).write_text("half-written by a killed run")
    (out / "report.html").write_text("<html>an earlier run</html>")
    (out / "notes.txt").write_text("mine")  # not ours: kept
    write_outputs(result, out, {"run_id": "r"}, report=False)
    assert sorted(p.name for p in out.iterdir()) == sorted([*DATA_FILES, "notes.txt"])


def test_an_unknown_benchmark_fails_before_anything_is_written(two_symbols_data, tmp_path):
    result, _, _ = replay(two_symbols_data, "sma_cross")
    with pytest.raises(BenchmarkError, match="IBM"):
        write_outputs(result, tmp_path / "run", {}, benchmark="IBM")
    assert not (tmp_path / "run").exists()


def test_schema_documents_every_column_and_key_written(halted, busy):
    for _, _, out in (halted, busy):
        schema = strict_json(out / "schema.json")
        assert sorted(schema["files"]) == sorted(DATA_FILES)
        for name in DATA_FILES:
            if name.endswith(".csv"):
                header = (out / name).read_text().splitlines()[0].split(",")
                assert list(schema["files"][name]["columns"]) == header, name
        assert set(strict_json(out / "metrics.json")) <= set(schema["files"]["metrics.json"]["keys"])
        conventions = schema["conventions"]
        assert "net of" in conventions["net_of_costs"] and "<= 0" in conventions["drawdown_sign"]


# --- breaker history (issue 6 item 1) ---------------------------------------------------------------


def test_breakers_csv_lists_every_trading_state_change_with_its_replay_time_and_reason(halted):
    result, _, out = halted
    rows = read_csv(out / "breakers.csv")
    assert list(rows.columns) == ["time", "previous", "current", "reason"]
    assert len(rows) == len(result.state_changes) == 13
    for row, change in zip(rows.itertuples(index=False), result.state_changes):
        assert pd.Timestamp(row.time) == pd.Timestamp(change.ts_event, unit="ns", tz="UTC")
        assert (row.previous, row.current, row.reason) == (change.previous.value, change.current.value, change.reason)
    assert rows["time"].str.endswith("Z").all()
    assert rows["current"].tolist()[-1] == "halted" and "drawdown" in rows["reason"].tolist()[-1]


def test_metrics_json_has_the_final_state_its_reason_and_since_when_and_every_change(halted):
    result, _, out = halted
    metrics = strict_json(out / "metrics.json")
    rows = read_csv(out / "breakers.csv")
    assert metrics["trading_state"] == "halted"
    assert metrics["trading_state_reason"] == result.trading_state_reason and "drawdown" in result.trading_state_reason
    assert metrics["trading_state_since"] == rows["time"].iloc[-1]
    assert metrics["state_changes"] == rows.to_dict(orient="records")


def test_time_spent_reducing_and_halted_adds_up_from_breakers_csv(halted):
    _, _, out = halted
    metrics = strict_json(out / "metrics.json")
    rows = read_csv(out / "breakers.csv")
    equity = read_csv(out / "equity.csv")
    end, start = pd.Timestamp(equity["time"].iloc[-1]), pd.Timestamp(equity["time"].iloc[0])
    times = [pd.Timestamp(t) for t in rows["time"]] + [end]
    spent = {"reducing": 0.0, "halted": 0.0}
    for number, current in enumerate(rows["current"]):
        if current != "active":
            spent[current] += (times[number + 1] - times[number]).total_seconds()
    for state, seconds in spent.items():
        entry = metrics["time_in_state"][state]
        assert entry["seconds"] == pytest.approx(seconds)
        assert entry["days"] == pytest.approx(seconds / 86_400)
        assert entry["fraction"] == pytest.approx(seconds / (end - start).total_seconds())
        assert isinstance(entry["text"], str) and "days" in entry["text"]
    assert spent["reducing"] == 6 * 2 * 86_400  # six 2-day cool-downs
    assert spent["halted"] == (end - pd.Timestamp(metrics["trading_state_since"])).total_seconds() > 0


# --- positions, fills and costs (issue 6 item 5) -------------------------------------------------------


def test_positions_csv_lists_what_is_open_at_the_end_with_its_entry_time(busy):
    result, _, out = busy
    positions = read_csv(out / "positions.csv")
    fills = read_csv(out / "fills.csv")
    closes = {s: close[-1] for s, (_, close) in result.closes.items()}
    open_ = {s: p for s, p in result.positions.items() if p.quantity}
    assert sorted(positions["symbol"]) == sorted(open_) and len(open_) == 2
    assert set(positions["side"]) == {"long", "short"}
    for row in positions.itertuples(index=False):
        assert row.quantity == pytest.approx(open_[row.symbol].quantity)
        assert row.mark == pytest.approx(closes[row.symbol])  # last close of the data
        assert row.market_value == pytest.approx(row.quantity * row.mark)
        assert row.unrealized_pnl == pytest.approx(row.quantity * (row.mark - row.avg_price))
        # entry: the fill after which the position last left zero (or flipped), walking fills.csv
        mine = fills[fills["symbol"] == row.symbol]
        signed = np.where(mine["side"] == "buy", 1.0, -1.0) * mine["quantity"].to_numpy()
        position = np.cumsum(signed)
        before = np.concatenate(([0.0], position[:-1]))
        opened = np.flatnonzero((np.abs(before) < 1e-6) | (np.sign(before) != np.sign(position)))
        assert pd.Timestamp(row.entry_time) == pd.Timestamp(mine["time"].iloc[opened[-1]])
    assert strict_json(out / "metrics.json")["open_positions"] == 2


def test_fills_have_slippage_and_metrics_json_the_cost_totals(busy):
    result, _, out = busy
    fills = read_csv(out / "fills.csv")
    assert fills["slippage"].tolist() == pytest.approx([f.slippage for f in result.fills])
    assert (fills["slippage"] > 0).all()  # 2 bps adverse on every fill
    costs = strict_json(out / "metrics.json")["costs"]
    assert costs["commission"] == pytest.approx(fills["commission"].sum())
    assert costs["slippage"] == pytest.approx(fills["slippage"].sum())
    assert costs["total"] == pytest.approx(costs["commission"] + costs["slippage"])
    assert costs["fills"] == len(fills)


def test_pnl_is_net_of_costs_so_trades_and_open_positions_add_up_to_the_equity_change(busy):
    _, _, out = busy
    trades, fills = read_csv(out / "trades.csv"), read_csv(out / "fills.csv")
    positions, equity = read_csv(out / "positions.csv"), read_csv(out / "equity.csv")
    open_commission = fills["commission"].sum() - trades["commission"].sum()  # paid by the trips still open
    change = equity["equity"].iloc[-1] - equity["equity"].iloc[0]
    assert change == pytest.approx(trades["pnl"].sum() + positions["unrealized_pnl"].sum() - open_commission)


# --- trades linked to orders and fills -------------------------------------------------------------------


def test_trades_have_ids_and_holding_times(busy):
    _, _, out = busy
    trades = read_csv(out / "trades.csv")
    assert trades["trade_id"].tolist() == list(range(1, len(trades) + 1))
    held = (utc(trades["exit_time"]) - utc(trades["entry_time"])).dt.total_seconds()
    assert trades["holding_time_s"].tolist() == pytest.approx(held.tolist())
    assert (trades["holding_time_s"] > 0).all()


def _ids(cell) -> list[str]:
    return str(cell).split(";") if isinstance(cell, str) and cell else []


def test_trades_link_to_exactly_the_fills_and_orders_that_made_them(busy):
    _, _, out = busy
    trades, fills, orders = read_csv(out / "trades.csv"), read_csv(out / "fills.csv"), read_csv(out / "orders.csv")
    assert {"buy", "sell"} == set(trades["side"]) and len(trades) > 100
    fill_at = {fid: number for number, fid in enumerate(fills["fill_id"])}
    order_of = dict(zip(orders["client_order_id"], orders.itertuples(index=False)))
    signed = np.where(fills["side"] == "buy", 1.0, -1.0) * fills["quantity"].to_numpy()
    position_after = fills.assign(q=signed).groupby("symbol")["q"].cumsum().to_numpy()
    uses = np.zeros(len(fills), dtype=int)
    for trade in trades.itertuples(index=False):
        entries = [fill_at[f] for f in _ids(trade.entry_fill_ids)]
        exits = [fill_at[f] for f in _ids(trade.exit_fill_ids)]
        assert entries and exits
        linked = fills.iloc[entries + exits]
        assert (linked["symbol"] == trade.symbol).all()
        # in fill order; an entry still filling partially may interleave with the first exit fills
        assert entries == sorted(entries) and exits == sorted(exits) and entries[0] < exits[0]
        assert max(entries) < exits[-1]
        exit_side = "sell" if trade.side == "buy" else "buy"
        assert (fills["side"].iloc[entries] == trade.side).all() and (fills["side"].iloc[exits] == exit_side).all()
        assert fills["time"].iloc[entries[0]] == trade.entry_time and fills["time"].iloc[exits[-1]] == trade.exit_time
        # in between, the position never goes flat; after the last exit fill it is flat or reversed
        long = trade.side == "buy"
        inside = position_after[entries[0]:exits[-1]][fills["symbol"].iloc[entries[0]:exits[-1]] == trade.symbol]
        assert ((inside > 1e-9) if long else (inside < -1e-9)).all()
        assert (position_after[exits[-1]] < 1e-9) if long else (position_after[exits[-1]] > -1e-9)
        # every fill of the symbol between entry and exit belongs to this trade, or is a neighbour's boundary fill
        window = fills[(fills["symbol"] == trade.symbol) & (fills["time"] >= trade.entry_time)
                       & (fills["time"] <= trade.exit_time)]
        strangers = set(window.index) - set(entries) - set(exits)
        assert all(fills["time"].iloc[n] in (trade.entry_time, trade.exit_time) for n in strangers)
        # the order ids are those of the fills, and the closing order says why the trade ended
        assert _ids(trade.entry_order_ids) == list(dict.fromkeys(fills["client_order_id"].iloc[entries]))
        assert _ids(trade.exit_order_ids) == list(dict.fromkeys(fills["client_order_id"].iloc[exits]))
        for oid in _ids(trade.entry_order_ids) + _ids(trade.exit_order_ids):
            assert order_of[oid].symbol == trade.symbol
        assert order_of[_ids(trade.exit_order_ids)[-1]].reason == trade.exit_reason
        uses[entries + exits] += 1
    # partial fills and reversals are in this run; a fill belongs to at most two trades (a reversal)
    assert trades["entry_fill_ids"].str.contains(";").any() and (uses == 2).any() and uses.max() == 2
    # fills not linked to a closed trade opened the positions still open at the end
    positions = read_csv(out / "positions.csv")
    unlinked = fills[uses == 0]
    assert set(unlinked["symbol"]) <= set(positions["symbol"])
    for symbol, entry_time in zip(positions["symbol"], positions["entry_time"]):
        assert (unlinked.loc[unlinked["symbol"] == symbol, "time"] >= entry_time).all()


# --- the benchmark and metrics.json --------------------------------------------------------------------


def test_default_benchmark_is_spy_with_its_exposure_next_to_the_strategy(halted):
    result, summary, out = halted
    metrics = strict_json(out / "metrics.json")
    equity = read_csv(out / "equity.csv")
    assert (metrics["benchmark_name"], metrics["benchmark_label"]) == ("SPY", "SPY buy & hold")
    assert "SPY" in metrics["benchmark_rule"] and metrics["run"]["benchmark"] == "SPY"
    index = pd.DatetimeIndex(utc(equity["time"]))
    expected, _ = build_benchmark("spy", closes_series(result), result.starting_cash, index)
    assert expected is not None
    assert equity["benchmark"].tolist() == pytest.approx(expected.tolist())
    spy = pd.Series(result.closes["SPY"][1], index=pd.to_datetime(result.closes["SPY"][0], unit="ns", utc=True))
    spy = spy.reindex(index, method="ffill").to_numpy()
    assert equity["benchmark"].to_numpy() == pytest.approx(result.starting_cash * spy / spy[0])
    assert metrics["exposure"] == {"strategy": pytest.approx(equity["exposure"].mean()),
                                   "benchmark": pytest.approx(1.0)}
    assert metrics["benchmark"]["exposure"] == metrics["exposure"]["benchmark"]
    assert summary.benchmark_label == "SPY buy & hold"


def test_equal_weight_and_no_benchmark(two_symbols_data, tmp_path):
    result, _, _ = replay(two_symbols_data, "sma_cross")
    write_outputs(result, tmp_path / "ew", {}, report=False, benchmark="equal_weight")
    metrics = strict_json(tmp_path / "ew" / "metrics.json")
    assert metrics["benchmark_name"] == "equal_weight" and "month" in metrics["benchmark_rule"]
    none = write_outputs(result, tmp_path / "none", {}, report=False, benchmark="none")
    metrics = strict_json(tmp_path / "none" / "metrics.json")
    assert metrics["benchmark"] is None and metrics["benchmark_name"] == "none" and none.benchmark is None
    assert "benchmark" not in read_csv(tmp_path / "none" / "equity.csv").columns


def test_metrics_json_has_lists_as_lists_and_durations_as_numbers(busy):
    result, _, out = busy
    metrics = strict_json(out / "metrics.json")
    assert metrics["run"]["symbols"] == ["SPY", "AAPL"] and metrics["run"]["run_id"] == "busy"
    strategy = metrics["strategy"]
    assert strategy["max_drawdown_duration_seconds"] == pytest.approx(strategy["max_drawdown_duration_days"] * 86_400)
    holding = metrics["trade_stats"]["avg_holding"]
    trades = read_csv(out / "trades.csv")
    assert holding["seconds"] == pytest.approx(trades["holding_time_s"].mean())
    assert holding["days"] == pytest.approx(holding["seconds"] / 86_400) and isinstance(holding["text"], str)
    assert metrics["orders"] == {"denied": result.denied, "denied_while_halted": result.denied_while_halted,
                                 "rejected": result.rejected}
    assert metrics["trading_state"] == "active" and metrics["trading_state_since"] is None


# --- through the CLI ---------------------------------------------------------------------------------


def test_cli_replay_into_a_folder_left_by_a_killed_run(tmp_path):
    from daemon.cli import app
    from tests.daemon.conftest import AAPL, REPO_CONFIG, SPY

    out = tmp_path / "out"
    out.mkdir()
    for name in (".fills.csv.tmp", ".report.html.tmp.tmp", "report.html.tmp"):
        (out / name).write_text("killed")
    args = ["replay", "-c", REPO_CONFIG, "--data", SPY, AAPL, "--strategy", "sma_cross", "--param", "fast=5",
            "--param", "slow=20", "--start", "2019-01-01T00:00:00Z", "--end", "2019-07-01T00:00:00Z",
            "--out", out, "--db", f"sqlite:///{tmp_path / 'x.db'}", "--no-progress"]
    result = CliRunner().invoke(app, [str(a) for a in args], prog_name="tradingd", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    metrics = strict_json(out / "metrics.json")
    assert metrics["benchmark_name"] == "SPY" and metrics["run"]["symbols"] == ["SPY", "AAPL"]
    with open(out / "trades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["entry_order_ids"] and r["exit_fill_ids"] for r in rows)
