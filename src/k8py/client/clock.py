"""Clocks: the real one on the event loop, and a fake one that tests advance by hand.

Everything in k8py.client that waits (delayed queue adds, backoff, lease renewals, resyncs)
waits through a :class:`Clock`, so tests step time without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "FakeClock", "RealClock", "TimerHandle"]


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds, for durations and deadlines."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, for timestamps written to objects (e.g. a Lease's renewTime)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...

    async def sleep(self, delay: float) -> None: ...


class RealClock:
    """The event loop's clock."""

    __slots__ = ()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(delay, 0.0), callback)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(max(delay, 0.0))


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Time that moves only when :meth:`advance` is called; timers fire in order, inline."""

    __slots__ = ("_seq", "_t", "_timers", "_wall0")

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._t = start
        self._wall0 = wall_start - start
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._t

    def wall(self) -> float:
        return self._wall0 + self._t

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        t = _FakeTimer(self._t + max(delay, 0.0), callback)
        heapq.heappush(self._timers, (t.when, next(self._seq), t))
        return t

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        h = self.call_later(delay, wake)
        try:
            await fut
        finally:
            h.cancel()

    @property
    def waiters(self) -> int:
        """Timers still pending (sleepers and delayed callbacks)."""
        return sum(1 for _, _, t in self._timers if not t.cancelled)

    def next_deadline(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def advance(self, seconds: float) -> None:
        """Move time forward, firing every timer due by then in deadline order."""
        end = self._t + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, t = heapq.heappop(self._timers)
            if t.cancelled:
                continue
            self._t = max(self._t, when)
            t.callback()
        self._t = end
