"""What the service proxy programs, from Services and EndpointSlices (kube-proxy's
``ServicePortInfo`` and ``Endpoint``), as plain values the rule writer turns into nftables.

One :class:`ServicePort` per port of a Service that gets a virtual IP (not ExternalName, not
headless); its endpoints are the EndpointSlices' addresses for the port of the same name and
protocol. :func:`usable_endpoints` picks which of them get traffic, as kube-proxy's
``CategorizeEndpoints``: the ready ones; when none is ready, the serving-and-terminating ones
(so connections drain instead of failing during a rolling update); with a ``Local`` traffic
policy only this node's.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # kube's ClientIP default: 3 hours


@dataclass(frozen=True, slots=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # tcp, udp, sctp
    port: int
    cluster_ips: tuple[str, ...]
    node_port: int = 0
    external_ips: tuple[str, ...] = ()  # spec.externalIPs and the load balancer's ingress IPs
    affinity_timeout: int = 0  # seconds of sessionAffinity: ClientIP; 0: none
    internal_local: bool = False  # internalTrafficPolicy: Local
    external_local: bool = False  # externalTrafficPolicy: Local

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name}" if self.port_name else f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""


def family(ip: str) -> int:
    return 6 if ":" in ip else 4


def service_ports(svc: Obj) -> list[ServicePort]:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    typ = spec.get("type") or "ClusterIP"
    if typ == "ExternalName":
        return []
    ips = tuple(ip for ip in (spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
                if ip and ip != "None")
    if not ips:
        return []  # headless: DNS answers with the endpoints, nothing to proxy
    lb = tuple(i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
               if isinstance(i, dict) and i.get("ip"))
    external = tuple(dict.fromkeys([*(spec.get("externalIPs") or ()), *(lb if typ == "LoadBalancer" else ())]))
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    out = []
    for p in spec.get("ports") or ():
        if not isinstance(p, dict) or not isinstance(p.get("port"), int):
            continue
        out.append(ServicePort(
            namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
            port_name=str(p.get("name") or ""), protocol=str(p.get("protocol") or "TCP").lower(), port=p["port"],
            cluster_ips=ips, node_port=int(p.get("nodePort") or 0) if typ in ("NodePort", "LoadBalancer") else 0,
            external_ips=external, affinity_timeout=affinity,
            internal_local=spec.get("internalTrafficPolicy") == "Local",
            external_local=spec.get("externalTrafficPolicy") == "Local" and typ in ("NodePort", "LoadBalancer")))
    return out


def slice_endpoints(sl: Obj) -> dict[tuple[str, str], list[Endpoint]]:
    """The slice's endpoints by (port name, protocol)."""
    out: dict[tuple[str, str], list[Endpoint]] = {}
    ports = [p for p in sl.get("ports") or () if isinstance(p, dict) and isinstance(p.get("port"), int)]
    for p in ports:
        eps = out.setdefault((str(p.get("name") or ""), str(p.get("protocol") or "TCP").lower()), [])
        for ep in sl.get("endpoints") or ():
            if not isinstance(ep, dict) or not ep.get("addresses"):
                continue
            cond = ep.get("conditions") or {}
            ready = cond.get("ready") is not False
            eps.append(Endpoint(str(ep["addresses"][0]), p["port"], ready=ready,
                                serving=cond.get("serving", ready) is not False,
                                terminating=bool(cond.get("terminating")), node_name=str(ep.get("nodeName") or "")))
    return out


def usable_endpoints(sp: ServicePort, eps: list[Endpoint], node_name: str, *, external: bool) -> list[Endpoint]:
    """kube-proxy's CategorizeEndpoints for one kind of traffic (cluster or external)."""
    local_only = sp.external_local if external else sp.internal_local
    pool = [e for e in eps if e.node_name == node_name] if local_only else eps
    ready = [e for e in pool if e.ready]
    if ready:
        return ready
    return [e for e in pool if e.serving and e.terminating]


def in_family(ips: tuple[str, ...], fam: int) -> list[str]:
    return [ip for ip in ips if family(ip) == fam and _valid(ip)]


def _valid(ip: str) -> bool:
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return False
    return True
