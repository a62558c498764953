"""Per-symbol streaming feature vector, updated in O(1) per bar from :mod:`core.indicators`.

Every feature at bar ``t`` uses bars ``<= t`` only, so a feature vector is known at the bar's end
(``Bar.ts_init``) and can never leak the future into a learner.
"""

from __future__ import annotations

import math
import sys
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.events import Bar
from core.indicators import MACD, RSI, Bollinger, RollingStats

__all__ = ["FeatureConfig", "StreamingFeatures"]

_MIN_RATIO = sys.float_info.min
"""Smallest normal float: a price ratio below it has underflowed (to 0, or lost precision)."""
_MAX = sys.float_info.max


class FeatureConfig(BaseModel):
    """Configuration of :class:`StreamingFeatures`; every period is in bars.

    Parameters
    ----------
    return_horizons : tuple of int
        Look-backs of the simple returns ``ret_<h>`` (each >= 1, distinct, at least one).
    rsi_period : int
        Wilder RSI period (>= 1).
    macd_fast, macd_slow, macd_signal : int
        MACD spans (>= 1, ``macd_fast < macd_slow``).
    bollinger_period : int
        Bollinger window (>= 1).
    bollinger_k : float
        Bollinger band half-width in standard deviations (> 0, finite).
    volume_z_period : int
        Window of the volume z-score (>= 2).
    volatility_period : int
        Window of the realized volatility of 1-bar log returns (>= 2).

    Raises
    ------
    pydantic.ValidationError
        On an out-of-range value, an unknown key or ``macd_fast >= macd_slow``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    return_horizons: tuple[Annotated[int, Field(ge=1)], ...] = Field(default=(1, 5, 20), min_length=1)
    rsi_period: int = Field(default=14, ge=1)
    macd_fast: int = Field(default=12, ge=1)
    macd_slow: int = Field(default=26, ge=1)
    macd_signal: int = Field(default=9, ge=1)
    bollinger_period: int = Field(default=20, ge=1)
    bollinger_k: float = Field(default=2.0, gt=0.0, allow_inf_nan=False)
    volume_z_period: int = Field(default=20, ge=2)
    volatility_period: int = Field(default=20, ge=2)

    @model_validator(mode="after")
    def _check(self) -> FeatureConfig:
        if len(set(self.return_horizons)) != len(self.return_horizons):
            raise ValueError(f"return_horizons must be distinct, got {self.return_horizons}")
        if self.macd_fast >= self.macd_slow:
            raise ValueError(f"macd_fast must be < macd_slow, got {self.macd_fast} >= {self.macd_slow}")
        return self

    @property
    def warmup_bars(self) -> int:
        """Number of bars after which :meth:`StreamingFeatures.update` returns features."""
        return max(
            max(self.return_horizons) + 1,
            self.rsi_period + 1,
            self.macd_slow + self.macd_signal - 1,
            self.bollinger_period,
            self.volume_z_period,
            self.volatility_period + 1,
        )


class StreamingFeatures:
    """Incremental feature vector of one symbol's bars.

    Parameters
    ----------
    config : FeatureConfig, optional
        Periods; defaults to ``FeatureConfig()``.

    Notes
    -----
    Features at bar ``t`` with close ``c_t`` and volume ``v_t`` (all dimensionless unless noted):

    * ``ret_<h>``: simple return ``c_t / c_{t-h} - 1`` (a fraction) for each ``h`` in
      ``return_horizons``;
    * ``rsi``: Wilder (1978) RSI of closes, in [0, 100];
    * ``macd_hist``: Appel MACD histogram of closes (price units, USD);
    * ``bb_pct_b``: Bollinger %b of the close (population sigma, see :class:`core.indicators.Bollinger`);
    * ``volume_z``: ``(v_t - mean) / std`` over the last ``volume_z_period`` volumes (sample std,
      window includes ``v_t``; 0 for a constant window);
    * ``realized_vol``: sample standard deviation (ddof=1) of the last ``volatility_period`` 1-bar
      log returns ``ln(c_t / c_{t-1})``: per bar, not annualized.

    Each update is O(1). The caller (the engine, see :mod:`core.bars`) guarantees sound bars
    with strictly increasing ``ts_event``: duplicates and out-of-order bars are dropped before they
    get here, so they are not checked again. For every bar the gate passes (prices within
    [1e-8, 1e9] USD, volume within [0, 1e15]) every feature is finite. Not thread-safe; one
    instance per symbol.
    """

    __slots__ = (
        "config",
        "_names",
        "_ret_keys",
        "_closes",
        "_size",
        "_idx",
        "_bars",
        "_warmup",
        "_prev_close",
        "_rsi",
        "_macd",
        "_bb",
        "_volume",
        "_logret",
    )

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config = config if config is not None else FeatureConfig()
        self._ret_keys = tuple((f"ret_{h}", h) for h in config.return_horizons)
        self._names = tuple(k for k, _ in self._ret_keys) + (
            "rsi",
            "macd_hist",
            "bb_pct_b",
            "volume_z",
            "realized_vol",
        )
        self._size = max(config.return_horizons) + 1
        self._warmup = config.warmup_bars
        self._rsi = RSI(config.rsi_period)
        self._macd = MACD(config.macd_fast, config.macd_slow, config.macd_signal)
        self._bb = Bollinger(config.bollinger_period, config.bollinger_k)
        self._volume = RollingStats(config.volume_z_period)
        self._logret = RollingStats(config.volatility_period)
        self.reset()

    def reset(self) -> None:
        """Forget every bar (as after construction)."""
        self._closes = [0.0] * self._size
        self._idx = 0
        self._bars = 0
        self._prev_close = 0.0
        self._rsi.reset()
        self._macd.reset()
        self._bb.reset()
        self._volume.reset()
        self._logret.reset()

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Keys of the returned dicts, in insertion order."""
        return self._names

    @property
    def ready(self) -> bool:
        """``True`` once every feature is warm."""
        return self._bars >= self._warmup

    @property
    def bars_seen(self) -> int:
        """Number of bars accepted so far."""
        return self._bars

    def update(self, bar: Bar) -> dict[str, float] | None:
        """Consume one bar and return its feature vector.

        Parameters
        ----------
        bar : core.events.Bar
            The next bar of this symbol (close > 0 USD, volume >= 0 shares), later than the
            previous one (the engine guarantees it).

        Returns
        -------
        dict of str to float or None
            A new dict (keys :attr:`feature_names`) each call, or ``None`` while any feature is
            still warming up (the first ``config.warmup_bars - 1`` bars).

        Raises
        ------
        ValueError
            If ``bar.close`` is not a positive finite number or ``bar.volume`` is negative or NaN.
        """
        close = bar.close
        volume = bar.volume
        if not 0.0 < close < math.inf:
            raise ValueError(f"{bar.symbol} bar at {bar.ts_event}: close must be a positive finite price, "
                             f"got {close!r}")
        if not volume >= 0.0:
            raise ValueError(f"{bar.symbol} bar at {bar.ts_event}: volume must be >= 0, got {volume!r}")

        closes = self._closes
        i = self._idx
        closes[i] = close
        self._idx = i + 1 if i + 1 < self._size else 0
        bars = self._bars = self._bars + 1
        if bars > 1:
            prev = self._prev_close
            r = close / prev
            # as in learning.regime: a difference of logs when the ratio under- or overflows
            self._logret.update(math.log(r) if _MIN_RATIO <= r <= _MAX else math.log(close) - math.log(prev))
        self._prev_close = close
        rsi = self._rsi.update(close)
        hist = self._macd.update(close)
        pct_b = self._bb.update(close)
        self._volume.update(volume)
        if bars < self._warmup:
            return None

        # closes[i - h] is h bars back: a negative index wraps around the ring (h < ring size).
        out: dict[str, float] = {}
        for key, h in self._ret_keys:  # a plain loop: a comprehension costs a frame per bar
            out[key] = close / closes[i - h] - 1.0
        out["rsi"] = rsi  # type: ignore[assignment]  # all warm past warmup_bars
        out["macd_hist"] = hist  # type: ignore[assignment]
        out["bb_pct_b"] = pct_b  # type: ignore[assignment]
        out["volume_z"] = self._volume.zscore(volume)  # type: ignore[assignment]
        out["realized_vol"] = self._logret.std  # type: ignore[assignment]
        return out
