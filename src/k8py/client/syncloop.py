"""A bounded-frequency sync loop (kube's ``BoundedFrequencyRunner``), for the components that
turn many watched objects into one piece of node state at a time (the service proxy's and the
NetworkPolicy agent's nftables tables, the ingress controller's nginx configuration).

:meth:`SyncLoop.request` asks for a sync. It runs at once unless the last one started less than
``min_interval`` ago; then it runs when that interval ends, and requests made meanwhile coalesce
into it. With ``max_interval`` it also runs at least that often with no request. A sync that
reports failure is retried after ``retry_interval``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class SyncLoop:
    def __init__(self, sync: Callable[[], Awaitable[bool]], *, min_interval: float,
                 max_interval: float | None = None, retry_interval: float = 5.0) -> None:
        self.sync = sync  # one sync; False: failed, try again after retry_interval
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.retry_interval = retry_interval
        self.wake = asyncio.Event()
        self.last_sync = 0.0

    def request(self) -> None:
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Sync once at once, then on requests, until ``stop`` is set."""
        self.wake.set()
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                waiter = asyncio.ensure_future(self.wake.wait())
                timeout = (None if self.max_interval is None
                           else max(0.0, self.last_sync + self.max_interval - time.monotonic()))
                await asyncio.wait({waiter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if stop.is_set():
                    break
                delay = self.last_sync + self.min_interval - time.monotonic()
                if delay > 0:  # bounded frequency: requests meanwhile coalesce into one sync
                    await asyncio.wait({stopper}, timeout=delay)
                    if stop.is_set():
                        break
                self.wake.clear()
                self.last_sync = time.monotonic()
                if not await self.sync():
                    await asyncio.wait({stopper}, timeout=self.retry_interval)
                    self.wake.set()
        finally:
            stopper.cancel()
