"""The trade journal of a run: every trade with its context (:mod:`research.trade_context`),
winners against losers, the features that separate them, a monthly journal and adjustments to
test, stated as hypotheses.

* **Winners vs losers**: trades with ``pnl > 0`` against ``pnl < 0`` (break-even trades are in
  neither group): mean and median of each numeric feature, share of each category.
* **Patterns**: per numeric feature the Mann-Whitney U test (Mann & Whitney 1947; two-sided,
  ``scipy.stats.mannwhitneyu``) with the rank-biserial correlation ``r = 2 U_w / (n_w n_l) - 1``
  as effect size (Kerby 2014, "The simple difference formula"; +1: every winner above every
  loser); per categorical feature Pearson's chi-square test of independence of outcome and
  category (``scipy.stats.chi2_contingency``, no continuity correction) with Cramér's V (Cramér
  1946) as effect size and the category whose win rate differs most from the rest. Ranked by
  ``|effect size|``. The p-values are not corrected for the number of features tested; the
  Bonferroni threshold is given alongside. With fewer than :data:`FEW_TRADES` winners or losers
  the evidence is called weak.
* **Hypotheses**: rules over the same trades (a confidence floor, a volatility filter, a regime,
  trend, hour, weekday or symbol that lost money, stops against winners' adverse excursion,
  losers that were winning, long-held losers), each with the dollars and trades behind it, the
  command that would test it and, for a split of the trades, a Mann-Whitney test of the P&L of
  the trades it would remove against the rest. A split found by searching (the worst of a
  feature's buckets, the better of two confidence floors) has its p-value corrected for the
  candidates searched before it is labelled: Bonferroni, ``min(1, p x candidates)`` (Dunn 1961,
  "Multiple Comparisons Among Means", JASA 56(293)); the worst of 7 hours is only evidence when
  ``7 p < 0.05``. They come from the trades they describe (in sample): never a promise.
* **Monthly journal**: per calendar month (UTC, by exit time: P&L is booked when a trade closes)
  its trades, closed P&L, equity change and what stood out; ``month=`` narrows the journal to the
  trades closed in one month.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from research.finished_run import FinishedRun
from research.reports.formatting import fmt_pct, fmt_usd
from research.safe_files import json_safe
from research.trade_context import TradeContext

__all__ = ["CATEGORICAL_FEATURES", "FEW_TRADES", "NUMERIC_FEATURES", "CategoryShare", "FeatureSummary",
           "Hypothesis", "Journal", "JournalError", "MonthSummary", "Pattern", "build_journal", "compare_outcomes",
           "find_patterns", "format_feature", "journal_document", "journal_markdown", "month_summaries", "parse_month",
           "write_journal_files"]

FEW_TRADES = 10
"""Fewer winners or losers than this: every pattern is weak evidence."""
MIN_BUCKET = 3
"""Trades a bucket needs before a hypothesis is drawn from it."""
NUMERIC_FEATURES = {"confidence": "entry confidence", "volatility": "volatility at entry", "mae": "MAE",
                    "mfe": "MFE", "holding_bars": "bars held"}
"""Numeric context columns compared (column -> label)."""
CATEGORICAL_FEATURES = {"symbol": "symbol", "side": "side", "asset_class": "asset class", "regime": "regime at entry",
                        "benchmark_trend": "benchmark trend at entry", "exit_type": "exit type",
                        "time_of_day": "time of day (exchange-local)", "weekday": "weekday", "strategy": "strategy",
                        "model": "model version"}
"""Categorical context columns compared (column -> label)."""
AFTER_ENTRY = frozenset({"mae", "mfe", "holding_bars", "exit_type"})
"""Features of the path while open: they describe how winners and losers played out, not what
was known at entry, so they explain outcomes but cannot filter entries."""
_PERCENT_FEATURES = {"confidence": False, "volatility": True, "mae": True, "mfe": True, "holding_bars": False}
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class JournalError(ValueError):
    """Bad input to the journal (a malformed month, or one outside the run)."""


@dataclass(frozen=True)
class FeatureSummary:
    """A numeric feature among winners and losers: means and medians (NaN values left out)."""

    feature: str
    label: str
    winners_mean: float | None
    winners_median: float | None
    losers_mean: float | None
    losers_median: float | None


@dataclass(frozen=True)
class CategoryShare:
    """One category of a categorical feature: its share of the winners and of the losers
    (fractions), its trades, win rate and closed P&L (USD)."""

    feature: str
    category: str
    winners_share: float
    losers_share: float
    trades: int
    win_rate: float
    pnl: float


@dataclass(frozen=True)
class Pattern:
    """How well one feature separates winners from losers.

    ``effect_size`` is the rank-biserial r (numeric; signed: > 0 winners higher) or Cramér's V
    (categorical, >= 0); ``evidence`` is ``weak``, ``moderate`` (p < 0.05) or ``strong`` (p below
    the Bonferroni threshold, at least 2 x :data:`FEW_TRADES` in each group).
    """

    feature: str
    label: str
    kind: str
    test: str
    p_value: float
    effect_size: float
    effect: str
    evidence: str
    summary: str


@dataclass(frozen=True)
class Hypothesis:
    """An adjustment to test: what the trades showed, how to test it, the trades and USD behind it.

    For a split of the trades (a confidence floor, a volatility filter, a bucket) ``p_value`` is the
    two-sided Mann-Whitney U test of the P&L of the trades it would remove against the rest,
    ``compared`` the candidate splits searched to find it (a feature's buckets, the floors tried)
    and ``p_corrected`` the Bonferroni-corrected ``min(1, p_value x compared)``; ``evidence`` is
    ``moderate`` when ``p_corrected`` < 0.05 with at least :data:`FEW_TRADES` trades, else ``weak``;
    a description of the trades' path (stops, give-backs, holding) is ``untested``.
    """

    finding: str
    test: str
    trades: int
    pnl: float
    evidence: str
    p_value: float | None = None
    p_corrected: float | None = None
    compared: int = 1


@dataclass(frozen=True)
class MonthSummary:
    """One calendar month (UTC) of the run: trades closed in it, their P&L (USD), the equity change
    over the month (USD, includes open positions), win rate and what stood out."""

    month: str
    trades: int
    pnl: float
    equity_change: float
    win_rate: float | None
    best: str
    worst: str
    stood_out: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Journal:
    """The journal of one run (see the module docstring).

    Attributes
    ----------
    run_id, strategy : str
    month : str or None
        ``YYYY-MM`` when narrowed to one month.
    trades : pd.DataFrame
        The trades (with their context) the journal is about.
    winners, losers : int
    comparison : list[FeatureSummary]
    shares : list[CategoryShare]
    patterns : list[Pattern]
        Ranked by ``|effect_size|``.
    bonferroni : float
        0.05 / number of features tested.
    hypotheses : list[Hypothesis]
    months : list[MonthSummary]
        Every month of the run (whatever ``month``).
    evidence : str
        One sentence on how much the trades can say.
    """

    run_id: str
    strategy: str
    month: str | None
    trades: pd.DataFrame
    winners: int
    losers: int
    comparison: list[FeatureSummary]
    shares: list[CategoryShare]
    patterns: list[Pattern]
    bonferroni: float
    hypotheses: list[Hypothesis]
    months: list[MonthSummary]
    evidence: str
    period: tuple[str, str]

    @property
    def month_summary(self) -> MonthSummary | None:
        """The summary of :attr:`month`, or None."""
        return next((m for m in self.months if m.month == self.month), None)


def parse_month(text: str, equity: pd.Series) -> str:
    """Return ``text`` as ``YYYY-MM`` after checking it lies within the run (its equity curve).

    Raises
    ------
    JournalError
        If ``text`` is not ``YYYY-MM`` with a month 01-12, or the run has no bar in that month.

    Examples
    --------
    >>> eq = pd.Series([1.0, 2.0], index=pd.DatetimeIndex(["2020-02-03", "2020-04-01"], tz="UTC"))
    >>> parse_month("2020-03", eq)
    '2020-03'
    """
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise JournalError(f"--month {text!r}: give a calendar month as YYYY-MM, e.g. 2020-03")
    month = pd.Period(f"{match.group(1)}-{match.group(2)}", freq="M")
    index = pd.DatetimeIndex(equity.index).tz_convert("UTC").tz_localize(None)
    first, last = index[0].to_period("M"), index[-1].to_period("M")
    if not first <= month <= last:
        raise JournalError(f"--month {text}: outside the run, which covers {first} to {last} (UTC)")
    return str(month)


def _winners_losers(trades: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    pnl = trades["pnl"].astype(float)
    return trades[pnl > 0], trades[pnl < 0]


def _stat(values: pd.Series, how: str) -> float | None:
    clean = values.astype(float).dropna()
    return None if len(clean) == 0 else float(clean.mean() if how == "mean" else clean.median())


def _categories(trades: pd.DataFrame) -> pd.DataFrame:
    frame = trades.copy()
    if "time_of_day" not in frame and "entry_hour" in frame:
        frame["time_of_day"] = [f"{int(h):02d}:00" for h in frame["entry_hour"]]
    return frame


def compare_outcomes(trades: pd.DataFrame) -> tuple[list[FeatureSummary], list[CategoryShare]]:
    """Return winners against losers: numeric means/medians and category shares.

    Examples
    --------
    >>> t = pd.DataFrame({"pnl": [5.0, 3.0, -2.0], "mae": [-0.01, -0.03, -0.05], "symbol": ["A", "B", "A"]})
    >>> numeric, shares = compare_outcomes(t)
    >>> numeric[0].winners_mean, numeric[0].losers_median
    (-0.02, -0.05)
    >>> [(s.category, s.winners_share, s.losers_share) for s in shares]
    [('A', 0.5, 1.0), ('B', 0.5, 0.0)]
    """
    frame = _categories(trades)
    winners, losers = _winners_losers(frame)
    numeric = [FeatureSummary(column, label, _stat(winners[column], "mean"), _stat(winners[column], "median"),
                              _stat(losers[column], "mean"), _stat(losers[column], "median"))
               for column, label in NUMERIC_FEATURES.items() if column in frame and frame[column].notna().any()]
    shares: list[CategoryShare] = []
    for column in CATEGORICAL_FEATURES:
        if column not in frame:
            continue
        labels = frame[column].astype(str)
        for category in sorted(labels.unique()):
            member = labels == category
            pnl = frame["pnl"].astype(float)[member]
            shares.append(CategoryShare(
                column, category, float((winners[column].astype(str) == category).mean()) if len(winners) else 0.0,
                float((losers[column].astype(str) == category).mean()) if len(losers) else 0.0, int(member.sum()),
                float((pnl > 0).mean()), float(math.fsum(pnl))))
    return numeric, shares


def _evidence(p_value: float, n_small: int, threshold: float) -> str:
    if n_small < FEW_TRADES or not p_value < 0.05:
        return "weak"
    return "strong" if p_value < threshold and n_small >= 2 * FEW_TRADES else "moderate"


def format_feature(feature: str, value: float | None) -> str:
    """Return a numeric feature's value as shown (percent for fractions, 3 significant digits else).

    Examples
    --------
    >>> format_feature("mae", -0.0123), format_feature("holding_bars", 14.0), format_feature("mfe", None)
    ('-1.23%', '14', 'n/a')
    """
    if value is None:
        return "n/a"
    return fmt_pct(value) if _PERCENT_FEATURES.get(feature) else f"{value:.3g}"


def find_patterns(trades: pd.DataFrame) -> tuple[list[Pattern], float]:
    """Return the features ranked by how well they separate winners from losers, and the
    Bonferroni threshold (0.05 / features tested).

    A feature is tested when both groups have at least one value and it varies; see the module
    docstring for the tests and effect sizes.
    """
    frame = _categories(trades)
    winners, losers = _winners_losers(frame)
    candidates: list[tuple[str, str, Any]] = []
    for column, label in NUMERIC_FEATURES.items():
        if column in frame:
            w, lo = winners[column].astype(float).dropna(), losers[column].astype(float).dropna()
            if len(w) and len(lo) and pd.concat([w, lo]).nunique() > 1:
                candidates.append(("numeric", column, (label, w, lo)))
    for column, label in CATEGORICAL_FEATURES.items():
        if column in frame:
            both = pd.concat([winners[column], losers[column]]).astype(str)
            if len(winners) and len(losers) and both.nunique() > 1:
                candidates.append(("categorical", column, (label, both)))
    threshold = 0.05 / max(1, len(candidates))
    n_small = min(len(winners), len(losers))
    patterns: list[Pattern] = []
    for kind, column, payload in candidates:
        if kind == "numeric":
            label, w, lo = payload
            result = stats.mannwhitneyu(w.to_numpy(), lo.to_numpy(), alternative="two-sided")
            r = float(2.0 * result.statistic / (len(w) * len(lo)) - 1.0)
            p = float(result.pvalue)
            direction = "higher" if r > 0 else "lower"
            summary = (f"winners' {label} {direction} (median {format_feature(column, float(w.median()))} vs "
                       f"{format_feature(column, float(lo.median()))}; rank-biserial r {r:+.2f}, p {p:.3g})"
                       + ("; known only after entry" if column in AFTER_ENTRY else ""))
            patterns.append(Pattern(column, label, kind, "Mann-Whitney U", p, r, "rank-biserial r",
                                    _evidence(p, n_small, threshold), summary))
        else:
            label, both = payload
            outcome = np.r_[np.ones(len(winners), dtype=bool), np.zeros(len(losers), dtype=bool)]
            labels = np.asarray(both.tolist(), dtype=object)
            categories = sorted(set(labels.tolist()))
            wins = np.array([int(np.sum((labels == c) & outcome)) for c in categories])
            totals = np.array([int(np.sum(labels == c)) for c in categories])
            chi2, p, _, _ = stats.chi2_contingency(np.vstack([wins, totals - wins]), correction=False)
            v = float(math.sqrt(chi2 / (totals.sum() * (min(2, len(categories)) - 1))))
            rates = wins / totals
            overall = len(winners) / (len(winners) + len(losers))
            at = int(np.argmax(np.abs(rates - overall)))
            worst, rate, count = categories[at], float(rates[at]), int(totals[at])
            summary = (f"win rate {fmt_pct(rate, 0)} when {label} = {worst} ({count} trades) vs "
                       f"{fmt_pct(overall, 0)} overall "
                       f"(Cramér's V {v:.2f}, chi-square p {float(p):.3g})"
                       + ("; known only after entry" if column in AFTER_ENTRY else ""))
            patterns.append(Pattern(column, label, kind, "chi-square", float(p), v, "Cramér's V",
                                    _evidence(float(p), n_small, threshold), summary))
    patterns.sort(key=lambda pt: (-abs(pt.effect_size), pt.p_value))
    return patterns, threshold


def _split(finding: str, test: str, pnl: pd.Series, removed: pd.Series, compared: int = 1,
           searched: str = "") -> Hypothesis:
    """A hypothesis that removes the trades ``removed`` (a boolean mask), with its test of their P&L,
    Bonferroni-corrected for the ``compared`` candidates (``searched`` names them: "hours") it was
    picked from."""
    inside, rest = pnl[removed].to_numpy(), pnl[~removed].to_numpy()
    p = float(stats.mannwhitneyu(inside, rest, alternative="two-sided").pvalue) if len(inside) and len(rest) else None
    corrected = min(1.0, p * compared) if p is not None else None
    n = int(removed.sum())
    evidence = "moderate" if corrected is not None and corrected < 0.05 and n >= FEW_TRADES else "weak"
    if p is None:
        text = f"{finding}."
    elif compared > 1:
        text = (f"{finding}; their P&L against the rest: Mann-Whitney p {p:.2g}, {corrected:.2g} corrected for the "
                f"{compared} {searched} searched (Bonferroni).")
    else:
        text = f"{finding}; their P&L against the rest: Mann-Whitney p {p:.2g}."
    return Hypothesis(text, test, n, float(inside.sum()), evidence, p, corrected, compared)


def _strength(n: int) -> str:
    return "weak" if n < FEW_TRADES else "untested"


def _bucket_hypotheses(frame: pd.DataFrame, strategy: str, benchmark: str) -> list[Hypothesis]:
    out: list[Hypothesis] = []
    pnl = frame["pnl"].astype(float)
    tests = {
        "regime": lambda b: (f"test skipping entries in the {b} regime: `tradingd walkforward --strategy {strategy} "
                             "--regime-aware` picks a parameter set per regime and compares it with one set"),
        "benchmark_trend": lambda b: (f"test a market filter: enter only when {benchmark} is "
                                      f"{'below' if b == 'above' else 'above'} its 50-bar mean (a filter in the "
                                      "strategy), replayed and then walked forward"),
        "time_of_day": lambda b: (f"test not entering at {b} exchange time (a time-of-day filter in the strategy); "
                                  "hour effects are often noise, so confirm with `tradingd walkforward`"),
        "weekday": lambda b: (f"test not entering on {b}; weekday effects are usually noise, so only with out-of-"
                              "sample confirmation (`tradingd walkforward`)"),
        "symbol": lambda b: (f"test the universe without {b}: `tradingd replay` with its file left out of --data, "
                             f"then `tradingd walkforward --strategy {strategy}` on the smaller universe"),
    }
    names = {"regime": "in the {b} regime", "benchmark_trend": f"with {benchmark} {{b}} its 50-bar mean",
             "time_of_day": "at {b} (exchange time)", "weekday": "on {b}", "symbol": "in {b}"}
    plural = {"regime": "regimes", "benchmark_trend": "trend states", "time_of_day": "hours", "weekday": "weekdays",
              "symbol": "symbols"}
    for column, test in tests.items():
        if column not in frame:
            continue
        labels = frame[column].astype(str)
        if labels.nunique() < 2:
            continue
        sums = pnl.groupby(labels).sum()
        counts = labels.value_counts()
        eligible = [b for b in sums.index if counts[b] >= MIN_BUCKET and sums[b] < 0 and b not in ("unknown", "none")]
        if not eligible:
            continue
        worst = min(eligible, key=lambda b: sums[b])
        rest = pnl[labels != worst]
        if len(rest) == 0 or rest.mean() <= sums[worst] / counts[worst]:
            continue
        n = int(counts[worst])
        win = float((pnl[labels == worst] > 0).mean())
        finding = (f"Trades entered {names[column].format(b=worst)} lost {fmt_usd(-float(sums[worst]))} over {n} "
                   f"trades (win rate {fmt_pct(win, 0)}); the other {len(rest)} made {fmt_usd(float(rest.sum()))} "
                   f"({fmt_usd(float(rest.mean()))} per trade)")
        # the worst of every bucket of the feature: corrected for all of them
        out.append(_split(finding, test(worst), pnl, labels == worst, int(labels.nunique()), plural[column]))
    return out


def _hypotheses(trades: pd.DataFrame, context: TradeContext, run: FinishedRun) -> list[Hypothesis]:
    frame = _categories(trades)
    if len(frame) == 0:
        return []
    strategy, params = run.strategy, run.params
    space = f"spaces/{strategy}.toml"
    optimize = f"`tradingd optimize --strategy {strategy} --space {space}`"
    pnl = frame["pnl"].astype(float)
    out: list[Hypothesis] = []
    confidence = frame["confidence"].astype(float)
    known = confidence.dropna()
    if len(known) >= 2 * MIN_BUCKET:  # a confidence floor
        options = []
        floors = sorted(set(float(v) for v in known.quantile([0.25, 0.5])))
        for q in floors:
            below = confidence < q
            if below.sum() >= MIN_BUCKET and pnl[below].sum() < 0:
                options.append((float(pnl[below].sum()), q, below))
        if options:
            lost, q, below = min(options, key=lambda o: o[0])
            n = int(below.sum())
            above = confidence >= q
            out.append(_split(
                f"Trades entered at confidence < {q:.2f} lost {fmt_usd(-lost)} over {n} trades (win rate "
                f"{fmt_pct(float((pnl[below] > 0).mean()), 0)}); the {int(above.sum())} at or above it made "
                f"{fmt_usd(float(pnl[above].sum()))}",
                f"test min_confidence = {q:.2f}: add `[risk.min_confidence] type = \"float\" low = 0.0 high = "
                f"{min(0.99, q + 0.1):.2f}` to {space} and run {optimize}; confirm with `tradingd walkforward`",
                pnl, below, len(floors), "confidence floors"))
    volatility = frame["volatility"].astype(float)
    if volatility.notna().sum() >= 4 * MIN_BUCKET:  # a volatility filter
        high = float(volatility.quantile(0.75))
        top = volatility > high
        if top.sum() >= MIN_BUCKET and pnl[top].sum() < 0 and pnl[top].mean() < pnl[~top].mean():
            n = int(top.sum())
            out.append(_split(
                f"Entries when the 20-bar volatility was above {fmt_pct(high)} per bar (the top quarter) lost "
                f"{fmt_usd(-float(pnl[top].sum()))} over {n} trades; the rest made {fmt_usd(float(pnl[~top].sum()))}",
                "test a volatility filter (no entry above that volatility) or volatility-scaled sizing "
                "(`[risk] sizing = \"risk_per_trade\"` with a stop): replay both and compare, then walk forward",
                pnl, top))
    out += _bucket_hypotheses(frame, strategy, context.benchmark)
    winners, losers = _winners_losers(frame)
    stops = frame["exit_type"].astype(str) == "stop"
    stop_loss = params.get("stop_loss")
    if isinstance(stop_loss, (int, float)) and stops.sum() >= MIN_BUCKET and pnl[stops].sum() < 0 and len(winners):
        deep = -float(winners["mae"].astype(float).quantile(0.1))  # 90% of winners went no deeper than this
        if 0 < deep < 0.8 * float(stop_loss):
            n = int(stops.sum())
            out.append(Hypothesis(
                f"Stop exits lost {fmt_usd(-float(pnl[stops].sum()))} over {n} trades, while 90% of winners went no "
                f"more than {fmt_pct(deep)} against the entry (stop_loss {fmt_pct(float(stop_loss))}): a tighter stop "
                "may cut losers sooner at the cost of some winners.",
                f"test stop_loss around {fmt_pct(deep)} ([params.stop_loss] low = {max(0.001, deep * 0.5):.3f} "
                f"high = {max(0.002, float(stop_loss)):.3f} in {space}) with {optimize}",
                n, float(pnl[stops].sum()), _strength(n)))
    if len(winners) and len(losers):
        typical = float(winners["return"].astype(float).median())
        gave_back = losers["mfe"].astype(float) >= typical
        if typical > 0 and gave_back.sum() >= MIN_BUCKET:
            n = int(gave_back.sum())
            lost = float(losers["pnl"].astype(float)[gave_back].sum())
            knobs = [k for k in ("profit_target", "trailing_stop") if k in params]
            how = (f"test {' and '.join(knobs)} with {optimize}" if knobs
                   else "test a profit target or a trailing stop in the strategy")
            out.append(Hypothesis(
                f"{n} losers were up at least {fmt_pct(typical)} (the median winner's return) before closing at a "
                f"loss; they lost {fmt_usd(-lost)}.", how, n, lost, _strength(n)))
        held_w, held_l = float(winners["holding_bars"].median()), float(losers["holding_bars"].median())
        long_held = losers["holding_bars"] > held_w
        if len(winners) >= 5 and len(losers) >= 5 and held_l > 1.5 * max(held_w, 1.0) and long_held.sum() >= MIN_BUCKET:
            n = int(long_held.sum())
            lost = float(losers["pnl"].astype(float)[long_held].sum())
            how = (f"test max_holding_bars around {held_w:g} with {optimize}" if "max_holding_bars" in params
                   else f"test a time stop (exit after about {held_w:g} bars) in the strategy")
            out.append(Hypothesis(
                f"Losers were held a median {held_l:g} bars, winners {held_w:g}; the {n} losers held longer than the "
                f"median winner lost {fmt_usd(-lost)}.", how, n, lost, _strength(n)))
    rank = {"moderate": 0, "untested": 1, "weak": 2}
    out.sort(key=lambda h: (rank.get(h.evidence, 3), h.pnl))  # tested splits first, then by the dollars at stake
    return out


def _trade_text(row: Any) -> str:
    return (f"{row['symbol']} {row['side']} {fmt_usd(float(row['pnl']))} ({row['exit_reason']}, "
            f"{pd.Timestamp(row['exit_time']).strftime('%Y-%m-%d')})")


def month_summaries(trades: pd.DataFrame, equity: pd.Series, starting_cash: float) -> list[MonthSummary]:
    """Return one :class:`MonthSummary` per calendar month (UTC) of ``equity``'s span.

    ``trades`` (context columns) are assigned to the month of their exit; the equity change is
    the month's last equity minus the previous month's (the starting cash before the first).
    """
    index = pd.DatetimeIndex(equity.index).tz_convert("UTC")
    periods = index.tz_localize(None).to_period("M")
    month_end = equity.groupby(periods).last()
    exits = pd.DatetimeIndex(pd.to_datetime(trades["exit_time"], utc=True)).tz_localize(None).to_period("M")
    pnl = trades["pnl"].astype(float)
    overall_win = float((pnl > 0).mean()) if len(pnl) else None
    ranked = month_end.diff().fillna(month_end.iloc[0] - starting_cash).sort_values()
    median_change = float(ranked.median())
    out: list[MonthSummary] = []
    previous = starting_cash
    for period, last in month_end.items():
        members = trades[exits == period]
        change = float(last) - previous
        previous = float(last)
        mp = members["pnl"].astype(float)
        win = float((mp > 0).mean()) if len(mp) else None
        records = members.to_dict("records")
        best = _trade_text(records[int(np.argmax(mp.to_numpy()))]) if len(mp) else ""
        worst = _trade_text(records[int(np.argmin(mp.to_numpy()))]) if len(mp) else ""
        notes: list[str] = []
        rank = int((ranked < change).sum()) + 1
        if len(ranked) >= 3 and rank == 1:
            notes.append(f"worst month of the run ({fmt_usd(change)} equity change)")
        elif len(ranked) >= 3 and rank == len(ranked):
            notes.append(f"best month of the run ({fmt_usd(change)} equity change)")
        else:
            notes.append(f"equity change {fmt_usd(change)} against a median month of {fmt_usd(median_change)}")
        if win is not None and overall_win is not None and len(mp) >= MIN_BUCKET and abs(win - overall_win) >= 0.15:
            notes.append(f"win rate {fmt_pct(win, 0)} against {fmt_pct(overall_win, 0)} over the run")
        if len(mp):
            for column in ("symbol", "exit_type"):
                by = {str(k): float(v) for k, v in mp.groupby(members[column].astype(str)).sum().items()}
                if len(by) > 1:
                    key = max(by, key=lambda b: abs(by[b]))
                    notes.append(f"{column.replace('_', ' ')} {key} made {fmt_usd(by[key])} of the month's "
                                 f"{fmt_usd(float(mp.sum()))} closed P&L")
            if abs(change - float(mp.sum())) > max(1.0, 0.25 * abs(change)):
                notes.append(f"open positions moved equity by {fmt_usd(change - float(mp.sum()))} beyond the closed "
                             "trades")
        else:
            notes.append("no trade closed")
        out.append(MonthSummary(str(period), int(len(mp)), float(math.fsum(mp)) if len(mp) else 0.0, change, win,
                                best, worst, notes))
    return out


def build_journal(run: FinishedRun, context: TradeContext, month: str | None = None) -> Journal:
    """Return the journal of ``run`` (its trades with ``context``), narrowed to ``month`` if given.

    Parameters
    ----------
    run : FinishedRun
    context : TradeContext
        :func:`research.trade_context.build_trade_context` of the run.
    month : str, optional
        ``YYYY-MM``: only trades closed in that month (UTC).

    Raises
    ------
    JournalError
        If ``month`` is malformed or outside the run.
    """
    trades = _categories(context.trades)
    if month is not None:
        month = parse_month(month, run.equity)
        exits = pd.DatetimeIndex(pd.to_datetime(trades["exit_time"], utc=True)).tz_localize(None).to_period("M")
        trades = trades[exits == pd.Period(month, freq="M")].reset_index(drop=True)
    winners, losers = _winners_losers(trades)
    comparison, shares = compare_outcomes(trades)
    patterns, threshold = find_patterns(trades)
    n_small = min(len(winners), len(losers))
    scope = f"in {month}" if month else "over the run"
    if len(trades) == 0:
        evidence = f"No trade closed {scope}: nothing to compare."
    elif n_small < FEW_TRADES:
        evidence = (f"{len(trades)} trades {scope} ({len(winners)} winners, {len(losers)} losers): the evidence is "
                    "weak; treat every pattern and hypothesis as a question to test, not a finding.")
    else:
        evidence = (f"{len(trades)} trades {scope} ({len(winners)} winners, {len(losers)} losers). p-values are "
                    f"uncorrected; with {len(patterns)} features tested the Bonferroni threshold is {threshold:.3g}. "
                    "Every pattern comes from these same trades (in sample).")
    index = pd.DatetimeIndex(run.equity.index)
    return Journal(run.run_id, run.strategy, month, trades, len(winners), len(losers), comparison, shares, patterns,
                   threshold, _hypotheses(trades, context, run), month_summaries(context.trades, run.equity,
                                                                                 run.starting_cash),
                   evidence, (index[0].isoformat(), index[-1].isoformat()))


def journal_document(journal: Journal) -> dict[str, Any]:
    """Return ``journal.json``: run_id, strategy, month, period, trades, winners, losers,
    closed_pnl (USD), evidence, comparison (numeric, categorical), patterns, bonferroni_threshold,
    hypotheses, months and month_summary (null without a month). No NaN."""
    summary = journal.month_summary
    return json_safe({
        "run_id": journal.run_id, "strategy": journal.strategy, "month": journal.month,
        "period": {"start": journal.period[0], "end": journal.period[1]}, "trades": int(len(journal.trades)),
        "winners": journal.winners, "losers": journal.losers,
        "closed_pnl": float(math.fsum(journal.trades["pnl"].astype(float))) if len(journal.trades) else 0.0,
        "evidence": journal.evidence,
        "comparison": {"numeric": [asdict(c) for c in journal.comparison],
                       "categorical": [asdict(s) for s in journal.shares]},
        "patterns": [asdict(p) for p in journal.patterns], "bonferroni_threshold": journal.bonferroni,
        "hypotheses": [asdict(h) for h in journal.hypotheses], "months": [asdict(m) for m in journal.months],
        "month_summary": asdict(summary) if summary is not None else None,
    })


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]


def journal_markdown(journal: Journal) -> str:
    """Return ``journal.md``: the journal as text (Markdown)."""
    title = f"# Trade journal: {journal.run_id}" + (f", {journal.month}" if journal.month else "")
    closed = float(journal.trades["pnl"].astype(float).sum()) if len(journal.trades) else 0.0
    lines = [title, "", f"Strategy {journal.strategy}; run {journal.period[0]} to {journal.period[1]} (UTC).",
             f"{len(journal.trades)} closed trades, {journal.winners} winners, {journal.losers} losers, closed P&L "
             f"{fmt_usd(closed)} (net of commission).", "", journal.evidence, ""]
    summary = journal.month_summary
    if summary is not None:
        lines += [f"## {summary.month}", "",
                  f"{summary.trades} trades closed, P&L {fmt_usd(summary.pnl)}, equity change "
                  f"{fmt_usd(summary.equity_change)}, win rate {fmt_pct(summary.win_rate, 0)}.", ""]
        lines += [f"- {note}" for note in summary.stood_out]
        if summary.best:
            lines += [f"- best trade: {summary.best}", f"- worst trade: {summary.worst}"]
        lines.append("")
    lines += ["## Winners vs losers", ""]
    lines += _md_table(["feature", "winners mean", "winners median", "losers mean", "losers median"], [
        [c.label, *(format_feature(c.feature, v) for v in (c.winners_mean, c.winners_median, c.losers_mean,
                                                           c.losers_median))] for c in journal.comparison]) + [""]
    lines += ["## Patterns that separate them", ""]
    lines += ([f"{k}. {p.label}: {p.summary}; evidence {p.evidence}." for k, p in enumerate(journal.patterns, 1)]
              or ["None testable (a feature needs winners and losers and must vary)."]) + [""]
    lines += ["## Hypotheses to test", "",
              "From the same trades they describe, so none is a promise: test each before trading it.", ""]
    lines += ([f"{k}. {h.finding} Hypothesis: {h.test}. ({h.trades} trades; evidence: {h.evidence}.)"
               for k, h in enumerate(journal.hypotheses, 1)] or ["No adjustment stands out."]) + [""]
    lines += ["## Months", ""] if journal.month is None else []
    for m in journal.months if journal.month is None else []:
        text = (f"- **{m.month}**: {m.trades} trades, P&L {fmt_usd(m.pnl)}, equity change {fmt_usd(m.equity_change)}"
                + (f", win rate {fmt_pct(m.win_rate, 0)}" if m.win_rate is not None else "") + ". "
                + "; ".join(m.stood_out) + ".")
        lines.append(text)
    lines += ["", "## Trades", ""]
    lines += _md_table(["#", "symbol", "side", "entry (UTC)", "exit (UTC)", "P&L", "return", "exit", "confidence",
                        "regime", "MAE", "MFE", "bars"], [
        [str(t['trade_id']), str(t['symbol']), str(t['side']), pd.Timestamp(t['entry_time']).strftime("%Y-%m-%d %H:%M"),
         pd.Timestamp(t['exit_time']).strftime("%Y-%m-%d %H:%M"), fmt_usd(float(t['pnl'])), fmt_pct(float(t['return'])),
         str(t['exit_reason']), "n/a" if pd.isna(t['confidence']) else f"{float(t['confidence']):.2f}",
         str(t['regime']),
         fmt_pct(float(t['mae'])), fmt_pct(float(t['mfe'])), str(int(t['holding_bars']))]
        for t in journal.trades.to_dict("records")])
    return "\n".join(lines) + "\n"


def write_journal_files(journal: Journal, out_dir: Path) -> list[str]:
    """Write ``journal.csv`` (the trades with their context), ``journal.json`` and ``journal.md``
    into ``out_dir`` (created); return the names written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    trades = journal.trades.copy()
    for column in ("entry_time", "exit_time", "decision_time"):
        trades[column] = pd.to_datetime(trades[column], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    trades.to_csv(out_dir / "journal.csv", index=False)
    (out_dir / "journal.json").write_text(json.dumps(journal_document(journal), indent=2, allow_nan=False))
    (out_dir / "journal.md").write_text(journal_markdown(journal))
    return ["journal.csv", "journal.json", "journal.md"]
