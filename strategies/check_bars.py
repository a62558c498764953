"""Default bars of the conformance checks: a real slice of the bundled sample data.

Real bars, not synthetic ones: they have the overnight gaps, volatility clusters and trends that
make a strategy enter and exit, which a random walk imitates badly. The slice is read from the
repository's ``data/`` folder (the bundled sample, see ``data/README.md``) with the standard
library only, because ``strategies`` may not depend on the loader in ``backtest`` (layers) nor
on ``tests/``. Where the data is absent (a wheel install), pass your own bars to
:func:`strategies.checks.check_strategy`; the test suite passes bars loaded by the validating
loader of :mod:`backtest.sources` and checks that both agree.
"""

from __future__ import annotations

import csv
import gzip
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from core.bars import bar_problem
from core.events import Bar

DATA_FILE = Path(__file__).resolve().parents[1] / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"
"""SPY hourly bars, split/dividend adjusted, labelled by their start (``timestamp`` with offset)."""
START = "2018-01-01"
"""First local date of the slice (ISO date; compared with the ``timestamp`` text)."""
COUNT = 1500
"""Bars in the slice: about 10 months of regular-session hours."""
TIMEFRAME_NS = 3_600_000_000_000
"""One hour: a bar is released (``ts_init``) at its start plus this."""


class CheckDataMissing(FileNotFoundError):
    """The bundled sample is not where the checks look; pass ``bars=`` explicitly."""


@lru_cache(maxsize=1)
def default_check_bars() -> tuple[Bar, ...]:
    """Return :data:`COUNT` hourly SPY bars from :data:`START` (real data from the bundled sample).

    Returns
    -------
    tuple of Bar
        Bars in time order; prices USD, volume shares, ``ts_event`` = start and ``ts_init`` =
        start + 1 h, epoch ns UTC. Cached: the same tuple on every call.

    Raises
    ------
    CheckDataMissing
        If :data:`DATA_FILE` does not exist (the package was installed without the repository).
    ValueError
        If a row fails to parse or a bar fails the engine's gate (a corrupted sample).
    """
    if not DATA_FILE.exists():
        raise CheckDataMissing(f"{DATA_FILE}: the bundled sample data is missing; pass bars= to "
                               "check_strategy (e.g. loaded with backtest.sources.load_bars)")
    bars: list[Bar] = []
    with gzip.open(DATA_FILE, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if header != ["timestamp", "open", "high", "low", "close", "volume"]:
            raise ValueError(f"{DATA_FILE}: unexpected header {header}")
        for line, row in enumerate(reader, start=2):
            if row[0] < START:  # ISO text sorts like time; parse only the rows of the slice
                continue
            try:
                start = int(datetime.fromisoformat(row[0]).timestamp()) * 1_000_000_000
                o, h, lo, c, v = (float(x) for x in row[1:])
            except ValueError as exc:
                raise ValueError(f"{DATA_FILE}:{line}: {exc}") from None
            bar = Bar("SPY", start, start + TIMEFRAME_NS, o, h, lo, c, v)
            problem = bar_problem(bar)
            if problem:
                raise ValueError(f"{DATA_FILE}:{line}: {problem}")
            bars.append(bar)
            if len(bars) == COUNT:
                break
    return tuple(bars)


__all__ = ["COUNT", "DATA_FILE", "START", "CheckDataMissing", "default_check_bars"]
