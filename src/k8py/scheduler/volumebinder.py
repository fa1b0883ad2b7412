"""The scheduler's volume binder (kube's ``SchedulerVolumeBinder``): where a pod's
PersistentVolumeClaims meet node selection.

- :meth:`VolumeBinder.pod_volume_claims` (PreFilter) sorts the pod's claims into bound ones,
  unbound WaitForFirstConsumer ones (the scheduler's to bind) and unbound Immediate ones (the PV
  controller's: the pod waits for them);
- :meth:`VolumeBinder.find_pod_volumes` (Filter, per node): a bound claim's PV must admit the
  node (``nodeAffinity``); an unbound claim needs an Available PV that fits and admits the node,
  or a StorageClass whose provisioner may provision there (``allowedTopologies``);
- :meth:`VolumeBinder.assume_pod_volumes` (Reserve) records the choice in assume caches, so the
  next pods' cycles see the PVs and claims as taken before the API writes land; ``revert`` undoes;
- :meth:`VolumeBinder.bind_pod_volumes` (PreBind) writes the choice -- a chosen PV's
  ``spec.claimRef``, or a claim's ``volume.kubernetes.io/selected-node`` for its provisioner --
  and waits, at most ``bind_timeout``, until the PV controller has bound every claim.

The binder reads PVs, PVCs and StorageClasses from listers (the scheduler's informers; tests
pass dicts) and writes with the API client only; nothing here knows the PV controller.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from k8py.api.corev1 import NodeSelector, pod_volume_claims
from k8py.api.selectors import SelectorError
from k8py.api.volume import (
    ANN_SELECTED_NODE,
    NOT_SUPPORTED_PROVISIONER,
    VolumeCandidates,
    affinity_admits,
    bind_volume_to_claim,
    check_node_affinity,
    claim_class,
    claim_request,
    is_delay_binding,
    is_fully_bound,
    match_topology_terms,
    node_affinity,
    volume_class,
)
from k8py.client.clock import Clock, RealClock

__all__ = [
    "ERR_BIND_CONFLICT",
    "ERR_NODE_CONFLICT",
    "ERR_PV_NOT_EXIST",
    "PV",
    "PVC",
    "UNBOUND_IMMEDIATE",
    "AssumeCache",
    "BindError",
    "ClaimsError",
    "PodVolumeClaims",
    "PodVolumes",
    "VolumeBinder",
]

Obj = dict[str, Any]
PV = ("v1", "PersistentVolume")
PVC = ("v1", "PersistentVolumeClaim")

# kube's ConflictReasons, word for word (users and tools grep FailedScheduling events for them)
ERR_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
ERR_NODE_CONFLICT = "node(s) had volume node affinity conflict"
ERR_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
# how often a waiting PreBind looks again when no informer event woke it (kube polls every second)
POLL_INTERVAL = 1.0


class Lister(Protocol):
    """Read access to one kind's cache (an Informer is one)."""

    def get(self, name: str, namespace: str | None = None) -> Obj | None: ...

    def list(self, namespace: str | None = None) -> list[Obj]: ...


class ClaimsError(Exception):
    """The pod's claims cannot be used as they are (PreFilter: unschedulable until they change)."""


class BindError(Exception):
    """Writing or waiting for the binding failed; the pod goes back to the queue."""


def _rv(obj: Mapping[str, Any] | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    m = obj.get("metadata") or {}
    return str(m.get("namespace") or ""), str(m.get("name") or "")


class AssumeCache:
    """An informer's objects with this scheduler's not-yet-written decisions laid over them
    (kube's AssumeCache). An assumed version stands until the informer delivers a newer one
    (the write landed, or someone else's did) or it is restored."""

    def __init__(self, source: Lister) -> None:
        self.source = source
        self._assumed: dict[tuple[str, str], Obj] = {}

    def get(self, name: str, namespace: str | None = None) -> Obj | None:
        cur = self.source.get(name, namespace)
        key = (namespace or "", name)
        a = self._assumed.get(key)
        if a is None:
            return cur
        if cur is None or _rv(cur) > _rv(a):
            del self._assumed[key]  # the informer moved on: its version is the truth now
            return cur
        return a

    def get_api(self, name: str, namespace: str | None = None) -> Obj | None:
        """The informer's version, ignoring what is assumed (PreBind checks the API's view)."""
        return self.source.get(name, namespace)

    def list(self, namespace: str | None = None) -> list[Obj]:
        out = []
        for obj in self.source.list(namespace):
            ns, name = _key(obj)
            out.append(self.get(name, ns or None) or obj)
        return out

    def assume(self, obj: Obj) -> None:
        ns, name = _key(obj)
        cur = self.source.get(name, ns or None)
        if cur is None:
            raise BindError(f'{obj.get("kind") or "object"} "{name}" not found')
        if _rv(obj) < _rv(cur):
            raise BindError(f'{obj.get("kind") or "object"} "{name}" is out of sync with the cache '
                            f'(cached: {_rv(cur)}, assumed: {_rv(obj)})')
        self._assumed[(ns, name)] = obj

    def restore(self, obj: Mapping[str, Any]) -> None:
        self._assumed.pop(_key(obj), None)

    def observed(self, obj: Mapping[str, Any]) -> None:
        """An informer event for ``obj``: drop an assumed version it supersedes."""
        key = _key(obj)
        a = self._assumed.get(key)
        if a is not None and _rv(obj) > _rv(a):
            del self._assumed[key]

    def forget(self, obj: Mapping[str, Any]) -> None:
        self._assumed.pop(_key(obj), None)

    def __len__(self) -> int:
        return len(self._assumed)


@dataclass(slots=True)
class PodVolumeClaims:
    """PreFilter's sorting of a pod's claims."""

    bound: list[Obj] = field(default_factory=list)
    to_bind: list[Obj] = field(default_factory=list)  # unbound, WaitForFirstConsumer: ours to bind
    immediate: list[Obj] = field(default_factory=list)  # unbound, Immediate: the PV controller's
    # what does not depend on the node, worked out once per cycle rather than once per node (kube
    # keeps the PVs of the claims' classes, unboundVolumesDelayBinding): the volumes that may bind
    # each claim to bind (by namespace/name), and the node affinity of the bound claims' PVs (by PV
    # name; None: no constraint; a PV missing from the cache is not there)
    candidates: dict[tuple[str, str], VolumeCandidates] = field(default_factory=dict)
    bound_affinities: dict[str, NodeSelector | None] = field(default_factory=dict)


@dataclass(slots=True)
class PodVolumes:
    """Filter's answer for one node: PVs to bind to claims, and claims to provision there."""

    static_bindings: list[tuple[Obj, Obj]] = field(default_factory=list)  # (pv, pvc)
    dynamic_provisions: list[Obj] = field(default_factory=list)  # pvcs


def _volume_is_for_pod(pod_obj: Mapping[str, Any], pvc: Mapping[str, Any]) -> str | None:
    """ephemeral.VolumeIsForPod: the claim of an ephemeral volume must be controlled by the pod."""
    pm, cm = pod_obj.get("metadata") or {}, pvc.get("metadata") or {}
    for ref in cm.get("ownerReferences") or ():
        if ref.get("controller") and ref.get("uid") == pm.get("uid"):
            return None
    return (f"PVC {cm.get('namespace')}/{cm.get('name')} was not created for pod "
            f"{pm.get('namespace')}/{pm.get('name')} (pod is not owner)")


class VolumeBinder:
    """See the module docstring. ``node_labels(name)`` gives a node's labels (None when the node
    is unknown); ``pod_exists(namespace, name, uid)`` tells a waiting PreBind that its pod is gone."""

    def __init__(self, client: Any, pvcs: Lister, pvs: Lister, classes: Lister, *,
                 node_labels: Callable[[str], Mapping[str, str] | None],
                 pod_exists: Callable[[str, str, str], bool], bind_timeout: float = 600.0,
                 clock: Clock | None = None, poll_interval: float = POLL_INTERVAL) -> None:
        self.client = client
        self.pvc_cache = AssumeCache(pvcs)
        self.pv_cache = AssumeCache(pvs)
        self.classes = classes
        self.node_labels = node_labels
        self.pod_exists = pod_exists
        self.bind_timeout = bind_timeout
        self.clock: Clock = clock or RealClock()
        self.poll_interval = poll_interval
        self._waiters: set[asyncio.Event] = set()

    # -- informer events -------------------------------------------------------------------------

    def on_pvc(self, obj: Obj) -> None:
        self.pvc_cache.observed(obj)
        self._wake()

    def on_pv(self, obj: Obj) -> None:
        self.pv_cache.observed(obj)
        self._wake()

    def on_pvc_deleted(self, obj: Obj) -> None:
        self.pvc_cache.forget(obj)
        self._wake()

    def on_pv_deleted(self, obj: Obj) -> None:
        self.pv_cache.forget(obj)
        self._wake()

    def _wake(self) -> None:
        for ev in self._waiters:
            ev.set()

    # -- PreFilter -------------------------------------------------------------------------------

    def pod_volume_claims(self, pod_obj: Mapping[str, Any]) -> PodVolumeClaims:
        """The pod's claims, sorted; raises :class:`ClaimsError` (kube's podHasPVCs and
        GetPodVolumeClaims messages) when one is missing, lost, being deleted or not the pod's."""
        ns = str((pod_obj.get("metadata") or {}).get("namespace") or "")
        out = PodVolumeClaims()
        for name, ephemeral in pod_volume_claims(pod_obj):
            pvc = self.pvc_cache.get(name, ns)
            if pvc is None:
                if ephemeral:
                    raise ClaimsError(f'waiting for ephemeral volume controller to create the '
                                      f'persistentvolumeclaim "{name}"')
                raise ClaimsError(f'persistentvolumeclaim "{name}" not found')
            spec = pvc.get("spec") or {}
            if (pvc.get("status") or {}).get("phase") == "Lost":
                raise ClaimsError(f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume '
                                  f'"{spec.get("volumeName") or ""}"')
            if (pvc.get("metadata") or {}).get("deletionTimestamp"):
                raise ClaimsError(f'persistentvolumeclaim "{name}" is being deleted')
            if ephemeral:
                wrong = _volume_is_for_pod(pod_obj, pvc)
                if wrong:
                    raise ClaimsError(wrong)
            if is_fully_bound(pvc):
                out.bound.append(pvc)
            elif self.delay_binding(pvc) and not spec.get("volumeName"):
                out.to_bind.append(pvc)
            else:
                out.immediate.append(pvc)  # Immediate, or pre-bound by the user: the PV controller's
        for pvc in out.bound:
            name = str((pvc.get("spec") or {}).get("volumeName"))
            pv = self.pv_cache.get(name)
            if pv is not None:
                out.bound_affinities[name] = node_affinity(pv)
        if out.to_bind:
            by_class: dict[str, list[Obj]] = {}
            wanted = {claim_class(c) for c in out.to_bind}
            for pv in self.pv_cache.list():
                cls = volume_class(pv)
                if cls in wanted:
                    by_class.setdefault(cls, []).append(pv)
            for pvc in out.to_bind:
                try:
                    out.candidates[_key(pvc)] = VolumeCandidates.of(pvc, by_class.get(claim_class(pvc), ()),
                                                                    scheduler=True)
                except SelectorError as e:
                    raise ClaimsError(f"error creating internal label selector for claim "
                                      f"{_key(pvc)[0]}/{_key(pvc)[1]}: {e}") from None
        return out

    def delay_binding(self, pvc: Mapping[str, Any]) -> bool:
        """IsDelayBindingMode over the scheduler's classes."""
        try:
            return is_delay_binding(pvc, self.classes.get)
        except ValueError as e:
            raise ClaimsError(str(e)) from e

    # -- Filter ----------------------------------------------------------------------------------

    def find_pod_volumes(self, claims: PodVolumeClaims, node: str,
                         labels: Mapping[str, str]) -> tuple[PodVolumes, list[str]]:
        """(the node's PodVolumes, kube's conflict reasons); raises :class:`BindError` for what
        kube answers with an error (a claim of no class, a class that does not exist)."""
        pv_ok = affinity_ok = unbound_ok = True
        result = PodVolumes()
        for pvc in claims.bound:
            name = str((pvc.get("spec") or {}).get("volumeName"))
            if name not in claims.bound_affinities:
                pv_ok = False  # the PV is not in the cache
                break
            if not affinity_admits(claims.bound_affinities[name], labels):
                affinity_ok = False
                break
        if pv_ok and affinity_ok and claims.to_bind:
            to_match: list[Obj] = []
            to_provision: list[Obj] = []
            for pvc in claims.to_bind:
                selected = ((pvc.get("metadata") or {}).get("annotations") or {}).get(ANN_SELECTED_NODE)
                if selected is not None:
                    if selected != node:
                        unbound_ok = False  # provisioning already started for another node
                        to_match = to_provision = []
                        break
                    to_provision.append(pvc)
                else:
                    to_match.append(pvc)
            if to_match:
                unbound_ok, result.static_bindings, unmatched = self._find_matching(to_match, claims, labels)
                to_provision += unmatched
            if to_provision:
                unbound_ok, result.dynamic_provisions = self._check_provisions(to_provision, labels)
        reasons = []
        if not affinity_ok:
            reasons.append(ERR_NODE_CONFLICT)
        if not unbound_ok:
            reasons.append(ERR_BIND_CONFLICT)
        if not pv_ok:
            reasons.append(ERR_PV_NOT_EXIST)
        return result, reasons

    def _find_matching(self, claims: list[Obj], pod_claims: PodVolumeClaims, labels: Mapping[str, str]
                       ) -> tuple[bool, list[tuple[Obj, Obj]], list[Obj]]:
        chosen: set[str] = set()
        bindings: list[tuple[Obj, Obj]] = []
        unmatched: list[Obj] = []
        # smallest requests first, so each gets the smallest volume that fits it
        for pvc in sorted(claims, key=claim_request):
            match = pod_claims.candidates[_key(pvc)].pick(labels, chosen)
            if match is None:
                unmatched.append(pvc)
                continue
            chosen.add(str(match["metadata"]["name"]))
            bindings.append((dict(match), pvc))
        return not unmatched, bindings, unmatched

    def _check_provisions(self, claims: list[Obj], labels: Mapping[str, str]) -> tuple[bool, list[Obj]]:
        for pvc in claims:
            name = claim_class(pvc)
            ns, pvc_name = _key(pvc)
            if not name:
                raise BindError(f'no class for claim "{ns}/{pvc_name}"')
            cls = self.classes.get(name)
            if cls is None:
                raise BindError(f'failed to find storage class "{name}"')
            provisioner = cls.get("provisioner") or ""
            if not provisioner or provisioner == NOT_SUPPORTED_PROVISIONER:
                return False, []
            if not match_topology_terms(cls.get("allowedTopologies"), labels):
                return False, []
        return True, list(claims)

    # -- Reserve / Unreserve ---------------------------------------------------------------------

    def all_bound(self, pod_obj: Mapping[str, Any]) -> bool:
        ns = str((pod_obj.get("metadata") or {}).get("namespace") or "")
        for name, _ in pod_volume_claims(pod_obj):
            pvc = self.pvc_cache.get(name, ns)
            if pvc is None or not is_fully_bound(pvc):
                return False
        return True

    def assume_pod_volumes(self, pod_obj: Mapping[str, Any], node: str, volumes: PodVolumes) -> bool:
        """Lay the node's choice over the caches; True when every claim is bound already (nothing
        for PreBind to do). ``volumes`` then holds the objects to write."""
        if self.all_bound(pod_obj):
            return True
        bindings: list[tuple[Obj, Obj]] = []
        provisions: list[Obj] = []
        try:
            for pv, pvc in volumes.static_bindings:
                new_pv, dirty = bind_volume_to_claim(pv, pvc)
                if dirty:
                    self.pv_cache.assume(new_pv)
                bindings.append((new_pv, pvc))
            for pvc in volumes.dynamic_provisions:
                clone = copy.deepcopy(pvc)
                clone.setdefault("metadata", {}).setdefault("annotations", {})[ANN_SELECTED_NODE] = node
                self.pvc_cache.assume(clone)
                provisions.append(clone)
        except BindError:
            self._revert(bindings, provisions)
            raise
        volumes.static_bindings, volumes.dynamic_provisions = bindings, provisions
        return False

    def revert_pod_volumes(self, volumes: PodVolumes) -> None:
        self._revert(volumes.static_bindings, volumes.dynamic_provisions)

    def _revert(self, bindings: Iterable[tuple[Obj, Obj]], provisions: Iterable[Obj]) -> None:
        for pv, _ in bindings:
            self.pv_cache.restore(pv)
        for pvc in provisions:
            self.pvc_cache.restore(pvc)

    # -- PreBind ---------------------------------------------------------------------------------

    async def bind_pod_volumes(self, pod_obj: Mapping[str, Any], node: str, volumes: PodVolumes) -> None:
        """Write the assumed bindings and wait until the PV controller has bound every claim;
        raises :class:`BindError` (the pod is then scheduled again)."""
        bindings = list(volumes.static_bindings)
        provisions = list(volumes.dynamic_provisions)
        done_b = done_p = 0
        try:
            for i, (pv, pvc) in enumerate(bindings):
                bindings[i] = (await self.client.update(PV, pv), pvc)
                done_b += 1
            for i, pvc in enumerate(provisions):
                provisions[i] = await self.client.update(PVC, pvc, _key(pvc)[0])
                done_p += 1
        except Exception as e:  # noqa: BLE001 - any failed write sends the pod back to the queue
            raise BindError(f"binding volumes: {getattr(e, 'message', None) or e}") from None
        finally:
            # only what was not written goes back; what was written the informer will bring
            self._revert(bindings[done_b:], provisions[done_p:])
        ev = asyncio.Event()
        self._waiters.add(ev)
        deadline = self.clock.now() + self.bind_timeout
        try:
            while True:
                ev.clear()
                if self._check_bindings(pod_obj, node, bindings, provisions):
                    return
                left = deadline - self.clock.now()
                if left <= 0:
                    raise BindError("binding volumes: timed out waiting for the condition")
                # why: an informer event about a PV or claim wakes us; the bounded wait also
                # re-checks what no event announces (the node's labels)
                try:
                    async with asyncio.timeout(min(self.poll_interval, left)):
                        await ev.wait()
                except TimeoutError:
                    pass
        finally:
            self._waiters.discard(ev)

    def _check_bindings(self, pod_obj: Mapping[str, Any], node: str, bindings: list[tuple[Obj, Obj]],
                        provisions: list[Obj]) -> bool:
        """checkBindings, on the informers' (the API's) versions, not the assumed ones."""
        pm = pod_obj.get("metadata") or {}
        ns = str(pm.get("namespace") or "")
        labels = self.node_labels(node)
        if labels is None:
            raise BindError(f'binding volumes: failed to get node "{node}"')
        if not self.pod_exists(ns, str(pm.get("name") or ""), str(pm.get("uid") or "")):
            raise BindError(f'binding volumes: pod does not exist any more: pods "{pm.get("name")}" not found')
        for written, pvc in bindings:
            pv_name = str(written["metadata"]["name"])
            pv = self.pv_cache.get_api(pv_name)
            api_pvc = self.pvc_cache.get_api(_key(pvc)[1], ns)
            if pv is None or api_pvc is None:
                what = f'persistentvolume "{pv_name}"' if pv is None else f'persistentvolumeclaim "{_key(pvc)[1]}"'
                raise BindError(f"binding volumes: failed to check binding: {what} not found")
            if _rv(written) > _rv(pv):
                return False  # our write has not reached the informer yet
            if not check_node_affinity(pv, labels):
                raise BindError(f'binding volumes: pv "{pv_name}" node affinity doesn\'t match node "{node}": '
                                "no matching NodeSelectorTerms")
            if not ((pv.get("spec") or {}).get("claimRef") or {}).get("uid"):
                raise BindError(f'binding volumes: ClaimRef got reset for pv "{pv_name}"')
            if not is_fully_bound(api_pvc):
                return False
        for written in provisions:
            name = _key(written)[1]
            cur = self.pvc_cache.get_api(name, ns)
            if cur is None:
                raise BindError(f'binding volumes: failed to check provisioning pvc: persistentvolumeclaim '
                                f'"{name}" not found')
            if _rv(written) > _rv(cur):
                return False
            if ((cur.get("metadata") or {}).get("annotations") or {}).get(ANN_SELECTED_NODE) != node:
                # a provisioner that cannot provision removes the annotation: schedule again
                raise BindError(f'binding volumes: provisioning failed for PVC "{name}"')
            vol = (cur.get("spec") or {}).get("volumeName")
            if vol:
                got = self.pv_cache.get_api(str(vol))
                if got is None:
                    return False  # not in our informer yet
                if not check_node_affinity(got, labels):
                    raise BindError(f'binding volumes: pv "{vol}" node affinity doesn\'t match node "{node}": '
                                    "no matching NodeSelectorTerms")
            if not is_fully_bound(cur):
                return False
        return True
