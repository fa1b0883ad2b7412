"""DefaultIngressClass (kube's ``plugin/pkg/admission/network/defaultingressclass``): an Ingress
created without ``spec.ingressClassName`` and without the deprecated ``kubernetes.io/ingress.class``
annotation gets the name of the IngressClass annotated
``ingressclass.kubernetes.io/is-default-class: "true"``, so ``kubectl get ingress`` shows its class
and a controller's ownership is settled at creation (a default class added later does not take
older Ingresses). With no default class nothing changes; with more than one, creation is refused
as kube refuses it. Only CREATE of the main resource, as kube's ``admission.NewHandler(Create)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.apiserver.admission import Attributes, Plugin

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


class DefaultIngressClass(Plugin):
    name = "DefaultIngressClass"

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self._class_kind = registry.by_resource("networking.k8s.io", "v1", "ingressclasses")

    async def admit(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        if (a.operation != "CREATE" or a.subresource or a.kind.group != "networking.k8s.io"
                or a.kind.resource != "ingresses" or self._class_kind is None):
            return
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict) or spec.get("ingressClassName") is not None:
            return
        if LEGACY_CLASS_ANNOTATION in ((obj.get("metadata") or {}).get("annotations") or {}):
            return
        page = await self.objects.list(self._class_kind, None)
        defaults = [c for c in page.items
                    if ((c.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"]
        if not defaults:
            return
        if len(defaults) > 1:
            name = (obj.get("metadata") or {}).get("name") or ""
            raise errors.forbidden_error(
                f'ingresses.networking.k8s.io "{name}" is forbidden: Internal error occurred: {len(defaults)} '
                "default IngressClasses were found, only 1 allowed", "ingresses", "networking.k8s.io", name)
        spec["ingressClassName"] = defaults[0]["metadata"]["name"]
