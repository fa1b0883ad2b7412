"""The scheduler: informers feed the cache and the queue; one loop pops a pod, runs a synchronous
scheduling cycle that ends with the pod *assumed* on a node in the cache, and starts its binding
as a background task so the next cycle does not wait for the API server.

    sched = Scheduler(client, load_config("sched.yaml"))   # or Scheduler(client): the defaults
    await sched.run(stop_event)                             # until stop_event is set

With ``leaderElection.leaderElect`` (the default) only the holder of the
``kube-system/kube-scheduler`` Lease schedules; the others wait to take over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from k8py.api.corev1 import now_rfc3339
from k8py.api.selectors import LabelSelector, SelectorError, from_label_selector, selector_from_set
from k8py.client.api import Client, object_key
from k8py.client.clock import Clock, RealClock
from k8py.client.errors import ApiError, NotFoundError
from k8py.client.events import EventSink
from k8py.client.informer import Informer, SharedInformerFactory
from k8py.client.leaderelection import LeaderElectionConfig, LeaderElector
from k8py.scheduler.cache import Cache
from k8py.scheduler.config import SchedulerConfiguration, build_framework, default_config
from k8py.scheduler.framework import CycleState, FitError, Framework, Handle, PluginFactory, SchedulingError
from k8py.scheduler.queue import (
    ASSIGNED_POD_ADD,
    ASSIGNED_POD_DELETE,
    NODE_ADD,
    ActionType,
    ClusterEvent,
    QueuedPodInfo,
    SchedulingQueue,
    ShutDown,
)
from k8py.scheduler.types import Code, PodInfo, Status, _copy, parse_pod

__all__ = ["SCHEDULER_COMPONENT", "Scheduler", "SchedulerMetrics"]

log = logging.getLogger("k8py.scheduler")

Obj = dict[str, Any]
POD = ("v1", "Pod")
NODE = ("v1", "Node")
NAMESPACE = ("v1", "Namespace")
PDB = ("policy/v1", "PodDisruptionBudget")
SERVICE = ("v1", "Service")
RC = ("v1", "ReplicationController")
RS = ("apps/v1", "ReplicaSet")
STS = ("apps/v1", "StatefulSet")
PVC = ("v1", "PersistentVolumeClaim")
PV = ("v1", "PersistentVolume")
STORAGE_CLASS = ("storage.k8s.io/v1", "StorageClass")
SCHEDULER_COMPONENT = "default-scheduler"
# Pods that finished hold no resources: kube's scheduler does not watch them at all.
ACTIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"


@dataclass
class SchedulerMetrics:
    """Counters and timings; ``cycle_seconds`` are the synchronous cycles (filter+score+assume),
    ``attempt_seconds`` from pop to bound (kube's scheduling_attempt_duration for successes)."""

    attempts: int = 0
    scheduled: int = 0
    unschedulable: int = 0
    errors: int = 0
    bind_failures: int = 0
    preemptions: int = 0
    cycle_seconds: list[float] = field(default_factory=list)
    attempt_seconds: list[float] = field(default_factory=list)
    keep: int = 200_000  # timings kept (the newest)

    def record_cycle(self, s: float) -> None:
        self.cycle_seconds.append(s)
        if len(self.cycle_seconds) > self.keep:
            del self.cycle_seconds[: self.keep // 2]

    def record_attempt(self, s: float) -> None:
        self.attempt_seconds.append(s)
        if len(self.attempt_seconds) > self.keep:
            del self.attempt_seconds[: self.keep // 2]


class InformerListers:
    """The plugins' view of namespaces, PDBs and the workloads that select pods."""

    def __init__(self, namespaces: Informer, pdbs: Informer, services: Informer, rcs: Informer,
                 rss: Informer, stss: Informer) -> None:
        self._ns = namespaces
        self._pdb = pdbs
        self._svc = services
        self._rc = rcs
        self._rs = rss
        self._sts = stss
        self._sel_cache: dict[tuple[str, str], LabelSelector | None] = {}

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        ns = self._ns.get(namespace)
        return (ns.get("metadata") or {}).get("labels") or {} if ns is not None else None

    def namespaces_matching(self, selector: LabelSelector) -> frozenset[str]:
        return frozenset(str(n["metadata"]["name"]) for n in self._ns.list()
                         if selector.matches((n.get("metadata") or {}).get("labels") or {}))

    def pdbs(self, namespace: str) -> list[Obj]:
        return self._pdb.list(namespace)

    def all_pdbs(self) -> list[Obj]:
        return self._pdb.list()

    def _selector(self, obj: Obj, map_form: bool) -> LabelSelector | None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("uid") or object_key(obj)), str(meta.get("resourceVersion") or ""))
        if key in self._sel_cache:
            return self._sel_cache[key]
        raw = (obj.get("spec") or {}).get("selector")
        sel: LabelSelector | None
        if map_form:
            sel = selector_from_set(raw) if raw else None
        else:
            try:
                sel = from_label_selector(raw) if raw else None
            except SelectorError:
                sel = None
        if len(self._sel_cache) > 10_000:
            self._sel_cache.clear()
        self._sel_cache[key] = sel
        return sel

    def selectors_for_pod(self, pod: PodInfo) -> list[LabelSelector]:
        """kube's DefaultSelector sources: Services, RCs, ReplicaSets, StatefulSets selecting the pod."""
        out: list[LabelSelector] = []
        labels = pod.labels
        if not labels:
            return out
        for inf, map_form in ((self._svc, True), (self._rc, True), (self._rs, False), (self._sts, False)):
            for obj in inf.list(pod.namespace):
                sel = self._selector(obj, map_form)
                if sel is not None and not sel.empty and sel.matches(labels):
                    out.append(sel)
        return out


_now = now_rfc3339


def node_update_action(old: Obj, new: Obj) -> ActionType:
    """Which kinds of change a Node update carries (kube's nodeSchedulingPropertiesChange);
    heartbeats alone carry none."""
    a = ActionType(0)
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    os_, ns_ = old.get("spec") or {}, new.get("spec") or {}
    ost, nst = old.get("status") or {}, new.get("status") or {}
    if ost.get("allocatable") != nst.get("allocatable"):
        a |= ActionType.UPDATE_NODE_ALLOCATABLE
    if om.get("labels") != nm.get("labels"):
        a |= ActionType.UPDATE_NODE_LABEL
    if os_.get("taints") != ns_.get("taints") or bool(os_.get("unschedulable")) != bool(ns_.get("unschedulable")):
        a |= ActionType.UPDATE_NODE_TAINT
    if om.get("annotations") != nm.get("annotations"):
        a |= ActionType.UPDATE_NODE_ANNOTATION

    def conds(st: Obj) -> list[tuple[Any, Any]]:
        return [(c.get("type"), c.get("status")) for c in st.get("conditions") or ()]

    if conds(ost) != conds(nst):
        a |= ActionType.UPDATE_NODE_CONDITION
    if ost.get("images") != nst.get("images"):
        a |= ActionType.UPDATE_OTHER
    return a


class Scheduler:
    """kube-scheduler for k8py; see the module docstring.

    ``client`` talks to the API server (the scheduler uses nothing else); ``config`` defaults
    to one ``default-scheduler`` profile with the default plugins. ``leader_elect`` overrides
    the configuration's ``leaderElection.leaderElect``.
    """

    def __init__(self, client: Client, config: SchedulerConfiguration | None = None, *,
                 clock: Clock | None = None, identity: str | None = None, leader_elect: bool | None = None,
                 registry: Mapping[str, PluginFactory] | None = None, unknown_scheduler_delay: float = 10.0,
                 validate_cache: bool = False, seed: int | None = None, max_concurrent_binds: int = 64) -> None:
        self.client = client
        self.config = config or default_config()
        self.clock: Clock = clock or RealClock()
        self.identity = identity
        self.leader_elect = self.config.leader_election.leader_elect if leader_elect is None else leader_elect
        self.registry = registry
        self.unknown_scheduler_delay = unknown_scheduler_delay
        self.validate_cache = validate_cache
        self.seed = seed
        self.metrics = SchedulerMetrics()
        # why: bindings run in the background; a slow API server must not collect thousands of
        # them in flight (kube bounds this with its client's QPS).
        self._bind_slots = asyncio.Semaphore(max_concurrent_binds)
        self.ready = asyncio.Event()
        self.frameworks: dict[str, Framework] = {}
        self.cache: Cache | None = None
        self.queue: SchedulingQueue | None = None
        self._pods: Informer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._binding: set[str] = set()  # pods whose binding task runs
        self._unknown: dict[str, float] = {}  # pod key -> first seen (pods for no profile of ours)
        self._reported_unknown: set[str] = set()
        self.recorder: EventSink | None = None
        # Fail at construction, not at first leadership: an invalid profile is a startup error.
        probe = Handle(Cache(), SchedulingQueue(clock=self.clock))
        for i, p in enumerate(self.config.profiles):
            build_framework(p, Handle(probe.cache, probe.queue), registry=registry, path=f"profiles[{i}]")

    # -- running -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Schedule until ``stop`` is set (as leader only, when leader election is on)."""
        if not self.leader_elect:
            await self._run(stop)
            return
        le = self.config.leader_election
        cfg = LeaderElectionConfig(name=le.resource_name, namespace=le.resource_namespace,
                                   lease_duration=le.lease_duration, renew_deadline=le.renew_deadline,
                                   retry_period=le.retry_period)
        if self.identity:
            cfg = dataclasses.replace(cfg, identity=self.identity)
        while not stop.is_set():
            elector = LeaderElector(self.client, cfg, clock=self.clock, on_started_leading=lambda: self._run(stop))
            await elector.run(stop)
            if not stop.is_set():
                log.warning("scheduler lost its lease; campaigning again")

    async def _run(self, stop: asyncio.Event) -> None:
        client = self.client
        factory = SharedInformerFactory(client, clock=self.clock)
        pods = factory.informer(POD, field_selector=ACTIVE_PODS)
        nodes = factory.informer(NODE)
        listers = InformerListers(factory.informer(NAMESPACE), factory.informer(PDB), factory.informer(SERVICE),
                                  factory.informer(RC), factory.informer(RS), factory.informer(STS))
        cache = Cache(validate=self.validate_cache)
        queue = SchedulingQueue(clock=self.clock, initial_backoff=self.config.pod_initial_backoff_seconds,
                                max_backoff=self.config.pod_max_backoff_seconds, should_move=self._should_move)
        self.recorder = EventSink(client, SCHEDULER_COMPONENT, clock=self.clock)
        self.recorder.start()
        rand = random.Random(self.seed)
        frameworks = {}
        for i, p in enumerate(self.config.profiles):
            h = Handle(cache, queue, listers, client, self.recorder, self.clock, self._spawn, rand=rand,
                       informers=factory)
            frameworks[p.scheduler_name] = build_framework(
                p, h, registry=self.registry, global_percentage=self.config.percentage_of_nodes_to_score,
                path=f"profiles[{i}]")
        self.cache, self.queue, self.frameworks, self._pods = cache, queue, frameworks, pods
        queue.pre_enqueue = self._pre_enqueue
        nodes.add_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        for inf, resource in ((listers._pdb, "PodDisruptionBudget"), (listers._svc, "Service"),
                              (factory.informer(PVC), "PersistentVolumeClaim"), (factory.informer(PV), "PersistentVolume"),
                              (factory.informer(STORAGE_CLASS), "StorageClass")):
            self._forward_events(inf, resource)
        factory.start()
        loop_task: asyncio.Task[None] | None = None
        try:
            if not await factory.wait_for_cache_sync(120):
                log.error("scheduler: informer caches did not sync in 120s")
            log.info("scheduler ready: %d node(s), %d pending pod(s), profiles: %s", cache.node_count, len(queue),
                     ", ".join(frameworks))
            self.ready.set()
            loop_task = asyncio.create_task(self._loop(), name="scheduler-loop")
            housekeeping = asyncio.create_task(self._housekeeping(stop), name="scheduler-housekeeping")
            self._tasks.add(housekeeping)
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({loop_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if loop_task.done() and not loop_task.cancelled() and loop_task.exception() is not None:
                raise loop_task.exception()  # type: ignore[misc]
        finally:
            self.ready.clear()
            queue.close()
            if loop_task is not None:
                loop_task.cancel()
                await asyncio.gather(loop_task, return_exceptions=True)
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.clear()
            await factory.shutdown()
            await self.recorder.stop()

    def _forward_events(self, inf: Informer, resource: str) -> None:
        """Changes to ``resource`` objects are cluster events that may help parked pods."""
        def add(o: Obj) -> None:
            self._move(ClusterEvent(resource, ActionType.ADD), None, o)

        def update(o: Obj, n: Obj) -> None:
            self._move(ClusterEvent(resource, ActionType.UPDATE_OTHER), o, n)

        def delete(o: Obj) -> None:
            self._move(ClusterEvent(resource, ActionType.DELETE), o, None)

        inf.add_handler(add, update, delete)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._task_done)
        return t

    def _task_done(self, t: asyncio.Task[Any]) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("scheduler task failed", exc_info=t.exception())

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        """Retry long-parked pods (kube: every 30s, after 5 minutes) and report pods for unknown
        schedulers."""
        tick = max(0.05, min(1.0, self.unknown_scheduler_delay / 2))
        last_flush = self.clock.now()
        while not stop.is_set():
            await self.clock.sleep(tick)
            now = self.clock.now()
            if now - last_flush >= 30.0 and self.queue is not None:
                last_flush = now
                self.queue.flush_unschedulable_leftover()
            self._report_unknown(now)

    def _report_unknown(self, now: float) -> None:
        if not self._unknown or self._pods is None or self.recorder is None:
            return
        names = ", ".join(self.frameworks)
        for key, since in list(self._unknown.items()):
            if now - since < self.unknown_scheduler_delay or key in self._reported_unknown:
                continue
            obj = self._pods.store.get(key)
            if obj is None or (obj.get("spec") or {}).get("nodeName"):
                self._unknown.pop(key, None)
                continue
            self._reported_unknown.add(key)
            want = (obj.get("spec") or {}).get("schedulerName")
            self.recorder.event(obj, "Warning", "FailedScheduling",
                                f'no scheduler serves schedulerName "{want}": this scheduler has the profiles '
                                f'[{names}]; the pod stays Pending until a scheduler named "{want}" binds it')

    # -- the loop ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        queue = self.queue
        assert queue is not None
        while True:
            try:
                qpi = await queue.pop()
            except ShutDown:
                return
            try:
                self.schedule_one(qpi)
            except Exception as e:  # never lose the loop to one pod
                log.exception("scheduling %s failed", qpi.key)
                self.metrics.errors += 1
                if self.cache is not None and self.cache.is_assumed(qpi.key) and qpi.key not in self._binding:
                    self.cache.forget(qpi.key)  # assumed, but its binding never started
                queue.add_backoff(qpi)
                self._report_failure(qpi.pod, "SchedulerError", f"scheduler error: {e}", None)
            # why: each cycle is synchronous; yield so informer events and bindings progress
            # between cycles instead of waiting for the queue to drain.
            await asyncio.sleep(0)

    def schedule_one(self, qpi: QueuedPodInfo) -> None:
        """One synchronous scheduling cycle for ``qpi`` (kube's scheduleOne, up to binding)."""
        queue, cache = self.queue, self.cache
        assert queue is not None and cache is not None
        pod = qpi.pod
        fw = self.frameworks.get(pod.scheduler_name)
        if fw is None or pod.terminating or cache.pod_state(pod.key) is not None:
            queue.done(pod.key)  # not ours, being deleted, or already placed
            return
        self.metrics.attempts += 1
        t0 = time.perf_counter()
        state = CycleState()
        try:
            result = fw.schedule(state, pod)
        except FitError as fe:
            nominated = None
            if fw.post_filter:
                nominated, st = fw.run_post_filter(state, pod, fe.diagnosis.node_statuses)
                if st is not None and st.message:
                    fe.diagnosis.post_filter_msg = st.message
                if nominated:
                    self.metrics.preemptions += 1
                    queue.nominator.add(pod, nominated)
            self.metrics.unschedulable += 1
            self.metrics.record_cycle(time.perf_counter() - t0)
            queue.add_unschedulable(qpi, fe.diagnosis.unschedulable_plugins, fe.diagnosis.pending_plugins)
            self._report_failure(pod, "Unschedulable", fe.message(), nominated)
            return
        except SchedulingError as e:
            self.metrics.errors += 1
            queue.add_backoff(qpi)
            self._report_failure(pod, "SchedulerError", str(e), None)
            return
        node = result.node
        assumed = _copy(pod)
        assumed.node_name = node
        cache.assume(assumed, node)
        queue.nominator.delete(pod.key)
        st = fw.run_reserve(state, assumed, node)
        if st is None:
            st, wait = fw.run_permit(state, assumed, node)
        else:
            wait = 0.0
        if st is not None and st.code != Code.WAIT:
            fw.run_unreserve(state, assumed, node)
            cache.forget(pod.key)
            self.metrics.unschedulable += 1
            self.metrics.record_cycle(time.perf_counter() - t0)
            queue.add_unschedulable(qpi, {st.plugin} if st.rejected else set())
            self._report_failure(pod, "Unschedulable" if st.rejected else "SchedulerError", st.message, None)
            return
        queue.done(pod.key)
        self.metrics.record_cycle(time.perf_counter() - t0)
        self._binding.add(pod.key)
        self._spawn(self._bind(fw, state, qpi, assumed, node, wait))

    async def _bind(self, fw: Framework, state: CycleState, qpi: QueuedPodInfo, pod: PodInfo, node: str,
                    wait: float) -> None:
        cache, queue = self.cache, self.queue
        assert cache is not None and queue is not None
        try:
            st = await self._bind_steps(fw, state, pod, node, wait)
        finally:
            self._binding.discard(pod.key)
        if st is None:
            cache.finish_binding(pod.key)
            self.metrics.scheduled += 1
            if qpi.initial_attempt is not None:
                self.metrics.record_attempt(self.clock.now() - qpi.initial_attempt)
            if self.recorder is not None:
                self.recorder.event(pod.obj, "Normal", "Scheduled",
                                    f"Successfully assigned {pod.namespace}/{pod.name} to {node}")
            await fw.run_post_bind(state, pod, node)
            return
        self.metrics.bind_failures += 1
        fw.run_unreserve(state, pod, node)
        cache.forget(pod.key)
        # The room it held is free again: pods waiting for room may fit now.
        queue.move_all(ASSIGNED_POD_DELETE, pod, None)
        cur = self._pods.store.get(pod.key) if self._pods is not None else None
        if cur is None or (cur.get("spec") or {}).get("nodeName") or \
                (cur.get("metadata") or {}).get("uid") != pod.uid:
            return  # deleted, replaced, or bound by someone else: nothing to retry
        log.info("binding %s to %s failed: %s", pod.key, node, st.message)
        queue.add_backoff(qpi)
        self._report_failure(qpi.pod, "Unschedulable" if st.rejected else "SchedulerError", st.message, None)

    async def _bind_steps(self, fw: Framework, state: CycleState, pod: PodInfo, node: str,
                          wait: float) -> Status | None:
        """Permit's wait, PreBind and Bind; the first failure as a Status."""
        assert self.cache is not None
        try:
            st = await fw.wait_on_permit(pod, wait) if wait > 0 else None
            if st is None:
                # why: PreBind may wait long (VolumeBinding waits up to bindTimeoutSeconds for a
                # provisioner); holding a bind slot meanwhile would stall every other pod's binding
                st = await fw.run_pre_bind(state, pod, node)
            if st is None:
                async with self._bind_slots:
                    st = await fw.run_bind(state, pod, node)
        except asyncio.CancelledError:
            self.cache.forget(pod.key)
            raise
        except Exception as e:  # noqa: BLE001 -- any failure un-assumes the pod
            st = Status.error(f"binding failed: {type(e).__name__}: {e}")
        return st

    # -- reporting -----------------------------------------------------------------------------

    def _report_failure(self, pod: PodInfo, reason: str, message: str, nominated: str | None) -> None:
        if self.recorder is not None:
            self.recorder.event(pod.obj, "Warning", "FailedScheduling", message)
        cond: Obj = {"type": "PodScheduled", "status": "False", "reason": reason, "message": message}
        cur = next((c for c in (pod.obj.get("status") or {}).get("conditions") or ()
                    if c.get("type") == "PodScheduled"), None)
        same = cur is not None and all(cur.get(k) == v for k, v in cond.items())
        nom_change = nominated is not None and nominated != pod.nominated_node_name
        if same and not nom_change:
            return  # kube skips the write when nothing changed
        status: Obj = {}
        if not same:
            cond["lastTransitionTime"] = (cur or {}).get("lastTransitionTime") \
                if cur is not None and cur.get("status") == "False" else _now()
            cond["lastProbeTime"] = None
            status["conditions"] = [cond]
        if nom_change:
            status["nominatedNodeName"] = nominated
        self._spawn(self._patch_status(pod, status))

    async def _patch_status(self, pod: PodInfo, status: Obj) -> None:
        try:
            await self.client.patch(POD, pod.name, {"status": status}, pod.namespace, type="strategic",
                                    subresource="status")
        except NotFoundError:
            pass
        except ApiError as e:
            log.debug("could not update the status of %s: %s", pod.key, e)

    # -- informer handlers ---------------------------------------------------------------------

    def _pre_enqueue(self, pod: PodInfo) -> str | None:
        fw = self.frameworks.get(pod.scheduler_name)
        return fw.run_pre_enqueue(pod) if fw is not None else None

    def _should_move(self, qpi: QueuedPodInfo, event: ClusterEvent, old: Any, new: Any) -> bool:
        fw = self.frameworks.get(qpi.pod.scheduler_name)
        if fw is None:
            return True
        return fw.may_help(qpi.unschedulable_plugins | qpi.pending_plugins, qpi.pod, event, old, new)

    def _move(self, event: ClusterEvent, old: Any, new: Any) -> None:
        if self.queue is not None:
            self.queue.move_all(event, old, new)

    def _on_node_add(self, obj: Obj) -> None:
        assert self.cache is not None and self.queue is not None
        self.cache.add_node(obj)
        self.queue.move_all(NODE_ADD, None, obj)

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        assert self.cache is not None and self.queue is not None
        if old is new or (old.get("metadata") or {}).get("resourceVersion") == \
                (new.get("metadata") or {}).get("resourceVersion"):
            return
        self.cache.update_node(new)
        action = node_update_action(old, new)
        if action:
            self.queue.move_all(ClusterEvent("Node", action, "NodeUpdate"), old, new)

    def _on_node_delete(self, obj: Obj) -> None:
        assert self.cache is not None and self.queue is not None
        self.cache.remove_node(str(obj["metadata"]["name"]))
        self.queue.move_all(ClusterEvent("Node", ActionType.DELETE, "NodeDelete"), obj, None)

    def _on_pod_add(self, obj: Obj) -> None:
        cache, queue = self.cache, self.queue
        assert cache is not None and queue is not None
        p = parse_pod(obj)
        if p.node_name:
            queue.delete(p.key)
            cache.add_pod(p)
            queue.move_all(ASSIGNED_POD_ADD, None, p)
            return
        if p.scheduler_name in self.frameworks:
            if not p.terminating:
                queue.add(p)
        else:
            self._unknown.setdefault(p.key, self.clock.now())

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        cache, queue = self.cache, self.queue
        assert cache is not None and queue is not None
        if (old.get("metadata") or {}).get("resourceVersion") == (new.get("metadata") or {}).get("resourceVersion"):
            return
        key = object_key(new)
        st = cache.pod_state(key)
        node = (new.get("spec") or {}).get("nodeName")
        if node:
            prev = st.info if st is not None else None
            p = prev.refresh(new) if prev is not None and prev.uid == (new.get("metadata") or {}).get("uid") \
                else parse_pod(new)
            if st is None:
                queue.delete(key)
                self._unknown.pop(key, None)
                cache.add_pod(p)
                queue.move_all(ASSIGNED_POD_ADD, None, p)
                return
            cache.update_pod(p)
            if prev is not None and not st.assumed:
                action = ActionType(0)
                if prev.labels != p.labels:
                    action |= ActionType.UPDATE_POD_LABEL
                if (p.req_cpu, p.req_mem, p.req_eph) < (prev.req_cpu, prev.req_mem, prev.req_eph) or \
                        (p.terminating and not prev.terminating):
                    action |= ActionType.UPDATE_POD_SCALE_DOWN
                if action:
                    queue.move_all(ClusterEvent("AssignedPod", action, "AssignedPodUpdate"), prev, p)
            return
        if st is not None and st.assumed:
            return  # our binding is in flight; the bound version will follow
        sched = (new.get("spec") or {}).get("schedulerName") or "default-scheduler"
        if sched not in self.frameworks:
            return
        q = queue.get(key)
        p = q.pod.refresh(new) if q is not None and q.pod.uid == (new.get("metadata") or {}).get("uid") \
            else parse_pod(new)
        if p.terminating:
            queue.delete(key)
            return
        queue.update(p)

    def _on_pod_delete(self, obj: Obj) -> None:
        cache, queue = self.cache, self.queue
        assert cache is not None and queue is not None
        key = object_key(obj)
        self._unknown.pop(key, None)
        self._reported_unknown.discard(key)
        queue.delete(key)
        gone = cache.remove_pod(key)
        if gone is not None:
            queue.move_all(ASSIGNED_POD_DELETE, gone, None)
