"""Write a replay's output folder: metrics.json, equity.csv, trades.csv, fills.csv, orders.csv,
positions.csv, breakers.csv, schema.json and report.html. CSV times are ISO-8601 UTC; money USD;
fractions, not percent. ``schema.json`` (:mod:`research.output_schema`) documents every column."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.replay import ReplayResult
from core.enums import TradingState
from core.ports import Decision
from research.benchmark import NONE, BenchmarkCurve, benchmark_curve
from research.frames import closes_series, decisions_frame, fills_frame, linked_trades_frame, orders_frame, positions_frame
from research.metrics import PerformanceMetrics, _check_equity, compute_metrics
from research.output_schema import schema_document
from research.report import write_report
from research.risk_metrics import compute_risk_metrics
from research.state_history import state_changes_frame, state_spells
from research.trade_stats import CostTotals, cost_totals, trade_summary

__all__ = ["OUTPUT_FILES", "ReplaySummary", "StateHistory", "duration_dict", "summarize", "write_outputs"]

OUTPUT_FILES = ("metrics.json", "equity.csv", "trades.csv", "fills.csv", "orders.csv", "positions.csv",
                "decisions.csv", "breakers.csv", "schema.json", "report.html")
"""Every file a replay writes (report.html only when asked)."""
_ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class StateHistory:
    """The trading-state story of a run, for metrics.json and the CLI summary.

    Attributes
    ----------
    changes : pd.DataFrame
        Every change (columns time (UTC), previous, current, reason), as in ``breakers.csv``.
    final : TradingState
        State at the end.
    reason : str
        Why it is in ``final``.
    since : pd.Timestamp or None
        When the final non-ACTIVE state was entered (UTC); ``None`` when ACTIVE at the end.
    time_in : dict[str, pd.Timedelta]
        Replay time spent ``"reducing"`` and ``"halted"``.
    span : pd.Timedelta
        Length of the run (first to last equity point).
    """

    changes: pd.DataFrame
    final: TradingState
    reason: str
    since: pd.Timestamp | None
    time_in: dict[str, pd.Timedelta]
    span: pd.Timedelta


@dataclass(frozen=True)
class ReplaySummary:
    """Strategy and benchmark metrics of one replay, its costs and trading-state history, plus
    where the files went.

    ``benchmark`` is ``None`` with the ``none`` benchmark. ``files`` lists the files written
    (empty when nothing was written).
    """

    metrics: PerformanceMetrics
    benchmark: PerformanceMetrics | None
    out_dir: Path | None
    benchmark_name: str = NONE
    benchmark_label: str = NONE
    benchmark_rule: str = ""
    costs: CostTotals = CostTotals(0.0, 0.0, 0)
    state: StateHistory | None = None
    files: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics as stored with the run: ``strategy`` and ``benchmark`` (JSON-safe
        metric dicts, ``benchmark`` ``None`` without one) and ``benchmark_name``."""
        return {"strategy": self.metrics.to_dict(),
                "benchmark": self.benchmark.to_dict() if self.benchmark is not None else None,
                "benchmark_name": self.benchmark_name}


def duration_dict(value: pd.Timedelta, span: pd.Timedelta | None = None) -> dict[str, Any]:
    """Return a duration as numbers and text: ``seconds``, ``days`` (floats), ``text`` and, with
    ``span``, ``fraction`` (of the span; ``None`` when the span is 0).

    Examples
    --------
    >>> duration_dict(pd.Timedelta(hours=36), pd.Timedelta(days=3))
    {'seconds': 129600.0, 'days': 1.5, 'text': '1 days 12:00:00', 'fraction': 0.5}
    """
    out: dict[str, Any] = {"seconds": value.total_seconds(), "days": value / pd.Timedelta(days=1), "text": str(value)}
    if span is not None:
        out["fraction"] = value / span if span > pd.Timedelta(0) else None
    return out


def _state_history(result: ReplayResult, start: pd.Timestamp, end: pd.Timestamp) -> StateHistory:
    changes = state_changes_frame(result.state_changes)
    time_in = {TradingState.REDUCING.value: pd.Timedelta(0), TradingState.HALTED.value: pd.Timedelta(0)}
    for spell in state_spells(result.state_changes, end):
        time_in[spell.state.value] += max(pd.Timedelta(0), min(spell.end, end) - max(spell.start, start))
    since = None
    final = result.trading_state
    if final is not TradingState.ACTIVE:
        entered = changes[(changes["current"] == final.value) & (changes["previous"] != final.value)]
        since = entered["time"].iloc[-1] if len(entered) else start  # restored in that state: since the start
    return StateHistory(changes, final, result.trading_state_reason, since, time_in, end - start)


@dataclass(frozen=True)
class _Computed:
    summary: ReplaySummary
    frames: dict[str, pd.DataFrame]  # trades, fills, orders, positions
    equity: pd.Series  # USD on the bar-end UTC index (named "time"), the result's own array
    exposure: pd.Series  # fraction, same index
    benchmark: BenchmarkCurve | None
    closes: dict[str, pd.Series]


def _compute(result: ReplayResult, benchmark: str | None) -> _Computed:
    # The curve stays the result's arrays: the index shares equity_ts and the series share the
    # columns (pandas copies by default, 8 bytes a bar each); only exposure is a new column.
    index = pd.DatetimeIndex(result.equity_ts, dtype="datetime64[ns, UTC]", copy=False, name="time")
    equity = pd.Series(result.equity, index=index, name="equity", copy=False)
    _check_equity(equity)  # a bad curve is refused before any frame is built
    with np.errstate(divide="ignore", invalid="ignore"):  # as pandas divides: inf or NaN at zero equity
        exposure = pd.Series(np.divide(result.gross_exposure, result.equity), index=index, name="exposure",
                             copy=False)
    frames = {"trades": linked_trades_frame(result), "fills": fills_frame(result), "orders": orders_frame(result),
              "positions": positions_frame(result)}
    metrics = compute_metrics(equity, trades=frames["trades"], fills=frames["fills"], exposure=exposure)
    closes = closes_series(result, index)
    curve = benchmark_curve(benchmark, closes, result.starting_cash, index)
    # the benchmark's own exposure: cash waiting for a later-starting symbol is not invested
    bench_metrics = compute_metrics(curve.equity, exposure=curve.exposure) if curve is not None else None
    state = _state_history(result, index[0], index[-1])
    summary = ReplaySummary(metrics, bench_metrics, None, curve.name if curve else NONE,
                            curve.label if curve else NONE, curve.rule if curve else "",
                            cost_totals(frames["fills"]), state)
    return _Computed(summary, frames, equity, exposure, curve, closes)


def summarize(result: ReplayResult, benchmark: str | None = None) -> ReplaySummary:
    """Compute the metrics of the strategy and of a benchmark, costs and trading-state history.

    Parameters
    ----------
    result : ReplayResult
        A finished replay.
    benchmark : str, optional
        Benchmark name (:func:`research.benchmark.resolve_benchmark`); default SPY buy-and-hold
        when SPY is in the data, else equal weight rebalanced monthly.

    Returns
    -------
    ReplaySummary
        With ``out_dir`` ``None`` and no files.

    Raises
    ------
    research.benchmark.BenchmarkError
        For an unknown benchmark or a benchmark symbol not in the data.
    """
    return _compute(result, benchmark).summary


_CSV_CHUNK_ROWS = 16384
"""Rows formatted at a time by :func:`_write_csv` (bounds the memory of the text)."""
_NAT_NS = np.iinfo(np.int64).min


def _quoted_characters() -> str:
    """The characters that make the csv module quote a field the way pandas' ``to_csv`` calls it
    (QUOTE_MINIMAL, ``lineterminator="\\n"``): asked of the module itself, since Python
    versions differ (whether a lone ``\\r`` is quoted)."""
    found = ""
    for character in ',"\r\n':
        sink = io.StringIO()
        csv.writer(sink, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerow([f"a{character}b", "c"])
        if sink.getvalue().startswith('"'):
            found += character
    return found


_NEEDS_QUOTES = re.compile("[" + re.escape(_quoted_characters()) + "]")


def _float_cells(values: np.ndarray) -> np.ndarray:
    """``repr`` of each float64 (NaN as the empty cell) as an object array of str.

    Formatting a float costs ~0.4 us; equity curves repeat values for long stretches (flat cash,
    zero exposure, a constant benchmark weight), so each run of bit-identical values is formatted
    once (bits, not ``==``: -0.0 and 0.0 print differently).
    """
    n = len(values)
    if n == 0:
        return np.empty(0, dtype=object)
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.int64)
    starts = np.flatnonzero(np.concatenate(([True], bits[1:] != bits[:-1])))
    distinct = values[starts]
    texts = np.array(list(map(repr, distinct.tolist())) + [""], dtype=object)[:-1]
    texts[np.isnan(distinct)] = ""  # pandas' empty na_rep
    if len(starts) == n:
        return texts
    run = np.zeros(n, dtype=np.intp)
    run[starts[1:]] = 1
    return texts[np.cumsum(run)]


def _text_cell(value: Any) -> str:
    """One cell as the csv module writes it with QUOTE_MINIMAL (None, NA and NaN empty)."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return ""
    text = str(value)
    if _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _is_utc(dtype: Any) -> bool:
    return isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"


def _fast_csv_dtype(dtype: Any) -> bool:
    """Whether :func:`_column_cells` formats this dtype exactly as pandas does."""
    return (_is_utc(dtype) or dtype == np.float64 or dtype == np.int64 or dtype == np.bool_ or dtype == object
            or isinstance(dtype, pd.StringDtype))


def _stamp_cells(ns: np.ndarray) -> np.ndarray:
    """int64 ns UTC (NaT as int64 min) as ``_ISO`` text, NaT as the empty cell."""
    stamps: np.ndarray[Any, np.dtype[np.datetime64]] = ns.view("datetime64[ns]")
    text = np.array(np.datetime_as_string(stamps, unit="us", timezone="UTC").tolist() + [""], dtype=object)[:-1]
    text[ns == _NAT_NS] = ""
    return text


def _column_cells(column: pd.Series) -> np.ndarray:
    """The CSV text of every cell of ``column`` (a :func:`_fast_csv_dtype`), as
    ``DataFrame.to_csv`` writes it after :func:`_iso` (UTC datetimes as ``_ISO``; NaN, NaT, NA
    and None as empty cells)."""
    dtype = column.dtype
    if _is_utc(dtype):
        return _stamp_cells(column.dt.as_unit("ns").dt.tz_localize(None).to_numpy().view(np.int64))
    if dtype == np.float64:
        return _float_cells(column.to_numpy())
    if dtype == np.int64 or dtype == np.bool_:
        return np.array(list(map(str, column.tolist())) + [""], dtype=object)[:-1]
    return np.array([_text_cell(v) for v in column.tolist()] + [""], dtype=object)[:-1]


Cells = Callable[[int, int], np.ndarray]
"""The CSV text of rows ``[low, high)`` of one column; called for consecutive row ranges, in order."""


def _write_rows(path: Path, names: list[Any], columns: list[Cells], rows: int) -> None:
    """Write the header ``names`` and ``rows`` rows of ``columns`` (joined in C), in chunks of
    :data:`_CSV_CHUNK_ROWS` rows: only one chunk's text exists at a time."""
    with open(path, "w", encoding="utf-8", newline="") as sink:
        sink.write(",".join(_text_cell(name) for name in names) + "\n")
        for low in range(0, rows, _CSV_CHUNK_ROWS):
            high = min(low + _CSV_CHUNK_ROWS, rows)
            cells = [column(low, high).tolist() for column in columns]
            sink.write("\n".join(map(",".join, zip(*cells))))
            sink.write("\n")


def _floats(values: np.ndarray) -> Cells:
    return lambda low, high: _float_cells(values[low:high])


def _write_csv(frame: pd.DataFrame, path: Path, extra: dict[str, np.ndarray] | None = None) -> None:
    """Write ``frame`` (plus ``extra`` float64 columns of its length, appended in order) exactly
    as ``_iso(frame, <its UTC datetime columns>).to_csv(path, index=False)`` would, byte for
    byte, in chunks of :data:`_CSV_CHUNK_ROWS` rows.

    pandas formats every cell through a generic object path (~5 us per row of the equity
    curve); here each column of a chunk is formatted in bulk and the rows are joined in C, and
    only one chunk's text exists at a time. A frame with a dtype not handled here goes through
    pandas.
    """
    extra = extra or {}
    if not all(_fast_csv_dtype(dtype) for dtype in frame.dtypes) or len(frame.columns) + len(extra) < 2:
        frame = frame.assign(**extra) if extra else frame
        utc = [str(name) for name, dtype in frame.dtypes.items() if _is_utc(dtype)]
        _iso(frame, utc).to_csv(path, index=False)  # rare shapes (one column: the csv module's quoting rules)
        return

    def cells(column: pd.Series) -> Cells:
        return lambda low, high: _column_cells(column.iloc[low:high])

    columns = [cells(frame.iloc[:, k]) for k in range(frame.shape[1])]
    columns += [_floats(np.asarray(values, dtype=np.float64)) for values in extra.values()]
    _write_rows(path, [*frame.columns, *extra], columns, len(frame))


EQUITY_COLUMNS = ("time", "cash", "equity", "gross_exposure", "exposure", "drawdown")
"""Columns of ``equity.csv`` (then ``benchmark`` and ``benchmark_exposure`` with a benchmark)."""


def _write_equity_csv(path: Path, result: ReplayResult, exposure: np.ndarray, curve: BenchmarkCurve | None) -> None:
    """Write ``equity.csv`` straight from the result's arrays: times UTC (bar end), cash, equity,
    gross exposure (USD), exposure (fraction), drawdown (fraction <= 0 from the running peak)
    and, with a benchmark, its equity (USD) and exposure (fraction).

    The bytes of ``_write_csv(research.frames.equity_frame(result), path, <benchmark columns>)``;
    the drawdown is computed a chunk at a time from the running peak (the same
    ``equity / peak - 1`` as :func:`research.metrics.drawdown_series`), so no column is built
    for the file.
    """
    equity = np.asarray(result.equity, dtype=np.float64)
    peak = -np.inf

    def drawdown(low: int, high: int) -> np.ndarray:
        nonlocal peak
        part = equity[low:high]
        block = np.maximum.accumulate(part)
        np.maximum(block, peak, out=block)
        peak = block[-1]
        np.divide(part, block, out=block)
        np.subtract(block, 1.0, out=block)
        return _float_cells(block)

    ns = np.asarray(result.equity_ts, dtype=np.int64)
    columns: list[Cells] = [lambda low, high: _stamp_cells(ns[low:high]), _floats(result.cash), _floats(equity),
                            _floats(result.gross_exposure), _floats(exposure), drawdown]
    names: list[Any] = list(EQUITY_COLUMNS)
    if curve is not None:
        columns += [_floats(curve.equity.to_numpy()), _floats(curve.exposure.to_numpy())]
        names += ["benchmark", "benchmark_exposure"]
    _write_rows(path, names, columns, len(ns))


def _iso(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    for column in columns:
        frame[column] = frame[column].dt.strftime(_ISO)
    return frame


def _finite(value: Any) -> Any:
    """``value`` with NaN/inf floats as ``None`` (metrics.json is strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _trade_stats(trades: pd.DataFrame) -> dict[str, Any]:
    stats = trade_summary(trades)
    out: dict[str, Any] = {"trades": stats.trades, "winners": stats.winners, "losers": stats.losers,
                           "avg_win": stats.avg_win, "avg_loss": stats.avg_loss, "payoff_ratio": stats.payoff_ratio,
                           "largest_win": stats.largest_win, "largest_loss": stats.largest_loss}
    for name in ("avg_holding", "avg_holding_win", "avg_holding_loss"):
        value = getattr(stats, name)
        out[name] = duration_dict(value) if value is not None else None
    return out


def _risk(computed: _Computed) -> dict[str, Any]:
    """The ``risk`` block: :class:`research.risk_metrics.RiskMetrics` of the strategy and of the
    benchmark (``None`` without one), each annualised with its own periods per year."""
    summary, curve = computed.summary, computed.benchmark
    bench = None
    if curve is not None and summary.benchmark is not None:
        bench = compute_risk_metrics(curve.equity, summary.benchmark.periods_per_year).to_dict()
    return {"strategy": compute_risk_metrics(computed.equity, summary.metrics.periods_per_year).to_dict(),
            "benchmark": bench}


def _payload(result: ReplayResult, computed: _Computed, run_info: dict[str, Any]) -> dict[str, Any]:
    summary = computed.summary
    state = summary.state
    assert state is not None  # always set by _compute
    costs = summary.costs
    changes = state.changes
    return _finite({
        "run": {**run_info, "symbols": list(result.symbols), "benchmark": summary.benchmark_name},
        "strategy": summary.metrics.to_dict(),
        "benchmark": summary.benchmark.to_dict() if summary.benchmark is not None else None,
        "benchmark_name": summary.benchmark_name, "benchmark_label": summary.benchmark_label,
        "benchmark_rule": summary.benchmark_rule,
        "risk": _risk(computed),
        "exposure": {"strategy": summary.metrics.exposure,
                     "benchmark": summary.benchmark.exposure if summary.benchmark is not None else None},
        "costs": {"commission": costs.commission, "slippage": costs.slippage, "total": costs.total,
                  "fills": costs.fills},
        "trading_state": state.final.value, "trading_state_reason": state.reason,
        "trading_state_since": state.since.strftime(_ISO) if state.since is not None else None,
        "state_changes": [{"time": t.strftime(_ISO), "previous": p, "current": c, "reason": r}
                          for t, p, c, r in zip(changes["time"], changes["previous"], changes["current"],
                                                changes["reason"])],
        "time_in_state": {name: duration_dict(spent, state.span) for name, spent in state.time_in.items()},
        "trade_stats": _trade_stats(computed.frames["trades"]),
        "orders": {"denied": result.denied, "denied_while_halted": result.denied_while_halted,
                   "rejected": result.rejected},
        "open_positions": len(computed.frames["positions"]),
        "bars": result.bars, "dropped_bars": result.dropped_bars, "strategy_enabled": result.strategy_enabled,
    })


def _remove_leftovers(out_dir: Path, written: set[str]) -> None:
    """Remove temporary files of an earlier, killed run and outputs of an earlier run this run
    does not rewrite (a stale report.html would describe another run)."""
    for path in out_dir.iterdir():
        name = path.name
        stale_tmp = (name.startswith(".") and name.endswith(".tmp")) or name == "report.html.tmp"
        if (stale_tmp or (name in OUTPUT_FILES and name not in written)) and path.is_file():
            path.unlink(missing_ok=True)


def write_outputs(result: ReplayResult, out_dir: Path, run_info: dict[str, Any], report: bool = True,
                  benchmark: str | None = None, decisions: Sequence[Decision] = ()) -> ReplaySummary:
    """Write every output file of ``result`` into ``out_dir`` (created if missing).

    Data files are written to hidden temporary names (``.<name>.tmp``) and renamed together at the
    end, then the report (which makes its own temporary file), so an interrupted run never leaves
    a half-written file under a final name. Temporary files left by a killed earlier run, and an
    earlier run's outputs this run does not write (``report.html`` with ``report=False``), are
    removed first.

    Parameters
    ----------
    result : ReplayResult
        A finished replay.
    out_dir : Path
        Output folder.
    run_info : dict
        Run information (id, strategy, params, settings, hashes) for metrics.json and the report;
        ``symbols`` and ``benchmark`` are set from the run.
    report : bool, default True
        Also write ``report.html``.
    benchmark : str, optional
        Benchmark name (see :func:`summarize`).
    decisions : sequence of Decision, optional
        The run's decisions (the store's, in time order) for ``decisions.csv``; none gives a
        header-only file.

    Returns
    -------
    ReplaySummary
        With ``out_dir`` and ``files`` set.

    Raises
    ------
    research.benchmark.BenchmarkError
        For an unknown benchmark or a benchmark symbol not in the data (before anything is written).
    OSError
        If a file cannot be written.
    """
    computed = _compute(result, benchmark)
    summary, frames, curve = computed.summary, computed.frames, computed.benchmark
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [name for name in OUTPUT_FILES if report or name != "report.html"]
    _remove_leftovers(out_dir, set(files))
    pending: list[tuple[Path, Path]] = []

    def target(name: str) -> Path:
        final = out_dir / name
        tmp = out_dir / f".{name}.tmp"
        pending.append((tmp, final))
        return tmp

    _write_equity_csv(target("equity.csv"), result, computed.exposure.to_numpy(), curve)
    for name in ("trades", "fills", "orders", "positions"):
        _write_csv(frames[name], target(f"{name}.csv"))
    assert summary.state is not None
    _write_csv(summary.state.changes, target("breakers.csv"))
    _write_csv(decisions_frame(decisions), target("decisions.csv"))
    target("schema.json").write_text(json.dumps(schema_document(files), indent=2))
    payload = _payload(result, computed, run_info)
    target("metrics.json").write_text(json.dumps(payload, indent=2, sort_keys=True, default=str, allow_nan=False))
    for tmp, final in pending:
        os.replace(tmp, final)
    equity, exposure, closes = computed.equity, computed.exposure, computed.closes
    bench_equity = curve.equity if curve is not None else None
    # the benchmark's exposure column is written and the report does not show it: let it go
    # before the report's own temporaries (8 bytes a bar)
    del computed, curve
    if report:
        write_report(out_dir / "report.html", equity, bench_equity, summary.metrics,
                     summary.benchmark, frames["trades"], closes,
                     title=f"tradingd replay: {result.strategy_id}", run_info=payload["run"], fills=frames["fills"],
                     exposure=exposure, state_changes=result.state_changes, positions=result.positions,
                     benchmark_name=summary.benchmark_label)
    return ReplaySummary(summary.metrics, summary.benchmark, out_dir, summary.benchmark_name, summary.benchmark_label,
                         summary.benchmark_rule, summary.costs, summary.state, tuple(files))
