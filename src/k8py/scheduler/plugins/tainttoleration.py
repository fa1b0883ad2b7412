"""TaintToleration: a node's NoSchedule/NoExecute taints keep off pods that do not tolerate them;
PreferNoSchedule taints the pod does not tolerate lower the node's score."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8py.api.corev1 import Taint, Toleration, tolerates_any
from k8py.scheduler.framework import CycleState, Handle, default_normalize
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.queue import ActionType, ClusterEvent
from k8py.scheduler.types import SKIP, Code, PodInfo, Status

NAME = "TaintToleration"


def untolerated(taint: Taint) -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (f"node(s) had untolerated taint {taint}",), NAME)


def first_untolerated(taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...]) -> Taint | None:
    for t in taints:
        if not tolerates_any(tolerations, t):
            return t
    return None


class TaintToleration:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.handle = handle

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        taints = ni.noschedule_taints
        if not taints:
            return None
        t = first_untolerated(taints, pod.tolerations)
        return None if t is None else untolerated(t)

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                     statuses: dict[str, Status]) -> list[NodeInfo]:
        if not self.handle.cache.taint_nodes:
            return nodes  # no node has a NoSchedule/NoExecute taint
        out = []
        tols = pod.tolerations
        for ni in nodes:
            taints = ni.noschedule_taints
            if taints:
                t = first_untolerated(taints, tols)
                if t is not None:
                    statuses[ni.name] = untolerated(t)
                    continue
            out.append(ni)
        return out

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        if self.handle.cache.prefer_taint_nodes == 0:
            return SKIP  # every node scores 0 before normalizing: no effect on the choice
        state.write(NAME, tuple(t for t in pod.tolerations if t.effect in ("", "PreferNoSchedule")))
        return None

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        tols = state.read(NAME) or ()
        out = []
        for ni in nodes:
            n = 0
            for t in ni.prefer_taints:
                if not tolerates_any(tols, t):
                    n += 1
            out.append(n)
        return out

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        default_normalize(scores, reverse=True)

    def events_to_register(self) -> list[tuple[ClusterEvent, Any]]:
        return [(ClusterEvent("Node", ActionType.ADD | ActionType.UPDATE_NODE_TAINT), self._node_hint)]

    def _node_hint(self, pod: PodInfo, old: Any, new: Any) -> bool:
        if new is None:
            return False
        taints = [Taint.parse(t) for t in (new.get("spec") or {}).get("taints") or ()
                  if t.get("effect") in ("NoSchedule", "NoExecute")]
        return first_untolerated(tuple(taints), pod.tolerations) is None


def new(args: Mapping[str, Any], handle: Handle) -> TaintToleration:
    return TaintToleration(args, handle)
