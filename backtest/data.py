"""Load a run's bar files once, with the checks every consumer (replay, research, live warm-up)
wants, aggregate them to the run's timeframe when they are shorter, and fingerprint them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from backtest.aggregator import AggregatedSeries, aggregate_series, aggregation_problem
from backtest.calendar import calendar_for
from backtest.sources import BarSeries, DataError, load_many
from core.time import parse_timeframe, to_nanos


def load_data(paths: Iterable[str | Path], *, timeframe: str | None = None, start: datetime | None = None,
              end: datetime | None = None, calendars: Mapping[str, str] | None = None) -> list[BarSeries]:
    """Load and validate every file in ``paths`` (one symbol each), keeping bars whose start is in
    ``[start, end)``.

    A file whose bars are shorter than ``timeframe`` (e.g. 1-minute bars and ``timeframe="1h"``)
    is aggregated with :func:`backtest.aggregator.aggregate_series`, the same rule the live node's
    :class:`~backtest.aggregator.BarAggregator` applies: clock-aligned buckets in the exchange time
    zone, regular sessions only for equities (pre/post-market bars dropped), buckets cut at the
    session close, ``1d`` = one session released at its close; UTC buckets for 24/7 markets. The
    ``[start, end)`` window then applies to the aggregated bars' starts. A file already at the
    timeframe is returned as loaded.

    Parameters
    ----------
    paths : iterable of str or Path
        Bar files (see :func:`backtest.sources.load_bars`).
    timeframe : str, optional
        The run's bar length, e.g. ``"1h"``; inferred per file when omitted (no aggregation).
    start, end : datetime (tz-aware), optional
        Window on bar starts, start inclusive, end exclusive.
    calendars : mapping of str to str, optional
        Symbol -> calendar overrides, as ``FillConfig.calendars`` (see :func:`backtest.calendar.calendar_for`).

    Returns
    -------
    list of BarSeries
        One per path, in order; aggregated ones are :class:`~backtest.aggregator.AggregatedSeries`
        (their ``ts_init`` is each bar's own release time).

    Raises
    ------
    backtest.sources.DataError
        For any malformed file (file, line and reason named); when a file's bars cannot be
        aggregated to ``timeframe`` (not a whole number of them, a timeframe that does not divide
        a day other than ``1d``, bars off their grid); and when no bar falls in the window.
    ValueError
        If ``timeframe`` is malformed or ``start``/``end`` is naive.
    """
    if timeframe is None:
        series = load_many(paths, start=start, end=end)
    else:
        step = parse_timeframe(timeframe)
        low = to_nanos(start) if start is not None else None  # checked before any file is read
        high = to_nanos(end) if end is not None else None
        # whole files: a bucket is built from all its bars, then the window applies to bucket starts
        series = [_window(_to_timeframe(one, step, calendars), low, high)
                  for one in load_many(paths, timeframe=timeframe)]
    if not any(len(s) for s in series):
        window = f"{start.isoformat() if start else 'the first bar'} .. {end.isoformat() if end else 'the last bar'}"
        raise DataError(f"no bars between {window} (start inclusive, end exclusive) in "
                        f"{', '.join(s.source for s in series)}")
    return series


def _to_timeframe(series: BarSeries, step: int, calendars: Mapping[str, str] | None) -> BarSeries:
    """``series`` (stamped ``step`` by the loader) aggregated from its own spacing, if shorter."""
    if len(series) < 2:
        return series  # no spacing to tell: the loader's timeframe stands
    steps, counts = np.unique(np.diff(series.ts_event), return_counts=True)
    spacing = int(steps[np.argmax(counts)])  # the loader's rule: the most frequent step, ties to the shorter
    if spacing >= step:
        return series
    problem = aggregation_problem(step, spacing)
    if problem:
        raise DataError(f"{series.source}: cannot aggregate its bars (spaced {spacing} ns) to the run's "
                        f"timeframe: {problem}")
    native = BarSeries(series.symbol, spacing, series.ts_event, series.open, series.high, series.low, series.close,
                       series.volume, source=series.source, sha256=series.sha256)
    return aggregate_series(native, step, calendar_for(series.symbol, calendars))


def _window(series: BarSeries, low: int | None, high: int | None) -> BarSeries:
    if low is None and high is None:
        return series
    ts = series.ts_event
    first = 0 if low is None else int(np.searchsorted(ts, low, side="left"))
    stop = len(ts) if high is None else int(np.searchsorted(ts, high, side="left"))
    columns = {name: getattr(series, name)[first:stop] for name in ("ts_event", "open", "high", "low", "close",
                                                                       "volume")}
    if isinstance(series, AggregatedSeries):
        return AggregatedSeries(series.symbol, series.timeframe_ns, **columns, source=series.source,
                                sha256=series.sha256, release=series.ts_init[first:stop])
    return BarSeries(series.symbol, series.timeframe_ns, **columns, source=series.source, sha256=series.sha256)


def data_hash(series: Sequence[BarSeries]) -> str:
    """sha256 over the files' own sha256 digests and bar counts, in symbol order (so the order of
    the files on the command line does not change it, as it does not change the result)."""
    digest = hashlib.sha256()
    for s in sorted(series, key=lambda one: (one.symbol, one.source or "")):
        digest.update(f"{s.symbol}:{s.sha256}:{len(s)}".encode())
    return digest.hexdigest()


__all__ = ["data_hash", "load_data"]
