"""The study report (report.html, summary.txt, report.pdf) as a trader reads it.

A real small study (sma_cross, an 8-combination grid over SPY hourly bars 2018-2019, ~3,500 bars)
and a real small walk-forward (4 folds of 1 year / 6 months) feed the report; the measures behind
the sensitivity, importance, heat map, Pareto front and recommendation are checked on hand-built
landscapes whose answer is known.
"""

from __future__ import annotations

import html as html_module
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
import plotly.offline
import pytest

from backtest.spec import RunSpec
from research.optimize import StudyData, StudyResult, TrialFilters, TrialRecord, run_study
from research.reports.study_charts import (analyse_study, pair_surface, parameter_importance, parameter_sensitivity,
                                           pareto_view, study_landscape)
from research.reports.study_page import REPORT_FILES, write_study_report
from research.reports.study_text import SECTIONS
from research.search_space import parse_space
from research.study_stats import study_statistics
from research.walk_forward import walk_forward, write_walk_forward_outputs

SPY = Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"
BASE = RunSpec(strategy="sma_cross")
FEW = TrialFilters(min_trades=3)
GRID = {"params": {"fast": {"type": "int", "low": 5, "high": 20, "step": 5},
                   "slow": {"type": "int", "low": 30, "high": 60, "step": 30}}}
PLOTLY_JS_HEAD = plotly.offline.get_plotlyjs()[:300]


def _utc(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def data() -> StudyData:
    return StudyData.load([SPY], start=_utc(2018), end=_utc(2020))


@pytest.fixture(scope="module")
def study(data: StudyData) -> StudyResult:
    return run_study(BASE, parse_space(GRID, strategy="sma_cross"), data, storage=optuna.storages.InMemoryStorage(),
                     method="grid", filters=FEW)


@pytest.fixture(scope="module")
def statistics(study: StudyResult, data: StudyData) -> dict[str, Any]:
    return study_statistics(study, data)


@pytest.fixture(scope="module")
def report(study: StudyResult, data: StudyData, statistics: dict[str, Any],
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_study_report(study, tmp_path_factory.mktemp("study") / "out", data=data, statistics=statistics)


@pytest.fixture(scope="module")
def wf_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Path]]:
    data = StudyData.load([SPY], start=_utc(2017), end=_utc(2020))
    space = parse_space({"params": {"fast": {"type": "int", "low": 5, "high": 10, "step": 5},
                                    "slow": {"type": "int", "low": 30, "high": 60, "step": 30}}}, strategy="sma_cross")
    wf = walk_forward(BASE, space, data, storage=optuna.storages.InMemoryStorage(), train="1y", test="6m",
                      method="grid", n_trials=None, filters=FEW)
    assert wf.final_study is not None
    return wf, write_study_report(wf.final_study, tmp_path_factory.mktemp("wf"), walk_forward=wf, data=data)


# --- hand-built landscapes -------------------------------------------------------------------------

def _landscape_study(rows: list[tuple[dict[str, Any], dict[str, float]]], space: dict[str, Any],
                     objectives: tuple[str, ...] = ("sharpe",)) -> StudyResult:
    """A finished study whose trials have the given params and metrics (ranked best first)."""
    parsed = parse_space(space, strategy="sma_cross")
    directions = tuple("minimize" if o == "max_drawdown" else "maximize" for o in objectives)
    trials = [TrialRecord(i, "complete", "", {k if "." in k else f"params.{k}": v for k, v in params.items()},
                          {"trades": 50, "max_drawdown": 0.1, **metrics}, tuple(metrics[o] for o in objectives))
              for i, (params, metrics) in enumerate(rows)]
    sign = 1.0 if directions[0] == "maximize" else -1.0
    ranked = sorted(trials, key=lambda t: -sign * (t.values or (0.0,))[0])
    return StudyResult("hand", "grid", "sma_cross", objectives, directions, TrialFilters(min_trades=0), parsed,
                       BASE, trials, ranked, ranked[:1], len(trials), len(trials), 0, 0, 0, 1.0, 1.0,
                       ("2020-01-01", "2021-01-01"), "1h", 1, False)


FAST_SLOW = {"params": {"fast": {"type": "int", "low": 2, "high": 10, "step": 2},
                        "slow": {"type": "int", "low": 20, "high": 60, "step": 10}}}


def test_a_flat_parameter_is_robust_and_a_sharp_one_fragile():
    # Sharpe barely moves with fast (0.04 per step of 2) but collapses one step off slow = 40
    rows = [({"fast": f, "slow": s}, {"sharpe": (2.0 if s == 40 else 0.5) - 0.02 * abs(f - 6)})
            for f in (2, 4, 6, 8, 10) for s in (20, 30, 40, 50, 60)]
    result = _landscape_study(rows, FAST_SLOW)
    by_name = {s.name: s for s in parameter_sensitivity(study_landscape(result))}
    assert by_name["fast"].verdict == "robust" and by_name["slow"].verdict == "fragile"
    assert by_name["fast"].labels[by_name["fast"].best_level] == "6"
    assert by_name["slow"].labels[by_name["slow"].best_level] == "40"
    # the drop is of the objective one step either side of the best, over max(|best|, range) = 2.0
    assert by_name["fast"].neighbour_drop == pytest.approx(0.04 / 2.0)
    assert by_name["slow"].neighbour_drop == pytest.approx(1.5 / 2.0)
    assert by_name["slow"].basis == "others at their best"
    assert "fragile" in by_name["slow"].describe("sharpe") and "40" in by_name["slow"].describe("sharpe")


def test_a_minimised_objective_is_judged_by_its_own_direction():
    rows = [({"fast": f, "slow": s}, {"max_drawdown": 0.10 + 0.001 * abs(f - 6) + (0.0 if s == 40 else 0.2)})
            for f in (2, 4, 6, 8, 10) for s in (20, 30, 40, 50, 60)]
    result = _landscape_study(rows, FAST_SLOW, objectives=("max_drawdown",))
    land = study_landscape(result)
    assert land.trials[land.best or 0].params == {"params.fast": 6, "params.slow": 40}
    by_name = {s.name: s for s in parameter_sensitivity(land)}
    assert by_name["fast"].verdict == "robust" and by_name["slow"].verdict == "fragile"
    drop = by_name["slow"].neighbour_drop
    assert drop is not None and drop > 0  # a higher drawdown one step off is a loss, not a gain


def test_importance_ranks_the_parameter_that_moves_the_objective():
    rows = [({"fast": f, "slow": s}, {"sharpe": s / 10 + 0.001 * f})
            for f in (2, 4, 6, 8, 10) for s in (20, 30, 40, 50, 60)]
    items, note = parameter_importance(study_landscape(_landscape_study(rows, FAST_SLOW)),
                                       parse_space(FAST_SLOW, strategy="sma_cross"))
    assert [p.name for p in items] == ["slow", "fast"]
    assert items[0].eta_squared > 0.99 and items[1].eta_squared < 0.01
    first, second = items[0].ped_anova, items[1].ped_anova
    assert first is not None and second is not None and first > second
    assert sum(p.eta_squared for p in items) == pytest.approx(1.0)
    assert "PED-ANOVA" in note


def test_heat_map_cells_hold_the_best_trial_with_those_values():
    space = {**FAST_SLOW, "risk": {"fixed_fraction": {"type": "float", "low": 0.05, "high": 0.15, "step": 0.05}}}
    rows = [({"fast": f, "slow": s, "risk.fixed_fraction": p}, {"sharpe": f + s / 100 + p / 100})
            for f in (2, 4) for s in (20, 30) for p in (0.05, 0.1, 0.15)]
    land = study_landscape(_landscape_study(rows, space))
    pair = pair_surface(land, "params.fast", "params.slow")
    assert pair.z.shape == (2, 2) and (pair.counts == 3).all()
    assert pair.z[1, 1] == pytest.approx(4 + 0.30 + 0.0015)  # slow 30, fast 4, best of the three fractions
    assert pair.best_cell == (1, 1)


def test_pareto_front_keeps_only_non_dominated_trials():
    rows = [({"fast": 2, "slow": 20}, {"sharpe": 1.0, "max_drawdown": 0.10}),
            ({"fast": 4, "slow": 20}, {"sharpe": 2.0, "max_drawdown": 0.20}),
            ({"fast": 6, "slow": 20}, {"sharpe": 0.8, "max_drawdown": 0.15}),  # worse on both than the first
            ({"fast": 8, "slow": 20}, {"sharpe": 1.5, "max_drawdown": 0.12})]
    result = _landscape_study(rows, FAST_SLOW, objectives=("sharpe", "max_drawdown"))
    view = pareto_view(result, study_landscape(result))
    assert view.optimized and view.metrics == ("sharpe", "max_drawdown")
    assert [view.trials[i].params["params.fast"] for i in view.front] == [2, 8, 4]  # by Sharpe


def test_the_recommendation_prefers_a_plateau_to_an_isolated_peak():
    # rank 1 (fast 2, slow 20) is a spike in a poor corner; rank 2 sits on a broad plateau
    def sharpe(f: int, s: int) -> float:
        if (f, s) == (2, 20):
            return 2.0
        return 1.8 - 0.01 * (abs(f - 8) + abs(s - 50) / 10) if f >= 6 and s >= 40 else 0.2
    rows = [({"fast": f, "slow": s}, {"sharpe": sharpe(f, s)}) for f in (2, 4, 6, 8, 10) for s in (20, 30, 40, 50, 60)]
    result = _landscape_study(rows, FAST_SLOW)
    analysis = analyse_study(result)
    rec = analysis.recommendation
    assert rec is not None and rec.rank == 2 and rec.params == {"params.fast": 8, "params.slow": 50}
    assert "rank 2 chosen over rank 1" in rec.reason
    assert rec.strategy_params["fast"] == 8 and rec.strategy_params["slow"] == 50
    assert rec.confidence != "high"  # no overfitting statistics to back it


# --- the real study ----------------------------------------------------------------------------------

def test_report_writes_the_three_files(report: dict[str, Path]):
    assert list(report) == list(REPORT_FILES)
    assert all(p.exists() and p.parent == report["report.html"].parent for p in report.values())
    assert not [p for p in report["report.html"].parent.iterdir() if p.name.endswith(".tmp")]
    pdf = report["report.pdf"].read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) >= 9  # cover, table, 6 chart pages, summary
    html = report["report.html"].read_text()
    assert html.count(PLOTLY_JS_HEAD) == 1  # plotly.js inlined once
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+href=", html)


def test_summary_txt_has_every_section_and_the_top_sets_of_the_study(report: dict[str, Path], study: StudyResult):
    text = report["summary.txt"].read_text()
    titles = [line.split(" (")[0] for line in text.split("\n") if line and not line.startswith(" ")]
    expected = [s for s in SECTIONS if s != "walk-forward"]
    assert [t for t in titles if t.split(" of ")[0] in expected] == [t for t in titles][:len(expected)]
    assert [t.split(" of ")[0] for t in titles[:len(expected)]] == expected
    top = text.split("top 10\n", 1)[1].split("\n\n", 1)[0].split("\n")[1:]
    assert len(top) == len(study.ranked) == 8
    for line, trial in zip(top, study.ranked):
        m = trial.metrics or {}
        rank, number, sharpe, ret, dd, win, trades = line.split()[:7]
        assert int(number) == trial.number and float(sharpe) == round(m["sharpe"], 2)
        assert ret == f"{100 * m['total_return']:.2f}%" and dd == f"{100 * m['max_drawdown']:.2f}%"
        assert int(trades) == m["trades"]
    assert "fast=5, slow=60" in top[0]  # the best set of this grid on 2018-2019
    assert "robust:" in text and "fragile:" in text and "confidence" in text


def test_top_sets_replay_the_runs_the_tables_report(study: StudyResult, data: StudyData, statistics):
    analysis = analyse_study(study, data=data, statistics=statistics)
    assert [r.trial.number for r in analysis.replays] == [t.number for t in study.ranked[:5]]
    for r in analysis.replays:
        recorded = r.trial.metrics or {}
        for key in ("sharpe", "total_return", "max_drawdown", "trades"):
            assert r.metrics[key] == pytest.approx(recorded[key], rel=1e-12), key
        assert r.equity.iloc[0] == pytest.approx(BASE.replay.starting_cash)
        assert r.drawdown.max() <= 0 and -r.drawdown.min() == pytest.approx(recorded["max_drawdown"], rel=1e-9)
    assert analysis.benchmark is not None and analysis.benchmark.iloc[0] == pytest.approx(BASE.replay.starting_cash)
    rec = analysis.recommendation
    assert rec is not None and rec.sharpe_interval is not None
    lo, hi = rec.sharpe_interval
    best_sharpe = (rec.trial.metrics or {})["sharpe"]
    assert lo < best_sharpe < hi and hi - lo == pytest.approx(2 * (best_sharpe - lo))


def test_overfitting_block_shows_the_statistics_given(report: dict[str, Path], statistics: dict[str, Any],
                                                      study: StudyResult, data: StudyData):
    block = analyse_study(study, statistics=statistics).overfitting
    assert (block.psr, block.dsr, block.pbo) == (statistics["psr"], statistics["dsr"], statistics["pbo"])
    assert block.n_trials == statistics["trials"]["tried"] == 8
    assert block.min_trl == pytest.approx(statistics["min_trl"]["observations"])
    assert block.score == statistics["verdict"]["score"] and len(block.parts()) == len(statistics["verdict"]["parts"])
    assert block.pbo_combinations == math.comb(block.pbo_splits or 0, (block.pbo_splits or 0) // 2)
    html = report["report.html"].read_text()
    assert f"{statistics['psr']:.3f}" in html and f"{statistics['pbo']:.3f}" in html
    assert f"{statistics['verdict']['score']:.0f}/100" in html
    text = report["summary.txt"].read_text()
    assert f"PSR        {statistics['psr']:.3f}" in text and f"PBO        {statistics['pbo']:.3f}" in text


def test_statistics_are_computed_when_only_the_data_are_given(study: StudyResult, data: StudyData, statistics):
    block = analyse_study(study, data=data).overfitting
    assert block.source == "study" and block.pbo == pytest.approx(statistics["pbo"])
    assert block.dsr == pytest.approx(statistics["dsr"])


def test_without_data_the_report_says_what_is_missing(study: StudyResult, tmp_path: Path):
    paths = write_study_report(study, tmp_path)
    html = paths["report.html"].read_text()
    assert "equity overlays need the study&#x27;s bars" in html
    assert "no overfitting statistics" in html
    text = paths["summary.txt"].read_text()
    assert "pass data= for its Sharpe interval" in text and "no overfitting statistics" in text


def test_bars_other_than_the_study_s_are_refused(study: StudyResult, tmp_path: Path):
    other = StudyData.load([SPY], start=_utc(2019), end=_utc(2020))
    with pytest.raises(ValueError, match="pass the StudyData the study ran on"):
        write_study_report(study, tmp_path, data=other, statistics={})


def test_a_walk_forward_without_folds_is_refused(study: StudyResult, tmp_path: Path):
    with pytest.raises(ValueError, match="no folds"):
        write_study_report(study, tmp_path, walk_forward={"folds": []})


# --- walk-forward ------------------------------------------------------------------------------------

def test_walk_forward_report_shows_every_fold_in_and_out_of_sample(wf_report):
    wf, paths = wf_report
    html = paths["report.html"].read_text()
    for anchor in ("walk-forward-folds", "walk-forward-equity", "walk-forward-bars", "walk-forward-equity-chart"):
        assert f'id="{anchor}"' in html
    rows = html.split('id="folds-table"', 1)[1].split("</table>", 1)[0].count("<tr>") - 1
    assert rows == len(wf.folds) == 4
    text = paths["summary.txt"].read_text()
    section = text.split("walk-forward (", 1)[1].split("\n\n", 1)[0].split("\n")
    fold_lines = [line for line in section if re.match(r"^\s+\d+\s+\d{4}-", line)]
    assert len(fold_lines) == len(wf.folds)
    for line, fold in zip(fold_lines, wf.folds):
        assert f"{fold.is_start:%Y-%m-%d}..{fold.is_end:%Y-%m-%d}" in line
        assert f"{(fold.oos_metrics or {})['sharpe']:.2f}" in line
    assert f"return {100 * wf.oos_metrics['total_return']:.2f}%" in text
    assert wf.benchmark_label in text
    assert "re-optimize  every 6m" in text
    stats = wf.statistics
    assert f"PSR        {stats['psr']:.3f}" in text  # the walk-forward's own statistics block


def _named(text: str) -> tuple[set[str], set[str]]:
    """The robust and fragile names of the ``robust: a, b; fragile: c`` line of a summary's sensitivity section."""
    section = text.split("\nsensitivity", 1)[1].split("\n\n", 1)[0]
    line = next(line.strip() for line in section.split("\n") if line.strip().startswith("robust:"))
    robust, fragile = ({n.strip() for n in part.split(":", 1)[1].split(",")} - {"none"} for part in line.split(";"))
    return robust, fragile


def test_walk_forward_summary_names_the_robust_and_fragile_parameters_of_the_report(wf_report, tmp_path: Path):
    # the walkforward command's folder holds the report of the final study and the walk-forward's summary.txt
    wf, paths = wf_report
    write_walk_forward_outputs(wf, tmp_path)
    summary = (tmp_path / "summary.txt").read_text()
    table = paths["report.html"].read_text().split('id="sensitivity-table"', 1)[1].split("</table>", 1)[0]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in table.split("<tr>")[2:]]
    verdicts = {html_module.unescape(cells[0]): cells[1] for cells in rows}
    assert set(verdicts) == {"fast", "slow"}
    robust, fragile = _named(summary)
    assert robust == {n for n, v in verdicts.items() if v == "robust"}
    assert fragile == {n for n, v in verdicts.items() if v == "fragile"}
    for name, verdict in verdicts.items():  # and each parameter's own line gives the same verdict
        assert re.search(rf"^  {name}: {verdict} ", summary, re.MULTILINE), name
    assert _named(summary) == _named(paths["summary.txt"].read_text())  # the report's own summary.txt agrees
