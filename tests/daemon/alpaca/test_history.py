"""History download planning (`daemon/adapters/alpaca/history.py`) and the data-quality checks
(`backtest/data_quality.py`), pure. Downloads from the local fake Alpaca server are in
test_data_cli.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backtest.data_quality import check_bars, session_minutes
from core.time import NANOS_PER_MINUTE, iso
from daemon.adapters.alpaca.history import FetchError, FetchRequest, file_symbol, parse_moment, parse_timeframe, plan_chunks

NY = "America/New_York"
M = NANOS_PER_MINUTE


def _at(text: str) -> int:
    return parse_moment(text, "UTC", "test")


# --- timeframes, moments, symbols ------------------------------------------------------------------


@pytest.mark.parametrize("text, alpaca, seconds", [("1Min", "1Min", 60), ("5min", "5Min", 300), ("15m", "15Min", 900),
                                                   ("1Hour", "1Hour", 3600), ("1h", "1Hour", 3600),
                                                   ("1Day", "1Day", 86400), ("1d", "1Day", 86400)])
def test_timeframes_in_alpaca_and_tradingd_spelling_map_to_the_api_name(text, alpaca, seconds):
    frame = parse_timeframe(text)
    assert (frame.text, frame.ns // 10**9) == (alpaca, seconds)


@pytest.mark.parametrize("text", ["1Week", "90Min", "0Min", "24Hour", "2Day", "minute", ""])
def test_an_unknown_timeframe_is_refused_naming_the_option(text):
    with pytest.raises(FetchError, match="--timeframe"):
        parse_timeframe(text)


def test_a_date_means_midnight_in_the_exchange_time_zone_and_a_naive_time_is_refused():
    assert iso(parse_moment("2024-07-01", NY, "--start")) == "2024-07-01T04:00:00Z"  # EDT
    assert iso(parse_moment("2024-01-02", NY, "--start")) == "2024-01-02T05:00:00Z"  # EST
    assert iso(parse_moment("2024-01-02", "UTC", "--start")) == "2024-01-02T00:00:00Z"
    with pytest.raises(FetchError, match="--end '2024-01-02T10:00:00': a time needs a UTC offset"):
        parse_moment("2024-01-02T10:00:00", NY, "--end")
    with pytest.raises(FetchError, match="--start 'yesterday'"):
        parse_moment("yesterday", NY, "--start")


def test_symbols_become_file_names_that_load_bars_reads_back_as_one_symbol():
    assert [file_symbol(s) for s in ("SPY", "BTC/USD", "BRK.B")] == ["SPY", "BTCUSD", "BRK-B"]
    with pytest.raises(FetchError, match="'BTC/USD' and 'BTCUSD' would both be written to BTCUSD.csv"):
        FetchRequest(("BTC/USD", "BTCUSD"), parse_timeframe("1Min"), 0, M)
    with pytest.raises(FetchError, match="symbol 'S P Y'"):
        FetchRequest(("S P Y",), parse_timeframe("1Min"), 0, M)


def test_start_not_before_end_is_refused():
    with pytest.raises(FetchError, match="--start 2024-01-02T00:00:00Z is not before --end 2024-01-02T00:00:00Z"):
        FetchRequest(("SPY",), parse_timeframe("1Min"), _at("2024-01-02"), _at("2024-01-02"))


# --- chunk plans -----------------------------------------------------------------------------------


def test_monthly_chunks_cut_at_new_york_midnight_across_dst_and_cover_the_window_once():
    start, end = parse_moment("2024-02-15", NY, ""), parse_moment("2024-04-10", NY, "")
    chunks = plan_chunks(["SPY", "QQQ"], start, end, period="month", tz=NY)
    spy = [(iso(c.start_ns), iso(c.end_ns)) for c in chunks if c.symbol == "SPY"]
    assert spy == [("2024-02-15T05:00:00Z", "2024-03-01T05:00:00Z"),
                   ("2024-03-01T05:00:00Z", "2024-04-01T04:00:00Z"),  # DST began 2024-03-10
                   ("2024-04-01T04:00:00Z", "2024-04-10T04:00:00Z")]
    assert [c.symbol for c in chunks] == ["SPY"] * 3 + ["QQQ"] * 3


def test_weekly_and_daily_chunks_start_on_mondays_and_midnights():
    start, end = _at("2024-01-03T12:00:00Z"), _at("2024-01-17T00:00:00Z")  # a Wednesday noon
    weeks = plan_chunks(["BTC/USD"], start, end, period="week", tz="UTC")
    assert [iso(c.start_ns) for c in weeks] == ["2024-01-03T12:00:00Z", "2024-01-08T00:00:00Z", "2024-01-15T00:00:00Z"]
    days = plan_chunks(["BTC/USD"], start, _at("2024-01-05T00:00:00Z"), period="day", tz="UTC")
    assert [(iso(c.start_ns), iso(c.end_ns)) for c in days] == [
        ("2024-01-03T12:00:00Z", "2024-01-04T00:00:00Z"), ("2024-01-04T00:00:00Z", "2024-01-05T00:00:00Z")]


def test_a_window_inside_one_period_is_one_chunk():
    assert len(plan_chunks(["SPY"], _at("2024-01-03"), _at("2024-01-04"), period="month", tz=NY)) == 1


# --- quality checks ---------------------------------------------------------------------------------


def _session_minutes(day: str, open_utc: str, close_utc: str) -> np.ndarray:
    return np.arange(_at(f"{day}T{open_utc}:00Z"), _at(f"{day}T{close_utc}:00Z"), M, dtype=np.int64)


def test_quality_of_minute_bars_with_a_known_gap_duplicate_violation_and_an_empty_session():
    minutes = _session_minutes("2024-01-02", "14:30", "21:00")  # a full session: 390 minutes
    assert len(minutes) == 390
    gap = minutes[100:103]  # 3 missing minutes
    ts = np.concatenate([[_at("2024-01-02T13:00:00Z")],  # pre-market: outside the session, not a gap
                         np.setdiff1d(minutes, gap), [minutes[200]]])  # one duplicate
    n = len(ts)
    o, c = np.full(n, 100.0), np.full(n, 100.5)
    h, lo = np.full(n, 101.0), np.full(n, 99.0)
    lo[5], h[6], c[7] = 100.2, 100.4, -1.0  # low above open, high below close, a negative price
    window = (parse_moment("2024-01-02", NY, ""), parse_moment("2024-01-04", NY, ""))  # Jan 3 has no bar
    report = check_bars("SPY", ts, o, h, lo, c, timeframe_ns=M, calendar="XNYS", start_ns=window[0], end_ns=window[1])
    assert (report.bars, report.duplicates) == (1 + 387 + 1, 1)
    # the negative close also puts the low above min(open, close): 3 rows, 4 rule breaks
    assert (report.low_above_open_close, report.high_below_open_close, report.non_positive_price) == (2, 1, 1)
    assert report.ohlc_violations == 3
    gaps = report.gaps
    assert gaps is not None and gaps.checked
    assert (gaps.sessions, gaps.expected, gaps.present) == (2, 780, 387)
    assert gaps.missing == 3 + 390
    assert gaps.missing_by_day == {"2024-01-02": 3, "2024-01-03": 390}
    assert gaps.days_without_bars == ["2024-01-03"]
    assert gaps.outside_session == 1
    assert gaps.largest[0] == {"from": "2024-01-03T14:30:00Z", "to": "2024-01-03T20:59:00Z", "missing": 390}
    assert gaps.largest[1] == {"from": iso(int(gap[0])), "to": iso(int(gap[-1])), "missing": 3}
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["ohlc_violations"]["rows"] == 3 and payload["gaps"]["missing"] == 393


def test_an_early_close_expects_only_the_minutes_of_the_short_session():
    minutes = _session_minutes("2024-11-29", "14:30", "18:00")  # Black Friday closes 13:00 New York
    p = np.full(len(minutes), 10.0)
    report = check_bars("SPY", minutes, p, p, p, p, timeframe_ns=M, calendar="XNYS",
                        start_ns=parse_moment("2024-11-29", NY, ""), end_ns=parse_moment("2024-11-30", NY, ""))
    assert report.gaps is not None
    assert (report.gaps.expected, report.gaps.missing, report.gaps.outside_session) == (210, 0, 0)


def test_hour_bars_expect_the_clock_hours_that_overlap_the_session():
    hours = np.arange(_at("2024-01-02T14:00:00Z"), _at("2024-01-02T21:00:00Z"), 60 * M)  # 09:00..15:00 New York
    p = np.full(len(hours), 10.0)
    report = check_bars("SPY", hours[1:], p[1:], p[1:], p[1:], p[1:], timeframe_ns=60 * M, calendar="XNYS")
    assert report.gaps is not None
    assert (report.gaps.expected, report.gaps.missing) == (6, 0)  # window = first..last bar: 10:00..15:00
    full = check_bars("SPY", hours[1:], p[1:], p[1:], p[1:], p[1:], timeframe_ns=60 * M, calendar="XNYS",
                      start_ns=parse_moment("2024-01-02", NY, ""), end_ns=parse_moment("2024-01-03", NY, ""))
    assert full.gaps is not None
    assert (full.gaps.expected, full.gaps.missing, full.gaps.missing_by_day) == (7, 1, {"2024-01-02": 1})


def test_crypto_gaps_count_every_missing_minute_of_the_window_24_7():
    ts = np.array([0, 1, 2, 10, 11], dtype=np.int64) * M + _at("2024-01-06T00:00:00Z")  # a Saturday
    p = np.full(len(ts), 40_000.0)
    report = check_bars("BTC/USD", ts, p, p, p, p, timeframe_ns=M, calendar="24/7",
                        start_ns=_at("2024-01-06T00:00:00Z"), end_ns=_at("2024-01-06T00:15:00Z"))
    assert report.gaps is not None
    assert (report.gaps.expected, report.gaps.missing) == (15, 10)
    assert [g["missing"] for g in report.gaps.largest] == [7, 3]  # 00:03..00:09 and 00:12..00:14


def test_daily_bars_and_odd_timeframes_skip_the_gap_check():
    p = np.full(2, 10.0)
    ts = np.array([0, 1], dtype=np.int64) * 86_400 * 10**9
    assert check_bars("SPY", ts, p, p, p, p, timeframe_ns=86_400 * 10**9, calendar="XNYS").gaps is None
    seven = check_bars("SPY", ts, p, p, p, p, timeframe_ns=7 * M, calendar="XNYS").gaps
    assert seven is not None and not seven.checked


def test_session_minutes_count_only_regular_hours_and_everything_24_7():
    start, end = _at("2024-01-02T14:00:00Z"), _at("2024-01-03T15:00:00Z")
    assert session_minutes("XNYS", start, end) == 390 + 30
    assert session_minutes("XNYS", _at("2024-01-06T00:00:00Z"), _at("2024-01-08T00:00:00Z")) == 0  # a weekend
    assert session_minutes("24/7", start, end) == 25 * 60
