"""The PersistentVolume controller (kube-controller-manager's ``persistentvolume-binder``): it binds
PersistentVolumeClaims to PersistentVolumes, keeps both phases, hands claims to external
provisioners and carries out a released volume's reclaim policy.

**The binding** is kube's two-way pointer: ``pv.spec.claimRef`` is written first, then
``pvc.spec.volumeName`` with the annotations ``pv.kubernetes.io/bind-completed`` and (when the
controller chose the volume) ``pv.kubernetes.io/bound-by-controller``, then both statuses. Every
step is written against the resourceVersion it read, so a stale cache or a second binder only costs
a Conflict and a retry; each sync of a claim or volume picks up where an interrupted one stopped.

- A claim without ``spec.volumeName`` gets the smallest fitting Available volume: same class,
  every access mode it asks for (volumes offering fewer extra modes first), capacity at least the
  request, same volume mode, its label selector; a volume pre-bound to it (``claimRef`` naming it)
  wins. A WaitForFirstConsumer claim is left to the scheduler (Event ``WaitForFirstConsumer``), until
  it sets ``volume.kubernetes.io/selected-node``.
- No volume: a claim of a class whose provisioner is external gets the
  ``volume.kubernetes.io/storage-provisioner`` annotations (and an ``ExternalProvisioning`` event);
  the provisioner creates a PV with ``claimRef`` set, which the next sync binds. A claim without a
  class gets the default StorageClass when one exists (kube's retroactive assignment), else
  ``FailedBinding`` "no persistent volumes available for this claim and no storage class is set".
- A claim naming a volume (``spec.volumeName``) is bound to it when it fits (else ``VolumeMismatch``).
- A bound claim whose volume is gone or taken is ``Lost`` (``ClaimLost``, ``ClaimMisbound``).

**Volumes**: no ``claimRef`` (or one without uid: pre-bound, waiting) is ``Available``; bound to a
live claim is ``Bound``; its claim deleted is ``Released``, then the reclaim policy: ``Retain`` keeps
it so; ``Delete`` of a volume an external provisioner made (``pv.kubernetes.io/provisioned-by``
not ``kubernetes.io/...``, or a CSI volume) waits for that provisioner to delete it; a ``hostPath``
volume under ``/tmp/`` is deleted by the controller as kube's hostPath deleter does; anything else
is ``Failed`` with kube's ``VolumeFailedDelete`` message, as is ``Recycle`` (no recycler here).

One worker handles claims and volumes both (kube: one per queue; syncing a claim is not reentrant),
and everything is looked at again every 15 s (kube's ``--pvclaimbinder-sync-period``); a new
Available volume or StorageClass also wakes the claims still waiting.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import shutil
from collections.abc import Mapping
from typing import Any, cast

from k8py.api import volume as vh
from k8py.api.corev1 import int_value, is_pod_terminal, pod_claim_names
from k8py.client.controller import Controller, Result
from k8py.client.errors import NotFoundError
from k8py.client.informer import Informer
from k8py.controllers.base import ControllerContext

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PV = ("v1", "PersistentVolume")
PVC = ("v1", "PersistentVolumeClaim")
POD = ("v1", "Pod")
STORAGE_CLASS = ("storage.k8s.io/v1", "StorageClass")

EVENT_SOURCE = "persistentvolume-controller"  # kube's recorder of this controller
RESYNC_KEY = "resync"
WAKE_KEY = "wake"  # enqueue the claims still waiting for a volume
RESYNC_PERIOD = 15.0  # kube's --pvclaimbinder-sync-period
POD_CLAIM_INDEX = "pvc"  # namespace/claim -> the pods whose volumes use it
HOST_PATH_DELETABLE = re.compile(r"/tmp/.+")  # kube's hostPath deleter only removes these


def _meta(o: Mapping[str, Any]) -> Obj:
    return o.get("metadata") or {}


def _spec(o: Mapping[str, Any]) -> Obj:
    return o.get("spec") or {}


def _ann(o: Mapping[str, Any]) -> dict[str, str]:
    return _meta(o).get("annotations") or {}


def _phase(o: Obj) -> str:
    return str((o.get("status") or {}).get("phase") or "")


def claim_key(pvc: Obj) -> str:
    return f"{_meta(pvc).get('namespace')}/{_meta(pvc).get('name')}"


def claimref_key(pv: Obj) -> str:
    ref = _spec(pv).get("claimRef") or {}
    return f"{ref.get('namespace')}/{ref.get('name')}"


def _rv(o: Obj | None) -> int:
    try:
        return int(_meta(o or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def check_volume_satisfies_claim(pv: Obj, pvc: Obj) -> str | None:
    """checkVolumeSatisfyClaim: why a volume the claim names cannot serve it (None: it can)."""
    if _meta(pv).get("deletionTimestamp"):
        return f'the volume is marked for deletion "{_meta(pv).get("name")}"'
    if vh.claim_request(pvc) > _capacity(pv):
        return "requested PV is too small"
    if vh.volume_class(pv) != vh.claim_class(pvc):
        return "storageClassName does not match"
    if vh.volume_mode_mismatch(pvc, pv):
        return "incompatible volumeMode"
    if not vh.check_access_modes(pvc, pv):
        return "incompatible accessMode"
    return None


def _capacity(pv: Obj) -> int:
    return int_value((_spec(pv).get("capacity") or {}).get("storage") or "0")


def find_best_match(pvc: Obj, volumes: list[Obj], delay_binding: bool) -> Obj | None:
    """The volume index's ``findByClaim``: volumes are grouped by their set of access modes; the
    groups offering every mode the claim asks for are searched from the fewest modes up, and the
    first group with a match gives the answer (kube: a ReadWriteOnce claim takes a RWO volume
    before a RWO+ROX one)."""
    want = set(_spec(pvc).get("accessModes") or ())
    groups: dict[frozenset[str], list[Obj]] = {}
    for pv in volumes:
        groups.setdefault(frozenset(_spec(pv).get("accessModes") or ()), []).append(pv)
    for modes in sorted((m for m in groups if want <= m), key=lambda m: (len(m), sorted(m))):
        best = vh.find_matching_volume(pvc, groups[modes], delay_binding=delay_binding)
        if best is not None:
            return cast(Obj, best)
    return None


def _claims_of_pod(pod: Obj) -> list[str]:
    return [f"{_meta(pod).get('namespace')}/{c}" for c in sorted(pod_claim_names(pod))]


def index_pods_by_claim(pods: Informer) -> None:
    """Add :data:`POD_CLAIM_INDEX` (kube's ``PodPVCIndex``: ``namespace/claim`` -> the pods whose
    volumes use it) to the shared pod informer, once however many controllers ask."""
    try:
        pods.add_indexer(POD_CLAIM_INDEX, _claims_of_pod)
    except ValueError:
        pass  # already there (another controller shares the informer)


def is_pod_terminated(pod: Obj) -> bool:
    """util.IsPodTerminated: Succeeded/Failed, or being deleted with no container running."""
    if is_pod_terminal(pod):
        return True
    if not _meta(pod).get("deletionTimestamp"):
        return False
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    return all("running" not in (s.get("state") or {}) and "waiting" not in (s.get("state") or {})
               for s in statuses)


class PersistentVolumeController:
    NAME = "persistentvolume-binder"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.volumes = ctx.factory.informer(PV)
        self.claims = ctx.factory.informer(PVC)
        self.classes = ctx.factory.informer(STORAGE_CLASS)
        self.pods = ctx.factory.informer(POD)
        index_pods_by_claim(self.pods)
        # why one worker: two syncs at once could bind one volume to two claims (kube runs one too)
        self.controller = Controller("persistentvolume-binder-controller", self.reconcile, workers=1,
                                     clock=ctx.clock, wait_for=(self.volumes, self.claims, self.classes, self.pods))
        self.controller.watch(self.claims, self._claim_keys)
        self.controller.watch(self.volumes, self._volume_keys)
        self.classes.add_handler(lambda _c: self._wake_pending(), lambda _o, _n: self._wake_pending(),
                                 lambda _c: None)
        self.controller.enqueue_after(RESYNC_KEY, RESYNC_PERIOD)
        # What this controller wrote and its cache may not show yet (kube's own-writes cache): a
        # sync reads whichever is newer, so it does not act on the state it just replaced.
        self._written: dict[tuple[str, str], Obj] = {}

    # -- events -------------------------------------------------------------------------------------

    def _event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.ctx.record(obj, type_, reason, message, component=EVENT_SOURCE)

    def _claim_keys(self, pvc: Obj) -> list[str]:
        keys = [f"claim:{claim_key(pvc)}"]
        if _spec(pvc).get("volumeName"):
            keys.append(f"volume:{_spec(pvc)['volumeName']}")  # a deleted claim releases its volume
        return keys

    def _volume_keys(self, pv: Obj) -> list[str]:
        keys = [f"volume:{_meta(pv).get('name')}"]
        if _spec(pv).get("claimRef"):
            keys.append(f"claim:{claimref_key(pv)}")
        elif _phase(pv) == "Available" and not _meta(pv).get("deletionTimestamp"):
            # an unclaimed volume (only an Available one is ever chosen): the claims still
            # waiting may fit it now, rather than at the next resync
            self._wake_pending()
        return keys

    def _wake_pending(self) -> None:
        # one key for the whole pass: a burst of new volumes queues it once (the queue holds a
        # key once), not once per volume and claim
        self.controller.enqueue_key(WAKE_KEY)

    def _enqueue_pending(self) -> None:
        for c in self.claims.list():
            if vh.ANN_BIND_COMPLETED not in _ann(c):
                self.controller.enqueue_key(f"claim:{claim_key(c)}")

    # -- cache --------------------------------------------------------------------------------------

    def _volume(self, name: str) -> Obj | None:
        return self._newest("volume", name, self.volumes.get(name))

    def _claim(self, key: str) -> Obj | None:
        ns, _, name = key.partition("/")
        return self._newest("claim", key, self.claims.get(name, ns))

    def _newest(self, kind: str, key: str, cached: Obj | None) -> Obj | None:
        mine = self._written.get((kind, key))
        if mine is None:
            return cached
        if cached is None or _rv(cached) >= _rv(mine):
            # the cache caught up (or the object is gone): it is the truth again
            del self._written[(kind, key)]
            return cached
        return mine

    def _all_volumes(self) -> list[Obj]:
        out = []
        for pv in self.volumes.list():
            newest = self._volume(str(_meta(pv).get("name")))
            if newest is not None:
                out.append(newest)
        return out

    def _remember(self, kind: str, obj: Obj) -> Obj:
        key = str(_meta(obj).get("name")) if kind == "volume" else claim_key(obj)
        self._written[(kind, key)] = obj
        return obj

    # -- reconcile ----------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        if key == WAKE_KEY:
            self._enqueue_pending()
            return None
        if key == RESYNC_KEY:
            for kind, k in list(self._written):  # forget own writes the cache has caught up with
                _ = self._volume(k) if kind == "volume" else self._claim(k)
            for pv in self.volumes.list():
                self.controller.enqueue_key(f"volume:{_meta(pv).get('name')}")
            for c in self.claims.list():
                self.controller.enqueue_key(f"claim:{claim_key(c)}")
            return Result(requeue_after=RESYNC_PERIOD)
        kind, _, rest = key.partition(":")
        if kind == "volume":
            vol = self._volume(rest)
            if vol is not None:
                await self.sync_volume(copy.deepcopy(vol))
        elif kind == "claim":
            claim = self._claim(rest)
            if claim is not None:
                await self.sync_claim(copy.deepcopy(claim))
        return None

    # -- claims -------------------------------------------------------------------------------------

    async def sync_claim(self, pvc: Obj) -> None:
        if vh.ANN_BIND_COMPLETED not in _ann(pvc):
            await self._sync_unbound_claim(pvc)
        else:
            await self._sync_bound_claim(pvc)

    def _is_delay_binding(self, pvc: Obj) -> bool:
        return vh.is_delay_binding(pvc, self.classes.get)

    async def _sync_unbound_claim(self, pvc: Obj) -> None:
        volume_name = str(_spec(pvc).get("volumeName") or "")
        if not volume_name:
            delay = self._is_delay_binding(pvc)
            pv = find_best_match(pvc, self._all_volumes(), delay)
            if pv is not None:
                await self._bind(pv, pvc)
                return
            if await self._assign_default_class(pvc):
                return  # the update brings the claim back with its class
            if delay and vh.ANN_SELECTED_NODE not in _ann(pvc):
                self._event_for_delayed_claim(pvc)
            elif vh.claim_class(pvc):
                await self._provision(pvc)
                return
            else:
                self._event(pvc, "Normal", "FailedBinding",
                                "no persistent volumes available for this claim and no storage class is set")
            await self._update_claim_status(pvc, "Pending", None)
            return
        pv = self._volume(volume_name)
        if pv is None:
            # the user asked for a volume that does not exist (yet): wait for it
            await self._update_claim_status(pvc, "Pending", None)
            return
        pv = copy.deepcopy(pv)
        if not _spec(pv).get("claimRef"):
            why = check_volume_satisfies_claim(pv, pvc)
            if why is not None:
                self._event(pvc, "Warning", "VolumeMismatch", f'Cannot bind to requested volume "{volume_name}": {why}')
                await self._update_claim_status(pvc, "Pending", None)
                return
            await self._bind(pv, pvc)
            return
        if vh.is_volume_bound_to_claim(pv, pvc):
            await self._bind(pv, pvc)  # pre-bound, or half done: finish it
            return
        self._event(pvc, "Warning", "FailedBinding", f'volume "{volume_name}" already bound to a different claim.')
        if vh.ANN_BOUND_BY_CONTROLLER not in _ann(pvc):
            await self._update_claim_status(pvc, "Pending", None)  # the user's choice: wait for it
            return
        raise RuntimeError(f'invalid binding of claim "{claim_key(pvc)}" to volume "{volume_name}": volume already '
                           f'claimed by "{claimref_key(pv)}"')

    async def _sync_bound_claim(self, pvc: Obj) -> None:
        volume_name = str(_spec(pvc).get("volumeName") or "")
        if not volume_name:
            await self._claim_lost(pvc, "ClaimLost", "Bound claim has lost reference to PersistentVolume. "
                                                     "Data on the volume is lost!")
            return
        pv = self._volume(volume_name)
        if pv is None:
            await self._claim_lost(pvc, "ClaimLost", "Bound claim has lost its PersistentVolume. "
                                                     "Data on the volume is lost!")
            return
        ref = _spec(pv).get("claimRef")
        if not ref or ref.get("uid") == _meta(pvc).get("uid"):
            await self._bind(copy.deepcopy(pv), pvc)  # unbound volume: bind it again; else settle statuses
            return
        await self._claim_lost(pvc, "ClaimMisbound", "Two claims are bound to the same volume, this one is bound "
                                                     "incorrectly")

    async def _claim_lost(self, pvc: Obj, reason: str, message: str) -> None:
        if _phase(pvc) == "Lost":
            return
        new = await self._update_claim_status(pvc, "Lost", None)
        self._event(new, "Warning", reason, message)

    def _event_for_delayed_claim(self, pvc: Obj) -> None:
        """emitEventForUnboundDelayBindingClaim: name the pods not scheduled yet, if any."""
        pods = [p for p in self.pods.store.by_index(POD_CLAIM_INDEX, claim_key(pvc))
                if not is_pod_terminated(p) and not _spec(p).get("nodeName")]
        names = sorted(str(_meta(p).get("name")) for p in pods)
        if not names:
            self._event(pvc, "Normal", "WaitForFirstConsumer",
                            "waiting for first consumer to be created before binding")
        elif len(names) == 1:
            self._event(pvc, "Normal", "WaitForPodScheduled", f"waiting for pod {names[0]} to be scheduled")
        else:
            self._event(pvc, "Normal", "WaitForPodScheduled", f"waiting for pods {','.join(names)} to be scheduled")

    async def _assign_default_class(self, pvc: Obj) -> bool:
        """assignDefaultStorageClass: a claim that never asked for a class gets the default one."""
        if vh.claim_has_class(pvc):
            return False
        sc = vh.default_class(self.classes.list())
        if sc is None:
            return False
        new = copy.deepcopy(pvc)
        new.setdefault("spec", {})["storageClassName"] = _meta(sc).get("name")
        self._remember("claim", await self.client.update(PVC, new, _meta(pvc).get("namespace")))
        log.info("assigned the default StorageClass %s to claim %s", _meta(sc).get("name"), claim_key(pvc))
        return True

    async def _provision(self, pvc: Obj) -> None:
        """provisionClaim for an external provisioner: annotate the claim with the provisioner to
        act on it; the provisioner's PV (claimRef set) is bound by a later sync."""
        name = vh.claim_class(pvc)
        sc = self.classes.get(name)
        if sc is None:
            self._event(pvc, "Warning", "ProvisioningFailed", f'storageclass.storage.k8s.io "{name}" not found')
            await self._update_claim_status(pvc, "Pending", None)
            return
        provisioner = str(sc.get("provisioner") or "")
        if provisioner.startswith("kubernetes.io/"):
            # kube's in-tree provisioners; k8py has none of them
            self._event(pvc, "Warning", "ProvisioningFailed", f"no volume plugin matched name: {provisioner}")
            await self._update_claim_status(pvc, "Pending", None)
            return
        ann = _ann(pvc)
        if ann.get(vh.ANN_STORAGE_PROVISIONER) != provisioner or ann.get(vh.ANN_BETA_STORAGE_PROVISIONER) != provisioner:
            new = copy.deepcopy(pvc)
            anns = new.setdefault("metadata", {}).setdefault("annotations", {})
            anns[vh.ANN_STORAGE_PROVISIONER] = provisioner
            anns[vh.ANN_BETA_STORAGE_PROVISIONER] = provisioner
            pvc = self._remember("claim", await self.client.update(PVC, new, _meta(pvc).get("namespace")))
        self._event(pvc, "Normal", "ExternalProvisioning",
                        f"Waiting for a volume to be created either by the external provisioner '{provisioner}' or "
                        "manually by the system administrator. If volume creation is delayed, please verify that the "
                        "provisioner is running and correctly registered.")
        await self._update_claim_status(pvc, "Pending", None)

    # -- volumes ------------------------------------------------------------------------------------

    async def sync_volume(self, pv: Obj) -> None:
        ref = _spec(pv).get("claimRef")
        if not ref or not ref.get("uid"):
            # unused, or pre-bound by the user to a claim that has not bound yet
            await self._update_volume_phase(pv, "Available", "")
            return
        key = claimref_key(pv)
        pvc = self._claim(key)
        if pvc is None and _phase(pv) not in ("Released", "Failed"):
            # why: a provisioner's or the scheduler's PV may name a claim this cache has not seen
            # yet; only the API server's answer may release the volume
            try:
                pvc = await self.client.get(PVC, str(ref.get("name")), str(ref.get("namespace")))
            except NotFoundError:
                pvc = None
        if pvc is not None and _meta(pvc).get("uid") != ref.get("uid"):
            try:  # the cache may be older than the claimRef: ask the API server
                pvc = await self.client.get(PVC, str(ref.get("name")), str(ref.get("namespace")))
            except NotFoundError:
                pvc = None
            if pvc is not None and _meta(pvc).get("uid") != ref.get("uid"):
                pvc = None  # deleted and made again under the same name
        if pvc is None:
            if _phase(pv) not in ("Released", "Failed"):
                log.info("volume %s is released and reclaim policy %s will be executed", _meta(pv).get("name"),
                         _spec(pv).get("persistentVolumeReclaimPolicy"))
                pv = await self._update_volume_phase(pv, "Released", "")
            await self._reclaim(pv)
            return
        claimed = str(_spec(pvc).get("volumeName") or "")
        name = str(_meta(pv).get("name"))
        if not claimed:
            if vh.volume_mode_mismatch(pvc, pv):
                self._event(pv, "Warning", "VolumeMismatch", "Cannot bind PersistentVolume to requested "
                                f'PersistentVolumeClaim "{_meta(pvc).get("name")}" due to incompatible volumeMode.')
                self._event(pvc, "Warning", "VolumeMismatch", f'Cannot bind PersistentVolume "{name}" to requested '
                                "PersistentVolumeClaim due to incompatible volumeMode.")
                return
            # the claim's sync finishes the binding (a provisioner's new PV lands here)
            self.controller.enqueue_key(f"claim:{key}")
            return
        if claimed == name:
            await self._update_volume_phase(pv, "Bound", "")
            return
        # the claim went to another volume
        if vh.ANN_DYNAMICALLY_PROVISIONED in _ann(pv) and _spec(pv).get("persistentVolumeReclaimPolicy") == "Delete":
            if _phase(pv) not in ("Released", "Failed"):
                pv = await self._update_volume_phase(pv, "Released", "")
            await self._reclaim(pv)
            return
        await self._unbind(pv)

    async def _reclaim(self, pv: Obj) -> None:
        policy = _spec(pv).get("persistentVolumeReclaimPolicy")
        name = str(_meta(pv).get("name"))
        if policy == "Retain":
            return
        if policy == "Recycle":
            await self._volume_failed(pv, "VolumeFailedRecycle", "No recycler plugin found for the volume!")
            return
        if policy != "Delete":
            await self._volume_failed(pv, "VolumeUnknownReclaimPolicy", "Volume has unrecognized "
                                      "PersistentVolumeReclaimPolicy")
            return
        # deleteVolumeOperation: act on the stored volume, and only if it is still released
        try:
            pv = await self.client.get(PV, name)
        except NotFoundError:
            return
        if not await self._is_released(pv):
            return
        provisioned_by = _ann(pv).get(vh.ANN_DYNAMICALLY_PROVISIONED, "")
        if (provisioned_by and not provisioned_by.startswith("kubernetes.io/")) or _spec(pv).get("csi"):
            log.debug("volume %s: its external provisioner deletes it", name)
            return
        host_path = (_spec(pv).get("hostPath") or {}).get("path")
        if host_path is None:
            await self._volume_failed(pv, "VolumeFailedDelete", f'error getting deleter volume plugin for volume '
                                      f'"{name}": no deletable volume plugin matched')
            return
        if not HOST_PATH_DELETABLE.search(str(host_path)):
            await self._volume_failed(pv, "VolumeFailedDelete", "host_path deleter only supports /tmp/.+ but "
                                      f"received provided {host_path}")
            return
        try:
            await asyncio.to_thread(shutil.rmtree, str(host_path), False, None)
        except FileNotFoundError:
            pass
        except OSError as e:
            await self._volume_failed(pv, "VolumeFailedDelete", str(e))
            return
        log.info("volume %s deleted (its hostPath %s removed)", name, host_path)
        try:
            await self.client.delete(PV, name, uid=_meta(pv).get("uid"))
        except NotFoundError:
            pass

    async def _is_released(self, pv: Obj) -> bool:
        """isVolumeReleased: bound (with a uid) to a claim that is gone or bound elsewhere."""
        ref = _spec(pv).get("claimRef")
        if not ref or not ref.get("uid"):
            return False
        pvc = self._claim(claimref_key(pv))
        if pvc is not None and _meta(pvc).get("uid") == ref.get("uid"):
            claimed = _spec(pvc).get("volumeName")
            return bool(claimed) and claimed != _meta(pv).get("name")
        return True

    async def _volume_failed(self, pv: Obj, reason: str, message: str) -> None:
        if _phase(pv) == "Failed":
            return
        new = await self._update_volume_phase(pv, "Failed", message)
        self._event(new, "Warning", reason, message)

    # -- writes -------------------------------------------------------------------------------------

    async def _bind(self, pv: Obj, pvc: Obj) -> None:
        """bind: the volume's claimRef, its phase, the claim's volumeName and annotations, its status."""
        new_pv, dirty = vh.bind_volume_to_claim(pv, pvc)
        if dirty:
            pv = self._remember("volume", await self.client.update(PV, new_pv))
            log.info("claim %s bound to volume %s", claim_key(pvc), _meta(pv).get("name"))
        pv = await self._update_volume_phase(pv, "Bound", "")
        pvc = await self._bind_claim_to_volume(pvc, pv)
        await self._update_claim_status(pvc, "Bound", pv)

    async def _bind_claim_to_volume(self, pvc: Obj, pv: Obj) -> Obj:
        new = copy.deepcopy(pvc)
        anns = new.setdefault("metadata", {}).setdefault("annotations", {})
        dirty = False
        name = _meta(pv).get("name")
        if _spec(pvc).get("volumeName") != name:
            new.setdefault("spec", {})["volumeName"] = name
            anns.setdefault(vh.ANN_BOUND_BY_CONTROLLER, "yes")
            dirty = True
        if vh.ANN_BIND_COMPLETED not in anns:
            anns[vh.ANN_BIND_COMPLETED] = "yes"
            dirty = True
        if not dirty:
            return pvc
        return self._remember("claim", await self.client.update(PVC, new, _meta(pvc).get("namespace")))

    async def _unbind(self, pv: Obj) -> None:
        """unbindVolume: a volume the controller bound loses its claimRef; a user's pre-binding
        keeps its claim and loses only the uid. Then it is Available again."""
        new = copy.deepcopy(pv)
        anns = new.setdefault("metadata", {}).get("annotations") or {}
        if vh.ANN_BOUND_BY_CONTROLLER in anns:
            new["spec"].pop("claimRef", None)
            anns.pop(vh.ANN_BOUND_BY_CONTROLLER, None)
            if not anns:
                new["metadata"].pop("annotations", None)
        else:
            new["spec"]["claimRef"].pop("uid", None)
        pv = self._remember("volume", await self.client.update(PV, new))
        await self._update_volume_phase(pv, "Available", "")

    async def _update_volume_phase(self, pv: Obj, phase: str, message: str) -> Obj:
        if _phase(pv) == phase:
            return pv
        new = copy.deepcopy(pv)
        st = new.setdefault("status", {})
        st["phase"] = phase
        if message:
            st["message"] = message
        else:
            st.pop("message", None)
        out = self._remember("volume", await self.client.update_status(PV, new))
        log.info("volume %s entered phase %s", _meta(pv).get("name"), phase)
        return out

    async def _update_claim_status(self, pvc: Obj, phase: str, pv: Obj | None) -> Obj:
        new = copy.deepcopy(pvc)
        st = new.setdefault("status", {})
        dirty = False
        if _phase(pvc) != phase:
            st["phase"] = phase
            dirty = True
        if pv is None:
            for f in ("accessModes", "capacity"):
                if st.get(f) is not None:
                    st.pop(f)
                    dirty = True
        else:
            modes = _spec(pv).get("accessModes")
            if st.get("accessModes") != modes:
                st["accessModes"] = modes
                dirty = True
            # why only when becoming Bound: a later difference may be intended (a filesystem smaller
            # than its block device, a resize in progress), as in kube
            if _phase(pvc) != phase:
                cap = (_spec(pv).get("capacity") or {}).get("storage")
                if cap is None:
                    raise ValueError(f'PersistentVolume "{_meta(pv).get("name")}" is without a storage capacity')
                if (st.get("capacity") or {}).get("storage") != cap:
                    st["capacity"] = dict(_spec(pv).get("capacity") or {})
                    dirty = True
        if not dirty:
            return pvc
        out = self._remember("claim", await self.client.update_status(PVC, new, _meta(pvc).get("namespace")))
        if _phase(pvc) != phase:
            log.info("claim %s entered phase %s", claim_key(pvc), phase)
        return out
