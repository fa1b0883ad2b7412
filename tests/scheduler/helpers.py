"""Fixtures for scheduler unit tests: node and pod builders, and a framework over a bare cache
(no API server: plugins see exactly the nodes and pods a test puts in)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from typing import Any

from k8py.scheduler.cache import Cache
from k8py.scheduler.config import build_framework, parse_config
from k8py.scheduler.framework import CycleState, Framework, Handle
from k8py.scheduler.queue import SchedulingQueue
from k8py.scheduler.types import PodInfo, _copy, parse_pod

Obj = dict[str, Any]
_uid = itertools.count(1)


def node(name: str, cpu: str = "4", memory: str = "32Gi", pods: int = 110, *, labels: Mapping[str, str] | None = None,
         taints: Sequence[Mapping[str, str]] = (), unschedulable: bool = False, extra: Mapping[str, str] | None = None,
         images: Sequence[tuple[Sequence[str], int]] = ()) -> Obj:
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi", **(extra or {})}
    n: Obj = {"apiVersion": "v1", "kind": "Node",
              "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})},
                           "resourceVersion": "1"},
              "spec": {}, "status": {"allocatable": alloc, "capacity": alloc}}
    if taints:
        n["spec"]["taints"] = [dict(t) for t in taints]
    if unschedulable:
        n["spec"]["unschedulable"] = True
    if images:
        n["status"]["images"] = [{"names": list(names), "sizeBytes": size} for names, size in images]
    return n


def pod(name: str, cpu: str | None = None, memory: str | None = None, *, ns: str = "default",
        labels: Mapping[str, str] | None = None, node_name: str = "", priority: int = 0, **spec: Any) -> Obj:
    res: Obj = {}
    if cpu or memory:
        res = {"requests": {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}}
    p: Obj = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}-{next(_uid)}",
                           "labels": dict(labels or {}), "resourceVersion": "1",
                           "creationTimestamp": "2026-01-01T00:00:00Z"},
              "spec": {"containers": [{"name": "c", "image": "busybox", "resources": res}], "priority": priority,
                       **spec},
              "status": {"phase": "Pending"}}
    if node_name:
        p["spec"]["nodeName"] = node_name
    return p


class Env:
    """A cache, a queue and one framework (from ``config``: a KubeSchedulerConfiguration dict)."""

    def __init__(self, config: Obj | None = None, *, nodes: Sequence[Obj] = (), pods: Sequence[Obj] = (),
                 listers: Any = None, seed: int = 1) -> None:
        doc = {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
               **(config or {})}
        self.config = parse_config(doc)
        self.cache = Cache(validate=True)
        self.queue = SchedulingQueue()
        self.handle = Handle(self.cache, self.queue, rand=random.Random(seed))
        if listers is not None:
            self.handle.listers = listers
        self.fw: Framework = build_framework(self.config.profiles[0], self.handle)
        for n in nodes:
            self.cache.add_node(n)
        for p in pods:
            self.cache.add_pod(parse_pod(p))

    def plugin(self, name: str) -> Any:
        return self.fw.plugins[name]

    def schedule(self, p: Obj | PodInfo) -> str:
        """Run a cycle and assume the pod on the chosen node (raises FitError)."""
        info = p if isinstance(p, PodInfo) else parse_pod(p)
        res = self.fw.schedule(CycleState(), info)
        a = _copy(info)
        a.node_name = res.node
        self.cache.assume(a, res.node)
        return res.node

    def filter(self, p: Obj, node_name: str) -> Any:
        """(state, status) of PreFilter + Filter of every plugin for one node."""
        info = parse_pod(p)
        state = CycleState()
        _, st = self.fw.run_pre_filter(state, info)
        if st is not None:
            return st
        return self.fw.run_filters(state, info, self.cache.nodes[node_name])

    def scores(self, p: Obj, plugin: str, node_names: Sequence[str] | None = None) -> dict[str, int]:
        """One plugin's normalized scores over ``node_names`` (default: every node)."""
        info = parse_pod(p)
        state = CycleState()
        self.fw.run_pre_filter(state, info)
        nodes = [self.cache.nodes[n] for n in (node_names or [ni.name for ni in self.cache.node_list()])]
        pl = self.plugin(plugin)
        pre = getattr(pl, "pre_score", None)
        if pre is not None:
            st = pre(state, info, nodes)
            if st is not None and st.code.name == "SKIP":
                return {ni.name: 0 for ni in nodes}
        batch = getattr(pl, "score_nodes", None)
        scores = batch(state, info, nodes) if batch else [pl.score(state, info, ni) for ni in nodes]
        norm = getattr(pl, "normalize_score", None)
        if norm is not None:
            norm(state, info, nodes, scores)
        return {ni.name: s for ni, s in zip(nodes, scores, strict=True)}


def only(*names: str, args: Mapping[str, Obj] | None = None, **profile: Any) -> Obj:
    """A configuration with just these plugins (plus the queue sort and binder every profile needs)."""
    enabled = [{"name": n} for n in (*names, "PrioritySort", "DefaultBinder")]
    return {"profiles": [{"schedulerName": "default-scheduler",
                          "plugins": {"multiPoint": {"enabled": enabled, "disabled": [{"name": "*"}]}},
                          "pluginConfig": [{"name": k, "args": v} for k, v in (args or {}).items()], **profile}]}
