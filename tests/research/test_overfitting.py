"""research.overfitting against hand arithmetic, the papers' worked numbers and independent packages.

Independent implementations (dev dependencies, installed in the test environment):
* ``holdout-backtest`` 0.1.0 (module ``holdout``): PSR, MinTRL, expected maximum, DSR and CSCV/PBO
  written separately from this code, same conventions (per-period SR, raw kurtosis, n - 1).
* ``jsharpe`` 0.6.3: the expected maximum Sharpe ratio, and the Sharpe-estimator variance
  ``(1 - g3 SR + (g4 - 1)/4 SR^2) / T``. Its own PSR/MinTRL default to the later convention of
  López de Prado & Zoonekynd (variance at the null SR0, T instead of T - 1), so only the shared
  pieces are compared.
They are imported inside the tests that need them, so a missing one fails those tests only.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest

from research.overfitting import (
    EULER_MASCHERONI,
    deflated_sharpe_ratio,
    deflated_sharpe_ratio_from_trials,
    expected_max_sharpe,
    minimum_track_record_length,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    psr_from_returns,
    sample_moments,
)

Z95 = 1.6448536269514722  # standard normal 95 % quantile


# --- PSR and MinTRL: hand-computed ------------------------------------------------------------


def test_psr_normal_returns_hand_computed():
    # SR 0.1 per period, n = 100, normal (skew 0, kurtosis 3): dispersion 1 + 2/4 * 0.01 = 1.005,
    # z = 0.1 * sqrt(99) / sqrt(1.005) = 0.992509, Z(z) = 0.839525.
    assert probabilistic_sharpe_ratio(0.1, 0.0, 100, 0.0, 3.0) == pytest.approx(0.839525, abs=1e-6)


def test_psr_skew_and_fat_tails_hand_computed():
    # SR 0.2 vs benchmark 0.05, n = 60, skew -0.5, kurtosis 5:
    # dispersion = 1 - (-0.5)(0.2) + (5 - 1)/4 * 0.04 = 1.14; z = 0.15 * sqrt(59) / sqrt(1.14) = 1.079108
    assert probabilistic_sharpe_ratio(0.2, 0.05, 60, -0.5, 5.0) == pytest.approx(0.859730, abs=1e-6)
    # the same SR with normal returns is more convincing: negative skew and fat tails cost confidence
    assert probabilistic_sharpe_ratio(0.2, 0.05, 60, 0.0, 3.0) > 0.859730


def test_psr_is_one_half_at_the_benchmark_and_monotone():
    assert probabilistic_sharpe_ratio(0.3, 0.3, 50, -1.0, 6.0) == pytest.approx(0.5)
    values = [probabilistic_sharpe_ratio(0.1, 0.0, n, 0.0, 3.0) for n in (10, 50, 250, 1000)]
    assert values == sorted(values) and values[-1] > 0.99


def test_min_trl_hand_computed():
    # 1 + 1.14 * (1.644854 / 0.2)^2 = 1 + 1.14 * 67.638 = 78.108 observations
    assert minimum_track_record_length(0.2, 0.0, -0.5, 5.0) == pytest.approx(78.10799, abs=1e-4)
    # normal, SR 0.1: 1 + 1.005 * (1.644854 / 0.1)^2 = 272.907
    assert minimum_track_record_length(0.1, 0.0, 0.0, 3.0, prob=0.95) == pytest.approx(272.9071, abs=1e-3)


def test_min_trl_is_the_track_record_at_which_psr_reaches_the_confidence():
    sr, bench, skew, kurt = 0.12, 0.02, -0.8, 7.0
    n_star = minimum_track_record_length(sr, bench, skew, kurt, prob=0.9)
    assert probabilistic_sharpe_ratio(sr, bench, math.ceil(n_star), skew, kurt) >= 0.9
    assert probabilistic_sharpe_ratio(sr, bench, math.floor(n_star), skew, kurt) < 0.9


def test_min_trl_is_infinite_when_sharpe_does_not_beat_the_benchmark():
    assert minimum_track_record_length(0.05, 0.05, 0.0, 3.0) == math.inf
    assert minimum_track_record_length(-0.1, 0.0, 0.0, 3.0) == math.inf


def test_excess_kurtosis_passed_by_mistake_is_rejected():
    with pytest.raises(ValueError, match="excess kurtosis"):
        probabilistic_sharpe_ratio(0.1, 0.0, 100, 0.0, 0.0)  # normal excess kurtosis is 0
    with pytest.raises(ValueError, match="kurtosis"):
        minimum_track_record_length(0.1, 0.0, -2.0, 4.0)  # needs >= 1 + 4 = 5


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: probabilistic_sharpe_ratio(0.1, 0.0, 1, 0.0, 3.0), "n_obs"),
        (lambda: probabilistic_sharpe_ratio(float("nan"), 0.0, 10, 0.0, 3.0), "sr"),
        (lambda: minimum_track_record_length(0.1, 0.0, 0.0, 3.0, prob=1.0), "prob"),
        (lambda: expected_max_sharpe(0.5, 0.1), "n_trials"),
        (lambda: expected_max_sharpe(10, -0.1), "sr_variance"),
        (lambda: psr_from_returns([0.01, float("nan"), 0.02, 0.0]), "position 1"),
        (lambda: psr_from_returns([0.01, 0.01, 0.01, 0.01]), "zero dispersion"),
        (lambda: psr_from_returns([[0.01, 0.02], [0.0, 0.01]]), "one-dimensional"),
        (lambda: deflated_sharpe_ratio_from_trials([0.01, -0.02, 0.03], [0.1]), "every trial"),
    ],
)
def test_bad_input_names_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_sample_moments_hand_computed():
    # mean 0.006, deviations (.004, -.016, .004, -.016, .024): m2 = 2.24e-4, m3 = 1.152e-6,
    # m4 = 9.2672e-8; sample std (ddof 1) = sqrt(2.8e-4)
    sr, skew, kurt, n = sample_moments([0.01, -0.01, 0.01, -0.01, 0.03])
    assert n == 5
    assert sr == pytest.approx(0.006 / math.sqrt(2.8e-4))
    assert skew == pytest.approx(1.152e-6 / 2.24e-4**1.5)
    assert kurt == pytest.approx(9.2672e-8 / 2.24e-4**2)


def test_psr_from_returns_matches_the_formula_on_its_sample_moments():
    rng = np.random.default_rng(7)
    r = 0.0004 + 0.01 * rng.standard_t(4, size=750)
    sr, skew, kurt, n = sample_moments(r)
    assert kurt > 3.5  # fat tails, so the kurtosis term matters
    assert psr_from_returns(r, 0.01) == pytest.approx(probabilistic_sharpe_ratio(sr, 0.01, n, skew, kurt))


# --- DSR: the paper's worked example -------------------------------------------------------------

# Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: N = 100 trials,
# variance of the trials' annualised Sharpe ratios 1/2, 250 observations a year, T = 1250 daily
# returns (5 years), skewness -3, kurtosis 10, selected annualised SR 2.5. The paper reports
# SR0 = 0.1132 (per day) and DSR = 0.9004, short of 0.95; with N = 46 trials, DSR = 0.9505.
PAPER_SR = 2.5 / math.sqrt(250)
PAPER_VARIANCE = 0.5 / 250


def test_dsr_reproduces_the_papers_numerical_example():
    assert expected_max_sharpe(100, PAPER_VARIANCE) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe_ratio(PAPER_SR, 1250, -3.0, 10.0, 100, PAPER_VARIANCE) == pytest.approx(0.9004, abs=5e-5)
    assert deflated_sharpe_ratio(PAPER_SR, 1250, -3.0, 10.0, 46, PAPER_VARIANCE) == pytest.approx(0.9505, abs=5e-5)


def test_dsr_example_by_hand():
    # Z^-1(1 - 1/100) = Z^-1(0.99) = 2.326348 and Z^-1(1 - 1/(100 e)) = Z^-1(0.996321) = 2.680210
    # (normal tables); SR0 = sqrt(0.002) * (0.422784 * 2.326348 + 0.577216 * 2.680210)
    #                      = 0.044721 * 2.530610 = 0.113172
    bracket = (1 - EULER_MASCHERONI) * 2.326348 + EULER_MASCHERONI * 2.680210
    assert expected_max_sharpe(100, PAPER_VARIANCE) == pytest.approx(math.sqrt(PAPER_VARIANCE) * bracket, rel=1e-6)
    # SR = 2.5 / sqrt(250) = 0.158114; dispersion 1 + 3 * 0.158114 + 9/4 * 0.025 = 1.530592;
    # z = (0.158114 - 0.113172) * sqrt(1249) / sqrt(1.530592) = 0.044942 * 35.341194 / 1.237171 = 1.28382
    # and Z(1.28382) = 0.90040
    sr0 = expected_max_sharpe(100, PAPER_VARIANCE)
    z = (PAPER_SR - sr0) * math.sqrt(1249) / math.sqrt(1 + 3 * PAPER_SR + 9 / 4 * PAPER_SR**2)
    assert z == pytest.approx(1.28382, abs=1e-5)
    assert deflated_sharpe_ratio(PAPER_SR, 1250, -3.0, 10.0, 100, PAPER_VARIANCE) == pytest.approx(0.90040, abs=1e-5)


def test_expected_maximum_of_standard_normals_from_the_notices_paper():
    # Bailey, Borwein, López de Prado & Zhu (2014), Notices AMS 61(5): E[max of 10 standard
    # normals] ~ 1.57; and with 5 years of data (annualised SR variance ~ 1/5 under the null) about
    # 45 independent trials are enough to expect an annualised SR of 1 from luck alone.
    assert expected_max_sharpe(10, 1.0) == pytest.approx(1.57, abs=0.01)
    assert expected_max_sharpe(45, 1 / 5) == pytest.approx(1.0, abs=0.005)


def test_dsr_with_one_trial_is_the_psr_against_zero():
    assert expected_max_sharpe(1, 0.3) == 0.0
    assert deflated_sharpe_ratio(0.08, 500, -0.2, 4.0, 1, 0.3) == probabilistic_sharpe_ratio(0.08, 0.0, 500, -0.2, 4.0)


def test_more_trials_or_more_dispersed_trials_deflate_more():
    by_trials = [deflated_sharpe_ratio(PAPER_SR, 1250, -3.0, 10.0, n, PAPER_VARIANCE) for n in (2, 10, 100, 1000)]
    assert by_trials == sorted(by_trials, reverse=True)
    by_variance = [deflated_sharpe_ratio(PAPER_SR, 1250, 0.0, 3.0, 50, v) for v in (1e-5, 1e-4, 1e-3)]
    assert by_variance == sorted(by_variance, reverse=True)


def test_dsr_from_trials_counts_every_trial_and_their_variance():
    # 40 trials of pure noise: the best one looks significant on its own (PSR > 0.95) but not
    # once the 40 trials behind it are counted
    rng = np.random.default_rng(3)
    trials = rng.normal(0.0, 0.01, size=(500, 40))
    sharpes = trials.mean(axis=0) / trials.std(axis=0, ddof=1)
    best = int(np.argmax(sharpes))
    sr, skew, kurt, n = sample_moments(trials[:, best])
    expected = deflated_sharpe_ratio(sr, n, skew, kurt, 40, float(np.var(sharpes, ddof=1)))
    dsr = deflated_sharpe_ratio_from_trials(trials[:, best], sharpes)
    assert dsr == pytest.approx(expected)
    assert psr_from_returns(trials[:, best]) > 0.95 > 0.8 > dsr


# --- independent implementations -------------------------------------------------------------


def test_psr_mintrl_dsr_match_holdout_backtest():
    from holdout import deflated as ho  # holdout-backtest==0.1.0

    for sr, bench, n, skew, kurt in [(0.1, 0.0, 100, 0.0, 3.0), (0.2, 0.05, 60, -0.5, 5.0),
                                     (-0.05, 0.02, 2000, 0.7, 9.0), (PAPER_SR, 0.11, 1250, -3.0, 10.0)]:
        assert probabilistic_sharpe_ratio(sr, bench, n, skew, kurt) == pytest.approx(
            ho.probabilistic_sharpe_ratio(sr, n, benchmark=bench, skewness=skew, kurtosis=kurt), rel=1e-12)
        if sr > bench:
            assert minimum_track_record_length(sr, bench, skew, kurt, prob=0.9) == pytest.approx(
                ho.minimum_track_record_length(sr, benchmark=bench, confidence=0.9, skewness=skew, kurtosis=kurt),
                rel=1e-12)
    for n_trials in (2, 7, 100, 10_000):
        assert expected_max_sharpe(n_trials, 0.004) == pytest.approx(ho.expected_maximum_sharpe(n_trials, 0.004),
                                                                     rel=1e-12)
    assert deflated_sharpe_ratio(PAPER_SR, 1250, -3.0, 10.0, 100, PAPER_VARIANCE) == pytest.approx(
        ho.deflated_sharpe_ratio(PAPER_SR, 1250, n_trials=100, trials_variance=PAPER_VARIANCE,
                                 skewness=-3.0, kurtosis=10.0), rel=1e-12)


def test_psr_from_returns_matches_holdout_backtest_estimates():
    from holdout import deflated as ho
    from holdout.sharpe import estimate_sharpe

    rng = np.random.default_rng(11)
    r = 0.0003 + 0.012 * rng.standard_t(5, size=1000) - 0.002 * rng.exponential(size=1000)
    est = estimate_sharpe(r)
    sr, skew, kurt, n = sample_moments(r)
    assert (sr, skew, kurt, n) == pytest.approx((est.value, est.skewness, est.kurtosis, est.n), rel=1e-10)
    assert psr_from_returns(r, 0.01) == pytest.approx(
        ho.probabilistic_sharpe_ratio(est.value, est.n, benchmark=0.01, skewness=est.skewness,
                                      kurtosis=est.kurtosis), rel=1e-10)


def test_expected_max_and_sharpe_variance_match_jsharpe():
    import jsharpe  # type: ignore[import-untyped]  # jsharpe==0.6.3 ships no type information

    for n_trials, variance in [(2, 0.01), (100, PAPER_VARIANCE), (5000, 0.25)]:
        assert expected_max_sharpe(n_trials, variance) == pytest.approx(
            jsharpe.expected_maximum_sharpe_ratio(n_trials, variance), rel=1e-12)
    # PSR = Z[(SR - SR*) / sqrt(V)], V = (1 - g3 SR + (g4 - 1)/4 SR^2) / (n - 1) evaluated at the
    # observed SR, as in Bailey & López de Prado (2012)
    for sr, bench, n, skew, kurt in [(0.2, 0.05, 60, -0.5, 5.0), (0.03, 0.0, 2520, 0.4, 12.0)]:
        variance = jsharpe.sharpe_ratio_variance(sr, n - 1, gamma3=skew, gamma4=kurt)
        assert probabilistic_sharpe_ratio(sr, bench, n, skew, kurt) == pytest.approx(
            jsharpe.probabilistic_sharpe_ratio(sr, bench, variance=variance), rel=1e-12)


def test_pbo_matches_holdout_backtest_cscv():
    from holdout.pbo import probability_of_backtest_overfitting as holdout_pbo

    rng = np.random.default_rng(5)
    perf = rng.normal(0.0, 0.01, size=(480, 25)) + rng.normal(0.0, 0.0005, size=25)
    for metric in ("sharpe", "mean"):
        ours = probability_of_backtest_overfitting(perf, n_splits=12, metric=metric)
        theirs = holdout_pbo(perf, n_blocks=12, metric=metric)
        assert ours.pbo == theirs.pbo
        np.testing.assert_array_equal(ours.best_trial, theirs.selected)
        np.testing.assert_allclose(ours.logits, theirs.logits, rtol=1e-12)
        np.testing.assert_allclose(ours.oos_performance, theirs.out_of_sample, rtol=1e-9)
        assert ours.prob_oos_loss == theirs.probability_of_loss
        slope, intercept, r2 = theirs.degradation
        assert (ours.degradation_slope, ours.degradation_intercept, ours.degradation_r2) == pytest.approx(
            (slope, intercept, r2), rel=1e-9)


# --- PBO by CSCV ---------------------------------------------------------------------------------


def test_pbo_hand_computed_two_splits():
    # S = 2: combination {block 0} (IS = rows 0-1, OOS = rows 2-3) and {block 1} (the reverse).
    perf = np.array([[1.0, 0.0, 0.5],
                     [1.0, 0.0, 0.5],
                     [0.0, 2.0, 0.5],
                     [0.0, 2.0, 0.5]])
    result = probability_of_backtest_overfitting(perf, n_splits=2, metric="mean")
    # {0}: IS means (1, 0, .5) -> trial 0; OOS means (0, 2, .5): trial 0 is worst, rank 1, w = 1/4
    # {1}: IS means (0, 2, .5) -> trial 1; OOS means (1, 0, .5): trial 1 is worst, rank 1, w = 1/4
    assert result.n_combinations == 2
    np.testing.assert_array_equal(result.best_trial, [0, 1])
    np.testing.assert_allclose(result.oos_relative_rank, [0.25, 0.25])
    np.testing.assert_allclose(result.logits, [math.log(1 / 3)] * 2)
    assert result.pbo == 1.0
    np.testing.assert_allclose(result.is_performance, [1.0, 2.0])
    np.testing.assert_allclose(result.oos_performance, [0.0, 0.0])
    assert result.degradation_slope == pytest.approx(0.0) and result.degradation_intercept == pytest.approx(0.0)
    assert result.prob_oos_loss == 0.0  # zero is not a loss


def test_pbo_of_pure_noise_is_about_one_half():
    # With no skill the IS winner's OOS rank is uniform, so P[rank <= median] = 1/2 (N even).
    rng = np.random.default_rng(2024)
    values = [probability_of_backtest_overfitting(rng.normal(0.0, 0.01, size=(256, 20)), n_splits=8).pbo
              for _ in range(40)]
    assert np.mean(values) == pytest.approx(0.5, abs=0.08)


def test_pbo_is_zero_when_one_trial_truly_dominates():
    rng = np.random.default_rng(9)
    perf = rng.normal(0.0, 0.01, size=(800, 30))
    perf[:, 17] += 0.004  # a Sharpe of 0.4 a day among noise
    result = probability_of_backtest_overfitting(perf)  # S = 16, the paper's choice
    assert result.n_combinations == 12_870
    assert result.pbo == 0.0
    assert np.all(result.best_trial == 17)
    assert result.prob_oos_loss == 0.0
    assert np.all(result.logits > 0)


def test_pbo_is_one_when_in_sample_winners_always_lose_out_of_sample():
    # Every trial's returns sum to zero over the sample, so (equal halves) OOS mean = -IS mean:
    # the IS winner is the OOS loser in every combination.
    rng = np.random.default_rng(4)
    perf = rng.normal(0.0, 0.01, size=(160, 12))
    perf -= perf.mean(axis=0)
    result = probability_of_backtest_overfitting(perf, n_splits=10, metric="mean")
    assert result.pbo == 1.0
    np.testing.assert_allclose(result.oos_relative_rank, 1 / 13)
    assert result.degradation_slope == pytest.approx(-1.0)


@pytest.mark.parametrize("n_splits", [2, 4, 6, 8, 10])
def test_cscv_uses_every_half_split_once_with_complementary_equal_halves(n_splits):
    # Record what the metric is given: row i holds the value i in every trial.
    t = 4 * n_splits
    perf = np.repeat(np.arange(t, dtype=float)[:, None], 3, axis=1) + np.array([0.0, 0.1, 0.2])
    seen: list[tuple[float, ...]] = []

    def record(block: np.ndarray) -> np.ndarray:
        seen.append(tuple(block[:, 0]))
        return block.mean(axis=0)

    result = probability_of_backtest_overfitting(perf, n_splits=n_splits, metric=record)
    expected = math.comb(n_splits, n_splits // 2)
    assert result.n_combinations == expected == len(result.logits)
    in_sets, out_sets = seen[0::2], seen[1::2]
    assert len(set(in_sets)) == expected  # each combination once
    for rows_in, rows_out in zip(in_sets, out_sets):
        assert len(rows_in) == len(rows_out) == t // 2
        assert sorted(rows_in + rows_out) == list(range(t))  # complementary halves
        assert list(rows_in) == sorted(rows_in) and list(rows_out) == sorted(rows_out)  # time order kept
    # symmetric: the complement of every IS set is also an IS set, and each block is IS half the time
    assert set(out_sets) == set(in_sets)
    block = t // n_splits
    for b in range(n_splits):
        assert sum(float(b * block) in rows for rows in in_sets) == expected // 2
    # and in the documented order: itertools.combinations of the block indices
    first_rows = [tuple(float(r) for b in c for r in range(b * block, (b + 1) * block))
                  for c in combinations(range(n_splits), n_splits // 2)]
    assert in_sets == first_rows


def test_pbo_does_not_depend_on_scale_or_column_order():
    rng = np.random.default_rng(21)
    perf = rng.normal(0.0002, 0.01, size=(320, 15))
    base = probability_of_backtest_overfitting(perf, n_splits=8)
    scaled = probability_of_backtest_overfitting(perf * 7.5, n_splits=8)
    order = rng.permutation(15)
    permuted = probability_of_backtest_overfitting(perf[:, order], n_splits=8)
    assert scaled.pbo == base.pbo and permuted.pbo == base.pbo
    np.testing.assert_allclose(permuted.logits, base.logits)
    np.testing.assert_array_equal(order[permuted.best_trial], base.best_trial)
    np.testing.assert_allclose(scaled.is_performance, base.is_performance)  # Sharpe is scale-free


def test_pbo_drops_the_oldest_rows_that_do_not_fill_a_block():
    rng = np.random.default_rng(8)
    perf = rng.normal(0.0, 0.01, size=(131, 6))
    result = probability_of_backtest_overfitting(perf, n_splits=16)
    assert (result.n_obs_used, result.n_obs_dropped) == (128, 3)
    trimmed = probability_of_backtest_overfitting(perf[3:], n_splits=16)
    np.testing.assert_array_equal(result.logits, trimmed.logits)


def test_pbo_callable_metric_agrees_with_builtin_sharpe():
    rng = np.random.default_rng(13)
    perf = rng.normal(0.0001, 0.01, size=(200, 8))

    def sharpe(x: np.ndarray) -> np.ndarray:
        return x.mean(axis=0) / x.std(axis=0, ddof=1)

    a = probability_of_backtest_overfitting(perf, n_splits=8, metric=sharpe)
    b = probability_of_backtest_overfitting(perf, n_splits=8)
    np.testing.assert_allclose(a.logits, b.logits)
    np.testing.assert_allclose(a.oos_performance, b.oos_performance, rtol=1e-9)
    assert a.metric == "sharpe" and b.metric == "sharpe"


def test_pbo_flat_trial_scores_zero_sharpe_instead_of_failing():
    rng = np.random.default_rng(1)
    perf = rng.normal(0.0, 0.01, size=(64, 4))
    perf[:, 2] = 0.0  # a parameter set that never trades
    result = probability_of_backtest_overfitting(perf, n_splits=4)
    assert np.all(np.isfinite(result.logits)) and 0.0 <= result.pbo <= 1.0
    summary = result.to_dict()
    assert summary["n_combinations"] == 6 and len(summary["logits"]) == 6


@pytest.mark.parametrize(
    ("perf", "kwargs", "message"),
    [
        (np.zeros(64), {}, "2-D"),
        (np.zeros((64, 1)), {}, "at least 2 trials"),
        (np.full((64, 3), np.nan), {}, "row 0, trial 0"),
        (np.ones((64, 3)), {"n_splits": 7}, "even"),
        (np.ones((64, 3)), {"n_splits": 22}, "even integer in"),
        (np.ones((64, 3)), {"n_splits": 2.5}, "even integer"),
        (np.ones((20, 3)), {"n_splits": 16}, "at least 32"),
        (np.ones((64, 3)), {"metric": "sortino"}, "metric must be"),
        (np.ones((64, 3)), {"metric": lambda x: x.mean()}, "1 values for 3 trials"),
    ],
)
def test_pbo_bad_input_names_what_is_wrong(perf, kwargs, message):
    with pytest.raises(ValueError, match=message):
        probability_of_backtest_overfitting(perf, **kwargs)
