"""StorageObjectInUseProtection (kube's ``plugin/pkg/admission/storage/storageobjectinuseprotection``):
every PersistentVolumeClaim is created with the ``kubernetes.io/pvc-protection`` finalizer and
every PersistentVolume with ``kubernetes.io/pv-protection``, so that deleting one still in use
leaves it Terminating: the pvc-protection controller removes the claim's finalizer once no pod
that may run uses it, the pv-protection controller the volume's once it is not Bound. Only
CREATE of the main resource.
"""

from __future__ import annotations

from typing import Any

from k8py.api.volume import PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER
from k8py.apiserver.admission import Attributes, Plugin

Obj = dict[str, Any]

_FINALIZERS = {"persistentvolumeclaims": PVC_PROTECTION_FINALIZER, "persistentvolumes": PV_PROTECTION_FINALIZER}


class StorageObjectInUseProtection(Plugin):
    name = "StorageObjectInUseProtection"

    async def admit(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        if a.operation != "CREATE" or a.subresource or a.kind.group != "":
            return
        finalizer = _FINALIZERS.get(a.kind.resource)
        if finalizer is None:
            return
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            return
        finalizers = meta.get("finalizers")
        if not isinstance(finalizers, list):
            finalizers = meta["finalizers"] = []
        if finalizer not in finalizers:
            finalizers.append(finalizer)
