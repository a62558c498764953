"""``tradingd walkforward`` as a user runs it: the output folder, a best.toml that ``tradingd replay``
accepts and that replays to the final window's reported Sharpe, resuming by running the command
again, the studies in the SQLite or PostgreSQL state database, and clear errors for bad input.

Each run is a 4-point sma_cross grid per window over SPY hourly bars 2016-2018 (real bundled data):
1-year training and 6-month test windows, 4 folds; databases in tmp_path or a fresh PostgreSQL schema.
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
from research.optimize import open_study_storage
from tests.daemon.conftest import REPO_CONFIG, SPY, invoke, sqlite_url

SPACE = """
strategy = "sma_cross"
[params.fast]
type = "int"
low = 10
high = 20
step = 10
[params.slow]
type = "int"
low = 50
high = 100
step = 50
"""
WINDOW = ("--start", "2016-01-01T00:00:00Z", "--end", "2019-01-01T00:00:00Z")


@pytest.fixture
def walkforward() -> Callable[..., Any]:
    """``walkforward(*args)`` runs ``tradingd walkforward *args`` in-process, through the CLI as installed."""
    return functools.partial(invoke, "walkforward")


def args(tmp_path: Path, *extra: object, db: str | None = None) -> list[object]:
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    return ["-c", REPO_CONFIG, "--data", SPY, *WINDOW, "--space", space, "--method", "grid", "--train", "1y",
            "--test", "6m", "--out", tmp_path / "out", "--db", db or sqlite_url(tmp_path / "state.db"),
            "--min-trades", 3, *extra]


def test_help_lists_the_options(walkforward):
    result = walkforward("--help")
    assert result.exit_code == 0
    for option in ("--strategy", "--space", "--method", "--trials", "--objective", "--train", "--test", "--step",
                   "--anchored", "--regime-aware", "--compare-steps", "--out", "--jobs", "--config", "--seed",
                   "--db", "--benchmark"):
        assert option in result.stdout, option
    assert "[state] database_url" in result.stdout


def test_a_walk_forward_writes_its_outputs_and_best_toml_replays_the_final_window(walkforward, tmp_path):
    result = walkforward(*args(tmp_path, "--compare-steps", "3m,6m", "--regime-aware"))
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["best.toml", "folds.csv", "oos_equity.csv", "report.html",
                                                     "report.pdf", "summary.txt", "walkforward.json"]
    html = (out / "report.html").read_text()
    assert "Walk-forward" in html or "walk-forward" in html
    rows = list(csv.DictReader((out / "folds.csv").open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert all(r["oos_start"] == r["is_end"] for r in rows)
    report = json.loads((out / "walkforward.json").read_text())
    assert [s["step"] for s in report["step_comparison"]] == ["3m", "6m"] and report["regime"]["symbol"] == "SPY"
    assert "fold 4/4" in result.stderr and "walk-forward efficiency" in result.stdout

    best = report["final"]["best"]
    config = tomllib.loads((out / "best.toml").read_text())
    assert config["strategy"]["params"]["fast"] == best["params"]["params.fast"]
    assert config["strategy"]["params"]["slow"] == best["params"]["params.slow"]
    assert config["data"]["start"].isoformat().startswith(report["final"]["window"][0][:10])
    replayed = CliRunner().invoke(tradingd, ["replay", "--config", str(out / "best.toml"), "--out",
                                             str(tmp_path / "replay"), "--db", sqlite_url(tmp_path / "replay.db"),
                                             "--no-progress", "--no-report"])
    assert replayed.exit_code == 0, replayed.output
    metrics = json.loads((tmp_path / "replay" / "metrics.json").read_text())["strategy"]
    assert metrics["sharpe"] == pytest.approx(best["metrics"]["sharpe"], rel=1e-9)


def test_running_the_same_command_again_resumes_every_study(walkforward, tmp_path):
    assert walkforward(*args(tmp_path, "--no-statistics")).exit_code == 0
    first = (tmp_path / "out" / "folds.csv").read_text()
    storage = open_study_storage(sqlite_url(tmp_path / "state.db"))
    studies = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    assert walkforward(*args(tmp_path, "--no-statistics")).exit_code == 0
    assert {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)} == studies
    assert (tmp_path / "out" / "folds.csv").read_text() == first
    assert len([n for n in studies if n.startswith("sma_cross-grid-")]) == 5  # 4 folds and the final window


def test_the_studies_live_in_the_postgresql_state_database(walkforward, tmp_path, postgres_url):
    result = walkforward(*args(tmp_path, "--no-statistics", db=postgres_url))
    assert result.exit_code == 0, result.output
    names = [s.study_name for s in optuna.get_all_study_summaries(open_study_storage(postgres_url))]
    assert sum(n.startswith("sma_cross-grid-") for n in names) == 5


def test_no_set_passing_the_filters_means_every_fold_in_cash_and_no_best_toml(walkforward, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "best.toml").write_text("# from an earlier run\n")
    result = walkforward(*args(tmp_path, "--no-statistics", "--min-trades", 10_000))
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out" / "best.toml").exists() and "no best.toml written" in result.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "folds.csv").open()))
    assert {r["status"] for r in rows} == {"no_ranked_trial"}


@pytest.mark.parametrize("extra, message", [
    (("--train", "2 years"), "--train: period '2 years'"),
    (("--step", "9m"), "step 9m is longer than test 6m"),
    (("--train", "10y"), "too short for a training window of 10y"),
    (("--compare-steps", "1m,x"), "--compare-steps: period 'x'"),
    (("--benchmark", "QQQ"), "benchmark 'QQQ': not a symbol of the data"),
    (("--regime-aware", "--regime-symbol", "QQQ"), "regime symbol 'QQQ' is not in the data"),
    (("--objective", "luck"), "unknown objective 'luck'"),
    (("--jobs", 0), "--jobs 0: must be 1 or more"),
])
def test_bad_input_exits_2_with_a_message_naming_it(walkforward, tmp_path, extra, message):
    result = walkforward(*args(tmp_path, *extra))
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())


def test_an_output_path_that_is_a_file_is_refused_before_any_study(walkforward, tmp_path):
    (tmp_path / "out").write_text("not a folder")
    result = walkforward(*args(tmp_path))
    assert result.exit_code == 2 and "exists and is a file" in result.stderr
    assert not (tmp_path / "state.db").exists() or not optuna.get_all_study_summaries(
        open_study_storage(sqlite_url(tmp_path / "state.db")))
