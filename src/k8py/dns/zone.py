"""The cluster's DNS records: what CoreDNS's ``kubernetes`` plugin answers, from Services,
EndpointSlices and Namespaces (the Kubernetes DNS-Based Service Discovery specification).

``ClusterZone`` holds a small model of those objects (updated by the informers in
:mod:`k8py.dns.server`) and answers one question at a time with :meth:`ClusterZone.resolve`:

- ``svc.ns.svc.<zone>``: A/AAAA with the ClusterIPs of that family; a headless Service answers
  with its ready endpoints' addresses; an ExternalName Service with a CNAME;
- ``host.svc.ns.svc.<zone>``: one endpoint of a headless Service, by its ``hostname``
  (StatefulSet pods) or its address with dashes (``10-42-0-5``);
- ``_port._proto.svc.ns.svc.<zone>`` (and the Service's name itself): SRV, one record per port
  (per endpoint and port for a headless Service), with the targets' addresses as additional
  records;
- ``a-b-c-d.ns.pod.<zone>``: the address written in the name (CoreDNS's ``pods insecure``, what
  kubeadm and k3s configure), if the namespace exists;
- PTR in ``in-addr.arpa`` and ``ip6.arpa`` for ClusterIPs and endpoint addresses;
- names that do not exist are NXDOMAIN; names that exist without records of the asked type
  (``ns.svc.<zone>`` of an existing namespace, AAAA of an IPv4-only Service) are NOERROR with
  no answer (NODATA), both with the zone's SOA in the authority section, as CoreDNS.

Anything else (other zones, reverse names the cluster does not know) is ``None``: the server
forwards it upstream.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.reversename
import dns.rrset

Obj = dict[str, Any]

DEFAULT_DOMAIN = "cluster.local"
DEFAULT_TTL = 5  # CoreDNS's kubernetes plugin default
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
IN = dns.rdataclass.IN
A, AAAA, SRV, PTR, CNAME, SOA, NS, ANY = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV,
                                         dns.rdatatype.PTR, dns.rdatatype.CNAME, dns.rdatatype.SOA,
                                         dns.rdatatype.NS, dns.rdatatype.ANY)
REVERSE_V4 = dns.name.from_text("in-addr.arpa.")
REVERSE_V6 = dns.name.from_text("ip6.arpa.")


@dataclass(frozen=True, slots=True)
class Port:
    name: str
    protocol: str  # lower-case: tcp, udp, sctp
    port: int


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]  # empty for a headless Service
    headless: bool
    external_name: str
    ports: tuple[Port, ...]


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    hostname: str


@dataclass(frozen=True, slots=True)
class Slice:
    namespace: str
    service: str
    endpoints: tuple[Endpoint, ...]  # ready ones only
    ports: tuple[Port, ...]


@dataclass(slots=True)
class Answer:
    rcode: dns.rcode.Rcode
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    authoritative: bool = True


def _ports(raw: Any) -> tuple[Port, ...]:
    out = []
    for p in raw or ():
        if isinstance(p, dict) and isinstance(p.get("port"), int):
            out.append(Port(str(p.get("name") or ""), str(p.get("protocol") or "TCP").lower(), p["port"]))
    return tuple(out)


def service_from(obj: Obj) -> Service:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    ips = tuple(ip for ip in (spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
                if ip and ip != "None")
    typ = str(spec.get("type") or "ClusterIP")
    headless = typ != "ExternalName" and spec.get("clusterIP") == "None"
    return Service(str(meta.get("namespace") or ""), str(meta.get("name") or ""), typ, ips, headless,
                   str(spec.get("externalName") or "").rstrip("."), _ports(spec.get("ports")))


def slice_from(obj: Obj) -> Slice | None:
    meta = obj.get("metadata") or {}
    svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not svc:
        return None
    eps = []
    for ep in obj.get("endpoints") or ():
        if not isinstance(ep, dict):
            continue
        ready = (ep.get("conditions") or {}).get("ready")
        if ready is False:
            continue
        addrs = tuple(str(a) for a in ep.get("addresses") or () if a)
        if addrs:
            eps.append(Endpoint(addrs, str(ep.get("hostname") or "")))
    return Slice(str(meta.get("namespace") or ""), str(svc), tuple(eps), _ports(obj.get("ports")))


def dashed(ip: str) -> str:
    """An address as a DNS label, as CoreDNS writes endpoint names: dots (and colons) to dashes."""
    return ip.replace(".", "-").replace(":", "-")


def undashed(label: str) -> str | None:
    """The address a pod name spells (``10-42-0-5``, ``fd00--5``), or None."""
    for cand in (label.replace("-", "."), label.replace("-", ":")):
        try:
            return str(ipaddress.ip_address(cand))
        except ValueError:
            continue
    return None


def _family_type(ip: str) -> int:
    return AAAA if ":" in ip else A


class ClusterZone:
    """The records of one cluster domain; see the module docstring."""

    def __init__(self, domain: str = DEFAULT_DOMAIN, ttl: int = DEFAULT_TTL) -> None:
        self.origin = dns.name.from_text(domain.strip(".") + ".")
        self.ttl = ttl
        self.namespaces: set[str] = set()
        self.services: dict[tuple[str, str], Service] = {}
        self.slices: dict[tuple[str, str], Slice] = {}  # by (namespace, slice name)
        self._by_service: dict[tuple[str, str], set[str]] | None = None  # (ns, svc) -> slice names
        self._reverse: dict[str, dns.name.Name] | None = None
        self.generation = 0  # bumped on every change: the server's answer cache keys on it
        self._soa = self._make_soa()

    # -- changes ------------------------------------------------------------------------------------
    def _changed(self) -> None:
        self.generation += 1
        self._reverse = None

    def set_namespace(self, name: str) -> None:
        if name not in self.namespaces:
            self.namespaces.add(name)
            self._changed()

    def delete_namespace(self, name: str) -> None:
        if name in self.namespaces:
            self.namespaces.discard(name)
            self._changed()

    def set_service(self, obj: Obj) -> None:
        svc = service_from(obj)
        key = (svc.namespace, svc.name)
        if self.services.get(key) != svc:
            self.services[key] = svc
            self._changed()

    def delete_service(self, namespace: str, name: str) -> None:
        if self.services.pop((namespace, name), None) is not None:
            self._changed()

    def set_slice(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        sl = slice_from(obj)
        if sl is None:
            self.delete_slice(*key)
            return
        if self.slices.get(key) != sl:
            old = self.slices.get(key)
            self.slices[key] = sl
            if old is None or old.service != sl.service:
                self._by_service = None
            self._changed()

    def delete_slice(self, namespace: str, name: str) -> None:
        if self.slices.pop((namespace, name), None) is not None:
            self._by_service = None
            self._changed()

    # -- lookups ------------------------------------------------------------------------------------
    def _slices_of(self, namespace: str, service: str) -> list[Slice]:
        if self._by_service is None:
            idx: dict[tuple[str, str], set[str]] = {}
            for (ns, name), sl in self.slices.items():
                idx.setdefault((ns, sl.service), set()).add(name)
            self._by_service = idx
        return [self.slices[(namespace, n)] for n in sorted(self._by_service.get((namespace, service), ()))]

    def _make_soa(self) -> dns.rrset.RRset:
        rd = dns.rdtypes.ANY.SOA.SOA(IN, SOA, dns.name.from_text("ns.dns", self.origin),
                                     dns.name.from_text("hostmaster", self.origin), int(time.time()), 7200, 1800,
                                     86400, self.ttl)
        rr = dns.rrset.RRset(self.origin, IN, SOA)
        rr.add(rd, self.ttl)
        return rr

    def _rrset(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, rdatas: list[Any]) -> dns.rrset.RRset:
        rr = dns.rrset.RRset(name, IN, rdtype)
        for rd in rdatas:
            rr.add(rd, self.ttl)
        return rr

    @staticmethod
    def _addr_rdata(ip: str) -> Any:
        return dns.rdtypes.IN.AAAA.AAAA(IN, AAAA, ip) if ":" in ip else dns.rdtypes.IN.A.A(IN, A, ip)

    def _addresses(self, name: dns.name.Name, qtype: int, ips: list[str]) -> list[dns.rrset.RRset]:
        want = [ip for ip in dict.fromkeys(ips) if qtype == ANY or _family_type(ip) == qtype]
        out = []
        for t in (A, AAAA):
            rds = [self._addr_rdata(ip) for ip in want if _family_type(ip) == t]
            if rds:
                out.append(self._rrset(name, t, rds))
        return out

    def _nxdomain(self) -> Answer:
        return Answer(dns.rcode.NXDOMAIN, authority=[self._soa])

    def _nodata(self) -> Answer:
        return Answer(dns.rcode.NOERROR, authority=[self._soa])

    def _records(self, rrsets: list[dns.rrset.RRset], additional: list[dns.rrset.RRset] | None = None) -> Answer:
        if not rrsets:
            return self._nodata()
        return Answer(dns.rcode.NOERROR, answer=rrsets, additional=additional or [])

    def resolve(self, qname: dns.name.Name, qtype: int) -> Answer | None:
        """The answer for one question, or None when the cluster does not know the name (forward
        it). ``qname`` may be in any case."""
        name = qname.canonicalize()
        if name.is_subdomain(self.origin):
            return self._forward_zone(qname, name.relativize(self.origin).labels, qtype)
        if qtype in (PTR, ANY) and (name.is_subdomain(REVERSE_V4) or name.is_subdomain(REVERSE_V6)):
            return self._reverse_lookup(qname, name)
        return None

    def _forward_zone(self, qname: dns.name.Name, rel: tuple[bytes, ...], qtype: int) -> Answer:
        labels = [lb.decode("ascii", "replace") for lb in rel if lb != b"@"]
        if not labels:  # the zone's apex
            if qtype == SOA:
                return Answer(dns.rcode.NOERROR, answer=[self._soa])
            if qtype == NS:
                ns = dns.rdtypes.ANY.NS.NS(IN, NS, dns.name.from_text("ns.dns", self.origin))
                return Answer(dns.rcode.NOERROR, answer=[self._rrset(qname, NS, [ns])])
            return self._nodata()
        kind = labels[-1]
        if kind == "svc":
            return self._service_names(qname, labels[:-1], qtype)
        if kind == "pod":
            return self._pod_name(qname, labels[:-1], qtype)
        if len(labels) == 2 and labels == ["ns", "dns"] and qtype in (A, AAAA):
            return self._nodata()
        return self._nxdomain()

    def _pod_name(self, qname: dns.name.Name, labels: list[str], qtype: int) -> Answer:
        if not labels:
            return self._nodata()
        if len(labels) == 1:
            return self._nodata() if labels[0] in self.namespaces else self._nxdomain()
        if len(labels) != 2 or labels[1] not in self.namespaces:
            return self._nxdomain()
        ip = undashed(labels[0])
        if ip is None:
            return self._nxdomain()
        return self._records(self._addresses(qname, qtype, [ip]) if qtype in (A, AAAA, ANY) else [])

    def _service_names(self, qname: dns.name.Name, labels: list[str], qtype: int) -> Answer:
        # labels, outermost last: [..., service, namespace]
        if not labels:
            return self._nodata()
        ns = labels[-1]
        if ns not in self.namespaces:
            return self._nxdomain()
        if len(labels) == 1:
            return self._nodata()
        svc = self.services.get((ns, labels[-2]))
        if svc is None:
            return self._nxdomain()
        rest = labels[:-2]
        if not rest:
            return self._service(qname, svc, qtype, "", "")
        if len(rest) == 1:
            return self._endpoint(qname, svc, rest[0], qtype)
        if len(rest) == 2 and rest[0].startswith("_") and rest[1].startswith("_"):
            return self._service(qname, svc, qtype, rest[0][1:], rest[1][1:])
        return self._nxdomain()

    def _service_fqdn(self, svc: Service) -> dns.name.Name:
        return dns.name.from_text(f"{svc.name}.{svc.namespace}.svc", self.origin)

    def _endpoints(self, svc: Service) -> list[tuple[Endpoint, tuple[Port, ...]]]:
        return [(ep, sl.ports) for sl in self._slices_of(svc.namespace, svc.name) for ep in sl.endpoints]

    def _service(self, qname: dns.name.Name, svc: Service, qtype: int, port: str, proto: str) -> Answer:
        if svc.type == "ExternalName":
            if not svc.external_name:
                return self._nxdomain()
            target = dns.name.from_text(svc.external_name + ".")
            cname = self._rrset(qname, CNAME, [dns.rdtypes.ANY.CNAME.CNAME(IN, CNAME, target)])
            out = [cname]
            if qtype != CNAME and target.is_subdomain(self.origin):
                chased = self.resolve(target, qtype)  # a target inside the cluster is followed once
                if chased is not None and chased.rcode == dns.rcode.NOERROR:
                    out.extend(rr for rr in chased.answer if rr.rdtype != CNAME)
            return Answer(dns.rcode.NOERROR, answer=out)
        fqdn = self._service_fqdn(svc)

        def port_matches(p: Port) -> bool:
            return (not port or p.name == port) and (not proto or p.protocol == proto)

        if svc.headless:
            eps = self._endpoints(svc)
            # an endpoint without ports still answers A/AAAA when no port was asked for
            portless: list[Port | None] = [] if port or proto else [None]
            matching = [(ep, ps) for ep, ports in eps
                        if (ps := [*(p for p in ports if port_matches(p))] or portless)]
            if not matching:
                return self._nxdomain()  # CoreDNS: a headless Service with no (matching) endpoints
            if qtype == SRV:
                srvs, extra = [], []
                weight = max(1, 100 // sum(len(ps) for _, ps in matching))
                for ep, ps in matching:
                    target = dns.name.from_text(f"{ep.hostname or dashed(ep.addresses[0])}", fqdn)
                    for p in ps:
                        if p is not None:
                            srvs.append(dns.rdtypes.IN.SRV.SRV(IN, SRV, 0, weight, p.port, target))
                    extra.extend(self._addresses(target, ANY, list(ep.addresses)))
                return self._records([self._rrset(qname, SRV, srvs)] if srvs else [], extra)
            ips = [ip for ep, _ in matching for ip in ep.addresses]
            return self._records(self._addresses(qname, qtype, ips) if qtype in (A, AAAA, ANY) else [])
        ports = [p for p in svc.ports if port_matches(p)]
        if (port or proto) and not ports:
            return self._nxdomain()
        if qtype == SRV:
            srvs = [dns.rdtypes.IN.SRV.SRV(IN, SRV, 0, max(1, 100 // len(ports)), p.port, fqdn) for p in ports]
            extra = self._addresses(fqdn, ANY, list(svc.cluster_ips))
            return self._records([self._rrset(qname, SRV, srvs)] if srvs else [], extra)
        return self._records(self._addresses(qname, qtype, list(svc.cluster_ips)) if qtype in (A, AAAA, ANY) else [])

    def _endpoint(self, qname: dns.name.Name, svc: Service, label: str, qtype: int) -> Answer:
        for ep, _ in self._endpoints(svc):
            if ep.hostname == label or any(dashed(ip) == label for ip in ep.addresses):
                return self._records(self._addresses(qname, qtype, list(ep.addresses))
                                     if qtype in (A, AAAA, ANY) else [])
        return self._nxdomain()

    # -- reverse ------------------------------------------------------------------------------------
    def _reverse_index(self) -> dict[str, dns.name.Name]:
        if self._reverse is None:
            idx: dict[str, dns.name.Name] = {}
            for svc in self.services.values():
                fqdn = self._service_fqdn(svc)
                for ip in svc.cluster_ips:
                    idx.setdefault(str(ipaddress.ip_address(ip)), fqdn)
            for sl in self.slices.values():
                owner = self.services.get((sl.namespace, sl.service))
                if owner is None:
                    continue
                fqdn = self._service_fqdn(owner)
                for ep in sl.endpoints:
                    for ip in ep.addresses:
                        key = str(ipaddress.ip_address(ip))
                        idx.setdefault(key, dns.name.from_text(ep.hostname or dashed(key), fqdn))
            self._reverse = idx
        return self._reverse

    def _reverse_lookup(self, qname: dns.name.Name, name: dns.name.Name) -> Answer | None:
        try:
            ip = dns.reversename.to_address(name)
        except (dns.exception.SyntaxError, ValueError):
            return None
        target = self._reverse_index().get(str(ipaddress.ip_address(ip)))
        if target is None:
            return None  # not a cluster address: CoreDNS's fallthrough for the reverse zones
        return Answer(dns.rcode.NOERROR, answer=[self._rrset(qname, PTR, [dns.rdtypes.ANY.PTR.PTR(IN, PTR, target)])])

