"""NodeName: a pod that names its node (``spec.nodeName``) fits only that node."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.queue import ActionType, ClusterEvent
from k8py.scheduler.types import SKIP, Code, PodInfo, Status

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"
MISMATCH = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (REASON,), NAME)


class NodeName:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        pass

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        return None if pod.node_name else SKIP

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        if not pod.node_name or pod.node_name == ni.name:
            return None
        return MISMATCH

    def events_to_register(self) -> list[tuple[ClusterEvent, Any]]:
        return [(ClusterEvent("Node", ActionType.ADD), self._hint)]

    def _hint(self, pod: PodInfo, old: Any, new: Any) -> bool:
        return new is not None and (new.get("metadata") or {}).get("name") == pod.node_name


def new(args: Mapping[str, Any], handle: Handle) -> NodeName:
    return NodeName(args, handle)
