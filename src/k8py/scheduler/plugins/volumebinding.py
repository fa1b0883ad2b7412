"""VolumeBinding: the hook where PersistentVolumeClaims meet scheduling. Until the storage work
fills it, it only skips pods without claims and accepts every node; a ``binder`` (see
:class:`VolumeBinder`) plugged in later takes over filtering, reserving and pre-binding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.queue import ActionType, ClusterEvent
from k8py.scheduler.types import SKIP, PodInfo, Status

NAME = "VolumeBinding"


class VolumeBinder(Protocol):
    """What the storage issue implements (kube's SchedulerVolumeBinder, reduced)."""

    def pre_filter(self, pod: PodInfo) -> Status | None: ...

    def filter(self, pod: PodInfo, ni: NodeInfo) -> Status | None: ...

    def assume(self, pod: PodInfo, node: str) -> Status | None: ...

    def revert(self, pod: PodInfo, node: str) -> None: ...

    async def bind(self, pod: PodInfo, node: str) -> Status | None: ...


class VolumeBinding:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.handle = handle
        self.binder: VolumeBinder | None = None
        self.bind_timeout = float(args.get("bindTimeoutSeconds", 600))

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        if not pod.pvcs or self.binder is None:
            return SKIP
        return self.binder.pre_filter(pod)

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        return self.binder.filter(pod, ni) if self.binder is not None else None

    def reserve(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        if self.binder is None or not pod.pvcs:
            return None
        return self.binder.assume(pod, node)

    def unreserve(self, state: CycleState, pod: PodInfo, node: str) -> None:
        if self.binder is not None and pod.pvcs:
            self.binder.revert(pod, node)

    async def pre_bind(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        if self.binder is None or not pod.pvcs:
            return None
        return await self.binder.bind(pod, node)

    def events_to_register(self) -> list[tuple[ClusterEvent, Any]]:
        return [(ClusterEvent("PersistentVolumeClaim", ActionType.ADD | ActionType.UPDATE_OTHER), None),
                (ClusterEvent("PersistentVolume", ActionType.ADD | ActionType.UPDATE_OTHER), None),
                (ClusterEvent("StorageClass", ActionType.ADD | ActionType.UPDATE_OTHER), None),
                (ClusterEvent("Node", ActionType.ADD | ActionType.UPDATE_NODE_LABEL), None)]


def new(args: Mapping[str, Any], handle: Handle) -> VolumeBinding:
    return VolumeBinding(args, handle)
