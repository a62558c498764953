"""backtest.merge: order by bar end, stable ties by input order, plain Python fields, bounded chunks."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from backtest.merge import count_bars, merge_bars
from backtest.sources import BarSeries, load_many
from core.events import Bar
from core.time import NANOS_PER_HOUR, NANOS_PER_MINUTE

H = NANOS_PER_HOUR
DATA = Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted"


def series(symbol: str, starts: list[int], timeframe: int = H, base: float = 100.0) -> BarSeries:
    n = len(starts)
    price = base + np.arange(n, dtype=float)
    return BarSeries(symbol, timeframe, np.array(starts, dtype=np.int64), price, price + 1, price - 1, price,
                     np.full(n, 10.0))


def keys(bars: list[Bar]) -> list[tuple[str, int]]:
    return [(bar.symbol, bar.ts_init) for bar in bars]


def test_interleaved_timestamps_come_out_in_time_order() -> None:
    a = series("A", [0, 2 * H, 4 * H])
    b = series("B", [1 * H, 3 * H])
    assert keys(list(merge_bars([a, b]))) == [("A", H), ("B", 2 * H), ("A", 3 * H), ("B", 4 * H), ("A", 5 * H)]


def test_ties_are_broken_by_symbol_whatever_the_input_order() -> None:
    """B5: the order of the files on the command line must not change the replay."""
    a, b, c = series("A", [0, H]), series("B", [0, H]), series("C", [H])
    expected = [("A", H), ("B", H), ("A", 2 * H), ("B", 2 * H), ("C", 2 * H)]
    assert keys(list(merge_bars([a, b, c]))) == expected
    assert keys(list(merge_bars([c, b, a]))) == expected


def test_order_is_by_bar_end_not_start() -> None:
    hourly = series("H", [0], timeframe=H)  # 00:00-01:00, known at 01:00
    half = series("M", [15 * NANOS_PER_MINUTE, 30 * NANOS_PER_MINUTE], timeframe=30 * NANOS_PER_MINUTE)
    merged = list(merge_bars([hourly, half]))
    # M 00:15-00:45 ends first; H and M 00:30-01:00 both end at 01:00: the symbol decides
    assert keys(merged) == [("M", 45 * NANOS_PER_MINUTE), ("H", H), ("M", H)]
    assert keys(list(merge_bars([half, hourly]))) == keys(merged)


def test_bar_fields_and_ts_init_is_start_plus_timeframe() -> None:
    bars = list(merge_bars([series("A", [0, 5 * H], base=10.0)]))
    assert bars[1] == Bar("A", 5 * H, 6 * H, 11.0, 12.0, 10.0, 11.0, 10.0)
    for bar in bars:
        assert type(bar) is Bar
        assert type(bar.symbol) is str
        assert type(bar.ts_event) is int and type(bar.ts_init) is int
        assert all(type(value) is float for value in bar[3:])
        assert bar.ts_init == bar.ts_event + H


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 65536])
def test_any_chunk_size_gives_the_reference_order(chunk_size: int) -> None:
    rng = np.random.default_rng(7)
    inputs = []
    for k in range(4):  # sparse random hours with many ties across symbols, one 30-minute series
        starts = np.sort(rng.choice(60, size=int(rng.integers(0, 40)), replace=False)) * H
        inputs.append(series(f"S{k}", starts.tolist(), timeframe=H if k != 2 else 30 * NANOS_PER_MINUTE, base=k))
    reference = sorted(
        ((int(ts) + one.timeframe_ns, position, row) for position, one in enumerate(inputs)
         for row, ts in enumerate(one.ts_event)),
    )
    expected = [(inputs[position].symbol, ts_init) for ts_init, position, _ in reference]
    merged = list(merge_bars(inputs, chunk_size=chunk_size))
    assert keys(merged) == expected
    assert len(merged) == count_bars(inputs)


def test_bundled_symbols_merge_completely_and_in_order() -> None:
    loaded = load_many([DATA / f"{symbol}.csv.gz" for symbol in ("SPY", "AAPL", "BAC")],
                       end=datetime(1999, 1, 1, tzinfo=timezone.utc))
    merged = list(merge_bars(loaded, chunk_size=1000))
    assert len(merged) == count_bars(loaded) == 1760 + 1760 + 444
    ts_init = [bar.ts_init for bar in merged]
    assert ts_init == sorted(ts_init)
    for one in loaded:  # each symbol's bars come out unchanged and in their own order
        mine = [bar for bar in merged if bar.symbol == one.symbol]
        assert [bar.ts_event for bar in mine] == one.ts_event.tolist()
        assert [bar.close for bar in mine] == one.close.tolist()
    # at each shared instant the input order (SPY, AAPL, BAC) decides
    first_bac = next(i for i, bar in enumerate(merged) if bar.symbol == "BAC")
    assert [bar.symbol for bar in merged[first_bac - 2:first_bac + 1]] == ["SPY", "AAPL", "BAC"]


def test_empty_inputs() -> None:
    assert list(merge_bars([])) == []
    assert count_bars([]) == 0
    empty = series("E", [])
    assert keys(list(merge_bars([empty, series("A", [0]), empty]))) == [("A", H)]


def test_bad_input_fails_at_call_time() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        merge_bars([series("A", [0])], chunk_size=0)
    with pytest.raises(ValueError, match="strictly increasing"):
        merge_bars([series("A", [H, 0])])
