"""DefaultPreemption (PostFilter): when no node fits a pod, find a node where evicting pods of
lower priority would make room, pick the least disruptive such node, delete the victims
gracefully and nominate the node for the pod.

For each candidate node (a sample: at least 10% of the nodes where preemption might help, and
at least 100), all lower-priority pods are taken off the node *in the cache*, the pod's filters
rerun, and then victims are "reprieved" one by one, most important first (those whose eviction
would violate a PodDisruptionBudget before the others), as long as the pod still fits. The cache
is restored before the next node: the cycle is synchronous, nothing else sees the what-if.

The chosen node has the fewest PDB violations, then the lowest highest-victim priority, the
smallest sum of victim priorities, the fewest victims, and the latest start among its most
important victims (kube's pickOneNodeForPreemption).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from k8py.api.corev1 import now_rfc3339
from k8py.api.selectors import SelectorError, from_label_selector
from k8py.client.errors import ApiError, ConflictError, NotFoundError
from k8py.scheduler.framework import CycleState, Handle, reasons_histogram
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.types import Code, PodInfo, Status

NAME = "DefaultPreemption"
POD = ("v1", "Pod")
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
MAX_INT32 = 2**31 - 1

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Candidate:
    node: str
    victims: list[PodInfo]
    pdb_violations: int


def _importance(p: PodInfo) -> tuple[int, str]:
    # kube's MoreImportantPod: higher priority first, then the one that started earlier.
    return (-p.priority, p.start_time or "~")


def validate_args(args: Mapping[str, Any], path: str) -> list[str]:
    errs = []
    pct = args.get("minCandidateNodesPercentage", 10)
    ab = args.get("minCandidateNodesAbsolute", 100)
    if not isinstance(pct, int) or not 0 <= pct <= 100:
        errs.append(f"{path}.minCandidateNodesPercentage: Invalid value: {pct}: not in valid range [0, 100]")
    if not isinstance(ab, int) or ab < 0:
        errs.append(f"{path}.minCandidateNodesAbsolute: Invalid value: {ab}: not in valid range [0, inf)")
    if pct == 0 and ab == 0:
        errs.append(f"{path}.minCandidateNodesPercentage: Invalid value: 0: cannot be zero at the same time "
                    "as minCandidateNodesAbsolute")
    return errs


def _pdb_allowed(pdb: Mapping[str, Any], pods: list[PodInfo]) -> int:
    """``status.disruptionsAllowed`` when a disruption controller has computed it
    (``observedGeneration`` set); otherwise estimated here from the pods the cache knows."""
    st = pdb.get("status") or {}
    if st.get("observedGeneration") is not None:
        return int(st.get("disruptionsAllowed") or 0)
    spec = pdb.get("spec") or {}
    expected = len(pods)
    healthy = sum(1 for p in pods if not p.terminating and _ready(p))

    def amount(v: Any) -> int:
        if isinstance(v, str) and v.endswith("%"):
            try:
                return -(-expected * int(v[:-1]) // 100)  # rounded up, as kube
            except ValueError:
                return 0
        try:
            return int(v)
        except (TypeError, ValueError):
            return 0

    if spec.get("minAvailable") is not None:
        desired = amount(spec["minAvailable"])
    elif spec.get("maxUnavailable") is not None:
        desired = expected - amount(spec["maxUnavailable"])
    else:
        desired = expected
    return max(0, healthy - desired)


def _ready(p: PodInfo) -> bool:
    for c in (p.obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


class DefaultPreemption:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.handle = handle
        self.min_pct = int(args.get("minCandidateNodesPercentage", 10))
        self.min_abs = int(args.get("minCandidateNodesAbsolute", 100))

    # -- PostFilter ----------------------------------------------------------------------------

    def post_filter(self, state: CycleState, pod: PodInfo, statuses: Mapping[str, Status]
                    ) -> tuple[str | None, Status]:
        ok, why = self.eligible(pod, statuses)
        if not ok:
            return None, Status(Code.UNSCHEDULABLE, (f"preemption: {why}",))
        cache = self.handle.cache
        nodes = cache.node_list()
        potential = []
        not_helpful = 0
        for ni in nodes:
            st = statuses.get(ni.name)
            if st is not None and st.code == Code.UNSCHEDULABLE:
                potential.append(ni)
            else:
                not_helpful += 1
        failed: dict[str, Status] = {}
        candidates = self.dry_run(pod, potential, failed) if potential else []
        if not candidates:
            hist = reasons_histogram(
                [*failed.values(), *([Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (NOT_HELPFUL,))] * not_helpful)])
            msg = f"preemption: 0/{len(nodes)} nodes are available: {hist}."
            return None, Status(Code.UNSCHEDULABLE, (msg,))
        best = self.pick(candidates)
        self.prepare(pod, best)
        return best.node, Status(Code.SUCCESS)

    def eligible(self, pod: PodInfo, statuses: Mapping[str, Status]) -> tuple[bool, str]:
        """kube's PodEligibleToPreemptOthers."""
        if pod.preempt_never:
            return False, "not eligible due to preemptionPolicy=Never."
        nom = pod.nominated_node_name
        if nom:
            st = statuses.get(nom)
            if st is not None and st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return True, ""
            ni = self.handle.cache.get_node(nom)
            if ni is not None:
                for p in ni.pods.values():
                    if p.terminating and p.priority < pod.priority:
                        # why: victims of an earlier preemption are still leaving; evicting more
                        # now would be evicting twice for one pod.
                        return False, "not eligible due to a terminating pod on the nominated node."
        return True, ""

    def dry_run(self, pod: PodInfo, potential: list[NodeInfo], failed: dict[str, Status]) -> list[Candidate]:
        n = len(potential)
        want = max(n * self.min_pct // 100, self.min_abs)
        want = min(want, n)
        offset = self.handle.rand.randrange(n) if n > 1 else 0
        pdbs = self._pdbs()
        out: list[Candidate] = []
        for i in range(n):
            ni = potential[(offset + i) % n]
            victims, violations, st = self.select_victims(pod, ni, pdbs)
            if st is None and victims:
                out.append(Candidate(ni.name, victims, violations))
                if len(out) >= want:
                    break
            else:
                failed[ni.name] = st or Status(Code.ERROR, (f'expected at least one victim pod on node "{ni.name}"',))
        return out

    def _pdbs(self) -> list[tuple[Mapping[str, Any], Any, list[PodInfo]]]:
        """(pdb, selector, pods it covers) for every PDB the listers know."""
        lister = getattr(self.handle.listers, "all_pdbs", None)
        raw = lister() if lister is not None else []
        if not raw:
            return []
        cache = self.handle.cache
        out = []
        for pdb in raw:
            try:
                sel = from_label_selector((pdb.get("spec") or {}).get("selector"))
            except SelectorError:
                continue
            if sel.empty or sel.matches_nothing:
                continue  # kube: a PDB with a nil or empty selector matches nothing
            ns = (pdb.get("metadata") or {}).get("namespace", "")
            counter = cache.counter(frozenset((ns,)), sel, True)
            pods = [p for name in counter.per_node for p in cache.nodes[name].pods.values()
                    if p.namespace == ns and sel.matches(p.labels)]
            out.append((pdb, sel, pods))
        return out

    def _split_by_pdb(self, pods: list[PodInfo], pdbs: list[tuple[Mapping[str, Any], Any, list[PodInfo]]]
                      ) -> tuple[list[PodInfo], list[PodInfo]]:
        """kube's filterPodsWithPDBViolation: which victims would push a PDB below its budget."""
        allowed = [_pdb_allowed(pdb, covered) for pdb, _, covered in pdbs]
        violating: list[PodInfo] = []
        fine: list[PodInfo] = []
        for p in pods:
            violated = False
            if p.labels:
                for i, (pdb, sel, _) in enumerate(pdbs):
                    if (pdb.get("metadata") or {}).get("namespace") != p.namespace or not sel.matches(p.labels):
                        continue
                    if p.name in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                        continue  # already being disrupted: counted by the PDB
                    allowed[i] -= 1
                    if allowed[i] < 0:
                        violated = True
            (violating if violated else fine).append(p)
        return violating, fine

    def _fits(self, pod: PodInfo, ni: NodeInfo) -> Status | None:
        fw = self.handle.framework
        assert fw is not None
        state = CycleState()
        _, st = fw.run_pre_filter(state, pod)
        if st is not None:
            return st
        return fw.run_filters_with_nominated(state, pod, ni)

    def select_victims(self, pod: PodInfo, ni: NodeInfo,
                       pdbs: list[tuple[Mapping[str, Any], Any, list[PodInfo]]]
                       ) -> tuple[list[PodInfo], int, Status | None]:
        cache = self.handle.cache
        lower = [p for p in ni.pods.values() if p.priority < pod.priority]
        if not lower:
            return [], 0, Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (NO_VICTIMS,))
        removed = []
        try:
            for p in lower:
                cache.unplace(p, ni.name)
                removed.append(p)
            st = self._fits(pod, ni)
            if st is not None:
                return [], 0, st
            lower.sort(key=_importance)
            violating, fine = self._split_by_pdb(lower, pdbs)
            victims: list[PodInfo] = []
            violations = 0

            def reprieve(p: PodInfo) -> bool:
                cache.place(p, ni.name)
                removed.remove(p)
                if self._fits(pod, ni) is None:
                    return True
                cache.unplace(p, ni.name)
                removed.append(p)
                victims.append(p)
                return False

            for p in violating:
                if not reprieve(p):
                    violations += 1
            for p in fine:
                reprieve(p)
            victims.sort(key=_importance)
            return victims, violations, None
        finally:
            for p in removed:
                cache.place(p, ni.name)

    @staticmethod
    def pick(candidates: list[Candidate]) -> Candidate:
        if len(candidates) == 1:
            return candidates[0]

        def earliest_top_start(c: Candidate) -> str:
            top = c.victims[0].priority
            return min(v.start_time or "" for v in c.victims if v.priority == top)

        def key(c: Candidate) -> tuple[int, int, int, int]:
            return (c.pdb_violations, c.victims[0].priority,
                    sum(v.priority + MAX_INT32 + 1 for v in c.victims), len(c.victims))

        best = min(key(c) for c in candidates)
        ties = [c for c in candidates if key(c) == best]
        # Last criterion: the node whose most important victims started latest (least work lost).
        return max(ties, key=earliest_top_start) if len(ties) > 1 else ties[0]

    # -- acting --------------------------------------------------------------------------------

    def prepare(self, pod: PodInfo, c: Candidate) -> None:
        """Evict the victims (graceful DELETE: there is no eviction subresource yet) and take back
        nominations of lower-priority pods on the node, in the background."""
        h = self.handle
        for v in c.victims:
            if h.recorder is not None:
                h.recorder.event(v.obj, "Normal", "Preempted", f"Preempted by pod {pod.uid} on node {c.node}")
            if h.spawn is not None and h.client is not None:
                h.spawn(self._evict(v, pod))
        for other in h.queue.nominator.pods_for(c.node):
            if other.priority < pod.priority and other.key != pod.key:
                h.queue.nominator.delete(other.key)
                if h.spawn is not None and h.client is not None:
                    h.spawn(self._clear_nomination(other))
        log.info("preempting %d pod(s) on %s for %s: %s", len(c.victims), c.node, pod.key,
                 ", ".join(v.key for v in c.victims))

    async def _evict(self, victim: PodInfo, pod: PodInfo) -> None:
        client = self.handle.client
        now = now_rfc3339()
        try:
            await client.patch(POD, victim.name, {"status": {"conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                "message": f"{self.handle.framework.scheduler_name if self.handle.framework else 'default-scheduler'}"
                           ": preempting to accommodate a higher priority pod",
                "lastTransitionTime": now}]}}, victim.namespace, type="strategic", subresource="status")
        except NotFoundError:
            return
        except ApiError as e:
            log.debug("could not mark %s as a disruption target: %s", victim.key, e)
        try:
            await client.delete(POD, victim.name, victim.namespace, uid=victim.uid or None)
        except NotFoundError:
            pass
        except ConflictError as e:  # the victim was replaced (uid precondition): not ours to delete
            log.debug("preemption of %s for %s: %s", victim.key, pod.key, e)
        except ApiError as e:
            log.warning("preemption of %s for %s failed: %s", victim.key, pod.key, e)

    async def _clear_nomination(self, other: PodInfo) -> None:
        try:
            await self.handle.client.patch(POD, other.name, {"status": {"nominatedNodeName": None}},
                                           other.namespace, type="merge", subresource="status")
        except ApiError as e:
            log.debug("could not clear the nomination of %s: %s", other.key, e)


def new(args: Mapping[str, Any], handle: Handle) -> DefaultPreemption:
    return DefaultPreemption(args, handle)
