"""Cluster DNS as an API client: informers on Namespaces, Services and EndpointSlices keep a
:class:`~k8py.dns.zone.ClusterZone` current for the :class:`~k8py.dns.server.DNSServer`, and the
``kube-system/kube-dns`` Service (at the tenth address of the service range, as kubeadm and k3s
place it) with an EndpointSlice naming where this server listens, so that pods reach it through
the Service's ClusterIP.

It runs as the user ``system:k8py-dns`` (ClusterRole ``system:k8py-dns``: read Namespaces,
Services, EndpointSlices; write the ``kube-dns`` Service and its EndpointSlice in kube-system), as
CoreDNS runs under its own ``system:coredns`` role.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterable
from typing import Any

from k8py.client.api import Client
from k8py.client.errors import AlreadyExistsError, ApiError, ConflictError
from k8py.client.informer import SharedInformerFactory
from k8py.dns.server import Addr, DNSServer
from k8py.dns.zone import SERVICE_NAME_LABEL, ClusterZone

log = logging.getLogger(__name__)

Obj = dict[str, Any]

USER = "system:k8py-dns"
SERVICE_NAME = "kube-dns"
SLICE_NAME = "kube-dns-k8py"
MANAGED_BY = "k8py-dns"


def cluster_dns_ip(service_cidr: str) -> str:
    """The tenth address of the (first) service range: 10.43.0.10 for 10.43.0.0/16."""
    net = ipaddress.ip_network(service_cidr.split(",")[0].strip(), strict=False)
    return str(net.network_address + 10)


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class ClusterDNS:
    def __init__(self, client: Client, *, domain: str, listen: Iterable[Addr], upstreams: Iterable[Addr] = (),
                 service_ip: str = "", advertise: str = "") -> None:
        self.client = client
        self.zone = ClusterZone(domain)
        self.server = DNSServer(self.zone, upstreams)
        self.listen = list(listen)
        self.service_ip = service_ip
        self.advertise = advertise  # the address pods reach this server at ("" = the first listen one)
        self.factory = SharedInformerFactory(client)
        self._wire()

    def _wire(self) -> None:
        z = self.zone
        ns = self.factory.informer(("v1", "Namespace"))
        ns.add_handler(on_add=lambda o: z.set_namespace(_key(o)[1]), on_update=lambda _o, n: z.set_namespace(_key(n)[1]),
                       on_delete=lambda o: z.delete_namespace(_key(o)[1]))
        svc = self.factory.informer(("v1", "Service"))
        svc.add_handler(on_add=z.set_service, on_update=lambda _o, n: z.set_service(n),
                        on_delete=lambda o: z.delete_service(*_key(o)))
        eps = self.factory.informer(("discovery.k8s.io/v1", "EndpointSlice"))
        eps.add_handler(on_add=z.set_slice, on_update=lambda _o, n: z.set_slice(n),
                        on_delete=lambda o: z.delete_slice(*_key(o)))

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.server.start(self.listen)
            self.factory.start()
            if not await self.factory.wait_for_cache_sync(timeout=60):
                log.warning("cluster DNS: informers not synced after 60 s; answering from what is known")
            if self.service_ip:
                await self.publish()
            await stop.wait()
        finally:
            await self.server.stop()
            await self.factory.shutdown()

    async def publish(self) -> None:
        """The ``kube-dns`` Service at its fixed address, and an EndpointSlice to this server."""
        host, port = self.server.listening[0]
        addr = self.advertise or host
        family = "IPv6" if ":" in addr else "IPv4"
        svc: Obj = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": SERVICE_NAME, "namespace": "kube-system",
                            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                                       "kubernetes.io/cluster-service": "true"}},
               "spec": {"clusterIP": self.service_ip, "clusterIPs": [self.service_ip],
                        "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": port},
                                  {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": port}]}}
        sl: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": SLICE_NAME, "namespace": "kube-system",
                           "labels": {SERVICE_NAME_LABEL: SERVICE_NAME,
                                      "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
              "addressType": family,
              "endpoints": [{"addresses": [addr], "conditions": {"ready": True}}],
              "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                        {"name": "dns-tcp", "port": port, "protocol": "TCP"}]}
        for kind, obj in ((("v1", "Service"), svc), (("discovery.k8s.io/v1", "EndpointSlice"), sl)):
            try:
                await self.client.create(kind, obj, namespace="kube-system")
            except AlreadyExistsError:
                if kind[1] == "EndpointSlice":
                    await self._update_slice(obj)
            except ApiError as e:
                log.error("cluster DNS: cannot create %s kube-system/%s: %s", kind[1], obj["metadata"]["name"], e)

    async def _update_slice(self, want: Obj) -> None:
        for _ in range(5):
            cur = await self.client.get(("discovery.k8s.io/v1", "EndpointSlice"), SLICE_NAME, namespace="kube-system")
            if all(cur.get(k) == want[k] for k in ("addressType", "endpoints", "ports")):
                return
            new = {**cur, "addressType": want["addressType"], "endpoints": want["endpoints"], "ports": want["ports"]}
            try:
                await self.client.update(("discovery.k8s.io/v1", "EndpointSlice"), new, namespace="kube-system")
                return
            except ConflictError:
                continue
