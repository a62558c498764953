"""Trade journal: winners against losers on a hand-built trade set (means, medians, shares), the
tests that rank the features, hypotheses stated with their dollars, the monthly journal and the
--month filter, and the month's bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from research.finished_run import FinishedRun
from research.frames import DECISION_COLUMNS, FILL_COLUMNS, LINKED_TRADE_COLUMNS, ORDER_COLUMNS
from research.trade_context import CONTEXT_COLUMNS, TradeContext
from research.trade_journal import (FEW_TRADES, JournalError, build_journal, journal_document, journal_markdown,
                                    parse_month, write_journal_files)

HOUR = 3_600 * 10**9


def _trades() -> pd.DataFrame:
    """16 trades: 8 winners entered at confidence 0.7-0.9 on AAA, 8 losers at 0.1-0.3 (6 on BBB, 2 on AAA).

    Exits: 10 in March 2020, 6 in April 2020.
    """
    rows = []
    for k in range(16):
        win = k % 2 == 0
        exit_ = pd.Timestamp("2020-03-02 15:00", tz="UTC") + pd.Timedelta(days=3 * k)
        rows.append({
            "trade_id": k + 1, "symbol": "AAA" if win or k in (1, 3) else "BBB", "side": "long", "quantity": 10.0,
            "entry_time": exit_ - pd.Timedelta(hours=5), "exit_time": exit_, "entry_price": 100.0,
            "exit_price": 105.0 if win else 97.0, "pnl": 50.0 + k if win else -30.0 - k,
            "return": 0.05 if win else -0.03,
            "commission": 0.0, "exit_reason": "profit_target" if win else "stop_loss",
            "exit_type": "target" if win else "stop", "decision_time": exit_ - pd.Timedelta(hours=6),
            "decision_link": "order", "confidence": 0.7 + 0.025 * k if win else 0.1 + 0.0125 * k,
            "regime": "low_vol_trending", "volatility": 0.01, "benchmark_trend": "above",
            "mae": -0.005 if win else -0.03, "mfe": 0.06 if win else 0.004, "holding_bars": 5 if win else 9,
            "holding_time_s": 18_000.0, "asset_class": "equity", "entry_hour": 10, "weekday": "Mon",
            "strategy": "demo", "model": "none"})
    return pd.DataFrame(rows, columns=CONTEXT_COLUMNS)


def _run(trades: pd.DataFrame) -> tuple[FinishedRun, TradeContext]:
    index = pd.date_range("2020-02-20", "2020-04-30", freq="D", tz="UTC")
    equity = pd.Series(np.linspace(10_000.0, 10_000.0 + trades["pnl"].sum(), len(index)), index=index)
    run = FinishedRun(run_id="hand", strategy="demo", params={"stop_loss": 0.02}, symbols=["AAA", "BBB"],
                      timeframe="1h", starting_cash=10_000.0, equity=equity,
                      trades=pd.DataFrame(columns=LINKED_TRADE_COLUMNS), fills=pd.DataFrame(columns=FILL_COLUMNS),
                      orders=pd.DataFrame(columns=ORDER_COLUMNS), decisions=pd.DataFrame(columns=DECISION_COLUMNS),
                      run_info={})
    return run, TradeContext(trades, "AAA", HOUR, True)


def test_winners_and_losers_compared_on_a_hand_built_trade_set():
    run, context = _run(_trades())
    journal = build_journal(run, context)
    assert (journal.winners, journal.losers) == (8, 8)
    numeric = {c.feature: c for c in journal.comparison}
    winners_conf = [0.7 + 0.025 * k for k in range(0, 16, 2)]
    losers_conf = [0.1 + 0.0125 * k for k in range(1, 16, 2)]
    assert numeric["confidence"].winners_mean == pytest.approx(np.mean(winners_conf))
    assert numeric["confidence"].losers_median == pytest.approx(np.median(losers_conf))
    assert (numeric["mae"].winners_mean, numeric["mae"].losers_mean) == pytest.approx((-0.005, -0.03))
    assert (numeric["holding_bars"].winners_median, numeric["holding_bars"].losers_median) == (5.0, 9.0)
    shares = {(s.feature, s.category): s for s in journal.shares}
    assert (shares["symbol", "AAA"].winners_share, shares["symbol", "AAA"].losers_share) == (1.0, 0.25)
    assert shares["symbol", "BBB"].trades == 6 and shares["symbol", "BBB"].win_rate == 0.0
    assert shares["symbol", "BBB"].pnl == pytest.approx(sum(-30.0 - k for k in (5, 7, 9, 11, 13, 15)))


def test_patterns_rank_the_separating_features_first():
    run, context = _run(_trades())
    journal = build_journal(run, context)
    by_feature = {p.feature: p for p in journal.patterns}
    # every winner entered above every loser: rank-biserial r = +1, and a clear Mann-Whitney p-value
    confidence = by_feature["confidence"]
    assert confidence.test == "Mann-Whitney U" and confidence.effect_size == pytest.approx(1.0)
    assert confidence.p_value < 0.001 and confidence.evidence == "weak"  # 8 v 8 trades: below FEW_TRADES
    assert by_feature["symbol"].test == "chi-square" and 0 < by_feature["symbol"].effect_size < 1
    # constant features (regime, weekday, ...) cannot separate anything and are left out
    assert "regime" not in by_feature and "weekday" not in by_feature
    sizes = [abs(p.effect_size) for p in journal.patterns]
    assert sizes == sorted(sizes, reverse=True)
    assert FEW_TRADES > 8 and "weak" in journal.evidence


def test_hypotheses_are_stated_with_the_dollars_behind_them():
    run, context = _run(_trades())
    journal = build_journal(run, context)
    floor = next(h for h in journal.hypotheses if "min_confidence" in h.test)
    below = context.trades[context.trades["confidence"] < float(floor.test.split("= ")[1].split(":")[0])]
    assert floor.trades == len(below) and floor.pnl == pytest.approx(below["pnl"].sum())
    assert floor.pnl < 0 and "tradingd optimize" in floor.test
    assert floor.p_value is not None and floor.p_value < 0.05 and floor.evidence == "weak"  # 8 trades: too few
    symbol = next(h for h in journal.hypotheses if "universe without BBB" in h.test)
    assert symbol.trades == 6
    stop = next(h for h in journal.hypotheses if "stop_loss" in h.test)  # winners never went 0.5% against
    losers = context.trades[context.trades["pnl"] < 0]
    assert stop.trades == len(losers) and stop.pnl == pytest.approx(losers["pnl"].sum()) and "0.50%" in stop.finding
    assert all("test" in h.test for h in journal.hypotheses)
    text = journal_markdown(journal)
    assert "Hypothesis: test" in text and "none is a promise" in text


def test_month_filter_keeps_the_trades_closed_in_that_month(tmp_path):
    run, context = _run(_trades())
    march = build_journal(run, context, "2020-03")
    exits = pd.to_datetime(march.trades["exit_time"], utc=True)
    assert len(march.trades) == 10 and (exits.dt.month == 3).all()
    assert march.month_summary is not None and march.month_summary.trades == 10
    assert march.month_summary.pnl == pytest.approx(march.trades["pnl"].sum())
    write_journal_files(march, tmp_path)
    assert len(pd.read_csv(tmp_path / "journal.csv")) == 10
    document = json.loads((tmp_path / "journal.json").read_text())
    assert document["month"] == "2020-03" and document["trades"] == 10
    assert [m["month"] for m in document["months"]] == ["2020-02", "2020-03", "2020-04"]
    assert document["months"][0]["trades"] == 0 and "no trade closed" in document["months"][0]["stood_out"]
    whole = journal_document(build_journal(run, context))
    assert whole["trades"] == 16 and whole["month_summary"] is None
    assert sum(m["trades"] for m in whole["months"]) == 16


@pytest.mark.parametrize("text, message", [("2020-3", "YYYY-MM"), ("2020-13", "YYYY-MM"), ("March", "YYYY-MM"),
                                           ("2020-05", "outside the run, which covers 2020-02 to 2020-04"),
                                           ("2019-12", "outside the run")])
def test_a_malformed_month_or_one_outside_the_run_is_refused(text, message):
    run, context = _run(_trades())
    with pytest.raises(JournalError, match=message):
        build_journal(run, context, text)
    assert parse_month("2020-02", run.equity) == "2020-02"


def _hours() -> pd.DataFrame:
    """70 trades entered at 7 hours, 10 each: at 13:00 every trade did 40 USD worse than its twin in
    the other hours (the same spread of outcomes, shifted down)."""
    rows, others = [], (10, 11, 12, 14, 15, 16)
    for k in range(70):
        hour = 13 if k < 10 else others[(k - 10) % 6]
        pnl = float(np.linspace(-60, 80, 10)[k] - 40) if k < 10 else float(np.linspace(-60, 80, 60)[k - 10])
        exit_ = pd.Timestamp("2020-03-02 15:00", tz="UTC") + pd.Timedelta(hours=12 * k)
        rows.append({
            "trade_id": k + 1, "symbol": "AAA", "side": "long", "quantity": 10.0, "entry_time": exit_ - pd.Timedelta(
                hours=5), "exit_time": exit_, "entry_price": 100.0, "exit_price": 100.0 + pnl / 10, "pnl": pnl,
            "return": pnl / 1000, "commission": 0.0, "exit_reason": "signal", "exit_type": "signal",
            "decision_time": exit_ - pd.Timedelta(hours=6), "decision_link": "order", "confidence": 0.5,
            "regime": "low_vol_trending", "volatility": 0.01, "benchmark_trend": "above", "mae": -0.01, "mfe": 0.01,
            "holding_bars": 5, "holding_time_s": 18_000.0, "asset_class": "equity", "entry_hour": hour,
            "weekday": "Mon", "strategy": "demo", "model": "none"})
    return pd.DataFrame(rows, columns=CONTEXT_COLUMNS)


def test_the_worst_of_several_buckets_is_corrected_for_the_buckets_searched():
    trades = _hours()
    assert trades["entry_hour"].nunique() == 7 and (trades["entry_hour"].value_counts() == 10).all()
    run, context = _run(trades)
    hour = next(h for h in build_journal(run, context).hypotheses if "time-of-day filter" in h.test)
    assert "13:00" in hour.finding and hour.trades == 10 and hour.compared == 7
    # on its own the 13:00 bucket looks different (p < 0.05 from 10 trades) ...
    assert hour.p_value is not None and hour.p_value < 0.05
    # ... but it is the worst of 7 hours: 7 x p is not below 0.05, so the evidence is weak
    assert hour.p_corrected == pytest.approx(min(1.0, 7 * hour.p_value)) and hour.p_corrected >= 0.05
    assert hour.evidence == "weak" and "corrected for the 7 hours searched (Bonferroni)" in hour.finding
