"""Search-space files as a user writes them: the shipped examples, grid counts, constraints (a parser,
never eval), what a point changes in a run, and a clear error naming the key for every mistake."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from backtest.spec import RunSpec
from research.search_space import (Dimension, SpaceError, TrialSetupError, load_space, parse_constraint,
                                   parse_space)
from risk.config import RiskConfig
from strategies.registry import BUILTINS
from strategies.rsi_momentum import RsiMomentumParams

SPACES = Path(__file__).resolve().parents[2] / "spaces"
NAMES = {"fast": "params.fast", "slow": "params.slow", "timeframe": "timeframe",
         "risk.max_open_positions": "risk.max_open_positions"}


def int_dim(low: int, high: int, step: int | None = None, **extra: object) -> dict[str, object]:
    spec: dict[str, object] = {"type": "int", "low": low, "high": high, **extra}
    if step is not None:
        spec["step"] = step
    return spec


def sma_space(**extra: object) -> dict[str, object]:
    return {"params": {"fast": int_dim(5, 20, 5), "slow": int_dim(20, 40, 10)}, **extra}


# --- the shipped examples ------------------------------------------------------------------------------

def test_every_builtin_strategy_has_an_example_space_that_validates():
    for name in BUILTINS:
        space = load_space(SPACES / f"{name}.toml")
        assert space.strategy == name
        assert space.dimensions, name


def test_rsi_momentum_example_covers_its_entry_band_exits_holding_period_and_risk():
    space = load_space(SPACES / "rsi_momentum.toml")
    wanted = {"params.rsi_min", "params.rsi_max", "params.profit_target", "params.stop_loss",
              "params.trailing_stop", "params.max_holding_bars", "risk.risk_per_trade", "risk.max_open_positions"}
    assert wanted <= set(space.keys)
    assert {k.split(".", 1)[1] for k in space.keys if k.startswith("params.")} <= set(RsiMomentumParams.model_fields)
    assert space.fixed["risk.sizing"] == "risk_per_trade"  # so risk_per_trade actually sizes entries
    log_scaled = {d.key for d in space.dimensions if d.log}
    assert "risk.risk_per_trade" in log_scaled


def test_sma_cross_example_counts_its_grid_and_the_constraint_removes_close_pairs():
    space = load_space(SPACES / "sma_cross.toml")
    assert space.grid_size() == 10 * 8 * 3
    valid = [p for p in space.grid() if not space.violations(p)]
    expected = sum(1 for f, s in itertools.product(range(10, 101, 10), range(50, 401, 50)) if 2 * f <= s) * 3
    assert len(valid) == expected
    assert all(2 * p["params.fast"] <= p["params.slow"] for p in valid)
    assert {p["timeframe"] for p in valid} == {"1h", "4h", "1d"}


# --- grid, points and runs -----------------------------------------------------------------------------

def test_grid_lists_every_combination_in_order_with_float_steps_exact():
    space = parse_space({"params": {"fast": int_dim(5, 10, 5)},
                         "risk": {"risk_per_trade": {"type": "float", "low": 0.01, "high": 0.02, "step": 0.005}}},
                        strategy="sma_cross")
    assert list(space.grid()) == [{"params.fast": f, "risk.risk_per_trade": r}
                                  for f in (5, 10) for r in (0.01, 0.015, 0.02)]


def test_a_continuous_float_cannot_be_gridded():
    space = parse_space({"risk": {"risk_per_trade": {"type": "float", "low": 0.01, "high": 0.02}}},
                        strategy="sma_cross")
    with pytest.raises(SpaceError, match=r"\[risk.risk_per_trade\].*step"):
        space.grid_size()


def test_latin_hypercube_mapping_stays_in_range_on_the_step_and_log_scale():
    fast = Dimension("params.fast", "int", 5, 50, 5)
    log = Dimension("risk.risk_per_trade", "float", 0.001, 0.1, log=True)
    units = [i / 100 for i in range(100)] + [0.999999]
    assert {fast.from_unit(u) for u in units} == set(range(5, 51, 5))
    values = [log.from_unit(u) for u in units]
    assert min(values) == pytest.approx(0.001) and max(values) < 0.1
    assert log.from_unit(0.5) == pytest.approx(0.01)  # the log-midpoint


def test_apply_sets_params_risk_fill_and_timeframe_on_the_base_run():
    space = parse_space({"params": {"fast": int_dim(5, 10, 5)}, "risk": {"max_open_positions": int_dim(1, 3)},
                         "fill": {"slippage_bps": {"type": "float", "low": 0.0, "high": 5.0}},
                         "timeframe": {"type": "categorical", "choices": ["1h", "4h"]},
                         "fixed": {"risk": {"sizing": "risk_per_trade"}}}, strategy="sma_cross")
    base = RunSpec(strategy="sma_cross", params={"slow": 40}, risk=RiskConfig(max_drawdown=0.15))
    setup = space.apply(base, {"params.fast": 10, "risk.max_open_positions": 2, "fill.slippage_bps": 3.5,
                               "timeframe": "4h"})
    assert setup.timeframe == "4h"
    assert setup.spec.params == {"slow": 40, "fast": 10}
    assert (setup.spec.risk.max_open_positions, setup.spec.risk.sizing, setup.spec.risk.max_drawdown) == (
        2, "risk_per_trade", 0.15)
    assert setup.spec.fill.slippage_bps == 3.5
    assert base.risk.max_open_positions == 10  # the base run is not changed


def test_apply_refuses_a_point_the_risk_model_refuses_naming_the_key():
    space = parse_space({"risk": {"loss_cooldown": {"type": "categorical", "choices": ["1d", "12h"]}}},
                        strategy="sma_cross")
    with pytest.raises(TrialSetupError, match="loss_cooldown"):
        space.apply(RunSpec(), {"risk.loss_cooldown": "soon"})


# --- constraints ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, values, holds", [
    ("fast < slow", {"params.fast": 5, "params.slow": 20}, True),
    ("fast < slow", {"params.fast": 20, "params.slow": 20}, False),
    ("5 <= fast < slow <= 40", {"params.fast": 5, "params.slow": 40}, True),
    ("5 <= fast < slow <= 40", {"params.fast": 4, "params.slow": 40}, False),
    ("fast * 2 + 1 <= slow - 3", {"params.fast": 8, "params.slow": 20}, True),
    ("fast * 2 + 1 <= slow - 3", {"params.fast": 9, "params.slow": 20}, False),
    ("-fast < 0 and not fast > 10", {"params.fast": 7}, True),
    ("fast > 10 or timeframe == '1d'", {"params.fast": 7, "timeframe": "1d"}, True),
    ("fast > 10 or timeframe == \"1d\"", {"params.fast": 7, "timeframe": "4h"}, False),
    ("(fast + 1) * 2 == 12", {"params.fast": 5}, True),
    ("fast % 5 == 0 and risk.max_open_positions != 3", {"params.fast": 15, "risk.max_open_positions": 2}, True),
])
def test_constraint_expressions_follow_arithmetic_and_comparison_rules(text, values, holds):
    assert parse_constraint(text, NAMES).holds(values) is holds


@pytest.mark.parametrize("text, message", [
    ("fast <", "expected a number, a name or '\\('"),
    ("fast < slow)", "expected an operator or the end"),
    ("(fast < slow", "expected '\\)'"),
    ("fast + slow", "not a condition"),
    ("fast < slwo", "unknown name 'slwo'"),
    ("__import__('os').system('true') == 0", "unexpected character '\\.' at position 16"),
    ("abs(fast) < 3", "expected an operator or the end, found '\\(' at position 3"),
    ("fast < slow; 1", "unexpected character ';'"),
    ("", "empty"),
])
def test_a_bad_constraint_is_refused_with_what_and_where(text, message):
    with pytest.raises(SpaceError, match=message):
        parse_constraint(text, NAMES)


def test_a_constraint_that_cannot_be_computed_says_which_values():
    constraint = parse_constraint("slow / fast > 2", NAMES)
    with pytest.raises(SpaceError, match="params.fast=0"):
        constraint.holds({"params.fast": 0, "params.slow": 10})


def test_constraints_read_fixed_and_base_values_for_names_not_searched():
    space = parse_space({"params": {"fast": int_dim(10, 50, 10)}, "constraints": ["fast < slow"]},
                        strategy="sma_cross")
    base = RunSpec(strategy="sma_cross", params={"slow": 30})
    assert [p["params.fast"] for p in space.grid() if not space.violations(p, base)] == [10, 20]
    # without a base value the strategy's default (slow = 30) applies
    assert [p["params.fast"] for p in space.grid() if not space.violations(p)] == [10, 20]


# --- mistakes, each named ------------------------------------------------------------------------------

@pytest.mark.parametrize("table, message", [
    ({"params": {"fsat": int_dim(1, 5)}}, r"\[params.fsat\]: unknown parameter of sma_cross 'fsat'; known: fast, slow"),
    ({"risk": {"max_positions": int_dim(1, 5)}}, r"\[risk.max_positions\]: unknown \[risk\] key.*max_open_positions"),
    ({"fill": {"slipage_bps": int_dim(1, 5)}}, r"\[fill.slipage_bps\]: unknown \[fill\] key"),
    ({"params": {"fast": {"low": 1, "high": 5}}}, r"\[params.fast\]: type = None: must be one of int, float"),
    ({"params": {"fast": int_dim(50, 5)}}, r"\[params.fast\]: low = 50 must be below high = 5"),
    ({"params": {"fast": int_dim(5, 52, 5)}}, r"\[params.fast\]: high = 52 is not low \+ a whole number of steps"),
    ({"params": {"fast": int_dim(5, 50, 0)}}, r"\[params.fast\]: step = 0: must be a positive integer"),
    ({"params": {"fast": {"type": "float", "low": 5, "high": 50}}}, r"\[params.fast\]: type = \"float\", but fast is an integer"),
    ({"params": {"fast": int_dim(0, 50)}}, r"\[params.fast\]: low 0: .*greater than or equal to 1"),
    ({"params": {"fast": int_dim(5, 50, 5, log=True)}}, r"\[params.fast\]: log = true cannot be combined with step = 5"),
    ({"params": {"fast": int_dim(5, 50, scale="log")}}, r"\[params.fast\]: unknown key 'scale' for type 'int'"),
    ({"params": {"fast": {"type": "int", "low": 5.5, "high": 9}}}, r"\[params.fast\]: low = 5.5: must be an integer"),
    ({"risk": {"risk_per_trade": {"type": "float", "low": 0.0, "high": 0.02, "log": True}}},
     r"\[risk.risk_per_trade\]: log = true needs low > 0"),
    ({"risk": {"risk_per_trade": {"type": "float", "low": 0.0, "high": 0.02}}},
     r"\[risk.risk_per_trade\]: low 0.0: Input should be greater than 0"),
    ({"risk": {"sizing": {"type": "categorical", "choices": ["fixed_fraction", "kelly"]}}},
     r"\[risk.sizing\]: choice 'kelly'"),
    ({"risk": {"sizing": {"type": "categorical", "choices": []}}}, r"\[risk.sizing\]: choices must be a non-empty list"),
    ({"timeframe": {"type": "categorical", "choices": ["1h", "1 week"]}}, r"\[timeframe\]: choice: invalid timeframe '1 week'"),
    ({"timeframe": int_dim(1, 4)}, r"\[timeframe\]: type must be \"categorical\""),
    ({"params": {"fast": int_dim(5, 10)}, "fixed": {"params": {"fast": 5}}}, r"\[params.fast\] is both searched and in \[fixed\]"),
    ({"params": {"fast": int_dim(5, 10)}, "fixed": {"signals": {"x": 1}}}, r"\[fixed\] signals: unknown section"),
    ({"params": {"fast": int_dim(5, 10)}, "constraint": ["fast < slow"]}, r"unknown key 'constraint'; allowed: strategy, constraints"),
    ({"params": {"fast": int_dim(5, 10)}, "constraints": "fast < slow"}, r"constraints must be a list of strings"),
    ({"params": {"fast": int_dim(5, 10)}, "constraints": ["fast << slow"]}, r"constraint 'fast << slow'"),
    ({}, r"no parameter to search"),
    ({"strategy": "rsi_momentum", "params": {"fast": int_dim(5, 10)}}, r"the space is for strategy 'rsi_momentum', but the run's strategy is 'sma_cross'"),
])
def test_every_mistake_in_a_space_is_an_error_naming_the_file_and_key(table, message):
    with pytest.raises(SpaceError, match=message) as caught:
        parse_space(table, strategy="sma_cross", source="space.toml")
    assert str(caught.value).startswith("space.toml: ")


def test_a_space_without_a_strategy_anywhere_is_refused():
    with pytest.raises(SpaceError, match="no strategy"):
        parse_space(sma_space())


def test_an_unknown_strategy_is_named():
    with pytest.raises(SpaceError, match="unknown strategy 'sma_crosss'"):
        parse_space(sma_space(strategy="sma_crosss"))


def test_space_files_that_are_missing_or_not_toml_are_named(tmp_path):
    with pytest.raises(SpaceError, match="space file not found"):
        load_space(tmp_path / "nope.toml", "sma_cross")
    bad = tmp_path / "bad.toml"
    bad.write_text("[params.fast\ntype = 'int'\n")
    with pytest.raises(SpaceError, match=f"{bad}: invalid TOML"):
        load_space(bad, "sma_cross")


def test_fingerprint_changes_with_the_space_and_not_with_key_order():
    a = parse_space(sma_space(), strategy="sma_cross")
    b = parse_space({"params": {"slow": int_dim(20, 40, 10), "fast": int_dim(5, 20, 5)}}, strategy="sma_cross")
    c = parse_space(sma_space(constraints=["fast < slow"]), strategy="sma_cross")
    assert a.fingerprint() != c.fingerprint()
    assert len(a.fingerprint()) == 64 and a.grid_size() == b.grid_size() == 4 * 3
    assert math.prod(len(d.grid_values()) for d in b.dimensions) == 12
