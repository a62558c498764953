"""Plot helpers shared by the report's figures: min/max decimation, compact UTC time labels, layout.

Every curve longer than :data:`MAX_PLOT_POINTS` is decimated with a min/max-per-bucket scheme (keeps
first, last and every bucket's extremes, so drawdown troughs and price spikes stay visible) to keep
the file small and fast to write.

Figures are plain plotly figure dicts (``{"data": [...], "layout": {...}}``) rendered with
:func:`render`, which skips plotly's Python-side validation: building ``go.Figure`` objects
validated and deep-copied every point and template and took most of the report's time. Numeric
arrays are sent as base64 typed arrays (:func:`typed`), as plotly itself does for numpy input.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import cache
from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.io as pio

Figure = dict[str, Any]
"""A plotly figure as a dict: ``{"data": [trace dicts], "layout": {...}}``."""

__all__ = ["LOG_AXIS_RATIO", "MAX_PLOT_POINTS", "PLOT_CONFIG", "Charts", "Figure", "axis", "downsample", "figure", "log_axis",
           "plot_times", "render", "spans_orders_of_magnitude", "typed"]

MAX_PLOT_POINTS = 5000
"""Largest number of points plotted per curve; longer curves are decimated by :func:`downsample`."""
LOG_AXIS_RATIO = 10.0
"""A value axis turns logarithmic when its largest positive value exceeds this multiple of its smallest."""
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_BLOCK = 1 << 16  # values gathered at a time by downsample


def downsample(series: pd.Series, max_points: int = MAX_PLOT_POINTS) -> pd.Series:
    """Return at most about ``max_points`` points of ``series`` for plotting.

    The series is cut into ``(max_points - 2) // 2`` equal-count buckets; the first point, the
    last point and each bucket's minimum and maximum are kept, in time order (min/max decimation).
    NaN values are dropped first. Shorter series are returned unchanged (minus NaN).

    Parameters
    ----------
    series : pd.Series
        Numeric values on a sorted index.
    max_points : int, default :data:`MAX_PLOT_POINTS`
        Target size, at least 4.

    Returns
    -------
    pd.Series
        A subset of ``series`` (same index labels and values), at most ``max_points`` long.

    Raises
    ------
    ValueError
        If ``max_points < 4``.

    Examples
    --------
    >>> s = pd.Series(np.arange(10_000.0))
    >>> small = downsample(s, 100)
    >>> len(small) <= 100, float(small.iloc[0]), float(small.iloc[-1])
    (True, 0.0, 9999.0)
    """
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    values = series.to_numpy(dtype=float)
    # NaN positions found a block at a time; the decimation then works on the positions of the
    # values that are not NaN, mapped back to the series instead of building a NaN-free copy
    # of it (values and index: 16 bytes a point)
    missing = np.concatenate([np.flatnonzero(np.isnan(values[low:low + _BLOCK])) + low
                              for low in range(0, len(values), _BLOCK)] + [np.empty(0, dtype=np.int64)])
    n = len(values) - len(missing)
    if n <= max_points:
        return series.dropna() if len(missing) else series
    shift = missing - np.arange(len(missing))  # values that are not NaN before each NaN

    def position(clean: np.ndarray) -> np.ndarray:
        """Positions in ``series`` of the ``clean``-th values that are not NaN."""
        return clean + np.searchsorted(shift, clean, side="right") if len(missing) else clean

    buckets = (max_points - 2) // 2
    # row i is in bucket i * buckets // n, so bucket b starts at ceil(b * n / buckets) and holds
    # n // buckets or one more rows. Per bucket: the first minimum and the last maximum (ties as a
    # stable sort by value would pick them). Blocks of buckets are gathered into rows of equal
    # width, a short bucket padded with its own last value (which changes neither choice), so
    # the work is vectorised and no temporary is longer than _BLOCK values.
    starts = (np.arange(buckets + 1, dtype=np.int64) * n + buckets - 1) // buckets
    width = n // buckets + 1
    step = max(1, _BLOCK // width)
    offsets = np.arange(width, dtype=np.int64)
    keep = [np.array([0, n - 1], dtype=np.int64)]
    for first in range(0, buckets, step):
        stop = min(first + step, buckets)
        low, high = starts[first:stop], starts[first + 1:stop + 1]
        index = np.minimum(low[:, None] + offsets, (high - 1)[:, None])
        block = values[position(index)]
        rows = np.arange(len(low))
        keep.append(index[rows, block.argmin(axis=1)])
        keep.append(index[rows, width - 1 - block[:, ::-1].argmax(axis=1)])
    return series.iloc[position(np.unique(np.concatenate(keep)))]


def plot_times(index: pd.Index) -> list[str]:
    """Return compact naive-UTC time strings for plotly (shown as-is, whatever the browser zone).

    ``"2024-01-02 15:30"`` (with seconds when any are non-zero, date only when every time is
    midnight) is about a third shorter in the file than plotly's default ISO microsecond encoding.

    Examples
    --------
    >>> plot_times(pd.DatetimeIndex(["2024-01-02 10:30"], tz="America/New_York"))
    ['2024-01-02 15:30']
    """
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    values = idx.to_numpy(dtype="datetime64[ns]")
    ns = values.astype("int64")
    unit: Literal["D", "m", "s"] = ("D" if (ns % 86_400_000_000_000 == 0).all()
                                    else "m" if (ns % 60_000_000_000 == 0).all() else "s")
    # numpy's formatter is several times faster than strftime; swap its ISO "T" for a space
    text = np.datetime_as_string(values, unit=unit)
    return [t.replace("T", " ") for t in text.tolist()]


def spans_orders_of_magnitude(*arrays: Any) -> bool:
    """Return True when the positive values span more than :data:`LOG_AXIS_RATIO` x (log axis).

    Only finite values count; a non-positive value anywhere rules a log axis out.

    Examples
    --------
    >>> spans_orders_of_magnitude([1.0, 50.0]), spans_orders_of_magnitude([5.0, 20.0]), spans_orders_of_magnitude([0.0, 50.0])
    (True, False, False)
    """
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.array([])
    values = values[np.isfinite(values)]
    if len(values) == 0 or values.min() <= 0:
        return False
    return bool(values.max() / values.min() > LOG_AXIS_RATIO)


def _short(value: float) -> str:
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def log_axis(title: str, values: Any, prefix: str = "") -> dict[str, Any]:
    """Return a logarithmic axis with ticks at 1, 2 and 5 x powers of ten inside the data's range.

    plotly's default log ticks label every digit 2..9 of each decade, which turns a long equity
    or price axis into a wall of numbers. Spans of more than five decades keep powers of ten only.

    Parameters
    ----------
    title : str
        Axis title.
    values : array-like
        The plotted values (positive finite ones set the range).
    prefix : str
        Put before each label, e.g. ``"$"``.

    Examples
    --------
    >>> log_axis("USD", [90.0, 1200.0], prefix="$")["ticktext"]
    ['$100', '$200', '$500', '$1k']
    """
    data = np.asarray(values, dtype=float).ravel()
    data = data[np.isfinite(data) & (data > 0)]
    low, high = float(data.min()), float(data.max())
    first, last = int(np.floor(np.log10(low))), int(np.ceil(np.log10(high)))
    steps = (1.0,) if last - first > 5 else (1.0, 2.0, 5.0)
    ticks = [m * 10.0 ** k for k in range(first, last + 1) for m in steps if low <= m * 10.0 ** k <= high]
    ticks = [float(f"{t:.12g}") for t in ticks]
    return axis(title, type="log", tickmode="array", tickvals=ticks, ticktext=[f"{prefix}{_short(t)}" for t in ticks])


def axis(title: str, **settings: Any) -> dict[str, Any]:
    """Return an axis dict titled ``title`` (plotly.js 3 needs the ``{"text": ...}`` form).

    Examples
    --------
    >>> axis("USD", type="log")
    {'title': {'text': 'USD'}, 'type': 'log'}
    """
    return {"title": {"text": title}, **settings}


def typed(values: Any) -> dict[str, str]:
    """Return a 1-D numeric array as a plotly base64 typed array (float64; NaN plots as a gap).

    Examples
    --------
    >>> typed([1.0, 2.0])
    {'dtype': 'f8', 'bdata': 'AAAAAAAA8D8AAAAAAAAAQA=='}
    """
    data = np.ascontiguousarray(np.asarray(values, dtype="<f8").ravel())
    return {"dtype": "f8", "bdata": base64.b64encode(data.tobytes()).decode("ascii")}


@cache
def _template() -> dict[str, Any]:
    return dict(pio.templates["plotly_white"].to_plotly_json())


def figure(data: list[dict[str, Any]], title: str, yaxis: dict[str, Any] | None = None, height: int = 420,
           xaxis: dict[str, Any] | None = None, hovermode: str = "x unified", **extra: Any) -> Figure:
    """Return a figure dict with the report's common layout (white template, legend on top).

    Parameters
    ----------
    data : list[dict]
        Trace dicts (``{"type": "scatter", ...}``).
    title : str
        Figure title.
    yaxis, xaxis : dict, optional
        Axis settings; the x axis defaults to a "time (UTC)" title.
    height : int
        Pixels.
    hovermode : str
        plotly hover mode.
    **extra
        Further layout keys (``shapes``, ``barmode``, ``coloraxis`` ...).

    Returns
    -------
    Figure
        ``{"data": data, "layout": {...}}``.
    """
    layout = {
        "title": {"text": title},
        "template": _template(),
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
        "hovermode": hovermode,
        "legend": {"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        "yaxis": yaxis or {},
        "xaxis": xaxis if xaxis is not None else axis("time (UTC)"),
        **extra,
    }
    return {"data": data, "layout": layout}


def render(fig: Figure, div_id: str, include_plotlyjs: bool) -> str:
    """Return the figure as an HTML ``<div>`` plus script (plotly.js inlined when asked)."""
    return str(pio.to_html(fig, full_html=False, include_plotlyjs=include_plotlyjs, div_id=div_id,
                           config=PLOT_CONFIG, include_mathjax=False, validate=False))


class Charts:
    """Render one page's figures in page order; only the first carries plotly.js (inline, once).

    A report is one self-contained file: plotly.js (about 4.8 MB) is inlined by the first figure
    and every later one uses it, so no page loads anything from the network or carries it twice.

    Parameters
    ----------
    renderer : callable, default :func:`render`
        ``renderer(fig, div_id, include_plotlyjs=...)`` returning HTML; a page passes its own
        module's ``render`` so a test can swap it there.

    Examples
    --------
    >>> chart = Charts()
    >>> first, second = (chart(figure([], "t"), f"c{k}") for k in (1, 2))
    >>> len(first) > 1_000_000, len(second) < 10_000
    (True, True)
    """

    def __init__(self, renderer: Callable[..., str] = render) -> None:
        self._render = renderer
        self._first = True

    def __call__(self, fig: Figure, div_id: str) -> str:
        """Return ``fig`` as HTML in a ``<div id="div_id">``."""
        out = self._render(fig, div_id, include_plotlyjs=self._first)
        self._first = False
        return out
