"""``tradingd mqtt publish-bars`` against a real Mosquitto, and the ingest benchmark hook."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from daemon.adapters.mqtt_bars import parse_bar_frame
from daemon.adapters.mqtt_bench import ingest_throughput
from daemon.mqtt_cli import mqtt_app
from tests.mqtt_broker import (
    DAEMON,
    PASSWORD_ENV,
    PRODUCER,
    Collector,
    MosquittoBroker,
    daemon_config,
    mosquitto,  # noqa: F401  (fixture)
)

REPO = Path(__file__).resolve().parents[2]
SPY = REPO / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"
AAPL = REPO / "data" / "us_equity_1hour_adjusted" / "AAPL.csv.gz"
HOUR = 3_600_000_000_000


def publish(broker: MosquittoBroker, *args: str, password: str | None = PRODUCER[1]):
    env = {"COLUMNS": "200", **({"TT_PRODUCER_PW": password} if password is not None else {})}
    return CliRunner().invoke(mqtt_app, ["publish-bars", *args, "--port", str(broker.port), "--prefix", "tt",
                                         "--user", PRODUCER[0], "--password-env", "TT_PRODUCER_PW"], env=env)


def test_publish_bars_sends_every_bar_of_the_files_in_time_order(mosquitto: MosquittoBroker) -> None:
    async def scenario():
        async with Collector(mosquitto, "tt/bars/+") as bars:
            result = await asyncio.to_thread(publish, mosquitto, str(SPY), str(AAPL), "--start",
                                             "2019-01-02T00:00:00Z", "--end", "2019-01-04T00:00:00Z")
            await bars.wait_for("tt/bars/SPY", 14)
            await bars.wait_for("tt/bars/AAPL", 14)
        return result, bars.messages

    result, messages = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert result.exit_code == 0, result.output
    assert "published 28 bars" in result.output
    frames = [(topic.rsplit("/", 1)[1], parse_bar_frame(payload, topic.rsplit("/", 1)[1], HOUR))
              for topic, payload, _ in messages]
    assert len(frames) == 28 and all(bar.symbol == symbol for symbol, bar in frames)
    keys = [(bar.ts_event, bar.symbol) for _, bar in frames]
    assert keys == sorted(keys)  # merged by start, ties by symbol
    assert json.loads(messages[0][1])["start"] == "2019-01-02T14:00:00Z"


def test_publish_bars_fails_clearly_without_credentials(mosquitto: MosquittoBroker) -> None:
    missing = publish(mosquitto, str(SPY), password=None)
    assert missing.exit_code == 2 and "TT_PRODUCER_PW" in missing.output
    wrong = publish(mosquitto, str(SPY), "--end", "2001-01-01T00:00:00Z", password="guess")
    assert wrong.exit_code == 2 and "refused user 'producer'" in wrong.output
    assert "guess" not in wrong.output


def test_cli_module_imports_only_typer_and_rich() -> None:
    code = ("import sys, daemon.mqtt_cli; heavy = {'aiomqtt', 'paho', 'pandas', 'backtest', 'structlog'}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ingest_benchmark_hook_counts_every_bar(mosquitto: MosquittoBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, DAEMON[1])
    result = asyncio.run(ingest_throughput(daemon_config(mosquitto), producer_user=PRODUCER[0],
                                           producer_password=PRODUCER[1], n_bars=400, timeout_s=30))
    assert result.bars == 400 and result.rejected == 0 and result.bars_per_s > 0
