"""The cluster zone's answers, as CoreDNS's kubernetes plugin gives them (pure, no sockets)."""

from __future__ import annotations

from typing import Any

import dns.name
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from k8py.dns.zone import ClusterZone, dashed, undashed

A, AAAA, SRV, PTR, CNAME, SOA, NS = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV, dns.rdatatype.PTR,
                                     dns.rdatatype.CNAME, dns.rdatatype.SOA, dns.rdatatype.NS)


def svc(ns: str, name: str, ips: list[str] | None = None, *, typ: str = "ClusterIP", headless: bool = False,
        external: str = "", ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": typ, "ports": ports or [{"name": "http", "port": 80, "protocol": "TCP"}]}
    if headless:
        spec["clusterIP"] = "None"
        spec["clusterIPs"] = ["None"]
    elif ips:
        spec["clusterIP"], spec["clusterIPs"] = ips[0], ips
    if external:
        spec["externalName"] = external
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


def eps(ns: str, name: str, service: str, endpoints: list[dict[str, Any]],
        ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}]}


@pytest.fixture
def zone() -> ClusterZone:
    z = ClusterZone("cluster.local")
    for ns in ("default", "db"):
        z.set_namespace(ns)
    z.set_service(svc("default", "web", ["10.43.0.20", "fd00:43::20"]))
    z.set_service(svc("default", "v4only", ["10.43.0.21"]))
    z.set_service(svc("db", "pg", headless=True, ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]))
    z.set_slice(eps("db", "pg-abc", "pg", [
        {"addresses": ["10.42.0.5"], "hostname": "pg-0", "conditions": {"ready": True}},
        {"addresses": ["10.42.0.6"], "hostname": "pg-1", "conditions": {"ready": True}},
        {"addresses": ["10.42.0.7"], "hostname": "pg-2", "conditions": {"ready": False}},
    ], [{"name": "pg", "port": 5432, "protocol": "TCP"}]))
    z.set_service(svc("default", "ext", typ="ExternalName", external="example.org"))
    z.set_service(svc("default", "alias", typ="ExternalName", external="web.default.svc.cluster.local"))
    z.set_slice(eps("default", "web-1", "web", [{"addresses": ["10.42.0.9"]}]))
    return z


def ask(z: ClusterZone, name: str, qtype: int) -> Any:
    return z.resolve(dns.name.from_text(name), dns.rdatatype.RdataType(qtype))


def addresses(ans: Any) -> list[str]:
    return sorted(rd.address for rr in ans.answer if rr.rdtype in (A, AAAA) for rd in rr)


def test_cluster_ip_service_answers_its_family(zone: ClusterZone) -> None:
    a = ask(zone, "web.default.svc.cluster.local.", A)
    assert a.rcode == dns.rcode.NOERROR and addresses(a) == ["10.43.0.20"]
    assert a.answer[0].ttl == 5
    assert addresses(ask(zone, "web.default.svc.cluster.local.", AAAA)) == ["fd00:43::20"]
    # names are case-insensitive
    assert addresses(ask(zone, "WEB.Default.SVC.cluster.LOCAL.", A)) == ["10.43.0.20"]


def test_nodata_and_nxdomain_as_coredns(zone: ClusterZone) -> None:
    nodata = ask(zone, "v4only.default.svc.cluster.local.", AAAA)
    assert nodata.rcode == dns.rcode.NOERROR and nodata.answer == [] and nodata.authority[0].rdtype == SOA
    ns_only = ask(zone, "default.svc.cluster.local.", A)
    assert ns_only.rcode == dns.rcode.NOERROR and ns_only.answer == []
    for name in ("nope.default.svc.cluster.local.", "web.nope.svc.cluster.local.", "nope.svc.cluster.local.",
                 "a.b.c.d.e.svc.cluster.local.", "x.cluster.local."):
        ans = ask(zone, name, A)
        assert ans.rcode == dns.rcode.NXDOMAIN, name
        assert ans.authority[0].rdtype == SOA
    assert ask(zone, "cluster.local.", SOA).answer[0].rdtype == SOA
    assert ask(zone, "cluster.local.", NS).answer[0][0].target == dns.name.from_text("ns.dns.cluster.local.")


def test_headless_service_answers_ready_endpoints_and_each_pod(zone: ClusterZone) -> None:
    assert addresses(ask(zone, "pg.db.svc.cluster.local.", A)) == ["10.42.0.5", "10.42.0.6"]
    assert addresses(ask(zone, "pg-1.pg.db.svc.cluster.local.", A)) == ["10.42.0.6"]
    assert ask(zone, "pg-2.pg.db.svc.cluster.local.", A).rcode == dns.rcode.NXDOMAIN  # not ready
    # an endpoint without a hostname answers by its address with dashes
    zone.set_slice(eps("db", "pg-abc", "pg", [{"addresses": ["10.42.0.8"]}], [{"name": "pg", "port": 5432}]))
    assert addresses(ask(zone, "10-42-0-8.pg.db.svc.cluster.local.", A)) == ["10.42.0.8"]
    # no endpoints at all: NXDOMAIN, as CoreDNS
    zone.delete_slice("db", "pg-abc")
    assert ask(zone, "pg.db.svc.cluster.local.", A).rcode == dns.rcode.NXDOMAIN


def test_srv_for_named_ports(zone: ClusterZone) -> None:
    srv = ask(zone, "_http._tcp.web.default.svc.cluster.local.", SRV)
    rd = srv.answer[0][0]
    assert (rd.port, str(rd.target)) == (80, "web.default.svc.cluster.local.")
    assert sorted(rr.rdtype for rr in srv.additional) == [A, AAAA]
    assert ask(zone, "_nope._tcp.web.default.svc.cluster.local.", SRV).rcode == dns.rcode.NXDOMAIN
    headless = ask(zone, "_pg._tcp.pg.db.svc.cluster.local.", SRV)
    assert sorted((r.port, str(r.target)) for r in headless.answer[0]) == [
        (5432, "pg-0.pg.db.svc.cluster.local."), (5432, "pg-1.pg.db.svc.cluster.local.")]
    assert sorted(str(rr.name) for rr in headless.additional) == ["pg-0.pg.db.svc.cluster.local.",
                                                                  "pg-1.pg.db.svc.cluster.local."]


def test_external_name_is_a_cname(zone: ClusterZone) -> None:
    ans = ask(zone, "ext.default.svc.cluster.local.", A)
    assert ans.rcode == dns.rcode.NOERROR
    assert [(rr.rdtype, str(rr[0].target)) for rr in ans.answer] == [(CNAME, "example.org.")]
    # a target inside the cluster is followed
    chased = ask(zone, "alias.default.svc.cluster.local.", A)
    assert [rr.rdtype for rr in chased.answer] == [CNAME, A]
    assert addresses(chased) == ["10.43.0.20"]


def test_pod_names_and_reverse_lookups(zone: ClusterZone) -> None:
    assert addresses(ask(zone, "10-42-0-9.default.pod.cluster.local.", A)) == ["10.42.0.9"]
    assert addresses(ask(zone, "fd00-42--9.default.pod.cluster.local.", AAAA)) == ["fd00:42::9"]
    assert ask(zone, "10-42-0-9.nope.pod.cluster.local.", A).rcode == dns.rcode.NXDOMAIN
    assert ask(zone, "not-an-ip.default.pod.cluster.local.", A).rcode == dns.rcode.NXDOMAIN
    ptr = ask(zone, "20.0.43.10.in-addr.arpa.", PTR)
    assert str(ptr.answer[0][0].target) == "web.default.svc.cluster.local."
    assert str(ask(zone, "5.0.42.10.in-addr.arpa.", PTR).answer[0][0].target) == "pg-0.pg.db.svc.cluster.local."
    assert str(ask(zone, "9.0.42.10.in-addr.arpa.", PTR).answer[0][0].target) == \
        "10-42-0-9.web.default.svc.cluster.local."
    v6 = dns.reversename.from_address("fd00:43::20")
    assert str(zone.resolve(v6, PTR).answer[0][0].target) == "web.default.svc.cluster.local."
    # addresses the cluster does not know, and other zones, are not ours: forwarded
    assert ask(zone, "1.1.168.192.in-addr.arpa.", PTR) is None
    assert ask(zone, "example.org.", A) is None


def test_changes_bump_the_generation_only_when_something_changed(zone: ClusterZone) -> None:
    g = zone.generation
    zone.set_service(svc("default", "web", ["10.43.0.20", "fd00:43::20"]))
    assert zone.generation == g
    zone.set_service(svc("default", "web", ["10.43.0.22"]))
    assert zone.generation == g + 1
    assert addresses(ask(zone, "web.default.svc.cluster.local.", A)) == ["10.43.0.22"]
    zone.delete_service("default", "web")
    assert ask(zone, "web.default.svc.cluster.local.", A).rcode == dns.rcode.NXDOMAIN


def test_dashed_names_round_trip() -> None:
    assert dashed("10.42.0.5") == "10-42-0-5" and undashed("10-42-0-5") == "10.42.0.5"
    assert undashed(dashed("fd00:42::5")) == "fd00:42::5"
    assert undashed("web") is None

