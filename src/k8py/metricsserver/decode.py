"""One kubelet's ``/metrics/resource`` answer as a :class:`MetricsBatch`, by metrics-server's rules
(``pkg/scraper/client/resource/decode.go``):

- ``node_cpu_usage_seconds_total`` and ``node_memory_working_set_bytes`` make the node's point;
  ``container_cpu_usage_seconds_total``, ``container_memory_working_set_bytes`` and
  ``container_start_time_seconds`` (labels ``namespace``, ``pod``, ``container``) the containers';
  every other family is ignored. A sample without a timestamp takes the scrape's start.
- CPU seconds become cumulative nanoseconds, timestamps (milliseconds) times.
- The node's point is dropped when its time, CPU or memory is missing or zero; a pod is dropped
  whole when any of its containers has zero CPU or zero memory (metrics-server's
  ``checkContainerMetrics``: an incomplete reading would make a wrong sum).

Nothing here does I/O.
"""

from __future__ import annotations

import logging

from k8py.metricsserver.prometheus import parse
from k8py.metricsserver.storage import MetricsBatch, MetricsPoint

__all__ = ["decode_batch"]

log = logging.getLogger(__name__)

NODE_CPU = "node_cpu_usage_seconds_total"
NODE_MEMORY = "node_memory_working_set_bytes"
CONTAINER_CPU = "container_cpu_usage_seconds_total"
CONTAINER_MEMORY = "container_memory_working_set_bytes"
CONTAINER_START = "container_start_time_seconds"
_WANTED = frozenset((NODE_CPU, NODE_MEMORY, CONTAINER_CPU, CONTAINER_MEMORY, CONTAINER_START))


def decode_batch(text: str, default_time: float, node_name: str) -> MetricsBatch:
    """The points of one scrape (``default_time``: when it started, seconds since the epoch);
    :class:`~k8py.metricsserver.prometheus.ParseError` for text that is not the format."""
    node: dict[str, float] = {}
    containers: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    default_ms = round(default_time * 1000)
    for s in parse(text, _WANTED):
        ts = (s.timestamp_ms if s.timestamp_ms is not None else default_ms) / 1000
        if s.name == NODE_CPU:
            node["cpu"], node["time"] = s.value, ts
        elif s.name == NODE_MEMORY:
            node["memory"], node["time"] = s.value, ts
        else:
            pod = (s.labels.get("namespace", ""), s.labels.get("pod", ""))
            c = containers.setdefault(pod, {}).setdefault(s.labels.get("container", ""), {})
            if s.name == CONTAINER_START:
                c["start"] = s.value  # its own sample time says nothing of the container's readings
            elif s.name == CONTAINER_CPU:
                c["cpu"], c["time"] = s.value, ts
            else:
                c["memory"], c["time"] = s.value, ts
    batch = MetricsBatch()
    if node.get("time") and node.get("cpu") and node.get("memory"):
        batch.nodes[node_name] = MetricsPoint(start_time=0.0, timestamp=node["time"],
                                              cumulative_cpu_ns=int(node["cpu"] * 1e9), memory_bytes=int(node["memory"]))
    else:
        log.debug("incomplete node metrics of %s: %s", node_name, node)
    for pod, cs in containers.items():
        points: dict[str, MetricsPoint] = {}
        for name, c in cs.items():
            cpu, mem = int(c.get("cpu", 0) * 1e9), int(c.get("memory", 0))
            if not cpu or not mem:
                log.debug("incomplete metrics of container %s of pod %s/%s: %s", name, pod[0], pod[1], c)
                points = {}
                break
            points[name] = MetricsPoint(start_time=c.get("start", 0.0), timestamp=c.get("time", 0.0),
                                        cumulative_cpu_ns=cpu, memory_bytes=mem)
        if points:
            batch.pods[pod] = points
    return batch
