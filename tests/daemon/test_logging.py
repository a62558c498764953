"""Logging as a user of ``tradingd replay`` meets it: lines never land on (or break around) the
progress bar, ``[logging] level`` holds while the bar shows, repeated breaker transitions are one
line with a count, alembic's lines follow the configured format, and alert lines of a replay carry
the replay time of their event."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress

import daemon.cli
from alerts.logging import collapse_repeats, configure_logging, log_to_console
from alerts.sinks import LogAlertSink
from core.time import to_nanos
from state import SqlStore, StoreConfig
from tests.daemon.conftest import AAPL, REPO_CONFIG, SLICE, SPY, sqlite_url

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BAR = "━"


def ns(text: str) -> int:
    """Epoch ns of an ISO-8601 UTC time such as ``2019-03-01T15:00:00Z``."""
    return to_nanos(datetime.fromisoformat(text.replace("Z", "+00:00")))


def screen_lines(text: str) -> list[str]:
    """What a terminal shows line by line: control sequences dropped, split at CR and LF."""
    return [line for line in re.split(r"[\r\n]", _CONTROL.sub("", text)) if line.strip()]


@pytest.fixture(autouse=True)
def restore_logging():
    yield
    configure_logging("console", "INFO")


def test_a_json_log_line_during_a_live_progress_bar_stays_one_whole_line(monkeypatch):
    terminal = io.StringIO()
    bar_console = Console(file=terminal, force_terminal=True, width=80, color_system=None)
    monkeypatch.setattr(sys, "stderr", terminal)  # the process's stderr is the bar's terminal
    configure_logging("json", "INFO")
    reason = "5 consecutive losing trades >= max_consecutive_losses 5 " * 4  # wider than the terminal
    with Progress(console=bar_console, auto_refresh=False) as bar, log_to_console(bar_console):
        task = bar.add_task("replay", total=10)
        bar.update(task, completed=5)
        bar.refresh()
        LogAlertSink().alert("warning", "trading state active -> reducing", reason)
        bar.refresh()
    lines = screen_lines(terminal.getvalue())
    logged = [line for line in lines if "trading state" in line]
    assert len(logged) == 1, lines
    assert BAR not in logged[0]  # not printed onto the bar
    assert json.loads(logged[0])["text"] == reason  # one line, not wrapped at 80 columns
    assert any(BAR in line for line in lines)  # the bar is still drawn


def test_third_party_lines_follow_the_configured_format_and_level(tmp_path, capsys):
    configure_logging("json", "INFO")
    SqlStore(StoreConfig(database_url=sqlite_url(tmp_path / "a.db"))).close()  # alembic migrates it
    assert capsys.readouterr().err == ""  # alembic's INFO chatter ("Context impl SQLiteImpl.") is silenced
    configure_logging("json", "DEBUG")
    SqlStore(StoreConfig(database_url=sqlite_url(tmp_path / "b.db"))).close()
    lines = capsys.readouterr().err.strip().splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON, alembic's too
    assert any(r.get("logger", "").startswith("alembic") and "Running upgrade" in r["event"] for r in records)
    assert all(r["timestamp"].endswith("Z") and "level" in r for r in records)
    configure_logging("console", "INFO")
    logging.getLogger("alembic.runtime.migration").warning("could not %s", "lock")
    assert "[warning  ] could not lock" in capsys.readouterr().err  # same rendering as tradingd's own lines


def test_repeated_lines_are_collapsed_into_one_line_with_a_count(capsys):
    configure_logging("json", "INFO")
    clock = {"now": ns("2019-03-01T15:00:00Z")}
    sink = LogAlertSink(time_source=lambda: clock["now"])
    with collapse_repeats() as counts:
        for day in range(1, 8):
            clock["now"] = ns(f"2019-03-0{day}T15:00:00Z")
            sink.alert("warning", "trading state active -> reducing", f"daily loss on day {day}")
            sink.alert("warning", "trading state reducing -> active", "window ended")
        sink.alert("critical", "trading state active -> halted", "drawdown")
    records = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert [r["event"] for r in records] == [
        "trading state active -> reducing", "trading state reducing -> active", "trading state active -> halted",
        "trading state active -> reducing (repeated)", "trading state reducing -> active (repeated)"]
    summary = records[3]
    assert summary["count"] == 7 and summary["level"] == "warning"
    assert summary["first_replay_time"] == "2019-03-01T15:00:00Z"
    assert summary["last_replay_time"] == "2019-03-07T15:00:00Z"
    assert counts[("tradingd.alerts", logging.WARNING, "trading state active -> reducing")] == 7


def test_an_alert_carries_the_replay_time_next_to_the_wall_clock_stamp(capsys):
    configure_logging("console", "INFO")
    when = ns("2019-03-01T15:00:00Z")
    LogAlertSink(time_source=lambda: when).alert("warning", "order rejected: SPY", "no buying power", symbol="SPY")
    line = capsys.readouterr().err.strip()
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z \[warning\s*\] order rejected: SPY\s+\[tradingd.alerts\] "
                    r"replay_time=2019-03-01T15:00:00Z ", line), line
    configure_logging("json", "INFO")
    LogAlertSink(time_source=lambda: when).alert("warning", "order rejected: SPY", "no buying power")
    record = json.loads(capsys.readouterr().err)
    assert record["replay_time"] == "2019-03-01T15:00:00Z" and record["timestamp"].endswith("Z")


# --- through the CLI --------------------------------------------------------------------------------


def replay_args(tmp: Path, config: Path, *extra: object) -> list[object]:
    return ["replay", "-c", config, "--data", SPY, AAPL, "--strategy", "sma_cross", "--param", "fast=5",
            "--param", "slow=20", *SLICE, "--out", tmp / "out", "--db", sqlite_url(tmp / "x.db"), "--no-report",
            *extra]


def config_with(tmp: Path, logging_section: str) -> Path:
    text = REPO_CONFIG.read_text().split("[logging]")[0]
    path = tmp / "config.toml"
    path.write_text(text + "[logging]\n" + logging_section + "\n")
    return path


def test_the_replay_prints_each_breaker_transition_once_then_a_count(cli, tmp_path):
    result = cli(*replay_args(tmp_path, REPO_CONFIG, "--no-progress"))
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    to_reducing = [line for line in lines if "trading state active -> reducing" in line]
    assert len(to_reducing) == 2, lines  # the first one, then the aggregate
    assert "(repeated)" in to_reducing[1] and re.search(r"count=\d+", to_reducing[1])
    breakers = (tmp_path / "out" / "breakers.csv").read_text().splitlines()  # the full list
    found = re.search(r"count=(\d+)", to_reducing[1])
    assert found is not None and int(found.group(1)) == sum(",active,reducing," in row for row in breakers) > 1


def test_the_configured_level_holds_while_the_progress_bar_shows(cli, tmp_path, monkeypatch):
    terminal = io.StringIO()
    monkeypatch.setattr(daemon.cli, "err", Console(file=terminal, force_terminal=True, width=120,
                                                   color_system=None))
    quiet = config_with(tmp_path, 'format = "console"\nlevel = "ERROR"')
    result = cli(*replay_args(tmp_path, quiet, "--progress"))
    assert result.exit_code == 0, result.output
    shown = screen_lines(terminal.getvalue()) + result.stderr.splitlines()
    assert not [line for line in shown if "trading state" in line], shown  # warnings are below ERROR

    (tmp_path / "out").rename(tmp_path / "out-quiet")
    terminal.seek(0)
    terminal.truncate()
    loud = config_with(tmp_path, 'format = "console"\nlevel = "WARNING"')
    result = cli(*replay_args(tmp_path, loud, "--progress"))
    assert result.exit_code == 0, result.output
    lines = screen_lines(terminal.getvalue())
    logged = [line for line in lines if "trading state active -> reducing" in line]
    assert logged, lines  # the warnings went through the bar's console ...
    assert all(BAR not in line for line in logged)  # ... each on a line of its own
    assert "trading state" not in result.stderr  # and nothing bypassed it
