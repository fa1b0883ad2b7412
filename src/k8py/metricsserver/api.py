"""The ``metrics.k8s.io/v1beta1`` API as metrics-server serves it (``pkg/api``): its objects,
Tables and discovery documents. Nothing here does I/O.

- ``NodeMetrics`` (resource ``nodes``, cluster-scoped) and ``PodMetrics`` (``pods``, namespaced):
  ``metadata`` (name, namespace, labels of the node or pod, ``creationTimestamp`` the time of the
  answer), ``timestamp``, ``window`` (a Go duration) and ``usage`` (``cpu`` in nanocores as a
  DecimalSI quantity, ``memory`` in bytes as a BinarySI one; per container for pods, sorted by
  name). Lists are sorted by namespace and name, their items without ``kind``, as the API
  server encodes a typed list.
- A Table (kubectl's ``as=Table``) has metrics-server's columns: ``Name``, one per resource
  (``cpu``, ``memory``: a pod's containers summed) and ``Window``.
- Verbs ``get`` and ``list``: metrics-server serves no watch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from k8py.api.corev1 import format_epoch
from k8py.api.gotext import go_duration
from k8py.api.quantity import Format, Quantity, format_quantity
from k8py.metricsserver.storage import NodeUsage, PodUsage

__all__ = ["API_VERSION", "GROUP", "VERSION", "api_group", "api_group_discovery", "api_group_list",
           "api_resource_list", "node_metrics", "node_metrics_list", "pod_metrics", "pod_metrics_list", "table"]

Obj = dict[str, Any]

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
RESOURCES = (("nodes", "NodeMetrics", False), ("pods", "PodMetrics", True))


def cpu_quantity(nanocores: int) -> str:
    """``resource.NewScaledQuantity(n, -9)`` in DecimalSI: ``132398302n``, ``500m``, ``2``."""
    return format_quantity(Quantity(Fraction(nanocores, 10**9), Format.DECIMAL_SI))


def memory_quantity(n: int) -> str:
    """Bytes as a BinarySI quantity: ``622040Ki``, ``12345678``."""
    return format_quantity(Quantity(Fraction(n), Format.BINARY_SI))


def _time(t: float) -> str | None:
    return format_epoch(t) if t > 0 else None  # a zero metav1.Time is null


def _meta(name: str, namespace: str | None, labels: Mapping[str, str] | None, now: float) -> Obj:
    m: Obj = {"name": name}
    if namespace is not None:
        m["namespace"] = namespace
    m["creationTimestamp"] = format_epoch(now)
    if labels:
        m["labels"] = dict(labels)
    return m


def _usage(cpu_nanocores: int, memory: int) -> Obj:
    return {"cpu": cpu_quantity(cpu_nanocores), "memory": memory_quantity(memory)}


def node_metrics(u: NodeUsage, labels: Mapping[str, str] | None, now: float, *, typed: bool = True) -> Obj:
    out: Obj = {"kind": "NodeMetrics", "apiVersion": API_VERSION} if typed else {}
    out.update({"metadata": _meta(u.name, None, labels, now), "timestamp": _time(u.usage.timestamp),
                "window": go_duration(u.usage.window), "usage": _usage(u.usage.cpu_nanocores, u.usage.memory_bytes)})
    return out


def pod_metrics(u: PodUsage, labels: Mapping[str, str] | None, now: float, *, typed: bool = True) -> Obj:
    out: Obj = {"kind": "PodMetrics", "apiVersion": API_VERSION} if typed else {}
    out.update({"metadata": _meta(u.name, u.namespace, labels, now), "timestamp": _time(u.timestamp),
                "window": go_duration(u.window),
                "containers": [{"name": c.name, "usage": _usage(c.cpu_nanocores, c.memory_bytes)}
                               for c in u.containers]})
    return out


def _list(kind: str, items: list[Obj]) -> Obj:
    return {"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}


def node_metrics_list(items: Iterable[tuple[NodeUsage, Mapping[str, str] | None]], now: float) -> Obj:
    objs = [node_metrics(u, labels, now, typed=False) for u, labels in sorted(items, key=lambda x: x[0].name)]
    return _list("NodeMetricsList", objs)


def pod_metrics_list(items: Iterable[tuple[PodUsage, Mapping[str, str] | None]], now: float) -> Obj:
    objs = [pod_metrics(u, labels, now, typed=False)
            for u, labels in sorted(items, key=lambda x: (x[0].namespace, x[0].name))]
    return _list("PodMetricsList", objs)


def _sum_usage(obj: Obj) -> dict[str, Quantity]:
    if "usage" in obj:
        parts = [obj["usage"]]
    else:
        parts = [c["usage"] for c in obj.get("containers") or []]
    total: dict[str, Quantity] = {}
    for usage in parts:
        for k, v in usage.items():
            q = Quantity.parse(v)
            total[k] = total[k] + q if k in total else q
    return total


def table(objs: list[Obj], *, include_object: str = "Metadata") -> Obj:
    """metrics-server's Table of NodeMetrics or PodMetrics (``addNodeMetricsToTable``,
    ``addPodMetricsToTable``): the resource columns are those of the first object. ``include_object``
    is the request's ``includeObject`` (``None``, ``Metadata``: the default, ``Object``)."""
    columns: list[Obj] = []
    rows: list[Obj] = []
    names: list[str] | None = None
    for obj in objs:
        usage = _sum_usage(obj)
        if names is None:
            names = sorted(usage)
            columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name of the resource",
                        "priority": 0}]
            columns += [{"name": n, "type": "string", "format": "quantity", "description": "", "priority": 0}
                        for n in names]
            columns.append({"name": "Window", "type": "string", "format": "duration", "description": "",
                            "priority": 0})
        cells: list[Any] = [obj["metadata"]["name"]]
        cells += [format_quantity(usage[n]) if n in usage else "0" for n in names]
        cells.append(obj["window"])
        row: Obj = {"cells": cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": columns,
            "rows": rows}


# --------------------------------------------------------------------------- discovery


def api_resource_list() -> Obj:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION,
            "resources": [{"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                           "verbs": ["get", "list"]} for name, kind, namespaced in RESOURCES]}


def api_group() -> Obj:
    gv = {"groupVersion": API_VERSION, "version": VERSION}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [gv], "preferredVersion": gv}


def api_group_list() -> Obj:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{k: v for k, v in api_group().items()
                                                                    if k not in ("kind", "apiVersion")}]}


def api_group_discovery() -> Obj:
    """The aggregated discovery document (``apidiscovery.k8s.io/v2`` ``APIGroupDiscoveryList``)."""
    resources = [{"resource": name, "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
                  "scope": "Namespaced" if namespaced else "Cluster", "singularResource": "",
                  "verbs": ["get", "list"]} for name, kind, namespaced in RESOURCES]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": [{"metadata": {"name": GROUP, "creationTimestamp": None},
                       "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}]}]}
