"""DefaultBinder (Bind): writes the decision as a ``pods/binding`` subresource POST."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8py.client.errors import ApiError
from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.types import Code, PodInfo, Status

NAME = "DefaultBinder"
POD = ("v1", "Pod")


class DefaultBinder:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.handle = handle

    async def bind(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            await self.handle.client.create(POD, binding, pod.namespace, subresource="binding", name=pod.name)
        except ApiError as e:
            return Status(Code.ERROR, (f"binding rejected: {e.message or e}",), NAME)
        return None


def new(args: Mapping[str, Any], handle: Handle) -> DefaultBinder:
    return DefaultBinder(args, handle)
