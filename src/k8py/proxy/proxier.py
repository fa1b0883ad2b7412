"""The service proxy on a node (``k8py proxy``; kube-proxy's nftables mode): watches Services and
EndpointSlices and keeps the ``inet k8py-proxy`` table in step with them.

Run and sync as the NetworkPolicy agent's (:class:`~k8py.nftsync.TableSync`: kube-proxy's
``BoundedFrequencyRunner``, full and partial nft transactions, retries, the table deleted on a clean
stop): a change marks its Service dirty and asks for a sync; a sync runs at once unless the last
one was less than ``min_interval`` ago (then at that moment: changes in between coalesce). Each
sync recomputes only the dirty Services' rules and applies only the difference
(:func:`~k8py.proxy.rules.partial_sync`); the first sync, every ``full_interval`` and the sync
after a failure rewrite the whole table (:func:`~k8py.proxy.rules.full_sync`). After each sync the
UDP conntrack entries it left stale are deleted. Rules of other tables are never touched.
"""

from __future__ import annotations

import logging
from typing import Any

from k8py.client.api import Client
from k8py.nftables import Nft
from k8py.nftsync import TableSync
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


class Proxier(TableSync[dict[str, Unit]]):
    what = "service proxy"
    log = log

    def __init__(self, client: Client, cfg: ProxyConfig, nft: Nft | None = None, *, min_interval: float = 0.25,
                 full_interval: float = 3600.0, retry_interval: float = 5.0,
                 conntrack: Conntrack | None = None) -> None:
        super().__init__(client, nft, min_interval=min_interval, full_interval=full_interval,
                         retry_interval=retry_interval)
        self.cfg = cfg
        self.conntrack = conntrack or Conntrack()
        self.services = self.factory.informer(("v1", "Service"))
        self.slices = self.factory.informer(("discovery.k8s.io/v1", "EndpointSlice"))
        self.slices.add_indexer(SLICE_INDEX, _service_key)
        self.wanted: dict[str, Unit] = {}  # the units of every Service, kept current for the dirty ones
        self.unit_keys: dict[str, list[str]] = {}  # "ns/name" -> its units' keys
        self.dirty: set[str] = set()
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
            self.wanted.pop(k, None)
        ns, _, name = key.partition("/")
        svc = self.services.get(name, ns)
        if svc is None:
            return
        sps = service_ports(svc)
        if not sps:
            return
        eps = merge_endpoints((ns, name, slice_endpoints(sl)) for sl in self.slices.store.by_index(SLICE_INDEX, key))
        got = units(sps, eps, self.cfg)
        self.wanted.update(got)
        self.unit_keys[key] = list(got)

    # -- the sync (TableSync) -----------------------------------------------------------------------
    def caches_synced(self) -> None:
        for svc in self.services.list():
            self._on_service(svc)

    def desired(self) -> dict[str, Unit]:
        dirty, self.dirty = self.dirty, set()
        for key in dirty:
            self._recompute(key)
        return dict(self.wanted)

    def full_script(self, want: dict[str, Unit]) -> str:
        return full_sync(self.cfg, want)

    def partial_script(self, applied: dict[str, Unit], want: dict[str, Unit]) -> str:
        return partial_sync(applied, want)

    def cleanup_script(self) -> str:
        return cleanup()

    async def after_sync(self, previous: dict[str, Unit] | None, want: dict[str, Unit]) -> None:
        await self.conntrack.run(cleanup_commands(previous or {}, want))
