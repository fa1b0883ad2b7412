"""A rate-limited work queue with client-go's semantics.

- An item is never handed to two workers at once: between :meth:`WorkQueue.get` and
  :meth:`WorkQueue.done` it is *processing*; adding it meanwhile marks it *dirty* and it is
  queued again when ``done()`` is called.
- An item queued (not yet taken) is queued once, however often it is added.
- :meth:`WorkQueue.add_after` delays an add (the earliest pending delay of an item wins);
  :meth:`WorkQueue.add_rate_limited` delays by the rate limiter's answer (per-item exponential
  backoff, plus an overall token bucket by default); :meth:`WorkQueue.forget` resets the item's
  backoff.
- After :meth:`WorkQueue.shut_down`, adds are ignored, delayed adds dropped, and ``get()``
  hands out what is still queued, then raises :class:`ShutDown`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from k8py.client.clock import Clock, RealClock, TimerHandle

__all__ = [
    "BucketRateLimiter",
    "ItemExponentialRateLimiter",
    "MaxOfRateLimiter",
    "QueueMetrics",
    "RateLimiter",
    "ShutDown",
    "WorkQueue",
    "default_controller_rate_limiter",
]

T = TypeVar("T", bound=Hashable)


class ShutDown(Exception):
    """The queue is shut down and empty."""


class RateLimiter(Protocol):
    def when(self, item: Hashable) -> float:
        """How long to wait before ``item`` is handled again (counts one more failure)."""
        ...

    def forget(self, item: Hashable) -> None: ...

    def num_requeues(self, item: Hashable) -> int: ...


class ItemExponentialRateLimiter:
    """``base * 2**failures``, capped at ``max_delay`` (client-go: 5 ms .. 1000 s)."""

    __slots__ = ("base", "failures", "max_delay")

    def __init__(self, base: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base = base
        self.max_delay = max_delay
        self.failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        n = self.failures.get(item, 0)
        self.failures[item] = n + 1
        if n > 60:  # 2**n would be absurd; the cap applies long before
            return self.max_delay
        return min(self.base * (2 ** n), self.max_delay)

    def forget(self, item: Hashable) -> None:
        self.failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self.failures.get(item, 0)


class BucketRateLimiter:
    """An overall token bucket (``qps`` refill, ``burst`` size): bounds retries across all items."""

    __slots__ = ("burst", "clock", "last", "qps", "tokens")

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock | None = None) -> None:
        self.qps = qps
        self.burst = burst
        self.clock: Clock = clock or RealClock()
        self.tokens = float(burst)
        self.last: float | None = None

    def when(self, item: Hashable) -> float:
        now = self.clock.now()
        if self.last is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.qps)
        self.last = now
        # Reserve a token even if it is not there yet: the debt is the wait.
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.qps

    def forget(self, item: Hashable) -> None:
        pass

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest wait of several limiters; requeues counted by the most pessimistic one."""

    __slots__ = ("limiters",)

    def __init__(self, *limiters: RateLimiter) -> None:
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        return max(lim.when(item) for lim in self.limiters)

    def forget(self, item: Hashable) -> None:
        for lim in self.limiters:
            lim.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(lim.num_requeues(item) for lim in self.limiters)


def default_controller_rate_limiter(clock: Clock | None = None) -> RateLimiter:
    """client-go's DefaultControllerRateLimiter: per-item 5 ms..1000 s, overall 10 qps / burst 100."""
    return MaxOfRateLimiter(ItemExponentialRateLimiter(0.005, 1000.0), BucketRateLimiter(10.0, 100, clock))


@dataclass(slots=True)
class QueueMetrics:
    adds: int = 0  # adds that queued the item (not the deduplicated ones)
    retries: int = 0  # add_rate_limited calls
    gets: int = 0
    wait_seconds_total: float = 0.0  # time items spent queued before a worker took them
    wait_seconds_max: float = 0.0


class WorkQueue(Generic[T]):
    """See the module docstring. Not thread-safe: use from one event loop."""

    __slots__ = ("_dirty", "_drained", "_getters", "_processing", "_queue", "_queued_at", "_shutting_down",
                 "_waiting", "clock", "metrics", "name", "rate_limiter")

    def __init__(self, name: str = "", *, rate_limiter: RateLimiter | None = None,
                 clock: Clock | None = None) -> None:
        self.name = name
        self.clock: Clock = clock or RealClock()
        self.rate_limiter: RateLimiter = rate_limiter or default_controller_rate_limiter(self.clock)
        self.metrics = QueueMetrics()
        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()  # wanted: queued, or to be queued again when done()
        self._processing: set[T] = set()
        self._queued_at: dict[T, float] = {}
        self._waiting: dict[T, tuple[float, TimerHandle]] = {}  # item -> (ready at, timer)
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False
        self._drained: asyncio.Event | None = None

    def __len__(self) -> int:
        """Depth: items queued and not yet taken."""
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    @property
    def processing(self) -> int:
        return len(self._processing)

    @property
    def waiting(self) -> int:
        """Items with a pending delayed add."""
        return len(self._waiting)

    def add(self, item: T) -> None:
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        self.metrics.adds += 1
        if item in self._processing:
            return  # why: never two workers on one item; done() queues it again
        self._push(item)

    def _push(self, item: T) -> None:
        self._queue.append(item)
        self._queued_at[item] = self.clock.now()
        self._wake_one()

    def _wake_one(self) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def add_after(self, item: T, delay: float) -> None:
        """Add ``item`` after ``delay`` seconds; an earlier pending delay of the item wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(item)
            return
        ready = self.clock.now() + delay
        prev = self._waiting.get(item)
        if prev is not None:
            if prev[0] <= ready:
                return
            prev[1].cancel()
        self._waiting[item] = (ready, self.clock.call_later(delay, lambda: self._fire(item)))

    def _fire(self, item: T) -> None:
        self._waiting.pop(item, None)
        self.add(item)

    def add_rate_limited(self, item: T) -> None:
        """Add ``item`` after its backoff (one more failure counted)."""
        self.metrics.retries += 1
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: T) -> None:
        """``item`` succeeded: reset its backoff."""
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self.rate_limiter.num_requeues(item)

    async def get(self) -> T:
        """The next item (waiting for one); raises :class:`ShutDown` once shut down and empty.

        Call :meth:`done` with the item when finished with it.
        """
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                # why: if we were woken and then cancelled, the wake-up belongs to someone else
                if fut.done() and not fut.cancelled():
                    self._wake_one()
                raise
        return self._take()

    def get_nowait(self) -> T | None:
        """The next item if one is queued, else None (for tests and polling loops)."""
        return self._take() if self._queue else None

    def _take(self) -> T:
        item = self._queue.popleft()
        self._dirty.discard(item)
        self._processing.add(item)
        m = self.metrics
        m.gets += 1
        t0 = self._queued_at.pop(item, None)
        if t0 is not None:
            w = self.clock.now() - t0
            m.wait_seconds_total += w
            m.wait_seconds_max = max(m.wait_seconds_max, w)
        return item

    def done(self, item: T) -> None:
        """Finished with ``item``: if it was added meanwhile, it is queued again now."""
        self._processing.discard(item)
        if item in self._dirty:
            self._push(item)
        elif self._drained is not None and not self._processing:
            self._drained.set()

    def shut_down(self) -> None:
        """Stop taking adds; drop delayed adds; wake every waiting ``get()``."""
        self._shutting_down = True
        for _, h in self._waiting.values():
            h.cancel()
        self._waiting.clear()
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)

    async def shut_down_with_drain(self) -> None:
        """Shut down, then wait until every item being processed is done."""
        self.shut_down()
        if self._processing:
            self._drained = asyncio.Event()
            await self._drained.wait()
