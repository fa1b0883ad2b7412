"""A node played by the test: registers a Node, renews its Lease, binds unscheduled pods to
itself (a scheduler stand-in), and reports pods bound to it as the kubelet would, through
the real API. Until the node agent exists, controller tests use it.

- ``ready(pod) -> bool`` decides whether a running pod's containers are ready (default: all).
- A pod whose restartPolicy is Never/OnFailure ends ``Succeeded``, or ``Failed`` when its
  annotation ``fakenode.k8py.io/exit-code`` is not "0" (Jobs).
- ``decide(pod) -> exit code | None`` (optional) chooses that exit code per pod instead of the
  annotation (asked once per pod uid; None: fall back to the annotation, or keep running
  without one) -- e.g. to fail the first attempt of one index of a Job.
- ``restart_interval`` (optional, seconds): a failing OnFailure pod has its containers restarted
  in place every so often, as the kubelet does (``restartCount`` grows, ``lastState`` holds the
  exit code). Without it such a pod just stays Running with no restarts.
- A pod being deleted (deletionTimestamp) is removed with grace 0, as a kubelet finishing it.
- ``renew_lease=False`` (or :meth:`stop_renewing`) lets the node's Lease expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
from collections.abc import Callable
from typing import Any

from k8py.client.api import Client
from k8py.client.errors import ApiError, ConflictError, NotFoundError
from k8py.client.leaderelection import format_micro_time

log = logging.getLogger(__name__)

Obj = dict[str, Any]
POD = ("v1", "Pod")
NODE = ("v1", "Node")
LEASE = ("coordination.k8s.io/v1", "Lease")
EXIT_CODE = "fakenode.k8py.io/exit-code"
_ips = itertools.count(2)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeNode:
    def __init__(self, client: Client, name: str = "node-1", *, labels: dict[str, str] | None = None,
                 ready: Callable[[Obj], bool] | None = None, renew_lease: bool = True, schedule: bool = True,
                 capacity: dict[str, str] | None = None, lease_interval: float = 1.0,
                 decide: Callable[[Obj], int | None] | None = None,
                 restart_interval: float | None = None) -> None:
        self.client = client
        self.name = name
        self.labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})}
        self.ready = ready or (lambda pod: True)
        self.renew = renew_lease
        self.schedule = schedule
        self.capacity = capacity or {"cpu": "8", "memory": "32Gi", "pods": "110"}
        self.lease_interval = lease_interval
        self.decide = decide
        self.restart_interval = restart_interval
        self._decided: dict[str, str | None] = {}  # pod uid -> exit code chosen by decide()
        self._restarts: dict[str, int] = {}  # pod uid -> container restarts so far
        self._restarting: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._wake = asyncio.Event()

    async def start(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "labels": self.labels},
                "spec": {}}
        with contextlib.suppress(ApiError):
            await self.client.create(NODE, node)
        await self._node_ready()
        await self._renew_lease()
        self._tasks = [asyncio.create_task(self._lease_loop()), asyncio.create_task(self._pod_loop())]

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._restarting.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.close()

    def stop_renewing(self) -> None:
        self.renew = False

    async def _node_ready(self) -> None:
        cur = await self.client.get(NODE, self.name)
        cur["status"] = {
            "capacity": self.capacity, "allocatable": self.capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "fake node is ready", "lastHeartbeatTime": now(),
                            "lastTransitionTime": now()}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "nodeInfo": {"kubeletVersion": "v1.37.0-fake", "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "fake://0", "kernelVersion": "", "osImage": "fake",
                         "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
        }
        await self.client.update_status(NODE, cur)

    async def _renew_lease(self) -> None:
        t = format_micro_time(dt.datetime.now(dt.UTC).timestamp())
        try:
            lease = await self.client.get(LEASE, self.name, "kube-node-lease")
            lease["spec"]["renewTime"] = t
            await self.client.update(LEASE, lease, "kube-node-lease")
        except NotFoundError:
            await self.client.create(LEASE, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": t}},
                "kube-node-lease")

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_interval)
            if self.renew:
                with contextlib.suppress(ApiError):
                    await self._renew_lease()

    async def _pod_loop(self) -> None:
        while True:
            try:
                async with self.client.watch(POD, None, resource_version="0", timeout_seconds=300) as w:
                    async for ev in w:
                        if ev.type in ("ADDED", "MODIFIED"):
                            await self._handle(ev.object)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - keep playing the node
                log.debug("fakenode %s: watch error %s", self.name, e)
                await asyncio.sleep(0.2)

    async def _handle(self, pod: Obj) -> None:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        ns, name = meta.get("namespace"), meta["name"]
        node = spec.get("nodeName")
        try:
            if not node:
                if self.schedule and spec.get("schedulerName", "default-scheduler") == "default-scheduler" and \
                        not meta.get("deletionTimestamp"):
                    await self.client.create(POD, {"apiVersion": "v1", "kind": "Binding",
                                                   "metadata": {"name": name, "namespace": ns},
                                                   "target": {"apiVersion": "v1", "kind": "Node",
                                                              "name": self.name}},
                                             ns, subresource="binding", name=name)
                return
            if node != self.name:
                return
            if meta.get("deletionTimestamp"):
                await self.client.delete(POD, name, ns, grace_period_seconds=0)
                return
            status = self._status(pod)
            if status != pod.get("status"):
                pod["status"] = status
                await self.client.update_status(POD, pod, ns)
        except (NotFoundError, ConflictError):
            pass  # gone or changed meanwhile: the next event brings the new state
        except ApiError as e:
            log.debug("fakenode %s: %s/%s: %s", self.name, ns, name, e)

    def _status(self, pod: Obj) -> Obj:
        old = pod.get("status") or {}
        spec = pod.get("spec") or {}
        meta = pod["metadata"]
        started = old.get("startTime") or now()
        ip = old.get("podIP") or f"10.42.{(next(_ips) // 250) % 250}.{next(_ips) % 250 + 2}"
        restart = spec.get("restartPolicy", "Always")
        code = self._exit_code(pod) if restart in ("Never", "OnFailure") else None
        if restart in ("Never", "OnFailure") and code is not None:
            phase = "Succeeded" if code == "0" else "Failed"
            if phase == "Failed" and restart == "OnFailure":
                phase = "Running"
            terminated = phase != "Running"
            exit_code = int(code) if code.isdigit() else 1
            restarts = 0
            if not terminated and self.restart_interval is not None:
                restarts = self._restarts.get(meta.get("uid", ""), 0)
                self._schedule_restart(pod)
            cstat = [{"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
                      "restartCount": restarts, "started": False,
                      "state": {"terminated": {"exitCode": exit_code,
                                               "reason": "Completed" if code == "0" else "Error",
                                               "startedAt": started, "finishedAt": now()}}
                      if terminated else {"running": {"startedAt": started}}}
                     for c in spec.get("containers") or []]
            if restarts:
                for cs in cstat:
                    cs["lastState"] = {"terminated": {"exitCode": exit_code, "reason": "Error",
                                                      "startedAt": started, "finishedAt": now()}}
            ready = False
        else:
            phase = "Running"
            ready = bool(self.ready(pod))
            cstat = [{"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": ready,
                      "restartCount": 0, "started": True, "state": {"running": {"startedAt": started}}}
                     for c in spec.get("containers") or []]
        prev = {c.get("type"): c for c in old.get("conditions") or []}

        def cond(t: str, ok: bool) -> Obj:
            s = "True" if ok else "False"
            p = prev.get(t)
            return {"type": t, "status": s, "lastProbeTime": None,
                    "lastTransitionTime": p["lastTransitionTime"] if p and p.get("status") == s else now()}

        conds = [cond("PodReadyToStartContainers", True), cond("Initialized", True), cond("Ready", ready),
                 cond("ContainersReady", ready), cond("PodScheduled", True)]
        out = {"phase": phase, "conditions": conds, "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
               "podIP": ip, "podIPs": [{"ip": ip}], "startTime": started, "containerStatuses": cstat,
               "qosClass": old.get("qosClass", "BestEffort")}
        # unchanged apart from timestamps: report nothing new
        if old.get("phase") == phase and [c.get("ready") for c in old.get("containerStatuses") or []] == \
                [c["ready"] for c in cstat] and old.get("podIP") and \
                [c.get("restartCount", 0) for c in old.get("containerStatuses") or []] == \
                [c["restartCount"] for c in cstat]:
            return old
        return out

    def _exit_code(self, pod: Obj) -> str | None:
        """The exit code this pod's containers end with: ``decide``'s choice (once per pod), else
        the annotation; None while it should keep running."""
        meta = pod["metadata"]
        if self.decide is not None:
            uid = meta.get("uid", "")
            if uid not in self._decided:
                v = self.decide(pod)
                self._decided[uid] = None if v is None else str(v)
            if self._decided[uid] is not None:
                return self._decided[uid]
        return (meta.get("annotations") or {}).get(EXIT_CODE)  # type: ignore[no-any-return]

    def _schedule_restart(self, pod: Obj) -> None:
        uid = pod["metadata"].get("uid", "")
        if uid in self._restarting or pod["metadata"].get("deletionTimestamp"):
            return
        self._restarting[uid] = asyncio.create_task(self._restart_later(pod["metadata"]["namespace"],
                                                                        pod["metadata"]["name"], uid))

    async def _restart_later(self, ns: str, name: str, uid: str) -> None:
        assert self.restart_interval is not None
        await asyncio.sleep(self.restart_interval)
        self._restarts[uid] = self._restarts.get(uid, 0) + 1
        self._restarting.pop(uid, None)
        try:
            pod = await self.client.get(POD, name, ns)
        except ApiError:
            return
        if pod["metadata"].get("uid") == uid:
            await self._handle(pod)
