"""Hollow nodes: many simulated nodes in one process, kubemark's way. Each node is the node
agent's real code (:class:`~k8py.kubelet.agent.Agent`: registration, pod workers, admission,
the status manager, the final delete) on its own :class:`~k8py.kubelet.runtime.fake.FakeRuntime`,
so scale tests exercise the agent itself, not a second simulator. A bound pod becomes Running
and Ready; a pod whose annotation ``k8py.io/fake-exit-code`` is set exits with that code (a
``restartPolicy: Never`` pod ends Succeeded or Failed); a pod being deleted is stopped and then
deleted for good.

Thousands of nodes stay a few tasks each (a status manager and one worker per pod): what every
node would otherwise do on its own is shared here -

- one pod watch (``spec.nodeName!=``) for all nodes, handed to each agent by node name (a dict
  lookup per event, not one handler call per node);
- one reading of the machine (the pressure conditions are the machine's, as on kubemark);
- one event sink (bounded: a full queue drops events, as client-go's broadcaster does);
- the lease, node-status and relist loops (``AgentConfig.own_loops=False``): one loop each,
  visiting every node once per interval, spread evenly with jitter, as thousands of kubelets
  started at different moments would.

``report_pods=False`` registers nodes and keeps leases only: pods bound to them stay as the
scheduler left them (scheduler_perf runs no kubelets at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from k8py.client.api import Client
from k8py.client.errors import ApiError
from k8py.client.events import EventSink
from k8py.client.informer import Handler, Informer
from k8py.kubelet import node as nodeinfo
from k8py.kubelet.agent import COMPONENT, LEASE, LEASE_NS, NODE, POD, Agent, AgentConfig, PodSource
from k8py.kubelet.runtime.fake import EXIT_CODE_ANNOTATION, FakeRuntime
from k8py.kubelet.runtime.types import Image

__all__ = ["EXIT_CODE_ANNOTATION", "HollowNodeSpec", "HollowNodes", "node_specs"]

log = logging.getLogger("k8py.hollow")

Obj = dict[str, Any]
NODE_INDEX = "hollow-node"
HOLLOW_IP = "127.0.0.1"  # every hollow node's InternalIP (and so its pods' hostIP)


@dataclass(frozen=True, slots=True)
class HollowNodeSpec:
    name: str
    capacity: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()
    images: tuple[tuple[tuple[str, ...], int], ...] = ()  # images already on the node: (names, bytes)
    pod_cidr: str = ""  # the fake runtime's pod addresses (default 10.244.0.0/24)


def node_specs(count: int, *, prefix: str = "hollow-node-", cpu: str = "32", memory: str = "256Gi",
               pods: int = 110, ephemeral_storage: str = "100Gi", extended: Mapping[str, str] | None = None,
               labels: Mapping[str, str] | None = None, zones: Sequence[str] = (),
               taints: Sequence[Mapping[str, str]] = (), start: int = 0) -> list[HollowNodeSpec]:
    """``count`` alike nodes; with ``zones`` they get ``topology.kubernetes.io/zone`` round-robin."""
    out = []
    for i in range(start, start + count):
        name = f"{prefix}{i}"
        lb = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              **(labels or {})}
        if zones:
            lb["topology.kubernetes.io/zone"] = zones[i % len(zones)]
        cap = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": ephemeral_storage,
               **(extended or {})}
        cidr = f"10.{128 + (i // 256) % 128}.{i % 256}.0/24"
        out.append(HollowNodeSpec(name, cap, lb, tuple(taints), (), cidr))
    return out


def _node_of(pod: Obj) -> list[str]:
    name = (pod.get("spec") or {}).get("nodeName")
    return [str(name)] if name else []


class _ByNode:
    """One started pod informer, handed out per node (:meth:`source`): an event is passed to the
    handler of the pod's node only."""

    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self.handlers: dict[str, Handler] = {}
        informer.add_indexer(NODE_INDEX, _node_of)
        informer.add_handler(self._added, self._updated, self._deleted)

    def source(self, node: str) -> PodSource:
        return _NodePods(self, node)

    def _handler(self, pod: Obj) -> Handler | None:
        node = (pod.get("spec") or {}).get("nodeName")
        return self.handlers.get(node) if node else None

    @staticmethod
    def _call(fn: Callable[..., Any] | None, *args: Obj) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # why: one node's handler must not stop the others' events
            log.exception("hollow nodes: a pod handler failed")

    def _added(self, pod: Obj) -> None:
        h = self._handler(pod)
        if h is not None:
            self._call(h.on_add, pod)

    def _updated(self, old: Obj, new: Obj) -> None:
        h = self._handler(new)
        if h is not None:
            self._call(h.on_update, old, new)

    def _deleted(self, pod: Obj) -> None:
        h = self._handler(pod)
        if h is not None:
            self._call(h.on_delete, pod)


class _NodePods:
    """One node's view of a :class:`_ByNode` (what :class:`Agent` needs of a shared informer)."""

    def __init__(self, parent: _ByNode, node: str) -> None:
        self.parent = parent
        self.node = node

    def add_handler(self, on_add: Callable[[Obj], Any] | None = None,
                    on_update: Callable[[Obj, Obj], Any] | None = None,
                    on_delete: Callable[[Obj], Any] | None = None) -> Handler:
        h = Handler(on_add, on_update, on_delete)
        self.parent.handlers[self.node] = h
        for pod in self.parent.informer.store.by_index(NODE_INDEX, self.node):  # as an informer: adds first
            self.parent._call(on_add, pod)
        return h

    def remove_handler(self, h: Any) -> None:
        if self.parent.handlers.get(self.node) is h:
            del self.parent.handlers[self.node]

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        return await self.parent.informer.wait_for_sync(timeout)


class _NoPods:
    """``report_pods=False``: the agents hear of no pods."""

    def add_handler(self, on_add: Any = None, on_update: Any = None, on_delete: Any = None) -> None:
        return None

    def remove_handler(self, h: Any) -> None:
        return None

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        return True


class HollowNodes:
    """Run ``specs`` as nodes until :meth:`stop` (or ``run(stop_event)``).

    ``lease_interval``: each node's Lease renewal period. ``status_interval``: how often each
    node's status is looked at (posted when it changed, and at least every 5 minutes); 0: only
    at registration. ``relist_interval``: how often each node's runtime is relisted (the fake
    runtime changes only through the agent, so this is a safety net); 0: never.
    ``concurrency``: API calls the shared loops and registration make at once. ``data_dir``:
    where each node keeps its pods' directories (default: a temporary directory, removed at
    stop).
    """

    def __init__(self, client: Client, specs: Sequence[HollowNodeSpec], *, lease_interval: float = 10.0,
                 lease_duration: int = 40, status_interval: float = 60.0, relist_interval: float = 10.0,
                 report_pods: bool = True, concurrency: int = 32, delete_on_stop: bool = False,
                 data_dir: str | None = None, backoff: tuple[float, float] | None = None) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError("hollow nodes: node names must be unique")
        if lease_interval <= 0:
            raise ValueError("hollow nodes: lease_interval must be greater than zero")
        self.client = client
        self.specs = {s.name: s for s in specs}
        self.lease_interval = lease_interval
        self.lease_duration = lease_duration
        self.status_interval = status_interval
        self.relist_interval = relist_interval
        self.report_pods = report_pods
        self.delete_on_stop = delete_on_stop
        self.backoff = backoff
        self._own_dir = data_dir is None
        self.data_dir = data_dir or ""
        self.runtimes: dict[str, FakeRuntime] = {}
        self.agents: dict[str, Agent] = {}
        self.recorder = EventSink(client, COMPONENT)
        self._sem = asyncio.Semaphore(concurrency)
        self._informer: Informer | None = None
        self._pods: _ByNode | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._inflight: set[asyncio.Task[Any]] = set()
        self._reading: nodeinfo.Readings | None = None
        self._reading_at = 0.0
        self._reading_lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self.failures = 0  # loop calls that failed (a lease not renewed, a status not posted)

    @property
    def lease_renewals(self) -> int:
        return sum(a.lease_renewals for a in self.agents.values())

    @property
    def pods_started(self) -> int:
        """Pods the nodes have run (sandboxes made), over their life."""
        return sum(rt.calls.count("run_pod_sandbox") for rt in self.runtimes.values())

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the shared pod watch, register every node and its Lease (``concurrency`` at a
        time), then start the shared loops."""
        if not self.data_dir:
            self.data_dir = await asyncio.to_thread(tempfile.mkdtemp, prefix="k8py-hollow-")
        self.recorder.start()
        if self.report_pods:
            inf = self._informer = Informer(self.client, POD, field_selector="spec.nodeName!=")
            self._pods = _ByNode(inf)
            self._tasks.append(inf.start())
            await inf.wait_for_sync()
        for s in self.specs.values():
            rt = self.runtimes[s.name] = FakeRuntime(s.pod_cidr or "10.244.0.0/24")
            for names, size in s.images:
                digest = uuid.uuid5(uuid.NAMESPACE_URL, names[0] if names else s.name).hex * 2
                img = Image(f"sha256:{digest}", [n for n in names if "@" not in n], [n for n in names if "@" in n],
                            size)
                for n in names:
                    rt.images[n] = img
            self.agents[s.name] = Agent(self.client, rt, self._config(s), recorder=self.recorder,
                                        pods=self._pods.source(s.name) if self._pods else _NoPods(),
                                        machine=self._machine)
        await asyncio.gather(*(self._start_node(a) for a in self.agents.values()))
        self._tasks.append(asyncio.create_task(self._every(self.lease_interval, Agent.renew_lease),
                                               name="hollow-leases"))
        if self.status_interval > 0:
            self._tasks.append(asyncio.create_task(self._every(self.status_interval, Agent.update_node_status),
                                                   name="hollow-node-status"))
        if self.relist_interval > 0 and self.report_pods:
            self._tasks.append(asyncio.create_task(self._every(self.relist_interval, Agent.relist),
                                                   name="hollow-relist"))
        self.ready.set()
        log.info("hollow nodes ready: %d node(s)", len(self.specs))

    def _config(self, s: HollowNodeSpec) -> AgentConfig:
        kw: dict[str, Any] = {"backoff": self.backoff} if self.backoff is not None else {}
        return AgentConfig(node_name=s.name, data_dir=os.path.join(self.data_dir, s.name), node_ips=(HOLLOW_IP,),
                           labels=dict(s.labels), taints=tuple(s.taints), capacity=dict(s.capacity),
                           lease_duration=self.lease_duration, lease_interval=self.lease_interval,
                           status_update_interval=self.status_interval or 10.0, own_loops=False, fake_volumes=True, fake_probes=True,
                           resync_interval=0.0,  # thousands of simulated pods: synced when something changes
                           **kw)

    async def _start_node(self, agent: Agent) -> None:
        async with self._sem:
            await agent.start()
            try:
                await agent.renew_lease()  # alive from the start; the lease loop takes over
            except ApiError as e:
                self.failures += 1
                log.info("hollow node %s: first lease: %s", agent.config.node_name, e)

    async def stop(self) -> None:
        for t in [*self._tasks, *self._inflight]:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._inflight, return_exceptions=True)
        self._tasks.clear()
        if self._informer is not None:
            await self._informer.stop()
        await asyncio.gather(*(a.stop() for a in self.agents.values()), return_exceptions=True)
        await self.recorder.stop()
        if self.delete_on_stop:
            async def rm(name: str) -> None:
                async with self._sem:
                    with contextlib.suppress(ApiError):
                        await self.client.delete(NODE, name)
                    with contextlib.suppress(ApiError):
                        await self.client.delete(LEASE, name, LEASE_NS)
            await asyncio.gather(*(rm(n) for n in self.specs))
        if self._own_dir and self.data_dir:
            await asyncio.to_thread(shutil.rmtree, self.data_dir, True)
            self.data_dir = ""

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # -- what the nodes share ------------------------------------------------------------------

    async def _machine(self) -> nodeinfo.Readings:
        """One reading of the machine for every node, at most every 10 s."""
        loop = asyncio.get_running_loop()
        async with self._reading_lock:
            if self._reading is None or loop.time() - self._reading_at >= 10.0:
                self._reading = await asyncio.to_thread(nodeinfo.read, self.data_dir)
                self._reading_at = loop.time()
            return self._reading

    async def _every(self, interval: float, step: Callable[[Agent], Awaitable[None]]) -> None:
        """Call ``step`` for every node once per ``interval``, spread evenly (with jitter), at
        most ``concurrency`` at once: a slow API server slows the loop instead of piling up calls."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        heap = [(now + random.uniform(0, interval), name) for name in self.agents]
        heapq.heapify(heap)
        while heap:
            due, name = heap[0]
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            heapq.heapreplace(heap, (due + interval * random.uniform(0.9, 1.1), name))
            await self._sem.acquire()
            t = asyncio.create_task(self._step(step, self.agents[name]))
            self._inflight.add(t)
            t.add_done_callback(self._inflight.discard)

    async def _step(self, step: Callable[[Agent], Awaitable[None]], agent: Agent) -> None:
        try:
            await step(agent)
        except Exception as e:  # noqa: BLE001 - keep the other nodes going; the next round retries
            self.failures += 1
            log.debug("hollow node %s: %s: %s", agent.config.node_name, getattr(step, "__name__", step), e)
        finally:
            self._sem.release()
