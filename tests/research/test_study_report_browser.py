"""The study report in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The reports of a real small study (sma_cross grid on SPY 2018-2019) and of a real small
walk-forward (4 folds) must render with no console or page error and no network request, show
every section with every chart drawn (the 3-D surface as WebGL), sort the top sets by a clicked
header, and leave a full-page screenshot in the test's tmp dir. Missing Chromium or Playwright is a
failure, not a skip (``apt-get install chromium``; ``pip install playwright``, never ``playwright
install``, which would download a browser build).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
import pytest

from backtest.spec import RunSpec
from research.optimize import StudyData, TrialFilters, run_study
from research.reports.study_page import write_study_report
from research.search_space import parse_space
from research.walk_forward import walk_forward
from tests.browser_support import chart_ids, chromium, open_report
SPY = Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"
BASE = RunSpec(strategy="sma_cross")
FEW = TrialFilters(min_trades=3)
STUDY_HEADINGS = ["Optimization summary", "Recommended configuration", "Top 10 parameter sets", "Overfitting statistics",
                  "Parameter sensitivity", "Parameter importance", "Heat map: fast x slow", "3-D surface",
                  "Parallel coordinates", "Pareto front", "Top 5: equity and drawdown", "Implementation notes",
                  "All trials"]
STUDY_CHARTS = ["verdict-chart", "pbo-chart", "sensitivity-chart", "importance-chart", "heatmap-chart", "surface-chart",
                "parallel-chart", "pareto-chart", "top-equity-chart", "top-drawdown-chart"]
# the walk-forward's PBO is the median of its folds' (no single CSCV to draw)
WF_CHARTS = [*(c for c in STUDY_CHARTS if c != "pbo-chart"), "walk-forward-bars", "walk-forward-equity-chart",
             "walk-forward-steps"]


def _utc(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = StudyData.load([SPY], start=_utc(2018), end=_utc(2020))
    grid = parse_space({"params": {"fast": {"type": "int", "low": 5, "high": 20, "step": 5},
                                   "slow": {"type": "int", "low": 30, "high": 60, "step": 30}}}, strategy="sma_cross")
    study = run_study(BASE, grid, data, storage=optuna.storages.InMemoryStorage(), method="grid", filters=FEW)
    study_paths = write_study_report(study, tmp_path_factory.mktemp("study"), data=data)
    wf_data = StudyData.load([SPY], start=_utc(2017), end=_utc(2020))
    small = parse_space({"params": {"fast": {"type": "int", "low": 5, "high": 10, "step": 5},
                                    "slow": {"type": "int", "low": 30, "high": 60, "step": 30}}}, strategy="sma_cross")
    wf = walk_forward(BASE, small, wf_data, storage=optuna.storages.InMemoryStorage(), train="1y", test="6m",
                      method="grid", n_trials=None, filters=FEW, compare_steps=["3m", "6m"])
    assert wf.final_study is not None
    wf_paths = write_study_report(wf.final_study, tmp_path_factory.mktemp("wf"), walk_forward=wf, data=wf_data)
    return {"study": study, "study_html": study_paths["report.html"], "wf": wf, "wf_html": wf_paths["report.html"]}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def _open(browser, path: Path, charts: list[str]):
    """Open ``path``, wait until every chart is drawn; return (page, problems, requests)."""
    opened = open_report(browser, path)
    assert sorted(chart_ids(opened.page)) == sorted(charts)
    return opened.page, opened.problems, opened.requests


@pytest.fixture(scope="module")
def study_page(reports, browser):
    """The study report opened once (WebGL charts take seconds in software rendering)."""
    page, problems, requests = _open(browser, reports["study_html"], STUDY_CHARTS)
    yield page, problems, requests
    page.close()


def test_study_report_renders_every_section_and_chart(reports, study_page, tmp_path):
    page, problems, requests = study_page
    headings = page.eval_on_selector_all("section > h2", "hs => hs.map(h => h.textContent)")
    assert headings == STUDY_HEADINGS
    for heading in STUDY_HEADINGS:
        assert page.get_by_role("heading", name=heading, exact=True).is_visible()
    # every chart drew its data: bars, cells, lines, a WebGL surface
    assert page.eval_on_selector_all("#verdict-chart .bars .point", "ps => ps.length") == 12  # 6 parts x 2
    assert page.eval_on_selector_all("#heatmap-chart .hm image", "ims => ims.length") == 1
    assert page.eval_on_selector_all("#surface-chart canvas", "cs => cs.length") >= 1
    assert page.eval_on_selector_all("#parallel-chart .y-axis", "axes => axes.length") >= 4
    assert page.eval_on_selector_all("#top-equity-chart .scatterlayer .trace", "ts => ts.length") == 6
    assert page.eval_on_selector_all("#sensitivity-chart .scatterlayer .trace", "ts => ts.length") == 10
    assert page.inner_text("#confidence").startswith("Confidence:")
    best = reports["study"].ranked[0].metrics
    assert f"{best['sharpe']:.2f}" in page.inner_text("#heatmap-chart")
    assert page.eval_on_selector_all("#all-trials tbody tr", "rs => rs.length") == len(reports["study"].trials)
    assert problems == []
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []  # no network
    screenshot = tmp_path / "study_report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 100_000


def test_top_sets_sort_when_a_header_is_clicked(study_page):
    page, problems, _ = study_page
    headers = page.eval_on_selector_all("#top-sets thead th", "ths => ths.map(th => th.textContent)")
    sharpe, rank = headers.index("sharpe"), headers.index("rank")

    def column(index: int) -> list[float]:
        return [float(v) for v in page.eval_on_selector_all(
            "#top-sets tbody tr", f"rs => rs.map(r => r.cells[{index}].getAttribute('data-v'))")]

    ranked = column(sharpe)
    assert ranked == sorted(ranked, reverse=True)  # as ranked: best first
    page.click(f"#top-sets thead th:nth-child({sharpe + 1})")
    assert column(sharpe) == sorted(ranked)
    assert column(rank)[0] == len(ranked)  # whole rows moved: the worst set's rank came along
    page.click(f"#top-sets thead th:nth-child({rank + 1})")  # back to the ranking for other tests
    assert column(sharpe) == ranked
    assert problems == []


def test_walk_forward_report_adds_folds_and_stitched_equity(reports, browser, tmp_path):
    wf = reports["wf"]
    page, problems, requests = _open(browser, reports["wf_html"], WF_CHARTS)
    try:
        headings = page.eval_on_selector_all("section > h2", "hs => hs.map(h => h.textContent)")
        assert "Walk-forward: in sample vs out of sample" in headings
        assert "Walk-forward: stitched out-of-sample equity" in headings
        assert headings.index("Walk-forward: stitched out-of-sample equity") == headings.index(
            "Walk-forward: in sample vs out of sample") + 1
        # one IS and one OOS bar per fold, one row per fold, a line per fold start
        assert page.eval_on_selector_all("#walk-forward-bars .bars .point", "ps => ps.length") == 2 * len(wf.folds)
        assert page.eval_on_selector_all("#folds-table tbody tr", "rs => rs.length") == len(wf.folds)
        assert page.eval_on_selector_all("#walk-forward-equity-chart .shapelayer path", "ps => ps.length") == len(wf.folds)
        steps = page.eval_on_selector_all("#walk-forward-steps .legendtext", "ts => ts.map(t => t.textContent)")
        assert len(steps) == 2 and any("(best)" in s for s in steps)
        assert problems == []
        assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
        screenshot = tmp_path / "walk_forward_report.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 100_000
    finally:
        page.close()
