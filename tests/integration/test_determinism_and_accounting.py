"""Determinism (byte-identical outputs) and accounting recomputed independently from the fills."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.output import write_outputs
from tests.support import STRATEGY_PARAMS, replay


@pytest.mark.parametrize("name", sorted(STRATEGY_PARAMS))
def test_same_data_config_and_seed_give_byte_identical_outputs(two_symbols, name, tmp_path):
    outputs = []
    for run in ("a", "b"):
        result, _, _ = replay(two_symbols, name)
        write_outputs(result, tmp_path / run, {"run": run}, report=False)
        outputs.append({f: (tmp_path / run / f).read_bytes() for f in ("trades.csv", "equity.csv", "fills.csv", "orders.csv")})
    assert outputs[0]["trades.csv"].count(b"\n") > 3
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("name", sorted(STRATEGY_PARAMS))
def test_equity_equals_cash_plus_positions_recomputed_from_fills(two_symbols, name):
    result, _, _ = replay(two_symbols, name)
    fills = pd.DataFrame([(f.ts_init, f.symbol, f.quantity * f.side.sign, f.price, f.commission)
                          for f in result.fills], columns=["ts", "symbol", "qty", "price", "commission"])
    assert len(fills) > 5
    # cash after each equity point = start - sum(signed notional + commission) of fills known by then
    flows = (fills["qty"] * fills["price"] + fills["commission"]).to_numpy()
    idx = np.searchsorted(fills["ts"].to_numpy(), result.equity_ts, side="right")
    cum_flows = np.concatenate([[0.0], np.cumsum(flows)])
    np.testing.assert_allclose(result.cash, result.starting_cash - cum_flows[idx], rtol=1e-12, atol=1e-6)
    # positions from fills, marked at the last close known at each point
    value = np.zeros(len(result.equity_ts))
    for series in two_symbols:
        sym_fills = fills[fills["symbol"] == series.symbol]
        pos = np.concatenate([[0.0], np.cumsum(sym_fills["qty"].to_numpy())])
        held = pos[np.searchsorted(sym_fills["ts"].to_numpy(), result.equity_ts, side="right")]
        at = np.searchsorted(series.ts_init, result.equity_ts, side="right") - 1
        mark = np.where(at >= 0, series.close[np.clip(at, 0, None)], 0.0)
        value += held * mark
    np.testing.assert_allclose(result.equity, result.cash + value, rtol=1e-10, atol=1e-5)


@pytest.mark.parametrize("name", sorted(STRATEGY_PARAMS))
def test_fills_never_exceed_order_quantity_and_costs_are_as_configured(two_symbols, name):
    result, _, _ = replay(two_symbols, name)
    filled: dict[str, float] = {}
    for fill in result.fills:
        filled[fill.client_order_id] = filled.get(fill.client_order_id, 0.0) + fill.quantity
        assert fill.commission == pytest.approx(1.0 / 10_000 * fill.quantity * fill.price, rel=1e-12)
    for order in result.orders:
        assert filled.get(order.client_order_id, 0.0) <= order.quantity * (1 + 1e-12)
        assert filled.get(order.client_order_id, 0.0) == pytest.approx(order.filled_quantity)
    # for every symbol that ended flat, its round trips hold all of its P&L, net of commission
    flat = [sym for sym, pos in result.positions.items() if pos.quantity == 0.0]
    for symbol in flat:
        pos = result.positions[symbol]
        trades_pnl = sum(t.pnl for t in result.trades if t.symbol == symbol)
        assert trades_pnl == pytest.approx(pos.realized_pnl - pos.commission, rel=1e-9, abs=1e-6)
