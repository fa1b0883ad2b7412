"""NodeAffinity: ``nodeSelector`` and required node affinity filter nodes; preferred node
affinity adds its terms' weights to matching nodes. ``addedAffinity`` (plugin args) is a
scheduler-enforced affinity every pod of the profile gets on top of its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8py.scheduler.framework import CycleState, Handle, default_normalize
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.queue import ActionType, ClusterEvent
from k8py.scheduler.types import SKIP, Code, NodeSelector, NodeSelectorTerm, PodInfo, Status

NAME = "NodeAffinity"
REASON_POD = "node(s) didn't match Pod's node affinity/selector"
REASON_ENFORCED = "node(s) didn't match scheduler-enforced node affinity"
MISMATCH = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (REASON_POD,), NAME)
ENFORCED = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (REASON_ENFORCED,), NAME)


class NodeAffinity:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        added = args.get("addedAffinity") or {}
        req = added.get("requiredDuringSchedulingIgnoredDuringExecution")
        self.added_required = NodeSelector.parse(req) if req is not None else None
        self.added_preferred = tuple(
            (int(w.get("weight") or 0), NodeSelectorTerm.parse(w.get("preference")))
            for w in added.get("preferredDuringSchedulingIgnoredDuringExecution") or ())

    def pre_filter(self, state: CycleState, pod: PodInfo) -> set[str] | Status | None:
        if not pod.has_node_constraints and self.added_required is None:
            return SKIP
        req = pod.required_node_affinity
        if req is not None and req.terms:
            # metadata.name pins in every term: only those nodes can fit (a PreFilterResult).
            names: set[str] = set()
            for t in req.terms:
                pinned = t.node_names()
                if pinned is None:
                    return None
                names |= pinned
            return names
        return None

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        labels = ni.labels
        if self.added_required is not None and not self.added_required.matches(labels, ni.name):
            return ENFORCED
        if not pod.matches_node_selector_and_affinity(labels, ni.name):
            return MISMATCH
        return None

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        if not pod.preferred_node_affinity and not self.added_preferred:
            return SKIP
        return None

    def score(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> int:
        s = 0
        for weight, term in pod.preferred_node_affinity:
            if weight and term.matches(ni.labels, ni.name):
                s += weight
        for weight, term in self.added_preferred:
            if weight and term.matches(ni.labels, ni.name):
                s += weight
        return s

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        default_normalize(scores)

    def events_to_register(self) -> list[tuple[ClusterEvent, Any]]:
        return [(ClusterEvent("Node", ActionType.ADD | ActionType.UPDATE_NODE_LABEL), self._hint)]

    def _hint(self, pod: PodInfo, old: Any, new: Any) -> bool:
        if new is None:
            return False
        meta = new.get("metadata") or {}
        labels = meta.get("labels") or {}
        name = str(meta.get("name") or "")
        if self.added_required is not None and not self.added_required.matches(labels, name):
            return False
        return pod.matches_node_selector_and_affinity(labels, name)


def new(args: Mapping[str, Any], handle: Handle) -> NodeAffinity:
    return NodeAffinity(args, handle)
