"""The readiness checklist (research.readiness) from hand-written evidence next to a real short
replay: each line passes, fails or is not yet measured as its evidence says; go only when all pass;
readiness.json and the report."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from alerts.sinks import MemoryAlertSink
from backtest.fill_model import FillConfig
from backtest.replay import run_replay
from backtest.sources import load_bars
from backtest.spec import RunSpec
from research.finished_run import FinishedRun, load_run_folder
from research.output import write_outputs
from research.readiness import (FAIL, NOT_MEASURED, PASS, PaperSession, ReadinessError, evaluate, load_study_folder,
                                paper_bars, write_readiness)
from research.reports.readiness_page import format_value
from risk.config import RiskConfig
from state.memory import MemoryStore
from tests.support import DATA

SPEC = RunSpec(strategy="sma_cross", params={"fast": 5, "slow": 20}, risk=RiskConfig(max_consecutive_losses=1000),
               fill=FillConfig(slippage_bps=2.0, commission_bps=1.0))
TRIPS = [  # one trip of each breaker, with the reasons risk.breakers writes
    {"time": "2019-02-01T15:00:00.000000Z", "previous": "active", "current": "reducing",
     "reason": "5 consecutive losing trades >= max_consecutive_losses 5 (cool-down 1d)"},
    {"time": "2019-02-02T15:00:00.000000Z", "previous": "reducing", "current": "active",
     "reason": "loss cool-down of 1d ended"},
    {"time": "2019-03-01T15:00:00.000000Z", "previous": "active", "current": "reducing",
     "reason": "daily loss 5.10% >= daily_loss_limit 5.00% (equity 94900.00 USD, day start 100000.00 USD)"},
    {"time": "2019-05-01T15:00:00.000000Z", "previous": "reducing", "current": "halted",
     "reason": "drawdown 20.50% >= max_drawdown 20.00% (equity 79500.00 USD, peak 100000.00 USD)"},
]


def _utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=timezone.utc)


def _bars(start: datetime, end: datetime):
    return [load_bars(DATA / f"{s}.csv.gz", start=start, end=end) for s in ("SPY", "AAPL")]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A real short replay (SPY + AAPL hourly, 2019 H1) written as `tradingd replay --out` does."""
    result = run_replay(_bars(_utc(2019, 1, 1), _utc(2019, 7, 1)), SPEC, store=MemoryStore(), alerts=MemoryAlertSink())
    info = {"run_id": "r1", "strategy": "sma_cross", "params": SPEC.params, "starting_cash": 100_000.0,
            **{k: getattr(SPEC, k).model_dump(mode="json") for k in ("risk", "fill", "replay", "signals")}}
    out = tmp_path_factory.mktemp("run") / "r1"
    write_outputs(result, out, info, report=False)
    return out


@pytest.fixture
def run(run_folder, tmp_path) -> FinishedRun:
    """The replay in a fresh folder of its own, so each test writes its own evidence next to it."""
    import shutil

    folder = tmp_path / "r1"
    shutil.copytree(run_folder, folder)
    return load_run_folder(folder)


@pytest.fixture(scope="module")
def paper_period():
    """The bars of a later quarter and the P&L (USD) the run's settings make on them from 100k."""
    bars = _bars(_utc(2019, 7, 1), _utc(2019, 10, 1))
    result = run_replay(bars, SPEC, store=MemoryStore(), alerts=MemoryAlertSink())
    equity = pd.Series(result.equity, index=pd.to_datetime(result.equity_ts, unit="ns", utc=True))
    pnl = float(equity.iloc[-1] - equity.iloc[0])
    assert abs(pnl) > 500  # large enough that the 10% line is not decided by the 0.1%-of-equity floor
    return bars, equity


def _session(bars, equity: pd.Series, factor: float = 1.0, name: str = "s1", account: str = "paper1",
             mode: str = "paper", changes=None) -> PaperSession:
    """A paper session on ``bars`` whose P&L is ``factor`` x the backtest's."""
    start = float(equity.iloc[0])
    traded = start + (equity - start) * factor
    return PaperSession(session_id=name, account=account, mode=mode, strategy="sma_cross", params=dict(SPEC.params),
                        equity=traded, bars=bars, state_changes=changes or [])


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def _wf(folder: Path, total_return: float, score: float | None, strategy: str = "sma_cross") -> Path:
    stats = None if score is None else {"pbo": 0.3, "dsr": 0.97, "verdict": {
        "score": score, "level": "low" if score < 25 else "moderate" if score < 50 else "high",
        "remedy": "fewer parameters"}}
    _write(folder / "walkforward.json", {"strategy": strategy, "folds": [{}, {}, {}], "profitable_share": 0.66,
                                          "efficiency": 0.5, "statistics": stats,
                                          "oos_metrics": {"total_return": total_return, "sharpe": 0.7,
                                                          "max_drawdown": 0.1}})
    return folder


def _checks(readiness) -> dict:
    return {c.id: c for c in readiness.checks}


def _evaluate(run, **kwargs):
    return _checks(evaluate(run, run_ref=str(run.folder), evidence_dir=run.folder, **kwargs))


def test_with_no_evidence_every_line_but_sharpe_and_breakers_is_not_measured_and_says_how_to_measure_it(run):
    checks = _evaluate(run)
    assert list(checks) == ["sharpe", "walkforward_oos", "overfitting", "robustness", "benchmark", "montecarlo",
                            "breakers", "paper_days", "paper_agreement"]
    assert checks["sharpe"].value == pytest.approx(run.metrics["strategy"]["sharpe"])
    assert checks["sharpe"].source == str(run.folder / "metrics.json")
    assert checks["breakers"].status == FAIL  # the replay's history is evidence: nothing tripped
    for key in ("walkforward_oos", "overfitting", "robustness", "benchmark", "montecarlo", "paper_days",
                "paper_agreement"):
        assert checks[key].status == NOT_MEASURED and checks[key].value is None
    assert "tradingd walkforward --strategy sma_cross" in checks["walkforward_oos"].detail
    assert f"tradingd robustness {run.folder}" in checks["robustness"].detail
    assert f"tradingd montecarlo {run.folder}" in checks["montecarlo"].detail
    assert checks["benchmark"].source == str(run.folder / "benchmark" / "benchmark.json")
    assert "no state database" in checks["paper_days"].detail


def test_backtest_sharpe_passes_only_above_one(run):
    def sharpe(value):
        metrics = {**run.metrics, "strategy": {**run.metrics["strategy"], "sharpe": value}}
        return _evaluate(dataclasses.replace(run, metrics=metrics))["sharpe"]

    assert (sharpe(1.3).status, sharpe(1.3).value) == (PASS, 1.3)
    assert sharpe(1.0).status == FAIL and sharpe(0.4).status == FAIL
    assert sharpe(None).status == FAIL and "undefined" in sharpe(None).detail


@pytest.mark.parametrize("command, doc, status, value", [
    ("robustness", {"score": 82.0, "passed": True, "pass_score": 60, "weakest": "slippage x3"}, PASS, 82.0),
    ("robustness", {"score": 31.0, "passed": False, "weakest": {"name": "2008 crash", "sharpe": -1.2}}, FAIL, 31.0),
    ("benchmark", {"favourable": True, "favourable_reason": "beats SPY on Sharpe"}, PASS, True),
    ("benchmark", {"favourable": False, "favourable_reason": "SPY has the better Sharpe"}, FAIL, False),
    ("montecarlo", {"acceptable": True, "acceptable_reason": "ruin 0.1% < 1%",
                    "risk_of_ruin": {"loss_fraction": 0.5, "probability": 0.001}}, PASS, 0.001),
    ("montecarlo", {"acceptable": False, "acceptable_reason": "ruin 4% >= 1%", "risk_of_ruin": 0.04}, FAIL, 0.04),
    # the ruin is fine, the drawdown is what fails: the line shows the drawdown
    ("montecarlo", {"acceptable": False, "acceptable_reason": "p95 max drawdown 27.5% >= 20%",
                    "risk_of_ruin": {"loss_fraction": 0.5, "probability": 0.002},
                    "daily_bootstrap": {"max_drawdown": {"p5": 0.1, "p95": 0.275}},
                    "breaker_limits": {"max_drawdown": 0.2}}, FAIL, 0.275),
])
def test_command_verdict_files_next_to_the_run_decide_their_line(run, command, doc, status, value):
    path = run.folder / command / f"{command}.json"
    _write(path, {"run_id": run.run_id, **doc})
    check = _evaluate(run)[command]
    assert (check.status, check.value, check.source) == (status, value, str(path))
    weakest = doc.get("weakest")
    reason = (weakest["name"] if isinstance(weakest, dict) else weakest) or doc.get("favourable_reason") or doc.get(
        "acceptable_reason")
    assert reason in check.detail
    if value == 0.275:
        assert check.detail.startswith("fails on the daily-bootstrap p95 max drawdown 27.50% >= [risk] max_drawdown "
                                       "20.00%")
        assert format_value(check) == "27.50%"


def test_a_verdict_file_of_another_run_or_without_its_keys_is_not_evidence(run):
    _write(run.folder / "robustness" / "robustness.json", {"run_id": "other", "score": 1.0, "passed": True})
    _write(run.folder / "benchmark" / "benchmark.json", {"run_id": run.run_id, "verdict": "good"})
    (run.folder / "montecarlo").mkdir()
    (run.folder / "montecarlo" / "montecarlo.json").write_text("{half written")
    checks = _evaluate(run)
    assert checks["robustness"].status == NOT_MEASURED and "written for run other" in checks["robustness"].detail
    assert checks["benchmark"].status == NOT_MEASURED and "lacks ['favourable']" in checks["benchmark"].detail
    assert checks["montecarlo"].status == NOT_MEASURED and "unreadable" in checks["montecarlo"].detail


def test_walk_forward_out_of_sample_return_and_overfitting_score(run, tmp_path):
    good = load_study_folder(_wf(tmp_path / "good", 0.12, 30.0), "--walkforward")
    checks = _evaluate(run, walkforward=good)
    assert (checks["walkforward_oos"].status, checks["walkforward_oos"].value) == (PASS, 0.12)
    assert (checks["overfitting"].status, checks["overfitting"].value) == (PASS, 30.0)
    assert checks["overfitting"].source == str(tmp_path / "good" / "walkforward.json")
    bad = load_study_folder(_wf(tmp_path / "bad", -0.02, 61.0), "--walkforward")
    checks = _evaluate(run, walkforward=bad)
    assert checks["walkforward_oos"].status == FAIL and checks["walkforward_oos"].value == -0.02
    assert checks["overfitting"].status == FAIL and "remedy: fewer parameters" in checks["overfitting"].detail
    # a walk-forward run with --no-statistics: its OOS return counts, the overfitting line is not measured
    checks = _evaluate(run, study=load_study_folder(_wf(tmp_path / "nostats", 0.05, None)))
    assert checks["walkforward_oos"].status == PASS and checks["overfitting"].status == NOT_MEASURED


def test_with_a_walk_forward_and_an_optimize_study_the_worse_overfitting_score_counts(run, tmp_path):
    wf = load_study_folder(_wf(tmp_path / "wf", 0.12, 20.0), "--walkforward")
    _write(tmp_path / "opt" / "summary.json", {"strategy": "sma_cross"})
    _write(tmp_path / "opt" / "statistics.json", {"pbo": 0.7, "verdict": {"score": 55.0, "level": "high"}})
    study = load_study_folder(tmp_path / "opt")
    check = _evaluate(run, walkforward=wf, study=study)["overfitting"]
    assert (check.status, check.value) == (FAIL, 55.0)
    assert str(tmp_path / "opt" / "statistics.json") in check.source and "walkforward.json" in check.source


def test_a_failing_study_fails_the_overfitting_line_even_when_the_other_has_no_verdict(run, tmp_path):
    _write(tmp_path / "opt" / "summary.json", {"strategy": "sma_cross"})  # optimize run with --no-statistics
    unmeasured = load_study_folder(tmp_path / "opt")
    failing = load_study_folder(_wf(tmp_path / "bad", 0.12, 61.0), "--walkforward")
    check = _evaluate(run, walkforward=failing, study=unmeasured)["overfitting"]
    assert (check.status, check.value) == (FAIL, 61.0)
    assert "optimize not measured" in check.detail and "statistics.json is missing" in check.detail
    # a passing one is no verdict while the other is missing
    passing = load_study_folder(_wf(tmp_path / "good", 0.12, 20.0), "--walkforward")
    check = _evaluate(run, walkforward=passing, study=unmeasured)["overfitting"]
    assert (check.status, check.value) == (NOT_MEASURED, None) and "statistics.json is missing" in check.detail


def test_study_folders_that_are_not_evidence_are_bad_input(run, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReadinessError, match="holds neither walkforward.json nor statistics.json"):
        load_study_folder(tmp_path / "empty")
    _write(tmp_path / "opt" / "summary.json", {"strategy": "sma_cross"})
    with pytest.raises(ReadinessError, match="--walkforward .*no walkforward.json"):
        load_study_folder(tmp_path / "opt", "--walkforward")
    with pytest.raises(ReadinessError, match="not a folder"):
        load_study_folder(tmp_path / "missing")
    other = load_study_folder(_wf(tmp_path / "rsi", 0.1, 10.0, strategy="rsi_momentum"), "--walkforward")
    with pytest.raises(ReadinessError, match="studied strategy 'rsi_momentum', but the run is 'sma_cross'"):
        evaluate(run, walkforward=other)


def test_breakers_pass_only_when_each_tripped_in_the_replay_or_a_session(run, paper_period):
    bars, equity = paper_period
    everything = dataclasses.replace(run, metrics={**run.metrics, "state_changes": TRIPS})
    check = _evaluate(everything)["breakers"]
    assert (check.status, check.value) == (PASS, 3)
    partial = dataclasses.replace(run, metrics={**run.metrics, "state_changes": TRIPS[:3]})
    check = _evaluate(partial)["breakers"]
    assert check.status == FAIL and check.value == 2 and "never tripped: max_drawdown (= 0.2)" in check.detail
    # the halt happened in a paper session instead: exercised
    session = _session(bars, equity, changes=[TRIPS[3]])
    check = _evaluate(partial, sessions=[session], paper_source="state database x")["breakers"]
    assert check.status == PASS and "paper session s1" in check.detail


def test_paper_days_and_paper_vs_backtest_agreement(run, paper_period):
    bars, equity = paper_period
    days = len(set(equity.index.date))
    close = _evaluate(run, sessions=[_session(bars, equity, 1.05)], paper_source="db")
    assert (close["paper_days"].status, close["paper_days"].value) == (PASS, days)
    assert close["paper_agreement"].status == PASS and close["paper_agreement"].value == pytest.approx(0.05)
    far = _evaluate(run, sessions=[_session(bars, equity, 1.25)], paper_source="db")["paper_agreement"]
    assert far.status == FAIL and far.value == pytest.approx(0.25)
    assert _evaluate(run, sessions=[_session(bars, equity)], paper_source="db",
                     min_paper_days=days + 1)["paper_days"].status == FAIL
    # live-money sessions are no paper trading; no session at all is not measured
    for sessions in ([_session(bars, equity, mode="live")], []):
        checks = _evaluate(run, sessions=sessions, paper_source="db")
        assert checks["paper_days"].status == checks["paper_agreement"].status == NOT_MEASURED


def test_an_account_paper_traded_over_two_sessions_is_compared_as_one(run, paper_period):
    bars, equity = paper_period
    cut = equity.index[len(equity) // 2]
    first = [dataclasses.replace(s, ts_event=s.ts_event[s.ts_event <= cut.value],
                                 **{k: getattr(s, k)[s.ts_event <= cut.value]
                                    for k in ("open", "high", "low", "close", "volume")}) for s in bars]
    second = [dataclasses.replace(s, ts_event=s.ts_event[s.ts_event >= cut.value - 3_600_000_000_000],
                                  **{k: getattr(s, k)[s.ts_event >= cut.value - 3_600_000_000_000]
                                     for k in ("open", "high", "low", "close", "volume")}) for s in bars]
    sessions = [_session(second, equity[equity.index > cut] * 1.0, name="s2"),  # out of order, overlapping bars
                _session(first, equity[equity.index <= cut], name="s1")]
    check = _evaluate(run, sessions=sessions, paper_source="db")["paper_agreement"]
    assert check.status == PASS and check.value == pytest.approx(0.0, abs=1e-9) and "2 session(s)" in check.detail


def test_journaled_bars_become_one_series_per_symbol():
    hour = 3_600_000_000_000
    rows = [["SPY", 2 * hour, 3 * hour, 10, 11, 9, 10.5, 100], ["AAPL", 0, hour, 5, 6, 4, 5.5, 50],
            ["SPY", 0, hour, 9, 10, 8, 9.5, 90], ["SPY", 2 * hour, 3 * hour, 10, 11, 9, 10.5, 100]]
    series = paper_bars(rows)
    assert [(s.symbol, len(s), s.timeframe_ns) for s in series] == [("AAPL", 1, hour), ("SPY", 2, hour)]
    assert series[1].close.tolist() == [9.5, 10.5] and series[1].ts_event.tolist() == [0, 2 * hour]
    with pytest.raises(ValueError, match="mix bar lengths"):
        paper_bars(rows + [["SPY", 5 * hour, 7 * hour, 1, 1, 1, 1, 1]])


def _all_passing(run, tmp_path, paper_period):
    bars, equity = paper_period
    metrics = {**run.metrics, "strategy": {**run.metrics["strategy"], "sharpe": 1.4}, "state_changes": TRIPS}
    good = dataclasses.replace(run, metrics=metrics)
    for command, doc in (("robustness", {"score": 0.9, "passed": True}), ("benchmark", {"favourable": True}),
                         ("montecarlo", {"acceptable": True, "risk_of_ruin": 0.0})):
        _write(run.folder / command / f"{command}.json", doc)
    wf = load_study_folder(_wf(tmp_path / "wf", 0.2, 12.0), "--walkforward")
    return good, {"walkforward": wf, "sessions": [_session(bars, equity, 1.02)], "paper_source": "db",
                  "min_paper_days": 5}


def test_go_only_when_every_line_passes(run, tmp_path, paper_period):
    good, evidence = _all_passing(run, tmp_path, paper_period)
    readiness = evaluate(good, evidence_dir=run.folder, **evidence)
    assert [c.status for c in readiness.checks] == [PASS] * 9
    assert readiness.decision == "go" and readiness.reasons == []
    (run.folder / "montecarlo" / "montecarlo.json").unlink()
    readiness = evaluate(good, evidence_dir=run.folder, **evidence)
    assert readiness.decision == "no-go"
    assert len(readiness.reasons) == 1 and readiness.reasons[0].startswith("Monte Carlo risk acceptable: not yet measured")


def test_readiness_json_and_report(run, tmp_path, paper_period):
    good, evidence = _all_passing(run, tmp_path, paper_period)
    evidence["sessions"] = [_session(paper_period[0], paper_period[1], 1.5)]  # the agreement fails
    readiness = evaluate(good, evidence_dir=run.folder, **evidence)
    assert write_readiness(readiness, tmp_path / "out") == ["readiness.json", "report.html"]
    doc = json.loads((tmp_path / "out" / "readiness.json").read_text(),
                     parse_constant=lambda token: pytest.fail(f"readiness.json holds {token}"))
    assert set(doc) == {"run_id", "strategy", "decision", "reasons", "checks"}
    assert doc["run_id"] == "r1" and doc["decision"] == "no-go"
    assert doc["reasons"] == [r for r in readiness.reasons] and "Paper vs backtest agreement: fail" in doc["reasons"][0]
    assert all({"name", "status", "value", "threshold", "source", "detail"} <= set(c) for c in doc["checks"])
    text = (tmp_path / "out" / "report.html").read_text()
    assert 'id="checklist"' in text and text.count('data-status="pass"') == 8 and 'data-status="fail"' in text
    assert ">NO-GO<" in text and not list((tmp_path / "out").glob(".*.tmp"))
