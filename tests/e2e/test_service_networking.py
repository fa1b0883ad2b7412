"""Service networking on a real node (runc pods, CNI, the nftables service proxy, the cluster DNS):
what a client pod sees, through kubectl exec and busybox's wget and nslookup.

Traffic goes only from pods to Service addresses the proxy forwards to other pods of this cluster
(and to the DNS server on the pod bridge's gateway); each request is bounded by wget's timeout,
each loop by a count. Before any request to a ClusterIP the test checks that the proxy's table
holds that address, so nothing is ever sent towards the service range while it is not forwarded.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.e2e.conftest import Server, manifest, wait
from tests.helpers.realnode import IMAGE, NETWORKING_ARGS, SharedRealNode, namespace_for

# the dual-stack cluster the networking modules share: its load balancer pool 10.45.0.0/30 has
# two addresses (real_cluster checks that killall removes the proxy's table)
SHARED_REAL_NODE_ARGS = NETWORKING_ARGS


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        yield s


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    return namespace_for(cluster, request, "svc")


def proxied(ip: str, port: int) -> bool:
    """The proxy's table forwards (or rejects) ip:port."""
    out = subprocess.run(["nft", "list", "table", "inet", "k8py-proxy"], capture_output=True, text=True,
                         check=False).stdout
    return f"{ip} . tcp . {port}" in out or f"{ip} . udp . {port}" in out


def test_dual_stack_service_answers_on_both_families(cluster: Server, ns: str) -> None:
    deploy, svc, client = web(ns)
    svc["spec"]["ipFamilyPolicy"] = "PreferDualStack"
    cluster.kubectl("apply", "-f", "-", input=manifest(deploy, svc, client))
    pods = wait(lambda: ready_pods(cluster, ns, 2), 90, "two ready web pods")
    wait(lambda: cluster.kjson("get", "pod", "client", "-n", ns)["status"].get("phase") == "Running", 60,
         "the client pod")
    spec = cluster.kjson("get", "service", "web", "-n", ns)["spec"]
    assert spec["ipFamilies"] == ["IPv4", "IPv6"]
    v4, v6 = spec["clusterIPs"]
    assert v6.startswith("fd43::")
    wait(lambda: proxied(v4, 80) and proxied(v6, 80), 10, "the proxy's rules for both addresses")
    assert spread(cluster, ns, v6, 80, set(pods)) == set(pods)
    assert spread(cluster, ns, v4, 80, set(pods)) == set(pods)
    # the cluster DNS answers AAAA with the IPv6 ClusterIP
    lookup = cluster.kubectl("exec", "-n", ns, "client", "--", "nslookup", "-type=AAAA",
                             f"web.{ns}.svc.cluster.local").stdout
    assert f"Address: {v6}" in lookup


def web(ns: str, replicas: int = 2) -> list[dict[str, Any]]:
    labels = {"app": "web"}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
              "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                       "template": {"metadata": {"labels": labels}, "spec": {
                           "terminationGracePeriodSeconds": 1,
                           "containers": [{"name": "httpd", "image": IMAGE, "command": ["sh", "-c", (
                                           "mkdir -p /www && hostname > /www/index.html && "
                                           "exec httpd -f -p 8080 -h /www")],
                                           "ports": [{"containerPort": 8080, "name": "http"}],
                                           "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                              "periodSeconds": 1}}]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
           "spec": {"type": "NodePort", "selector": labels,
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    client = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": ns},
              "spec": {"terminationGracePeriodSeconds": 0,
                       "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]}}
    return [deploy, svc, client]


def ready_pods(s: Server, ns: str, n: int) -> list[str] | None:
    pods = json.loads(s.kubectl("get", "pods", "-n", ns, "-l", "app=web", "-o", "json").stdout)["items"]
    names = [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]
    return names if len(names) == n else None


def get(s: Server, ns: str, host: str, port: int = 80) -> subprocess.CompletedProcess[str]:
    """An HTTP GET from the client pod with busybox's nc (its wget crashes on name lookups in the
    static image), bounded by nc's 3 s timeout; stdout is the body's last line."""
    script = f'printf "GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n" | nc -w 3 {host} {port} | tail -n 1'
    return s.kubectl("exec", "-n", ns, "client", "--", "sh", "-c", script, check=False, timeout=30)


def spread(s: Server, ns: str, host: str, port: int, want: set[str], attempts: int = 40) -> set[str]:
    seen: set[str] = set()
    for _ in range(attempts):
        p = get(s, ns, host, port)
        if p.returncode == 0 and p.stdout.strip():
            seen.add(p.stdout.strip())
        if seen >= want:
            break
    return seen


def test_cluster_ip_dns_node_port_and_scaling(cluster: Server, ns: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=manifest(*web(ns)))
    pods = wait(lambda: ready_pods(cluster, ns, 2), 90, "two ready web pods")
    wait(lambda: cluster.kjson("get", "pod", "client", "-n", ns)["status"].get("phase") == "Running", 60,
         "the client pod")
    svc = cluster.kjson("get", "service", "web", "-n", ns)
    ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    wait(lambda: proxied(ip, 80), 10, "the proxy's rules for the Service")

    # the ClusterIP spreads requests over both ready pods
    assert spread(cluster, ns, ip, 80, set(pods)) == set(pods)
    # by name, through the cluster DNS (search domains and ndots from the pod's resolv.conf)
    resolv = cluster.kubectl("exec", "-n", ns, "client", "--", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.43.0.10" in resolv and f"search {ns}.svc.cluster.local" in resolv
    assert "ndots:5" in resolv
    assert spread(cluster, ns, f"web.{ns}.svc.cluster.local", 80, set(pods)) == set(pods)
    assert get(cluster, ns, "web").stdout.strip() in pods  # the short name, through the search list
    lookup = cluster.kubectl("exec", "-n", ns, "client", "--", "nslookup", f"web.{ns}.svc.cluster.local").stdout
    assert f"Address: {ip}" in lookup
    # the NodePort on the node's address (the pod bridge gateway is one of them)
    assert spread(cluster, ns, "10.42.0.1", node_port, set(pods)) == set(pods)

    # scaling up: the new pod gets traffic within seconds
    cluster.kubectl("scale", "deployment", "web", "-n", ns, "--replicas=3")
    pods3 = wait(lambda: ready_pods(cluster, ns, 3), 90, "three ready web pods")
    assert spread(cluster, ns, ip, 80, set(pods3), attempts=60) == set(pods3)


def test_service_without_endpoints_refuses_at_once(cluster: Server, ns: str) -> None:
    client = web(ns)[2]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nobody", "namespace": ns},
           "spec": {"selector": {"app": "nobody"}, "ports": [{"port": 80}]}}
    cluster.kubectl("apply", "-f", "-", input=manifest(client, svc))
    wait(lambda: cluster.kjson("get", "pod", "client", "-n", ns)["status"].get("phase") == "Running", 60,
         "the client pod")
    ip = cluster.kjson("get", "service", "nobody", "-n", ns)["spec"]["clusterIP"]
    wait(lambda: proxied(ip, 80), 10, "the proxy's reject rule")
    t0 = time.monotonic()
    p = cluster.kubectl("exec", "-n", ns, "client", "--", "nc", "-w", "3", ip, "80", check=False, timeout=30,
                        input="")
    assert p.returncode != 0 and "refused" in (p.stdout + p.stderr).lower(), p.stderr
    assert time.monotonic() - t0 < 10


def events(s: Server, ns: str, name: str) -> list[dict[str, Any]]:
    out = json.loads(s.kubectl("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}",
                               "-o", "json").stdout)["items"]
    return [e for e in out if e["involvedObject"]["kind"] == "Service"]


def test_load_balancer_addresses_from_the_pool(cluster: Server, ns: str) -> None:
    deploy, svc, client = web(ns)
    svc["spec"]["type"] = "LoadBalancer"
    cluster.kubectl("apply", "-f", "-", input=manifest(deploy, svc, client))
    pods = wait(lambda: ready_pods(cluster, ns, 2), 90, "two ready web pods")
    wait(lambda: cluster.kjson("get", "pod", "client", "-n", ns)["status"].get("phase") == "Running", 60,
         "the client pod")
    ingress = wait(lambda: cluster.kjson("get", "service", "web", "-n", ns)["status"].get("loadBalancer", {})
                   .get("ingress"), 30, "the load balancer's address")
    lb = ingress[0]["ip"]
    assert lb in ("10.45.0.1", "10.45.0.2")
    assert "EXTERNAL-IP" in cluster.kubectl("get", "service", "web", "-n", ns).stdout
    wait(lambda: proxied(lb, 80), 10, "the proxy's rules for the load balancer address")
    assert spread(cluster, ns, lb, 80, set(pods)) == set(pods)
    # the pool has two addresses: a third Service waits, with an event saying why
    for name in ("lb2", "lb3"):
        extra = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                 "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}}
        cluster.kubectl("apply", "-f", "-", input=manifest(extra))
    wait(lambda: cluster.kjson("get", "service", "lb2", "-n", ns)["status"].get("loadBalancer", {}).get("ingress"),
         30, "the second address")
    failed = wait(lambda: [e for e in events(cluster, ns, "lb3") if e["reason"] == "SyncLoadBalancerFailed"], 30,
                  "an event for the Service without an address")
    assert "no IPv4 address left in the load balancer pool 10.45.0.0/30" in failed[0]["message"]
    # deleting a Service gives its address to the one waiting
    cluster.kubectl("delete", "service", "lb2", "-n", ns)
    wait(lambda: cluster.kjson("get", "service", "lb3", "-n", ns)["status"].get("loadBalancer", {}).get("ingress"),
         15, "the freed address for the waiting Service")  # at once, not at the end of its back-off


def test_a_pod_failing_readiness_stops_receiving_traffic(cluster: Server, ns: str) -> None:
    deploy, svc, client = web(ns)
    c = deploy["spec"]["template"]["spec"]["containers"][0]
    # ready while /www/ready exists: the test takes it away from one pod, then gives it back
    c["command"] = ["sh", "-c", ("mkdir -p /www && hostname > /www/index.html && touch /www/ready && "
                                 "exec httpd -f -p 8080 -h /www")]
    c["readinessProbe"] = {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1}
    cluster.kubectl("apply", "-f", "-", input=manifest(deploy, svc, client))
    pods = wait(lambda: ready_pods(cluster, ns, 2), 90, "two ready web pods")
    wait(lambda: cluster.kjson("get", "pod", "client", "-n", ns)["status"].get("phase") == "Running", 60,
         "the client pod")
    ip = cluster.kjson("get", "service", "web", "-n", ns)["spec"]["clusterIP"]
    wait(lambda: proxied(ip, 80), 10, "the proxy's rules for the Service")
    assert spread(cluster, ns, ip, 80, set(pods)) == set(pods)
    sick, healthy = pods
    cluster.kubectl("exec", "-n", ns, sick, "--", "rm", "/www/ready")
    wait(lambda: ready_pods(cluster, ns, 1) == [healthy], 30, f"{sick} not ready")
    # once the EndpointSlice and the proxy follow, every request goes to the healthy pod
    wait(lambda: {get(cluster, ns, ip).stdout.strip() for _ in range(3)} == {healthy}, 30,
         "traffic only to the ready pod")
    assert {get(cluster, ns, ip).stdout.strip() for _ in range(10)} == {healthy}
    cluster.kubectl("exec", "-n", ns, sick, "--", "touch", "/www/ready")
    wait(lambda: ready_pods(cluster, ns, 2), 30, f"{sick} ready again")
    assert spread(cluster, ns, ip, 80, set(pods)) == set(pods)


def test_api_server_proxies_to_pods_and_services(cluster: Server, ns: str) -> None:
    """``pods/proxy`` and ``services/proxy`` on a real node: the API server reaches the pods on
    their addresses in the pod network, as kube-apiserver does (``kubectl get --raw``, the official
    client's ``connect_get_*_proxy``)."""
    deploy, svc, _ = web(ns)
    cluster.kubectl("apply", "-f", "-", input=manifest(deploy, svc))
    pods = wait(lambda: ready_pods(cluster, ns, 2), 90, "two ready web pods")

    def raw(path: str) -> str:
        return cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{ns}/{path}").stdout.strip()

    # a service by its port's name or number: a ready endpoint chosen at random each time
    seen = {raw("services/web:http/proxy/") for _ in range(30)}
    assert seen == set(pods)
    assert raw("services/http:web:80/proxy/index.html") in pods
    # a pod by name and port: that pod
    for name in pods:
        assert raw(f"pods/{name}:8080/proxy/") == name
    api = cluster.client()
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(api)
    assert core.connect_get_namespaced_pod_proxy_with_path(f"{pods[0]}:8080", ns, "index.html").strip() == pods[0]
    assert core.connect_get_namespaced_service_proxy_with_path("web:http", ns, "index.html").strip() in pods
    # no ready endpoint: kube's 503
    cluster.kubectl("scale", "deployment", "web", "-n", ns, "--replicas=0")

    def refused() -> bool:
        p = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{ns}/services/web:http/proxy/", check=False)
        return p.returncode != 0 and 'no endpoints available for service "web' in p.stderr

    wait(refused, 60, "the service proxy's 503 once no endpoint is ready")
