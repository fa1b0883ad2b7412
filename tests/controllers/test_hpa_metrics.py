"""The HPA's REST metrics client against a small stand-in for the metrics APIs (aiohttp on
loopback): the paths and parameters it asks for, how it reads the answers, and kube's words for
what goes wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.client.errors import api_error
from k8py.controllers.horizontalcalc import MetricError, PodMetric
from k8py.controllers.horizontalmetrics import RESTMetricsClient, describe_error, pod_metrics_info

Obj = dict[str, Any]
TS = "2026-01-01T00:00:00Z"
EPOCH = 1767225600.0


def pm(name: str, *containers: tuple[str, Obj]) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns"}, "timestamp": TS, "window": "15.5s",
            "containers": [{"name": n, "usage": u} for n, u in containers]}


def test_pod_metrics_sum_containers_and_skip_incomplete_pods() -> None:
    items = [pm("a", ("app", {"cpu": "250m", "memory": "1Mi"}), ("side", {"cpu": "1500000n", "memory": "1Mi"})),
             pm("b", ("app", {"cpu": "100m"})), pm("c")]
    # b has no memory reading in a container and c no containers: no value for them
    assert pod_metrics_info(items, "cpu", "") == {"a": PodMetric(252, EPOCH, 15.5), "b": PodMetric(100, EPOCH, 15.5)}
    assert pod_metrics_info(items, "memory", "") == {"a": PodMetric(2 * 1048576000, EPOCH, 15.5)}
    assert pod_metrics_info(items[:2], "cpu", "app") == {"a": PodMetric(250, EPOCH, 15.5),
                                                         "b": PodMetric(100, EPOCH, 15.5)}
    with pytest.raises(MetricError, match="^container side not present in metrics for pod ns/b$"):
        pod_metrics_info(items[:2], "cpu", "side")


def test_errors_worded_as_client_go() -> None:
    nf = api_error({"kind": "Status", "code": 404, "reason": "NotFound", "message": "404 page not found"})
    assert describe_error(nf, "pods.metrics.k8s.io") == \
        "the server could not find the requested resource (get pods.metrics.k8s.io)"
    down = api_error({"kind": "Status", "code": 503, "reason": "ServiceUnavailable", "message": "x"})
    assert describe_error(down, "pods.metrics.k8s.io") == \
        "the server is currently unable to handle the request (get pods.metrics.k8s.io)"
    forbidden = api_error({"kind": "Status", "code": 403, "reason": "Forbidden", "message": "no, you may not"})
    assert describe_error(forbidden, "pods.metrics.k8s.io") == "no, you may not"


class Backend:
    """What the metrics APIs answer, and what was asked."""

    def __init__(self, custom: bool = True) -> None:
        self.custom = custom
        self.asked: list[tuple[str, dict[str, str]]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/apis", self.groups)
        app.router.add_get("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods", self.pods)
        app.router.add_get("/apis/custom.metrics.k8s.io/v1beta2/{tail:.*}", self.custom_metric)
        app.router.add_get("/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}", self.external)
        return app

    def _seen(self, r: web.Request) -> None:
        self.asked.append((r.path, dict(r.query)))

    async def groups(self, r: web.Request) -> web.Response:
        groups = [{"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}]}]
        if self.custom:
            groups.append({"name": "custom.metrics.k8s.io", "versions": [
                {"groupVersion": "custom.metrics.k8s.io/v1beta2", "version": "v1beta2"},
                {"groupVersion": "custom.metrics.k8s.io/v1beta1", "version": "v1beta1"}]})
        return web.json_response({"kind": "APIGroupList", "groups": groups})

    async def pods(self, r: web.Request) -> web.Response:
        self._seen(r)
        if r.match_info["ns"] == "empty":
            return web.json_response({"kind": "PodMetricsList", "items": []})
        return web.json_response({"kind": "PodMetricsList", "items": [pm("web-1", ("app", {"cpu": "300m"}))]})

    async def custom_metric(self, r: web.Request) -> web.Response:
        self._seen(r)
        tail = r.match_info["tail"]
        if tail.startswith("namespaces/ns/pods/*/"):
            items = [{"describedObject": {"kind": "Pod", "name": n}, "metric": {"name": "rps"}, "timestamp": TS,
                      "windowSeconds": 30, "value": v} for n, v in (("web-1", "10"), ("web-2", "500m"))]
        else:
            items = [{"describedObject": {"kind": "Service"}, "metric": {"name": "hits"}, "timestamp": TS,
                      "value": "42"}]
        return web.json_response({"kind": "MetricValueList", "items": items})

    async def external(self, r: web.Request) -> web.Response:
        self._seen(r)
        if r.match_info["metric"] == "missing":
            return web.Response(status=404, text="404 page not found")
        return web.json_response({"kind": "ExternalMetricValueList", "items": [
            {"metricName": "queue", "timestamp": TS, "value": "3"}, {"metricName": "queue", "timestamp": TS,
                                                                     "value": "1500m"}]})


@pytest.fixture
async def served() -> AsyncIterator[tuple[Backend, RESTMetricsClient]]:
    backend = Backend()
    runner = web.AppRunner(backend.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = Client(ClientConfig(server=f"http://127.0.0.1:{port}"), component="test")
    yield backend, RESTMetricsClient(client)
    await client.close()
    await runner.cleanup()


async def test_resource_custom_and_external_metrics(served: tuple[Backend, RESTMetricsClient]) -> None:
    backend, m = served
    metrics, ts = await m.resource_metric("cpu", "ns", "app=web", "")
    assert metrics == {"web-1": PodMetric(300, EPOCH, 15.5)} and ts == EPOCH
    with pytest.raises(MetricError, match="^no metrics returned from resource metrics API$"):
        await m.resource_metric("cpu", "empty", "app=web", "")

    raw, _ = await m.raw_metric("rps", "ns", "app=web", "verb=GET")
    assert raw == {"web-1": PodMetric(10_000, EPOCH, 30.0), "web-2": PodMetric(500, EPOCH, 30.0)}
    value, _ = await m.object_metric("hits", "ns", {"apiVersion": "v1", "kind": "Service", "name": "front"}, "")
    assert value == 42_000
    await m.object_metric("hits", "ns", {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "")
    await m.object_metric("hits", "ns", {"apiVersion": "v1", "kind": "Namespace", "name": "ignored"}, "")
    values, _ = await m.external_metric("queue", "ns", "q=jobs")
    assert values == [3000, 1500]
    with pytest.raises(MetricError, match=r"^unable to fetch metrics from external metrics API: the server could not "
                                          r"find the requested resource \(get missing.external.metrics.k8s.io\)$"):
        await m.external_metric("missing", "ns", "")
    assert backend.asked == [
        ("/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods", {"labelSelector": "app=web"}),
        ("/apis/metrics.k8s.io/v1beta1/namespaces/empty/pods", {"labelSelector": "app=web"}),
        ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/rps",
         {"labelSelector": "app=web", "metricLabelSelector": "verb=GET"}),
        ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/services/front/hits", {}),
        ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/deployments.apps/web/hits", {}),
        ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/metrics/hits", {}),
        ("/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/queue", {"labelSelector": "q=jobs"}),
        ("/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/missing", {}),
    ]


async def test_no_custom_metrics_api(served: tuple[Backend, RESTMetricsClient]) -> None:
    backend, m = served
    backend.custom = False
    with pytest.raises(MetricError, match=r"^unable to fetch metrics from custom metrics API: no custom metrics API "
                                          r"\(custom.metrics.k8s.io\) registered$"):
        await m.raw_metric("rps", "ns", "app=web", "")
