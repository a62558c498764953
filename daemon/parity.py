"""Live <-> replay parity: replay a live session's journal through a fresh engine and check that
every decision and order matches what the session recorded.

The journal holds every inbound event in the order the node handled it (bars, clock ticks,
commands, broker events) and, in entry 0, the run specification and the account the session
started from; replaying it through the same kernel must reproduce the session exactly. A
difference means the session depended on something outside the journal (wall clock, hidden
state, nondeterminism) or the code or parameters changed: the first divergence is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alerts.sinks import MemoryAlertSink
from backtest.kernel import build_kernel, paper_venue
from backtest.spec import RunSpec
from core.clock import Clock
from core.orders import Order
from core.ports import Broker, Decision
from state.journal import SESSION_START, JournalError, decode, decode_restored, verified
from state.memory import MemoryStore
from state.store import SqlStore


@dataclass
class ParityReport:
    """Outcome of :func:`check_parity`.

    ``divergence`` is None when everything matched, else a text naming the first differing
    decision or order with both versions.
    """

    session: str
    events: int
    decisions: int
    orders: int
    divergence: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.divergence is None


def _decision_key(d: Decision) -> tuple[Any, ...]:
    # the store keeps timestamps to the microsecond
    return (d.ts // 1000, d.strategy_id, d.symbol, d.side.value, round(d.quantity, 9), d.outcome, d.reason,
            d.client_order_id)


def _order_key(o: dict[str, Any]) -> tuple[Any, ...]:
    return (o["client_order_id"], o["symbol"], o["side"], round(float(o["quantity"]), 9), o["status"],
            round(float(o["filled_quantity"]), 9))


def check_parity(store: SqlStore, session: str, *, params: dict[str, Any] | None = None) -> ParityReport:
    """Replay ``session``'s journal and compare its decisions and orders with the stored ones.

    Parameters
    ----------
    store
        The state database holding the session.
    session
        The live session's run id.
    params
        Strategy parameters to override (to see where a change would first have made a difference).

    Raises
    ------
    state.journal.JournalError
        If the session has no journal, or the journal fails its hash chain.
    """
    rows = store.journal(session)
    if not rows:
        raise JournalError(f"session {session!r} has no journal (only live sessions journal their events)")
    entries = list(verified(rows))
    _, kind, start = entries[0]
    if kind != SESSION_START:
        raise JournalError(f"journal of {session!r} does not begin with its session start")
    spec = RunSpec.model_validate(start["spec"])
    if params:
        spec = spec.model_copy(update={"params": {**spec.params, **params}})
    restored = decode_restored(start.get("restored"))
    memory = MemoryStore()
    venue = paper_venue(spec, id_prefix=start.get("venue_prefix", "paper")) if start.get("broker") != "alpaca" else None
    clock_start = rows[0]["ts_init"]
    # a real broker's answers (accepted, fills, cancels) are journal entries: replayed as they came
    broker: Broker = venue if venue is not None else _JournaledBroker()
    kernel = build_kernel(spec, clock=Clock(clock_start), broker=broker, venue=venue, store=memory,
                          alerts=MemoryAlertSink(), restored=restored, snapshot_interval_ns=0)
    handle = kernel.engine.handle
    for _, kind, payload in entries[1:]:
        handle(decode(kind, payload))
    kernel.engine.finish()

    stored_decisions = [_decision_key(d) for d in store.decisions(session)]
    replayed_decisions = [_decision_key(d) for d in memory.decisions]
    report = ParityReport(session, len(entries) - 1, len(stored_decisions), len(store.orders(session)))
    for i, (live, replayed) in enumerate(zip(stored_decisions, replayed_decisions)):
        if live != replayed:
            report.divergence = f"decision {i + 1}: live {live} != replay {replayed}"
            return report
    if len(stored_decisions) != len(replayed_decisions):
        report.divergence = (f"decision count: live {len(stored_decisions)} != replay {len(replayed_decisions)}; "
                             f"first extra: {(replayed_decisions + stored_decisions)[min(len(stored_decisions), len(replayed_decisions))]}")
        return report
    live_orders = {o["client_order_id"]: _order_key(o) for o in store.orders(session)}
    replay_orders = {c: _order_key({"client_order_id": c, "symbol": o["symbol"], "side": o["side"].value,
                                    "quantity": o["quantity"], "status": o["status"].value,
                                    "filled_quantity": o["filled_quantity"]})
                     for c, o in memory.orders.items()}
    for coid in sorted(set(live_orders) | set(replay_orders)):
        if live_orders.get(coid) != replay_orders.get(coid):
            report.divergence = f"order {coid}: live {live_orders.get(coid)} != replay {replay_orders.get(coid)}"
            return report
    return report


class _JournaledBroker:
    """A real broker's session replayed: its events are in the journal, so submits answer nothing."""

    def submit(self, order: Order, ts: int) -> Sequence[Any]:
        return ()

    def cancel(self, order: Order, ts: int) -> Sequence[Any]:
        return ()


__all__ = ["ParityReport", "check_parity"]
