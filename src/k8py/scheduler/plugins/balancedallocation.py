"""NodeResourcesBalancedAllocation: prefer nodes whose resource use stays balanced across
resources (cpu and memory by default): ``(1 - std(fractions)) * 100`` where each fraction is
requested/allocatable (capped at 1) including the pod being scheduled."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.types import CPU, EPHEMERAL, MAX_NODE_SCORE, MEMORY, SKIP, PodInfo, Status

NAME = "NodeResourcesBalancedAllocation"


class BalancedAllocation:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        res = args.get("resources") or ({"name": CPU, "weight": 1}, {"name": MEMORY, "weight": 1})
        self.resources = [str(r["name"]) for r in res]
        self.fast = self.resources == [CPU, MEMORY]

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        # A pod requesting nothing of the scored resources changes no balance: skip (kube 1.29+).
        if not any(pod.request(r) for r in self.resources):
            return SKIP
        return None

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        if not self.fast:
            return [self._score_generic(pod, ni) for ni in nodes]
        return self._score_cpu_mem(pod, nodes)

    def _score_cpu_mem(self, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        pc, pm = pod.req_cpu, pod.req_mem
        out: list[int] = []
        append = out.append
        for ni in nodes:
            ac, am = ni.alloc_cpu, ni.alloc_mem
            if ac and am:
                rc = ni.req_cpu + pc
                rm = ni.req_mem + pm
                d = (1.0 if rc >= ac else rc / ac) - (1.0 if rm >= am else rm / am)
                append(int((1.0 - (d if d >= 0 else -d) / 2) * MAX_NODE_SCORE))
            else:
                append(MAX_NODE_SCORE)  # one fraction or none: no deviation
        return out

    def _score_generic(self, pod: PodInfo, ni: NodeInfo) -> int:
        fractions = []
        for r in self.resources:
            if r == CPU:
                req, alloc = ni.req_cpu + pod.req_cpu, ni.alloc_cpu
            elif r == MEMORY:
                req, alloc = ni.req_mem + pod.req_mem, ni.alloc_mem
            elif r == EPHEMERAL:
                req, alloc = ni.req_eph + pod.req_eph, ni.alloc_eph
            else:
                req = ni.req_scalars.get(r, 0) + pod.req_scalars.get(r, 0)
                alloc = ni.alloc_scalars.get(r, 0)
            if alloc == 0:
                continue
            fractions.append(min(req / alloc, 1.0))
        std = 0.0
        if len(fractions) == 2:
            std = abs((fractions[0] - fractions[1]) / 2)
        elif len(fractions) > 2:
            mean = sum(fractions) / len(fractions)
            std = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
        return int((1 - std) * MAX_NODE_SCORE)

    def score(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> int:
        return self.score_nodes(state, pod, [ni])[0]


def new(args: Mapping[str, Any], handle: Handle) -> BalancedAllocation:
    return BalancedAllocation(args, handle)
