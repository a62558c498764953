"""HTML report: content, self-containment, size and speed."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.offline
import pytest

from research.benchmark import buy_and_hold
from research.metrics import compute_metrics
from research.report import MAX_PLOT_POINTS, downsample, format_metrics_table, write_report

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
