"""The ``tradingd`` command line: help, strategies, check-config, replay (outputs, fills, database,
bad input) and halt/rearm, as a user sees them."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import research.output
from core.enums import TradingState
from daemon.config import load_config
from state import SqlStore, StoreConfig
from strategies.registry import STRATEGIES
from tests.daemon.conftest import AAPL, REPO_CONFIG, SLICE, SPY, spy_rows, sqlite_url, write_csv

METRIC_LABELS = ["Total return", "CAGR", "Volatility", "Sharpe", "Sortino", "Calmar", "Max drawdown",
                 "Max DD duration", "Win rate", "Profit factor", "Expectancy", "Exposure", "Turnover", "Trades"]
METRIC_KEYS = ["total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
               "max_drawdown_duration", "win_rate", "profit_factor", "expectancy", "exposure", "turnover", "trades"]
OUTPUT_FILES = list(research.output.OUTPUT_FILES)
TRADE_COLUMNS = ["symbol", "side", "quantity", "entry_time", "exit_time", "entry_price", "exit_price", "pnl",
                 "return", "commission", "exit_reason"]
FILL_COLUMNS = ["time", "symbol", "side", "quantity", "price", "commission"]


def flat(text: str) -> str:
    """Help/table text without box drawing and line wrapping, so phrases can be searched."""
    return " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━┡┩└┘┳┻╇]", " ", text).split())


def replay_args(tmp: Path, *extra: object, db: str | None = None) -> list[object]:
    """A small, frictionless replay of SPY and AAPL in 2019 with the repo config and outputs in ``tmp``."""
    return ["replay", "-c", REPO_CONFIG, "--data", SPY, AAPL, "--strategy", "sma_cross", "--param", "fast=5",
            "--param", "slow=20", *SLICE, "--out", tmp / "out", "--db", db or sqlite_url(tmp / "x.db"),
            "--no-progress", *extra]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def header(path: Path) -> list[str]:
    return path.read_text().splitlines()[0].split(",")


def source_opens() -> dict[tuple[str, pd.Timestamp], float]:
    """(symbol, bar start UTC) -> open, read straight from the bundled files."""
    opens = {}
    for path in (SPY, AAPL):
        frame = pd.read_csv(path)
        starts = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
        symbol = path.name.split(".")[0]
        opens.update({(symbol, ts): float(o) for ts, o in zip(starts, frame["open"])})
    return opens


def run_in_db(url: str, run_id: str) -> tuple[dict | None, list, list]:
    with SqlStore(StoreConfig(database_url=url)) as store:
        return store.run(run_id), store.orders(run_id), store.fills(run_id)


def assert_nothing_written(tmp: Path) -> None:
    assert not (tmp / "out").exists(), "the output folder must not be created"
    assert not (tmp / "x.db").exists(), "the database must not be created"


# --- help and listings ------------------------------------------------------------------------------


def test_help_lists_every_command(cli):
    result = cli("--help")
    assert result.exit_code == 0, result.output
    text = flat(result.stdout)
    for command, words in (("replay", "Replay historical bars"), ("strategies", "List the built-in strategies"),
                           ("check-config", "Validate a configuration file"), ("halt", "HALTED"),
                           ("rearm", "Re-arm a HALTED account")):
        assert command in text and words in text


def test_replay_help_lists_every_option_with_its_help(cli):
    result = cli("replay", "--help")
    assert result.exit_code == 0, result.output
    text = flat(result.stdout)
    for option, words in (
        ("--data", "Bar file, or a folder (all its .csv, .csv.gz and .parquet files); repeat"),
        ("--strategy", "Strategy name (see `tradingd strategies`) or package.module:Class."),
        ("--param", "Strategy parameter; repeatable. Replaces [strategy.params]"),
        ("--slippage-bps", "Fixed adverse slippage per fill, basis points."),
        ("--commission", "Commission per share, USD."),
        ("--commission-bps", "Commission as basis points of notional."),
        ("--participation-cap", "Max fraction of a bar's volume one order may fill"),
        ("--out", "Output folder, relative to the working directory."),
        ("--db", "State database: sqlite:///path.db or postgresql+psycopg://user@host/db"),
        ("--start", "First bar start, ISO-8601 with timezone"),
        ("--config", "TOML configuration file."),
        ("--no-progress", "Show a progress bar (on stderr)."),
    ):
        assert option in text, f"{option} missing from replay --help"
        assert words in text, f"help of {option} ({words!r}) missing from replay --help:\n{text}"


def test_strategies_lists_each_strategy_with_its_params_and_defaults(cli):
    result = cli("strategies")
    assert result.exit_code == 0, result.output
    text = result.stdout
    names = sorted(STRATEGIES)
    assert names == ["online_ml", "rsi_momentum", "sma_cross"]
    starts = [text.index(f"{name}:") for name in names]
    assert starts == sorted(starts)
    for name, begin, end in zip(names, starts, starts[1:] + [len(text)]):
        block = flat(text[begin:end])
        for param, info in STRATEGIES[name].Params.model_fields.items():
            assert param in block, f"{name}: parameter {param} not listed"
            assert repr(info.default) in block, f"{name}: default of {param} not shown"
    assert "fast SMA period" in flat(text)


# --- check-config ------------------------------------------------------------------------------------


def test_check_config_accepts_the_repo_config(cli):
    result = cli("check-config", "-c", REPO_CONFIG)
    assert result.exit_code == 0, result.output
    assert f"config hash {load_config(REPO_CONFIG).config_hash()[:12]}" in flat(result.stdout)
    assert '"max_drawdown": 0.2' in result.stdout and '"name": "sma_cross"' in result.stdout


def test_check_config_rejects_a_broken_config_with_exit_code_2(cli, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[risk]\nmax_drawdown = 1.5\n[strategy.params]\nfast = \"abc\"\n")
    result = cli("check-config", "-c", path)
    assert result.exit_code == 2
    assert str(path) in result.stderr
    assert "[risk] max_drawdown = 1.5: Input should be less than or equal to 1" in result.stderr
    assert "fast='abc'" in result.stderr


def test_check_config_rejects_data_that_matches_no_file(cli, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[data]\npaths = ["nothing/*.csv.gz"]\n')
    result = cli("check-config", "-c", path)
    assert result.exit_code == 2
    assert "[data] paths: 'nothing/*.csv.gz' matches no file" in result.stderr


# --- a successful replay -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frictionless(tmp_path_factory):
    """One frictionless replay of SPY + AAPL (2019), shared by the tests that read its outputs."""
    from typer.testing import CliRunner

    from daemon.cli import app

    tmp = tmp_path_factory.mktemp("replay")
    args = [str(a) for a in replay_args(tmp, "--slippage-bps", 0, "--commission", 0)]
    result = CliRunner().invoke(app, args, prog_name="tradingd", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return tmp, result


def test_replay_prints_the_summary_table_with_both_columns_and_every_metric(frictionless):
    tmp, result = frictionless
    out = result.stdout
    metrics = json.loads((tmp / "out" / "metrics.json").read_text())
    label = metrics["benchmark_label"]
    assert f"sma_cross vs {label} (SPY, AAPL)" in out
    assert re.search(rf"metric\s*┃\s*strategy\s*┃\s*{re.escape(label)}", out)
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 3:
            rows[cells[0]] = cells[1:]
    assert list(rows) == METRIC_LABELS  # every metric, in this order
    assert all(ours and theirs for ours, theirs in rows.values())
    # the table shows the same numbers as metrics.json
    assert rows["Total return"][0] == f"{metrics['strategy']['total_return'] * 100:.2f}%"
    assert rows["Total return"][1] == f"{metrics['benchmark']['total_return'] * 100:.2f}%"
    assert rows["Trades"] == [str(metrics["strategy"]["trades"]), "n/a"]
    assert f"run {metrics['run']['run_id']}" in flat(out)


def test_replay_writes_every_output_file(frictionless):
    tmp, _ = frictionless
    out = tmp / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert "<html" in (out / "report.html").read_text()[:2000].lower()
    metrics = json.loads((out / "metrics.json").read_text())
    for section in ("strategy", "benchmark"):
        for key in METRIC_KEYS:
            assert key in metrics[section], f"metrics.json [{section}] lacks {key}"
    assert metrics["run"]["symbols"] == ["SPY", "AAPL"] and metrics["run"]["strategy"] == "sma_cross"
    assert metrics["run"]["params"]["fast"] == 5 and metrics["run"]["params"]["slow"] == 20
    assert set(TRADE_COLUMNS) <= set(header(out / "trades.csv"))
    assert header(out / "fills.csv")[:len(FILL_COLUMNS)] == FILL_COLUMNS
    assert {"client_order_id", "symbol", "side", "quantity", "status"} <= set(header(out / "orders.csv"))
    assert header(out / "equity.csv")[:3] == ["time", "cash", "equity"]
    trades = read_csv(out / "trades.csv")
    assert len(trades) == metrics["strategy"]["trades"] > 10
    equity = read_csv(out / "equity.csv")
    assert float(equity[0]["equity"]) == 100_000.0
    assert float(equity[-1]["equity"]) == pytest.approx(100_000.0 * (1 + metrics["strategy"]["total_return"]))


def test_frictionless_fills_are_at_the_open_of_the_bar_starting_at_the_fill_time(frictionless):
    tmp, _ = frictionless
    fills = read_csv(tmp / "out" / "fills.csv")
    assert len(fills) > 20 and {f["symbol"] for f in fills} == {"SPY", "AAPL"}
    opens = source_opens()
    for fill in fills:
        key = (fill["symbol"], pd.Timestamp(fill["time"]))
        assert key in opens, f"fill at {fill['time']} is not at the start of a {fill['symbol']} bar"
        assert float(fill["price"]) == pytest.approx(opens[key], rel=1e-12), fill
        assert float(fill["commission"]) == 0.0


def test_replay_run_is_finished_in_the_database_with_every_order_and_fill(frictionless):
    tmp, _ = frictionless
    out = tmp / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    run, orders, fills = run_in_db(sqlite_url(tmp / "x.db"), metrics["run"]["run_id"])
    assert run is not None and run["status"] == "finished" and run["finished_ns"] is not None
    assert run["strategy_id"] == "sma_cross" and run["kind"] == "replay"
    assert run["metrics"]["strategy"]["total_return"] == pytest.approx(metrics["strategy"]["total_return"])
    assert len(orders) == len(read_csv(out / "orders.csv")) > 0
    assert len(fills) == len(read_csv(out / "fills.csv")) > 0
    assert sorted(f["fill_id"] for f in fills) == sorted(r["fill_id"] for r in read_csv(out / "fills.csv"))


def test_commission_bps_is_charged_on_fill_notional(cli, tmp_path):
    result = cli(*replay_args(tmp_path, "--commission-bps", 10, "--no-report"))
    assert result.exit_code == 0, result.output
    fills = read_csv(tmp_path / "out" / "fills.csv")
    assert len(fills) > 20
    for fill in fills:
        expected = 0.001 * float(fill["quantity"]) * float(fill["price"])
        assert expected > 0 and float(fill["commission"]) == pytest.approx(expected, rel=1e-9), fill


def test_same_inputs_give_byte_identical_trades_and_equity(cli, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        result = cli(*replay_args(tmp_path / name, "--no-report"))
        assert result.exit_code == 0, result.output
    for file in ("trades.csv", "equity.csv", "fills.csv"):
        assert (tmp_path / "a" / "out" / file).read_bytes() == (tmp_path / "b" / "out" / file).read_bytes()


def test_replay_against_postgresql(cli, tmp_path, postgres_url):
    result = cli(*replay_args(tmp_path, "--no-report", db=postgres_url))
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    run_id = json.loads((out / "metrics.json").read_text())["run"]["run_id"]
    run, orders, fills = run_in_db(postgres_url, run_id)
    assert run is not None and run["status"] == "finished"
    assert len(orders) == len(read_csv(out / "orders.csv")) > 0
    assert len(fills) == len(read_csv(out / "fills.csv")) > 0
    assert not (tmp_path / "x.db").exists()


def test_console_script_entry_point_replays(tmp_path):
    """The installed ``tradingd`` script, as a user runs it (cwd without a config: built-in defaults)."""
    script = Path(sys.executable).with_name("tradingd")
    assert script.exists(), f"console script missing next to {sys.executable}"
    cmd = [str(script), "replay", "--data", str(SPY), "--start", "2019-01-01T00:00:00Z",
           "--end", "2019-07-01T00:00:00Z", "--strategy", "sma_cross", "--param", "fast=5", "--param", "slow=20",
           "--out", str(tmp_path / "out"), "--db", sqlite_url(tmp_path / "x.db"), "--no-progress", "--no-report"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Total return" in proc.stdout and "buy & hold" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(set(OUTPUT_FILES) - {"report.html"})
    # nothing else in the cwd (the database may keep companion files such as its migration lock)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("x.db")) == ["out"]


# --- bad input: exit code 2, file + line + reason, nothing written -----------------------------------


def _nan(rows):
    fields = rows[10].split(",")
    fields[4] = "nan"  # close
    rows[10] = ",".join(fields)


def _duplicate(rows):
    rows[11] = rows[10]


def _out_of_order(rows):
    rows[10], rows[11] = rows[11], rows[10]


def _high_below_low(rows):
    fields = rows[10].split(",")
    fields[2], fields[3] = fields[3], fields[2]  # swap high and low
    rows[10] = ",".join(fields)


BAD_DATA = {
    "nan": (_nan, ":12: column 'close'", "is not finite"),
    "duplicate": (_duplicate, ":13: column 'timestamp'", "duplicate timestamp"),
    "out of order": (_out_of_order, ":13: column 'timestamp'", "out of order"),
    "high below low": (_high_below_low, ":12: column 'high'", "is below low"),
}


@pytest.mark.parametrize("corrupt, where, reason", BAD_DATA.values(), ids=BAD_DATA.keys())
def test_bad_data_exits_2_naming_file_line_and_reason_and_writes_nothing(cli, tmp_path, corrupt, where, reason):
    head, rows = spy_rows()
    corrupt(rows)
    bad = write_csv(tmp_path / "QQQ.csv", head, rows)  # line 12 = rows[10]
    args = ["replay", "-c", REPO_CONFIG, "--data", SPY, bad, "--out", tmp_path / "out",
            "--db", sqlite_url(tmp_path / "x.db"), "--no-progress"]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert f"{bad}{where}" in result.stderr, result.stderr
    assert reason in result.stderr
    assert "Traceback" not in result.output
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("extra, expected", [
    (["--param", "fast=abc"], ["[strategy]", "fast='abc'", "valid integer"]),
    (["--param", "slow=3"], ["fast (5) must be smaller than slow (3)"]),
    (["--param", "fast"], ["--param 'fast'", "KEY=VALUE"]),
    (["--param", "fastt=3"], ["fastt='3'", "fast, slow, allow_short"]),
    (["--strategy", "nope"], ["unknown strategy 'nope'", "online_ml, rsi_momentum, sma_cross"]),
    (["--participation-cap", "2"], ["--participation-cap 2.0 (sets [fill] participation_cap): Input should be "
                                    "less than or equal to 1"]),
    (["--slippage-bps", "-1"], ["--slippage-bps -1.0 (sets [fill] slippage_bps): Input should be greater than "
                                "or equal to 0"]),
    (["--cash", "0"], ["--cash 0.0 (sets [replay] starting_cash): Input should be greater than 0"]),
    (["--start", "2019-01-01T00:00:00"], ["--start 2019-01-01T00:00:00 (sets [data] start): needs a timezone"]),
    (["--timeframe", "1hour"], ["--timeframe 1hour (sets [data] timeframe): invalid timeframe '1hour'"]),
    (["--start", "2030-01-01T00:00:00Z"], ["no bars between 2030-01-01T00:00:00+00:00"]),
], ids=["param-not-int", "fast>=slow", "param-no-equals", "param-unknown", "strategy", "participation-cap",
        "slippage", "cash", "naive-start", "timeframe", "empty-window"])
def test_invalid_option_exits_2_before_anything_runs(cli, tmp_path, extra, expected):
    args = ["replay", "-c", REPO_CONFIG, "--data", SPY, "--param", "fast=5", *extra,
            "--out", tmp_path / "out", "--db", sqlite_url(tmp_path / "x.db"), "--no-progress"]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    for fragment in expected:
        assert fragment in result.stderr, f"{fragment!r} missing from:\n{result.stderr}"
    assert "Replaying" not in result.stdout and "Traceback" not in result.output
    assert_nothing_written(tmp_path)


def test_missing_data_file_exits_2(cli, tmp_path):
    result = cli("replay", "-c", REPO_CONFIG, "--data", tmp_path / "SPY.csv", "--out", tmp_path / "out",
                 "--db", sqlite_url(tmp_path / "x.db"), "--no-progress")
    assert result.exit_code == 2
    assert f"'{tmp_path / 'SPY.csv'}' matches no file" in result.stderr
    assert_nothing_written(tmp_path)


# --- halt and rearm ------------------------------------------------------------------------------


def test_halt_and_rearm_change_the_persisted_trading_state_of_one_account(cli, tmp_path):
    db = sqlite_url(tmp_path / "state.db")
    config = tmp_path / "config.toml"
    config.write_text(f'[state]\ndatabase_url = "{db}"\n')

    def state(account: str):
        with SqlStore(StoreConfig(database_url=db), account=account) as store:
            return store.load_trading_state()

    result = cli("halt", "--account", "acct1", "--reason", "manual stop", "-c", config)
    assert result.exit_code == 0, result.output
    assert "account acct1: active -> halted (manual stop)" in flat(result.stdout)
    assert state("acct1") == (TradingState.HALTED, "manual stop")
    assert state("default") is None  # other accounts untouched

    result = cli("rearm", "--account", "acct1", "--reason", "checked", "-c", config)
    assert result.exit_code == 0, result.output
    assert "account acct1: halted -> active (checked)" in flat(result.stdout)
    assert state("acct1") == (TradingState.ACTIVE, "checked")
    with SqlStore(StoreConfig(database_url=db), account="acct1") as store:
        history = store.trading_state_history()
    assert [(h["previous"], h["state"]) for h in history] == [(TradingState.ACTIVE, TradingState.HALTED),
                                                               (TradingState.HALTED, TradingState.ACTIVE)]


def test_halt_with_a_missing_config_file_fails_instead_of_using_defaults(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the defaults would write tradingd.db here
    result = cli("halt", "-c", tmp_path / "typo.toml")
    assert result.exit_code == 2
    assert f"{tmp_path / 'typo.toml'}: file not found" in result.stderr
    assert list(tmp_path.iterdir()) == []


# --- errors that come from the command line or the database ----------------------------------------


def test_unreachable_database_fails_cleanly_and_writes_no_output(cli, tmp_path):
    result = cli(*replay_args(tmp_path, db="postgresql+psycopg://postgres@127.0.0.1:1/test"))
    assert result.exit_code == 2
    assert "cannot open store" in flat(result.stderr) and "127.0.0.1:1" in flat(result.stderr)
    assert not (tmp_path / "out").exists()


def test_option_errors_say_they_come_from_the_command_line(cli, tmp_path):
    result = cli(*replay_args(tmp_path, "--participation-cap", "2"))
    assert result.exit_code == 2
    assert "command-line options" in flat(result.stderr) and "--participation-cap 2.0" in flat(result.stderr)


def test_param_strings_and_typed_config_values_hash_alike(tmp_path):
    from daemon.config import load_config

    config = tmp_path / "c.toml"
    config.write_text('[strategy]\nname = "sma_cross"\n[strategy.params]\nfast = 5\nslow = 20\n')
    from_file = load_config(config)
    from_cli = load_config(config, {"strategy.params": {"fast": "5", "slow": "20"}})
    assert from_cli.strategy.params == {"fast": 5, "slow": 20, "allow_short": False}
    assert from_cli.config_hash() == from_file.config_hash()


def test_rearm_of_an_unknown_account_is_an_error_and_db_selects_the_database(cli, tmp_path):
    db = sqlite_url(tmp_path / "other.db")
    result = cli("rearm", "--account", "typo", "--db", db)
    assert result.exit_code == 2
    assert "account 'typo' has no persisted state" in flat(result.stderr)
    result = cli("halt", "--account", "acct", "--reason", "stop", "--db", db)
    assert result.exit_code == 0, result.output
    assert "other.db" in flat(result.stdout)  # says which database was changed
    with SqlStore(StoreConfig(database_url=db), account="acct") as store:
        assert store.load_trading_state() == (TradingState.HALTED, "stop")
        assert store.load_risk_state("acct").state is TradingState.HALTED  # recovery sees it too


# --- the command line as a whole: speed of --help, version, defaults in the help -----------------

HEAVY = {"river", "scipy", "sqlalchemy", "pandas", "plotly", "pyarrow"}


@pytest.mark.parametrize("argv", [["--help"], ["strategies"], ["replay", "--help"], ["halt", "--help"]],
                         ids=["help", "strategies", "replay-help", "halt-help"])
def test_help_and_the_strategy_listing_import_no_heavy_library(argv):
    # what makes `tradingd --help` take 2 s instead of 0.2 s: River, SciPy, SQLAlchemy, pandas, plotly
    code = f"import sys; from daemon.cli import app; sys.argv = ['tradingd', *{argv!r}]; app(prog_name='tradingd')"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          cwd=REPO_CONFIG.parent, timeout=60, env={"COLUMNS": "120", "PATH": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rpartition("|")[2].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "typer" in imported  # the measurement works
    assert not imported & HEAVY, f"{' '.join(argv)} imports {sorted(imported & HEAVY)}"


def test_version(cli):
    from importlib.metadata import version

    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"tradingd {version('tradingd')}"


def test_every_replay_option_shows_its_default_from_the_config_file_or_built_in(cli, tmp_path, monkeypatch):
    config = tmp_path / "prod.toml"
    config.write_text('[fill]\nslippage_bps = 2.5\n[strategy]\nname = "rsi_momentum"\n[strategy.params]\n'
                      'rsi_period = 10\n[state]\ndatabase_url = "postgresql+psycopg://trader:s3cretpw@db/x"\n')
    monkeypatch.chdir(tmp_path)  # no config.toml here: only -c supplies values
    text = flat(cli("replay", "-c", config, "--help").stdout)
    for shown in (f"[default: [fill] slippage_bps = 2.5 from {config}]",
                  f'[default: [strategy] name = "rsi_momentum" from {config}]',
                  f"[default: [strategy.params] rsi_period = 10 from {config}]",
                  "[default: [fill] commission_bps = 0.0 (built-in)]",
                  "[default: [replay] starting_cash = 100000.0 (built-in)]",
                  '[default: [output] dir = "runs/latest" (built-in)]',
                  "[default: [data] timeframe: inferred from the data (the most frequent bar spacing)]",
                  f"[default: [state] database_url from {config} (credentials not shown)]",
                  "[default: [output] report = true (built-in)]", "[default: on]",
                  "[default: [output] benchmark = \"auto\" (built-in)]"):
        assert shown in text, f"{shown!r} missing from:\n{text}"
    assert "s3cretpw" not in text
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+(?= )", text.split("Options")[-1]))
    options -= {"--help", "--no-report", "--no-progress"}
    assert len(options) == 20, options
    assert len(re.findall(r"\[default: ", text)) == len(options) + 1  # every option, and the FILE|DIR argument
    bare = flat(cli("replay", "--help").stdout)
    assert "[default: [fill] slippage_bps = 1.0 (built-in)]" in bare
    assert "the built-in defaults (here: none, so built-in defaults)" in bare


def test_help_shows_no_python_type_noise(cli):
    for command in ([], ["replay"], ["halt"], ["rearm"], ["check-config"], ["strategies"]):
        text = cli(*command, "--help").stdout
        assert not re.search(r"<(bool|str|int|float|path|list\[\w+\])>", text, re.IGNORECASE), text


def test_help_defaults_mirror_the_configuration_defaults():
    from daemon.help_defaults import BUILTIN

    from daemon.config import AppConfig

    defaults = AppConfig().model_dump(mode="json")
    for dotted, value in BUILTIN.items():
        node = defaults
        for part in dotted.split("."):
            node = node[part]
        assert node == value, f"help shows {dotted} = {value!r} but the built-in default is {node!r}"


# --- inputs checked before anything runs ------------------------------------------------------------


def test_data_accepts_a_folder_of_bar_files(cli, tmp_path):
    folder = tmp_path / "bars"
    folder.mkdir()
    import shutil

    shutil.copy(SPY, folder / "SPY.csv.gz")
    shutil.copy(AAPL, folder / "AAPL.csv.gz")
    result = cli("replay", "-c", REPO_CONFIG, "--data", folder, *SLICE, "--param", "fast=5", "--param", "slow=20",
                 "--out", tmp_path / "out", "--db", sqlite_url(tmp_path / "x.db"), "--no-progress", "--no-report")
    assert result.exit_code == 0, result.output
    assert "bars of AAPL, SPY" in flat(result.stdout)


def test_out_pointing_at_an_existing_file_fails_before_the_replay(cli, tmp_path):
    (tmp_path / "out").write_text("my notes")
    result = cli(*replay_args(tmp_path))
    assert result.exit_code == 2
    assert f"--out {tmp_path / 'out'}: exists and is a file, not a folder" in flat(result.stderr)
    assert "Replaying" not in result.stdout
    assert (tmp_path / "out").read_text() == "my notes" and not (tmp_path / "x.db").exists()
    result = cli("replay", "-c", REPO_CONFIG, "--data", SPY, "--out", tmp_path / "out" / "sub",
                 "--db", sqlite_url(tmp_path / "x.db"), "--no-progress")
    assert result.exit_code == 2 and "is a file, so the folder cannot be created" in flat(result.stderr)


def test_a_missing_config_toml_means_built_in_defaults_for_replay_and_check_config_alike(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    note = f"note: no config.toml in {tmp_path}: using the built-in defaults"
    checked = cli("check-config")
    replayed = cli("replay", "--no-progress")
    for result in (checked, replayed):  # both say it, and both fail on the default data, which is not here
        assert result.exit_code == 2 and note in flat(result.stderr)
        assert "[data] paths: 'data/us_equity_1hour_adjusted/*.csv.gz' matches no file" in flat(result.stderr)
    result = cli("replay", "--data", SPY, "--start", "2019-01-01T00:00:00Z", "--end", "2019-03-01T00:00:00Z",
                 "--db", sqlite_url(tmp_path / "x.db"), "--no-progress", "--no-report")
    assert result.exit_code == 0, result.output
    assert note in flat(result.stderr)
    for command in ("check-config", "replay"):  # an explicit file that is missing is an error for both
        result = cli(command, "-c", tmp_path / "typo.toml")
        assert result.exit_code == 2 and f"{tmp_path / 'typo.toml'}: file not found" in result.stderr


def _date_only(tmp: Path) -> tuple[Path, str]:
    head, rows = spy_rows(n=20)
    rows[3] = "2019-01-03" + rows[3][len("2019-01-03T09:00:00-05:00"):]
    return write_csv(tmp / "QQQ.csv", head, rows), ":5: column 'timestamp': timestamp '2019-01-03' is a date without a time"


def _sub_second(tmp: Path) -> tuple[Path, str]:
    rows = [f"2020-01-02T00:00:0{i // 2}.{5 * (i % 2)}Z,1,1,1,1,1" for i in range(6)]
    return write_csv(tmp / "QQQ.csv", "timestamp,open,high,low,close,volume", rows), "bars 0.5 s long"


def _near_2262(tmp: Path) -> tuple[Path, str]:
    rows = [f"2262-04-11T2{h}:00:00Z,1,1,1,1,1" for h in range(4)]
    return (write_csv(tmp / "QQQ.csv", "timestamp,open,high,low,close,volume", rows),
            ":5: column 'timestamp': the bar starting 2262-04-11T23:00:00Z ends (1h later) after 2262-04-11T23:47:16Z")


BAD_INPUTS = {
    "date-only timestamp": (_date_only, []),
    "sub-second bars": (_sub_second, []),
    "bars near 2262": (_near_2262, []),
    "timeframe shorter than the bars": (None, ["--timeframe", "1min"]),
    "timeframe of a million days": (None, ["--timeframe", "1000000d"]),
    "start after 2262": (None, ["--start", "2300-01-01T00:00:00Z"]),
}
EXPECTED = {
    "timeframe shorter than the bars": "timeframe 1min is shorter than the spacing of its bars (1h, the most frequent step)",
    "timeframe of a million days": "--timeframe 1000000d (sets [data] timeframe): bars 1,000,000 days long",
    "start after 2262": "--start 2300-01-01T00:00:00Z (sets [data] start): outside 1677-09-21 .. 2262-04-11",
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_inputs_tradingd_cannot_replay_are_clear_errors_not_tracebacks(cli, tmp_path, name):
    make, extra = BAD_INPUTS[name]
    data, expected = make(tmp_path) if make else (SPY, EXPECTED[name])
    result = cli("replay", "-c", REPO_CONFIG, "--data", data, *extra, "--out", tmp_path / "out",
                 "--db", sqlite_url(tmp_path / "x.db"), "--no-progress")
    assert result.exit_code == 2, result.output
    assert expected in flat(result.stderr), result.stderr
    assert "Traceback" not in result.output and "Replaying" not in result.stdout
    assert_nothing_written(tmp_path)


def test_conflicting_settings_are_an_error_naming_both_keys(cli, tmp_path):
    result = cli(*replay_args(tmp_path, "--param", "allow_short=true"))
    assert result.exit_code == 2
    assert ("--param allow_short=true conflicts with [risk] allow_short = false: the risk engine would deny every "
            "short entry") in flat(result.stderr)
    assert_nothing_written(tmp_path)


def test_a_strategy_that_can_never_trade_on_the_data_gets_a_warning(cli, tmp_path):
    head, rows = spy_rows(n=2)
    two = write_csv(tmp_path / "SPY.csv", head, rows)
    result = cli("replay", "-c", REPO_CONFIG, "--data", two, "--strategy", "sma_cross", "--out", tmp_path / "out",
                 "--db", sqlite_url(tmp_path / "x.db"), "--no-progress", "--no-report")
    assert result.exit_code == 0, result.output
    assert ("warning: sma_cross can never trade on this data: it needs more than 350 bars of a symbol before its "
            "first decision (slow = 350), and the data has SPY 2 bars") in flat(result.stderr)
    (tmp_path / "ok").mkdir()
    fine = cli(*replay_args(tmp_path / "ok", "--no-report"))  # slow = 20 on a year of hourly bars
    assert fine.exit_code == 0 and "can never trade" not in fine.stderr


def test_check_config_refuses_a_database_the_store_cannot_open(cli, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[state]\ndatabase_url = "mysql://trader:s3cretpw@db/tradingd"\n[data]\npaths = []\n')
    result = cli("check-config", "-c", path)
    assert result.exit_code == 2
    assert "[state] database_url = 'mysql://trader:***@db/tradingd': unsupported database 'mysql'" in flat(result.stderr)
    assert "s3cretpw" not in result.output


def test_halt_writes_the_sqlite_file_next_to_the_config_file_whatever_the_cwd(cli, tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    config = project / "config.toml"
    config.write_text('[state]\ndatabase_url = "sqlite:///state.db"\n')
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = cli("halt", "-c", config, "--account", "acct", "--reason", "stop")
    assert result.exit_code == 0, result.output
    assert f"written to sqlite:///{project / 'state.db'}" in flat(result.stdout)
    assert (project / "state.db").exists() and list((tmp_path / "elsewhere").iterdir()) == []
    monkeypatch.chdir(project)  # rearm from the config's own folder hits the same database
    result = cli("rearm", "-c", "config.toml", "--account", "acct", "--reason", "checked")
    assert result.exit_code == 0 and "halted -> active" in flat(result.stdout)


def test_benchmark_is_chosen_on_the_command_line_and_checked_before_the_replay(cli, tmp_path):
    db = sqlite_url(tmp_path / "b.db")
    spy = str(Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz")
    window = ("--start", "2019-01-01T00:00:00Z", "--end", "2019-03-01T00:00:00Z")
    bad = cli("replay", "--data", spy, *window, "--benchmark", "QQQ", "--db", db, "--out", tmp_path / "o",
              "--no-progress")
    assert bad.exit_code == 2 and "--benchmark 'QQQ'" in flat(bad.stderr)
    assert not (tmp_path / "o").exists()  # refused before anything ran or was written
    good = cli("replay", "--data", spy, *window, "--benchmark", "none", "--db", db, "--out", tmp_path / "o",
               "--no-progress", "--no-report")
    assert good.exit_code == 0, good.output
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["benchmark"] is None
