"""The scheduler's volume binding against a real API server (in-process) and hollow nodes: the
informers on claims, volumes and classes, the events that requeue pods, and the PreBind write
and wait. The test itself plays the PV controller and the provisioner."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.helpers.cluster import InProcessCluster

from k8py.api.volume import ANN_BIND_COMPLETED, ANN_SELECTED_NODE
from k8py.client.errors import NotFoundError
from k8py.kubelet.localpath import LocalPathProvisioner

from .conftest import SchedCluster, specs
from .test_integration import new_pod

PVC = ("v1", "PersistentVolumeClaim")
PV = ("v1", "PersistentVolume")
SC = ("storage.k8s.io/v1", "StorageClass")
Obj = dict[str, Any]


def claim(name: str, cls: str = "wait") -> Obj:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                     "resources": {"requests": {"storage": "1Gi"}}}}


def wffc_class(name: str = "wait") -> Obj:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
            "provisioner": "example.com/test", "volumeBindingMode": "WaitForFirstConsumer"}


def with_claim(name: str, claim_name: str) -> Obj:
    return new_pod(name, volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}])


async def provision_and_bind(cluster: SchedCluster, claim_name: str, node: str) -> None:
    """What the provisioner and the PV controller do once the scheduler selected ``node``."""
    c = cluster.client
    pvc = await c.get(PVC, claim_name, "default")
    await c.create(PV, {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{claim_name}"},
                        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                 "storageClassName": "wait", "hostPath": {"path": f"/tmp/{claim_name}"},
                                 "claimRef": {"namespace": "default", "name": claim_name,
                                              "uid": pvc["metadata"]["uid"]},
                                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                                     {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}})
    pvc["spec"]["volumeName"] = f"pv-{claim_name}"
    pvc["metadata"].setdefault("annotations", {})[ANN_BIND_COMPLETED] = "yes"
    await c.update(PVC, pvc, "default")


async def test_wait_for_first_consumer_claim_is_provisioned_on_the_chosen_node(cluster: SchedCluster) -> None:
    await cluster.nodes(specs(("n1", "4", "8Gi"), ("n2", "4", "8Gi")))
    await cluster.client.create(SC, wffc_class())
    await cluster.scheduler()
    await cluster.client.create(PVC, claim("data"), "default")
    await cluster.create(with_claim("web", "data"))

    async def selected() -> str | None:
        pvc = await cluster.client.get(PVC, "data", "default")
        return ((pvc["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE))

    node = await cluster.c.until(selected, what="the claim's selected-node annotation")
    assert node in ("n1", "n2")
    assert await cluster.placed() == {}  # PreBind waits for the binding
    await provision_and_bind(cluster, "data", node)
    assert await cluster.wait_placed(1) == {"web": node}
    # a second pod of the same (now bound) claim follows its PV to the same node
    await cluster.create(with_claim("web-2", "data"))
    assert (await cluster.wait_placed(2))["web-2"] == node


async def test_pod_waits_for_a_missing_claim_and_is_scheduled_once_it_exists(cluster: SchedCluster) -> None:
    await cluster.nodes(specs(("n1", "4", "8Gi")))
    await cluster.client.create(SC, wffc_class())
    await cluster.scheduler()
    await cluster.create(with_claim("late", "later"))
    ev = await cluster.wait_event("late", "FailedScheduling")
    assert ev["message"].startswith('0/1 nodes are available: persistentvolumeclaim "later" not found.')
    await cluster.client.create(PVC, claim("later"), "default")

    async def selected() -> bool:
        pvc = await cluster.client.get(PVC, "later", "default")
        return (pvc["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE) == "n1"

    await cluster.c.until(selected, what="the claim created later to be selected for n1")
    await provision_and_bind(cluster, "later", "n1")
    assert await cluster.wait_placed(1) == {"late": "n1"}


async def test_bound_pv_on_another_node_keeps_the_pod_pending(cluster: SchedCluster) -> None:
    await cluster.nodes(specs(("n1", "4", "8Gi")))
    await cluster.client.create(SC, wffc_class())
    await cluster.scheduler()
    await cluster.client.create(PVC, claim("far"), "default")
    await provision_and_bind(cluster, "far", "elsewhere")
    await cluster.create(with_claim("stuck", "far"))
    ev = await cluster.wait_event("stuck", "FailedScheduling")
    assert ev["message"] == ("0/1 nodes are available: 1 node(s) had volume node affinity conflict. preemption: "
                             "0/1 nodes are available: 1 Preemption is not helpful for scheduling..")


async def test_local_path_end_to_end_on_hollow_nodes(tmp_path: Path) -> None:
    """The whole protocol in one process, no containers: admission gives the default class, the PV
    controller hands the claim to rancher.io/local-path once the scheduler selected a node, that
    node's provisioner makes the directory and the PV, the PV controller binds, the scheduler binds
    the pod; deleting the claim deletes the volume and its directory."""
    async with InProcessCluster(controllers=["persistentvolume-binder", "pvc-protection", "pv-protection"]) as c:
        sc = SchedCluster(c)
        stop = asyncio.Event()
        provs, tasks = [], []
        try:
            await sc.nodes(specs(("n1", "4", "8Gi"), ("n2", "4", "8Gi")))
            for n in ("n1", "n2"):
                p = LocalPathProvisioner(sc.new_client(f"local-path-{n}"), n, str(tmp_path / n))
                provs.append(p)
                tasks.append(asyncio.create_task(p.run(stop)))
            for p in provs:
                await asyncio.wait_for(p.ready.wait(), 10)
            await sc.scheduler()
            pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
            made = await c.client.create(PVC, pvc, "default")
            assert made["spec"]["storageClassName"] == "local-path"
            web = with_claim("web", "data")
            web["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "n2"}
            await sc.create(web)
            assert await sc.wait_placed(1) == {"web": "n2"}
            bound = await c.client.get(PVC, "data", "default")
            assert bound["status"]["phase"] == "Bound"
            pv = await c.client.get(PV, bound["spec"]["volumeName"])
            path = tmp_path / "n2" / "storage" / f"{pv['metadata']['name']}_default_data"
            assert pv["spec"]["hostPath"]["path"] == str(path) and path.is_dir()
            await c.client.delete(("v1", "Pod"), "web", "default", grace_period_seconds=0)
            await c.client.delete(PVC, "data", "default")

            async def gone() -> bool:
                try:
                    await c.client.get(PV, pv["metadata"]["name"])
                except NotFoundError:
                    return True
                return False

            await c.until(gone, what="the released local-path volume deleted")
            assert not path.exists()
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await sc.close()


async def test_read_write_once_pod_claim_waits_for_its_first_pod_to_go(cluster: SchedCluster) -> None:
    await cluster.nodes(specs(("n1", "4", "8Gi"), ("n2", "4", "8Gi")))
    await cluster.client.create(SC, wffc_class())
    await cluster.scheduler()
    solo = claim("solo")
    solo["spec"]["accessModes"] = ["ReadWriteOncePod"]
    await cluster.client.create(PVC, solo, "default")
    await provision_and_bind(cluster, "solo", "n1")
    await cluster.create(with_claim("first", "solo"))
    assert await cluster.wait_placed(1) == {"first": "n1"}
    await cluster.create(with_claim("second", "solo"))
    ev = await cluster.wait_event("second", "FailedScheduling")
    assert ev["message"] == ("0/2 nodes are available: 2 node has pod using PersistentVolumeClaim with the same "
                             "name and ReadWriteOncePod access mode. preemption: 0/2 nodes are available: 2 No "
                             "preemption victims found for incoming pod..")
    await cluster.client.delete(("v1", "Pod"), "first", "default", grace_period_seconds=0)
    assert (await cluster.wait_placed(1, prefix="second")) == {"second": "n1"}


async def test_a_pod_waiting_for_its_volume_does_not_hold_up_other_bindings(cluster: SchedCluster) -> None:
    await cluster.nodes(specs(("n1", "4", "8Gi")))
    await cluster.client.create(SC, wffc_class())
    await cluster.scheduler(max_concurrent_binds=1)
    await cluster.client.create(PVC, claim("slow"), "default")
    await cluster.create(with_claim("waiting", "slow"))

    async def selected() -> bool:
        pvc = await cluster.client.get(PVC, "slow", "default")
        return bool((pvc["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE))

    await cluster.c.until(selected, what="the claim handed to its provisioner")  # PreBind waits from here
    await cluster.create(new_pod("plain"))
    assert await cluster.wait_placed(1, prefix="plain", timeout=5) == {"plain": "n1"}
    assert "waiting" not in await cluster.placed()
