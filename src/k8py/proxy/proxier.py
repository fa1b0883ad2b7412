"""The service proxy on a node (``k8py proxy``; kube-proxy's nftables mode): watches Services and
EndpointSlices and keeps the ``inet k8py-proxy`` table in step with them.

Sync loop, as kube-proxy's ``BoundedFrequencyRunner`` (:class:`~k8py.client.syncloop.SyncLoop`): a
change marks its Service dirty and asks for a sync; a sync runs at once unless the last one was
less than ``min_interval`` ago (then at that moment: changes in between coalesce). Each sync recomputes only the dirty Services' rules
and applies only the difference (:func:`~k8py.proxy.rules.partial_sync`) in one nft transaction;
the first sync, every ``full_interval`` and the sync after a failure rewrite the whole table
(:func:`~k8py.proxy.rules.full_sync`). A failed transaction leaves the previous rules in force
(nft applies all or nothing) and is retried with a full sync after a back-off. On a clean stop the
table is deleted; rules of other tables are never touched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from k8py.client.api import Client
from k8py.client.informer import SharedInformerFactory
from k8py.client.syncloop import SyncLoop
from k8py.nftables import Nft, NftError
from k8py.proxy.conntrack import Conntrack, cleanup_commands
from k8py.proxy.model import SERVICE_NAME_LABEL, service_ports, slice_endpoints
from k8py.proxy.rules import ProxyConfig, Unit, cleanup, full_sync, merge_endpoints, partial_sync, units

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SLICE_INDEX = "k8py-proxy/service"


def _service_key(sl: Obj) -> list[str]:
    meta = sl.get("metadata") or {}
    svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace', '')}/{svc}"] if svc else []


class Proxier:
    def __init__(self, client: Client, cfg: ProxyConfig, nft: Nft | None = None, *, min_interval: float = 0.25,
                 full_interval: float = 3600.0, retry_interval: float = 5.0,
                 conntrack: Conntrack | None = None) -> None:
        self.cfg = cfg
        self.nft = nft or Nft()
        self.conntrack = conntrack or Conntrack()
        self.full_interval = full_interval
        self.loop = SyncLoop(self.sync, min_interval=min_interval, max_interval=full_interval,
                             retry_interval=retry_interval)
        self.factory = SharedInformerFactory(client)
        self.services = self.factory.informer(("v1", "Service"))
        self.slices = self.factory.informer(("discovery.k8s.io/v1", "EndpointSlice"))
        self.slices.add_indexer(SLICE_INDEX, _service_key)
        self.desired: dict[str, Unit] = {}
        self.unit_keys: dict[str, list[str]] = {}  # "ns/name" -> its units' keys
        self.applied: dict[str, Unit] | None = None  # what the table holds; None: unknown (full sync next)
        self.dirty: set[str] = set()
        self.last_full = 0.0
        self.syncs = 0  # counters for tests and the benchmark
        self.full_syncs = 0
        self.last_error = ""
        self.synced = asyncio.Event()  # set after every successful sync
        self.services.add_handler(on_add=self._on_service, on_update=lambda _o, n: self._on_service(n),
                                  on_delete=self._on_service)
        self.slices.add_handler(on_add=self._on_slice, on_update=self._on_slice_update, on_delete=self._on_slice)

    # -- change tracking ----------------------------------------------------------------------------
    def _mark(self, key: str) -> None:
        self.dirty.add(key)
        self.loop.request()

    def _on_service(self, svc: Obj) -> None:
        meta = svc.get("metadata") or {}
        self._mark(f"{meta.get('namespace', '')}/{meta.get('name', '')}")

    def _on_slice(self, sl: Obj) -> None:
        for k in _service_key(sl):
            self._mark(k)

    def _on_slice_update(self, old: Obj, new: Obj) -> None:
        self._on_slice(old)
        self._on_slice(new)

    def _recompute(self, key: str) -> None:
        for k in self.unit_keys.pop(key, ()):
            self.desired.pop(k, None)
        ns, _, name = key.partition("/")
        svc = self.services.get(name, ns)
        if svc is None:
            return
        sps = service_ports(svc)
        if not sps:
            return
        eps = merge_endpoints((ns, name, slice_endpoints(sl)) for sl in self.slices.store.by_index(SLICE_INDEX, key))
        got = units(sps, eps, self.cfg)
        self.desired.update(got)
        self.unit_keys[key] = list(got)

    # -- the loop -------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self.factory.start()
        try:
            await self.factory.wait_for_cache_sync()
            for svc in self.services.list():
                self._on_service(svc)
            await self.loop.run(stop)
        finally:
            await self.factory.shutdown()
            try:
                await self.nft.apply_async(cleanup())
            except NftError as e:
                log.warning("service proxy: could not remove table on stop: %s", e)

    async def sync(self) -> bool:
        """One sync; True when the table now matches the Services."""
        dirty, self.dirty = self.dirty, set()
        for key in dirty:
            self._recompute(key)
        now = time.monotonic()
        full = self.applied is None or now - self.last_full >= self.full_interval
        script = full_sync(self.cfg, self.desired) if full else partial_sync(self.applied or {}, self.desired)
        if script:
            try:
                await self.nft.apply_async(script)
            except NftError as e:
                self.applied = None
                self.last_error = str(e)
                log.error("service proxy: nft transaction failed, the previous rules stay; retrying with a full "
                          "sync: %s", e)
                return False
        stale = cleanup_commands(self.applied or {}, self.desired)
        self.applied = dict(self.desired)
        await self.conntrack.run(stale)
        self.syncs += 1
        if full:
            self.full_syncs += 1
            self.last_full = now
        self.synced.set()
        return True
