"""The daemon's own alerts: stable titles, the right route, and the end-of-day summary."""

from __future__ import annotations

from alerts.catalog import (DailySummary, daemon_started, daemon_stopped, data_resumed, health_threshold,
                            queue_backpressure)
from alerts.router import AlertRouter
from alerts.sinks import MemoryAlertSink
from core.enums import Side, TradingState
from core.events import OrderFilled, TradeClosed, TradingStateChanged
from core.time import NANOS_PER_HOUR, NANOS_PER_MINUTE

DAY = 1_709_251_200_000_000_000  # 2024-03-01T00:00:00Z


def trade(pnl: float) -> TradeClosed:
    return TradeClosed(symbol="SPY", side=Side.BUY, quantity=10, entry_ts=DAY, exit_ts=DAY + 1, entry_price=500,
                       exit_price=500 + pnl / 10, pnl=pnl, commission=1.0, exit_reason="signal",
                       ts_event=DAY + 1, ts_init=DAY + 1)


def test_start_stop_summary_and_resume_reach_slack_although_they_are_info():
    slack, log = MemoryAlertSink(), MemoryAlertSink()
    router = AlertRouter(slack, log)
    for alert in (daemon_started(account="paper", mode="paper", strategy="sma_cross", symbols=["SPY", "QQQ"],
                                 feed="file", recovered="2 positions, 1 open order, trading state active"),
                  data_resumed(symbol="SPY", gap_s=420), daemon_stopped(account="paper", reason="SIGTERM", uptime_s=7260),
                  DailySummary().build(account="paper", day="2024-03-01", start_equity=100_000, end_equity=100_000,
                                       state=TradingState.ACTIVE, open_positions=0)):
        assert alert.severity == "info"
        alert.send(router)
    assert [title for _, title, _, _ in slack.alerts] == [
        "tradingd started: paper", "data resumed: SPY", "tradingd stopped: paper", "daily summary 2024-03-01: paper"]
    assert slack.alerts[0][2] == ("paper trading sma_cross on SPY, QQQ, feed file\n"
                                  "2 positions, 1 open order, trading state active")
    assert slack.alerts[2][3]["uptime"] == "2h01m"
    assert daemon_stopped(account="paper", reason="fatal: store", uptime_s=5, clean=False).severity == "error"


def test_repeated_backpressure_is_deduplicated_because_numbers_live_in_fields():
    slack = MemoryAlertSink()
    router = AlertRouter(slack, MemoryAlertSink())
    for depth in (1000, 1000, 999):
        queue_backpressure(depth=depth, capacity=1000, waited_s=0.2, source="mqtt").send(router)
    health_threshold(metric="disk free", value=0.4, limit=1.0, unit="GB").send(router)
    assert [(s, t) for s, t, _, _ in slack.alerts] == [("warning", "event queue full"), ("warning", "health: disk free")]
    assert slack.alerts[0][3] == {"source": "mqtt", "depth": 1000, "capacity": 1000, "waited_ms": 200.0}


def test_daily_summary_reports_pnl_trades_fills_and_breaker_events():
    summary = DailySummary()
    events = [trade(120.0), trade(-45.5), trade(30.0),
              OrderFilled(client_order_id="c1", fill_id="f1", symbol="SPY", side=Side.BUY, quantity=10, price=500,
                          cum_quantity=10, commission=1.25, ts_event=DAY, ts_init=DAY),
              TradingStateChanged(previous=TradingState.ACTIVE, current=TradingState.REDUCING,
                                  reason="daily loss 2.1% >= 2%", ts_event=DAY + 14 * NANOS_PER_HOUR + 31 * NANOS_PER_MINUTE,
                                  ts_init=DAY),
              TradingStateChanged(previous=TradingState.REDUCING, current=TradingState.ACTIVE, reason="re-armed",
                                  ts_event=DAY + 15 * NANOS_PER_HOUR, ts_init=DAY),
              object()]
    for event in events:
        summary.on_event(event)
    alert = summary.build(account="paper", day="2024-03-01", start_equity=100_000.0, end_equity=100_104.5,
                          state=TradingState.ACTIVE, open_positions=1)
    assert alert.text.splitlines() == [
        "P&L +104.50 USD (+0.10%), equity 100,104.50 USD",
        "3 trades (2 won, 1 lost), realized +104.50 USD",
        "1 fills, commission 1.25 USD",
        "2 breaker events:",
        "• 14:31:00 active -> reducing: daily loss 2.1% >= 2%",
        "• 15:00:00 reducing -> active: re-armed"]
    assert alert.fields["pnl_usd"] == 104.5 and alert.fields["trades"] == 3 and alert.fields["notify"] is True
    summary.reset()
    empty = summary.build(account="paper", day="2024-03-02", start_equity=1.0, end_equity=1.0,
                          state=TradingState.HALTED, open_positions=0)
    assert "0 trades" in empty.text and empty.text.endswith("no breaker events")
    assert empty.fields["trading_state"] == "halted"
