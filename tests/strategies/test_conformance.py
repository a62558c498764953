"""The shipped conformance suite (strategies.checks) run over every registered strategy, built-in
and user-written, on real bars; and the built-ins' own parameters and exit sizing."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backtest.sources import load_bars
from strategies.check_bars import default_check_bars
from strategies.checks import CHECKS, StrategyCheckFailed, check_strategy, run_check
from strategies.registry import BUILTINS, StrategyConfigError, build_strategy, list_strategies
from strategies.rsi_momentum import RsiMomentum, RsiMomentumParams
from strategies.sma_cross import SmaCross, SmaCrossParams
from tests.strategies.conftest import series_bars
from tests.support import DATA, STRATEGY_PARAMS


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_passes_every_check_on_real_bars(name, check, spy_bars):
    run_check(check, BUILTINS[name], spy_bars)


def test_every_registered_strategy_passes_including_entry_points_and_import_paths(user_dir, spy_bars):
    listed = {entry.name: entry for entry in list_strategies()}
    assert {"buy_the_dip", "bare", "sma_cross", "rsi_momentum", "online_ml"} <= set(listed)
    checked = []
    for name, entry in sorted(listed.items()):
        if entry.strategy is None:
            assert name == "broken_ep"  # listed with its error, nothing to check
            continue
        assert check_strategy(entry.strategy, spy_bars) == list(CHECKS)
        checked.append(name)
    assert check_strategy("mystrats:BuyTheDip", spy_bars) == list(CHECKS)
    assert checked == ["bare", "buy_the_dip", "online_ml", "rsi_momentum", "sma_cross"]


def test_an_instance_is_checked_on_copies_and_left_untouched(spy_bars):
    strategy = build_strategy("rsi_momentum", STRATEGY_PARAMS["rsi_momentum"])
    check_strategy(strategy, spy_bars)
    assert strategy._states == {}  # every check ran on a deep copy


def test_default_check_bars_are_the_loaders_real_spy_bars():
    loaded = load_bars(DATA / "SPY.csv.gz", start=datetime(2018, 1, 1, tzinfo=timezone.utc))
    assert default_check_bars() == series_bars(loaded, 1500)
    assert check_strategy(SmaCross) == list(CHECKS)  # bars=None uses them


def test_other_real_bars_can_be_passed(two_symbols):
    aapl = series_bars(two_symbols[1])
    assert aapl[0].symbol == "AAPL"
    assert check_strategy(SmaCross, aapl) == list(CHECKS)


def test_too_few_bars_are_refused(spy_bars):
    with pytest.raises(ValueError, match="at least 10 bars"):
        check_strategy(SmaCross, spy_bars[:3])


# --- parameters each strategy declares --------------------------------------------------------


def test_test_parameters_come_from_the_strategies_so_a_new_one_cannot_be_missing():
    assert set(STRATEGY_PARAMS) == set(BUILTINS)
    for name, cls in BUILTINS.items():
        assert STRATEGY_PARAMS[name] == cls.check_params()
        build_strategy(name, cls.check_params())  # valid


class Plain(SmaCross):
    """SMA cross under another name, with the base's check_params (module level: it must pickle)."""

    @classmethod
    def check_params(cls):
        return super(SmaCross, cls).check_params()  # the base's: {}


def test_a_strategy_without_check_params_is_checked_with_its_defaults(spy_bars):
    assert Plain.check_params() == {} and Plain.name == "plain"
    assert check_strategy(Plain, spy_bars) == list(CHECKS)


def test_invalid_check_params_fail_declares_needs(spy_bars):
    class Wrong(SmaCross):
        @classmethod
        def check_params(cls):
            return {"fast": 50, "slow": 10}

    with pytest.raises(StrategyCheckFailed, match="must be smaller than slow") as failed:
        check_strategy(Wrong, spy_bars)
    assert failed.value.check == "declares_needs"


def test_builtins_declare_what_they_need():
    for name, cls in BUILTINS.items():
        strategy = cls(cls.Params.model_validate(cls.check_params()))
        assert strategy.strategy_id == name
        assert strategy.uses_learner is (name == "online_ml")
        with pytest.raises(Exception, match="frozen"):
            setattr(strategy.params, next(iter(cls.Params.model_fields)), 1)


# --- exits never overshoot while entries are still filling (issue 5, B1 and B2) ----------------


@pytest.mark.parametrize("params", [
    {"rsi_min": 50, "rsi_max": 80, "trend_period": 30, "stop_loss": 0.002, "trailing_stop": 0.002,
     "profit_target": 0.003},
    {"rsi_min": 40, "rsi_max": 90, "trend_period": 10, "stop_loss": 0.001, "trailing_stop": 0.001,
     "profit_target": 0.002, "max_holding_bars": 2},
], ids=["tight-stops", "tighter"])
def test_rsi_momentum_exits_only_what_working_exits_leave_open(params, spy_bars):
    # Entries fill over four bars in the check book, so stops fire while an entry is still
    # filling and an earlier exit is working; closing the whole position again would go short.
    run_check("reduce_only_reduces", RsiMomentum(RsiMomentumParams(**params)), spy_bars)


@pytest.mark.parametrize("params", [{"fast": 2, "slow": 5}, {"fast": 2, "slow": 5, "allow_short": True},
                                    {"fast": 3, "slow": 8, "allow_short": True}])
def test_sma_cross_never_closes_more_than_it_holds_on_fast_crosses(params, spy_bars):
    # position + pending counted the unfilled part of an entry as closable
    assert check_strategy(SmaCross(SmaCrossParams(**params)), spy_bars) == list(CHECKS)


def test_unknown_strategy_and_bad_params_are_named():
    with pytest.raises(StrategyConfigError, match="available: online_ml, rsi_momentum, sma_cross"):
        build_strategy("nope")
    with pytest.raises(StrategyConfigError, match=r"fast \(30\) must be smaller than slow \(10\)"):
        build_strategy("sma_cross", {"fast": 30, "slow": 10})
    with pytest.raises(StrategyConfigError, match="fast='abc'"):
        build_strategy("sma_cross", {"fast": "abc"})
    with pytest.raises(StrategyConfigError, match="parameters of 'sma_cross': fast, slow, allow_short"):
        build_strategy("sma_cross", {"fastt": 3})
