"""The HorizontalPodAutoscaler's replica calculator, as kube's ``replica_calculator.go`` and
``metrics/utilization.go``: metrics and pods in, a replica count out. Nothing here does I/O;
the controller (``horizontal.py``) fetches the metrics and the pods and passes the time.

The rules, kube's own:

- a pod being deleted or Failed is ignored; a Pending one is unready; a running pod without a
  metric is "missing";
- for cpu only, a pod is also unready while it may still be starting: within the cpu
  initialization period (``--horizontal-pod-autoscaler-cpu-initialization-period``, 5 min)
  of its start if it is not Ready or its sample was taken less than one metric window after
  its readiness last changed; after that, if it is not Ready and never was (its readiness went
  False within ``--horizontal-pod-autoscaler-initial-readiness-delay``, 30 s, of its start);
- the usage ratio is total usage over total requests (utilization targets, in whole percent,
  truncated) or the average usage (value targets) over the target;
- inside the tolerance (``1 - down <= ratio <= 1 + up``, 0.1 each) nothing changes;
- with missing or unready pods the ratio is computed again as if the missing pods used 100 %
  of their request (at least the target) on a scale-down and 0 on a scale-up, and unready pods
  0 on a scale-up; if that lands in the tolerance or flips the direction, nothing changes.

Errors are :class:`MetricError` with kube's messages, which the controller puts in conditions
and events unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from k8py.api.corev1 import milli_value, parse_time, pod_ready_condition

__all__ = [
    "DEFAULT_CPU_INITIALIZATION_PERIOD",
    "DEFAULT_INITIAL_READINESS_DELAY",
    "DEFAULT_TOLERANCE",
    "MetricError",
    "PodGroups",
    "PodMetric",
    "Tolerances",
    "calculate_requests",
    "external_metric_replicas",
    "external_per_pod_metric_replicas",
    "group_pods",
    "metric_usage_ratio",
    "object_metric_replicas",
    "object_per_pod_metric_replicas",
    "plain_metric_replicas",
    "ready_pod_count",
    "resource_replicas",
    "resource_utilization_ratio",
]

Obj = dict[str, Any]

DEFAULT_TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DEFAULT_CPU_INITIALIZATION_PERIOD = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period
DEFAULT_INITIAL_READINESS_DELAY = 30.0  # --horizontal-pod-autoscaler-initial-readiness-delay
MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1


class MetricError(Exception):
    """A replica count could not be computed; ``str(e)`` is kube's message."""


@dataclass(frozen=True, slots=True)
class Tolerances:
    """The usage ratio band in which nothing changes (kube's ``Tolerances``)."""

    scale_down: float = DEFAULT_TOLERANCE
    scale_up: float = DEFAULT_TOLERANCE

    def is_within(self, ratio: float) -> bool:
        return (1.0 - self.scale_down) <= ratio <= (1.0 + self.scale_up)


@dataclass(frozen=True, slots=True)
class PodMetric:
    """One pod's sample: its value in milli-units, when it was taken (epoch seconds) and over
    which window (seconds)."""

    value: int
    timestamp: float = 0.0
    window: float = 60.0


@dataclass(slots=True)
class PodGroups:
    ready_count: int
    unready: set[str]
    missing: set[str]
    ignored: set[str]


def _md(o: Mapping[str, Any]) -> Mapping[str, Any]:
    return o.get("metadata") or {}


def _epoch(s: Any) -> float | None:
    t = parse_time(s) if isinstance(s, str) else None
    return t.timestamp() if t is not None else None


def group_pods(pods: Iterable[Mapping[str, Any]], metrics: Mapping[str, PodMetric], resource: str,
               cpu_initialization_period: float, initial_readiness_delay: float, now: float) -> PodGroups:
    """kube's ``groupPods``: which pods count, which are unready, missing or ignored."""
    g = PodGroups(0, set(), set(), set())
    for pod in pods:
        name = str(_md(pod).get("name") or "")
        status = pod.get("status") or {}
        phase = status.get("phase")
        if _md(pod).get("deletionTimestamp") or phase == "Failed":
            g.ignored.add(name)
            continue
        if phase == "Pending":
            g.unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            g.missing.add(name)
            continue
        if resource == "cpu":
            cond = pod_ready_condition(pod)
            start = _epoch(status.get("startTime"))
            if cond is None or start is None:
                unready = True
            else:
                transition = _epoch(cond.get("lastTransitionTime")) or 0.0
                if start + cpu_initialization_period > now:
                    # still possibly starting: ignore the sample if the pod is unready or no full
                    # metric window was collected since its readiness last changed
                    unready = cond.get("status") == "False" or metric.timestamp < transition + metric.window
                else:
                    # unready and never ready since it started
                    unready = cond.get("status") == "False" and start + initial_readiness_delay > transition
            if unready:
                g.unready.add(name)
                continue
        g.ready_count += 1
    return g


def _container_request(c: Mapping[str, Any], resource: str) -> int | None:
    req = (c.get("resources") or {}).get("requests") or {}
    if resource not in req:
        return None
    return milli_value(req[resource])


def calculate_requests(pods: Iterable[Mapping[str, Any]], container: str, resource: str) -> dict[str, int]:
    """Each pod's request of ``resource`` in milli-units (kube's ``calculateRequests``): the
    pod-level request when the pod has pod-level requests and no container is named, else the
    named container's, else the sum of its containers' (restartable init containers too)."""
    out: dict[str, int] = {}
    for pod in pods:
        name = str(_md(pod).get("name") or "")
        spec = pod.get("spec") or {}
        pod_level = (spec.get("resources") or {}).get("requests") or {}
        if pod_level and not container:
            if resource not in pod_level:
                raise MetricError(f"missing pod-level request for {resource} in Pod {name}")
            out[name] = milli_value(pod_level[resource])
            continue
        containers = list(spec.get("containers") or ())
        containers += [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
        total = 0
        found = False
        for c in containers:
            cname = c.get("name")
            if not container or container == cname:
                v = _container_request(c, resource)
                if v is None:
                    raise MetricError(f"missing request for {resource} in container {cname} of Pod {name}")
                total += v
            if container and container == cname:
                found = True
                break
        if container and not found:
            raise MetricError(f"container {container} not found in Pod {name}")
        out[name] = total
    return out


def resource_utilization_ratio(metrics: Mapping[str, PodMetric], requests: Mapping[str, int],
                               target_utilization: int) -> tuple[float, int, int]:
    """``(usage ratio, utilization in percent, average raw value)`` (kube's
    ``GetResourceUtilizationRatio``); metrics of pods without a request do not count."""
    metrics_total = requests_total = entities = 0
    for name, m in metrics.items():
        if name not in requests:
            continue
        metrics_total += m.value
        requests_total += requests[name]
        entities += 1
    if requests_total == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = _go_div(metrics_total * 100, requests_total)
    return utilization / target_utilization, utilization, _go_div(metrics_total, entities)


def metric_usage_ratio(metrics: Mapping[str, PodMetric], target_usage: int) -> tuple[float, int]:
    """``(usage ratio, average usage)`` of plain metrics (kube's ``GetMetricUsageRatio``)."""
    total = sum(m.value for m in metrics.values())
    usage = _go_div(total, len(metrics))
    return usage / target_usage, usage


def _go_div(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _ceil32(x: float) -> int:
    return MAX_INT32 if x > MAX_INT32 else math.ceil(x)


def _counted(pods: Sequence[Mapping[str, Any]], metrics: Mapping[str, PodMetric], resource: str,
             cpu_initialization_period: float, initial_readiness_delay: float,
             now: float) -> tuple[dict[str, PodMetric], PodGroups]:
    """The metrics that count (ignored and unready pods' left out) and the pods' groups; kube's
    errors when the selector found no pods or no pod that counts has a metric."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    counted = dict(metrics)
    g = group_pods(pods, counted, resource, cpu_initialization_period, initial_readiness_delay, now)
    for name in g.ignored | g.unready:
        counted.pop(name, None)
    if not counted:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    return counted, g


def resource_replicas(current_replicas: int, target_utilization: int, resource: str, tolerances: Tolerances,
                      pods: Sequence[Mapping[str, Any]], metrics: Mapping[str, PodMetric], container: str,
                      cpu_initialization_period: float, initial_readiness_delay: float,
                      now: float) -> tuple[int, int, int]:
    """``(replicas, utilization %, average raw value)`` for a Utilization target (kube's
    ``GetResourceReplicas`` after the metrics were fetched)."""
    metrics, g = _counted(pods, metrics, resource, cpu_initialization_period, initial_readiness_delay, now)
    requests = calculate_requests(pods, container, resource)
    ratio, utilization, raw = resource_utilization_ratio(metrics, requests, target_utilization)
    scale_up_with_unready = bool(g.unready) and ratio > 1.0
    if not scale_up_with_unready and not g.missing:
        if tolerances.is_within(ratio):
            return current_replicas, utilization, raw
        return _ceil32(ratio * g.ready_count), utilization, raw
    if g.missing:
        if ratio < 1.0:
            # scale-down: missing pods count as using their whole request (or the target above 100 %)
            fallback = max(100, target_utilization)
            for name in g.missing:
                metrics[name] = PodMetric(_go_div(requests[name] * fallback, 100))
        elif ratio > 1.0:
            for name in g.missing:
                metrics[name] = PodMetric(0)
    if scale_up_with_unready:
        for name in g.unready:
            metrics[name] = PodMetric(0)
    new_ratio, _, _ = resource_utilization_ratio(metrics, requests, target_utilization)
    return _settle(current_replicas, ratio, new_ratio, len(metrics), tolerances), utilization, raw


def _settle(current: int, ratio: float, new_ratio: float, counted: int, tolerances: Tolerances) -> int:
    if tolerances.is_within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        # too small a change, or the conservative numbers turn the direction around
        return current
    new = _ceil32(new_ratio * counted)
    if (new_ratio < 1.0 and new > current) or (new_ratio > 1.0 and new < current):
        return current
    return new


def plain_metric_replicas(current_replicas: int, target_usage: int, resource: str, tolerances: Tolerances,
                          pods: Sequence[Mapping[str, Any]], metrics: Mapping[str, PodMetric],
                          cpu_initialization_period: float, initial_readiness_delay: float,
                          now: float) -> tuple[int, int]:
    """``(replicas, average usage)`` for an AverageValue target of a resource or a pods metric
    (kube's ``calcPlainMetricReplicas``); ``resource`` is "" for pods metrics."""
    metrics, g = _counted(pods, metrics, resource, cpu_initialization_period, initial_readiness_delay, now)
    ratio, usage = metric_usage_ratio(metrics, target_usage)
    scale_up_with_unready = bool(g.unready) and ratio > 1.0
    if not scale_up_with_unready and not g.missing:
        if tolerances.is_within(ratio):
            return current_replicas, usage
        return _ceil32(ratio * g.ready_count), usage
    if g.missing:
        if ratio < 1.0:
            for name in g.missing:
                metrics[name] = PodMetric(target_usage)  # scale-down: exactly the target
        elif ratio > 1.0:
            for name in g.missing:
                metrics[name] = PodMetric(0)
    if scale_up_with_unready:
        for name in g.unready:
            metrics[name] = PodMetric(0)
    new_ratio, _ = metric_usage_ratio(metrics, target_usage)
    return _settle(current_replicas, ratio, new_ratio, len(metrics), tolerances), usage


def ready_pod_count(pods: Sequence[Mapping[str, Any]]) -> int:
    """Running and Ready pods (kube's ``getReadyPodsCount``)."""
    if not pods:
        raise MetricError("unable to calculate ready pods: no pods returned by selector while calculating "
                          "replica count")
    n = 0
    for p in pods:
        c = pod_ready_condition(p)
        if (p.get("status") or {}).get("phase") == "Running" and c is not None and c.get("status") == "True":
            n += 1
    return n


def _usage_ratio_replicas(current_replicas: int, ratio: float, tolerances: Tolerances,
                          pods: Sequence[Mapping[str, Any]]) -> int:
    """kube's ``getUsageRatioReplicaCount``: from zero replicas the ratio alone decides."""
    if current_replicas != 0:
        if tolerances.is_within(ratio):
            return current_replicas
        return _ceil32(ratio * ready_pod_count(pods))
    return math.ceil(ratio)


def object_metric_replicas(current_replicas: int, target_usage: int, usage: int, tolerances: Tolerances,
                           pods: Sequence[Mapping[str, Any]]) -> int:
    """An Object metric with a Value target (kube's ``GetObjectMetricReplicas``)."""
    return _usage_ratio_replicas(current_replicas, usage / target_usage, tolerances, pods)


def object_per_pod_metric_replicas(status_replicas: int, target_average: int, usage: int,
                                   tolerances: Tolerances) -> tuple[int, int]:
    """``(replicas, usage per pod)`` for an Object metric with an AverageValue target."""
    replicas = status_replicas
    ratio = usage / (target_average * replicas) if replicas else math.inf
    if not tolerances.is_within(ratio):
        replicas = math.ceil(usage / target_average)
    per_pod = math.ceil(usage / status_replicas) if status_replicas else MAX_INT64
    return replicas, per_pod


def external_metric_replicas(current_replicas: int, target_usage: int, values: Iterable[int],
                             tolerances: Tolerances, pods: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """``(replicas, total usage)`` for an External metric with a Value target."""
    usage = min(sum(values), MAX_INT64)
    return _usage_ratio_replicas(current_replicas, usage / target_usage, tolerances, pods), usage


def external_per_pod_metric_replicas(status_replicas: int, target_per_pod: int, values: Iterable[int],
                                     tolerances: Tolerances) -> tuple[int, int]:
    """``(replicas, usage per pod)`` for an External metric with an AverageValue target."""
    usage = min(sum(values), MAX_INT64)
    replicas = status_replicas
    ratio = usage / (target_per_pod * replicas) if replicas else math.inf
    if not tolerances.is_within(ratio):
        replicas = min(math.ceil(usage / target_per_pod), MAX_INT32)
    per_pod = MAX_INT64 if usage >= MAX_INT64 or not status_replicas else math.ceil(usage / status_replicas)
    return replicas, per_pod
