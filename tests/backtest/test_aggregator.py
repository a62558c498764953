"""backtest.aggregator: one bar aggregator for live (streaming) and replay (vectorised), checked on
real 1-minute data (tests/data, see its README) against itself and against the provider's own
hourly and daily bars."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.aggregator import (AggregatedSeries, BarAggregator, aggregate_series, aggregation_problem,
                                 sessions_of)
from backtest.calendar import calendar_for
from backtest.data import load_data
from backtest.merge import merge_bars
from backtest.sources import BarSeries, DataError, load_bars
from core.events import Bar
from core.time import NANOS_PER_DAY, NANOS_PER_HOUR, NANOS_PER_MINUTE, iso, parse_timeframe, to_nanos

DATA = Path(__file__).resolve().parents[1] / "data"
SPY_1MIN = DATA / "us_equity_1min" / "SPY.csv.gz"  # 2013-10-04..11, extended hours included
GOOG_1MIN = DATA / "us_equity_1min" / "GOOG.csv.gz"  # 2015-12-23, 24 (half day), 28
BTC_1MIN = DATA / "crypto_1min" / "COINBASE_BTCUSD.csv.gz"  # 2016-10-07..09 UTC, minutes missing
M, H = NANOS_PER_MINUTE, NANOS_PER_HOUR
NY = "America/New_York"
FIELDS = ("ts_event", "ts_init", "open", "high", "low", "close", "volume")
END_OF_TIME = 2**62


def ny(text: str) -> int:
    return int(pd.Timestamp(text, tz=NY).value)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return to_nanos(datetime(year, month, day, hour, minute, tzinfo=timezone.utc))


def stream(series: BarSeries, timeframe: str) -> tuple[list[Bar], BarAggregator]:
    """Feed every bar of ``series`` through a BarAggregator, then let the clock run out."""
    agg = BarAggregator(parse_timeframe(timeframe), source_ns=series.timeframe_ns)
    out: list[Bar] = []
    for bar in merge_bars([series]):
        out.extend(agg.on_bar(bar))
    out.extend(agg.on_time(END_OF_TIME))
    return out, agg


def rows(series: BarSeries) -> list[tuple]:
    return list(zip(*(getattr(series, name).tolist() for name in FIELDS)))


def minute(symbol: str, start: int, price: float = 10.0, volume: float = 1.0, high: float | None = None) -> Bar:
    return Bar(symbol, start, start + M, price, high if high is not None else price + 1, price - 1, price, volume)


# --- streaming == vectorised, on real data ---------------------------------------------------------


@pytest.mark.parametrize("path", [SPY_1MIN, GOOG_1MIN, BTC_1MIN], ids=lambda p: p.name.split(".")[0])
@pytest.mark.parametrize("timeframe", ["5min", "15min", "1h", "1d"])
def test_streaming_equals_vectorised_bar_for_bar(path: Path, timeframe: str) -> None:
    minutes = load_bars(path)
    streamed, _ = stream(minutes, timeframe)
    vectorised = aggregate_series(minutes, parse_timeframe(timeframe), calendar_for(minutes.symbol))
    assert len(streamed) > 0
    assert [tuple(bar[1:]) for bar in streamed] == rows(vectorised)  # exact: same floats, same rounding
    assert {bar.symbol for bar in streamed} == {minutes.symbol}


def test_load_data_aggregates_one_minute_files_with_the_same_aggregator() -> None:
    for path in (SPY_1MIN, BTC_1MIN):
        (hourly,) = load_data([path], timeframe="1h")
        assert isinstance(hourly, AggregatedSeries) and hourly.timeframe_ns == H
        streamed, _ = stream(load_bars(path), "1h")
        assert rows(hourly) == [tuple(bar[1:]) for bar in streamed]
        assert hourly.sha256 == load_bars(path).sha256 and hourly.source == str(path)
    assert rows(load_data([SPY_1MIN], timeframe="1min")[0])[:3] == rows(load_bars(SPY_1MIN))[:3]  # no aggregation


def test_load_data_window_applies_to_aggregated_bar_starts() -> None:
    """A window starting mid-hour must not yield a partial bar labelled before the window."""
    (hourly,) = load_data([SPY_1MIN], timeframe="1h", start=datetime.fromisoformat("2013-10-07T10:30:00-04:00"),
                          end=datetime.fromisoformat("2013-10-07T14:00:00-04:00"))
    full = load_data([SPY_1MIN], timeframe="1h")[0]
    assert [iso(t) for t in hourly.ts_event] == ["2013-10-07T15:00:00Z", "2013-10-07T16:00:00Z", "2013-10-07T17:00:00Z"]
    assert rows(hourly) == [row for row in rows(full) if row[0] in set(hourly.ts_event.tolist())]
    assert hourly.ts_init.tolist() == [t + H for t in hourly.ts_event.tolist()]


def test_load_data_refuses_timeframes_it_cannot_build(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a whole number of 1min input bars|divides a day"):
        load_data([SPY_1MIN], timeframe="90s")
    with pytest.raises(DataError, match="divides a day"):
        load_data([SPY_1MIN], timeframe="2d")
    with pytest.raises(DataError, match="divides a day"):
        load_data([SPY_1MIN], timeframe="7min")  # 1440 / 7 is not whole: buckets would drift off the clock
    with pytest.raises(ValueError, match="naive"):
        load_data([SPY_1MIN], timeframe="1h", start=datetime(2013, 10, 7))


# --- the provider's own hourly and daily bars -----------------------------------------------------


def test_hourly_spy_matches_the_providers_hourly_bars_by_rule() -> None:
    """QuantConnect/Lean's hourly SPY (the source of the bundled hourly data) on the six days of its
    1-minute file. Lean built its hourly bars from trade ticks, with its own filtering of odd
    prints, not from these minute bars: volume and the bucket layout agree exactly, prices agree to
    the cent on most bars and within 3 cents on all, and our range always contains Lean's (it
    drops some prints, e.g. 2013-10-08 15:00 has a 167.51 print Lean's high 166.25 leaves out).
    """
    ours = load_data([SPY_1MIN], timeframe="1h")[0]
    lean = load_bars(DATA / "us_equity_1hour" / "SPY.csv.gz")
    assert ours.ts_event.tolist() == lean.ts_event.tolist()  # 6 sessions x 7 clock hours, 09:00..15:00
    assert len(ours) == 42
    assert pd.Timestamp(int(ours.ts_event[0]), tz="UTC").tz_convert(NY).strftime("%H:%M") == "09:00"
    assert ours.volume.tolist() == lean.volume.tolist()
    assert ours.ts_init.tolist() == (lean.ts_event + H).tolist()  # the 09:00 bar is known at 10:00
    for name in ("open", "close"):
        gap = np.abs(getattr(ours, name) - getattr(lean, name))
        assert gap.max() <= 0.03 + 1e-9 and (gap < 1e-9).mean() >= 0.7, name
    assert (ours.high >= lean.high).all() and (ours.low <= lean.low).all()


def test_daily_spy_is_one_session_labelled_and_released_like_the_providers_daily_bars() -> None:
    ours = load_data([SPY_1MIN], timeframe="1d")[0]
    lean = load_bars(DATA / "us_equity_daily" / "SPY.csv.gz")
    assert ours.ts_event.tolist() == lean.ts_event.tolist()  # session date at 00:00 New York
    assert [pd.Timestamp(int(t), tz="UTC").tz_convert(NY).strftime("%H:%M") for t in ours.ts_init] == ["16:00"] * 6
    for name in ("open", "high", "close", "volume"):
        assert getattr(ours, name).tolist() == getattr(lean, name).tolist(), name
    # 2013-10-08: one 165.36 print that Lean's daily (165.37) filters out, as its hourly bar does
    assert (ours.low <= lean.low).all() and np.abs(ours.low - lean.low).max() <= 0.01 + 1e-9


def test_half_day_close_cuts_the_bucket() -> None:
    """2015-12-24 closed at 13:00 New York: no bucket of that day runs past 13:00, the minutes after
    the close are dropped, and the daily bar is released at 13:00."""
    minutes = load_bars(GOOG_1MIN)
    close = ny("2015-12-24 13:00")
    (four_hour,) = load_data([GOOG_1MIN], timeframe="4h")
    day = [k for k, t in enumerate(four_hour.ts_event.tolist()) if ny("2015-12-24") <= t < ny("2015-12-25")]
    assert [(iso(int(four_hour.ts_event[k])), iso(int(four_hour.ts_init[k]))) for k in day] == [
        ("2015-12-24T13:00:00Z", "2015-12-24T17:00:00Z"),  # 08:00-12:00 New York (trading from 09:30)
        ("2015-12-24T17:00:00Z", "2015-12-24T18:00:00Z"),  # 12:00-16:00 cut at the 13:00 close
    ]
    (hourly,) = load_data([GOOG_1MIN], timeframe="1h")
    assert max(t for t in hourly.ts_init.tolist() if t < ny("2015-12-25")) == close
    (daily,) = load_data([GOOG_1MIN], timeframe="1d")
    assert daily.ts_init.tolist()[1] == close and daily.ts_event.tolist()[1] == ny("2015-12-24")
    in_session = (minutes.ts_event >= ny("2015-12-24 09:30")) & (minutes.ts_event < close)
    assert daily.volume[1] == minutes.volume[in_session].sum()
    assert daily.close[1] == minutes.close[in_session][-1]
    # the provider's daily bar adds the closing-cross print stamped 13:00:00 (one minute bar, O=H=L=C),
    # which starts at the close and so is after the session by our rule
    lean = load_bars(DATA / "us_equity_daily" / "GOOG.csv.gz")
    at_close = minutes.volume[minutes.ts_event == close]
    assert lean.volume[1] == daily.volume[1] + at_close.sum()
    assert (lean.open[1], lean.close[1]) == (daily.open[1], daily.close[1])
    # streaming: the 12:59 minute completes the cut bucket at once; nothing of that day comes later
    agg = BarAggregator(4 * H)
    for bar in merge_bars([minutes]):
        emitted = agg.on_bar(bar)
        if bar.ts_event == ny("2015-12-24 12:59"):
            assert [(b.ts_event, b.ts_init) for b in emitted] == [(ny("2015-12-24 12:00"), close)]
        elif ny("2015-12-24 12:59") < bar.ts_event < ny("2015-12-25"):
            assert emitted == []
    assert agg.dropped["outside_session"] > 0 and agg.dropped["late"] == 0


# --- release times -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [SPY_1MIN, GOOG_1MIN, BTC_1MIN], ids=lambda p: p.name.split(".")[0])
@pytest.mark.parametrize("timeframe", ["5min", "1h", "4h", "1d"])
def test_no_bar_is_released_before_its_end_nor_holds_a_minute_ending_after_it(path: Path, timeframe: str) -> None:
    minutes = load_bars(path)
    agg = BarAggregator(parse_timeframe(timeframe))
    released: list[tuple[int, Bar]] = []  # (time known, bar)
    for bar in merge_bars([minutes]):
        released.extend((bar.ts_init, out) for out in agg.on_bar(bar))  # a minute is known at its end
    assert released
    for known, out in released:
        assert out.ts_event <= out.ts_init <= known
        assert out.ts_init - out.ts_event <= parse_timeframe(timeframe)
        # the bar is exactly the minutes that ended by its release (within its bucket and session)
        inside = (minutes.ts_event >= out.ts_event) & (minutes.ts_event + M <= out.ts_init)
        if calendar_for(minutes.symbol) == "XNYS":
            table = sessions_of("XNYS")
            i = int(np.searchsorted(table.closes, out.ts_init, side="left"))
            inside &= minutes.ts_event >= table.opens[i]
        assert out.volume == pytest.approx(minutes.volume[inside].sum(), rel=1e-12)
        assert out.high == minutes.high[inside].max() and out.low == minutes.low[inside].min()


def test_on_time_releases_a_bucket_once_the_clock_passes_its_end_and_not_before() -> None:
    agg = BarAggregator(5 * M)
    start = utc(2020, 1, 1, 10)
    assert agg.on_bar(minute("BTCUSD", start + M, price=10.0)) == []
    assert agg.on_bar(minute("BTCUSD", start + 2 * M, price=11.0, volume=2.0)) == []  # 10:03, 10:04 missing
    assert agg.next_due() == start + 5 * M
    assert agg.on_time(start + 5 * M - 1) == []
    (bar,) = agg.on_time(start + 5 * M)
    assert bar == Bar("BTCUSD", start, start + 5 * M, 10.0, 12.0, 9.0, 11.0, 3.0)
    assert agg.on_time(start + 10 * M) == [] and agg.next_due() is None
    # a minute of the closed bucket arriving late is dropped, never a second bar for 10:00
    assert agg.on_bar(minute("BTCUSD", start + 4 * M)) == []
    assert agg.dropped["late"] == 1


def test_a_later_bucket_releases_the_open_one_and_empty_buckets_emit_nothing() -> None:
    agg = BarAggregator(5 * M)
    start = utc(2020, 1, 1, 10)
    assert agg.on_bar(minute("BTCUSD", start)) == []
    (bar,) = agg.on_bar(minute("BTCUSD", start + 17 * M, price=20.0))  # 10:05 and 10:10 had no minutes
    assert (bar.ts_event, bar.ts_init, bar.close) == (start, start + 5 * M, 10.0)
    (bar,) = agg.on_bar(minute("BTCUSD", start + 19 * M, price=21.0))  # last minute of 10:15: released at once
    assert (bar.ts_event, bar.ts_init, bar.open, bar.close, bar.volume) == (start + 15 * M, start + 20 * M, 20.0, 21.0, 2.0)


def test_duplicates_and_out_of_order_bars_are_dropped_and_never_emit_twice() -> None:
    agg = BarAggregator(5 * M)
    start = utc(2020, 1, 1, 10)
    out: list[Bar] = []
    for offset, price in [(0, 10.0), (1, 11.0), (1, 99.0), (0, 98.0), (4, 12.0), (4, 97.0), (3, 96.0), (2, 95.0),
                          (5, 13.0)]:
        out.extend(agg.on_bar(minute("BTCUSD", start + offset * M, price=price)))
    out.extend(agg.on_time(END_OF_TIME))
    assert [(b.ts_event, b.open, b.high, b.close, b.volume) for b in out] == [
        (start, 10.0, 13.0, 12.0, 3.0), (start + 5 * M, 13.0, 14.0, 13.0, 1.0)]
    assert (agg.dropped["duplicate"], agg.dropped["out_of_order"]) == (2, 3)


def test_unsound_and_misaligned_input_bars_are_refused_not_hidden() -> None:
    """A NaN high would vanish inside max(); a bar that ends after its bucket would leak the future."""
    agg = BarAggregator(5 * M)
    start = utc(2020, 1, 1, 10)
    agg.on_bar(minute("BTCUSD", start))
    assert agg.on_bar(minute("BTCUSD", start + M, high=float("nan"))) == []
    assert agg.on_bar(minute("BTCUSD", start + 2 * M, price=float("inf"))) == []
    assert agg.on_bar(minute("BTCUSD", start + 4 * M + 30 * 10**9)) == []  # 10:04:30-10:05:30
    (bar,) = agg.on_time(start + 5 * M)
    assert bar.high == 11.0 and bar.volume == 1.0
    assert (agg.dropped["unsound"], agg.dropped["spans_bucket_end"]) == (2, 1)
    one = np.ones(2)
    odd = BarSeries("BTCUSD", M, np.array([start, start + 4 * M + 30 * 10**9]), one, one, one, one, one)
    with pytest.raises(DataError, match="span the end of their 5min bucket"):
        aggregate_series(odd, 5 * M, "24/7")


def test_equity_minutes_outside_the_regular_session_are_dropped() -> None:
    agg = BarAggregator(H)
    assert agg.on_bar(minute("SPY", ny("2013-10-07 09:29"))) == []  # pre-market
    assert agg.on_bar(minute("SPY", ny("2013-10-07 09:30"), price=20.0)) == []
    (bar,) = agg.on_bar(minute("SPY", ny("2013-10-07 16:00")))  # post-market, but it releases the 09:00 bucket
    assert (bar.ts_event, bar.ts_init, bar.open) == (ny("2013-10-07 09:00"), ny("2013-10-07 10:00"), 20.0)
    assert agg.on_bar(minute("SPY", ny("2013-10-05 12:00"))) == []  # out of order (a Saturday, earlier)
    assert agg.on_bar(minute("SPY", ny("2013-10-12 12:00"))) == []  # Saturday
    assert agg.dropped["outside_session"] == 3 and agg.dropped["out_of_order"] == 1
    assert agg.on_bar(minute("SPY", ny("2150-01-02 12:00"))) == []
    assert agg.dropped["outside_calendar"] == 1


# --- crypto: UTC buckets -------------------------------------------------------------------------------


@pytest.mark.parametrize("timeframe", ["15min", "1h", "4h", "1d"])
def test_crypto_buckets_are_utc_aligned_and_equal_an_independent_resample(timeframe: str) -> None:
    minutes = load_bars(BTC_1MIN)
    ours = load_data([BTC_1MIN], timeframe=timeframe)[0]
    step = parse_timeframe(timeframe)
    assert (ours.ts_event % step == 0).all() and (ours.ts_init == ours.ts_event + step).all()
    frame = pd.DataFrame({name: getattr(minutes, name) for name in ("open", "high", "low", "close", "volume")},
                         index=pd.DatetimeIndex(pd.to_datetime(minutes.ts_event, utc=True)))
    buckets = pd.DatetimeIndex(frame.index).floor(pd.Timedelta(step, "ns"))
    expected = frame.groupby(buckets).agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    assert ours.ts_event.tolist() == pd.DatetimeIndex(expected.index).as_unit("ns").asi8.tolist()
    for name in ("open", "high", "low", "close"):
        assert getattr(ours, name).tolist() == expected[name].tolist()
    np.testing.assert_allclose(ours.volume, expected["volume"], rtol=1e-12)
    if timeframe == "1d":
        assert [iso(t) for t in ours.ts_event] == ["2016-10-07T00:00:00Z", "2016-10-08T00:00:00Z", "2016-10-09T00:00:00Z"]


# --- properties and argument checks ------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(offsets=st.lists(st.integers(0, 600), min_size=1, max_size=120),
       timeframe=st.sampled_from([5 * M, 15 * M, H, NANOS_PER_DAY]),
       symbol=st.sampled_from(["SPY", "BTCUSD"]),
       tick=st.integers(0, 40))
def test_any_input_order_never_crashes_nor_emits_a_bucket_twice(offsets: list[int], timeframe: int, symbol: str,
                                                                  tick: int) -> None:
    """Random minutes (gaps, duplicates, out of order; a timer tick part-way) around a US session:
    every bucket is emitted at most once; in order and unique, streaming equals vectorised."""
    base = ny("2013-11-29 08:00")  # a half day (13:00 close) on XNYS, an ordinary day for crypto
    agg = BarAggregator(timeframe, calendar_for)
    out: list[Bar] = []
    for k, offset in enumerate(offsets):
        out.extend(agg.on_bar(minute(symbol, base + offset * M, price=10.0 + offset % 7, volume=1.0 + offset % 3)))
        if k == tick:
            out.extend(agg.on_time(base + offset * M))
    out.extend(agg.on_time(END_OF_TIME))
    starts = [bar.ts_event for bar in out]
    assert len(starts) == len(set(starts)) and starts == sorted(starts)
    assert all(bar.ts_init <= bar.ts_event + timeframe for bar in out)
    unique = sorted(set(offsets))
    ts = np.array([base + o * M for o in unique], dtype=np.int64)
    prices = 10.0 + np.array([o % 7 for o in unique], dtype=float)
    series = BarSeries(symbol, M, ts, prices, prices + 1, prices - 1, prices, 1.0 + np.array([o % 3 for o in unique]))
    clean, _ = stream(series, {5 * M: "5min", 15 * M: "15min", H: "1h", NANOS_PER_DAY: "1d"}[timeframe])
    assert [tuple(b[1:]) for b in clean] == rows(aggregate_series(series, timeframe, calendar_for(symbol)))


def test_timeframe_checks() -> None:
    assert aggregation_problem(parse_timeframe("4h"), M) is None
    assert aggregation_problem(NANOS_PER_DAY, H) is None
    with pytest.raises(ValueError, match="divides a day"):
        BarAggregator(parse_timeframe("7min"))
    with pytest.raises(ValueError, match="not a whole number"):
        BarAggregator(parse_timeframe("5min"), source_ns=2 * M)
    with pytest.raises(ValueError, match="release must"):
        one = np.ones(1)
        AggregatedSeries("X", H, np.array([0]), one, one, one, one, one, release=np.array([2 * H]))
