"""A paper kernel stopped mid-stream and resumed from the store continues the same account:
cash, positions, working orders, breakers, peak equity and last bars come back; no
client_order_id or fill id is ever reused (issue 5, A5)."""

from __future__ import annotations

import pytest

from alerts.sinks import MemoryAlertSink
from backtest.fill_model import FillConfig
from backtest.kernel import build_kernel, paper_venue
from backtest.merge import merge_bars
from backtest.spec import RunSpec
from core.clock import Clock
from core.enums import TradingState
from core.events import HaltTrading
from risk.config import RiskConfig
from state.config import StoreConfig
from state.recovery import load_restored
from state.store import SqlStore
from tests.support import STRATEGY_PARAMS

SPEC = RunSpec(strategy="rsi_momentum", params=STRATEGY_PARAMS["rsi_momentum"],
               risk=RiskConfig(max_consecutive_losses=3, loss_cooldown="1d"),
               fill=FillConfig(slippage_bps=2.0, participation_cap=0.0005))  # orders work for several bars


def _store(url: str, run: str) -> SqlStore:
    store = SqlStore(StoreConfig(database_url=url, batch_size=64), account="acct")
    store.start_run(run, "live", SPEC.strategy, SPEC.params, SPEC.spec_hash(), "", 0)
    return store


def _kernel(store, clock_ns, restored=None, prefix="paper"):
    venue = paper_venue(SPEC, id_prefix=prefix)
    return build_kernel(SPEC, clock=Clock(clock_ns), broker=venue, venue=venue, store=store,
                        alerts=MemoryAlertSink(), restored=restored, snapshot_interval_ns=0)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("postgres_url")


def test_a_restarted_paper_kernel_resumes_the_account(two_symbols, url):
    bars = list(merge_bars(two_symbols))
    first = _store(url, "session-1")
    before = _kernel(first, bars[0].ts_event)
    half = 0
    for half, bar in enumerate(bars, 1):  # stop past the middle, at a moment with working orders
        before.engine.handle(bar)
        if half >= len(bars) // 2 and before.book.open:
            break
    before.engine.finish()
    first.close()
    assert before.book.open, "the scenario needs working orders at the restart"

    second = _store(url, "session-2")
    restored = load_restored(second, "acct")
    restart = bars[half - 1].ts_init
    after = _kernel(second, restart, restored, prefix=f"paper-{restart}")
    assert after.portfolio.cash == pytest.approx(before.portfolio.cash, abs=1e-6)
    assert {s: p.quantity for s, p in after.portfolio.positions().items() if p.quantity} == \
        {s: p.quantity for s, p in before.portfolio.positions().items() if p.quantity}
    assert {c: (o.filled_quantity, o.status) for c, o in after.book.open.items()} == \
        {c: (o.filled_quantity, o.status) for c, o in before.book.open.items()}
    for symbol in ("SPY", "AAPL"):
        assert after.book.pending_entries(symbol) == pytest.approx(before.book.pending_entries(symbol))
        assert after.book.pending_exits(symbol) == pytest.approx(before.book.pending_exits(symbol))
    snap_before, snap_after = before.risk.snapshot(0), after.risk.snapshot(0)
    assert (snap_after.state, snap_after.peak_equity, snap_after.loss_streak) == \
        (snap_before.state, snap_before.peak_equity, snap_before.loss_streak)
    # the last bar per symbol, raised to just before the symbol's last order decision (a bar the
    # account already decided on is never decided on again); the next bar is still accepted
    decided = {s: max(o.ts_created for o in before.book.orders.values() if o.symbol == s) - 1
               for s in {o.symbol for o in before.book.orders.values()}}
    assert after.engine.last_bar_ts == {s: max(ts, decided.get(s, ts)) for s, ts in before.engine.last_bar_ts.items()}
    nxt = {b.symbol: b for b in reversed(bars[half:])}
    assert all(nxt[s].ts_event > after.engine.last_bar_ts[s] for s in nxt)

    old_ids = set(before.book.orders)
    for bar in bars[:half]:  # a feed replaying old bars after the restart: all refused, nothing traded
        after.engine.handle(bar)
    assert after.engine.dropped_bars == half
    for bar in bars[half:]:
        after.engine.handle(bar)
    after.engine.finish()
    new_ids = set(after.book.orders) - {o.client_order_id for o in restored.open_orders}
    assert new_ids and not new_ids & old_ids  # no client_order_id is ever reused
    resumed = [o for o in after.book.orders.values() if o.client_order_id in before.book.open]
    assert resumed and all(not o.is_open or o.filled_quantity > 0 for o in resumed)  # they kept working
    fill_ids = [f["fill_id"] for run in ("session-1", "session-2") for f in second.fills(run)]
    assert len(fill_ids) == len(set(fill_ids)) and len(fill_ids) > 0
    second.close()


def test_halted_and_peak_equity_survive_a_restart(two_symbols, url):
    bars = list(merge_bars(two_symbols))[:2000]
    first = _store(url, "s1")
    kernel = _kernel(first, bars[0].ts_event)
    for bar in bars[:1000]:
        kernel.engine.handle(bar)
    peak = kernel.risk.peak_equity
    ts = bars[999].ts_init
    kernel.engine.handle(HaltTrading(reason="operator: checking fills", ts_event=ts, ts_init=ts))
    kernel.engine.finish()
    first.close()

    second = _store(url, "s2")
    resumed = _kernel(second, ts, load_restored(second, "acct"), prefix=f"paper-{ts}")
    assert resumed.risk.state is TradingState.HALTED
    assert resumed.risk.reason == "operator: checking fills"
    assert resumed.risk.peak_equity == pytest.approx(peak)
    for bar in bars[1000:]:
        resumed.engine.handle(bar)
    resumed.engine.finish()
    assert resumed.risk.state is TradingState.HALTED  # only a re-arm leaves it
    submitted = [d for d in second.decisions("s2") if d.outcome == "submitted"]
    assert all("halt" in d.client_order_id for d in submitted)  # nothing but the kill switch traded
    second.close()


def test_the_online_learner_comes_back_after_a_restart(two_symbols, tmp_path):
    from learning.pipeline import SignalConfig

    spec = RunSpec(strategy="online_ml", params=STRATEGY_PARAMS["online_ml"],
                   signals=SignalConfig(learner={"min_samples": 50}))
    url = f"sqlite:///{tmp_path / 'ml.db'}"
    bars = list(merge_bars(two_symbols))[:1500]

    def kernel(store, restored=None):
        venue = paper_venue(spec, id_prefix="p" if restored is None else "p2")
        return build_kernel(spec, clock=Clock(bars[0].ts_event), broker=venue, venue=venue, store=store,
                            alerts=MemoryAlertSink(), restored=restored)

    store = SqlStore(StoreConfig(database_url=url), account="ml")
    store.start_run("ml-1", "live", spec.strategy, spec.params, spec.spec_hash(), "", 0)
    first = kernel(store)
    for bar in bars:
        first.engine.handle(bar)
    first.engine.finish()
    saved = first.signals.learner_states()
    store.close()
    assert set(saved) == {"SPY", "AAPL"}

    store = SqlStore(StoreConfig(database_url=url), account="ml")
    restored = load_restored(store, "ml")
    assert restored.learner_state == saved
    resumed = kernel(store, restored)
    probe = first.signals.features("SPY")
    assert probe is not None
    for symbol in ("SPY", "AAPL"):  # the learned model, exactly: same samples, same predictions
        before, after = first.signals._symbols[symbol].learner, resumed.signals._symbols[symbol].learner
        assert after.samples_learned == before.samples_learned > 0
        assert after.predict(probe) == before.predict(probe)
    store.close()
