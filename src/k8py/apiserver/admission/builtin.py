"""kube-apiserver's default admission plugins that need no configuration: NamespaceLifecycle,
ServiceAccount (the account's name, its token volume), Priority and DefaultTolerationSeconds.

Service ClusterIP / NodePort allocation is the Service strategy's, as in kube's Service REST
storage (``registry/serviceallocation.py``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.api.corev1 import pod_secret_names
from k8py.apiserver.admission import Attributes, Plugin
from k8py.apiserver.registry.base import random_suffix

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


TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME_PREFIX = "kube-api-access-"
TOKEN_EXPIRATION_SECONDS = 3607  # kube's WarnOnlyBoundTokenExpirationSeconds
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
DEFAULT_SERVICE_ACCOUNT = "default"


def token_volume(name: str) -> Obj:
    """kube's projected service-account volume: a token for the API, the cluster CA and the namespace."""
    return {"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}


def _is_token_volume(v: Obj) -> bool:
    """The pod has its token volume already: kube goes by the ``kube-api-access-`` name alone."""
    return str(v.get("name", "")).startswith(TOKEN_VOLUME_PREFIX)


def mount_token(spec: Obj, volume_name: str) -> None:
    """kube's ``mountServiceAccountToken``: every init and app container without a mount at the
    token path gets the volume there, read-only; the volume is added once if any container took it
    (a pod that already has a ``kube-api-access-`` volume keeps it)."""
    volumes: list[Any] = spec["volumes"] if isinstance(spec.get("volumes"), list) else []
    existing = next((v for v in volumes if isinstance(v, dict) and _is_token_volume(v)), None)
    name = str(existing["name"]) if existing is not None else volume_name
    needed = False
    for field in ("initContainers", "containers"):
        for c in spec.get(field) or ():
            if not isinstance(c, dict):
                continue
            mounts: list[Any] = c["volumeMounts"] if isinstance(c.get("volumeMounts"), list) else []
            if any(isinstance(m, dict) and m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                continue
            c["volumeMounts"] = [*mounts, {"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}]
            needed = True
    if needed and existing is None:
        spec["volumes"] = [*volumes, token_volume(name)]


def should_automount(sa: Obj | None, spec: Obj) -> bool:
    """The pod's ``automountServiceAccountToken`` if set, else the account's, else true."""
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if sa is not None and sa.get("automountServiceAccountToken") is not None:
        return bool(sa["automountServiceAccountToken"])
    return True


class ServiceAccount(Plugin):
    """kube's ServiceAccount admission plugin, on pod creation:

    - the pod runs as the namespace's ``default`` account unless it names one;
    - a named account that does not exist refuses the pod with kube's message (``error looking
      up service account NS/NAME: serviceaccount "NAME" not found``). The ``default`` account is
      made asynchronously by the ServiceAccount controller; kube retries its look-up for about a
      second and then refuses the pod. k8py admits such a pod without a token volume instead
      (a pod made right after its namespace, or on an API server that runs no controller
      manager, is neither refused nor left waiting for a token that cannot be issued);
    - unless the pod or its account says ``automountServiceAccountToken: false``, the
      ``kube-api-access-<5 random>`` projected volume (token of 3607 s, ``kube-root-ca.crt``'s
      ``ca.crt``, the namespace) is mounted read-only at
      ``/var/run/secrets/kubernetes.io/serviceaccount`` in every init and app container
      (ephemeral containers are added by an update, which kube's plugin does not mutate);
    - a pod without ``imagePullSecrets`` gets its account's.

    Mirror pods (a node's static pods) are left alone, as in kube."""

    name = "ServiceAccount"

    def __init__(self, objects: Objects | None = None, registry: Registry | None = None) -> None:
        self.objects = objects
        self._sa_kind = registry.by_resource("", "v1", "serviceaccounts") if registry is not None else None

    async def admit(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        if not (is_pod(a) and a.operation == "CREATE"):
            return
        spec = obj.setdefault("spec", {})
        if MIRROR_POD_ANNOTATION in ((obj.get("metadata") or {}).get("annotations") or {}):
            # kube does not touch a mirror pod's spec (its node would delete a pod that differs
            # from its static pod) and refuses one that refers to an account or secrets
            self._refuse_mirror_references(obj)
            return
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec.get("serviceAccount") or DEFAULT_SERVICE_ACCOUNT
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        sa_name = str(spec["serviceAccountName"])
        sa = None
        if self.objects is not None and self._sa_kind is not None:
            sa = await self.objects.try_get(self._sa_kind, a.namespace, sa_name)
            if sa is None and sa_name != DEFAULT_SERVICE_ACCOUNT:
                pod_name = (obj.get("metadata") or {}).get("name") or (obj.get("metadata") or {}).get(
                    "generateName", "")
                raise errors.forbidden_error(
                    f'pods "{pod_name}" is forbidden: error looking up service account {a.namespace}/{sa_name}: '
                    f'serviceaccount "{sa_name}" not found', "pods", "", str(pod_name))
        # why "sa is not None or no store": no token can be issued for an account that is not there
        if (sa is not None or self.objects is None) and should_automount(sa, spec):
            mount_token(spec, TOKEN_VOLUME_PREFIX + random_suffix(5))
        if not spec.get("imagePullSecrets") and sa is not None and sa.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [{"name": s.get("name", "")} for s in sa["imagePullSecrets"]
                                        if isinstance(s, dict)]


    @staticmethod
    def _refuse_mirror_references(pod: Obj) -> None:
        spec = pod.get("spec") or {}
        why = ""
        if spec.get("serviceAccountName"):
            why = "a mirror pod may not reference service accounts"
        elif pod_secret_names(pod):
            why = "a mirror pod may not reference secrets"
        elif any(isinstance(src, dict) and src.get("serviceAccountToken") is not None
                 for v in spec.get("volumes") or () if isinstance(v, dict)
                 for src in (v.get("projected") or {}).get("sources") or ()):
            why = "a mirror pod may not use ServiceAccountToken volume projections"
        if why:
            name = str((pod.get("metadata") or {}).get("name") or "")
            raise errors.forbidden_error(f'pods "{name}" is forbidden: {why}', "pods", "", name)


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
