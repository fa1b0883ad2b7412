"""Kinds of the smaller groups: networking (Ingress, IngressClass, NetworkPolicy), autoscaling
(HorizontalPodAutoscaler), policy (PodDisruptionBudget), discovery (EndpointSlice),
apiregistration (APIService), storage (StorageClass, VolumeAttributesClass, VolumeAttachment,
CSINode, CSIDriver), rbac (RoleBinding, ClusterRoleBinding), coordination (Lease), scheduling
(PriorityClass), node (RuntimeClass), admissionregistration (the webhook configurations) and
events.k8s.io's Event. Most differ from the generic strategy only in their bookkeeping and in
what ``kubectl get`` prints for them, declared with each class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from k8py.api import conversion
from k8py.api.corev1 import now_rfc3339
from k8py.api.registry import KindInfo
from k8py.api.selectors import (
    META_GETTERS,
    FieldLabels,
    field_path,
    format_label_selector,
    reject_not_supported,
)
from k8py.api.tables import (
    AGE,
    META,
    NAME,
    Column,
    Table,
    int_or_zero,
    meta_of,
    name_of,
    quantity,
    spec_of,
    status_of,
)
from k8py.apiserver.registry.base import Strategy
from k8py.apiserver.registry.core import (
    EVENT_REFERENCE_FIELDS,
    EVENT_TABLE,
    event_source,
    load_balancer_ingress,
)

Obj = dict[str, Any]


def _ingress_hosts(rules: Sequence[Obj]) -> str:
    out: list[str] = []
    limit = 3
    more = False
    for r in rules:
        if len(out) == limit:
            more = True
        if not more and r.get("host"):
            out.append(r["host"])
    if not out:
        return "*"
    ret = ",".join(out)
    return f"{ret} + {len(rules) - limit} more..." if more else ret


class IngressStrategy(Strategy):
    group, kind = "networking.k8s.io", "Ingress"
    table = Table(
        NAME,
        Column("Class", doc="The name of the IngressClass resource that should be used for additional configuration",
               cell=lambda r: spec_of(r.obj).get("ingressClassName") or "<none>"),
        Column("Hosts", doc="Hosts that incoming requests are matched against before the ingress rule",
               cell=lambda r: _ingress_hosts(spec_of(r.obj).get("rules") or [])),
        Column("Address", doc="Address is a list containing ingress points for the load-balancer",
               cell=lambda r: load_balancer_ingress(status_of(r.obj))),
        Column("Ports", doc="Ports of TLS configurations that open",
               cell=lambda r: "80, 443" if spec_of(r.obj).get("tls") else "80"),
        AGE,
    )
    generation = True
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"loadBalancer": {}}


def _ingressclass_parameters(ic: Obj) -> str:
    params = spec_of(ic).get("parameters")
    if params is None:
        return "<none>"
    p = params.get("kind", "")
    if params.get("apiGroup") is not None:
        p += "." + params["apiGroup"]
    return p + "/" + params.get("name", "")


class IngressClassStrategy(Strategy):
    group, kind = "networking.k8s.io", "IngressClass"
    table = Table(
        NAME,
        Column("Controller", doc="Controller that is responsible for handling this class",
               cell=lambda r: spec_of(r.obj).get("controller", "")),
        Column("Parameters", doc="A reference to a resource with additional parameters",
               cell=lambda r: _ingressclass_parameters(r.obj)),
        AGE,
    )
    generation = True


class NetworkPolicyStrategy(Strategy):
    group, kind = "networking.k8s.io", "NetworkPolicy"
    table = Table(
        NAME,
        # podSelector is a struct, never nil: an absent one is the empty (match-all) selector
        Column("Pod-Selector", doc=("io.k8s.api.networking.v1.NetworkPolicySpec", "podSelector"),
               cell=lambda r: format_label_selector(spec_of(r.obj).get("podSelector") or {})),
        AGE,
    )
    generation = True


def _hpa_metrics(specs: Sequence[Obj], statuses: Sequence[Obj]) -> str:
    if not specs:
        return "<none>"
    out: list[str] = []
    limit = 2
    for i, spec in enumerate(specs):
        st = statuses[i] if len(statuses) > i else {}
        t = spec.get("type")
        if t in ("External", "Object"):
            key = t.lower()
            target = (spec.get(key) or {}).get("target") or {}
            cur = (st.get(key) or {}).get("current") if st.get(key) else None
            if target.get("averageValue") is not None:
                current = cur.get("averageValue") if cur and cur.get("averageValue") is not None else "<unknown>"
                out.append(f"{current}/{target['averageValue']} (avg)")
            else:
                current = quantity(cur.get("value")) if cur is not None else "<unknown>"
                out.append(f"{current}/{quantity(target.get('value'))}")
        elif t == "Pods":
            target = (spec.get("pods") or {}).get("target") or {}
            cur = (st.get("pods") or {}).get("current") if st.get("pods") else None
            current = quantity(cur.get("averageValue")) if cur is not None else "<unknown>"
            out.append(f"{current}/{quantity(target.get('averageValue'))}")
        elif t in ("Resource", "ContainerResource"):
            key = "resource" if t == "Resource" else "containerResource"
            src = spec.get(key) or {}
            target = src.get("target") or {}
            cur = (st.get(key) or {}).get("current") if st.get(key) else None
            if target.get("averageValue") is not None:
                current = quantity(cur.get("averageValue")) if cur is not None else "<unknown>"
                out.append(f"{src.get('name', '')}: {current}/{target['averageValue']}")
            else:
                current = "<unknown>"
                if cur is not None and cur.get("averageUtilization") is not None:
                    current = f"{cur['averageUtilization']}%"
                tgt = "<auto>"
                if target.get("averageUtilization") is not None:
                    tgt = f"{target['averageUtilization']}%"
                out.append(f"{src.get('name', '')}: {current}/{tgt}")
        else:
            out.append("<unknown type>")
    count = len(out)
    if count > limit:
        return ", ".join(out[:limit]) + f" + {count - limit} more..."
    return ", ".join(out)


def _hpa_view(obj: Obj) -> Obj:
    # kube prints the internal (v2-shaped) HPA, whichever version served it
    if obj.get("apiVersion") == conversion.HPA_V1:
        return conversion.convert(obj, conversion.HPA_V2)
    return obj


_HPA_SPEC: Final = "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec"


def _hpa_reference(hpa: Obj) -> str:
    ref = spec_of(hpa).get("scaleTargetRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


class HorizontalPodAutoscalerStrategy(Strategy):
    group, kind = "autoscaling", "HorizontalPodAutoscaler"
    table = Table(
        NAME,
        Column("Reference", doc=(_HPA_SPEC, "scaleTargetRef"), cell=lambda r: _hpa_reference(r.obj)),
        Column("Targets", doc=(_HPA_SPEC, "metrics"),
               cell=lambda r: _hpa_metrics(spec_of(r.obj).get("metrics") or [],
                                           status_of(r.obj).get("currentMetrics") or [])),
        Column("MinPods", doc=(_HPA_SPEC, "minReplicas"),
               cell=lambda r: "<unset>" if spec_of(r.obj).get("minReplicas") is None
               else str(spec_of(r.obj)["minReplicas"])),
        Column("MaxPods", doc=(_HPA_SPEC, "maxReplicas"),
               cell=lambda r: int_or_zero(spec_of(r.obj).get("maxReplicas"))),
        Column("Replicas", doc=("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", "currentReplicas"),
               cell=lambda r: int_or_zero(status_of(r.obj).get("currentReplicas"))),
        AGE,
        view=_hpa_view,
    )
    generation = True
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"currentReplicas": 0, "desiredReplicas": 0} if kind.version == "v1" else {"desiredReplicas": 0}


def _intstr_or_na(v: Any) -> str:
    return "N/A" if v is None else str(v)


class PodDisruptionBudgetStrategy(Strategy):
    group, kind = "policy", "PodDisruptionBudget"
    table = Table(
        NAME,
        Column("Min Available", doc="The minimum number of pods that must be available.",
               cell=lambda r: _intstr_or_na(spec_of(r.obj).get("minAvailable"))),
        Column("Max Unavailable", doc="The maximum number of pods that may be unavailable.",
               cell=lambda r: _intstr_or_na(spec_of(r.obj).get("maxUnavailable"))),
        Column("Allowed Disruptions", "integer", doc="Calculated number of pods that may be disrupted at this time.",
               cell=lambda r: int_or_zero(status_of(r.obj).get("disruptionsAllowed"))),
        AGE,
    )
    generation = True
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}


def _list_with_more(items: list[str], more: bool, count: int, limit: int) -> str:
    ret = ",".join(items)
    if more:
        return f"{ret} + {count - limit} more..."
    return ret or "<unset>"


def _slice_ports(es: Obj) -> str:
    limit = 3
    ports: list[str] = []
    more, count = False, 0
    for p in es.get("ports") or []:
        if len(ports) < limit:
            if p.get("port") is not None:
                ports.append(str(p["port"]))
            elif p.get("name") is not None:
                ports.append(p["name"])
            else:
                ports.append("*")
        elif len(ports) == limit:
            more = True
        count += 1
    return _list_with_more(ports, more, count, limit)


def _slice_endpoints(es: Obj) -> str:
    limit = 3
    addrs: list[str] = []
    more, count = False, 0
    for ep in es.get("endpoints") or []:
        for a in ep.get("addresses") or []:
            if len(addrs) < limit:
                addrs.append(a)
            elif len(addrs) == limit:
                more = True
            count += 1
    return _list_with_more(addrs, more, count, limit)


_DISCOVERY: Final = "io.k8s.api.discovery.v1.EndpointSlice"


class EndpointSliceStrategy(Strategy):
    group, kind = "discovery.k8s.io", "EndpointSlice"
    table = Table(
        NAME,
        Column("AddressType", doc=(_DISCOVERY, "addressType"), cell=lambda r: r.obj.get("addressType", "")),
        Column("Ports", doc=(_DISCOVERY, "ports"), cell=lambda r: _slice_ports(r.obj)),
        Column("Endpoints", doc=(_DISCOVERY, "endpoints"), cell=lambda r: _slice_endpoints(r.obj)),
        AGE,
    )
    generation = True


LOCAL_AVAILABLE = {"type": "Available", "status": "True", "reason": "Local",
                   "message": "Local APIServices are always available"}


def _apiservice_service(svc: Obj) -> str:
    ref = spec_of(svc).get("service")
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}" if isinstance(ref, dict) else "Local"


def _apiservice_available(svc: Obj) -> str:
    available = "Unknown"
    for c in status_of(svc).get("conditions") or ():
        if c.get("type") == "Available":
            available = str(c.get("status") or "Unknown")
            if available != "True":
                available += f" ({c.get('reason', '')})"
    return available


class APIServiceStrategy(Strategy):
    """kube-aggregator's apiservice strategy: status is the availability controller's; a local
    APIService (no ``spec.service``) is available from its creation. Its printer shows the
    backing Service (``Local`` for none) and the Available condition, with its reason when not
    True."""

    group, kind = "apiregistration.k8s.io", "APIService"
    table = Table(
        NAME,
        Column("Service", doc="The reference to the service that hosts this API endpoint.",
               cell=lambda r: _apiservice_service(r.obj)),
        Column("Available", doc="Whether this service is available.", cell=lambda r: _apiservice_available(r.obj)),
        AGE,
    )
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        if (obj.get("spec") or {}).get("service") is None:
            return {"conditions": [{**LOCAL_AVAILABLE, "lastTransitionTime": now_rfc3339()}]}
        return {}


# --- storage.k8s.io ---

_STORAGE: Final = "io.k8s.api.storage.v1."


def _storageclass_name(sc: Obj) -> str:
    ann = meta_of(sc).get("annotations") or {}
    if (ann.get("storageclass.kubernetes.io/is-default-class") == "true"
            or ann.get("storageclass.beta.kubernetes.io/is-default-class") == "true"):
        return name_of(sc) + " (default)"
    return name_of(sc)


class StorageClassStrategy(Strategy):
    group, kind = "storage.k8s.io", "StorageClass"
    return_deleted_object = True
    table = Table(
        Column("Name", format="name", doc=(META, "name"), cell=lambda r: _storageclass_name(r.obj)),
        Column("Provisioner", doc=(_STORAGE + "StorageClass", "provisioner"),
               cell=lambda r: r.obj.get("provisioner", "")),
        Column("ReclaimPolicy", doc=(_STORAGE + "StorageClass", "reclaimPolicy"),
               cell=lambda r: r.obj.get("reclaimPolicy") or "Delete"),
        Column("VolumeBindingMode", doc=(_STORAGE + "StorageClass", "volumeBindingMode"),
               cell=lambda r: r.obj.get("volumeBindingMode") or "Immediate"),
        Column("AllowVolumeExpansion", doc=(_STORAGE + "StorageClass", "allowVolumeExpansion"),
               cell=lambda r: bool(r.obj.get("allowVolumeExpansion"))),
        AGE,
    )


class VolumeAttributesClassStrategy(Strategy):
    group, kind = "storage.k8s.io", "VolumeAttributesClass"
    table = Table(
        NAME,
        Column("DriverName", doc=(_STORAGE + "VolumeAttributesClass", "driverName"),
               cell=lambda r: r.obj.get("driverName", "")),
        AGE,
    )


class VolumeAttachmentStrategy(Strategy):
    group, kind = "storage.k8s.io", "VolumeAttachment"
    table = Table(
        NAME,
        Column("Attacher", format="name", doc=(_STORAGE + "VolumeAttachmentSpec", "attacher"),
               cell=lambda r: spec_of(r.obj).get("attacher", "")),
        Column("PV", doc=(_STORAGE + "VolumeAttachmentSource", "persistentVolumeName"),
               cell=lambda r: (spec_of(r.obj).get("source") or {}).get("persistentVolumeName") or ""),
        Column("Node", doc=(_STORAGE + "VolumeAttachmentSpec", "nodeName"),
               cell=lambda r: spec_of(r.obj).get("nodeName", "")),
        Column("Attached", "boolean", doc=(_STORAGE + "VolumeAttachmentStatus", "attached"),
               cell=lambda r: bool(status_of(r.obj).get("attached"))),
        AGE,
    )


class CSINodeStrategy(Strategy):
    group, kind = "storage.k8s.io", "CSINode"
    table = Table(
        NAME,
        Column("Drivers", "integer", doc="Drivers indicates the number of CSI drivers registered on the node",
               cell=lambda r: len(spec_of(r.obj).get("drivers") or [])),
        AGE,
    )


def _token_requests(spec: Obj) -> str:
    if spec.get("tokenRequests") is None:
        return "<unset>"
    return ",".join(t.get("audience", "") for t in spec["tokenRequests"])


_CSI_DRIVER: Final = _STORAGE + "CSIDriverSpec"


class CSIDriverStrategy(Strategy):
    group, kind = "storage.k8s.io", "CSIDriver"
    table = Table(
        NAME,
        Column("AttachRequired", "boolean", doc=(_CSI_DRIVER, "attachRequired"),
               cell=lambda r: spec_of(r.obj).get("attachRequired") is None
               or bool(spec_of(r.obj).get("attachRequired"))),
        Column("PodInfoOnMount", "boolean", doc=(_CSI_DRIVER, "podInfoOnMount"),
               cell=lambda r: bool(spec_of(r.obj).get("podInfoOnMount"))),
        Column("StorageCapacity", "boolean", doc=(_CSI_DRIVER, "storageCapacity"),
               cell=lambda r: bool(spec_of(r.obj).get("storageCapacity"))),
        Column("TokenRequests", doc=(_CSI_DRIVER, "tokenRequests"), cell=lambda r: _token_requests(spec_of(r.obj))),
        Column("RequiresRepublish", "boolean", doc=(_CSI_DRIVER, "requiresRepublish"),
               cell=lambda r: bool(spec_of(r.obj).get("requiresRepublish"))),
        Column("Modes", doc=(_CSI_DRIVER, "volumeLifecycleModes"),
               cell=lambda r: ",".join(spec_of(r.obj).get("volumeLifecycleModes") or []) or "<none>"),
        AGE,
    )


# --- rbac.authorization.k8s.io ---

def _subjects(binding: Obj, kind: str) -> str:
    out = []
    for s in binding.get("subjects") or []:
        if s.get("kind") != kind:
            continue
        out.append(f"{s.get('namespace', '')}/{s.get('name', '')}" if kind == "ServiceAccount" else s.get("name", ""))
    return ", ".join(out)


def _binding_table(what: str, definition: str) -> Table:
    return Table(
        NAME,
        Column("Role", doc=(definition, "roleRef"),
               cell=lambda r: f"{(r.obj.get('roleRef') or {}).get('kind', '')}/"
                              f"{(r.obj.get('roleRef') or {}).get('name', '')}"),
        AGE,
        Column("Users", priority=1, doc=f"Users in the {what}", cell=lambda r: _subjects(r.obj, "User")),
        Column("Groups", priority=1, doc=f"Groups in the {what}", cell=lambda r: _subjects(r.obj, "Group")),
        Column("ServiceAccounts", priority=1, doc=f"ServiceAccounts in the {what}",
               cell=lambda r: _subjects(r.obj, "ServiceAccount")),
    )


class RoleStrategy(Strategy):
    group, kind = "rbac.authorization.k8s.io", "Role"
    allow_create_on_update = True


class ClusterRoleStrategy(Strategy):
    group, kind = "rbac.authorization.k8s.io", "ClusterRole"
    allow_create_on_update = True


class RoleBindingStrategy(Strategy):
    group, kind = "rbac.authorization.k8s.io", "RoleBinding"
    allow_create_on_update = True
    table = _binding_table("roleBinding", "io.k8s.api.rbac.v1.RoleBinding")


class ClusterRoleBindingStrategy(Strategy):
    group, kind = "rbac.authorization.k8s.io", "ClusterRoleBinding"
    allow_create_on_update = True
    table = _binding_table("clusterRoleBinding", "io.k8s.api.rbac.v1.ClusterRoleBinding")


# --- coordination, scheduling, node, admissionregistration ---

class LeaseStrategy(Strategy):
    group, kind = "coordination.k8s.io", "Lease"
    allow_create_on_update = True
    table = Table(
        NAME,
        Column("Holder", doc=("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity"),
               cell=lambda r: spec_of(r.obj).get("holderIdentity") or ""),
        AGE,
    )


_PRIORITY_CLASS: Final = "io.k8s.api.scheduling.v1.PriorityClass"


class PriorityClassStrategy(Strategy):
    group, kind = "scheduling.k8s.io", "PriorityClass"
    table = Table(
        NAME,
        Column("Value", "integer", doc=(_PRIORITY_CLASS, "value"), cell=lambda r: int_or_zero(r.obj.get("value"))),
        Column("Global-Default", "boolean", doc=(_PRIORITY_CLASS, "globalDefault"),
               cell=lambda r: bool(r.obj.get("globalDefault"))),
        AGE,
        Column("PreemptionPolicy", priority=1, doc=(_PRIORITY_CLASS, "preemptionPolicy"),
               cell=lambda r: r.obj.get("preemptionPolicy") or ""),
    )


class RuntimeClassStrategy(Strategy):
    group, kind = "node.k8s.io", "RuntimeClass"
    table = Table(
        NAME,
        Column("Handler", doc=("io.k8s.api.node.v1.RuntimeClass", "handler"), cell=lambda r: r.obj.get("handler", "")),
        AGE,
    )


WEBHOOKS_TABLE: Final = Table(
    NAME,
    Column("Webhooks", "integer", doc="Webhooks indicates the number of webhooks registered in this configuration",
           cell=lambda r: len(r.obj.get("webhooks") or [])),
    AGE,
)


class MutatingWebhookConfigurationStrategy(Strategy):
    group, kind = "admissionregistration.k8s.io", "MutatingWebhookConfiguration"
    table = WEBHOOKS_TABLE


class ValidatingWebhookConfigurationStrategy(Strategy):
    group, kind = "admissionregistration.k8s.io", "ValidatingWebhookConfiguration"
    table = WEBHOOKS_TABLE


def _param_kind(r: Any) -> str:
    pk = spec_of(r.obj).get("paramKind")
    if not isinstance(pk, dict):
        return "<unset>"
    return f"{pk.get('apiVersion') or ''}/{pk.get('kind') or ''}"


def _param_ref(r: Any) -> str:
    """kube's printer: ``namespace/name``, ``*/name`` without a namespace, or the selector."""
    pr = spec_of(r.obj).get("paramRef")
    if not isinstance(pr, dict):
        return "<unset>"
    if pr.get("name"):
        return f"{pr.get('namespace') or '*'}/{pr['name']}"
    if isinstance(pr.get("selector"), dict):
        return format_label_selector(pr["selector"])
    return "<unset>"


class ValidatingAdmissionPolicyStrategy(Strategy):
    group, kind = "admissionregistration.k8s.io", "ValidatingAdmissionPolicy"
    generation = True  # the status controller's observedGeneration follows it
    reset_status_on_create = True
    table = Table(
        NAME,
        Column("Validations", "integer",
               doc="Validations indicates the number of validation rules defined in this configuration",
               cell=lambda r: len(spec_of(r.obj).get("validations") or [])),
        Column("ParamKind", doc="ParamKind specifies the kind of resources used to parameterize this policy",
               cell=_param_kind),
        AGE,
    )


class ValidatingAdmissionPolicyBindingStrategy(Strategy):
    group, kind = "admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"
    generation = True
    table = Table(
        NAME,
        Column("PolicyName", doc="PolicyName indicates the policy definition which the policy binding binded to",
               cell=lambda r: spec_of(r.obj).get("policyName") or ""),
        Column("ParamRef", doc="ParamRef indicates the param resource which sets the configration param",
               cell=_param_ref),
        AGE,
    )


class MutatingAdmissionPolicyStrategy(Strategy):
    group, kind = "admissionregistration.k8s.io", "MutatingAdmissionPolicy"
    generation = True
    table = Table(
        NAME,
        Column("Mutations", "integer",
               doc="Mutation indicates the number of mutations rules defined in this configuration",
               cell=lambda r: len(spec_of(r.obj).get("mutations") or [])),
        Column("ParamKind", doc="ParamKind specifies the kind of resources used to parameterize this policy",
               cell=_param_kind),
        AGE,
    )


class MutatingAdmissionPolicyBindingStrategy(Strategy):
    group, kind = "admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"
    generation = True
    table = ValidatingAdmissionPolicyBindingStrategy.table


# --- events.k8s.io ---

class EventsEventStrategy(Strategy):
    """events.k8s.io/v1 Event: the same stored object as core/v1's, printed by the same
    (internal, core-shaped) printer, as in kube; its field labels are the new names of core's
    (``regarding.name`` is matched as ``involvedObject.name``)."""

    group, kind = "events.k8s.io", "Event"
    allow_create_on_update = True
    table = EVENT_TABLE
    field_labels = FieldLabels(
        accepted={
            "metadata.name": "metadata.name",
            "metadata.namespace": "metadata.namespace",
            "reason": "reason",
            "type": "type",
            "source": "source",
            "reportingController": "reportingComponent",
            **{f"regarding.{k}": f"involvedObject.{k}" for k in EVENT_REFERENCE_FIELDS},
        },
        # the canonical labels (what selectors are transformed to) stay core's
        getters={
            **META_GETTERS,
            **{f"involvedObject.{k}": field_path("regarding", k) for k in EVENT_REFERENCE_FIELDS},
            "reason": field_path("reason"),
            "reportingComponent": field_path("reportingController"),
            "source": event_source,
            "type": field_path("type"),
        },
        reject=reject_not_supported,
    )


STRATEGIES: list[type[Strategy]] = [
    IngressStrategy, IngressClassStrategy, NetworkPolicyStrategy, HorizontalPodAutoscalerStrategy,
    PodDisruptionBudgetStrategy, EndpointSliceStrategy, APIServiceStrategy, StorageClassStrategy,
    VolumeAttributesClassStrategy, VolumeAttachmentStrategy, CSINodeStrategy, CSIDriverStrategy, RoleStrategy,
    ClusterRoleStrategy, RoleBindingStrategy,
    ClusterRoleBindingStrategy, LeaseStrategy, PriorityClassStrategy, RuntimeClassStrategy,
    MutatingWebhookConfigurationStrategy, ValidatingWebhookConfigurationStrategy, EventsEventStrategy,
    ValidatingAdmissionPolicyStrategy, ValidatingAdmissionPolicyBindingStrategy,
    MutatingAdmissionPolicyStrategy, MutatingAdmissionPolicyBindingStrategy,
]
