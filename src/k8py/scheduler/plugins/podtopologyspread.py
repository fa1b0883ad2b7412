"""PodTopologySpread: keep matching pods spread across topology domains (zones, nodes, ...).

``DoNotSchedule`` constraints filter: a node is refused when placing the pod there would make
``matching pods in its domain + 1 - the least-loaded eligible domain`` exceed ``maxSkew``.
``ScheduleAnyway`` constraints score: fewer matching pods in a node's domains scores higher.

Pods without constraints of their own get the cluster default constraints (``System``: 3 per
hostname, 5 per zone, both ScheduleAnyway) with a selector built from the Services,
ReplicationControllers, ReplicaSets and StatefulSets that select the pod.

Matching pods are counted by the cache's live :class:`~k8py.scheduler.cache.PodCounter` per
(namespace, selector), so a cycle costs O(domains), not O(pods).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from k8py.api.corev1 import tolerates_any
from k8py.api.selectors import IN, LabelSelector, Requirement, SelectorError, from_label_selector
from k8py.scheduler.cache import PodCounter
from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.queue import ActionType, ClusterEvent
from k8py.scheduler.types import (
    HOSTNAME_LABEL,
    MAX_NODE_SCORE,
    SKIP,
    ZONE_LABEL,
    Code,
    PodInfo,
    Status,
)

NAME = "PodTopologySpread"
REASON_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
REASON_NO_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"
NOT_MATCH = Status(Code.UNSCHEDULABLE, (REASON_NOT_MATCH,), NAME)
NO_LABEL = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (REASON_NO_LABEL,), NAME)

DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
SYSTEM_DEFAULT_CONSTRAINTS = (
    {"maxSkew": 3, "topologyKey": HOSTNAME_LABEL, "whenUnsatisfiable": SCHEDULE_ANYWAY},
    {"maxSkew": 5, "topologyKey": ZONE_LABEL, "whenUnsatisfiable": SCHEDULE_ANYWAY},
)


@dataclass(slots=True)
class Constraint:
    max_skew: int
    key: str
    selector: LabelSelector
    min_domains: int
    honor_affinity: bool
    honor_taints: bool


@dataclass(slots=True)
class FilterConstraint:
    c: Constraint
    counts: Mapping[str, int]  # matching pods per eligible domain (absent: none)
    min_match: int
    self_match: int


def validate_args(args: Mapping[str, Any], path: str) -> list[str]:
    errs = []
    typ = args.get("defaultingType", "System")
    if typ not in ("System", "List"):
        errs.append(f'{path}.defaultingType: Unsupported value: "{typ}": supported values: "List", "System"')
    dcs = args.get("defaultConstraints") or []
    if typ == "System" and dcs:
        errs.append(f"{path}.defaultingType: Invalid value: \"System\": when .defaultConstraints are not "
                    "empty, defaultingType must be List")
    seen = set()
    for i, c in enumerate(dcs):
        p = f"{path}.defaultConstraints[{i}]"
        if not isinstance(c, Mapping):
            errs.append(f"{p}: Invalid value: {c!r}: must be an object")
            continue
        ms = c.get("maxSkew")
        if not isinstance(ms, int) or ms <= 0:
            errs.append(f"{p}.maxSkew: Invalid value: {ms}: must be greater than zero")
        if not c.get("topologyKey"):
            errs.append(f"{p}.topologyKey: Required value: can not be empty")
        wu = c.get("whenUnsatisfiable")
        if wu not in (DO_NOT_SCHEDULE, SCHEDULE_ANYWAY):
            errs.append(f'{p}.whenUnsatisfiable: Unsupported value: "{wu}": supported values: '
                        f'"{DO_NOT_SCHEDULE}", "{SCHEDULE_ANYWAY}"')
        if (c.get("topologyKey"), wu) in seen:
            errs.append(f"{p}: Duplicate value: {{{c.get('topologyKey')}, {wu}}}")
        seen.add((c.get("topologyKey"), wu))
        if c.get("labelSelector") is not None:
            errs.append(f"{p}.labelSelector: Forbidden: constraint must not define a selector, as they "
                        "deduced for each pod")
    return errs


def _combine(selectors: list[LabelSelector]) -> LabelSelector:
    reqs: dict[tuple[str, str, tuple[str, ...]], Requirement] = {}
    for s in selectors:
        for r in s.requirements:
            reqs[(r.key, r.operator, r.values)] = r
    return LabelSelector(reqs.values())


class PodTopologySpread:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.handle = handle
        self.system_defaulted = args.get("defaultingType", "System") == "System"
        self.default_constraints = list(SYSTEM_DEFAULT_CONSTRAINTS) if self.system_defaulted else \
            list(args.get("defaultConstraints") or [])

    # -- constraints ---------------------------------------------------------------------------

    def constraints(self, pod: PodInfo, action: str) -> list[Constraint]:
        if pod.spread_constraints:
            return self._parse(pod, [c for c in pod.spread_constraints if c.get("whenUnsatisfiable") == action],
                               None)
        defaults = [c for c in self.default_constraints if c.get("whenUnsatisfiable") == action]
        if not defaults:
            return []
        sels = self.handle.listers.selectors_for_pod(pod)
        if not sels:
            return []
        sel = _combine(sels)
        if sel.empty:
            return []
        return self._parse(pod, defaults, sel)

    def _parse(self, pod: PodInfo, raw: list[Mapping[str, Any]], default_sel: LabelSelector | None) -> list[Constraint]:
        out = []
        for c in raw:
            if default_sel is not None:
                sel = default_sel
            else:
                try:
                    sel = from_label_selector(c.get("labelSelector"))
                except SelectorError:
                    continue
                keys = [k for k in c.get("matchLabelKeys") or () if k in pod.labels]
                if keys and not sel.matches_nothing:
                    sel = LabelSelector((*sel.requirements, *(
                        Requirement(k, IN, (pod.labels[k],), frozenset((pod.labels[k],))) for k in keys)))
            out.append(Constraint(
                max_skew=int(c.get("maxSkew") or 1), key=str(c.get("topologyKey") or ""), selector=sel,
                min_domains=int(c.get("minDomains") or 1),
                honor_affinity=(c.get("nodeAffinityPolicy") or "Honor") == "Honor",
                honor_taints=(c.get("nodeTaintsPolicy") or "Ignore") == "Honor"))
        return out

    def _counter(self, pod: PodInfo, c: Constraint) -> PodCounter:
        return self.handle.cache.counter(frozenset((pod.namespace,)), c.selector)

    def _eligible(self, pod: PodInfo, c: Constraint, ni: NodeInfo, keys: list[str]) -> bool:
        labels = ni.labels
        for k in keys:
            if k not in labels:
                return False
        if c.honor_affinity and pod.has_node_constraints and \
                not pod.matches_node_selector_and_affinity(labels, ni.name):
            return False
        if c.honor_taints and ni.noschedule_taints:
            for t in ni.noschedule_taints:
                if not tolerates_any(pod.tolerations, t):
                    return False
        return True

    def _all_eligible(self, pod: PodInfo, cs: list[Constraint], keys: list[str]) -> bool:
        """Is every node eligible for counting (the fast path: use the counters' topology views)?"""
        cache = self.handle.cache
        n = cache.node_count
        for k in keys:
            if cache.key_nodes.get(k, 0) != n:
                return False
        for c in cs:
            if c.honor_affinity and pod.has_node_constraints:
                return False
            if c.honor_taints and cache.taint_nodes:
                return False
        return True

    # -- filter --------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        cs = self.constraints(pod, DO_NOT_SCHEDULE)
        if not cs:
            return SKIP
        cache = self.handle.cache
        keys = [c.key for c in cs]
        fast = self._all_eligible(pod, cs, keys)
        out = []
        for c in cs:
            counter = self._counter(pod, c)
            if fast:
                counts: Mapping[str, int] = counter.by_topology(c.key, cache.nodes)
                domains = len(cache.label_values.get(c.key, ()))
            else:
                acc: dict[str, int] = {}
                seen: set[str] = set()
                per_node = counter.per_node
                for ni in cache.node_list():
                    if not self._eligible(pod, c, ni, keys):
                        continue
                    v = ni.labels[c.key]
                    seen.add(v)
                    n = per_node.get(ni.name)
                    if n:
                        acc[v] = acc.get(v, 0) + n
                counts, domains = acc, len(seen)
            if domains < c.min_domains or len(counts) < domains:
                min_match = 0  # an eligible domain without matching pods (or too few domains)
            else:
                min_match = min(counts.values()) if counts else 0
            out.append(FilterConstraint(c, counts, min_match, 1 if c.selector.matches(pod.labels) else 0))
        state.write(NAME, out)
        return None

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        fcs: list[FilterConstraint] = state.read(NAME)
        labels = ni.labels
        for fc in fcs:
            v = labels.get(fc.c.key)
            if v is None:
                return NO_LABEL
            if fc.counts.get(v, 0) + fc.self_match - fc.min_match > fc.c.max_skew:
                return NOT_MATCH
        return None

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                     statuses: dict[str, Status]) -> list[NodeInfo]:
        fcs: list[FilterConstraint] = state.read(NAME)
        cache = self.handle.cache
        cand = nodes
        for fc in fcs:
            if not cand:
                break
            key = fc.c.key
            counts = fc.counts
            # a domain is full when its count reaches this; domains without pods never are
            limit = fc.c.max_skew + fc.min_match - fc.self_match
            if cache.key_nodes.get(key, 0) == cache.node_count:
                out = [ni for ni in cand if counts.get(ni.labels[key], 0) <= limit]
                if len(out) != len(cand):
                    ok = {id(ni) for ni in out}
                    for ni in cand:
                        if id(ni) not in ok:
                            statuses[ni.name] = NOT_MATCH
            else:
                out = []
                for ni in cand:
                    v = ni.labels.get(key)
                    if v is None:
                        statuses[ni.name] = NO_LABEL
                    elif counts.get(v, 0) > limit:
                        statuses[ni.name] = NOT_MATCH
                    else:
                        out.append(ni)
            cand = out
        return cand

    # -- score ---------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        cache = self.handle.cache
        if cache.node_count == 0:
            return SKIP
        cs = self.constraints(pod, SCHEDULE_ANYWAY)
        if not cs:
            return SKIP
        # Nodes need every topology key only with the pod's own (or List-configured) constraints,
        # so that nodes without a zone label still get hostname spreading by default.
        require_all = bool(pod.spread_constraints) or not self.system_defaulted
        keys = [c.key for c in cs]
        ignored: set[str] = set()
        values: list[set[str]] = [set() for _ in cs]
        for ni in nodes:
            labels = ni.labels
            if require_all and any(k not in labels for k in keys):
                ignored.add(ni.name)
                continue
            for i, c in enumerate(cs):
                if c.key != HOSTNAME_LABEL:
                    v = labels.get(c.key)
                    if v is not None:
                        values[i].add(v)
        fast = self._all_eligible(pod, cs, keys if require_all else [])
        entries = []
        for i, c in enumerate(cs):
            counter = self._counter(pod, c)
            if c.key == HOSTNAME_LABEL:
                size = len(nodes) - len(ignored)
                counts: Mapping[str, int] | None = None
            else:
                size = len(values[i])
                if fast:
                    counts = counter.by_topology(c.key, cache.nodes)
                else:
                    acc: dict[str, int] = {}
                    for name, n in counter.per_node.items():
                        ni2 = cache.get_node(name)
                        if ni2 is None or not self._eligible(pod, c, ni2, keys if require_all else [c.key]):
                            continue
                        v = ni2.labels.get(c.key)
                        if v in values[i]:
                            acc[v] = acc.get(v, 0) + n
                    counts = acc
            entries.append((c, counter, counts, math.log(size + 2)))
        state.write(NAME + "/score", (entries, ignored))
        return None

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        entries, ignored = state.read(NAME + "/score")
        out = []
        for ni in nodes:
            if ni.name in ignored:
                out.append(0)
                continue
            labels = ni.labels
            s = 0.0
            for c, counter, counts, weight in entries:
                v = labels.get(c.key)
                if v is None:
                    continue
                cnt = counter.per_node.get(ni.name, 0) if counts is None else counts.get(v, 0)
                s += cnt * weight + (c.max_skew - 1)
            out.append(round(s))
        return out

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        _, ignored = state.read(NAME + "/score")
        lo: int | None = None
        hi = 0
        for ni, s in zip(nodes, scores, strict=True):
            if ni.name in ignored:
                continue
            lo = s if lo is None or s < lo else lo
            hi = max(hi, s)
        for i, ni in enumerate(nodes):
            if ni.name in ignored:
                scores[i] = 0
            elif hi == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (hi + (lo or 0) - scores[i]) // hi

    # -- queueing hints ------------------------------------------------------------------------

    def events_to_register(self) -> list[tuple[ClusterEvent, Any]]:
        return [
            (ClusterEvent("AssignedPod", ActionType.ADD | ActionType.DELETE | ActionType.UPDATE_POD_LABEL),
             self._pod_hint),
            (ClusterEvent("Node", ActionType.ADD | ActionType.DELETE | ActionType.UPDATE_NODE_LABEL
                          | ActionType.UPDATE_NODE_TAINT), self._node_hint),
        ]

    def _pod_hint(self, pod: PodInfo, old: Any, new: Any) -> bool:
        cs = self.constraints(pod, DO_NOT_SCHEDULE) + self.constraints(pod, SCHEDULE_ANYWAY)
        for other in (old, new):
            if other is None or other.namespace != pod.namespace:
                continue
            if any(c.selector.matches(other.labels) for c in cs):
                return True
        return False

    def _node_hint(self, pod: PodInfo, old: Any, new: Any) -> bool:
        keys = [c.key for c in self.constraints(pod, DO_NOT_SCHEDULE) + self.constraints(pod, SCHEDULE_ANYWAY)]
        for node in (old, new):
            if node is not None:
                labels = (node.get("metadata") or {}).get("labels") or {}
                if all(k in labels for k in keys):
                    return True
        return False


def new(args: Mapping[str, Any], handle: Handle) -> PodTopologySpread:
    return PodTopologySpread(args, handle)
