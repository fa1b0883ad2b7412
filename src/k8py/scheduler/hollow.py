"""Hollow nodes: many simulated nodes in one process, through the real API (kubemark's idea).

Each hollow node registers a Node with the capacity asked for, keeps its Lease in
``kube-node-lease`` renewed, and runs the pods bound to it on a :class:`FakeRuntime`: a
CRI-shaped runtime that runs nothing (sandboxes and containers are records), so a bound pod
becomes Running and Ready, a pod being deleted is finished with a grace-0 delete, and a pod
with ``restartPolicy: Never/OnFailure`` and the annotation ``hollow.k8py.io/exit-code`` ends
Succeeded or Failed.

:class:`FakeRuntime` is the node agent's ``fake`` runtime: it has the CRI's verbs (sandbox,
container, image, exec) and keeps state a pod worker can query, and nothing here depends on the
scheduler. :class:`HollowNodes` shares one pod watch and one lease loop across all its nodes,
so thousands of nodes cost a few tasks, not thousands.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import itertools
import logging
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from k8py.api.corev1 import now_rfc3339
from k8py.client.api import Client, object_key
from k8py.client.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from k8py.client.informer import Informer
from k8py.client.leaderelection import format_micro_time

__all__ = [
    "EXIT_CODE_ANNOTATION",
    "ContainerRecord",
    "FakeRuntime",
    "HollowNodeSpec",
    "HollowNodes",
    "SandboxRecord",
    "node_specs",
]

log = logging.getLogger("k8py.hollow")

Obj = dict[str, Any]
POD = ("v1", "Pod")
NODE = ("v1", "Node")
LEASE = ("coordination.k8s.io/v1", "Lease")
LEASE_NS = "kube-node-lease"
EXIT_CODE_ANNOTATION = "hollow.k8py.io/exit-code"
KUBELET_VERSION = "v1.37.0-hollow"


_now = now_rfc3339


# --------------------------------------------------------------------------- the fake runtime


@dataclass(slots=True)
class SandboxRecord:
    id: str
    name: str
    namespace: str
    uid: str
    ip: str
    state: str = "SANDBOX_READY"  # or SANDBOX_NOTREADY
    created_at: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ContainerRecord:
    id: str
    sandbox_id: str
    name: str
    image: str
    state: str = "CONTAINER_CREATED"  # CONTAINER_RUNNING, CONTAINER_EXITED
    exit_code: int = 0
    reason: str = ""
    started_at: str = ""
    finished_at: str = ""
    restart_count: int = 0
    exit_on_start: int | None = None  # exits with this code as soon as it starts


class FakeRuntime:
    """A container runtime that runs nothing, with the CRI's shape (RuntimeService +
    ImageService). Every call is async, like a real runtime's, and answers at once."""

    name = "fake"
    version_string = "fake://0.1.0"

    def __init__(self, pod_cidr: str = "10.244.0.0/24") -> None:
        base, _, _ = pod_cidr.partition("/")
        self._prefix = base.rsplit(".", 1)[0]
        self._ips = itertools.cycle(range(2, 255))
        self.sandboxes: dict[str, SandboxRecord] = {}
        self.containers: dict[str, ContainerRecord] = {}
        self.images: dict[str, int] = {}  # image ref -> size in bytes

    # -- runtime service -----------------------------------------------------------------------

    async def version(self) -> Obj:
        return {"runtimeName": self.name, "runtimeVersion": "0.1.0", "runtimeApiVersion": "v1"}

    async def run_pod_sandbox(self, name: str, namespace: str, uid: str, labels: Mapping[str, str] | None = None
                              ) -> str:
        for sb in self.sandboxes.values():
            if sb.uid == uid and sb.state == "SANDBOX_READY":
                return sb.id
        sid = uuid.uuid4().hex
        self.sandboxes[sid] = SandboxRecord(sid, name, namespace, uid, f"{self._prefix}.{next(self._ips)}",
                                            created_at=asyncio.get_running_loop().time(), labels=dict(labels or {}))
        return sid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        sb = self.sandboxes.get(sandbox_id)
        if sb is None:
            return
        for c in self.containers.values():
            if c.sandbox_id == sandbox_id and c.state == "CONTAINER_RUNNING":
                await self.stop_container(c.id, 0)
        sb.state = "SANDBOX_NOTREADY"

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        for cid in [c.id for c in self.containers.values() if c.sandbox_id == sandbox_id]:
            self.containers.pop(cid, None)
        self.sandboxes.pop(sandbox_id, None)

    async def pod_sandbox_status(self, sandbox_id: str) -> SandboxRecord | None:
        return self.sandboxes.get(sandbox_id)

    async def list_pod_sandboxes(self) -> list[SandboxRecord]:
        return list(self.sandboxes.values())

    async def create_container(self, sandbox_id: str, name: str, image: str, *,
                               exit_on_start: int | None = None) -> str:
        if sandbox_id not in self.sandboxes:
            raise KeyError(f"sandbox {sandbox_id} not found")
        if image and image not in self.images:
            await self.pull_image(image)
        cid = uuid.uuid4().hex
        self.containers[cid] = ContainerRecord(cid, sandbox_id, name, image, exit_on_start=exit_on_start)
        return cid

    async def start_container(self, container_id: str) -> None:
        c = self.containers[container_id]
        c.started_at = _now()
        if c.exit_on_start is not None:
            c.state = "CONTAINER_EXITED"
            c.exit_code = c.exit_on_start
            c.reason = "Completed" if c.exit_code == 0 else "Error"
            c.finished_at = _now()
        else:
            c.state = "CONTAINER_RUNNING"

    async def stop_container(self, container_id: str, timeout: float = 0) -> None:
        c = self.containers.get(container_id)
        if c is not None and c.state != "CONTAINER_EXITED":
            c.state = "CONTAINER_EXITED"
            c.exit_code = 137 if timeout == 0 else 0
            c.reason = "Killed" if timeout == 0 else "Completed"
            c.finished_at = _now()

    async def remove_container(self, container_id: str) -> None:
        self.containers.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerRecord | None:
        return self.containers.get(container_id)

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerRecord]:
        return [c for c in self.containers.values() if sandbox_id is None or c.sandbox_id == sandbox_id]

    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float = 0) -> tuple[bytes, bytes, int]:
        """Nothing runs, so every command "succeeds" with no output (probes pass)."""
        if container_id not in self.containers:
            return b"", b"container not found", 1
        return b"", b"", 0

    async def container_logs(self, container_id: str) -> bytes:
        """What the container wrote: nothing ran, so a line saying so."""
        c = self.containers.get(container_id)
        if c is None:
            raise KeyError(f"container {container_id} not found")
        return f"{c.started_at} fake runtime: {c.name} ({c.image}) runs nothing\n".encode()

    # -- image service -------------------------------------------------------------------------

    async def pull_image(self, ref: str) -> str:
        self.images.setdefault(ref, 0)
        return ref

    async def image_status(self, ref: str) -> Obj | None:
        if ref not in self.images:
            return None
        return {"id": ref, "repoTags": [ref], "size": self.images[ref]}

    async def list_images(self) -> list[Obj]:
        return [{"id": r, "repoTags": [r], "size": s} for r, s in self.images.items()]

    async def remove_image(self, ref: str) -> None:
        self.images.pop(ref, None)


# --------------------------------------------------------------------------- hollow nodes


@dataclass(frozen=True, slots=True)
class HollowNodeSpec:
    name: str
    capacity: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()
    images: tuple[tuple[tuple[str, ...], int], ...] = ()  # (names, size in bytes)
    pod_cidr: str = ""


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


@dataclass(slots=True)
class _PodRun:
    uid: str
    sandbox: str
    containers: dict[str, str]  # name -> container id
    reported: str = ""  # the phase/readiness last written


class HollowNodes:
    """Run ``specs`` as nodes until :meth:`stop`. ``report_pods=False`` registers nodes and
    leases only (pods stay as the scheduler left them, like scheduler_perf's bare nodes)."""

    def __init__(self, client: Client, specs: Sequence[HollowNodeSpec], *, lease_interval: float = 10.0,
                 lease_duration: int = 40, status_interval: float = 300.0, report_pods: bool = True,
                 concurrency: int = 32, delete_on_stop: bool = False) -> None:
        self.client = client
        self.specs = {s.name: s for s in specs}
        self.lease_interval = lease_interval
        self.lease_duration = lease_duration
        self.status_interval = status_interval
        self.report_pods = report_pods
        self.delete_on_stop = delete_on_stop
        self.runtimes: dict[str, FakeRuntime] = {s.name: FakeRuntime(s.pod_cidr or "10.244.0.0/24") for s in specs}
        self._sem = asyncio.Semaphore(concurrency)
        self._leases: dict[str, Obj] = {}
        self._node_uids: dict[str, str] = {}
        self._runs: dict[str, _PodRun] = {}  # pod key -> what runs for it
        self._pending: dict[str, Obj] = {}  # pod key -> newest object awaiting handling
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._informer: Informer | None = None
        self.ready = asyncio.Event()
        self.pods_started = 0
        self.lease_renewals = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Register every node and lease (in parallel), then start the loops."""
        await asyncio.gather(*(self._register(s) for s in self.specs.values()))
        self._tasks.append(asyncio.create_task(self._lease_loop(), name="hollow-leases"))
        if self.status_interval > 0:
            self._tasks.append(asyncio.create_task(self._status_loop(), name="hollow-status"))
        if self.report_pods:
            inf = self._informer = Informer(self.client, POD, field_selector="spec.nodeName!=")
            inf.add_handler(self._on_pod, lambda old, new: self._on_pod(new), self._on_pod_gone)
            self._tasks.append(inf.start())
            self._tasks.append(asyncio.create_task(self._pod_worker(), name="hollow-pods"))
            await inf.wait_for_sync()
        self.ready.set()
        log.info("hollow nodes ready: %d node(s)", len(self.specs))

    async def stop(self) -> None:
        if self._informer is not None:
            await self._informer.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.delete_on_stop:
            async def rm(name: str) -> None:
                async with self._sem:
                    with contextlib.suppress(ApiError):
                        await self.client.delete(NODE, name)
                    with contextlib.suppress(ApiError):
                        await self.client.delete(LEASE, name, LEASE_NS)
            await asyncio.gather(*(rm(n) for n in self.specs))

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # -- nodes and leases ----------------------------------------------------------------------

    def _node(self, s: HollowNodeSpec) -> Obj:
        now = _now()
        status = {
            "capacity": dict(s.capacity), "allocatable": dict(s.capacity),
            "conditions": [
                {"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": m,
                 "lastHeartbeatTime": now, "lastTransitionTime": now}
                for t, r, m in (("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory available"),
                                ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
                                ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"))
            ] + [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                  "message": "kubelet is posting ready status (hollow)", "lastHeartbeatTime": now,
                  "lastTransitionTime": now}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": s.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": FakeRuntime.version_string,
                         "kernelVersion": "", "osImage": "hollow", "machineID": "", "systemUUID": "", "bootID": ""},
        }
        if s.images:
            status["images"] = [{"names": list(names), "sizeBytes": size} for names, size in s.images]
        spec: Obj = {}
        if s.taints:
            spec["taints"] = [dict(t) for t in s.taints]
        if s.pod_cidr:
            spec["podCIDR"] = s.pod_cidr
            spec["podCIDRs"] = [s.pod_cidr]
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": s.name, "labels": dict(s.labels)},
                "spec": spec, "status": status}

    async def _register(self, s: HollowNodeSpec) -> None:
        async with self._sem:
            node = self._node(s)
            try:
                created = await self.client.create(NODE, node)
                if not (created.get("status") or {}).get("allocatable"):
                    created["status"] = node["status"]
                    await self.client.update_status(NODE, created)
            except AlreadyExistsError:
                created = await self.client.get(NODE, s.name)
                created["status"] = node["status"]
                await self.client.update_status(NODE, created)
            self._node_uids[s.name] = str(created["metadata"].get("uid") or "")
            await self._renew(s.name)

    async def _renew(self, name: str) -> None:
        t = format_micro_time(dt.datetime.now(dt.UTC).timestamp())
        lease = self._leases.get(name)
        for _ in range(3):
            try:
                if lease is None:
                    uid = self._node_uids.get(name)
                    # As the kubelet: the Node owns its Lease, so deleting the node removes it.
                    owner = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}] if uid else []
                    try:
                        self._leases[name] = await self.client.create(LEASE, {
                            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                            "metadata": {"name": name, "namespace": LEASE_NS, "ownerReferences": owner},
                            "spec": {"holderIdentity": name, "leaseDurationSeconds": self.lease_duration,
                                     "renewTime": t}}, LEASE_NS)
                        self.lease_renewals += 1
                        return
                    except AlreadyExistsError:
                        lease = await self.client.get(LEASE, name, LEASE_NS)
                lease["spec"]["renewTime"] = t
                lease["spec"]["leaseDurationSeconds"] = self.lease_duration
                self._leases[name] = await self.client.update(LEASE, lease, LEASE_NS)
                self.lease_renewals += 1
                return
            except (ConflictError, AlreadyExistsError):
                lease = None  # someone else wrote it: read again
        log.debug("hollow node %s: could not renew its lease", name)

    async def _lease_loop(self) -> None:
        # One loop for every node; renewals spread evenly over the interval (with jitter), as
        # thousands of kubelets started at different moments would.
        now = asyncio.get_running_loop().time()
        heap = [(now + random.uniform(0, self.lease_interval), n) for n in self.specs]
        heapq.heapify(heap)
        while heap:
            due, name = heap[0]
            delay = due - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
            heapq.heappop(heap)
            heapq.heappush(heap, (due + self.lease_interval * random.uniform(0.9, 1.1), name))
            asyncio.ensure_future(self._renew_guarded(name))

    async def _renew_guarded(self, name: str) -> None:
        async with self._sem:
            try:
                await self._renew(name)
            except Exception as e:  # noqa: BLE001 -- keep renewing the others
                log.debug("hollow node %s: lease renewal failed: %s", name, e)

    async def _status_loop(self) -> None:
        """Post each node's Ready heartbeat every ``status_interval`` (kubelet: 5 minutes when
        nothing changed; leases carry liveness in between)."""
        while True:
            await asyncio.sleep(self.status_interval)
            for name in list(self.specs):
                async with self._sem:
                    now = _now()
                    patch = {"status": {"conditions": [{"type": "Ready", "status": "True",
                                                        "reason": "KubeletReady", "lastHeartbeatTime": now}]}}
                    with contextlib.suppress(ApiError):
                        await self.client.patch(NODE, name, patch, type="strategic", subresource="status")

    # -- pods ----------------------------------------------------------------------------------

    def _on_pod(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName") in self.specs:
            self._pending[object_key(pod)] = pod
            self._wake.set()

    def _on_pod_gone(self, pod: Obj) -> None:
        key = object_key(pod)
        self._pending.pop(key, None)
        run = self._runs.pop(key, None)
        node = (pod.get("spec") or {}).get("nodeName")
        if run is not None and node in self.runtimes:
            asyncio.ensure_future(self.runtimes[node].remove_pod_sandbox(run.sandbox))

    async def _pod_worker(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = list(self._pending.items())
                self._pending.clear()
                await asyncio.gather(*(self._handle(k, p) for k, p in batch))

    async def _handle(self, key: str, pod: Obj) -> None:
        async with self._sem:
            try:
                await self._sync(key, pod)
            except (NotFoundError, ConflictError):
                pass  # gone or changed: the next event carries the newer state
            except Exception as e:  # noqa: BLE001 -- one pod must not stop the node
                log.debug("hollow: %s: %s", key, e)

    async def _sync(self, key: str, pod: Obj) -> None:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        node = spec["nodeName"]
        rt = self.runtimes[node]
        run = self._runs.get(key)
        if run is not None and run.uid != meta.get("uid"):
            # the same name, a new pod: the old one's sandbox goes
            await rt.remove_pod_sandbox(run.sandbox)
            del self._runs[key]
            run = None
        if meta.get("deletionTimestamp"):
            if run is not None:
                await rt.stop_pod_sandbox(run.sandbox)
            # the kubelet's last word on a pod: delete it for good, for this very pod (uid)
            with contextlib.suppress(NotFoundError):
                await self.client.delete(POD, meta["name"], meta.get("namespace"), grace_period_seconds=0,
                                         uid=meta.get("uid"))
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        if run is None:
            code = (meta.get("annotations") or {}).get(EXIT_CODE_ANNOTATION)
            restart = spec.get("restartPolicy", "Always")
            exit_code = None
            if code is not None and restart in ("Never", "OnFailure"):
                exit_code = int(code) if code.lstrip("-").isdigit() else 1
                if exit_code != 0 and restart == "OnFailure":
                    exit_code = None  # restarted forever: it just keeps running here
            sid = await rt.run_pod_sandbox(meta["name"], meta.get("namespace", ""), meta.get("uid", ""),
                                           meta.get("labels"))
            cids = {}
            for c in spec.get("containers") or ():
                cid = await rt.create_container(sid, c["name"], c.get("image", ""), exit_on_start=exit_code)
                await rt.start_container(cid)
                cids[c["name"]] = cid
            run = self._runs[key] = _PodRun(meta.get("uid", ""), sid, cids)
            self.pods_started += 1
        status = await self._status(pod, run, rt)
        want = status["phase"] + ("/ready" if any(c["type"] == "Ready" and c["status"] == "True"
                                                  for c in status["conditions"]) else "")
        old = pod.get("status") or {}
        have = str(old.get("phase")) + ("/ready" if any(c.get("type") == "Ready" and c.get("status") == "True"
                                                        for c in old.get("conditions") or ()) else "")
        if want == have and old.get("podIP"):
            run.reported = want
            return
        new = dict(pod)
        new["status"] = status
        await self.client.update_status(POD, new, meta.get("namespace"))
        run.reported = want

    async def _status(self, pod: Obj, run: _PodRun, rt: FakeRuntime) -> Obj:
        old = pod.get("status") or {}
        spec = pod.get("spec") or {}
        sb = await rt.pod_sandbox_status(run.sandbox)
        ip = sb.ip if sb is not None else ""
        cstat = []
        exited = []
        for c in spec.get("containers") or ():
            rec = await rt.container_status(run.containers.get(c["name"], ""))
            if rec is None:
                continue
            running = rec.state == "CONTAINER_RUNNING"
            if rec.state == "CONTAINER_EXITED":
                exited.append(rec.exit_code)
                state: Obj = {"terminated": {"exitCode": rec.exit_code, "reason": rec.reason,
                                             "startedAt": rec.started_at, "finishedAt": rec.finished_at}}
            else:
                state = {"running": {"startedAt": rec.started_at}}
            cstat.append({"name": c["name"], "image": c.get("image", ""), "imageID": rec.image,
                          "containerID": f"fake://{rec.id}", "ready": running, "started": running,
                          "restartCount": rec.restart_count, "state": state})
        n = len(spec.get("containers") or ())
        if exited and len(exited) == n:
            phase = "Succeeded" if all(c == 0 for c in exited) else "Failed"
            ready = False
        else:
            phase = "Running"
            ready = bool(cstat) and all(c["ready"] for c in cstat)
        prev = {c.get("type"): c for c in old.get("conditions") or ()}

        def cond(t: str, ok: bool) -> Obj:
            s = "True" if ok else "False"
            p = prev.get(t)
            return {"type": t, "status": s, "lastProbeTime": None,
                    "lastTransitionTime": p.get("lastTransitionTime") if p and p.get("status") == s else _now()}

        mine = [cond("PodReadyToStartContainers", phase == "Running"), cond("Initialized", True),
                cond("Ready", ready), cond("ContainersReady", ready)]
        # Conditions others own (PodScheduled, DisruptionTarget, readiness gates) and fields like
        # nominatedNodeName stay as they are: the kubelet only writes what it owns.
        owned = {c["type"] for c in mine}
        conds = mine + [c for c in old.get("conditions") or () if c.get("type") not in owned]
        return {**old, "phase": phase, "conditions": conds, "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
                "podIP": ip, "podIPs": [{"ip": ip}] if ip else [], "startTime": old.get("startTime") or _now(),
                "containerStatuses": cstat, "qosClass": old.get("qosClass", "BestEffort")}
