"""core/v1 helpers shared by the scheduler, the controllers and (next) the node agent, as
kube's ``component-helpers`` and ``pkg/api/v1/pod`` are: tolerations and taints (with the
numeric ``Gt``/``Lt`` operators), node selectors and required node affinity, pod readiness
and phase, resource requests (``resourcehelper.PodRequests``), the namespace-terminating cause,
and API times.

One home for each: the scheduler parses pods into these types once for its hot path; the
controllers call the dict-level functions below, which use the same types.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from k8py.api.quantity import QuantityError, parse_quantity
from k8py.api.selectors import (
    DOES_NOT_EXIST,
    EXISTS,
    GREATER_THAN,
    IN,
    LESS_THAN,
    NOT_IN,
    Requirement,
    SelectorError,
)

__all__ = [
    "NodeSelector",
    "NodeSelectorTerm",
    "Taint",
    "Toleration",
    "container_limits",
    "container_requests",
    "find_untolerated_taint",
    "format_epoch",
    "format_time",
    "get_condition",
    "int_value",
    "is_namespace_terminating",
    "is_pod_ready",
    "is_pod_terminal",
    "milli_value",
    "now_rfc3339",
    "parse_time",
    "pod_claim_names",
    "pod_configmap_names",
    "pod_limits",
    "pod_matches_node_selector_and_affinity",
    "pod_ready_condition",
    "pod_requests",
    "pod_secret_names",
    "pod_volume_claims",
    "resource_amount",
    "tolerates",
    "tolerates_any",
]

Obj = dict[str, Any]


# --------------------------------------------------------------------------- nodes

# kube-apiserver's --kubelet-preferred-address-types default: how the API server (and k8py's
# metrics-server, as k3s configures metrics-server) picks the address a kubelet is reached at
KUBELET_ADDRESS_TYPES = ("InternalIP", "InternalDNS", "ExternalIP", "ExternalDNS", "Hostname")
DEFAULT_KUBELET_PORT = 10250


def kubelet_address(node: Mapping[str, Any], types: Sequence[str] = KUBELET_ADDRESS_TYPES) -> str:
    """The node's first address of the first preferred type (kube's ``GetPreferredNodeAddress``);
    "" when it has none of them."""
    addresses = [a for a in (node.get("status") or {}).get("addresses") or [] if isinstance(a, dict)]
    for want in types:
        for a in addresses:
            if a.get("type") == want and a.get("address"):
                return str(a["address"])
    return ""


def kubelet_port(node: Mapping[str, Any], default: int = DEFAULT_KUBELET_PORT) -> int:
    """``status.daemonEndpoints.kubeletEndpoint.Port``, or ``default`` when unset."""
    port = (((node.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    return port if isinstance(port, int) and 0 < port < 65536 else default


# --------------------------------------------------------------------------- times

def format_time(t: dt.datetime) -> str:
    """A ``metav1.Time`` as the API writes it: RFC 3339 in UTC, to the second."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_epoch(t: float) -> str:
    """A ``metav1.Time`` from Unix epoch seconds."""
    return format_time(dt.datetime.fromtimestamp(t, dt.UTC))


def now_rfc3339() -> str:
    return format_time(dt.datetime.now(dt.UTC))


def parse_time(s: str | None) -> dt.datetime | None:
    """An API time (RFC 3339, ``Z`` or an offset, fractions allowed); None when absent or malformed."""
    if not s:
        return None
    try:
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------- taints and tolerations


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str

    @staticmethod
    def parse(t: Mapping[str, Any]) -> Taint:
        return Taint(str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))

    def __str__(self) -> str:
        # kube's ErrReasonNotMatch wording: "node(s) had untolerated taint {key: value}"
        return f"{{{self.key}: {self.value}}}"


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str
    operator: str
    value: str
    effect: str

    @staticmethod
    def parse(t: Mapping[str, Any]) -> Toleration:
        return Toleration(str(t.get("key") or ""), str(t.get("operator") or "Equal"), str(t.get("value") or ""),
                          str(t.get("effect") or ""))

    def tolerates(self, taint: Taint) -> bool:
        """``Toleration.ToleratesTaint``: an empty effect matches all effects, an empty key with
        ``Exists`` matches all keys."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        op = self.operator
        if op == "Exists":
            return True
        if op in ("Equal", ""):
            return self.value == taint.value
        if op in ("Gt", "Lt"):  # numeric comparison operators (alpha in kube)
            try:
                tv, mv = int(taint.value), int(self.value)
            except ValueError:
                return False
            return tv > mv if op == "Gt" else tv < mv
        return False


def tolerates_any(tolerations: tuple[Toleration, ...], taint: Taint) -> bool:
    for t in tolerations:
        if t.tolerates(taint):
            return True
    return False


# --------------------------------------------------------------------------- node selectors

_NODE_OPS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST, "Gt": GREATER_THAN,
             "Lt": LESS_THAN}


def _requirements(exprs: Any) -> tuple[Requirement, ...] | None:
    """NodeSelectorRequirements as label requirements; None when one is malformed (kube: the
    term then matches nothing)."""
    out = []
    for e in exprs or ():
        if not isinstance(e, Mapping):
            return None
        op = _NODE_OPS.get(str(e.get("operator") or ""))
        if op is None:
            return None
        try:
            out.append(Requirement.new(str(e.get("key") or ""), op, [str(v) for v in e.get("values") or ()]))
        except SelectorError:
            return None
    return tuple(out)


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """One ``nodeSelectorTerms`` entry: its expressions and fields are ANDed; an empty or malformed
    term matches no node."""

    expressions: tuple[Requirement, ...]
    fields: tuple[Requirement, ...]  # only metadata.name is a valid field
    valid: bool = True

    @staticmethod
    def parse(term: Any) -> NodeSelectorTerm:
        if not isinstance(term, Mapping):
            return NodeSelectorTerm((), (), False)
        exprs = _requirements(term.get("matchExpressions"))
        fields_ = _requirements(term.get("matchFields"))
        if exprs is None or fields_ is None or any(f.key != "metadata.name" for f in fields_):
            return NodeSelectorTerm((), (), False)
        return NodeSelectorTerm(exprs, fields_, bool(exprs or fields_))

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        if not self.valid:
            return False
        for r in self.expressions:
            if not r.matches(labels):
                return False
        if self.fields:
            f = {"metadata.name": name}
            for r in self.fields:
                if not r.matches(f):
                    return False
        return True

    def node_names(self) -> set[str] | None:
        """The node names a ``metadata.name In [...]`` field pins the term to, if it does."""
        for r in self.fields:
            if r.operator == IN:
                return set(r.values)
        return None


@dataclass(frozen=True, slots=True)
class NodeSelector:
    """``requiredDuringSchedulingIgnoredDuringExecution``: the terms are ORed."""

    terms: tuple[NodeSelectorTerm, ...]

    @staticmethod
    def parse(ns: Any) -> NodeSelector:
        terms = (ns or {}).get("nodeSelectorTerms") if isinstance(ns, Mapping) else None
        return NodeSelector(tuple(NodeSelectorTerm.parse(t) for t in terms or ()))

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        for t in self.terms:
            if t.matches(labels, name):
                return True
        return False


# --------------------------------------------------------------------------- dict-level helpers


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """``Toleration.ToleratesTaint`` on API dicts."""
    return Toleration.parse(toleration).tolerates(Taint.parse(taint))


def find_untolerated_taint(taints: Iterable[Mapping[str, Any]], tolerations: Sequence[Mapping[str, Any]],
                           effects: Iterable[str] | None = None) -> Mapping[str, Any] | None:
    """The first taint (with one of ``effects``, when given) that no toleration tolerates."""
    eff = set(effects) if effects is not None else None
    tols = tuple(Toleration.parse(t) for t in tolerations)
    for taint in taints:
        if eff is not None and taint.get("effect") not in eff:
            continue
        if not tolerates_any(tols, Taint.parse(taint)):
            return taint
    return None


def pod_matches_node_selector_and_affinity(spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """``nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)``: the pod spec's ``nodeSelector``
    and its required node affinity terms (ORed) both match the node."""
    m = node.get("metadata") or {}
    labels = m.get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    if req is None:
        return True
    return NodeSelector.parse(req).matches(labels, str(m.get("name") or ""))


# --------------------------------------------------------------------------- resources (kube's resourcehelper)


@functools.lru_cache(maxsize=8192)
def _milli(s: str) -> int:
    try:
        return parse_quantity(s).milli_value()
    except (QuantityError, ValueError):
        return 0


@functools.lru_cache(maxsize=8192)
def _value(s: str) -> int:
    try:
        return parse_quantity(s).int_value()
    except (QuantityError, ValueError):
        return 0


def milli_value(q: Any) -> int:
    """``Quantity.MilliValue()`` of a JSON quantity (string or number); 0 when malformed."""
    return _milli(q if isinstance(q, str) else str(q))


def int_value(q: Any) -> int:
    """``Quantity.Value()`` (rounded up) of a JSON quantity; 0 when malformed."""
    return _value(q if isinstance(q, str) else str(q))


def resource_amount(name: str, q: Any) -> int:
    """CPU in millicores, everything else in whole units (bytes, devices)."""
    return milli_value(q) if name == "cpu" else int_value(q)


def _add(into: dict[str, int], name: str, v: int) -> None:
    into[name] = into.get(name, 0) + v


def container_requests(c: Mapping[str, Any]) -> dict[str, int]:
    res = c.get("resources") or {}
    req = res.get("requests")
    lim = res.get("limits")
    out: dict[str, int] = {}
    if req:
        for k, v in req.items():
            out[k] = resource_amount(k, v)
    # why: the API server defaults requests to limits; a pod that skipped defaulting (or an
    # older object) still must not look free.
    if lim:
        for k, v in lim.items():
            if k not in out:
                out[k] = resource_amount(k, v)
    return out


def container_limits(c: Mapping[str, Any]) -> dict[str, int]:
    """The container's limits, each as a whole amount (cpu in millicores)."""
    return {k: resource_amount(k, v) for k, v in ((c.get("resources") or {}).get("limits") or {}).items()}


def _pod_total(spec: Mapping[str, Any], of: Callable[[Mapping[str, Any]], dict[str, int]]) -> dict[str, int]:
    """kube's sum over a pod (resourcehelper's PodRequests and PodLimits): containers summed; init
    containers as their peak (restartable "sidecar" init containers run alongside and add up)."""
    total: dict[str, int] = {}
    for c in spec.get("containers") or ():
        for k, v in of(c).items():
            _add(total, k, v)
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for c in spec.get("initContainers") or ():
        r = of(c)
        if c.get("restartPolicy") == "Always":
            for k, v in r.items():
                _add(total, k, v)
                _add(sidecars, k, v)
            cur = dict(sidecars)
        else:
            cur = dict(r)
            for k, v in sidecars.items():
                _add(cur, k, v)
        for k, v in cur.items():
            if v > init_peak.get(k, 0):
                init_peak[k] = v
    for k, v in init_peak.items():
        if v > total.get(k, 0):
            total[k] = v
    return total


def pod_requests(spec: Mapping[str, Any], nonzero: Mapping[str, int] | None = None) -> dict[str, int]:
    """``resourcehelper.PodRequests``: :func:`_pod_total` of the containers' requests, pod-level
    requests overriding what they name, then overhead. With ``nonzero`` (the scheduler's
    defaults), a container missing a cpu or memory request counts those instead."""

    def creq(c: Mapping[str, Any]) -> dict[str, int]:
        r = container_requests(c)
        if nonzero:
            for k, v in nonzero.items():
                r.setdefault(k, v)
        return r

    reqs = _pod_total(spec, creq)
    pod_level = (spec.get("resources") or {}).get("requests")
    if pod_level:  # pod-level resources override the containers' sum for what they name
        for k, v in pod_level.items():
            reqs[k] = resource_amount(k, v)
    for k, v in ((spec.get("overhead") or {}).items()):
        _add(reqs, k, resource_amount(k, v))
    return reqs


def pod_limits(spec: Mapping[str, Any]) -> dict[str, int]:
    """``resourcehelper.PodLimits``: :func:`_pod_total` of the containers' limits, pod-level limits
    overriding what they name, then overhead added to the limits there are."""
    limits = _pod_total(spec, container_limits)
    pod_level = (spec.get("resources") or {}).get("limits")
    if pod_level:
        for k, v in pod_level.items():
            limits[k] = resource_amount(k, v)
    for k, v in ((spec.get("overhead") or {}).items()):
        if k in limits:
            _add(limits, k, resource_amount(k, v))
    return limits


# --------------------------------------------------------------------------- pods


def get_condition(obj: Mapping[str, Any], type_: str) -> Obj | None:
    """The condition of ``type_`` in ``obj``'s status.conditions (pods, nodes, APIServices ...)."""
    for c in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def pod_ready_condition(pod: Mapping[str, Any]) -> Obj | None:
    return get_condition(pod, "Ready")


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    """``podutil.IsPodReady``: the pod's ``Ready`` condition is True."""
    c = pod_ready_condition(pod)
    return c is not None and c.get("status") == "True"


def is_pod_terminal(pod: Mapping[str, Any]) -> bool:
    """Succeeded or Failed: the pod will not run again."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


# --------------------------------------------------------------------------- what a pod refers to
# kube's ``pkg/api/v1/pod`` visitors (``VisitPodSecretNames``, ``VisitPodConfigmapNames``, over all
# containers: init, regular and ephemeral) and the claims of its volumes: what the Node authorizer
# lets a pod's node read, and what NodeRestriction refuses in a mirror pod.

# volume sources whose secret a node reads: (source, field, True when the field is a reference
# {"name": ...} rather than the secret's name itself)
_VOLUME_SECRET_FIELDS = (
    ("azureFile", "secretName", False), ("cephfs", "secretRef", True), ("cinder", "secretRef", True),
    ("flexVolume", "secretRef", True), ("rbd", "secretRef", True), ("secret", "secretName", False),
    ("scaleIO", "secretRef", True), ("iscsi", "secretRef", True), ("storageos", "secretRef", True),
    ("csi", "nodePublishSecretRef", True),
)


def _all_containers(spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for f in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(f) or ():
            if isinstance(c, Mapping):
                yield c


def _ref_name(v: Any) -> str:
    return str(v.get("name") or "") if isinstance(v, Mapping) else ""


def _container_refs(spec: Mapping[str, Any], key_ref: str, from_ref: str) -> Iterable[str]:
    for c in _all_containers(spec):
        for ef in c.get("envFrom") or ():
            if isinstance(ef, Mapping):
                yield _ref_name(ef.get(from_ref))
        for e in c.get("env") or ():
            if isinstance(e, Mapping) and isinstance(e.get("valueFrom"), Mapping):
                yield _ref_name(e["valueFrom"].get(key_ref))


def _projected(v: Mapping[str, Any], what: str) -> Iterable[str]:
    proj = v.get("projected")
    if isinstance(proj, Mapping):
        for src in proj.get("sources") or ():
            if isinstance(src, Mapping):
                yield _ref_name(src.get(what))


def _volumes(spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    return (v for v in spec.get("volumes") or () if isinstance(v, Mapping))


def pod_secret_names(pod: Mapping[str, Any]) -> set[str]:
    """The Secrets a pod refers to (``VisitPodSecretNames``): image pull secrets, env and envFrom
    of every container, secret and projected volumes and the secret references of the volume
    plugins (CSI's node-publish secret, ...)."""
    spec = pod.get("spec") or {}
    out = {_ref_name(r) for r in spec.get("imagePullSecrets") or ()}
    out.update(_container_refs(spec, "secretKeyRef", "secretRef"))
    for v in _volumes(spec):
        out.update(_projected(v, "secret"))
        for source, f, is_ref in _VOLUME_SECRET_FIELDS:
            src = v.get(source)
            if isinstance(src, Mapping):
                out.add(_ref_name(src.get(f)) if is_ref else str(src.get(f) or ""))
    out.discard("")
    return out


def pod_configmap_names(pod: Mapping[str, Any]) -> set[str]:
    """The ConfigMaps a pod refers to (``VisitPodConfigmapNames``): env and envFrom of every
    container, configMap and projected volumes."""
    spec = pod.get("spec") or {}
    out = set(_container_refs(spec, "configMapKeyRef", "configMapRef"))
    for v in _volumes(spec):
        out.update(_projected(v, "configMap"))
        out.add(_ref_name(v.get("configMap")))
    out.discard("")
    return out


def pod_claim_names(pod: Mapping[str, Any]) -> set[str]:
    """The PersistentVolumeClaims of a pod's volumes: ``persistentVolumeClaim.claimName``, and
    ``<pod>-<volume>`` for a generic ephemeral volume (``ephemeral.VolumeClaimName``)."""
    return {name for name, _ in pod_volume_claims(pod)}


def pod_volume_claims(pod: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """``(claim name, is an ephemeral volume's claim)`` for each of the pod's volumes backed by a
    claim, in the order of its volumes (as :func:`pod_claim_names`)."""
    pod_name = str((pod.get("metadata") or {}).get("name") or "")
    out: list[tuple[str, bool]] = []
    for v in _volumes(pod.get("spec") or {}):
        pvc = v.get("persistentVolumeClaim")
        if isinstance(pvc, Mapping):
            if pvc.get("claimName"):
                out.append((str(pvc["claimName"]), False))
        elif isinstance(v.get("ephemeral"), Mapping):
            out.append((f"{pod_name}-{v.get('name') or ''}", True))
    return out


# --------------------------------------------------------------------------- namespaces


def is_namespace_terminating(err: BaseException) -> bool:
    """kube's ``HasStatusCause(err, NamespaceTerminatingCause)``: creating in a namespace being
    deleted fails with this cause (a Forbidden Status whose details carry it)."""
    details = getattr(err, "details", None)
    if not isinstance(details, Mapping):
        return False
    # Go's StatusCause.Type is "reason" on the wire
    return any(isinstance(c, Mapping) and c.get("reason") == "NamespaceTerminating"
               for c in details.get("causes") or ())
