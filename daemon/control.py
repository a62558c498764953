"""Operator commands on an account's persisted state, for when no daemon is running.

``tradingd halt`` / ``tradingd rearm`` are commands (:class:`core.events.HaltTrading`,
:class:`core.events.RearmTrading`). A running daemon receives them on its queue and its Engine
applies them on the one path. With no daemon running, :func:`apply_offline` applies the same
command to the account's restored risk engine (the state machine the Engine would use) and
persists the result; the daemon resumes from it at its next start.
"""

from __future__ import annotations

from core.clock import Clock
from core.enums import TradingState
from core.engine import PAUSE_CAUSE
from core.events import HaltTrading, PauseTrading, RearmTrading, ResumeTrading, TradingStateChanged
from risk.config import RiskConfig
from risk.engine import RiskEngine
from state.recovery import load_restored
from state.store import SqlStore


class UnknownAccountError(LookupError):
    """The state database holds nothing about the account named."""


Command = HaltTrading | RearmTrading | PauseTrading | ResumeTrading


def apply_offline(store: SqlStore, account: str, command: Command,
                  risk_config: RiskConfig) -> tuple[TradingState, TradingStateChanged | None]:
    """Apply ``command`` to ``account``'s persisted trading state.

    Returns
    -------
    (TradingState, TradingStateChanged or None)
        The state before the command and the change it made (None when it changed nothing, e.g.
        halting an account that is already HALTED).

    Raises
    ------
    UnknownAccountError
        For a re-arm of an account the database knows nothing about (a typo must not silently
        create an account). Halting an unknown account is allowed: it starts HALTED.
    state.store.StoreError
        If the database cannot be read or written.
    """
    restored = load_restored(store, account, starting_cash=0.0)
    if restored is None and isinstance(command, (RearmTrading, ResumeTrading)):
        raise UnknownAccountError(f"account {account!r} has no persisted state in this database; "
                                  f"nothing to {'re-arm' if isinstance(command, RearmTrading) else 'resume'} "
                                  "(check --account and --db)")
    ts = command.ts_init
    risk = RiskEngine(risk_config, Clock(ts), restored=restored.risk if restored is not None else None)
    before = risk.state
    if isinstance(command, HaltTrading):
        change = risk.halt(command.reason, ts)
    elif isinstance(command, RearmTrading):
        change = risk.rearm(command.reason, ts)
    elif isinstance(command, PauseTrading):  # the Engine's rule (core.engine.Engine._on_pause)
        change = risk.add_cause(PAUSE_CAUSE, f"paused by operator: {command.reason}", ts)
    else:
        change = risk.clear_cause(PAUSE_CAUSE, command.reason or "resumed", ts)
    if change is not None:
        store.save_trading_state(change)
        store.save_risk_state(risk.snapshot(ts))
        store.flush()
    return before, change


__all__ = ["UnknownAccountError", "apply_offline"]
