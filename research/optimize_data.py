"""The bars of a parameter study, loaded once (:class:`StudyData`) and shared by every trial:
forked workers inherit them, a Dask cluster gets them once per worker."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from backtest.data import load_data
from backtest.sources import BarSeries, DataError
from core.time import format_timeframe, to_datetime
from research.optimize_objectives import OptimizeError
from research.trial_cache import series_fingerprint

__all__ = ["StudyData"]


@dataclass(frozen=True)
class StudyData:
    """The bars of a study, loaded once: one list of series per timeframe the space uses.

    Attributes
    ----------
    series
        Timeframe label (``"1h"``) -> the series of every symbol at that timeframe.
    default
        The label trials use when the space does not set the timeframe.
    """

    series: Mapping[str, Sequence[BarSeries]]
    default: str
    _fingerprints: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.default not in self.series:
            raise OptimizeError(f"study data: no series for the default timeframe {self.default!r}")
        for label, series in self.series.items():
            if not series:
                raise OptimizeError(f"study data: no bar series for timeframe {label!r}")

    @classmethod
    def of(cls, series: Sequence[BarSeries]) -> StudyData:
        """Wrap already loaded series (one timeframe), labelled by their bar length."""
        if not series:
            raise OptimizeError("study data: no bar series given")
        label = format_timeframe(series[0].timeframe_ns)
        return cls({label: list(series)}, label)

    @classmethod
    def load(cls, paths: Sequence[str | Path], *, timeframe: str | None = None, timeframes: Iterable[str] = (),
             start: datetime | None = None, end: datetime | None = None,
             calendars: Mapping[str, str] | None = None) -> StudyData:
        """Load ``paths`` once per timeframe with :func:`backtest.data.load_data` (the same call
        ``tradingd replay`` makes, so a trial replays exactly the bars a replay of its config would).

        Parameters
        ----------
        paths
            Bar files.
        timeframe
            The default bar length (``[data] timeframe``); None = inferred from the data.
        timeframes
            Further bar lengths trials use (the space's ``timeframe`` choices), aggregated by
            :func:`backtest.aggregator.aggregate_series`.
        start, end, calendars
            As :func:`backtest.data.load_data`.

        Raises
        ------
        backtest.sources.DataError
            For a malformed file, bars that cannot be aggregated to a timeframe, or no bars in the window.
        """
        base = load_data(paths, timeframe=timeframe, start=start, end=end, calendars=calendars)
        label = timeframe or format_timeframe(base[0].timeframe_ns)
        loaded: dict[str, list[BarSeries]] = {label: base}
        for other in timeframes:
            if other not in loaded:
                try:
                    loaded[other] = load_data(paths, timeframe=other, start=start, end=end, calendars=calendars)
                except DataError as exc:
                    raise DataError(f"timeframe {other!r} of the search space: {exc}") from None
        return cls(loaded, label)

    def get(self, timeframe: str | None) -> Sequence[BarSeries]:
        """The series of ``timeframe`` (None = the default)."""
        label = self.default if timeframe is None else timeframe
        if label not in self.series:
            raise OptimizeError(f"study data: timeframe {label!r} was not loaded (loaded: {', '.join(self.series)})")
        return self.series[label]

    def fingerprint(self, timeframe: str | None) -> str:
        """:func:`research.trial_cache.series_fingerprint` of the series of ``timeframe``."""
        label = self.default if timeframe is None else timeframe
        if label not in self._fingerprints:
            self._fingerprints[label] = series_fingerprint(self.get(label))
        return self._fingerprints[label]

    def period(self) -> tuple[str, str]:
        """First bar start and last bar end of the default series, ISO-8601 UTC."""
        series = self.get(None)
        first = min(int(s.ts_event[0]) for s in series if len(s))
        last = max(int(s.ts_init[-1]) for s in series if len(s))
        return to_datetime(first).isoformat(), to_datetime(last).isoformat()
