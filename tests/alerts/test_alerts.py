import json

import pytest
import structlog

from alerts.logging import configure_logging
from alerts.sinks import FanOutAlertSink, LogAlertSink, MemoryAlertSink


def test_json_format_writes_one_json_object_per_line(capsys):
    configure_logging("json", "INFO")
    LogAlertSink().alert("critical", "trading halted", "drawdown 21% >= 20%", account="paper")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "trading halted"
    assert record["severity"] == "critical" and record["level"] == "critical"
    assert record["account"] == "paper" and record["alert"] is True
    assert record["timestamp"].endswith("Z")


def test_console_format_is_human_readable_and_level_filters(capsys):
    configure_logging("console", "ERROR")
    LogAlertSink().alert("warning", "ignored below ERROR", "x")
    LogAlertSink().alert("error", "order rejected: SPY", "insufficient buying power")
    err = capsys.readouterr().err
    assert "ignored below ERROR" not in err
    assert "order rejected: SPY" in err and "insufficient buying power" in err
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml")
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("json", "LOUD")


def test_sinks_never_raise_into_the_engine():
    class Broken:
        def alert(self, *a, **k):
            raise RuntimeError("slack is down")

    class BrokenLogger:
        def __getattr__(self, name):
            raise OSError("disk full")

    memory = MemoryAlertSink()
    FanOutAlertSink(Broken(), memory).alert("error", "t", "x", k=1)
    assert memory.alerts == [("error", "t", "x", {"k": 1})]
    LogAlertSink(BrokenLogger()).alert("error", "t", "x")  # swallowed


def test_unknown_severity_is_logged_as_warning_not_lost(capsys):
    configure_logging("json", "INFO")
    LogAlertSink(structlog.get_logger("t")).alert("urgent", "odd severity", "still delivered")
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["level"] == "warning" and record["severity"] == "urgent"
