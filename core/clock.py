"""The Clock: current time plus named timers, fired in time order by :meth:`Clock.advance_to`.

The same class runs replay and live: replay advances it to each event's ``ts_init``; the live
runtime advances it to the wall-clock time it reads itself (core never reads the wall clock).
Anything that affects trading (cool-downs, daily resets, end-of-day flatten) is a timer here, so
it replays exactly.
"""

from __future__ import annotations

import heapq

from core.events import TimerFired

_NO_TIMERS: tuple[TimerFired, ...] = ()


class Clock:
    """Time in epoch ns UTC with named one-shot timers.

    Parameters
    ----------
    start_ns
        Initial time.
    """

    __slots__ = ("now", "_heap", "_live", "_seq")

    def __init__(self, start_ns: int = 0) -> None:
        self.now = start_ns
        self._heap: list[tuple[int, int, str]] = []
        self._live: dict[str, int] = {}  # timer name -> sequence number of its current schedule
        self._seq = 0

    def set_timer(self, name: str, ts: int) -> None:
        """Schedule (or reschedule) timer ``name`` to fire at ``ts`` ns. A time in the past fires
        on the next :meth:`advance_to`."""
        self._seq += 1
        self._live[name] = self._seq
        heapq.heappush(self._heap, (ts, self._seq, name))

    def cancel_timer(self, name: str) -> None:
        self._live.pop(name, None)

    def next_timer(self) -> int | None:
        """Due time (ns) of the earliest live timer, or None."""
        while self._heap and self._live.get(self._heap[0][2]) != self._heap[0][1]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def advance_to(self, ts: int) -> tuple[TimerFired, ...]:
        """Move time forward to ``ts`` and return the timers due at or before it, in time order.

        Time never moves backwards: an earlier ``ts`` leaves ``now`` unchanged.
        """
        heap = self._heap
        if not heap or heap[0][0] > ts:  # hot path: nothing due
            if ts > self.now:
                self.now = ts
            return _NO_TIMERS
        fired = []
        while heap and heap[0][0] <= ts:
            due, seq, name = heapq.heappop(heap)
            if self._live.get(name) == seq:
                del self._live[name]
                fired.append(TimerFired(name=name, ts_event=due, ts_init=max(due, self.now)))
        if ts > self.now:
            self.now = ts
        return tuple(fired)
