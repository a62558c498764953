"""One more replay of a finished run's settings, as every research command makes it: nothing stored
(:class:`research.optimize.DiscardStore`), alerts kept in memory and read for a strategy that
raised (:func:`quiet_replay`); a failure told in one line (:func:`error_text`); and the fill
settings with the run's costs multiplied (:func:`scaled_costs`: robustness's doubled costs, Monte
Carlo's cost replays). Kept apart from :mod:`research.variants` so sizing and Monte Carlo do not
load the walk-forward modules.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alerts.sinks import MemoryAlertSink
from backtest.fill_model import FillConfig
from backtest.replay import ReplayResult, run_replay
from backtest.sources import BarSeries
from backtest.spec import RunSpec
from research.optimize import DiscardStore

__all__ = ["MAX_SLIPPAGE_BPS", "error_text", "quiet_replay", "scaled_costs"]

MAX_SLIPPAGE_BPS = 5_000.0
"""Largest ``[fill] slippage_bps`` the fill model accepts: a multiplied slippage is capped there."""


def scaled_costs(fill: FillConfig, *, slippage: float | None = None,
                 commission: float | None = None) -> dict[str, float]:
    """Return the ``[fill]`` settings that multiply the run's slippage and/or commission.

    ``slippage`` multiplies ``slippage_bps`` (capped at :data:`MAX_SLIPPAGE_BPS`, the most the fill
    model allows) and ``slippage_volatility``; ``commission`` multiplies ``commission_per_share``,
    ``commission_minimum`` and ``commission_bps``. A factor left ``None`` leaves its settings out.

    Examples
    --------
    >>> scaled_costs(FillConfig(slippage_bps=3000.0, commission_bps=1.0), slippage=2.0)["slippage_bps"]
    5000.0
    """
    out: dict[str, float] = {}
    if slippage is not None:
        out["slippage_bps"] = min(fill.slippage_bps * slippage, MAX_SLIPPAGE_BPS)
        out["slippage_volatility"] = fill.slippage_volatility * slippage
    if commission is not None:
        out["commission_per_share"] = fill.commission_per_share * commission
        out["commission_minimum"] = fill.commission_minimum * commission
        out["commission_bps"] = fill.commission_bps * commission
    return out


def quiet_replay(series: Sequence[BarSeries], spec: RunSpec, run_id: str,
                 strategy: Any = None, store: DiscardStore | None = None) -> tuple[ReplayResult, str | None]:
    """Replay ``spec`` on ``series`` as every research replay does: nothing stored
    (:class:`research.optimize.DiscardStore`, or ``store``: one that only counts what it is
    given), alerts kept in memory.

    Returns
    -------
    (ReplayResult, str or None)
        The result and, when the strategy raised and was disabled, the alert saying why (``None``
        when it ran to the end).
    """
    alerts = MemoryAlertSink()
    result = run_replay(series, spec, store=store if store is not None else DiscardStore(), alerts=alerts,
                        run_id=run_id, strategy=strategy)
    if result.strategy_enabled:
        return result, None
    return result, next((text for _, title, text, _ in alerts.alerts if "disabled" in title), "see the alerts")


def error_text(exc: BaseException) -> str:
    """What went wrong and where, in one line: ``"ValueError: ... (at module.py:42)"``."""
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
