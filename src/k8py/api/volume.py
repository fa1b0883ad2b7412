"""PersistentVolume helpers shared by the PV controller, the scheduler's volume binder and
provisioners (kube's ``component-helpers/storage/volume``): the annotations of the binding and
provisioning contract, a claim's class, a PV's node affinity, and the matching of a claim to
the best available volume. Nothing here does I/O; objects are API dicts.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from k8py.api.corev1 import NodeSelector, int_value
from k8py.api.selectors import IN, from_label_selector

__all__ = [
    "ANN_BETA_STORAGE_CLASS",
    "ANN_BETA_STORAGE_PROVISIONER",
    "ANN_BIND_COMPLETED",
    "ANN_BOUND_BY_CONTROLLER",
    "ANN_DYNAMICALLY_PROVISIONED",
    "ANN_SELECTED_NODE",
    "ANN_STORAGE_PROVISIONER",
    "DEFAULT_CLASS_ANNOTATIONS",
    "NOT_SUPPORTED_PROVISIONER",
    "PVC_PROTECTION_FINALIZER",
    "PV_PROTECTION_FINALIZER",
    "WAIT_FOR_FIRST_CONSUMER",
    "VolumeCandidates",
    "affinity_admits",
    "bind_volume_to_claim",
    "check_access_modes",
    "check_node_affinity",
    "claim_class",
    "claim_has_class",
    "claim_reference",
    "claim_request",
    "default_class",
    "ephemeral_claim_name",
    "ephemeral_claim_owner_error",
    "find_matching_volume",
    "is_fully_bound",
    "is_volume_bound_to_claim",
    "match_topology_terms",
    "node_affinity",
    "volume_class",
    "volume_mode_mismatch",
]

Obj = Mapping[str, Any]

ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
# set on a claim by the scheduler: the node a WaitForFirstConsumer volume is provisioned for
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_DYNAMICALLY_PROVISIONED = "pv.kubernetes.io/provisioned-by"
# set on a claim by the PV controller: the provisioner expected to provision it
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")
NOT_SUPPORTED_PROVISIONER = "kubernetes.io/no-provisioner"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
HOSTNAME_LABEL = "kubernetes.io/hostname"
# set at creation (StorageObjectInUseProtection), removed by the protection controllers
PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def claim_class(pvc: Obj) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation wins over ``spec.storageClassName``;
    "" for none."""
    ann = _meta(pvc).get("annotations") or {}
    if ann.get(ANN_BETA_STORAGE_CLASS):
        return str(ann[ANN_BETA_STORAGE_CLASS])
    return str(_spec(pvc).get("storageClassName") or "")


def is_delay_binding(pvc: Obj, storage_class: Callable[[str], Obj | None]) -> bool:
    """IsDelayBindingMode: the claim's class (looked up with ``storage_class``) exists and binds
    WaitForFirstConsumer; a class without a binding mode is an error (ValueError), as kube's."""
    name = claim_class(pvc)
    if not name:
        return False
    sc = storage_class(name)
    if sc is None:
        return False
    mode = sc.get("volumeBindingMode")
    if not mode:
        raise ValueError(f'VolumeBindingMode not set for StorageClass "{name}"')
    return bool(mode == WAIT_FOR_FIRST_CONSUMER)


def volume_class(pv: Obj) -> str:
    """GetPersistentVolumeClass, the same rule for a PV."""
    ann = _meta(pv).get("annotations") or {}
    if ann.get(ANN_BETA_STORAGE_CLASS):
        return str(ann[ANN_BETA_STORAGE_CLASS])
    return str(_spec(pv).get("storageClassName") or "")


def claim_request(pvc: Obj) -> int:
    """The claim's ``resources.requests.storage`` in bytes (0 when absent)."""
    return int_value(((_spec(pvc).get("resources") or {}).get("requests") or {}).get("storage") or "0")


def is_fully_bound(pvc: Obj) -> bool:
    """The PV controller has finished binding the claim (isPVCFullyBound)."""
    return bool(_spec(pvc).get("volumeName")) and ANN_BIND_COMPLETED in (_meta(pvc).get("annotations") or {})


def is_volume_bound_to_claim(pv: Obj, pvc: Obj) -> bool:
    """The PV is bound or pre-bound to this claim: same namespace and name, and the same uid
    when the claimRef names one."""
    ref = _spec(pv).get("claimRef")
    if not ref:
        return False
    m = _meta(pvc)
    if ref.get("name") != m.get("name") or ref.get("namespace") != m.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == m.get("uid")


def volume_mode_mismatch(pvc: Obj, pv: Obj) -> bool:
    """Filesystem is what an unset volumeMode means, on either side."""
    return (_spec(pvc).get("volumeMode") or "Filesystem") != (_spec(pv).get("volumeMode") or "Filesystem")


def check_access_modes(pvc: Obj, pv: Obj) -> bool:
    """The PV offers every access mode the claim asks for."""
    have = set(_spec(pv).get("accessModes") or ())
    return all(m in have for m in _spec(pvc).get("accessModes") or ())


def node_affinity(pv: Obj) -> NodeSelector | None:
    """The PV's ``nodeAffinity.required``, parsed; None when it has none (every node)."""
    required = (_spec(pv).get("nodeAffinity") or {}).get("required")
    return None if required is None else NodeSelector.parse(required)


def check_node_affinity(pv: Obj, node_labels: Mapping[str, str]) -> bool:
    """The PV's ``nodeAffinity.required`` admits a node with these labels (CheckNodeAffinity)."""
    return affinity_admits(node_affinity(pv), node_labels)


def affinity_admits(selector: NodeSelector | None, node_labels: Mapping[str, str]) -> bool:
    """A parsed :func:`node_affinity` admits a node with these labels (for one PV checked against
    many nodes). As kube's, only labels are matched: the node in the check has no name, so a
    ``matchFields`` term matches no node."""
    return selector is None or selector.matches(node_labels, "")


def match_topology_terms(terms: Iterable[Any] | None, node_labels: Mapping[str, str]) -> bool:
    """MatchTopologySelectorTerms (a StorageClass's ``allowedTopologies``): no terms admit every
    node; terms are ORed, each term's expressions ANDed; a term without expressions admits none."""
    terms = list(terms or ())
    if not terms:
        return True
    for term in terms:
        exprs = (term or {}).get("matchLabelExpressions") or () if isinstance(term, Mapping) else ()
        if not exprs:
            continue
        if all(isinstance(e, Mapping) and node_labels.get(str(e.get("key"))) in
               {str(v) for v in e.get("values") or ()} for e in exprs):
            return True
    return False


def find_matching_volume(pvc: Obj, volumes: Iterable[Obj], *, node_labels: Mapping[str, str] | None = None,
                         excluded: Collection[str] = (), delay_binding: bool = False) -> Obj | None:
    """FindMatchingVolume: a volume pre-bound to the claim if there is one, else the smallest
    Available volume of the claim's class, capacity, volume mode, selector (and, in the
    scheduler's path where ``node_labels`` is given, node affinity and access modes).

    ``delay_binding`` is the PV controller's path for a WaitForFirstConsumer claim: only
    pre-bound volumes are returned (the scheduler binds the rest). ``excluded`` are volumes the
    scheduler already chose for the pod's other claims. Raises SelectorError when the claim's
    selector is malformed. The scheduler, which asks for one claim on many nodes, keeps the
    :class:`VolumeCandidates` and calls :meth:`VolumeCandidates.pick` per node instead."""
    found = VolumeCandidates.of(pvc, volumes, scheduler=node_labels is not None, delay_binding=delay_binding)
    return found.pick(node_labels, excluded)


@dataclass(frozen=True, slots=True)
class _Candidate:
    pv: Obj
    name: str
    affinity: NodeSelector | None
    # the node names a local volume's affinity allows (one term, one ``kubernetes.io/hostname In``
    # expression: local-path's and kube's local volumes), for a set lookup instead of a match
    hostnames: frozenset[str] | None

    @staticmethod
    def of(pv: Obj, scheduler: bool) -> _Candidate:
        affinity = node_affinity(pv) if scheduler else None
        hostnames = None
        if affinity is not None and len(affinity.terms) == 1:
            term = affinity.terms[0]
            if term.valid and not term.fields and len(term.expressions) == 1:
                e = term.expressions[0]
                if e.key == HOSTNAME_LABEL and e.operator == IN:
                    hostnames = frozenset(e.values)
        return _Candidate(pv, str(_meta(pv).get("name") or ""), affinity, hostnames)

    def admits(self, node_labels: Mapping[str, str]) -> bool:
        if self.hostnames is not None:
            return node_labels.get(HOSTNAME_LABEL) in self.hostnames
        return affinity_admits(self.affinity, node_labels)


@dataclass(frozen=True, slots=True)
class VolumeCandidates:
    """What of FindMatchingVolume does not depend on the node: the volumes pre-bound to the claim
    and, smallest first, the others that may bind it, each with its parsed node affinity."""

    prebound: tuple[_Candidate, ...]
    others: tuple[_Candidate, ...]

    @staticmethod
    def of(pvc: Obj, volumes: Iterable[Obj], *, scheduler: bool, delay_binding: bool = False) -> VolumeCandidates:
        requested = claim_request(pvc)
        requested_class = claim_class(pvc)
        raw_sel = _spec(pvc).get("selector")
        selector = from_label_selector(raw_sel) if raw_sel is not None else None
        prebound: list[_Candidate] = []
        others: list[tuple[int, int, _Candidate]] = []
        for i, pv in enumerate(volumes):
            m, spec = _meta(pv), _spec(pv)
            bound_here = is_volume_bound_to_claim(pv, pvc)
            if spec.get("claimRef") and not bound_here:
                continue
            size = int_value(((spec.get("capacity") or {}).get("storage")) or "0")
            if size < requested or volume_mode_mismatch(pvc, pv) or m.get("deletionTimestamp"):
                continue
            if bound_here:
                prebound.append(_Candidate.of(pv, scheduler))
                continue
            if not scheduler and delay_binding:
                continue
            if (pv.get("status") or {}).get("phase") != "Available":
                continue  # binding one that is not Available yet would only meet conflicts
            if selector is not None and not selector.matches(m.get("labels") or {}):
                continue
            if volume_class(pv) != requested_class:
                continue
            if scheduler and not check_access_modes(pvc, pv):
                continue
            others.append((size, i, _Candidate.of(pv, scheduler)))
        others.sort(key=lambda t: (t[0], t[1]))  # smallest first; the first seen among equals
        return VolumeCandidates(tuple(prebound), tuple(c for _, _, c in others))

    def pick(self, node_labels: Mapping[str, str] | None = None, excluded: Collection[str] = ()) -> Obj | None:
        """The match on a node with these labels (None: any node, the PV controller's path)."""
        for c in self.prebound:
            if c.name in excluded:
                continue
            # a pre-bound volume is the claim's answer, or (on a node it excludes) none
            return c.pv if node_labels is None or c.admits(node_labels) else None
        for c in self.others:
            if c.name not in excluded and (node_labels is None or c.admits(node_labels)):
                return c.pv
        return None


def claim_reference(pvc: Obj) -> dict[str, Any]:
    """The ObjectReference to a claim that a PV's ``spec.claimRef`` holds (reference.GetReference)."""
    m = _meta(pvc)
    ref = {"kind": "PersistentVolumeClaim", "namespace": m.get("namespace"), "name": m.get("name"),
           "uid": m.get("uid"), "apiVersion": "v1", "resourceVersion": m.get("resourceVersion")}
    return {k: v for k, v in ref.items() if v}


def bind_volume_to_claim(pv: Obj, pvc: Obj) -> tuple[dict[str, Any], bool]:
    """GetBindVolumeToClaim: a copy of ``pv`` bound to ``pvc`` (its claimRef, and
    ``bound-by-controller`` when the binding is not the user's own pre-binding), and whether
    anything changed."""
    new = copy.deepcopy(dict(pv))
    dirty = False
    by_controller = not is_volume_bound_to_claim(pv, pvc)
    ref = _spec(pv).get("claimRef") or {}
    m = _meta(pvc)
    if (ref.get("name"), ref.get("namespace"), ref.get("uid")) != (m.get("name"), m.get("namespace"), m.get("uid")):
        new.setdefault("spec", {})["claimRef"] = claim_reference(pvc)
        dirty = True
    ann = new.setdefault("metadata", {}).setdefault("annotations", {})
    if by_controller and ANN_BOUND_BY_CONTROLLER not in ann:
        ann[ANN_BOUND_BY_CONTROLLER] = "yes"
        dirty = True
    return new, dirty


def claim_has_class(pvc: Obj) -> bool:
    """PersistentVolumeClaimHasClass: the beta annotation or ``spec.storageClassName`` is set (an
    explicit "" counts: the claim asked for no class)."""
    return ANN_BETA_STORAGE_CLASS in (_meta(pvc).get("annotations") or {}) or \
        _spec(pvc).get("storageClassName") is not None


def default_class(classes: Iterable[Obj]) -> Obj | None:
    """GetDefaultClass: of the StorageClasses annotated default (GA or beta annotation "true"), the
    newest, then the first by name; None when there is none."""
    defaults = [c for c in classes
                if any((_meta(c).get("annotations") or {}).get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)]
    if not defaults:
        return None
    defaults.sort(key=lambda c: str(_meta(c).get("name") or ""))
    defaults.sort(key=lambda c: str(_meta(c).get("creationTimestamp") or ""), reverse=True)
    return defaults[0]


def ephemeral_claim_name(pod: Obj, volume: Obj) -> str:
    """ephemeral.VolumeClaimName: the claim of a pod's generic ephemeral volume is ``<pod>-<volume>``."""
    return f"{_meta(pod).get('name')}-{volume.get('name')}"


def ephemeral_claim_owner_error(pvc: Obj, pod: Obj) -> str | None:
    """ephemeral.VolumeIsForPod: None when the pod is the claim's controller owner, else kube's
    error (the claim of that name was not made for this pod: it must not be used)."""
    for ref in _meta(pvc).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("uid") == _meta(pod).get("uid"):
            return None
    return (f"PVC {_meta(pvc).get('namespace')}/{_meta(pvc).get('name')} was not created for pod "
            f"{_meta(pod).get('namespace')}/{_meta(pod).get('name')} (pod is not owner)")
