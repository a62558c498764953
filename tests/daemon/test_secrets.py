"""The database password never shows: a password is planted in the URL (PostgreSQL on 127.0.0.1
trusts local connections, so any password opens it) and every command a user runs is searched for
it: stdout, stderr and log lines (DEBUG, JSON), every output file and every table of the state
database. The password may come from ``config.toml``, ``TRADINGD_DATABASE_URL`` or
``TRADINGD_DATABASE_PASSWORD``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from daemon.cli import app
from daemon.config import ENV_DATABASE_PASSWORD, ENV_DATABASE_URL
from tests.daemon.conftest import REPO_CONFIG, SPY, sqlite_url

PASSWORD = "Pl4nted:s3cret@pw"  # ':' and '@' must be percent-encoded in a URL: both forms are searched
FORMS = (PASSWORD, quote(PASSWORD, safe=""))


def with_password(url: str) -> str:
    user, at, rest = url.partition("@")
    assert at and ":" not in user.split("//", 1)[1], url
    return f"{user}:{quote(PASSWORD, safe='')}@{rest}"


def leaks(text: str) -> list[str]:
    return [form for form in FORMS if form in text]


def config_file(tmp: Path, url: str | None) -> Path:
    """The repo config with logging at DEBUG as JSON (the most output there is) and ``url``."""
    text = REPO_CONFIG.read_text().split("[state]")[0].replace(
        'paths = ["data/us_equity_1hour_adjusted/*.csv.gz"]', f'paths = ["{SPY}"]')
    state = f'[state]\ndatabase_url = "{url}"\n' if url else "[state]\n"
    path = tmp / "config.toml"
    path.write_text(text + state + '[logging]\nformat = "json"\nlevel = "DEBUG"\n[output]\ndir = "out"\n')
    return path


@pytest.fixture
def tradingd(tmp_path, monkeypatch):
    """``tradingd(*args, env=...)`` runs the CLI in-process in ``tmp_path`` (the environment's own
    TRADINGD_DATABASE_* variables removed) and returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: object, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        environ: dict[str, str | None] = {"COLUMNS": "200", ENV_DATABASE_URL: None, ENV_DATABASE_PASSWORD: None}
        result = runner.invoke(app, [str(a) for a in args], prog_name="tradingd", env={**environ, **(env or {})})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return invoke


def every_row(url: str) -> str:
    """Every row of every table in the schema ``url`` points at, as text."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            tables = conn.execute(sa.text("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = current_schema()")).scalars().all()
            assert {"runs", "orders", "fills"} <= set(tables), tables
            return "\n".join(str(row) for table in tables
                             for row in conn.execute(sa.text(f'SELECT t::text FROM "{table}" t')).all())
    finally:
        engine.dispose()


def run_everything(tradingd, tmp: Path, config: Path, env: dict[str, str] | None = None) -> str:
    """Run what a user runs against the configured database; return all they could see."""
    window = ("--start", "2019-01-01T00:00:00Z", "--end", "2019-04-01T00:00:00Z")
    outputs = []
    for args in (("check-config", "-c", config),
                 ("replay", "-c", config, *window, "--param", "fast=5", "--param", "slow=20", "--progress"),
                 ("halt", "-c", config, "--account", "acct", "--reason", "test"),
                 ("rearm", "-c", config, "--account", "acct", "--reason", "test"),
                 ("runs", "list", "-c", config)):
        code, stdout, stderr = tradingd(*args, env=env)
        assert code == 0, f"{args[0]}: {stderr[-3000:]}"
        outputs += [stdout, stderr]
    files = sorted((tmp / "out").iterdir())
    assert {"metrics.json", "trades.csv", "report.html"} <= {f.name for f in files}
    outputs += [f.read_text(errors="replace") for f in files]
    return "\n".join(outputs)


def test_a_password_in_config_toml_shows_nowhere(tradingd, tmp_path, postgres_url):
    url = with_password(postgres_url)
    seen = run_everything(tradingd, tmp_path, config_file(tmp_path, url))
    assert "postgresql+psycopg://postgres:***@127.0.0.1" in seen  # the database is named, masked
    assert leaks(seen) == []
    assert leaks(every_row(postgres_url)) == []


def test_a_password_from_the_environment_shows_nowhere(tradingd, tmp_path, postgres_url):
    env = {ENV_DATABASE_URL: postgres_url, ENV_DATABASE_PASSWORD: PASSWORD}
    seen = run_everything(tradingd, tmp_path, config_file(tmp_path, None), env)
    assert "postgresql+psycopg://postgres:***@127.0.0.1" in seen  # the password was used, and masked
    assert leaks(seen) == []
    assert leaks(every_row(postgres_url)) == []


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://trader:{pw}@127.0.0.1:1/tradingd",  # unreachable
    "mysql://trader:{pw}@db/tradingd",  # a backend the store cannot open
    "not a url :{pw}@",
], ids=["unreachable", "unsupported", "malformed"])
def test_errors_about_a_database_never_show_its_password(tradingd, tmp_path, url):
    bad = url.format(pw=quote(PASSWORD, safe=""))
    config = config_file(tmp_path, bad)
    commands = [("replay", "-c", config, "--no-progress"), ("replay", "--data", SPY, "--db", bad, "--no-progress"),
                ("halt", "--db", bad), ("halt", "-c", config)]
    if "127.0.0.1:1" not in bad:  # check-config validates the URL; it does not connect
        commands.append(("check-config", "-c", config))
    for args in commands:
        code, stdout, stderr = tradingd(*args)
        assert code == 2, (args, stdout, stderr)
        assert "error:" in stderr and leaks(stdout + stderr) == [], stderr


def test_config_errors_do_not_echo_values_of_unknown_keys(tradingd, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f'[state]\ndatabase_ur = "postgresql+psycopg://trader:{quote(PASSWORD, safe="")}@db/x"\n'
                    f'[alerts]\nslack_token = "{PASSWORD}"\n')
    code, stdout, stderr = tradingd("check-config", "-c", path)
    assert code == 2
    assert "[state] database_ur: unknown key" in stderr and "[alerts]: unknown section" in stderr
    assert leaks(stdout + stderr) == []


def test_the_run_id_and_config_hash_do_not_depend_on_the_database(tmp_path):
    from daemon.config import load_config

    one = load_config(REPO_CONFIG, {"state.database_url": sqlite_url(tmp_path / "a.db")})
    other = load_config(REPO_CONFIG, {"state.database_url": with_password("postgresql+psycopg://u@db/x")})
    assert one.config_hash() == other.config_hash()
