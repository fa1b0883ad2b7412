"""PrioritySort (QueueSort): higher ``spec.priority`` first, then the pod that entered the queue
first. The queue implements the order; this plugin is what profiles name for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8py.scheduler.framework import Handle
from k8py.scheduler.queue import QueuedPodInfo

NAME = "PrioritySort"


class PrioritySort:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        pass

    @staticmethod
    def less(a: QueuedPodInfo, b: QueuedPodInfo) -> bool:
        pa, pb = a.pod.priority, b.pod.priority
        return pa > pb or (pa == pb and a.timestamp < b.timestamp)


def new(args: Mapping[str, Any], handle: Handle) -> PrioritySort:
    return PrioritySort(args, handle)
