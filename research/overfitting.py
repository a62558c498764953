"""Backtest-overfitting statistics: PSR, DSR, MinTRL and the PBO by CSCV.

Conventions
-----------
* Every Sharpe ratio here is **per period** (per bar, per day, ...): the mean excess return of one
  period over its standard deviation, never annualised. Annualising multiplies the ratio by
  ``sqrt(periods_per_year)`` but leaves ``n_obs`` unchanged, which would inflate every probability
  below; divide an annualised ratio by ``sqrt(periods_per_year)`` first.
* ``kurtosis`` is the ordinary (non-excess) kurtosis ``E[(r - mu)^4] / sigma^4``: **3 for normal
  returns**, not 0. Passing excess kurtosis is the most common mistake with these formulas; values
  that no distribution can have (``kurtosis < 1 + skew**2``, Pearson's inequality) are rejected.
* Sample estimates from returns: Sharpe ratio with the ``ddof=1`` standard deviation (as in
  :mod:`research.metrics`), skewness and kurtosis as plug-in moment ratios ``m3 / m2**1.5`` and
  ``m4 / m2**2`` (the sample moments of the papers).

Sources
-------
* [BLdP12] D. H. Bailey, M. López de Prado, "The Sharpe Ratio Efficient Frontier",
  Journal of Risk 15(2), 3-44 (2012); SSRN 1821643. Probabilistic Sharpe ratio and minimum track
  record length.
* [BLdP14] D. H. Bailey, M. López de Prado, "The Deflated Sharpe Ratio: Correcting for Selection
  Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5), 94-107
  (2014); SSRN 2460551. Expected maximum Sharpe ratio and deflated Sharpe ratio.
* [BBLZ14] D. H. Bailey, J. M. Borwein, M. López de Prado, Q. J. Zhu, "Pseudo-Mathematics and
  Financial Charlatanism: The Effects of Backtest Overfitting on Out-of-Sample Performance",
  Notices of the AMS 61(5), 458-471 (2014). The expected maximum of N standard normals.
* [BBLZ17] D. H. Bailey, J. M. Borwein, M. López de Prado, Q. J. Zhu, "The Probability of Backtest
  Overfitting", Journal of Computational Finance 20(4), 39-69 (2017); SSRN 2326253 (2015).
  Combinatorially symmetric cross-validation (CSCV) and the PBO.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

__all__ = [
    "EULER_MASCHERONI",
    "PBOResult",
    "deflated_sharpe_ratio",
    "deflated_sharpe_ratio_from_trials",
    "expected_max_sharpe",
    "minimum_track_record_length",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "psr_from_returns",
    "sample_moments",
]

EULER_MASCHERONI = 0.5772156649015329
"""The Euler-Mascheroni constant gamma, used by the expected-maximum approximation of [BLdP14]."""

MAX_SPLITS = 20
"""Largest ``n_splits`` accepted by :func:`probability_of_backtest_overfitting` (C(20, 10) = 184,756
combinations); [BBLZ17] uses 16."""

_PEARSON_TOLERANCE = 1e-9  # plug-in estimates satisfy Pearson's inequality only up to rounding
_FLAT = 1e-12  # a standard deviation below this fraction of |mean| is rounding noise, not dispersion
_BATCH_CELLS = 1 << 21  # combinations x trials evaluated at once, bounds memory to tens of MB

Metric = Literal["sharpe", "mean"] | Callable[[npt.NDArray[np.float64]], npt.ArrayLike]


def _finite(name: str, value: float) -> float:
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return out


def _check_shape(skew: float, kurtosis: float) -> tuple[float, float]:
    s = _finite("skew", skew)
    k = _finite("kurtosis", kurtosis)
    if k < 1.0 + s * s - _PEARSON_TOLERANCE * max(1.0, k):
        raise ValueError(
            f"kurtosis {k:g} with skew {s:g} is impossible (Pearson: kurtosis >= 1 + skew**2 = "
            f"{1.0 + s * s:g}); kurtosis here is the ordinary kurtosis, 3 for normal returns, not "
            "the excess kurtosis"
        )
    return s, k


def _sr_dispersion(sr: float, skew: float, kurtosis: float) -> float:
    # n times the asymptotic variance of the SR estimator [BLdP12]; >= (1 - skew*sr/2)**2 >= 0
    # whenever Pearson's inequality holds, so clamping only removes rounding below zero.
    return max(1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr, 0.0)


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float
) -> float:
    r"""Probability that the true Sharpe ratio exceeds ``sr_benchmark``, given the estimate ``sr``.

    .. math::

        \widehat{PSR}(SR^*) = Z\left[\frac{(\widehat{SR} - SR^*)\sqrt{n - 1}}
        {\sqrt{1 - \hat\gamma_3 \widehat{SR} + \frac{\hat\gamma_4 - 1}{4}\widehat{SR}^2}}\right]

    with ``Z`` the standard normal CDF: Bailey & López de Prado (2012), "The Sharpe Ratio Efficient
    Frontier", J. of Risk 15(2), section 3 (the PSR). The denominator is the asymptotic standard
    error of the Sharpe ratio estimator for IID non-normal returns (Mertens 2002, as used there).

    Parameters
    ----------
    sr : float
        Observed Sharpe ratio, **per period** (not annualised).
    sr_benchmark : float
        Benchmark Sharpe ratio ``SR*``, per period, same frequency as ``sr``.
    n_obs : int
        Number of return observations ``n`` behind ``sr`` (at least 2).
    skew : float
        Skewness ``gamma_3`` of the returns.
    kurtosis : float
        Ordinary (non-excess) kurtosis ``gamma_4`` of the returns: **3 for normal returns**.

    Returns
    -------
    float
        The probability, in [0, 1].

    Raises
    ------
    ValueError
        If an input is not finite, ``n_obs < 2``, or ``kurtosis < 1 + skew**2`` (no distribution
        has it: usually excess kurtosis passed by mistake).

    Examples
    --------
    A per-period Sharpe ratio of 0.1 over 100 normal observations against a benchmark of 0:
    ``z = 0.1 * sqrt(99) / sqrt(1 + 0.5 * 0.01) = 0.99251`` and ``Z(z) = 0.83953``.

    >>> round(probabilistic_sharpe_ratio(0.1, 0.0, 100, 0.0, 3.0), 5)
    0.83953
    """
    sr = _finite("sr", sr)
    sr_benchmark = _finite("sr_benchmark", sr_benchmark)
    if int(n_obs) != n_obs or n_obs < 2:
        raise ValueError(f"n_obs must be an integer of at least 2, got {n_obs!r}")
    s, k = _check_shape(skew, kurtosis)
    dispersion = _sr_dispersion(sr, s, k)
    if dispersion == 0.0:
        # Only a two-point distribution at the Pearson bound: the estimator has no error.
        return 1.0 if sr > sr_benchmark else 0.0 if sr < sr_benchmark else 0.5
    z = (sr - sr_benchmark) * math.sqrt(int(n_obs) - 1) / math.sqrt(dispersion)
    return float(norm.cdf(z))


def _returns_1d(returns: npt.ArrayLike, name: str = "returns") -> npt.NDArray[np.float64]:
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one return per period), got shape {x.shape}")
    if x.size < 3:
        raise ValueError(f"{name} needs at least 3 observations, got {x.size}")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"{name} has a non-finite value at position {int(bad[0])} ({x[bad[0]]!r})")
    return x


def sample_moments(returns: npt.ArrayLike) -> tuple[float, float, float, int]:
    """Per-period Sharpe ratio, skewness and ordinary kurtosis of a return series.

    Parameters
    ----------
    returns : array-like, shape (n,)
        Per-period excess returns, fractions (0.01 = 1 %).

    Returns
    -------
    tuple of (float, float, float, int)
        ``(sr, skew, kurtosis, n)``: ``sr = mean / std(ddof=1)``, ``skew = m3 / m2**1.5``,
        ``kurtosis = m4 / m2**2`` (plug-in central moments ``m_k``; 3 for normal returns) and the
        number of observations.

    Raises
    ------
    ValueError
        If ``returns`` is not 1-D, has fewer than 3 values, holds NaN/inf, or has zero dispersion
        (the Sharpe ratio is undefined).

    Examples
    --------
    >>> sr, skew, kurt, n = sample_moments([0.01, -0.01, 0.01, -0.01, 0.03])
    >>> round(sr, 4), round(skew, 4), round(kurt, 4), n
    (0.3586, 0.3436, 1.8469, 5)
    """
    x = _returns_1d(returns)
    mean = float(x.mean())
    d = x - mean
    m2 = float(np.mean(d * d))
    if m2 <= 0.0 or math.sqrt(m2) <= _FLAT * abs(mean):
        raise ValueError(
            f"returns have zero dispersion (every value is {mean:.6g} up to rounding), so the Sharpe "
            "ratio is undefined"
        )
    m3 = float(np.mean(d**3))
    m4 = float(np.mean(d**4))
    std = math.sqrt(m2 * x.size / (x.size - 1))
    return mean / std, m3 / m2**1.5, m4 / (m2 * m2), int(x.size)


def psr_from_returns(returns: npt.ArrayLike, sr_benchmark: float = 0.0) -> float:
    """Probabilistic Sharpe ratio of a return series (Bailey & López de Prado 2012).

    Estimates the per-period Sharpe ratio, skewness and kurtosis with :func:`sample_moments` and
    applies :func:`probabilistic_sharpe_ratio`.

    Parameters
    ----------
    returns : array-like, shape (n,)
        Per-period excess returns (over the risk-free rate), fractions.
    sr_benchmark : float, default 0.0
        Benchmark Sharpe ratio, per period (same frequency as ``returns``).

    Returns
    -------
    float
        Probability in [0, 1] that the true Sharpe ratio exceeds ``sr_benchmark``.

    Raises
    ------
    ValueError
        As :func:`sample_moments`, or if ``sr_benchmark`` is not finite.

    Examples
    --------
    >>> round(psr_from_returns([0.02, -0.01, 0.03, 0.0, 0.01, -0.02, 0.02, 0.01]), 4)
    0.8592
    """
    sr, skew, kurt, n = sample_moments(returns)
    return probabilistic_sharpe_ratio(sr, sr_benchmark, n, skew, kurt)


def expected_max_sharpe(n_trials: float, sr_variance: float) -> float:
    r"""Expected maximum Sharpe ratio of ``n_trials`` unskilled trials: the DSR's ``SR_0``.

    .. math::

        \widehat{SR}_0 = \sqrt{V[\{\widehat{SR}_n\}]}\left((1 - \gamma) Z^{-1}\left[1 - \frac1N\right]
        + \gamma Z^{-1}\left[1 - \frac1N e^{-1}\right]\right)

    with ``gamma`` the Euler-Mascheroni constant and ``Z^-1`` the standard normal quantile:
    Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", J. Portfolio Management 40(5),
    the threshold ``SR_0`` of the DSR (true Sharpe ratio 0 for every trial, estimates spread with
    the trials' variance). The bracket is the approximation of ``E[max of N standard normals]`` of
    Bailey, Borwein, López de Prado & Zhu (2014), Notices AMS 61(5), which gives 1.57 for N = 10.

    Parameters
    ----------
    n_trials : float
        Number of (independent) trials ``N`` behind the selection, at least 1; an effective number
        of trials (e.g. from clustering correlated trials) may be fractional. ``N = 1`` gives 0: one
        trial has no selection bias.
    sr_variance : float
        Variance across the trials of their estimated Sharpe ratios ``V[{SR_n}]``, in per-period
        units squared (an annualised variance divided by ``periods_per_year``).

    Returns
    -------
    float
        ``SR_0``, a per-period Sharpe ratio when ``sr_variance`` is per period.

    Raises
    ------
    ValueError
        If ``n_trials < 1`` or ``sr_variance`` is negative or not finite.

    Examples
    --------
    The paper's example: 100 trials whose annualised Sharpe ratios have variance 1/2, 250 trading
    days a year, so the per-period variance is 0.5 / 250:

    >>> round(expected_max_sharpe(100, 0.5 / 250), 4)
    0.1132
    """
    n = _finite("n_trials", n_trials)
    if n < 1.0:
        raise ValueError(f"n_trials must be at least 1, got {n_trials!r}")
    v = _finite("sr_variance", sr_variance)
    if v < 0.0:
        raise ValueError(f"sr_variance must be non-negative, got {sr_variance!r}")
    if n == 1.0:
        return 0.0
    z = (1.0 - EULER_MASCHERONI) * norm.ppf(1.0 - 1.0 / n) + EULER_MASCHERONI * norm.ppf(
        1.0 - 1.0 / (n * math.e)
    )
    return float(math.sqrt(v) * z)


def deflated_sharpe_ratio(
    sr: float, n_obs: int, skew: float, kurtosis: float, n_trials: float, sr_variance: float
) -> float:
    r"""Deflated Sharpe ratio: the PSR against the best Sharpe ratio luck alone would produce.

    .. math::

        \widehat{DSR} = \widehat{PSR}(\widehat{SR}_0) = Z\left[\frac{(\widehat{SR} - \widehat{SR}_0)
        \sqrt{T - 1}}{\sqrt{1 - \hat\gamma_3 \widehat{SR} + \frac{\hat\gamma_4 - 1}{4}\widehat{SR}^2}}\right]

    with ``SR_0`` from :func:`expected_max_sharpe`: Bailey & López de Prado (2014), "The Deflated
    Sharpe Ratio", J. Portfolio Management 40(5). The paper accepts a strategy at the 5 %
    significance level when DSR > 0.95.

    Parameters
    ----------
    sr : float
        Observed Sharpe ratio of the **selected** trial, per period.
    n_obs : int
        Number of return observations ``T`` behind ``sr``.
    skew : float
        Skewness of the selected trial's returns.
    kurtosis : float
        Ordinary (non-excess) kurtosis of the selected trial's returns, 3 for normal returns.
    n_trials : float
        Number of trials ``N`` actually run to find it (all of them, not only the reported ones).
    sr_variance : float
        Variance of the ``N`` trials' estimated Sharpe ratios, per period squared.

    Returns
    -------
    float
        The probability, in [0, 1], that the true Sharpe ratio is positive after the selection.

    Raises
    ------
    ValueError
        As :func:`probabilistic_sharpe_ratio` and :func:`expected_max_sharpe`.

    Examples
    --------
    The paper's numerical example: annualised SR 2.5 over 1250 days (250 a year), skew -3,
    kurtosis 10, 100 trials with annualised Sharpe variance 1/2; DSR = 0.9004 (< 0.95: rejected).

    >>> round(deflated_sharpe_ratio(2.5 / 250**0.5, 1250, -3.0, 10.0, 100, 0.5 / 250), 4)
    0.9004
    """
    sr0 = expected_max_sharpe(n_trials, sr_variance)
    return probabilistic_sharpe_ratio(sr, sr0, n_obs, skew, kurtosis)


def deflated_sharpe_ratio_from_trials(
    returns: npt.ArrayLike, trial_sharpes: Sequence[float] | npt.ArrayLike
) -> float:
    """Deflated Sharpe ratio of the selected trial, from its returns and every trial's Sharpe ratio.

    ``N`` is the number of trial Sharpe ratios given and ``V[{SR_n}]`` their sample variance
    (``ddof=1``), as [BLdP14] prescribes: the real number of trials and their dispersion.

    Parameters
    ----------
    returns : array-like, shape (T,)
        Per-period excess returns of the selected trial.
    trial_sharpes : array-like, shape (N,)
        Per-period Sharpe ratios of **all** N trials run (the selected one included), N >= 2.

    Returns
    -------
    float
        DSR in [0, 1].

    Raises
    ------
    ValueError
        If ``trial_sharpes`` has fewer than 2 values or a non-finite one, or as
        :func:`sample_moments`.

    Examples
    --------
    >>> r = [0.02, -0.01, 0.03, 0.0, 0.01, -0.02, 0.02, 0.01]
    >>> round(deflated_sharpe_ratio_from_trials(r, [0.45, 0.1, -0.2, 0.3, 0.0]), 4)
    0.6372
    """
    sharpes = np.asarray(trial_sharpes, dtype=np.float64).reshape(-1)
    if sharpes.size < 2:
        raise ValueError(f"trial_sharpes needs the Sharpe ratio of every trial (at least 2), got {sharpes.size}")
    bad = np.flatnonzero(~np.isfinite(sharpes))
    if bad.size:
        raise ValueError(f"trial_sharpes has a non-finite value at position {int(bad[0])}")
    sr, skew, kurt, n = sample_moments(returns)
    return deflated_sharpe_ratio(sr, n, skew, kurt, sharpes.size, float(np.var(sharpes, ddof=1)))


def minimum_track_record_length(
    sr: float, sr_benchmark: float, skew: float, kurtosis: float, prob: float = 0.95
) -> float:
    r"""Minimum number of observations for ``sr`` to beat ``sr_benchmark`` with confidence ``prob``.

    .. math::

        MinTRL = 1 + \left[1 - \hat\gamma_3 \widehat{SR} + \frac{\hat\gamma_4 - 1}{4}
        \widehat{SR}^2\right] \left(\frac{Z_\alpha}{\widehat{SR} - SR^*}\right)^2

    with ``Z_alpha = Z^-1[prob]``: Bailey & López de Prado (2012), "The Sharpe Ratio Efficient
    Frontier", J. of Risk 15(2), the minimum track record length (MinTRL). It is the ``n`` at
    which :func:`probabilistic_sharpe_ratio` equals ``prob``.

    Parameters
    ----------
    sr : float
        Observed Sharpe ratio, per period.
    sr_benchmark : float
        Benchmark Sharpe ratio ``SR*``, per period.
    skew : float
        Skewness of the returns.
    kurtosis : float
        Ordinary (non-excess) kurtosis of the returns, 3 for normal returns.
    prob : float, default 0.95
        Required confidence ``1 - alpha``, in (0, 1).

    Returns
    -------
    float
        MinTRL in **observations** of the returns' frequency (divide by periods per year for
        years); ``inf`` when ``sr <= sr_benchmark`` (no track record at that ratio is enough).

    Raises
    ------
    ValueError
        If an input is not finite, ``prob`` is outside (0, 1), or the skew/kurtosis pair is
        impossible (see :func:`probabilistic_sharpe_ratio`).

    Examples
    --------
    Normal returns, per-period SR 0.1 against 0 at 95 %:
    ``1 + 1.005 * (1.644854 / 0.1) ** 2 = 272.91``.

    >>> round(minimum_track_record_length(0.1, 0.0, 0.0, 3.0), 2)
    272.91
    """
    sr = _finite("sr", sr)
    sr_benchmark = _finite("sr_benchmark", sr_benchmark)
    p = _finite("prob", prob)
    if not 0.0 < p < 1.0:
        raise ValueError(f"prob must be in (0, 1), got {prob!r}")
    s, k = _check_shape(skew, kurtosis)
    if sr <= sr_benchmark:
        return math.inf
    z = float(norm.ppf(p))
    return 1.0 + _sr_dispersion(sr, s, k) * (z / (sr - sr_benchmark)) ** 2


@dataclass(frozen=True)
class PBOResult:
    """Outcome of combinatorially symmetric cross-validation (CSCV) over a trials matrix.

    Arrays hold one entry per combination ``c`` of ``n_splits / 2`` in-sample (IS) blocks, in
    ``itertools.combinations`` order, the out-of-sample (OOS) set being the other blocks.

    Attributes
    ----------
    pbo : float
        Probability of backtest overfitting: the share of combinations whose logit is <= 0, i.e.
        whose IS-best trial ranks at or below the OOS median.
    logits : np.ndarray, shape (C,)
        ``lambda_c = ln(w_c / (1 - w_c))``.
    oos_relative_rank : np.ndarray, shape (C,)
        ``w_c = rank / (N + 1)`` of the IS-best trial among the N trials OOS (rank 1 = worst, ties
        share the average rank), in (0, 1).
    best_trial : np.ndarray of int, shape (C,)
        Column index ``n*`` of the IS-best trial (first one on ties).
    is_performance : np.ndarray, shape (C,)
        Metric of the IS-best trial in sample.
    oos_performance : np.ndarray, shape (C,)
        Metric of the same trial out of sample.
    degradation_slope, degradation_intercept : float
        Least-squares fit ``oos = intercept + slope * is`` over the combinations (the paper's
        performance degradation); a slope <= 0 means IS performance does not carry over. ``nan``
        when ``is_performance`` does not vary.
    degradation_r2 : float
        Coefficient of determination of that fit (``nan`` when undefined).
    prob_oos_loss : float
        Share of combinations whose IS-best trial has a negative OOS metric (the paper's
        probability of loss).
    n_trials, n_splits, n_combinations, n_obs_used, n_obs_dropped : int
        N, S, C(S, S/2), rows used (a multiple of S) and the oldest rows dropped to make it one.
    metric : str
        ``"sharpe"``, ``"mean"`` or the callable's name.
    """

    pbo: float
    logits: npt.NDArray[np.float64]
    oos_relative_rank: npt.NDArray[np.float64]
    best_trial: npt.NDArray[np.int64]
    is_performance: npt.NDArray[np.float64]
    oos_performance: npt.NDArray[np.float64]
    degradation_slope: float
    degradation_intercept: float
    degradation_r2: float
    prob_oos_loss: float
    n_trials: int
    n_splits: int
    n_combinations: int
    n_obs_used: int
    n_obs_dropped: int
    metric: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (scalars and lists; ``nan`` becomes ``None``).

        Returns
        -------
        dict[str, Any]
            Every attribute; arrays as lists.
        """

        def clean(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {
            "pbo": self.pbo,
            "logits": self.logits.tolist(),
            "oos_relative_rank": self.oos_relative_rank.tolist(),
            "best_trial": self.best_trial.tolist(),
            "is_performance": self.is_performance.tolist(),
            "oos_performance": self.oos_performance.tolist(),
            "degradation_slope": clean(self.degradation_slope),
            "degradation_intercept": clean(self.degradation_intercept),
            "degradation_r2": clean(self.degradation_r2),
            "prob_oos_loss": self.prob_oos_loss,
            "n_trials": self.n_trials,
            "n_splits": self.n_splits,
            "n_combinations": self.n_combinations,
            "n_obs_used": self.n_obs_used,
            "n_obs_dropped": self.n_obs_dropped,
            "metric": self.metric,
        }


def _metric_from_sums(
    sums: npt.NDArray[np.float64],
    squares: npt.NDArray[np.float64],
    count: float,
    centre: npt.NDArray[np.float64],
    metric: str,
) -> npt.NDArray[np.float64]:
    # sums/squares are of returns centred on each trial's full-sample mean: the variance is a
    # difference of sums and would cancel badly on raw returns whose mean dwarfs their spread.
    shifted = sums / count
    mean = shifted + centre
    if metric == "mean":
        return mean
    var = np.maximum(squares - count * shifted * shifted, 0.0) / (count - 1.0)
    std = np.sqrt(var)
    flat = std <= _FLAT * np.abs(mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(flat, 0.0, mean / np.where(flat, 1.0, std))
    return sharpe


def _callable_scores(
    metric: Callable[[npt.NDArray[np.float64]], npt.ArrayLike], data: npt.NDArray[np.float64], n: int
) -> npt.NDArray[np.float64]:
    out = np.asarray(metric(data), dtype=np.float64).reshape(-1)
    if out.size != n:
        raise ValueError(f"metric returned {out.size} values for {n} trials (needs one per trial)")
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise ValueError(f"metric returned a non-finite value for trial {int(bad[0])}")
    return out


def probability_of_backtest_overfitting(
    perf: npt.ArrayLike, n_splits: int = 16, metric: Metric = "sharpe"
) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV).

    The algorithm of Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest
    Overfitting", J. Computational Finance 20(4) (2017), the CSCV procedure, whose steps are:

    1. split the ``T x N`` matrix row-wise, in time order, into ``S`` contiguous blocks of
       ``T / S`` rows;
    2. for each of the ``C(S, S/2)`` combinations ``c`` of ``S/2`` blocks, the in-sample set ``J``
       is those blocks and the out-of-sample set ``J_bar`` the other ``S/2``;
    3. evaluate the metric of every trial on ``J`` and ``J_bar``; take the IS-best trial ``n*``;
    4. its relative OOS rank ``w_c = rank / (N + 1)`` and logit ``lambda_c = ln(w_c / (1 - w_c))``;
    5. ``PBO = share of combinations with lambda_c <= 0``.

    It also fits the performance degradation ``oos = a + b * is`` and the probability of loss
    ``P[oos < 0]`` over the combinations (same paper). For ``"sharpe"`` and ``"mean"`` all
    combinations are evaluated from per-block sums with matrix products.

    Parameters
    ----------
    perf : array-like, shape (T, N)
        Per-period returns (fractions) of N trials (parameter sets) over the same T periods, oldest
        row first. ``T mod S`` oldest rows are dropped so the blocks are equal (reported).
    n_splits : int, default 16
        Number of blocks ``S``: even, between 2 and 20 (the paper uses 16: 12,870 combinations).
    metric : {"sharpe", "mean"} or callable, default "sharpe"
        Performance statistic, higher is better: per-period Sharpe ratio (``ddof=1``; a trial with
        no dispersion on a half scores 0), mean return, or a function mapping a ``(rows, N)``
        array to N finite scores (called once per half per combination).

    Returns
    -------
    PBOResult
        PBO, logits, ranks, the IS-best trial and its IS/OOS performance per combination, the
        degradation fit and the probability of OOS loss.

    Raises
    ------
    ValueError
        If ``perf`` is not 2-D with N >= 2 trials, holds NaN/inf, has fewer than 2 rows per block,
        ``n_splits`` is odd or outside [2, 20], or ``metric`` is unknown or returns bad scores.

    Examples
    --------
    Ten trials over 64 periods; trial 0 earns 1 % every period plus noise, the rest only noise:

    >>> rng = np.random.default_rng(0)
    >>> perf = rng.normal(0.0, 0.01, size=(64, 10))
    >>> perf[:, 0] += 0.01
    >>> result = probability_of_backtest_overfitting(perf, n_splits=8)
    >>> result.n_combinations, result.pbo, bool(np.all(result.best_trial == 0))
    (70, 0.0, True)
    """
    m = np.asarray(perf, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"perf must be 2-D (T observations x N trials), got shape {m.shape}")
    t_all, n = m.shape
    if n < 2:
        raise ValueError(f"perf needs at least 2 trials (columns) to rank, got {n}")
    bad = np.argwhere(~np.isfinite(m))
    if bad.size:
        row, col = (int(v) for v in bad[0])
        raise ValueError(f"perf has a non-finite value at row {row}, trial {col} ({m[row, col]!r})")
    if isinstance(n_splits, bool) or int(n_splits) != n_splits:
        raise ValueError(f"n_splits must be an even integer, got {n_splits!r}")
    s = int(n_splits)
    if s % 2 or not 2 <= s <= MAX_SPLITS:
        raise ValueError(f"n_splits must be an even integer in [2, {MAX_SPLITS}], got {n_splits!r}")
    block = t_all // s
    if block < 2:
        raise ValueError(
            f"perf has {t_all} rows; n_splits={s} needs at least {2 * s} (2 rows per block)"
        )
    metric_name: str
    if isinstance(metric, str):
        if metric not in ("sharpe", "mean"):
            raise ValueError(f"metric must be 'sharpe', 'mean' or a callable, got {metric!r}")
        metric_name = metric
    elif callable(metric):
        metric_name = str(getattr(metric, "__name__", None) or type(metric).__name__)
    else:
        raise ValueError(f"metric must be 'sharpe', 'mean' or a callable, got {metric!r}")

    dropped = t_all - block * s  # oldest rows, so every block has the same length (paper step 2)
    m = m[dropped:]
    combos = np.array(list(combinations(range(s), s // 2)), dtype=np.int64)
    n_comb = combos.shape[0]
    membership = np.zeros((n_comb, s), dtype=np.float64)
    membership[np.arange(n_comb)[:, None], combos] = 1.0

    best = np.empty(n_comb, dtype=np.int64)
    is_best = np.empty(n_comb, dtype=np.float64)
    oos_best = np.empty(n_comb, dtype=np.float64)
    rank = np.empty(n_comb, dtype=np.float64)
    half = float(block * (s // 2))

    def select(r_in: npt.NDArray[np.float64], r_out: npt.NDArray[np.float64], sl: slice) -> None:
        rows = np.arange(r_in.shape[0])
        star = np.argmax(r_in, axis=1)
        won = r_out[rows, star]
        below = np.sum(r_out < won[:, None], axis=1)
        ties = np.sum(r_out == won[:, None], axis=1)  # includes n* itself
        best[sl] = star
        is_best[sl] = r_in[rows, star]
        oos_best[sl] = won
        rank[sl] = below + (ties + 1.0) / 2.0

    if isinstance(metric, str):
        centre = m.mean(axis=0)
        blocks = (m - centre).reshape(s, block, n)
        sums = blocks.sum(axis=1)
        squares = (blocks * blocks).sum(axis=1)
        total, total_sq = sums.sum(axis=0), squares.sum(axis=0)
        step = max(1, _BATCH_CELLS // n)
        for start in range(0, n_comb, step):
            sl = slice(start, min(start + step, n_comb))
            is_sum, is_sq = membership[sl] @ sums, membership[sl] @ squares
            r_in = _metric_from_sums(is_sum, is_sq, half, centre, metric)
            r_out = _metric_from_sums(total - is_sum, total_sq - is_sq, half, centre, metric)
            select(r_in, r_out, sl)
    else:
        blocks3 = m.reshape(s, block, n)
        for i, chosen in enumerate(combos):
            rest = np.setdiff1d(np.arange(s), chosen, assume_unique=True)
            r_in = _callable_scores(metric, blocks3[chosen].reshape(-1, n), n)
            r_out = _callable_scores(metric, blocks3[rest].reshape(-1, n), n)
            select(r_in[None, :], r_out[None, :], slice(i, i + 1))

    w = rank / (n + 1.0)
    logits = np.log(w / (1.0 - w))
    slope, intercept, r2 = _linear_fit(is_best, oos_best)
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)),
        logits=logits,
        oos_relative_rank=w,
        best_trial=best,
        is_performance=is_best,
        oos_performance=oos_best,
        degradation_slope=slope,
        degradation_intercept=intercept,
        degradation_r2=r2,
        prob_oos_loss=float(np.mean(oos_best < 0.0)),
        n_trials=int(n),
        n_splits=s,
        n_combinations=int(n_comb),
        n_obs_used=int(block * s),
        n_obs_dropped=int(dropped),
        metric=metric_name,
    )


def _linear_fit(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    dx = x - x.mean()
    dy = y - y.mean()
    sxx = float(dx @ dx)
    if sxx <= 1e-24 * max(1.0, float(x @ x)):
        return math.nan, math.nan, math.nan
    slope = float(dx @ dy) / sxx
    intercept = float(y.mean()) - slope * float(x.mean())
    syy = float(dy @ dy)
    resid = dy - slope * dx
    r2 = 1.0 - float(resid @ resid) / syy if syy > 0.0 else math.nan
    return slope, intercept, r2
