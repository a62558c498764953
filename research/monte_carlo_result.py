"""The outcome of ``tradingd montecarlo``: the percentiles of every method's simulations, the risk
of ruin, the probability of tripping each circuit breaker, the verdict (:class:`MonteCarloResult`)
and the files ``montecarlo.json``, ``paths_quantiles.csv`` and ``simulations.csv``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from research.monte_carlo_sims import BAND_PERCENTILES, METHODS, Simulations
from research.safe_files import json_safe, write_whole

__all__ = ["ACCEPTABLE_RUIN", "LOWER_BOUNDS", "MIN_SIMS", "NOTES", "TRADE_METHODS", "MonteCarloResult", "quantiles",
           "write_monte_carlo_outputs"]

ACCEPTABLE_RUIN = 0.01
"""Largest risk of ruin the verdict accepts."""
MIN_SIMS = 100
"""Fewest simulations per method the verdict is given on: with fewer, a 1% risk of ruin cannot
show (one path in 100); the verdict is then "not acceptable: not enough simulations"."""
TRADE_METHODS = ("trade_shuffle", "trade_bootstrap", "price_noise")
"""Methods whose paths are the closed trades (per-trade Sharpe); the others' paths are days (daily
Sharpe)."""


# --- statistics ---------------------------------------------------------------------------------

def quantiles(values: np.ndarray) -> dict[str, float | None]:
    """Percentiles 5/25/50/75/95 and the mean of the finite ``values`` (``None`` when none is).

    ``[p5, p95]`` is the 90% percentile interval of the outcome (Efron & Tibshirani 1993, ch. 13).

    Examples
    --------
    >>> quantiles(np.arange(101.0))["p25"], quantiles(np.array([np.nan]))["mean"]
    (25.0, None)
    """
    finite = np.asarray(values, dtype="float64")
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return {**{f"p{p}": None for p in BAND_PERCENTILES}, "mean": None}
    points = np.percentile(finite, BAND_PERCENTILES)
    return {**{f"p{p}": float(v) for p, v in zip(BAND_PERCENTILES, points)}, "mean": float(finite.mean())}


def _summary(s: Simulations) -> dict[str, dict[str, float | None]]:
    return {"total_return": quantiles(s.total_return), "max_drawdown": quantiles(s.max_drawdown),
            "sharpe": quantiles(s.sharpe)}


def _probability(flags: np.ndarray) -> float:
    return float(np.mean(flags)) if len(flags) else math.nan


@dataclass(frozen=True)
class MonteCarloResult:
    """Every method's simulations of one run and the verdict.

    Attributes
    ----------
    run_id, strategy : str
        The run analysed.
    sims, seed : int
        Simulations per method and the seed.
    ruin, noise_bps : float
        Loss fraction that counts as ruin; price noise (bps).
    block_days : int
        Block length of the daily bootstrap.
    starting_cash : float
        USD.
    trades_per_year, days_per_year : float
        Annualisation of the per-trade and daily Sharpe ratios.
    limits : dict
        The run's circuit breakers (``max_drawdown``, ``daily_loss_limit``,
        ``max_consecutive_losses``; ``None`` when not recorded).
    actual : dict
        The run's own ``total_return``, ``max_drawdown`` and ``sharpe`` (its equity curve, daily
        Sharpe); ``trade_path_return``, ``trade_path_max_drawdown`` and ``trade_path_sharpe`` (its
        trade returns compounded in order, per-trade Sharpe: what the trade methods compare with);
        ``trades`` and ``days`` (number of daily returns).
    simulations : dict[str, Simulations]
        Per method of :data:`METHODS` that ran.
    """

    run_id: str
    strategy: str
    sims: int
    seed: int
    ruin: float
    noise_bps: float
    block_days: int
    starting_cash: float
    trades_per_year: float
    days_per_year: float
    limits: dict[str, float | None]
    actual: dict[str, float | None]
    simulations: dict[str, Simulations]

    def actual_for(self, method: str) -> dict[str, float | None]:
        """The run's own ``total_return``, ``max_drawdown`` and ``sharpe`` as ``method`` measures
        them: its trade path for the trade methods, its equity curve for the others."""
        if method in TRADE_METHODS:
            return {k: self.actual.get(f"trade_path_{'return' if k == 'total_return' else k}")
                    for k in ("total_return", "max_drawdown", "sharpe")}
        return {k: self.actual.get(k) for k in ("total_return", "max_drawdown", "sharpe")}

    def ruin_by_method(self) -> dict[str, float]:
        """P(equity <= (1 - ruin) x starting equity at some point) per method."""
        return {m: _probability(s.min_equity <= 1.0 - self.ruin + 1e-12) for m, s in self.simulations.items()}

    def risk_of_ruin(self) -> tuple[float, str]:
        """The headline risk of ruin: the largest over the numpy methods (cost replays are too
        few to estimate a small probability), and the method it comes from."""
        by = {m: p for m, p in self.ruin_by_method().items() if m != "cost_replays"}
        method = max(by, key=lambda m: by[m])
        return by[method], method

    def breaker_probabilities(self) -> dict[str, float | None]:
        """Probability of tripping each configured circuit breaker (``None`` if not configured):
        ``max_drawdown``: a daily-bootstrap path's drawdown reaches the limit; ``daily_loss``: some
        bootstrapped day loses at least ``daily_loss_limit`` (UTC days, where the breaker counts
        days of ``[risk] trading_day_timezone``: the same sessions for US equities);
        ``consecutive_losses``: a shuffled trade sequence has a losing streak of at least
        ``max_consecutive_losses``.

        The first two are lower bounds: the paths are close-to-close daily returns, while the
        breakers trip on any bar, against the equity high-water mark and the day's start equity,
        so a path can cross a limit between two daily closes without it showing
        (:data:`LOWER_BOUNDS`)."""
        daily, shuffle = self.simulations["daily_bootstrap"], self.simulations["trade_shuffle"]
        dd, day, streak = (self.limits.get(k) for k in ("max_drawdown", "daily_loss_limit", "max_consecutive_losses"))
        assert daily.worst_day is not None and shuffle.losing_streak is not None
        return {"max_drawdown": None if dd is None else _probability(daily.max_drawdown >= dd - 1e-12),
                "daily_loss": None if day is None else _probability(daily.worst_day <= -day + 1e-12),
                "consecutive_losses": None if streak is None else _probability(shuffle.losing_streak >= streak)}

    def verdict(self) -> tuple[bool, str]:
        """Acceptable when the risk of ruin is at most 1% and the daily bootstrap's 95th
        percentile max drawdown is below the run's ``[risk] max_drawdown``, on at least
        :data:`MIN_SIMS` simulations per method; the reason states it."""
        ruin, method = self.risk_of_ruin()
        p95 = quantiles(self.simulations["daily_bootstrap"].max_drawdown)["p95"]
        limit = self.limits.get("max_drawdown")
        rule = (f"rule: risk of ruin (losing {self.ruin:.0%} of starting equity) <= {ACCEPTABLE_RUIN:.0%} and the "
                f"daily-bootstrap 95th percentile max drawdown < [risk] max_drawdown, on >= {MIN_SIMS} simulations")
        if self.sims < MIN_SIMS:
            return False, (f"not acceptable: not enough simulations ({self.sims} per method < {MIN_SIMS}: a "
                           f"{ACCEPTABLE_RUIN:.0%} risk of ruin cannot show); run --sims {MIN_SIMS} or more ({rule})")
        ruin_ok = ruin <= ACCEPTABLE_RUIN
        parts = [f"risk of ruin {ruin:.2%} ({method}) {'<=' if ruin_ok else '>'} {ACCEPTABLE_RUIN:.0%}"]
        if limit is None or p95 is None:
            parts.append("the run records no [risk] max_drawdown to compare the drawdown with")
            return False, f"not acceptable: {'; '.join(parts)} ({rule})"
        dd_ok = p95 < limit
        parts.append(f"daily-bootstrap p95 max drawdown {p95:.2%} {'<' if dd_ok else '>='} [risk] max_drawdown "
                     f"{limit:.2%}")
        ok = ruin_ok and dd_ok
        return ok, f"{'acceptable' if ok else 'not acceptable'}: {'; '.join(parts)} ({rule})"

    def to_dict(self) -> dict[str, Any]:
        """The ``montecarlo.json`` document (JSON-safe: no NaN)."""
        ruin, method = self.risk_of_ruin()
        ok, reason = self.verdict()
        doc: dict[str, Any] = {"run_id": self.run_id, "sims": self.sims, "seed": self.seed}
        for name in METHODS:
            doc[name] = _summary(self.simulations[name]) if name in self.simulations else None
        doc.update({
            "risk_of_ruin": {"loss_fraction": self.ruin, "probability": ruin},
            "breaker_trip_probability": self.breaker_probabilities(),
            "breaker_trip_lower_bounds": list(LOWER_BOUNDS),
            "acceptable": ok, "acceptable_reason": reason,
            "strategy": self.strategy, "starting_cash": self.starting_cash,
            "parameters": {"ruin": self.ruin, "noise_bps": self.noise_bps, "block_days": self.block_days,
                           "cost_replays": self.simulations["cost_replays"].sims if "cost_replays" in self.simulations
                           else 0, "trades_per_year": self.trades_per_year, "days_per_year": self.days_per_year},
            "risk_of_ruin_method": method, "risk_of_ruin_by_method": self.ruin_by_method(),
            "breaker_limits": self.limits, "actual": self.actual,
            "losing_streak": {m: quantiles(s.losing_streak) for m, s in self.simulations.items()
                              if s.losing_streak is not None},
            "notes": NOTES,
        })
        return json_safe(doc)


NOTES = [
    "Trade methods use each trade's return on account (pnl / equity at entry), never dollar P&L.",
    "A shuffle of trade order leaves the final return and the per-trade Sharpe unchanged (a product and a mean do "
    "not depend on order); only drawdown, lowest equity and losing streaks vary. The trade bootstrap (with "
    "replacement) gives the distribution of the return.",
    "Per-trade Sharpe ratios are annualised by the run's trades per year; daily ones by its days per year.",
    "The 90% interval of an outcome is [p5, p95] of its simulations.",
    "Risk of ruin is the largest over the trade shuffle, trade bootstrap, daily bootstrap and price noise.",
    "Simulated paths do not apply the circuit breakers: a trip probability is how often a path reaches a limit, "
    "after which the engine would have reduced or halted trading.",
    "The max-drawdown and daily-loss trip probabilities are lower bounds (the true ones are at least as high): the "
    "daily bootstrap sees close-to-close UTC daily returns, while the breakers trip intraday, on any bar, against "
    "the equity high-water mark and the day's start equity. The consecutive-loss probability counts closed trades "
    "as the breaker does.",
    "The daily-loss probability uses UTC calendar days; the breaker counts days of [risk] trading_day_timezone "
    "(the same sessions for US equities).",
]
"""What a reader of the numbers must know (in the JSON and the report)."""
LOWER_BOUNDS = ("max_drawdown", "daily_loss")
"""Keys of :meth:`MonteCarloResult.breaker_probabilities` that are lower bounds (measured on daily
closes; the breakers trip intraday)."""


def write_monte_carlo_outputs(result: MonteCarloResult, out_dir: str | Path) -> list[str]:
    """Write ``montecarlo.json``, ``paths_quantiles.csv`` and ``simulations.csv`` into ``out_dir``.

    ``paths_quantiles.csv``: one row per method and step (``step`` = trade, day or bar number,
    ``time`` UTC where the step is a time), the percentiles ``p5 .. p95`` and the run's own path
    ``actual`` as equity in USD. ``simulations.csv``: one row per simulation (``method``, ``sim``,
    ``total_return``, ``max_drawdown``, ``sharpe``, ``min_equity``, ``losing_streak``,
    ``worst_day``, and the cost factors of cost replays), fractions; empty where not applicable.

    Returns
    -------
    list[str]
        The file names written, each moved into place whole.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_whole(out / "montecarlo.json", json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
    bands, rows = [], []
    for name, s in result.simulations.items():
        frame = pd.DataFrame({"method": name, "step": s.steps,
                              "time": (s.times.strftime("%Y-%m-%dT%H:%M:%SZ") if s.times is not None else ""),
                              **{f"p{p}": s.bands[k] * result.starting_cash for k, p in enumerate(BAND_PERCENTILES)},
                              "actual": s.actual * result.starting_cash})
        bands.append(frame)
        rows.append(pd.DataFrame({
            "method": name, "sim": np.arange(1, s.sims + 1), "total_return": s.total_return,
            "max_drawdown": s.max_drawdown, "sharpe": s.sharpe, "min_equity": s.min_equity,
            "losing_streak": pd.array(s.losing_streak, dtype="Int64") if s.losing_streak is not None else pd.NA,
            "worst_day": s.worst_day if s.worst_day is not None else np.nan, **s.extra}))
    write_whole(out / "paths_quantiles.csv", pd.concat(bands, ignore_index=True).to_csv(index=False, float_format="%.6f"))
    table = pd.concat(rows, ignore_index=True)
    write_whole(out / "simulations.csv", table.to_csv(index=False, float_format="%.8g"))
    return ["montecarlo.json", "paths_quantiles.csv", "simulations.csv"]

