"""The cloud controller's service controller (kube's cloud-controller-manager ``service``
controller): LoadBalancer Services get addresses from the cloud provider, written to
``status.loadBalancer.ingress``; a Service that cannot get one gets a Warning event saying why
(never a silent ``<pending>``) and is retried with back-off (kube's per-Service 5 s doubling to
5 min), and at once when another Service gives its address back; addresses are given back when the
Service goes or stops being a LoadBalancer (kube's ``service.kubernetes.io/load-balancer-cleanup``
finalizer keeps a deleted Service until then).

Services with a ``spec.loadBalancerClass`` belong to another implementation and are left alone,
as kube's controller leaves them.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from k8py.client.api import Client
from k8py.client.controller import Controller, Result
from k8py.client.errors import ConflictError, NotFoundError
from k8py.client.events import EventSink
from k8py.client.informer import SharedInformerFactory
from k8py.client.workqueue import ItemExponentialRateLimiter, WorkQueue
from k8py.cloud.provider import CloudProvider, LoadBalancerError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SERVICE = ("v1", "Service")
NODE = ("v1", "Node")
FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
USER = "system:cloud-controller-manager"
# kube's service controller retries a Service it could not serve after 5 s, doubling up to 5 min
MIN_RETRY_DELAY = 5.0
MAX_RETRY_DELAY = 300.0


def wants_lb(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return (spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")
            and not (svc.get("metadata") or {}).get("deletionTimestamp"))


class ServiceLBController:
    def __init__(self, client: Client, provider: CloudProvider, *, workers: int = 2,
                 retry_delays: tuple[float, float] = (MIN_RETRY_DELAY, MAX_RETRY_DELAY)) -> None:
        self.client = client
        self.provider = provider
        self.factory = SharedInformerFactory(client)
        self.services = self.factory.informer(SERVICE)
        self.nodes = self.factory.informer(NODE)
        self.events = EventSink(client, "service-controller")
        queue: WorkQueue[str] = WorkQueue("service-lb-controller",
                                          rate_limiter=ItemExponentialRateLimiter(*retry_delays))
        self.controller = Controller("service-lb-controller", self.reconcile, queue, workers=workers,
                                     wait_for=(self.services, self.nodes))
        self.controller.watch(self.services, skip_unchanged=True)
        # without a pool the addresses are the nodes': a node change may change every Service's
        self.nodes.add_handler(on_add=self._nodes_changed, on_update=self._node_updated,
                               on_delete=self._nodes_changed)

    def _nodes_changed(self, _node: Obj) -> None:
        for svc in self.services.list():
            if wants_lb(svc):
                self.controller.enqueue(svc)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        def facts(n: Obj) -> Any:
            st = n.get("status") or {}
            return (st.get("addresses"), [(c.get("type"), c.get("status")) for c in st.get("conditions") or ()
                                          if c.get("type") == "Ready"])

        if facts(old) != facts(new):
            self._nodes_changed(new)

    def _wake_waiting(self) -> None:
        """An address went back to the pool: the Services still waiting for one try again now
        rather than at the end of their back-off."""
        for svc in self.services.list():
            if wants_lb(svc) and not ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
                self.controller.enqueue(svc)

    async def run(self, stop: asyncio.Event) -> None:
        self.events.start()
        self.factory.start()
        try:
            await self.factory.wait_for_cache_sync()
            restore = getattr(self.provider, "restore", None)
            if restore is not None:
                restore(self.services.list())
            await self.controller.run(stop)
        finally:
            await self.factory.shutdown()
            await self.events.stop()

    async def reconcile(self, key: str) -> Result | None:
        ns, _, name = key.partition("/")
        svc = self.services.get(name, ns)
        if svc is None:
            return None
        meta = svc.get("metadata") or {}
        has_finalizer = FINALIZER in (meta.get("finalizers") or [])
        if not wants_lb(svc):
            if has_finalizer or ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
                self.provider.delete_load_balancer(svc)
                self._wake_waiting()
                if not (svc.get("spec") or {}).get("loadBalancerClass"):
                    await self._write(svc, ingress=[], finalizer=False)
                    if not meta.get("deletionTimestamp"):
                        self.events.event(svc, "Normal", "DeletedLoadBalancer", "Deleted load balancer")
            return None
        if not has_finalizer:
            await self._write(svc, finalizer=True)
            return None  # the update wakes us again with the finalizer in place
        self.events.event(svc, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
        try:
            ingress = self.provider.ensure_load_balancer(svc, self.nodes.list())
        except LoadBalancerError as e:
            self.events.event(svc, "Warning", "SyncLoadBalancerFailed", f"Error syncing load balancer: {e}")
            log.info("service %s: no load balancer: %s", key, e)
            return Result(requeue=True)
        current = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if current != ingress:
            await self._write(svc, ingress=ingress)
        self.events.event(svc, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")
        return None

    async def _write(self, svc: Obj, *, ingress: list[Obj] | None = None, finalizer: bool | None = None) -> None:
        meta = svc["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        for _ in range(5):
            try:
                cur = copy.deepcopy(await self.client.get(SERVICE, name, ns))
            except NotFoundError:
                return
            try:
                if finalizer is not None:
                    fins = [f for f in cur["metadata"].get("finalizers") or [] if f != FINALIZER]
                    if finalizer:
                        fins.append(FINALIZER)
                    if fins != (cur["metadata"].get("finalizers") or []):
                        cur["metadata"]["finalizers"] = fins
                        cur = await self.client.update(SERVICE, cur, ns)
                if ingress is not None:
                    st = cur.setdefault("status", {})
                    if (st.get("loadBalancer") or {}).get("ingress", []) != ingress:
                        st["loadBalancer"] = {"ingress": ingress} if ingress else {}
                        await self.client.update_status(SERVICE, cur, ns)
                return
            except ConflictError:
                continue
            except NotFoundError:
                return
