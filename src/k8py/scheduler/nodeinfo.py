"""NodeInfo: one node and the pods on it (bound or assumed), with aggregates kept incrementally.

Adding or removing a pod adjusts the summed requests, the host ports in use and the counts of
pods with (anti-)affinity, so a filter reads a few integers instead of walking the node's pods.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from k8py.scheduler.types import (
    CPU,
    EPHEMERAL,
    MEMORY,
    PODS,
    REGION_LABEL,
    ZONE_LABEL,
    PodInfo,
    Taint,
    int_value,
    milli_value,
    normalize_image,
)

__all__ = ["NodeInfo", "parse_allocatable"]

Obj = dict[str, Any]

# One counter for every NodeInfo (kube's nextGeneration): a generation is never reused, so
# "same generation" means "same state" even across nodes that were removed and re-added.
_generation = itertools.count(1)

UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")


def parse_allocatable(node: Obj) -> tuple[int, int, int, int, dict[str, int]]:
    """(cpu millicores, memory, ephemeral-storage, pods, other resources) of ``status.allocatable``
    (falling back to capacity, as a node that reports only capacity means all of it)."""
    st = node.get("status") or {}
    alloc = st.get("allocatable") or st.get("capacity") or {}
    scalars: dict[str, int] = {}
    cpu = mem = eph = pods = 0
    for k, v in alloc.items():
        if k == CPU:
            cpu = milli_value(v)
        elif k == MEMORY:
            mem = int_value(v)
        elif k == EPHEMERAL:
            eph = int_value(v)
        elif k == PODS:
            pods = int_value(v)
        else:
            scalars[k] = int_value(v)
    return cpu, mem, eph, pods, scalars


class NodeInfo:
    """A node's state as the scheduler sees it. ``node`` is None for a placeholder that holds pods
    bound to a node the informer has not delivered yet."""

    __slots__ = (
        "affinity_pods", "alloc_cpu", "alloc_eph", "alloc_mem", "alloc_pods", "alloc_scalars", "anti_affinity_pods",
        "generation", "images", "labels", "name", "node", "noschedule_taints", "nz_cpu", "nz_mem", "pods",
        "prefer_taints", "req_cpu", "req_eph", "req_mem", "req_scalars", "taints", "unschedulable", "used_ports",
        "zone",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.node: Obj | None = None
        self.labels: Mapping[str, str] = {}
        self.taints: tuple[Taint, ...] = ()
        self.noschedule_taints: tuple[Taint, ...] = ()  # NoSchedule and NoExecute: the filter's
        self.prefer_taints: tuple[Taint, ...] = ()  # PreferNoSchedule: the score's
        self.unschedulable = False
        self.alloc_cpu = self.alloc_mem = self.alloc_eph = self.alloc_pods = 0
        self.alloc_scalars: dict[str, int] = {}
        self.req_cpu = self.req_mem = self.req_eph = 0
        self.req_scalars: dict[str, int] = {}
        self.nz_cpu = self.nz_mem = 0
        self.pods: dict[str, PodInfo] = {}
        # (protocol, port) -> {host ip: pods using it}
        self.used_ports: dict[tuple[str, int], dict[str, int]] = {}
        self.affinity_pods = 0
        self.anti_affinity_pods = 0
        self.images: dict[str, int] = {}  # normalized image name -> size in bytes
        self.zone = ""
        self.generation = next(_generation)

    def __repr__(self) -> str:
        return (f"<NodeInfo {self.name} pods={len(self.pods)} cpu={self.req_cpu}/{self.alloc_cpu}m "
                f"mem={self.req_mem}/{self.alloc_mem}>")

    # -- node ----------------------------------------------------------------------------------

    def set_node(self, node: Obj) -> None:
        self.node = node
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        self.labels = meta.get("labels") or {}
        taints = tuple(Taint.parse(t) for t in spec.get("taints") or () if isinstance(t, Mapping))
        self.taints = taints
        self.noschedule_taints = tuple(t for t in taints if t.effect in ("NoSchedule", "NoExecute"))
        self.prefer_taints = tuple(t for t in taints if t.effect == "PreferNoSchedule")
        self.unschedulable = bool(spec.get("unschedulable"))
        (self.alloc_cpu, self.alloc_mem, self.alloc_eph, self.alloc_pods,
         self.alloc_scalars) = parse_allocatable(node)
        images: dict[str, int] = {}
        for img in (node.get("status") or {}).get("images") or ():
            size = int(img.get("sizeBytes") or 0)
            for n in img.get("names") or ():
                images[normalize_image(str(n))] = size
        self.images = images
        lb = self.labels
        region, zone = lb.get(REGION_LABEL, ""), lb.get(ZONE_LABEL, "")
        self.zone = f"{region}:\x00:{zone}" if (region or zone) else ""
        self.generation = next(_generation)

    # -- pods ----------------------------------------------------------------------------------

    def add_pod(self, p: PodInfo) -> None:
        old = self.pods.get(p.key)
        if old is not None:
            self.remove_pod(old)
        self.pods[p.key] = p
        self.req_cpu += p.req_cpu
        self.req_mem += p.req_mem
        self.req_eph += p.req_eph
        if p.req_scalars:
            rs = self.req_scalars
            for k, v in p.req_scalars.items():
                rs[k] = rs.get(k, 0) + v
        self.nz_cpu += p.nz_cpu
        self.nz_mem += p.nz_mem
        for ip, proto, port in p.host_ports:
            ips = self.used_ports.setdefault((proto, port), {})
            ips[ip] = ips.get(ip, 0) + 1
        if p.has_affinity:
            self.affinity_pods += 1
        if p.anti_required:
            self.anti_affinity_pods += 1
        self.generation = next(_generation)

    def remove_pod(self, p: PodInfo) -> bool:
        cur = self.pods.pop(p.key, None)
        if cur is None:
            return False
        self.req_cpu -= cur.req_cpu
        self.req_mem -= cur.req_mem
        self.req_eph -= cur.req_eph
        if cur.req_scalars:
            rs = self.req_scalars
            for k, v in cur.req_scalars.items():
                n = rs.get(k, 0) - v
                if n:
                    rs[k] = n
                else:
                    rs.pop(k, None)
        self.nz_cpu -= cur.nz_cpu
        self.nz_mem -= cur.nz_mem
        for ip, proto, port in cur.host_ports:
            ips = self.used_ports.get((proto, port))
            if ips is not None:
                n = ips.get(ip, 0) - 1
                if n > 0:
                    ips[ip] = n
                else:
                    ips.pop(ip, None)
                    if not ips:
                        del self.used_ports[(proto, port)]
        if cur.has_affinity:
            self.affinity_pods -= 1
        if cur.anti_required:
            self.anti_affinity_pods -= 1
        self.generation = next(_generation)
        return True

    def port_conflict(self, ip: str, proto: str, port: int) -> bool:
        """kube's HostPortInfo.CheckConflict: 0.0.0.0 conflicts with every address."""
        ips = self.used_ports.get((proto, port))
        if not ips:
            return False
        if ip == "0.0.0.0":
            return True
        return ip in ips or "0.0.0.0" in ips
