"""The points metrics-server keeps, and the usage it computes from them
(``pkg/storage``: ``types.go``, ``node.go``, ``pod.go``, ``storage.go``).

Every scrape's :class:`MetricsBatch` replaces the last points; for each node and container the
store keeps two: the newest (``last``) and the one before it (``prev``). Usage is computed from
the two: CPU is the rate of the cumulative CPU time over the window between their timestamps,
memory is the newest working set. So a node or container has metrics from its second scrape on,
with these rules of metrics-server:

- a new point replaces ``prev`` with the old ``last`` only when it is newer; when it is not, the
  old ``prev`` is kept if it is still older than the new point, else there is none;
- a container point is paired with the old one only when the container started before that
  old point (a restarted container has a new start time: its old readings are of another run);
- a container that started less than a resolution ago but at least 10 s ago gets a synthetic
  ``prev`` at its start time with no CPU used, so a fresh container has metrics at once;
- a decrease of the start time or of the cumulative CPU (a counter reset) gives no usage;
- a pod has metrics only when every container of its newest point has a ``prev``; its
  timestamp and window are its earliest container's.

Nothing here does I/O; times are seconds since the epoch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

__all__ = ["ContainerUsage", "MetricsBatch", "MetricsPoint", "NodeUsage", "PodUsage", "Storage", "Usage",
           "resource_usage"]

log = logging.getLogger(__name__)

FRESH_CONTAINER_MIN_RESOLUTION = 10.0  # metrics-server's freshContainerMinMetricsResolution

PodKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True, slots=True)
class MetricsPoint:
    start_time: float  # 0 when unknown (nodes)
    timestamp: float
    cumulative_cpu_ns: int
    memory_bytes: int


@dataclass(slots=True)
class MetricsBatch:
    nodes: dict[str, MetricsPoint] = field(default_factory=dict)
    pods: dict[PodKey, dict[str, MetricsPoint]] = field(default_factory=dict)  # container name -> point

    def merge(self, other: MetricsBatch) -> None:
        """Add another node's points; a node or pod seen twice keeps its first (metrics-server
        logs "Got duplicate ... point")."""
        for name, p in other.nodes.items():
            if name in self.nodes:
                log.error("got a duplicate point of node %s", name)
                continue
            self.nodes[name] = p
        for key, cs in other.pods.items():
            if key in self.pods:
                log.error("got a duplicate point of pod %s/%s", *key)
                continue
            self.pods[key] = cs


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_nanocores: int
    memory_bytes: int
    timestamp: float
    window: float  # seconds


@dataclass(frozen=True, slots=True)
class NodeUsage:
    name: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    name: str
    cpu_nanocores: int
    memory_bytes: int


@dataclass(frozen=True, slots=True)
class PodUsage:
    namespace: str
    name: str
    timestamp: float
    window: float
    containers: tuple[ContainerUsage, ...]


def resource_usage(last: MetricsPoint, prev: MetricsPoint) -> Usage:
    """The usage between two points (metrics-server's ``resourceUsage``); :class:`ValueError`
    when the start time or the cumulative CPU went down."""
    if last.start_time < prev.start_time:
        raise ValueError("unexpected decrease in startTime of node/container")
    if last.cumulative_cpu_ns < prev.cumulative_cpu_ns:
        raise ValueError("unexpected decrease in cumulative CPU usage value")
    window = last.timestamp - prev.timestamp
    if window <= 0:
        raise ValueError("no time between the two points")
    cpu = int((last.cumulative_cpu_ns - prev.cumulative_cpu_ns) / window)
    return Usage(cpu_nanocores=cpu, memory_bytes=last.memory_bytes, timestamp=last.timestamp, window=window)


class Storage:
    """The newest two points of every node and container (metrics-server's ``storage``)."""

    def __init__(self, metric_resolution: float) -> None:
        self.metric_resolution = metric_resolution
        self.nodes_last: dict[str, MetricsPoint] = {}
        self.nodes_prev: dict[str, MetricsPoint] = {}
        self.pods_last: dict[PodKey, dict[str, MetricsPoint]] = {}
        self.pods_prev: dict[PodKey, dict[str, MetricsPoint]] = {}

    # -- readiness (metrics-server's metric-storage-ready check) ----------------------------
    def node_ready(self) -> bool:
        return bool(self.nodes_prev)

    def pod_ready(self) -> bool:
        return bool(self.pods_prev)

    def ready(self) -> bool:
        return self.node_ready() and self.pod_ready()

    # -- writes ----------------------------------------------------------------------------
    def store(self, batch: MetricsBatch) -> None:
        self._store_nodes(batch)
        self._store_pods(batch)

    def _store_nodes(self, batch: MetricsBatch) -> None:
        last: dict[str, MetricsPoint] = {}
        prev: dict[str, MetricsPoint] = {}
        for name, new in batch.nodes.items():
            last[name] = new
            old = self.nodes_last.get(name)
            if old is None:
                continue
            if new.timestamp > old.timestamp:
                prev[name] = old
            else:
                older = self.nodes_prev.get(name)
                if older is not None and older.timestamp < new.timestamp:
                    prev[name] = older
                elif older is not None:
                    log.debug("node %s: the new point is older than the previous one; previous dropped", name)
        self.nodes_last, self.nodes_prev = last, prev

    def _store_pods(self, batch: MetricsBatch) -> None:
        last: dict[PodKey, dict[str, MetricsPoint]] = {}
        prev: dict[PodKey, dict[str, MetricsPoint]] = {}
        for key, containers in batch.pods.items():
            new_last: dict[str, MetricsPoint] = {}
            new_prev: dict[str, MetricsPoint] = {}
            old_pod = self.pods_last.get(key)
            older_pod = self.pods_prev.get(key)
            for cname, new in containers.items():
                new_last[cname] = new
                age = new.timestamp - new.start_time
                if new.start_time < new.timestamp and FRESH_CONTAINER_MIN_RESOLUTION <= age < self.metric_resolution:
                    # a fresh container: its start is a point with no CPU used yet
                    new_prev[cname] = MetricsPoint(new.start_time, new.start_time, 0, new.memory_bytes)
                    continue
                old = old_pod.get(cname) if old_pod is not None else None
                if old is None or not new.start_time < old.timestamp:
                    continue  # new, or restarted since the old point
                if new.timestamp > old.timestamp:
                    new_prev[cname] = old
                elif older_pod is not None:
                    older = older_pod.get(cname)
                    if older is not None and older.timestamp < new.timestamp:
                        new_prev[cname] = older
                    else:
                        log.debug("container %s of pod %s/%s: the new point is older than the previous one",
                                  cname, *key)
            if new_prev:
                prev[key] = new_prev
            last[key] = new_last
        self.pods_last, self.pods_prev = last, prev

    # -- reads -----------------------------------------------------------------------------
    def node_usage(self, name: str) -> NodeUsage | None:
        last, prev = self.nodes_last.get(name), self.nodes_prev.get(name)
        if last is None or prev is None:
            return None
        try:
            return NodeUsage(name, resource_usage(last, prev))
        except ValueError as e:
            log.warning("skipping the usage of node %s: %s", name, e)
            return None

    def pod_usage(self, namespace: str, name: str) -> PodUsage | None:
        last, prev = self.pods_last.get((namespace, name)), self.pods_prev.get((namespace, name))
        if last is None or prev is None:
            return None
        out: list[ContainerUsage] = []
        earliest: Usage | None = None
        for cname in sorted(last):
            p = prev.get(cname)
            if p is None:
                return None  # not every container has two points yet
            try:
                u = resource_usage(last[cname], p)
            except ValueError as e:
                log.warning("skipping the usage of container %s of pod %s/%s: %s", cname, namespace, name, e)
                continue
            out.append(ContainerUsage(cname, u.cpu_nanocores, u.memory_bytes))
            if earliest is None or u.timestamp < earliest.timestamp:
                earliest = u
        if earliest is None:
            return PodUsage(namespace, name, 0.0, 0.0, ())
        return PodUsage(namespace, name, earliest.timestamp, earliest.window, tuple(out))
