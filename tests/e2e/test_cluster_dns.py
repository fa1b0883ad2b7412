"""Cluster DNS in a running `k8py server`, asked with dnspython over UDP and TCP, as a pod's
resolver would: Services, headless StatefulSet pods, ExternalName, changes within seconds."""

from __future__ import annotations

import json
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from tests.e2e.conftest import Server, manifest, wait


def dns_address(cluster: Server) -> tuple[str, int]:
    """Where the server's DNS listens: the kube-dns Service's EndpointSlice says."""
    sl = wait(lambda: _get(cluster, "endpointslice", "kube-dns-k8py", "-n", "kube-system"), 30, "kube-dns slice")
    return sl["endpoints"][0]["addresses"][0], sl["ports"][0]["port"]


def _get(cluster: Server, *args: str) -> Any:
    p = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def ask(addr: tuple[str, int], name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(q, addr[0], port=addr[1], timeout=5)
    return dns.query.udp(q, addr[0], port=addr[1], timeout=5)


def addresses(r: dns.message.Message) -> list[str]:
    return sorted(rd.address for rr in r.answer if rr.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) for rd in rr)


def test_kube_dns_service_is_at_the_tenth_address(cluster: Server) -> None:
    svc = wait(lambda: _get(cluster, "service", "kube-dns", "-n", "kube-system"), 30, "kube-dns Service")
    assert svc["spec"]["clusterIP"] == "10.43.0.10"
    assert sorted((p["name"], p["protocol"], p["port"]) for p in svc["spec"]["ports"]) == [
        ("dns", "UDP", 53), ("dns-tcp", "TCP", 53)]
    addr = dns_address(cluster)
    r = ask(addr, "kube-dns.kube-system.svc.cluster.local")
    assert addresses(r) == ["10.43.0.10"]
    assert addresses(ask(addr, "kubernetes.default.svc.cluster.local", tcp=True)) == ["10.43.0.1"]


def test_services_appear_change_and_go(cluster: Server) -> None:
    addr = dns_address(cluster)
    cluster.kubectl("create", "namespace", "dns-svc")
    cluster.kubectl("create", "service", "clusterip", "web", "-n", "dns-svc", "--tcp=80:8080")
    ip = cluster.kjson("get", "service", "web", "-n", "dns-svc")["spec"]["clusterIP"]
    name = "web.dns-svc.svc.cluster.local"
    wait(lambda: addresses(ask(addr, name)) == [ip], 10, "the Service's A record")
    srv = ask(addr, f"_80-8080._tcp.{name}", "SRV")
    assert [(r.port, str(r.target)) for r in srv.answer[0]] == [(80, name + ".")]
    # AAAA of an IPv4-only Service: NODATA; the namespace alone: NODATA; unknown: NXDOMAIN
    nodata = ask(addr, name, "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert ask(addr, "dns-svc.svc.cluster.local").rcode() == dns.rcode.NOERROR
    assert ask(addr, "nope.dns-svc.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    cluster.kubectl("create", "service", "externalname", "ext", "-n", "dns-svc", "--external-name", "example.org")
    r = wait(lambda: (m := ask(addr, "ext.dns-svc.svc.cluster.local")).answer and m, 10, "the CNAME")
    assert [(rr.rdtype, str(rr[0].target)) for rr in r.answer] == [(dns.rdatatype.CNAME, "example.org.")]
    cluster.kubectl("delete", "service", "web", "-n", "dns-svc")
    wait(lambda: ask(addr, name).rcode() == dns.rcode.NXDOMAIN, 10, "NXDOMAIN after the delete")


def test_headless_statefulset_pods_resolve_each(cluster: Server) -> None:
    addr = dns_address(cluster)
    cluster.kubectl("create", "namespace", "dns-sts")
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "dns-sts"},
           "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"name": "pg", "port": 5432}]}}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "dns-sts"},
           "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "db", "image": "busybox:1.36"}]}}}}
    cluster.kubectl("apply", "-f", "-", input=manifest(svc, sts))

    def pod_ips() -> dict[str, str] | None:
        pods = cluster.kjson("get", "pods", "-n", "dns-sts")["items"]
        ips = {p["metadata"]["name"]: p["status"].get("podIP") for p in pods}
        return ips if len(ips) == 2 and all(ips.values()) and all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
            for p in pods) else None

    ips = wait(pod_ips, 60, "two ready StatefulSet pods")
    wait(lambda: addresses(ask(addr, "db.dns-sts.svc.cluster.local")) == sorted(ips.values()), 15,
         "the headless Service's endpoints")
    for pod, ip in ips.items():
        assert addresses(ask(addr, f"{pod}.db.dns-sts.svc.cluster.local")) == [ip]
    srv = ask(addr, "_pg._tcp.db.dns-sts.svc.cluster.local", "SRV")
    assert sorted(str(r.target) for r in srv.answer[0]) == ["db-0.db.dns-sts.svc.cluster.local.",
                                                            "db-1.db.dns-sts.svc.cluster.local."]
    ip0 = ips["db-0"]
    assert addresses(ask(addr, f"{ip0.replace('.', '-')}.dns-sts.pod.cluster.local")) == [ip0]
