"""Per-kind create/update semantics (kube's registry "strategies").

``prepare_for_create`` / ``prepare_for_update`` decide what a client may set
through the main resource and what only the ``status`` subresource may change,
and when ``metadata.generation`` moves. Defaulting and validation live in
``k8py.api.defaults`` and ``k8py.api.validation``.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from typing import Any

from k8py.api.corev1 import now_rfc3339
from k8py.api.registry import KindInfo

Obj = dict[str, Any]

# Kinds whose strategy maintains metadata.generation (spec changes bump it).
GENERATION_KINDS = frozenset({
    "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController",
    "Ingress", "NetworkPolicy", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Pod",
    "PersistentVolumeClaim", "IngressClass", "EndpointSlice",
})

# Kinds whose main resource cannot change status (it has a status subresource),
# and whose create resets status.
_STATUS_RESET_ON_CREATE = frozenset({
    "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController",
    "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget", "PersistentVolumeClaim", "PersistentVolume",
    "ResourceQuota", "Service", "Namespace",
})

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # kube's utilrand alphabet (no vowels, no confusables)




def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_NAME_CHARS) for _ in range(n))


def spec_part(obj: Obj) -> Obj:
    """Everything but metadata and status: what a generation counts."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def prepare_for_create(kind: KindInfo, obj: Obj) -> None:
    meta = obj.setdefault("metadata", {})
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
        meta.pop(k, None)
    if kind.kind in GENERATION_KINDS:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    if kind.kind in _STATUS_RESET_ON_CREATE:
        obj.pop("status", None)
    if kind.kind == "Job" and kind.group == "batch":
        _job_generate_selector(obj)
    if kind.kind == "Pod":
        _pod_create_status(obj)
    elif kind.kind == "Namespace":
        obj["status"] = {"phase": "Active"}
        # kube's namespace strategy: the namespace controller finalizes every namespace
        obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
    elif kind.kind == "Service":
        obj["status"] = {"loadBalancer": {}}
    elif kind.kind == "PersistentVolumeClaim" or kind.kind == "PersistentVolume":
        obj["status"] = {"phase": "Pending"}
    elif kind.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ReplicationController"):
        obj["status"] = {} if kind.kind != "StatefulSet" else {"replicas": 0, "availableReplicas": 0}
        if kind.kind in ("ReplicaSet", "ReplicationController"):
            obj["status"] = {"replicas": 0}
        if kind.kind == "DaemonSet":
            obj["status"] = {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                             "numberReady": 0}
    elif kind.kind in ("Job", "CronJob", "HorizontalPodAutoscaler", "Ingress"):
        obj["status"] = {"loadBalancer": {}} if kind.kind == "Ingress" else {}
        if kind.kind == "HorizontalPodAutoscaler":
            obj["status"] = {"currentReplicas": 0, "desiredReplicas": 0} if kind.version == "v1" else \
                {"desiredReplicas": 0}
    elif kind.kind == "PodDisruptionBudget":
        obj["status"] = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}


def _job_generate_selector(job: Obj) -> None:
    """kube's Job strategy: unless manualSelector, select pods by the job's uid and label the template."""
    spec = job.setdefault("spec", {})
    if spec.get("manualSelector") is True:
        return
    uid = job["metadata"]["uid"]
    name = job["metadata"].get("name", "")
    labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
              "controller-uid": uid, "job-name": name}
    tmpl_meta = spec.setdefault("template", {}).setdefault("metadata", {})
    tl = tmpl_meta.setdefault("labels", {})
    for k, v in labels.items():
        tl.setdefault(k, v)
    if not spec.get("selector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}


def _pod_create_status(pod: Obj) -> None:
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod)}


def qos_class(pod: Obj) -> str:
    """Guaranteed / Burstable / BestEffort, as kube computes it from requests and limits."""
    from k8py.api.quantity import parse_quantity

    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    any_set = False
    for c in containers:
        res = c.get("resources") or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        for name in ("cpu", "memory"):
            r = req.get(name)
            lv = lim.get(name)
            if r is not None or lv is not None:
                any_set = True
            if lv is None or r is not None and parse_quantity(str(r)) != parse_quantity(str(lv)):
                guaranteed = False
            if r is not None:
                requests[name] = r
            if lv is not None:
                limits[name] = lv
        if not all(lim.get(n) is not None for n in ("cpu", "memory")):
            guaranteed = False
    if not any_set:
        return "BestEffort"
    if guaranteed:
        return "Guaranteed"
    return "Burstable"


def prepare_for_update(kind: KindInfo, new: Obj, old: Obj) -> None:
    """Main-resource update: status comes from the old object when the kind has a
    status subresource; generation bumps when the spec changed."""
    meta = new.setdefault("metadata", {})
    old_meta = old.get("metadata") or {}
    # Immutable bookkeeping fields are carried over (validation reports attempts to change name etc.).
    for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        if k in old_meta:
            meta[k] = old_meta[k]
        else:
            meta.pop(k, None)
    if kind.has_status and kind.kind != "Namespace":
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    if kind.kind == "Namespace":
        new["status"] = copy.deepcopy(old.get("status") or {})
        # spec.finalizers may only change through /finalize
        if "spec" in old:
            new["spec"] = copy.deepcopy(old["spec"])
    if kind.kind in GENERATION_KINDS:
        gen = int(old_meta.get("generation") or 1)
        meta["generation"] = gen + 1 if spec_part(new) != spec_part(old) else gen
    else:
        meta.pop("generation", None)


def prepare_for_status_update(kind: KindInfo, new: Obj, old: Obj) -> Obj:
    """Status subresource: only status may change; everything else is the old object's."""
    out = copy.deepcopy(old)
    out["status"] = copy.deepcopy(new.get("status")) if new.get("status") is not None else {}
    if kind.kind == "Namespace":
        out["status"] = old.get("status") or {}
        phase = (new.get("status") or {}).get("phase")
        if phase:
            out["status"]["phase"] = phase
        out["status"]["conditions"] = (new.get("status") or {}).get("conditions") or []
        if not out["status"]["conditions"]:
            out["status"].pop("conditions")
    # metadata.resourceVersion of the request (for preconditions) is checked by the caller
    out["metadata"]["resourceVersion"] = (new.get("metadata") or {}).get("resourceVersion") or \
        old["metadata"].get("resourceVersion")
    return out
