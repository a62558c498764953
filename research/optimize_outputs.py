"""The output files of a study (:func:`write_study_outputs`): ``trials.csv`` (every trial),
``summary.json`` (the machine summary) and ``summary.txt`` (optimization summary and top 10).
The study report (:mod:`research.reports.study_page`) adds ``report.html`` and the full text.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from research.optimize_objectives import METRIC_KEYS
from research.optimize_records import COUNTED, StudyResult

__all__ = ["write_study_outputs"]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _trials_csv(result: StudyResult, path: Path) -> None:
    value_columns = ["value"] if len(result.objectives) == 1 else [f"value_{n}" for n in result.objectives]
    keys = result.space.keys
    header = ["number", "status", "state", "reason", "cached", *value_columns, *keys, *METRIC_KEYS, "replay_s", "started",
              "duration_s"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for t in result.trials:
            values = list(t.values) if t.values is not None else [None] * len(value_columns)
            metrics = t.metrics or {}
            writer.writerow([_cell(v) for v in (
                t.number, t.status, t.state, t.reason, t.cached, *values, *(t.params.get(k) for k in keys),
                *(metrics.get(k) for k in METRIC_KEYS), t.replay_s,
                t.started.astimezone(timezone.utc).isoformat() if t.started is not None else None, t.duration_s)])


def _summary(result: StudyResult) -> dict[str, Any]:
    counts = result.counts()
    best = result.best
    return {
        "study": result.study_name, "storage": result.storage, "strategy": result.strategy, "method": result.method,
        "objectives": [{"name": n, "direction": d} for n, d in zip(result.objectives, result.directions)],
        "space": result.space.source, "period": {"start": result.period[0], "end": result.period[1]},
        "timeframe": result.timeframe, "seed": result.seed, "pruning": result.pruning, "filters": result.filters.to_dict(),
        "trials": {"target": result.target, "total": len(result.trials), "counted": sum(counts.get(s, 0) for s in COUNTED),
                   **{s: counts.get(s, 0) for s in ("complete", "filtered", "pruned", "failed", "skipped",
                                                     "interrupted")},
                   "new": result.new_trials, "replays": result.replays, "cache_hits": result.cache_hits},
        "grid_size": result.grid_size, "runtime_s": result.runtime_s, "replay_s": result.replay_s,
        "interrupted": result.interrupted,
        "best": best.to_dict() if best is not None else None,
        "pareto_front": [t.to_dict() for t in result.pareto] if len(result.objectives) > 1 else None,
        "top": [t.to_dict() for t in result.ranked[:10]],
    }


def _fmt(value: Any, kind: str = "num") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{int(value)}"
    return f"{value:.3f}"


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k.removeprefix('params.')}={v:.6g}" if isinstance(v, float) else f"{k.removeprefix('params.')}={v}"
                     for k, v in params.items())


def _summary_text(result: StudyResult) -> str:
    counts = result.counts()
    objectives = ", ".join(f"{n} ({d})" for n, d in zip(result.objectives, result.directions))
    counted = sum(counts.get(s, 0) for s in COUNTED)
    per_trial = result.runtime_s / result.new_trials if result.new_trials else None
    filters = result.filters
    lines = ["optimization summary",
             f"  study      {result.study_name} ({result.storage})",
             f"  strategy   {result.strategy}; space {result.space.source}",
             f"  method     {result.method}" + (f" ({result.grid_size:,} grid combinations)" if result.grid_size else "")
             + f", seed {result.seed}, pruning {'on' if result.pruning else 'off'}",
             f"  metric     {objectives}",
             f"  period     {result.period[0]} .. {result.period[1]} ({result.timeframe} bars)",
             f"  trials     {counted} of {result.target}: " + ", ".join(
                 f"{counts.get(s, 0)} {s}" for s in ("complete", "filtered", "pruned", "failed"))
             + f" ({counts.get('skipped', 0)} skipped by constraints, {counts.get('interrupted', 0)} interrupted)",
             f"  this run   {result.new_trials} trials, {result.replays} replays, {result.cache_hits} from the cache"
             + (" (interrupted)" if result.interrupted else ""),
             f"  filters    min trades {filters.min_trades}, max drawdown {filters.max_drawdown or 'none'}, "
             f"min win rate {filters.min_win_rate or 'none'}",
             f"  runtime    {result.runtime_s:.1f} s" + (f" ({per_trial:.2f} s per trial)" if per_trial else ""),
             ""]
    if len(result.objectives) > 1:
        lines.append(f"pareto front: {len(result.pareto)} trials (ranked first below)")
        lines.append("")
    lines.append("top 10")
    header = (f"  {'rank':>4} {'trial':>5} {'sharpe':>8} {'return':>9} {'max dd':>8} {'win rate':>8} {'trades':>6}"
              "  parameters")
    lines.append(header)
    for rank, t in enumerate(result.ranked[:10], 1):
        m = t.metrics or {}
        lines.append(f"  {rank:>4} {t.number:>5} {_fmt(m.get('sharpe')):>8} {_fmt(m.get('total_return'), 'pct'):>9} "
                     f"{_fmt(m.get('max_drawdown'), 'pct'):>8} {_fmt(m.get('win_rate'), 'pct'):>8} "
                     f"{_fmt(m.get('trades'), 'int'):>6}  {_params_text(t.params)}")
    if not result.ranked:
        lines.append("  (no trial passed the filters)")
    return "\n".join(lines) + "\n"


def write_study_outputs(result: StudyResult, out_dir: str | Path) -> list[str]:
    """Write ``trials.csv`` (every trial: params, metrics, status, reason), ``summary.json`` and
    ``summary.txt`` (sections "optimization summary" and "top 10") into ``out_dir`` (created).

    Each file is written to a temporary name and moved into place, so a reader never sees half a
    file. Returns the names written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, write in (("trials.csv", lambda p: _trials_csv(result, p)),
                        ("summary.json", lambda p: p.write_text(json.dumps(_summary(result), indent=2,
                                                                           default=_json_default) + "\n")),
                        ("summary.txt", lambda p: p.write_text(_summary_text(result)))):
        tmp = out / f".{name}.tmp"
        write(tmp)
        os.replace(tmp, out / name)
        written.append(name)
    return written


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)
