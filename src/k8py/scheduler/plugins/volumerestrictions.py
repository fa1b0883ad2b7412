"""VolumeRestrictions (kube's plugin of that name), its ReadWriteOncePod part: a claim with the
``ReadWriteOncePod`` access mode is used by one pod in the whole cluster at a time, so a second
pod using it is unschedulable (``node has pod using PersistentVolumeClaim with the same name and
ReadWriteOncePod access mode``) until the first is gone. A ``persistentVolumeClaim`` volume whose
claim does not exist is unschedulable here already, with kube's ``persistentvolumeclaim "x" not
found``.

kube's other half, conflicts between in-tree disks (GCE PD, AWS EBS, RBD, iSCSI) on one node,
has nothing to check here: k8py's node agent mounts none of those volume types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8py.api.corev1 import pod_volume_claims
from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.plugins.volumebinding import claim_of_pod
from k8py.scheduler.queue import ActionType, ClusterEvent
from k8py.scheduler.types import SKIP, Code, PodInfo, Status

NAME = "VolumeRestrictions"
ERR_RWOP_CONFLICT = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
PVC = ("v1", "PersistentVolumeClaim")
RWOP = "ReadWriteOncePod"


class VolumeRestrictions:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.handle = handle
        informers = getattr(handle, "informers", None)
        # without the scheduler's informers (a framework in a unit test) the plugin checks nothing
        self.claims = informers.informer(PVC) if informers is not None else None

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        if self.claims is None or not pod.pvcs:
            return SKIP
        rwop: set[str] = set()
        for name, ephemeral in pod_volume_claims(pod.obj):
            if ephemeral:
                continue  # kube looks at persistentVolumeClaim volumes only
            pvc = self.claims.get(name, pod.namespace)
            if pvc is None:
                return Status.unschedulable(f'persistentvolumeclaim "{name}" not found', unresolvable=True)
            if RWOP in ((pvc.get("spec") or {}).get("accessModes") or ()):
                rwop.add(name)
        if not rwop:
            return SKIP
        # IsPVCUsedByPods: any pod placed anywhere (bound or assumed) using one of these claims
        used = sum(1 for name in rwop if self._used_by_another(pod, name))
        if used == 0:
            return SKIP
        state.write(NAME, used)
        return None

    def _used_by_another(self, pod: PodInfo, claim: str) -> bool:
        for st in self.handle.cache.pods.values():
            other = st.info
            if other.key != pod.key and other.namespace == pod.namespace and claim in other.pvcs:
                return True
        return False

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        if state.read(NAME):
            return Status(Code.UNSCHEDULABLE, (ERR_RWOP_CONFLICT,))
        return None

    def events_to_register(self) -> list[tuple[ClusterEvent, Any]]:
        return [(ClusterEvent("AssignedPod", ActionType.DELETE), shares_a_claim),
                (ClusterEvent("Node", ActionType.ADD | ActionType.UPDATE_NODE_LABEL | ActionType.UPDATE_NODE_TAINT),
                 None),
                (ClusterEvent("PersistentVolumeClaim", ActionType.ADD), claim_of_pod)]


def shares_a_claim(pod: PodInfo, old: Any, new: Any) -> bool:
    """isSchedulableAfterPodDeleted: the deleted pod used one of this pod's claims."""
    gone = old if isinstance(old, PodInfo) else None
    return gone is not None and gone.namespace == pod.namespace and bool(set(gone.pvcs) & set(pod.pvcs))


def new(args: Mapping[str, Any], handle: Handle) -> VolumeRestrictions:
    return VolumeRestrictions(args, handle)
