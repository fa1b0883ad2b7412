"""A bounded-frequency sync loop (kube's ``BoundedFrequencyRunner``), for the components that
turn many watched objects into one piece of node state at a time (the service proxy's and the
NetworkPolicy agent's nftables tables, the ingress controller's nginx configuration).

:meth:`SyncLoop.request` asks for a sync. It runs at once unless the last one started less than
``min_interval`` ago; then it runs when that interval ends, and requests made meanwhile coalesce
into it. With ``max_interval`` it also runs at least that often with no request. A sync that
reports failure is retried ``retry_interval`` after it ended, or sooner when a request comes
meanwhile (kube's ``RetryAfter``: a retry only brings the next run forward).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["SyncLoop"]

Sync = Callable[[], Awaitable[bool]]


class SyncLoop:
    def __init__(self, sync: Sync, *, min_interval: float, max_interval: float | None = None,
                 retry_interval: float = 5.0) -> None:
        self.sync = sync  # one sync; False: failed, try again after retry_interval
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.retry_interval = retry_interval
        self.wake = asyncio.Event()
        self.last_sync = 0.0  # when the latest sync started (monotonic); 0: none yet
        self.retry_at: float | None = None  # when a failed sync is tried again

    def request(self) -> None:
        self.wake.set()

    async def sync_now(self, sync: Sync | None = None) -> bool:
        """One sync at once, counted as the loop's latest (the next waits ``min_interval`` from its
        start; a failure is retried). ``sync``: this time another callable than the loop's, e.g. a
        component's first sync, whose exception should end the component rather than be retried."""
        self.wake.clear()  # requests from here on come after what this sync reads: they wake the next
        self.last_sync = time.monotonic()
        ok = await (sync or self.sync)()
        self.retry_at = None if ok else time.monotonic() + self.retry_interval
        return ok

    def _timeout(self) -> float | None:
        """How long the loop may wait for a request: until a retry or the periodic sync is due."""
        due = [t for t in (self.retry_at, None if self.max_interval is None else self.last_sync + self.max_interval)
               if t is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    async def run(self, stop: asyncio.Event) -> None:
        """Sync at once (unless :meth:`sync_now` ran before), then on requests, until ``stop`` is set."""
        if not self.last_sync:
            self.wake.set()
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                waiter = asyncio.ensure_future(self.wake.wait())
                await asyncio.wait({waiter, stopper}, timeout=self._timeout(), return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if stop.is_set():
                    break
                delay = self.last_sync + self.min_interval - time.monotonic()
                if delay > 0:  # bounded frequency: requests meanwhile coalesce into one sync
                    await asyncio.wait({stopper}, timeout=delay)
                    if stop.is_set():
                        break
                await self.sync_now()
        finally:
            stopper.cancel()
