"""core/v1 kinds with behaviour of their own: Pod, Namespace, Service, ServiceAccount,
ReplicationController, PersistentVolumeClaim, PersistentVolume, ResourceQuota, Node, Event."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from k8py.api import defaults, errors
from k8py.api.corev1 import now_rfc3339
from k8py.api.registry import KindInfo
from k8py.apiserver.registry.base import Strategy

if TYPE_CHECKING:
    from k8py.apiserver.registry.serviceallocation import ServiceAllocation

Obj = dict[str, Any]


class PodStrategy(Strategy):
    group, kind = "", "Pod"
    generation = True
    return_deleted_object = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"phase": "Pending"}

    def finish_create(self, kind: KindInfo, obj: Obj) -> None:
        # kube computes the QoS class from the defaulted pod (limits copied into requests), and
        # counts only non-zero quantities: cpu "0" everywhere is BestEffort
        obj.setdefault("status", {})["qosClass"] = defaults.pod_qos_class(obj)

    def graceful_delete(self, kind: KindInfo, current: Obj, opts: Obj) -> int:
        """kube's pod CheckGracefulDelete: a pod on a node that has not finished gets its grace
        period (the request's, else the spec's, else 30 s) for the node agent to stop it;
        unscheduled or finished pods go at once."""
        spec = current.get("spec") or {}
        phase = (current.get("status") or {}).get("phase")
        gp = opts.get("gracePeriodSeconds")
        if gp is None:
            gp = spec.get("terminationGracePeriodSeconds", 30)
        if spec.get("nodeName") and phase not in ("Succeeded", "Failed") and gp > 0:
            return int(gp)
        return 0

    def delete_on_update(self, kind: KindInfo, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        if (obj.get("spec") or {}).get("nodeName") and meta.get("deletionGracePeriodSeconds", 0) > 0:
            return False  # the node agent finishes graceful pod deletion
        return super().delete_on_update(kind, obj)


def bind_pod(current: Obj, node: str, want_uid: str | None, name: str) -> Obj:
    """``pods/binding``: assign the pod to ``node`` (kube's BindingREST.assignPod)."""
    cm = current["metadata"]
    if want_uid and want_uid != cm.get("uid"):
        raise errors.conflict("pods", "", name, "Precondition failed: UID mismatch")
    if cm.get("deletionTimestamp"):
        raise errors.conflict("pods", "", name, "pod is being deleted, cannot be assigned to a host")
    spec = current.setdefault("spec", {})
    if spec.get("nodeName"):
        raise errors.conflict("pods", "", name, f'pod {name} is already assigned to node "{spec["nodeName"]}"')
    spec["nodeName"] = node
    conds = current.setdefault("status", {}).setdefault("conditions", [])
    conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
    conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                  "lastTransitionTime": now_rfc3339()})
    return current


class NamespaceStrategy(Strategy):
    group, kind = "", "Namespace"
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        # kube's namespace strategy: the namespace controller finalizes every namespace
        obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
        return {"phase": "Active"}

    def keep_status(self, kind: KindInfo, new: Obj, old: Obj) -> None:
        new["status"] = copy.deepcopy(old.get("status") or {})
        # spec.finalizers may only change through /finalize
        if "spec" in old:
            new["spec"] = copy.deepcopy(old["spec"])

    def prepare_for_status_update(self, kind: KindInfo, new: Obj, old: Obj) -> Obj:
        out = super().prepare_for_status_update(kind, new, old)
        out["status"] = copy.deepcopy(old.get("status") or {})
        phase = (new.get("status") or {}).get("phase")
        if phase:
            out["status"]["phase"] = phase
        out["status"]["conditions"] = (new.get("status") or {}).get("conditions") or []
        if not out["status"]["conditions"]:
            out["status"].pop("conditions")
        return out

    def waits_for_finalizers(self, kind: KindInfo, current: Obj) -> bool:
        return bool((current.get("spec") or {}).get("finalizers"))

    def terminating(self, kind: KindInfo, obj: Obj) -> Obj:
        obj["metadata"].setdefault("deletionGracePeriodSeconds", 0)
        obj.setdefault("status", {})["phase"] = "Terminating"
        return obj

    def delete_on_update(self, kind: KindInfo, obj: Obj) -> bool:
        # kube's ShouldDeleteNamespaceDuringUpdate: spec.finalizers must be empty too
        return super().delete_on_update(kind, obj) and not self.waits_for_finalizers(kind, obj)

    @staticmethod
    def finalize(current: Obj, finalizers: list[Any]) -> Obj:
        """``namespaces/finalize``: replace spec.finalizers."""
        current.setdefault("spec", {})["finalizers"] = finalizers
        if not finalizers:
            current["spec"].pop("finalizers")
        return current


class ServiceStrategy(Strategy):
    """Services get their ClusterIPs and NodePorts from :class:`ServiceAllocation` before they
    are validated (kube's service REST BeginCreate/BeginUpdate), and give them back when deleted."""

    group, kind = "", "Service"
    reset_status_on_create = True
    return_deleted_object = True

    def __init__(self, allocation: ServiceAllocation | None) -> None:
        self.allocation = allocation  # None: allocate nothing (tests of create/update semantics)

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"loadBalancer": {}}

    async def begin_write(self, kind: KindInfo, obj: Obj, old: Obj | None, dry: bool) -> None:
        if self.allocation is not None:
            await self.allocation.allocate(obj, old, dry)

    async def after_delete(self, kind: KindInfo, obj: Obj) -> None:
        if self.allocation is not None:
            await self.allocation.release(obj)


class ServiceAccountStrategy(Strategy):
    group, kind = "", "ServiceAccount"
    return_deleted_object = True


class ReplicationControllerStrategy(Strategy):
    group, kind = "", "ReplicationController"
    generation = True
    reset_status_on_create = True
    scalable = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"replicas": 0}

    def scale_selector(self, obj: Obj) -> str:
        sel = (obj.get("spec") or {}).get("selector") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))


class PersistentVolumeClaimStrategy(Strategy):
    group, kind = "", "PersistentVolumeClaim"
    generation = True
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"phase": "Pending"}


class PersistentVolumeStrategy(PersistentVolumeClaimStrategy):
    group, kind = "", "PersistentVolume"
    generation = False


class ResourceQuotaStrategy(Strategy):
    group, kind = "", "ResourceQuota"
    reset_status_on_create = True


STRATEGIES: list[type[Strategy]] = [PodStrategy, NamespaceStrategy, ServiceAccountStrategy, ReplicationControllerStrategy,
              PersistentVolumeClaimStrategy, PersistentVolumeStrategy, ResourceQuotaStrategy]
