"""VolumeZone (kube's plugin of that name): a pod whose claims are bound to PersistentVolumes
labelled with a zone or region (``topology.kubernetes.io/zone``/``region``, or the beta
``failure-domain.beta.kubernetes.io/...`` labels; ``a__b`` lists several) fits only the nodes with
one of those values, as ``node(s) had no available volume zone``. A node without any such label
fits (a single-zone cluster). Unbound WaitForFirstConsumer claims are VolumeBinding's.

PreFilter refuses what kube's does, in its words: a claim that does not exist, an unbound claim
of no class or of an Immediate class (``PersistentVolume had no name``), a bound claim whose
volume does not exist (``persistentvolume "x" not found``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8py.api.corev1 import pod_volume_claims
from k8py.api.volume import WAIT_FOR_FIRST_CONSUMER, claim_class
from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.plugins.volumebinding import claim_of_pod
from k8py.scheduler.queue import ActionType, ClusterEvent
from k8py.scheduler.types import SKIP, Code, PodInfo, Status
from k8py.scheduler.volumebinder import PV, PVC

NAME = "VolumeZone"
ERR_CONFLICT = "node(s) had no available volume zone"
STORAGE_CLASS = ("storage.k8s.io/v1", "StorageClass")
BETA_ZONE, BETA_REGION = "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region"
ZONE, REGION = "topology.kubernetes.io/zone", "topology.kubernetes.io/region"
TOPOLOGY_LABELS = (BETA_ZONE, BETA_REGION, ZONE, REGION)
GA_LABEL = {BETA_ZONE: ZONE, BETA_REGION: REGION}

Topology = tuple[str, frozenset[str]]  # (label key, the values the volume allows)


def label_zones(value: str) -> frozenset[str] | None:
    """LabelZonesToSet: ``a__b`` is zones a and b; None when a zone is empty (the label is then
    ignored, as kube ignores a label it cannot parse)."""
    zones = [z.strip() for z in value.replace("__", ",").split(",")]
    return None if any(not z for z in zones) else frozenset(zones)


def volume_topologies(pv: Mapping[str, Any]) -> list[Topology]:
    labels = (pv.get("metadata") or {}).get("labels") or {}
    out = []
    for key in TOPOLOGY_LABELS:
        if key in labels:
            zones = label_zones(str(labels[key]))
            if zones is not None:
                out.append((key, zones))
    return out


class VolumeZone:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        informers = getattr(handle, "informers", None)
        # without the scheduler's informers (a framework in a unit test) the plugin checks nothing
        self.claims = informers.informer(PVC) if informers is not None else None
        self.volumes = informers.informer(PV) if informers is not None else None
        self.classes = informers.informer(STORAGE_CLASS) if informers is not None else None

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        if self.claims is None or self.volumes is None or self.classes is None or not pod.pvcs:
            return SKIP
        topologies: list[Topology] = []
        for name, ephemeral in pod_volume_claims(pod.obj):
            if ephemeral:
                continue  # kube looks at persistentVolumeClaim volumes only
            pvc = self.claims.get(name, pod.namespace)
            if pvc is None:
                return _unresolvable(f'persistentvolumeclaim "{name}" not found')
            pv_name = (pvc.get("spec") or {}).get("volumeName")
            if not pv_name:
                cls_name = claim_class(pvc)
                if not cls_name:
                    return _unresolvable("PersistentVolumeClaim had no pv name and storageClass name")
                cls = self.classes.get(cls_name)
                if cls is None:
                    return _unresolvable(f'storageclass.storage.k8s.io "{cls_name}" not found')
                if not cls.get("volumeBindingMode"):
                    return _unresolvable(f'VolumeBindingMode not set for StorageClass "{cls_name}"')
                if cls.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER:
                    continue  # VolumeBinding chooses its volume
                return _unresolvable("PersistentVolume had no name")
            pv = self.volumes.get(str(pv_name))
            if pv is None:
                return _unresolvable(f'persistentvolume "{pv_name}" not found')
            topologies += volume_topologies(pv)
        if not topologies:
            return SKIP
        state.write(NAME, topologies)
        return None

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        topologies: list[Topology] | None = state.read(NAME)
        if not topologies:
            return None
        labels = ni.labels
        if not any(key in labels for key in TOPOLOGY_LABELS):
            return None  # a node with no zone: a single-zone cluster
        for key, zones in topologies:
            value = labels.get(key)
            if value is None:
                value = labels.get(GA_LABEL.get(key, key))  # a volume's beta label, the node's GA one
            if value is None or value not in zones:
                return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (ERR_CONFLICT,))
        return None

    def events_to_register(self) -> list[tuple[ClusterEvent, Any]]:
        return [(ClusterEvent("StorageClass", ActionType.ADD), waits_for_first_consumer),
                (ClusterEvent("Node", ActionType.ADD | ActionType.UPDATE_NODE_LABEL | ActionType.UPDATE_NODE_TAINT),
                 None),
                (ClusterEvent("PersistentVolumeClaim", ActionType.ADD | ActionType.UPDATE), claim_of_pod),
                (ClusterEvent("PersistentVolume", ActionType.ADD | ActionType.UPDATE), topology_changed)]


def _unresolvable(message: str) -> Status:
    return Status.unschedulable(message, unresolvable=True)


def waits_for_first_consumer(pod: PodInfo, old: Any, new: Any) -> bool:
    return (new or {}).get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER


def topology_changed(pod: PodInfo, old: Any, new: Any) -> bool:
    return old is None or volume_topologies(old) != volume_topologies(new or {})


def new(args: Mapping[str, Any], handle: Handle) -> VolumeZone:
    return VolumeZone(args, handle)
