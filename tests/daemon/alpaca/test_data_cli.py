"""`tradingd data fetch` against the local fake Alpaca server (real alpaca-py data clients):
pagination, resume after an interruption, the quality report, errors, and a replay of the result."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from backtest.sources import load_bars
from core.time import NANOS_PER_MINUTE, to_nanos
from daemon.adapters.alpaca.clients import data_client
from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials
from daemon.adapters.alpaca.history import (MANIFEST, ChunkDone, FetchError, FetchRequest, fetch_history, parse_moment,
                                            parse_timeframe)
from daemon.cli import app
from tests.alpaca_fake import FakeAlpaca

M = NANOS_PER_MINUTE
NY = "America/New_York"
# The fake's walk is published from 2024-01-01T12:10Z to 2024-01-04T14:29Z: two whole New York days
# (Jan 2 and Jan 3, both sessions) fit inside, and Jan 4's session has not started.
FAKE = {"start": "2024-01-04T14:30:00Z", "history_minutes": 3500}
WINDOW = ("--start", "2024-01-02", "--end", "2024-01-04")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca(symbols=("SPY", "QQQ"), page_limit=1000, **FAKE) as server:  # type: ignore[arg-type]
        yield server


def _fetch(fake: FakeAlpaca, tmp_path: Path, *args: object, keys: bool = True) -> Any:
    config = tmp_path / "empty.toml"
    config.write_text("")
    env = {"COLUMNS": "200", "CREDENTIALS_DIRECTORY": None,
           "ALPACA_API_KEY_ID": fake.key_id if keys else None, "ALPACA_API_SECRET_KEY": fake.secret_key if keys else None}
    return CliRunner().invoke(app, ["data", "fetch", *map(str, args), "--config", str(config),
                                    "--data-url", fake.rest_url, "--no-progress"],
                              prog_name="tradingd", env=env)


def _bar_requests(fake: FakeAlpaca) -> list[dict]:
    return [r for r in fake.request_log() if r["path"] == "/v2/stocks/bars"]


def _published(fake: FakeAlpaca, symbol: str, start: int, end: int) -> list[tuple[int, float, float, float, float, float]]:
    rows = []
    for b in fake.published_bars(symbol):
        t = to_nanos(b["t"])
        if start <= t < end:
            rows.append((t, b["o"], b["h"], b["l"], b["c"], float(b["v"])))
    return rows


def _file_rows(path: Path) -> list[tuple[int, float, float, float, float, float]]:
    s = load_bars(path)
    return list(zip(s.ts_event.tolist(), s.open.tolist(), s.high.tolist(), s.low.tolist(), s.close.tolist(),
                    s.volume.tolist()))


def test_fetch_pages_through_every_bar_once_and_writes_one_replayable_file_per_symbol(tmp_path):
    with FakeAlpaca(symbols=("SPY", "QQQ"), page_limit=700, **FAKE) as fake:  # type: ignore[arg-type]
        result = _fetch(fake, tmp_path, "SPY", "QQQ", *WINDOW, "--out", tmp_path / "bars")
        assert result.exit_code == 0, result.output
        start, end = parse_moment("2024-01-02", NY, ""), parse_moment("2024-01-04", NY, "")
        for symbol in ("SPY", "QQQ"):
            expected = _published(fake, symbol, start, end)
            assert len(expected) == 2 * 1440
            assert _file_rows(tmp_path / "bars" / f"{symbol}.csv") == expected
        requests = _bar_requests(fake)
    # one chunk per symbol (one month), 2880 bars in pages of 700: 5 requests each, later ones with a token
    assert len(requests) == 10
    assert sum("page_token" in r["query"] for r in requests) == 8
    assert sorted(p.name for p in (tmp_path / "bars").iterdir()) == [".chunks", MANIFEST, "QQQ.csv", "SPY.csv",
                                                                      "quality.json"]
    header = (tmp_path / "bars" / "SPY.csv").read_text().splitlines()[:2]
    assert header[0] == "timestamp,open,high,low,close,volume" and header[1].startswith("2024-01-02T05:00:00Z,")


def test_an_interrupted_fetch_resumes_without_refetching_finished_chunks_or_duplicating_bars(fake, tmp_path):
    out = tmp_path / "bars"
    start, end = parse_moment("2024-01-02", NY, ""), parse_moment("2024-01-04", NY, "")
    request = FetchRequest(("SPY", "QQQ"), parse_timeframe("1Min"), start, end, period="day")
    client = data_client(AlpacaCredentials(fake.key_id, fake.secret_key), AlpacaConfig(data_url=fake.rest_url),
                         raw_data=True)
    seen: list[ChunkDone] = []

    def on_chunk(done: ChunkDone) -> None:
        seen.append(done)
        fake.faults.server_error(5, status=500, path="/v2/stocks/bars")  # the next chunk fails for good

    with pytest.raises(FetchError, match=r"SPY 2024-01-03T05:00:00Z\.\.2024-01-04T05:00:00Z: HTTP 500") as failed:
        fetch_history(client, request, out, on_chunk=on_chunk, retries=1, sleep=lambda s: None)
    assert fake.secret_key not in str(failed.value)
    assert [(d.chunk.symbol, d.done, d.total, d.reused) for d in seen] == [("SPY", 1, 4, False)]
    assert not list(out.glob("*.csv"))  # no final file from a fetch that did not finish
    assert len(json.loads((out / MANIFEST).read_text())["chunks"]) == 1
    fake.faults.clear()
    before = len(_bar_requests(fake))

    result = _fetch(fake, tmp_path, "SPY", "QQQ", *WINDOW, "--chunk", "day", "--out", out)
    assert result.exit_code == 0, result.output
    resumed = _bar_requests(fake)[before:]
    assert sorted((r["query"]["symbols"], r["query"]["start"][:10]) for r in resumed if "page_token" not in r["query"]
                  ) == [("QQQ", "2024-01-02"), ("QQQ", "2024-01-03"), ("SPY", "2024-01-03")]  # not SPY's first day
    assert len(resumed) == 6  # 1440 bars a chunk, pages of 1000
    assert "3 fetched, 1 reused" in result.stdout
    for symbol in ("SPY", "QQQ"):
        rows = _file_rows(out / f"{symbol}.csv")  # load_bars refuses duplicate timestamps
        assert rows == _published(fake, symbol, start, end)

    again = _fetch(fake, tmp_path, "SPY", "QQQ", *WINDOW, "--chunk", "day", "--out", out)
    assert again.exit_code == 0 and "0 fetched, 4 reused" in again.stdout
    assert len(_bar_requests(fake)) == before + 6  # a finished fetch is rebuilt from its chunks


def test_the_quality_report_counts_session_gaps_and_bars_outside_the_session(fake, tmp_path):
    out = tmp_path / "bars"
    # Jan 4's session lies after the last published minute: a whole day without bars
    result = _fetch(fake, tmp_path, "SPY", "--start", "2024-01-02", "--end", "2024-01-05", "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "quality.json").read_text())
    assert report["request"]["symbols"] == ["SPY"] and report["request"]["timeframe"] == "1Min"
    spy = report["symbols"][0]
    bars = len(_published(fake, "SPY", parse_moment("2024-01-02", NY, ""), parse_moment("2024-01-05", NY, "")))
    assert (spy["bars"], spy["duplicates"], spy["ohlc_violations"]["rows"]) == (bars, 0, 0)
    gaps = spy["gaps"]
    assert (gaps["calendar"], gaps["sessions"], gaps["expected"], gaps["missing"]) == ("XNYS", 3, 3 * 390, 390)
    assert gaps["days_without_bars"] == ["2024-01-04"] and gaps["missing_by_day"] == {"2024-01-04": 390}
    assert gaps["outside_session"] == bars - 2 * 390  # the fake trades around the clock
    shown = result.stdout.split("data quality")[1]  # the table (its width depends on the terminal)
    assert all(cell in shown for cell in ("SPY", f"{bars:,}", "390 /", "1,170", f"{bars - 780:,}")), shown


def test_the_fetched_folder_replays_into_a_run(fake, tmp_path):
    out = tmp_path / "bars"
    assert _fetch(fake, tmp_path, "SPY", "QQQ", *WINDOW, "--out", out).exit_code == 0
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["replay", "--data", str(out), "--strategy", "sma_cross", "-p", "fast=5",
                                      "-p", "slow=20", "--out", str(run), "--db", f"sqlite:///{tmp_path / 'x.db'}",
                                      "--no-report", "--no-progress"], prog_name="tradingd", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert sorted(metrics["run"]["symbols"]) == ["QQQ", "SPY"]
    assert metrics["strategy"]["trades"] > 0


def test_crypto_symbols_are_fetched_from_the_crypto_endpoint_into_files_named_without_the_slash(tmp_path):
    with FakeAlpaca(symbols=("SPY",), crypto_symbols=("BTC/USD",), **FAKE) as fake:  # type: ignore[arg-type]
        result = _fetch(fake, tmp_path, "BTC/USD", "--asset-class", "crypto", "--start", "2024-01-03",
                        "--end", "2024-01-04T06:00:00+00:00", "--out", tmp_path / "c")
        assert result.exit_code == 0, result.output
        assert {r["path"] for r in fake.request_log() if "bars" in r["path"]} == {"/v1beta3/crypto/us/bars"}
    series = load_bars(tmp_path / "c" / "BTCUSD.csv")
    assert series.symbol == "BTCUSD" and len(series) == 30 * 60  # UTC midnight to 06:00 the next day
    gaps = json.loads((tmp_path / "c" / "quality.json").read_text())["symbols"][0]["gaps"]
    assert (gaps["calendar"], gaps["expected"], gaps["missing"]) == ("24/7", 1800, 0)


@pytest.mark.parametrize("args, message", [
    (("--timeframe", "1Week"), "--timeframe '1Week': unknown timeframe"),
    (("--start", "2024-01-04", "--end", "2024-01-02"), "--start 2024-01-04T05:00:00Z is not before --end"),
    (("--start", "2024-01-02T09:30:00"), "a time needs a UTC offset"),
])
def test_bad_options_are_refused_with_a_clear_message_and_exit_2(fake, tmp_path, args, message):
    base = {"--start": "2024-01-02", "--end": "2024-01-04", "--timeframe": "1Min"}
    given = dict(zip(args[::2], args[1::2]))
    options = [x for key, value in {**base, **given}.items() for x in (key, value)]
    result = _fetch(fake, tmp_path, "SPY", *options, "--out", tmp_path / "bars")
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "bars").exists() and _bar_requests(fake) == []


def test_an_out_folder_that_is_a_file_and_missing_keys_are_refused(fake, tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    result = _fetch(fake, tmp_path, "SPY", *WINDOW, "--out", target)
    assert result.exit_code == 2 and "is a file, not a folder" in result.stderr
    result = _fetch(fake, tmp_path, "SPY", *WINDOW, "--out", tmp_path / "bars", keys=False)
    assert result.exit_code == 2 and "ALPACA_API_KEY_ID" in result.stderr
    assert _bar_requests(fake) == []


def test_an_http_error_is_reported_without_secrets_and_leaves_no_final_file(fake, tmp_path):
    fake.faults.server_error(10, status=502, html=True, path="/v2/stocks/bars")
    result = _fetch(fake, tmp_path, "SPY", *WINDOW, "--out", tmp_path / "bars", "--retries", "1")
    assert result.exit_code == 2
    text = " ".join(result.stderr.split())
    assert "HTTP 502" in text and "(after 2 attempts)" in text and "<html" not in text.lower()
    assert fake.secret_key not in result.output and fake.key_id not in result.output
    assert not list((tmp_path / "bars").glob("*.csv"))
