"""``daemon.config.load_config``: the repo config loads from anywhere, data paths resolve relative to
the config file, and every invalid value is reported (all at once) with its section, key, value and
what is allowed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from daemon.config import ConfigError, load_config
from tests.daemon.conftest import DATA, REPO_CONFIG

BUNDLED = ["AAPL", "AIG", "BAC", "IBM", "SPY"]


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(path: Path, overrides: dict | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


# --- the repository's config ---------------------------------------------------------------------


def test_repo_config_loads_and_its_data_resolves_relative_to_the_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repo: relative paths must not depend on the cwd
    cfg = load_config(REPO_CONFIG)
    assert cfg.strategy.name == "sma_cross"
    assert dict(cfg.strategy.params) == {"fast": 70, "slow": 350, "allow_short": False}
    assert cfg.fill.commission_bps == 0.5 and cfg.risk.max_drawdown == 0.20
    files = cfg.data_files()
    assert [f.name.split(".")[0] for f in files] == BUNDLED
    assert all(f.resolve().parent == DATA and f.is_file() for f in files)


def test_relative_data_glob_of_a_config_elsewhere_resolves_next_to_that_config(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "bars").mkdir(parents=True)
    for name in ("SPY", "AAPL"):
        shutil.copy(DATA / f"{name}.csv.gz", project / "bars" / f"{name}.csv.gz")
    path = write(project, '[data]\npaths = ["bars/*.csv.gz"]\n')
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    files = load_config(path).data_files()
    assert [f.resolve() for f in files] == [project / "bars" / "AAPL.csv.gz", project / "bars" / "SPY.csv.gz"]


# --- one invalid value: section, key, value and what is allowed ----------------------------------

INVALID = {
    "max_drawdown above 1": ("[risk]\nmax_drawdown = 1.5\n",
                             ["[risk] max_drawdown = 1.5", "less than or equal to 1"]),
    "negative slippage": ("[fill]\nslippage_bps = -1\n",
                          ["[fill] slippage_bps = -1", "greater than or equal to 0"]),
    "zero starting cash": ("[replay]\nstarting_cash = 0\n",
                           ["[replay] starting_cash = 0", "greater than 0"]),
    "participation cap above 1": ("[fill]\nparticipation_cap = 2\n",
                                  ["[fill] participation_cap = 2", "less than or equal to 1"]),
    "typo in [risk]": ("[risk]\nmax_drawdwn = 0.2\n",
                       ["[risk] max_drawdwn = 0.2", "unknown key", "max_drawdown", "daily_loss_limit"]),
    "unknown section": ("[riskk]\nmax_drawdown = 0.2\n",
                        ["[riskk]", "unknown section", "risk", "strategy", "fill"]),
    "bad sizing choice": ('[risk]\nsizing = "kelly"\n',
                          ["[risk] sizing = 'kelly'", "'fixed_fraction' or 'risk_per_trade'"]),
    "bad timeframe": ('[data]\ntimeframe = "1hour"\n',
                      ["[data] timeframe = '1hour'", "invalid timeframe", "'1h'"]),
    "bad duration": ('[risk]\nloss_cooldown = "1 day"\n',
                     ["[risk] loss_cooldown = '1 day'", "invalid timeframe", "'1d'"]),
    "naive start (string)": ('[data]\nstart = "2010-01-01T00:00:00"\n',
                             ["[data] start = '2010-01-01T00:00:00'", "needs a timezone"]),
    "naive start (TOML datetime)": ("[data]\nstart = 2010-01-01T00:00:00\n",
                                    ["[data] start = '2010-01-01T00:00:00'", "needs a timezone"]),
    "nested section": ('[signals.learner]\nseed = "x"\n',
                       ["[signals.learner] seed = 'x'", "valid integer"]),
    "log level": ('[logging]\nlevel = "LOUD"\n',
                  ["[logging] level = 'LOUD'", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"]),
    "unknown strategy": ('[strategy]\nname = "sma_crosss"\n',
                         ["[strategy]", "'sma_crosss'", "available: online_ml, rsi_momentum, sma_cross"]),
    "fast >= slow": ("[strategy]\nname = \"sma_cross\"\n[strategy.params]\nfast = 400\nslow = 350\n",
                     ["[strategy]", "fast", "400", "must be smaller than slow (350)"]),
    "fast not a number": ('[strategy.params]\nfast = "abc"\n',
                          ["[strategy]", "fast='abc'", "valid integer"]),
    "unknown strategy param": ("[strategy]\nname = \"rsi_momentum\"\n[strategy.params]\nfast = 5\n",
                               ["[strategy]", "fast=5", "rsi_period", "max_holding_bars"]),
}


@pytest.mark.parametrize("text, expected", INVALID.values(), ids=INVALID.keys())
def test_an_invalid_value_names_file_section_key_value_and_rule(tmp_path, text, expected):
    path = write(tmp_path, text)
    message = config_error(path)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path, "[risk]\nmax_drawdown = 1.5\nmax_drawdwn = 0.1\n[fill]\nslippage_bps = -1\n"
                           "[replay]\nstarting_cash = 0\n[strategy.params]\nfast = \"abc\"\n")
    message = config_error(path)
    for fragment in ("[risk] max_drawdown = 1.5", "[risk] max_drawdwn = 0.1", "[fill] slippage_bps = -1",
                     "[replay] starting_cash = 0", "fast='abc'"):
        assert fragment in message, f"{fragment!r} missing from:\n{message}"
    assert len(message.splitlines()) == 1 + 5  # headline + one line per problem


def test_invalid_toml_names_the_file_and_the_line(tmp_path):
    path = write(tmp_path, "[risk]\nmax_drawdown = 0.1\n[fill\nslippage_bps = 1\n")
    message = config_error(path)
    assert str(path) in message and "invalid TOML" in message and "line 3" in message


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nope.toml"
    message = config_error(path)
    assert str(path) in message and "not found" in message


def test_data_globs_that_match_nothing_are_all_named(tmp_path):
    (tmp_path / "bars").mkdir()
    path = write(tmp_path, '[data]\npaths = ["bars/*.csv.gz", "other/SPY.csv"]\n')
    cfg = load_config(path)
    with pytest.raises(ConfigError) as info:
        cfg.data_files()
    message = str(info.value)
    assert "[data] paths: 'bars/*.csv.gz' matches no file" in message
    assert "'other/SPY.csv' matches no file" in message
    assert str(tmp_path / "bars") in message  # where it looked


# --- overrides (what the CLI options become) ------------------------------------------------------


def test_overrides_apply_and_are_validated_like_the_file():
    cfg = load_config(REPO_CONFIG, {"risk.max_drawdown": 0.1, "strategy.params": {"fast": "5", "slow": "20"}})
    assert cfg.risk.max_drawdown == 0.1
    assert cfg.fill.commission_bps == 0.5  # untouched values come from the file
    message = config_error(REPO_CONFIG, {"risk.max_drawdown": 1.5})
    assert "[risk] max_drawdown = 1.5" in message and "less than or equal to 1" in message
    message = config_error(REPO_CONFIG, {"strategy.params": {"fast": "30", "slow": "20"}})
    assert "fast (30) must be smaller than slow (20)" in message
    message = config_error(REPO_CONFIG, {"risk.max_drawdwn": 0.1})
    assert "[risk] max_drawdwn = 0.1" in message and "unknown key" in message
    message = config_error(REPO_CONFIG, {"risk.max_drawdown.x": 1})
    assert "risk.max_drawdown.x" in message and "not a section" in message


def test_defaults_without_a_file_are_valid():
    cfg = load_config(None)
    assert cfg.strategy.name == "sma_cross" and cfg.replay.starting_cash > 0


# --- config hash -----------------------------------------------------------------------------------


def test_config_hash_is_stable_and_changes_with_any_value(tmp_path, monkeypatch):
    reference = load_config(REPO_CONFIG).config_hash()
    assert len(reference) == 64
    assert load_config(REPO_CONFIG).config_hash() == reference
    # comments, blank lines, another folder and another cwd do not change the resolved configuration
    copy = write(tmp_path, "# a comment\n\n" + REPO_CONFIG.read_text() + "\n# trailing comment\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(copy).config_hash() == reference
    changed = {
        load_config(REPO_CONFIG, {"risk.max_drawdown": 0.15}).config_hash(),
        load_config(REPO_CONFIG, {"fill.slippage_bps": 0.0}).config_hash(),
        load_config(REPO_CONFIG, {"strategy.params": {"fast": 70, "slow": 351}}).config_hash(),
        load_config(REPO_CONFIG, {"data.start": "2019-01-01T00:00:00Z"}).config_hash(),
    }
    assert reference not in changed and len(changed) == 4
