"""The data files of a study (:func:`write_study_outputs`): ``trials.csv`` (every trial) and
``summary.json`` (the machine summary). The study report (:mod:`research.reports.study_page`)
writes ``report.html``, ``report.pdf`` and ``summary.txt``.
"""

from __future__ import annotations

import csv
import json
import math
import os
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


def write_study_outputs(result: StudyResult, out_dir: str | Path) -> list[str]:
    """Write ``trials.csv`` (every trial: params, metrics, status, reason) and ``summary.json``
    into ``out_dir`` (created). ``summary.txt`` is the study report's
    (:func:`research.reports.study_page.write_study_report`), written once with every section.

    Each file is written to a temporary name and moved into place, so a reader never sees half a
    file. Returns the names written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, write in (("trials.csv", lambda p: _trials_csv(result, p)),
                        ("summary.json", lambda p: p.write_text(json.dumps(_summary(result), indent=2,
                                                                           default=_json_default) + "\n"))):
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
