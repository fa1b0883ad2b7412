"""InterPodAffinity: pod affinity and anti-affinity, required and preferred.

Filter (in kube's order): the pod's required affinity must find matching pods in the node's
domain (unless no pod anywhere matches and the pod matches its own terms: the first of a
series); its required anti-affinity must find none; and no pod already placed may have a
required anti-affinity term that matches this pod in the node's domain.

Score: the pod's preferred terms (+/- weight per matching pod in the node's domain), plus the
terms of placed pods that match this pod (their preferred terms, and their required affinity
at ``hardPodAffinityWeight``), normalized min-max to 0..100.

The counts come from the cache: :class:`~k8py.scheduler.cache.PodCounter` for the incoming pod's
terms and :class:`~k8py.scheduler.cache.TermGroup` for placed pods' terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from k8py.scheduler.cache import TermGroup, TermKind
from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.queue import ActionType, ClusterEvent
from k8py.scheduler.types import MAX_NODE_SCORE, SKIP, AffinityTerm, Code, PodInfo, Status

NAME = "InterPodAffinity"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"
AFFINITY = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (REASON_AFFINITY,), NAME)
ANTI = Status(Code.UNSCHEDULABLE, (REASON_ANTI,), NAME)
EXISTING_ANTI = Status(Code.UNSCHEDULABLE, (REASON_EXISTING_ANTI,), NAME)


@dataclass(slots=True)
class _FilterState:
    existing: list[TermGroup]
    affinity: list[tuple[str, Mapping[str, int]]]  # (topology key, matching pods per value)
    anti: list[tuple[str, Mapping[str, int]]]
    affinity_none_anywhere: bool
    self_match: bool


def validate_args(args: Mapping[str, Any], path: str) -> list[str]:
    w = args.get("hardPodAffinityWeight", 1)
    if not isinstance(w, int) or isinstance(w, bool) or not 0 <= w <= 100:
        return [f"{path}.hardPodAffinityWeight: Invalid value: {w}: not in valid range [0, 100]"]
    return []


class InterPodAffinity:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.handle = handle
        self.hard_weight = int(args.get("hardPodAffinityWeight", 1))
        self.ignore_existing_preferred = bool(args.get("ignorePreferredTermsOfExistingPods", False))

    def _namespaces(self, term: AffinityTerm) -> frozenset[str] | None:
        """The namespaces a term covers now (None: all of them)."""
        if term.ns_selector is None:
            return term.namespaces
        if term.ns_selector.empty:
            return None
        names = getattr(self.handle.listers, "namespaces_matching", None)
        matching = names(term.ns_selector) if names is not None else frozenset()
        return term.namespaces | frozenset(matching)

    def _counts(self, term: AffinityTerm) -> Mapping[str, int]:
        cache = self.handle.cache
        return cache.counter(self._namespaces(term), term.selector, True).by_topology(term.topology_key, cache.nodes)

    def _all_terms_counts(self, terms: tuple[AffinityTerm, ...], pod: PodInfo) -> list[tuple[str, Mapping[str, int]]]:
        """kube's affinityCounts: a placed pod counts only when it matches every term."""
        if len(terms) == 1:
            return [(terms[0].topology_key, self._counts(terms[0]))]
        cache = self.handle.cache
        ns_of = [self._namespaces(t) for t in terms]
        first = cache.counter(ns_of[0], terms[0].selector, True)
        out: list[dict[str, int]] = [{} for _ in terms]
        for name in first.per_node:
            ni = cache.get_node(name)
            if ni is None:
                continue
            n = 0
            for p in ni.pods.values():
                if all((ns is None or p.namespace in ns) and t.selector.matches(p.labels)
                       for t, ns in zip(terms, ns_of, strict=True)):
                    n += 1
            if n:
                for i, t in enumerate(terms):
                    v = ni.labels.get(t.topology_key)
                    if v is not None:
                        out[i][v] = out[i].get(v, 0) + n
        return [(t.topology_key, out[i]) for i, t in enumerate(terms)]

    # -- filter --------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        cache = self.handle.cache
        existing = []
        if cache.anti_affinity_pods:
            ns_labels = self.handle.ns_labels
            for g in cache.groups_of(TermKind.REQUIRED_ANTI):
                if g.counts and g.term.matches(pod, ns_labels):
                    existing.append(g)
        if not existing and not pod.affinity_required and not pod.anti_required:
            return SKIP
        affinity = self._all_terms_counts(pod.affinity_required, pod) if pod.affinity_required else []
        anti = [(t.topology_key, self._counts(t)) for t in pod.anti_required]
        none_anywhere = all(not counts for _, counts in affinity)
        self_match = all(t.matches(pod, self.handle.ns_labels) for t in pod.affinity_required)
        state.write(NAME, _FilterState(existing, affinity, anti, none_anywhere, self_match))
        return None

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        s: _FilterState = state.read(NAME)
        labels = ni.labels
        if s.affinity:
            exist = True
            for key, counts in s.affinity:
                v = labels.get(key)
                if v is None:
                    return AFFINITY  # every topology key must be on the node
                if counts.get(v, 0) <= 0:
                    exist = False
            if not exist and not (s.affinity_none_anywhere and s.self_match):
                return AFFINITY
        for key, counts in s.anti:
            v = labels.get(key)
            if v is not None and counts.get(v, 0) > 0:
                return ANTI
        for g in s.existing:
            v = labels.get(g.term.topology_key)
            if v is not None and g.counts.get(v, 0) > 0:
                return EXISTING_ANTI
        return None

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                     statuses: dict[str, Status]) -> list[NodeInfo]:
        """The same checks as :meth:`filter`, as one pass per term over the chunk: a value with
        a count in a term's map is a domain the pod may not join."""
        s: _FilterState = state.read(NAME)
        cand = nodes
        if s.affinity:
            cand = []
            for ni in nodes:
                st = self._affinity_only(s, ni)
                if st is None:
                    cand.append(ni)
                else:
                    statuses[ni.name] = st
        for blockers, status in ((s.anti, ANTI), ([(g.term.topology_key, g.counts) for g in s.existing],
                                                  EXISTING_ANTI)):
            for key, counts in blockers:
                if not cand:
                    return cand
                if not counts:
                    continue
                out = [ni for ni in cand if ni.labels.get(key) not in counts]
                if len(out) != len(cand):
                    ok = {id(ni) for ni in out}
                    for ni in cand:
                        if id(ni) not in ok:
                            statuses[ni.name] = status
                cand = out
        return cand

    @staticmethod
    def _affinity_only(s: _FilterState, ni: NodeInfo) -> Status | None:
        labels = ni.labels
        exist = True
        for key, counts in s.affinity:
            v = labels.get(key)
            if v is None:
                return AFFINITY
            if counts.get(v, 0) <= 0:
                exist = False
        if not exist and not (s.affinity_none_anywhere and s.self_match):
            return AFFINITY
        return None

    # -- score ---------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        cache = self.handle.cache
        if not pod.affinity_preferred and not pod.anti_preferred and not cache.affinity_pods:
            return SKIP
        entries: list[tuple[str, Mapping[str, int], int]] = []
        for w in pod.affinity_preferred:
            entries.append((w.term.topology_key, self._counts(w.term), w.weight))
        for w in pod.anti_preferred:
            entries.append((w.term.topology_key, self._counts(w.term), -w.weight))
        if cache.affinity_pods:
            ns_labels = self.handle.ns_labels
            kinds = [(TermKind.REQUIRED_AFFINITY, 1)] if self.hard_weight > 0 else []
            if not self.ignore_existing_preferred:
                kinds += [(TermKind.PREFERRED_AFFINITY, 1), (TermKind.PREFERRED_ANTI, -1)]
            for kind, sign in kinds:
                for g in cache.groups_of(kind):
                    if g.counts and g.term.matches(pod, ns_labels):
                        weight = self.hard_weight if kind == TermKind.REQUIRED_AFFINITY else g.weight
                        entries.append((g.term.topology_key, g.counts, sign * weight))
        entries = [e for e in entries if e[1] and e[2]]
        if not entries:
            return SKIP
        state.write(NAME + "/score", entries)
        return None

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        entries = state.read(NAME + "/score")
        out = []
        for ni in nodes:
            labels = ni.labels
            s = 0
            for key, counts, mult in entries:
                v = labels.get(key)
                if v is not None:
                    s += counts.get(v, 0) * mult
            out.append(s)
        return out

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        hi = max(0, max(scores, default=0))
        lo = min(0, min(scores, default=0))
        diff = hi - lo
        for i, s in enumerate(scores):
            scores[i] = int(MAX_NODE_SCORE * ((s - lo) / diff)) if diff > 0 else 0

    # -- queueing hints ------------------------------------------------------------------------

    def events_to_register(self) -> list[tuple[ClusterEvent, Any]]:
        return [
            (ClusterEvent("AssignedPod", ActionType.ADD | ActionType.DELETE | ActionType.UPDATE_POD_LABEL),
             self._pod_hint),
            (ClusterEvent("Node", ActionType.ADD | ActionType.UPDATE_NODE_LABEL), None),
        ]

    def _pod_hint(self, pod: PodInfo, old: Any, new: Any) -> bool:
        ns_labels = self.handle.ns_labels
        for other in (old, new):
            if other is None:
                continue
            if any(t.matches(other, ns_labels) for t in (*pod.affinity_required, *pod.anti_required)):
                return True
            if any(t.matches(pod, ns_labels) for t in other.anti_required):
                return True
        return False


def new(args: Mapping[str, Any], handle: Handle) -> InterPodAffinity:
    return InterPodAffinity(args, handle)
