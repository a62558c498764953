"""The position-sizing sweep (research.sizing): the efficient frontier and the recommendation on
hand-made tables, the --risk grid, and real sweeps on SPY + AAPL hourly bars (first half of 2019)
where a larger level must give larger positions (the Ulcer index and the recovery factor are
tested with research.risk_metrics).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from backtest.data import load_data
from backtest.fill_model import FillConfig
from backtest.sources import load_bars
from backtest.spec import RunSpec
from research.sizing import (SizingError, SizingLevel, efficient_frontier, parse_levels, recommend, run_sizing,
                             write_sizing_outputs)
from risk.config import RiskConfig
from tests.support import DATA

START, END = datetime(2019, 1, 1, tzinfo=timezone.utc), datetime(2019, 7, 1, tzinfo=timezone.utc)


def _level(level: float, total_return: float, max_drawdown: float) -> SizingLevel:
    return SizingLevel(level=level, total_return=total_return, cagr=None, sharpe=None, sortino=None,
                       recovery_factor=None, ulcer_index=0.0, max_drawdown=max_drawdown, trades=10)


def _table(rows: list[tuple[float, float, float]]) -> list[SizingLevel]:
    """Levels (level, return, drawdown) with their frontier flags, as a sweep marks them."""
    flags = efficient_frontier([r for _, r, _ in rows], [d for _, _, d in rows])
    return [replace(_level(*row), on_frontier=flag) for row, flag in zip(rows, flags)]


def test_the_frontier_keeps_only_levels_no_other_level_beats_on_both_return_and_drawdown():
    rows = [(0.005, 0.04, 0.03), (0.01, 0.09, 0.06), (0.015, 0.07, 0.08),  # 0.015: worse than 0.01 on both
            (0.02, 0.12, 0.11), (0.025, 0.12, 0.13),  # 0.025: same return as 0.02, deeper drawdown
            (0.03, 0.10, 0.16)]  # 0.03: less return and more drawdown than 0.02
    on = [x.level for x in _table(rows) if x.on_frontier]
    assert on == [0.005, 0.01, 0.02]
    # equal points do not dominate each other
    assert efficient_frontier([0.1, 0.1], [0.05, 0.05]) == [True, True]
    with pytest.raises(ValueError, match="2 returns but 1 drawdowns"):
        efficient_frontier([0.1, 0.2], [0.05])


def test_the_recommendation_is_the_best_frontier_level_within_the_drawdown_tolerance():
    levels = _table([(0.005, 0.04, 0.03), (0.01, 0.09, 0.06), (0.015, 0.07, 0.08), (0.02, 0.12, 0.11),
                     (0.03, 0.10, 0.16)])
    best, reason = recommend(levels, 0.15)
    assert best is not None and best.level == 0.02 and "within the tolerance 15.00%" in reason
    best, _ = recommend(levels, 0.10)  # 0.02 is now too deep: the next frontier level down
    assert best is not None and best.level == 0.01 and best.max_drawdown <= 0.10
    best, _ = recommend(levels, 0.06)  # a drawdown equal to the tolerance is within it
    assert best is not None and best.level == 0.01
    best, reason = recommend(levels, 0.02)
    assert best is None
    assert "no level keeps the max drawdown within 2.00%" in reason and "3.00% at level 0.005" in reason
    with pytest.raises(SizingError, match="--max-drawdown 1.5: must be a fraction in"):
        recommend(levels, 1.5)


def test_the_risk_grid_includes_stop_when_on_the_grid_and_names_what_is_wrong():
    assert parse_levels("0.005:0.02:0.0025") == [0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02]
    assert parse_levels("0.01:0.02:0.004") == [0.01, 0.014, 0.018]  # 0.022 would pass STOP
    assert parse_levels("0.01:0.01:0.01") == [0.01]
    for spec, message in [("0.01-0.02", "expected START:STOP:STEP"), ("a:0.02:0.01", "START 'a' is not a number"),
                          ("0:0.02:0.01", "START 0 must be a fraction of equity in \\(0, 0.1\\]"),
                          ("0.01:0.5:0.01", "STOP 0.5 must be"), ("0.02:0.01:0.01", "START 0.02 is above STOP 0.01"),
                          ("0.01:0.02:-0.01", "STEP -0.01 must be above 0"), ("0.01:inf:0.01", "STOP must be a finite"),
                          ("0.0001:0.1:0.0001", "1000 levels, more than 200")]:
        with pytest.raises(SizingError, match=message):
            parse_levels(spec)


@pytest.fixture(scope="module")
def bars():
    return [load_bars(DATA / f"{sym}.csv.gz", start=START, end=END) for sym in ("SPY", "AAPL")]


def _numbers(values: list[float | None]) -> list[float]:
    assert None not in values, values
    return [float(v) for v in values if v is not None]


def _spec(strategy: str, params: dict, risk: RiskConfig) -> RunSpec:
    return RunSpec(strategy=strategy, params=params, risk=risk, fill=FillConfig(slippage_bps=2.0, commission_bps=0.5))


def test_a_fixed_fraction_run_sweeps_fixed_fraction_and_larger_levels_hold_larger_positions(bars, tmp_path):
    base = _spec("sma_cross", {"fast": 10, "slow": 40}, RiskConfig(max_consecutive_losses=1000))
    result = run_sizing(base, bars, [0.02, 0.05, 0.08], max_drawdown=0.15, run_id="r1")
    assert result.key == "risk.fixed_fraction" and result.current == 0.10
    assert "risk_per_trade has no effect" in result.notes[0]
    levels = result.levels
    assert [x.level for x in levels] == [0.02, 0.05, 0.08]
    assert all(x.trades > 0 for x in levels)
    positions = _numbers([x.mean_position_usd for x in levels])
    exposure = _numbers([x.exposure for x in levels])
    assert positions[0] < positions[1] < positions[2] and exposure[0] < exposure[1] < exposure[2]
    assert levels[0].max_drawdown < levels[1].max_drawdown < levels[2].max_drawdown
    assert levels[0].max_drawdown_usd < levels[2].max_drawdown_usd
    # the recommendation obeys the tolerance, is on the frontier and is the best such level
    best = result.recommended
    assert best is not None and best.on_frontier and best.max_drawdown <= 0.15 and best.total_return > 0
    assert best.total_return == max(x.total_return for x in levels if x.on_frontier and x.max_drawdown <= 0.15)

    # forked workers give the very same levels as the in-process loop
    forked = run_sizing(base, bars, [0.02, 0.05, 0.08], max_drawdown=0.15, run_id="r1", jobs=2)
    assert [x.to_json() for x in forked.levels] == [x.to_json() for x in levels]

    written = write_sizing_outputs(result, tmp_path)
    assert written == ["sizing.json", "levels.csv"]
    doc = json.loads((tmp_path / "sizing.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert {"run_id", "key", "levels", "tolerance", "recommended", "recommended_reason"} <= set(doc)
    assert doc["tolerance"] == {"max_drawdown": 0.15} and doc["key"] == "risk.fixed_fraction"
    assert [lv["risk_per_trade"] for lv in doc["levels"]] == [0.02, 0.05, 0.08]
    for row in doc["levels"]:
        assert {"risk_per_trade", "total_return", "cagr", "sharpe", "sortino", "recovery_factor", "ulcer_index",
                "max_drawdown", "trades", "on_frontier"} <= set(row)
    csv_rows = (tmp_path / "levels.csv").read_text().splitlines()
    assert csv_rows[0].startswith("fixed_fraction,total_return") and len(csv_rows) == 4


def test_a_risk_per_trade_run_sweeps_risk_per_trade_and_notes_capped_levels(bars):
    # rsi_momentum sets a stop 2% below the entry: 0.2% risk -> a position of 10% of equity
    roomy = RiskConfig(sizing="risk_per_trade", max_position_fraction=1.0, max_consecutive_losses=1000)
    result = run_sizing(_spec("rsi_momentum", {}, roomy), bars, [0.002, 0.004, 0.006])
    assert result.key == "risk.risk_per_trade" and result.current == 0.01
    positions = _numbers([x.mean_position_usd for x in result.levels])
    assert all(x.trades > 0 for x in result.levels) and positions[0] < positions[1] < positions[2]
    assert not any("same replay" in n for n in result.notes)
    # with the default 10% position cap every one of these levels is capped to the same size: said so
    capped = run_sizing(_spec("rsi_momentum", {}, roomy.model_copy(update={"max_position_fraction": 0.1})), bars,
                        [0.004, 0.006])
    assert capped.levels[0].to_json() | {"risk_per_trade": 0} == capped.levels[1].to_json() | {"risk_per_trade": 0}
    assert any("gave exactly the same replay (0.004, 0.006)" in n for n in capped.notes)


def test_no_recommendation_without_trades_or_without_a_positive_return():
    levels = _table([(0.005, -0.01, 0.02), (0.01, -0.02, 0.04)])
    best, reason = recommend(levels, 0.15)
    assert best is None and reason.startswith("no level made money within the tolerance 15.00%: the best return is "
                                              "-1.00% at level 0.005")
    flat = [replace(x, trades=0, total_return=0.0, max_drawdown=0.0) for x in levels]
    assert recommend(flat, 0.15) == (None, "no level closed a trade")


@pytest.fixture(scope="module")
def bitcoin():
    """BTC-USD hourly, 2018 Q1 (USD 5.9k-17k a coin)."""
    return load_data([DATA.parent / "crypto_1hour" / "COINBASE_BTCUSD.csv.gz"], timeframe="1h",
                     start=datetime(2018, 1, 1, tzinfo=timezone.utc), end=datetime(2018, 4, 1, tzinfo=timezone.utc))


def test_whole_shares_of_bitcoin_count_the_entries_that_round_to_zero_and_never_recommend_a_level_without_trades(
        bitcoin, tmp_path):
    whole = _spec("rsi_momentum", {}, RiskConfig(max_consecutive_losses=1000))
    result = run_sizing(whole, bitcoin, [0.02, 0.1], max_drawdown=0.5)
    small, large = result.levels
    # 2% of 100k USD buys no whole bitcoin: every entry is denied and the level never trades
    assert small.trades == 0 and small.rounded_to_zero > 0 and not small.on_frontier
    assert large.trades > 0 and large.rounded_to_zero < small.rounded_to_zero
    assert result.recommended is None or result.recommended.level == 0.1
    note = next(n for n in result.notes if "rounds to zero whole shares" in n)
    assert f"{small.rounded_to_zero} at 0.02" in note and "risk.fractional_shares = true" in note
    assert not any("same replay" in n for n in result.notes)  # a level that never traded is not blamed on a cap
    write_sizing_outputs(result, tmp_path)
    idle_row = (tmp_path / "levels.csv").read_text().splitlines()[1].split(",")
    assert "0.0" in idle_row and "-0.0" not in idle_row  # the idle level's flat drawdown is 0.0, never -0.0
    doc = json.loads((tmp_path / "sizing.json").read_text())
    idle_level = doc["levels"][0]
    assert idle_level["rounded_to_zero"] == small.rounded_to_zero and str(idle_level["max_drawdown"]) == "0.0"
    # fractional shares: nothing rounds to zero, every level trades
    fractional_risk = whole.risk.model_copy(update={"fractional_shares": True})
    fractional = run_sizing(whole.model_copy(update={"risk": fractional_risk}), bitcoin, [0.02, 0.1], max_drawdown=0.5)
    assert [x.rounded_to_zero for x in fractional.levels] == [0, 0] and all(x.trades > 0 for x in fractional.levels)
    # a sweep where no level trades is refused, with the fix
    with pytest.raises(SizingError, match="no level closed a trade .*rounds to zero whole shares: set "
                                          "risk.fractional_shares = true"):
        run_sizing(whole, bitcoin, [0.02, 0.04])
