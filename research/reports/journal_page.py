"""``report.html`` of ``tradingd journal``: summary, the month (with ``--month``), winners vs losers
(MAE/MFE scatter and tables), the patterns that separate them, hypotheses to test, the monthly
journal and every trade with its context. Self-contained (plotly.js inlined once), no network.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pandas as pd

from research.finished_run import FinishedRun
from research.reports.formatting import fmt_pct, fmt_time, fmt_usd
from research.reports.page import Section, info_table, note, render_page, write_page
from research.reports.plotting import Charts, Figure, axis, figure, typed
from research.reports.tables import Cell, Column, html_table
from research.trade_journal import FEW_TRADES, Journal, format_feature

__all__ = ["MAX_JOURNAL_ROWS", "write_journal_report"]

MAX_JOURNAL_ROWS = 3000
"""Most trades listed in the report (all are in journal.csv)."""
_WIN, _LOSS = "#1a9850", "#d73027"


def _excursion_figure(trades: pd.DataFrame) -> Figure:
    data = []
    for name, mask, colour in (("winners", trades["pnl"] > 0, _WIN), ("losers", trades["pnl"] <= 0, _LOSS)):
        part = trades[mask]
        if not len(part):
            continue
        data.append({"type": "scatter", "mode": "markers", "name": f"{name} ({len(part)})", "x": typed(part["mae"]),
                     "y": typed(part["mfe"]), "marker": {"color": colour, "size": 6, "opacity": 0.7},
                     "customdata": [f"#{t} {s} {fmt_usd(p)}" for t, s, p in
                                    zip(part["trade_id"], part["symbol"], part["pnl"].astype(float))],
                     "hovertemplate": "%{customdata}<br>MAE %{x:.2%}, MFE %{y:.2%}<extra></extra>"})
    return figure(data, "Maximum adverse vs favourable excursion per trade (fractions of the entry price)",
                  axis("MFE (>= 0)", tickformat=".1%"), height=420, xaxis=axis("MAE (<= 0)", tickformat=".1%"),
                  hovermode="closest")


def _months_figure(journal: Journal) -> Figure:
    months = [m.month for m in journal.months]
    closed = [m.pnl for m in journal.months]
    change = [m.equity_change for m in journal.months]
    data = [{"type": "bar", "name": "closed trades' P&L", "x": months, "y": typed(closed),
             "marker": {"color": [_WIN if v >= 0 else _LOSS for v in closed]}},
            {"type": "scatter", "mode": "markers", "name": "equity change", "x": months, "y": typed(change),
             "marker": {"color": "#222222", "symbol": "diamond", "size": 7}}]
    return figure(data, "Monthly P&L (UTC months; closed trades by exit month)", axis("USD", tickformat="$,.0f"),
                  height=360, xaxis=axis("month", type="category"), hovermode="closest")


def _comparison_table(journal: Journal) -> str:
    columns = [Column("Feature"), Column("Winners mean", True), Column("Winners median", True),
               Column("Losers mean", True), Column("Losers median", True)]
    rows = [[c.label, *(format_feature(c.feature, v) for v in (c.winners_mean, c.winners_median, c.losers_mean,
                                                                c.losers_median))] for c in journal.comparison]
    return html_table("winners-losers", columns, rows)


def _shares_table(journal: Journal) -> str:
    columns = [Column("Feature"), Column("Category"), Column("Trades", True), Column("Win rate", True),
               Column("P&L (USD)", True), Column("Share of winners", True), Column("Share of losers", True)]
    rows: list[list[Cell]] = [[s.feature, s.category, (str(s.trades), s.trades), (fmt_pct(s.win_rate, 0), s.win_rate),
                               (fmt_usd(s.pnl), s.pnl), (fmt_pct(s.winners_share, 0), s.winners_share),
                               (fmt_pct(s.losers_share, 0), s.losers_share)] for s in journal.shares]
    return html_table("category-shares", columns, rows, sortable=True)


def _patterns_table(journal: Journal) -> str:
    columns = [Column("#", True), Column("Feature"), Column("Test"), Column("p-value", True),
               Column("Effect size", True), Column("Evidence"), Column("What it shows")]
    rows: list[list[Cell]] = [[(str(k), k), p.label, p.test, (f"{p.p_value:.3g}", p.p_value),
                               (f"{p.effect_size:+.2f} ({p.effect})", p.effect_size), p.evidence, p.summary]
                              for k, p in enumerate(journal.patterns, start=1)]
    return html_table("patterns", columns, rows)


def _hypotheses(journal: Journal) -> str:
    if not journal.hypotheses:
        return note("No adjustment stands out in these trades.")
    items = "".join(f"<li><p>{html.escape(h.finding)}</p><p><b>Hypothesis:</b> {html.escape(h.test)}.</p>"
                    f'<p class="muted">{h.trades} trades, {html.escape(fmt_usd(h.pnl))}; evidence: {h.evidence}.</p>'
                    "</li>" for h in journal.hypotheses)
    return (f'<ol id="hypotheses">{items}</ol>' + note(
        "Drawn from the same trades they describe (in sample): each is a question to test with tradingd optimize "
        "and tradingd walkforward, not a promise of better results. A split picked as the worst of several "
        "(hours, weekdays, symbols, ...) has its Mann-Whitney p-value multiplied by the number searched "
        f"(Bonferroni) before its evidence is judged: moderate only below 0.05 with at least {FEW_TRADES} trades."))


def _months_table(journal: Journal) -> str:
    columns = [Column("Month"), Column("Trades", True), Column("Closed P&L (USD)", True),
               Column("Equity change (USD)", True), Column("Win rate", True), Column("Best trade"),
               Column("Worst trade"), Column("What stood out")]
    rows: list[list[Cell]] = [[m.month, (str(m.trades), m.trades), (fmt_usd(m.pnl), m.pnl),
                               (fmt_usd(m.equity_change), m.equity_change), (fmt_pct(m.win_rate, 0), m.win_rate),
                               m.best, m.worst, "; ".join(m.stood_out)] for m in journal.months]
    return html_table("months", columns, rows, sortable=True)


def _trades_table(trades: pd.DataFrame) -> tuple[str, str]:
    columns = [Column("#", True), Column("Symbol"), Column("Side"), Column("Entry (UTC)"), Column("Exit (UTC)"),
               Column("Entry price", True), Column("Exit price", True), Column("P&L (USD)", True),
               Column("Return", True), Column("Exit reason"), Column("Confidence", True), Column("Regime"),
               Column("Volatility", True), Column("Trend"), Column("MAE", True), Column("MFE", True),
               Column("Bars held", True), Column("Local time"), Column("Weekday")]
    frame = trades
    caption = f"All {len(trades)} trades (journal.csv has every column)."
    if len(frame) > MAX_JOURNAL_ROWS:
        frame = frame.loc[frame["pnl"].abs().nlargest(MAX_JOURNAL_ROWS).index.sort_values()]
        caption = f"The {MAX_JOURNAL_ROWS} trades with the largest absolute P&L of {len(trades)} (all in journal.csv)."
    rows: list[list[Cell]] = []
    for t in frame.to_dict("records"):
        conf, ret, vol, mae, mfe, pnl, p0, p1 = (float(t[k]) for k in (
            "confidence", "return", "volatility", "mae", "mfe", "pnl", "entry_price", "exit_price"))
        held = int(t['holding_bars'])
        rows.append([(str(t['trade_id']), float(t['trade_id'])), str(t['symbol']), str(t['side']),
                     fmt_time(t['entry_time']), fmt_time(t['exit_time']), (f"{p0:,.4g}", p0), (f"{p1:,.4g}", p1),
                     (fmt_usd(pnl), pnl), (fmt_pct(ret), ret), str(t['exit_reason']),
                     ("n/a" if np.isnan(conf) else f"{conf:.2f}", conf), str(t['regime']), (fmt_pct(vol, 3), vol),
                     str(t['benchmark_trend']), (fmt_pct(mae), mae), (fmt_pct(mfe), mfe), (str(held), held),
                     str(t['time_of_day']), str(t['weekday'])])
    return html_table("journal-trades", columns, rows, sortable=True), caption


def write_journal_report(journal: Journal, run: FinishedRun, path: str | os.PathLike[str]) -> Path:
    """Write the journal report and return its path.

    Sections: Summary, the month (``--month``: ``id="month-summary"``), Winners vs losers (chart
    ``id="excursions"``, tables ``id="winners-losers"`` and ``id="category-shares"``), Patterns
    (``id="patterns"``), Hypotheses to test (``id="hypotheses"``), Monthly journal (chart
    ``id="months-chart"``, table ``id="months"``) and Trades (sortable, ``id="journal-trades"``).

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    chart = Charts()

    trades = journal.trades
    closed = float(trades["pnl"].astype(float).sum()) if len(trades) else 0.0
    summary = (f"<p>{len(trades)} closed trades{' in ' + journal.month if journal.month else ''}: "
               f"{journal.winners} winners, {journal.losers} losers, closed P&L {html.escape(fmt_usd(closed))} "
               f"(net of commission).</p>" + note(journal.evidence))
    sections = [Section("section-summary", "Summary", summary)]
    month = journal.month_summary
    if month is not None:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in month.stood_out)
        if month.best:
            items += f"<li>best trade: {html.escape(month.best)}</li><li>worst trade: {html.escape(month.worst)}</li>"
        sections.append(Section("section-month", f"Month {month.month}", (
            f'<div id="month-summary"><p>{month.trades} trades closed, P&L {html.escape(fmt_usd(month.pnl))}, equity '
            f"change {html.escape(fmt_usd(month.equity_change))}, win rate {html.escape(fmt_pct(month.win_rate, 0))}."
            f"</p><ul>{items}</ul></div>")))
    body = (chart(_excursion_figure(trades), "excursions") if len(trades) else note("No trade to plot."))
    body += _comparison_table(journal) + "<h3>Categories</h3>" + f'<div class="scroll">{_shares_table(journal)}</div>'
    sections.append(Section("section-winners-losers", "Winners vs losers", body + note(
        "Winners: P&L > 0, losers: P&L < 0. MAE <= 0 <= MFE, fractions of the entry price (Sweeney 1996).")))
    sections.append(Section("section-patterns", "Patterns", (_patterns_table(journal) if journal.patterns else note(
        "No feature could be tested (it needs winners and losers and must vary).")) + note(
        f"Numeric: Mann-Whitney U (two-sided), effect = rank-biserial r; categorical: chi-square test of independence, "
        f"effect = Cramér's V; ranked by |effect|. Uncorrected p-values; Bonferroni threshold "
        f"{journal.bonferroni:.3g}.")))
    sections.append(Section("section-hypotheses", "Hypotheses to test", _hypotheses(journal)))
    sections.append(Section("section-months", "Monthly journal", chart(_months_figure(journal), "months-chart")
                            + f'<div class="scroll">{_months_table(journal)}</div>'))
    table, caption = _trades_table(trades)
    sections.append(Section("section-trades", "Trades", note(caption + " Click a header to sort.")
                            + f'<div class="scroll wide">{table}</div>'))
    info = info_table((("run", run.run_id), ("strategy", run.strategy), ("params", str(run.params)),
                       ("timeframe", run.timeframe),
                       ("source", str(run.folder) if run.folder is not None else "state database")), sep="")
    title = f"Trade journal: {run.run_id}" + (f", {journal.month}" if journal.month else "")
    subtitle = (f"{fmt_time(pd.Timestamp(journal.period[0]))} → {fmt_time(pd.Timestamp(journal.period[1]))} (UTC) · "
                f"{len(trades)} trades")
    return write_page(path, render_page(title, subtitle, info, sections))
