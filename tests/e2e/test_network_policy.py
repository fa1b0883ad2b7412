"""NetworkPolicy on a real node (runc pods, CNI bridge, the service proxy, the cluster DNS and the
NetworkPolicy agent's nftables): what a client pod can reach, through kubectl exec and busybox's
nc and nslookup, as policies are applied with kubectl.

Traffic goes only from pods of this cluster to other pods of this cluster (directly and through a
Service the proxy forwards to them) and to the cluster DNS on the pod bridge's gateway; each
request is bounded by ``nc -w``/``timeout``, each loop by a deadline. Before expecting a block the
test checks that the agent's table holds the pod; opening is polled with a bounded deadline.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.e2e.conftest import Server, manifest, wait
from tests.helpers.realnode import IMAGE, NETWORKING_ARGS, SharedRealNode, namespace_for

# the dual-stack cluster the networking modules share (real_cluster checks that killall removes
# the NetworkPolicy table)
SHARED_REAL_NODE_ARGS = NETWORKING_ARGS


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        yield s


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    return namespace_for(cluster, request, "np")


def _nft(*args: str) -> str:
    return subprocess.run(["nft", *args], capture_output=True, text=True, check=False, timeout=30).stdout


def isolated(ip: str, direction: str = "ingress") -> bool:
    """The agent's table sends traffic of the pod at ``ip`` through its chain."""
    name = f"{direction}-pods6" if ":" in ip else f"{direction}-pods"
    return f"{ip} : jump" in _nft("list", "map", "inet", "k8py-netpol", name)


def server_and_client(ns: str, client_labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    web = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}},
           "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
               "name": "httpd", "image": IMAGE, "command": ["sh", "-c", (
                   "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www")],
               "ports": [{"containerPort": 8080, "name": "http"}],
               # kubelet's probes come from the node: they must keep working under a default deny
               "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1,
                                  "timeoutSeconds": 1},
               "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 2,
                                 "timeoutSeconds": 1}}]}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
           "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    return [web, svc, client_pod(ns, "client", client_labels)]


def client_pod(ns: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]}}


def running(s: Server, ns: str, name: str) -> dict[str, Any] | None:
    p = s.kjson("get", "pod", name, "-n", ns)
    return p if p["status"].get("phase") == "Running" and p["status"].get("podIP") else None


def ready(s: Server, ns: str, name: str) -> bool:
    conds = s.kjson("get", "pod", name, "-n", ns)["status"].get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def get(s: Server, ns: str, pod: str, host: str, port: int) -> str:
    """An HTTP GET from ``pod`` with busybox's nc, bounded by its 2 s timeout: the body's last line,
    or "" when nothing came back."""
    script = f'printf "GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n" | nc -w 2 {host} {port} | tail -n 1'
    p = s.kubectl("exec", "-n", ns, pod, "--", "sh", "-c", script, check=False, timeout=30)
    return p.stdout.strip() if p.returncode == 0 else ""


def lookup(s: Server, ns: str, pod: str, name: str) -> str:
    p = s.kubectl("exec", "-n", ns, pod, "--", "timeout", "4", "nslookup", name, check=False, timeout=30)
    return p.stdout if p.returncode == 0 else ""


def apply(s: Server, *docs: dict[str, Any]) -> None:
    s.kubectl("apply", "-f", "-", input=manifest(*docs))


def netpol(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def start(s: Server, ns: str, client_labels: dict[str, str] | None = None) -> tuple[str, str]:
    """The web server and the client pod running, the web pod Ready; returns (web IP, Service IP)."""
    web_ip, _, ip = start_dual(s, ns, client_labels)
    return web_ip, ip


def start_dual(s: Server, ns: str, client_labels: dict[str, str] | None = None) -> tuple[str, str, str]:
    """As :func:`start`, with the web pod's IPv6 address: (IPv4, IPv6, Service IP)."""
    apply(s, *server_and_client(ns, client_labels))
    web = wait(lambda: running(s, ns, "web"), 90, "the web pod")
    wait(lambda: running(s, ns, "client"), 90, "the client pod")
    wait(lambda: ready(s, ns, "web"), 30, "the web pod Ready")
    ip = s.kjson("get", "service", "web", "-n", ns)["spec"]["clusterIP"]
    v4, v6 = (a["ip"] for a in web["status"]["podIPs"])
    return v4, v6, ip


def stays_ready(s: Server, ns: str, seconds: float) -> bool:
    """The web pod stays Ready for ``seconds`` (its probes run every second, one failure turns it
    NotReady): polled, not slept."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not ready(s, ns, "web"):
            return False
        time.sleep(0.5)
    return True


def test_default_deny_blocks_and_an_allow_by_pod_label_opens(cluster: Server, ns: str) -> None:
    web_ip, web_ip6, svc_ip = start_dual(cluster, ns)
    assert web_ip6.startswith("fd42:")
    assert get(cluster, ns, "client", web_ip, 8080) == "hello-from-web"  # nothing isolated yet
    assert get(cluster, ns, "client", web_ip6, 8080) == "hello-from-web"

    apply(cluster, netpol(ns, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    wait(lambda: isolated(web_ip) and isolated(web_ip6), 15, "the web pod isolated in the agent's table")
    assert get(cluster, ns, "client", web_ip, 8080) == ""
    assert get(cluster, ns, "client", web_ip6, 8080) == ""  # both families
    assert get(cluster, ns, "client", svc_ip, 80) == ""  # through the Service too: policies apply to endpoints
    # kubelet's probes (from the node) still reach it: it stays Ready and is not restarted
    assert stays_ready(cluster, ns, 4)
    pod = cluster.kjson("get", "pod", "web", "-n", ns)
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0

    # an allow rule by pod label, on the named port: the client is let in once it has the label
    apply(cluster, netpol(ns, "allow-clients", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"port": "http"}]}]}))
    cluster.kubectl("label", "pod", "client", "-n", ns, "role=client")
    wait(lambda: get(cluster, ns, "client", web_ip, 8080) == "hello-from-web", 30, "the allowed client let in")
    assert get(cluster, ns, "client", svc_ip, 80) == "hello-from-web"
    assert get(cluster, ns, "client", web_ip6, 8080) == "hello-from-web"
    # another pod without the label stays out
    apply(cluster, client_pod(ns, "stranger"))
    wait(lambda: running(cluster, ns, "stranger"), 90, "the stranger pod")
    assert get(cluster, ns, "stranger", web_ip, 8080) == ""
    # deleting the default deny changes nothing for the stranger: the allow policy still isolates web
    cluster.kubectl("delete", "networkpolicy", "default-deny", "-n", ns)
    assert get(cluster, ns, "stranger", web_ip, 8080) == ""
    # and deleting the last policy selecting web opens it to everyone
    cluster.kubectl("delete", "networkpolicy", "allow-clients", "-n", ns)
    wait(lambda: not isolated(web_ip), 15, "the web pod no longer isolated")
    assert get(cluster, ns, "stranger", web_ip, 8080) == "hello-from-web"


def test_namespace_selector_admits_pods_of_labelled_namespaces(cluster: Server, ns: str) -> None:
    web_ip, _ = start(cluster, ns)
    other = f"{ns}-peer"[:63]
    cluster.kubectl("create", "namespace", other)
    apply(cluster, client_pod(other, "visitor"))
    wait(lambda: running(cluster, other, "visitor"), 90, "the visitor pod")
    apply(cluster, netpol(ns, "from-team-a", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}]}))
    wait(lambda: isolated(web_ip), 15, "the web pod isolated")
    assert get(cluster, other, "visitor", web_ip, 8080) == ""
    assert get(cluster, ns, "client", web_ip, 8080) == ""  # its own namespace is not labelled team=a
    cluster.kubectl("label", "namespace", other, "team=a")
    wait(lambda: get(cluster, other, "visitor", web_ip, 8080) == "hello-from-web", 30, "the labelled namespace let in")
    assert get(cluster, ns, "client", web_ip, 8080) == ""


def test_egress_default_deny_blocks_dns_and_an_allow_for_its_port_opens_it(cluster: Server, ns: str) -> None:
    web_ip, svc_ip = start(cluster, ns, {"role": "client"})
    name = f"web.{ns}.svc.cluster.local"
    assert svc_ip in lookup(cluster, ns, "client", name)
    client_ip = cluster.kjson("get", "pod", "client", "-n", ns)["status"]["podIP"]
    apply(cluster, netpol(ns, "deny-egress", {"podSelector": {"matchLabels": {"role": "client"}},
                                             "policyTypes": ["Egress"]}))
    wait(lambda: isolated(client_ip, "egress"), 15, "the client isolated for egress")
    assert lookup(cluster, ns, "client", name) == ""  # DNS is blocked too
    assert get(cluster, ns, "client", web_ip, 8080) == ""
    # allow DNS with the rule the Kubernetes documentation gives (kube-system pods labelled
    # k8s-app=kube-dns, port 53): names resolve again, the web pod stays out of reach
    apply(cluster, netpol(ns, "allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}))
    wait(lambda: svc_ip in lookup(cluster, ns, "client", name), 30, "DNS allowed again")
    assert get(cluster, ns, "client", web_ip, 8080) == ""
    # and an egress rule to the web pods by label and named port opens the rest
    apply(cluster, netpol(ns, "to-web", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                                        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                                    "ports": [{"port": "http"}]}]}))
    wait(lambda: get(cluster, ns, "client", svc_ip, 80) == "hello-from-web", 30, "egress to web allowed")
    assert get(cluster, ns, "client", f"web.{ns}.svc.cluster.local", 80) == "hello-from-web"


def test_the_policy_objects_read_back_with_kubectl(cluster: Server, ns: str) -> None:
    """kubectl shows what was applied, with the defaults kube fills in (policyTypes, protocol)."""
    apply(cluster, netpol(ns, "p", {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}))
    spec = cluster.kjson("get", "networkpolicy", "p", "-n", ns)["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["egress"][0]["ports"][0]["protocol"] == "TCP"
    out = cluster.kubectl("describe", "networkpolicy", "p", "-n", ns).stdout
    assert "Allowing egress traffic" in out, out
