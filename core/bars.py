"""The gate every bar passes before the engine books it (live feeds and files alike).

A bar is refused, with the reason, when a price is not finite or outside
[:data:`MIN_PRICE`, :data:`MAX_PRICE`] USD, the OHLC range is inconsistent, the volume is negative,
not finite or above :data:`MAX_VOLUME`, or its times are impossible (release before start, a bar
longer than :data:`MAX_BAR_NS`, a time outside [0, :data:`MAX_TS`)). What passes the gate is safe
for every component's arithmetic: products and sums of a few thousand such values stay finite and
normal (no overflow, no denormals).
"""

from __future__ import annotations

from core.events import Bar

MIN_PRICE = 1e-8
"""USD. Below this (denormals, dust) ratios and sizes lose precision; no real quote is this low."""
MAX_PRICE = 1e9
"""USD. Far above any traded price (BRK.A ~ 1e6), far below float overflow."""
MAX_VOLUME = 1e15
"""Shares or units per bar."""
MAX_BAR_NS = 366 * 86_400 * 1_000_000_000
"""Longest accepted bar (release minus start): one year."""
MAX_TS = 7_258_118_400 * 1_000_000_000
"""2200-01-01T00:00:00Z in epoch ns; int64 ns overflow comes in 2262."""


def bar_problem(bar: Bar) -> str | None:
    """Return why ``bar`` must not be booked, or None when it is sound.

    Examples
    --------
    >>> bar_problem(Bar("X", 0, 60, 10.0, 11.0, 9.0, 10.5, 100.0)) is None
    True
    >>> bar_problem(Bar("X", 0, 60, 10.0, 11.0, 9.0, float("inf"), 100.0))
    'close inf is not a finite price in [1e-08, 1000000000.0] USD'
    >>> bar_problem(Bar("X", 60, 0, 10.0, 11.0, 9.0, 10.5, 100.0))
    'released at 0 before its start 60'
    """
    for name, price in (("open", bar.open), ("high", bar.high), ("low", bar.low), ("close", bar.close)):
        # NaN fails both comparisons, so this also refuses NaN
        if not (MIN_PRICE <= price <= MAX_PRICE):
            return f"{name} {price!r} is not a finite price in [{MIN_PRICE}, {MAX_PRICE}] USD"
    if not (bar.low <= bar.open <= bar.high and bar.low <= bar.close <= bar.high):
        return (f"inconsistent OHLC: open {bar.open!r}, high {bar.high!r}, low {bar.low!r}, "
                f"close {bar.close!r} (need low <= open, close <= high)")
    if not (0.0 <= bar.volume <= MAX_VOLUME):
        return f"volume {bar.volume!r} is not in [0, {MAX_VOLUME}]"
    if not (0 <= bar.ts_event < MAX_TS):
        return f"start {bar.ts_event!r} ns is outside 1970..2200"
    if bar.ts_init < bar.ts_event:
        return f"released at {bar.ts_init} before its start {bar.ts_event}"
    if bar.ts_init - bar.ts_event > MAX_BAR_NS:
        return f"release {bar.ts_init} is more than a year after its start {bar.ts_event}"
    return None


def bar_is_sound(bar: Bar) -> bool:
    """Fast path of :func:`bar_problem`: True when the bar passes the gate (no allocation)."""
    o, h, lo, c = bar.open, bar.high, bar.low, bar.close
    return (MIN_PRICE <= lo <= o <= h <= MAX_PRICE and lo <= c <= h and 0.0 <= bar.volume <= MAX_VOLUME
            and 0 <= bar.ts_event <= bar.ts_init < MAX_TS and bar.ts_init - bar.ts_event <= MAX_BAR_NS)


__all__ = ["MAX_BAR_NS", "MAX_PRICE", "MAX_TS", "MAX_VOLUME", "MIN_PRICE", "bar_is_sound", "bar_problem"]
