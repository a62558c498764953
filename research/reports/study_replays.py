"""The best parameter sets of a study replayed on its bars, for the equity and drawdown overlays
and the Sharpe interval of the recommendation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from alerts.sinks import MemoryAlertSink
from backtest.replay import run_replay
from research.frames import closes_series
from research.metrics import daily_returns, drawdown_series
from research.optimize import StudyData, StudyResult, TrialRecord, trial_metrics
from research.study_stats import DiscardStore
from strategies.registry import build_strategy

__all__ = ["TOP_SETS", "SetReplay", "replay_sets"]

TOP_SETS = 5
"""Parameter sets replayed for the equity and drawdown overlays."""


@dataclass(frozen=True)
class SetReplay:
    """One parameter set replayed on the study's bars.

    Attributes
    ----------
    rank
        1-based rank in ``result.ranked``.
    trial
        The trial it reproduces.
    equity
        Equity in USD per bar end (UTC index).
    drawdown
        Fraction <= 0 from the running peak, same index.
    metrics
        :func:`research.optimize.trial_metrics` of the replay (the same figures as the trial's).
    returns
        Daily returns behind the Sharpe ratio (:func:`research.metrics.daily_returns`).
    periods_per_year
        Daily returns per year of this curve (as :func:`research.metrics.compute_metrics` infers it).
    closes
        Close per symbol at bar end (for the buy-and-hold benchmark).
    """

    rank: int
    trial: TrialRecord
    equity: pd.Series
    drawdown: pd.Series
    metrics: dict[str, Any]
    returns: pd.Series
    periods_per_year: float
    closes: dict[str, pd.Series] = field(repr=False)


def replay_sets(result: StudyResult, data: StudyData, n: int = TOP_SETS) -> list[SetReplay]:
    """Replay the ``n`` best ranked sets of ``result`` on ``data`` with :func:`run_replay`.

    Parameters
    ----------
    result
        The study.
    data
        The bars the study ran on (:class:`research.optimize.StudyData`).
    n
        How many sets, best first.

    Returns
    -------
    list[SetReplay]
        At most ``n``; fewer when fewer sets were ranked.

    Raises
    ------
    ValueError
        If a replay's metrics differ from the trial's recorded ones (the data are not the
        study's): the overlays would show another run than the tables.
    """
    out: list[SetReplay] = []
    for rank, trial in enumerate(result.ranked[:n], start=1):
        setup = result.space.apply(result.base, trial.params)
        strategy = build_strategy(setup.spec.strategy, setup.spec.params)
        spec = setup.spec.model_copy(update={"params": strategy.params.model_dump(mode="json")})
        replay = run_replay(data.get(setup.timeframe), spec, store=DiscardStore(), alerts=MemoryAlertSink(),
                            run_id=f"report-{trial.number}")
        metrics = trial_metrics(replay)
        recorded = (trial.metrics or {}).get("trades")
        if recorded is not None and metrics.get("trades") != recorded:
            raise ValueError(f"replay of trial {trial.number} ({trial.params}) made {metrics.get('trades')} trades, the "
                             f"study recorded {recorded}: pass the StudyData the study ran on")
        index = pd.to_datetime(replay.equity_ts, unit="ns", utc=True)
        equity = pd.Series(replay.equity, index=index, name=f"rank {rank}")
        returns = daily_returns(equity)
        years = (index[-1] - index[0]) / pd.Timedelta(days=365.25) if len(index) > 1 else 0.0
        ppy = len(returns) / years if len(returns) >= 2 and years > 2 / 365.25 else 252.0
        out.append(SetReplay(rank, trial, equity, drawdown_series(equity), metrics, returns, float(ppy),
                             closes_series(replay, index)))
    return out
