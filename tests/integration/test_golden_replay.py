"""Golden replay on a small real slice (SPY hourly, 2019 H1, sma_cross 10/30, no costs).

The exact trade list is stored in tests/golden/; independently of that file, every entry and exit
is re-derived here with pandas rolling means: a trade must open at the open of the bar after a
cross-up and close at the open of the bar after the next cross-down.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.fill_model import FillConfig
from backtest.sources import load_bars
from research.frames import trades_frame
from risk.config import RiskConfig
from tests.support import DATA, replay

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "sma_cross_spy_2019h1.csv"


@pytest.fixture(scope="module")
def spy_h1():
    return load_bars(DATA / "SPY.csv.gz", start=datetime(2019, 1, 1, tzinfo=timezone.utc),
                     end=datetime(2019, 7, 1, tzinfo=timezone.utc))


def _run(spy_h1):
    result, _, _ = replay([spy_h1], "sma_cross", params={"fast": 10, "slow": 30},
                          fill=FillConfig(slippage_bps=0, commission_bps=0), risk=RiskConfig())
    frame = trades_frame(result)
    for column in ("entry_time", "exit_time"):
        frame[column] = frame[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return result, frame


def test_trade_list_matches_the_golden_file(spy_h1):
    _, frame = _run(spy_h1)
    golden = pd.read_csv(GOLDEN)
    assert len(golden) == 13
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), golden, check_dtype=False, rtol=1e-12)


def test_trades_follow_independently_computed_crossovers(spy_h1):
    _, frame = _run(spy_h1)
    close = pd.Series(spy_h1.close)
    diff = close.rolling(10).mean() - close.rolling(30).mean()
    prev = diff.shift(1)
    ups = np.flatnonzero((prev <= 0) & (diff > 0))
    downs = np.flatnonzero((prev >= 0) & (diff < 0))
    start_iso = pd.to_datetime(spy_h1.ts_event, utc=True).strftime("%Y-%m-%dT%H:%M:%SZ")
    expected_entries, expected_exits = [], []
    position = False
    for i in sorted(np.concatenate([ups, downs])):
        if i + 1 >= len(close):
            break
        if i in ups and not position:
            expected_entries.append((start_iso[i + 1], spy_h1.open[i + 1]))
            position = True
        elif i in downs and position:
            expected_exits.append((start_iso[i + 1], spy_h1.open[i + 1]))
            position = False
    assert list(zip(frame["entry_time"], frame["entry_price"])) == expected_entries[:len(frame)]
    assert list(zip(frame["exit_time"], frame["exit_price"])) == expected_exits
    # sized at 10% of equity, whole shares, at the decision bar's close
    assert (frame["quantity"] * frame["entry_price"] <= 0.1 * 100_000 * 1.05).all()
