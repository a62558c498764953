"""The production-readiness checklist of a strategy (``tradingd readiness``): every line evaluated
from evidence already on disk or in the state database, as pass, fail or not yet measured, with
the number behind it and where it came from. Go only when every line passes.

Lines and their evidence (thresholds are this project's conventions, stated on every line):

1. **Backtest Sharpe > 1**: ``strategy.sharpe`` of the run's ``metrics.json`` (annualised from
   daily returns, :mod:`research.metrics`).
2. **Walk-forward out-of-sample positive**: the stitched OOS total return of ``walkforward.json``
   (``tradingd walkforward --out DIR``) > 0.
3. **No significant overfitting**: the 0-100 overfitting score
   (:mod:`research.overfitting_verdict`) of ``walkforward.json`` ``statistics.verdict`` and/or an
   optimize folder's ``statistics.json`` ``verdict`` below 50 (levels "low" and "moderate"); with
   both, both must pass (one that fails fails the line even when the other has no verdict).
4. **Robustness passed**: ``passed`` of ``<run>/robustness/robustness.json``.
5. **Benchmark comparison favourable**: ``favourable`` of ``<run>/benchmark/benchmark.json``.
6. **Monte Carlo risk acceptable**: ``acceptable`` of ``<run>/montecarlo/montecarlo.json``; the
   value is the risk of ruin, or the daily-bootstrap 95th-percentile max drawdown when that is
   what fails.
7. **Circuit breakers exercised**: each of the three breakers that move the trading state
   (``max_drawdown`` -> HALTED, ``daily_loss_limit`` and ``max_consecutive_losses`` -> REDUCING)
   tripped at least once, in the replay (``metrics.json`` ``state_changes``) or in a live or paper
   session of the same strategy. The order-rate cap and confidence floor deny orders rather than
   change the state and are not counted.
8. **Paper-trading days**: distinct UTC days with equity data in paper sessions (live-node runs on
   an account bound in paper mode) of the same strategy, at least :data:`MIN_PAPER_DAYS`.
9. **Paper vs backtest agreement**: the run's exact settings replayed on the bars the paper
   sessions saw (their journal), per account; ``|paper P&L - backtest P&L| / max(|backtest P&L|,
   0.1 % of starting equity)`` at most :data:`MAX_PAPER_DEVIATION` (10 %). P&L = last minus first
   equity of the account's sessions (USD).

A missing evidence file is "not yet measured", with the command that produces it. Money USD,
fractions not percent, times UTC.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.sources import BarSeries
from research.finished_run import FinishedRun, RunLoadError, run_spec
from research.monte_carlo_result import ACCEPTABLE_RUIN
from research.safe_files import json_safe, write_whole

__all__ = ["BREAKERS", "FAIL", "MAX_OVERFITTING_SCORE", "MAX_PAPER_DEVIATION", "MIN_PAPER_DAYS", "MIN_SHARPE",
           "NOT_MEASURED", "PASS", "Check", "PaperSession", "Readiness", "ReadinessError", "StudyEvidence",
           "evaluate", "load_study_folder", "paper_bars", "write_readiness"]

PASS, FAIL, NOT_MEASURED = "pass", "fail", "not yet measured"
"""The three statuses of a line."""
MIN_SHARPE = 1.0
"""Backtest Sharpe ratio a run must exceed."""
MAX_OVERFITTING_SCORE = 50.0
"""Overfitting scores below this ("low", "moderate") pass; "high" and "severe" fail."""
MIN_PAPER_DAYS = 20
"""Paper-trading days required by default (about a month of US trading days)."""
MAX_PAPER_DEVIATION = 0.10
"""Largest relative difference of paper and backtest P&L that counts as agreement."""
_PNL_FLOOR = 0.001  # of starting equity: P&Ls smaller than this compare on this scale
BREAKERS: dict[str, str] = {
    "max_drawdown": "max drawdown (halts trading)",
    "daily_loss_limit": "daily loss limit (reduces until the day ends)",
    "max_consecutive_losses": "consecutive-loss cool-down (reduces for the cool-down)",
}
"""The circuit breakers that change the trading state: [risk] key -> what it does. A trip's reason
names its key (:mod:`risk.breakers`)."""


class ReadinessError(ValueError):
    """Bad input: an evidence folder given on the command line that does not hold what it should,
    or evidence of another strategy. The message says which folder and what is wrong."""


@dataclass(frozen=True)
class Check:
    """One line of the checklist.

    Attributes
    ----------
    id, name : str
        Short key (``"sharpe"``) and the line as shown (``"Backtest Sharpe > 1"``).
    status : str
        :data:`PASS`, :data:`FAIL` or :data:`NOT_MEASURED`.
    value : float, int, bool, str or None
        The number behind it (``None`` when not measured).
    threshold : str
        What passes (``"> 1.00"``).
    source : str
        Where the value came from (a file, the state database), or where it was looked for.
    detail : str
        What the value means; when not measured, the command that measures it.
    """

    id: str
    name: str
    status: str
    value: Any
    threshold: str
    source: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with the attribute names as keys (non-finite floats as ``None``)."""
        return {"id": self.id, "name": self.name, "status": self.status, "value": json_safe(self.value),
                "threshold": self.threshold, "source": self.source, "detail": self.detail}


@dataclass(frozen=True)
class Readiness:
    """The evaluated checklist.

    Attributes
    ----------
    run_id : str or None
        The run judged (``None`` when only a study folder was given).
    strategy : str
        Its strategy id.
    checks : tuple[Check, ...]
        Every line, in checklist order.
    """

    run_id: str | None
    strategy: str
    checks: tuple[Check, ...]

    @property
    def decision(self) -> str:
        """``"go"`` when every line passes, else ``"no-go"``."""
        return "go" if self.checks and all(c.status == PASS for c in self.checks) else "no-go"

    @property
    def reasons(self) -> list[str]:
        """Why not go: one text per failing or unmeasured line (empty for go)."""
        return [f"{c.name}: {c.status} ({c.detail})" for c in self.checks if c.status != PASS]

    def to_dict(self) -> dict[str, Any]:
        """The ``readiness.json`` document: ``run_id``, ``strategy``, ``decision`` (``"go"`` or
        ``"no-go"``), ``reasons`` (list of str) and ``checks`` (list of :meth:`Check.to_dict`)."""
        return {"run_id": self.run_id, "strategy": self.strategy, "decision": self.decision,
                "reasons": self.reasons, "checks": [c.to_dict() for c in self.checks]}


@dataclass(frozen=True)
class PaperSession:
    """A live-node session of the strategy, as the state database keeps it.

    Attributes
    ----------
    session_id, account : str
        The run id (``live-<account>-<time>``) and its account.
    mode : str
        ``"paper"`` or ``"live"`` (the account's broker binding).
    strategy : str
        Strategy id.
    params : dict
        Strategy parameters of the session.
    equity : pd.Series
        Equity snapshots in USD on a UTC DatetimeIndex (may be empty).
    bars : list[BarSeries]
        The bars the engine handled (from the session's journal), one series per symbol; empty
        when the journal holds none.
    state_changes : list[dict]
        Trading-state changes ``{"time", "previous", "current", "reason"}`` (states as text).
    """

    session_id: str
    account: str
    mode: str
    strategy: str
    params: dict[str, Any]
    equity: pd.Series
    bars: list[BarSeries] = field(default_factory=list)
    state_changes: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class StudyEvidence:
    """An optimize or walk-forward output folder, read.

    Attributes
    ----------
    folder : Path
    kind : str
        ``"walkforward"`` (holds ``walkforward.json``) or ``"optimize"``.
    strategy : str
        The strategy it studied ("" when the folder does not say).
    walkforward : dict or None
        ``walkforward.json``.
    statistics : dict or None
        The overfitting statistics: ``walkforward.json`` ``statistics`` or ``statistics.json``.
    statistics_source : str
        The file ``statistics`` came from (or would have).
    """

    folder: Path
    kind: str
    strategy: str
    walkforward: dict[str, Any] | None
    statistics: dict[str, Any] | None
    statistics_source: str


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReadinessError(f"{path} cannot be read as JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ReadinessError(f"{path} is not a JSON object")
    return doc


def load_study_folder(folder: str | Path, option: str = "--study") -> StudyEvidence:
    """Read an optimize folder (``statistics.json``, ``summary.json``) or a walk-forward folder
    (``walkforward.json``).

    Raises
    ------
    ReadinessError
        If ``folder`` is not a folder, holds none of those files, or a file is not valid JSON;
        with ``option="--walkforward"`` also when it holds no ``walkforward.json``.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ReadinessError(f"{option} {path}: not a folder")
    wf_path, stats_path, summary_path = path / "walkforward.json", path / "statistics.json", path / "summary.json"
    if wf_path.is_file():
        doc = _read_json(wf_path)
        if not isinstance(doc.get("oos_metrics"), dict):
            raise ReadinessError(f"{wf_path} has no oos_metrics: not written by `tradingd walkforward`")
        stats = doc.get("statistics")
        return StudyEvidence(path, "walkforward", str(doc.get("strategy") or ""), doc,
                             stats if isinstance(stats, dict) else None, str(wf_path))
    if option == "--walkforward":
        raise ReadinessError(f"--walkforward {path}: no walkforward.json (write one with `tradingd walkforward "
                             f"--out {path}`)")
    if not stats_path.is_file() and not summary_path.is_file():
        raise ReadinessError(f"{option} {path}: holds neither walkforward.json nor statistics.json/summary.json; "
                             "give a `tradingd optimize --out` or `tradingd walkforward --out` folder")
    summary = _read_json(summary_path) if summary_path.is_file() else {}
    stats = _read_json(stats_path) if stats_path.is_file() else None
    return StudyEvidence(path, "optimize", str(summary.get("strategy") or ""), None, stats, str(stats_path))


def paper_bars(rows: Iterable[Sequence[Any]]) -> list[BarSeries]:
    """Build bar series from journaled bars ``[symbol, ts_event, ts_init, open, high, low, close,
    volume]`` (epoch ns UTC, USD, shares), one series per symbol in symbol order, each sorted by
    start with duplicate starts dropped (a restarted session can journal a bar twice).

    Raises
    ------
    ValueError
        If the bars mix bar lengths (``ts_init - ts_event``).

    Examples
    --------
    >>> h = 3_600_000_000_000
    >>> [s.symbol + f":{len(s)}" for s in paper_bars([["SPY", 0, h, 1, 2, 1, 2, 9], ["SPY", 0, h, 1, 2, 1, 2, 9]])]
    ['SPY:1']
    """
    by_symbol: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        by_symbol.setdefault(str(row[0]), []).append(row)
    out = []
    lengths: set[int] = set()
    for symbol in sorted(by_symbol):
        table = np.array([[float(v) for v in r[1:8]] for r in by_symbol[symbol]], dtype=np.float64)
        starts = np.array([int(r[1]) for r in by_symbol[symbol]], dtype=np.int64)
        ends = np.array([int(r[2]) for r in by_symbol[symbol]], dtype=np.int64)
        order = np.argsort(starts, kind="stable")
        starts, ends, table = starts[order], ends[order], table[order]
        keep = np.concatenate(([True], starts[1:] != starts[:-1])) if len(starts) else np.zeros(0, bool)
        starts, ends, table = starts[keep], ends[keep], table[keep]
        lengths.update(int(v) for v in np.unique(ends - starts))
        out.append(BarSeries(symbol, int(ends[0] - starts[0]), starts, table[:, 2], table[:, 3], table[:, 4],
                             table[:, 5], table[:, 6]))
    if len(lengths) > 1:
        raise ValueError(f"the journaled bars mix bar lengths {sorted(lengths)} ns")
    return out


# --- the lines ----------------------------------------------------------------------------------


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.2%}" if pct else f"{value:.2f}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _sharpe(run: FinishedRun | None) -> Check:
    name, threshold = "Backtest Sharpe > 1", f"> {MIN_SHARPE:.2f}"
    if run is None:
        return Check("sharpe", name, NOT_MEASURED, None, threshold, "", "no replay given: replay the study's best set "
                     "(`tradingd replay --config <study>/best.toml --out DIR`) and pass DIR as RUN")
    source = str(run.folder / "metrics.json") if run.folder is not None else f"state database, run {run.run_id}"
    strategy = run.metrics.get("strategy") if isinstance(run.metrics.get("strategy"), dict) else None
    if strategy is None:
        return Check("sharpe", name, NOT_MEASURED, None, threshold, source,
                     "the run records no metrics; replay it again (`tradingd replay --out DIR`)")
    sharpe = _number(strategy.get("sharpe"))
    if sharpe is None:
        return Check("sharpe", name, FAIL, None, threshold, source,
                     "Sharpe undefined: the daily returns do not vary (the run never traded?)")
    days = strategy.get("start", "?"), strategy.get("end", "?")
    return Check("sharpe", name, PASS if sharpe > MIN_SHARPE else FAIL, sharpe, threshold, source,
                 f"annualised Sharpe of daily returns {sharpe:.2f} over {str(days[0])[:10]}..{str(days[1])[:10]}; "
                 f"CAGR {_fmt(_number(strategy.get('cagr')), True)}, max drawdown "
                 f"{_fmt(_number(strategy.get('max_drawdown')), True)}")


def _walkforward_command(strategy: str) -> str:
    return (f"`tradingd walkforward --strategy {strategy or '<strategy>'} --out DIR`, then pass "
            "--walkforward DIR")


def _walkforward(wf: StudyEvidence | None, strategy: str) -> Check:
    name, threshold = "Walk-forward out-of-sample positive", "stitched OOS total return > 0"
    if wf is None or wf.walkforward is None:
        return Check("walkforward_oos", name, NOT_MEASURED, None, threshold, "",
                     f"no walk-forward given: {_walkforward_command(strategy)}")
    doc = wf.walkforward
    oos = doc.get("oos_metrics") or {}
    total = _number(oos.get("total_return"))
    source = str(wf.folder / "walkforward.json")
    if total is None:
        return Check("walkforward_oos", name, NOT_MEASURED, None, threshold, source,
                     "walkforward.json records no out-of-sample total return")
    folds = doc.get("folds") or []
    share = _number(doc.get("profitable_share"))
    detail = (f"stitched OOS return {total:.2%} over {len(folds)} folds (Sharpe {_fmt(_number(oos.get('sharpe')))}, "
              f"max drawdown {_fmt(_number(oos.get('max_drawdown')), True)}); profitable test windows "
              f"{_fmt(share, True)}, walk-forward efficiency {_fmt(_number(doc.get('efficiency')))}")
    return Check("walkforward_oos", name, PASS if total > 0 else FAIL, total, threshold, source, detail)


def _overfitting(studies: Sequence[StudyEvidence], strategy: str) -> Check:
    name, threshold = "No significant overfitting", f"overfitting score < {MAX_OVERFITTING_SCORE:.0f}/100"
    if not studies:
        return Check("overfitting", name, NOT_MEASURED, None, threshold, "",
                     f"no study given: {_walkforward_command(strategy)} (or `tradingd optimize --strategy "
                     f"{strategy or '<strategy>'} --out DIR`, then --study DIR)")
    verdicts: list[tuple[float, StudyEvidence, dict[str, Any]]] = []
    unmeasured: list[tuple[StudyEvidence, str]] = []
    for study in studies:
        verdict = (study.statistics or {}).get("verdict")
        score = _number(verdict.get("score")) if isinstance(verdict, dict) else None
        if score is None:
            why = (f"{study.statistics_source} is missing" if study.statistics is None
                   else f"{study.statistics_source} has no overfitting verdict (too few trials or returns?)")
            unmeasured.append((study, f"{why}; run the study again with --statistics"))
            continue
        assert isinstance(verdict, dict)
        verdicts.append((score, study, verdict))
    # a failing study decides the line even when the other could not be measured
    if not verdicts or (unmeasured and max(v[0] for v in verdicts) < MAX_OVERFITTING_SCORE):
        study, why = unmeasured[0]
        return Check("overfitting", name, NOT_MEASURED, None, threshold, study.statistics_source, why)
    score, study, verdict = max(verdicts, key=lambda v: v[0])
    stats = study.statistics or {}
    parts = [f"score {score:.0f}/100 ({verdict.get('level', '?')})", f"PBO {_fmt(_number(stats.get('pbo')))}",
             f"DSR {_fmt(_number(stats.get('dsr')))}"]
    if score >= MAX_OVERFITTING_SCORE and verdict.get("remedy"):
        parts.append(f"remedy: {verdict['remedy']}")
    if len(verdicts) > 1:
        parts.append("the worst of " + ", ".join(f"{v[0]:.0f} ({v[1].kind})" for v in verdicts))
    parts.extend(f"{u[0].kind} not measured: {u[1]}" for u in unmeasured)
    return Check("overfitting", name, PASS if score < MAX_OVERFITTING_SCORE else FAIL, score, threshold,
                 " + ".join(v[1].statistics_source for v in verdicts), "; ".join(parts))


def _evidence_file(path: Path, run: FinishedRun, keys: Sequence[str]) -> tuple[dict[str, Any] | None, str]:
    """Read a command's JSON next to the run; (None, why) when it is missing, unreadable, lacks
    ``keys`` or was written for another run."""
    if not path.is_file():
        return None, "missing"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"unreadable ({exc})"
    if not isinstance(doc, dict):
        return None, "not a JSON object"
    missing = [k for k in keys if k not in doc]
    if missing:
        return None, f"lacks {missing}"
    if doc.get("run_id") not in (None, run.run_id):
        return None, f"written for run {doc['run_id']}, not {run.run_id}"
    return doc, ""


def _command_check(check_id: str, name: str, command: str, file: str, keys: Sequence[str], verdict_key: str,
                   reason_key: str | None, value_key: str, threshold: str, run: FinishedRun | None,
                   run_ref: str, evidence_dir: Path | None) -> tuple[Check, dict[str, Any] | None]:
    """The line of a research command's verdict file ``<evidence_dir>/<command>/<file>``, and the file."""
    if run is None or evidence_dir is None:
        return Check(check_id, name, NOT_MEASURED, None, threshold, "", f"no replay given: `tradingd {command} RUN` "
                     "needs one"), None
    path = evidence_dir / command / file
    doc, why = _evidence_file(path, run, keys)
    if doc is None:
        return Check(check_id, name, NOT_MEASURED, None, threshold, str(path),
                     f"{file} {why}: run `tradingd {command} {run_ref}`"), None
    raw = doc.get(value_key)
    if isinstance(raw, dict):  # e.g. risk_of_ruin {"loss_fraction", "probability"}
        raw = raw.get("probability")
    value = raw if isinstance(raw, bool) else _number(raw)
    ok = doc.get(verdict_key) is True
    detail = str(doc.get(reason_key) or "") if reason_key else ""
    return Check(check_id, name, PASS if ok else FAIL, value, threshold, str(path),
                 detail or f"{verdict_key} = {json.dumps(doc.get(verdict_key))}"), doc


def _robustness(run: FinishedRun | None, run_ref: str, evidence_dir: Path | None) -> Check:
    check, doc = _command_check("robustness", "Robustness passed", "robustness", "robustness.json",
                                ("score", "passed"), "passed", None, "score", "passed = true", run, run_ref,
                                evidence_dir)
    if doc is None:
        return check
    weakest = doc.get("weakest")
    if isinstance(weakest, dict):  # {name, kind, sharpe, total_return, max_drawdown}
        weakest = (f"{weakest.get('name', '?')} (Sharpe {_fmt(_number(weakest.get('sharpe')))}, return "
                   f"{_fmt(_number(weakest.get('total_return')), True)})")
    bar = _number(doc.get("pass_score"))
    detail = (f"robustness score {_fmt(_number(doc.get('score')))}" + (f", passes at {bar:g}" if bar is not None else "")
              + (f"; weakest: {weakest}" if weakest else ""))
    return Check(check.id, check.name, check.status, check.value, check.threshold, check.source, detail)


def _benchmark(run: FinishedRun | None, run_ref: str, evidence_dir: Path | None) -> Check:
    return _command_check("benchmark", "Benchmark comparison favourable", "benchmark", "benchmark.json",
                          ("favourable",), "favourable", "favourable_reason", "favourable", "favourable = true",
                          run, run_ref, evidence_dir)[0]


def _montecarlo(run: FinishedRun | None, run_ref: str, evidence_dir: Path | None) -> Check:
    """The Monte Carlo line; its value is the figure that decided it: the risk of ruin, or the
    daily bootstrap's 95th-percentile max drawdown when that is what fails the verdict."""
    check, doc = _command_check("montecarlo", "Monte Carlo risk acceptable", "montecarlo", "montecarlo.json",
                                ("acceptable",), "acceptable", "acceptable_reason", "risk_of_ruin",
                                "acceptable = true", run, run_ref, evidence_dir)
    if doc is None or check.status != FAIL:
        return check
    ruin = check.value if isinstance(check.value, float) else None
    quantile = ((doc.get("daily_bootstrap") or {}).get("max_drawdown") or {}).get("p95")
    p95, limit = _number(quantile), _number((doc.get("breaker_limits") or {}).get("max_drawdown"))
    if (ruin is None or ruin <= ACCEPTABLE_RUIN) and p95 is not None and limit is not None and p95 >= limit:
        detail = f"fails on the daily-bootstrap p95 max drawdown {p95:.2%} >= [risk] max_drawdown {limit:.2%}"
        return replace(check, value=p95, detail=f"{detail}; {check.detail}")
    return check


def _run_state_changes(run: FinishedRun) -> list[dict[str, Any]] | None:
    """The run's trading-state changes from metrics.json (or breakers.csv); None when it records none."""
    changes = run.metrics.get("state_changes")
    if isinstance(changes, list):
        return [c for c in changes if isinstance(c, dict)]
    if run.folder is not None and (run.folder / "breakers.csv").is_file():
        frame = pd.read_csv(run.folder / "breakers.csv", keep_default_na=False)
        return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
    return None


def _tripped(changes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Breaker key -> time of its first trip (a change out of active naming the key in its reason)."""
    first: dict[str, str] = {}
    for change in changes:
        if str(change.get("current")) == "active":
            continue
        reason = str(change.get("reason", ""))
        for key in BREAKERS:
            if key in reason and key not in first:
                first[key] = _minute(change.get("time", ""))
    return first


def _minute(when: Any) -> str:
    """A change's time to the minute (``"2019-02-01T15:00"``): ISO text as written by the replay,
    or epoch ns (int or digits) as the state database keeps it."""
    text = str(when)
    if isinstance(when, int) or text.isdigit():
        text = pd.Timestamp(int(text), unit="ns", tz="UTC").isoformat()
    return text[:16]


def _breakers(run: FinishedRun | None, run_changes: list[dict[str, Any]] | None,
              sessions: Sequence[PaperSession] | None, paper_source: str) -> Check:
    name, threshold = "Circuit breakers exercised", f"all {len(BREAKERS)} tripped at least once"
    sources, tripped = [], {}
    changes = run_changes if run_changes is not None else (_run_state_changes(run) if run is not None else None)
    if changes is not None and run is not None:
        sources.append(str(run.folder / "metrics.json") if run.folder is not None else f"state database, run {run.run_id}")
        tripped.update({k: f"replay {t}" for k, t in _tripped(changes).items()})
    for session in sessions or ():
        for key, when in _tripped(session.state_changes).items():
            tripped.setdefault(key, f"{session.mode} session {session.session_id} {when}")
    if sessions:
        sources.append(paper_source)
    if not sources:
        return Check("breakers", name, NOT_MEASURED, None, threshold, "",
                     "no replay with its trading-state history and no live session found")
    limits = (run.run_info.get("risk") or {}) if run is not None else {}
    missing = [k for k in BREAKERS if k not in tripped]
    seen = "; ".join(f"{k} first tripped in {v}" for k, v in tripped.items())
    if missing:
        hint = ", ".join(f"{k}" + (f" (= {limits[k]})" if k in limits else "") for k in missing)
        detail = (f"never tripped: {hint}. Exercise them: replay a stressed period or with tighter limits "
                  f"(e.g. --config with a lower [risk] value) and check the halt/reduce behaviour")
        detail = f"{detail}; {seen}" if seen else detail
    else:
        detail = seen
    return Check("breakers", name, FAIL if missing else PASS, len(tripped), threshold, " + ".join(sources), detail)


def _paper(sessions: Sequence[PaperSession] | None) -> list[PaperSession]:
    return [s for s in sessions or () if s.mode == "paper"]


def _paper_command(strategy: str) -> str:
    return (f"trade {strategy or 'the strategy'} on a paper account (`tradingd run` with [live] mode = \"paper\") "
            "and pass its state database with --db")


def _paper_days(sessions: Sequence[PaperSession] | None, strategy: str, minimum: int, paper_source: str) -> Check:
    name, threshold = "Paper-trading days", f">= {minimum} days"
    paper = _paper(sessions)
    if sessions is None:
        return Check("paper_days", name, NOT_MEASURED, None, threshold, paper_source,
                     f"no state database to look in: {_paper_command(strategy)}")
    if not paper:
        return Check("paper_days", name, NOT_MEASURED, None, threshold, paper_source,
                     f"no paper session of {strategy}: {_paper_command(strategy)}")
    days: set[Any] = set()
    for s in paper:
        if len(s.equity):
            days.update(pd.DatetimeIndex(s.equity.index).tz_convert("UTC").date)
    count = len(days)
    first, last = (min(days), max(days)) if days else ("", "")
    return Check("paper_days", name, PASS if count >= minimum else FAIL, count, threshold, paper_source,
                 f"{count} UTC days with equity data ({first}..{last}) in {len(paper)} paper session(s)")


def _chains(paper: Sequence[PaperSession]) -> dict[str, list[PaperSession]]:
    """Paper sessions per account, oldest first (by the first equity snapshot)."""
    out: dict[str, list[PaperSession]] = {}
    for s in paper:
        if len(s.equity):
            out.setdefault(s.account, []).append(s)
    for chain in out.values():
        chain.sort(key=lambda s: s.equity.index[0])
    return out


def _backtest_pnl(run: FinishedRun, bars: list[BarSeries], cash: float) -> float:
    """P&L (USD) of the run's exact settings replayed on ``bars`` from ``cash``: last minus first equity."""
    from alerts.sinks import MemoryAlertSink
    from backtest.replay import run_replay
    from research.optimize import DiscardStore

    spec = run_spec(run)
    spec = spec.model_copy(update={"replay": spec.replay.model_copy(update={"starting_cash": cash})})
    result = run_replay(bars, spec, store=DiscardStore(), alerts=MemoryAlertSink(), run_id=f"{run.run_id}-paper")
    equity = np.asarray(result.equity, dtype=float)
    return float(equity[-1] - equity[0]) if len(equity) else 0.0


def _agreement(run: FinishedRun | None, sessions: Sequence[PaperSession] | None, strategy: str,
               paper_source: str) -> Check:
    name = "Paper vs backtest agreement"
    threshold = f"|paper - backtest P&L| / |backtest P&L| <= {MAX_PAPER_DEVIATION:.0%}"
    paper = _paper(sessions)
    if not paper:
        return Check("paper_agreement", name, NOT_MEASURED, None, threshold, paper_source,
                     f"no paper session to compare with: {_paper_command(strategy)}")
    if run is None:
        return Check("paper_agreement", name, NOT_MEASURED, None, threshold, paper_source,
                     "no replay given: its settings are what the paper sessions are compared with")
    chains = _chains(paper)
    paper_pnl = backtest_pnl = floor = 0.0
    parts, notes = [], []
    for account, chain in sorted(chains.items()):
        bars = _merge(series for s in chain for series in s.bars)
        if not bars:
            notes.append(f"account {account}: its sessions journaled no bars")
            continue
        cash = float(chain[0].equity.iloc[0])
        try:
            replayed = _backtest_pnl(run, bars, cash)
        except (RunLoadError, ValueError) as exc:
            return Check("paper_agreement", name, NOT_MEASURED, None, threshold, paper_source,
                         f"cannot replay the run's settings on the paper bars: {exc}")
        traded = float(chain[-1].equity.iloc[-1]) - cash
        paper_pnl, backtest_pnl, floor = paper_pnl + traded, backtest_pnl + replayed, floor + _PNL_FLOOR * cash
        parts.append(f"account {account}: paper {traded:+,.2f} USD vs backtest {replayed:+,.2f} USD on "
                     f"{sum(len(b) for b in bars):,} bars of {len(chain)} session(s)")
        if any(s.params != run.params for s in chain):
            notes.append(f"account {account} traded other parameters than the run ({chain[-1].params})")
    if not parts:
        return Check("paper_agreement", name, NOT_MEASURED, None, threshold, paper_source,
                     "; ".join(notes) or "the paper sessions hold no equity data")
    deviation = abs(paper_pnl - backtest_pnl) / max(abs(backtest_pnl), floor)
    detail = "; ".join(parts + notes) + (f"; deviation {deviation:.1%} (P&Ls below {_PNL_FLOOR:.1%} of equity compare "
                                         "on that scale)")
    return Check("paper_agreement", name, PASS if deviation <= MAX_PAPER_DEVIATION else FAIL, deviation, threshold,
                 paper_source, detail)


def _merge(series: Iterable[BarSeries]) -> list[BarSeries]:
    """One series per symbol (symbol order) from the sessions' series: concatenated, sorted by
    start, duplicate starts dropped (the first kept)."""
    by_symbol: dict[str, list[BarSeries]] = {}
    for s in series:
        if len(s):
            by_symbol.setdefault(s.symbol, []).append(s)
    out = []
    for symbol in sorted(by_symbol):
        parts = by_symbol[symbol]
        starts = np.concatenate([p.ts_event for p in parts])
        _, first = np.unique(starts, return_index=True)  # sorted unique starts, first occurrence of each
        o, h, low, c, v = (np.concatenate([getattr(p, name) for p in parts])[first]
                           for name in ("open", "high", "low", "close", "volume"))
        out.append(BarSeries(symbol, parts[0].timeframe_ns, starts[first], o, h, low, c, v))
    return out


def evaluate(run: FinishedRun | None, *, run_ref: str = "RUN", walkforward: StudyEvidence | None = None,
             study: StudyEvidence | None = None, sessions: Sequence[PaperSession] | None = None,
             paper_source: str = "", run_changes: list[dict[str, Any]] | None = None,
             evidence_dir: Path | None = None, min_paper_days: int = MIN_PAPER_DAYS,
             strategy: str | None = None) -> Readiness:
    """Evaluate the checklist from the evidence given.

    Parameters
    ----------
    run : FinishedRun or None
        The replay judged (``None``: only a study was given; its lines are not measured).
    run_ref : str
        How the user named the run (a folder or id), for the commands in the details.
    walkforward, study : StudyEvidence, optional
        ``--walkforward`` and ``--study`` folders (:func:`load_study_folder`); a walk-forward
        given as ``study`` counts for the walk-forward line too.
    sessions : sequence of PaperSession, optional
        Live and paper sessions of the strategy from the state database; ``None`` when no
        database was looked in (paper lines not measured), empty when it holds none.
    paper_source : str
        Where ``sessions`` came from (the database, its password hidden).
    run_changes : list of dict, optional
        The run's trading-state changes when the run itself does not hold them (a run read from
        the database); default: its ``metrics.json`` ``state_changes`` or ``breakers.csv``.
    evidence_dir : Path, optional
        The folder holding ``robustness/``, ``benchmark/`` and ``montecarlo/`` of the run
        (:func:`daemon.run_source.default_out_dir`'s parent).
    min_paper_days : int, default :data:`MIN_PAPER_DAYS`
    strategy : str, optional
        Strategy id when ``run`` is ``None``.

    Returns
    -------
    Readiness

    Raises
    ------
    ReadinessError
        If a study or walk-forward is of another strategy than the run, or ``min_paper_days < 1``.
    """
    if min_paper_days < 1:
        raise ReadinessError(f"--min-paper-days {min_paper_days}: must be 1 or more")
    name = run.strategy if run is not None else (strategy or "")
    for option, evidence in (("--walkforward", walkforward), ("--study", study)):
        if evidence is not None and evidence.strategy and name and evidence.strategy != name:
            raise ReadinessError(f"{option} {evidence.folder} studied strategy {evidence.strategy!r}, but the run is "
                                 f"{name!r}: give evidence of the same strategy")
    wf = walkforward if walkforward is not None else (study if study is not None and study.kind == "walkforward"
                                                      else None)
    studies = [s for s in (walkforward, study) if s is not None]
    if walkforward is not None and study is not None and walkforward.folder.resolve() == study.folder.resolve():
        studies = [walkforward]
    checks = (
        _sharpe(run),
        _walkforward(wf, name),
        _overfitting(studies, name),
        _robustness(run, run_ref, evidence_dir),
        _benchmark(run, run_ref, evidence_dir),
        _montecarlo(run, run_ref, evidence_dir),
        _breakers(run, run_changes, sessions, paper_source),
        _paper_days(sessions, name, min_paper_days, paper_source),
        _agreement(run, sessions, name, paper_source),
    )
    return Readiness(run.run_id if run is not None else None, name, checks)


def write_readiness(readiness: Readiness, out_dir: str | Path, title: str | None = None) -> list[str]:
    """Write ``readiness.json`` (:meth:`Readiness.to_dict`) and ``report.html``
    (:mod:`research.reports.readiness_page`) into ``out_dir`` (created), each moved into place
    whole. Returns the names written.

    Raises
    ------
    OSError
        If a file cannot be written.
    """
    from research.reports.readiness_page import write_readiness_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_whole(out / "readiness.json", json.dumps(readiness.to_dict(), indent=2, allow_nan=False, default=str) + "\n")
    write_readiness_report(readiness, out / "report.html", title=title)
    return ["readiness.json", "report.html"]
