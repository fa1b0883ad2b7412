"""The ephemeral volume controller: a pod's ``ephemeral`` volume gets its claim ``<pod>-<volume>``,
owned by the pod and garbage-collected with it; a claim of that name the pod does not own is an
event, never taken over."""

from __future__ import annotations

from typing import Any

from tests.helpers.cluster import InProcessCluster

from k8py.client.errors import NotFoundError
from k8py.controllers.ephemeral import claim_for

Obj = dict[str, Any]
PV = ("v1", "PersistentVolume")
PVC = ("v1", "PersistentVolumeClaim")
POD = ("v1", "Pod")
EVENT = ("v1", "Event")

TEMPLATE = {"metadata": {"labels": {"app": "web"}, "annotations": {"note": "x"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                     "storageClassName": ""}}


def pod(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
                     "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": TEMPLATE}}]}}


def test_claim_for() -> None:
    p = pod("web-0")
    p["metadata"].update(namespace="default", uid="u-1")
    c = claim_for(p, p["spec"]["volumes"][0])
    assert c["metadata"] == {"name": "web-0-scratch", "labels": {"app": "web"}, "annotations": {"note": "x"},
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": "u-1",
                                                  "controller": True, "blockOwnerDeletion": True}]}
    assert c["spec"] == TEMPLATE["spec"]


async def test_claim_made_for_the_pod_and_collected_with_it() -> None:
    async with InProcessCluster(controllers=["ephemeral-volume", "garbagecollector", "persistentvolume-binder",
                                             "pvc-protection", "pv-protection"]) as c:
        await c.add_node("node-1")
        await c.client.create(PV, {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "disk"},
                                   "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                            "storageClassName": "", "hostPath": {"path": "/srv/k8py-test-eph"}}})
        made = await c.client.create(POD, pod("web-0"), "default")

        async def bound() -> Obj | None:
            try:
                claim = await c.client.get(PVC, "web-0-scratch", "default")
            except NotFoundError:
                return None
            return claim if (claim.get("status") or {}).get("phase") == "Bound" else None

        claim = await c.until(bound, timeout=20, what="the ephemeral claim made and bound")
        assert claim["metadata"]["ownerReferences"][0]["uid"] == made["metadata"]["uid"]
        assert claim["metadata"]["labels"] == {"app": "web"}
        assert claim["spec"]["volumeName"] == "disk"

        # a claim of the name a second pod would use, not made for it: an event, no take-over
        await c.client.create(PVC, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                    "metadata": {"name": "web-1-scratch"}, "spec": TEMPLATE["spec"]}, "default")
        await c.client.create(POD, pod("web-1"), "default")

        async def refused() -> bool:
            evs = (await c.client.list(EVENT, "default"))["items"]
            return any(e["involvedObject"].get("name") == "web-1" and e["reason"] == "FailedBinding" and
                       e["message"] == "PVC default/web-1-scratch was not created for pod default/web-1 (pod is not owner)"
                       and e["source"]["component"] == "ephemeral_volume" for e in evs)

        await c.until(refused, timeout=20, what="FailedBinding event on web-1")
        assert "ownerReferences" not in (await c.client.get(PVC, "web-1-scratch", "default"))["metadata"]

        await c.client.delete(POD, "web-0", "default")

        async def claim_gone() -> bool:
            try:
                await c.client.get(PVC, "web-0-scratch", "default")
            except NotFoundError:
                return True
            return False

        await c.until(claim_gone, timeout=30, what="the ephemeral claim deleted with its pod")

        async def released() -> bool:
            return (await c.client.get(PV, "disk"))["status"]["phase"] == "Released"

        await c.until(released, timeout=20, what="its volume Released (Retain)")
