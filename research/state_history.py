"""Trading-state history of a run: every breaker trip, cool-down end and operator command, and the
spells the account spent REDUCING or HALTED. Times are replay (event) time, ns UTC in, pandas UTC out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from core.enums import TradingState
from core.events import TradingStateChanged

__all__ = ["STATE_CHANGE_COLUMNS", "StateSpell", "state_changes_frame", "state_spells"]

STATE_CHANGE_COLUMNS = ["time", "previous", "current", "reason"]


def _ordered(changes: Sequence[TradingStateChanged]) -> list[TradingStateChanged]:
    # stable: changes at the same replay time keep the order the engine made them in
    return sorted(changes, key=lambda c: c.ts_event)


def state_changes_frame(changes: Sequence[TradingStateChanged] | None) -> pd.DataFrame:
    """Return one row per trading-state change, in replay-time order.

    Parameters
    ----------
    changes : Sequence[core.events.TradingStateChanged], optional
        The run's state changes (``ReplayResult.state_changes``).

    Returns
    -------
    pd.DataFrame
        Columns :data:`STATE_CHANGE_COLUMNS`: ``time`` (tz-aware UTC, the change's ``ts_event``:
        the replay time it happened), ``previous`` and ``current`` state names
        ("active"/"reducing"/"halted") and ``reason`` text.

    Examples
    --------
    >>> c = TradingStateChanged(previous=TradingState.ACTIVE, current=TradingState.HALTED,
    ...                         reason="drawdown 21% >= 20%", ts_event=0, ts_init=0)
    >>> state_changes_frame([c]).values.tolist()
    [[Timestamp('1970-01-01 00:00:00+0000', tz='UTC'), 'active', 'halted', 'drawdown 21% >= 20%']]
    """
    rows = [(c.ts_event, c.previous.value, c.current.value, c.reason) for c in _ordered(changes or [])]
    frame = pd.DataFrame(rows, columns=STATE_CHANGE_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"].astype("int64"), unit="ns", utc=True)
    return frame


@dataclass(frozen=True)
class StateSpell:
    """A stretch of replay time spent in one non-ACTIVE trading state.

    Attributes
    ----------
    state : TradingState
        REDUCING or HALTED.
    start, end : pd.Timestamp
        When the state was entered and left (UTC); ``end`` is the end of the run if never left.
    reason : str
        Why the state was entered.
    """

    state: TradingState
    start: pd.Timestamp
    end: pd.Timestamp
    reason: str


def state_spells(changes: Sequence[TradingStateChanged] | None, end: pd.Timestamp) -> list[StateSpell]:
    """Return the spells spent REDUCING or HALTED, in time order.

    Parameters
    ----------
    changes : Sequence[core.events.TradingStateChanged], optional
        The run's state changes.
    end : pd.Timestamp
        End of the run (tz-aware): closes a spell still open at the end.

    Returns
    -------
    list[StateSpell]
        One spell per change into a non-ACTIVE state, lasting until the next change.

    Examples
    --------
    >>> day = 86_400 * 10**9
    >>> trip = TradingStateChanged(previous=TradingState.ACTIVE, current=TradingState.REDUCING,
    ...                            reason="5 losses", ts_event=day, ts_init=day)
    >>> back = TradingStateChanged(previous=TradingState.REDUCING, current=TradingState.ACTIVE,
    ...                            reason="cool-down ended", ts_event=2 * day, ts_init=2 * day)
    >>> [(s.state.value, s.start.day, s.end.day) for s in state_spells([trip, back], pd.Timestamp("1970-01-10", tz="UTC"))]
    [('reducing', 2, 3)]
    """
    ordered = _ordered(changes or [])
    spells = []
    for number, change in enumerate(ordered):
        if change.current is TradingState.ACTIVE:
            continue
        stop = pd.Timestamp(ordered[number + 1].ts_event, unit="ns", tz="UTC") if number + 1 < len(ordered) else end
        spells.append(StateSpell(change.current, pd.Timestamp(change.ts_event, unit="ns", tz="UTC"), stop,
                                 change.reason))
    return spells
