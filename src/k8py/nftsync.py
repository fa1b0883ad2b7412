"""The run and sync shape shared by the node components that each keep one nftables table in step
with the API: the service proxy (``inet k8py-proxy``, :mod:`k8py.proxy.proxier`) and the
NetworkPolicy agent (``inet k8py-netpol``, :mod:`k8py.netpol.controller`).

A :class:`TableSync` owns a :class:`~k8py.client.informer.SharedInformerFactory` (the component
adds its informers and handlers, which call ``self.loop.request()``) and a
:class:`~k8py.client.syncloop.SyncLoop` (kube's ``BoundedFrequencyRunner``). :meth:`TableSync.run`
starts the informers, waits for their caches, and runs the loop until stopped; then it deletes the
table, so a clean stop leaves no rules behind (``k8py killall`` removes what a killed one left).

Each sync asks the component for the state it wants (:meth:`TableSync.desired`) and writes it in
one nft transaction: the whole table (:meth:`TableSync.full_script`) on the first sync, every
``full_interval`` and after a failure; otherwise only the difference from what the table holds
(:meth:`TableSync.partial_script`). A failed transaction leaves the previous rules in force (nft
applies all or nothing) and the loop retries it, as a full sync, after ``retry_interval``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import ClassVar, Generic, TypeVar

from k8py.client.api import Client
from k8py.client.informer import SharedInformerFactory
from k8py.client.syncloop import SyncLoop
from k8py.nftables import Nft, NftError

__all__ = ["TableSync"]

S = TypeVar("S")


class TableSync(Generic[S]):
    """See the module docstring. ``S`` is the component's model of its table's content."""

    what: ClassVar[str]  # the component, as its log lines name it ("service proxy")
    log: ClassVar[logging.Logger]  # the component's logger

    def __init__(self, client: Client, nft: Nft | None = None, *, min_interval: float = 0.25,
                 full_interval: float = 3600.0, retry_interval: float = 5.0) -> None:
        self.nft = nft or Nft()
        self.full_interval = full_interval
        self.loop = SyncLoop(self.sync, min_interval=min_interval, max_interval=full_interval,
                             retry_interval=retry_interval)
        self.factory = SharedInformerFactory(client)
        self.applied: S | None = None  # what the table holds; None: unknown (full sync next)
        self.last_full = 0.0
        self.syncs = 0  # counters for tests and the benchmark
        self.full_syncs = 0
        self.last_error = ""
        self.last_script = ""  # the latest transaction applied
        self.synced = asyncio.Event()  # set after every successful sync

    # -- what each component says ----------------------------------------------------------------
    def desired(self) -> S:
        """The table's content wanted now, from the informers' caches."""
        raise NotImplementedError

    def full_script(self, want: S) -> str:
        """The transaction that rewrites the whole table to hold ``want``."""
        raise NotImplementedError

    def partial_script(self, applied: S, want: S) -> str:
        """The transaction that changes the table from ``applied`` to ``want`` ("" when equal)."""
        raise NotImplementedError

    def cleanup_script(self) -> str:
        """The transaction that deletes the table."""
        raise NotImplementedError

    def caches_synced(self) -> None:
        """Called once the informers' caches are filled, before the first sync."""

    async def after_sync(self, previous: S | None, want: S) -> None:
        """Called after each successful transaction, with what the table held before (None:
        unknown) and holds now; the sync is counted and ``synced`` set after it returns."""

    # -- the shape -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self.factory.start()
        try:
            await self.factory.wait_for_cache_sync()
            self.caches_synced()
            await self.loop.run(stop)
        finally:
            await self.factory.shutdown()
            try:
                await self.nft.apply_async(self.cleanup_script())
            except NftError as e:
                self.log.warning("%s: could not remove table on stop: %s", self.what, e)

    async def sync(self) -> bool:
        """One sync; True when the table now holds what is wanted."""
        want = self.desired()
        now = time.monotonic()
        previous = self.applied
        base = None if now - self.last_full >= self.full_interval else previous
        script = self.full_script(want) if base is None else self.partial_script(base, want)
        if script:
            try:
                await self.nft.apply_async(script)
            except NftError as e:
                self.applied = None
                self.last_error = str(e)
                self.log.error("%s: nft transaction failed, the previous rules stay; retrying with a full sync: %s",
                               self.what, e)
                return False
            self.last_script = script
        self.applied = want
        await self.after_sync(previous, want)
        self.syncs += 1
        if base is None:
            self.full_syncs += 1
            self.last_full = now
        self.synced.set()
        return True
