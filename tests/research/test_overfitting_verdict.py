"""research.overfitting_verdict: flags, the 0-100 score and its parts, computed by hand."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from research.overfitting_verdict import (
    REMEDIES,
    VerdictThresholds,
    metric_degradation,
    overfitting_verdict,
)

ROBUST_IS = {"sharpe": 1.5, "cagr": 0.12, "max_drawdown": 0.10}
ROBUST_OOS = {"sharpe": 1.4, "cagr": 0.11, "max_drawdown": 0.11}


def _part(verdict, name):
    (part,) = [p for p in verdict.parts if p.name == name]
    return part


def test_degradation_is_relative_and_oriented_so_positive_means_worse():
    assert metric_degradation("sharpe", 2.0, 1.2).degradation == pytest.approx(0.40)
    assert metric_degradation("sharpe", 2.0, 2.5).degradation == pytest.approx(-0.25)  # OOS better
    dd = metric_degradation("max_drawdown", 0.10, 0.15, lower_is_better=True)
    assert dd.degradation == pytest.approx(0.50) and dd.flagged
    # a negative IS value: -1 -> -2 is 100 % worse
    assert metric_degradation("cagr", -0.01, -0.02).degradation == pytest.approx(1.0)


def test_degradation_flag_line_is_thirty_percent():
    assert not metric_degradation("sharpe", 1.0, 0.71).flagged  # 29 %
    assert metric_degradation("sharpe", 1.0, 0.69).flagged  # 31 %
    assert not metric_degradation("sharpe", 1.0, 0.69, max_degradation=0.5).flagged


def test_undefined_metrics_are_not_compared():
    for is_v, oos_v in [(None, 1.0), (1.0, None), (0.0, 0.5), (float("inf"), 2.0), (float("nan"), 1.0)]:
        d = metric_degradation("profit_factor", is_v, oos_v)
        assert d.degradation is None and not d.flagged


def test_robust_result_scores_low_and_needs_no_remedy():
    v = overfitting_verdict(in_sample=ROBUST_IS, out_of_sample=ROBUST_OOS, n_trades=400, n_parameters=3,
                            period_performance={"2021": 1.1, "2022": 0.4, "2023": 1.6}, pbo=0.0, dsr=0.99)
    # only the 10 % drawdown degradation adds points: 0.10 / 0.60 of its 30 -> 5 of 100
    assert v.score == pytest.approx(5.0) and v.level == "low"
    assert v.flags == () and v.remedies == ()
    assert v.remedy.startswith("None needed")
    assert sum(p.weight for p in v.parts) == pytest.approx(100.0)


def test_overfit_result_hand_computed_score():
    # degradation: sharpe 2.0 -> 0.8 = 60 %, twice the 30 % line -> severity 1, weight 30
    # parameters: 12 trades / 4 parameters = 3 per parameter -> 1 - 3/10 = 0.7, weight 15
    # trades: 12 of 30 -> 1 - 12/30 = 0.6, weight 10
    # periods: works in 1 of 4 -> (4 - 1)/(4 - 1) = 1, weight 10
    # pbo 0.4 -> 0.8, weight 20; dsr 0.5 -> (0.95 - 0.5)/0.95 = 0.473684, weight 15
    v = overfitting_verdict(
        in_sample={"sharpe": 2.0}, out_of_sample={"sharpe": 0.8}, n_trades=12, n_parameters=4,
        period_performance={"w1": 2.5, "w2": -0.3, "w3": 0.0, "w4": -1.0}, pbo=0.4, dsr=0.5,
    )
    expected = 30 * 1 + 15 * 0.7 + 10 * 0.6 + 10 * 1 + 20 * 0.8 + 15 * (0.45 / 0.95)
    assert v.score == pytest.approx(expected)  # weights already sum to 100
    assert v.level == "severe"
    assert _part(v, "dsr").severity == pytest.approx(0.473684, abs=1e-6)
    flagged = {p.name for p in v.parts if p.flagged}
    assert flagged == {"degradation", "parameters_per_trade", "trade_count", "period_concentration", "dsr"}
    assert "pbo" not in flagged  # 0.4 is below the 0.5 line
    assert v.remedy == REMEDIES["degradation"]  # most points (30)
    # flagged parts by points: degradation 30, parameters 10.5, periods 10, dsr 7.1, trades 6
    assert v.remedies == tuple(REMEDIES[n] for n in ("degradation", "parameters_per_trade",
                                                     "period_concentration", "dsr", "trade_count"))
    assert "works (metric > 0) in 1 of 4 periods (w1)" in _part(v, "period_concentration").detail


def test_absent_checks_are_left_out_and_weights_renormalised():
    # only degradation (40 % -> severity 2/3) and trade count (400 trades -> 0) apply; n_parameters 0
    v = overfitting_verdict(in_sample={"sharpe": 1.0}, out_of_sample={"sharpe": 0.6}, n_trades=400,
                            n_parameters=0)
    assert [p.name for p in v.parts] == ["degradation", "trade_count"]
    assert _part(v, "degradation").weight == pytest.approx(100 * 30 / 40)
    assert v.score == pytest.approx(75.0 * (0.4 / 0.6))  # = 50, where "high" starts
    assert v.level == "high"


def test_numpy_scalars_from_the_optimizer_are_accepted():
    v = overfitting_verdict(in_sample={"sharpe": np.float64(1.0)}, out_of_sample={"sharpe": np.float64(0.5)},
                            n_trades=np.int64(40), n_parameters=np.int64(2), pbo=np.float64(0.3))
    assert v.degradations[0].degradation == pytest.approx(0.5)
    json.dumps(v.to_dict(), allow_nan=False)


def test_single_period_is_not_judged():
    v = overfitting_verdict(in_sample=ROBUST_IS, out_of_sample=ROBUST_OOS, n_trades=100, n_parameters=2,
                            period_performance={"2023": -1.0})
    assert "period_concentration" not in [p.name for p in v.parts]


def test_works_in_only_one_period_is_flagged_and_explained():
    v = overfitting_verdict(in_sample=ROBUST_IS, out_of_sample=ROBUST_OOS, n_trades=300, n_parameters=2,
                            period_performance={"2020": 3.0, "2021": -0.2, "2022": -0.5})
    part = _part(v, "period_concentration")
    assert part.flagged and part.severity == 1.0
    assert any(f.startswith("period_concentration:") for f in v.flags)
    assert v.remedy == REMEDIES["period_concentration"]


def test_pbo_severity_saturates_at_a_coin_flip():
    base: dict[str, Any] = dict(in_sample=ROBUST_IS, out_of_sample=ROBUST_OOS, n_trades=300, n_parameters=2)
    assert _part(overfitting_verdict(**base, pbo=0.25), "pbo").severity == pytest.approx(0.5)
    assert _part(overfitting_verdict(**base, pbo=0.5), "pbo").severity == 1.0
    high = overfitting_verdict(**base, pbo=0.8)
    assert _part(high, "pbo").flagged and high.remedy == REMEDIES["pbo"]


def test_thresholds_are_configurable():
    strict = VerdictThresholds(min_trades=500, min_trades_per_parameter=100.0)
    v = overfitting_verdict(in_sample=ROBUST_IS, out_of_sample=ROBUST_OOS, n_trades=400, n_parameters=5,
                            thresholds=strict)
    assert _part(v, "trade_count").severity == pytest.approx(1 - 400 / 500)
    assert _part(v, "parameters_per_trade").severity == pytest.approx(1 - 80 / 100)


def test_lower_is_better_names_can_be_extended():
    v = overfitting_verdict(in_sample={"ulcer_index": 0.05}, out_of_sample={"ulcer_index": 0.10}, n_trades=100,
                            n_parameters=1, lower_is_better={"ulcer_index"})
    (d,) = v.degradations
    assert d.lower_is_better and d.degradation == pytest.approx(1.0) and d.flagged


def test_metrics_dict_with_none_values_is_accepted_and_verdict_is_json_safe():
    is_m = {"sharpe": 1.2, "sortino": None, "profit_factor": float("inf"), "max_drawdown": 0.2}
    oos_m = {"sharpe": 0.5, "sortino": 0.4, "profit_factor": 1.1, "max_drawdown": 0.35}
    v = overfitting_verdict(in_sample=is_m, out_of_sample=oos_m, n_trades=80, n_parameters=3)
    by_name = {d.metric: d for d in v.degradations}
    assert by_name["sortino"].degradation is None and by_name["profit_factor"].degradation is None
    assert by_name["max_drawdown"].degradation == pytest.approx(0.75)
    text = json.dumps(v.to_dict(), allow_nan=False)
    assert json.loads(text)["level"] == v.level


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_sample": {"sharpe": 1.0}, "out_of_sample": {"cagr": 0.1}}, "only in in_sample: \\['sharpe'\\]"),
        ({"in_sample": {}, "out_of_sample": {}}, "at least one metric"),
        ({"in_sample": {"sharpe": "high"}, "out_of_sample": {"sharpe": 1.0}}, "in_sample\\['sharpe'\\]"),
        ({"n_trades": -1}, "n_trades"),
        ({"n_parameters": 2.5}, "n_parameters"),
        ({"pbo": 1.5}, "pbo"),
        ({"dsr": -0.1}, "dsr"),
        ({"period_performance": {"a": 1.0, "b": float("nan")}}, "period_performance\\['b'\\]"),
    ],
)
def test_bad_input_names_what_is_wrong(kwargs, message):
    args: dict[str, Any] = dict(in_sample={"sharpe": 1.0}, out_of_sample={"sharpe": 0.9}, n_trades=50,
                                n_parameters=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        overfitting_verdict(**args)


def test_bad_thresholds_are_rejected():
    with pytest.raises(ValueError, match="max_degradation"):
        VerdictThresholds(max_degradation=0.0)
    with pytest.raises(ValueError, match="min_dsr"):
        VerdictThresholds(min_dsr=1.5)
