"""``tradingd robustness`` as a user runs it: on a short real replay (SPY and AAPL hourly, January to
April 2019, sma_cross 5/20) it writes report.html, robustness.json (the contract ``tradingd
readiness`` reads) and scenarios.csv; a config file is replayed first; bad input exits 2 with a
message saying what was wrong."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.daemon.conftest import AAPL, DATA, REPO_CONFIG, SPY, replay_into, sqlite_url
from tests.daemon.conftest import invoke as _invoke

WINDOW = ("--start", "2019-01-01T00:00:00Z", "--end", "2019-05-01T00:00:00Z")
CONTRACT_SCENARIO = {"name", "kind", "sharpe", "total_return", "max_drawdown", "trades", "start", "end"}


def replay_window(tmp: Path, name: str, *params: str) -> Path:
    """sma_cross with ``params`` on SPY and AAPL in WINDOW, into ``tmp/name`` (database tmp/x.db)."""
    return replay_into(tmp / name, sqlite_url(tmp / "x.db"), "-c", REPO_CONFIG, "--data", SPY, AAPL, "--strategy",
                       "sma_cross", *params, *WINDOW).folder


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("robustness")
    run = replay_window(tmp, "run", "--param", "fast=5", "--param", "slow=20")
    result = _invoke("robustness", run, "--jobs", "1", "--db", sqlite_url(tmp / "x.db"), "--no-progress")
    return tmp, run, result


def test_writes_the_report_the_json_contract_and_the_csv(study) -> None:
    tmp, run, result = study
    assert result.exit_code == 0, result.output
    out = run / "robustness"  # the default: inside the run's folder
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "robustness.json", "scenarios.csv"]
    doc = json.loads((out / "robustness.json").read_text())  # strict JSON: no NaN
    run_id = json.loads((run / "metrics.json").read_text())["run"]["run_id"]
    assert doc["run_id"] == run_id and 0 <= doc["score"] <= 100
    assert doc["passed"] == (doc["score"] >= doc["pass_score"]) and doc["pass_score"] == 60
    assert sum(doc["parts"].values()) == pytest.approx(doc["score"], abs=0.05)
    assert set(doc["parts"]) == {"profitable", "worst_sharpe", "drawdown", "cost"}
    names = [s["name"] for s in doc["scenarios"]]
    assert len(names) == len(set(names))
    assert {"crypto", "mixed", "crash_month", "flash_crash", "extended_drawdown", "low_volatility", "slippage_2x",
            "commission_2x", "delayed_entry", "partial_fills"} <= set(names)
    assert {s["kind"] for s in doc["scenarios"]} == {"period", "universe", "stress", "assumption"}
    for scenario in doc["scenarios"]:
        assert CONTRACT_SCENARIO <= set(scenario) and scenario["start"] < scenario["end"]
        assert isinstance(scenario["trades"], int) and isinstance(scenario["sharpe"], float)
    weakest = doc["weakest"]
    assert set(weakest) == {"name", "kind", "sharpe", "total_return", "max_drawdown"} and weakest["name"] in names
    # the base replay again reproduces the run it studies
    metrics = json.loads((run / "metrics.json").read_text())["strategy"]
    assert doc["base"]["total_return"] == pytest.approx(metrics["total_return"], rel=1e-9)
    with open(out / "scenarios.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["base", *names]
    assert "Robustness score" in result.stdout and doc["weakest"]["name"] in result.stdout


def test_a_config_file_is_replayed_first(tmp_path: Path) -> None:
    config = tmp_path / "short.toml"
    text = REPO_CONFIG.read_text().replace('paths = ["data/us_equity_1hour_adjusted/*.csv.gz"]',
                                           f'paths = ["{SPY}", "{AAPL}"]\nstart = "2019-01-01T00:00:00Z"\n'
                                           'end = "2019-04-01T00:00:00Z"')
    config.write_text(text.replace("fast = 70", "fast = 5").replace("slow = 350", "slow = 20"))
    result = _invoke("robustness", config, "--no-stress", "--out", tmp_path / "c", "--db",
                     sqlite_url(tmp_path / "c.db"), "--no-progress", "--period", "feb=2019-02-01:2019-03-01")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "c" / "robustness.json").read_text())
    assert doc["run_id"] == json.loads((tmp_path / "c" / "base" / "metrics.json").read_text())["run"]["run_id"]
    assert not any(s["kind"] == "stress" for s in doc["scenarios"])
    period, = [s for s in doc["scenarios"] if s["kind"] == "period"]
    assert period["name"] == "feb" and period["start"].startswith("2019-02-01")


@pytest.mark.parametrize("args, message", [
    (("nope",), "no run 'nope'"),
    (("{run}", "--period", "later=2020-01-01:2020-03-01"), "outside the run's data"),
    (("{run}", "--period", "bad=2019-02-30:2019-03-01"), "is not a date"),
    (("{run}", "--universe", "none=/nowhere/*.csv.gz"), "matches no file"),
    (("{run}", "--universe", f"bonds={DATA.parent / 'us_equity_daily_adjusted' / 'IEF.csv.gz'}"),
     "cannot be replayed at the run's 1h bars"),
    (("{run}", "--config-run", str(REPO_CONFIG)), "not both"),
    (("{run}", "--jobs", "0"), "--jobs 0"),
    (("{run}", "--period", "slippage_2x=2019-02-01:2019-03-01"),
     "--period slippage_2x: the name of the built-in assumption scenario slippage_2x"),
    (("{run}", "--period", "q=2019-02-01:2019-03-01", "--period", "q=2019-03-01:2019-04-01"),
     "--period q: given more than once"),
    (("{run}", "--universe", f"crash_month={SPY}"), "--universe crash_month: the name of the built-in stress"),
    (("{run}", "--universe", f"q={SPY}", "--period", "q=2019-02-01:2019-03-01"), "also given as a --universe"),
    (("--config-run", str(REPO_CONFIG), "--data", str(SPY)), "names its own data"),
])
def test_bad_input_says_what_is_wrong(study, args: tuple[str, ...], message: str) -> None:
    tmp, run, _ = study
    result = _invoke("robustness", *(a.format(run=run) for a in args), "--db", sqlite_url(tmp / "x.db"),
                     "--out", tmp / "bad", "--no-progress")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert not (tmp / "bad").exists()


def test_a_run_without_trades_is_refused(study) -> None:
    tmp, _, _ = study
    idle = replay_window(tmp, "idle", "--param", "fast=900", "--param", "slow=1000")
    result = _invoke("robustness", idle, "--db", sqlite_url(tmp / "x.db"), "--no-progress")
    assert result.exit_code == 2
    assert "closed 0 trade(s); `tradingd robustness` needs at least 1" in " ".join(result.stderr.split())
    assert not (idle / "robustness").exists()


def test_a_run_whose_data_moved_is_read_with_data_and_periods_and_late_stress_are_placed_in_it(study) -> None:
    """The run's bar files moved after the replay: ``--data`` gives them back. A period running
    past the last bar is cut to the data with a note, and a stress window asked for late moves back
    to end with the data, on whole days, without being called shortened."""
    tmp, _, _ = study
    moved = tmp / "bars"
    moved.mkdir()
    for source in (SPY, AAPL):
        (moved / source.name).write_bytes(source.read_bytes())
    run = replay_into(tmp / "moving", sqlite_url(tmp / "x.db"), "-c", REPO_CONFIG, "--data", moved / SPY.name,
                      moved / AAPL.name, "--strategy", "sma_cross", "--param", "fast=5", "--param", "slow=20",
                      *WINDOW).folder
    moved.rename(tmp / "bars-now")
    args = ("--db", sqlite_url(tmp / "x.db"), "--no-progress", "--period", "spring=2019-04-01:2019-06-30",
            "--stress-at", "2019-04-20", "--out", tmp / "moved-out")
    lost = _invoke("robustness", run, *args)
    assert lost.exit_code == 2 and "pass the data with --data" in " ".join(lost.stderr.split())
    result = _invoke("robustness", run, "--data", tmp / "bars-now", *args)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp / "moved-out" / "robustness.json").read_text())
    assert "--period spring: cut to 2019-04-01 .. 2019-04-30, the run's data, which ends on 2019-04-30" in doc["notes"]
    spring, = [s for s in doc["scenarios"] if s["kind"] == "period"]
    assert spring["start"].startswith("2019-04-01") and spring["end"] < "2019-05-01"
    crash, = [s for s in doc["scenarios"] if s["name"] == "crash_month"]
    assert crash["window_start"] == "2019-04-01T00:00:00+00:00" and crash["window_end"] == "2019-05-01T00:00:00+00:00"
    assert "moved back" in crash["note"] and "shortened" not in crash["note"]


def test_stress_asked_before_the_first_bar_says_where_it_went(study) -> None:
    from research.finished_run import load_run_bars, load_run_folder
    from research.robustness import parse_time, plan_scenarios

    _, run, _ = study
    finished = load_run_folder(run)
    variants, _, notes = plan_scenarios(finished, {"base": load_run_bars(finished)},
                                        stress_at=parse_time("2018-06-01", "--stress-at"))
    assert any(n.startswith("--stress-at 2018-06-01 is before the run's first bar (2019-01-02)") for n in notes)
    crash, = [v for v in variants if v.name == "crash_month"]
    assert crash.stress_window is not None and crash.stress_window[0] == parse_time("2019-01-02", "x")


def test_a_run_with_fewer_trades_than_min_trades_cannot_pass_whatever_its_score(study) -> None:
    tmp, run, result = study
    doc = json.loads((run / "robustness" / "robustness.json").read_text())
    trades = doc["base"]["trades"]
    assert doc["min_trades"] == 20 and doc["min_scenario_trades"] == 5
    assert doc["passed"] == (doc["score"] >= 60 and trades >= 20) and doc["passed_reason"] in result.stdout
    strict = _invoke("robustness", run, "--db", sqlite_url(tmp / "x.db"), "--no-progress", "--no-stress",
                     "--pass-score", "0", "--min-trades", str(trades + 1), "--out", tmp / "strict")
    assert strict.exit_code == 0, strict.output
    doc = json.loads((tmp / "strict" / "robustness.json").read_text())
    assert doc["passed"] is False and doc["score"] >= 0
    assert doc["passed_reason"] == (f"the base replay closed {trades} trade(s), fewer than the {trades + 1} a pass "
                                    "needs (--min-trades): too little evidence")
    for scenario in doc["scenarios"]:
        assert scenario["thin"] == (scenario["trades"] < 5)
