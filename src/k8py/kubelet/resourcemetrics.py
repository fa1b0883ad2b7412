"""Kubelet's ``/metrics/resource``: the node's and its running containers' CPU and memory in the
Prometheus text format (version 0.0.4), what metrics-server scrapes.

The metric names, help texts, labels and stability levels are kubelet's
(``pkg/kubelet/metrics/collectors/resource_metrics.go``); the samples come from the same readings
as ``/stats/summary`` (:class:`ResourceSample`, filled by :mod:`k8py.kubelet.server` as it builds
the summary), so the two endpoints never disagree:

- ``node_cpu_usage_seconds_total`` (counter) and ``node_memory_working_set_bytes`` (gauge), no
  labels;
- ``container_cpu_usage_seconds_total``, ``container_memory_working_set_bytes`` and
  ``container_start_time_seconds`` with ``container``, ``pod`` and ``namespace``;
- ``pod_cpu_usage_seconds_total`` and ``pod_memory_working_set_bytes`` with ``pod`` and
  ``namespace``;
- ``resource_scrape_error``: 1 when the stats could not be read, else 0.

Usage samples carry their reading's time as the sample timestamp (milliseconds), as kubelet's
``NewLazyMetricWithTimestamp``; the start time and the scrape error carry none. kubelet's
``scrape_error`` is deprecated since 1.29 and so hidden by component-base's metrics from 1.30
on (without ``--show-hidden-metrics-for-version``): it is not written, as kubelet 1.37 does not.
Families are written sorted by name and their samples by label values, as client_golang's
gatherer does; a family with no samples is left out. Nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["CONTENT_TYPE", "NodeSample", "ResourceSample", "go_float", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """One running container's reading (``time``, seconds since the epoch)."""

    namespace: str
    pod: str
    container: str
    start_time: float
    time: float
    cpu_core_ns: int
    working_set_bytes: int


@dataclass(frozen=True, slots=True)
class NodeSample:
    time: float
    cpu_core_ns: int | None
    working_set_bytes: int | None


# (name, type, help) as kubelet declares them, with component-base's "[STABLE] " prefix
_FAMILIES = {
    "container_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed by the container in core-seconds"),
    "container_memory_working_set_bytes": ("gauge", "Current working set of the container in bytes"),
    "container_start_time_seconds": ("gauge", "Start time of the container since unix epoch in seconds"),
    "node_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed by the node in core-seconds"),
    "node_memory_working_set_bytes": ("gauge", "Current working set of the node in bytes"),
    "pod_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed by the pod in core-seconds"),
    "pod_memory_working_set_bytes": ("gauge", "Current working set of the pod in bytes"),
    "resource_scrape_error": ("gauge", "1 if there was an error while getting container metrics, 0 otherwise"),
}


def go_float(v: float) -> str:
    """``v`` as Prometheus' text encoder writes it: ``strconv.FormatFloat(v, 'g', -1, 64)`` (the
    shortest digits that read back exactly; an exponent from 1e+06 up and below 1e-04)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    sign = "-" if v < 0 else ""
    t = Decimal(repr(abs(v))).normalize().as_tuple()
    digits = "".join(map(str, t.digits))
    exponent = int(t.exponent)
    point = len(digits) + exponent  # digits[:point] are the integer part
    x = point - 1
    if x < -4 or x >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _label_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _ms(t: float) -> int:
    return round(t * 1000)


Line = tuple[tuple[str, ...], str]  # (sort key: the label values in label-name order, the line)


def render(node: NodeSample | None, containers: Iterable[ResourceSample], *, error: bool = False) -> str:
    """The ``/metrics/resource`` document for these readings; ``error`` (the stats could not be
    read) writes only ``resource_scrape_error 1``, as kubelet's collector."""
    fam: dict[str, list[Line]] = {name: [] for name in _FAMILIES}
    if not error:
        if node is not None and node.cpu_core_ns is not None:
            fam["node_cpu_usage_seconds_total"].append(((), f"{go_float(node.cpu_core_ns / 1e9)} {_ms(node.time)}"))
        if node is not None and node.working_set_bytes is not None:
            fam["node_memory_working_set_bytes"].append(((), f"{go_float(node.working_set_bytes)} {_ms(node.time)}"))
        pods: dict[tuple[str, str], list[ResourceSample]] = {}
        for c in containers:
            pods.setdefault((c.namespace, c.pod), []).append(c)
        for (ns, pod), cs in pods.items():
            pod_labels = f'namespace="{_label_value(ns)}",pod="{_label_value(pod)}"'
            for c in cs:
                key = (c.container, ns, pod)
                labels = f'{{container="{_label_value(c.container)}",{pod_labels}}}'
                if c.start_time > 0:
                    fam["container_start_time_seconds"].append((key, f"{labels} {go_float(c.start_time)}"))
                fam["container_cpu_usage_seconds_total"].append(
                    (key, f"{labels} {go_float(c.cpu_core_ns / 1e9)} {_ms(c.time)}"))
                fam["container_memory_working_set_bytes"].append(
                    (key, f"{labels} {go_float(c.working_set_bytes)} {_ms(c.time)}"))
            when = max(c.time for c in cs)
            fam["pod_cpu_usage_seconds_total"].append(
                ((ns, pod), f"{{{pod_labels}}} {go_float(sum(c.cpu_core_ns for c in cs) / 1e9)} {_ms(when)}"))
            fam["pod_memory_working_set_bytes"].append(
                ((ns, pod), f"{{{pod_labels}}} {go_float(sum(c.working_set_bytes for c in cs))} {_ms(when)}"))
    fam["resource_scrape_error"].append(((), "1" if error else "0"))
    return _text(fam)


def _text(fam: dict[str, list[Line]]) -> str:
    out: list[str] = []
    for name in sorted(fam):
        lines: Sequence[Line] = fam[name]
        if not lines:
            continue
        typ, help_ = _FAMILIES[name]
        out.append(f"# HELP {name} [STABLE] {help_}\n# TYPE {name} {typ}\n")
        for _key, line in sorted(lines, key=lambda kl: kl[0]):
            sep = "" if line.startswith("{") else " "
            out.append(f"{name}{sep}{line}\n")
    return "".join(out)
