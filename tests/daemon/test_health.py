"""Health thresholds on injected readings (alert once when a problem starts, info when it clears),
the heartbeat report, real psutil readings, and the event-loop lag probe on a real blocked loop."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from alerts.sinks import MemoryAlertSink
from core.time import NANOS_PER_SECOND
from daemon.health import HealthConfig, HealthMonitor, HealthReadings, LoopLagProbe, RssTrend, assess

GIB = 2**30
MIB = 2**20
T0 = 1_750_000_000 * NANOS_PER_SECOND
HEALTHY = HealthReadings(ts=T0, cpu_percent=12.5, rss_bytes=200 * MIB, open_fds=40, disk_free_bytes=50 * GIB,
                         disk_total_bytes=100 * GIB, loop_lag_s=0.002, queue_depth=3, queue_capacity=10_000,
                         last_bar_ns={"SPY": T0 - 5 * NANOS_PER_SECOND, "AAPL": T0 - 65 * NANOS_PER_SECOND})


def monitor(tmp_path: Path, config: HealthConfig | None = None) -> tuple[HealthMonitor, MemoryAlertSink]:
    sink = MemoryAlertSink()
    return HealthMonitor(config or HealthConfig(), state_dir=tmp_path, alerts=sink, now_ns=lambda: T0), sink


def test_healthy_readings_give_an_ok_json_report_with_feed_ages(tmp_path: Path) -> None:
    mon, sink = monitor(tmp_path)
    report = mon.check(HEALTHY)
    assert json.loads(json.dumps(report)) == report
    assert report["ok"] is True and report["problems"] == [] and sink.alerts == []
    assert report["feeds"] == {"AAPL": {"last_bar": "2025-06-15T15:05:35Z", "age_s": 65.0},
                               "SPY": {"last_bar": "2025-06-15T15:06:35Z", "age_s": 5.0}}
    assert report["disk"] == {"path": str(tmp_path), "free_bytes": 50 * GIB, "total_bytes": 100 * GIB,
                              "free_fraction": 0.5}
    assert report["queue"] == {"depth": 3, "capacity": 10_000}
    assert (report["rss_bytes"], report["rss_growth"], report["loop_lag_s"]) == (200 * MIB, None, 0.002)


@pytest.mark.parametrize(("free", "total", "low"), [
    (6 * GIB, 100 * GIB, False),
    (4 * GIB, 100 * GIB, True),   # below 5 % of the disk
    (400 * MIB, 4 * GIB, True),   # 9.8 % free, but below 512 MiB
    (600 * MIB, 4 * GIB, False),
])
def test_disk_nearly_full_by_fraction_or_by_bytes(free: int, total: int, low: bool) -> None:
    problems = assess(replace(HEALTHY, disk_free_bytes=free, disk_total_bytes=total), HealthConfig(), None)
    assert [p.key for p in problems] == (["disk_low"] if low else [])


def test_a_problem_alerts_once_when_it_starts_and_once_when_it_clears(tmp_path: Path) -> None:
    mon, sink = monitor(tmp_path)
    full = replace(HEALTHY, disk_free_bytes=1 * GIB)
    for _ in range(3):  # three health checks (90 s) on a nearly full disk: one alert, not three
        report = mon.check(full)
    assert report["ok"] is False and report["problems"] == ["disk_low"]
    assert [(sev, title) for sev, title, _, _ in sink.alerts] == [("critical", "disk nearly full")]
    assert "1,024 MiB free (1.0% of 102,400 MiB)" in sink.alerts[0][2]
    assert sink.alerts[0][3] == {"health": "disk_low"}
    mon.check(HEALTHY)
    mon.check(HEALTHY)
    assert [(sev, title) for sev, title, _, _ in sink.alerts] == [
        ("critical", "disk nearly full"), ("info", "disk nearly full: cleared")]
    mon.check(full)  # back again: a new alert
    assert len(sink.alerts) == 3


def test_rss_growth_over_the_window_alerts_only_after_a_full_window(tmp_path: Path) -> None:
    config = HealthConfig(rss_growth_window_s=600, max_rss_growth_fraction=0.5, rss_warmup_s=0)
    mon, sink = monitor(tmp_path, config)
    keys = []
    rss = 100 * MIB
    for minute in range(0, 20):  # a leak of 10 MiB a minute, checked each minute
        report = mon.check(replace(HEALTHY, ts=T0 + minute * 60 * NANOS_PER_SECOND, rss_bytes=rss))
        keys.append(report["problems"])
        rss += 10 * MIB
    # minutes 0-9: no full window yet; from 10 on: +100 MiB over the window, above 50 % of RSS then
    assert keys[:10] == [[]] * 10
    assert keys[10:] == [["rss_growth"]] * 10
    assert [title for _, title, _, _ in sink.alerts] == ["memory growing"]  # once, not every minute
    assert report["rss_growth"] == pytest.approx(round(290 / 190 - 1, 4))


@pytest.mark.parametrize(("warmup_s", "alerts"), [(600, 0), (0, 1)])
def test_rss_growth_while_warming_up_is_not_a_leak(tmp_path: Path, warmup_s: float, alerts: int) -> None:
    mon, sink = monitor(tmp_path, HealthConfig(rss_growth_window_s=600, rss_warmup_s=warmup_s))
    for minute in range(0, 30):
        rss = (100 + 20 * min(minute, 5)) * MIB  # doubles in the first 5 minutes, then flat
        mon.check(replace(HEALTHY, ts=T0 + minute * 60 * NANOS_PER_SECOND, rss_bytes=rss))
    assert len([a for a in sink.alerts if a[1] == "memory growing"]) == alerts


def test_loop_lag_and_queue_fill_thresholds() -> None:
    config = HealthConfig(max_loop_lag_s=0.25, max_queue_fill_fraction=0.8)
    assert [p.key for p in assess(replace(HEALTHY, loop_lag_s=0.3), config, None)] == ["loop_lag"]
    assert assess(replace(HEALTHY, loop_lag_s=0.25), config, None) == []
    assert assess(replace(HEALTHY, loop_lag_s=None), config, None) == []  # probe not measured yet
    assert [p.key for p in assess(replace(HEALTHY, queue_depth=8000), config, None)] == ["queue_full"]
    assert assess(replace(HEALTHY, queue_depth=7999), config, None) == []
    assert assess(replace(HEALTHY, queue_depth=10**9, queue_capacity=0), config, None) == []  # unbounded
    worst = replace(HEALTHY, disk_free_bytes=0, loop_lag_s=2.0, queue_depth=10_000)
    assert [(p.key, p.severity) for p in assess(worst, config, 1.0)] == [
        ("disk_low", "critical"), ("rss_growth", "warning"), ("loop_lag", "warning"), ("queue_full", "warning")]


@pytest.mark.parametrize("bad", [{"min_disk_free_fraction": 1.0}, {"max_loop_lag_s": 0}, {"rss_growth_window_s": -1},
                                 {"max_queue_fill_fraction": 1.5}, {"max_loop_lag_s": float("nan")}, {"typo": 1}])
def test_config_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        HealthConfig(**bad)


def test_rss_trend_keeps_the_newest_sample_a_window_old_as_baseline() -> None:
    trend = RssTrend(window_ns=100)
    assert trend.add(0, 100) is None
    assert trend.add(99, 100) is None
    assert trend.add(100, 150) == 0.5
    assert trend.add(210, 150) == 0.0  # baseline: the newest sample at least 100 old, the one at 100


def test_real_readings_of_this_process_and_disk(tmp_path: Path) -> None:
    depth = [7]
    sink = MemoryAlertSink()
    mon = HealthMonitor(HealthConfig(min_disk_free_fraction=0.0, min_disk_free_bytes=0), state_dir=tmp_path,
                        alerts=sink, queue_depth=lambda: depth[0], queue_capacity=100,
                        last_bars=lambda: {"SPY": time.time_ns()})
    readings = mon.read()
    usage = shutil.disk_usage(tmp_path)
    assert readings.disk_total_bytes == usage.total
    assert abs(readings.disk_free_bytes - usage.free) < 64 * MIB  # other processes write meanwhile
    assert 10 * MIB < readings.rss_bytes < 8 * GIB
    assert readings.open_fds is None or readings.open_fds >= 3
    assert readings.cpu_percent >= 0.0
    assert (readings.queue_depth, readings.queue_capacity) == (7, 100)
    report = mon.check()
    assert report["ok"] and report["pid"] == os.getpid() and report["feeds"]["SPY"]["age_s"] < 60
    assert json.dumps(report)


def test_missing_state_directory_is_an_error(tmp_path: Path) -> None:
    mon, _ = monitor(tmp_path / "gone")
    with pytest.raises(OSError):
        mon.read()


def test_loop_lag_probe_sees_a_blocked_event_loop_and_the_monitor_alerts(tmp_path: Path) -> None:
    probe = LoopLagProbe(interval_s=0.01)
    sink = MemoryAlertSink()
    mon = HealthMonitor(HealthConfig(max_loop_lag_s=0.1, min_disk_free_fraction=0.0, min_disk_free_bytes=0),
                        state_dir=tmp_path, alerts=sink, lag_probe=probe)

    async def session() -> tuple[dict[str, object], dict[str, object]]:
        task = asyncio.create_task(probe.run())
        await asyncio.sleep(0.1)
        quiet = mon.check()
        time.sleep(0.3)  # a blocking call on the loop: every task, the pump included, waits
        await asyncio.sleep(0.05)
        blocked = mon.check()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return quiet, blocked

    quiet, blocked = asyncio.run(session())
    assert quiet["problems"] == []
    assert blocked["problems"] == ["loop_lag"]
    assert isinstance(blocked["loop_lag_s"], float) and blocked["loop_lag_s"] >= 0.25
    assert [title for _, title, _, _ in sink.alerts] == ["event loop lagging"]


def test_lag_probe_reports_the_largest_lag_since_the_last_read() -> None:
    probe = LoopLagProbe(interval_s=0.5)
    assert probe.take_max() is None
    for lag in (0.01, 0.4, -0.001, 0.02):
        probe.record(lag)
    assert probe.take_max() == 0.4
    assert probe.take_max() == 0.02  # nothing new: the latest measurement
    with pytest.raises(ValueError):
        LoopLagProbe(interval_s=0)
