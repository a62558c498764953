"""Per-symbol market regime = trend strength x volatility level, with hysteresis.

The engine calls :meth:`RegimeDetector.update` once per bar and emits
:class:`core.events.RegimeChanged` (see :meth:`RegimeDetector.change_event`) when ``changed`` is set.
"""

from __future__ import annotations

import math
import sys

from pydantic import BaseModel, ConfigDict, Field

from core.enums import Regime
from core.events import Bar, RegimeChanged
from core.indicators import EMA, EfficiencyRatio, RollingStats

__all__ = ["RegimeConfig", "RegimeDetector"]

_MIN_RATIO = sys.float_info.min
"""Smallest normal float: a price ratio below it has underflowed (to 0, or lost precision)."""
_MAX = sys.float_info.max
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
        "_er",
        "_vol",
        "_baseline",
        "_prev_close",
        "_regime",
        "_previous",
        "_changed",
        "_raw",
        "_candidate",
        "_streak",
        "_ratio",
        "_trend_threshold",
        "_high_vol_ratio",
        "_min_bars",
    )

    def __init__(self, config: RegimeConfig | None = None) -> None:
        self.config = config = config if config is not None else RegimeConfig()
        self._er = EfficiencyRatio(config.trend_period)
        self._vol = RollingStats(config.volatility_period)
        self._baseline = EMA(config.volatility_baseline_period)
        self._trend_threshold = config.trend_threshold  # plain slots: read on every bar
        self._high_vol_ratio = config.high_vol_ratio
        self._min_bars = config.min_bars_in_regime
        self.reset()

    def reset(self) -> None:
        """Forget every bar and return to ``Regime.UNKNOWN``."""
        self._er.reset()
        self._vol.reset()
        self._baseline.reset()
        self._prev_close: float | None = None
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
        """``True`` iff the last :meth:`update` switched the reported regime."""
        return self._changed

    @property
    def raw(self) -> Regime:
        """Unfiltered classification of the last bar (before hysteresis)."""
        return self._raw

    @property
    def efficiency_ratio(self) -> float | None:
        """Last Kaufman efficiency ratio in [0, 1] (``None`` until warm)."""
        return self._er.value

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
        self._changed = False
        close = bar.close
        if not 0.0 < close < math.inf:
            raise ValueError(f"{bar.symbol} bar at {bar.ts_event}: close must be a positive finite price, "
                             f"got {close!r}")

        er = self._er.update(close)
        prev = self._prev_close
        self._prev_close = close
        if prev is None:
            return self._regime
        r = close / prev
        # log of a ratio that underflowed to 0 raises, one that overflowed is inf: then (prices
        # ~1e300 apart, never within the bar gate) the difference of logs, finite for any prices
        log_return = math.log(r) if _MIN_RATIO <= r <= _MAX else math.log(close) - math.log(prev)
        vol = self._vol
        if vol.update(log_return) is None:
            return self._regime
        sigma = vol.std
        base = self._baseline.update(sigma)  # type: ignore[arg-type]  # warm
        if base is None or er is None:
            return self._regime

        if base > 0.0:
            ratio = sigma / base  # type: ignore[operator]  # <= 1 / alpha: base includes sigma
        else:  # only if alpha * sigma underflowed; the largest float rather than inf: stays finite
            ratio = _MAX if sigma > 0.0 else 1.0  # type: ignore[operator]
        self._ratio = ratio
        high = ratio >= self._high_vol_ratio
        if er >= self._trend_threshold:
            raw = _HIGH_VOL_TRENDING if high else _LOW_VOL_TRENDING
        else:
            raw = _HIGH_VOL_MEAN_REVERTING if high else _LOW_VOL_SIDEWAYS
        self._raw = raw

        current = self._regime
        if raw is current:
            self._streak = 0
            return current
        if current is not _UNKNOWN:
            if raw is self._candidate and self._streak:
                self._streak += 1
            else:
                self._candidate = raw
                self._streak = 1
            if self._streak < self._min_bars:
                return current
        self._previous = current
        self._regime = raw
        self._changed = True
        self._streak = 0
        return raw

    def change_event(self, bar: Bar) -> RegimeChanged | None:
        """Return the :class:`core.events.RegimeChanged` for ``bar`` if its update switched the regime.

        Call right after :meth:`update` with the same bar; ``ts_event``/``ts_init`` are the bar's.
        Returns ``None`` when the last update did not switch.
        """
        if not self._changed:
            return None
        return RegimeChanged(symbol=bar.symbol, previous=self._previous, current=self._regime,
                             ts_event=bar.ts_event, ts_init=bar.ts_init)
