"""Per-symbol market regime = trend strength x volatility level, with hysteresis.

:meth:`RegimeDetector.update` consumes one bar; :meth:`RegimeDetector.update_closes` a run of
closes at once, with the same result as one ``update`` per close. The signal pipeline feeds closes
in batches when nobody listens for :class:`core.events.RegimeChanged` (the regime is then only
read when a decision is recorded), eagerly otherwise (see :meth:`RegimeDetector.change_event`).

The detector computes its three inputs itself, with the exact arithmetic of
:class:`core.indicators.EfficiencyRatio`, :class:`~core.indicators.RollingStats` and
:class:`~core.indicators.EMA` (bit for bit: ``tests/learning/test_regime_batch.py`` checks it
against those classes), fused into one loop whose state lives in local variables: about half
the cost of calling the three indicators per bar, the largest single cost of a replay. Only the
indicators' plain arithmetic is needed here: log returns of positive finite closes lie within
+/-1500, so their squares, window sums and EMA can never overflow, and the efficiency ratio's
sums are scaled as in :class:`~core.indicators.EfficiencyRatio`.
"""

from __future__ import annotations

import math
import sys

from pydantic import BaseModel, ConfigDict, Field

from collections.abc import Iterable

from core.enums import Regime
from core.events import Bar, RegimeChanged
from core.indicators import _sum_scale

__all__ = ["RegimeConfig", "RegimeDetector"]

_MIN_RATIO = sys.float_info.min
"""Smallest normal float: a price ratio below it has underflowed (to 0, or lost precision)."""
_MAX = sys.float_info.max
_INF = math.inf
_log = math.log
_sqrt = math.sqrt
_fsum = math.fsum
# members bound once: an Enum attribute lookup costs ~60 ns, on every bar
_UNKNOWN = Regime.UNKNOWN
_HIGH_VOL_TRENDING = Regime.HIGH_VOL_TRENDING
_LOW_VOL_TRENDING = Regime.LOW_VOL_TRENDING
_HIGH_VOL_MEAN_REVERTING = Regime.HIGH_VOL_MEAN_REVERTING
_LOW_VOL_SIDEWAYS = Regime.LOW_VOL_SIDEWAYS


class RegimeConfig(BaseModel):
    """Configuration of :class:`RegimeDetector`; periods in bars.

    Parameters
    ----------
    trend_period : int
        Look-back of the Kaufman efficiency ratio of closes (>= 1).
    volatility_period : int
        Window of the short realized volatility, the sample std of 1-bar log returns (>= 2).
    volatility_baseline_period : int
        Span of the EMA of the short volatility used as its slow baseline (>= 1).
    trend_threshold : float
        Efficiency ratio at or above which the market is trending, in [0, 1].
    high_vol_ratio : float
        Short / baseline volatility at or above which volatility is high (> 0, finite).
    min_bars_in_regime : int
        Hysteresis: consecutive bars a new classification must persist before the reported
        regime switches (>= 1; 1 switches at once).

    Raises
    ------
    pydantic.ValidationError
        On an out-of-range value or an unknown key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    trend_period: int = Field(default=50, ge=1)
    volatility_period: int = Field(default=20, ge=2)
    volatility_baseline_period: int = Field(default=200, ge=1)
    trend_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    high_vol_ratio: float = Field(default=1.2, gt=0.0, allow_inf_nan=False)
    min_bars_in_regime: int = Field(default=5, ge=1)

    @property
    def warmup_bars(self) -> int:
        """Bars after which the detector leaves ``Regime.UNKNOWN``."""
        return max(self.trend_period + 1, self.volatility_period + self.volatility_baseline_period)


class RegimeDetector:
    """Classify one symbol's bars into a :class:`core.enums.Regime`, O(1) per bar.

    Parameters
    ----------
    config : RegimeConfig, optional
        Thresholds and periods; defaults to ``RegimeConfig()``.

    Notes
    -----
    * Trend: Kaufman (1995) efficiency ratio ``ER`` of closes over ``trend_period``;
      trending iff ``ER >= trend_threshold``.
    * Volatility: ``sigma`` = sample std of the last ``volatility_period`` log returns,
      baseline ``B`` = EMA (span ``volatility_baseline_period``, SMA-seeded) of ``sigma``;
      high iff ``sigma / B >= high_vol_ratio`` (a zero baseline counts as ratio 1 when ``sigma``
      is 0 too, and as the largest float, ``sys.float_info.max``, otherwise: the reported ratio is
      always finite).
    * trending & high -> HIGH_VOL_TRENDING, trending & low -> LOW_VOL_TRENDING,
      not trending & high -> HIGH_VOL_MEAN_REVERTING, otherwise LOW_VOL_SIDEWAYS;
      UNKNOWN for the first ``config.warmup_bars - 1`` bars.
    * Hysteresis: once out of UNKNOWN (the first classification is reported at once), a
      different classification must hold for ``min_bars_in_regime`` consecutive bars before the
      reported regime switches.

    The caller (the engine, see :mod:`core.bars`) guarantees sound bars with strictly increasing
    ``ts_event``: duplicates and out-of-order bars are dropped before they get here, so the
    detector does not check again. Any positive finite closes keep every output finite (1-bar log
    returns are taken as a difference of logs when the price ratio under- or overflows). Not
    thread-safe; one instance per symbol.
    """

    __slots__ = (
        "config",
        # efficiency ratio (EfficiencyRatio's state): scaled closes and |changes|, ring positions
        "_er_period", "_er_scale", "_er_prices", "_er_diffs", "_er_pidx", "_er_didx", "_er_count", "_er_sum",
        "_er_prev", "_er_value",
        # log returns and their rolling sample std (RollingStats' state, ddof=1)
        "_prev_close", "_vol_period", "_vol_buf", "_vol_idx", "_vol_count", "_vol_shift", "_vol_mean", "_vol_m2",
        "_vol_last", "_vol_run",
        # EMA baseline of sigma (EMA's state)
        "_base_period", "_base_alpha", "_base_scale", "_base_count", "_base_sum", "_base",
        # classification and hysteresis
        "_regime", "_previous", "_changed", "_raw", "_candidate", "_streak", "_ratio",
        "_trend_threshold", "_high_vol_ratio", "_min_bars",
    )

    def __init__(self, config: RegimeConfig | None = None) -> None:
        self.config = config = config if config is not None else RegimeConfig()
        self._er_period = config.trend_period
        self._er_scale = _sum_scale(config.trend_period)  # as EfficiencyRatio: sums cannot overflow
        self._vol_period = config.volatility_period
        self._base_period = config.volatility_baseline_period
        self._base_alpha = 2.0 / (config.volatility_baseline_period + 1.0)  # as EMA's default alpha
        self._base_scale = _sum_scale(config.volatility_baseline_period)
        self._trend_threshold = config.trend_threshold
        self._high_vol_ratio = config.high_vol_ratio
        self._min_bars = config.min_bars_in_regime
        self.reset()

    def reset(self) -> None:
        """Forget every bar and return to ``Regime.UNKNOWN``."""
        self._er_prices = [0.0] * self._er_period
        self._er_diffs = [0.0] * self._er_period
        self._er_pidx = 0
        self._er_didx = 0
        self._er_count = 0
        self._er_sum = 0.0
        self._er_prev: float | None = None
        self._er_value: float | None = None
        self._prev_close: float | None = None
        self._vol_buf = [0.0] * self._vol_period
        self._vol_idx = 0
        self._vol_count = 0
        self._vol_shift = 0.0
        self._vol_mean = 0.0
        self._vol_m2 = 0.0
        self._vol_last = math.nan
        self._vol_run = 0
        self._base_count = 0
        self._base_sum = 0.0
        self._base: float | None = None
        self._regime = Regime.UNKNOWN
        self._previous = Regime.UNKNOWN
        self._changed = False
        self._raw = Regime.UNKNOWN
        self._candidate = Regime.UNKNOWN
        self._streak = 0
        self._ratio: float | None = None

    @property
    def regime(self) -> Regime:
        """Currently reported (hysteresis-filtered) regime."""
        return self._regime

    @property
    def previous(self) -> Regime:
        """Regime reported before the most recent switch (``UNKNOWN`` before any switch)."""
        return self._previous

    @property
    def changed(self) -> bool:
        """``True`` iff the last close consumed switched the reported regime."""
        return self._changed

    @property
    def raw(self) -> Regime:
        """Unfiltered classification of the last bar (before hysteresis)."""
        return self._raw

    @property
    def efficiency_ratio(self) -> float | None:
        """Last Kaufman efficiency ratio in [0, 1] (``None`` until warm)."""
        return self._er_value

    @property
    def volatility_ratio(self) -> float | None:
        """Last short / baseline volatility ratio (``None`` until warm)."""
        return self._ratio

    def update(self, bar: Bar) -> Regime:
        """Consume one bar and return the reported regime.

        Parameters
        ----------
        bar : core.events.Bar
            Next bar of this symbol (close > 0 USD), later than the previous one (the engine
            guarantees it).

        Returns
        -------
        core.enums.Regime
            Reported regime after this bar; ``changed``/``previous`` tell whether it just switched.

        Raises
        ------
        ValueError
            If ``bar.close`` is not a positive finite number.
        """
        close = bar.close
        if not 0.0 < close < _INF:
            raise ValueError(f"{bar.symbol} bar at {bar.ts_event}: close must be a positive finite price, "
                             f"got {close!r}")
        return self.update_closes((close,))

    def update_closes(self, closes: Iterable[float]) -> Regime:
        """Consume the closes of consecutive bars, oldest first; return the reported regime.

        Exactly as many :meth:`update` calls, one per close (``changed`` then tells whether the
        last close switched the regime), at about half the cost per close.

        Parameters
        ----------
        closes : iterable of float
            Positive finite closes (USD); not checked (the engine's bar gate guarantees them).

        Returns
        -------
        core.enums.Regime
            Reported regime after the last close.
        """
        # state into locals once per batch; the per-close loop touches no attribute
        er_n, er_scale, prices, diffs = self._er_period, self._er_scale, self._er_prices, self._er_diffs
        pidx, didx, er_count, er_sum = self._er_pidx, self._er_didx, self._er_count, self._er_sum
        er_prev, er_value, prev_close = self._er_prev, self._er_value, self._prev_close
        n, buf, vidx, count = self._vol_period, self._vol_buf, self._vol_idx, self._vol_count
        k, mean, m2, last, run = self._vol_shift, self._vol_mean, self._vol_m2, self._vol_last, self._vol_run
        ddof_n = n - 1
        base, alpha, base_n, base_scale = self._base, self._base_alpha, self._base_period, self._base_scale
        base_count, base_sum = self._base_count, self._base_sum
        regime, previous, changed, raw = self._regime, self._previous, self._changed, self._raw
        candidate, streak, ratio = self._candidate, self._streak, self._ratio
        threshold, high_ratio, min_bars = self._trend_threshold, self._high_vol_ratio, self._min_bars
        log, fsum, sqrt, min_ratio, max_float = _log, _fsum, _sqrt, _MIN_RATIO, _MAX
        unknown, hv_trend, lv_trend, hv_revert, lv_side = (_UNKNOWN, _HIGH_VOL_TRENDING, _LOW_VOL_TRENDING,
                                                           _HIGH_VOL_MEAN_REVERTING, _LOW_VOL_SIDEWAYS)
        for close in closes:
            changed = False
            # --- efficiency ratio: EfficiencyRatio.update(close) -------------------------------
            x = close * er_scale  # ER is scale-free; scaled, the path length cannot overflow
            prev = er_prev
            er_prev = x
            old = prices[pidx]
            prices[pidx] = x
            pidx += 1
            if pidx == er_n:
                pidx = 0
            er = None
            if prev is None:
                er_count = 1
            else:
                d = x - prev
                if d < 0.0:
                    d = -d
                er_sum += d - diffs[didx]
                diffs[didx] = d
                didx += 1
                if didx == er_n:
                    didx = 0
                    er_sum = fsum(diffs)  # exact resync once per window
                if er_count <= er_n:
                    er_count += 1
                if er_count > er_n:
                    direction = x - old
                    if direction < 0.0:
                        direction = -direction
                    if er_sum <= 0.0:
                        er = 0.0
                    else:
                        er = direction / er_sum
                        if er > 1.0:  # rounding guard
                            er = 1.0
                    er_value = er
            # --- 1-bar log return ----------------------------------------------------------------
            p = prev_close
            prev_close = close
            if p is None:
                continue
            r = close / p
            # log of a ratio that underflowed to 0 raises, one that overflowed is inf: then (prices
            # ~1e300 apart, never within the bar gate) the difference of logs, finite for any prices
            value = log(r) if min_ratio <= r <= max_float else log(close) - log(p)
            # --- rolling sample std: RollingStats.update(value), plain arithmetic ---------------
            if count == n:
                o = buf[vidx]
                delta = value - o
                new_mean = mean + delta / n
                m2 += delta * ((value - k) - new_mean + (o - k) - mean)
                mean = new_mean
            else:
                if count == 0:
                    k = value
                count += 1
                y = value - k
                delta = y - mean
                mean += delta / count
                m2 += delta * (y - mean)
            buf[vidx] = value
            vidx += 1
            if vidx == n:
                vidx = 0
                if count == n:  # exact two-pass resync once per window: bounded drift
                    k = fsum(buf) / n
                    mean = 0.0
                    m2 = sum([(y - k) * (y - k) for y in buf])
            if value == last:
                run += 1
                if run >= n:  # constant window: exact mean, zero variance
                    k = value
                    mean = 0.0
                    m2 = 0.0
            else:
                last = value
                run = 1
            if count < n:
                continue
            sigma = 0.0 if m2 <= 0.0 else sqrt(m2 / ddof_n)
            # --- baseline: EMA.update(sigma) --------------------------------------------------
            if base is not None:
                base += alpha * (sigma - base)
            else:
                base_count += 1
                base_sum += sigma * base_scale
                if base_count < base_n:
                    continue
                base = base_sum / (base_n * base_scale)
            if er is None:
                continue
            # --- classification and hysteresis ---------------------------------------------
            if base > 0.0:
                ratio = sigma / base  # <= 1 / alpha: base includes sigma
            else:  # only if alpha * sigma underflowed; the largest float rather than inf: stays finite
                ratio = max_float if sigma > 0.0 else 1.0
            high = ratio >= high_ratio
            if er >= threshold:
                raw = hv_trend if high else lv_trend
            else:
                raw = hv_revert if high else lv_side
            if raw is regime:
                streak = 0
                continue
            if regime is not unknown:
                if raw is candidate and streak:
                    streak += 1
                else:
                    candidate = raw
                    streak = 1
                if streak < min_bars:
                    continue
            previous = regime
            regime = raw
            changed = True
            streak = 0
        self._er_pidx, self._er_didx, self._er_count, self._er_sum = pidx, didx, er_count, er_sum
        self._er_prev, self._er_value, self._prev_close = er_prev, er_value, prev_close
        self._vol_idx, self._vol_count, self._vol_shift, self._vol_mean = vidx, count, k, mean
        self._vol_m2, self._vol_last, self._vol_run = m2, last, run
        self._base, self._base_count, self._base_sum = base, base_count, base_sum
        self._regime, self._previous, self._changed, self._raw = regime, previous, changed, raw
        self._candidate, self._streak, self._ratio = candidate, streak, ratio
        return regime

    def change_event(self, bar: Bar) -> RegimeChanged | None:
        """Return the :class:`core.events.RegimeChanged` for ``bar`` if its update switched the regime.

        Call right after :meth:`update` with the same bar; ``ts_event``/``ts_init`` are the bar's.
        Returns ``None`` when the last update did not switch.
        """
        if not self._changed:
            return None
        return RegimeChanged(symbol=bar.symbol, previous=self._previous, current=self._regime,
                             ts_event=bar.ts_event, ts_init=bar.ts_init)
