"""kubelet's sandbox garbage collection (``evictSandboxes``) and pod log directories
(``evictPodLogsDirectories``): the pure choice, and the agent's periodic collection on the fake
runtime against a real API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from k8py.kubelet.eviction import dead_sandboxes
from k8py.kubelet.runtime.types import ContainerState, ContainerStatus, SandboxState, SandboxStatus


def sb(sid: str, uid: str, attempt: int, ready: bool = False, created: float = 0.0) -> SandboxStatus:
    return SandboxStatus(sid, "p", "ns", uid, attempt, SandboxState.READY if ready else SandboxState.NOTREADY,
                         created)


def ct(cid: str, sandbox: str) -> ContainerStatus:
    return ContainerStatus(cid, sandbox, "app", 0, "i", "sha256:i", ContainerState.EXITED)


def test_dead_sandboxes_are_kubelets_evict_sandboxes() -> None:
    sandboxes = [
        # a pod the node has: its newest stays (even not ready); older ones go unless they hold a
        # container or are ready
        sb("a0", "a", 0), sb("a1", "a", 1), sb("a2", "a", 2, ready=True, created=1.0),
        sb("a1-holding", "a", 1, created=0.5), sb("a-ready-old", "a", 0, ready=True),
        # a pod whose newest sandbox is dead: kept, as kubelet keeps it
        sb("b0", "b", 0), sb("b1", "b", 1),
        # same attempt: the later one is the newest
        sb("c-old", "c", 0, created=1.0), sb("c-new", "c", 0, created=2.0),
        # a pod the node no longer has (or finished, under pressure): every inactive one
        sb("gone0", "gone", 0), sb("gone1", "gone", 1), sb("gone-ready", "gone", 2, ready=True),
        sb("gone-holding", "gone", 3),
    ]
    containers = [ct("x", "a1-holding"), ct("y", "gone-holding")]
    out = {s.id for s in dead_sandboxes(sandboxes, containers, keep_newest={"a", "b", "c"})}
    assert out == {"a0", "a1", "b0", "c-old", "gone0", "gone1"}
    assert dead_sandboxes([], [], keep_newest=set()) == []


async def test_agent_collects_a_replaced_sandbox_and_leftovers_of_pods_it_no_longer_has(tmp_path: Path) -> None:
    """A crash-looping pod whose sandbox died (stopped under it, as ``crictl stopp``) gets a new
    one; once its old sandbox holds no container the periodic collection removes it, as it
    removes the dead sandbox and the log directory of a pod the node no longer has; the pod's
    own newest sandbox and its log directory stay."""
    from tests.helpers.cluster import InProcessCluster

    from k8py.client.api import Client
    from k8py.client.config import ClientConfig
    from k8py.kubelet.agent import Agent, AgentConfig
    from k8py.kubelet.runtime.fake import EXIT_CODE_ANNOTATION, FakeRuntime
    from k8py.kubelet.runtime.types import SandboxConfig

    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "loop", "annotations": {EXIT_CODE_ANNOTATION: "1"}},
            "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "busybox:1.36"}]}}
    async with InProcessCluster() as c:
        client = Client(ClientConfig(server=c.url), component="kubelet")
        rt = FakeRuntime()
        a = Agent(client, rt, AgentConfig(node_name="n1", data_dir=str(tmp_path / "n1"), relist_interval=0.1,
                                          capacity={"cpu": "2", "memory": "4Gi", "pods": "10"}, backoff=(0.05, 0.1)))
        await a.start()
        try:
            # what a pod deleted while the agent was down may leave: a stopped sandbox, its logs
            orphan = await rt.run_pod_sandbox(SandboxConfig("old", "default", "uid-gone"))
            await rt.stop_pod_sandbox(orphan)
            os.makedirs(os.path.join(a.facts.log_dir, "default_old_uid-gone", "app"))
            uid = (await c.client.create(("v1", "Pod"), body, "default"))["metadata"]["uid"]
            own_logs = os.path.join(a.facts.log_dir, f"default_loop_{uid}")
            os.makedirs(own_logs, exist_ok=True)

            async def sandboxes() -> list[Any]:
                return sorted((s for s in await rt.list_pod_sandboxes() if s.uid == uid), key=lambda s: s.attempt)

            async def restarts() -> int:
                st = (await c.client.get(("v1", "Pod"), "loop", "default")).get("status") or {}
                return int(((st.get("containerStatuses") or [{}])[0]).get("restartCount") or 0)

            async def has_sandbox() -> bool:
                return bool(await sandboxes()) and await restarts() >= 1

            await c.until(has_sandbox, what="the pod running and restarting")
            first = (await sandboxes())[0]
            await rt.stop_pod_sandbox(first.id)  # the sandbox died under the pod

            async def replaced() -> bool:
                sbs = await sandboxes()
                return len(sbs) == 2 and sbs[1].state == SandboxState.READY and any(
                    x.sandbox_id == sbs[1].id and x.state == ContainerState.EXITED for x in await rt.list_containers())

            # the new sandbox's container has died once too: the old one's is no longer the
            # newest dead container of its name
            await c.until(replaced, what="a new sandbox whose container ran and exited")
            await a.collect_containers()
            left = await sandboxes()
            assert len(left) == 1 and left[0].attempt == 1 and left[0].state == SandboxState.READY
            assert first.id not in {s.id for s in await rt.list_pod_sandboxes()}
            assert orphan not in {s.id for s in await rt.list_pod_sandboxes()}
            assert not os.path.exists(os.path.join(a.facts.log_dir, "default_old_uid-gone"))
            assert os.path.isdir(own_logs)
            assert a.sandbox_ids(uid) == {left[0].id}
        finally:
            await a.stop()
            await client.close()


async def test_an_evicted_pods_containers_and_sandbox_are_collected_and_its_status_stays(tmp_path: Path) -> None:
    """kubelet's ``ShouldPodContentBeRemoved``: an evicted pod stays in the API (Failed, Evicted)
    but its containers and sandbox are removed by the periodic collection; its container
    statuses stay as they were."""
    from tests.helpers.cluster import InProcessCluster

    from k8py.client.api import Client
    from k8py.client.config import ClientConfig
    from k8py.kubelet.agent import Agent, AgentConfig
    from k8py.kubelet.runtime.fake import FakeRuntime

    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hog"},
            "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "busybox:1.36"}]}}
    async with InProcessCluster() as c:
        client = Client(ClientConfig(server=c.url), component="kubelet")
        rt = FakeRuntime()
        a = Agent(client, rt, AgentConfig(node_name="n1", data_dir=str(tmp_path / "n1"), relist_interval=0.1,
                                          resync_interval=0.2, capacity={"cpu": "2", "memory": "4Gi", "pods": "10"}))
        await a.start()
        try:
            uid = (await c.client.create(("v1", "Pod"), body, "default"))["metadata"]["uid"]

            async def status() -> dict[str, Any]:
                return dict((await c.client.get(("v1", "Pod"), "hog", "default")).get("status") or {})

            async def running() -> bool:
                return (await status()).get("phase") == "Running"

            async def evicted() -> bool:
                st = await status()
                return st.get("reason") == "Evicted" and a.workers[uid].evict_done and not a.statuses.pending()

            await c.until(running, what="the pod Running")
            assert a._evict_for_pressure(uid, "The node was low on resource: memory. ", 0.1, True)
            await c.until(evicted, what="the pod evicted")
            before = await status()
            assert [s for s in await rt.list_pod_sandboxes() if s.uid == uid]
            await a.collect_containers()
            assert not [s for s in await rt.list_pod_sandboxes() if s.uid == uid]
            assert not await rt.list_containers()
            assert a.sandbox_ids(uid) == set()
            # the worker syncs on (every 0.2 s) without its containers: the status stands
            w = a.workers[uid]
            synced: list[bool] = []
            sync = w.sync

            async def counted() -> bool:
                done = await sync()
                synced.append(done)
                return done

            w.sync = counted  # type: ignore[method-assign]

            async def synced_twice() -> bool:
                return len(synced) >= 2 and not a.statuses.pending()

            await c.until(synced_twice, what="the pod synced twice more")
            after = await status()
            assert (after["phase"], after["reason"]) == ("Failed", "Evicted")
            assert after["containerStatuses"] == before["containerStatuses"]
        finally:
            await a.stop()
            await client.close()


async def test_the_collection_runs_every_container_gc_period(tmp_path: Path) -> None:
    """The periodic collection runs on its own every ``container_gc_period`` (kubelet's fixed
    minute by default; k8py's ``--container-gc-period`` shortens it): a stopped sandbox of a pod
    the node does not have, and its log directory, go without anyone calling for a collection,
    once per period; the default stays kubelet's minute."""
    from tests.helpers.cluster import InProcessCluster

    from k8py.client.api import Client
    from k8py.client.config import ClientConfig
    from k8py.kubelet.agent import CONTAINER_GC_PERIOD, Agent, AgentConfig
    from k8py.kubelet.runtime.fake import FakeRuntime
    from k8py.kubelet.runtime.types import SandboxConfig

    assert AgentConfig(node_name="n", data_dir="/d").container_gc_period == CONTAINER_GC_PERIOD == 60.0
    async with InProcessCluster() as c:
        client = Client(ClientConfig(server=c.url), component="kubelet")
        rt = FakeRuntime()
        a = Agent(client, rt, AgentConfig(node_name="n1", data_dir=str(tmp_path / "n1"), relist_interval=0.1,
                                          capacity={"cpu": "2", "memory": "4Gi", "pods": "10"},
                                          container_gc_period=0.2))
        await a.start()
        try:
            for round_ in range(2):  # each period collects what is left since the last one
                orphan = await rt.run_pod_sandbox(SandboxConfig(f"old{round_}", "default", f"uid-gone{round_}"))
                await rt.stop_pod_sandbox(orphan)
                logs = os.path.join(a.facts.log_dir, f"default_old{round_}_uid-gone{round_}", "app")
                os.makedirs(logs)

                async def collected(orphan: str = orphan, logs: str = logs) -> bool:
                    return orphan not in {s.id for s in await rt.list_pod_sandboxes()} and not os.path.exists(logs)

                await c.until(collected, timeout=10, what=f"the periodic collection (round {round_})")
        finally:
            await a.stop()
            await client.close()
