"""SchedulingGates (PreEnqueue): a pod with ``spec.schedulingGates`` waits outside the active
queue until an update removes every gate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8py.scheduler.framework import Handle
from k8py.scheduler.types import Code, PodInfo, Status

NAME = "SchedulingGates"


class SchedulingGates:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        pass

    def pre_enqueue(self, pod: PodInfo) -> Status | None:
        if not pod.gated:
            return None
        gates = [str(g.get("name")) for g in (pod.obj.get("spec") or {}).get("schedulingGates") or ()]
        return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (f"waiting for scheduling gates: [{' '.join(gates)}]",),
                      NAME)


def new(args: Mapping[str, Any], handle: Handle) -> SchedulingGates:
    return SchedulingGates(args, handle)
