"""The attribution and journal reports in a real headless Chromium (Debian's ``chromium``, driven
by Playwright): a real replay (online_ml on SPY + AAPL hourly, 2018-2019, positions open at the
end) must render with no console or page error and no network request, draw every chart, show
every section, and sort the trade list by a clicked header. Missing Chromium or Playwright is a
failure, not a skip (see tests/research/test_report_browser.py)."""

from __future__ import annotations

import pytest

from research.attribution import DIMENSION_TITLES, DIMENSIONS, attribute
from research.reports.attribution_page import write_attribution_report
from research.reports.journal_page import write_journal_report
from research.trade_context import build_trade_context
from research.trade_journal import build_journal
from tests.browser_support import chart_ids, chromium, count, headings, open_report, sort_by
from tests.research.test_attribution import real_replay_folder


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    run, series = real_replay_folder(folder)
    context = build_trade_context(run, series)
    result = attribute(run, context, series)
    attribution = write_attribution_report(result, run, folder / "attribution" / "report.html")
    journal = build_journal(run, context, "2019-03")
    journal_path = write_journal_report(journal, run, folder / "journal" / "report.html")
    return {"attribution": (attribution, result), "journal": (journal_path, journal)}


def test_both_reports_render_in_chromium_without_errors(reports, tmp_path):
    with chromium(tmp_path / "profile") as browser:
        path, result = reports["attribution"]
        opened = open_report(browser, path)
        page = opened.page
        multi = sum(1 for d in DIMENSIONS if len(result.dimensions[d]) > 1)
        # factor split, bars per dimension, cumulative where > 1 bucket
        assert len(chart_ids(page)) == 1 + len(DIMENSIONS) + multi
        assert headings(page) == ["Reconciliation", "Factor split", *(DIMENSION_TITLES[d] for d in DIMENSIONS),
                                  "Trades"]
        assert "reconciled" in page.inner_text("#reconciliation")
        assert count(page, "#attr-symbol tbody tr") == 2 + 2  # SPY, AAPL, open, total
        assert count(page, "#attr-signal_strength-bars .point") == 5  # 4 quartiles + open
        assert count(page, "#context-trades tbody tr") == len(result.context.trades)
        values = sort_by(page, "context-trades", "P&L (USD)")
        assert values == sorted(values) and values[0] < 0 < values[-1]
        opened.assert_clean()
        page.close()

        path, journal = reports["journal"]
        opened = open_report(browser, path)
        page = opened.page
        assert len(chart_ids(page)) == 2  # MAE/MFE scatter, monthly P&L
        assert headings(page) == ["Summary", "Month 2019-03", "Winners vs losers", "Patterns", "Hypotheses to test",
                                  "Monthly journal", "Trades"]
        assert count(page, "#journal-trades tbody tr") == len(journal.trades) > 0
        assert count(page, "#months tbody tr") == len(journal.months) == 24
        assert count(page, "#patterns tbody tr") == len(journal.patterns) > 0
        assert count(page, "#excursions .scatterlayer .point") == len(journal.trades)
        assert "Hypothesis" in page.inner_text("#section-hypotheses") or "No adjustment" in page.inner_text(
            "#section-hypotheses")
        opened.assert_clean()
