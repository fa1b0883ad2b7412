"""Where the HorizontalPodAutoscaler reads metrics, as kube's ``podautoscaler/metrics``: one
:class:`MetricsClient` interface and its REST implementation over the aggregated metrics APIs.

- resource metrics: ``metrics.k8s.io/v1beta1`` PodMetrics (metrics-server), listed by the
  target's pod selector; a pod's value is the sum of its containers' (a pod with a container
  lacking the resource has none), or one named container's;
- pods and object metrics: ``custom.metrics.k8s.io`` (v1beta2, else v1beta1), found through
  discovery as kube's custom metrics client does;
- external metrics: ``external.metrics.k8s.io/v1beta1``.

Without an adapter serving an API, the errors read as kube's do (``no custom metrics API
(custom.metrics.k8s.io) registered``, ``the server could not find the requested resource (get
pods.metrics.k8s.io)``), and the controller shows them in ``ScalingActive=False``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from k8py.api.corev1 import milli_value, parse_time
from k8py.api.gotext import parse_duration
from k8py.client.api import Client
from k8py.client.errors import ApiError
from k8py.controllers.horizontalcalc import MetricError, PodMetric

__all__ = ["MetricsClient", "RESTMetricsClient", "describe_error", "pod_metrics_info"]

Obj = dict[str, Any]

RESOURCE_METRICS = "/apis/metrics.k8s.io/v1beta1"
CUSTOM_GROUP = "custom.metrics.k8s.io"
EXTERNAL_METRICS = "/apis/external.metrics.k8s.io/v1beta1"
DEFAULT_WINDOW = 60.0  # metricServerDefaultMetricWindow

# client-go's words for an error answer without a Status of its own (NewGenericServerResponse)
_GENERIC = {
    400: "the server rejected our request for an unknown reason",
    401: "the server has asked for the client to provide credentials",
    403: "the server does not allow access to the requested resource",
    404: "the server could not find the requested resource",
    405: "the server does not allow this method on the requested resource",
    429: "the server has received too many requests and has asked us to try again later",
    500: "an error on the server has prevented the request from succeeding",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still be processing the "
         "request",
}


def describe_error(e: ApiError, resource: str, name: str = "") -> str:
    """An API error as client-go words it for ``get`` of ``resource`` (``pods.metrics.k8s.io``):
    the aggregator answers a missing or unavailable API without a Status (404, 503), so the
    generic text with the resource; otherwise the Status' own message."""
    if e.code in (404, 503) or not e.message:
        base = _GENERIC.get(e.code, f"unknown (get {resource})")
        return f"{base} (get {resource}{' ' + name if name else ''})"
    return e.message


class MetricsClient(Protocol):
    """kube's ``MetricsClient``; every method raises :class:`MetricError` with kube's text."""

    async def resource_metric(self, resource: str, namespace: str, selector: str,
                              container: str) -> tuple[dict[str, PodMetric], float]: ...

    async def raw_metric(self, metric: str, namespace: str, selector: str,
                         metric_selector: str) -> tuple[dict[str, PodMetric], float]: ...

    async def object_metric(self, metric: str, namespace: str, ref: Mapping[str, Any],
                            metric_selector: str) -> tuple[int, float]: ...

    async def external_metric(self, metric: str, namespace: str, selector: str) -> tuple[list[int], float]: ...


def _epoch(s: Any) -> float:
    t = parse_time(s) if isinstance(s, str) else None
    return t.timestamp() if t is not None else 0.0


def _window(s: Any) -> float:
    if isinstance(s, str) and s:
        try:
            return parse_duration(s)
        except ValueError:
            return DEFAULT_WINDOW
    return DEFAULT_WINDOW


def pod_metrics_info(items: list[Obj], resource: str, container: str) -> dict[str, PodMetric]:
    """PodMetrics items as ``{pod name: PodMetric}`` (kube's ``getPodMetrics`` /
    ``getContainerMetrics``)."""
    out: dict[str, PodMetric] = {}
    for m in items:
        md = m.get("metadata") or {}
        name = str(md.get("name") or "")
        ts, window = _epoch(m.get("timestamp")), _window(m.get("window"))
        containers = m.get("containers") or []
        if container:
            for c in containers:
                if c.get("name") == container:
                    usage = c.get("usage") or {}
                    if resource in usage:
                        out[name] = PodMetric(milli_value(usage[resource]), ts, window)
                    break
            else:
                raise MetricError(f"container {container} not present in metrics for pod "
                                  f"{md.get('namespace', '')}/{name}")
            continue
        total = 0
        missing = not containers
        for c in containers:
            usage = c.get("usage") or {}
            if resource not in usage:
                missing = True
                break
            total += milli_value(usage[resource])
        if not missing:
            out[name] = PodMetric(total, ts, window)
    return out


class RESTMetricsClient:
    """:class:`MetricsClient` over the API server (and the metrics APIs it aggregates)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._custom_version: str | None = None

    async def resource_metric(self, resource: str, namespace: str, selector: str,
                              container: str) -> tuple[dict[str, PodMetric], float]:
        try:
            body = await self.client.request("GET", f"{RESOURCE_METRICS}/namespaces/{namespace}/pods",
                                             params={"labelSelector": selector} if selector else None)
        except ApiError as e:
            raise MetricError("unable to fetch metrics from resource metrics API: "
                              + describe_error(e, "pods.metrics.k8s.io")) from None
        items = list(body.get("items") or [])
        if not items:
            raise MetricError("no metrics returned from resource metrics API")
        try:
            res = pod_metrics_info(items, resource, container)
        except MetricError as e:
            raise MetricError(f"failed to get container metrics: {e}") from None
        return res, _epoch(items[0].get("timestamp"))

    async def _custom_prefix(self) -> str:
        """The custom metrics API's preferred version, from discovery (kube's
        ``apiVersionsFromDiscovery``); kept once found."""
        if self._custom_version is None:
            try:
                groups = await self.client.request("GET", "/apis")
            except ApiError as e:
                raise MetricError(describe_error(e, "apis")) from None
            for g in groups.get("groups") or ():
                if g.get("name") == CUSTOM_GROUP:
                    served = [v.get("version") for v in g.get("versions") or ()]
                    for v in ("v1beta2", "v1beta1"):
                        if v in served:
                            self._custom_version = v
                            break
                    else:
                        raise MetricError("no known available metric versions found")
                    break
            else:
                raise MetricError(f"no custom metrics API ({CUSTOM_GROUP}) registered")
        return f"/apis/{CUSTOM_GROUP}/{self._custom_version}"

    async def _custom_get(self, path: str, params: dict[str, str], resource: str) -> Obj:
        try:
            prefix = await self._custom_prefix()
            return await self.client.request("GET", prefix + path, params=params or None)
        except ApiError as e:
            self._custom_version = None  # look again next time: the adapter may have changed
            raise MetricError("unable to fetch metrics from custom metrics API: "
                              + describe_error(e, resource)) from None
        except MetricError as e:
            raise MetricError(f"unable to fetch metrics from custom metrics API: {e}") from None

    async def raw_metric(self, metric: str, namespace: str, selector: str,
                         metric_selector: str) -> tuple[dict[str, PodMetric], float]:
        params = {"labelSelector": selector} if selector else {}
        if metric_selector:
            params["metricLabelSelector"] = metric_selector
        body = await self._custom_get(f"/namespaces/{namespace}/pods/*/{metric}", params,
                                      f"pods.{CUSTOM_GROUP}")
        items = list(body.get("items") or [])
        if not items:
            raise MetricError("no metrics returned from custom metrics API")
        out: dict[str, PodMetric] = {}
        for m in items:
            ws = m.get("windowSeconds")
            window = float(ws) if isinstance(ws, int | float) else DEFAULT_WINDOW
            pod = str((m.get("describedObject") or {}).get("name") or "")
            out[pod] = PodMetric(milli_value(m.get("value", "0")), _epoch(m.get("timestamp")), window)
        return out, _epoch(items[0].get("timestamp"))

    async def object_metric(self, metric: str, namespace: str, ref: Mapping[str, Any],
                            metric_selector: str) -> tuple[int, float]:
        params = {"metricLabelSelector": metric_selector} if metric_selector else {}
        api_version, kind = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        if kind == "Namespace" and group == "":
            path = f"/namespaces/{namespace}/metrics/{metric}"
        else:
            info = self.client.kind_info((api_version or "v1", kind))
            res = info.resource if info is not None else kind.lower() + "s"
            qualified = f"{res}.{group}" if group else res
            path = f"/namespaces/{namespace}/{qualified}/{ref.get('name', '')}/{metric}"
        body = await self._custom_get(path, params, f"{kind.lower()}.{CUSTOM_GROUP}")
        items = list(body.get("items") or []) if "items" in body else [body]
        if len(items) != 1:
            raise MetricError("unable to fetch metrics from custom metrics API: the custom metrics API server "
                              f"returned {len(items)} results when we asked for exactly one")
        return milli_value(items[0].get("value", "0")), _epoch(items[0].get("timestamp"))

    async def external_metric(self, metric: str, namespace: str, selector: str) -> tuple[list[int], float]:
        try:
            body = await self.client.request("GET", f"{EXTERNAL_METRICS}/namespaces/{namespace}/{metric}",
                                             params={"labelSelector": selector} if selector else None)
        except ApiError as e:
            raise MetricError("unable to fetch metrics from external metrics API: "
                              + describe_error(e, f"{metric}.external.metrics.k8s.io")) from None
        items = list(body.get("items") or [])
        if not items:
            raise MetricError("no metrics returned from external metrics API")
        return [milli_value(m.get("value", "0")) for m in items], _epoch(items[0].get("timestamp"))
