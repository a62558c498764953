"""Bar frames, commands and settings at the MQTT boundary, without a broker (pure and fast).

The broker-level tests (test_mqtt_feed, test_mqtt_control, test_mqtt_telemetry) send the same kinds
of frames through a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from core.enums import Side, TradingState
from core.events import Bar, FlattenPositions, HaltTrading, OrderFilled, PauseTrading, RearmTrading, ResumeTrading
from core.events import TradingStateChanged
from daemon.adapters.mqtt_bars import REASONS, FrameRejected, MqttBarFeed, parse_bar_frame, parse_start
from daemon.adapters.mqtt_config import MqttConfig, MqttConfigError
from daemon.adapters.mqtt_control import MqttControl
from daemon.adapters.mqtt_link import Backoff, Inbound, MqttLink
from daemon.adapters.mqtt_producer import bar_frame
from daemon.adapters.mqtt_telemetry import MqttTelemetry, to_json

MINUTE = 60_000_000_000
START = 1_577_975_400_000_000_000  # 2020-01-02T14:30:00Z
NOW = START + 10 * 86_400 * 1_000_000_000


def frame(**changes: object) -> bytes:
    body: dict[str, object] = {"symbol": "SPY", "timeframe": "1min", "start": "2020-01-02T14:30:00Z",
                               "open": 324.1, "high": 324.5, "low": 323.9, "close": 324.3, "volume": 12000}
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return json.dumps(body).encode()


BAD_FRAMES = [
    ("too_large", frame(note="x" * 5000)),
    ("malformed_json", b'{"symbol": "SPY", '),
    ("malformed_json", b"\xff\xfe not utf-8"),
    ("not_an_object", b"[1, 2, 3]"),
    ("missing_field", frame(close=...)),
    ("missing_field", frame(start=...)),
    ("wrong_type", frame(close="324.3")),
    ("wrong_type", frame(volume=True)),
    ("wrong_type", frame(start=1.5e18)),
    ("wrong_type", frame(symbol=7)),
    ("not_finite", frame(high=math.nan)),
    ("not_finite", frame(low=-math.inf)),
    ("not_finite", b'{"symbol":"SPY","timeframe":"1min","start":"2020-01-02T14:30:00Z","open":1e400,'
                   b'"high":1,"low":1,"close":1,"volume":1}'),
    ("not_finite", frame(volume=math.inf)),
    ("non_positive_price", frame(open=0.0, low=0.0)),
    ("non_positive_price", frame(low=-1.0)),
    ("price_out_of_range", frame(open=2e9, high=2e9, close=2e9)),
    ("price_out_of_range", frame(open=1e-9, low=1e-9, close=1e-9)),
    ("ohlc_inconsistent", frame(high=300.0)),
    ("ohlc_inconsistent", frame(low=324.2)),
    ("bad_volume", frame(volume=-1)),
    ("bad_volume", frame(volume=10**16)),
    ("bad_timeframe", frame(timeframe="1h")),
    ("bad_timeframe", frame(timeframe="soon")),
    ("bad_start", frame(start="2020-01-02T14:30:00")),
    ("bad_start", frame(start="yesterday")),
    ("bad_start", frame(start=-1)),
    ("bad_start", frame(start="2300-01-01T00:00:00Z")),
    ("bad_symbol", frame(symbol="")),
    ("symbol_mismatch", frame(symbol="AAPL")),
]


@pytest.mark.parametrize(("reason", "payload"), BAD_FRAMES, ids=[f"{r}-{i}" for i, (r, _) in enumerate(BAD_FRAMES)])
def test_bad_frame_is_rejected_with_its_reason(reason: str, payload: bytes) -> None:
    with pytest.raises(FrameRejected) as caught:
        parse_bar_frame(payload, "SPY", MINUTE)
    assert caught.value.reason == reason
    assert reason in REASONS


def test_good_frame_becomes_a_bar_released_at_its_end() -> None:
    bar = parse_bar_frame(frame(note="extra keys are ignored"), "SPY", MINUTE)
    assert bar == Bar("SPY", START, START + MINUTE, 324.1, 324.5, 323.9, 324.3, 12000.0)
    assert isinstance(bar.volume, float)
    assert parse_bar_frame(frame(start=START), "SPY", MINUTE) == bar  # epoch ns works the same


def test_start_keeps_nanoseconds_and_offsets() -> None:
    assert parse_start("2020-01-02T09:30:00-05:00") == START
    assert parse_start("2020-01-02T14:30:00.5Z") == START + 500_000_000
    assert parse_start("2020-01-02T14:30:00.000000007+00:00") == START + 7


def test_producer_frames_parse_back_exactly() -> None:
    payload = bar_frame("SPY", "1min", START + 7, 1.5, 2.0, 1.0, 1.75, 3.0)
    assert json.loads(payload)["start"] == START + 7  # not a whole microsecond: sent as int ns
    assert parse_bar_frame(payload, "SPY", MINUTE) == Bar("SPY", START + 7, START + 7 + MINUTE, 1.5, 2.0, 1.0, 1.75,
                                                          3.0)


def feed_with(queue: list[Bar], **config: object) -> MqttBarFeed:
    async def enqueue(bar: Bar) -> None:
        queue.append(bar)

    return MqttBarFeed(MqttConfig.model_validate(config), enqueue, symbols={"SPY", "AAPL"}, now_ns=lambda: NOW)


def deliver(feed: MqttBarFeed, payload: bytes, symbol: str = "SPY", retained: bool = False) -> None:
    asyncio.run(feed.on_message(Inbound(f"tradingd/bars/{symbol}", payload, retained)))


def test_feed_refuses_duplicates_out_of_order_unknown_future_and_retained() -> None:
    got: list[Bar] = []
    feed = feed_with(got, log_every_s=0)
    deliver(feed, frame(start=START))
    deliver(feed, frame(start=START))  # the same bar again (QoS 1 redelivery)
    deliver(feed, frame(start=START - MINUTE))
    deliver(feed, frame(symbol="IBM"), symbol="IBM")
    deliver(feed, frame(start=NOW))  # ends a minute after our clock (skew 5 s)
    deliver(feed, frame(start=START + MINUTE), retained=True)
    deliver(feed, frame(start=START + MINUTE))
    deliver(feed, frame(start=NOW - MINUTE))  # ends exactly now: fine
    assert [b.ts_event for b in got] == [START, START + MINUTE, NOW - MINUTE]
    assert {k: v for k, v in feed.rejected.items() if v} == {
        "duplicate": 1, "out_of_order": 1, "unknown_symbol": 1, "future": 1, "retained": 1}
    assert feed.accepted == 3
    assert feed.health()["last_start"] == {"SPY": NOW - MINUTE}


def test_seeded_feed_refuses_bars_the_engine_already_booked() -> None:
    got: list[Bar] = []
    feed = feed_with(got)
    feed.seed({"SPY": START})
    deliver(feed, frame(start=START))
    deliver(feed, frame(start=START + MINUTE))
    assert [b.ts_event for b in got] == [START + MINUTE]
    assert feed.rejected["duplicate"] == 1


def test_rejections_are_logged_at_most_once_per_reason_per_interval() -> None:
    feed = feed_with([], log_every_s=3600)
    with capture_logs() as logs:
        for _ in range(50):
            deliver(feed, b"not json")
        deliver(feed, frame(high=math.nan))
    assert feed.rejected["malformed_json"] == 50
    assert [(entry["reason"], entry["total"]) for entry in logs] == [("malformed_json", 1), ("not_finite", 1)]


def test_config_keeps_secrets_out_and_topics_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="environment variable"):
        MqttConfig(password="hunter2")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="Extra inputs"):
        MqttConfig(passwd="x")  # type: ignore[call-arg]
    bad: dict[str, Any]
    for bad in ({"prefix": "a/+/b"}, {"prefix": "a//b"}, {"account": "a/b"}, {"account": "bars"},
                {"qos": 3}, {"reconnect_min_s": 5, "reconnect_max_s": 1}, {"bar_timeframe": "fast"},
                {"password_env": "not a name"}):
        with pytest.raises(ValidationError):
            MqttConfig.model_validate(bad)
    config = MqttConfig(username="daemon", password_env="TT_PW")
    monkeypatch.delenv("TT_PW", raising=False)
    with pytest.raises(MqttConfigError, match="TT_PW"):
        config.password()
    monkeypatch.setenv("TT_PW", "s3cret")
    assert config.password() == "s3cret"
    assert "s3cret" not in repr(config) and "s3cret" not in config.model_dump_json()
    assert MqttConfig().password() is None
    assert MqttConfig(account="live1").identifier == "tradingd-live1"
    with pytest.raises(ValidationError):
        config.host = "elsewhere"  # type: ignore[misc]  # frozen


def test_backoff_doubles_to_the_cap_with_bounded_jitter() -> None:
    backoff = Backoff(0.1, 1.0, 0.5, random.Random(7))
    delays = [backoff.next() for _ in range(8)]
    for delay, base in zip(delays, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]):
        assert base * 0.5 <= delay <= base
    assert len(set(delays)) == len(delays)  # jittered: clients restarted together spread out


class Outbox:
    """The Publisher role, recording what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bool, bool]] = []

    def publish_nowait(self, topic: str, payload: bytes, *, retain: bool = False, urgent: bool = False) -> bool:
        self.sent.append((topic, payload, retain, urgent))
        return True

    def set_presence(self, *, online: bytes | None = None, offline: bytes | None = None) -> None:
        self.sent.append(("presence", online or offline or b"", True, True))


def test_every_command_maps_to_its_core_command_once() -> None:
    queued: list[object] = []
    outbox = Outbox()

    async def enqueue(command: object) -> None:
        queued.append(command)

    control = MqttControl(MqttConfig(), enqueue, lambda: {"trading_state": "active"}, outbox, now_ns=lambda: 42)

    async def send(body: dict[str, Any], retained: bool = False) -> dict[str, Any]:
        await control.on_message(Inbound("tradingd/paper/cmd", json.dumps(body).encode(), retained))
        return json.loads(outbox.sent[-1][1])

    async def scenario() -> None:
        for i, (name, kind) in enumerate([("halt", HaltTrading), ("rearm", RearmTrading), ("pause", PauseTrading),
                                          ("resume", ResumeTrading), ("flatten", FlattenPositions)]):
            reply = await send({"id": f"c{i}", "command": name, "reason": f"test {name}"})
            assert reply == {"id": f"c{i}", "ok": True, "result": {"queued": kind.__name__}}
            assert queued[-1] == kind(reason=f"test {name}", ts_event=42, ts_init=42)
        assert outbox.sent[0][0] == "tradingd/paper/reply/c0" and outbox.sent[0][3]  # urgent
        assert (await send({"id": "s", "command": "status"}))["result"] == {"trading_state": "active"}
        again = await send({"id": "c0", "command": "halt"})
        assert again == {"id": "c0", "ok": True, "result": {"queued": "HaltTrading"}}
        for body in ({"id": "x", "command": "live"}, {"id": "x", "command": "set_mode", "mode": "live"},
                     {"id": "x"}, {"id": "x", "command": "halt", "reason": 5}):
            reply = await send(body)
            assert reply["ok"] is False and reply["id"] == "x"
        assert "unknown command 'live'" in (await send({"id": "y", "command": "live"}))["error"]
        assert (await send({"id": "bad/id", "command": "halt"}))["id"] is None
        assert outbox.sent[-1][0] == "tradingd/paper/reply/invalid"
        assert (await send({"id": "r", "command": "halt"}, retained=True))["ok"] is False
        reply_to = await send({"id": "t", "command": "status", "reply_to": "tradingd/paper/reply/me/1"})
        assert reply_to["ok"] and outbox.sent[-1][0] == "tradingd/paper/reply/me/1"
        assert not (await send({"id": "u", "command": "status", "reply_to": "tradingd/other/cmd"}))["ok"]

    asyncio.run(scenario())
    assert len(queued) == 5  # the repeated id, unknown commands, bad frames and the retained one ran nothing
    assert control.duplicates == 1


def test_telemetry_routes_events_as_json_and_retains_state() -> None:
    outbox = Outbox()
    telemetry = MqttTelemetry(MqttConfig(), outbox)
    telemetry.on_event(OrderFilled(client_order_id="o1", fill_id="f1", symbol="SPY", side=Side.BUY, quantity=10.0,
                                   price=324.3, cum_quantity=10.0, commission=0.5, ts_event=1, ts_init=2))
    telemetry.on_event(TradingStateChanged(previous=TradingState.ACTIVE, current=TradingState.HALTED,
                                           reason="drawdown", ts_event=3, ts_init=4))
    telemetry.on_event(Bar("SPY", 0, 1, 1.0, 1.0, 1.0, 1.0, 1.0))  # not telemetry: ignored
    telemetry.heartbeat({"queue_depth": 3, "lag_s": math.inf})
    topics = [(topic, retain) for topic, _, retain, _ in outbox.sent]
    assert topics == [("tradingd/paper/fills", False), ("tradingd/paper/state", True),
                      ("tradingd/paper/heartbeat", True)]
    fill = json.loads(outbox.sent[0][1])
    assert fill["type"] == "OrderFilled" and fill["side"] == "buy" and fill["price"] == 324.3
    assert json.loads(outbox.sent[2][1]) == {"queue_depth": 3, "lag_s": None}
    assert to_json(TradingStateChanged(previous=TradingState.ACTIVE, current=TradingState.REDUCING, reason="r",
                                       ts_event=1, ts_init=1)).startswith(b'{"type":"TradingStateChanged"')


def test_outbox_is_bounded_and_drops_the_oldest() -> None:
    link = MqttLink(MqttConfig(outbox_size=3))
    kept = [link.publish_nowait("t", str(i).encode()) for i in range(5)]
    assert kept == [True, True, True, False, False]
    assert link.dropped == 2 and link.outbox_depth == 3
    assert link.publish_nowait("r", b"reply", urgent=True)  # replies have their own box
    assert link.outbox_depth == 4
