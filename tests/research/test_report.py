"""HTML report: content, self-containment, size and speed."""

from __future__ import annotations

import html as html_lib
import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.offline
import pytest

from backtest.sources import load_bars
from core.enums import TradingState
from core.events import TradingStateChanged
from core.portfolio import Position
from research.benchmark import buy_and_hold
from research.metrics import compute_metrics, daily_returns
from research.report import MAX_PLOT_POINTS, downsample, format_metrics_table, write_report
from research.reports import charts, tables
from research.state_history import state_changes_frame, state_spells
from research.tearsheet import drawdown_periods, relative_stats, rolling_sharpe, rolling_volatility, yearly_returns
from research.trade_stats import cost_totals, open_positions_frame, symbol_pnl, trade_summary

PLOTLY_JS_HEAD = plotly.offline.get_plotlyjs()[:300]
LABELS = ["Total return", "CAGR", "Volatility", "Sharpe", "Sortino", "Calmar", "Max drawdown",
          "Max DD duration", "Win rate", "Profit factor", "Expectancy", "Exposure", "Turnover", "Trades"]


def _trades(symbols, times, n, rng) -> pd.DataFrame:
    entry = rng.integers(0, len(times) - 10, n)
    return pd.DataFrame({
        "symbol": [symbols[i % len(symbols)] for i in range(n)],
        "side": np.where(np.arange(n) % 3 == 0, "sell", "buy"),
        "quantity": 10.0,
        "entry_time": times[entry],
        "exit_time": times[entry + 5],
        "entry_price": 100.0,
        "exit_price": 101.0,
        "pnl": rng.normal(0, 10, n),
        "commission": 1.0,
        "exit_reason": "signal",
    })


@pytest.fixture
def small_run():
    index = pd.date_range("2023-12-01", periods=4, freq="20D", tz="UTC")
    equity = pd.Series([100.0, 110.0, 99.0, 121.0], index=index)
    closes = {"AAPL": pd.Series([10.0, 11.0, 9.0, 12.0], index=index),
              "BRK.B": pd.Series([20.0, 20.0, 21.0, 22.0], index=index)}
    trades = pd.DataFrame({
        "symbol": ["AAPL", "AAPL", "BRK.B", "BRK.B"], "side": ["buy", "sell", "buy", "buy"],
        "quantity": [1.0, 2.0, 3.0, 1.0], "entry_time": index[[0, 1, 0, 2]], "exit_time": index[[1, 2, 2, 3]],
        "entry_price": [10.0, 11.0, 20.0, 21.0], "exit_price": [11.0, 9.0, 21.0, 22.0],
        "pnl": [100.0, -50.0, 200.0, -25.0], "commission": [0.0] * 4, "exit_reason": ["signal"] * 4,
    })
    bench = buy_and_hold(closes, 100.0, index)
    return equity, bench, trades, closes


def test_format_metrics_table(small_run):
    equity, bench, trades, _ = small_run
    rows = format_metrics_table(compute_metrics(equity, trades=trades), compute_metrics(bench))
    assert [r[0] for r in rows] == LABELS
    table = {label: (a, b) for label, a, b in rows}
    assert table["Total return"][0] == "21.00%"
    assert table["Max drawdown"][0] == "10.00%"
    assert table["Max DD duration"][0] == "40d 0h"
    assert table["Win rate"] == ("50.00%", "n/a")
    assert table["Profit factor"] == ("4.00", "n/a")
    assert table["Expectancy"] == ("$56.25", "n/a")
    assert table["Trades"] == ("4", "n/a")
    assert table["Exposure"] == ("n/a", "n/a")
    bench_return = bench.iloc[-1] / bench.iloc[0] - 1
    assert table["Total return"][1] == f"{bench_return * 100:.2f}%"
    only = format_metrics_table(compute_metrics(equity, trades=trades.iloc[:1]))
    assert dict((r[0], r[1]) for r in only)["Profit factor"] == "∞"
    assert all(r[2] == "n/a" for r in only)


def test_report_contents(tmp_path, small_run):
    equity, bench, trades, closes = small_run
    metrics, bench_metrics = compute_metrics(equity, trades=trades), compute_metrics(bench)
    run_info = {"strategy": "sma_cross", "params": {"fast": 10, "slow": 30}, "config hash": "abc123",
                "data": ["data/AAPL.csv"]}
    path = write_report(tmp_path / "out" / "report.html", equity, bench, metrics, bench_metrics, trades,
                        closes, "SMA <cross>", run_info)
    assert path == tmp_path / "out" / "report.html" and path.exists()
    text = path.read_text(encoding="utf-8")
    for div in ("equity-chart", "drawdown-chart", "monthly-returns", "price-aapl", "price-brk-b"):
        assert f'id="{div}"' in text
    assert text.count(PLOTLY_JS_HEAD) == 1  # plotly.js embedded exactly once
    assert not re.search(r"<script[^>]+src=", text)  # nothing loaded from the network
    assert not re.search(r"<link[^>]+href=", text)
    assert "SMA &lt;cross&gt;" in text and "<cross>" not in text
    assert "sma_cross" in text and "abc123" in text and "&quot;fast&quot;: 10" in text
    table = text[text.index('id="metrics-table"'):text.index("</table>", text.index('id="metrics-table"'))]
    for label, a, b in format_metrics_table(metrics, bench_metrics):
        assert f"<td>{label}</td><td>{a}</td><td>{b}</td>" in table
    assert "triangle-up" in text and "triangle-down" in text  # long and short entries
    assert "+10.0%" in text  # heat-map text label in percent


def test_report_without_benchmark_or_trades(tmp_path, small_run):
    equity, _, trades, _ = small_run
    path = write_report(tmp_path, equity, None, compute_metrics(equity), None, trades.iloc[:0], {}, "t", {})
    assert path == tmp_path / "report.html"
    text = path.read_text(encoding="utf-8")
    assert 'id="equity-chart"' in text and "price-" not in text


def test_downsample_keeps_ends_and_extremes():
    rng = np.random.default_rng(3)
    s = pd.Series(rng.normal(size=50_000).cumsum(), index=pd.date_range("2024", periods=50_000, freq="min"))
    small = downsample(s, 1000)
    assert len(small) <= 1000
    assert small.index[0] == s.index[0] and small.index[-1] == s.index[-1]
    assert small.max() == s.max() and small.min() == s.min()
    assert small.index.is_monotonic_increasing
    assert (s.loc[small.index] == small).all()
    short = s.iloc[:10]
    pd.testing.assert_series_equal(downsample(short, 1000), short)
    with pytest.raises(ValueError):
        downsample(s, 2)


def test_large_report_stays_small(tmp_path):
    rng = np.random.default_rng(0)
    n = 200_000
    index = pd.date_range("2020-01-01", periods=n, freq="min", tz="UTC")
    symbols = ["S0", "S1", "S2", "S3", "S4"]
    closes = {s: pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), index=index) for s in symbols}
    equity = pd.Series(1e5 * np.exp(np.cumsum(rng.normal(0, 1e-4, n))), index=index)
    trades = _trades(symbols, index, 1000, rng)
    bench = buy_and_hold(closes, 1e5, index)
    metrics, bench_metrics = compute_metrics(equity, trades=trades), compute_metrics(bench)
    path = write_report(tmp_path / "big.html", equity, bench, metrics, bench_metrics, trades, closes,
                        "big", {"bars": n})
    size = path.stat().st_size
    assert size < 10_000_000, f"report is {size / 1e6:.1f} MB"
    assert MAX_PLOT_POINTS < n


@pytest.mark.parametrize("growth, log", [(200.0, True), (1.5, False)])
def test_equity_axis_turns_logarithmic_when_the_curves_span_orders_of_magnitude(tmp_path, growth, log):
    index = pd.date_range("2000-01-01", periods=500, freq="D", tz="UTC")
    equity = pd.Series(np.linspace(1e5, 1e5 * growth, 500), index=index)
    path = write_report(tmp_path / "r.html", equity, None, compute_metrics(equity), None, None, None, "t", {})
    html = path.read_text()
    assert ("USD (log scale)" in html) is log


# --- tear-sheet sections -------------------------------------------------------------------------

DATA = Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted"
SECTION_IDS = ["section-metrics", "section-risk", "section-equity", "section-drawdown", "section-worst-drawdowns", "section-monthly",
               "section-yearly", "section-daily", "section-rolling-sharpe", "section-rolling-volatility",
               "section-exposure", "section-breakers", "section-trade-stats", "section-costs", "section-symbol-pnl",
               "section-open-positions", "section-trades", "section-prices"]


def _ns(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value


def _change(previous: TradingState, current: TradingState, reason: str, when: str) -> TradingStateChanged:
    return TradingStateChanged(previous=previous, current=current, reason=reason, ts_event=_ns(when), ts_init=_ns(when))


def _colour_position(trace: dict, row: int, column: int) -> float:
    """Where a heat-map cell sits on its colour scale, 0 (reddest) .. 1 (greenest), as plotly maps it:
    explicit zmin/zmax when given, else the data range (made symmetric about zmid when zmid is set)."""
    z = np.array([[np.nan if v is None else v for v in r] for r in trace["z"]], dtype=float)
    low, high = trace.get("zmin"), trace.get("zmax")
    if low is None or high is None:
        low, high = np.nanmin(z), np.nanmax(z)
        if trace.get("zmid") is not None:
            reach = max(abs(high - trace["zmid"]), abs(low - trace["zmid"]))
            low, high = trace["zmid"] - reach, trace["zmid"] + reach
    return float((z[row, column] - low) / (high - low))


def test_heat_map_colours_months_on_their_own_scale_centred_on_zero():
    # two years of +/-2 % months: each year compounds to far more than any month
    months = pd.date_range("2020-01-31", periods=24, freq="ME", tz="UTC")
    rets = np.where(np.arange(24) % 4 == 3, -0.02, 0.02)
    index = pd.DatetimeIndex([pd.Timestamp("2020-01-01", tz="UTC"), *months])
    equity = pd.Series(100.0 * np.cumprod(np.concatenate(([1.0], 1 + rets))), index=index)
    trace = charts.monthly_figure(equity)["data"][0]
    assert trace["x"][-1] == "Year" and trace["text"][0][0] == "+2.0%" and trace["text"][0][3] == "-2.0%"
    # a normal +2 % month is full green and a -2 % month full red: the Year column does not set the range
    assert _colour_position(trace, 0, 0) == pytest.approx(1.0)
    assert _colour_position(trace, 0, 3) == pytest.approx(0.0)
    # 0 % sits in the middle of the scale, for the months and for the Year column
    assert trace["zmid"] == 0 and trace["zmin"] == -trace["zmax"]
    assert _colour_position(trace, 0, 12) == pytest.approx(1.0)  # the best year is full green on its own scale
    assert trace["text"][0][12] == f"{((1.02 ** 9) * (0.98 ** 3) - 1) * 100:+.1f}%"


def test_heat_map_colour_bar_is_labelled_in_monthly_returns():
    idx = pd.date_range("2021-01-31", periods=3, freq="ME", tz="UTC")
    trace = charts.monthly_figure(pd.Series([100.0, 105.0, 100.0], index=idx))["data"][0]
    # months 0 %, +5 %, -4.8 %: the bar spans the largest month either way
    assert trace["colorbar"]["ticktext"] == ["-5.0%", "-2.5%", "+0.0%", "+2.5%", "+5.0%"]


@pytest.mark.parametrize("symbol, log", [("AAPL", True), ("SPY", False)])
def test_price_axis_is_logarithmic_when_prices_span_orders_of_magnitude(symbol, log):
    bars = load_bars(DATA / f"{symbol}.csv.gz", start=datetime(1998, 1, 1, tzinfo=timezone.utc),
                     end=datetime(2021, 1, 1, tzinfo=timezone.utc))
    close = pd.Series(bars.close, index=pd.to_datetime(bars.ts_event + bars.timeframe_ns, utc=True))
    if not log:  # SPY only over two years: prices within 2x
        close = close.loc["2018":"2019"]
    fig = charts.price_figure(symbol, close, None)
    axis = fig["layout"]["yaxis"]
    assert (axis["type"] == "log") is log
    if log:  # ticks at 1-2-5 x powers of ten inside the price range, labelled in USD
        assert axis["ticktext"][:3] == ["$0.2", "$0.5", "$1"] and axis["tickvals"][-1] <= close.max()


def test_worst_drawdowns_match_a_brute_force_scan_and_the_max_drawdown():
    rng = np.random.default_rng(7)
    idx = pd.date_range("2020-01-01", periods=3000, freq="h", tz="UTC")
    equity = pd.Series(1e5 * np.exp(np.cumsum(rng.normal(0, 2e-3, len(idx)))), index=idx)
    values = equity.to_numpy()
    spells, peak, start = [], values[0], 0  # brute force: walk the curve
    trough = None
    for i, v in enumerate(values):
        if v >= peak:
            if trough is not None:
                spells.append((start, trough, i))
            peak, start, trough = v, i, None
        elif trough is None or v < values[trough]:
            trough = i
    if trough is not None:
        spells.append((start, trough, None))
    expected = sorted(spells, key=lambda s: values[s[1]] / values[s[0]])[:5]
    got = drawdown_periods(equity, 5)
    assert [(p.start, p.trough, p.recovery) for p in got] == [
        (idx[s], idx[t], None if r is None else idx[r]) for s, t, r in expected]
    for p, (s, t, r) in zip(got, expected):
        assert p.depth == pytest.approx(1 - values[t] / values[s])
        assert p.days == pytest.approx(((idx[r] if r is not None else idx[-1]) - idx[s]) / pd.Timedelta(days=1))
    assert got[0].depth == pytest.approx(compute_metrics(equity).max_drawdown)


def test_drawdown_table_shows_depth_in_percent_and_an_unrecovered_spell():
    idx = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    equity = pd.Series([100.0, 80.0, 100.0, 110.0, 99.0], index=idx)
    text = tables.drawdowns_table(drawdown_periods(equity))
    assert "<td>2024-01-01 00:00</td><td>2024-01-02 00:00</td><td>2024-01-03 00:00</td>" in text
    assert ">-20.00%</td>" in text and ">-10.00%</td>" in text and "not recovered" in text
    assert drawdown_periods(pd.Series([1.0, 2.0], index=idx[:2])) == []


def test_yearly_returns_compound_to_the_total_return():
    rng = np.random.default_rng(2)
    idx = pd.date_range("2019-03-01", "2023-06-30", freq="D", tz="UTC")
    equity = pd.Series(1e5 * np.exp(np.cumsum(rng.normal(0, 0.01, len(idx)))), index=idx)
    years = yearly_returns(equity)
    assert list(years.index) == [2019, 2020, 2021, 2022, 2023]
    assert (1 + years).prod() - 1 == pytest.approx(equity.iloc[-1] / equity.iloc[0] - 1)
    assert years[2021] == pytest.approx(equity.loc["2021"].iloc[-1] / equity.loc["2020"].iloc[-1] - 1)


def test_rolling_sharpe_and_volatility_match_numpy_on_each_window():
    rng = np.random.default_rng(4)
    r = pd.Series(rng.normal(5e-4, 0.01, 300), index=pd.date_range("2020", periods=300, freq="D", tz="UTC"))
    sharpe, vol = rolling_sharpe(r, 252.0), rolling_volatility(r, 252.0)
    assert sharpe.iloc[:125].isna().all() and vol.iloc[:125].isna().all()
    for end in (126, 200, 300):
        window = r.to_numpy()[end - 126:end]
        std = np.std(window, ddof=1)
        assert vol.iloc[end - 1] == pytest.approx(std * math.sqrt(252))
        assert sharpe.iloc[end - 1] == pytest.approx(window.mean() / std * math.sqrt(252))
    flat = rolling_sharpe(pd.Series(np.full(10, 0.001)), 252.0, window=5)
    assert flat.isna().all()  # zero dispersion: undefined, never infinite


def _correlated_curves(n=600, seed=5):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC")
    rb = rng.normal(4e-4, 0.012, n - 1)
    rs = 1e-4 + 0.4 * rb + rng.normal(0, 0.004, n - 1)
    bench = pd.Series(1e5 * np.concatenate(([1.0], np.cumprod(1 + rb))), index=idx)
    strat = pd.Series(1e5 * np.concatenate(([1.0], np.cumprod(1 + rs))), index=idx)
    return strat, bench, rs, rb


def test_alpha_beta_correlation_match_numpy_polyfit():
    strat, bench, rs, rb = _correlated_curves()
    stats = relative_stats(strat, bench, 252.0)
    slope, intercept = np.polyfit(rb, rs, 1)
    assert stats.days == len(rs)
    assert stats.beta == pytest.approx(slope, rel=1e-9)
    assert stats.alpha == pytest.approx((1 + intercept) ** 252 - 1, rel=1e-9)
    assert stats.correlation == pytest.approx(np.corrcoef(rs, rb)[0, 1], rel=1e-9)
    flat = pd.Series(1e5, index=bench.index)
    assert relative_stats(flat, bench, 252.0).correlation is None  # a strategy that never traded
    assert relative_stats(strat, flat, 252.0).beta is None  # a benchmark that never moved


def test_alpha_beta_match_empyrical():
    import empyrical  # empyrical-reloaded (dev dependency) is the independent reference
    strat, bench, rs, rb = _correlated_curves(seed=9)
    idx = daily_returns(strat).index
    alpha, beta = empyrical.alpha_beta(pd.Series(rs, index=idx), pd.Series(rb, index=idx), annualization=252.0)
    stats = relative_stats(strat, bench, 252.0)
    assert stats.beta == pytest.approx(beta, abs=1e-12) and stats.alpha == pytest.approx(alpha, abs=1e-12)


def test_trade_summary_costs_and_symbol_pnl(small_run):
    _, _, trades, _ = small_run
    s = trade_summary(trades)
    assert (s.trades, s.winners, s.losers) == (4, 2, 2)
    assert s.avg_win == 150.0 and s.avg_loss == -37.5 and s.payoff_ratio == 4.0
    assert s.largest_win == 200.0 and s.largest_loss == -50.0
    assert s.avg_holding == pd.Timedelta(days=25)  # 20, 20, 40, 20 days
    assert s.avg_holding_win == pd.Timedelta(days=30) and s.avg_holding_loss == pd.Timedelta(days=20)
    fills = pd.DataFrame({"symbol": ["AAPL", "AAPL", "BRK.B"], "commission": [1.0, 2.0, 4.0],
                          "slippage": [0.5, 0.5, 1.0]})
    costs = cost_totals(fills)
    assert (costs.commission, costs.slippage, costs.total, costs.fills) == (7.0, 2.0, 9.0, 3)
    assert cost_totals(fills.drop(columns="slippage")).slippage is None
    pos = Position("BRK.B", mark=25.0)
    pos.quantity, pos.avg_price = 4.0, 22.0
    flat = Position("AAPL", mark=12.0)
    open_ = open_positions_frame({"BRK.B": pos, "AAPL": flat}, 1000.0)
    assert open_.to_dict("records") == [{"symbol": "BRK.B", "side": "long", "quantity": 4.0, "avg_price": 22.0,
                                         "mark": 25.0, "market_value": 100.0, "unrealized_pnl": 12.0, "weight": 0.1}]
    table = symbol_pnl(trades, fills, open_).set_index("symbol")
    assert table.loc["BRK.B", ["trades", "pnl", "commission", "slippage", "unrealized_pnl"]].tolist() == [
        2, 175.0, 4.0, 1.0, 12.0]
    assert table.loc["AAPL", ["pnl", "win_rate", "best", "worst"]].tolist() == [50.0, 0.5, 100.0, -50.0]
    assert table["pnl"].sum() == trades["pnl"].sum()


def test_state_spells_and_the_equity_chart_show_every_breaker_event():
    idx = pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")
    equity = pd.Series(np.linspace(100.0, 90.0, 10), index=idx)
    changes = [
        _change(TradingState.ACTIVE, TradingState.HALTED, "drawdown 21% >= 20%", "2024-01-03"),
        _change(TradingState.HALTED, TradingState.ACTIVE, "rearmed by operator", "2024-01-05"),
        _change(TradingState.ACTIVE, TradingState.REDUCING, "5 consecutive losing trades", "2024-01-08"),
    ]
    spells = state_spells(changes[::-1], idx[-1])  # order of the input does not matter
    assert [(s.state, s.start.day, s.end.day) for s in spells] == [
        (TradingState.HALTED, 3, 5), (TradingState.REDUCING, 8, 10)]
    frame = state_changes_frame(changes)
    fig = charts.equity_figure(equity, None, spells=spells, changes=frame)
    bands = fig["layout"]["shapes"]
    assert [(b["x0"], b["x1"], b["fillcolor"]) for b in bands] == [
        ("2024-01-03", "2024-01-05", charts.STATE_COLOURS[TradingState.HALTED]),
        ("2024-01-08", "2024-01-10", charts.STATE_COLOURS[TradingState.REDUCING])]
    markers = fig["data"][-1]
    assert markers["x"] == ["2024-01-03", "2024-01-05", "2024-01-08"]
    assert "active → halted<br>drawdown 21% >= 20%" in markers["text"][0]
    table, note = tables.state_changes_table(frame)
    assert "<td>2024-01-03 00:00</td><td>active</td><td>halted</td><td>drawdown 21% &gt;= 20%</td>" in table
    assert note.startswith("All 3 trading-state changes")


def _full_report(tmp_path, small_run, **overrides):
    equity, bench, trades, closes = small_run
    fills = pd.DataFrame({"symbol": ["AAPL", "BRK.B"], "commission": [1.5, 2.5], "slippage": [0.25, 0.75]})
    pos = Position("BRK.B", mark=22.0)
    pos.quantity, pos.avg_price = 3.0, 21.0
    changes = [_change(TradingState.ACTIVE, TradingState.HALTED, "drawdown <limit>", "2023-12-25")]
    kwargs = dict(fills=fills, exposure=pd.Series(0.5, index=equity.index), state_changes=changes,
                  positions={"BRK.B": pos}, benchmark_name="SPY buy & hold")
    kwargs.update(overrides)
    return write_report(tmp_path / "r.html", equity, bench, compute_metrics(equity, trades=trades),
                        compute_metrics(bench), trades, closes, "t", {}, **kwargs).read_text(encoding="utf-8")


def test_report_has_every_tear_sheet_section(tmp_path, small_run):
    text = _full_report(tmp_path, small_run)
    for section in SECTION_IDS:
        assert f'<section id="{section}">' in text and f'href="#{section}"' in text
    for div in ("equity-chart", "drawdown-chart", "monthly-returns", "yearly-returns", "daily-returns",
                "exposure-chart", "price-aapl", "price-brk-b", "metrics-table", "relative-table", "risk-table", "drawdowns-table",
                "breaker-events", "trade-stats", "costs-table", "symbol-pnl", "open-positions", "trade-list"):
        assert f'id="{div}"' in text, div
    assert text.count(PLOTLY_JS_HEAD) == 1
    assert not re.search(r"<script[^>]+src=", text) and not re.search(r"<link[^>]+href=", text)
    assert "drawdown &lt;limit&gt;" in text and "<limit>" not in text  # breaker reason, escaped
    assert "SPY buy &amp; hold" in text
    trade_list = text[text.index('id="trade-list"'):text.index("</table>", text.index('id="trade-list"'))]
    assert trade_list.count("<tr>") == 1 + 4 and 'class="sortable"' in text
    costs = text[text.index('id="costs-table"'):]
    assert "<td>Commission</td><td class=\"num\">$4.00</td>" in costs
    assert "<td>Slippage</td><td class=\"num\">$1.00</td>" in costs
    positions = text[text.index('id="open-positions"'):text.index("</table>", text.index('id="open-positions"'))]
    assert "BRK.B" in positions and "AAPL" not in positions and "$3.00" in positions
    # too few daily returns for a 126-day window: said, not drawn empty
    assert "Needs at least 126 daily returns; this run has 3." in text


def test_report_without_optional_inputs_says_what_is_missing(tmp_path, small_run):
    text = _full_report(tmp_path, small_run, fills=None, exposure=None, state_changes=None, positions=None)
    assert "No exposure series given." in text
    assert "None: every position was closed by the end of the run." in text
    assert "The trading state stayed active throughout." in text
    costs = text[text.index('id="costs-table"'):]
    assert '<td>Slippage</td><td class="num">n/a</td>' in costs


def test_trade_list_is_capped_at_the_largest_trades(tmp_path, small_run, monkeypatch):
    monkeypatch.setattr(tables, "MAX_TRADE_ROWS", 2)
    _, _, trades, _ = small_run
    table, note = tables.trade_list_table(trades)
    assert table.count("<tr>") == 1 + 2 and "+200.00" in table and "+100.00" in table
    assert note.startswith("The 2 trades with the largest absolute P&L of 4")


def test_rolling_charts_use_the_stated_window(tmp_path):
    rng = np.random.default_rng(11)
    idx = pd.date_range("2020-01-01", periods=400, freq="D", tz="UTC")
    equity = pd.Series(1e5 * np.exp(np.cumsum(rng.normal(0, 0.01, 400))), index=idx)
    path = write_report(tmp_path / "r.html", equity, None, compute_metrics(equity), None, None, None, "t", {})
    text = path.read_text()
    assert 'id="rolling-sharpe"' in text and 'id="rolling-volatility"' in text
    assert "Rolling Sharpe ratio (126 daily returns, annualised)" in text
    fig = charts.rolling_sharpe_figure(daily_returns(equity), None, 365.0)
    assert len(fig["data"][0]["x"]) == 399 - 125  # one value per full window


def test_figures_are_valid_plotly_json():
    """The figure dicts skip plotly's Python validation for speed; check they would pass it."""
    import plotly.graph_objects as go
    idx = pd.date_range("2020-01-01", periods=300, freq="D", tz="UTC")
    equity = pd.Series(np.linspace(100.0, 3000.0, 300), index=idx)
    spells = state_spells([_change(TradingState.ACTIVE, TradingState.REDUCING, "x", "2020-03-01")], idx[-1])
    r = daily_returns(equity)
    for fig in (charts.equity_figure(equity, equity * 0.9, "B", spells, state_changes_frame([])),
                charts.drawdown_figure(equity, None), charts.monthly_figure(equity),
                charts.yearly_figure(equity, equity), charts.distribution_figure(r, r),
                charts.rolling_sharpe_figure(r, r, 252.0), charts.exposure_figure(pd.Series(0.3, index=idx)),
                charts.price_figure("X", equity, None)):
        go.Figure(json.loads(json.dumps(fig)))  # raises ValueError on an invalid property


def test_html_table_escapes_and_keeps_numeric_sort_keys():
    text = tables.html_table("t", [tables.Column("a"), tables.Column("b", numeric=True)],
                             [["<b>", ("1,234", 1234.0)], ["x", ("n/a", float("nan"))]], sortable=True)
    assert "&lt;b&gt;" in text and 'data-v="1234"' in text and 'data-v=""' in text
    assert html_lib.unescape(text).count("<b>") == 1


def test_daily_returns_are_the_ones_behind_the_volatility():
    rng = np.random.default_rng(12)
    idx = pd.date_range("2023-01-02 14:30", periods=2000, freq="h", tz="UTC")
    equity = pd.Series(1e5 * np.exp(np.cumsum(rng.normal(0, 1e-3, len(idx)))), index=idx)
    m, r = compute_metrics(equity), daily_returns(equity)
    assert len(r) == equity.index.normalize().nunique() - 1
    assert m.volatility == pytest.approx(np.std(r.to_numpy(), ddof=1) * math.sqrt(m.periods_per_year))
