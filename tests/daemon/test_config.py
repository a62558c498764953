"""``daemon.config.load_config``: the repo config loads from anywhere, data paths resolve relative to
the config file, and every invalid value is reported (all at once) with its section, key, value and
what is allowed."""

from __future__ import annotations

import json
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
                       ["[risk] max_drawdwn: unknown key", "max_drawdown", "daily_loss_limit"]),
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
    for fragment in ("[risk] max_drawdown = 1.5", "[risk] max_drawdwn: unknown key", "[fill] slippage_bps = -1",
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
    assert "[risk] max_drawdwn: unknown key" in message
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


def test_config_hash_covers_only_what_changes_the_result(tmp_path):
    base = load_config(REPO_CONFIG)
    elsewhere = load_config(REPO_CONFIG, {"output.dir": str(tmp_path / "elsewhere"), "output.report": False,
                                          "state.database_url": "postgresql+psycopg://u:pw@db/tradingd",
                                          "logging.level": "DEBUG", "replay.progress_every": 7})
    assert elsewhere.config_hash() == base.config_hash()  # where results go, and how it is logged: not results
    for changed in ({"risk.max_drawdown": 0.15}, {"risk.allow_short": True}, {"fill.commission_bps": 1.0},
                    {"replay.starting_cash": 50_000.0}, {"data.end": "2020-01-01T00:00:00Z"},
                    {"data.timeframe": "2h"}, {"signals.learner.seed": 7}):
        assert load_config(REPO_CONFIG, changed).config_hash() != base.config_hash(), changed
    # the same instant written in another offset, and the same timeframe spelt differently, are the same setup
    assert (load_config(REPO_CONFIG, {"data.start": "2019-01-01T00:00:00Z", "data.timeframe": "60min"}).config_hash()
            == load_config(REPO_CONFIG, {"data.start": "2018-12-31T19:00:00-05:00", "data.timeframe": "1h"}).config_hash())


# --- the database URL: environment, password, relative SQLite path, what the store can open ------


def test_a_relative_sqlite_path_resolves_against_the_config_file_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    path = write(project, '[state]\ndatabase_url = "sqlite:///state/tradingd.db"\n')
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert load_config(path, environ={}).state.database_url == f"sqlite:///{project / 'state' / 'tradingd.db'}"
    # the built-in default file lives next to the config file too
    bare = write(project, "[risk]\nmax_drawdown = 0.1\n", "bare.toml")
    assert load_config(bare, environ={}).state.database_url == f"sqlite:///{project / 'tradingd.db'}"
    # one given on the command line or in the environment is the user's own: relative to the cwd
    given = load_config(path, {"state.database_url": "sqlite:///mine.db"}, environ={})
    assert given.state.database_url == "sqlite:///mine.db"
    from_env = load_config(path, environ={"TRADINGD_DATABASE_URL": "sqlite:///env.db"})
    assert from_env.state.database_url == "sqlite:///env.db"
    absolute = write(project, f'[state]\ndatabase_url = "sqlite:///{tmp_path}/abs.db"\n', "abs.toml")
    assert load_config(absolute, environ={}).state.database_url == f"sqlite:///{tmp_path}/abs.db"


def test_database_url_and_password_come_from_the_environment(tmp_path):
    path = write(tmp_path, '[state]\ndatabase_url = "postgresql+psycopg://trader@file-host/tradingd"\n')
    env = {"TRADINGD_DATABASE_URL": "postgresql+psycopg://trader@env-host/tradingd"}
    assert load_config(path, environ=env).state.database_url == "postgresql+psycopg://trader@env-host/tradingd"
    cli = load_config(path, {"state.database_url": "postgresql+psycopg://trader@cli-host/tradingd"}, environ=env)
    assert cli.state.database_url == "postgresql+psycopg://trader@cli-host/tradingd"  # --db wins
    secret = {"TRADINGD_DATABASE_PASSWORD": "p@ss/w:rd"}
    cfg = load_config(path, environ=secret)
    assert cfg.state.database_url == "postgresql+psycopg://trader:p%40ss%2Fw%3Ard@file-host/tradingd"
    assert "p@ss" not in repr(cfg) and "p%40ss" not in repr(cfg)
    assert "p%40ss" not in json.dumps(cfg.redacted())
    assert load_config(None, environ=secret).state.database_url.startswith("sqlite:///")  # SQLite has no password


@pytest.mark.parametrize("url, expected", [
    ("mysql://trader:s3cretpw@db/tradingd", "unsupported database 'mysql'"),
    ("postgresql+psycopg2://trader:s3cretpw@db/tradingd", "unsupported driver 'postgresql+psycopg2'"),
    ("not a url :s3cretpw@", "not a database URL"),
])
def test_urls_the_store_cannot_open_are_refused_without_showing_the_password(tmp_path, url, expected):
    path = write(tmp_path, f'[state]\ndatabase_url = "{url}"\n')
    message = config_error(path)
    assert "[state] database_url" in message and expected in message
    assert "s3cretpw" not in message
    message = config_error(None, {"state.database_url": url})
    assert "s3cretpw" not in message and expected in message
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"TRADINGD_DATABASE_URL": url})
    assert "TRADINGD_DATABASE_URL" in str(info.value) and "s3cretpw" not in str(info.value)


def test_values_of_unknown_keys_are_never_echoed(tmp_path):
    path = write(tmp_path, '[state]\ndatabase_ur = "postgresql+psycopg://trader:s3cretpw@db/x"\n'
                           '[risk]\napi_key = "s3cretpw"\n')
    message = config_error(path)
    assert "[state] database_ur: unknown key" in message and "[risk] api_key: unknown key" in message
    assert "s3cretpw" not in message


# --- data paths and the data window ------------------------------------------------------------------


def test_a_folder_in_data_paths_contributes_its_bar_files(tmp_path):
    bars = tmp_path / "bars"
    (bars / "nested").mkdir(parents=True)
    for name in ("SPY.csv.gz", "AAPL.csv.gz"):
        shutil.copy(DATA / name, bars / name)
    (bars / "notes.txt").write_text("not data")
    (bars / "nested" / "IBM.csv").write_text("not read: folders are not searched recursively")
    cfg = load_config(write(tmp_path, '[data]\npaths = ["bars"]\n'))
    assert [f.name for f in cfg.data_files()] == ["AAPL.csv.gz", "SPY.csv.gz"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"\[data\] paths: folder 'empty' holds no .csv, .csv.gz, .parquet file"):
        load_config(write(tmp_path, '[data]\npaths = ["empty"]\n')).data_files()


@pytest.mark.parametrize("text, expected", [
    ('[data]\nstart = "2300-01-01T00:00:00Z"\n', "[data] start = '2300-01-01T00:00:00Z': outside 1677-09-21"),
    ('[data]\nend = "1600-01-01T00:00:00Z"\n', "[data] end = '1600-01-01T00:00:00Z': outside 1677-09-21"),
    ('[data]\ntimeframe = "1000000d"\n', "[data] timeframe = '1000000d': bars 1,000,000 days long: the longest "
                                         "timeframe is 366d"),
], ids=["start-after-2262", "end-before-1677", "timeframe-1000000d"])
def test_times_tradingd_cannot_represent_are_clear_errors(tmp_path, text, expected):
    assert expected in config_error(write(tmp_path, text))


def test_a_strategy_allowed_to_short_under_a_long_only_risk_config_names_both_keys(tmp_path):
    path = write(tmp_path, '[strategy]\nname = "sma_cross"\n[strategy.params]\nallow_short = true\n'
                           '[risk]\nallow_short = false\n')
    message = config_error(path)
    assert ("[strategy.params] allow_short = true conflicts with [risk] allow_short = false: the risk engine "
            "would deny every short entry") in message
    message = config_error(None, {"strategy.params": {"allow_short": "true"}})
    assert "allow_short = true conflicts with [risk] allow_short = false (built-in default)" in message
    both = load_config(None, {"strategy.params": {"allow_short": "true"}, "risk.allow_short": True})
    assert both.strategy.params["allow_short"] is True
