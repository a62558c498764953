"""Incremental technical indicators: O(1) work per update, no numpy or pandas on the hot path.

Every indicator follows one protocol:

* ``update(value)`` (``update(high, low, close)`` for :class:`ATR`) feeds the next observation and
  returns the new value, or ``None`` while the indicator is still warming up;
* ``value`` is the last returned value (``None`` until warm), ``ready`` tells whether it is warm;
* ``reset()`` returns the indicator to its freshly constructed state.

Windowed indicators keep a fixed-size ring buffer and running sums. Running sums drift with float
rounding, so each one is recomputed exactly (``math.fsum``, two-pass for variances) every time its
ring buffer wraps: O(period) work once per ``period`` updates, i.e. amortised O(1), and the error
can never accumulate over more than one window no matter how long the stream is.

Extreme values. Inputs must be finite floats (NaN and inf are refused at the boundary, see
:mod:`core.bars`; checking here would cost on every bar). Any finite input is accepted, from
denormals to +/-1.8e308: no update or query raises, every output is a finite float or ``None``, and
NaN or inf never enters an indicator's state (so nothing stays poisoned). On inputs of ordinary
size the arithmetic is exactly the plain recurrence. What keeps the extremes finite:

* running sums (SMA, EMA seed, RSI, ATR, efficiency ratio) are kept in units scaled by a power of
  two below ``1 / (4 * period)``, so no sum of finite inputs can overflow; the scaling is exact,
  so results are bit for bit those of the unscaled sums;
* the EMA update ``v + alpha * (x - v)`` falls back to the overflow-free convex form when
  ``x - v`` overflows (inputs beyond +/-9e307);
* :class:`RollingStats` (and :class:`Bollinger`) switch to arithmetic scaled by 2**-600 when
  squares overflow (values beyond ~1e154; the state is recomputed exactly from the window), and
  back to plain arithmetic, recomputed exactly, once every value in the window is below 1e140:
  still O(1) per update;
* a result whose exact value lies outside the float range (the MACD line or ATR of inputs near
  +/-1.8e308, the variance of data spread wider than ~1e154) saturates at +/-``sys.float_info.max``.

The bar gate keeps prices within [1e-8, 1e9] USD and volumes within [0, 1e15], where none of the
fallbacks ever triggers.

The classes use ``__slots__`` and are not thread-safe; use one instance per symbol and stream.
"""

from __future__ import annotations

import math
import sys
from collections import deque

__all__ = [
    "ATR",
    "EMA",
    "MACD",
    "RSI",
    "SMA",
    "Bollinger",
    "EfficiencyRatio",
    "RollingMax",
    "RollingMin",
    "RollingStats",
]


_MAX = sys.float_info.max
"""Largest finite float; results beyond it saturate here."""
_BIG_INPUT = 1e140
"""|x| below which plain :class:`RollingStats` arithmetic cannot overflow (squares of 2e140 summed
over a window of up to 1e28 values stay finite): scaled units end once the window is below it."""
_SCALE = 2.0**-600
"""Scaled units of RollingStats: 1.8e308 * 2**-600 = 4e127, whose squares fit easily."""
_UNSCALE = 2.0**600


def _sum_scale(period: int) -> float:
    """Return the power of two ``2**-k < 1 / (4 * period)``: a sum of ``period`` scaled differences
    of finite floats cannot overflow, and multiplying by it is exact (no rounding)."""
    return math.ldexp(1.0, -(period.bit_length() + 2))


# Hot paths test finiteness as ``if v - v:``: 0.0 (false) for every finite v, NaN (true) for
# +/-inf and NaN; cheaper than two comparisons against module constants.


def _saturate(value: float) -> float:
    """Return the finite float nearest to an overflowed ``value`` (+/- the largest float)."""
    return math.copysign(_MAX, value)


def _check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` if it is an ``int`` (not ``bool``) ``>= minimum``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class _Indicator:
    """Shared read-only accessors; subclasses store their current value in ``_value``."""

    __slots__ = ("_value",)
    _value: float | None

    @property
    def value(self) -> float | None:
        """Last computed value (``None`` until the indicator is warm)."""
        return self._value

    @property
    def ready(self) -> bool:
        """``True`` once the indicator has seen enough data to produce values."""
        return self._value is not None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} value={self._value!r}>"


class SMA(_Indicator):
    """Simple moving average of the last ``period`` values.

    Parameters
    ----------
    period : int
        Window length in observations (>= 1).

    Raises
    ------
    ValueError
        If ``period`` is not an integer >= 1.

    Notes
    -----
    ``SMA_t = (1/n) * sum(x_{t-n+1} .. x_t)``. Ready after ``period`` values. The output has the
    units of the input.

    Examples
    --------
    >>> sma = SMA(3)
    >>> [sma.update(x) for x in (1.0, 2.0, 3.0, 4.0)]
    [None, None, 2.0, 3.0]
    """

    __slots__ = ("period", "_buf", "_idx", "_count", "_sum", "_scale", "_div")

    def __init__(self, period: int) -> None:
        self.period = _check_int("period", period, 1)
        self._scale = _sum_scale(period)
        self._div = period * self._scale  # exact: sum_scaled / _div == sum / period, bit for bit
        self.reset()

    def reset(self) -> None:
        """Forget every observation."""
        self._buf = [0.0] * self.period  # scaled values
        self._idx = 0
        self._count = 0
        self._sum = 0.0
        self._value = None

    def update(self, value: float) -> float | None:
        """Add ``value`` and return the average of the last ``period`` values (``None`` if fewer)."""
        buf = self._buf
        i = self._idx
        n = self.period
        x = value * self._scale  # scaled so the sum of any finite window cannot overflow
        total = self._sum + (x - buf[i])
        buf[i] = x
        i += 1
        if i == n:
            i = 0
            total = math.fsum(buf)  # exact resync once per window: bounded drift
        self._sum = total
        self._idx = i
        if self._count < n:
            self._count += 1
            if self._count < n:
                return None
        v = total / self._div
        if v - v:  # not finite: rounding drift of a mean within an ulp of the float limit
            v = _saturate(v)
        self._value = v
        return v


class EMA(_Indicator):
    """Exponential moving average seeded with the SMA of the first ``period`` values.

    Parameters
    ----------
    period : int
        Span in observations (>= 1); also the length of the SMA seed.
    alpha : float, optional
        Smoothing factor in (0, 1]; default ``2 / (period + 1)`` (the usual "span" convention).
        Wilder's smoothing is ``alpha = 1 / period``.

    Raises
    ------
    ValueError
        If ``period`` is not an integer >= 1 or ``alpha`` is outside (0, 1].

    Notes
    -----
    ``EMA_{n-1} = mean(x_0 .. x_{n-1})`` and then ``EMA_t = EMA_{t-1} + alpha * (x_t - EMA_{t-1})``.
    Ready after ``period`` values; same units as the input.

    Examples
    --------
    >>> ema = EMA(3)
    >>> [ema.update(x) for x in (1.0, 2.0, 3.0, 5.0)]
    [None, None, 2.0, 3.5]
    """

    __slots__ = ("period", "alpha", "_count", "_sum", "_scale")

    def __init__(self, period: int, alpha: float | None = None) -> None:
        self.period = _check_int("period", period, 1)
        if alpha is None:
            alpha = 2.0 / (period + 1.0)
        elif isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        self._scale = _sum_scale(period)
        self.reset()

    def reset(self) -> None:
        """Forget every observation."""
        self._count = 0
        self._sum = 0.0  # scaled seed sum
        self._value = None

    def update(self, value: float) -> float | None:
        """Add ``value`` and return the new average (``None`` during the ``period``-value seed)."""
        v = self._value
        if v is not None:
            v += self.alpha * (value - v)
            if v - v:  # not finite: value - v overflowed (inputs beyond +/-9e307)
                h = self._value * 0.5  # type: ignore[operator]  # not None here
                v = (h + self.alpha * (value * 0.5 - h)) * 2.0  # in halves, x - v cannot overflow
                if v - v:  # the result within an ulp of the limit rounded past it
                    v = _saturate(v)
            self._value = v
            return v
        self._count += 1
        self._sum += value * self._scale
        if self._count < self.period:
            return None
        v = self._sum / (self.period * self._scale)
        if v - v:
            v = _saturate(v)
        self._value = v
        return v


class RSI(_Indicator):
    """Relative Strength Index with Wilder's smoothing (Wilder 1978).

    Parameters
    ----------
    period : int
        Smoothing length in price changes (>= 1); Wilder used 14.

    Raises
    ------
    ValueError
        If ``period`` is not an integer >= 1.

    Notes
    -----
    From consecutive closes, gains ``U_t = max(c_t - c_{t-1}, 0)`` and losses
    ``D_t = max(c_{t-1} - c_t, 0)``. The first averages are the plain means of the first ``period``
    gains and losses; then ``avg_t = avg_{t-1} + (x_t - avg_{t-1}) / period`` (Wilder's smoothing,
    an EMA with ``alpha = 1/period``). ``RSI = 100 - 100 / (1 + avgU/avgD) = 100 * avgU / (avgU + avgD)``,
    in [0, 100]; 100 when there were only gains, 50 when prices did not move at all.
    Ready after ``period + 1`` closes.

    Examples
    --------
    >>> rsi = RSI(2)
    >>> [rsi.update(x) for x in (1.0, 2.0, 1.0, 2.0)]
    [None, None, 50.0, 75.0]
    """

    __slots__ = ("period", "_prev", "_count", "_gain", "_loss", "_scale")

    def __init__(self, period: int = 14) -> None:
        self.period = _check_int("period", period, 1)
        self._scale = _sum_scale(period)
        self.reset()

    def reset(self) -> None:
        """Forget every observation."""
        self._prev: float | None = None
        self._count = 0
        self._gain = 0.0
        self._loss = 0.0
        self._value = None

    def update(self, value: float) -> float | None:
        """Add the next close and return the RSI in [0, 100] (``None`` until ``period + 1`` closes)."""
        value = value * self._scale  # RSI is scale-free; scaled changes and their sums cannot overflow
        prev = self._prev
        self._prev = value
        if prev is None:
            return None
        d = value - prev
        gain = d if d > 0.0 else 0.0
        loss = -d if d < 0.0 else 0.0
        n = self.period
        if self._count < n:
            self._gain += gain
            self._loss += loss
            self._count += 1
            if self._count < n:
                return None
            g = self._gain = self._gain / n
            l = self._loss = self._loss / n  # noqa: E741
        else:
            g = self._gain = self._gain + (gain - self._gain) / n
            l = self._loss = self._loss + (loss - self._loss) / n  # noqa: E741
        s = g + l
        v = 100.0 * (g / s) if s > 0.0 else 50.0  # g/s <= 1 exactly, so v <= 100
        self._value = v
        return v


class ATR(_Indicator):
    """Average True Range with Wilder's smoothing (Wilder 1978).

    Parameters
    ----------
    period : int
        Smoothing length in bars (>= 1); Wilder used 14.

    Raises
    ------
    ValueError
        If ``period`` is not an integer >= 1.

    Notes
    -----
    ``TR_t = max(h_t, c_{t-1}) - min(l_t, c_{t-1})`` (= max of ``h-l``, ``|h-c_{t-1}|``,
    ``|l-c_{t-1}|``); the first bar has no previous close and uses ``h - l``. The first ATR is the
    mean of the first ``period`` true ranges, then ``ATR_t = ATR_{t-1} + (TR_t - ATR_{t-1}) / period``.
    Ready after ``period`` bars; price units (USD).

    Examples
    --------
    >>> atr = ATR(2)
    >>> [atr.update(h, l, c) for h, l, c in ((2.0, 1.0, 1.5), (3.0, 2.0, 2.5), (2.5, 1.5, 2.0))]
    [None, 1.25, 1.125]
    """

    __slots__ = ("period", "_prev_close", "_count", "_sum", "_avg", "_scale")

    def __init__(self, period: int = 14) -> None:
        self.period = _check_int("period", period, 1)
        self._scale = _sum_scale(period)
        self.reset()

    def reset(self) -> None:
        """Forget every bar."""
        self._prev_close: float | None = None  # scaled, like every sum below
        self._count = 0
        self._sum = 0.0
        self._avg: float | None = None
        self._value = None

    def update(self, high: float, low: float, close: float) -> float | None:
        """Add one bar and return the ATR in price units (``None`` until ``period`` bars)."""
        s = self._scale  # exact power-of-two scaling: no true range or sum of them can overflow
        high *= s
        low *= s
        close *= s
        pc = self._prev_close
        self._prev_close = close
        if pc is None:
            tr = high - low
        else:
            tr = (high if high > pc else pc) - (low if low < pc else pc)
        a = self._avg
        if a is None:
            self._count += 1
            self._sum += tr
            if self._count < self.period:
                return None
            a = self._sum / self.period
        else:
            a += (tr - a) / self.period
        self._avg = a
        v = a / s
        if v > _MAX:  # a range wider than the float limit (only with lows near -1.8e308)
            v = _MAX
        self._value = v
        return v


class RollingStats(_Indicator):
    """Rolling mean, variance, standard deviation and z-score over the last ``period`` values.

    Parameters
    ----------
    period : int
        Window length in observations (>= ``ddof + 1``).
    ddof : int, optional
        Delta degrees of freedom: 1 (default) for the sample standard deviation, 0 for the
        population one.

    Raises
    ------
    ValueError
        If ``ddof`` is not 0 or 1, or ``period`` is not an integer >= ``ddof + 1``.

    Notes
    -----
    Uses Welford's (1962) online update generalised to a sliding window (add the new value and
    remove the oldest in one step: ``mean += (x - y)/n``,
    ``M2 += (x - y) * (x - mean_new + y - mean_old)``), which avoids the catastrophic cancellation
    of the sum-of-squares formula, on data shifted by a recent mean ``K`` (``x - K``) so rounding
    scales with the spread of the data, not with its level. Mean and ``M2`` are recomputed exactly
    (two-pass, ``math.fsum``, which also resets ``K`` to the mean) each time the ring buffer wraps,
    so rounding error never accumulates over more than one window, whatever the stream length.
    A window of identical values has exactly that mean and a variance of exactly 0 (tracked by the
    length of the current run of equal values): z-scores of flat data are 0, not noise divided by
    rounding residue. ``variance = M2 / (n - ddof)``. :meth:`update` returns the mean; ``value``
    is the mean.

    When squares overflow (values beyond ~1e154), the window is recomputed exactly and the same
    arithmetic runs on the data times 2**-600, results scaled back; it returns to plain
    arithmetic, recomputed exactly, once every value in the window is below 1e140. A variance or standard
    deviation beyond the float range saturates at ``sys.float_info.max``, as does a z-score of a
    value far outside the window.

    Examples
    --------
    >>> rs = RollingStats(3)
    >>> [rs.update(x) for x in (1.0, 2.0, 3.0, 4.0)]
    [None, None, 2.0, 3.0]
    >>> rs.std, rs.zscore(4.0)
    (1.0, 1.0)
    """

    __slots__ = (
        "period",
        "ddof",
        "_buf",
        "_idx",
        "_count",
        "_shift",
        "_mean",
        "_m2",
        "_last",
        "_run",
        "_scaled",
        "_scaled_left",
    )

    def __init__(self, period: int, ddof: int = 1) -> None:
        if ddof not in (0, 1) or isinstance(ddof, bool):
            raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
        self.period = _check_int("period", period, ddof + 1)
        self.ddof = ddof
        self.reset()

    def reset(self) -> None:
        """Forget every observation."""
        self._buf = [0.0] * self.period  # raw values, also in scaled mode
        self._idx = 0
        self._count = 0
        self._shift = 0.0  # K: the data are processed as x - K
        self._mean = 0.0  # mean of the shifted window
        self._m2 = 0.0
        self._last = math.nan
        self._run = 0  # length of the current run of identical values
        self._scaled = False  # True: _shift, _mean, _m2 are in units of 2**-600
        self._scaled_left = 0  # updates until every value >= 1e140 has left the window
        self._value = None

    def update(self, value: float) -> float | None:
        """Add ``value`` and return the window mean (``None`` until ``period`` values)."""
        if self._scaled:
            return self._update_scaled(value)
        buf = self._buf
        i = self._idx
        n = self.period
        k = self._shift
        mean = self._mean
        m2 = self._m2
        if self._count == n:
            old = buf[i]
            delta = value - old
            new_mean = mean + delta / n
            m2 += delta * ((value - k) - new_mean + (old - k) - mean)
            mean = new_mean
        else:
            if self._count == 0:
                k = self._shift = value
            c = self._count = self._count + 1
            x = value - k
            delta = x - mean
            mean += delta / c
            m2 += delta * (x - mean)
        buf[i] = value
        i += 1
        if i == n:
            i = 0
            if self._count == n:  # exact two-pass resync once per window: bounded drift
                try:
                    k = self._shift = math.fsum(buf) / n
                except OverflowError:  # the window sums beyond the float range: go scaled below
                    m2 = math.inf
                else:
                    mean = 0.0
                    m2 = sum([(x - k) * (x - k) for x in buf])  # positive terms: no cancellation
        self._idx = i
        if value == self._last:
            self._run += 1
            if self._run >= n:  # constant window: exact mean, zero variance (no rounding residue)
                k = self._shift = value
                mean = 0.0
                m2 = 0.0
        else:
            self._last = value
            self._run = 1
        self._mean = mean
        self._m2 = m2
        if m2 - m2:  # not finite: squares overflowed (inf, or NaN from inf - inf): go scaled
            self._scaled = True
            self._scaled_left = n  # every value now in the window has left after n updates
            self._refit(_SCALE)
            return self._scaled_value()
        if self._count < n:
            return None
        v = self._value = k + mean
        return v

    def _update_scaled(self, value: float) -> float | None:
        """:meth:`update` on the data times 2**-600 (some value in the window is >= 1e140)."""
        n = self.period
        if -_BIG_INPUT < value < _BIG_INPUT:
            self._scaled_left -= 1
        else:
            self._scaled_left = n
        y = value * _SCALE
        buf = self._buf
        i = self._idx
        k = self._shift
        mean = self._mean
        if self._count == n:
            old = buf[i] * _SCALE
            delta = y - old
            new_mean = mean + delta / n
            self._m2 += delta * ((y - k) - new_mean + (old - k) - mean)
            mean = new_mean
        else:  # entered during warm-up (the count is >= 1 then)
            c = self._count = self._count + 1
            x = y - k
            delta = x - mean
            mean += delta / c
            self._m2 += delta * (x - mean)
        buf[i] = value
        i += 1
        if i == n:
            i = 0
        self._idx = i
        self._mean = mean
        if value == self._last:
            self._run += 1
        else:
            self._last = value
            self._run = 1
        if self._scaled_left <= 0:  # the last value >= 1e140 just left: plain arithmetic again
            self._scaled = False
            if self._run >= n:
                self._shift, self._mean, self._m2 = value, 0.0, 0.0
            else:
                self._refit(1.0)
            if self._count < n:
                return None
            v = self._value = self._shift + self._mean
            return v
        if self._run >= n:
            self._shift, self._mean, self._m2 = y, 0.0, 0.0
        elif i == 0 and self._count == n:  # exact resync once per window, as in plain mode
            self._refit(_SCALE)
        return self._scaled_value()

    def _refit(self, scale: float) -> None:
        """Recompute shift, mean and M2 exactly (two-pass) from the window, in units of ``scale``."""
        c = self._count
        xs = self._buf if c == self.period else self._buf[:c]  # warm-up fills slots 0 .. c-1
        if scale != 1.0:
            xs = [x * scale for x in xs]
        k = self._shift = math.fsum(xs) / c
        self._mean = 0.0
        self._m2 = sum([(x - k) * (x - k) for x in xs])

    def _scaled_value(self) -> float | None:
        if self._count < self.period:
            return None
        v = (self._shift + self._mean) * _UNSCALE
        if v - v:
            v = _saturate(v)
        self._value = v
        return v

    @property
    def mean(self) -> float | None:
        """Window mean (``None`` until warm)."""
        return self._value

    @property
    def variance(self) -> float | None:
        """Window variance with ``ddof`` (``None`` until warm); squared input units."""
        if self._value is None:
            return None
        m2 = self._m2
        if m2 <= 0.0:
            return 0.0
        var = m2 / (self.period - self.ddof)
        if self._scaled:
            var = min(var * _UNSCALE * _UNSCALE, _MAX)  # the product may overflow: saturate
        return var

    @property
    def std(self) -> float | None:
        """Window standard deviation with ``ddof`` (``None`` until warm); input units."""
        if self._value is None:
            return None
        m2 = self._m2
        if m2 <= 0.0:
            return 0.0
        sd = math.sqrt(m2 / (self.period - self.ddof))
        if self._scaled:
            sd = min(sd * _UNSCALE, _MAX)
        return sd

    def zscore(self, value: float) -> float | None:
        """Return ``(value - mean) / std`` for the current window.

        Returns ``None`` until warm and ``0.0`` when the window is constant (``std == 0``); a
        z-score beyond the float range saturates at +/- ``sys.float_info.max``.
        """
        mean = self._value
        if mean is None:
            return None
        var = self._m2 / (self.period - self.ddof)
        if var <= 0.0:  # also a denormal M2 whose quotient underflows (no division by zero)
            return 0.0
        if self._scaled:
            z = (value * _SCALE - (self._shift + self._mean)) / math.sqrt(var)
        else:
            z = (value - mean) / math.sqrt(var)
        if z - z:
            z = _saturate(z)
        return z


class MACD(_Indicator):
    """Moving Average Convergence/Divergence histogram (Appel 1979; histogram by Aspray 1986).

    Parameters
    ----------
    fast, slow : int
        Spans of the fast and slow EMAs of the input (1 <= fast < slow); classic 12 and 26.
    signal : int
        Span of the signal-line EMA of the MACD line (>= 1); classic 9.

    Raises
    ------
    ValueError
        If a span is not an integer >= 1 or ``fast >= slow``.

    Notes
    -----
    ``macd = EMA_fast(x) - EMA_slow(x)``, ``signal = EMA_signal(macd)``, ``hist = macd - signal``;
    every EMA uses ``alpha = 2/(span+1)`` and is seeded with the SMA of its first ``span`` inputs
    (see :class:`EMA`); the MACD line starts when the slow EMA is warm. :meth:`update` returns the
    histogram, ready after ``slow + signal - 1`` values; price units. A line or histogram beyond
    the float range (inputs near +/-1.8e308) saturates at +/- ``sys.float_info.max``.
    """

    __slots__ = ("fast", "slow", "signal_period", "_fast", "_slow", "_signal", "_macd")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        _check_int("fast", fast, 1)
        _check_int("slow", slow, 1)
        _check_int("signal", signal, 1)
        if fast >= slow:
            raise ValueError(f"fast must be < slow, got fast={fast!r}, slow={slow!r}")
        self.fast = fast
        self.slow = slow
        self.signal_period = signal
        self._fast = EMA(fast)
        self._slow = EMA(slow)
        self._signal = EMA(signal)
        self.reset()

    def reset(self) -> None:
        """Forget every observation."""
        self._fast.reset()
        self._slow.reset()
        self._signal.reset()
        self._macd: float | None = None
        self._value = None

    def update(self, value: float) -> float | None:
        """Add ``value`` and return the histogram ``macd - signal`` (``None`` until warm)."""
        f = self._fast.update(value)
        s = self._slow.update(value)
        if s is None:
            return None
        m = f - s  # type: ignore[operator]  # fast is warm before slow
        if m - m:  # not finite: EMAs of opposite signs near the float limit
            m = _saturate(m)
        self._macd = m
        sig = self._signal.update(m)
        if sig is None:
            return None
        h = m - sig
        if h - h:
            h = _saturate(h)
        self._value = h
        return h

    @property
    def macd(self) -> float | None:
        """MACD line ``EMA_fast - EMA_slow`` (``None`` until the slow EMA is warm)."""
        return self._macd

    @property
    def signal(self) -> float | None:
        """Signal line, the EMA of the MACD line (``None`` until warm)."""
        return self._signal._value

    @property
    def histogram(self) -> float | None:
        """``macd - signal`` (same as ``value``)."""
        return self._value


class Bollinger(_Indicator):
    """Bollinger Bands %b (Bollinger 2001): where the value sits inside the bands.

    Parameters
    ----------
    period : int
        Window of the middle band (SMA) and of the standard deviation (>= 1); classic 20.
    k : float
        Band half-width in standard deviations (> 0); classic 2.

    Raises
    ------
    ValueError
        If ``period`` is not an integer >= 1 or ``k`` is not a positive finite number.

    Notes
    -----
    ``middle = SMA_n(x)``, ``sigma`` = population standard deviation (ddof=0, as Bollinger uses)
    over the same window, ``upper/lower = middle +/- k*sigma``,
    ``%b = (x - lower) / (upper - lower)``: 0 at the lower band, 0.5 at the middle, 1 at the upper
    band, unbounded outside; 0.5 when the window is constant. Ready after ``period`` values.
    """

    __slots__ = ("period", "k", "_stats")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        _check_int("period", period, 1)
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0.0 < k < math.inf:
            raise ValueError(f"k must be a positive finite number, got {k!r}")
        self.period = period
        self.k = float(k)
        self._stats = RollingStats(period, ddof=0)
        self.reset()

    def reset(self) -> None:
        """Forget every observation."""
        self._stats.reset()
        self._value = None

    def update(self, value: float) -> float | None:
        """Add ``value`` and return its %b against the bands that include it (``None`` until warm)."""
        stats = self._stats
        mean = stats.update(value)
        if mean is None:
            return None
        var = stats._m2 / self.period
        if var > 0.0:  # not a denormal M2 whose quotient underflows (no division by zero)
            if stats._scaled:  # squares overflowed: work in the stats' scaled units
                v = 0.5 + (value * _SCALE - (stats._shift + stats._mean)) / (2.0 * self.k * math.sqrt(var))
            else:
                v = 0.5 + (value - mean) / (2.0 * self.k * math.sqrt(var))
            if v - v:  # not finite: only a rounding-residue variance can get here
                v = _saturate(v)
        else:
            v = 0.5
        self._value = v
        return v

    @property
    def percent_b(self) -> float | None:
        """%b of the last value (same as ``value``)."""
        return self._value

    @property
    def middle(self) -> float | None:
        """Middle band (SMA), ``None`` until warm."""
        return self._stats.mean

    @property
    def upper(self) -> float | None:
        """Upper band ``middle + k*sigma``, ``None`` until warm; saturates at the float limit."""
        m, s = self._stats.mean, self._stats.std
        return None if m is None or s is None else min(m + self.k * s, _MAX)

    @property
    def lower(self) -> float | None:
        """Lower band ``middle - k*sigma``, ``None`` until warm; saturates at the float limit."""
        m, s = self._stats.mean, self._stats.std
        return None if m is None or s is None else max(m - self.k * s, -_MAX)


class EfficiencyRatio(_Indicator):
    """Kaufman efficiency ratio (Kaufman 1995, "Smarter Trading"): net move over path length.

    Parameters
    ----------
    period : int
        Look-back in price changes (>= 1).

    Raises
    ------
    ValueError
        If ``period`` is not an integer >= 1.

    Notes
    -----
    ``ER_t = |x_t - x_{t-n}| / sum_{i=t-n+1..t} |x_i - x_{i-1}|``, in [0, 1]: 1 for a straight
    line, near 0 for noise; 0 when prices did not move at all. Ready after ``period + 1`` values.
    Dimensionless.

    Examples
    --------
    >>> er = EfficiencyRatio(2)
    >>> [er.update(x) for x in (1.0, 2.0, 3.0, 2.0)]
    [None, None, 1.0, 0.0]
    """

    __slots__ = ("period", "_prices", "_diffs", "_pidx", "_didx", "_count", "_sum", "_prev", "_scale")

    def __init__(self, period: int) -> None:
        self.period = _check_int("period", period, 1)
        self._scale = _sum_scale(period)
        self.reset()

    def reset(self) -> None:
        """Forget every observation."""
        self._prices = [0.0] * self.period  # last n scaled prices; slot _pidx holds x_{t-n}
        self._diffs = [0.0] * self.period  # last n absolute scaled changes
        self._pidx = 0
        self._didx = 0
        self._count = 0
        self._sum = 0.0
        self._prev: float | None = None
        self._value = None

    def update(self, value: float) -> float | None:
        """Add ``value`` and return the efficiency ratio in [0, 1] (``None`` until warm)."""
        value = value * self._scale  # ER is scale-free; scaled, the path length cannot overflow
        n = self.period
        prev = self._prev
        self._prev = value
        prices = self._prices
        p = self._pidx
        old = prices[p]
        prices[p] = value
        p += 1
        self._pidx = 0 if p == n else p
        if prev is None:
            self._count = 1
            return None
        d = value - prev
        if d < 0.0:
            d = -d
        diffs = self._diffs
        j = self._didx
        self._sum += d - diffs[j]
        diffs[j] = d
        j += 1
        if j == n:
            j = 0
            self._sum = math.fsum(diffs)  # exact resync once per window
        self._didx = j
        if self._count <= n:
            self._count += 1
            if self._count <= n:
                return None
        direction = value - old
        if direction < 0.0:
            direction = -direction
        path = self._sum
        if path <= 0.0:
            v = 0.0
        else:
            v = direction / path
            if v > 1.0:  # rounding guard
                v = 1.0
        self._value = v
        return v


class _RollingExtreme(_Indicator):
    """Rolling max/min over the last ``period`` values with a monotonic deque (amortised O(1))."""

    __slots__ = ("period", "_deque", "_count")

    def __init__(self, period: int) -> None:
        self.period = _check_int("period", period, 1)
        self.reset()

    def reset(self) -> None:
        """Forget every observation."""
        self._deque: deque[tuple[int, float]] = deque()
        self._count = 0
        self._value = None


class RollingMax(_RollingExtreme):
    """Maximum of the last ``period`` values (monotonic deque, amortised O(1) per update).

    Parameters
    ----------
    period : int
        Window length in observations (>= 1).

    Raises
    ------
    ValueError
        If ``period`` is not an integer >= 1.

    Examples
    --------
    >>> mx = RollingMax(2)
    >>> [mx.update(x) for x in (1.0, 3.0, 2.0, 1.0)]
    [None, 3.0, 3.0, 2.0]
    """

    __slots__ = ()

    def update(self, value: float) -> float | None:
        """Add ``value`` and return the window maximum (``None`` until ``period`` values)."""
        dq = self._deque
        i = self._count
        self._count = i + 1
        while dq and dq[-1][1] <= value:
            dq.pop()
        dq.append((i, value))
        if dq[0][0] <= i - self.period:
            dq.popleft()
        if i + 1 < self.period:
            return None
        v = dq[0][1]
        self._value = v
        return v


class RollingMin(_RollingExtreme):
    """Minimum of the last ``period`` values (monotonic deque, amortised O(1) per update).

    Parameters
    ----------
    period : int
        Window length in observations (>= 1).

    Raises
    ------
    ValueError
        If ``period`` is not an integer >= 1.

    Examples
    --------
    >>> mn = RollingMin(2)
    >>> [mn.update(x) for x in (3.0, 1.0, 2.0, 4.0)]
    [None, 1.0, 1.0, 2.0]
    """

    __slots__ = ()

    def update(self, value: float) -> float | None:
        """Add ``value`` and return the window minimum (``None`` until ``period`` values)."""
        dq = self._deque
        i = self._count
        self._count = i + 1
        while dq and dq[-1][1] >= value:
            dq.pop()
        dq.append((i, value))
        if dq[0][0] <= i - self.period:
            dq.popleft()
        if i + 1 < self.period:
            return None
        v = dq[0][1]
        self._value = v
        return v
