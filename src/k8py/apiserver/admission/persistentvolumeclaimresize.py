"""PersistentVolumeClaimResize (kube's ``plugin/pkg/admission/storage/persistentvolume/resize``): a
claim's ``spec.resources.requests.storage`` may only grow when the claim is Bound and its
StorageClass says ``allowVolumeExpansion: true``; otherwise the update is Forbidden with kube's
words. (Shrinking back after a failed expansion is validation's to judge.) Only UPDATE of the
main resource.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.api import volume as vh
from k8py.api.corev1 import int_value
from k8py.apiserver.admission import Attributes, Plugin

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]


def _requested(pvc: Obj | None) -> int:
    try:
        return int_value((((pvc or {}).get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
                         or "0")
    except (ValueError, AttributeError):
        return 0  # validation reports a malformed quantity


class PersistentVolumeClaimResize(Plugin):
    name = "PersistentVolumeClaimResize"

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self._class_kind = registry.by_resource("storage.k8s.io", "v1", "storageclasses")

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        if (a.operation != "UPDATE" or a.subresource or a.kind.group != "" or a.kind.resource != "persistentvolumeclaims"
                or obj is None or old is None):
            return
        if _requested(obj) <= _requested(old):
            return
        if ((old.get("status") or {}).get("phase")) != "Bound":
            raise self._forbidden(a, "Only bound persistent volume claims can be expanded")
        name = vh.claim_class(obj)
        sc = await self.objects.try_get(self._class_kind, None, name) if name and self._class_kind else None
        if not (sc or {}).get("allowVolumeExpansion"):
            raise self._forbidden(a, "only dynamically provisioned pvc can be resized and the storageclass that "
                                     "provisions the pvc must support resize")

    @staticmethod
    def _forbidden(a: Attributes, why: str) -> errors.StatusError:
        return errors.forbidden_error(f'persistentvolumeclaims "{a.name}" is forbidden: {why}', "persistentvolumeclaims",
                                      "", a.name)
