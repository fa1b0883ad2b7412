"""`kubectl autoscale` on a real `k8py server` whose PodMetrics come from a small HTTPS backend of
the test's own, registered as ``v1beta1.metrics.k8s.io`` behind the aggregation layer (the bundled
metrics-server is off; a fake node runs the pods). The backend answers for every Running pod the
API has with a CPU use the test sets, so the HPA controller in the server's controller manager
scales up, shows its targets in ``kubectl get hpa``, and scales down once a ``behavior`` with no
stabilization window is patched in. Traffic stays on loopback."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from tests.e2e.conftest import KUBECTL, NodeThread, Server, manifest, start_server, wait
from tests.helpers.wardle import ServingFiles, serve_tls

from k8py.client.api import Client
from k8py.client.config import load_kubeconfig

pytestmark = pytest.mark.skipif(not KUBECTL, reason="kubectl not installed")

APISERVICE = "v1beta1.metrics.k8s.io"
GV = "metrics.k8s.io/v1beta1"


class MetricsBackend:
    """``metrics.k8s.io/v1beta1`` pods over HTTPS, on its own event loop in a thread: each Running
    pod (of those the label selector picks) uses ``cpu`` millicores, sampled now over 1 s."""

    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig
        self.cpu = 0
        self.tls = ServingFiles(("api.hpa-metrics.svc",), "k8py-hpa-metrics-")
        self.ca_pem = self.tls.ca_pem
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hpa-metrics", daemon=True)
        self.port = 0

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> MetricsBackend:

        self.thread.start()

        async def go() -> None:
            self.client = Client(load_kubeconfig(self.kubeconfig), component="hpa-metrics")
            app = web.Application()
            app.router.add_get(f"/apis/{GV}", self.resources)
            app.router.add_get(f"/apis/{GV}/namespaces/{{ns}}/pods", self.pods)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            self.port = await serve_tls(self.runner, 0, self.tls.server_context())

        self._run(go())
        return self

    async def resources(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GV, "resources": [
            {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]}]})

    async def pods(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        found = await self.client.list(("v1", "Pod"), ns, label_selector=request.query.get("labelSelector"))
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        items = [{"metadata": {"name": p["metadata"]["name"], "namespace": ns,
                               "labels": p["metadata"].get("labels") or {}},
                  "timestamp": now, "window": "1s",
                  "containers": [{"name": c["name"], "usage": {"cpu": f"{self.cpu}m", "memory": "10Mi"}}
                                 for c in p["spec"]["containers"]]}
                 for p in found["items"] if (p.get("status") or {}).get("phase") == "Running"]
        return web.json_response({"kind": "PodMetricsList", "apiVersion": GV, "metadata": {}, "items": items})

    def close(self) -> None:
        async def stop() -> None:
            await self.runner.cleanup()
            await self.client.close()
            await asyncio.sleep(0.25)  # let TLS transports finish closing

        self._run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.tls.remove()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, MetricsBackend]]:
    # kube's flag through k3s's: the HPAs are looked at every second instead of every 15 s
    s = start_server(tmp_path_factory.mktemp("hpa-aggregated"), "--disable-metrics-server",
                     "--kube-controller-manager-arg=horizontal-pod-autoscaler-sync-period=1s")
    node = backend = None
    try:
        node = NodeThread(s, "node-1").start()
        backend = MetricsBackend(s.kubeconfig).start()
        s.kubectl("apply", "-f", "-", input=manifest(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hpa-metrics"}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "hpa-metrics"},
             "spec": {"ports": [{"name": "https", "port": 443, "targetPort": backend.port}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": "api-1", "namespace": "hpa-metrics",
                          "labels": {"kubernetes.io/service-name": "api"}},
             "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
             "ports": [{"name": "https", "port": backend.port, "protocol": "TCP"}]},
            {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": APISERVICE},
             "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                      "versionPriority": 100, "service": {"namespace": "hpa-metrics", "name": "api", "port": 443},
                      "caBundle": base64.b64encode(backend.ca_pem.encode()).decode()}}))

        def available() -> bool:
            a = s.kjson("get", "apiservice", APISERVICE)
            return any(c["type"] == "Available" and c["status"] == "True"
                       for c in (a.get("status") or {}).get("conditions") or ())

        wait(available, 60, "the metrics APIService Available")
        yield s, backend
    finally:
        s.kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        if backend is not None:
            backend.close()
        if node is not None:
            node.stop()
        s.stop()


def _row(s: Server, ns: str) -> list[str]:
    # NAME REFERENCE TARGETS ("cpu: 90%/50%") MINPODS MAXPODS REPLICAS AGE
    return s.kubectl("get", "hpa", "web", "-n", ns, "--no-headers").stdout.split()


def test_autoscale_up_and_down_from_aggregated_pod_metrics(cluster: tuple[Server, MetricsBackend]) -> None:
    s, backend = cluster
    ns = "hpa-agg"
    s.kubectl("create", "namespace", ns)
    s.kubectl("create", "deployment", "web", "--image=nginx", "-n", ns)
    s.kubectl("set", "resources", "deployment", "web", "--requests=cpu=100m", "-n", ns)
    wait(lambda: s.kjson("get", "deployment", "web", "-n", ns).get("status", {}).get("readyReplicas") == 1, 60,
         "web ready")
    # what kubectl top reads comes from the backend now
    top = json.loads(s.kubectl("get", "--raw", f"/apis/{GV}/namespaces/{ns}/pods").stdout)
    assert [i["containers"][0]["usage"]["cpu"] for i in top["items"]] == ["0m"]

    backend.cpu = 90  # 90 % of the request against 50 %
    s.kubectl("autoscale", "deployment", "web", "--min=1", "--max=4", "--cpu-percent=50", "-n", ns)
    # 1 -> 2 -> 4 (ceil(1.8 x current), capped at maxReplicas), a step a sync
    wait(lambda: _row(s, ns)[1:7] == ["Deployment/web", "cpu:", "90%/50%", "1", "4", "4"], 120,
         "kubectl get hpa: cpu: 90%/50% at 4 replicas")
    assert s.kjson("get", "deployment", "web", "-n", ns)["spec"]["replicas"] == 4

    backend.cpu = 10  # 10 %: one pod is enough; no 5 minute window with this behavior
    s.kubectl("patch", "hpa", "web", "-n", ns, "--type=merge", "-p",
              json.dumps({"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}}))
    wait(lambda: _row(s, ns)[1:7] == ["Deployment/web", "cpu:", "10%/50%", "1", "4", "1"], 120,
         "kubectl get hpa: cpu: 10%/50% at 1 replica")
    described = s.kubectl("describe", "hpa", "web", "-n", ns).stdout
    assert "New size: 4; reason: cpu resource utilization (percentage of request) above target" in described
    assert "New size: 1; reason: All metrics below target" in described
