"""Admission: mutating and validating plugins run after authorization, before storage.

Plugins (as kube-apiserver's defaults): NamespaceLifecycle, ServiceAccount
(default service account name), DefaultTolerationSeconds and Priority. Service
ClusterIP / NodePort allocation is the Service strategy's, as in kube's Service
REST storage (``registry/serviceallocation.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.api.registry import KindInfo

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]

log = logging.getLogger(__name__)

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
NODE_PORT_RANGE = (30000, 32767)
DEFAULT_TOLERATION_SECONDS = 300


TOLERATED_BY_DEFAULT = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def _default_toleration_seconds(spec: Obj) -> None:
    """kube's DefaultTolerationSeconds: a pod that does not tolerate the not-ready or unreachable
    NoExecute taint tolerates it for 300 s. A toleration with no key, or no effect, counts."""
    tols = spec.get("tolerations")
    if not isinstance(tols, list):
        tols = spec["tolerations"] = []
    for key in TOLERATED_BY_DEFAULT:
        if any(isinstance(t, dict) and t.get("key") in (None, "", key) and t.get("effect") in (None, "", "NoExecute")
               for t in tols):
            continue
        tols.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                     "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})


@dataclass(slots=True)
class Attributes:
    operation: str  # CREATE, UPDATE, DELETE, CONNECT
    kind: KindInfo
    namespace: str
    name: str
    subresource: str = ""
    dry_run: bool = False


class Admission:
    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self.registry = registry
        self._ns_kind = registry.by_resource("", "v1", "namespaces")
        self._pc_kind = registry.by_resource("scheduling.k8s.io", "v1", "priorityclasses")

    # -- mutating ---------------------------------------------------------------
    async def mutate(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        if a.subresource:
            return
        k = a.kind.kind
        if k == "Pod" and a.kind.group == "" and a.operation == "CREATE":
            await self._pod_defaults(obj)
        elif k == "Pod" and a.kind.group == "" and a.operation == "UPDATE" and old is not None:
            self._pod_update_defaults(obj, old)

    async def _pod_defaults(self, pod: Obj) -> None:
        spec = pod.setdefault("spec", {})
        # ServiceAccount admission: the default account unless one is named.
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        _default_toleration_seconds(spec)
        # Priority admission.
        pcname = spec.get("priorityClassName")
        if pcname:
            pc = await self.objects.try_get(self._pc_kind, None, pcname) if self._pc_kind else None
            if pc is None and pcname not in ("system-cluster-critical", "system-node-critical"):
                raise errors.forbidden_error(
                    f'pods "{pod["metadata"].get("name") or pod["metadata"].get("generateName", "")}" is '
                    f'forbidden: no PriorityClass with name {pcname} was found', "pods")
            value = pc.get("value", 0) if pc else (2000000000 if pcname == "system-cluster-critical" else 2000001000)
            if spec.get("priority") is not None and spec["priority"] != value:
                raise errors.forbidden_error("the integer value of priority must not be provided in pod spec; "
                                             "priority admission controller computed "
                                             f"{value} from the given PriorityClass name", "pods")
            spec["priority"] = value
            if pc and pc.get("preemptionPolicy"):
                spec.setdefault("preemptionPolicy", pc["preemptionPolicy"])
        else:
            spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")

    @staticmethod
    def _pod_update_defaults(pod: Obj, old: Obj) -> None:
        """What kube's admission plugins do on a pod update: a client that replaces the pod with a
        manifest of its own (``kubectl replace -f pod.yaml``) does not know what admission added on
        create, and must not be refused for leaving it out."""
        spec = pod.setdefault("spec", {})
        # DefaultTolerationSeconds admits updates too: the default tolerations come back, so the
        # update does not "remove" tolerations (validation allows only additions).
        _default_toleration_seconds(spec)
        # Priority admission on update keeps what it resolved on create when the update leaves it
        # out; any other change is for validation to refuse (priority is immutable).
        old_spec = old.get("spec") or {}
        for f in ("priority", "preemptionPolicy"):
            if spec.get(f) is None and old_spec.get(f) is not None:
                spec[f] = old_spec[f]

    # -- validating -------------------------------------------------------------
    async def validate(self, a: Attributes, obj: Obj | None) -> None:
        k = a.kind
        if k.kind == "Namespace" and k.group == "" and a.operation == "DELETE" and a.name in IMMORTAL_NAMESPACES:
            raise errors.forbidden_error(f'namespaces "{a.name}" is forbidden: this namespace may not be deleted',
                                         "namespaces", "", a.name)
        if k.namespaced and a.operation == "CREATE" and self._ns_kind is not None:
            ns = await self.objects.try_get(self._ns_kind, None, a.namespace)
            if ns is None:
                raise errors.not_found_error("namespaces", "", a.namespace)
            terminating = bool((ns.get("metadata") or {}).get("deletionTimestamp")) or \
                (ns.get("status") or {}).get("phase") == "Terminating"
            # Events may still be written into a terminating namespace, as in kube.
            if terminating and k.resource != "events":
                res = f"{k.resource}.{k.group}" if k.group else k.resource
                name = (obj or {}).get("metadata", {}).get("name", "") or a.name
                raise errors.StatusError(
                    403, "Forbidden",
                    f'{res} "{name}" is forbidden: unable to create new content in namespace '
                    f"{a.namespace} because it is being terminated",
                    details={"name": name, "group": k.group, "kind": k.resource,
                             "causes": [{"reason": "NamespaceTerminating",
                                         "message": f"namespace {a.namespace} is being terminated",
                                         "field": "metadata.namespace"}]})
