"""User strategies resolve alongside the built-ins (import path and entry points), and every way
of getting it wrong gives an error that says what and where."""

from __future__ import annotations

import pickle

import pytest

from daemon.config import ConfigError, load_config
from strategies.registry import (BUILTINS, StrategyConfigError, available_names, build_strategy,
                                 list_strategies, resolve_strategy)
from strategies.sma_cross import SmaCross


def test_builtins_resolve_by_name_and_by_import_path():
    assert resolve_strategy("sma_cross") is SmaCross
    assert resolve_strategy("strategies.sma_cross:SmaCross") is SmaCross


def test_an_import_path_builds_a_user_strategy_with_validated_params(user_dir):
    strategy = build_strategy("mystrats:BuyTheDip", {"drops": "2"})
    assert type(strategy).__module__ == "mystrats"
    assert strategy.params.drops == 2 and strategy.params.hold == 5
    assert strategy.strategy_id == "buy_the_dip"  # default name: the class name in snake_case
    assert pickle.loads(pickle.dumps(strategy)).params == strategy.params


def test_an_entry_point_resolves_by_its_name(user_dir):
    cls = resolve_strategy("buy_the_dip")
    assert cls is resolve_strategy("mystrats:BuyTheDip")
    assert {"bare", "broken_ep", "buy_the_dip", "sma_cross"} <= set(available_names())


def test_an_entry_point_cannot_shadow_a_builtin(user_dir):
    assert resolve_strategy("sma_cross") is SmaCross
    assert [e.name for e in list_strategies()].count("sma_cross") == 1


def test_listing_shows_builtins_then_entry_points_and_keeps_a_broken_one(user_dir):
    listed = list_strategies()
    names = [entry.name for entry in listed]
    assert names == sorted(BUILTINS) + ["bare", "broken_ep", "buy_the_dip"]
    by_name = {entry.name: entry for entry in listed}
    assert by_name["sma_cross"].source == "built-in"
    assert by_name["buy_the_dip"].source == "entry point mystrats:BuyTheDip (tradingd-user-example)"
    broken = by_name["broken_ep"]
    assert broken.strategy is None and "has no attribute 'Missing'" in broken.error


ERRORS = {
    "module not found": ("nosuch_mod_xyz:Foo", ["strategy 'nosuch_mod_xyz:Foo'", "module 'nosuch_mod_xyz' not found",
                                                 "PYTHONPATH"]),
    "package not found": ("nosuch_pkg_xyz.sub:Foo", ["module 'nosuch_pkg_xyz' not found"]),
    "attribute missing": ("mystrats:Nope", ["module 'mystrats' has no attribute 'Nope'",
                                            "strategies it defines: BuyTheDip, Exploding, LooseParams, NoOnBar"]),
    "a params model": ("mystrats:DipParams", ["DipParams is not a Strategy (it lacks on_bar and Params)",
                                              "subclass strategies.base.Strategy"]),
    "a function": ("mystrats:helper", ["is a function, not a Strategy class"]),
    "no on_bar": ("mystrats:NoOnBar", ["NoOnBar is not a Strategy: it does not implement on_bar(ctx, bar)"]),
    "params not frozen": ("mystrats:LooseParams", ["LooseParams.Params must be a frozen pydantic model"]),
    "import raises": ("raising:Anything", ["importing 'raising' raised ZeroDivisionError: division by zero"]),
    "its dependency is missing": ("needsdep:X", ["importing 'needsdep' raised ModuleNotFoundError",
                                                 "not_installed_dependency_xyz"]),
    "constructor raises": ("mystrats:Exploding", ["Exploding(...) raised RuntimeError: no licence key"]),
    "no class part": ("mystrats:", ["expected an import path module:Class, e.g. mypkg.module:MyStrategy"]),
    "unknown name": ("mystrats", ["unknown strategy 'mystrats'", "available: bare, broken_ep, buy_the_dip, online_ml",
                                  "or an import path such as mypkg.module:MyStrategy"]),
    "broken entry point": ("broken_ep", ["strategy 'broken_ep' (entry point mystrats:Missing (tradingd-user-example))",
                                         "has no attribute 'Missing'"]),
    "bad parameter": ("mystrats:BuyTheDip", ["strategy 'mystrats:BuyTheDip': invalid parameter(s): drops=0",
                                             "greater than or equal to 1"]),
}


@pytest.mark.parametrize("name, expected", ERRORS.values(), ids=ERRORS.keys())
def test_a_bad_strategy_reference_says_what_is_wrong(user_dir, name, expected):
    params = {"drops": 0} if name == "mystrats:BuyTheDip" else None
    with pytest.raises(StrategyConfigError) as failed:
        build_strategy(name, params)
    for fragment in expected:
        assert fragment in str(failed.value), f"{fragment!r} missing from {failed.value}"


def test_config_validates_and_canonicalises_a_user_strategy(user_dir):
    cfg = load_config(None, {"strategy.name": "mystrats:BuyTheDip", "strategy.params": {"hold": "7"}})
    assert cfg.strategy.name == "mystrats:BuyTheDip"
    assert cfg.strategy.params == {"drops": 3, "hold": 7}
    same = load_config(None, {"strategy.name": "mystrats:BuyTheDip", "strategy.params": {"hold": 7, "drops": 3}})
    assert same.config_hash() == cfg.config_hash()


def test_config_reports_a_broken_user_strategy_with_the_other_problems(user_dir, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[strategy]\nname = "raising:Anything"\n[risk]\nmax_drawdown = 1.5\n')
    with pytest.raises(ConfigError) as failed:
        load_config(path)
    message = str(failed.value)
    assert "[strategy] strategy 'raising:Anything': importing 'raising' raised ZeroDivisionError" in message
    assert "[risk] max_drawdown = 1.5" in message
