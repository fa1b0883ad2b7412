"""The ephemeral volume controller (kube's ``ephemeral-volume``): for each ``ephemeral`` volume of a
pod it creates the PersistentVolumeClaim ``<pod>-<volume>`` from the volume's
``volumeClaimTemplate`` (its labels, annotations and spec), owned by the pod as its controller
(``blockOwnerDeletion``), so the garbage collector deletes the claim with the pod. The claim then
binds like any other (a static volume, or a provisioner's).

A claim of that name that the pod does not own is never taken over: the pod gets a
``FailedBinding`` event (kube's "PVC ns/name was not created for pod ns/pod (pod is not owner)")
and the kubelet refuses to mount it. A claim deleted while its pod still exists is made again. Pods
being deleted are left alone.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from k8py.api import volume as vh
from k8py.client.controller import Controller, Result
from k8py.client.errors import AlreadyExistsError
from k8py.controllers.base import ControllerContext
from k8py.controllers.persistentvolume import POD, POD_CLAIM_INDEX, PVC, index_pods_by_claim

log = logging.getLogger(__name__)

Obj = dict[str, Any]

EVENT_SOURCE = "ephemeral_volume"  # kube's recorder of this controller


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def ephemeral_volumes(pod: Obj) -> list[Obj]:
    return [v for v in (pod.get("spec") or {}).get("volumes") or () if isinstance(v.get("ephemeral"), dict)]


def claim_for(pod: Obj, volume: Obj) -> Obj:
    """The claim kube makes for ``volume`` of ``pod``: the template's labels, annotations and
    spec, named ``<pod>-<volume>``, the pod its controller owner."""
    template = volume["ephemeral"].get("volumeClaimTemplate") or {}
    tmeta = template.get("metadata") or {}
    m = _meta(pod)
    md: Obj = {"name": vh.ephemeral_claim_name(pod, volume),
               "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": m.get("name"), "uid": m.get("uid"),
                                    "controller": True, "blockOwnerDeletion": True}]}
    if tmeta.get("labels"):
        md["labels"] = copy.deepcopy(tmeta["labels"])
    if tmeta.get("annotations"):
        md["annotations"] = copy.deepcopy(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": md,
            "spec": copy.deepcopy(template.get("spec") or {})}


class EphemeralVolumeController:
    NAME = "ephemeral-volume"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.pods = ctx.factory.informer(POD)
        self.claims = ctx.factory.informer(PVC)
        index_pods_by_claim(self.pods)
        self.controller = Controller("ephemeral-volume-controller", self.reconcile,
                                     workers=ctx.options.workers or 1, clock=ctx.clock,
                                     wait_for=(self.pods, self.claims))
        self.pods.add_handler(self._on_pod, lambda _o, n: self._on_pod(n), None)
        self.claims.add_handler(None, None, self._on_claim_deleted)

    def _on_pod(self, pod: Obj) -> None:
        if not _meta(pod).get("deletionTimestamp") and ephemeral_volumes(pod):
            self.controller.enqueue(pod)

    def _on_claim_deleted(self, pvc: Obj) -> None:
        # someone deleted a pod's ephemeral claim: the pod needs it made again
        key = f"{_meta(pvc).get('namespace')}/{_meta(pvc).get('name')}"
        for pod in self.pods.store.by_index(POD_CLAIM_INDEX, key):
            self._on_pod(pod)

    async def reconcile(self, key: str) -> Result | None:
        ns, _, name = key.partition("/")
        pod = self.pods.get(name, ns)
        if pod is None or _meta(pod).get("deletionTimestamp"):
            return None
        for v in ephemeral_volumes(pod):
            claim_name = vh.ephemeral_claim_name(pod, v)
            existing = self.claims.get(claim_name, ns)
            if existing is not None:
                err = vh.ephemeral_claim_owner_error(existing, pod)
                if err is not None:
                    # cannot be fixed here: no retry
                    self.ctx.record(pod, "Warning", "FailedBinding", err, component=EVENT_SOURCE)
                continue
            try:
                await self.client.create(PVC, claim_for(pod, v), ns)
            except AlreadyExistsError:
                # the cache had not seen it yet: look again once it has
                return Result(requeue=True)
            log.info("created claim %s/%s for the ephemeral volume %s of pod %s", ns, claim_name, v.get("name"), name)
        return None
