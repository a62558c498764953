"""Stress scenarios injected into real bars: every scenario keeps the bars valid OHLC, leaves the bars
before its window exactly as they were, keeps the returns after it, and does what it says inside."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.aggregator import AggregatedSeries
from backtest.data import load_data
from backtest.sources import BarSeries
from research.stress import STRESS_SCENARIOS, StressError, StressScenario, inject, place_window

DATA = Path(__file__).resolve().parents[2] / "data"
PRICES = ("open", "high", "low", "close")
DAY = 86_400_000_000_000


@pytest.fixture(scope="module")
def real_series() -> dict[str, BarSeries]:
    """SPY hourly 2018-2019 (plain bars) and BTC-USD aggregated to 4h bars (release times of their own)."""
    start, end = datetime(2018, 1, 1, tzinfo=timezone.utc), datetime(2020, 1, 1, tzinfo=timezone.utc)
    spy = load_data([DATA / "us_equity_1hour_adjusted" / "SPY.csv.gz"], timeframe="1h", start=start, end=end)[0]
    btc = load_data([DATA / "crypto_1hour" / "COINBASE_BTCUSD.csv.gz"], timeframe="4h", start=start, end=end)[0]
    assert isinstance(btc, AggregatedSeries) and not isinstance(spy, AggregatedSeries)
    return {"SPY": spy, "BTC": btc}


def _valid(s: BarSeries) -> None:
    o, h, low, c, v = s.open, s.high, s.low, s.close, s.volume
    assert np.isfinite(np.stack([o, h, low, c])).all()
    assert (low > 0).all()
    assert (low <= np.minimum(o, c)).all() and (np.maximum(o, c) <= h).all()
    assert (v >= 0).all()


@pytest.mark.parametrize("scenario", STRESS_SCENARIOS, ids=lambda s: s.name)
@pytest.mark.parametrize("symbol", ["SPY", "BTC"])
def test_injection_keeps_bars_valid_and_changes_only_its_window(real_series, scenario: StressScenario,
                                                                symbol: str) -> None:
    bars = real_series[symbol]
    start, end, _, _ = place_window([bars], scenario)
    out = inject(bars, scenario, start, end)
    _valid(out)
    assert type(out) is type(bars) and out.symbol == bars.symbol and out.timeframe_ns == bars.timeframe_ns
    assert np.array_equal(out.ts_event, bars.ts_event) and np.array_equal(out.ts_init, bars.ts_init)
    assert np.array_equal(out.volume, bars.volume)
    i0, i1 = np.searchsorted(bars.ts_event, [start, end])
    assert 0 < i0 < i1 < len(bars)  # placed inside the data, with bars on both sides
    for name in PRICES:  # before the window: the very same values
        assert getattr(out, name)[:i0].tobytes() == getattr(bars, name)[:i0].tobytes()
    inside = np.stack([getattr(out, n)[i0:i1] for n in PRICES])
    assert not np.array_equal(inside, np.stack([getattr(bars, n)[i0:i1] for n in PRICES]))
    # after it: one constant level for every price, so every bar-to-bar return (and the step out of
    # the window) is the original's
    level = np.concatenate([getattr(out, n)[i1:] / getattr(bars, n)[i1:] for n in PRICES])
    np.testing.assert_allclose(level, level[0], rtol=1e-12)
    np.testing.assert_allclose(out.open[i1:] / out.close[i1 - 1:-1], bars.open[i1:] / bars.close[i1 - 1:-1],
                               rtol=1e-12)
    np.testing.assert_allclose(np.diff(np.log(out.close[i1 - 1:])), np.diff(np.log(bars.close[i1 - 1:])), atol=1e-12)


def test_each_scenario_does_what_it_says(real_series) -> None:
    bars = real_series["SPY"]
    by_name = {s.name: s for s in STRESS_SCENARIOS}
    for name, depth in (("crash_month", 0.20), ("extended_drawdown", 0.35)):
        start, end, _, _ = place_window([bars], by_name[name])
        out = inject(bars, by_name[name], start, end)
        i0, i1 = np.searchsorted(bars.ts_event, [start, end])
        ratio = out.close[i0:i1] / bars.close[i0:i1]
        assert np.all(np.diff(ratio) < 0)  # progressively lower
        assert ratio[-1] == pytest.approx(1 - depth) and out.close[-1] / bars.close[-1] == pytest.approx(1 - depth)
        days = pd.Timestamp(end, unit="ns") - pd.Timestamp(start, unit="ns")
        assert (days.days > 150) if name == "extended_drawdown" else (28 <= days.days <= 31)

    crash = by_name["flash_crash"]
    start, end, _, _ = place_window([bars], crash)
    out = inject(bars, crash, start, end)
    i0, i1 = np.searchsorted(bars.ts_event, [start, end])
    assert i1 - i0 >= 3 and end - start == 86_400_000_000_000  # one trading day of hourly bars
    plunge = out.low[i0:i1] / np.r_[bars.close[i0 - 1], out.close[i0:i1 - 1]]
    assert plunge.min() == pytest.approx(0.90)  # a -10% intrabar low against the bar before
    assert out.close[i1 - 1] == bars.close[i1 - 1]  # recovered by the day's close

    calm = by_name["low_volatility"]
    start, end, _, _ = place_window([bars], calm)
    out = inject(bars, calm, start, end)
    i0, i1 = np.searchsorted(bars.ts_event, [start, end])
    np.testing.assert_allclose(np.diff(np.log(out.close[i0 - 1:i1])), 0.25 * np.diff(np.log(bars.close[i0 - 1:i1])),
                               atol=1e-12)
    assert np.all((out.high - out.low)[i0:i1] <= (bars.high - bars.low)[i0:i1] * 1.5)


def test_windows_go_where_asked_and_fit_the_data(real_series) -> None:
    bars = real_series["SPY"]
    month = STRESS_SCENARIOS[0]
    first, last = int(bars.ts_event[0]), int(bars.ts_event[-1])
    start, end, shortened, moved = place_window([bars], month)  # default: centred on the middle of the data
    assert abs((start + end) // 2 - (first + last) // 2) < 3 * DAY and not shortened and not moved
    at = int(pd.Timestamp("2018-06-06T22:00:00Z").value)  # after that day's last bar
    start, end, _, _ = place_window([bars], month, at)
    assert pd.Timestamp(start, unit="ns", tz="UTC") == pd.Timestamp("2018-06-07T00:00:00Z")  # next bar's day
    assert pd.Timestamp(end, unit="ns", tz="UTC") == pd.Timestamp("2018-07-07T00:00:00Z")  # a calendar month
    with pytest.raises(StressError, match="after the last bar"):
        place_window([bars], month, int(pd.Timestamp("2021-01-01T00:00:00Z").value))
    # data shorter than twice the window: half of the data, centred, still inside it, and said so
    two_months = bars.ts_event < int(pd.Timestamp("2018-03-01T00:00:00Z").value)
    short = BarSeries("SPY", bars.timeframe_ns, *(getattr(bars, n)[two_months] for n in ("ts_event", *PRICES, "volume")))
    start, end, shortened, _ = place_window([short], STRESS_SCENARIOS[2])
    assert first < start < end < int(short.ts_event[-1]) and shortened and start % DAY == end % DAY == 0
    _valid(inject(short, STRESS_SCENARIOS[2], start, end))


def test_a_late_window_moves_back_whole_days_and_keeps_its_length(real_series) -> None:
    """Data from February (a 28-day month) to December 2019: a month asked for on 2019-12-20 moves
    back to end at the midnight after the last bar, starts on a midnight, and still lasts the
    31 days of the month it covers (not February's 28): moved, not shortened."""
    spy = real_series["SPY"]
    keep = spy.ts_event >= int(pd.Timestamp("2018-02-01T00:00:00Z").value)
    bars = BarSeries("SPY", spy.timeframe_ns, *(getattr(spy, n)[keep] for n in ("ts_event", *PRICES, "volume")))
    last = int(bars.ts_event[-1])
    for scenario in (s for s in STRESS_SCENARIOS if s.months):  # the one-day flash crash fits where asked
        start, end, shortened, moved = place_window([bars], scenario, int(pd.Timestamp("2019-12-20T00:00:00Z").value))
        assert start % DAY == 0 and end % DAY == 0, scenario.name  # whole UTC days
        assert last < end <= last + DAY and moved and not shortened, scenario.name  # the last bar is in the window
        assert end - start >= scenario.end_of(start) - start, scenario.name  # its full calendar length
    start, end, _, _ = place_window([bars], STRESS_SCENARIOS[0], int(pd.Timestamp("2019-12-20T00:00:00Z").value))
    assert (pd.Timestamp(start, unit="ns", tz="UTC"), pd.Timestamp(end, unit="ns", tz="UTC")) == (
        pd.Timestamp("2019-12-01T00:00:00Z"), pd.Timestamp("2020-01-01T00:00:00Z"))
