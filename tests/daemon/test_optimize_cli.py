"""``tradingd optimize`` as a user runs it: the output folder, a best.toml that ``tradingd replay``
accepts and that replays to the reported Sharpe, resuming by running the command again, the state
database on SQLite and PostgreSQL, Ctrl-C, and clear errors for bad input.

Each study is a few trials over SPY hourly bars of 2019 (real bundled data), databases in tmp_path
or a fresh PostgreSQL schema.
"""

from __future__ import annotations

import csv
import functools
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

from daemon.cli import app as tradingd
from daemon.config import load_config
from daemon.optimize_cli import toml_document
from research.optimize import open_study_storage
from strategies.sma_cross import SmaCross
from tests.daemon.conftest import REPO_CONFIG, SLICE, SPY, invoke, sqlite_url

SPACE = """
strategy = "sma_cross"
constraints = ["fast < slow"]
[params.fast]
type = "int"
low = 5
high = 10
step = 5
[params.slow]
type = "int"
low = 20
high = 40
step = 20
[timeframe]
type = "categorical"
choices = ["1h", "4h"]
"""


class StopOnce(SmaCross):
    """sma_cross that raises KeyboardInterrupt (as Ctrl-C does) the first time it runs with fast = 10."""

    name = "stop_once"
    armed = True

    def on_bar(self, ctx, bar):
        if StopOnce.armed and self.params.fast == 10:
            StopOnce.armed = False
            raise KeyboardInterrupt
        return super().on_bar(ctx, bar)


@pytest.fixture
def optimize() -> Callable[..., Any]:
    """``optimize(*args)`` runs ``tradingd optimize *args`` in-process, through the CLI as installed."""
    return functools.partial(invoke, "optimize")


def space_file(tmp_path: Path, text: str = SPACE) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


def study_args(tmp_path: Path, *extra: object, db: str | None = None, space: Path | None = None) -> list[object]:
    return ["-c", REPO_CONFIG, "--data", SPY, *SLICE, "--space", space or space_file(tmp_path), "--out",
            tmp_path / "out", "--db", db or sqlite_url(tmp_path / "state.db"), "--min-trades", 3, "--no-progress",
            *extra]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summary(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "summary.json").read_text())


def test_help_lists_the_options_with_their_defaults(optimize):
    result = optimize("--help")
    assert result.exit_code == 0
    for option in ("--space", "--method", "--trials", "--objective", "--jobs", "--seed", "--min-trades",
                   "--max-drawdown", "--min-win-rate", "--study-name", "--db", "--prune", "--cache", "--out"):
        assert option in result.stdout
    assert "grid, random, lhs, sobol" in result.stdout and "[state] database_url" in result.stdout


def test_a_grid_study_writes_its_outputs_and_best_toml_replays_to_the_reported_sharpe(optimize, tmp_path):
    result = optimize(*study_args(tmp_path, "--method", "grid"))
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["best.toml", "report.html", "report.pdf", "statistics.json",
                                                     "summary.json", "summary.txt", "trials.csv"]
    rows = read_csv(out / "trials.csv")
    assert len(rows) == 2 * 2 * 2 and {r["status"] for r in rows} == {"complete"}
    assert {"params.fast", "params.slow", "timeframe", "sharpe", "total_return", "max_drawdown", "win_rate",
            "trades", "status", "state", "reason"} <= set(rows[0])
    assert {r["state"] for r in rows} == {"complete"}
    text = (out / "summary.txt").read_text()
    assert text.startswith("optimization summary\n")
    for label in ("period", "trials", "metric", "runtime"):
        assert f"  {label} " in text
    for section in ("\nsensitivity of sharpe", "\noverfitting\n", "\nrecommended configuration", "\nimplementation notes"):
        assert section in text
    statistics = json.loads((out / "statistics.json").read_text())
    assert 0.0 <= statistics["pbo"] <= 1.0 and 0.0 <= statistics["dsr"] <= 1.0
    top = text.split("\ntop 10\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert top[0].split()[:7] == ["rank", "trial", "sharpe", "return", "max", "dd", "win"]
    assert len(top) == 1 + 8 and "fast=" in top[1]
    best = summary(tmp_path)["best"]
    assert best["metrics"]["sharpe"] == max(float(r["sharpe"]) for r in rows)
    assert f"{best['metrics']['sharpe']:.2f}" in top[1]

    best_toml = out / "best.toml"
    config = tomllib.loads(best_toml.read_text())
    assert config["strategy"]["params"]["fast"] == best["params"]["params.fast"]
    assert config["data"]["timeframe"] == best["params"]["timeframe"]
    assert load_config(best_toml).strategy.params["slow"] == best["params"]["params.slow"]
    replayed = CliRunner().invoke(tradingd, ["replay", "--config", str(best_toml), "--out", str(tmp_path / "replay"),
                                             "--db", sqlite_url(tmp_path / "replay.db"), "--no-progress", "--no-report"])
    assert replayed.exit_code == 0, replayed.output
    metrics = json.loads((tmp_path / "replay" / "metrics.json").read_text())["strategy"]
    for key in ("sharpe", "total_return", "max_drawdown", "win_rate", "trades"):
        assert metrics[key] == best["metrics"][key], key


def test_running_the_same_command_again_resumes_the_study(optimize, tmp_path):
    first = optimize(*study_args(tmp_path, "--method", "random", "--trials", 3, "--seed", 4))
    assert first.exit_code == 0, first.output
    name = summary(tmp_path)["study"]
    again = optimize(*study_args(tmp_path, "--method", "random", "--trials", 5))
    assert again.exit_code == 0, again.output
    trials = summary(tmp_path)["trials"]
    assert summary(tmp_path)["study"] == name and trials["new"] == 2 and trials["counted"] == 5
    assert summary(tmp_path)["seed"] == 4
    done = optimize(*study_args(tmp_path, "--method", "random", "--trials", 5))
    assert done.exit_code == 0 and summary(tmp_path)["trials"]["new"] == 0 and summary(tmp_path)["trials"]["replays"] == 0


def test_the_study_lives_in_the_postgresql_state_database_next_to_the_runs(optimize, tmp_path, postgres_url):
    result = optimize(*study_args(tmp_path, "--method", "grid", "--trials", 2, db=postgres_url))
    assert result.exit_code == 0, result.output
    assert summary(tmp_path)["trials"]["complete"] == 2
    # the state store still opens and replays write to the same database
    replayed = CliRunner().invoke(tradingd, ["replay", "--config", str(tmp_path / "out" / "best.toml"), "--out",
                                             str(tmp_path / "replay"), "--db", postgres_url, "--no-progress",
                                             "--no-report"])
    assert replayed.exit_code == 0, replayed.output
    study = optuna.load_study(study_name=summary(tmp_path)["study"], storage=open_study_storage(postgres_url))
    assert len(study.trials) == 2
    again = optimize(*study_args(tmp_path, "--method", "grid", "--trials", 3, db=postgres_url))
    assert again.exit_code == 0 and summary(tmp_path)["trials"]["new"] == 1


def test_ctrl_c_exits_130_keeping_the_study_and_the_same_command_finishes_it(optimize, tmp_path):
    StopOnce.armed = True
    space = space_file(tmp_path, SPACE.replace('strategy = "sma_cross"', f'strategy = "{__name__}:StopOnce"'))
    result = optimize(*study_args(tmp_path, "--method", "grid", space=space))
    assert result.exit_code == 130
    assert "interrupted" in result.stderr and "--study-name" in result.stderr
    assert summary(tmp_path)["interrupted"] is True
    assert "interrupted" in {r["status"] for r in read_csv(tmp_path / "out" / "trials.csv")}
    again = optimize(*study_args(tmp_path, "--method", "grid", space=space))
    assert again.exit_code == 0, again.output
    assert summary(tmp_path)["trials"]["complete"] == 8


def test_no_trial_passing_the_filters_means_no_best_toml_and_a_warning(optimize, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "best.toml").write_text("# from an earlier study\n")
    result = optimize(*study_args(tmp_path, "--method", "grid", "--trials", 2, "--min-trades", 100000))
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out" / "best.toml").exists()
    assert "no trial passed the filters" in result.stderr
    assert {r["status"] for r in read_csv(tmp_path / "out" / "trials.csv")} == {"filtered"}


def test_a_grid_above_a_thousand_combinations_warns(optimize, tmp_path):
    big = SPACE.replace("high = 10\nstep = 5", "high = 40\nstep = 1").replace("high = 40\nstep = 20", "high = 80\nstep = 1")
    result = optimize(*study_args(tmp_path, "--method", "grid", "--trials", 1, space=space_file(tmp_path, big)))
    assert result.exit_code == 0, result.output
    assert "combinations" in result.stderr and "consider --method random, lhs or tpe" in result.stderr


@pytest.mark.parametrize("extra, space, message", [
    (("--method", "annealing"), SPACE, "unknown method 'annealing'"),
    (("--objective", "alpha"), SPACE, "unknown objective 'alpha'"),
    (("--jobs", 0), SPACE, "jobs 0: must be 1 or more"),
    (("--max-drawdown", 2), SPACE, "max drawdown 2.0: must be a fraction"),
    (("--method", "grid"), SPACE.replace('type = "int"\nlow = 5', 'type = "float"\nlow = 5'),
     "type = \"float\", but fast is an integer"),
    ((), SPACE.replace("[params.slow]", "[params.slwo]"), r"\[params.slwo\]: unknown parameter of sma_cross"),
    ((), SPACE.replace("fast < slow", "fast <"), "constraint 'fast <'"),
    (("--strategy", "rsi_momentum"), SPACE, "the space is for strategy 'sma_cross', but the run's strategy is"),
    ((), SPACE.replace('["1h", "4h"]', '["30min"]'), "timeframe '30min' of the search space: .*shorter than the spacing"),
])
def test_bad_input_exits_2_with_a_message_naming_it(optimize, tmp_path, extra, space, message):
    import re

    result = optimize(*study_args(tmp_path, *extra, space=space_file(tmp_path, space)))
    assert result.exit_code == 2, result.output
    assert re.search(message, " ".join(result.stderr.split())), result.stderr
    assert not (tmp_path / "out" / "summary.json").exists()


def test_a_missing_space_file_is_named(optimize, tmp_path):
    result = optimize(*study_args(tmp_path, space=tmp_path / "nope.toml"))
    assert result.exit_code == 2 and "space file not found" in result.stderr


def test_toml_document_round_trips_config_values():
    from datetime import datetime, timezone

    table: dict[str, Any] = {"strategy": {"name": "x", "params": {"a": 1, "b": 0.015, "c": True, "d": "q\"uote", "e": [1, 2]}},
             "data": {"start": datetime(2019, 1, 1, tzinfo=timezone.utc), "end": None, "paths": ["/a b/c.csv"]},
             "fill": {"calendars": {"BTC-USD": "24/7"}}, "weird key": {"x.y": 1e-05}}
    back = tomllib.loads(toml_document(table))
    assert back["strategy"] == table["strategy"]
    assert back["data"] == {"start": table["data"]["start"], "paths": ["/a b/c.csv"]}
    assert back["fill"] == table["fill"] and back["weird key"] == {"x.y": 1e-05}
