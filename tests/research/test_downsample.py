"""research.reports.plotting.downsample: min/max decimation keeps exactly the points it always kept.

The decimation now walks the buckets instead of sorting the whole curve (a 10M-point curve
sorted by value took seconds and a large temporary); ``reference`` below is the sorting version,
and the kept points (first, last, each bucket's first minimum and last maximum) must not change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from research.reports.plotting import downsample


def reference(series: pd.Series, max_points: int) -> pd.Series:
    clean = series.dropna()
    n = len(clean)
    if n <= max_points:
        return clean
    buckets = (max_points - 2) // 2
    values = clean.to_numpy(dtype=float)
    bucket = (np.arange(n) * buckets) // n
    order = np.lexsort((values, bucket))
    firsts = np.searchsorted(bucket, np.arange(buckets), side="left")
    lasts = np.searchsorted(bucket, np.arange(buckets), side="right") - 1
    return clean.iloc[np.unique(np.concatenate(([0, n - 1], order[firsts], order[lasts])))]


values = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, -0.0, 1.0, np.nan]))


@settings(max_examples=200, deadline=None)
@given(data=st.lists(values, min_size=0, max_size=400), max_points=st.integers(4, 60))
def test_keeps_the_points_the_sorting_decimation_kept(data: list[float], max_points: int) -> None:
    series = pd.Series(data, index=pd.date_range("2024-01-01", periods=len(data), freq="min", tz="UTC"),
                       dtype=float)
    got, want = downsample(series, max_points), reference(series, max_points)
    assert got.index.equals(want.index)
    assert np.array_equal(got.to_numpy(), want.to_numpy(), equal_nan=True)
    assert (np.signbit(got.to_numpy()) == np.signbit(want.to_numpy())).all()


def test_a_long_curve_keeps_its_extremes() -> None:
    rng = np.random.default_rng(2)
    series = pd.Series(np.cumsum(rng.normal(size=200_000)))
    series.iloc[123_456] = 1e9  # a spike and a trough must survive decimation
    series.iloc[7] = -1e9
    small = downsample(series, 500)
    assert len(small) <= 500 and small.max() == 1e9 and small.min() == -1e9
    assert small.index[0] == 0 and small.index[-1] == len(series) - 1
