"""The cloud provider interface of the cloud controller (kube's ``cloudprovider.Interface``, the
parts k8py uses) and the built-in local provider.

A provider gives LoadBalancer Services their addresses (``ensure_load_balancer`` /
``delete_load_balancer``) and tells the node controller a node's addresses and zone. The
**local** provider (like k3s's ServiceLB, or MetalLB in layer-2 mode) needs no cloud:

- with ``--lb-pool`` (CIDRs or ``first-last`` ranges, IPv4 and/or IPv6) each LoadBalancer
  Service gets an address of the pool per family it has (``spec.loadBalancerIP`` honoured when
  it is in the pool and free); the service proxy forwards traffic for it;
- without a pool, a Service gets the nodes' InternalIPs (as ServiceLB), and then two Services
  cannot share a port: the later one is refused with a clear reason.

Allocations are kept in the Services' own status; :meth:`LocalProvider.restore` rebuilds them
after a restart.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Obj = dict[str, Any]
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


class LoadBalancerError(Exception):
    """Why a Service cannot have a load balancer now (the event's message)."""


class CloudProvider(Protocol):
    name: str

    def ensure_load_balancer(self, svc: Obj, nodes: Sequence[Obj]) -> list[Obj]:
        """The Service's ``status.loadBalancer.ingress``; raises LoadBalancerError."""

    def delete_load_balancer(self, svc: Obj) -> None: ...

    def node_addresses(self, node: Obj) -> list[Obj]: ...

    def zone(self, node: Obj) -> str: ...


def parse_pool(spec: str) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address,
                                       ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """``10.45.0.0/29,192.0.2.10-192.0.2.20,fd45::/120`` -> inclusive (first, last) ranges. A
    CIDR gives its usable addresses (network and broadcast left out for IPv4 /30 and larger)."""
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if "-" in part:
            a, _, b = part.partition("-")
            first, last = ipaddress.ip_address(a.strip()), ipaddress.ip_address(b.strip())
            if first.version != last.version or first > last:  # type: ignore[operator]
                raise ValueError(f"invalid range {part!r}: the first address must not be after the last")
            out.append((first, last))
        else:
            net = ipaddress.ip_network(part, strict=False)
            if net.version == 4 and net.num_addresses >= 4:
                out.append((net.network_address + 1, net.broadcast_address - 1))
            else:
                out.append((net.network_address, net.broadcast_address))
    if not out:
        raise ValueError("an empty pool")
    return out


def _family(ip: str) -> int:
    return 6 if ":" in ip else 4


@dataclass
class LocalProvider:
    pool: str = ""  # "" -> the nodes' addresses
    name: str = "k8py-local"
    _ranges: list[tuple[Any, Any]] = field(default_factory=list)
    _owner: dict[str, str] = field(default_factory=dict)  # address -> "ns/name"
    _ports: dict[tuple[str, int], str] = field(default_factory=dict)  # node-address mode: (proto, port) -> owner

    def __post_init__(self) -> None:
        if self.pool:
            self._ranges = parse_pool(self.pool)

    @staticmethod
    def key(svc: Obj) -> str:
        m = svc.get("metadata") or {}
        return f"{m.get('namespace', '')}/{m.get('name', '')}"

    def restore(self, services: Iterable[Obj]) -> None:
        """Take back what the Services' status says they hold (after a restart)."""
        for svc in services:
            if (svc.get("spec") or {}).get("type") != "LoadBalancer":
                continue
            ips = [str(i["ip"]) for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
                   if isinstance(i, dict) and i.get("ip")]
            if self.pool:
                for ip in ips:
                    if self._in_pool(ip):
                        self._owner.setdefault(ip, self.key(svc))
            elif ips:
                for p in self._svc_ports(svc):
                    self._ports.setdefault(p, self.key(svc))

    def _in_pool(self, ip: str) -> bool:
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(first.version == a.version and first <= a <= last for first, last in self._ranges)

    def _candidates(self, version: int) -> Iterator[str]:
        for first, last in self._ranges:
            if first.version != version:
                continue
            a = first
            while a <= last:
                yield str(a)
                a += 1

    @staticmethod
    def _svc_ports(svc: Obj) -> list[tuple[str, int]]:
        return [(str(p.get("protocol") or "TCP"), int(p["port"])) for p in (svc.get("spec") or {}).get("ports") or ()
                if isinstance(p, dict) and isinstance(p.get("port"), int)]

    def ensure_load_balancer(self, svc: Obj, nodes: Sequence[Obj]) -> list[Obj]:
        key = self.key(svc)
        spec = svc.get("spec") or {}
        families = [4 if f == "IPv4" else 6 for f in spec.get("ipFamilies") or ["IPv4"]]
        if not self.pool:
            return self._node_addresses(svc, key, nodes, families)
        held = {ip for ip, owner in self._owner.items() if owner == key}
        want = str(spec.get("loadBalancerIP") or "")
        got: list[str] = []
        for fam in families:
            mine = sorted(ip for ip in held if _family(ip) == fam)
            if want and _family(want) == fam:
                if not self._in_pool(want):
                    raise LoadBalancerError(f"spec.loadBalancerIP {want} is not in the load balancer pool {self.pool}")
                owner = self._owner.get(want)
                if owner not in (None, key):
                    raise LoadBalancerError(f"spec.loadBalancerIP {want} is already used by Service {owner}")
                got.append(want)
                continue
            if mine:
                got.append(mine[0])
                continue
            free = next((ip for ip in self._candidates(fam) if ip not in self._owner), None)
            if free is None:
                if any(first.version == fam for first, _ in self._ranges):
                    raise LoadBalancerError(f"no IPv{fam} address left in the load balancer pool {self.pool}")
                continue  # the pool has no address of this family: the Service gets the others
            got.append(free)
        if not got:
            raise LoadBalancerError(f"the load balancer pool {self.pool} has no address for the Service's IP "
                                    f"families {spec.get('ipFamilies') or ['IPv4']}")
        for ip in held - set(got):
            del self._owner[ip]
        for ip in got:
            self._owner[ip] = key
        return [{"ip": ip, "ipMode": "VIP"} for ip in got]

    def _node_addresses(self, svc: Obj, key: str, nodes: Sequence[Obj], families: list[int]) -> list[Obj]:
        ports = self._svc_ports(svc)
        for p in ports:
            owner = self._ports.get(p)
            if owner not in (None, key):
                raise LoadBalancerError(f"port {p[1]}/{p[0]} on the nodes' addresses is already used by Service "
                                        f"{owner} (give the cluster a pool of addresses with --lb-pool)")
        ips: list[str] = []
        for node in nodes:
            conds = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or ()}
            if conds.get("Ready") != "True":
                continue
            for a in (node.get("status") or {}).get("addresses") or ():
                if a.get("type") == "InternalIP" and a.get("address") and _family(a["address"]) in families:
                    ips.append(a["address"])
        if not ips:
            raise LoadBalancerError("no ready node with an address to give the Service")
        for p, owner in list(self._ports.items()):
            if owner == key and p not in ports:
                del self._ports[p]
        for p in ports:
            self._ports[p] = key
        return [{"ip": ip, "ipMode": "VIP"} for ip in sorted(set(ips), key=lambda i: (_family(i), i))]

    def delete_load_balancer(self, svc: Obj) -> None:
        key = self.key(svc)
        for ip in [ip for ip, owner in self._owner.items() if owner == key]:
            del self._owner[ip]
        for p in [p for p, owner in self._ports.items() if owner == key]:
            del self._ports[p]

    def node_addresses(self, node: Obj) -> list[Obj]:
        return list((node.get("status") or {}).get("addresses") or ())

    def zone(self, node: Obj) -> str:
        return str(((node.get("metadata") or {}).get("labels") or {}).get("topology.kubernetes.io/zone") or "")
