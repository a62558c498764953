"""Position-sizing sweep: replay one run at several sizing levels and find the efficient frontier
of return against drawdown (``tradingd sizing``).

Each level is a replay of the same run (strategy, parameters, data, fill and every other risk
setting unchanged) with one sizing key set to the level: ``risk.risk_per_trade`` when the run
sizes with ``sizing = "risk_per_trade"``, ``risk.fixed_fraction`` when it sizes with
``"fixed_fraction"`` (where ``risk_per_trade`` has no effect; :func:`sizing_key`). The run's
sizing mode is never switched: what is measured is the run as configured, one knob turned.

The levels are replayed here (:func:`run_sizing`, a fork fan-out for ``jobs > 1``) rather than
through :func:`research.optimize.run_study`: a study keeps each trial's summary metrics only,
while the Ulcer index and the recovery factor need each level's whole equity curve (and the
report draws it); a study would have to replay every level twice.

Per level: the figures of :func:`research.metrics.compute_metrics` (total return, CAGR, Sharpe,
Sortino, max drawdown, trades, exposure), the Ulcer index and the recovery factor
(:func:`research.risk_metrics.ulcer_index`, :func:`~research.risk_metrics.recovery_factor`), the
mean entry notional, whether the drawdown breaker halted trading, and how many entry intents risk
denied because their size rounds to zero whole shares (``rounded_to_zero``: a small level on a
high-priced symbol, e.g. bitcoin, without ``risk.fractional_shares`` trades less, or not at all).
Levels that traded and are not dominated in (return up, max drawdown down) by another level that
traded are the efficient frontier (:func:`efficient_frontier`); the recommended level is the
highest-return frontier level within the drawdown tolerance, if that return is positive
(:func:`recommend`); otherwise there is none, and the reason says why. A sweep where no level
closed a trade is refused.

Outputs (:func:`write_sizing_outputs`): ``sizing.json`` (keys in :meth:`SizingResult.to_json`;
each level's ``risk_per_trade`` holds the value of the swept ``key``) and ``levels.csv``.
Money USD, returns and drawdowns fractions, times UTC.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.replay import ReplayResult
from backtest.sources import BarSeries
from backtest.spec import RunSpec
from core.enums import TradingState
from core.ports import Decision
from research.fork_pool import WorkerDied, fork_map
from research.metrics import compute_metrics
from research.optimize import DiscardStore
from research.rerun import error_text, quiet_replay
from research.risk_metrics import max_drawdown_usd, recovery_factor, ulcer_index
from research.safe_files import json_safe, write_whole
from risk.config import RiskConfig

__all__ = ["MAX_LEVEL", "MAX_LEVELS", "ROUNDS_TO_ZERO", "SizingError", "SizingLevel", "SizingResult",
           "efficient_frontier", "level_spec", "measure_level", "parse_levels", "recommend", "run_sizing", "sizing_key",
           "write_sizing_outputs"]

MAX_LEVEL = 0.1
"""Largest sizing level accepted (a fraction of equity: 0.1 = 10 %)."""
MAX_LEVELS = 200
"""Most levels one sweep replays."""
ROUNDS_TO_ZERO = "size rounds to zero"
"""How the risk engine's denial reason starts when a size is below one whole share."""


class SizingError(ValueError):
    """A sweep that cannot run as asked (bad ``--risk`` grid, a level whose replay failed); the
    message says what and how to fix it."""


# --- the grid --------------------------------------------------------------------------------------

def _decimal(text: str, what: str, spec: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise SizingError(f"--risk {spec!r}: {what} {text.strip()!r} is not a number; expected START:STOP:STEP "
                          "fractions, e.g. 0.005:0.02:0.0025") from None
    if not value.is_finite():
        raise SizingError(f"--risk {spec!r}: {what} must be a finite number")
    return value


def parse_levels(spec: str) -> list[float]:
    """Return the levels of a ``START:STOP:STEP`` grid, STOP included when it is on the grid.

    Parameters
    ----------
    spec : str
        Fractions of equity, e.g. ``"0.005:0.02:0.0025"``; START and STOP in (0, :data:`MAX_LEVEL`],
        START <= STOP, STEP > 0. Parsed as decimals, so the levels carry no float drift.

    Returns
    -------
    list[float]
        Increasing levels (at most :data:`MAX_LEVELS`).

    Raises
    ------
    SizingError
        Naming the part of ``spec`` that is wrong.

    Examples
    --------
    >>> parse_levels("0.005:0.02:0.0025")
    [0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02]
    >>> parse_levels("0.01:0.02:0.004")
    [0.01, 0.014, 0.018]
    """
    parts = spec.split(":")
    if len(parts) != 3:
        raise SizingError(f"--risk {spec!r}: expected START:STOP:STEP (three fractions), e.g. 0.005:0.02:0.0025")
    start, stop, step = (_decimal(p, name, spec) for p, name in zip(parts, ("START", "STOP", "STEP")))
    limit = Decimal(str(MAX_LEVEL))
    for name, value in (("START", start), ("STOP", stop)):
        if not 0 < value <= limit:
            raise SizingError(f"--risk {spec!r}: {name} {value} must be a fraction of equity in (0, {MAX_LEVEL}] "
                              "(0.01 = 1%)")
    if start > stop:
        raise SizingError(f"--risk {spec!r}: START {start} is above STOP {stop}")
    if not step > 0:
        raise SizingError(f"--risk {spec!r}: STEP {step} must be above 0")
    count = int((stop - start) / step) + 1
    if count > MAX_LEVELS:
        raise SizingError(f"--risk {spec!r}: {count} levels, more than {MAX_LEVELS}; use a larger STEP")
    return [float(start + k * step) for k in range(count)]


def sizing_key(risk: RiskConfig) -> tuple[str, str]:
    """Return the risk key that sizes new positions under ``risk.sizing`` and a sentence for the user.

    Examples
    --------
    >>> sizing_key(RiskConfig(sizing="risk_per_trade"))[0], sizing_key(RiskConfig())[0]
    ('risk.risk_per_trade', 'risk.fixed_fraction')
    """
    if risk.sizing == "risk_per_trade":
        return "risk.risk_per_trade", (
            "sizing = \"risk_per_trade\": each entry is sized so that its stop loss costs the level's fraction "
            f"of equity; entries without a stop fall back to fixed_fraction = {risk.fixed_fraction:g}")
    return "risk.fixed_fraction", (
        "the run sizes with sizing = \"fixed_fraction\", where risk_per_trade has no effect: swept "
        "risk.fixed_fraction (the fraction of equity put in each new position) over the --risk levels instead")


def level_spec(base: RunSpec, key: str, level: float) -> RunSpec:
    """Return ``base`` with the risk ``key`` (``"risk.fixed_fraction"``) set to ``level``, validated.

    Raises
    ------
    SizingError
        If ``key`` is not a risk setting or the level does not validate.
    """
    section, _, name = key.partition(".")
    if section != "risk" or name not in RiskConfig.model_fields:
        raise SizingError(f"{key}: not a [risk] setting")
    try:
        risk = RiskConfig.model_validate({**base.risk.model_dump(), name: level})
    except ValueError as exc:
        raise SizingError(f"{key} = {level}: {exc}") from None
    return base.model_copy(update={"risk": risk})


# --- the figures of one level ----------------------------------------------------------------------

@dataclass(frozen=True)
class SizingLevel:
    """What one sizing level gave.

    Attributes
    ----------
    level : float
        Value of the swept key (fraction of equity).
    total_return, cagr, max_drawdown, exposure : float or None
        Fractions (:func:`research.metrics.compute_metrics`; exposure = mean gross exposure / equity).
    sharpe, sortino : float or None
        Annualized, daily returns (None when undefined).
    recovery_factor : float or None
        :func:`research.risk_metrics.recovery_factor`.
    ulcer_index : float
        :func:`research.risk_metrics.ulcer_index`, a fraction.
    trades : int
        Closed round trips.
    net_profit, max_drawdown_usd : float
        USD.
    mean_position_usd : float or None
        Mean entry notional of the round trips (quantity x entry price), USD; None without trades.
    halted : str or None
        ISO time (UTC) the trading state first became HALTED (drawdown breaker), else None.
    rounded_to_zero : int
        Order intents risk denied because their size rounds to zero shares (whole shares only,
        unless ``risk.fractional_shares``).
    on_frontier : bool
        Closed a trade and not dominated in (return up, max drawdown down) by another level of the
        sweep that did.
    equity : pd.Series
        The level's equity curve (USD, bar-end UTC index); not written to JSON.
    """

    level: float
    total_return: float
    cagr: float | None
    sharpe: float | None
    sortino: float | None
    recovery_factor: float | None
    ulcer_index: float
    max_drawdown: float
    trades: int
    exposure: float | None = None
    net_profit: float = 0.0
    max_drawdown_usd: float = 0.0
    mean_position_usd: float | None = None
    halted: str | None = None
    rounded_to_zero: int = 0
    on_frontier: bool = False
    equity: pd.Series = field(default_factory=lambda: pd.Series(dtype="float64"), repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The level as ``sizing.json`` writes it (contract keys first; NaN/inf as None)."""
        values = {"risk_per_trade": self.level, "total_return": self.total_return, "cagr": self.cagr,
                  "sharpe": self.sharpe, "sortino": self.sortino, "recovery_factor": self.recovery_factor,
                  "ulcer_index": self.ulcer_index, "max_drawdown": self.max_drawdown, "trades": self.trades,
                  "on_frontier": self.on_frontier, "exposure": self.exposure, "net_profit": self.net_profit,
                  "max_drawdown_usd": self.max_drawdown_usd, "mean_position_usd": self.mean_position_usd,
                  "halted": self.halted, "rounded_to_zero": self.rounded_to_zero}
        return {k: _plain(json_safe(v)) for k, v in values.items()}


def _plain(value: Any) -> Any:
    """A float ``-0.0`` as ``0.0`` (a flat curve's drawdown), anything else as it is."""
    return value + 0.0 if isinstance(value, float) else value


def measure_level(result: ReplayResult, level: float, rounded_to_zero: int = 0) -> SizingLevel:
    """Return the figures of one level's replay (``on_frontier`` False until :func:`run_sizing`
    compares the levels); ``rounded_to_zero`` the intents denied for a size below one share."""
    index = pd.to_datetime(result.equity_ts, unit="ns", utc=True)
    equity = pd.Series(np.asarray(result.equity, dtype="float64"), index=index, name="equity")
    exposure = pd.Series(result.gross_exposure / result.equity, index=index)
    trades = pd.DataFrame({"pnl": [t.pnl for t in result.trades]})
    fills = pd.DataFrame({"quantity": [f.quantity for f in result.fills], "price": [f.price for f in result.fills]})
    m = compute_metrics(equity, trades=trades, fills=fills, exposure=exposure)
    notional = [abs(t.quantity * t.entry_price) for t in result.trades]
    halt = next((c.ts_init for c in result.state_changes if c.current is TradingState.HALTED), None)
    return SizingLevel(  # + 0.0: a flat curve's -0.0 drawdown reads 0.0 everywhere
        level=level, total_return=m.total_return + 0.0, cagr=m.cagr, sharpe=m.sharpe, sortino=m.sortino,
        recovery_factor=recovery_factor(equity), ulcer_index=ulcer_index(equity) + 0.0,
        max_drawdown=m.max_drawdown + 0.0, trades=m.trades, exposure=m.exposure,
        net_profit=float(equity.iloc[-1] - equity.iloc[0]) + 0.0, max_drawdown_usd=max_drawdown_usd(equity) + 0.0,
        mean_position_usd=float(np.mean(notional)) if notional else None,
        halted=pd.Timestamp(halt, unit="ns", tz="UTC").isoformat() if halt is not None else None,
        rounded_to_zero=rounded_to_zero, equity=equity)


# --- comparing the levels --------------------------------------------------------------------------

def efficient_frontier(returns: Sequence[float], drawdowns: Sequence[float]) -> list[bool]:
    """Return, per point, whether no other point dominates it in (return up, drawdown down).

    A point is dominated when another has a return at least as high and a drawdown at least as
    small, one of them strictly (Pareto dominance; Markowitz 1952 frames the same trade-off with
    variance). Equal points do not dominate each other.

    Examples
    --------
    >>> efficient_frontier([0.10, 0.08, 0.15, 0.12], [0.05, 0.06, 0.09, 0.09])
    [True, False, True, False]
    """
    if len(returns) != len(drawdowns):
        raise ValueError(f"{len(returns)} returns but {len(drawdowns)} drawdowns")
    points = list(zip(returns, drawdowns))
    return [not any(r >= ri and d <= di and (r > ri or d < di) for r, d in points) for ri, di in points]


def recommend(levels: Sequence[SizingLevel], max_drawdown: float) -> tuple[SizingLevel | None, str]:
    """Return the highest-return frontier level that closed a trade and whose max drawdown is at
    most ``max_drawdown`` (ties: the smaller level) and why; (None, why not) when no level
    qualifies, or when that level's return is not positive (sizing cannot make a losing or flat
    run pay: a larger level only loses more).

    Raises
    ------
    SizingError
        If ``max_drawdown`` is not a fraction in (0, 1].
    """
    if not 0 < max_drawdown <= 1:
        raise SizingError(f"--max-drawdown {max_drawdown}: must be a fraction in (0, 1] (0.15 = 15%)")
    if not levels:
        return None, "no level was replayed"
    traded = [x for x in levels if x.trades > 0]
    if not traded:
        return None, "no level closed a trade"
    within = [x for x in traded if x.on_frontier and x.max_drawdown <= max_drawdown]
    if not within:
        least = min(traded, key=lambda x: (x.max_drawdown, x.level))
        return None, (f"no level keeps the max drawdown within {max_drawdown:.2%}: the smallest is "
                      f"{least.max_drawdown:.2%} at level {least.level:g}; sweep smaller levels or raise "
                      "--max-drawdown")
    best = max(within, key=lambda x: (x.total_return, -x.level))
    if not best.total_return > 0:
        return None, (f"no level made money within the tolerance {max_drawdown:.2%}: the best return is "
                      f"{best.total_return + 0.0:.2%} at level {best.level:g}; a larger size only loses more, so "
                      "improve the strategy before sizing it")
    return best, (f"level {best.level:g}: the highest return ({best.total_return:.2%}) on the efficient frontier "
                  f"with a max drawdown ({best.max_drawdown:.2%}) within the tolerance {max_drawdown:.2%}")


@dataclass(frozen=True)
class SizingResult:
    """A finished sweep: every level (increasing), the recommendation and notes for the user.

    ``key`` is the swept risk key, ``current`` the run's own value of it; ``notes`` say which key
    was swept and why, and which levels were capped, identical or halted.
    """

    run_id: str
    strategy: str
    key: str
    levels: list[SizingLevel]
    max_drawdown: float
    recommended: SizingLevel | None
    recommended_reason: str
    current: float
    notes: list[str]
    symbols: list[str]
    period: tuple[str, str]
    runtime_s: float

    def to_json(self) -> dict[str, Any]:
        """The ``sizing.json`` document: ``run_id``, ``key``, ``levels``, ``tolerance``,
        ``recommended`` (one level or None), ``recommended_reason``, then ``strategy``,
        ``current_level``, ``notes``, ``symbols``, ``period`` and ``runtime_s``."""
        return {"run_id": self.run_id, "key": self.key, "levels": [x.to_json() for x in self.levels],
                "tolerance": {"max_drawdown": self.max_drawdown},
                "recommended": self.recommended.to_json() if self.recommended is not None else None,
                "recommended_reason": self.recommended_reason, "strategy": self.strategy,
                "current_level": self.current, "notes": self.notes, "symbols": self.symbols,
                "period": {"start": self.period[0], "end": self.period[1]}, "runtime_s": self.runtime_s}


def _same_curve(a: SizingLevel, b: SizingLevel) -> bool:
    return len(a.equity) == len(b.equity) and bool(np.array_equal(a.equity.to_numpy(), b.equity.to_numpy()))


def _notes(base: RunSpec, key: str, mode_note: str, levels: Sequence[SizingLevel]) -> list[str]:
    notes = [mode_note]
    cap = base.risk.max_position_fraction
    if key == "risk.fixed_fraction" and any(x.level > cap for x in levels):
        notes.append(f"levels above max_position_fraction = {cap:g} are capped by it")
    rounded = [x for x in levels if x.rounded_to_zero]
    if rounded:
        counts = ", ".join(f"{x.rounded_to_zero} at {x.level:g}" for x in rounded)
        idle = [x for x in rounded if x.trades == 0]
        notes.append(f"entry intents denied because their size rounds to zero whole shares: {counts} (a strategy "
                     "that asks again on later bars counts once per bar): those levels trade less than they would"
                     + (f", and {', '.join(f'{x.level:g}' for x in idle)} made no trade at all" if idle else "")
                     + "; set risk.fractional_shares = true (e.g. for crypto) or sweep larger levels")
    idle = [x for x in levels if x.trades == 0 and not x.rounded_to_zero]
    if idle:
        notes.append(f"level(s) {', '.join(f'{x.level:g}' for x in idle)} closed no trade")
    groups: list[list[SizingLevel]] = []  # runs of consecutive levels (that traded) whose replays are identical
    traded = [x for x in levels if x.trades > 0]
    for previous, level in zip(traded, traded[1:]):
        if _same_curve(previous, level):
            if groups and groups[-1][-1] is previous:
                groups[-1].append(level)
            else:
                groups.append([previous, level])
    if groups:
        shown = "; ".join(", ".join(f"{x.level:g}" for x in group) for group in groups)
        notes.append(f"these levels gave exactly the same replay ({shown}): a larger size was capped "
                     f"(max_position_fraction {cap:g}, max_gross_exposure {base.risk.max_gross_exposure:g}, "
                     "max_order_notional), rounded to the same whole shares"
                     + (", or the entries carry no stop loss" if key == "risk.risk_per_trade" else ""))
    halted = [x for x in levels if x.halted is not None]
    if halted:
        notes.append(f"the drawdown breaker (risk.max_drawdown = {base.risk.max_drawdown:g}) halted trading at "
                     f"level(s) {', '.join(f'{x.level:g}' for x in halted)}: their figures stop growing at the halt")
    return notes


# --- running the sweep -----------------------------------------------------------------------------

class _DenialCounter(DiscardStore):
    """The Store port of a level's replay: keeps nothing but the count of the intents risk denied
    because their size rounds to zero shares."""

    def __init__(self) -> None:
        self.rounded_to_zero = 0

    def save_decision(self, decision: Decision) -> None:
        if decision.outcome == "denied" and decision.reason.startswith(ROUNDS_TO_ZERO):
            self.rounded_to_zero += 1


def _replay_level(series: Sequence[BarSeries], spec: RunSpec, level: float) -> SizingLevel | str:
    """Replay one level through :func:`research.rerun.quiet_replay` with a store counting the
    entries denied for rounding to zero shares; an error message instead of raising (in a worker,
    where a raise would lose the level it came from)."""
    try:
        store = _DenialCounter()
        result, crash = quiet_replay(series, spec, f"sizing-{level:g}", store=store)
        if crash is not None:
            return f"the strategy raised and was disabled: {crash}"
        return measure_level(result, level, store.rounded_to_zero)
    except Exception as exc:  # reported with the level, never a broken pool
        return error_text(exc)


def run_sizing(base: RunSpec, series: Sequence[BarSeries], levels: Sequence[float], *, max_drawdown: float = 0.15,
               run_id: str = "", jobs: int = 1,
               progress: Callable[[int, int, SizingLevel], None] | None = None) -> SizingResult:
    """Replay ``base`` once per level of its sizing key and compare the levels.

    Parameters
    ----------
    base : RunSpec
        The run to size; only the key of :func:`sizing_key` changes between levels.
    series : Sequence[BarSeries]
        Its bars, loaded once (workers fork from this process and share them).
    levels : Sequence[float]
        Values of the key (:func:`parse_levels`).
    max_drawdown : float
        Tolerance of the recommendation, a fraction in (0, 1].
    run_id : str
        Written to the result.
    jobs : int
        Replays at a time; above 1 in forked worker processes (:func:`research.fork_pool.fork_map`).
    progress : callable, optional
        Called with (levels done, levels in all, the level just finished).

    Returns
    -------
    SizingResult

    Raises
    ------
    SizingError
        For no levels, ``jobs`` < 1, a bad tolerance, a level whose replay failed (named), a
        sweep where no level closed a trade, or a worker process that died.
    """
    started = time.perf_counter()
    if not levels:
        raise SizingError("no sizing level to replay")
    if jobs < 1:
        raise SizingError(f"--jobs {jobs}: must be 1 or more")
    recommend([], max_drawdown)  # validates the tolerance before any replay
    key, mode_note = sizing_key(base.risk)
    specs = {level: level_spec(base, key, level) for level in levels}
    order = list(specs)
    done: dict[float, SizingLevel] = {}

    def collect(index: int, outcome: SizingLevel | str) -> None:
        level = order[index]
        if isinstance(outcome, str):
            raise SizingError(f"{key} = {level:g}: the replay failed: {outcome}")
        done[level] = outcome
        if progress is not None:
            progress(len(done), len(specs), outcome)

    try:
        fork_map(lambda index: _replay_level(series, specs[order[index]], order[index]), len(order), jobs=jobs,
                 done=collect)
    except WorkerDied as exc:
        raise SizingError(str(exc)) from None
    measured = [done[level] for level in sorted(done)]
    if not any(x.trades for x in measured):
        denied = sum(x.rounded_to_zero for x in measured)
        raise SizingError(f"no level closed a trade ({len(measured)} replayed): nothing to size"
                          + (f"; {denied} entries were denied because their size rounds to zero whole shares: set "
                             "risk.fractional_shares = true or sweep larger levels" if denied else ""))
    traded = [x for x in measured if x.trades > 0]  # a level that never traded is no point of the trade-off
    flags = dict(zip((x.level for x in traded), efficient_frontier([x.total_return for x in traded],
                                                                   [x.max_drawdown for x in traded])))
    measured = [replace(x, on_frontier=flags.get(x.level, False)) for x in measured]
    best, reason = recommend(measured, max_drawdown)
    first = min(int(s.ts_event[0]) for s in series if len(s))
    last = max(int(s.ts_init[-1]) for s in series if len(s))
    return SizingResult(
        run_id=run_id, strategy=base.strategy, key=key, levels=measured, max_drawdown=max_drawdown,
        recommended=best, recommended_reason=reason, current=float(getattr(base.risk, key.partition(".")[2])),
        notes=_notes(base, key, mode_note, measured), symbols=[s.symbol for s in series],
        period=(pd.Timestamp(first, unit="ns", tz="UTC").isoformat(), pd.Timestamp(last, unit="ns", tz="UTC").isoformat()),
        runtime_s=time.perf_counter() - started)


# --- output files ----------------------------------------------------------------------------------

_CSV_COLUMNS = ("total_return", "cagr", "sharpe", "sortino", "recovery_factor", "ulcer_index", "max_drawdown",
                "max_drawdown_usd", "net_profit", "trades", "exposure", "mean_position_usd", "halted",
                "rounded_to_zero", "on_frontier")


def _cell(value: Any) -> Any:
    value = _plain(json_safe(value))
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else value


def write_sizing_outputs(result: SizingResult, out_dir: str | Path) -> list[str]:
    """Write ``sizing.json`` and ``levels.csv`` (one row per level; the first column is named
    after the swept key, e.g. ``fixed_fraction``; ``recommended`` marks the recommended level)
    into ``out_dir`` (created). Each file goes to a temporary name first, so a reader never sees
    half a file. Returns the names written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = result.key.partition(".")[2]
    chosen = result.recommended.level if result.recommended is not None else None

    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow([name, *_CSV_COLUMNS, "recommended"])
    for level in result.levels:
        row = level.to_json()
        writer.writerow([_cell(level.level), *(_cell(row[c]) for c in _CSV_COLUMNS), _cell(level.level == chosen)])
    write_whole(out / "sizing.json", json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n")
    write_whole(out / "levels.csv", table.getvalue())
    return ["sizing.json", "levels.csv"]
