"""``tradingd strategies`` and ``--strategy module:Class`` as a user sees them."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from daemon.cli import app
from strategies.registry import BUILTINS

REPO = Path(__file__).resolve().parents[2]
SPY = REPO / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"
TRADINGD = Path(sys.executable).with_name("tradingd")


def run_cli(*args: object, columns: int = 200):
    return CliRunner().invoke(app, [str(a) for a in args], prog_name="tradingd",
                              env={"COLUMNS": str(columns), "TERMINAL_WIDTH": str(columns)})


def flat(text: str) -> str:
    """Output without box drawing and line wrapping, so phrases can be searched."""
    return " ".join("".join(" " if c in "│╭╮╰╯─┃┏┓┗┛━┡┩└┘┳┻╇" else c for c in text).split())


def test_a_strategy_without_any_docstring_is_listed_not_an_index_error(user_dir, monkeypatch):
    import bare

    monkeypatch.setitem(BUILTINS, "bare", bare.Bare)  # neither the class nor its module has a docstring
    result = run_cli("strategies")
    assert result.exit_code == 0, result.output
    assert result.exception is None
    block = flat(result.stdout[result.stdout.index("bare:"):])
    assert block.startswith("bare: bare:Bare (built-in) (no description) no parameters")


def test_strategies_lists_entry_points_and_a_broken_one_after_the_builtins(user_dir):
    result = run_cli("strategies")
    assert result.exit_code == 0, result.output
    text = flat(result.stdout)
    order = [text.index(f"{name}: ") for name in ("online_ml", "rsi_momentum", "sma_cross", "bare", "broken_ep",
                                                   "buy_the_dip")]
    assert order == sorted(order)
    assert "buy_the_dip: mystrats:BuyTheDip (entry point mystrats:BuyTheDip (tradingd-user-example))" in text
    assert "Buy after drops lower closes in a row; sell hold bars later." in text  # reST markup dropped
    assert "drops 3 lower closes in a row before buying" in text and "hold 5 bars to hold before selling" in text
    assert "broken_ep: failed to load" in text and "has no attribute 'Missing'" in text
    assert "--strategy package.module:Class" in text and "tradingd.strategies" in text


def test_strategies_shows_the_full_description_wrapped_to_the_terminal(user_dir):
    result = run_cli("strategies", columns=60)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 60
    text = flat(result.stdout)
    # the last sentence of rsi_momentum's description, not just its first line
    assert "exits are market orders that fill at a later bar's open, and close only what no working exit" in text
    assert "The probability travels with the intent as confidence" in text  # online_ml, 2nd paragraph


def test_check_config_accepts_an_entry_point_strategy_and_rejects_a_missing_module(user_dir, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(f'[strategy]\nname = "buy_the_dip"\n[strategy.params]\ndrops = 2\n[data]\npaths = ["{SPY}"]\n')
    result = run_cli("check-config", "-c", good)
    assert result.exit_code == 0, result.output
    assert '"name": "buy_the_dip"' in result.stdout and '"drops": 2' in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[strategy]\nname = "nosuch_mod_xyz:Foo"\n')
    result = run_cli("check-config", "-c", bad)
    assert result.exit_code == 2
    assert "module 'nosuch_mod_xyz' not found" in flat(result.stderr)


def test_replay_runs_a_user_strategy_given_as_an_import_path(user_dir, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(user_dir), "COLUMNS": "200"}
    proc = subprocess.run(
        [str(TRADINGD), "replay", "-c", str(REPO / "config.toml"), "--data", str(SPY),
         "--strategy", "mystrats:BuyTheDip", "--param", "drops=2",
         "--start", "2019-01-01T00:00:00Z", "--end", "2019-03-01T00:00:00Z",
         "--out", str(out), "--db", f"sqlite:///{tmp_path / 'x.db'}", "--no-progress", "--no-report"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "buy_the_dip vs SPY buy & hold (SPY)" in proc.stdout
    with open(out / "trades.csv", newline="") as handle:
        trades = list(csv.DictReader(handle))
    assert len(trades) > 5 and {t["exit_reason"] for t in trades} == {"time exit"}


def test_replay_names_a_strategy_module_that_is_not_on_the_path(tmp_path):
    result = run_cli("replay", "-c", REPO / "config.toml", "--data", SPY, "--strategy", "mystrats:BuyTheDip",
                     "--out", tmp_path / "out", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--no-progress")
    assert result.exit_code == 2
    assert "module 'mystrats' not found (is it installed, or on PYTHONPATH?" in flat(result.stderr)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_is_listed_with_each_parameter_and_default(name):
    result = run_cli("strategies")
    text = flat(result.stdout)
    block = text[text.index(f"{name}: "):]
    for param, info in BUILTINS[name].Params.model_fields.items():
        assert f"{param} {info.default!r}" in block
