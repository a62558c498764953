"""Fixtures of the strategy tests: real check bars and user strategies on ``sys.path``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.events import Bar
from tests.strategies import user_modules


def series_bars(series, n: int = 1500) -> tuple[Bar, ...]:
    """The first ``n`` bars of a loaded :class:`backtest.sources.BarSeries`."""
    return tuple(Bar(series.symbol, int(series.ts_event[i]), int(series.ts_init[i]), float(series.open[i]),
                     float(series.high[i]), float(series.low[i]), float(series.close[i]), float(series.volume[i]))
                 for i in range(min(n, len(series))))


@pytest.fixture(scope="session")
def spy_bars(two_symbols) -> tuple[Bar, ...]:
    """1,500 real SPY hourly bars from 2018, loaded by the validating loader of backtest.sources."""
    return series_bars(two_symbols[0])


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder of user strategy modules plus an installed-distribution record declaring entry
    points, put on ``sys.path`` for this test only."""
    root = user_modules.install(tmp_path / "userstrats")
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in user_modules.MODULES:
        sys.modules.pop(name, None)
