"""AlertRouter policy: severities, de-dup, rate limit and digests, on an injected clock (no sleeps)."""

from __future__ import annotations

import pytest

from alerts.router import AlertRouter, RouterConfig
from alerts.sinks import MemoryAlertSink
from alerts.slack import SlackAlertSink, SlackConfig, WebhookTransport
from tests.alerts.fake_slack import FakeSlack


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**config):
    slack, log, clock = MemoryAlertSink(), MemoryAlertSink(), Clock()
    return AlertRouter(slack, log, RouterConfig(**config), clock=clock), slack, log, clock


def titles(sink: MemoryAlertSink) -> list[str]:
    return [title for _, title, _, _ in sink.alerts]


def test_info_is_logged_only_warning_and_above_also_go_to_slack():
    router, slack, log, _ = make()
    for severity in ("debug", "info", "warning", "error", "critical", "urgent"):
        router.alert(severity, f"a {severity}", "x", account="paper")
    assert titles(log) == ["a debug", "a info", "a warning", "a error", "a critical", "a urgent"]
    assert titles(slack) == ["a warning", "a error", "a critical", "a urgent"]
    assert slack.alerts[0] == ("warning", "a warning", "x", {"account": "paper"})


def test_notify_overrides_the_severity_rule_and_is_not_shown():
    router, slack, log, _ = make()
    router.alert("info", "daily summary 2024-03-01: paper", "P&L +12.00 USD", notify=True)
    router.alert("warning", "noisy", "x", notify=False)
    assert titles(slack) == ["daily summary 2024-03-01: paper"]
    assert titles(log) == ["daily summary 2024-03-01: paper", "noisy"]
    assert all("notify" not in fields for *_, fields in slack.alerts + log.alerts)


def test_repeats_within_the_window_are_counted_and_ride_on_the_next_message():
    router, slack, log, clock = make(dedup_window_s=300)
    for _ in range(13):
        router.alert("warning", "stale data: SPY", "no bar for 3 periods", symbol="SPY")
        clock.now += 10
    assert titles(slack) == ["stale data: SPY"] and len(log.alerts) == 13
    clock.now = 1000 + 300
    router.alert("warning", "stale data: SPY", "no bar for 3 periods", symbol="SPY")
    assert len(slack.alerts) == 2
    assert slack.alerts[1][2] == "no bar for 3 periods\n(+12 identical in the last 300 s)"
    router.alert("warning", "stale data: SPY", "no bar for 3 periods", symbol="SPY")
    assert len(slack.alerts) == 2  # a new window began with the resend
    assert router.stats().deduplicated == 13


def test_repeats_are_reported_when_the_window_closes_even_if_none_follows():
    router, slack, _, clock = make(dedup_window_s=60)
    for _ in range(5):
        router.alert("error", "broker submit failed: SPY", "TimeoutError")
    router.alert("error", "once", "only")
    clock.now += 59
    router.tick()
    assert len(slack.alerts) == 2
    clock.now += 1
    router.tick()
    assert slack.alerts[2] == ("error", "broker submit failed: SPY", "TimeoutError\n(+4 identical in the last 60 s)", {})
    assert len(slack.alerts) == 3  # "once" had no repeats: nothing more to say


def test_a_flood_beyond_the_rate_limit_becomes_one_digest_per_window():
    router, slack, log, clock = make(rate_limit=20, rate_window_s=60)
    for i in range(20):
        router.alert("warning", f"order rejected: S{i}", "x")
    assert len(slack.alerts) == 20
    clock.now += 1
    for i in range(30):
        router.alert("warning", "bar dropped", f"high < low at bar {i}")
    for i in range(5):
        router.alert("error", "order rejected: SPY", f"insufficient buying power #{i}")
    router.alert("warning", "stale data: QQQ", "a")
    router.alert("warning", "stale data: QQQ", "b")
    assert len(slack.alerts) == 20 and len(log.alerts) == 57  # the log keeps everything
    clock.now += 59.5
    router.tick()
    assert len(slack.alerts) == 20
    clock.now += 0.5
    router.tick()
    severity, title, text, fields = slack.alerts[20]
    assert (severity, title) == ("error", "37 alerts in the last 60 s")
    assert text == "Rate limited; by kind: 30× bar dropped, 5× order rejected: SPY, 2× stale data: QQQ"
    assert fields == {"alerts": 37}
    # Still flooding: the next window's alerts are digested too ...
    clock.now += 1
    for i in range(3):
        router.alert("warning", "bar dropped", f"again {i}")
    clock.now += 60
    router.tick()
    assert slack.alerts[21][1] == "3 alerts in the last 61 s" and len(slack.alerts) == 22
    # ... until a window passes without any; then alerts go out one by one again.
    clock.now += 60
    router.tick()
    router.alert("warning", "calm again", "x")
    assert titles(slack)[-1] == "calm again" and len(slack.alerts) == 23
    assert router.stats() == (61, 23, 0, 40)


def test_critical_alerts_are_never_held_back_by_the_rate_limit():
    router, slack, _, _ = make(rate_limit=2)
    for i in range(5):
        router.alert("warning", f"w{i}", "x")
    router.alert("critical", "trading state active -> halted", "drawdown 21% >= 20%")
    assert titles(slack) == ["w0", "w1", "trading state active -> halted"]


def test_a_digest_of_one_alert_is_the_alert_itself():
    router, slack, _, clock = make(rate_limit=1, rate_window_s=60)
    router.alert("warning", "first", "x")
    router.alert("error", "second", "body", symbol="SPY")
    clock.now += 60
    router.tick()
    assert slack.alerts[1] == ("error", "second", "body", {"symbol": "SPY"})


def test_close_sends_pending_counts_and_digest():
    router, slack, _, _ = make(rate_limit=1)
    router.alert("warning", "a", "x")
    router.alert("warning", "a", "x")
    router.alert("warning", "b", "x")
    router.alert("warning", "c", "x")
    assert router.close(1)
    assert titles(slack) == ["a", "a", "2 alerts in the last 0 s"]
    assert slack.alerts[1][2] == "x\n(+1 identical in the last 0 s)"
    assert slack.alerts[2][2] == "Rate limited; by kind: 1× b, 1× c"


def test_event_time_is_added_to_slack_messages():
    slack = MemoryAlertSink()
    router = AlertRouter(slack, MemoryAlertSink(), event_time=lambda: 86_400_000_000_000, time_field="replay_time")
    router.alert("warning", "t", "x")
    assert slack.alerts[0][3] == {"replay_time": "1970-01-02T00:00:00Z"}


def test_the_router_never_raises_and_still_logs_when_slack_breaks():
    class Broken:
        def alert(self, *args, **kwargs):
            raise RuntimeError("slack sink bug")

    def broken_clock() -> float:
        raise OSError("clock")

    log = MemoryAlertSink()
    AlertRouter(Broken(), log).alert("error", "t", "x")
    AlertRouter(MemoryAlertSink(), log, clock=broken_clock).alert("error", "t2", "x")
    AlertRouter(None, log).alert("critical", "t3", "x")
    assert titles(log) == ["t", "t2", "t3"]


def test_config_is_validated():
    for bad in (dict(slack_severity="loud"), dict(rate_limit=0), dict(rate_window_s=0), dict(dedup_window_s=-1)):
        with pytest.raises(ValueError):
            RouterConfig(**bad)


def test_a_flood_reaches_real_slack_as_individual_messages_then_one_digest():
    fake = FakeSlack()
    clock = Clock()
    sink = SlackAlertSink(WebhookTransport(fake.url(), timeout_s=2), SlackConfig(backoff_base_s=0.01))
    router = AlertRouter(sink, MemoryAlertSink(), RouterConfig(rate_limit=3, rate_window_s=60), clock=clock)
    try:
        for i in range(10):
            router.alert("warning", "bar dropped", f"bar {i}: high < low", symbol="SPY")
        clock.now += 60
        router.tick()
        requests = fake.wait_for(4)
        assert sink.close(2)
    finally:
        fake.stop()
    assert len(requests) == 4
    assert requests[3].body["text"] == ":warning: *7 alerts in the last 60 s*"
    assert "7× bar dropped" in requests[3].body["attachments"][0]["blocks"][0]["text"]["text"]
