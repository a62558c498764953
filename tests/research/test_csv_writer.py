"""research.output: the bulk CSV writer writes exactly what pandas' ``to_csv`` wrote before it.

Users diff and parse these files (and the determinism tests compare their bytes), so the faster
writer must not change a single byte: float repr, empty cells for NaN/NaT/None, quoting of
commas, quotes and newlines, ISO-8601 UTC times, a frame longer than one chunk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import research.output as output
from research.output import _ISO, _write_csv


def pandas_csv(frame: pd.DataFrame, path: Path) -> bytes:
    frame = frame.copy()
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            frame[name] = frame[name].dt.strftime(_ISO)
    frame.to_csv(path, index=False)
    return path.read_bytes()


floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, -0.0, 1e16, 1e-5, 0.1, 100000.0, 123456789.123]))
texts = st.one_of(st.none(), st.text(alphabet=st.sampled_from('ab,"\n\r x;-1.5'), max_size=6))
stamps = st.one_of(st.none(), st.integers(0, 2**62))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(floats, floats, st.integers(-10**12, 10**12), st.booleans(), texts, stamps),
                     min_size=0, max_size=40))
def test_random_frames_are_written_byte_for_byte_as_pandas_writes_them(rows, tmp_path: Path) -> None:
    frame = pd.DataFrame(rows, columns=["a", "b", "n", "flag", "text", "time"])
    frame["a"] = frame["a"].astype(float)
    frame["b"] = frame["b"].astype(float)
    frame["n"] = frame["n"].astype("int64")
    frame["flag"] = frame["flag"].astype(bool)
    frame["time"] = pd.to_datetime(pd.array(list(frame["time"]), dtype="Int64"), unit="ns", utc=True)
    ours = tmp_path / "ours.csv"
    _write_csv(frame, ours)
    assert ours.read_bytes() == pandas_csv(frame, tmp_path / "pandas.csv")


def test_extra_columns_and_many_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "_CSV_CHUNK_ROWS", 7)  # 100 rows: 15 chunks
    rng = np.random.default_rng(5)
    n = 100
    values = np.where(rng.random(n) < 0.5, 100_000.0, rng.normal(1e5, 10.0, n))  # runs of repeated values
    values[3] = -0.0
    values[4] = 0.0
    values[50] = np.nan
    frame = pd.DataFrame({"time": pd.to_datetime(1_577_836_800_000_000_000 + np.arange(n) * 60_123_456_789,
                                                 unit="ns", utc=True), "equity": values})
    extra = {"benchmark": rng.normal(1e5, 1.0, n)}
    ours = tmp_path / "ours.csv"
    _write_csv(frame, ours, extra)
    expected = pandas_csv(frame.assign(**extra), tmp_path / "pandas.csv")
    assert ours.read_bytes() == expected
    assert b",-0.0," in expected and b"Z,," in expected  # -0.0 and an empty NaN cell were exercised


def test_a_one_column_frame_goes_through_pandas(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": ["", "a", None]})  # the csv module quotes a lone empty field
    ours = tmp_path / "ours.csv"
    _write_csv(frame, ours)
    assert ours.read_bytes() == pandas_csv(frame, tmp_path / "pandas.csv")


def _synthetic_result(n: int, seed: int = 3):
    """A replay result of ``n`` one-minute bars of SPY (no trades): the equity curve and closes a
    long run hands to the writers, with repeated values, a -0.0 cash and NaN gross exposure."""
    from backtest.replay import ReplayResult
    from core.enums import TradingState

    rng = np.random.default_rng(seed)
    ts = 1_577_889_060_000_000_000 + np.arange(n, dtype=np.int64) * 60_000_000_000
    equity = np.where(rng.random(n) < 0.3, 100_000.0, 1e5 * np.exp(np.cumsum(rng.normal(0, 1e-4, n))))
    cash = np.where(rng.random(n) < 0.5, 100_000.0, rng.normal(5e4, 10.0, n))
    gross = np.where(rng.random(n) < 0.5, 0.0, rng.normal(5e4, 10.0, n))
    if n > 5:
        cash[3], gross[4] = -0.0, np.nan
    close = 300 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    return ReplayResult(run_id="synthetic", strategy_id="sma_cross", params={}, symbols=["SPY"], timeframe_ns=60_000_000_000,
                        starting_cash=100_000.0, bars=n, elapsed_s=1.0, equity_ts=ts, cash=cash, equity=equity,
                        gross_exposure=gross, trades=[], orders=[], fills=[], positions={},
                        trading_state=TradingState.ACTIVE, strategy_enabled=True, closes={"SPY": (ts, close)})


@pytest.mark.parametrize("benchmark", ["SPY", "none"])
def test_equity_csv_is_the_equity_frame_as_pandas_writes_it(benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """equity.csv is written from the result's arrays (drawdown a chunk at a time), never as a
    frame: its bytes are those of frames.equity_frame plus the benchmark columns through pandas."""
    from research.benchmark import benchmark_curve
    from research.frames import closes_series, equity_frame

    monkeypatch.setattr(output, "_CSV_CHUNK_ROWS", 7)
    result = _synthetic_result(100)
    frame = equity_frame(result)
    curve = benchmark_curve(benchmark, closes_series(result), result.starting_cash, pd.DatetimeIndex(frame["time"]))
    if curve is not None:
        frame = frame.assign(benchmark=curve.equity.to_numpy(), benchmark_exposure=curve.exposure.to_numpy())
    ours = tmp_path / "equity.csv"
    output._write_equity_csv(ours, result, frame["exposure"].to_numpy(), curve)
    expected = pandas_csv(frame, tmp_path / "pandas.csv")
    assert ours.read_bytes() == expected
    assert b",-0.0," in expected and b",,," in expected  # -0.0 and empty NaN cells were exercised


def _outputs_peak(n: int, tmp_path: Path) -> int:
    """Traced bytes at the peak of write_outputs (report included) for an ``n``-bar result,
    beyond the result itself."""
    import gc
    import tracemalloc

    from research.output import write_outputs

    result = _synthetic_result(n)
    gc.collect()  # garbage of earlier work would be collected at some point inside the measurement
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        write_outputs(result, tmp_path / f"out{n}", {"run_id": "synthetic"}, report=True)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_writing_the_outputs_of_a_long_run_costs_few_bytes_a_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per extra bar, the output folder (metrics, CSVs, benchmark, report) may add only its own
    columns: exposure and the benchmark's equity and exposure (8 bytes each), and one drawdown
    column while its chart is drawn. A copy of a column or a whole-curve temporary more shows.

    What does not grow with the bars is made small so it does not hide what does: the figures'
    HTML (plotly.js and at most MAX_PLOT_POINTS points a curve) is left out, the CSV text is
    formatted in short chunks and the passes over the curve work in short blocks (up to a
    block, a block is the whole curve).
    """
    import research.benchmark
    import research.metrics
    import research.report
    import research.tearsheet

    monkeypatch.setattr(research.report, "render", lambda fig, div_id, include_plotlyjs: "")
    monkeypatch.setattr(output, "_CSV_CHUNK_ROWS", 1024)
    for module in (research.metrics, research.tearsheet, research.benchmark):
        monkeypatch.setattr(module, "BLOCK", 2048)
    small, large = 30_000, 90_000
    _outputs_peak(5_000, tmp_path)  # first-call work (imports, caches) is not per bar
    per_bar = (_outputs_peak(large, tmp_path) - _outputs_peak(small, tmp_path)) / (large - small)
    assert per_bar < 36, f"{per_bar:.1f} bytes a bar"  # 25 to 30; before the block passes, over 100
