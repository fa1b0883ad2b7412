"""The scheduling framework: plugins at extension points, and the per-profile runner.

A plugin is a class with a ``NAME`` and any of these methods; having the method is what puts it
at that extension point (kube's interfaces, in Python's duck typing):

- ``pre_enqueue(pod) -> Status | None`` — may the pod enter the active queue at all;
- ``pre_filter(state, pod) -> set[str] | Status | None`` — per-cycle precomputation; a set of
  node names restricts the cycle to them, ``Status(SKIP)`` skips the plugin's ``filter``;
- ``filter(state, pod, node_info) -> Status | None`` — the hot path: None means the node fits;
- ``post_filter(state, pod, statuses) -> tuple[str | None, Status]`` — after no node fit
  (preemption): a nominated node name, or None;
- ``pre_score(state, pod, nodes) -> Status | None`` (``SKIP`` skips the plugin's scoring);
- ``score(state, pod, node_info) -> int`` or ``score_nodes(state, pod, nodes) -> list[int]``;
- ``normalize_score(state, pod, nodes, scores)`` — rescale the plugin's scores in place to 0..100;
- ``reserve`` / ``unreserve`` / ``permit`` (sync), ``pre_bind`` / ``bind`` / ``post_bind`` (async);
- ``events_to_register() -> list[tuple[ClusterEvent, hint | None]]`` — which cluster events may
  make a pod this plugin rejected schedulable; ``hint(pod, old, new) -> bool`` narrows it.

Plugins get a :class:`Handle` (the cache, the queue's nominator, listers, the client) from their
factory ``new(args, handle)``; the registry is a plain dict ``NAME -> factory``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from k8py.client.clock import Clock, RealClock
from k8py.scheduler.cache import Cache
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.queue import ClusterEvent, SchedulingQueue
from k8py.scheduler.types import MAX_NODE_SCORE, Code, PodInfo, Status

__all__ = [
    "CycleState",
    "Diagnosis",
    "FitError",
    "Framework",
    "Handle",
    "Listers",
    "PluginFactory",
    "PluginSpec",
    "ScheduleResult",
    "default_normalize",
    "num_feasible_nodes_to_find",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Hint = Callable[[PodInfo, Any, Any], bool]

NO_NODES = "no nodes available to schedule pods"
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5


def num_feasible_nodes_to_find(percentage: int, num_all_nodes: int) -> int:
    """kube's numFeasibleNodesToFind: all nodes in small clusters; else ``percentage`` of them
    (0 means adaptive: 50% minus 1% per 125 nodes, at least 5%), never fewer than 100."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND or percentage >= 100:
        return num_all_nodes
    if percentage <= 0:
        percentage = 50 - num_all_nodes // 125
        percentage = max(percentage, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    n = num_all_nodes * percentage // 100
    return max(n, MIN_FEASIBLE_NODES_TO_FIND)


def default_normalize(scores: list[int], reverse: bool = False) -> None:
    """kube's helper.DefaultNormalizeScore: scale so the best is 100 (``reverse``: the best is 0)."""
    if not scores:
        return
    m = max(scores)
    if m == 0:
        if reverse:
            for i in range(len(scores)):
                scores[i] = MAX_NODE_SCORE
        return
    for i, s in enumerate(scores):
        v = MAX_NODE_SCORE * s // m
        scores[i] = MAX_NODE_SCORE - v if reverse else v


class CycleState:
    """Per-cycle scratch space, one slot per plugin name (kube's CycleState)."""

    __slots__ = ("data", "skip_filter", "skip_score")

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.skip_filter: set[str] = set()
        self.skip_score: set[str] = set()

    def read(self, key: str) -> Any:
        return self.data.get(key)

    def write(self, key: str, value: Any) -> None:
        self.data[key] = value


class Listers(Protocol):
    """Read access to informer caches the plugins need (tests pass plain fakes)."""

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None: ...

    def namespaces_matching(self, selector: Any) -> frozenset[str]:
        """Names of the namespaces whose labels ``selector`` matches (namespaceSelector terms)."""
        ...

    def pdbs(self, namespace: str) -> list[Obj]: ...

    def all_pdbs(self) -> list[Obj]: ...

    def selectors_for_pod(self, pod: PodInfo) -> list[Any]:
        """Label selectors of Services, ReplicationControllers, ReplicaSets and StatefulSets that
        select the pod (PodTopologySpread's default constraints)."""
        ...


class NoListers:
    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return None

    def namespaces_matching(self, selector: Any) -> frozenset[str]:
        return frozenset()

    def pdbs(self, namespace: str) -> list[Obj]:
        return []

    def all_pdbs(self) -> list[Obj]:
        return []

    def selectors_for_pod(self, pod: PodInfo) -> list[Any]:
        return []


@dataclass
class Handle:
    """What a plugin may use. ``spawn`` runs API writes in the background (preemption)."""

    cache: Cache
    queue: SchedulingQueue
    listers: Listers = field(default_factory=NoListers)
    client: Any = None
    recorder: Any = None
    clock: Clock = field(default_factory=RealClock)
    spawn: Callable[[Coroutine[Any, Any, Any]], Any] | None = None
    framework: Framework | None = None
    rand: random.Random = field(default_factory=random.Random)
    # the scheduler's SharedInformerFactory (kube's fh.SharedInformerFactory()): plugins that need
    # more kinds than the cache holds (VolumeBinding: PVs, PVCs, StorageClasses) ask it for informers
    informers: Any = None

    def ns_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self.listers.namespace_labels(namespace)


PluginFactory = Callable[[Mapping[str, Any], Handle], Any]


@dataclass(frozen=True, slots=True)
class PluginSpec:
    name: str
    weight: int = 0


@dataclass(slots=True)
class Diagnosis:
    node_statuses: dict[str, Status] = field(default_factory=dict)
    absent_status: Status | None = None  # for nodes a PreFilter result left out
    unschedulable_plugins: set[str] = field(default_factory=set)
    pending_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""


class FitError(Exception):
    """No node fits the pod; :meth:`message` is kube's FailedScheduling wording."""

    def __init__(self, pod: PodInfo, num_all_nodes: int, diagnosis: Diagnosis) -> None:
        self.pod = pod
        self.num_all_nodes = num_all_nodes
        self.diagnosis = diagnosis
        super().__init__(self.message())

    def message(self) -> str:
        d = self.diagnosis
        if self.num_all_nodes == 0 and not d.pre_filter_msg:
            return NO_NODES
        msg = f"0/{self.num_all_nodes} nodes are available:"
        if d.pre_filter_msg:
            msg += f" {d.pre_filter_msg}."
        else:
            hist = reasons_histogram(d.node_statuses.values(), d.absent_status,
                                     self.num_all_nodes - len(d.node_statuses))
            if hist:
                msg += f" {hist}."
        if d.post_filter_msg:
            msg += f" {d.post_filter_msg}."
        return msg


def reasons_histogram(statuses: Any, absent: Status | None = None, absent_count: int = 0) -> str:
    """``"1 node(s) had untolerated taint {a: b}, 2 Insufficient cpu"``: reasons counted over
    nodes, sorted as strings (so by count first), as kube's FitError does."""
    counts: dict[str, int] = {}
    for st in statuses:
        for r in st.reasons:
            counts[r] = counts.get(r, 0) + 1
    if absent is not None and absent_count > 0:
        for r in absent.reasons:
            counts[r] = counts.get(r, 0) + absent_count
    return ", ".join(sorted(f"{n} {r}" for r, n in counts.items()))


@dataclass(slots=True)
class ScheduleResult:
    node: str
    evaluated: int
    feasible: int


class Framework:
    """One profile: its plugins per extension point, and the scheduling algorithm over them."""

    def __init__(self, scheduler_name: str, handle: Handle, plugins: Mapping[str, Any],
                 points: Mapping[str, list[PluginSpec]], *, percentage_of_nodes_to_score: int | None = None,
                 global_percentage: int = 0) -> None:
        self.scheduler_name = scheduler_name
        self.handle = handle
        self.plugins = dict(plugins)  # name -> instance
        self.points = {k: list(v) for k, v in points.items()}
        self.percentage = percentage_of_nodes_to_score if percentage_of_nodes_to_score is not None \
            else global_percentage
        self.next_start = 0
        self.waiting: dict[str, WaitingPod] = {}  # pods a Permit plugin holds back

        def bound(point: str, method: str) -> list[tuple[str, Any]]:
            out = []
            for spec in self.points.get(point, ()):
                fn = getattr(self.plugins[spec.name], method, None)
                if fn is not None:
                    out.append((spec.name, fn))
            return out

        self.pre_enqueue = bound("preEnqueue", "pre_enqueue")
        self.pre_filter = bound("preFilter", "pre_filter")
        self.filter = bound("filter", "filter")
        self.post_filter = bound("postFilter", "post_filter")
        self.pre_score = bound("preScore", "pre_score")
        self.score: list[tuple[str, Any, int]] = []
        for spec in self.points.get("score", ()):
            pl = self.plugins[spec.name]
            if hasattr(pl, "score") or hasattr(pl, "score_nodes"):
                self.score.append((spec.name, pl, spec.weight or 1))
        self.reserve = [(s.name, self.plugins[s.name]) for s in self.points.get("reserve", ())
                        if hasattr(self.plugins[s.name], "reserve")]
        self.permit = bound("permit", "permit")
        self.pre_bind = bound("preBind", "pre_bind")
        self.bind = bound("bind", "bind")
        self.post_bind = bound("postBind", "post_bind")
        # plugin -> events that may help pods it rejected
        self.events: dict[str, list[tuple[ClusterEvent, Hint | None]]] = {}
        for name, pl in self.plugins.items():
            reg = getattr(pl, "events_to_register", None)
            if reg is not None:
                self.events[name] = list(reg())

    def __repr__(self) -> str:
        return f"<Framework {self.scheduler_name} filters={[n for n, _ in self.filter]}>"

    # -- queueing ------------------------------------------------------------------------------

    def run_pre_enqueue(self, pod: PodInfo) -> str | None:
        """The name of the first PreEnqueue plugin that keeps the pod out of active, if any."""
        for name, fn in self.pre_enqueue:
            st = fn(pod)
            if st is not None and not st.success:
                return name
        return None

    def may_help(self, plugins: set[str], pod: PodInfo, event: ClusterEvent, old: Any, new: Any) -> bool:
        """Could ``event`` make a pod that ``plugins`` rejected schedulable (queueing hints)?"""
        if not plugins:
            return True
        for name in plugins:
            regs = self.events.get(name)
            if regs is None:
                return True  # a plugin that registers nothing is retried on every event
            for ev, hint in regs:
                if ev.matches(event) and (hint is None or hint(pod, old, new)):
                    return True
        return False

    # -- the scheduling algorithm --------------------------------------------------------------

    def run_pre_filter(self, state: CycleState, pod: PodInfo) -> tuple[set[str] | None, Status | None]:
        allowed: set[str] | None = None
        for name, fn in self.pre_filter:
            res = fn(state, pod)
            if res is None:
                continue
            if isinstance(res, Status):
                if res.code == Code.SKIP:
                    state.skip_filter.add(name)
                    continue
                if not res.success:
                    return None, res.with_plugin(name)
                continue
            allowed = set(res) if allowed is None else allowed & set(res)
        return allowed, None

    def run_filters(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        skip = state.skip_filter
        for name, fn in self.filter:
            if name in skip:
                continue
            st = fn(state, pod, ni)
            if st is not None and st.code != Code.SUCCESS:
                return st if st.plugin else st.with_plugin(name)
        return None

    def run_filters_with_nominated(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        """Filters, counting pods nominated to this node with at least the pod's priority as if
        they were there (so a preemptor's freed room is not taken by lower-priority pods)."""
        nominator = self.handle.queue.nominator
        if nominator:
            extra = [p for p in nominator.pods_for(ni.name) if p.key != pod.key and p.priority >= pod.priority]
            if extra:
                st = self._filter_with_added(pod, ni, extra)
                if st is not None:
                    return st
        return self.run_filters(state, pod, ni)

    def _filter_with_added(self, pod: PodInfo, ni: NodeInfo, extra: list[PodInfo]) -> Status | None:
        cache = self.handle.cache
        placed = []
        try:
            for p in extra:
                if p.key not in ni.pods:
                    cache.place(p, ni.name)
                    placed.append(p)
            # why: PreFilter state (spread counts, affinity counts) must see the added pods too;
            # recomputing it is simpler than kube's AddPod extensions and nominations are rare.
            state = CycleState()
            _, st = self.run_pre_filter(state, pod)
            if st is not None:
                return st
            return self.run_filters(state, pod, ni)
        finally:
            for p in placed:
                cache.unplace(p, ni.name)

    def find_nodes_that_fit(self, state: CycleState, pod: PodInfo,
                            diagnosis: Diagnosis) -> tuple[list[NodeInfo], int]:
        cache = self.handle.cache
        all_nodes = cache.node_list()
        allowed, st = self.run_pre_filter(state, pod)
        if st is not None:
            diagnosis.pre_filter_msg = st.message
            diagnosis.unschedulable_plugins.add(st.plugin)
            if st.code == Code.PENDING:
                diagnosis.pending_plugins.add(st.plugin)
            return [], len(all_nodes)
        if allowed is not None:
            nodes = [ni for ni in all_nodes if ni.name in allowed]
            plugins = sorted(n for n, _ in self.pre_filter if n not in state.skip_filter)
            diagnosis.absent_status = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                                             (f"node(s) didn't satisfy plugin(s) [{', '.join(plugins)}]",))
        else:
            nodes = all_nodes
        n = len(nodes)
        if n == 0:
            return [], len(all_nodes)
        # A preemptor waiting for its nominated node tries that node first.
        nom = pod.nominated_node_name
        if nom:
            ni = cache.get_node(nom)
            if ni is not None and (allowed is None or nom in allowed) and \
                    self.run_filters_with_nominated(state, pod, ni) is None:
                return [ni], 1
        to_find = num_feasible_nodes_to_find(self.percentage, n)
        statuses = diagnosis.node_statuses
        start = self.next_start % n
        order = nodes[start:] + nodes[:start] if start else nodes
        feasible, processed = self._filter_chunks(state, pod, order, to_find, statuses)
        self.next_start = (start + processed) % n
        for st in statuses.values():
            diagnosis.unschedulable_plugins.add(st.plugin)
        return feasible, len(all_nodes)

    def _filter_chunks(self, state: CycleState, pod: PodInfo, order: list[NodeInfo], to_find: int,
                       statuses: dict[str, Status]) -> tuple[list[NodeInfo], int]:
        """Run the filters over ``order`` in chunks until ``to_find`` nodes fit. Each plugin sees a
        whole chunk at once (``filter_nodes``, or its per-node ``filter`` in a loop), so the hot path
        is a few list passes per chunk instead of a call per plugin per node; a node still meets
        the plugins in order and stops at the first that rejects it, as in kube."""
        skip = state.skip_filter
        filters = [(name, getattr(self.plugins[name], "filter_nodes", None), fn)
                   for name, fn in self.filter if name not in skip]
        nominator = self.handle.queue.nominator
        nominated = set(nominator.nodes()) if nominator else None
        feasible: list[NodeInfo] = []
        n = len(order)
        pos = 0
        ratio = 1.0  # the share of nodes that fit so far: sizes the next chunk
        while pos < n and len(feasible) < to_find:
            need = to_find - len(feasible)
            chunk = order[pos:pos + max(64, int(need / ratio) + (0 if ratio >= 1.0 else 16))]
            pos += len(chunk)
            slow_ok: set[int] = set()
            cand = chunk
            if nominated:
                # Nodes with nominated pods go one by one (with those pods counted on them).
                slow = [ni for ni in chunk if ni.name in nominated]
                if slow:
                    for ni in slow:
                        st = self.run_filters_with_nominated(state, pod, ni)
                        if st is None:
                            slow_ok.add(id(ni))
                        else:
                            statuses[ni.name] = st
                    cand = [ni for ni in chunk if ni.name not in nominated]
            for name, batch, fn in filters:
                if not cand:
                    break
                if batch is not None:
                    cand = batch(state, pod, cand, statuses)
                    continue
                out = []
                for ni in cand:
                    st = fn(state, pod, ni)
                    if st is None or st.code == Code.SUCCESS:
                        out.append(ni)
                    else:
                        statuses[ni.name] = st if st.plugin else st.with_plugin(name)
                cand = out
            if slow_ok:
                ok = slow_ok | {id(ni) for ni in cand}
                cand = [ni for ni in chunk if id(ni) in ok]
            feasible.extend(cand)
            ratio = max(len(feasible) / pos, 0.02)
        if len(feasible) > to_find:
            feasible = feasible[:to_find]
            return feasible, order.index(feasible[-1]) + 1
        return feasible, pos

    def prioritize(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        for name, fn in self.pre_score:
            st = fn(state, pod, nodes)
            if st is not None:
                if st.code == Code.SKIP:
                    state.skip_score.add(name)
                elif not st.success:
                    raise SchedulingError(f"running PreScore plugin {name}: {st.message}")
        active = [(name, pl, w) for name, pl, w in self.score if name not in state.skip_score]
        if not active:
            return [1] * len(nodes)
        total: list[int] | None = None
        for _name, pl, weight in active:
            batch = getattr(pl, "score_nodes", None)
            if batch is not None:
                scores = batch(state, pod, nodes)
            else:
                fn = pl.score
                scores = [fn(state, pod, ni) for ni in nodes]
            norm = getattr(pl, "normalize_score", None)
            if norm is not None:
                norm(state, pod, nodes, scores)
            if weight != 1:
                scores = [s * weight for s in scores]
            total = scores if total is None else [a + b for a, b in zip(total, scores, strict=True)]
        assert total is not None
        return total

    def select_host(self, nodes: list[NodeInfo], scores: list[int]) -> str:
        """The best-scoring node; ties broken at random (kube's reservoir sampling)."""
        best = max(scores)
        ties = [i for i, s in enumerate(scores) if s == best]
        i = ties[0] if len(ties) == 1 else ties[self.handle.rand.randrange(len(ties))]
        return nodes[i].name

    def schedule(self, state: CycleState, pod: PodInfo) -> ScheduleResult:
        """Filter and score; raises :class:`FitError` when no node fits."""
        if self.handle.cache.node_count == 0:
            # why: no plugin rejected the pod; a name no plugin has makes every event a reason
            # to try again (a node arriving is the one that matters).
            raise FitError(pod, 0, Diagnosis(unschedulable_plugins={"NoNodes"}))
        diagnosis = Diagnosis()
        feasible, num_all = self.find_nodes_that_fit(state, pod, diagnosis)
        if not feasible:
            raise FitError(pod, num_all, diagnosis)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, 1 + len(diagnosis.node_statuses), 1)
        scores = self.prioritize(state, pod, feasible)
        return ScheduleResult(self.select_host(feasible, scores), len(feasible) + len(diagnosis.node_statuses),
                              len(feasible))

    def run_post_filter(self, state: CycleState, pod: PodInfo, statuses: dict[str, Status]
                        ) -> tuple[str | None, Status | None]:
        """PostFilter plugins in order until one succeeds or says Unresolvable."""
        last: Status | None = None
        for name, fn in self.post_filter:
            node, st = fn(state, pod, statuses)
            if st is None or st.success:
                return node, None
            last = st.with_plugin(name)
            if st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                break
        return None, last

    # -- reserve, permit, bind -----------------------------------------------------------------

    def run_reserve(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        for name, pl in self.reserve:
            st = pl.reserve(state, pod, node)
            if st is not None and not st.success:
                return st.with_plugin(name)
        return None

    def run_unreserve(self, state: CycleState, pod: PodInfo, node: str) -> None:
        for name, pl in reversed(self.reserve):
            un = getattr(pl, "unreserve", None)
            if un is not None:
                try:
                    un(state, pod, node)
                except Exception:
                    log.exception("Unreserve plugin %s failed for %s", name, pod.key)

    def run_permit(self, state: CycleState, pod: PodInfo, node: str) -> tuple[Status | None, float]:
        """(status, wait): a Wait status with the longest timeout any plugin asked for; the pod
        then waits (assumed, holding its room) until :meth:`allow` or :meth:`reject`."""
        wait = 0.0
        waiting_on: list[str] = []
        for name, fn in self.permit:
            res = fn(state, pod, node)
            st, timeout = res if isinstance(res, tuple) else (res, 0.0)
            if st is None or st.success:
                continue
            if st.code == Code.WAIT:
                wait = max(wait, timeout)
                waiting_on.append(name)
                continue
            return st.with_plugin(name), 0.0
        if waiting_on:
            self.waiting[pod.key] = WaitingPod(pod, set(waiting_on), asyncio.get_running_loop().create_future())
            return Status(Code.WAIT, (), waiting_on[0]), wait
        return None, 0.0

    def allow(self, pod_key: str, plugin: str) -> None:
        """A Permit plugin lets a waiting pod go on to binding (once every plugin it waits on has)."""
        w = self.waiting.get(pod_key)
        if w is None:
            return
        w.pending.discard(plugin)
        if not w.pending and not w.done.done():
            w.done.set_result(None)

    def reject(self, pod_key: str, plugin: str, message: str) -> None:
        w = self.waiting.get(pod_key)
        if w is not None and not w.done.done():
            w.done.set_result(Status(Code.UNSCHEDULABLE, (message,), plugin))

    async def wait_on_permit(self, pod: PodInfo, timeout: float) -> Status | None:
        w = self.waiting.get(pod.key)
        if w is None:
            return None
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(w.done)  # type: ignore[no-any-return]
        except TimeoutError:
            plugin = ", ".join(sorted(w.pending))
            return Status(Code.UNSCHEDULABLE, ((f"rejected due to timeout after waiting {timeout:g}s at plugin "
                                               f"{plugin}"),), plugin)
        finally:
            self.waiting.pop(pod.key, None)

    async def run_pre_bind(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        for name, fn in self.pre_bind:
            st = await _maybe_await(fn(state, pod, node))
            if st is not None and not st.success and st.code != Code.SKIP:
                if st.rejected:
                    return st.with_plugin(name)
                # kube's RunPreBindPlugins: an error names the plugin (FailedScheduling shows it)
                return Status(Code.ERROR, (f'running PreBind plugin "{name}": {st.message}',), name)
        return None

    async def run_bind(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        for name, fn in self.bind:
            st = await _maybe_await(fn(state, pod, node))
            if st is not None and st.code == Code.SKIP:
                continue
            return st.with_plugin(name) if st is not None and not st.success else None
        return Status.error("no bind plugin bound the pod")

    async def run_post_bind(self, state: CycleState, pod: PodInfo, node: str) -> None:
        for name, fn in self.post_bind:
            try:
                await _maybe_await(fn(state, pod, node))
            except Exception:
                log.exception("PostBind plugin %s failed for %s", name, pod.key)


@dataclass(slots=True)
class WaitingPod:
    pod: PodInfo
    pending: set[str]  # Permit plugins that have not allowed it yet
    done: asyncio.Future[Status | None]


class SchedulingError(Exception):
    """An internal error in a cycle (not "no node fits"): the pod is retried after backoff."""


async def _maybe_await(v: Any) -> Any:
    if isinstance(v, Awaitable):
        return await v
    return v


