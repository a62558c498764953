import pytest

from core.enums import Side
from core.portfolio import Portfolio
from core.trades import TradeTracker


def _fill(p, t, side, qty, price, commission, ts, reason):
    before = p.position("X")
    realized = p.apply_fill("X", side, qty, price, commission)
    return t.on_fill("X", side, qty, price, commission, realized, before, p.position("X"), ts, reason)


def test_round_trip_with_scale_in_and_partial_exit():
    p, t = Portfolio(100_000.0), TradeTracker()
    assert _fill(p, t, Side.BUY, 10, 100.0, 1.0, 1, "entry") is None
    assert _fill(p, t, Side.BUY, 10, 110.0, 1.0, 2, "add") is None
    assert _fill(p, t, Side.SELL, 5, 120.0, 1.0, 3, "trim") is None
    trade = _fill(p, t, Side.SELL, 15, 100.0, 1.0, 4, "stop_loss")
    assert trade is not None
    assert trade.entry_price == pytest.approx(105.0)
    assert trade.exit_price == pytest.approx((5 * 120 + 15 * 100) / 20)
    assert trade.quantity == 20
    assert trade.pnl == pytest.approx(5 * 15 + 15 * -5 - 4)
    assert trade.exit_reason == "stop_loss"
    assert (trade.entry_ts, trade.exit_ts) == (1, 4)
    assert p.equity - 100_000 == pytest.approx(trade.pnl)


def test_flip_closes_one_trade_and_opens_the_next():
    p, t = Portfolio(100_000.0), TradeTracker()
    _fill(p, t, Side.BUY, 10, 100.0, 2.0, 1, "long")
    trade = _fill(p, t, Side.SELL, 30, 90.0, 3.0, 2, "flip")
    assert trade.side is Side.BUY and trade.pnl == pytest.approx(-100 - 2 - 1)
    closed = _fill(p, t, Side.BUY, 20, 80.0, 0.0, 3, "cover")
    assert closed.side is Side.SELL and closed.quantity == 20
    assert closed.pnl == pytest.approx(20 * 10 - 2)
