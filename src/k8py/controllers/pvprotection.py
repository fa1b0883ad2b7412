"""The PV protection controller (kube's ``persistentvolume-protection``): a PersistentVolume being
deleted keeps its ``kubernetes.io/pv-protection`` finalizer (added at creation by the
StorageObjectInUseProtection admission plugin) while it is Bound to a claim; once it is not, the
finalizer goes and the volume with it. A volume missing the finalizer gets it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from k8py.api import volume as vh
from k8py.client.controller import Controller, Result
from k8py.controllers.base import ControllerContext
from k8py.controllers.persistentvolume import PV
from k8py.controllers.pvcprotection import is_deletion_candidate, needs_finalizer

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class PVProtectionController:
    NAME = "pv-protection"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.volumes = ctx.factory.informer(PV)
        self.controller = Controller("persistentvolume-protection-controller", self.reconcile,
                                     workers=ctx.options.workers or 1, clock=ctx.clock, wait_for=(self.volumes,))
        self.volumes.add_handler(self._on_volume, lambda _o, n: self._on_volume(n), None)

    def _on_volume(self, pv: Obj) -> None:
        f = vh.PV_PROTECTION_FINALIZER
        if needs_finalizer(pv, f) or is_deletion_candidate(pv, f):
            self.controller.enqueue(pv)

    async def reconcile(self, key: str) -> Result | None:
        pv = self.volumes.get(key)
        if pv is None:
            return None
        f = vh.PV_PROTECTION_FINALIZER
        if is_deletion_candidate(pv, f):
            if (pv.get("status") or {}).get("phase") == "Bound":
                log.info("keeping volume %s: it is bound", key)
                return None
            new = copy.deepcopy(pv)
            new["metadata"]["finalizers"] = [x for x in new["metadata"]["finalizers"] if x != f]
            await self.client.update(PV, new)
            log.info("removed the protection finalizer of volume %s (not bound)", key)
            return None
        if needs_finalizer(pv, f):
            new = copy.deepcopy(pv)
            new["metadata"].setdefault("finalizers", []).append(f)
            await self.client.update(PV, new)
        return None
