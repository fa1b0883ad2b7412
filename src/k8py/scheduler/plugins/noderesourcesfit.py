"""NodeResourcesFit: does the node have room for the pod's requests (cpu, memory,
ephemeral-storage, pod count, extended resources); and the scoring strategies LeastAllocated
(spread, the default), MostAllocated (bin packing) and RequestedToCapacityRatio.

Scores use the "non-zero" cpu/memory requests (a container without a request counts 100m and
200Mi) so that many request-less pods do not all land on one node; other resources count their
real requests. A node with no allocatable of a scored resource leaves that resource out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.nodeinfo import NodeInfo, parse_allocatable
from k8py.scheduler.queue import ActionType, ClusterEvent
from k8py.scheduler.types import CPU, EPHEMERAL, MAX_NODE_SCORE, MEMORY, Code, PodInfo, Status

NAME = "NodeResourcesFit"

LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
REQUESTED_TO_CAPACITY_RATIO = "RequestedToCapacityRatio"
STRATEGIES = (LEAST_ALLOCATED, MOST_ALLOCATED, REQUESTED_TO_CAPACITY_RATIO)
MAX_UTILIZATION = 100
MAX_CUSTOM_PRIORITY_SCORE = 10
DEFAULT_RESOURCES = ({"name": CPU, "weight": 1}, {"name": MEMORY, "weight": 1})

TOO_MANY_PODS = "Too many pods"


def insufficient(resource: str) -> str:
    return f"Insufficient {resource}"


def _status(reasons: list[str], unresolvable: bool) -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE if unresolvable else Code.UNSCHEDULABLE, tuple(reasons), NAME)


def is_extended(name: str) -> bool:
    """kube's IsScalarResourceName: extended (``vendor/x``), hugepages-*, attachable-volumes-*."""
    return "/" in name or name.startswith(("hugepages-", "attachable-volumes-"))


def broken_linear(shape: list[tuple[int, int]]) -> Callable[[int], int]:
    """kube's BuildBrokenLinearFunction over (utilization, score) points, score already 0..100."""
    def f(p: int) -> int:
        for i, (u, s) in enumerate(shape):
            if p <= u:
                if i == 0:
                    return shape[0][1]
                pu, ps = shape[i - 1]
                return ps + (s - ps) * (p - pu) // (u - pu)
        return shape[-1][1]
    return f


def validate_args(args: Mapping[str, Any], path: str) -> list[str]:
    """Field errors for NodeResourcesFitArgs (kube's ValidateNodeResourcesFitArgs wording)."""
    errs: list[str] = []
    strat = args.get("scoringStrategy")
    if strat is None:
        return errs
    if not isinstance(strat, Mapping):
        return [f"{path}.scoringStrategy: Invalid value: {strat!r}: must be an object"]
    typ = strat.get("type", LEAST_ALLOCATED)
    if typ not in STRATEGIES:
        errs.append(f'{path}.scoringStrategy.type: Unsupported value: "{typ}": supported values: '
                    + ", ".join(f'"{s}"' for s in STRATEGIES))
    for i, r in enumerate(strat.get("resources") or ()):
        if not isinstance(r, Mapping) or not r.get("name"):
            errs.append(f"{path}.scoringStrategy.resources[{i}].name: Required value")
            continue
        w = r.get("weight", 1)
        if not isinstance(w, int) or isinstance(w, bool) or not 1 <= w <= 100:
            errs.append(f"{path}.scoringStrategy.resources[{i}].weight: Invalid value: {w}: "
                        f"resource weight of {r['name']} should be in the range of 1-100")
    if typ == REQUESTED_TO_CAPACITY_RATIO:
        shape = (strat.get("requestedToCapacityRatio") or {}).get("shape") or []
        if not shape:
            errs.append(f"{path}.scoringStrategy.requestedToCapacityRatio.shape: Required value: "
                        "at least one point must be specified")
        prev = -1
        for i, pt in enumerate(shape):
            u = pt.get("utilization") if isinstance(pt, Mapping) else None
            s = pt.get("score") if isinstance(pt, Mapping) else None
            if not isinstance(u, int) or not 0 <= u <= MAX_UTILIZATION:
                errs.append(f"{path}.scoringStrategy.requestedToCapacityRatio.shape[{i}].utilization: "
                            f"Invalid value: {u}: not in valid range [0, 100]")
            elif u <= prev:
                errs.append(f"{path}.scoringStrategy.requestedToCapacityRatio.shape[{i}].utilization: "
                            f"Invalid value: {u}: utilization values must be sorted in increasing order")
            else:
                prev = u
            if not isinstance(s, int) or not 0 <= s <= MAX_CUSTOM_PRIORITY_SCORE:
                errs.append(f"{path}.scoringStrategy.requestedToCapacityRatio.shape[{i}].score: "
                            f"Invalid value: {s}: not in valid range [0, 10]")
    return errs


class NodeResourcesFit:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.handle = handle
        self.ignored = frozenset(args.get("ignoredResources") or ())
        self.ignored_groups = frozenset(args.get("ignoredResourceGroups") or ())
        strat = args.get("scoringStrategy") or {}
        self.strategy = strat.get("type") or LEAST_ALLOCATED
        res: Any = strat.get("resources") or DEFAULT_RESOURCES
        self.resources: list[tuple[str, int]] = [(str(r["name"]), int(r.get("weight", 1))) for r in res]
        self.fast = [n for n, _ in self.resources] == [CPU, MEMORY]
        self.w_cpu = self.resources[0][1] if self.fast else 0
        self.w_mem = self.resources[1][1] if self.fast else 0
        if self.strategy == REQUESTED_TO_CAPACITY_RATIO:
            shape = (strat.get("requestedToCapacityRatio") or {}).get("shape") or \
                [{"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]
            raw = broken_linear([(int(p["utilization"]), int(p["score"]) * (MAX_NODE_SCORE // MAX_CUSTOM_PRIORITY_SCORE))
                                 for p in shape])
            self._rtcr: Callable[[int], int] = raw

    # -- filter --------------------------------------------------------------------------------

    def _ignored(self, name: str) -> bool:
        if name in self.ignored:
            return True
        if self.ignored_groups and "/" in name:
            return name.split("/", 1)[0] in self.ignored_groups
        return False

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        too_many = len(ni.pods) + 1 > ni.alloc_pods
        cpu = pod.req_cpu
        mem = pod.req_mem
        eph = pod.req_eph
        if not too_many and (cpu == 0 or ni.alloc_cpu - ni.req_cpu >= cpu) and \
                (mem == 0 or ni.alloc_mem - ni.req_mem >= mem) and \
                (eph == 0 or ni.alloc_eph - ni.req_eph >= eph) and not pod.req_scalars:
            return None
        return self._insufficient(pod, ni)

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                     statuses: dict[str, Status]) -> list[NodeInfo]:
        # A resource the pod does not request is not checked (even on an overcommitted node).
        never = -(1 << 62)
        cpu, mem, eph = pod.req_cpu or never, pod.req_mem or never, pod.req_eph
        if pod.req_scalars:
            out = [ni for ni in nodes if self._insufficient(pod, ni) is None]
        elif eph:
            out = [ni for ni in nodes if len(ni.pods) < ni.alloc_pods and ni.alloc_cpu - ni.req_cpu >= cpu
                   and ni.alloc_mem - ni.req_mem >= mem and ni.alloc_eph - ni.req_eph >= eph]
        else:
            out = [ni for ni in nodes if len(ni.pods) < ni.alloc_pods and ni.alloc_cpu - ni.req_cpu >= cpu
                   and ni.alloc_mem - ni.req_mem >= mem]
        if len(out) != len(nodes):
            ok = {id(ni) for ni in out}
            for ni in nodes:
                if id(ni) not in ok:
                    st = self._insufficient(pod, ni)
                    if st is not None:
                        statuses[ni.name] = st
        return out

    def _insufficient(self, pod: PodInfo, ni: NodeInfo) -> Status | None:
        """kube's fitsRequest: every shortage, and whether it is unresolvable (the request exceeds
        what the node has in total, so evicting pods cannot help)."""
        reasons: list[str] = []
        unresolvable = True
        if len(ni.pods) + 1 > ni.alloc_pods:
            reasons.append(TOO_MANY_PODS)
            unresolvable = False
        for name, want, alloc, used in ((CPU, pod.req_cpu, ni.alloc_cpu, ni.req_cpu),
                                        (MEMORY, pod.req_mem, ni.alloc_mem, ni.req_mem),
                                        (EPHEMERAL, pod.req_eph, ni.alloc_eph, ni.req_eph)):
            if want and alloc - used < want:
                reasons.append(insufficient(name))
                if want <= alloc:
                    unresolvable = False
        for name, want in pod.req_scalars.items():
            if self._ignored(name):
                continue
            alloc = ni.alloc_scalars.get(name, 0)
            if alloc - ni.req_scalars.get(name, 0) < want:
                reasons.append(insufficient(name))
                if want <= alloc:
                    unresolvable = False
        if not reasons:
            return None
        return _status(reasons, unresolvable)

    # -- score ---------------------------------------------------------------------------------

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        if self.fast and self.strategy != REQUESTED_TO_CAPACITY_RATIO:
            return self._score_cpu_mem(pod, nodes)
        return [self._score_generic(pod, ni) for ni in nodes]

    def _score_cpu_mem(self, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        pc, pm = pod.nz_cpu, pod.nz_mem
        wc, wm = self.w_cpu, self.w_mem
        wsum = wc + wm
        out: list[int] = []
        append = out.append
        if self.strategy == LEAST_ALLOCATED:
            for ni in nodes:
                ac, am = ni.alloc_cpu, ni.alloc_mem
                if ac and am:
                    rc = ni.nz_cpu + pc
                    rm = ni.nz_mem + pm
                    append(((0 if rc > ac else (ac - rc) * 100 // ac) * wc
                            + (0 if rm > am else (am - rm) * 100 // am) * wm) // wsum)
                else:
                    append(self._score_generic(pod, ni))
        else:
            for ni in nodes:
                ac, am = ni.alloc_cpu, ni.alloc_mem
                if ac and am:
                    rc = ni.nz_cpu + pc
                    rm = ni.nz_mem + pm
                    append(((100 if rc > ac else rc * 100 // ac) * wc
                            + (100 if rm > am else rm * 100 // am) * wm) // wsum)
                else:
                    append(self._score_generic(pod, ni))
        return out

    def _requested_allocatable(self, pod: PodInfo, ni: NodeInfo, name: str) -> tuple[int, int]:
        if name == CPU:
            return ni.nz_cpu + pod.nz_cpu, ni.alloc_cpu
        if name == MEMORY:
            return ni.nz_mem + pod.nz_mem, ni.alloc_mem
        if name == EPHEMERAL:
            return ni.req_eph + pod.req_eph, ni.alloc_eph
        return ni.req_scalars.get(name, 0) + pod.req_scalars.get(name, 0), ni.alloc_scalars.get(name, 0)

    def _score_generic(self, pod: PodInfo, ni: NodeInfo) -> int:
        total = 0
        wsum = 0
        strategy = self.strategy
        for name, weight in self.resources:
            req, alloc = self._requested_allocatable(pod, ni, name)
            if alloc == 0:
                continue
            if strategy == LEAST_ALLOCATED:
                s = 0 if req > alloc else (alloc - req) * MAX_NODE_SCORE // alloc
            elif strategy == MOST_ALLOCATED:
                s = MAX_NODE_SCORE if req > alloc else req * MAX_NODE_SCORE // alloc
            else:
                s = self._rtcr(MAX_UTILIZATION if req > alloc else req * MAX_UTILIZATION // alloc)
            total += s * weight
            wsum += weight
        if not wsum:
            return 0
        if strategy == REQUESTED_TO_CAPACITY_RATIO:
            return round(total / wsum)
        return total // wsum

    def score(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> int:
        return self.score_nodes(state, pod, [ni])[0]

    # -- queueing hints ------------------------------------------------------------------------

    def events_to_register(self) -> list[tuple[ClusterEvent, Any]]:
        return [
            (ClusterEvent("AssignedPod", ActionType.DELETE | ActionType.UPDATE_POD_SCALE_DOWN), self._pod_hint),
            (ClusterEvent("Node", ActionType.ADD | ActionType.UPDATE_NODE_ALLOCATABLE), self._node_hint),
        ]

    def fits_allocatable(self, pod: PodInfo, alloc: tuple[int, int, int, int, dict[str, int]]) -> bool:
        cpu, mem, eph, pods, scalars = alloc
        if pod.req_cpu > cpu or pod.req_mem > mem or pod.req_eph > eph or pods < 1:
            return False
        for k, v in pod.req_scalars.items():
            if not self._ignored(k) and scalars.get(k, 0) < v:
                return False
        return True

    def _node_hint(self, pod: PodInfo, old: Any, new: Any) -> bool:
        # A node (new, or with more allocatable) helps only if the pod fits its total capacity.
        return new is not None and self.fits_allocatable(pod, parse_allocatable(new))

    def _pod_hint(self, pod: PodInfo, old: Any, new: Any) -> bool:
        gone: PodInfo | None = old
        if gone is None:
            return True
        if not gone.has_requests and not pod.has_requests:
            return True  # the pod count freed one slot
        ni = self.handle.cache.get_node(gone.node_name)
        if ni is None or ni.node is None:
            return True
        return self.fits_allocatable(pod, (ni.alloc_cpu, ni.alloc_mem, ni.alloc_eph, ni.alloc_pods, ni.alloc_scalars))


def new(args: Mapping[str, Any], handle: Handle) -> NodeResourcesFit:
    return NodeResourcesFit(args, handle)
