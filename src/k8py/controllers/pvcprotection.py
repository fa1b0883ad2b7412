"""The PVC protection controller (kube's ``persistentvolumeclaim-protection``): a claim being
deleted keeps its ``kubernetes.io/pvc-protection`` finalizer (added at creation by the
StorageObjectInUseProtection admission plugin) while a scheduled pod uses it, so its data is not
pulled from under a running container; once no such pod is left the finalizer goes and the claim
with it. A claim missing the finalizer (made before the plugin) gets it.

A pod uses a claim when it is bound to a node and names it in a ``persistentVolumeClaim`` volume,
or in an ``ephemeral`` volume whose claim it owns, unless it was shut down for good (deleted with
grace 0). As in kube, a pod that finished but still exists keeps the claim (its node may still have
it mounted). "Not used" is only believed after a live list of the namespace's pods agrees with the
cache (a new pod may not have reached the cache yet).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from k8py.api import volume as vh
from k8py.api.corev1 import pod_claim_names
from k8py.client.controller import Controller, Result
from k8py.controllers.base import ControllerContext
from k8py.controllers.persistentvolume import (
    POD,
    POD_CLAIM_INDEX,
    PVC,
    index_pods_by_claim,
    is_pod_terminated,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def pod_is_shut_down(pod: Obj) -> bool:
    """podIsShutDown: deleted with grace 0 (the kubelet is done with it, or it was force-deleted)."""
    m = _meta(pod)
    return bool(m.get("deletionTimestamp")) and m.get("deletionGracePeriodSeconds") == 0


def pod_uses_claim(pod: Obj, pvc: Obj) -> bool:
    """podUsesPVC (see the module docstring)."""
    if not (pod.get("spec") or {}).get("nodeName"):
        return False  # a kubelet never starts a pod with a claim being deleted
    name = _meta(pvc).get("name")
    for v in (pod.get("spec") or {}).get("volumes") or ():
        src = v.get("persistentVolumeClaim")
        if isinstance(src, dict) and src.get("claimName") == name:
            return True
        if (v.get("ephemeral") is not None and not pod_is_shut_down(pod)
                and vh.ephemeral_claim_name(pod, v) == name and vh.ephemeral_claim_owner_error(pvc, pod) is None):
            return True
    return False


def needs_finalizer(obj: Obj, finalizer: str) -> bool:
    """protectionutil.NeedToAddFinalizer: not being deleted and without it."""
    return not _meta(obj).get("deletionTimestamp") and finalizer not in (_meta(obj).get("finalizers") or ())


def is_deletion_candidate(obj: Obj, finalizer: str) -> bool:
    """protectionutil.IsDeletionCandidate: being deleted and still held by it."""
    return bool(_meta(obj).get("deletionTimestamp")) and finalizer in (_meta(obj).get("finalizers") or ())


class PVCProtectionController:
    NAME = "pvc-protection"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.claims = ctx.factory.informer(PVC)
        self.pods = ctx.factory.informer(POD)
        index_pods_by_claim(self.pods)
        self.controller = Controller("persistentvolumeclaim-protection-controller", self.reconcile,
                                     workers=ctx.options.workers or 1, clock=ctx.clock,
                                     wait_for=(self.claims, self.pods))
        self.claims.add_handler(self._on_claim, lambda _o, n: self._on_claim(n), None)
        self.pods.add_handler(lambda p: self._on_pod(p, False), self._on_pod_update, lambda p: self._on_pod(p, True))

    def _on_claim(self, pvc: Obj) -> None:
        f = vh.PVC_PROTECTION_FINALIZER
        if needs_finalizer(pvc, f) or is_deletion_candidate(pvc, f):
            self.controller.enqueue(pvc)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        self._on_pod(new, False)
        if _meta(old).get("uid") != _meta(new).get("uid"):
            self._on_pod(old, True)  # a pod replaced under the same name may have held another claim

    def _on_pod(self, pod: Obj, deleted: bool) -> None:
        # only pods that may have stopped holding a claim matter here
        if not deleted and not is_pod_terminated(pod) and (pod.get("spec") or {}).get("nodeName"):
            return
        ns = _meta(pod).get("namespace")
        for c in sorted(pod_claim_names(pod)):
            self.controller.enqueue_key(f"{ns}/{c}")

    async def reconcile(self, key: str) -> Result | None:
        ns, _, name = key.partition("/")
        pvc = self.claims.get(name, ns)
        if pvc is None:
            return None
        f = vh.PVC_PROTECTION_FINALIZER
        if is_deletion_candidate(pvc, f):
            if await self._is_used(pvc):
                log.info("keeping claim %s: a pod uses it", key)
                return None
            new = copy.deepcopy(pvc)
            new["metadata"]["finalizers"] = [x for x in new["metadata"]["finalizers"] if x != f]
            await self.client.update(PVC, new, ns)
            log.info("removed the protection finalizer of claim %s (no pod uses it)", key)
            return None
        if needs_finalizer(pvc, f):
            new = copy.deepcopy(pvc)
            new["metadata"].setdefault("finalizers", []).append(f)
            await self.client.update(PVC, new, ns)
        return None

    async def _is_used(self, pvc: Obj) -> bool:
        key = f"{_meta(pvc).get('namespace')}/{_meta(pvc).get('name')}"
        if any(pod_uses_claim(p, pvc) for p in self.pods.store.by_index(POD_CLAIM_INDEX, key)):
            return True
        # why: the cache may not have a pod that was just created: only a live list may say "unused"
        page = await self.client.list_all(POD, str(_meta(pvc).get("namespace")))
        return any(pod_uses_claim(p, pvc) for p in page.get("items") or ())
