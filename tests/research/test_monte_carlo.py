"""Monte Carlo methods on hand-built trade lists whose distributions are known exactly.

The trade shuffle is checked against every permutation of a 7-trade list (enumerated with
itertools: the exact max-drawdown distribution and losing-streak probability); the bootstraps
against the analytic mean of the final log-return; identical trades give a degenerate
distribution; the shuffle compounds returns on account, not dollar P&L; the same seed gives the
same numbers, also when the cost replays of a real replay run in worker processes.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from research.finished_run import FinishedRun, RunLoadError
from research.monte_carlo import (MonteCarloError, block_bootstrap_daily, bootstrap_trades, price_noise, run_monte_carlo,
                                  shuffle_trades, trade_returns, write_monte_carlo_outputs)

RETURNS = np.array([0.05, -0.03, 0.02, -0.04, 0.06, -0.02, -0.01])  # 7! = 5,040 orders


def _exact_max_drawdown(order) -> float:
    equity, peak, worst = 1.0, 1.0, 0.0
    for r in order:
        equity *= 1.0 + r
        peak = max(peak, equity)
        worst = max(worst, 1.0 - equity / peak)
    return worst


def _exact_streak(order) -> int:
    best = run = 0
    for r in order:
        run = run + 1 if r < 0 else 0
        best = max(best, run)
    return best


def _ecdf_distance(sample: np.ndarray, exact: np.ndarray) -> float:
    """Largest gap between the two empirical CDFs (Kolmogorov-Smirnov statistic)."""
    grid = np.union1d(sample, exact)
    a = np.searchsorted(np.sort(sample), grid, side="right") / len(sample)
    b = np.searchsorted(np.sort(exact), grid, side="right") / len(exact)
    return float(np.abs(a - b).max())


def test_shuffle_matches_the_exact_distribution_over_all_permutations():
    orders = list(itertools.permutations(RETURNS))
    exact_dd = np.array([_exact_max_drawdown(o) for o in orders])
    exact_streak = np.array([_exact_streak(o) for o in orders])
    sims = shuffle_trades(RETURNS, 20_000, np.random.default_rng(1), trades_per_year=7.0)

    # 20,000 draws: the KS statistic exceeds 0.0115 with probability 1% (Kolmogorov's limit 1.63/sqrt(n))
    assert _ecdf_distance(sims.max_drawdown, exact_dd) < 0.015
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        low, high = np.quantile(exact_dd, [max(q - 0.03, 0), min(q + 0.03, 1)])
        assert low - 1e-12 <= np.quantile(sims.max_drawdown, q) <= high + 1e-12
    assert sims.losing_streak is not None
    for n in (2, 3, 4):
        p = float(np.mean(exact_streak >= n))
        assert abs(float(np.mean(sims.losing_streak >= n)) - p) < 4 * math.sqrt(p * (1 - p) / 20_000) + 1e-9
    # the final return is the same in every order
    assert np.allclose(sims.total_return, np.prod(1 + RETURNS) - 1, rtol=0, atol=1e-12)
    assert sims.max_drawdown.min() >= exact_dd.min() - 1e-12 and sims.max_drawdown.max() <= exact_dd.max() + 1e-12


def test_identical_trades_give_a_degenerate_distribution():
    same = np.full(12, 0.01)
    rng = np.random.default_rng(3)
    for sims in (shuffle_trades(same, 500, rng, 12.0), bootstrap_trades(same, 500, rng, 12.0)):
        assert np.all(sims.total_return == sims.total_return[0])
        assert sims.total_return[0] == pytest.approx(1.01 ** 12 - 1, abs=1e-12)
        assert np.all(sims.max_drawdown == 0.0) and np.all(sims.losing_streak == 0)
        assert np.all(np.isnan(sims.sharpe))  # zero dispersion: undefined, never inf
        assert np.allclose(sims.bands, sims.bands[2])  # every percentile band is the median path
    losers = shuffle_trades(np.full(6, -0.02), 200, rng, 6.0)
    assert np.all(losers.losing_streak == 6) and np.allclose(losers.max_drawdown, 1 - 0.98 ** 6)


def test_bootstrap_mean_log_return_matches_the_analytic_expectation():
    n, sims = len(RETURNS), 40_000
    out = bootstrap_trades(RETURNS, sims, np.random.default_rng(11), 7.0)
    logs = np.log1p(RETURNS)
    expected = n * logs.mean()  # a sum of n independent draws of log(1 + r_i)
    sd = math.sqrt(n * logs.var()) / math.sqrt(sims)
    assert abs(np.log1p(out.total_return).mean() - expected) < 4 * sd
    assert out.total_return.std() > 0.01  # unlike the shuffle, the bootstrap spreads the return

    # circular blocks: every day is equally likely at every position, so the same holds for days
    # (blocks that could not wrap would under-weight the first and last day, the worst ones here)
    days = pd.Series([-0.04, 0.01, -0.02, 0.015, 0.03, -0.01, 0.0, 0.02, 0.005, -0.045],
                     index=pd.date_range("2024-01-02", periods=10, freq="D", tz="UTC"))
    daily = block_bootstrap_daily(days, sims, np.random.default_rng(12), block_days=4, days_per_year=252.0)
    day_logs = np.log1p(days.to_numpy())
    # 3 independent blocks of 4 days: var(block sum) <= 4^2 var(day) (Cauchy-Schwarz)
    sd = math.sqrt(3 * 16 * day_logs.var()) / math.sqrt(sims)
    assert abs(np.log1p(daily.total_return).mean() - 10 * day_logs.mean()) < 4 * sd
    assert daily.worst_day is not None and daily.times is not None
    assert daily.worst_day.min() == pytest.approx(-0.045) and daily.times[0] < days.index[0]


def _run(trades: list[dict], equity: list[tuple[str, float]], risk: dict | None = None,
         starting_cash: float = 100_000.0) -> FinishedRun:
    frame = pd.DataFrame(trades)
    frame["trade_id"] = range(1, len(frame) + 1)
    for column in ("entry_time", "exit_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame = frame.assign(side=frame.get("side", "buy"), commission=0.0)
    curve = pd.Series([v for _, v in equity], index=pd.DatetimeIndex(pd.to_datetime([t for t, _ in equity], utc=True)))
    return FinishedRun(run_id="hand-built", strategy="test", params={}, symbols=["X"], timeframe="1d",
                       starting_cash=starting_cash, equity=curve, trades=frame, fills=pd.DataFrame(),
                       orders=pd.DataFrame(), decisions=pd.DataFrame(),
                       run_info={"risk": risk or {"max_drawdown": 0.2, "daily_loss_limit": 0.05,
                                                  "max_consecutive_losses": 3}})


def _trade(entry: str, exit_: str, pnl: float, quantity: float = 100.0, price: float = 100.0,
           side: str = "buy") -> dict:
    sign = 1.0 if side == "buy" else -1.0
    return {"entry_time": entry, "exit_time": exit_, "pnl": pnl, "quantity": quantity, "entry_price": price,
            "exit_price": price + sign * pnl / quantity, "side": side}


def test_shuffle_compounds_returns_on_account_not_dollar_pnl():
    # +100k on 100k equity (+100%), then -50k on 200k (-25%). Shuffled dollar P&L would put the
    # loss first, 100k -> 50k: a 50% drawdown. As returns the loss is 25% of whatever equity it meets.
    run = _run([_trade("2024-01-02", "2024-01-03", 100_000.0, quantity=1000.0),
                _trade("2024-01-04", "2024-01-05", -50_000.0, quantity=1000.0)],
               [("2024-01-02", 100_000.0), ("2024-01-03", 200_000.0), ("2024-01-04", 200_000.0),
                ("2024-01-05", 150_000.0)])
    assert trade_returns(run.trades, run.equity, run.starting_cash).tolist() == [1.0, -0.25]
    result = run_monte_carlo(run, sims=400, seed=5)
    shuffle = result.simulations["trade_shuffle"]
    assert np.allclose(shuffle.max_drawdown, 0.25) and np.allclose(shuffle.total_return, 0.5)
    assert result.to_dict()["trade_shuffle"]["max_drawdown"]["p95"] == pytest.approx(0.25)


def _long_run(n_trades: int = 40, seed: int = 0) -> FinishedRun:
    rng = np.random.default_rng(seed)
    days = pd.date_range("2023-01-02", periods=2 * n_trades + 2, freq="D", tz="UTC")
    equity, trades = 100_000.0, []
    points = [(str(days[0]), equity)]
    for k in range(n_trades):
        pnl = equity * rng.normal(0.002, 0.02)
        trades.append(_trade(str(days[2 * k + 1]), str(days[2 * k + 2]), pnl, quantity=100.0))
        points.append((str(days[2 * k + 1]), equity))
        equity += pnl
        points.append((str(days[2 * k + 2]), equity))
    return _run(trades, points)


def test_same_seed_same_numbers_and_a_json_without_nan(tmp_path):
    run = _long_run()
    first, again = run_monte_carlo(run, sims=300, seed=9), run_monte_carlo(run, sims=300, seed=9)
    other = run_monte_carlo(run, sims=300, seed=10)
    for method in ("trade_shuffle", "trade_bootstrap", "daily_bootstrap", "price_noise"):
        assert np.array_equal(first.simulations[method].max_drawdown, again.simulations[method].max_drawdown)
        assert not np.array_equal(first.simulations[method].max_drawdown, other.simulations[method].max_drawdown)
    assert first.to_dict() == again.to_dict()
    write_monte_carlo_outputs(first, tmp_path)
    doc = json.loads((tmp_path / "montecarlo.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert doc["cost_replays"] is None and doc["sims"] == 300 and doc["seed"] == 9
    for method in ("trade_shuffle", "trade_bootstrap", "daily_bootstrap", "price_noise"):
        for outcome in ("total_return", "max_drawdown", "sharpe"):
            q = doc[method][outcome]
            assert set(q) == {"p5", "p25", "p50", "p75", "p95", "mean"}
            assert q["p5"] <= q["p25"] <= q["p50"] <= q["p75"] <= q["p95"]
    sims = pd.read_csv(tmp_path / "simulations.csv")
    assert sims.groupby("method").size().to_dict() == dict.fromkeys(
        ["daily_bootstrap", "price_noise", "trade_bootstrap", "trade_shuffle"], 300)
    # drawdown and daily loss are measured on daily closes, the breakers trip intraday: lower bounds, said so
    assert doc["breaker_trip_lower_bounds"] == ["max_drawdown", "daily_loss"]
    assert any("trip probabilities are lower bounds" in n and "intraday" in n for n in doc["notes"])
    # 3 losses in a row trips the breaker: the JSON's probability is the shuffle's share of such paths
    shuffled = sims[sims["method"] == "trade_shuffle"]
    assert doc["breaker_trip_probability"]["consecutive_losses"] == pytest.approx(
        float((shuffled["losing_streak"] >= 3).mean()))


def test_price_noise_spreads_returns_by_the_analytic_amount():
    # one trade: r' = r + q * (exit * e2 - entry * e1) / E, sd = sigma * q * sqrt(entry^2 + exit^2) / E
    trades = pd.DataFrame([_trade("2024-01-02", "2024-01-03", 500.0, quantity=200.0, price=100.0)])
    equity = np.array([100_000.0])
    quiet = price_noise(trades, equity, 100, np.random.default_rng(0), 0.0, 1.0)
    assert np.allclose(quiet.total_return, 0.005)
    noisy = price_noise(trades, equity, 40_000, np.random.default_rng(1), 10.0, 1.0)
    expected = 10e-4 * 200.0 * math.hypot(100.0, 102.5) / 100_000.0
    assert noisy.total_return.std() == pytest.approx(expected, rel=0.03)
    assert noisy.total_return.mean() == pytest.approx(0.005, abs=4 * expected / 200)

    # a short of the same prices and size meets the same draws (same seed) with the opposite effect:
    # a lower entry (sold cheaper) or a higher exit (bought back dearer) lowers a short's return
    # where it raises a long's
    long_trade = pd.DataFrame([_trade("2024-01-02", "2024-01-03", 500.0, quantity=200.0, price=100.0)])
    short_trade = long_trade.assign(side="sell", pnl=-500.0)  # sold at 100, bought back at 102.5
    as_long = price_noise(long_trade, equity, 2_000, np.random.default_rng(7), 10.0, 1.0).total_return
    as_short = price_noise(short_trade, equity, 2_000, np.random.default_rng(7), 10.0, 1.0).total_return
    assert as_short.std() == pytest.approx(expected, rel=0.1)
    np.testing.assert_allclose(as_short - (-0.005), -(as_long - 0.005), rtol=0, atol=1e-15)
    assert (as_long > 0.005).mean() == pytest.approx(0.5, abs=0.05)  # noise either way, not a bias


def test_a_losing_run_is_not_acceptable_and_says_why():
    rng = np.random.default_rng(4)
    run = _long_run(seed=4)
    losing = run.trades.assign(pnl=-np.abs(run.trades["pnl"]) * 6 - rng.uniform(0, 500, len(run.trades)))
    equity = 100_000.0 + np.concatenate([[0.0, 0.0], np.repeat(np.cumsum(losing["pnl"].to_numpy()), 2)])[:len(run.equity)]
    bad = FinishedRun(**{**run.__dict__, "trades": losing,
                         "equity": pd.Series(np.maximum(equity, 1_000.0), index=run.equity.index)})
    result = run_monte_carlo(bad, sims=300, seed=1)
    ok, reason = result.verdict()
    assert not ok and "risk of ruin" in reason and "> 1%" in reason
    assert result.to_dict()["risk_of_ruin"]["probability"] > 0.01


def test_too_few_simulations_give_no_acceptable_verdict():
    run = _long_run()
    run = FinishedRun(**{**run.__dict__, "run_info": {"risk": {**run.run_info["risk"], "max_drawdown": 0.5}}})
    assert run_monte_carlo(run, sims=100, seed=2).verdict()[0]  # far from ruin and the limit, on enough paths
    ok, reason = run_monte_carlo(run, sims=99, seed=2).verdict()
    assert not ok and reason.startswith("not acceptable: not enough simulations (99 per method < 100")
    assert "--sims 100 or more" in reason


def test_bad_input_is_refused_with_a_clear_message():
    empty = _run([_trade("2024-01-02", "2024-01-03", 10.0)], [("2024-01-02", 1e5), ("2024-01-05", 1e5)])
    none = FinishedRun(**{**empty.__dict__, "trades": empty.trades.iloc[:0]})
    with pytest.raises(RunLoadError, match="closed 0 trade"):
        run_monte_carlo(none, sims=10)
    with pytest.raises(RunLoadError, match="closed 1 trade"):
        run_monte_carlo(empty, sims=10)
    run = _long_run()
    with pytest.raises(MonteCarloError, match="--ruin 1.5"):
        run_monte_carlo(run, sims=10, ruin=1.5)
    with pytest.raises(MonteCarloError, match="--block-days 0"):
        run_monte_carlo(run, sims=10, block_days=0)
    broke = FinishedRun(**{**run.__dict__, "equity": run.equity * 0.0})
    with pytest.raises(MonteCarloError, match="trade 1 entered at .* equity 0.00 USD"):
        run_monte_carlo(broke, sims=10)


def test_cost_replays_fanned_out_over_processes_give_the_same_numbers(tmp_path):
    from typer.testing import CliRunner

    from daemon.cli import app
    from research.finished_run import load_run_folder
    from research.monte_carlo import cost_replays
    from tests.daemon.test_cli import replay_args

    replayed = CliRunner().invoke(app, [str(a) for a in replay_args(tmp_path, "--no-report")])
    assert replayed.exit_code == 0, replayed.output
    run = load_run_folder(tmp_path / "out")
    alone = cost_replays(run, 3, np.random.default_rng(5))
    seen: list[tuple[int, int]] = []
    forked = cost_replays(run, 3, np.random.default_rng(5), jobs=2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    for name in ("total_return", "max_drawdown", "sharpe", "min_equity", "losing_streak", "worst_day", "bands"):
        assert np.array_equal(getattr(alone, name), getattr(forked, name), equal_nan=True), name
    assert np.array_equal(alone.extra["slippage_factor"], forked.extra["slippage_factor"])
    with pytest.raises(MonteCarloError, match="--jobs 0"):
        cost_replays(run, 1, np.random.default_rng(5), jobs=0)
