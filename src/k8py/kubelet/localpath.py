"""The local-path provisioner of a node (the place of rancher's local-path-provisioner, which k3s
ships as its default StorageClass ``local-path``).

Each node runs its own, as a client of the API with its own identity
(``system:k8py-local-path-provisioner``): a volume's directory must be made on the node that
will mount it, so a node provisions only the claims the scheduler selected it for.

- At start it creates the StorageClass ``local-path`` (provisioner ``rancher.io/local-path``,
  ``WaitForFirstConsumer``, ``Delete``, the default class) if there is none of that name; a
  class the user changed or replaced is left as it is.
- A claim whose ``volume.kubernetes.io/storage-provisioner`` (or the beta annotation) is
  ``rancher.io/local-path`` and whose ``volume.kubernetes.io/selected-node`` is this node, not
  yet bound and with no volume yet: the directory ``<data-dir>/storage/<pv>_<namespace>_<claim>``
  (mode 0777) is made, then the PV ``pvc-<claim uid>``: ``hostPath`` of that directory
  (``DirectoryOrCreate``), ``nodeAffinity`` to this node's ``kubernetes.io/hostname``, the claim's
  request as capacity, its access modes, the class and its reclaim policy, ``claimRef`` to the
  claim and ``pv.kubernetes.io/provisioned-by: rancher.io/local-path``; the PV controller binds
  the two. Events on the claim as the external-provisioner library words them
  (``Provisioning``, ``ProvisioningSucceeded``, ``ProvisioningFailed``).
- A PV of ours on this node that is ``Released`` with reclaim policy ``Delete``: the directory is
  removed, then the PV object (``VolumeFailedDelete`` on the PV when that fails).

The decisions (:func:`should_provision`, :func:`provision_problem`, :func:`build_volume`,
:func:`should_delete`) are pure; :class:`LocalPathProvisioner` is the shell around them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Mapping
from typing import Any

from k8py.api.volume import (
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_DYNAMICALLY_PROVISIONED,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    DEFAULT_CLASS_ANNOTATIONS,
    HOSTNAME_LABEL,
    WAIT_FOR_FIRST_CONSUMER,
    claim_class,
    claim_reference,
)
from k8py.client.api import Client
from k8py.client.controller import Controller
from k8py.client.errors import AlreadyExistsError, ApiError, ForbiddenError, NotFoundError
from k8py.client.events import EventSink
from k8py.client.informer import SharedInformerFactory

__all__ = [
    "CLASS_NAME",
    "PROVISIONER",
    "USER",
    "LocalPathProvisioner",
    "build_volume",
    "default_storage_class",
    "provision_problem",
    "should_delete",
    "should_provision",
    "storage_dir",
    "volume_dir",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PROVISIONER = "rancher.io/local-path"
CLASS_NAME = "local-path"
USER = "system:k8py-local-path-provisioner"
COMPONENT = "local-path-provisioner"
PVC = ("v1", "PersistentVolumeClaim")
PV = ("v1", "PersistentVolume")
STORAGE_CLASS = ("storage.k8s.io/v1", "StorageClass")
# access modes a directory on one node can honour (local-path-provisioner's own rule)
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod")


def storage_dir(data_dir: str) -> str:
    """Where this node's volumes live (k3s: ``/var/lib/rancher/k3s/storage``)."""
    return os.path.join(data_dir, "storage")


def volume_dir(base: str, pv_name: str, namespace: str, claim: str) -> str:
    return os.path.join(base, f"{pv_name}_{namespace}_{claim}")


def default_storage_class() -> Obj:
    """The class k3s ships (its ``local-storage.yaml`` manifest)."""
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_CLASS_ANNOTATIONS[0]: "true"}},
            "provisioner": PROVISIONER, "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER, "reclaimPolicy": "Delete"}


def _ann(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def volume_name(pvc: Mapping[str, Any]) -> str:
    """The external-provisioner's deterministic PV name: ``pvc-<claim uid>``."""
    return f"pvc-{(pvc.get('metadata') or {}).get('uid')}"


def should_provision(pvc: Mapping[str, Any], node: str) -> bool:
    """A claim for us to provision here (the external-provisioner's shouldProvision, narrowed to
    the claims the scheduler selected this node for)."""
    if (pvc.get("spec") or {}).get("volumeName") or (pvc.get("metadata") or {}).get("deletionTimestamp"):
        return False
    ann = _ann(pvc)
    provisioner = ann.get(ANN_STORAGE_PROVISIONER) or ann.get(ANN_BETA_STORAGE_PROVISIONER)
    return provisioner == PROVISIONER and ann.get(ANN_SELECTED_NODE) == node


def provision_problem(pvc: Mapping[str, Any], cls: Mapping[str, Any] | None) -> str | None:
    """Why this claim cannot get a local-path volume (local-path-provisioner's checks), or None."""
    spec = pvc.get("spec") or {}
    if cls is None:
        return f'storageClass "{claim_class(pvc)}" not found'
    if cls.get("provisioner") != PROVISIONER:
        return f'storageClass "{claim_class(pvc)}" has provisioner "{cls.get("provisioner")}", not {PROVISIONER}'
    if spec.get("selector") is not None:
        return "claim.Spec.Selector is not supported"
    if (spec.get("volumeMode") or "Filesystem") != "Filesystem":
        return f"{PROVISIONER} does not support block volume provisioning"
    for mode in spec.get("accessModes") or ():
        if mode not in ACCESS_MODES:
            return "NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes"
    if (spec.get("dataSource") or spec.get("dataSourceRef")) is not None:
        return "data sources are not supported: a local-path volume starts empty"
    return None


def build_volume(pvc: Mapping[str, Any], cls: Mapping[str, Any], node: str, path: str) -> Obj:
    """The PV for ``pvc`` at ``path`` on ``node`` (what local-path-provisioner's Provision returns,
    with what the external-provisioner library adds: claimRef, provisioned-by, the class)."""
    spec = pvc.get("spec") or {}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": volume_name(pvc), "annotations": {ANN_DYNAMICALLY_PROVISIONED: PROVISIONER}},
        "spec": {
            "capacity": {"storage": storage} if storage else {},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": cls.get("reclaimPolicy") or "Delete",
            "storageClassName": claim_class(pvc),
            "volumeMode": "Filesystem",
            "hostPath": {"path": path, "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}]}},
            "claimRef": claim_reference(pvc),
            **({"mountOptions": list(cls["mountOptions"])} if cls.get("mountOptions") else {}),
        },
    }


def volume_node(pv: Mapping[str, Any]) -> str | None:
    """The node a local-path PV's affinity names (getPathAndNodeForPV)."""
    req = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {})
    for term in req.get("nodeSelectorTerms") or ():
        for e in (term or {}).get("matchExpressions") or ():
            if e.get("key") == HOSTNAME_LABEL and e.get("operator") == "In" and len(e.get("values") or ()) == 1:
                return str(e["values"][0])
    return None


def should_delete(pv: Mapping[str, Any], node: str) -> bool:
    """One of our PVs on this node whose claim is gone and whose class says Delete
    (the external-provisioner's shouldDelete)."""
    if _ann(pv).get(ANN_DYNAMICALLY_PROVISIONED) != PROVISIONER or volume_node(pv) != node:
        return False
    if (pv.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pv.get("status") or {}).get("phase") == "Released" and \
        (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete"


def inside(base: str, path: str) -> bool:
    """``path`` is a directory strictly below ``base`` (a PV names nothing else to remove)."""
    b, p = os.path.realpath(base), os.path.realpath(path)
    return os.path.dirname(p) == b and p != b


class LocalPathProvisioner:
    """See the module docstring. ``data_dir`` is the node's (``<data-dir>/storage`` holds the
    volumes)."""

    def __init__(self, client: Client, node_name: str, data_dir: str, *, ensure_class: bool = True) -> None:
        self.client = client
        self.node = node_name
        self.base = storage_dir(data_dir)
        self.ensure_class = ensure_class
        self.factory = SharedInformerFactory(client)
        self.claims = self.factory.informer(PVC)
        self.volumes = self.factory.informer(PV)
        self.classes = self.factory.informer(STORAGE_CLASS)
        self.events = EventSink(client, COMPONENT)
        self.claim_ctl = Controller("local-path-claims", self.sync_claim, workers=2)
        self.volume_ctl = Controller("local-path-volumes", self.sync_volume, workers=2)
        self.claim_ctl.watch(self.claims)
        self.claim_ctl.wait_for(self.classes)
        self.volume_ctl.watch(self.volumes)
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            os.makedirs(self.base, 0o755, exist_ok=True)
        except OSError as e:
            log.error("local-path: cannot make %s, so this node provisions no volumes: %s", self.base, e)
            return
        self.events.start()
        self.factory.start()
        # why: the controllers get a stop of their own, so that this component ending (an error
        # included) never sets the process-wide ``stop`` the other components run on
        done = asyncio.Event()
        tasks = [asyncio.create_task(self.claim_ctl.run(done), name="local-path-claims"),
                 asyncio.create_task(self.volume_ctl.run(done), name="local-path-volumes")]
        try:
            if self.ensure_class:
                await self._ensure_class()
            if await self.factory.wait_for_cache_sync(120):
                log.info("local-path provisioner ready on node %s (volumes in %s)", self.node, self.base)
                self.ready.set()
            await stop.wait()
        finally:
            done.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.factory.shutdown()
            await self.events.stop()

    async def _ensure_class(self) -> None:
        """Create ``local-path`` if no class has that name (never update: a user's change stays)."""
        try:
            await self.client.get(STORAGE_CLASS, CLASS_NAME)
            return
        except NotFoundError:
            pass
        except ApiError as e:
            log.warning("local-path: cannot read StorageClass %s: %s", CLASS_NAME, e.message)
            return
        try:
            await self.client.create(STORAGE_CLASS, default_storage_class())
            log.info("local-path: created StorageClass %s (provisioner %s, the default class)", CLASS_NAME,
                     PROVISIONER)
        except AlreadyExistsError:
            pass  # another node made it first
        except ApiError as e:
            log.warning("local-path: cannot create StorageClass %s: %s", CLASS_NAME, e.message)

    # -- claims ----------------------------------------------------------------------------------

    async def sync_claim(self, key: str) -> None:
        ns, _, name = key.partition("/")
        pvc = self.claims.get(name, ns)
        if pvc is None or not should_provision(pvc, self.node):
            return
        pv_name = volume_name(pvc)
        if self.volumes.get(pv_name) is not None:
            return  # provisioned already (the claim's binding is the PV controller's)
        cls_name = claim_class(pvc)
        cls = self.classes.get(cls_name) if cls_name else None
        problem = provision_problem(pvc, cls)
        if problem is not None:
            # as local-path-provisioner: the claim keeps its node; the event says why
            self.events.event(pvc, "Warning", "ProvisioningFailed",
                              f'failed to provision volume with StorageClass "{cls_name}": {problem}')
            return
        assert cls is not None
        self.events.event(pvc, "Normal", "Provisioning",
                          f'External provisioner is provisioning volume for claim "{ns}/{name}"')
        path = volume_dir(self.base, pv_name, ns, name)
        try:
            await asyncio.to_thread(_make_dir, path)
        except OSError as e:
            self.events.event(pvc, "Warning", "ProvisioningFailed",
                              f'failed to provision volume with StorageClass "{cls_name}": failed to create volume '
                              f"{pv_name}: {e}")
            raise
        try:
            await self.client.create(PV, build_volume(pvc, cls, self.node, path))
        except AlreadyExistsError:
            return  # an earlier attempt's write landed
        except ApiError as e:
            self.events.event(pvc, "Warning", "ProvisioningFailed",
                              f'failed to provision volume with StorageClass "{cls_name}": {e.message}')
            raise
        log.info("local-path: created volume %s at %s:%s for %s", pv_name, self.node, path, key)
        self.events.event(pvc, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}")

    # -- volumes ---------------------------------------------------------------------------------

    async def sync_volume(self, name: str) -> None:
        pv = self.volumes.get(name)
        if pv is None or not should_delete(pv, self.node):
            return
        path = str(((pv.get("spec") or {}).get("hostPath") or {}).get("path") or "")
        if not inside(self.base, path):
            self.events.event(pv, "Warning", "VolumeFailedDelete",
                              f"failed to delete volume {name}: its path {path!r} is not a local-path volume "
                              f"directory under {self.base}")
            return
        try:
            await asyncio.to_thread(_remove_dir, path)
        except OSError as e:
            self.events.event(pv, "Warning", "VolumeFailedDelete", f"failed to delete volume {name}: {e}")
            raise
        log.info("local-path: deleted volume %s at %s:%s", name, self.node, path)
        try:
            await self.client.delete(PV, name)
        except NotFoundError:
            pass
        except ForbiddenError as e:
            log.warning("local-path: cannot delete PersistentVolume %s: %s", name, e.message)
            raise


def _make_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o777)  # as local-path-provisioner: any container user may write


def _remove_dir(path: str) -> None:
    if os.path.lexists(path):
        shutil.rmtree(path)
