"""DefaultStorageClass (kube's ``plugin/pkg/admission/storage/storageclass/setdefault``): a
PersistentVolumeClaim created without a class (no ``spec.storageClassName``, not even "", and no
``volume.beta.kubernetes.io/storage-class`` annotation) gets the StorageClass annotated
``storageclass.kubernetes.io/is-default-class: "true"``; with several, the newest (kube since
1.26). With none, the claim is left without a class: the PV controller assigns a default class
created later (its retroactive assignment). Only CREATE of the main resource.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from k8py.api import volume as vh
from k8py.apiserver.admission import Attributes, Plugin

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]


class DefaultStorageClass(Plugin):
    name = "DefaultStorageClass"

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self._class_kind = registry.by_resource("storage.k8s.io", "v1", "storageclasses")

    async def admit(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        if (a.operation != "CREATE" or a.subresource or a.kind.group != ""
                or a.kind.resource != "persistentvolumeclaims" or self._class_kind is None):
            return
        if vh.claim_has_class(obj):
            return
        page = await self.objects.list(self._class_kind, None)
        default = vh.default_class(page.items)
        if default is None:
            return
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec["storageClassName"] = default["metadata"]["name"]
