"""A node for controller and e2e tests: the node agent itself (:class:`k8py.kubelet.agent.Agent`)
on the fake runtime (nothing runs), plus the few conveniences a test wants and an agent must not
have. The agent registers the Node, keeps its Lease, runs the pods bound to it to Running and
Ready, ends ``restartPolicy: Never/OnFailure`` pods by exit code (Succeeded, or Failed; OnFailure
restarts with back-off), and finishes a pod being deleted with a grace-0 delete.

The test's additions, here only:

- ``schedule=True``: a scheduler stand-in binds every unscheduled ``default-scheduler`` pod to
  this node (settable later: ``node.schedule = True`` binds those waiting);
- ``ready(pod) -> bool``: a readiness-probe stand-in; a running pod it refuses is reported with
  its containers not ready (Ready and ContainersReady False, as kubelet reports a failing probe);
- ``decide(pod) -> exit code | None``: the exit code of a Never/OnFailure pod's containers,
  asked once per pod (None: the annotation :data:`EXIT_CODE`, else they keep running);
- a running Never/OnFailure pod annotated with :data:`EXIT_CODE` later: its running containers
  exit with that code then (the fake runtime reads the annotation only when it starts them);
- ``restart_interval``: the restart back-off (fixed) instead of kubelet's 10 s doubling;
- ``renew_lease=False`` or :meth:`stop_renewing`: the node goes silent - no Lease renewals, node
  status or pod status reach the API - while its pods keep running and pods being deleted are
  still finished; ``node.renew = True`` ends the silence (what the agent would have written
  meanwhile is lost, as writes to an unreachable server are).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from k8py.api.corev1 import format_epoch
from k8py.client.api import Client
from k8py.client.errors import ApiError
from k8py.client.informer import Informer
from k8py.kubelet.agent import Agent, AgentConfig, StatusManager
from k8py.kubelet.runtime.fake import EXIT_CODE_ANNOTATION, FakeRuntime
from k8py.kubelet.runtime.types import ContainerConfig, ContainerState, SandboxConfig

log = logging.getLogger(__name__)

Obj = dict[str, Any]
POD = ("v1", "Pod")
EXIT_CODE = EXIT_CODE_ANNOTATION
_subnets = itertools.count(1)  # each node's pods get addresses of their own: 10.244.<n>.0/24


def _unready(pod: Obj, status: Obj) -> Obj:
    """``status`` with every container not ready, as kubelet reports failing readiness probes."""
    names = [s["name"] for s in status.get("containerStatuses") or ()]
    prev = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or ()}
    now = format_epoch(time.time())
    conds = []
    for c in status.get("conditions") or ():
        if c.get("type") in ("Ready", "ContainersReady"):
            p = prev.get(c["type"]) or {}
            c = {"type": c["type"], "status": "False",
                 "lastTransitionTime": p.get("lastTransitionTime") if p.get("status") == "False" else now,
                 "reason": "ContainersNotReady", "message": f"containers with unready status: [{' '.join(names)}]"}
        conds.append(c)
    return {**status, "conditions": conds,
            "containerStatuses": [{**s, "ready": False} for s in status.get("containerStatuses") or ()]}


class _Statuses(StatusManager):
    """The agent's status manager, with the test's readiness and its silent spells."""

    def __init__(self, client: Client, node: FakeNode) -> None:
        super().__init__(client)
        self.node = node

    def set_status(self, pod: Obj, status: Obj) -> None:
        self.node._exit_if_annotated(pod)
        if not self.node.renew:
            return  # the node is silent
        if status.get("phase") == "Running" and not self.node.ready(pod):
            status = _unready(pod, status)
        super().set_status(pod, status)


class FakeNode:
    def __init__(self, client: Client, name: str = "node-1", *, labels: dict[str, str] | None = None,
                 ready: Callable[[Obj], bool] | None = None, renew_lease: bool = True, schedule: bool = True,
                 capacity: dict[str, str] | None = None, lease_interval: float = 1.0,
                 decide: Callable[[Obj], int | None] | None = None,
                 restart_interval: float | None = None) -> None:
        self.client = client
        self.name = name
        self.ready = ready or (lambda pod: True)
        self.renew = renew_lease
        self._schedule = schedule
        self.decide = decide
        self._decided: dict[str, int | None] = {}  # pod uid -> decide()'s answer
        self.data_dir = tempfile.mkdtemp(prefix=f"k8py-fakenode-{name}-")
        self.runtime = FakeRuntime(f"10.244.{next(_subnets) % 256}.0/24", exit_code=self._exit_code)
        backoff = {"backoff": (restart_interval, restart_interval)} if restart_interval is not None else {}
        self.agent = Agent(client, self.runtime, AgentConfig(
            node_name=name, data_dir=self.data_dir, node_ips=("127.0.0.1",),
            labels={"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})},
            capacity=capacity or {"cpu": "8", "memory": "32Gi", "pods": "110"},
            lease_interval=lease_interval, own_loops=False, fake_volumes=True, fake_probes=True,
            **backoff))
        self.agent.statuses = _Statuses(client, self)
        self._unscheduled: Informer | None = None
        self._binds: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        a = self.agent
        await a.start()
        await a.renew_lease()
        self._tasks = [asyncio.create_task(self._every(a.config.lease_interval, a.renew_lease, silent=True)),
                       asyncio.create_task(self._every(a.config.status_update_interval, a.update_node_status,
                                                       silent=True)),
                       asyncio.create_task(self._every(a.config.relist_interval, a.relist, silent=False))]
        inf = self._unscheduled = Informer(self.client, POD, field_selector="spec.nodeName=")
        inf.add_handler(self._bind_later, lambda old, new: self._bind_later(new))
        self._tasks.append(inf.start())
        await inf.wait_for_sync()

    async def stop(self) -> None:
        if self._unscheduled is not None:
            await self._unscheduled.stop()
        tasks = [*self._tasks, *self._binds]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.agent.stop()
        await self.client.close()
        await asyncio.to_thread(shutil.rmtree, self.data_dir, True)

    def stop_renewing(self) -> None:
        self.renew = False

    async def _every(self, interval: float, step: Callable[[], Awaitable[None]], *, silent: bool) -> None:
        """The agent's loops, run here so that a silent node skips them (``silent``)."""
        while True:
            await asyncio.sleep(interval)
            if silent and not self.renew:
                continue
            try:
                await step()
            except Exception as e:  # noqa: BLE001 - keep playing the node; the next round retries
                log.debug("fakenode %s: %s: %s", self.name, getattr(step, "__name__", step), e)

    # -- exit codes ----------------------------------------------------------------------------

    def _exit_code(self, sandbox: SandboxConfig, _container: ContainerConfig) -> int | None:
        if self.decide is None:
            return None
        w = self.agent.workers.get(sandbox.uid)
        if w is None or (w.pod.get("spec") or {}).get("restartPolicy") not in ("Never", "OnFailure"):
            return None
        if sandbox.uid not in self._decided:
            self._decided[sandbox.uid] = self.decide(w.pod)
        return self._decided[sandbox.uid]

    def _exit_if_annotated(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        code = (meta.get("annotations") or {}).get(EXIT_CODE)
        if code is None or meta.get("deletionTimestamp") or \
                (pod.get("spec") or {}).get("restartPolicy") not in ("Never", "OnFailure"):
            return
        rt = self.runtime
        sandboxes = {s.id for s in rt.sandboxes.values() if s.uid == meta.get("uid")}
        running = [c.id for c in rt.containers.values()
                   if c.sandbox_id in sandboxes and c.state == ContainerState.RUNNING]
        n = int(code) if code.lstrip("-").isdigit() else 1
        for cid in running:
            rt.kill(cid, n, "Completed" if n == 0 else "Error")
        w = self.agent.workers.get(str(meta.get("uid", "")))
        if running and w is not None:
            w.poke()

    # -- the scheduler stand-in ----------------------------------------------------------------

    @property
    def schedule(self) -> bool:
        return self._schedule

    @schedule.setter
    def schedule(self, on: bool) -> None:
        self._schedule = on
        if on and self._unscheduled is not None:
            for pod in self._unscheduled.list():
                self._bind_later(pod)

    def _bind_later(self, pod: Obj) -> None:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        if not self._schedule or spec.get("nodeName") or meta.get("deletionTimestamp") or \
                spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            return
        t = asyncio.create_task(self._bind(meta.get("namespace", ""), meta["name"]))
        self._binds.add(t)
        t.add_done_callback(self._binds.discard)

    async def _bind(self, ns: str, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.name}}
        try:
            await self.client.create(POD, body, ns, subresource="binding", name=name)
        except ApiError as e:  # gone, or bound meanwhile (another node's stand-in won)
            log.debug("fakenode %s: binding %s/%s: %s", self.name, ns, name, e)
