"""Per-trade context: MAE/MFE on hand-built bars (long and short), the entry decision (linked by
order id, or the last submitted decision for database runs), exit types of the real strategies'
reasons, exchange-local time and asset class, and no look-ahead in what is known at entry."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from backtest.sources import BarSeries
from research.finished_run import FinishedRun, RunLoadError
from research.frames import DECISION_COLUMNS, FILL_COLUMNS, LINKED_TRADE_COLUMNS, ORDER_COLUMNS, POSITION_COLUMNS
from research.trade_context import VOLATILITY_BARS, build_trade_context, exit_type
from tests.support import load_two_symbols, replay

HOUR = 3_600 * 10**9
T0 = pd.Timestamp("2024-01-02 15:00", tz="UTC")  # a Tuesday; 10:00 in New York


def bars(symbol: str, rows: list[tuple[float, float, float, float]], start: pd.Timestamp = T0) -> BarSeries:
    """Hourly bars from (open, high, low, close) rows, the first starting at ``start``."""
    o, h, lo, c = (np.array(col, dtype=float) for col in zip(*rows))
    ts = start.value + HOUR * np.arange(len(rows))
    return BarSeries(symbol, HOUR, ts, o, h, lo, c, np.full(len(rows), 1000.0))


def at(k: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=k)


def trade_row(n: int, symbol: str, side: str, entry: int, exit_: int, entry_price: float, exit_price: float,
              pnl: float = 1.0, reason: str = "stop_loss", entry_ids: str = "") -> dict[str, object]:
    return {"trade_id": n, "symbol": symbol, "side": side, "quantity": 10.0, "entry_time": at(entry),
            "exit_time": at(exit_), "entry_price": entry_price, "exit_price": exit_price, "pnl": pnl,
            "return": pnl / (10 * entry_price), "commission": 0.0, "exit_reason": reason,
            "holding_time_s": (exit_ - entry) * 3600.0, "entry_order_ids": entry_ids, "exit_order_ids": "",
            "entry_fill_ids": "", "exit_fill_ids": ""}


def decision(k: int, symbol: str, side: str, cid: str, confidence: float, regime: str,
             outcome: str = "submitted") -> dict[str, object]:
    """A decision at the END of bar k (= start of bar k + 1)."""
    return {"time": at(k + 1), "strategy_id": "demo", "symbol": symbol, "side": side, "quantity": 10.0,
            "outcome": outcome, "reason": "x", "client_order_id": cid, "confidence": confidence, "regime": regime}


def hand_run(trades: list[dict[str, object]], decisions: Sequence[dict[str, object]] = (),
             symbols: tuple[str, ...] = ("AAA",), info: dict[str, object] | None = None) -> FinishedRun:
    equity = pd.Series([10_000.0, 10_000.0], index=pd.DatetimeIndex([at(1), at(40)]))
    return FinishedRun(
        run_id="hand", strategy="demo", params={}, symbols=list(symbols), timeframe="1h", starting_cash=10_000.0,
        equity=equity, trades=pd.DataFrame(trades, columns=LINKED_TRADE_COLUMNS),
        fills=pd.DataFrame(columns=FILL_COLUMNS), orders=pd.DataFrame(columns=ORDER_COLUMNS),
        decisions=pd.DataFrame(list(decisions), columns=DECISION_COLUMNS), run_info=info or {},
        positions=pd.DataFrame(columns=POSITION_COLUMNS))


PATH = [(100.0, 101.0, 99.0, 100.0),   # 0
        (100.0, 103.0, 98.0, 102.0),   # 1  entry fill at this bar's open (100)
        (102.0, 108.0, 97.0, 105.0),   # 2
        (105.0, 106.0, 95.0, 96.0),    # 3
        (96.0, 130.0, 50.0, 97.0),     # 4  exit fill at this open (96): its range is after the exit
        (97.0, 98.0, 96.0, 97.0)]      # 5


def test_mae_and_mfe_of_a_long_and_a_short_equal_hand_computed_values():
    run = hand_run([trade_row(1, "AAA", "buy", 1, 4, 100.0, 96.0), trade_row(2, "AAA", "sell", 1, 4, 100.0, 96.0)])
    ctx = build_trade_context(run, [bars("AAA", PATH)]).trades
    long, short = ctx.iloc[0], ctx.iloc[1]
    # bars 1-3 held: lowest low 95, highest high 108; the exit bar's 50..130 came after the exit
    assert (long["mae"], long["mfe"]) == pytest.approx((95 / 100 - 1, 108 / 100 - 1))  # -5%, +8%
    assert (short["mae"], short["mfe"]) == pytest.approx((1 - 108 / 100, 1 - 95 / 100))  # -8%, +5%
    assert long["holding_bars"] == short["holding_bars"] == 3
    assert long["side"] == "long" and short["side"] == "short"


def test_excursions_never_change_sign_and_include_the_exit_price():
    # a long that only went up while open, closed below its entry at the next open (a gap down)
    path = [(10.0, 10.0, 10.0, 10.0), (10.0, 11.0, 10.0, 11.0), (9.0, 9.5, 9.0, 9.2)]
    run = hand_run([trade_row(1, "AAA", "buy", 1, 2, 10.0, 9.0)])
    row = build_trade_context(run, [bars("AAA", path)]).trades.iloc[0]
    assert row["mae"] == pytest.approx(-0.1)  # the exit fill at 9 is on the path
    assert row["mfe"] == pytest.approx(0.1)
    flat = hand_run([trade_row(1, "AAA", "buy", 1, 1, 10.0, 10.0)])  # in and out on one bar open
    row = build_trade_context(flat, [bars("AAA", path)]).trades.iloc[0]
    assert (row["mae"], row["mfe"], row["holding_bars"]) == (0.0, 0.0, 0)


def test_entry_decision_is_linked_by_order_id_else_the_last_submitted_one():
    decisions = [decision(0, "AAA", "buy", "o-1", 0.9, "low_vol_trending"),
                 decision(2, "AAA", "buy", "o-2", 0.4, "high_vol_trending"),
                 decision(3, "AAA", "buy", "", 0.1, "x", outcome="denied"),  # denied: never the entry
                 decision(3, "AAA", "sell", "o-3", 0.2, "y"),  # other side
                 decision(8, "AAA", "buy", "o-4", 0.7, "z")]  # after the entry
    linked = hand_run([trade_row(1, "AAA", "buy", 1, 4, 100.0, 96.0, entry_ids="o-1;o-9")], decisions)
    row = build_trade_context(linked, [bars("AAA", PATH * 2)]).trades.iloc[0]
    assert (row["confidence"], row["regime"], row["decision_link"], row["strategy"]) == (
        0.9, "low_vol_trending", "order", "demo")
    assert row["decision_time"] == at(1)
    # a database run has no order links: the last submitted buy of AAA at or before the entry (bar 5)
    unlinked = hand_run([trade_row(1, "AAA", "buy", 5, 8, 100.0, 96.0)], decisions)
    row = build_trade_context(unlinked, [bars("AAA", PATH * 2)]).trades.iloc[0]
    assert (row["confidence"], row["regime"], row["decision_link"]) == (0.4, "high_vol_trending", "last decision")
    none = hand_run([trade_row(1, "AAA", "buy", 1, 4, 100.0, 96.0)])
    row = build_trade_context(none, [bars("AAA", PATH)]).trades.iloc[0]
    assert np.isnan(row["confidence"]) and row["regime"] == "none" and row["decision_link"] == "none"


def test_exit_types_of_the_real_strategies_and_the_engine():
    reasons = {"stop_loss": "stop", "profit_target": "target", "trailing_stop": "trailing", "max_holding": "time",
               "sma_cross_up": "signal", "sma_cross_down": "signal", "ml_exit": "signal",
               "halt_flatten": "halt/flatten", "flatten": "halt/flatten", "time exit": "time",
               "take profit 2R": "target", "trail 3%": "trailing", "because": "other"}
    assert {r: exit_type(r) for r in reasons} == reasons
    # and on a real replay every raw reason of rsi_momentum lands in its own type, none in "other"
    result, store, _ = replay(load_two_symbols(), "rsi_momentum")
    assert {exit_type(t.exit_reason) for t in result.trades} <= {"stop", "target", "trailing", "time"}


def test_local_hour_weekday_and_asset_class_follow_the_exchange():
    crypto = bars("COINBASE_BTCUSD", PATH)
    run = hand_run([trade_row(1, "AAA", "buy", 1, 4, 100.0, 96.0), trade_row(2, "COINBASE_BTCUSD", "buy", 1, 4,
                                                                           100.0, 96.0)],
                   symbols=("AAA", "COINBASE_BTCUSD"))
    ctx = build_trade_context(run, [bars("AAA", PATH), crypto]).trades
    # entry at 16:00 UTC on Tuesday 2 January 2024: 11:00 in New York, 16:00 on the 24/7 (UTC) calendar
    assert ctx[["entry_hour", "weekday", "asset_class"]].values.tolist() == [[11, "Tue", "equity"],
                                                                             [16, "Tue", "crypto"]]
    # a calendar override makes a symbol crypto too
    overridden = hand_run([trade_row(1, "AAA", "buy", 1, 4, 100.0, 96.0)],
                          info={"fill": {"calendars": {"AAA": "24/7"}}})
    assert build_trade_context(overridden, [bars("AAA", PATH)]).trades["asset_class"].tolist() == ["crypto"]


def test_model_version_names_the_learner_of_a_learning_strategy():
    info = {"signals": {"learner_enabled": False, "learner": {"model": "logistic", "horizon_bars": 5,
                                                              "label_threshold": 0.0, "seed": 42}}}
    plain = hand_run([trade_row(1, "AAA", "buy", 1, 4, 100.0, 96.0)], info=info)
    assert build_trade_context(plain, [bars("AAA", PATH)]).trades["model"].tolist() == ["none"]
    learning = FinishedRun(**{**plain.__dict__, "strategy": "online_ml"})
    assert build_trade_context(learning, [bars("AAA", PATH)]).trades["model"].tolist() == [
        "logistic (horizon 5 bars, threshold 0, seed 42)"]


def test_missing_bars_of_a_traded_symbol_is_a_clear_error():
    run = hand_run([trade_row(1, "BBB", "buy", 1, 4, 100.0, 96.0)], symbols=("BBB",))
    with pytest.raises(RunLoadError, match="traded BBB but the bars given hold only AAA"):
        build_trade_context(run, [bars("AAA", PATH)])


def _perturbed(series: list[BarSeries], after_ns: int, rng: np.random.Generator) -> list[BarSeries]:
    """The same bars, with every bar that ended after ``after_ns`` scaled by a random factor."""
    out = []
    for s in series:
        factor = np.where(s.ts_init > after_ns, rng.uniform(0.5, 1.5, len(s)), 1.0)
        out.append(BarSeries(s.symbol, s.timeframe_ns, s.ts_event, s.open * factor, s.high * factor * 1.01,
                             s.low * factor * 0.99, s.close * factor, s.volume))
    return out


def test_changing_bars_after_the_entry_decision_does_not_change_the_entry_context(tmp_path):
    from research.finished_run import load_run_folder
    from research.output import write_outputs

    series = load_two_symbols()
    result, store, _ = replay(series, "online_ml")  # confidence and regime on every entry
    write_outputs(result, tmp_path, {"run_id": "ml", "strategy": "online_ml", "params": {}, "symbols": ["SPY", "AAPL"],
                                     "timeframe": "1h", "starting_cash": 100_000.0}, report=False,
                  decisions=store.decisions)
    run = load_run_folder(tmp_path)
    full = build_trade_context(run, series).trades
    assert full["decision_link"].eq("order").all() and full["confidence"].notna().all()
    entry_columns = ["decision_time", "confidence", "regime", "volatility", "benchmark_trend", "entry_hour", "weekday"]
    rng = np.random.default_rng(3)
    checked = 0
    for k in np.linspace(VOLATILITY_BARS, len(full) - 1, 6).astype(int):
        decided = pd.Timestamp(full.at[k, "decision_time"]).value
        changed = build_trade_context(run, _perturbed(series, decided, rng)).trades
        assert changed.loc[k, entry_columns].tolist() == full.loc[k, entry_columns].tolist()
        # the perturbation did reach the trade's path: its excursions moved
        assert (changed.at[k, "mae"], changed.at[k, "mfe"]) != (full.at[k, "mae"], full.at[k, "mfe"])
        checked += 1
    assert checked == 6
