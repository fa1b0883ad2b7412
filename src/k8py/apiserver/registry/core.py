"""core/v1 kinds with behaviour of their own: Pod, Namespace, Service, ServiceAccount,
ReplicationController, PersistentVolumeClaim, PersistentVolume, ResourceQuota, Node, Event,
Endpoints, Secret, ConfigMap, PodTemplate, ComponentStatus.

Each kind's strategy carries what ``kubectl get`` prints (``table``, as kube's
``pkg/printers/internalversion/printers.go``) and the field labels its field selectors may use
(``field_labels``, as ``pkg/apis/core/v1/conversion.go`` and the kind's ``GetAttrs``); the
columns and cells of each kind are declared just above its class."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from k8py.api import conversion, defaults, errors
from k8py.api.corev1 import now_rfc3339
from k8py.api.errors import FieldError
from k8py.api.registry import KindInfo
from k8py.api.selectors import FieldLabels, bool_field_path, field_path, format_labels, int_field_path
from k8py.api.tables import (
    AGE,
    CORE,
    META,
    NAME,
    Column,
    Row,
    Table,
    condition_true,
    containers_columns,
    human_duration,
    int_or_zero,
    meta_of,
    name_of,
    quantity,
    selector_column,
    since,
    spec_of,
    status_of,
    template_pod_spec,
    time_of,
)
from k8py.api.validation.pod import validate_ephemeral_containers_update
from k8py.apiserver.registry.base import Strategy

if TYPE_CHECKING:
    from k8py.apiserver.registry.serviceallocation import ServiceAllocation

Obj = dict[str, Any]

# --- Pod ---

def _is_restartable_init(container: Obj | None) -> bool:
    return container is not None and container.get("restartPolicy") == "Always"


def _later(a: datetime | None, b: Any) -> datetime | None:
    t = time_of(b)
    if t is None:
        return a
    return t if a is None or a < t else a


def _has_ready_condition(conditions: Iterable[Obj]) -> bool:
    # hasPodReadyCondition: any Ready condition with status True
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class _PodState(NamedTuple):
    ready: int
    total: int
    reason: str
    restarts: int
    last_restart: datetime | None


def _pod_state(pod: Obj, now: datetime) -> _PodState:
    """printPod's pass over the container statuses: the Ready, Status and Restarts cells."""
    spec = spec_of(pod)
    status = status_of(pod)
    meta = meta_of(pod)
    conditions = status.get("conditions") or []
    restarts = 0
    restartable_init_restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart: datetime | None = None
    last_restartable_init_restart: datetime | None = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = spec.get("initContainers") or []
    init_by_name = {c.get("name"): c for c in init_specs}
    total += sum(1 for c in init_specs if _is_restartable_init(c))

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        rc = int_or_zero(cs.get("restartCount"))
        restarts += rc
        last_term = (cs.get("lastState") or {}).get("terminated")
        if last_term is not None:
            last_restart = _later(last_restart, last_term.get("finishedAt"))
        restartable = _is_restartable_init(init_by_name.get(cs.get("name")))
        if restartable:
            restartable_init_restarts += rc
            if last_term is not None:
                last_restartable_init_restart = _later(last_restartable_init_restart, last_term.get("finishedAt"))
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term is not None and int_or_zero(term.get("exitCode")) == 0:
            continue
        if restartable and cs.get("started") is True:
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            # initialization failed
            if not term.get("reason"):
                if int_or_zero(term.get("signal")) != 0:
                    reason = f"Init:Signal:{int_or_zero(term.get('signal'))}"
                else:
                    reason = f"Init:ExitCode:{int_or_zero(term.get('exitCode'))}"
            else:
                reason = "Init:" + term["reason"]
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or condition_true(conditions, "Initialized"):
        restarts = restartable_init_restarts
        last_restart = last_restartable_init_restart
        has_running = False
        error_reason = ""
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int_or_zero(cs.get("restartCount"))
            last_term = (cs.get("lastState") or {}).get("terminated")
            if last_term is not None:
                last_restart = _later(last_restart, last_term.get("finishedAt"))
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            term = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None:
                if term.get("reason"):
                    reason = term["reason"]
                elif int_or_zero(term.get("signal")) != 0:
                    reason = f"Signal:{int_or_zero(term.get('signal'))}"
                else:
                    reason = f"ExitCode:{int_or_zero(term.get('exitCode'))}"
                if int_or_zero(term.get("exitCode")) != 0:
                    error_reason = reason
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # a "Completed" container with another still running is a partial completion
        if reason == "Completed":
            if has_running and _has_ready_condition(conditions):
                reason = "Running"
            elif error_reason:
                reason = error_reason
            elif has_running:
                reason = "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return _PodState(ready, total, reason, restarts, last_restart)


def _pod_restarts(r: Row) -> str:
    state = r.memo(_pod_state)
    if state.restarts != 0 and state.last_restart is not None:
        return f"{state.restarts} ({human_duration(r.now - state.last_restart)} ago)"
    return str(state.restarts)


def _pod_ip(pod: Obj) -> str:
    # the internal type keeps only podIPs; v1 podIP converts into podIPs[0]
    status = status_of(pod)
    ips = status.get("podIPs") or []
    if ips and isinstance(ips[0], dict) and ips[0].get("ip"):
        return str(ips[0]["ip"])
    return str(status.get("podIP") or "")


def _readiness_gates(pod: Obj) -> str:
    gates = spec_of(pod).get("readinessGates") or []
    if not gates:
        return "<none>"
    conditions = status_of(pod).get("conditions") or []
    true_count = 0
    for g in gates:
        for c in conditions:
            if c.get("type") == g.get("conditionType"):
                if c.get("status") == "True":
                    true_count += 1
                break
    return f"{true_count}/{len(gates)}"


_POD_SUCCEEDED: Final = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                          "message": "The pod has completed successfully."}]
_POD_FAILED: Final = [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]


def _pod_conditions(pod: Obj) -> list[Obj]:
    phase = status_of(pod).get("phase")
    if phase == "Succeeded":
        return _POD_SUCCEEDED
    if phase == "Failed":
        return _POD_FAILED
    return []


POD_TABLE: Final = Table(
    NAME,
    Column("Ready", doc="The aggregate readiness state of this pod for accepting traffic.",
           cell=lambda r: "{0.ready}/{0.total}".format(r.memo(_pod_state))),
    Column("Status", doc="The aggregate status of the containers in this pod.",
           cell=lambda r: r.memo(_pod_state).reason),
    Column("Restarts", doc="The number of times the containers in this pod have been restarted and when the "
                           "last container in this pod has restarted.", cell=_pod_restarts),
    AGE,
    Column("IP", priority=1, doc=(CORE + "PodStatus", "podIP"), cell=lambda r: _pod_ip(r.obj) or "<none>"),
    Column("Node", priority=1, doc=(CORE + "PodSpec", "nodeName"),
           cell=lambda r: spec_of(r.obj).get("nodeName") or "<none>"),
    Column("Nominated Node", priority=1, doc=(CORE + "PodStatus", "nominatedNodeName"),
           cell=lambda r: status_of(r.obj).get("nominatedNodeName") or "<none>"),
    Column("Readiness Gates", priority=1, doc=(CORE + "PodSpec", "readinessGates"),
           cell=lambda r: _readiness_gates(r.obj)),
    conditions=_pod_conditions,
)

POD_FIELD_LABELS: Final = FieldLabels.of({
    "spec.nodeName": field_path("spec", "nodeName"),
    "spec.restartPolicy": field_path("spec", "restartPolicy"),
    "spec.schedulerName": field_path("spec", "schedulerName"),
    "spec.serviceAccountName": field_path("spec", "serviceAccountName"),
    "spec.hostNetwork": bool_field_path("spec", "hostNetwork"),
    "status.phase": field_path("status", "phase"),
    "status.podIP": _pod_ip,
    "status.nominatedNodeName": field_path("status", "nominatedNodeName"),
}, namespaced=True, aliases={"spec.host": "spec.nodeName"}, accept_only=("status.podIPs",))


class PodStrategy(Strategy):
    group, kind = "", "Pod"
    table = POD_TABLE
    field_labels = POD_FIELD_LABELS
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

    def prepare_for_subresource_update(self, kind: KindInfo, sub: str, new: Obj, old: Obj) -> Obj:
        """``pods/ephemeralcontainers`` (kube's podEphemeralContainersStrategy): only
        ``spec.ephemeralContainers`` changes, defaulted as a pod's containers are; a changed
        spec bumps the generation."""
        if sub != "ephemeralcontainers":
            return super().prepare_for_subresource_update(kind, sub, new, old)
        out = self.prepare_for_status_update(kind, {"metadata": new.get("metadata") or {},
                                                    "status": old.get("status")}, old)
        ecs = (new.get("spec") or {}).get("ephemeralContainers")
        out.setdefault("spec", {})["ephemeralContainers"] = copy.deepcopy(ecs) if isinstance(ecs, list) else []
        if not out["spec"]["ephemeralContainers"]:
            del out["spec"]["ephemeralContainers"]
        defaults.set_defaults(kind, out)
        if out.get("spec") != old.get("spec"):
            out["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1
        return out

    def validate_subresource_update(self, kind: KindInfo, sub: str, new: Obj, old: Obj) -> list[FieldError]:
        if sub != "ephemeralcontainers":
            return super().validate_subresource_update(kind, sub, new, old)
        return validate_ephemeral_containers_update(new, old)

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


# --- Namespace ---

NAMESPACE_TABLE: Final = Table(
    NAME,
    Column("Status", doc="The status of the namespace", cell=lambda r: status_of(r.obj).get("phase", "")),
    AGE,
)

NAMESPACE_FIELD_LABELS: Final = FieldLabels.of({"status.phase": field_path("status", "phase")}, namespaced=False)


class NamespaceStrategy(Strategy):
    group, kind = "", "Namespace"
    table = NAMESPACE_TABLE
    field_labels = NAMESPACE_FIELD_LABELS
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


# --- Service ---

def load_balancer_ingress(status: Obj) -> str:
    """``loadBalancerStatusStringer`` with wide=true (the server always prints wide)."""
    seen = set()
    for ing in ((status.get("loadBalancer") or {}).get("ingress") or []):
        if ing.get("ip"):
            seen.add(ing["ip"])
        elif ing.get("hostname"):
            seen.add(ing["hostname"])
    return ",".join(sorted(seen))


def _service_external_ip(svc: Obj) -> str:
    spec = spec_of(svc)
    t = spec.get("type")
    external = spec.get("externalIPs") or []
    if t in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if t == "LoadBalancer":
        lb = load_balancer_ingress(status_of(svc))
        if external:
            return ",".join((lb.split(",") if lb else []) + list(external))
        return lb or "<pending>"
    if t == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _port_string(ports: Sequence[Obj]) -> str:
    pieces = []
    for p in ports:
        proto = p.get("protocol") or "TCP"
        node_port = int_or_zero(p.get("nodePort"))
        if node_port > 0:
            pieces.append(f"{int_or_zero(p.get('port'))}:{node_port}/{proto}")
        else:
            pieces.append(f"{int_or_zero(p.get('port'))}/{proto}")
    return ",".join(pieces)


def _cluster_ip(svc: Obj) -> str:
    spec = spec_of(svc)
    cluster_ips = spec.get("clusterIPs") or []
    return cluster_ips[0] if cluster_ips else (spec.get("clusterIP") or "<none>")


SERVICE_TABLE: Final = Table(
    NAME,
    Column("Type", doc=(CORE + "ServiceSpec", "type"), cell=lambda r: spec_of(r.obj).get("type", "")),
    Column("Cluster-IP", doc=(CORE + "ServiceSpec", "clusterIP"), cell=lambda r: _cluster_ip(r.obj)),
    Column("External-IP", doc=(CORE + "ServiceSpec", "externalIPs"), cell=lambda r: _service_external_ip(r.obj)),
    Column("Port(s)", doc=(CORE + "ServiceSpec", "ports"),
           cell=lambda r: _port_string(spec_of(r.obj).get("ports") or []) or "<none>"),
    AGE,
    selector_column(CORE + "ServiceSpec", fmt=format_labels),
)

SERVICE_FIELD_LABELS: Final = FieldLabels.of({
    "spec.clusterIP": field_path("spec", "clusterIP"),
    "spec.type": field_path("spec", "type"),
}, namespaced=True)


class ServiceStrategy(Strategy):
    """Services get their ClusterIPs and NodePorts from :class:`ServiceAllocation` before they
    are validated (kube's service REST BeginCreate/BeginUpdate), and give them back when deleted."""

    group, kind = "", "Service"
    table = SERVICE_TABLE
    field_labels = SERVICE_FIELD_LABELS
    reset_status_on_create = True
    return_deleted_object = True

    def __init__(self, allocation: ServiceAllocation | None) -> None:
        self.allocation = allocation  # None: allocate nothing (tests of create/update semantics)

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"loadBalancer": {}}

    async def begin_write(self, kind: KindInfo, obj: Obj, old: Obj | None, dry: bool) -> None:
        if self.allocation is not None:
            await self.allocation.allocate(obj, old, dry)
            return
        # no ranges (pure tests of create/update semantics): what a single-stack IPv4 cluster fills
        spec = obj.setdefault("spec", {})
        if spec.get("type") != "ExternalName":
            spec.setdefault("ipFamilyPolicy", (old or {}).get("spec", {}).get("ipFamilyPolicy") or "SingleStack")
            if not spec.get("ipFamilies"):
                first = spec.get("clusterIP")
                spec["ipFamilies"] = ["IPv6" if isinstance(first, str) and ":" in first else "IPv4"]

    async def after_delete(self, kind: KindInfo, obj: Obj) -> None:
        if self.allocation is not None:
            await self.allocation.release(obj)


# --- ServiceAccount ---

class ServiceAccountStrategy(Strategy):
    group, kind = "", "ServiceAccount"
    table = Table(NAME, AGE)
    return_deleted_object = True


# --- ReplicationController ---

RC_TABLE: Final = Table(
    NAME,
    Column("Desired", "integer", doc=(CORE + "ReplicationControllerSpec", "replicas"),
           cell=lambda r: int_or_zero(spec_of(r.obj).get("replicas", 1))),
    Column("Current", "integer", doc=(CORE + "ReplicationControllerStatus", "replicas"),
           cell=lambda r: int_or_zero(status_of(r.obj).get("replicas"))),
    Column("Ready", "integer", doc=(CORE + "ReplicationControllerStatus", "readyReplicas"),
           cell=lambda r: int_or_zero(status_of(r.obj).get("readyReplicas"))),
    AGE,
    *containers_columns(template_pod_spec),
    selector_column(CORE + "ReplicationControllerSpec", fmt=format_labels),
)

RC_FIELD_LABELS: Final = FieldLabels.of({"status.replicas": int_field_path("status", "replicas")}, namespaced=True)


class ReplicationControllerStrategy(Strategy):
    group, kind = "", "ReplicationController"
    table = RC_TABLE
    field_labels = RC_FIELD_LABELS
    generation = True
    reset_status_on_create = True
    scalable = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"replicas": 0}

    def scale_selector(self, obj: Obj) -> str:
        sel = (obj.get("spec") or {}).get("selector") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))


# --- PersistentVolume, PersistentVolumeClaim ---

_ACCESS_MODES: Final = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                        ("ReadWriteOncePod", "RWOP"))


def _access_modes(modes: Sequence[str] | None) -> str:
    present = set(modes or ())
    return ",".join(short for mode, short in _ACCESS_MODES if mode in present)


_BETA_STORAGE_CLASS: Final = "volume.beta.kubernetes.io/storage-class"


def _storage_class(obj: Obj) -> str:
    ann = meta_of(obj).get("annotations") or {}
    if _BETA_STORAGE_CLASS in ann:
        return ann[_BETA_STORAGE_CLASS]
    return spec_of(obj).get("storageClassName") or ""


def _volume_phase(obj: Obj) -> str:
    return "Terminating" if meta_of(obj).get("deletionTimestamp") else status_of(obj).get("phase", "")


def _pv_claim(pv: Obj) -> str:
    ref = spec_of(pv).get("claimRef")
    return "" if ref is None else f"{ref.get('namespace', '')}/{ref.get('name', '')}"


def _bound(pvc: Obj) -> bool:
    return bool(spec_of(pvc).get("volumeName"))


def _volume_columns(what: str, definition: str) -> tuple[Column, Column]:
    """The VolumeAttributesClass column and, after Age, the wide VolumeMode column."""
    return (
        Column("VolumeAttributesClass", doc=f"VolumeAttributesClass of the {what}",
               cell=lambda r: spec_of(r.obj).get("volumeAttributesClassName") or "<unset>"),
        Column("VolumeMode", priority=1, doc=(definition, "volumeMode"),
               cell=lambda r: spec_of(r.obj).get("volumeMode") or "<unset>"),
    )


_PV_VAC, _PV_MODE = _volume_columns("pv", CORE + "PersistentVolumeSpec")
_PVC_VAC, _PVC_MODE = _volume_columns("pvc", CORE + "PersistentVolumeClaimSpec")

PV_TABLE: Final = Table(
    NAME,
    Column("Capacity", doc=(CORE + "PersistentVolumeSpec", "capacity"),
           cell=lambda r: quantity((spec_of(r.obj).get("capacity") or {}).get("storage"))),
    Column("Access Modes", doc=(CORE + "PersistentVolumeSpec", "accessModes"),
           cell=lambda r: _access_modes(spec_of(r.obj).get("accessModes"))),
    Column("Reclaim Policy", doc=(CORE + "PersistentVolumeSpec", "persistentVolumeReclaimPolicy"),
           cell=lambda r: spec_of(r.obj).get("persistentVolumeReclaimPolicy", "")),
    Column("Status", doc=(CORE + "PersistentVolumeStatus", "phase"), cell=lambda r: _volume_phase(r.obj)),
    Column("Claim", doc=(CORE + "PersistentVolumeSpec", "claimRef"), cell=lambda r: _pv_claim(r.obj)),
    Column("StorageClass", doc="StorageClass of the pv", cell=lambda r: _storage_class(r.obj)),
    _PV_VAC,
    Column("Reason", doc=(CORE + "PersistentVolumeStatus", "reason"),
           cell=lambda r: status_of(r.obj).get("reason", "")),
    AGE,
    _PV_MODE,
)

PVC_TABLE: Final = Table(
    NAME,
    Column("Status", doc=(CORE + "PersistentVolumeClaimStatus", "phase"), cell=lambda r: _volume_phase(r.obj)),
    Column("Volume", doc=(CORE + "PersistentVolumeClaimSpec", "volumeName"),
           cell=lambda r: spec_of(r.obj).get("volumeName", "")),
    # capacity and access modes are the bound volume's: empty until bound
    Column("Capacity", doc=(CORE + "PersistentVolumeClaimStatus", "capacity"),
           cell=lambda r: quantity((status_of(r.obj).get("capacity") or {}).get("storage")) if _bound(r.obj)
           else ""),
    Column("Access Modes", doc=(CORE + "PersistentVolumeClaimStatus", "accessModes"),
           cell=lambda r: _access_modes(status_of(r.obj).get("accessModes")) if _bound(r.obj) else ""),
    Column("StorageClass", doc="StorageClass of the pvc", cell=lambda r: _storage_class(r.obj)),
    _PVC_VAC,
    AGE,
    _PVC_MODE,
)


class PersistentVolumeClaimStrategy(Strategy):
    group, kind = "", "PersistentVolumeClaim"
    table = PVC_TABLE
    generation = True
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"phase": "Pending"}


class PersistentVolumeStrategy(PersistentVolumeClaimStrategy):
    """kube's PV strategy: ``status.lastPhaseTransitionTime`` is set at creation and whenever a
    status write changes the phase without setting a new time of its own."""

    group, kind = "", "PersistentVolume"
    table = PV_TABLE
    generation = False

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"phase": "Pending", "lastPhaseTransitionTime": now_rfc3339()}

    def prepare_for_status_update(self, kind: KindInfo, new: Obj, old: Obj) -> Obj:
        out = super().prepare_for_status_update(kind, new, old)
        st, was = out["status"], status_of(old)
        if st.get("phase") != was.get("phase") and \
                st.get("lastPhaseTransitionTime") in (None, was.get("lastPhaseTransitionTime")):
            st["lastPhaseTransitionTime"] = now_rfc3339()
        return out


# --- ResourceQuota ---

def _quota(rq: Obj, now: datetime) -> tuple[str, str]:
    status = status_of(rq)
    hard = status.get("hard") or {}
    used = status.get("used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for res in sorted(hard):
        pieces = res.split(".")
        target = limits if len(pieces) > 1 and pieces[0] == "limits" else requests
        target.append(f"{res}: {quantity(used.get(res))}/{quantity(hard[res])}")
    return ", ".join(requests), ", ".join(limits)


RESOURCE_QUOTA_TABLE: Final = Table(
    NAME,
    Column("Request", doc="Request represents a minimum amount of cpu/memory that a container may consume.",
           cell=lambda r: r.memo(_quota)[0]),
    Column("Limit", doc="Limits control the maximum amount of cpu/memory that a container may use independent "
                        "of contention on the node.", cell=lambda r: r.memo(_quota)[1]),
    AGE,
)


class ResourceQuotaStrategy(Strategy):
    group, kind = "", "ResourceQuota"
    table = RESOURCE_QUOTA_TABLE
    reset_status_on_create = True


# --- Node ---

_NODE_ROLE_PREFIX: Final = "node-role.kubernetes.io/"


def _node_status(node: Obj) -> str:
    states: list[str] = []
    for c in status_of(node).get("conditions") or []:
        if c.get("type") == "Ready":
            states = ["Ready" if c.get("status") == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if spec_of(node).get("unschedulable"):
        states.append("SchedulingDisabled")
    return ",".join(states)


def _node_roles(node: Obj) -> str:
    roles = set()
    for k, v in (meta_of(node).get("labels") or {}).items():
        if k.startswith(_NODE_ROLE_PREFIX):
            if role := k[len(_NODE_ROLE_PREFIX):]:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, type_: str) -> str:
    for a in status_of(node).get("addresses") or []:
        if a.get("type") == type_:
            return a.get("address", "")
    return "<none>"


def _node_info(node: Obj) -> Obj:
    return status_of(node).get("nodeInfo") or {}


class NodeStrategy(Strategy):
    group, kind = "", "Node"
    table = Table(
        NAME,
        Column("Status", doc="The status of the node", cell=lambda r: _node_status(r.obj)),
        Column("Roles", doc="The roles of the node", cell=lambda r: _node_roles(r.obj)),
        AGE,
        Column("Version", doc=(CORE + "NodeSystemInfo", "kubeletVersion"),
               cell=lambda r: _node_info(r.obj).get("kubeletVersion", "")),
        Column("Internal-IP", priority=1, doc=(CORE + "NodeStatus", "addresses"),
               cell=lambda r: _node_address(r.obj, "InternalIP")),
        Column("External-IP", priority=1, doc=(CORE + "NodeStatus", "addresses"),
               cell=lambda r: _node_address(r.obj, "ExternalIP")),
        Column("OS-Image", priority=1, doc=(CORE + "NodeSystemInfo", "osImage"),
               cell=lambda r: _node_info(r.obj).get("osImage") or "<unknown>"),
        Column("Kernel-Version", priority=1, doc=(CORE + "NodeSystemInfo", "kernelVersion"),
               cell=lambda r: _node_info(r.obj).get("kernelVersion") or "<unknown>"),
        Column("Container-Runtime", priority=1, doc=(CORE + "NodeSystemInfo", "containerRuntimeVersion"),
               cell=lambda r: _node_info(r.obj).get("containerRuntimeVersion") or "<unknown>"),
    )
    field_labels = FieldLabels.of({"spec.unschedulable": bool_field_path("spec", "unschedulable")}, namespaced=False)


# --- Event ---

def _event_first_seen(ev: Obj, now: datetime) -> str:
    first = ev.get("firstTimestamp")
    return since(first, now) if first else since(ev.get("eventTime"), now)


def _event_last_seen(r: Row) -> str:
    ev = r.obj
    series = ev.get("series")
    if series is not None:
        return since(series.get("lastObservedTime"), r.now)
    last = ev.get("lastTimestamp")
    return since(last, r.now) if last else _event_first_seen(ev, r.now)


def _event_count(ev: Obj) -> int:
    series = ev.get("series")
    if series is not None:
        return int_or_zero(series.get("count"))
    # singleton events have no count in the new API
    return int_or_zero(ev.get("count")) or 1


def _event_object(ev: Obj) -> str:
    io = ev.get("involvedObject") or {}
    kind = (io.get("kind") or "").lower()
    return f"{kind}/{io['name']}" if io.get("name") else kind


def _event_source_cell(ev: Obj) -> str:
    source = ev.get("source") or {}
    component = source.get("component") or ev.get("reportingComponent") or ""
    instance = source.get("host") or ev.get("reportingInstance") or ""
    return f"{component}, {instance}" if instance else component


def _event_view(obj: Obj) -> Obj:
    # kube prints the internal (core-shaped) Event, whichever group served it
    if obj.get("apiVersion") == conversion.EVENTS_V1:
        return conversion.convert(obj, conversion.CORE_EVENT)
    return obj


EVENT_TABLE: Final = Table(
    Column("Last Seen", doc=(CORE + "Event", "lastTimestamp"), cell=_event_last_seen),
    Column("Type", doc=(CORE + "Event", "type"), cell=lambda r: r.obj.get("type", "")),
    Column("Reason", doc=(CORE + "Event", "reason"), cell=lambda r: r.obj.get("reason", "")),
    Column("Object", doc=(CORE + "Event", "involvedObject"), cell=lambda r: _event_object(r.obj)),
    Column("Subobject", priority=1, doc=(CORE + "ObjectReference", "fieldPath"),
           cell=lambda r: (r.obj.get("involvedObject") or {}).get("fieldPath", "")),
    Column("Source", priority=1, doc=(CORE + "Event", "source"), cell=lambda r: _event_source_cell(r.obj)),
    Column("Message", doc=(CORE + "Event", "message"), cell=lambda r: (r.obj.get("message") or "").strip()),
    Column("First Seen", priority=1, doc=(CORE + "Event", "firstTimestamp"),
           cell=lambda r: _event_first_seen(r.obj, r.now)),
    Column("Count", priority=1, doc=(CORE + "Event", "count"), cell=lambda r: _event_count(r.obj)),
    Column("Name", priority=1, format="name", doc=(META, "name"), cell=lambda r: name_of(r.obj)),
    view=_event_view,
)


def event_source(ev: Obj) -> str:
    """The ``source`` field label. core/v1: source.component, else reportingComponent;
    events.k8s.io/v1: deprecatedSource, else reportingController."""
    src = ev.get("source") or ev.get("deprecatedSource") or {}
    return str(src.get("component") or ev.get("reportingComponent") or ev.get("reportingController") or "")


EVENT_REFERENCE_FIELDS: Final = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")

EVENT_FIELD_LABELS: Final = FieldLabels.of({
    **{f"involvedObject.{k}": field_path("involvedObject", k) for k in EVENT_REFERENCE_FIELDS},
    "reason": field_path("reason"),
    "reportingComponent": field_path("reportingComponent"),
    "source": event_source,
    "type": field_path("type"),
}, namespaced=True)


class EventStrategy(Strategy):
    group, kind = "", "Event"
    allow_create_on_update = True
    table = EVENT_TABLE
    field_labels = EVENT_FIELD_LABELS


# --- Endpoints ---

def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _format_endpoints(obj: Obj) -> str:
    subsets = obj.get("subsets") or []
    if not subsets:
        return "<none>"
    out: list[str] = []
    limit = 3
    more = False
    count = 0
    for ss in subsets:
        addrs = ss.get("addresses") or []
        ports = ss.get("ports") or []
        if not ports:
            # headless services with no ports
            count += len(addrs)
            for a in addrs:
                if len(out) == limit:
                    more = True
                    break
                out.append(a.get("ip", ""))
            continue
        for p in ports:
            count += len(addrs)
            for a in addrs:
                if len(out) == limit:
                    more = True
                    break
                out.append(_join_host_port(a.get("ip", ""), int_or_zero(p.get("port"))))
    ret = ",".join(out)
    return f"{ret} + {count - limit} more..." if more else ret


class EndpointsStrategy(Strategy):
    group, kind = "", "Endpoints"
    allow_create_on_update = True
    table = Table(
        NAME,
        Column("Endpoints", doc=(CORE + "Endpoints", "subsets"), cell=lambda r: _format_endpoints(r.obj)),
        AGE,
    )


# --- Secret, ConfigMap, PodTemplate ---

class SecretStrategy(Strategy):
    group, kind = "", "Secret"
    table = Table(
        NAME,
        Column("Type", doc=(CORE + "Secret", "type"), cell=lambda r: r.obj.get("type", "")),
        Column("Data", doc=(CORE + "Secret", "data"), cell=lambda r: len(r.obj.get("data") or {})),
        AGE,
    )
    field_labels = FieldLabels.of({"type": field_path("type")}, namespaced=True)


class ConfigMapStrategy(Strategy):
    group, kind = "", "ConfigMap"
    table = Table(
        NAME,
        Column("Data", doc=(CORE + "ConfigMap", "data"),
               cell=lambda r: len(r.obj.get("data") or {}) + len(r.obj.get("binaryData") or {})),
        AGE,
    )


def _template(obj: Obj) -> Obj:
    return obj.get("template") or {}


class PodTemplateStrategy(Strategy):
    group, kind = "", "PodTemplate"
    table = Table(
        NAME,
        *containers_columns(lambda o: _template(o).get("spec"), priority=0),
        Column("Pod Labels", doc="The labels for the pod template.",
               cell=lambda r: format_labels((_template(r.obj).get("metadata") or {}).get("labels"))),
    )


# --- ComponentStatus ---

def _component_health(cs: Obj, now: datetime) -> tuple[str, str, str]:
    for c in cs.get("conditions") or []:
        if c.get("type") == "Healthy":
            return ("Healthy" if c.get("status") == "True" else "Unhealthy", c.get("message", ""),
                    c.get("error", ""))
    return "Unknown", "", ""


class ComponentStatusStrategy(Strategy):
    group, kind = "", "ComponentStatus"
    table = Table(
        NAME,
        Column("Status", doc="Status of the component conditions", cell=lambda r: r.memo(_component_health)[0]),
        Column("Message", doc="Message of the component conditions", cell=lambda r: r.memo(_component_health)[1]),
        Column("Error", doc="Error of the component conditions", cell=lambda r: r.memo(_component_health)[2]),
    )


STRATEGIES: list[type[Strategy]] = [
    PodStrategy, NamespaceStrategy, ServiceAccountStrategy, ReplicationControllerStrategy,
    PersistentVolumeClaimStrategy, PersistentVolumeStrategy, ResourceQuotaStrategy, NodeStrategy, EventStrategy,
    EndpointsStrategy, SecretStrategy, ConfigMapStrategy, PodTemplateStrategy, ComponentStatusStrategy,
]
