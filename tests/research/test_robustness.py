"""Robustness study pieces on real bars and hand-made tables: entries one bar late, doubled slippage,
the fan-out, market-period detection and the score's documented formula."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.data import load_data
from backtest.fill_model import FillConfig
from backtest.spec import RunSpec
from risk.config import RiskConfig
from core.enums import Regime
from learning.regime import RegimeDetector
from research.market_periods import RobustnessError, detect_periods, given_periods
from research.robustness import check_names
from research.robustness_score import MIN_SCENARIO_TRADES, WEIGHTS, ScenarioOutcome, score_scenarios, verdict
from research.rerun import scaled_costs
from research.variants import Variant, run_variants
from learning.regime import RegimeConfig
from tests.support import STRATEGY_PARAMS

DATA = Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted"
START, END = datetime(2019, 1, 1, tzinfo=timezone.utc), datetime(2019, 4, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def bars():
    """SPY and AAPL hourly, 2019Q1 (real data)."""
    return load_data([DATA / "SPY.csv.gz", DATA / "AAPL.csv.gz"], timeframe="1h", start=START, end=END)


def _spec(**fill) -> RunSpec:
    return RunSpec(strategy="sma_cross", params={"fast": 5, "slow": 20},
                   risk=RiskConfig(max_consecutive_losses=1000, daily_loss_limit=1.0, fractional_shares=True),
                   fill=FillConfig(**{"slippage_bps": 2.0, "commission_bps": 0.5, **fill}))


def test_delayed_entries_fill_exactly_one_bar_later(bars) -> None:
    base, late = run_variants({"base": bars}, [Variant("base", "base", _spec()),
                                               Variant("late", "assumption", _spec(), delay_entries=True)])
    assert base.ok and late.ok and len(base.trades) >= 10
    starts = {s.symbol: s.ts_event for s in bars}

    def next_bar(symbol: str, when: pd.Timestamp) -> pd.Timestamp:
        ts = starts[symbol]
        return pd.Timestamp(int(ts[np.searchsorted(ts, when.value) + 1]), unit="ns", tz="UTC")

    shifted = {(t.symbol, next_bar(t.symbol, t.entry_time)) for t in base.trades.itertuples()}
    got = [(t.symbol, t.entry_time) for t in late.trades.itertuples()]
    assert set(got) <= shifted  # every late entry is a base entry one bar of its symbol later
    # a base trade held past the delayed fill is there with its entry one bar later; one that
    # the strategy left on the very next bar merges into the next trade (its exit came first)
    held = {(t.symbol, next_bar(t.symbol, t.entry_time)) for t in base.trades.itertuples()
            if t.exit_time > next_bar(t.symbol, t.entry_time)}
    assert held <= set(got) and len(held) >= len(base.trades) - 3
    # exits are not delayed: every trade still ends on a bar a base trade ended on
    assert set(late.trades["exit_time"]) <= set(base.trades["exit_time"])


def test_delayed_entries_never_double_a_position(bars) -> None:
    """rsi_momentum asks to enter on every bar it is flat with nothing pending: the entry going
    out must not be joined by a second one it could not see yet (which risk would deny, or fill)."""
    spec = _spec().model_copy(update={"strategy": "rsi_momentum", "params": STRATEGY_PARAMS["rsi_momentum"],
                                      "risk": RiskConfig(max_consecutive_losses=1000, daily_loss_limit=1.0,
                                                         max_position_fraction=0.5)})  # room to double
    base, late = run_variants({"base": bars}, [Variant("base", "base", spec),
                                               Variant("late", "assumption", spec, delay_entries=True)])
    assert len(base.trades) >= 10 and abs(len(late.trades) - len(base.trades)) <= 2
    assert late.denied <= base.denied + 2
    for symbol in ("SPY", "AAPL"):
        largest = base.trades.loc[base.trades["symbol"] == symbol, "quantity"].max()
        assert late.trades.loc[late.trades["symbol"] == symbol, "quantity"].max() <= 1.05 * largest


def test_doubled_slippage_costs_more_on_the_same_trades(bars) -> None:
    one, two = run_variants({"base": bars}, [Variant("1x", "base", _spec()),
                                             Variant("2x", "assumption", _spec(slippage_bps=4.0))], jobs=2)
    assert len(one.trades) == len(two.trades) > 0
    assert list(one.trades["entry_time"]) == list(two.trades["entry_time"])
    assert list(one.trades["exit_time"]) == list(two.trades["exit_time"])
    assert two.slippage == pytest.approx(2 * one.slippage, rel=0.05) and two.slippage > one.slippage > 0
    assert two.trades["pnl"].sum() < one.trades["pnl"].sum()
    assert two.metrics["total_return"] < one.metrics["total_return"]


def test_costs_scale_part_by_part_and_slippage_stays_within_what_the_fill_model_takes() -> None:
    fill = FillConfig(slippage_bps=3000.0, slippage_volatility=0.1, commission_per_share=0.005,
                      commission_minimum=1.0, commission_bps=0.5)
    assert scaled_costs(fill, slippage=2.0) == {"slippage_bps": 5000.0, "slippage_volatility": 0.2}
    assert scaled_costs(fill, commission=3.0) == pytest.approx(
        {"commission_per_share": 0.015, "commission_minimum": 3.0, "commission_bps": 1.5})
    FillConfig(**{**fill.model_dump(), **scaled_costs(fill, slippage=2.0, commission=3.0)})  # still a valid fill


def test_forked_workers_give_what_one_process_gives(bars) -> None:
    variants = [Variant("base", "base", _spec()), Variant("late", "assumption", _spec(), delay_entries=True),
                Variant("broken", "assumption", RunSpec(strategy="sma_cross", params={"fast": 5, "slow": 20}),
                        bars="missing")]
    alone = run_variants({"base": bars}, variants, jobs=1)
    forked = run_variants({"base": bars}, variants, jobs=2)
    assert [r.name for r in forked] == ["base", "late", "broken"]
    for a, b in zip(alone[:2], forked[:2]):
        assert a.metrics == b.metrics and a.equity.equals(b.equity)
    assert "no bar set 'missing'" in forked[2].error and not forked[2].ok  # recorded, not raised


def test_window_variant_trades_only_inside_its_window(bars) -> None:
    start = int(pd.Timestamp("2019-02-01T00:00:00Z").value)
    end = int(pd.Timestamp("2019-03-01T00:00:00Z").value)
    result, = run_variants({"base": bars}, [Variant("feb", "period", _spec(), window=(start, end),
                                                    warm_start=int(bars[0].ts_event[0]))])
    assert result.ok and result.start == pd.Timestamp(start, unit="ns", tz="UTC")
    assert result.equity.iloc[0] == 100_000.0 and result.end <= pd.Timestamp(end, unit="ns", tz="UTC")
    assert len(result.trades) > 0 and (result.trades["entry_time"] >= result.start).all()


def _quarters(series, regime: RegimeConfig) -> dict[int, dict[str, float]]:
    """Each calendar quarter's benchmark move and label shares, read off the detector bar by bar
    (quarters with fewer than 20 bars or mostly warm-up left out), keyed by the quarter's first bar."""
    detector = RegimeDetector(regime)
    labels = np.array([detector.update_closes((float(c),)).value for c in series.close], dtype=object)
    quarter_of = pd.to_datetime(series.ts_event, unit="ns", utc=True).tz_localize(None).to_period("Q")
    out = {}
    for quarter in sorted(set(quarter_of)):
        rows = np.flatnonzero(quarter_of == quarter)
        known = labels[rows][labels[rows] != Regime.UNKNOWN.value]
        if len(rows) < 20 or len(known) < len(rows) / 2:
            continue
        before = series.close[rows[0] - 1] if rows[0] > 0 else series.open[rows[0]]
        out[int(series.ts_event[rows[0]])] = {
            "move": series.close[rows[-1]] / before - 1,
            "high_vol": np.isin(known, ["high_vol_trending", "high_vol_mean_reverting"]).mean(),
            "trending": np.isin(known, ["low_vol_trending", "high_vol_trending"]).mean(),
            "sideways": (known == "low_vol_sideways").mean()}
    return out


def test_market_periods_are_the_quarters_that_fit_their_label_best() -> None:
    spy = load_data([DATA / "SPY.csv.gz"], timeframe="1h", start=datetime(2006, 1, 1, tzinfo=timezone.utc),
                    end=datetime(2011, 1, 1, tzinfo=timezone.utc))[0]
    periods, notes = detect_periods(spy, RegimeConfig())
    assert [p.name for p in periods] == ["bull", "bear", "high_vol", "sideways"] and notes == []
    by = {p.name: p for p in periods}
    assert by["bull"].benchmark_return > 0.05 > -0.05 > by["bear"].benchmark_return
    assert len({p.start for p in periods}) == 4  # four different quarters
    for p in periods:
        first = pd.Timestamp(p.start, unit="ns", tz="UTC")
        assert pd.Timestamp(p.end, unit="ns", tz="UTC") - first <= pd.Timedelta(days=92)
        assert first.month in (1, 4, 7, 10) and p.benchmark == "SPY"
    # each period is the quarter with the most of its label, as the detector read each bar
    quarters = _quarters(spy, RegimeConfig())
    label = {"bull": "trending", "bear": "trending", "high_vol": "high_vol", "sideways": "sideways"}
    for p in periods:
        assert p.share == pytest.approx(quarters[p.start][label[p.name]])
        assert p.benchmark_return == pytest.approx(quarters[p.start]["move"])
    assert by["high_vol"].share == max(q["high_vol"] for q in quarters.values())
    others = {k: q for k, q in quarters.items() if k != by["high_vol"].start}  # each quarter is used once
    assert by["bear"].share * -by["bear"].benchmark_return == pytest.approx(
        max(q["trending"] * -q["move"] for q in others.values() if q["move"] < 0))
    assert by["bull"].share * by["bull"].benchmark_return == pytest.approx(
        max(q["trending"] * q["move"] for q in others.values() if q["move"] > 0))
    median = float(np.median([abs(q["move"]) for q in quarters.values()]))
    quiet = [q for k, q in others.items() if abs(q["move"]) <= median and k not in (by["bull"].start, by["bear"].start)]
    assert abs(by["sideways"].benchmark_return) <= median
    assert by["sideways"].share == max(q["sideways"] for q in quiet)


def _day(text: str) -> int:
    return int(pd.Timestamp(text).tz_localize("UTC").value)


def test_given_periods_are_cut_to_the_data_and_refused_outside_it(bars) -> None:
    inside, = given_periods(bars, [("feb", _day("2019-02-01"), _day("2019-03-01"))])
    assert inside.source == "given" and inside.benchmark == "SPY" and inside.note == ""
    # a period running past the last bar is cut to the data (a detected quarter is measured on the
    # bars it has too), and says so
    later, = given_periods(bars, [("later", _day("2019-03-01"), _day("2019-06-01"))])
    assert (later.start, later.end) == (_day("2019-03-01"), _day("2019-03-30"))  # the last bar: 2019-03-29
    assert "--period later: cut to 2019-03-01 .. 2019-03-29" in later.note and "ends on 2019-03-29" in later.note
    early, = given_periods(bars, [("early", _day("2018-11-01"), _day("2019-01-15"))])
    assert early.start == _day("2019-01-02") and "starts on 2019-01-02" in early.note
    with pytest.raises(RobustnessError, match="outside the run's data"):
        given_periods(bars, [("gone", _day("2019-05-01"), _day("2019-06-01"))])


def test_scenario_names_may_not_collide() -> None:
    check_names(["gfc", "bull"], ["banks", "crypto"])  # a detected period's name or crypto: replaces that one
    for periods, universes, message in [
        (["slippage_2x"], [], "--period slippage_2x: the name of the built-in assumption scenario"),
        (["crypto"], [], "--period crypto: the name of the built-in universe scenario"),
        ([], ["crash_month"], "--universe crash_month: the name of the built-in stress scenario"),
        ([], ["bear"], "--universe bear: the name of the built-in period scenario"),
        (["q1", "q1"], [], "--period q1: given more than once"),
        (["x"], ["x"], "--period x: also given as a --universe NAME"),
        (["base"], [], "the name 'base' is the run itself"),
    ]:
        with pytest.raises(RobustnessError, match=re.escape(message)):
            check_names(periods, universes)


def test_score_parts_combine_as_documented() -> None:
    base = ScenarioOutcome("base", "base", sharpe=1.5, total_return=0.30, max_drawdown=0.10, trades=60)
    table = [
        ScenarioOutcome("bear", "period", -2.0, -0.05, 0.12, trades=12),  # Sharpe not counted
        ScenarioOutcome("crypto", "universe", 0.6, 0.10, 0.25, trades=40),
        ScenarioOutcome("flash_crash", "stress", 1.2, 0.25, 0.18, trades=60),
        ScenarioOutcome("slippage_2x", "assumption", 1.3, 0.24, 0.15, trades=60),
        ScenarioOutcome("commission_2x", "assumption", 1.4, 0.27, 0.14, trades=60),
        ScenarioOutcome("delayed_entry", "assumption", None, None, None, error="RuntimeError: boom"),
    ]
    result = score_scenarios(base, table, max_drawdown_limit=0.20)
    assert result.fractions == pytest.approx({
        "profitable": 4 / 6,           # 4 of 6 made money; the failed one counts as not profitable
        "worst_sharpe": 0.6 / 1.5,     # crypto is the worst whole-span Sharpe
        "drawdown": 2 - 0.25 / 0.20,   # 25% drawdown against a 20% breaker limit
        "cost": 0.24 / 0.30})          # slippage_2x kept 80% of the base return
    assert result.parts == pytest.approx({k: WEIGHTS[k] * v for k, v in result.fractions.items()})
    assert result.score == pytest.approx(20.0 + 10.0 + 18.75 + 16.0)
    assert result.weakest is not None and result.weakest.name == "delayed_entry"  # a failed replay is the weakest

    healthy = [s for s in table if not s.error]
    weakest = score_scenarios(base, healthy, 0.20).weakest
    assert weakest is not None and weakest.name == "bear"
    # a losing base run gets nothing for Sharpe or costs, whatever the scenarios do
    poor = score_scenarios(ScenarioOutcome("base", "base", -0.3, -0.02, 0.05, trades=60), healthy, 0.20)
    assert poor.parts["worst_sharpe"] == 0.0 and poor.parts["cost"] == 0.0
    # every scenario within the breaker limit and profitable: full marks on those parts
    calm = [ScenarioOutcome(s.name, s.kind, 2.0, 0.4, 0.05, trades=30) for s in healthy]
    top = score_scenarios(base, calm, 0.20)
    assert top.score == 100.0


def test_thin_scenarios_do_not_count_as_evidence_and_a_thin_base_cannot_pass() -> None:
    base = ScenarioOutcome("base", "base", sharpe=1.5, total_return=0.30, max_drawdown=0.10, trades=60)
    few = MIN_SCENARIO_TRADES - 1
    table = [
        ScenarioOutcome("bull", "period", 3.0, 0.04, 0.01, trades=few),  # made money on too few trades
        ScenarioOutcome("sideways", "period", 0.0, 0.0, 0.0, trades=0),  # did nothing
        ScenarioOutcome("crypto", "universe", -1.0, -0.02, 0.03, trades=2),  # lost on two trades
        ScenarioOutcome("flash_crash", "stress", 1.2, 0.25, 0.18, trades=60),
        ScenarioOutcome("slippage_2x", "assumption", 1.3, 0.24, 0.15, trades=MIN_SCENARIO_TRADES),
    ]
    assert [s.thin for s in table] == [True, True, True, False, False]
    result = score_scenarios(base, table, 0.20)
    assert result.fractions["profitable"] == 2 / 5  # the thin bull quarter made money but does not count
    assert "3 thin" in result.details["profitable"]
    assert result.fractions["worst_sharpe"] == pytest.approx(1.2 / 1.5)  # crypto's two trades left out
    assert result.weakest is not None and result.weakest.name == "flash_crash"  # among the non-thin ones
    all_thin = score_scenarios(base, table[:3], 0.20)
    assert all_thin.weakest is not None and all_thin.weakest.name == "crypto"  # all thin: chosen among all
    # the base run's own trades: a high score from one trade does not pass
    assert verdict(93.8, 1, 60.0, 20) == (False, "the base replay closed 1 trade(s), fewer than the 20 a pass "
                                                 "needs (--min-trades): too little evidence")
    assert verdict(93.8, 20, 60.0, 20)[0] and not verdict(59.9, 400, 60.0, 20)[0]
