"""The replay's console summary (daemon.summary.print_summary) as a user reads it after a real replay:
benchmark and exposures, costs, every trading-state change with its replay time and reason (aggregated
when there are many), time spent REDUCING/HALTED and the note when the run ends HALTED."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from rich.console import Console

from daemon.replay_job import ReplayOutcome
from daemon.summary import MAX_LISTED_CHANGES, print_summary
from research.output import summarize, write_outputs
from research.reports.formatting import fmt_time
from risk.config import RiskConfig
from tests.support import load_two_symbols, replay


@pytest.fixture(scope="module")
def data():
    return load_two_symbols()


def printed(outcome: ReplayOutcome) -> str:
    buffer = io.StringIO()
    print_summary(Console(file=buffer, width=400, color_system=None), outcome)
    return buffer.getvalue()


def run(data, risk: RiskConfig, out=None, benchmark=None) -> tuple[ReplayOutcome, str]:
    result, _, alerts = replay(data, "sma_cross", risk=risk)
    summary = write_outputs(result, out, {}, report=False, benchmark=benchmark) if out else summarize(result, benchmark)
    outcome = ReplayOutcome(result, summary, "run-1", alerts)
    return outcome, printed(outcome)


def test_each_of_a_few_changes_is_printed_with_its_replay_time_and_reason(data, tmp_path):
    outcome, text = run(data, RiskConfig(max_consecutive_losses=1000, max_drawdown=0.03), out=tmp_path)
    changes = outcome.result.state_changes
    assert 0 < len(changes) <= MAX_LISTED_CHANGES
    assert f"Trading-state changes: {len(changes)}" in text and str(tmp_path / "breakers.csv") in text
    for change in changes:
        when = fmt_time(pd.Timestamp(change.ts_event, unit="ns", tz="UTC"))
        assert f"{when}  {change.previous.value} -> {change.current.value}  {change.reason}" in text


def test_many_changes_are_aggregated_per_rule_with_count_first_and_last_time(data):
    outcome, text = run(data, RiskConfig(max_consecutive_losses=1, loss_cooldown="1h"))
    changes = outcome.result.state_changes
    trips = [c for c in changes if c.current.value == "reducing"]
    assert len(changes) > MAX_LISTED_CHANGES and len(trips) > 10
    first, last = (fmt_time(pd.Timestamp(c.ts_event, unit="ns", tz="UTC")) for c in (trips[0], trips[-1]))
    line = next(line for line in text.splitlines() if "active -> reducing x" in line)
    assert f"active -> reducing x {len(trips)} (" in line and trips[0].reason in line
    assert f"first {first}, last {last}" in line
    assert len(text.splitlines()) < 40  # aggregated, not one line per change


def test_time_spent_and_the_halted_end_are_stated(data, tmp_path):
    outcome, text = run(data, RiskConfig(max_consecutive_losses=2, loss_cooldown="2d", max_drawdown=0.03), out=tmp_path)
    halt = outcome.result.state_changes[-1]
    assert halt.current.value == "halted"
    since = pd.Timestamp(halt.ts_event, unit="ns", tz="UTC")
    end = outcome.summary.metrics.end
    span = (end - outcome.summary.metrics.start).total_seconds()
    halted_share = (end - since).total_seconds() / span
    match = re.search(r"Time spent reducing ([\d.]+) days \(([\d.]+)% of the run\), halted ([\d.]+) years "
                      r"\(([\d.]+)% of the run\)", text)
    assert match, text
    assert float(match.group(1)) == pytest.approx(12.0)  # six 2-day cool-downs
    assert float(match.group(4)) == pytest.approx(halted_share * 100, abs=0.05)
    assert float(match.group(3)) == pytest.approx((end - since).days / 365.25, abs=0.06)
    assert f"Ended HALTED since {fmt_time(since)} UTC ({halt.reason})" in text
    assert "CAGR" in text and "that period" in text


def test_benchmark_exposures_and_costs_are_next_to_the_metrics(data):
    outcome, text = run(data, RiskConfig(max_consecutive_losses=1000))
    summary = outcome.summary
    assert summary.benchmark is not None
    assert "sma_cross vs SPY buy & hold (SPY, AAPL)" in text
    assert re.search(r"metric\s*┃\s*strategy\s*┃\s*SPY buy & hold", text)
    assert (f"Average exposure: strategy {summary.metrics.exposure:.1%}, benchmark {summary.benchmark.exposure:.1%}"
            in text)
    costs = summary.costs
    assert f"commission ${costs.commission:,.2f}, slippage ${costs.slippage:,.2f}" in text
    assert f"over {costs.fills:,} fills" in text


def test_no_benchmark_shows_the_strategy_column_only(data):
    _, text = run(data, RiskConfig(max_consecutive_losses=1000), benchmark="none")
    header = next(line for line in text.splitlines() if "metric" in line)
    assert header.count("┃") == 3  # two columns: metric, strategy
    assert "No benchmark" in text
