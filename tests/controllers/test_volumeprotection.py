"""PVC and PV protection: the StorageObjectInUseProtection finalizers, kept while a pod uses the
claim / while the volume is Bound, removed after; which pods count as using a claim."""

from __future__ import annotations

from typing import Any

from tests.helpers.cluster import InProcessCluster

from k8py.client.errors import NotFoundError
from k8py.controllers.pvcprotection import pod_uses_claim

Obj = dict[str, Any]
PV = ("v1", "PersistentVolume")
PVC = ("v1", "PersistentVolumeClaim")
POD = ("v1", "Pod")


def pod(name: str, volumes: list[Obj], node: str = "n1", **meta: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", **meta},
            "spec": {"nodeName": node, "volumes": volumes, "containers": [{"name": "c", "image": "i"}]}}


def claim(name: str, owner: str | None = None) -> Obj:
    md: Obj = {"name": name, "namespace": "default"}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": owner, "uid": f"uid-{owner}",
                                  "controller": True}]
    return {"metadata": md}


def test_which_pods_use_a_claim() -> None:
    pvc_vol = [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]
    assert pod_uses_claim(pod("p", pvc_vol), claim("data"))
    assert not pod_uses_claim(pod("p", pvc_vol), claim("other"))
    assert not pod_uses_claim(pod("p", pvc_vol, node=""), claim("data"))  # never scheduled: never started
    done = pod("p", pvc_vol)
    done["status"] = {"phase": "Succeeded"}
    assert pod_uses_claim(done, claim("data"))  # finished but still there: its node may still have it mounted
    eph = [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]
    assert pod_uses_claim(pod("p", eph), claim("p-scratch", owner="p"))
    assert not pod_uses_claim(pod("p", eph), claim("p-scratch", owner="q"))  # not made for this pod
    gone = pod("p", eph, deletionTimestamp="2026-01-01T00:00:00Z", deletionGracePeriodSeconds=0)
    assert not pod_uses_claim(gone, claim("p-scratch", owner="p"))


async def test_claim_and_volume_stay_while_in_use() -> None:
    async with InProcessCluster(controllers=["persistentvolume-binder", "pvc-protection", "pv-protection"]) as c:
        await c.add_node("node-1")
        await c.client.create(PV, {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "disk"},
                                   "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                            "hostPath": {"path": "/srv/k8py-test-disk"}}})
        made = await c.client.create(PVC, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                           "metadata": {"name": "data"},
                                           "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "1Gi"}}}}, "default")
        assert made["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
        assert (await c.client.get(PV, "disk"))["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
        await c.client.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user"},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                             "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}},
                              "default")

        async def running() -> bool:
            p = await c.client.get(POD, "user", "default")
            return (p.get("status") or {}).get("phase") == "Running"

        await c.until(running, what="pod running")
        assert c.manager is not None
        ctl = next(x.controller for x in c.manager.running if x.NAME == "pvc-protection")
        seen = ctl.metrics.reconciles
        await c.client.delete(PVC, "data", "default")
        await c.client.delete(PV, "disk")

        async def both_terminating() -> bool:
            pvc = await c.client.get(PVC, "data", "default")
            pv = await c.client.get(PV, "disk")
            return bool(pvc["metadata"].get("deletionTimestamp") and pv["metadata"].get("deletionTimestamp"))

        await c.until(both_terminating, what="claim and volume Terminating")
        # the claim's protection controller has had its look (and has nothing left to do): the
        # claim is still there while the pod runs
        await c.until(lambda: ctl.metrics.reconciles > seen and not len(ctl.queue) and not ctl.queue.processing,
                      what="the pvc-protection controller's sync of the deleted claim")
        pvc = await c.client.get(PVC, "data", "default")
        assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
        assert (await c.client.get(PV, "disk"))["status"]["phase"] == "Bound"
        await c.client.delete(POD, "user", "default")

        async def gone(kind: Any, name: str, ns: str | None) -> bool:
            try:
                await c.client.get(kind, name, ns)
            except NotFoundError:
                return True
            return False

        await c.until(lambda: gone(PVC, "data", "default"), timeout=20, what="claim deleted after its pod")
        # the claim gone, the volume is Released (not Bound): its finalizer goes too
        await c.until(lambda: gone(PV, "disk", None), timeout=20, what="volume deleted once not Bound")
