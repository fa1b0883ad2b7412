"""The local load-balancer provider: pools, requested addresses, node addresses, restarts."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.cloud.provider import LoadBalancerError, LocalProvider, parse_pool


def svc(name: str, *, families: list[str] | None = None, lb_ip: str = "", port: int = 80,
        ingress: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "LoadBalancer", "ports": [{"port": port, "protocol": "TCP"}],
                            "ipFamilies": families or ["IPv4"]}
    if lb_ip:
        spec["loadBalancerIP"] = lb_ip
    out: dict[str, Any] = {"metadata": {"namespace": "default", "name": name}, "spec": spec}
    if ingress:
        out["status"] = {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]}}
    return out


def node(name: str, *ips: str, ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {
        "addresses": [{"type": "InternalIP", "address": ip} for ip in ips],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def ips(ingress: list[dict[str, Any]]) -> list[str]:
    return [i["ip"] for i in ingress]


def test_pool_parsing() -> None:
    assert [(str(a), str(b)) for a, b in parse_pool("10.45.0.0/30, 192.0.2.10-192.0.2.12,fd45::/127")] == [
        ("10.45.0.1", "10.45.0.2"), ("192.0.2.10", "192.0.2.12"), ("fd45::", "fd45::1")]
    for bad in ("", "10.0.0.5-10.0.0.1", "nope", "10.0.0.1-fd00::1"):
        with pytest.raises(ValueError):
            parse_pool(bad)


def test_pool_addresses_are_given_once_and_back() -> None:
    p = LocalProvider("10.45.0.0/30")
    a = ips(p.ensure_load_balancer(svc("a"), []))
    assert a == ["10.45.0.1"]
    assert ips(p.ensure_load_balancer(svc("a"), [])) == a  # stable across syncs
    assert ips(p.ensure_load_balancer(svc("b"), [])) == ["10.45.0.2"]
    with pytest.raises(LoadBalancerError, match="no IPv4 address left in the load balancer pool 10.45.0.0/30"):
        p.ensure_load_balancer(svc("c"), [])
    p.delete_load_balancer(svc("a"))
    assert ips(p.ensure_load_balancer(svc("c"), [])) == ["10.45.0.1"]


def test_requested_address_and_dual_stack() -> None:
    p = LocalProvider("10.45.0.0/29,fd45::/126")
    assert ips(p.ensure_load_balancer(svc("want", lb_ip="10.45.0.5"), [])) == ["10.45.0.5"]
    with pytest.raises(LoadBalancerError, match="already used by Service default/want"):
        p.ensure_load_balancer(svc("other", lb_ip="10.45.0.5"), [])
    with pytest.raises(LoadBalancerError, match="not in the load balancer pool"):
        p.ensure_load_balancer(svc("out", lb_ip="10.99.0.1"), [])
    both = ips(p.ensure_load_balancer(svc("dual", families=["IPv4", "IPv6"]), []))
    assert both[0].startswith("10.45.0.") and both[1].startswith("fd45::")


def test_restart_restores_what_services_hold() -> None:
    p = LocalProvider("10.45.0.0/30")
    p.restore([svc("a", ingress=["10.45.0.1"])])
    assert ips(p.ensure_load_balancer(svc("b"), [])) == ["10.45.0.2"]
    assert ips(p.ensure_load_balancer(svc("a"), [])) == ["10.45.0.1"]


def test_node_addresses_without_a_pool() -> None:
    p = LocalProvider()
    nodes = [node("n1", "192.0.2.2", "fd00::2"), node("n2", "192.0.2.3", ready=False)]
    assert ips(p.ensure_load_balancer(svc("a"), nodes)) == ["192.0.2.2"]
    with pytest.raises(LoadBalancerError, match="port 80/TCP on the nodes' addresses is already used by Service "
                                                "default/a"):
        p.ensure_load_balancer(svc("b"), nodes)
    assert ips(p.ensure_load_balancer(svc("c", port=81), nodes)) == ["192.0.2.2"]
    with pytest.raises(LoadBalancerError, match="no ready node"):
        p.ensure_load_balancer(svc("d", port=82), [node("n3", "192.0.2.4", ready=False)])
