"""Robustness of a finished run: the same strategy and settings replayed in other markets, on other
symbols, through injected shocks and under pessimistic assumptions, and a 0-100 score of how well
it held up. The replays are :mod:`research.variants` (one engine, bars loaded once).

Scenario kinds
--------------
``period``
    Market periods: one calendar quarter per market type (bull, bear, high volatility, sideways)
    detected from the benchmark's closes by the engine's regime detector
    (:func:`research.market_periods.detect_periods`), or given as dates (``--period
    NAME=START:END``), which replace the detected ones. Each period is replayed from
    :func:`research.variants.warmup_bars` bars before it (trading blocked until it starts) and
    measured from its start.
``universe``
    The run's strategy on other symbols: ``crypto`` (the bundled hourly BTC-USD), ``mixed`` (the
    run's non-crypto symbols plus BTC-USD), and ``--universe NAME=GLOB``; loaded at the run's
    timeframe over the run's span (finer bars are aggregated; coarser ones are refused).
``stress``
    The four scenarios of :data:`research.stress.STRESS_SCENARIOS`, injected into the run's bars
    (centred on the middle of the run, or starting at ``--stress-at``).
``assumption``
    ``slippage_2x`` (2x fixed and volatility slippage; 5 bps when the run had none),
    ``commission_2x`` (2x every commission part; 5 bps of notional when the run paid none),
    ``delayed_entry`` (every entry one bar late, :class:`research.variants.DelayedEntries`) and
    ``partial_fills`` (at most 1% of a bar's volume per order, ``fill.participation_cap``).

The base run itself is replayed too (``base``), so every comparison is between replays of the same
engine on the same bars. Scenario names are unique: a ``--period`` or ``--universe`` NAME may not be
``base``, repeat, or be the name of a scenario of another kind (:func:`check_names`); a given
period may take a detected period's name (given periods replace the detected ones) and a given
universe ``crypto`` or ``mixed`` replaces that built-in universe.

Score
-----
Four parts, 0-100 in all (:mod:`research.robustness_score`): the share of scenarios profitable
(30 points), the worst Sharpe against the base one (25), the worst drawdown against the circuit
breaker's limit (25) and the return kept under doubled costs (20). A scenario with fewer than
:data:`~research.robustness_score.MIN_SCENARIO_TRADES` (5) closed trades is *thin*: never counted
as profitable, and left out of the worst Sharpe and the weakest scenario when others are not thin.
The run passes at ``score >= pass_score`` (60 by default) if its base replay closed at least
``min_trades`` trades (20 by default).

Modules: :mod:`research.market_periods` (the periods), :mod:`research.robustness_score` (the score);
this one plans the scenarios, runs them and writes the files, and re-exports their public names.
"""

from __future__ import annotations

import glob as globbing
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.calendar import calendar_for
from backtest.data import load_data
from backtest.sources import BarSeries, DataError
from backtest.spec import RunSpec
from core.time import to_datetime
from research.finished_run import FinishedRun, run_spec
from research.fork_pool import WorkerDied
from research.market_periods import (PERIOD_LABELS, MarketPeriod, RobustnessError, _date, benchmark_of,
                                     detect_periods, given_periods)
from research.metrics import compute_metrics
from research.rerun import scaled_costs
from research.robustness_score import (COST_SCENARIOS, DEFAULT_MIN_TRADES, DEFAULT_PASS_SCORE, MIN_SCENARIO_TRADES,
                                       WEIGHTS, RobustnessScore, ScenarioOutcome, finite_or_none, outcome_of,
                                       score_scenarios, verdict)
from research.safe_files import write_whole
from research.stress import STRESS_SCENARIOS, place_window
from research.variants import Variant, VariantData, VariantResult, run_variants, warm_start, warmup_bars

__all__ = ["ASSUMPTIONS", "BUILT_IN_UNIVERSES", "COST_SCENARIOS", "CRYPTO_FILE", "DEFAULT_MIN_TRADES",
           "DEFAULT_PASS_SCORE", "KINDS", "MIN_SCENARIO_TRADES", "WEIGHTS", "MarketPeriod", "RobustnessError",
           "RobustnessResult", "RobustnessScore", "ScenarioOutcome", "benchmark_of", "check_names", "detect_periods",
           "given_periods", "load_universes", "outcome_of", "parse_period", "parse_time", "parse_universe",
           "plan_scenarios", "run_robustness", "score_scenarios", "verdict", "write_robustness"]

CRYPTO_FILE = Path(__file__).resolve().parents[1] / "data" / "crypto_1hour" / "COINBASE_BTCUSD.csv.gz"
"""The bundled crypto bars of the ``crypto`` and ``mixed`` universes (hourly BTC-USD, 2017-07..2019-10)."""
KINDS = ("period", "universe", "stress", "assumption")
"""Scenario kinds, in report order."""
PARTICIPATION_CAP = 0.01
"""Fraction of a bar's volume one order may take in ``partial_fills``."""
BUILT_IN_UNIVERSES = ("crypto", "mixed")
"""The universes every study tries besides the run's own."""
ASSUMPTIONS = ("slippage_2x", "commission_2x", "delayed_entry", "partial_fills")
"""The pessimistic-assumption scenarios, in plan order."""
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet")


# --- command-line values ----------------------------------------------------------------------------

def _check_name(name: str, what: str, text: str) -> str:
    name = name.strip()
    if not name or not _NAME.match(name):
        raise RobustnessError(f"{what} {text!r}: NAME must be letters, digits, '_', '-' or '.'")
    return name


def parse_time(text: str, what: str) -> int:
    """A date or ISO-8601 time (naive = UTC) -> epoch ns UTC; ``what`` names the option in errors.

    Raises
    ------
    RobustnessError
        If ``text`` is not a date.

    Examples
    --------
    >>> parse_time("1970-01-02", "--stress-at")
    86400000000000
    """
    try:
        stamp = pd.Timestamp(text.strip())
    except ValueError:
        raise RobustnessError(f"{what}: {text!r} is not a date (use YYYY-MM-DD or ISO-8601 with a timezone)") from None
    if pd.isna(stamp):
        raise RobustnessError(f"{what}: {text!r} is not a date")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value)


def parse_period(text: str) -> tuple[str, int, int]:
    """``NAME=START:END`` (dates, e.g. ``gfc=2008-09-01:2009-03-31``; with times use
    ``START..END``) -> (name, start ns, end ns), UTC, end exclusive.

    Raises
    ------
    RobustnessError
        If the text is not of that form or START is not before END.

    Examples
    --------
    >>> name, start, end = parse_period("q1=2019-01-01:2019-04-01")
    >>> name, str(pd.Timestamp(start, tz="UTC").date()), str(pd.Timestamp(end, tz="UTC").date())
    ('q1', '2019-01-01', '2019-04-01')
    """
    what = f"--period {text!r}"
    name, sep, span = text.partition("=")
    if not sep:
        raise RobustnessError(f"{what}: expected NAME=START:END, e.g. gfc=2008-09-01:2009-03-31")
    name = _check_name(name, "--period", text)
    if ".." in span:
        first, _, last = span.partition("..")
    elif span.count(":") == 1:
        first, _, last = span.partition(":")
    else:
        raise RobustnessError(f"{what}: expected START:END with dates, or START..END with times")
    start, end = parse_time(first, what), parse_time(last, what)
    if start >= end:
        raise RobustnessError(f"{what}: START must be before END")
    return name, start, end


def check_names(periods: Sequence[str], universes: Sequence[str]) -> None:
    """Refuse ``--period`` and ``--universe`` names that would make two scenarios share a name
    (the score and the stress windows find scenarios by name).

    A name may not be ``base``, be given twice, name both a period and a universe, or be a
    built-in scenario of another kind: for a period a built-in universe, stress scenario or
    assumption; for a universe a detected period, stress scenario or assumption. A period named
    like a detected one, or a universe named ``crypto`` or ``mixed``, replaces that one.

    Raises
    ------
    RobustnessError
        Naming the option, the name and what it collides with.

    Examples
    --------
    >>> check_names(["gfc", "bull"], ["banks", "crypto"])
    >>> check_names(["slippage_2x"], [])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    research.market_periods.RobustnessError: --period slippage_2x: the name of the built-in assumption scenario ...
    """
    stress = tuple(s.name for s in STRESS_SCENARIOS)
    taken = {"period": {**{n: "universe" for n in BUILT_IN_UNIVERSES}, **{n: "stress" for n in stress},
                        **{n: "assumption" for n in ASSUMPTIONS}},
             "universe": {**{n: "period" for n in PERIOD_LABELS}, **{n: "stress" for n in stress},
                          **{n: "assumption" for n in ASSUMPTIONS}}}
    for option, names, other in (("period", periods, universes), ("universe", universes, periods)):
        for name in names:
            if name == "base":
                raise RobustnessError(f"--{option} base: the name 'base' is the run itself; choose another NAME")
            if list(names).count(name) > 1:
                raise RobustnessError(f"--{option} {name}: given more than once; each NAME must be unique")
            if name in other:
                also = "universe" if option == "period" else "period"
                raise RobustnessError(f"--{option} {name}: also given as a --{also} NAME; each scenario needs its "
                                      "own name")
            kind = taken[option].get(name)
            if kind is not None:
                raise RobustnessError(f"--{option} {name}: the name of the built-in {kind} scenario {name}; choose "
                                      "another NAME")


def parse_universe(text: str) -> tuple[str, str]:
    """``NAME=GLOB`` -> (name, glob).

    Raises
    ------
    RobustnessError
        If the text is not of that form.
    """
    name, sep, pattern = text.partition("=")
    if not sep or not pattern.strip():
        raise RobustnessError(f"--universe {text!r}: expected NAME=GLOB, e.g. banks='data/us_equity_1hour_adjusted/BAC*'")
    return _check_name(name, "--universe", text), pattern.strip()


# --- universes --------------------------------------------------------------------------------------

def _is_crypto(symbol: str, calendars: Mapping[str, str]) -> bool:
    return calendar_for(symbol, calendars) == "24/7"


def _load_universe(name: str, files: Sequence[str | Path], run: FinishedRun, span: tuple[int, int],
                   calendars: Mapping[str, str]) -> list[BarSeries]:
    try:
        return load_data(files, timeframe=run.timeframe or None, start=to_datetime(span[0]),
                         end=to_datetime(span[1]), calendars=calendars)
    except DataError as exc:
        raise RobustnessError(f"universe {name}: cannot be replayed at the run's {run.timeframe} bars over its span "
                              f"({_date(span[0])} .. {_date(span[1] - 1)}): {exc}") from None


def load_universes(run: FinishedRun, base: Sequence[BarSeries], given: Sequence[tuple[str, str]] = (), *,
                   crypto_file: Path = CRYPTO_FILE) -> tuple[dict[str, list[BarSeries]], list[str]]:
    """Load the universes (besides the run's own): ``crypto``, ``mixed`` and the ``given``
    ``(name, glob)`` pairs, at the run's timeframe over the span of the run's bars.

    A built-in universe that does not apply (no crypto bars in the run's span, a run already
    trading only crypto) is skipped with a note; a given one that cannot be loaded is an error.

    Returns
    -------
    (universes, notes)
        Name -> its series; what was skipped and why.

    Raises
    ------
    RobustnessError
        For a glob that matches no file, a duplicate or reserved name, or bars that cannot be
        replayed at the run's timeframe (coarser than it) or have no bar in the run's span.
    """
    kept = [s for s in base if len(s)]
    span = (min(int(s.ts_event[0]) for s in kept), max(int(s.ts_event[-1]) for s in kept) + 1)
    calendars = dict((run.run_info.get("fill") or {}).get("calendars") or {})
    universes: dict[str, list[BarSeries]] = {}
    notes: list[str] = []
    names = [name for name, _ in given]
    check_names([], names)
    equities = [s for s in kept if not _is_crypto(s.symbol, calendars)]
    crypto: list[BarSeries] | None = None
    if "crypto" not in names or "mixed" not in names:
        if not crypto_file.is_file():
            notes.append(f"universes crypto and mixed: {crypto_file} is missing")
        elif not equities:
            notes.append("universes crypto and mixed: the run already trades only crypto")
        else:
            try:
                crypto = load_data([crypto_file], timeframe=run.timeframe or None, start=to_datetime(span[0]),
                                   end=to_datetime(span[1]), calendars=calendars)
            except DataError as exc:
                notes.append(f"universes crypto and mixed: {crypto_file.name} has no usable bars in the run's span "
                             f"({_date(span[0])} .. {_date(span[1] - 1)}): {exc}")
    if crypto is not None:
        if "crypto" not in names:
            universes["crypto"] = crypto
        if "mixed" not in names:
            universes["mixed"] = [*equities, *crypto]
    for name, pattern in given:
        files: list[Path] = []
        for match in sorted(Path(p) for p in globbing.glob(pattern)):
            if match.is_dir():  # a folder: its bar files
                files += sorted(f for f in match.iterdir() if f.name.lower().endswith(_DATA_SUFFIXES))
            else:
                files.append(match)
        if not files:
            raise RobustnessError(f"--universe {name}={pattern}: the glob matches no file (relative to "
                                  f"{Path.cwd()})")
        universes[name] = _load_universe(name, files, run, span, calendars)
    return universes, notes


# --- the plan ---------------------------------------------------------------------------------------

def _fill_overrides(spec: RunSpec) -> dict[str, dict[str, Any]]:
    fill = spec.fill
    slip = scaled_costs(fill, slippage=2.0)
    if not fill.slippage_bps > 0:
        slip["slippage_bps"] = 5.0  # no slippage to double: 5 bps
    paid = fill.commission_per_share > 0 or fill.commission_bps > 0
    commission = scaled_costs(fill, commission=2.0) if paid else {"commission_bps": 5.0}
    cap = min(fill.participation_cap or 1.0, PARTICIPATION_CAP)
    return {"slippage_2x": slip, "commission_2x": commission, "partial_fills": {"participation_cap": cap}}


def _describe_fill(values: Mapping[str, Any]) -> str:
    return ", ".join(f"fill.{k} = {v:g}" for k, v in values.items())


def plan_scenarios(run: FinishedRun, data: VariantData, *, periods: Sequence[tuple[str, int, int]] = (),
                   stress: bool = True, stress_at: int | None = None) -> tuple[list[Variant], list[MarketPeriod],
                                                                               list[str]]:
    """The variants of a robustness study of ``run``: base first, then periods, universes (every
    set of ``data`` but ``"base"``), stress scenarios and pessimistic assumptions.

    Parameters
    ----------
    run
        The finished run (its settings: :func:`research.finished_run.run_spec`).
    data
        ``"base"`` (the run's bars) and the universes (:func:`load_universes`).
    periods
        ``--period`` windows (name, start ns, end ns); empty = detected.
    stress
        Include the stress scenarios.
    stress_at
        Start of every stress window (epoch ns UTC); default centred on the middle of the run.

    Returns
    -------
    (variants, periods, notes)

    Raises
    ------
    RobustnessError
        For a period outside the data, a stress window that does not fit, or two scenarios of
        one name (:func:`check_names`).
    research.finished_run.RunLoadError
        If the run does not record its settings.
    """
    from research.stress import StressError

    spec = run_spec(run)
    base = list(data["base"])
    variants = [Variant("base", "base", spec, label="the run as it was, replayed again")]
    notes: list[str] = []
    check_names([name for name, _, _ in periods], [n for n in data if n not in ("base", *BUILT_IN_UNIVERSES)])
    if periods:
        chosen = given_periods(base, periods)
        notes += [p.note for p in chosen if p.note]
    else:
        chosen, missing = detect_periods(benchmark_of([s for s in base if len(s)]), spec.signals.regime)
        notes += missing
    warm = warmup_bars(spec)
    for period in chosen:
        variants.append(Variant(period.name, "period", spec, label=f"market period: {period.name}",
                                window=(period.start, period.end), warm_start=warm_start(base, period.start, warm),
                                note=period.describe()))
    for name, series in data.items():
        if name != "base":
            symbols = ", ".join(s.symbol for s in series)
            variants.append(Variant(name, "universe", spec, bars=name, label=f"universe {name}", note=symbols))
    if stress:
        first = min(int(s.ts_event[0]) for s in base if len(s))
        if stress_at is not None and stress_at < first:
            notes.append(f"--stress-at {_date(stress_at)} is before the run's first bar ({_date(first)}): the stress "
                         "windows start at the first bar's day instead")
        for scenario in STRESS_SCENARIOS:
            try:
                window = place_window(base, scenario, stress_at)
            except StressError as exc:
                raise RobustnessError(str(exc)) from None
            note = f"window {_date(window.start)} .. {_date(window.end - 1)}"
            if window.shortened:
                note += " (shortened to half of the run's span: the run is shorter than twice the window)"
            elif window.moved:
                note += " (moved back to end with the run's last bar)"
            variants.append(Variant(scenario.name, "stress", spec, label=scenario.label, stress=scenario,
                                    stress_window=(window.start, window.end), note=note))
    fills = _fill_overrides(spec)
    for name in ("slippage_2x", "commission_2x"):
        variants.append(Variant(name, "assumption", spec.model_copy(update={
            "fill": spec.fill.model_copy(update=fills[name])}), label=name.replace("_", " "),
            note=_describe_fill(fills[name])))
    variants.append(Variant("delayed_entry", "assumption", spec, delay_entries=True, label="entries one bar late",
                            note="every entry intent held one bar of its symbol; exits unchanged"))
    variants.append(Variant("partial_fills", "assumption", spec.model_copy(update={
        "fill": spec.fill.model_copy(update=fills["partial_fills"])}), label="partial fills",
        note=_describe_fill(fills["partial_fills"]) + " (the rest fills on later bars)"))
    names = [v.name for v in variants]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # check_names makes this impossible; a plan that compares by name must never hold two
        raise RobustnessError(f"two scenarios named {', '.join(twice)}; rename the --period or --universe")
    return variants, chosen, notes


# --- the study --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RobustnessResult:
    """A finished robustness study.

    Attributes
    ----------
    run : FinishedRun
        The run studied.
    base : VariantResult
        Its replay again (the comparison point).
    scenarios : list of VariantResult
        Every other variant, in plan order.
    score : RobustnessScore
    pass_score : float
        Score at or above which the run passes.
    max_drawdown_limit : float
        The run's ``[risk] max_drawdown``.
    periods : list of MarketPeriod
    stress_windows : dict of str to (int, int)
        Stress scenario -> its window, epoch ns UTC.
    notes : list of str
        What was skipped and why.
    elapsed_s : float
    min_trades : int
        Closed trades the base replay needs before the run can pass.
    """

    run: FinishedRun
    base: VariantResult
    scenarios: list[VariantResult]
    score: RobustnessScore
    pass_score: float
    max_drawdown_limit: float
    periods: list[MarketPeriod] = field(default_factory=list)
    stress_windows: dict[str, tuple[int, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    min_trades: int = DEFAULT_MIN_TRADES

    @property
    def passed(self) -> bool:
        """Score at or above ``pass_score`` from a base replay of at least ``min_trades`` trades."""
        return self.verdict[0]

    @property
    def verdict(self) -> tuple[bool, str]:
        """(passed, why): :func:`research.robustness_score.verdict`."""
        return verdict(self.score.score, outcome_of(self.base).trades, self.pass_score, self.min_trades)

    def rows(self) -> list[dict[str, Any]]:
        """One row per scenario, base first: what ``scenarios.csv`` holds (see :meth:`to_dict`)."""
        out = []
        for result in [self.base, *self.scenarios]:
            o = outcome_of(result)
            same_return, same_sharpe = _base_over(self.base, result)
            row = {**o.to_dict(), "label": result.label, "cagr": finite_or_none(result.metrics.get("cagr")),
                   "base_return": same_return, "base_sharpe": same_sharpe,
                   "vs_base_return": _diff(o.total_return, same_return), "vs_base_sharpe": _diff(o.sharpe, same_sharpe),
                   "denied": result.denied if result.ok else None,
                   "slippage": result.slippage if result.ok else None,
                   "commission": result.commission if result.ok else None, "note": result.note,
                   "error": result.error}
            window = self.stress_windows.get(result.name)
            row["window_start"] = pd.Timestamp(window[0], unit="ns", tz="UTC").isoformat() if window else None
            row["window_end"] = pd.Timestamp(window[1], unit="ns", tz="UTC").isoformat() if window else None
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``robustness.json`` document (no NaN; ``None`` where undefined).

        Keys: ``run_id``, ``strategy``, ``score`` (0-100), ``passed``, ``pass_score``,
        ``passed_reason`` (why it passed or not), ``min_trades``, ``min_scenario_trades``,
        ``parts`` (points per part), ``weights``, ``fractions``, ``details``, ``weakest`` (name,
        kind, sharpe, total_return, max_drawdown), ``base`` and ``scenarios`` (name, kind, sharpe,
        total_return, max_drawdown, trades, start, end, thin, and label, cagr, base_return and
        base_sharpe (the base replay over the scenario's span), vs_base_return and vs_base_sharpe
        (the scenario minus those), denied (order intents risk denied), slippage, commission USD,
        note, error, window_start/window_end of a
        stress window), ``max_drawdown_limit``, ``periods``, ``notes``, ``elapsed_s``.
        """
        rows = self.rows()
        weakest = self.score.weakest
        return {
            "run_id": self.run.run_id, "strategy": self.run.strategy, "params": self.run.params,
            "score": round(self.score.score, 2), "passed": self.passed, "pass_score": self.pass_score,
            "passed_reason": self.verdict[1], "min_trades": self.min_trades,
            "min_scenario_trades": MIN_SCENARIO_TRADES,
            "parts": {k: round(v, 2) for k, v in self.score.parts.items()}, "weights": dict(WEIGHTS),
            "fractions": {k: round(v, 4) for k, v in self.score.fractions.items()}, "details": self.score.details,
            "weakest": None if weakest is None else {k: v for k, v in weakest.to_dict().items()
                                                     if k in ("name", "kind", "sharpe", "total_return",
                                                              "max_drawdown")},
            "max_drawdown_limit": self.max_drawdown_limit, "base": rows[0], "scenarios": rows[1:],
            "periods": [{"name": p.name, "start": _iso(p.start), "end": _iso(p.end), "benchmark": p.benchmark,
                         "benchmark_return": finite_or_none(p.benchmark_return), "share": finite_or_none(p.share),
                         "source": p.source} for p in self.periods],
            "notes": list(self.notes), "elapsed_s": round(self.elapsed_s, 3)}


def run_robustness(run: FinishedRun, data: VariantData, variants: Sequence[Variant], *, jobs: int = 1,
                   pass_score: float = DEFAULT_PASS_SCORE, min_trades: int = DEFAULT_MIN_TRADES,
                   periods: Sequence[MarketPeriod] = (), notes: Sequence[str] = (),
                   progress: Callable[[VariantResult], None] | None = None) -> RobustnessResult:
    """Replay ``variants`` (the first must be the base) and score them; the run passes at
    ``score >= pass_score`` when the base replay closed at least ``min_trades`` trades.

    Raises
    ------
    RobustnessError
        If the base replay fails (nothing can be compared then), or the plan has no base.
    """
    started = time.perf_counter()
    if not variants or variants[0].kind != "base":
        raise RobustnessError("the plan must start with the base replay")
    try:
        results = run_variants(data, variants, jobs=jobs, progress=progress)
    except WorkerDied as exc:
        raise RobustnessError(str(exc)) from None
    base, scenarios = results[0], results[1:]
    if not base.ok:
        raise RobustnessError(f"the run's own replay failed, nothing to compare with: {base.error}")
    limit = float((run.run_info.get("risk") or {}).get("max_drawdown") or 0.20)
    score = score_scenarios(outcome_of(base), [outcome_of(r) for r in scenarios], limit)
    windows = {v.name: v.stress_window for v in variants if v.stress_window is not None}
    return RobustnessResult(run, base, list(scenarios), score, pass_score, limit, list(periods),
                            {k: w for k, w in windows.items() if w is not None}, list(notes),
                            time.perf_counter() - started, min_trades)


def write_robustness(result: RobustnessResult, out_dir: str | Path) -> list[str]:
    """Write ``robustness.json``, ``scenarios.csv`` and ``report.html`` into ``out_dir``; return
    the names written."""
    from research.reports.robustness_page import write_robustness_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_whole(out / "robustness.json", json.dumps(result.to_dict(), indent=2, allow_nan=False, default=str) + "\n")
    write_whole(out / "scenarios.csv", pd.DataFrame(result.rows()).to_csv(index=False))
    write_robustness_report(result, out / "report.html")
    return ["report.html", "robustness.json", "scenarios.csv"]


def _base_over(base: VariantResult, result: VariantResult) -> tuple[float | None, float | None]:
    """The base replay's total return and Sharpe over ``result``'s measured span (its whole-run
    figures when the spans agree), so a quarter is compared with that quarter of the run."""
    if not result.ok or result.start is None or result.end is None or base.start is None:
        return None, None
    if (result.start, result.end) == (base.start, base.end) or not len(base.equity):
        return finite_or_none(base.metrics.get("total_return")), finite_or_none(base.metrics.get("sharpe"))
    equity = base.equity
    before = int(np.clip(equity.index.searchsorted(result.start, side="right") - 1, 0, len(equity) - 1))
    stop = int(equity.index.searchsorted(result.end, side="right"))
    part = equity.iloc[before:max(stop, before + 1)]
    if len(part) < 2:
        return None, None
    metrics = compute_metrics(part)
    return finite_or_none(metrics.total_return), finite_or_none(metrics.sharpe)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()
