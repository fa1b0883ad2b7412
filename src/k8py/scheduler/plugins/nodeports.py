"""NodePorts: a pod's ``hostPort``s must be free on the node (0.0.0.0 clashes with every address)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.queue import ActionType, ClusterEvent
from k8py.scheduler.types import SKIP, Code, PodInfo, Status

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"
CONFLICT = Status(Code.UNSCHEDULABLE, (REASON,), NAME)


class NodePorts:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        pass

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        return None if pod.host_ports else SKIP

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        if not ni.used_ports:
            return None
        for ip, proto, port in pod.host_ports:
            if ni.port_conflict(ip, proto, port):
                return CONFLICT
        return None

    def events_to_register(self) -> list[tuple[ClusterEvent, Any]]:
        return [(ClusterEvent("AssignedPod", ActionType.DELETE), self._pod_hint),
                (ClusterEvent("Node", ActionType.ADD), None)]

    def _pod_hint(self, pod: PodInfo, old: Any, new: Any) -> bool:
        gone: PodInfo | None = old
        if gone is None:
            return True
        wanted = {(proto, port) for _, proto, port in pod.host_ports}
        return any((proto, port) in wanted for _, proto, port in gone.host_ports)


def new(args: Mapping[str, Any], handle: Handle) -> NodePorts:
    return NodePorts(args, handle)
