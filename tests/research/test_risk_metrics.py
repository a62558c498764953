"""Risk metrics (research.risk_metrics): historical VaR and CVaR against numpy on hand-built returns,
the rolling summary, the distance from the equity high, the Ulcer index and recovery factor by hand,
and the ``risk`` block of a real replay's metrics.json and report."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from research.metrics import compute_metrics, daily_returns, drawdown_series
from research.output import write_outputs
from research.risk_metrics import (compute_risk_metrics, equity_high, historical_cvar, historical_var,
                                   recovery_factor, rolling_summary, ulcer_index)
from research.tearsheet import rolling_sharpe, rolling_volatility
from risk.config import RiskConfig
from tests.support import load_two_symbols, replay


def _shuffled(values: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(values)


def test_var_and_cvar_of_100_known_returns_are_the_worst_days_as_numpy_finds_them():
    # -5.0%, -4.9%, ..., +4.9%: the worst five days are -5.0 .. -4.6%
    returns = _shuffled(np.round(np.arange(-50, 50) / 1000.0, 6), seed=1)
    assert historical_var(returns, 0.95) == pytest.approx(-np.quantile(returns, 0.05, method="inverted_cdf"))
    assert historical_var(returns, 0.95) == pytest.approx(0.046)  # the 5th worst day
    assert historical_cvar(returns, 0.95) == pytest.approx(-np.sort(returns)[:5].mean())
    assert historical_cvar(returns, 0.95) == pytest.approx(0.048)
    # at 99% the tail is one day: VaR and CVaR are both the worst day
    assert historical_var(returns, 0.99) == pytest.approx(0.05)
    assert historical_cvar(returns, 0.99) == pytest.approx(0.05)


def test_cvar_is_the_mean_of_the_empirical_quantile_over_the_tail_when_it_splits_a_day():
    # 130 days at 95%: the tail holds 6.5 days, so the 7th worst counts half
    returns = np.random.default_rng(2).standard_t(3, 130) * 0.01
    p = 0.05
    grid = (np.arange(100_000) + 0.5) / 100_000 * p  # midpoints of (0, p)
    tail_mean = np.quantile(returns, grid, method="inverted_cdf").mean()
    assert historical_cvar(returns, 0.95) == pytest.approx(-tail_mean, rel=1e-4)
    worst = np.sort(returns)
    assert historical_cvar(returns, 0.95) == pytest.approx(-(worst[:6].sum() + 0.5 * worst[6]) / 6.5)
    assert historical_var(returns, 0.95) == pytest.approx(-np.quantile(returns, p, method="inverted_cdf"))
    assert historical_var(returns, 0.95) == pytest.approx(-worst[6])  # ceil(6.5) = 7th worst
    for level in (0.9, 0.95, 0.975, 0.99):
        var, cvar = historical_var(returns, level), historical_cvar(returns, level)
        assert var is not None and cvar is not None and cvar >= var


def test_var_is_not_estimated_from_a_tail_of_less_than_one_day_and_gains_give_a_negative_loss():
    returns = np.linspace(-0.02, 0.02, 99)
    assert historical_var(returns, 0.99) is None and historical_cvar(returns, 0.99) is None
    assert historical_var(returns[:19], 0.95) is None
    assert historical_var(np.append(returns, 0.03), 0.99) == pytest.approx(0.02)
    assert historical_var(np.full(40, 0.01), 0.95) == pytest.approx(-0.01)  # even the worst days gained
    assert historical_var(np.zeros(40), 0.95) == 0.0 and str(historical_var(np.zeros(40), 0.95)) == "0.0"
    with pytest.raises(ValueError, match="level"):
        historical_var(returns, 95)
    with pytest.raises(ValueError, match="NaN"):
        historical_cvar([0.01, float("nan")] * 20, 0.95)


def test_distance_from_the_high_and_the_time_since_it():
    idx = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    equity = pd.Series([100.0, 125.0, 110.0, 125.0, 105.0, 112.5], index=idx)
    high = equity_high(equity)
    assert high.peak == 125.0 and high.peak_time == idx[3]  # the last time at the high
    assert high.since == pd.Timedelta(days=2)
    assert high.distance == pytest.approx(112.5 / 125.0 - 1) == pytest.approx(drawdown_series(equity).iloc[-1])
    rising = equity_high(pd.Series([100.0, 101.0], index=idx[:2]))
    assert rising.distance == 0.0 and rising.since == pd.Timedelta(0)


def _curve(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=len(values), freq="h", tz="UTC"))


def test_ulcer_index_and_recovery_factor_follow_their_definitions():
    equity = _curve([100.0, 120.0, 90.0, 105.0, 130.0, 117.0])
    # by hand: running peaks 100, 120, 120, 120, 130, 130 -> drawdowns 0, 0, -30/120, -15/120, 0, -13/130
    drawdowns = [0.0, 0.0, -0.25, -0.125, 0.0, -0.1]
    assert ulcer_index(equity) == pytest.approx(math.sqrt(sum(d * d for d in drawdowns) / 6))
    # net profit 117 - 100 = 17 USD; the deepest fall in USD is 120 -> 90 = 30 (130 -> 117 is only 13)
    assert recovery_factor(equity) == pytest.approx(17 / 30)
    # a loss gives a negative factor; a curve that never falls has no drawdown: Ulcer 0, factor undefined
    assert recovery_factor(_curve([100.0, 80.0, 90.0])) == pytest.approx(-10 / 20)
    rising = _curve([100.0, 101.0, 105.0])
    assert ulcer_index(rising) == 0.0 and recovery_factor(rising) is None


def test_rolling_summary_is_last_lowest_and_highest_of_the_charted_series():
    idx = pd.date_range("2020-01-01", periods=300, freq="D", tz="UTC")
    equity = pd.Series(1e5 * np.exp(np.cumsum(np.random.default_rng(3).normal(3e-4, 0.01, 300))), index=idx)
    risk = compute_risk_metrics(equity, 365.0, window=60)
    sharpe = rolling_sharpe(daily_returns(equity), 365.0, 60).dropna()
    vol = rolling_volatility(daily_returns(equity), 365.0, 60).dropna()
    assert risk.rolling_sharpe.windows == len(sharpe) == 299 - 59
    assert (risk.rolling_sharpe.last, risk.rolling_sharpe.min, risk.rolling_sharpe.max) == pytest.approx(
        (sharpe.iloc[-1], sharpe.min(), sharpe.max()))
    assert (risk.rolling_volatility.last, risk.rolling_volatility.min, risk.rolling_volatility.max) == pytest.approx(
        (vol.iloc[-1], vol.min(), vol.max()))
    short = compute_risk_metrics(equity.iloc[:30], 365.0, window=60)
    assert short.rolling_sharpe.windows == 0 and short.rolling_sharpe.last is None
    assert rolling_summary(pd.Series([1.0, np.nan]), 2).last is None  # undefined in the last window


@pytest.fixture(scope="module")
def replay_folder(tmp_path_factory):
    result, _, _ = replay(load_two_symbols(), "sma_cross", risk=RiskConfig(max_consecutive_losses=1000))
    out = tmp_path_factory.mktemp("risk")
    write_outputs(result, out, {"run_id": "risk"}, report=True)
    return out


def _daily_from_csv(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Daily returns recomputed from equity.csv: last value of each UTC date, then the change."""
    times = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    closes = frame[column].groupby(times.dt.date).last()
    return (closes / closes.shift(1) - 1.0).dropna().to_numpy()


def test_a_real_replay_writes_the_risk_block_and_the_report_shows_it(replay_folder):
    out = replay_folder
    metrics = json.loads((out / "metrics.json").read_text())
    frame = pd.read_csv(out / "equity.csv")
    for who, column in (("strategy", "equity"), ("benchmark", "benchmark")):
        risk = metrics["risk"][who]
        daily = _daily_from_csv(frame, column)
        assert risk["observations"] == len(daily) > 400
        for level, tail in ((95, 0.05), (99, 0.01)):
            worst = np.sort(daily)
            k = int(np.floor(len(daily) * tail))
            expected_cvar = -(worst[:k].sum() + (len(daily) * tail - k) * worst[k]) / (len(daily) * tail)
            assert risk[f"var_{level}"] == pytest.approx(-np.quantile(daily, tail, method="inverted_cdf"))
            assert risk[f"cvar_{level}"] == pytest.approx(expected_cvar)
            assert risk[f"cvar_{level}"] >= risk[f"var_{level}"] > 0
        assert risk["rolling"]["window"] == 126 and risk["rolling"]["windows"] >= len(daily) - 125 - 5
        assert risk["rolling"]["sharpe"]["min"] <= risk["rolling"]["sharpe"]["last"] <= risk["rolling"]["sharpe"]["max"]
        values = frame[column].to_numpy()
        assert risk["equity_high"]["peak"] == pytest.approx(values.max())
        assert risk["equity_high"]["distance"] == pytest.approx(values[-1] / values.max() - 1)
        assert risk["equity_high"]["time_since"]["seconds"] >= 0
    assert metrics["risk"]["strategy"]["equity_high"]["distance"] == pytest.approx(frame["drawdown"].iloc[-1])
    text = (out / "report.html").read_text(encoding="utf-8")
    assert '<section id="section-risk">' in text and 'href="#section-risk"' in text
    table = text[text.index('id="risk-table"'):text.index("</table>", text.index('id="risk-table"'))]
    var95 = metrics["risk"]["strategy"]["var_95"]
    assert f'<td>Daily VaR 95% (historical)</td><td class="num">{var95 * 100:.2f}%</td>' in table


def test_risk_metrics_refuse_a_bad_curve():
    idx = pd.date_range("2024-01-01", periods=3, freq="D")  # naive
    with pytest.raises(ValueError, match="naive"):
        compute_risk_metrics(pd.Series([1.0, 2.0, 3.0], index=idx), 252.0)
    with pytest.raises(ValueError, match="window"):
        compute_risk_metrics(pd.Series([1.0, 2.0, 3.0], index=idx.tz_localize("UTC")), 252.0, window=1)
    m = compute_metrics(pd.Series([1.0, 2.0, 3.0], index=idx.tz_localize("UTC")))
    assert compute_risk_metrics(pd.Series([1.0, 2.0, 3.0], index=idx.tz_localize("UTC")),
                                m.periods_per_year).tail(0.95).var is None
