"""The scheduler's value types: plugin results (:class:`Status`), parsed pods (:class:`PodInfo`),
taints, tolerations, node-selector and pod-affinity terms.

A pod is parsed once into a :class:`PodInfo` (requests summed the way kube-scheduler sums them,
tolerations, affinity terms with compiled selectors, host ports, images), so the per-node hot
path reads plain attributes instead of walking the pod's JSON.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from k8py.api.corev1 import (
    NodeSelector,
    NodeSelectorTerm,
    Taint,
    Toleration,
    int_value,
    milli_value,
    pod_requests,
    pod_volume_claims,
)
from k8py.api.selectors import (
    IN,
    NOT_IN,
    LabelSelector,
    Requirement,
    SelectorError,
    from_label_selector,
)

__all__ = [
    "DEFAULT_MEMORY_REQUEST",
    "DEFAULT_MILLI_CPU_REQUEST",
    "HOSTNAME_LABEL",
    "MAX_NODE_SCORE",
    "ZONE_LABEL",
    "AffinityTerm",
    "Code",
    "NodeSelector",
    "NodeSelectorTerm",
    "PodInfo",
    "Status",
    "Taint",
    "Toleration",
    "WeightedTerm",
    "int_value",
    "milli_value",
    "parse_pod",
]

Obj = dict[str, Any]

MAX_NODE_SCORE = 100
# schedutil.DefaultMilliCPURequest / DefaultMemoryRequest: what a container without a request
# counts as when scoring, so many "free" pods do not all pile onto one node.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
# what a container without a cpu or memory request counts as, for spreading (not for fit)
NONZERO_DEFAULTS = {"cpu": DEFAULT_MILLI_CPU_REQUEST, "memory": DEFAULT_MEMORY_REQUEST}
HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
CPU, MEMORY, EPHEMERAL, PODS = "cpu", "memory", "ephemeral-storage", "pods"


class Code(enum.IntEnum):
    """framework.Code: what a plugin's answer means for the pod."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2  # preemption might help
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3  # preemption cannot help
    WAIT = 4
    SKIP = 5
    PENDING = 6


@dataclass(frozen=True, slots=True)
class Status:
    """A plugin's answer. Plugins return ``None`` for success on hot paths; a Status otherwise."""

    code: Code
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def success(self) -> bool:
        return self.code == Code.SUCCESS

    @property
    def rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def with_plugin(self, name: str) -> Status:
        return self if self.plugin == name else Status(self.code, self.reasons, name)

    @staticmethod
    def unschedulable(*reasons: str, unresolvable: bool = False) -> Status:
        return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE if unresolvable else Code.UNSCHEDULABLE, reasons)

    @staticmethod
    def error(message: str) -> Status:
        return Status(Code.ERROR, (message,))


SKIP = Status(Code.SKIP)
SUCCESS = Status(Code.SUCCESS)


# --------------------------------------------------------------------------- pod affinity terms


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """A ``PodAffinityTerm`` resolved against the pod that carries it (kube's ``AffinityTerm``):
    ``namespaces`` is the explicit list, or the pod's own namespace when neither a list nor a
    namespace selector is given; ``ns_selector`` is None when not set."""

    namespaces: frozenset[str]
    ns_selector: LabelSelector | None
    selector: LabelSelector
    topology_key: str

    def matches_namespace(self, namespace: str, ns_labels: Callable[[str], Mapping[str, str] | None]) -> bool:
        if namespace in self.namespaces:
            return True
        if self.ns_selector is None:
            return False
        if self.ns_selector.empty:
            return True
        return self.ns_selector.matches(ns_labels(namespace) or {})

    def matches(self, pod: PodInfo, ns_labels: Callable[[str], Mapping[str, str] | None]) -> bool:
        return self.matches_namespace(pod.namespace, ns_labels) and self.selector.matches(pod.labels)


@dataclass(frozen=True, slots=True)
class WeightedTerm:
    weight: int
    term: AffinityTerm


def _affinity_term(t: Any, namespace: str, labels: Mapping[str, str]) -> AffinityTerm | None:
    if not isinstance(t, Mapping):
        return None
    try:
        sel = from_label_selector(t.get("labelSelector"))
    except SelectorError:
        return None
    # matchLabelKeys / mismatchLabelKeys: the incoming pod's own label values join the selector.
    extra: list[Requirement] = []
    for key in t.get("matchLabelKeys") or ():
        if key in labels:
            extra.append(Requirement(key, IN, (labels[key],), frozenset((labels[key],))))
    for key in t.get("mismatchLabelKeys") or ():
        if key in labels:
            extra.append(Requirement(key, NOT_IN, (labels[key],), frozenset((labels[key],))))
    if extra and not sel.matches_nothing:
        sel = LabelSelector((*sel.requirements, *extra))
    ns_list = frozenset(str(n) for n in t.get("namespaces") or ())
    ns_sel_raw = t.get("namespaceSelector")
    ns_sel: LabelSelector | None = None
    if ns_sel_raw is not None:
        try:
            ns_sel = from_label_selector(ns_sel_raw)
        except SelectorError:
            ns_sel = None
    if not ns_list and ns_sel is None:
        ns_list = frozenset((namespace,))
    return AffinityTerm(ns_list, ns_sel, sel, str(t.get("topologyKey") or ""))


def _terms(raw: Any, namespace: str, labels: Mapping[str, str]) -> tuple[AffinityTerm, ...]:
    out = []
    for t in raw or ():
        term = _affinity_term(t, namespace, labels)
        if term is not None:
            out.append(term)
    return tuple(out)


def _weighted(raw: Any, namespace: str, labels: Mapping[str, str]) -> tuple[WeightedTerm, ...]:
    out = []
    for w in raw or ():
        if not isinstance(w, Mapping):
            continue
        term = _affinity_term(w.get("podAffinityTerm"), namespace, labels)
        if term is not None:
            out.append(WeightedTerm(int(w.get("weight") or 0), term))
    return tuple(out)


# --------------------------------------------------------------------------- pods


@dataclass(slots=True, eq=False)
class PodInfo:
    """Everything the scheduler reads of a pod, parsed once. ``obj`` is the wire object (shared
    with the informer: never mutate it)."""

    obj: Obj
    key: str
    uid: str
    namespace: str
    name: str
    labels: dict[str, str]
    priority: int
    preempt_never: bool
    scheduler_name: str
    node_name: str
    nominated_node_name: str
    terminating: bool
    creation: str
    start_time: str
    owner_uid: str
    gated: bool
    # requests (cpu in millicores); the "nz" pair counts missing cpu/memory requests as the defaults
    req_cpu: int = 0
    req_mem: int = 0
    req_eph: int = 0
    req_scalars: dict[str, int] = field(default_factory=dict)
    nz_cpu: int = 0
    nz_mem: int = 0
    host_ports: tuple[tuple[str, str, int], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    node_selector: dict[str, str] | None = None
    required_node_affinity: NodeSelector | None = None
    preferred_node_affinity: tuple[tuple[int, NodeSelectorTerm], ...] = ()
    affinity_required: tuple[AffinityTerm, ...] = ()
    affinity_preferred: tuple[WeightedTerm, ...] = ()
    anti_required: tuple[AffinityTerm, ...] = ()
    anti_preferred: tuple[WeightedTerm, ...] = ()
    spread_constraints: tuple[Obj, ...] = ()
    images: tuple[str, ...] = ()
    pvcs: tuple[str, ...] = ()
    spec_ref: Any = None  # the spec dict this info was parsed from (to skip re-parsing)

    @property
    def has_requests(self) -> bool:
        return bool(self.req_cpu or self.req_mem or self.req_eph or self.req_scalars)

    @property
    def has_affinity(self) -> bool:
        """Has pod affinity or anti-affinity of any kind (kube's ``podWithAffinity``)."""
        return bool(self.affinity_required or self.affinity_preferred or self.anti_required or self.anti_preferred)

    @property
    def has_node_constraints(self) -> bool:
        return bool(self.node_selector) or self.required_node_affinity is not None

    def matches_node_selector_and_affinity(self, labels: Mapping[str, str], name: str) -> bool:
        """``nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)``."""
        sel = self.node_selector
        if sel:
            for k, v in sel.items():
                if labels.get(k) != v:
                    return False
        req = self.required_node_affinity
        return req is None or req.matches(labels, name)

    def request(self, name: str) -> int:
        if name == CPU:
            return self.req_cpu
        if name == MEMORY:
            return self.req_mem
        if name == EPHEMERAL:
            return self.req_eph
        return self.req_scalars.get(name, 0)

    def refresh(self, obj: Obj) -> PodInfo:
        """A PodInfo for a newer version of the same pod; the parsed spec is reused when the spec
        did not change (the common case: a status write or the binding)."""
        spec = obj.get("spec") or {}
        old = self.spec_ref
        if old is not None and (spec is old or _same_spec(spec, old)) and \
                (obj.get("metadata") or {}).get("labels") == self.obj.get("metadata", {}).get("labels"):
            meta = obj.get("metadata") or {}
            status = obj.get("status") or {}
            p = _copy(self)
            p.obj = obj
            p.spec_ref = spec
            p.node_name = str(spec.get("nodeName") or "")
            p.nominated_node_name = str(status.get("nominatedNodeName") or "")
            p.terminating = bool(meta.get("deletionTimestamp"))
            p.start_time = str(status.get("startTime") or "")
            return p
        return parse_pod(obj)


def _same_spec(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    # nodeName is the only field binding changes; compare the rest.
    for k, v in a.items():
        if k != "nodeName" and b.get(k, _MISSING) != v:
            return False
    for k in b:
        if k != "nodeName" and k not in a:
            return False
    return True


_MISSING = object()


def _copy(p: PodInfo) -> PodInfo:
    q = object.__new__(PodInfo)
    for name in PodInfo.__slots__:  # type: ignore[attr-defined]
        object.__setattr__(q, name, getattr(p, name))
    return q


def normalize_image(name: str) -> str:
    """Image names as nodes report them: a missing tag means ``:latest`` (digests stay)."""
    if "@" in name:
        return name
    slash = name.rfind("/")
    if ":" in name[slash + 1:]:
        return name
    return name + ":latest"




def parse_pod(obj: Obj) -> PodInfo:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ns = str(meta.get("namespace") or "")
    name = str(meta.get("name") or "")
    labels = meta.get("labels") or {}
    owners = meta.get("ownerReferences") or ()
    owner_uid = ""
    for o in owners:
        if isinstance(o, Mapping) and o.get("controller"):
            owner_uid = str(o.get("uid") or "")
            break
    else:
        if owners and isinstance(owners[0], Mapping):
            owner_uid = str(owners[0].get("uid") or "")
    p = PodInfo(
        obj=obj, key=f"{ns}/{name}", uid=str(meta.get("uid") or ""), namespace=ns, name=name, labels=labels,
        priority=int(spec.get("priority") or 0), preempt_never=spec.get("preemptionPolicy") == "Never",
        scheduler_name=str(spec.get("schedulerName") or "default-scheduler"),
        node_name=str(spec.get("nodeName") or ""),
        nominated_node_name=str(status.get("nominatedNodeName") or ""),
        terminating=bool(meta.get("deletionTimestamp")), creation=str(meta.get("creationTimestamp") or ""),
        start_time=str(status.get("startTime") or ""), owner_uid=owner_uid,
        gated=bool(spec.get("schedulingGates")), spec_ref=spec)
    reqs = pod_requests(spec)
    p.req_cpu = reqs.pop(CPU, 0)
    p.req_mem = reqs.pop(MEMORY, 0)
    p.req_eph = reqs.pop(EPHEMERAL, 0)
    reqs.pop(PODS, None)
    p.req_scalars = {k: v for k, v in reqs.items() if v}
    nz = pod_requests(spec, NONZERO_DEFAULTS)
    p.nz_cpu = nz.get(CPU, 0)
    p.nz_mem = nz.get(MEMORY, 0)
    ports = []
    containers = list(spec.get("containers") or ())
    containers += [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    images = []
    for c in containers:
        img = c.get("image")
        if img:
            images.append(normalize_image(str(img)))
        for port in c.get("ports") or ():
            hp = port.get("hostPort")
            if hp:
                ports.append((str(port.get("hostIP") or "0.0.0.0"), str(port.get("protocol") or "TCP"), int(hp)))
    p.host_ports = tuple(ports)
    p.images = tuple(images)
    p.tolerations = tuple(Toleration.parse(t) for t in spec.get("tolerations") or () if isinstance(t, Mapping))
    sel = spec.get("nodeSelector")
    p.node_selector = {str(k): str(v) for k, v in sel.items()} if sel else None
    aff = spec.get("affinity") or {}
    na = aff.get("nodeAffinity") or {}
    req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
    if req is not None:
        p.required_node_affinity = NodeSelector.parse(req)
    pref = []
    for w in na.get("preferredDuringSchedulingIgnoredDuringExecution") or ():
        if isinstance(w, Mapping):
            pref.append((int(w.get("weight") or 0), NodeSelectorTerm.parse(w.get("preference"))))
    p.preferred_node_affinity = tuple(pref)
    pa = aff.get("podAffinity") or {}
    p.affinity_required = _terms(pa.get("requiredDuringSchedulingIgnoredDuringExecution"), ns, labels)
    p.affinity_preferred = _weighted(pa.get("preferredDuringSchedulingIgnoredDuringExecution"), ns, labels)
    anti = aff.get("podAntiAffinity") or {}
    p.anti_required = _terms(anti.get("requiredDuringSchedulingIgnoredDuringExecution"), ns, labels)
    p.anti_preferred = _weighted(anti.get("preferredDuringSchedulingIgnoredDuringExecution"), ns, labels)
    p.spread_constraints = tuple(c for c in spec.get("topologySpreadConstraints") or () if isinstance(c, dict))
    p.pvcs = tuple(claim for claim, _ in pod_volume_claims(obj))
    return p
