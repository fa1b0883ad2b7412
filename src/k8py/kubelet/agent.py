"""The node agent (kubelet): an API client that registers its Node, keeps its Lease renewed and
its status true, and runs the pods bound to it through a :class:`~k8py.kubelet.runtime.types.Runtime`.

Its parts, each a task:

- **node status**: the Node registered with real capacity, allocatable, addresses, system info,
  images and pressure conditions (``node.py``); posted every 10 s when something changed and at
  least every 5 minutes (kubelet's ``nodeStatusUpdateFrequency`` and ``nodeStatusReportFrequency``);
- **lease**: ``kube-node-lease/<node>`` renewed every 10 s, owned by the Node;
- **pods**: an informer on ``spec.nodeName=<node>`` feeding one :class:`PodWorker` per pod;
- **relist** (kubelet's PLEG): every second the runtime's sandboxes and containers are listed and
  a pod whose containers changed state is woken; sandboxes of pods this node no longer has are
  stopped and removed (also the start-up pass after a restart: running containers of pods that
  still exist are found again and carried on, never restarted);
- **status manager**: the newest status per pod, written only when it differs from what the API
  has, several at a time.

Simulated nodes (``k8py.kubelet.hollow``: thousands of agents on the fake runtime in one process)
share one pod watch (``pods=``), one reading of the machine (``machine=``) and, with
``AgentConfig.own_loops=False``, a few loops that call :meth:`Agent.renew_lease`,
:meth:`Agent.update_node_status` and :meth:`Agent.relist` for every node in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from k8py.api.corev1 import format_epoch, int_value, milli_value
from k8py.client.api import Client
from k8py.client.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from k8py.client.events import EventSink
from k8py.client.informer import Informer
from k8py.client.leaderelection import format_micro_time
from k8py.kubelet import eviction as evictionmod
from k8py.kubelet import node as nodeinfo
from k8py.kubelet import podcgroups
from k8py.kubelet.podstate import BACKOFF_INITIAL, BACKOFF_MAX
from k8py.kubelet.podworker import PodWorker
from k8py.kubelet.prober import HTTPProber
from k8py.kubelet.runtime.cgroups import CgroupResources
from k8py.kubelet.runtime.types import ContainerState, Runtime, RuntimeServiceError
from k8py.kubelet.spec import NodeFacts
from k8py.kubelet.volumes import VolumeManager

__all__ = ["Agent", "AgentConfig", "PodSource", "StatusManager"]

log = logging.getLogger("k8py.kubelet")
Obj = dict[str, Any]
POD = ("v1", "Pod")
NODE = ("v1", "Node")
LEASE = ("coordination.k8s.io/v1", "Lease")
LEASE_NS = "kube-node-lease"
CONTAINER_GC_PERIOD = 60.0  # kubelet's ContainerGCPeriod
COMPONENT = "kubelet"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    node_name: str
    data_dir: str  # the agent's own: <data-dir>/agent
    node_ips: tuple[str, ...] = ()
    max_pods: int = nodeinfo.DEFAULT_MAX_PODS
    system_reserved: Mapping[str, str] = field(default_factory=dict)
    kube_reserved: Mapping[str, str] = field(default_factory=dict)  # --kube-reserved, taken as --system-reserved
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()  # --register-with-taints
    kubelet_port: int = nodeinfo.KUBELET_PORT
    cluster_dns: tuple[str, ...] = ()
    log_dir: str = ""  # default: <data_dir>/logs/pods (kubelet: /var/log/pods)
    lease_duration: int = 40
    lease_interval: float = 10.0
    status_update_interval: float = 10.0
    status_report_interval: float = 300.0
    relist_interval: float = 1.0
    # a simulated node's fixed capacity (the fake runtime); None: read the machine
    capacity: Mapping[str, str] | None = None
    # False: no lease, node-status or relist loop of its own; the owner calls renew_lease(),
    # update_node_status() and relist() (simulated nodes: a few shared loops for thousands)
    own_loops: bool = True
    # container restart back-off (first delay, cap): kubelet's 10 s doubling to 5 minutes
    backoff: tuple[float, float] = (BACKOFF_INITIAL, BACKOFF_MAX)
    # every volume is an empty directory of the pod's (simulated nodes: the fake runtime mounts
    # nothing, as kubemark's fake mounter); False: kinds the node cannot mount fail the container
    fake_volumes: bool = False
    # simulated nodes: httpGet, tcpSocket and grpc probes succeed without a connection (the fake
    # runtime's pods have no network to connect to); exec probes still go to the runtime
    fake_probes: bool = False
    # kubelet's --sync-frequency: every pod is synced at least this often even when nothing
    # woke it (a status another writer changed is put right); 0: only when woken
    resync_interval: float = 60.0
    # how often dead containers and sandboxes are collected: kubelet's ContainerGCPeriod (fixed
    # there; k8py's --container-gc-period shortens it for test clusters)
    container_gc_period: float = CONTAINER_GC_PERIOD
    # the eviction manager's thresholds (kubelet's --eviction-* flags); None: no eviction manager
    # and no pressure conditions (simulated nodes, and agents in tests that bring their own)
    eviction: evictionmod.EvictionConfig | None = None
    # the eviction manager reads the pods' cgroup (kubepods) for allocatableMemory.available,
    # and the agent sets its limits and its QoS cgroups' (k8py.kubelet.podcgroups): a real
    # node's runtime puts the pods there; simulated nodes have none
    read_pods_cgroup: bool = False
    # the image store's and the writable layers' directories, whose filesystems the eviction
    # manager observes as imagefs and containerfs; empty: the data dir's
    image_dirs: tuple[str, str] | tuple[()] = ()


class PodSource(Protocol):
    """A started pod informer shared by many agents (an :class:`Informer`, or anything that
    hands each agent its own node's pods the same way)."""

    def add_handler(self, on_add: Callable[[Obj], Any] | None = None,
                    on_update: Callable[[Obj, Obj], Any] | None = None,
                    on_delete: Callable[[Obj], Any] | None = None) -> Any: ...

    def remove_handler(self, h: Any) -> None: ...

    async def wait_for_sync(self, timeout: float | None = None) -> bool: ...


def _node_of(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


def _rv(obj: Obj) -> int:
    """An object's resourceVersion as a number (k8py's stores, kine and etcd all count up), to
    tell which of two copies of a pod is newer; 0 when it is not a number."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class StatusManager:
    """kubelet's status manager: the newest status of each pod, written when it changed.

    It also answers what the pod's status is now (:meth:`latest`), which each sync builds the
    next status on, as kubelet's ``statusManager.GetPodStatus``: the informer's copy can be
    older than what this agent last wrote or means to write (a sync that waited on a mount or
    a pull started from an older copy), and a status built on it would turn ``startTime`` and
    the conditions' transition times back, and the two would overwrite each other on and on."""

    def __init__(self, client: Client, concurrency: int = 8) -> None:
        self.client = client
        self._want: dict[str, tuple[str, str, Obj]] = {}  # uid -> (namespace, name, status)
        self._sent: dict[str, Obj] = {}  # uid -> the status the API has (as far as we know)
        self._sent_rv: dict[str, int] = {}  # uid -> the resourceVersion of the copy in _sent
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._sem = asyncio.Semaphore(concurrency)
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self.writes = 0

    def set_status(self, pod: Obj, status: Obj) -> None:
        meta = pod["metadata"]
        uid = str(meta.get("uid", ""))
        have = self._sent.get(uid)
        if have is None:
            have = pod.get("status") or {}
        if have == status:
            self._want.pop(uid, None)
            self._dirty.discard(uid)
            return
        self._want[uid] = (str(meta.get("namespace")), str(meta.get("name")), status)
        self._dirty.add(uid)
        self._wake.set()

    def pending(self) -> set[str]:
        """The pods whose status is waiting to be written."""
        return set(self._dirty) | set(self._inflight)

    def seen(self, pod: Obj) -> None:
        """The API's copy of a pod (from the informer): what is sent is compared against it,
        unless this agent's own write already returned a newer one."""
        self._note_sent(str(pod["metadata"].get("uid", "")), pod)

    def _note_sent(self, uid: str, pod: Obj) -> None:
        rv = _rv(pod)
        if uid not in self._sent or rv == 0 or rv >= self._sent_rv.get(uid, 0):
            self._sent[uid] = pod.get("status") or {}
            self._sent_rv[uid] = rv

    def latest(self, pod: Obj) -> Obj:
        """The pod's status as this agent knows it now: the one waiting to be written, else the
        newest the API has, else the pod's own copy."""
        uid = str(pod["metadata"].get("uid", ""))
        want = self._want.get(uid)
        if want is not None:
            return want[2]
        sent = self._sent.get(uid)
        return sent if sent is not None and self._sent_rv.get(uid, 0) >= _rv(pod) else (pod.get("status") or {})

    def forget(self, uid: str) -> None:
        self._want.pop(uid, None)
        self._sent.pop(uid, None)
        self._sent_rv.pop(uid, None)
        self._dirty.discard(uid)

    async def flush(self, uid: str) -> None:
        """Write ``uid``'s pending status now (before the final delete)."""
        if uid in self._dirty:
            self._dirty.discard(uid)
            await self._write(uid)
        f = self._inflight.get(uid)
        if f is not None:
            await asyncio.shield(f)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch = list(self._dirty)
            self._dirty.clear()
            await asyncio.gather(*(self._write(uid) for uid in batch))

    async def _write(self, uid: str) -> None:
        want = self._want.get(uid)
        if want is None:
            return
        ns, name, status = want
        async with self._sem:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._inflight[uid] = fut
            try:
                # the API server merges the fields of status; lists the kubelet owns
                # (conditions, container statuses) are written whole
                out = await self.client.patch(POD, name, {"metadata": {"uid": uid}, "status": status}, ns,
                                              type="merge", subresource="status")
                self.writes += 1
                self._note_sent(uid, out if out.get("status") else {**out, "status": status})
                if self._want.get(uid, (None, None, None))[2] is status:
                    self._want.pop(uid, None)
            except NotFoundError:
                self.forget(uid)
            except ApiError as e:
                log.info("status of pod %s/%s: %s", ns, name, e)
                self._dirty.add(uid)  # try again on the next wake
            except Exception as e:  # noqa: BLE001 - a connection error: the next round retries
                log.info("status of pod %s/%s: %s", ns, name, e)
                self._dirty.add(uid)
            finally:
                fut.set_result(None)
                self._inflight.pop(uid, None)


class Agent:
    """One node's agent. ``run(stop)`` until ``stop`` is set; the runtime's containers keep
    running after it returns (an agent restart finds them again)."""

    def __init__(self, client: Client, runtime: Runtime, config: AgentConfig, *,
                 recorder: EventSink | None = None, pods: PodSource | None = None,
                 machine: Callable[[], Awaitable[nodeinfo.Readings]] | None = None) -> None:
        """``pods``: a started pod informer shared by many agents (simulated nodes in one
        process share one watch, filtered here by ``spec.nodeName``); None: the agent's own.
        ``machine``: how the machine is read (default: :func:`nodeinfo.read` of the data dir, in
        a thread); simulated nodes on one machine share one reading."""
        self.client = client
        self.runtime = runtime
        self.config = config
        self.recorder = recorder or EventSink(client, COMPONENT)
        self._own_recorder = recorder is None
        self.statuses = StatusManager(client)
        self.workers: dict[str, PodWorker] = {}  # pod uid -> worker
        self.node: Obj = {}
        self.readings: nodeinfo.Readings | None = None
        self.host_ips: tuple[str, ...] = ()
        log_dir = config.log_dir or os.path.join(config.data_dir, "logs", "pods")
        self.facts = NodeFacts(name=config.node_name, pods_dir=os.path.join(config.data_dir, "pods"),
                               log_dir=log_dir, cluster_dns=config.cluster_dns)
        self._informer: Informer | None = None
        self._shared = pods
        self._machine = machine
        self._handler: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._last_report = 0.0
        self._lease: Obj | None = None
        self._fingerprints: dict[str, tuple[Any, ...]] = {}
        # pod uid -> its sandboxes' ids: a worker looks at its own pod only, not at every
        # sandbox and container of the node (that grew with the square of the pods)
        self._sandbox_ids: dict[str, set[str]] = {}
        self.ready = asyncio.Event()
        self.lease_renewals = 0
        self.probe_http = HTTPProber()  # the one HTTP client of every pod's probes and hooks
        # the pods' volumes; simulated nodes mount nothing and watch no ConfigMap or Secret
        self.volumes = VolumeManager(client, self.facts.pods_dir, facts=lambda: self.facts, record=self.record,
                                     wake=self._poke_pod, evict=self._evict_pod, watch=not config.fake_volumes)
        self.reserved = nodeinfo.reservations(config.system_reserved, config.kube_reserved)
        self.pods_cgroups = podcgroups.PodsCgroups(self._node_event) if config.read_pods_cgroup else None
        self.eviction: evictionmod.EvictionManager | None = None
        if config.eviction is not None:
            self.eviction = evictionmod.EvictionManager(
                config.eviction, read=self._read, pods=self._active_pods, usage=self._pod_usage,
                evict=self._evict_for_pressure, stopped=self._eviction_done, record=self.record,
                node=self.node_object, conditions_changed=self._pressure_changed,
                reclaim_containers=self.reclaim_containers,
                reclaim_images=functools.partial(evictionmod.reclaim_images, runtime),
                filesystems=self._filesystems if config.image_dirs else None,
                pods_memory=evictionmod.PodsCgroup(int_value(self.reserved.get("memory", "0")))
                if config.read_pods_cgroup else None)

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        if self._own_recorder:
            self.recorder.start()
        await self._register()
        # kubelet's container manager limits kubepods before any pod starts; a refusal (the pods
        # use more than a lowered limit) is tried again every minute
        if self.pods_cgroups is not None and not await self.pods_cgroups.enforce(self._pods_cgroup_limits()):
            self._tasks.append(asyncio.create_task(
                self.pods_cgroups.enforce_until_done(self._pods_cgroup_limits), name="kubelet-node-allocatable"))
        for sb in await self.runtime.list_pod_sandboxes():  # what runs here already (a restart)
            self.note_sandbox(sb.uid, sb.id)
        if self._shared is not None:
            mine = self.config.node_name
            self._handler = self._shared.add_handler(lambda p: self._on_pod(p) if _node_of(p) == mine else None,
                                     lambda old, new: self._on_pod(new) if _node_of(new) == mine else None,
                                     lambda p: self._on_pod_gone(p) if _node_of(p) == mine else None)
            await self._shared.wait_for_sync()
        else:
            inf = self._informer = Informer(self.client, POD, field_selector=f"spec.nodeName={self.config.node_name}")
            inf.add_handler(self._on_pod, lambda old, new: self._on_pod(new), self._on_pod_gone)
            self._tasks.append(inf.start())
            await inf.wait_for_sync()
        await self._relist(startup=True)
        # volumes of pods deleted while the agent was down (every pod of the node has its worker now)
        await self.volumes.remove_orphans(self._has_pod)
        if self.config.own_loops:
            self._tasks += [asyncio.create_task(self._lease_loop(), name="kubelet-lease"),
                            asyncio.create_task(self._status_loop(), name="kubelet-node-status"),
                            asyncio.create_task(self._relist_loop(), name="kubelet-relist"),
                            asyncio.create_task(self._container_gc_loop(), name="kubelet-container-gc")]
        if not self.config.fake_volumes:
            self._tasks.append(asyncio.create_task(self.volumes.run(self._has_pod), name="kubelet-volumes"))
        if self.eviction is not None and self.config.own_loops:
            self._tasks.append(asyncio.create_task(self.eviction.run(), name="kubelet-eviction"))
        if self.pods_cgroups is not None:
            self.pods_cgroups.pods_changed()
            self._tasks.append(asyncio.create_task(self.pods_cgroups.run_qos(self._qos_pods), name="kubelet-qos-cgroups"))
        self._tasks.append(asyncio.create_task(self.statuses.run(), name="kubelet-pod-status"))
        self.ready.set()
        log.info("node agent for %s ready (runtime %s, %d pod(s))", self.config.node_name, self.runtime.name,
                 len(self.workers))

    async def stop(self) -> None:
        if self._informer is not None:
            await self._informer.stop()
        if self._shared is not None and self._handler is not None:
            self._shared.remove_handler(self._handler)
        workers = [w.task for w in self.workers.values() if w.task is not None]
        for t in [*self._tasks, *workers]:
            t.cancel()
        await asyncio.gather(*self._tasks, *workers, return_exceptions=True)
        self._tasks.clear()
        for w in self.workers.values():
            if w.probes is not None:
                await w.probes.stop()
        await self.probe_http.close()
        await self.volumes.stop()
        if self._own_recorder:
            await self.recorder.stop()

    def sandbox_ids(self, uid: str) -> set[str]:
        return set(self._sandbox_ids.get(uid, ()))

    def note_sandbox(self, uid: str, sandbox_id: str, present: bool = True) -> None:
        if present:
            self._sandbox_ids.setdefault(uid, set()).add(sandbox_id)
        else:
            ids = self._sandbox_ids.get(uid)
            if ids is not None:
                ids.discard(sandbox_id)
                if not ids:
                    del self._sandbox_ids[uid]

    def _has_pod(self, uid: str) -> bool:
        return uid in self.workers

    # -- the pods' cgroups (a real node) ---------------------------------------------------------

    def _node_event(self, type_: str, reason: str, message: str) -> None:
        self.record(self.node, type_, reason, message)

    def _pods_cgroup_limits(self) -> CgroupResources:
        r = self.readings
        assert r is not None  # read when the node registered
        ev = self.config.eviction
        return podcgroups.node_allocatable_resources(
            cpus=r.cpus, memory=r.memory_total, pids=podcgroups.pids_capacity(), reserved=self.reserved,
            enforce_pods=ev is not None and evictionmod.ENFORCE_PODS in ev.enforce)

    def _qos_pods(self) -> list[Obj]:
        """kubelet's active pods as its QoS cgroups count them: not finished, not refused, not
        done terminating (a pod being deleted counts until its containers stopped)."""
        return [w.pod for w in self.workers.values()
                if not w.gone and w.mem.rejected is None and not w.terminated and not w.evict_done
                and (w.pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]

    def _poke_pod(self, uid: str) -> None:
        w = self.workers.get(uid)
        if w is not None:
            w.poke()

    def _evict_pod(self, uid: str, message: str) -> None:
        w = self.workers.get(uid)
        if w is not None:
            w.evict(message)

    # -- the eviction manager's view of the pods -------------------------------------------------

    def _active_pods(self) -> list[Obj]:
        """kubelet's active pods: admitted here, not finished, not being deleted or evicted."""
        return [w.pod for w in self.workers.values()
                if w.admitted and not w.gone and w.mem.rejected is None and w.evicted is None
                and not (w.pod.get("metadata") or {}).get("deletionTimestamp")
                and (w.pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]

    async def _pod_usage(self, pod: Obj, what: frozenset[str]) -> evictionmod.PodUsage:
        uid = str(pod["metadata"].get("uid", ""))
        return await evictionmod.measure(self.runtime, self.sandbox_ids(uid), self.volumes.paths(pod), pod, what)

    def _evict_for_pressure(self, uid: str, message: str, grace: float, disruption: bool) -> bool:
        w = self.workers.get(uid)
        if w is None or w.evicted is not None:
            return False
        log.info("evicting pod %s: %s", w.key, message)
        w.evict(message, grace, disruption)
        return True

    async def reclaim_containers(self) -> int:
        """kubelet's container GC under disk pressure: the dead containers of pods deleted or
        finished, the older dead ones of the others'; then the sandboxes left empty (all of a
        finished pod's, the older ones of the others')."""
        live = {uid for uid, w in self.workers.items()
                if not w.gone and (w.pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")}
        removed = await evictionmod.reclaim_containers(self.runtime, live)
        await self._collect_sandboxes(live)
        return removed

    async def collect_containers(self) -> int:
        """kubelet's periodic container GC (its default policy): of every pod the node has,
        finished ones included, the dead containers but the newest of each name, which keeps
        the restart count, the last state and ``kubectl logs --previous``; restarts otherwise
        pile up on disk. An evicted pod's containers all go, and its sandboxes after them
        (kubelet's ``ShouldPodContentBeRemoved``; the pod stays, Failed with its statuses). What
        pods the node no longer has left is the relist's to remove."""
        have = {uid for uid, w in self.workers.items() if not w.gone}
        live = {uid for uid in have if not self.workers[uid].evict_done}
        known = {sid for uid in have for sid in self.sandbox_ids(uid)}
        containers = [c for c in await self.runtime.list_containers() if c.sandbox_id in known]
        removed = await evictionmod.reclaim_containers(self.runtime, live, containers)
        # kubelet's evictSandboxes: dead sandboxes left without containers (a pod's older ones,
        # a sandbox replaced after it died), then evictPodLogsDirectories
        await self._collect_sandboxes(live)
        await self._remove_orphan_logs()
        return removed

    async def _collect_sandboxes(self, keep_newest: set[str]) -> None:
        for sb in await evictionmod.reclaim_sandboxes(self.runtime, keep_newest):
            self.note_sandbox(sb.uid, sb.id, present=False)

    async def _remove_orphan_logs(self) -> None:
        """kubelet's ``evictPodLogsDirectories``: the log directories (``<namespace>_<name>_<uid>``)
        of pods the node no longer has (a pod deleted while the agent was down); a pod's own are
        removed with it."""
        try:
            names = await asyncio.to_thread(os.listdir, self.facts.log_dir)
        except OSError:
            return
        # why the pods are looked at after the listing: a directory listed was made by a pod
        # whose worker exists by now (a worker is made before anything of its pod)
        for name in names:
            if "_" in name and name.rsplit("_", 1)[-1] not in self.workers:
                log.info("removing the log directory %s of a pod this node no longer has", name)
                await asyncio.to_thread(shutil.rmtree, os.path.join(self.facts.log_dir, name), True)

    async def _container_gc_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.container_gc_period)
            try:
                await self.collect_containers()
            except Exception as e:  # noqa: BLE001 - a runtime hiccup: the next period tries again
                log.info("container garbage collection: %s", e)

    async def _filesystems(self) -> evictionmod.Filesystems:
        dirs = (self.config.data_dir, *(self.config.image_dirs or (self.config.data_dir,) * 2))
        return await asyncio.to_thread(lambda: evictionmod.Filesystems(*map(evictionmod.FsStats.of, dirs)))

    def _eviction_done(self, uid: str) -> bool:
        w = self.workers.get(uid)
        return w is None or w.evict_done

    def _pressure_changed(self) -> None:
        """A pressure condition came or went: post the node's status now, not in up to 10 s."""
        if self.config.own_loops:
            t = asyncio.ensure_future(self._post_status_now())
            self._tasks.append(t)
            t.add_done_callback(lambda _t: self._tasks.remove(_t) if _t in self._tasks else None)

    async def _post_status_now(self) -> None:
        try:
            await self.update_node_status()
        except Exception as e:  # noqa: BLE001 - the status loop posts it in its next round anyway
            log.info("node status: %s", e)

    def record(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.recorder.event(obj, type_, reason, message)

    def node_object(self) -> Obj:
        return self.node

    # -- one round of each loop (for owners that run the loops: ``own_loops=False``) -----------

    async def renew_lease(self) -> None:
        await self._renew()

    async def update_node_status(self) -> None:
        """Post the node's status if it changed (or the report interval passed)."""
        await self._post_status(await self._node_status())

    async def relist(self) -> None:
        await self._relist()

    # -- the node ------------------------------------------------------------------------------

    async def _read(self) -> nodeinfo.Readings:
        if self._machine is not None:
            r = await self._machine()
        else:
            r = await asyncio.to_thread(nodeinfo.read, self.config.data_dir)
        self.readings = r
        return r

    async def _node_status(self) -> Obj:
        cfg = self.config
        r = await self._read()
        if cfg.capacity is not None:
            cap = dict(cfg.capacity)
            alloc = dict(cfg.capacity)
        else:
            cap, alloc = nodeinfo.node_resources(r, max_pods=cfg.max_pods, reserved=self.reserved,
                                                 eviction=self._allocatable_thresholds(r))
        version = await self.runtime.version()
        ready = (True, "")
        try:
            images = await self.runtime.list_images()
        except RuntimeServiceError as e:
            images = []
            ready = (False, f"container runtime is down: {e}")
        now = format_epoch(time.time())
        addresses = nodeinfo.node_addresses(cfg.node_name, cfg.node_ips)
        self.host_ips = tuple(a["address"] for a in addresses if a["type"] == "InternalIP")
        self.facts = NodeFacts(
            name=cfg.node_name, host_ips=self.host_ips, memory_capacity=r.memory_total,
            cpu_allocatable_milli=milli_value(alloc.get("cpu", "0")), memory_allocatable=int_value(alloc.get("memory", "0")),
            pods_dir=self.facts.pods_dir, log_dir=self.facts.log_dir, cluster_dns=cfg.cluster_dns)
        prev = (self.node.get("status") or {}).get("conditions") or ()
        conditions = nodeinfo.node_conditions(self.eviction.conditions if self.eviction else (), ready, prev, now)
        if self.eviction is not None:
            for event in nodeinfo.pressure_events(prev, conditions):
                self.record(self.node, "Normal", event, f"Node {cfg.node_name} status is now: {event}")
        return {
            "capacity": cap, "allocatable": alloc,
            "conditions": conditions,
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.kubelet_port}},
            "nodeInfo": nodeinfo.system_info(f"{version.runtime_name}://{version.runtime_version}"),
            "images": nodeinfo.node_images(images),
        }

    def _allocatable_thresholds(self, r: nodeinfo.Readings) -> tuple[int, int] | None:
        """The hard memory.available and nodefs.available thresholds in bytes, which allocatable
        leaves free (None: kube's defaults; 0 for one the flags leave out)."""
        ev = self.config.eviction
        if ev is None:
            return None
        mem, disk = ev.hard(evictionmod.MEMORY_AVAILABLE), ev.hard(evictionmod.NODEFS_AVAILABLE)
        return (mem.amount(r.memory_total) if mem else 0, disk.amount(r.disk_total) if disk else 0)

    async def _register(self) -> None:
        cfg = self.config
        status = await self._node_status()
        labels = {**nodeinfo.node_labels(cfg.node_name), **cfg.labels}
        body: Obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": cfg.node_name, "labels": labels},
                     "spec": {"taints": [dict(t) for t in cfg.taints]} if cfg.taints else {}, "status": status}
        try:
            node = await self.client.create(NODE, body)
            log.info("registered node %s", cfg.node_name)
        except AlreadyExistsError:
            node = await self.client.get(NODE, cfg.node_name)
            # kubelet reconciles its own labels onto an existing Node
            missing = {k: v for k, v in labels.items() if (node["metadata"].get("labels") or {}).get(k) != v}
            if missing:
                node = await self.client.patch(NODE, cfg.node_name, {"metadata": {"labels": missing}})
        self.node = node
        await self._post_status(status, force=True)

    async def _post_status(self, status: Obj, force: bool = False) -> None:
        old = self.node.get("status") or {}

        def strip(s: Obj) -> Obj:
            return {**s, "conditions": [{k: v for k, v in c.items() if k != "lastHeartbeatTime"}
                                        for c in s.get("conditions") or ()]}

        due = time.monotonic() - self._last_report >= self.config.status_report_interval
        if not force and not due and strip(old) == strip({**old, **status}):
            return
        self.node = await self.client.patch(NODE, self.config.node_name, {"status": status}, subresource="status")
        self._last_report = time.monotonic()

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.status_update_interval)
            try:
                await self.update_node_status()
            except Exception as e:  # noqa: BLE001 - keep reporting; the next round retries
                log.info("node status: %s", e)

    async def _lease_loop(self) -> None:
        while True:
            try:
                await self._renew()
            except Exception as e:  # noqa: BLE001 - keep renewing
                log.info("lease renewal failed: %s", e)
            await asyncio.sleep(self.config.lease_interval)

    async def _renew(self) -> None:
        name = self.config.node_name
        t = format_micro_time(dt.datetime.now(dt.UTC).timestamp())
        for _ in range(3):
            try:
                if self._lease is None:
                    uid = self.node.get("metadata", {}).get("uid")
                    owner = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}] if uid else []
                    try:
                        self._lease = await self.client.create(LEASE, {
                            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                            "metadata": {"name": name, "namespace": LEASE_NS, "ownerReferences": owner},
                            "spec": {"holderIdentity": name, "leaseDurationSeconds": self.config.lease_duration,
                                     "renewTime": t}}, LEASE_NS)
                        self.lease_renewals += 1
                        return
                    except AlreadyExistsError:
                        self._lease = await self.client.get(LEASE, name, LEASE_NS)
                lease = self._lease
                lease["spec"]["renewTime"] = t
                lease["spec"]["holderIdentity"] = name
                lease["spec"]["leaseDurationSeconds"] = self.config.lease_duration
                self._lease = await self.client.update(LEASE, lease, LEASE_NS)
                self.lease_renewals += 1
                return
            except (ConflictError, NotFoundError):
                self._lease = None

    # -- pods ----------------------------------------------------------------------------------

    def _on_pod(self, pod: Obj) -> None:
        uid = str(pod["metadata"].get("uid", ""))
        self.statuses.seen(pod)
        w = self.workers.get(uid)
        if w is None:
            w = self.workers[uid] = PodWorker(self, pod)
            w.start()
            assert w.task is not None
            w.task.add_done_callback(functools.partial(self._worker_done, uid))
        else:
            w.update(pod)
        if self.pods_cgroups is not None:
            self.pods_cgroups.pods_changed()

    def _on_pod_gone(self, pod: Obj) -> None:
        w = self.workers.get(str(pod["metadata"].get("uid", "")))
        if w is not None:
            w.remove(pod)

    def _worker_done(self, uid: str, _task: object = None) -> None:
        w = self.workers.get(uid)
        if w is not None and w.task is not None and w.task.done():
            del self.workers[uid]
            self._fingerprints.pop(uid, None)
            if self.pods_cgroups is not None:
                self.pods_cgroups.pods_changed()

    async def _relist_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.relist_interval)
            try:
                await self._relist()
            except Exception as e:  # noqa: BLE001 - a runtime hiccup: try again next second
                log.info("relist failed: %s", e)

    async def _relist(self, startup: bool = False) -> None:
        """kubelet's PLEG: wake the worker of each pod whose containers changed; remove what
        belongs to pods this node no longer has."""
        sandboxes = await self.runtime.list_pod_sandboxes()
        containers = await self.runtime.list_containers()
        by_uid: dict[str, list[Any]] = {}
        sb_uid = {s.id: s.uid for s in sandboxes}
        for s in sandboxes:
            by_uid.setdefault(s.uid, []).append((s.id, s.state))
            self.note_sandbox(s.uid, s.id)
        for c in containers:
            uid = sb_uid.get(c.sandbox_id)
            if uid is not None:
                by_uid.setdefault(uid, []).append((c.id, c.state, c.exit_code))
        for uid, items in by_uid.items():
            fp = tuple(sorted(items, key=str))
            w = self.workers.get(uid)
            if w is None:
                # a pod this node does not have (deleted while the agent was down): clean up
                await self._remove_orphan(uid, sandboxes, containers)
                continue
            if self._fingerprints.get(uid) != fp:
                self._fingerprints[uid] = fp
                if not startup:
                    w.poke()

    async def _remove_orphan(self, uid: str, sandboxes: Sequence[Any], containers: Sequence[Any]) -> None:
        ids = {s.id for s in sandboxes if s.uid == uid}
        log.info("removing the containers of pod uid %s, which this node no longer runs", uid)
        for c in containers:
            if c.sandbox_id in ids:
                with contextlib.suppress(RuntimeServiceError):
                    if c.state == ContainerState.RUNNING:
                        await self.runtime.stop_container(c.id, 2)
                    await self.runtime.remove_container(c.id)
        for sid in ids:
            with contextlib.suppress(RuntimeServiceError):
                await self.runtime.stop_pod_sandbox(sid)
                await self.runtime.remove_pod_sandbox(sid)
            self.note_sandbox(uid, sid, present=False)

