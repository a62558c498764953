"""The readiness report in a real headless Chromium (Debian's ``chromium``, driven by Playwright): no
console or page error, no network request, every section, one checklist row per line with its
status, the decision, and escaped text. Missing Chromium or Playwright is a failure, not a skip."""

from __future__ import annotations

from research.readiness import FAIL, NOT_MEASURED, PASS, Check, Readiness, write_readiness
from tests.browser_support import chromium, count, headings, open_report, screenshot

HEADINGS = ["Decision", "Checklist", "Next steps", "How each line is judged"]


def _readiness() -> Readiness:
    checks = (
        Check("sharpe", "Backtest Sharpe > 1", PASS, 1.42, "> 1.00", "runs/r1/metrics.json", "Sharpe 1.42"),
        Check("walkforward_oos", "Walk-forward out-of-sample positive", FAIL, -0.031, "stitched OOS total return > 0",
              "runs/wf/walkforward.json", "stitched OOS return -3.10% over 8 folds"),
        Check("robustness", "Robustness passed", NOT_MEASURED, None, "passed = true",
              "runs/r1/robustness/robustness.json", "robustness.json missing: run `tradingd robustness runs/r1`"),
        Check("benchmark", "Benchmark comparison favourable", PASS, True, "favourable = true",
              "runs/r1/benchmark/benchmark.json", "beats SPY <script>alert(1)</script> on Sharpe"),
    )
    return Readiness("r1", "sma_cross", checks)


def test_readiness_report_renders_in_chromium_without_errors(tmp_path):
    readiness = _readiness()
    write_readiness(readiness, tmp_path / "out")
    with chromium(tmp_path / "profile") as browser:
        opened = open_report(browser, tmp_path / "out" / "report.html")  # a dialog would be a script that ran
        page = opened.page
        assert headings(page) == HEADINGS
        assert page.inner_text("#decision") == "NO-GO" and page.is_visible("#decision")
        rows = page.eval_on_selector_all(
            "#checklist tbody tr", "rs => rs.map(r => [r.dataset.id, r.dataset.status, r.cells[2].textContent])")
        assert rows == [[c.id, c.status, c.status] for c in readiness.checks]
        values = page.eval_on_selector_all("#checklist tbody tr", "rs => rs.map(r => r.cells[3].textContent)")
        assert values == ["1.42", "-3.10%", "n/a", "yes"]
        # the failing and unmeasured lines are the reasons and the next steps; escaped text stays text
        assert count(page, "#reasons li") == 2
        assert "tradingd robustness runs/r1" in page.inner_text("#next-steps")
        assert "<script>alert(1)</script>" in page.inner_text("#checklist")
        screenshot(page, tmp_path / "readiness.png")
        opened.assert_clean()
