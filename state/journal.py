"""The live session's journal: every inbound event the node hands its engine, in order, with a
hash chain, in the state database.

Replaying a journal through a fresh engine (``tradingd parity``) must reproduce every decision
and order of the session: the answer to "backtest != live". Entry 0 records the session start
(the run specification and the restored account); entries 1.. are the events.

Hash chain: ``hash[n] = sha256(hash[n-1] + kind + canonical JSON of payload)``, with
``hash[-1] = ""``; an edited, dropped or reordered entry breaks it (:class:`JournalError`).

Codec: events are ``core.events`` types; JSON payloads hold their fields with enums as values;
a :class:`core.events.Bar` is its 8-field list.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from enum import Enum
from typing import Any, Protocol

from core import events as ev
from core.enums import OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.orders import Order
from core.recovery import RestoredPosition, RestoredState, RiskSnapshot

SESSION_START = "SessionStart"

_TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    ev.Bar, ev.TimerFired, ev.ClockTick, ev.DataStale, ev.DataResumed, ev.SubmitOrder, ev.CancelOrder,
    ev.HaltTrading, ev.RearmTrading, ev.PauseTrading, ev.ResumeTrading, ev.FlattenPositions, ev.OrderAccepted,
    ev.OrderRejected, ev.OrderCanceled, ev.OrderExpired, ev.OrderFilled)}
_ENUMS: dict[str, type[Enum]] = {"side": Side, "order_type": OrderType, "time_in_force": TimeInForce}


class JournalError(ValueError):
    """The journal cannot be read back: broken hash chain, gap in the sequence, unknown kind."""


class JournalStore(Protocol):
    """What the writer needs of a store (``SqlStore``)."""

    def save_journal(self, seq: int, kind: str, ts_init: int, payload: dict[str, Any], digest: str) -> None: ...


def _canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True)


def chain(previous: str, kind: str, payload: dict[str, Any]) -> str:
    """The hash of an entry after ``previous`` (hex sha256).

    >>> chain("", "ClockTick", {"ts_event": 1, "ts_init": 1})[:12]
    '60c61bd88d17'
    """
    return hashlib.sha256(f"{previous}|{kind}|{_canonical(payload)}".encode()).hexdigest()


def encode(event: Any) -> tuple[str, dict[str, Any]]:
    """Return (kind, JSON-able payload) of a journaled event.

    Raises
    ------
    TypeError
        For a type the journal does not carry.
    """
    kind = type(event).__name__
    if kind not in _TYPES:
        raise TypeError(f"the journal does not carry {kind}")
    if isinstance(event, ev.Bar):
        return kind, {"bar": list(event)}
    payload = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        payload[f.name] = value.value if isinstance(value, Enum) else value
    return kind, payload


def decode(kind: str, payload: dict[str, Any]) -> Any:
    """Inverse of :func:`encode`.

    Raises
    ------
    JournalError
        For an unknown kind or fields that do not fit it.
    """
    cls = _TYPES.get(kind)
    if cls is None:
        raise JournalError(f"unknown journal entry kind {kind!r}")
    try:
        if cls is ev.Bar:
            symbol, ts_event, ts_init, *rest = payload["bar"]
            return ev.Bar(str(symbol), int(ts_event), int(ts_init), *(float(x) for x in rest))
        fields = {k: (_ENUMS[k](v) if k in _ENUMS else v) for k, v in payload.items()}
        return cls(**fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise JournalError(f"journal entry {kind}: {exc}") from exc


def encode_restored(restored: RestoredState | None) -> dict[str, Any] | None:
    """JSON of a :class:`RestoredState` (the account a session started from)."""
    if restored is None:
        return None
    risk = dataclasses.asdict(restored.risk)
    risk["state"] = restored.risk.state.value
    return {
        "account": restored.account, "cash": restored.cash,
        "positions": [dataclasses.asdict(p) for p in restored.positions],
        "open_orders": [{name: (getattr(o, name).value if isinstance(getattr(o, name), Enum) else getattr(o, name))
                         for name in Order.__slots__} for o in restored.open_orders],
        "known_client_order_ids": sorted(restored.known_client_order_ids), "risk": risk,
        "learner_state": {k: v.hex() for k, v in restored.learner_state.items()},
        "last_bar_ts": dict(restored.last_bar_ts),
    }


def decode_restored(data: dict[str, Any] | None) -> RestoredState | None:
    """Inverse of :func:`encode_restored`."""
    if data is None:
        return None
    orders = []
    for raw in data["open_orders"]:
        command = ev.SubmitOrder(client_order_id=raw["client_order_id"], strategy_id=raw["strategy_id"],
                                 symbol=raw["symbol"], side=Side(raw["side"]), quantity=raw["quantity"],
                                 order_type=OrderType(raw["order_type"]), limit_price=raw["limit_price"],
                                 stop_price=raw["stop_price"], time_in_force=TimeInForce(raw["time_in_force"]),
                                 reduce_only=raw["reduce_only"], reason=raw["reason"], ts_event=raw["ts_created"],
                                 ts_init=raw["ts_created"])
        order = Order(command)
        order.status = OrderStatus(raw["status"])
        for name in ("filled_quantity", "avg_fill_price", "commission", "broker_order_id", "ts_last"):
            setattr(order, name, raw[name])
        orders.append(order)
    risk = dict(data["risk"])
    risk["state"] = TradingState(risk["state"])
    return RestoredState(
        account=data["account"], cash=data["cash"],
        positions=tuple(RestoredPosition(**p) for p in data["positions"]), open_orders=tuple(orders),
        known_client_order_ids=frozenset(data["known_client_order_ids"]), risk=RiskSnapshot(**risk),
        learner_state={k: bytes.fromhex(v) for k, v in data["learner_state"].items()},
        last_bar_ts={k: int(v) for k, v in data["last_bar_ts"].items()})


class JournalWriter:
    """Append events of one session (the store's current run) to its journal, chaining hashes.

    Parameters
    ----------
    store
        Where entries go (buffered with the store's other rows, in order).
    """

    def __init__(self, store: JournalStore) -> None:
        self._store = store
        self._seq = 0
        self._last = ""

    def start(self, spec: dict[str, Any], restored: RestoredState | None, ts: int, **info: Any) -> None:
        """Write entry 0: the session's run specification (``RunSpec.model_dump(mode="json")``),
        the restored account it started from, and ``info`` (e.g. the paper venue's id prefix)."""
        self._append(SESSION_START, ts, {"spec": spec, "restored": encode_restored(restored), **info})

    def append(self, event: Any) -> None:
        """Write the next entry for ``event`` (its ``ts_init``)."""
        kind, payload = encode(event)
        self._append(kind, event.ts_init, payload)

    def _append(self, kind: str, ts: int, payload: dict[str, Any]) -> None:
        digest = chain(self._last, kind, payload)
        self._store.save_journal(self._seq, kind, ts, payload, digest)
        self._seq += 1
        self._last = digest


def verified(rows: Sequence[dict[str, Any]]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Yield (seq, kind, payload) of journal rows after checking sequence and hash chain.

    Raises
    ------
    JournalError
        At the first gap, duplicate or hash mismatch, naming the entry.
    """
    previous = ""
    for expected, row in enumerate(rows):
        if row["seq"] != expected:
            raise JournalError(f"journal entry {expected} is missing (found seq {row['seq']})")
        digest = chain(previous, row["kind"], row["payload"])
        if digest != row["hash"]:
            raise JournalError(f"journal entry {expected} ({row['kind']}) fails its hash: edited or out of order")
        previous = digest
        yield row["seq"], row["kind"], row["payload"]


__all__ = ["SESSION_START", "JournalError", "JournalWriter", "chain", "decode", "decode_restored", "encode",
           "encode_restored", "verified"]
