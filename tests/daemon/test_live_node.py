"""The live node on the paced file feed: the one Engine in an asyncio loop, journaled, resumable,
and in parity with a replay of its journal."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from core.enums import TradingState
from core.events import HaltTrading
from daemon.config import load_config
from daemon.live.app import open_session
from daemon.live.config import LiveConfig
from daemon.parity import check_parity
from backtest.data import load_data
from state.journal import JournalError
from state.store import SqlStore
from state.config import StoreConfig
from tests.support import DATA

START = datetime(2019, 1, 1, tzinfo=timezone.utc)
END = datetime(2019, 4, 1, tzinfo=timezone.utc)


def _config(url: str):
    return load_config(None, {"state.database_url": url, "strategy.name": "sma_cross",
                              "strategy.params": {"fast": 5, "slow": 20}, "risk.max_consecutive_losses": 1000})


def _series(end=END):
    return load_data([DATA / "SPY.csv.gz", DATA / "AAPL.csv.gz"], start=START, end=end)


def _run(cfg, live, series, before=None):
    session = open_session(cfg, live, series=series)
    if before is not None:
        before(session)
    try:
        asyncio.run(session.node.run(stop_when_feeds_end=True, install_signals=False))
    finally:
        session.close()
    return session


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'live.db'}"


def test_a_paced_file_session_trades_through_the_engine_and_matches_its_journal(url):
    cfg = _config(url)
    live = LiveConfig(account="demo", speed=0, tick=0.01)
    series = _series()
    session = _run(cfg, live, series)
    bars = sum(len(s) for s in series)
    assert session.node.handled >= bars
    assert session.node.stop_reason == "feeds finished"
    with SqlStore(StoreConfig(database_url=url), account="demo") as store:
        orders = store.orders(session.session_id)
        assert orders, "the session should trade"
        report = check_parity(store, session.session_id)
        assert report.ok, report.divergence
        assert report.events >= bars and report.decisions > 0
        changed = check_parity(store, session.session_id, params={"fast": 6})
        assert not changed.ok and changed.divergence.startswith("decision")


def test_a_restarted_session_resumes_the_account_and_trades_nothing_twice(url):
    cfg = _config(url)
    live = LiveConfig(account="acct", speed=0, tick=0.01)
    first = _run(cfg, live, _series(datetime(2019, 2, 15, tzinfo=timezone.utc)))
    cash, positions = first.kernel.portfolio.cash, {s: p.quantity for s, p in first.kernel.portfolio.positions().items() if p.quantity}
    second = _run(cfg, live, _series(), before=lambda s: (
        pytest.approx(s.kernel.portfolio.cash) == cash or pytest.fail("cash not restored"),
        {k: p.quantity for k, p in s.kernel.portfolio.positions().items() if p.quantity} == positions
        or pytest.fail("positions not restored")))
    assert second.restored is not None and second.restored.account == "acct"
    # the file feed resumed after the last bar the account had seen: no bar handled twice
    first_last = max(first.kernel.engine.last_bar_ts.values())
    assert second.kernel.engine.dropped_bars == 0
    assert min(second.kernel.engine.last_bar_ts.values()) > first_last - 86_400 * 10**9
    with SqlStore(StoreConfig(database_url=url), account="acct") as store:
        ids = [o["client_order_id"] for run in (first.session_id, second.session_id) for o in store.orders(run)]
        assert len(ids) == len(set(ids))
        assert check_parity(store, second.session_id).ok  # parity holds for a resumed session too


def test_commands_go_through_the_queue_and_are_journaled(url):
    cfg = _config(url)
    live = LiveConfig(account="cmd", speed=0, tick=0.01)
    series = _series(datetime(2019, 1, 20, tzinfo=timezone.utc))

    def halt_soon(session):
        node = session.node
        ts = int(series[0].ts_event[10])
        node.feeds.append(_Once(HaltTrading(reason="operator", ts_event=ts, ts_init=ts)))

    session = _run(cfg, live, series, before=halt_soon)
    assert session.kernel.risk.state is TradingState.HALTED
    with SqlStore(StoreConfig(database_url=url), account="cmd") as store:
        kinds = [row["kind"] for row in store.journal(session.session_id)]
        assert kinds[0] == "SessionStart" and "HaltTrading" in kinds
        assert check_parity(store, session.session_id).ok


def test_a_tampered_journal_is_refused(url):
    import sqlalchemy as sa
    cfg = _config(url)
    session = _run(cfg, LiveConfig(account="t", speed=0, tick=0.01), _series(datetime(2019, 1, 10, tzinfo=timezone.utc)))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE journal SET kind = 'ClockTick' WHERE seq = 3"))
    engine.dispose()
    with SqlStore(StoreConfig(database_url=url), account="t") as store, pytest.raises(JournalError, match="entry 3"):
        check_parity(store, session.session_id)


class _Once:
    name = "once"

    def __init__(self, event):
        self.event = event

    async def run(self, enqueue):
        await enqueue(self.event)


def test_the_live_node_on_the_file_feed_trades_exactly_like_the_replay(url):
    """DESIGN.md: live and replay differ only in what feeds events in, the clock and the broker."""
    from alerts.sinks import MemoryAlertSink
    from backtest.replay import run_replay
    from state.memory import MemoryStore

    cfg = _config(url)
    series = _series()
    session = _run(cfg, LiveConfig(account="same", speed=0, tick=0.01), series)
    replayed = run_replay(series, cfg.run_spec(), store=MemoryStore(), alerts=MemoryAlertSink())
    with SqlStore(StoreConfig(database_url=url), account="same") as store:
        live_trades = [(t.symbol, t.entry_ts, t.exit_ts, t.quantity, round(t.pnl, 6)) for t in store.trades(session.session_id)]
    assert live_trades and live_trades == [(t.symbol, t.entry_ts // 1000 * 1000, t.exit_ts // 1000 * 1000, t.quantity,
                                            round(t.pnl, 6)) for t in replayed.trades]
    assert session.kernel.portfolio.equity == pytest.approx(float(replayed.equity[-1]))
