"""The node agent's real code on the ``fake`` runtime, against a real API server: node
registration, lease, pods run to Running/Ready, deletion, exit codes and restarts, admission,
image pull policies, an agent restart that leaves containers alone."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.client.errors import NotFoundError
from k8py.kubelet.agent import Agent, AgentConfig
from k8py.kubelet.podworker import PodWorker
from k8py.kubelet.runtime.fake import EXIT_CODE_ANNOTATION, FakeRuntime
from k8py.kubelet.runtime.types import ContainerState, SandboxConfig, SandboxError

POD = ("v1", "Pod")
NODE = ("v1", "Node")
NS = "default"
CAPACITY = {"cpu": "2", "memory": "4Gi", "pods": "10", "ephemeral-storage": "10Gi"}


def pod(name: str, *, image: str = "busybox:1.36", restart: str = "Always", exit_code: int | None = None,
        node: str = "n1", cpu: str | None = None, policy: str | None = None, **spec: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "image": image}
    if cpu:
        c["resources"] = {"requests": {"cpu": cpu}}
    if policy:
        c["imagePullPolicy"] = policy
    meta: dict[str, Any] = {"name": name}
    if exit_code is not None:
        meta["annotations"] = {EXIT_CODE_ANNOTATION: str(exit_code)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "restartPolicy": restart, "terminationGracePeriodSeconds": 5,
                     "containers": [c], **spec}}


@contextlib.asynccontextmanager
async def agent(c: InProcessCluster, tmp: Path, runtime: FakeRuntime | None = None, name: str = "n1",
                **cfg: Any) -> AsyncIterator[Agent]:
    client = Client(ClientConfig(server=c.url), component="kubelet")
    rt = runtime or FakeRuntime()
    a = Agent(client, rt, AgentConfig(node_name=name, data_dir=str(tmp / name), capacity=CAPACITY,
                                      relist_interval=0.1, **cfg))
    await a.start()
    try:
        yield a
    finally:
        await a.stop()
        await client.close()


async def phase(c: InProcessCluster, name: str) -> str | None:
    try:
        p = await c.client.get(POD, name, NS)
    except NotFoundError:
        return None
    return (p.get("status") or {}).get("phase")


async def test_registers_node_with_status_and_lease(tmp_path: Path) -> None:
    async with InProcessCluster() as c, agent(c, tmp_path) as a:
        node = await c.client.get(NODE, "n1")
        st = node["status"]
        assert st["allocatable"]["cpu"] == "2" and st["capacity"]["pods"] == "10"
        conds = {x["type"]: x for x in st["conditions"]}
        assert conds["Ready"]["status"] == "True" and conds["Ready"]["reason"] == "KubeletReady"
        assert conds["MemoryPressure"]["reason"] in ("KubeletHasSufficientMemory", "KubeletHasInsufficientMemory")
        assert st["nodeInfo"]["containerRuntimeVersion"] == "fake://0.1.0"
        assert st["nodeInfo"]["kernelVersion"] and st["nodeInfo"]["architecture"]
        assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
        assert any(x["type"] == "InternalIP" for x in st["addresses"])
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
        lease = await c.client.get(("coordination.k8s.io/v1", "Lease"), "n1", "kube-node-lease")
        assert lease["spec"]["holderIdentity"] == "n1"
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
        assert a.lease_renewals >= 1


async def test_pod_runs_and_reports_status_as_kubelet(tmp_path: Path) -> None:
    async with InProcessCluster() as c, agent(c, tmp_path) as a:
        await c.client.create(POD, pod("web"), NS)

        async def ready() -> Any:
            p = await c.client.get(POD, "web", NS)
            conds = {x["type"]: x["status"] for x in (p.get("status") or {}).get("conditions") or ()}
            return p if conds.get("Ready") == "True" else None

        p = await c.until(ready, what="the pod Ready")
        st = p["status"]
        assert st["phase"] == "Running"
        assert {x["type"] for x in st["conditions"]} >= {"PodReadyToStartContainers", "Initialized", "Ready",
                                                          "ContainersReady", "PodScheduled"}
        cs = st["containerStatuses"][0]
        assert cs["name"] == "app" and cs["ready"] and cs["started"] and cs["restartCount"] == 0
        assert "running" in cs["state"] and cs["containerID"].startswith("fake://")
        assert cs["imageID"].startswith("sha256:")
        assert st["podIP"].startswith("10.244.0.") and st["podIPs"] == [{"ip": st["podIP"]}]
        assert st["hostIP"] == a.host_ips[0] and st["startTime"]
        assert st["qosClass"] == "BestEffort"
        # a sync that changes nothing writes nothing (statuses are sent only when they changed)
        await c.until(lambda: not a.statuses.pending(), what="the status writes done")
        writes = a.statuses.writes
        (w,) = a.workers.values()
        assert await w.sync() is False
        assert not a.statuses.pending() and a.statuses.writes == writes
        # kubelet's events
        evs = await c.until(lambda: _events(c, "web", {"Pulling", "Pulled", "Created", "Started"}),
                            what="the kubelet's events")
        assert "Created container: app" in evs["Created"]


async def _events(c: InProcessCluster, name: str, want: set[str]) -> dict[str, str] | None:
    evs = await c.client.list(("v1", "Event"), NS)
    got = {e["reason"]: e["message"] for e in evs["items"] if e["involvedObject"].get("name") == name}
    return got if want <= set(got) else None


async def test_delete_stops_within_grace_and_finishes_the_pod(tmp_path: Path) -> None:
    rt = FakeRuntime()
    async with InProcessCluster() as c, agent(c, tmp_path, rt):
        await c.client.create(POD, pod("gone"), NS)
        await c.until(lambda: _is(c, "gone", "Running"), what="Running")
        await c.client.delete(POD, "gone", NS)
        await c.until(lambda: _absent(c, "gone"), what="the pod deleted for good by the agent")
        await c.until(lambda: not rt.sandboxes and not rt.containers, what="containers and sandbox removed")
        assert "stop_container" in rt.calls


async def _is(c: InProcessCluster, name: str, want: str) -> bool:
    return await phase(c, name) == want


async def _absent(c: InProcessCluster, name: str) -> bool:
    try:
        await c.client.get(POD, name, NS)
    except NotFoundError:
        return True
    return False


async def test_exit_codes_and_restart_policies(tmp_path: Path) -> None:
    async with InProcessCluster() as c, agent(c, tmp_path):
        await c.client.create(POD, pod("ok", restart="Never", exit_code=0), NS)
        await c.client.create(POD, pod("bad", restart="Never", exit_code=3), NS)
        await c.client.create(POD, pod("crash", restart="OnFailure", exit_code=1), NS)
        await c.until(lambda: _is(c, "ok", "Succeeded"), what="ok Succeeded")
        await c.until(lambda: _is(c, "bad", "Failed"), what="bad Failed")
        bad = await c.client.get(POD, "bad", NS)
        term = bad["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 3 and term["reason"] == "Error"
        ok = await c.client.get(POD, "ok", NS)
        ready = {x["type"]: x for x in ok["status"]["conditions"]}["Ready"]
        assert ready["status"] == "False" and ready["reason"] == "PodCompleted"

        async def crashlooping() -> Any:
            p = await c.client.get(POD, "crash", NS)
            for s in (p.get("status") or {}).get("containerStatuses") or ():
                w = s["state"].get("waiting") or {}
                if w.get("reason") == "CrashLoopBackOff" and s["restartCount"] >= 1:
                    return s
            return None

        s = await c.until(crashlooping, what="CrashLoopBackOff after a restart")
        assert s["lastState"]["terminated"]["exitCode"] == 1
        assert "back-off 10s restarting failed container=app" in s["state"]["waiting"]["message"]
        assert await phase(c, "crash") == "Running"  # OnFailure, restarting


async def test_node_admission_refuses_with_kubelets_reasons(tmp_path: Path) -> None:
    async with InProcessCluster() as c, agent(c, tmp_path):
        await c.client.create(POD, pod("big", cpu="3"), NS)
        await c.until(lambda: _is(c, "big", "Failed"), what="refused")
        p = await c.client.get(POD, "big", NS)
        assert p["status"]["reason"] == "OutOfcpu"
        assert p["status"]["message"] == ("Pod was rejected: Node didn't have enough resource: cpu, requested: 3000, "
                                          "used: 0, capacity: 2000")
        sel = pod("picky")
        sel["spec"]["nodeSelector"] = {"disk": "ssd"}
        await c.client.create(POD, sel, NS)
        await c.until(lambda: _is(c, "picky", "Failed"), what="refused")
        p = await c.client.get(POD, "picky", NS)
        assert p["status"]["reason"] == "NodeAffinity"


async def test_image_pull_policies(tmp_path: Path) -> None:
    rt = FakeRuntime()
    rt.missing_images.add("nowhere/none:1")
    async with InProcessCluster() as c, agent(c, tmp_path, rt):
        await c.client.create(POD, pod("never", image="absent:1", policy="Never"), NS)
        await c.client.create(POD, pod("pullfail", image="nowhere/none:1"), NS)

        async def waiting(name: str, *reasons: str) -> Any:
            p = await c.client.get(POD, name, NS)
            for s in (p.get("status") or {}).get("containerStatuses") or ():
                w = s["state"].get("waiting") or {}
                if w.get("reason") in reasons:
                    return w
            return None

        w = await c.until(lambda: waiting("never", "ErrImageNeverPull"), what="ErrImageNeverPull")
        assert w["message"] == 'Container image "absent:1" is not present with pull policy of Never'
        w = await c.until(lambda: waiting("pullfail", "ErrImagePull", "ImagePullBackOff"), what="ErrImagePull")
        assert await phase(c, "pullfail") == "Pending"


async def test_agent_restart_leaves_running_containers_alone(tmp_path: Path) -> None:
    rt = FakeRuntime()
    async with InProcessCluster() as c:
        async with agent(c, tmp_path, rt):
            await c.client.create(POD, pod("keep"), NS)
            await c.until(lambda: _is(c, "keep", "Running"), what="Running")
        running = [x.id for x in rt.containers.values() if x.state == ContainerState.RUNNING]
        assert len(running) == 1
        creates = rt.calls.count("create_container app")
        # while the agent is down, another pod is deleted for good
        await c.client.create(POD, pod("other"), NS)
        async with agent(c, tmp_path, rt) as a:
            await c.until(lambda: _is(c, "other", "Running"), what="the new pod Running")
            assert [x.id for x in rt.containers.values() if x.name == "app" and x.state == ContainerState.RUNNING
                    and x.id in running] == running
            assert rt.calls.count("create_container app") == creates + 1  # only the new pod's
            assert len(a.workers) == 2


class _BrokenNetwork(FakeRuntime):
    """A runtime whose pod network fails for pods named ``broken-*`` (a CNI plugin failing)."""

    async def run_pod_sandbox(self, config: SandboxConfig) -> str:
        if config.name.startswith("broken-"):
            raise SandboxError('plugin type="bridge" failed (add): no IP addresses available in range set')
        return await super().run_pod_sandbox(config)


async def test_a_failing_sandbox_shows_in_events_and_other_pods_run(tmp_path: Path) -> None:
    async with InProcessCluster() as c, agent(c, tmp_path, _BrokenNetwork()):
        await c.client.create(POD, pod("broken-1"), NS)
        await c.client.create(POD, pod("fine-1"), NS)
        evs = await c.until(lambda: _events(c, "broken-1", {"FailedCreatePodSandBox"}), what="the sandbox event")
        assert evs["FailedCreatePodSandBox"].startswith("Failed to create pod sandbox: plugin type=\"bridge\"")
        await c.until(lambda: _is(c, "fine-1", "Running"), what="the other pod Running")
        p = await c.client.get(POD, "broken-1", NS)
        assert p["status"]["phase"] == "Pending"
        (cs,) = p["status"]["containerStatuses"]
        assert cs["state"] == {"waiting": {"reason": "ContainerCreating"}}
        ready = {x["type"]: x["status"] for x in p["status"]["conditions"]}
        assert ready["PodReadyToStartContainers"] == "False" and ready["Ready"] == "False"


async def test_pods_are_resynced_on_a_timer(tmp_path: Path) -> None:
    """kubelet's --sync-frequency: with the relist out of the way, a container that exits is
    still noticed by the periodic sync of its pod."""
    rt = FakeRuntime()
    async with InProcessCluster() as c:
        client = Client(ClientConfig(server=c.url), component="kubelet")
        a = Agent(client, rt, AgentConfig(node_name="n1", data_dir=str(tmp_path / "n1"), capacity=CAPACITY,
                                          relist_interval=3600, resync_interval=0.2))
        await a.start()
        try:
            await c.client.create(POD, pod("once", restart="Never"), NS)
            await c.until(lambda: _is(c, "once", "Running"), what="Running")
            (cid,) = [x.id for x in rt.containers.values() if x.name == "app"]
            rt.kill(cid, 0, "Completed")
            await c.until(lambda: _is(c, "once", "Succeeded"), what="the exit noticed by the resync")
        finally:
            await a.stop()
            await client.close()


async def test_a_sync_from_an_older_copy_of_the_pod_does_not_turn_its_status_back(tmp_path: Path) -> None:
    """kubelet builds each status on the newest it knows (its status manager's), not on the
    informer's copy: a sync that starts from an older copy (it waited on a mount or a pull while
    the last write came back) must neither write again nor move startTime or transition times
    back (two such statuses would overwrite each other on and on)."""
    async with InProcessCluster() as c, agent(c, tmp_path) as a:
        first = await c.client.create(POD, pod("web"), NS)  # the copy before any status write

        async def ready() -> Any:
            p = await c.client.get(POD, "web", NS)
            conds = {x["type"]: x["status"] for x in (p.get("status") or {}).get("conditions") or ()}
            return p if conds.get("Ready") == "True" else None

        now = await c.until(ready, what="the pod Ready")
        await c.until(lambda: not a.statuses.pending(), what="the status writes done")
        writes = a.statuses.writes
        (w,) = a.workers.values()
        # as if the worker's copy were an old one, from before the agent's last writes
        old = {**first, "status": {"phase": "Pending", "startTime": "2020-01-01T00:00:00Z"}}
        w.pod = old
        assert await w.sync() is False
        assert not a.statuses.pending() and a.statuses.writes == writes
        assert (await c.client.get(POD, "web", NS))["status"]["startTime"] == now["status"]["startTime"]
        # an older copy arriving late does not replace the newer one the agent knows
        a.statuses.seen(old)
        assert a.statuses.latest(old) == now["status"]


class _IdleWorker(PodWorker):
    """A pod worker whose every sync finds nothing to do: what runs is its real wait-and-sync loop."""

    def __init__(self, agent: Agent, pod: dict[str, Any]) -> None:
        super().__init__(agent, pod)
        self.syncs = 0
        self.synced = asyncio.Event()

    async def sync(self) -> bool:
        self.syncs += 1
        self.synced.set()
        return False


@pytest.mark.parametrize("resync", [60.0, 0.0])
async def test_agent_stop_ends_a_pod_worker_woken_as_it_is_cancelled(tmp_path: Path, resync: float) -> None:
    """agent.stop() cancels the pod workers and waits for them: a worker whose wait completes (a
    wake) in the very loop iteration of the cancel ends too. CPython 3.11's asyncio.wait_for
    returned the wait's result and dropped that cancel: the worker looped on and stop() never
    returned (a CI teardown hung 300 s)."""
    client = Client(ClientConfig(server="http://127.0.0.1:9"), component="kubelet")  # never called
    a = Agent(client, FakeRuntime(), AgentConfig(node_name="n1", data_dir=str(tmp_path / "n1"), capacity=CAPACITY,
                                                 resync_interval=resync))
    p = pod("idle")
    p["metadata"].update(namespace=NS, uid="uid-idle")
    w = _IdleWorker(a, p)
    if not resync:
        w._wake_at = time.time() + 60  # the worker's own timer instead of the resync
    a.workers[w.uid] = w
    w.start()
    assert w.task is not None
    try:
        async with asyncio.timeout(10):
            await w.synced.wait()
        for _ in range(3):  # a few loop iterations: the worker settles into its wait
            await asyncio.sleep(0)
        w.poke()
        await asyncio.sleep(0)  # one iteration: the wait completes...
        try:
            async with asyncio.timeout(10):
                await a.stop()  # ...and in this same iteration stop() cancels the worker
        except TimeoutError:
            pytest.fail(f"agent.stop() did not return in 10 s: the pod worker went on after its cancel "
                        f"({w.syncs} syncs)")
        assert w.task.cancelled()
    finally:
        w.task.cancel()
        await asyncio.gather(w.task, return_exceptions=True)
        await client.close()
