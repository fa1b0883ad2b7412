"""VolumeBinding: pods' PersistentVolumeClaims in scheduling (kube's plugin of that name).

PreFilter sorts the pod's claims (a missing, lost or deleted claim, or an unbound claim of an
Immediate class, makes the pod unschedulable until the claim changes); Filter asks, per node,
whether bound claims' PVs admit it and unbound WaitForFirstConsumer claims can get a PV there;
Reserve assumes the choice; PreBind writes it and waits for the PV controller (and a
provisioner) to bind the claims. The decisions live in :mod:`k8py.scheduler.volumebinder`.

The plugin builds its binder from the handle's informers (PVs, PVCs, StorageClasses) when the
scheduler gives it some; without them (a framework in a unit test) ``binder`` stays None and the
plugin lets every pod through, which tests set up on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.queue import ActionType, ClusterEvent
from k8py.scheduler.types import SKIP, Code, PodInfo, Status
from k8py.scheduler.volumebinder import (
    PV,
    PVC,
    UNBOUND_IMMEDIATE,
    BindError,
    ClaimsError,
    PodVolumeClaims,
    PodVolumes,
    VolumeBinder,
)

NAME = "VolumeBinding"
STORAGE_CLASS = ("storage.k8s.io/v1", "StorageClass")


@dataclass(slots=True)
class _State:
    claims: PodVolumeClaims
    by_node: dict[str, PodVolumes] = field(default_factory=dict)
    all_bound: bool = False


class VolumeBinding:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.handle = handle
        self.bind_timeout = float(args.get("bindTimeoutSeconds", 600))
        self.binder: VolumeBinder | None = None
        informers = getattr(handle, "informers", None)
        if informers is not None and handle.client is not None:
            self.binder = new_binder(handle, informers, self.bind_timeout)

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        if not pod.pvcs or self.binder is None:
            return SKIP
        try:
            claims = self.binder.pod_volume_claims(pod.obj)
        except ClaimsError as e:
            return Status.unschedulable(str(e), unresolvable=True)
        if claims.immediate:
            # the PV controller binds those; the pod is tried again when a claim changes
            return Status.unschedulable(UNBOUND_IMMEDIATE, unresolvable=True)
        state.write(NAME, _State(claims))
        return None

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        s: _State | None = state.read(NAME)
        if s is None or self.binder is None:
            return None
        try:
            volumes, reasons = self.binder.find_pod_volumes(s.claims, ni.name, ni.labels)
        except BindError as e:
            return Status.error(str(e))
        if reasons:
            return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, tuple(reasons))
        s.by_node[ni.name] = volumes
        return None

    def reserve(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        s: _State | None = state.read(NAME)
        if s is None or self.binder is None:
            return None
        volumes = s.by_node.get(node)
        if volumes is None:
            s.all_bound = True
            return None
        try:
            s.all_bound = self.binder.assume_pod_volumes(pod.obj, node, volumes)
        except BindError as e:
            return Status.error(str(e))
        return None

    def unreserve(self, state: CycleState, pod: PodInfo, node: str) -> None:
        s: _State | None = state.read(NAME)
        if s is None or self.binder is None:
            return
        volumes = s.by_node.get(node)
        if volumes is not None:
            self.binder.revert_pod_volumes(volumes)

    async def pre_bind(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        s: _State | None = state.read(NAME)
        if s is None or self.binder is None or s.all_bound:
            return None
        volumes = s.by_node.get(node)
        if volumes is None:
            return Status.error(f'no pod volumes found for node "{node}"')
        try:
            await self.binder.bind_pod_volumes(pod.obj, node, volumes)
        except BindError as e:
            return Status.error(str(e))
        return None

    def events_to_register(self) -> list[tuple[ClusterEvent, Any]]:
        return [(ClusterEvent("PersistentVolumeClaim", ActionType.ADD | ActionType.UPDATE), claim_of_pod),
                (ClusterEvent("PersistentVolume", ActionType.ADD | ActionType.UPDATE), None),
                (ClusterEvent("StorageClass", ActionType.ADD | ActionType.UPDATE), class_change_may_help),
                (ClusterEvent("Node", ActionType.ADD | ActionType.UPDATE_NODE_LABEL | ActionType.UPDATE_NODE_TAINT),
                 None)]


def claim_of_pod(pod: PodInfo, old: Any, new: Any) -> bool:
    """isSchedulableAfterPersistentVolumeClaimChange: a claim of this pod was added or changed."""
    meta = (new or {}).get("metadata") or {}
    return meta.get("namespace") == pod.namespace and meta.get("name") in pod.pvcs


def class_change_may_help(pod: PodInfo, old: Any, new: Any) -> bool:
    """A new StorageClass, or one whose allowedTopologies changed (the only field that may)."""
    return old is None or (old or {}).get("allowedTopologies") != (new or {}).get("allowedTopologies")


def new_binder(handle: Handle, informers: Any, bind_timeout: float) -> VolumeBinder:
    """A binder over the scheduler's shared informers, woken by their events."""
    pvcs, pvs, classes = informers.informer(PVC), informers.informer(PV), informers.informer(STORAGE_CLASS)
    cache = handle.cache

    def node_labels(name: str) -> Mapping[str, str] | None:
        ni = cache.get_node(name)
        return ni.labels if ni is not None and ni.node is not None else None

    def pod_exists(namespace: str, name: str, uid: str) -> bool:
        st = cache.pod_state(f"{namespace}/{name}")
        return st is not None and st.info.uid == uid

    binder = VolumeBinder(handle.client, pvcs, pvs, classes, node_labels=node_labels, pod_exists=pod_exists,
                          bind_timeout=bind_timeout, clock=handle.clock)
    pvcs.add_handler(binder.on_pvc, lambda o, n: binder.on_pvc(n), binder.on_pvc_deleted)
    pvs.add_handler(binder.on_pv, lambda o, n: binder.on_pv(n), binder.on_pv_deleted)
    return binder


def validate_args(args: Mapping[str, Any], path: str) -> list[str]:
    """ValidateVolumeBindingArgs: a non-negative bindTimeoutSeconds; no ``shape`` (capacity
    scoring, kube's StorageCapacityScoring feature, is off here as by default in kube)."""
    errs = []
    timeout = args.get("bindTimeoutSeconds", 600)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
        errs.append(f"{path}.bindTimeoutSeconds: Invalid value: {timeout}: invalid BindTimeoutSeconds, should not be "
                    "a negative value")
    if args.get("shape") is not None:
        errs.append(f"{path}.shape: Invalid value: {args['shape']!r}: unsupported when `StorageCapacityScoring` "
                    "feature is disabled")
    return errs


def new(args: Mapping[str, Any], handle: Handle) -> VolumeBinding:
    return VolumeBinding(args, handle)
