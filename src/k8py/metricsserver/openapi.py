"""metrics-server's OpenAPI v3 (``/openapi/v3`` and ``/openapi/v3/apis/metrics.k8s.io/v1beta1``),
which the aggregator fetches and serves with the API server's own, so that ``kubectl explain
nodes.metrics.k8s.io`` works: the schemas of ``k8s.io/metrics``' v1beta1 types (NodeMetrics,
PodMetrics, ContainerMetrics and their lists) with their descriptions, and the read-only paths
metrics-server serves. Nothing here does I/O.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson

from k8py.api.openapi import extension_document
from k8py.metricsserver.api import GROUP, VERSION

__all__ = ["document", "index"]

Obj = dict[str, Any]

PREFIX = "io.k8s.metrics.pkg.apis.metrics.v1beta1."
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
PATH = f"apis/{GROUP}/{VERSION}"


def _ref(name: str, description: str = "") -> Obj:
    r: Obj = {"$ref": "#/components/schemas/" + name}
    return {"allOf": [r], "description": description} if description else r


def _gvk(kind: str) -> list[Obj]:
    return [{"group": GROUP, "kind": kind, "version": VERSION}]


_TYPE_META = {
    "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation "
                   "of an object. Servers should convert recognized schemas to the latest internal value, and may "
                   "reject unrecognized values."},
    "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object "
             "represents. Servers may infer this from the endpoint the client submits requests to. Cannot be "
             "updated. In CamelCase."},
}
_WINDOW = {
    "timestamp": _ref(_META + "Time", "The following fields define time interval from which metrics were collected "
                                      "from the interval [Timestamp-Window, Timestamp]."),
    "window": {"type": "string"},
}
_USAGE = {"type": "object", "additionalProperties": _ref(_QUANTITY)}


def _list(kind: str, item: str) -> Obj:
    return {"description": f"{kind} is a list of {item}.", "type": "object", "required": ["items"],
            "properties": {**_TYPE_META,
                           "items": {"type": "array", "description": f"List of {item.lower()}.",
                                     "items": {"default": {}, "allOf": [{"$ref": "#/components/schemas/" + PREFIX
                                                                         + item.removesuffix("s")}]}},
                           "metadata": {"default": {}, "allOf": [{"$ref": "#/components/schemas/" + _META
                                                                  + "ListMeta"}],
                                        "description": "Standard list metadata. More info: https://git.k8s.io/"
                                                       "community/contributors/devel/sig-architecture/"
                                                       "api-conventions.md#types-kinds"}},
            "x-kubernetes-group-version-kind": _gvk(kind)}


def schemas() -> dict[str, Obj]:
    meta = {"default": {}, "allOf": [{"$ref": "#/components/schemas/" + _META + "ObjectMeta"}],
            "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/"
                           "devel/sig-architecture/api-conventions.md#metadata"}
    return {
        PREFIX + "ContainerMetrics": {
            "description": "ContainerMetrics sets resource usage metrics of a container.", "type": "object",
            "required": ["name", "usage"],
            "properties": {"name": {"type": "string", "default": "",
                                    "description": "Container name corresponding to the one from pod.spec.containers."},
                           "usage": {**_USAGE, "description": "The memory usage is the memory working set."}}},
        PREFIX + "NodeMetrics": {
            "description": "NodeMetrics sets resource usage metrics of a node.", "type": "object",
            "required": ["timestamp", "window", "usage"],
            "properties": {**_TYPE_META, "metadata": meta, **_WINDOW,
                           "usage": {**_USAGE, "description": "The memory usage is the memory working set."}},
            "x-kubernetes-group-version-kind": _gvk("NodeMetrics")},
        PREFIX + "NodeMetricsList": _list("NodeMetricsList", "NodeMetrics"),
        PREFIX + "PodMetrics": {
            "description": "PodMetrics sets resource usage metrics of a pod.", "type": "object",
            "required": ["timestamp", "window", "containers"],
            "properties": {**_TYPE_META, "metadata": meta, **_WINDOW,
                           "containers": {"type": "array", "description": "Metrics for all containers are collected "
                                          "within the same time window.",
                                          "items": {"default": {}, "allOf": [_ref(PREFIX + "ContainerMetrics")]},
                                          "x-kubernetes-list-type": "atomic"}},
            "x-kubernetes-group-version-kind": _gvk("PodMetrics")},
        PREFIX + "PodMetricsList": _list("PodMetricsList", "PodMetrics"),
    }


def _op(op_id: str, description: str, schema: str, action: str, kind: str, params: list[Obj]) -> Obj:
    content = {t: {"schema": _ref(PREFIX + schema)} for t in ("application/json", "application/yaml")}
    return {"get": {"tags": ["metrics_v1beta1"], "description": description, "operationId": op_id,
                    "responses": {"200": {"description": "OK", "content": content},
                                  "401": {"description": "Unauthorized"}},
                    "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": {"group": GROUP, "version": VERSION, "kind": kind}},
            "parameters": params}


def _param(name: str, where: str, description: str) -> Obj:
    p: Obj = {"name": name, "in": where, "description": description, "schema": {"type": "string",
                                                                               "uniqueItems": True}}
    if where == "path":
        p["required"] = True
    return p


def paths() -> dict[str, Obj]:
    name = _param("name", "path", "name of the resource")
    ns = _param("namespace", "path", "object name and auth scope, such as for teams and projects")
    sel = [_param("labelSelector", "query", "A selector to restrict the list of returned objects by their labels."),
           _param("fieldSelector", "query", "A selector to restrict the list of returned objects by their fields.")]
    base = f"/apis/{GROUP}/{VERSION}"
    return {
        base + "/": {"get": {"tags": ["metrics_v1beta1"], "description": "get available resources",
                             "operationId": "getMetricsV1beta1APIResources",
                             "responses": {"200": {"description": "OK", "content": {"application/json": {
                                 "schema": {"$ref": "#/components/schemas/" + _META + "APIResourceList"}}}},
                                 "401": {"description": "Unauthorized"}}}},
        base + "/nodes": _op("listMetricsV1beta1NodeMetrics", "list objects of kind NodeMetrics", "NodeMetricsList",
                             "list", "NodeMetrics", sel),
        base + "/nodes/{name}": _op("readMetricsV1beta1NodeMetrics", "read the specified NodeMetrics", "NodeMetrics",
                                    "get", "NodeMetrics", [name]),
        base + "/pods": _op("listMetricsV1beta1PodMetricsForAllNamespaces", "list objects of kind PodMetrics",
                            "PodMetricsList", "list", "PodMetrics", sel),
        base + "/namespaces/{namespace}/pods": _op("listMetricsV1beta1NamespacedPodMetrics",
                                                   "list objects of kind PodMetrics", "PodMetricsList", "list",
                                                   "PodMetrics", [ns, *sel]),
        base + "/namespaces/{namespace}/pods/{name}": _op("readMetricsV1beta1NamespacedPodMetrics",
                                                          "read the specified PodMetrics", "PodMetrics", "get",
                                                          "PodMetrics", [name, ns]),
    }


@functools.cache
def document() -> tuple[bytes, str]:
    """The group-version's document and its hash (upper-case hex SHA-512, as kube-openapi's)."""
    doc = extension_document(paths(), schemas(), {_META + "ObjectMeta", _META + "ListMeta", _META + "Time",
                                                  _QUANTITY, _META + "APIResourceList"})
    body = orjson.dumps(doc)
    return body, hashlib.sha512(body).hexdigest().upper()


def index() -> Obj:
    """``/openapi/v3``: where the group-version's document is, with its hash."""
    return {"paths": {PATH: {"serverRelativeURL": f"/openapi/v3/{PATH}?hash={document()[1]}"}}}
