"""kube-apiserver's default admission plugins that need no configuration: NamespaceLifecycle,
ServiceAccount (the default account's name), Priority and DefaultTolerationSeconds.

Service ClusterIP / NodePort allocation is the Service strategy's, as in kube's Service REST
storage (``registry/serviceallocation.py``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.apiserver.admission import Attributes, Plugin

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]

log = logging.getLogger(__name__)

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
DEFAULT_TOLERATION_SECONDS = 300
TOLERATED_BY_DEFAULT = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def is_pod(a: Attributes) -> bool:
    """The request is for a pod itself (not one of its subresources)."""
    return a.kind.kind == "Pod" and a.kind.group == "" and not a.subresource


class NamespaceLifecycle(Plugin):
    """Nothing is created in a namespace that does not exist or is being terminated (events
    excepted), and the immortal namespaces cannot be deleted."""

    name = "NamespaceLifecycle"

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self._ns_kind = registry.by_resource("", "v1", "namespaces")

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        k = a.kind
        if k.kind == "Namespace" and k.group == "" and a.operation == "DELETE" and a.name in IMMORTAL_NAMESPACES:
            raise errors.forbidden_error(f'namespaces "{a.name}" is forbidden: this namespace may not be deleted',
                                         "namespaces", "", a.name)
        if not (k.namespaced and a.operation == "CREATE" and self._ns_kind is not None):
            return
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


class ServiceAccount(Plugin):
    """A pod runs as the namespace's ``default`` service account unless it names one."""

    name = "ServiceAccount"

    async def admit(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        if not (is_pod(a) and a.operation == "CREATE"):
            return
        spec = obj.setdefault("spec", {})
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
        spec.setdefault("serviceAccount", spec["serviceAccountName"])


class Priority(Plugin):
    """A pod's priority from its PriorityClass; on update, what was resolved on create is kept
    when a replacing manifest leaves it out (priority is immutable: validation refuses changes)."""

    name = "Priority"

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self._pc_kind = registry.by_resource("scheduling.k8s.io", "v1", "priorityclasses")

    async def admit(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        if not is_pod(a):
            return
        spec = obj.setdefault("spec", {})
        if a.operation == "UPDATE" and old is not None:
            # ``kubectl replace -f pod.yaml`` does not know what admission added on create
            old_spec = old.get("spec") or {}
            for f in ("priority", "preemptionPolicy"):
                if spec.get(f) is None and old_spec.get(f) is not None:
                    spec[f] = old_spec[f]
            return
        if a.operation != "CREATE":
            return
        pcname = spec.get("priorityClassName")
        if pcname:
            pc = await self.objects.try_get(self._pc_kind, None, pcname) if self._pc_kind else None
            if pc is None and pcname not in ("system-cluster-critical", "system-node-critical"):
                raise errors.forbidden_error(
                    f'pods "{obj["metadata"].get("name") or obj["metadata"].get("generateName", "")}" is '
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


def _default_toleration_seconds(spec: Obj) -> None:
    tols = spec.get("tolerations")
    if not isinstance(tols, list):
        tols = spec["tolerations"] = []
    for key in TOLERATED_BY_DEFAULT:
        if any(isinstance(t, dict) and t.get("key") in (None, "", key) and t.get("effect") in (None, "", "NoExecute")
               for t in tols):
            continue
        tols.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                     "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})


class DefaultTolerationSeconds(Plugin):
    """A pod that does not tolerate the not-ready or unreachable NoExecute taint tolerates it for
    300 s (a toleration with no key, or no effect, counts). Updates too: the defaults come back,
    so an update does not "remove" tolerations (validation allows only additions)."""

    name = "DefaultTolerationSeconds"

    async def admit(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        if is_pod(a) and (a.operation == "CREATE" or (a.operation == "UPDATE" and old is not None)):
            _default_toleration_seconds(obj.setdefault("spec", {}))
