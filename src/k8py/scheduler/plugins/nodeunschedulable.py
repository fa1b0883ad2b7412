"""NodeUnschedulable: cordoned nodes (``spec.unschedulable``) take only pods that tolerate the
``node.kubernetes.io/unschedulable:NoSchedule`` taint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8py.api.corev1 import tolerates_any
from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.nodeinfo import UNSCHEDULABLE_TAINT, NodeInfo
from k8py.scheduler.queue import ActionType, ClusterEvent
from k8py.scheduler.types import Code, PodInfo, Status

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
UNSCHEDULABLE = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (REASON,), NAME)


class NodeUnschedulable:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        pass

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        if not ni.unschedulable or tolerates_any(pod.tolerations, UNSCHEDULABLE_TAINT):
            return None
        return UNSCHEDULABLE

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                     statuses: dict[str, Status]) -> list[NodeInfo]:
        out = [ni for ni in nodes if not ni.unschedulable]
        if len(out) != len(nodes) and tolerates_any(pod.tolerations, UNSCHEDULABLE_TAINT):
            return nodes
        if len(out) != len(nodes):
            for ni in nodes:
                if ni.unschedulable:
                    statuses[ni.name] = UNSCHEDULABLE
        return out

    def events_to_register(self) -> list[tuple[ClusterEvent, Any]]:
        return [(ClusterEvent("Node", ActionType.ADD | ActionType.UPDATE_NODE_TAINT), self._hint)]

    def _hint(self, pod: PodInfo, old: Any, new: Any) -> bool:
        return new is not None and not (new.get("spec") or {}).get("unschedulable")


def new(args: Mapping[str, Any], handle: Handle) -> NodeUnschedulable:
    return NodeUnschedulable(args, handle)
