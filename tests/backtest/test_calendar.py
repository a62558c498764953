"""backtest.calendar: which calendar a symbol trades on and when a DAY order submitted at a time
expires (checked against exchange-calendars' own session lookup)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from datetime import datetime, timezone

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.calendar import (ALWAYS_OPEN, CalendarError, calendar_for, check_calendar_name, is_crypto,
                               next_close)
from core.time import NANOS_PER_DAY, NANOS_PER_MINUTE, iso, to_nanos


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return to_nanos(datetime(year, month, day, hour, minute, tzinfo=timezone.utc))


@pytest.mark.parametrize("symbol", ["COINBASE_BTCUSD", "BINANCE_BTCUSDT", "KRAKEN_XBTEUR", "BTCUSD", "btcusd",
                                    "ETHUSDT", "ETH/USD", "SOL-EUR", "DOGEBUSD", "BTC/USDC"])
def test_crypto_symbols(symbol: str) -> None:
    assert is_crypto(symbol)
    assert calendar_for(symbol) == ALWAYS_OPEN


@pytest.mark.parametrize("symbol", ["SPY", "AAPL", "BRK.B", "USD", "XUSD", "LINK", "ETHE", "GBTC", "NYSE_SPY",
                                    "BTC", "MSTR", "USDUSD"])
def test_equity_symbols(symbol: str) -> None:
    assert not is_crypto(symbol)
    assert calendar_for(symbol) == "XNYS"


def test_override_map_wins_over_the_rule() -> None:
    overrides = {"SPY": "24/7", "BTCUSD": "XNYS", "NEWCOINUSD": "24/7"}
    assert [calendar_for(s, overrides) for s in ("SPY", "BTCUSD", "NEWCOINUSD", "AAPL")] == [
        "24/7", "XNYS", "24/7", "XNYS"]


@pytest.mark.parametrize("calendar, ts, close", [
    ("XNYS", utc(2023, 11, 21, 15), "2023-11-21T21:00:00Z"),  # in session
    ("XNYS", utc(2023, 11, 21, 20, 59), "2023-11-21T21:00:00Z"),
    ("XNYS", utc(2023, 11, 21, 21), "2023-11-22T21:00:00Z"),  # at the close: belongs to the next session
    ("XNYS", utc(2023, 11, 23, 15), "2023-11-24T18:00:00Z"),  # Thanksgiving, then an early close
    ("XNYS", utc(2023, 11, 25, 15), "2023-11-27T21:00:00Z"),  # weekend
    ("XNYS", utc(2023, 3, 13, 14), "2023-03-13T20:00:00Z"),  # daylight saving time
    ("XNYS", utc(2001, 9, 11, 14), "2001-09-17T20:00:00Z"),  # the exchange stayed closed until Sept 17
    ("NYSE", utc(2023, 11, 21, 15), "2023-11-21T21:00:00Z"),  # an alias
    ("XLON", utc(2023, 11, 21, 10), "2023-11-21T16:30:00Z"),
    ("24/7", utc(2023, 11, 25, 10), "2023-11-26T00:00:00Z"),
    ("24/7", utc(2023, 11, 26), "2023-11-27T00:00:00Z"),  # at midnight: the next one
    ("24/7", utc(2023, 11, 26) - 1, "2023-11-26T00:00:00Z"),
])
def test_next_close(calendar: str, ts: int, close: str) -> None:
    assert iso(next_close(calendar, ts)) == close


@settings(max_examples=60, deadline=None)
@given(minute=st.integers(utc(1998, 1, 1) // NANOS_PER_MINUTE, utc(2030, 1, 1) // NANOS_PER_MINUTE))
def test_next_close_agrees_with_exchange_calendars(minute: int) -> None:
    import exchange_calendars as xcals

    ts = minute * NANOS_PER_MINUTE
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*values returning")  # exchange-calendars vs pandas 3.1
        cal = xcals.get_calendar("XNYS", start="1990-01-01", end="2100-12-31")
        session = cal.minute_to_session(pd.Timestamp(ts, tz="UTC"), direction="next")
        expected = cal.session_close(session).value
    assert next_close("XNYS", ts) == expected
    assert next_close("24/7", ts) - ts <= NANOS_PER_DAY


def test_times_outside_the_calendar_raise() -> None:
    with pytest.raises(CalendarError, match="no session close known after 1985"):
        next_close("XNYS", utc(1985, 6, 1))
    with pytest.raises(CalendarError, match="no session close known after 2101"):
        next_close("XNYS", utc(2101, 6, 1))
    with pytest.raises(CalendarError, match="unknown trading calendar 'MOON'"):
        next_close("MOON", utc(2023, 1, 3))


def test_check_calendar_name() -> None:
    assert check_calendar_name("24/7") == "24/7"
    assert check_calendar_name("XLON") == "XLON"
    assert check_calendar_name("NYSE") == "NYSE"
    with pytest.raises(CalendarError):
        check_calendar_name("xnys")  # names are exact, as exchange-calendars spells them


def test_exchange_calendars_is_imported_lazily() -> None:
    """The CLI (``tradingd --help``) imports the broker; exchange-calendars takes ~0.4 s to import."""
    code = ("import sys, backtest.broker, backtest.fill_model; "
            "from backtest.fill_model import FillConfig; FillConfig(); "
            "print('exchange_calendars' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
