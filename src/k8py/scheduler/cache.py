"""The scheduler's cache: nodes, the pods on them (bound, or *assumed* while their binding is in
flight), and incremental indexes that keep the per-pod cycle from scanning the cluster.

The scheduling cycle is synchronous on the event loop, so it reads this cache directly: no
informer event can land in the middle of a cycle, and no snapshot copy is needed (kube takes a
snapshot per cycle because its informers run on other goroutines).

Indexes, all updated as pods and nodes come and go:

- per node: summed requests, ports in use, images (:class:`~k8py.scheduler.nodeinfo.NodeInfo`);
- :class:`PodCounter`: for one (namespaces, label selector), how many matching pods each node
  has, and lazily per topology value (zone, hostname, ...). Topology spread and pod
  (anti-)affinity read these instead of matching every pod in the cluster per cycle;
- :class:`TermGroup`: the (anti-)affinity terms of pods already placed, grouped when alike, with
  counts per topology value: "existing pods' anti-affinity" is a few dict lookups per node;
- label values per key (topology domains), images per node count, taint counts.
"""

from __future__ import annotations

import enum
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from k8py.api.selectors import LabelSelector
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.types import AffinityTerm, PodInfo

__all__ = ["Cache", "PodCounter", "PodState", "TermGroup", "TermKind"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NamespaceLabels = Callable[[str], Mapping[str, str] | None]


class TermKind(enum.IntEnum):
    REQUIRED_ANTI = 0
    REQUIRED_AFFINITY = 1
    PREFERRED_AFFINITY = 2
    PREFERRED_ANTI = 3


@dataclass(slots=True)
class PodState:
    info: PodInfo
    node: str
    assumed: bool = False
    binding_finished: bool = False


class PodCounter:
    """Pods matching ``selector`` in ``namespaces`` (None: every namespace), counted per node,
    and per topology value for the keys someone asked about."""

    __slots__ = ("include_terminating", "namespaces", "per_node", "selector", "topo")

    def __init__(self, namespaces: frozenset[str] | None, selector: LabelSelector, include_terminating: bool) -> None:
        self.namespaces = namespaces
        self.selector = selector
        self.include_terminating = include_terminating
        self.per_node: dict[str, int] = {}
        self.topo: dict[str, dict[str, int]] = {}

    def matches(self, p: PodInfo) -> bool:
        if p.terminating and not self.include_terminating:
            return False
        ns = self.namespaces
        if ns is not None and p.namespace not in ns:
            return False
        return self.selector.matches(p.labels)

    def _bump(self, ni: NodeInfo, delta: int) -> None:
        name = ni.name
        n = self.per_node.get(name, 0) + delta
        if n:
            self.per_node[name] = n
        else:
            self.per_node.pop(name, None)
        if self.topo and ni.node is not None:
            labels = ni.labels
            for key, counts in self.topo.items():
                v = labels.get(key)
                if v is not None:
                    m = counts.get(v, 0) + delta
                    if m:
                        counts[v] = m
                    else:
                        counts.pop(v, None)

    def by_topology(self, key: str, nodes: Mapping[str, NodeInfo]) -> dict[str, int]:
        """Matching pods per value of node label ``key`` (values with none are absent). Shared:
        callers must not modify it."""
        counts = self.topo.get(key)
        if counts is None:
            counts = {}
            for name, n in self.per_node.items():
                ni = nodes.get(name)
                if ni is None or ni.node is None:
                    continue
                v = ni.labels.get(key)
                if v is not None:
                    counts[v] = counts.get(v, 0) + n
            self.topo[key] = counts
        return counts


class TermGroup:
    """Alike (anti-)affinity terms of pods already on nodes: how many such pods sit in each value
    of the term's topology key."""

    __slots__ = ("counts", "kind", "term", "total", "weight")

    def __init__(self, kind: TermKind, weight: int, term: AffinityTerm) -> None:
        self.kind = kind
        self.weight = weight
        self.term = term
        self.counts: dict[str, int] = {}
        self.total = 0


def _pod_terms(p: PodInfo) -> Iterable[tuple[TermKind, int, AffinityTerm]]:
    for t in p.anti_required:
        yield TermKind.REQUIRED_ANTI, 1, t
    for t in p.affinity_required:
        yield TermKind.REQUIRED_AFFINITY, 1, t
    for w in p.affinity_preferred:
        yield TermKind.PREFERRED_AFFINITY, w.weight, w.term
    for w in p.anti_preferred:
        yield TermKind.PREFERRED_ANTI, w.weight, w.term


class Cache:
    """Nodes and placed pods; see the module docstring. ``validate`` re-checks aggregates after
    every change (slow; tests turn it on)."""

    def __init__(self, *, max_counters: int = 256, validate: bool = False) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.pods: dict[str, PodState] = {}
        self.assumed: set[str] = set()
        self.validate = validate
        self.max_counters = max_counters
        self._order: list[NodeInfo] | None = None
        self._node_count = 0
        self._counters: OrderedDict[tuple[Any, ...], PodCounter] = OrderedDict()
        self._counters_by_ns: dict[str | None, dict[tuple[Any, ...], PodCounter]] = {}
        self.groups: dict[tuple[Any, ...], TermGroup] = {}
        self._groups_by_kind: dict[TermKind, dict[tuple[Any, ...], TermGroup]] = {k: {} for k in TermKind}
        self._pod_groups: dict[str, list[tuple[TermGroup, str | None]]] = {}
        self.label_values: dict[str, dict[str, int]] = {}  # label key -> value -> nodes
        self.key_nodes: dict[str, int] = {}  # label key -> nodes that have it
        self.image_nodes: dict[str, int] = {}
        self.taint_nodes = 0  # nodes with NoSchedule/NoExecute taints
        self.prefer_taint_nodes = 0  # nodes with PreferNoSchedule taints
        self.affinity_pods = 0
        self.anti_affinity_pods = 0
        self.generation = 0

    # -- reads ---------------------------------------------------------------------------------

    @property
    def node_count(self) -> int:
        """Nodes with a Node object (placeholders for pods on unknown nodes do not count)."""
        return self._node_count

    def node_list(self) -> list[NodeInfo]:
        """Nodes in kube's nodeTree order: zones round-robin, so a partial scan samples every zone."""
        order = self._order
        if order is None:
            zones: dict[str, list[NodeInfo]] = {}
            for ni in self.nodes.values():
                if ni.node is not None:
                    zones.setdefault(ni.zone, []).append(ni)
            lists = list(zones.values())
            order = []
            if len(lists) == 1:
                order = list(lists[0])
            else:
                i = 0
                while True:
                    added = False
                    for lst in lists:
                        if i < len(lst):
                            order.append(lst[i])
                            added = True
                    if not added:
                        break
                    i += 1
            self._order = order
        return order

    def get_node(self, name: str) -> NodeInfo | None:
        ni = self.nodes.get(name)
        return ni if ni is not None and ni.node is not None else None

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed

    def pod_state(self, key: str) -> PodState | None:
        return self.pods.get(key)

    # -- nodes ---------------------------------------------------------------------------------

    def add_node(self, node: Obj) -> NodeInfo:
        name = str(node["metadata"]["name"])
        ni = self.nodes.get(name)
        if ni is None:
            ni = self.nodes[name] = NodeInfo(name)
        if ni.node is not None:
            self._unindex_node(ni)
            old_labels: Mapping[str, str] | None = ni.labels
            old_zone = ni.zone
        else:
            old_labels = None
            old_zone = None
            self._node_count += 1
            self._order = None
        ni.set_node(node)
        self._index_node(ni)
        if old_zone is not None and old_zone != ni.zone:
            self._order = None
        if old_labels is not None and old_labels != ni.labels:
            self._relabel(ni, old_labels)
        elif old_labels is None and ni.pods:
            self._relabel(ni, {})
        self.generation += 1
        self._check()
        return ni

    update_node = add_node

    def remove_node(self, name: str) -> None:
        ni = self.nodes.get(name)
        if ni is None or ni.node is None:
            return
        self._unindex_node(ni)
        self._node_count -= 1
        self._order = None
        if ni.pods:
            # why: pods may still be on it (their deletions arrive later); keep them counted, as
            # kube keeps a NodeInfo without its node until the last pod goes.
            old = ni.labels
            ni.node = None
            ni.labels = {}
            self._relabel(ni, old)
        else:
            del self.nodes[name]
        self.generation += 1
        self._check()

    def _index_node(self, ni: NodeInfo) -> None:
        for k, v in ni.labels.items():
            vals = self.label_values.setdefault(k, {})
            vals[v] = vals.get(v, 0) + 1
            self.key_nodes[k] = self.key_nodes.get(k, 0) + 1
        for img in ni.images:
            self.image_nodes[img] = self.image_nodes.get(img, 0) + 1
        if ni.noschedule_taints:
            self.taint_nodes += 1
        if ni.prefer_taints:
            self.prefer_taint_nodes += 1

    def _unindex_node(self, ni: NodeInfo) -> None:
        for k, v in ni.labels.items():
            vals = self.label_values.get(k)
            if vals is not None:
                n = vals.get(v, 0) - 1
                if n > 0:
                    vals[v] = n
                else:
                    vals.pop(v, None)
                    if not vals:
                        del self.label_values[k]
            n = self.key_nodes.get(k, 0) - 1
            if n > 0:
                self.key_nodes[k] = n
            else:
                self.key_nodes.pop(k, None)
        for img in ni.images:
            n = self.image_nodes.get(img, 0) - 1
            if n > 0:
                self.image_nodes[img] = n
            else:
                self.image_nodes.pop(img, None)
        if ni.noschedule_taints:
            self.taint_nodes -= 1
        if ni.prefer_taints:
            self.prefer_taint_nodes -= 1

    def _relabel(self, ni: NodeInfo, old: Mapping[str, str]) -> None:
        """The node's labels changed: move its pods' counts to the new topology values."""
        new = ni.labels if ni.node is not None else {}
        for c in self._counters.values():
            n = c.per_node.get(ni.name)
            if not n or not c.topo:
                continue
            for key, counts in c.topo.items():
                ov, nv = old.get(key), new.get(key)
                if ov == nv:
                    continue
                if ov is not None:
                    m = counts.get(ov, 0) - n
                    if m:
                        counts[ov] = m
                    else:
                        counts.pop(ov, None)
                if nv is not None:
                    counts[nv] = counts.get(nv, 0) + n
        if ni.affinity_pods:
            for p in list(ni.pods.values()):
                if p.has_affinity:
                    self._ungroup(p)
                    self._group(p, ni)

    # -- pods ----------------------------------------------------------------------------------

    def _placeholder(self, name: str) -> NodeInfo:
        ni = self.nodes.get(name)
        if ni is None:
            ni = self.nodes[name] = NodeInfo(name)
        return ni

    def place(self, p: PodInfo, node: str) -> NodeInfo:
        """Count ``p`` on ``node`` in every index (no pod-state bookkeeping: preemption's what-ifs
        use this and :meth:`unplace` directly)."""
        ni = self._placeholder(node)
        ni.add_pod(p)
        for c in self._counters_for(p.namespace):
            if c.matches(p):
                c._bump(ni, 1)
        if p.has_affinity:
            self.affinity_pods += 1
            if p.anti_required:
                self.anti_affinity_pods += 1
            self._group(p, ni)
        return ni

    def unplace(self, p: PodInfo, node: str) -> None:
        ni = self.nodes.get(node)
        if ni is None:
            return
        cur = ni.pods.get(p.key)
        if cur is None:
            return
        ni.remove_pod(cur)
        for c in self._counters_for(cur.namespace):
            if c.matches(cur):
                c._bump(ni, -1)
        if cur.has_affinity:
            self.affinity_pods -= 1
            if cur.anti_required:
                self.anti_affinity_pods -= 1
            self._ungroup(cur)
        if ni.node is None and not ni.pods:
            del self.nodes[node]

    def add_pod(self, p: PodInfo) -> None:
        """A pod bound to a node, as the informer reports it (confirms an assumed pod)."""
        st = self.pods.get(p.key)
        if st is not None:
            if st.assumed:
                self.assumed.discard(p.key)
            self.unplace(st.info, st.node)
        self.place(p, p.node_name)
        self.pods[p.key] = PodState(p, p.node_name)
        self.generation += 1
        self._check()

    def update_pod(self, p: PodInfo) -> None:
        self.add_pod(p)

    def remove_pod(self, key: str) -> PodInfo | None:
        st = self.pods.pop(key, None)
        if st is None:
            return None
        self.assumed.discard(key)
        self.unplace(st.info, st.node)
        self.generation += 1
        self._check()
        return st.info

    def assume(self, p: PodInfo, node: str) -> None:
        """Count ``p`` on ``node`` now, before its binding is written (kube's AssumePod)."""
        if p.key in self.pods:
            raise ValueError(f"pod {p.key} is already in the cache")
        self.place(p, node)
        self.pods[p.key] = PodState(p, node, assumed=True)
        self.assumed.add(p.key)
        self.generation += 1
        self._check()

    def finish_binding(self, key: str) -> None:
        st = self.pods.get(key)
        if st is not None and st.assumed:
            st.binding_finished = True

    def forget(self, key: str) -> None:
        """Undo :meth:`assume` (binding failed)."""
        st = self.pods.get(key)
        if st is None or not st.assumed:
            return
        self.remove_pod(key)

    # -- counters and term groups --------------------------------------------------------------

    def _counters_for(self, namespace: str) -> Iterable[PodCounter]:
        by = self._counters_by_ns
        if not by:
            return ()
        a = by.get(namespace)
        b = by.get(None)
        if a and b:
            return [*a.values(), *b.values()]
        if a:
            return list(a.values())
        if b:
            return list(b.values())
        return ()

    def counter(self, namespaces: frozenset[str] | None, selector: LabelSelector,
                include_terminating: bool = False) -> PodCounter:
        """The (shared, live) counter of pods matching ``selector`` in ``namespaces``; built on
        first use by one pass over placed pods, then kept up to date."""
        key = (namespaces, selector, include_terminating)
        c = self._counters.get(key)
        if c is not None:
            self._counters.move_to_end(key)
            return c
        c = PodCounter(namespaces, selector, include_terminating)
        for ni in self.nodes.values():
            n = 0
            for p in ni.pods.values():
                if c.matches(p):
                    n += 1
            if n:
                c.per_node[ni.name] = n
        self._counters[key] = c
        for ns in (namespaces if namespaces is not None else (None,)):
            self._counters_by_ns.setdefault(ns, {})[key] = c
        while len(self._counters) > self.max_counters:
            old_key, old = self._counters.popitem(last=False)
            for ns in (old.namespaces if old.namespaces is not None else (None,)):
                d = self._counters_by_ns.get(ns)
                if d is not None:
                    d.pop(old_key, None)
                    if not d:
                        del self._counters_by_ns[ns]
        return c

    def groups_of(self, kind: TermKind) -> Iterable[TermGroup]:
        return self._groups_by_kind[kind].values()

    def _group(self, p: PodInfo, ni: NodeInfo) -> None:
        added: list[tuple[TermGroup, str | None]] = []
        labels = ni.labels if ni.node is not None else {}
        for kind, weight, term in _pod_terms(p):
            gkey = (kind, weight, term)
            g = self.groups.get(gkey)
            if g is None:
                g = self.groups[gkey] = TermGroup(kind, weight, term)
                self._groups_by_kind[kind][gkey] = g
            v = labels.get(term.topology_key)
            g.total += 1
            if v is not None:
                g.counts[v] = g.counts.get(v, 0) + 1
            added.append((g, v))
        if added:
            self._pod_groups[p.key] = added

    def _ungroup(self, p: PodInfo) -> None:
        for g, v in self._pod_groups.pop(p.key, ()):
            g.total -= 1
            if v is not None:
                n = g.counts.get(v, 0) - 1
                if n > 0:
                    g.counts[v] = n
                else:
                    g.counts.pop(v, None)
            if g.total <= 0:
                gkey = (g.kind, g.weight, g.term)
                self.groups.pop(gkey, None)
                self._groups_by_kind[g.kind].pop(gkey, None)

    # -- checks --------------------------------------------------------------------------------

    def _check(self) -> None:
        if self.validate:
            self.check()

    def check(self) -> None:
        """Recompute every aggregate from scratch and compare (raises AssertionError)."""
        placed = 0
        for ni in self.nodes.values():
            assert ni.req_cpu == sum(p.req_cpu for p in ni.pods.values()), ni
            assert ni.req_mem == sum(p.req_mem for p in ni.pods.values()), ni
            assert ni.nz_cpu == sum(p.nz_cpu for p in ni.pods.values()), ni
            assert ni.affinity_pods == sum(1 for p in ni.pods.values() if p.has_affinity), ni
            placed += len(ni.pods)
        assert placed == len(self.pods), (placed, len(self.pods))
        assert self._node_count == sum(1 for ni in self.nodes.values() if ni.node is not None)
        for c in self._counters.values():
            want: dict[str, int] = {}
            for ni in self.nodes.values():
                n = sum(1 for p in ni.pods.values() if c.matches(p))
                if n:
                    want[ni.name] = n
            assert want == c.per_node, (c.selector, want, c.per_node)
            for key, counts in c.topo.items():
                tw: dict[str, int] = {}
                for name, n in want.items():
                    ni = self.nodes[name]
                    v = ni.labels.get(key) if ni.node is not None else None
                    if v is not None:
                        tw[v] = tw.get(v, 0) + n
                assert tw == counts, (key, tw, counts)
        assert self.affinity_pods == sum(ni.affinity_pods for ni in self.nodes.values())
