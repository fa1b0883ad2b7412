"""Dual-stack pods: `k8py server --cluster-cidr 10.x/16,fdxx::/56` gives each node a pod CIDR of
each family (node IPAM) and each pod an address of each, IPv4 first, as Kubernetes lists them;
the pod serves on both. On the dual-stack cluster the networking modules share
(``NETWORKING_ARGS``). Traffic stays between this machine and the pod's own namespace."""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.request
from collections.abc import Iterator

import pytest
from tests.e2e.conftest import Server, wait
from tests.helpers.realnode import IMAGE, NETWORKING_ARGS, SHARED_NODE, SharedRealNode, namespace_for

NODE = SHARED_NODE
SHARED_REAL_NODE_ARGS = NETWORKING_ARGS  # --cluster-cidr 10.42.0.0/16,fd42::/56

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        yield s


def test_pods_get_an_address_of_each_family(cluster: Server, request: pytest.FixtureRequest) -> None:
    s = cluster
    ns = namespace_for(s, request, "ds")

    def node() -> dict | None:
        p = s.kubectl("get", "node", NODE, "-o", "json", check=False)
        n = json.loads(p.stdout) if p.returncode == 0 else None
        return n if n and len(n["spec"].get("podCIDRs") or ()) == 2 else None

    n = wait(node, 60, "the node's two pod CIDRs")
    v4, v6 = (ipaddress.ip_network(c) for c in n["spec"]["podCIDRs"])
    assert (v4.version, v6.version) == (4, 6) and n["spec"]["podCIDR"] == str(v4)
    s.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dual"},
        "spec": {"containers": [{"name": "httpd", "image": IMAGE, "command": [
            "sh", "-c", "echo dual > /tmp/i; exec httpd -f -p 8080 -h /tmp"]}]}}))

    def running() -> dict | None:
        p = json.loads(s.kubectl("get", "pod", "dual", "-n", ns, "-o", "json").stdout)
        return p["status"] if p["status"].get("phase") == "Running" else None

    st = wait(running, 60, "the pod Running")
    ips = [ipaddress.ip_address(x["ip"]) for x in st["podIPs"]]
    assert [ip.version for ip in ips] == [4, 6] and st["podIP"] == str(ips[0])
    assert ips[0] in v4 and ips[1] in v6
    for ip in ips:
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        body = ""
        for _ in range(40):  # bounded: the IPv6 gateway address may still be in DAD
            try:
                with urllib.request.urlopen(f"http://{host}:8080/i", timeout=2) as r:
                    body = r.read().decode()
                break
            except OSError:
                time.sleep(0.25)
        assert body == "dual\n", ip
