"""The StatefulSet controller (kube's ``pkg/controller/statefulset``): pods with stable identities.

Each pod is ``<set>-<ordinal>`` for ordinals ``start..start+replicas-1`` (``spec.ordinals.start``,
default 0), labelled ``statefulset.kubernetes.io/pod-name`` and ``apps.kubernetes.io/pod-index``,
with ``hostname`` = its name and ``subdomain`` = ``spec.serviceName`` so that the governing
headless Service gives it a DNS name. Each ``volumeClaimTemplates`` entry gives each pod a claim
``<template>-<set>-<ordinal>`` that outlives the pod: a deleted pod comes back with the same
name and the same claim. ``persistentVolumeClaimRetentionPolicy`` decides, through
ownerReferences the garbage collector acts on, whether claims go when the set is deleted
(``whenDeleted``) or scaled down (``whenScaled``).

``OrderedReady`` creates pods in ordinal order, each only when all before it are Running and
Ready (and available for ``minReadySeconds``), and removes them in reverse; ``Parallel`` does
both at once. ``RollingUpdate`` replaces pods from the highest ordinal down to ``partition``, one
at a time (or ``maxUnavailable`` at a time), waiting for each to be healthy; ``OnDelete`` only
uses the new template for pods that are deleted. Templates are ControllerRevisions
(``status.currentRevision``/``updateRevision``, pod label ``controller-revision-hash``), so
``kubectl rollout history/undo statefulset`` work.

A ``serviceName`` that names no Service is allowed, as in kube, but the pods then have no DNS
names: the controller says so once in a Warning event (``ServiceNotFound``, or
``ServiceNotHeadless`` for a Service with a cluster IP).
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from k8py.api.selectors import LabelSelector, SelectorError, from_label_selector
from k8py.client.api import object_key
from k8py.client.controller import Controller, Result
from k8py.client.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from k8py.client.store import OWNER_UID_INDEX
from k8py.controllers.base import ControllerContext
from k8py.controllers.deploymentutil import scaled_value
from k8py.controllers.history import (
    CONTROLLER_REVISION,
    HASH_LABEL,
    History,
    apply_revision,
    equal_revision,
    find_equal_revisions,
    new_revision,
    next_revision,
    sort_revisions,
    template_patch,
)
from k8py.controllers.podcontrol import (
    CONTROLLERLESS_INDEX,
    ControllerRefManager,
    PodControl,
    controller_ref,
    error_message,
    index_controllerless,
    is_pod_available,
    is_pod_ready,
    new_controller_ref,
    owners_selecting,
    pod_from_template,
    recheck_deletion_timestamp,
    resolve_controller_ref,
    seconds_until_available,
)

__all__ = ["POD_INDEX_LABEL", "POD_NAME_LABEL", "StatefulSetController", "parent_and_ordinal"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

STATEFULSET = ("apps/v1", "StatefulSet")
POD = ("v1", "Pod")
PVC = ("v1", "PersistentVolumeClaim")
SERVICE = ("v1", "Service")

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"  # apps.StatefulSetPodNameLabel
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"  # apps.PodIndexLabel

# Events
SUCCESSFUL_CREATE = "SuccessfulCreate"
FAILED_CREATE = "FailedCreate"
SUCCESSFUL_DELETE = "SuccessfulDelete"
FAILED_DELETE = "FailedDelete"
RECREATING_FAILED_POD = "RecreatingFailedPod"
RECREATING_TERMINATED_POD = "RecreatingTerminatedPod"
SERVICE_NOT_FOUND = "ServiceNotFound"
SERVICE_NOT_HEADLESS = "ServiceNotHeadless"

_POD_RE = re.compile(r"(.*)-([0-9]+)$")


# -- identity ------------------------------------------------------------------------------------


def _md(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    """``getParentNameAndOrdinal``: ``("web", 2)`` for ``web-2``; ``("", -1)`` when the name is
    not of that form."""
    m = _POD_RE.match(str(_md(pod).get("name") or ""))
    if m is None:
        return "", -1
    n = int(m.group(2))
    return m.group(1), (n if n < 2**31 else -1)


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def start_ordinal(sts: Obj) -> int:
    return int((_spec(sts).get("ordinals") or {}).get("start") or 0)


def replicas_of(sts: Obj) -> int:
    r = _spec(sts).get("replicas")
    return 1 if r is None else int(r)


def in_ordinal_range(pod: Obj, sts: Obj) -> bool:
    o, start = ordinal_of(pod), start_ordinal(sts)
    return start <= o < start + replicas_of(sts)


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{_md(sts).get('name')}-{ordinal}"


def claim_name(sts: Obj, template: Obj, ordinal: int) -> str:
    return f"{_md(template).get('name')}-{_md(sts).get('name')}-{ordinal}"


def is_member_of(sts: Obj, pod: Obj) -> bool:
    return parent_and_ordinal(pod)[0] == _md(sts).get("name")


def pod_revision(pod: Obj) -> str:
    return str((_md(pod).get("labels") or {}).get(HASH_LABEL) or "")


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_created(pod: Obj) -> bool:
    return _phase(pod) != ""


def is_terminating(pod: Obj) -> bool:
    return bool(_md(pod).get("deletionTimestamp"))


def is_running_and_ready(pod: Obj) -> bool:
    return _phase(pod) == "Running" and is_pod_ready(pod)


def identity_matches(sts: Obj, pod: Obj) -> bool:
    parent, o = parent_and_ordinal(pod)
    labels = _md(pod).get("labels") or {}
    return (o >= 0 and parent == _md(sts).get("name") and _md(pod).get("name") == pod_name(sts, o)
            and _md(pod).get("namespace") == _md(sts).get("namespace")
            and labels.get(POD_NAME_LABEL) == _md(pod).get("name") and labels.get(POD_INDEX_LABEL) == str(o))


def claims_for(sts: Obj, ordinal: int) -> dict[str, Obj]:
    """``getPersistentVolumeClaims``: volume name -> the claim the pod at ``ordinal`` uses."""
    out: dict[str, Obj] = {}
    match_labels = ((_spec(sts).get("selector") or {}).get("matchLabels")) or {}
    for t in _spec(sts).get("volumeClaimTemplates") or ():
        tmd = _md(t)
        md: Obj = {"name": claim_name(sts, t, ordinal), "namespace": _md(sts).get("namespace"),
                   "labels": {**(tmd.get("labels") or {}), **match_labels}}
        if tmd.get("annotations"):
            md["annotations"] = dict(tmd["annotations"])
        out[str(tmd.get("name"))] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": md,
                                     "spec": copy.deepcopy(_spec(t))}
    return out


def storage_matches(sts: Obj, pod: Obj) -> bool:
    o = ordinal_of(pod)
    if o < 0:
        return False
    vols = {v.get("name"): v for v in _spec(pod).get("volumes") or ()}
    for name, claim in claims_for(sts, o).items():
        src = (vols.get(name) or {}).get("persistentVolumeClaim") or {}
        if src.get("claimName") != _md(claim)["name"]:
            return False
    return True


def new_pod(sts: Obj, ordinal: int, revision: str) -> Obj:
    """``newStatefulSetPod`` + ``setPodRevision``: the pod at ``ordinal`` from ``sts``'s template."""
    name = pod_name(sts, ordinal)
    pod = pod_from_template(_spec(sts).get("template"), sts, "",
                            controller_ref=new_controller_ref(sts, "apps/v1", "StatefulSet"))
    md = pod["metadata"]
    md["name"] = name
    md["namespace"] = _md(sts).get("namespace")
    md.setdefault("labels", {}).update(
        {POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal), HASH_LABEL: revision})
    spec = pod["spec"]
    spec["hostname"] = name
    if _spec(sts).get("serviceName"):
        spec["subdomain"] = _spec(sts)["serviceName"]
    claims = claims_for(sts, ordinal)
    vols = [{"name": n, "persistentVolumeClaim": {"claimName": _md(c)["name"]}} for n, c in claims.items()]
    vols += [v for v in spec.get("volumes") or () if v.get("name") not in claims]
    if vols:
        spec["volumes"] = vols
    return pod


def _versioned_pod(current_set: Obj, update_set: Obj, current_rev: str, update_rev: str, ordinal: int,
                   current_replicas: int) -> Obj:
    """``newVersionedStatefulSetPod``: ordinals below the partition keep the current revision."""
    us = _spec(current_set).get("updateStrategy") or {}
    ru = us.get("rollingUpdate")
    start = start_ordinal(current_set)
    rolling = (us.get("type") or "RollingUpdate") == "RollingUpdate"
    if (rolling and ru is None and ordinal < start + current_replicas) or \
            (ru is not None and ordinal < start + int(ru.get("partition") or 0)):
        return new_pod(current_set, ordinal, current_rev)
    return new_pod(update_set, ordinal, update_rev)


# -- claim retention -----------------------------------------------------------------------------


def _policy(sts: Obj) -> tuple[str, str]:
    p = _spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}
    return str(p.get("whenDeleted") or "Retain"), str(p.get("whenScaled") or "Retain")


def _ref_matches(ref: Obj, obj: Obj, api_version: str, kind: str) -> bool:
    return (ref.get("apiVersion") == api_version and ref.get("kind") == kind
            and ref.get("name") == _md(obj).get("name"))


def _has_ref(claim: Obj, owner: Obj) -> bool:
    uid = _md(owner).get("uid")
    return any(r.get("uid") == uid for r in _md(claim).get("ownerReferences") or ())


def _unexpected_controller(claim: Obj, sts: Obj, pod: Obj) -> bool:
    if _policy(sts) == ("Retain", "Retain"):
        return False
    for r in _md(claim).get("ownerReferences") or ():
        for owner, kind, av in ((sts, "StatefulSet", "apps/v1"), (pod, "Pod", "v1")):
            if _ref_matches(r, owner, av, kind):
                if r.get("uid") != _md(owner).get("uid"):
                    return True  # a ref to an earlier incarnation: leave the claim to the GC
                break
        else:
            if r.get("controller") is True:
                return True
    return False


def claim_owners_up_to_date(claim: Obj, sts: Obj, pod: Obj) -> bool:
    """``isClaimOwnerUpToDate``: Retain/Retain no refs; whenDeleted=Delete a controller ref to
    the set; whenScaled=Delete a controller ref to the pod once the pod is scaled away."""
    for owner, kind, av in ((sts, "StatefulSet", "apps/v1"), (pod, "Pod", "v1")):
        for r in _md(claim).get("ownerReferences") or ():
            if _ref_matches(r, owner, av, kind) and r.get("uid") != _md(owner).get("uid"):
                return True  # stale: managed by an earlier, presumably deleted, owner; do not touch
    if _unexpected_controller(claim, sts, pod):
        return not (_has_ref(claim, sts) or _has_ref(claim, pod))
    uids = {_md(sts).get("uid"), _md(pod).get("uid")}
    refs = _md(claim).get("ownerReferences") or ()
    if any(r.get("uid") in uids and r.get("controller") is not True for r in refs):
        return False  # ours, but not as controller: redo them
    deleted, scaled = _policy(sts)
    scaled_down = not in_ordinal_range(pod, sts)
    want_set = deleted == "Delete" and not (scaled == "Delete" and scaled_down)
    want_pod = scaled == "Delete" and scaled_down
    return _has_ref(claim, sts) == want_set and _has_ref(claim, pod) == want_pod


def claim_owner_refs(claim: Obj, sts: Obj, pod: Obj | None) -> list[Obj]:
    """``updateClaimOwnerRefForSetAndPod``: the claim's ownerReferences as the policy wants them
    (``pod`` None: the pod does not exist yet)."""
    refs = [r for r in _md(claim).get("ownerReferences") or ()
            if not _ref_matches(r, sts, "apps/v1", "StatefulSet")
            and not (pod is not None and _ref_matches(r, pod, "v1", "Pod"))]
    if pod is not None and _unexpected_controller(claim, sts, pod):
        return refs
    deleted, scaled = _policy(sts)
    scaled_down = pod is not None and not in_ordinal_range(pod, sts)
    if scaled == "Delete" and scaled_down:
        assert pod is not None
        refs.append(new_controller_ref(pod, "v1", "Pod"))
    elif deleted == "Delete":
        refs.append(new_controller_ref(sts, "apps/v1", "StatefulSet"))
    return refs


# -- status --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Status:
    observed_generation: int
    current_revision: str
    update_revision: str
    collision_count: int
    replicas: int = 0
    ready: int = 0
    available: int = 0
    current: int = 0
    updated: int = 0
    wait: list[float] = field(default_factory=list)  # seconds until ready pods become available

    def counted(self, pod: Obj, delta: int) -> None:
        rev = pod_revision(pod)
        if rev == self.current_revision:
            self.current += delta
        if rev == self.update_revision:
            self.updated += delta


# -- the controller ------------------------------------------------------------------------------


class StatefulSetController:
    NAME = "statefulset"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        f = ctx.factory
        self.sts_inf = f.informer(STATEFULSET)
        self.pod_inf = f.informer(POD)
        self.rev_inf = f.informer(CONTROLLER_REVISION)
        self.pvc_inf = f.informer(PVC)
        self.svc_inf = f.informer(SERVICE)
        index_controllerless(self.pod_inf)
        self.history = History(self.client, self.rev_inf)
        self.pods = PodControl(self.client)  # patches only; this controller records its own events
        self._warned: dict[str, tuple[str, str]] = {}  # set uid -> (service, reason) warned about
        self.controller = Controller(self.NAME, self.reconcile, workers=ctx.options.workers or 2,
                                     clock=self.clock)
        self.controller.watch(self.sts_inf)
        self.controller.watch(self.pod_inf, self._pod_keys)
        self.controller.watch(self.rev_inf, self._revision_keys)
        self.controller.watch(self.svc_inf, self._service_keys)

    # -- event handlers ---------------------------------------------------------------------------

    def _set_of_ref(self, namespace: str, ref: Obj | None) -> Obj | None:
        return resolve_controller_ref(self.sts_inf, namespace, ref, "StatefulSet")

    def _selecting(self, obj: Obj) -> list[str]:
        return [object_key(sts) for sts in owners_selecting(self.sts_inf, obj)]

    def _owner_keys(self, obj: Obj) -> list[str]:
        ref = controller_ref(obj)
        if ref is not None:
            sts = self._set_of_ref(str(_md(obj).get("namespace") or ""), ref)
            return [object_key(sts)] if sts is not None else []
        return self._selecting(obj)  # an orphan: the sets that may adopt it

    def _pod_keys(self, pod: Obj) -> list[str]:
        keys = self._owner_keys(pod)
        if keys and is_pod_ready(pod):
            # why: with minReadySeconds the set must look again once the pod has been ready long
            # enough; nothing else would wake it then
            for k in keys:
                ns, _, name = k.partition("/")
                sts = self.sts_inf.get(name, ns)
                mrs = int(_spec(sts).get("minReadySeconds") or 0) if sts else 0
                if mrs > 0:
                    left = seconds_until_available(pod, mrs, self.clock.wall())
                    if left:
                        self.controller.enqueue_after(k, left)
        return keys

    def _revision_keys(self, cr: Obj) -> list[str]:
        return self._owner_keys(cr)

    def _service_keys(self, svc: Obj) -> list[str]:
        md = _md(svc)
        return [object_key(s) for s in self.sts_inf.list(md.get("namespace") or "")
                if _spec(s).get("serviceName") == md.get("name")]

    # -- reconcile --------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        ns, _, name = key.partition("/")
        sts = self.sts_inf.get(name, ns)
        if sts is None:
            return None
        try:
            selector = from_label_selector(_spec(sts).get("selector"))
        except SelectorError as e:
            self.ctx.record(sts, "Warning", "InvalidSelector",
                            f"error converting StatefulSet {key} selector: {e}")
            return None
        if selector.empty or selector.matches_nothing:
            return None  # validation forbids it; never claim every pod of the namespace
        pods = await self._claim_pods(sts, selector)
        revisions = sort_revisions(await self.history.controlled(sts, selector, self._can_adopt(sts)))
        current, update, collision = await self._revisions(sts, revisions)
        st = await self._update(sts, current, update, collision, pods)
        await self._store_status(sts, st)
        await self._truncate_history(sts, pods, revisions, current, update)
        self._check_service(sts)
        mrs = int(_spec(sts).get("minReadySeconds") or 0)
        if mrs > 0 and st.available < replicas_of(sts):
            return Result(requeue_after=min(st.wait) if st.wait else float(mrs))
        return None

    def _can_adopt(self, sts: Obj) -> Any:
        md = _md(sts)
        name, ns = str(md.get("name")), md.get("namespace")
        return recheck_deletion_timestamp(lambda: self.client.get(STATEFULSET, name, ns), str(md.get("uid")))

    async def _claim_pods(self, sts: Obj, selector: LabelSelector) -> list[Obj]:
        md = _md(sts)
        ns, uid = str(md.get("namespace") or ""), str(md.get("uid") or "")
        store = self.pod_inf.store
        cands: dict[str, Obj] = {}
        for p in [*store.by_index(OWNER_UID_INDEX, uid), *store.by_index(CONTROLLERLESS_INDEX, ns)]:
            if _md(p).get("namespace") == ns:
                cands[str(_md(p).get("uid") or _md(p).get("name"))] = p
        mgr = ControllerRefManager(sts, selector, "apps/v1", "StatefulSet", patch=self.pods.patch_pod,
                                   can_adopt=self._can_adopt(sts))
        # only pods named <set>-<ordinal> can be members
        claimed, errors = await mgr.claim(cands.values(), filters=[lambda p: is_member_of(sts, p)])
        if errors:
            raise errors[0]
        return claimed

    async def _revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """``getStatefulSetRevisions``: (current revision, update revision, collision count)."""
        collision = int((sts.get("status") or {}).get("collisionCount") or 0)
        candidate = new_revision(sts, template_patch(sts), next_revision(revisions), collision)
        candidate["metadata"]["ownerReferences"] = [new_controller_ref(sts, "apps/v1", "StatefulSet")]
        equal = find_equal_revisions(revisions, candidate)
        if equal and equal_revision(revisions[-1], equal[-1]):
            update = revisions[-1]  # the template did not change
        elif equal:
            # a rollback to an older template: that revision becomes the newest
            update = await self.history.update_revision(equal[-1], next_revision(revisions))
        else:
            update, collision = await self.history.create(sts, candidate, collision)
        cur_name = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if _md(r).get("name") == cur_name), None) or update
        return current, update, collision

    async def _truncate_history(self, sts: Obj, pods: list[Obj], revisions: list[Obj], current: Obj,
                                update: Obj) -> None:
        live = {_md(current).get("name"), _md(update).get("name"), *(pod_revision(p) for p in pods)}
        old = [r for r in revisions if _md(r).get("name") not in live]
        limit = _spec(sts).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        for r in old[:max(0, len(old) - limit)]:
            await self.history.delete(r)

    # -- the ordered state machine ----------------------------------------------------------------

    async def _update(self, sts: Obj, current_rev: Obj, update_rev: Obj, collision: int,
                      pods: list[Obj]) -> _Status:
        """``updateStatefulSet``: one step towards ``replicas`` healthy pods at the right revisions.
        Returns the status this step leaves."""
        cur_name, upd_name = str(_md(current_rev).get("name")), str(_md(update_rev).get("name"))
        current_set = apply_revision(sts, current_rev)
        update_set = apply_revision(sts, update_rev)
        st = _Status(int(_md(sts).get("generation") or 0), cur_name, upd_name, collision)
        mrs = int(_spec(sts).get("minReadySeconds") or 0)
        now = self.clock.wall()
        start, count = start_ordinal(sts), replicas_of(sts)
        replicas: list[Obj | None] = [None] * count
        condemned: list[Obj] = []
        for p in pods:
            st.replicas += 1
            if is_running_and_ready(p):
                st.ready += 1
                if is_pod_available(p, mrs, now):
                    st.available += 1
                else:
                    left = seconds_until_available(p, mrs, now)
                    if left is not None:
                        st.wait.append(left)
            if is_created(p) and not is_terminating(p):
                st.counted(p, 1)
            o = ordinal_of(p)
            if start <= o < start + count:
                replicas[o - start] = p
            elif o >= 0:
                condemned.append(p)
        prior_current = int((sts.get("status") or {}).get("currentReplicas") or 0)
        reps: list[Obj] = [
            p if p is not None else
            _versioned_pod(current_set, update_set, cur_name, upd_name, start + i, prior_current)
            for i, p in enumerate(replicas)]
        condemned.sort(key=ordinal_of)

        def healthy(p: Obj) -> bool:
            return is_running_and_ready(p) and not is_terminating(p) and is_pod_available(p, mrs, now)

        first_unhealthy: Obj | None = None
        for p in [*reps, *condemned]:
            if not healthy(p) and (first_unhealthy is None or ordinal_of(p) < ordinal_of(first_unhealthy)):
                first_unhealthy = p
        if _md(sts).get("deletionTimestamp"):
            return st
        monotonic = (_spec(sts).get("podManagementPolicy") or "OrderedReady") != "Parallel"
        key = object_key(sts)

        # bring every ordinal in range into being, in order
        for i in range(len(reps)):
            p = reps[i]
            if _phase(p) in ("Failed", "Succeeded"):
                # a finished pod is replaced: delete it now, create it again once the delete is
                # seen (the name is taken until then)
                if not is_terminating(p):
                    failed = _phase(p) == "Failed"
                    reason = RECREATING_FAILED_POD if failed else RECREATING_TERMINATED_POD
                    what = "failed" if failed else "terminated"
                    self.ctx.record(sts, "Warning", reason,
                                    f"StatefulSet {key} is recreating {what} Pod {_md(p).get('name')}")
                    if await self._delete_pod(sts, p):
                        st.counted(p, -1)
                        st.replicas -= 1
                return st
            if not is_created(p):
                if await self._claims_stale(sts, p):
                    if monotonic:
                        return st
                    continue
                created = await self._create_pod(sts, p)
                if created:
                    st.replicas += 1
                    st.counted(p, 1)
                if monotonic:
                    return st
                continue
            if is_terminating(p):
                if monotonic:
                    log.debug("StatefulSet %s is waiting for Pod %s to terminate", key, _md(p).get("name"))
                    return st
                continue
            if _phase(p) == "Pending":
                await self._create_claims(sts, p)  # a claim deleted under a pending pod
            if monotonic and not (is_running_and_ready(p) and is_pod_available(p, mrs, now)):
                log.debug("StatefulSet %s is waiting for Pod %s to be Running and Ready", key,
                          _md(p).get("name"))
                return st
            await self._fix_identity_and_storage(sts, p)
            await self._fix_claim_owners(sts, p)

        # claims of pods being scaled away get the owners the policy wants before the pod goes
        for p in condemned:
            await self._fix_claim_owners(sts, p)

        # scale down from the highest ordinal, each only when all others are healthy (ordered)
        for p in reversed(condemned):
            if is_terminating(p):
                if monotonic:
                    log.debug("StatefulSet %s is waiting for Pod %s to terminate before scale down", key,
                              _md(p).get("name"))
                    return st
                continue
            if monotonic and not healthy(p) and p is not first_unhealthy:
                log.debug("StatefulSet %s is waiting for Pod %s to be healthy before scale down", key,
                          _md(first_unhealthy or {}).get("name"))
                return st
            log.info("StatefulSet %s: terminating Pod %s for scale down", key, _md(p).get("name"))
            if await self._delete_pod(sts, p):
                st.counted(p, -1)
            if monotonic:
                return st

        us = _spec(sts).get("updateStrategy") or {}
        if (us.get("type") or "RollingUpdate") == "OnDelete":
            return st
        ru = us.get("rollingUpdate") or {}
        update_min = int(ru.get("partition") or 0)
        if ru.get("maxUnavailable") is not None:
            await self._rolling_batch(sts, reps, st, update_min, healthy, ru["maxUnavailable"])
            return st
        # replace the highest ordinal not at the update revision, one at a time
        for target in range(len(reps) - 1, update_min - 1, -1):
            p = reps[target]
            if pod_revision(p) != upd_name and not is_terminating(p):
                log.info("StatefulSet %s: terminating Pod %s for update", key, _md(p).get("name"))
                if await self._delete_pod(sts, p):
                    st.current -= 1
                return st
            if not healthy(p):
                log.debug("StatefulSet %s is waiting for Pod %s to update", key, _md(p).get("name"))
                return st
        return st

    async def _rolling_batch(self, sts: Obj, reps: list[Obj], st: _Status, update_min: int,
                             healthy: Any, max_unavailable: Any) -> None:
        """RollingUpdate with ``maxUnavailable``: replace up to that many pods at once (counting
        pods already unhealthy), highest ordinals first."""
        try:
            allowed = max(1, scaled_value(max_unavailable, replicas_of(sts), False))
        except (TypeError, ValueError):
            allowed = 1
        unavailable = sum(1 for p in reps if not healthy(p))
        budget = allowed - unavailable
        for target in range(len(reps) - 1, update_min - 1, -1):
            if budget <= 0:
                return
            p = reps[target]
            if pod_revision(p) != st.update_revision and not is_terminating(p):
                if await self._delete_pod(sts, p):
                    st.current -= 1
                budget -= 1

    # -- writes -----------------------------------------------------------------------------------

    def _event(self, sts: Obj, ok: bool, verb: str, what: str, err: BaseException | None = None) -> None:
        # kube's recordPodEvent / recordClaimEvent wording
        name = _md(sts).get("name")
        if ok:
            reason = SUCCESSFUL_CREATE if verb == "Create" else SUCCESSFUL_DELETE
            self.ctx.record(sts, "Normal", reason, f"{verb.lower()} {what} in StatefulSet {name} successful")
        else:
            reason = FAILED_CREATE if verb == "Create" else FAILED_DELETE
            detail = error_message(err) if err is not None else "unknown error"
            self.ctx.record(sts, "Warning", reason,
                            f"{verb.lower()} {what} in StatefulSet {name} failed error: {detail}")

    async def _claims_stale(self, sts: Obj, pod: Obj) -> bool:
        """``PodClaimIsStale``: a claim still owned by an earlier pod of this name (whenScaled
        Delete) is about to be garbage collected; do not start a pod on it."""
        if _policy(sts)[1] != "Delete":
            return False
        for claim in claims_for(sts, ordinal_of(pod)).values():
            have = self.pvc_inf.get(_md(claim)["name"], _md(claim).get("namespace"))
            if have is None:
                continue
            for r in _md(have).get("ownerReferences") or ():
                if r.get("kind") == "Pod" and r.get("name") == _md(pod).get("name"):
                    return True  # the pod does not exist yet, so any pod ref is to an old one
        return False

    async def _create_claims(self, sts: Obj, pod: Obj) -> None:
        """Create the pod's missing claims (``createPersistentVolumeClaims``)."""
        ns = _md(sts).get("namespace")
        for claim in claims_for(sts, ordinal_of(pod)).values():
            cname = _md(claim)["name"]
            have = self.pvc_inf.get(cname, ns)
            if have is not None:
                if _md(have).get("deletionTimestamp"):
                    raise RuntimeError(f"pvc {cname} is being deleted")
                continue
            refs = claim_owner_refs(claim, sts, pod if _md(pod).get("uid") else None)
            if refs:
                claim["metadata"]["ownerReferences"] = refs
            sname = _md(sts).get("name")
            try:
                await self.client.create(PVC, claim, ns)
            except AlreadyExistsError:
                continue  # made earlier; the cache has not shown it yet
            except ApiError as e:
                self.ctx.record(sts, "Warning", FAILED_CREATE,
                                f"create Claim {cname} for Pod {_md(pod).get('name')} in StatefulSet {sname} "
                                f"failed error: {error_message(e)}")
                raise
            self.ctx.record(sts, "Normal", SUCCESSFUL_CREATE,
                            f"create Claim {cname} Pod {_md(pod).get('name')} in StatefulSet {sname} success")

    async def _create_pod(self, sts: Obj, pod: Obj) -> bool:
        """Claims first, then the pod (``CreateStatefulPod``). False when the pod was already
        there (a stale cache)."""
        ns = _md(sts).get("namespace")
        name = _md(pod)["name"]
        await self._create_claims(sts, pod)
        try:
            await self.client.create(POD, pod, ns)
        except AlreadyExistsError as e:
            have = self.pod_inf.get(name, ns)
            ref = controller_ref(have) if have is not None else None
            if have is None or (ref is not None and ref.get("uid") == _md(sts).get("uid")):
                return False  # ours, made by an earlier sync the cache had not shown yet
            # a pod of that name that is not ours: kube keeps failing, and so do we
            self._event(sts, False, "Create", f"Pod {name}", e)
            raise
        except ApiError as e:
            self._event(sts, False, "Create", f"Pod {name}", e)
            raise
        self._event(sts, True, "Create", f"Pod {name}")
        return True

    async def _delete_pod(self, sts: Obj, pod: Obj) -> bool:
        md = _md(pod)
        try:
            await self.client.delete(POD, md["name"], md.get("namespace"), uid=md.get("uid"))
        except NotFoundError:
            return False
        except ApiError as e:
            self._event(sts, False, "Delete", f"Pod {md['name']}", e)
            raise
        self._event(sts, True, "Delete", f"Pod {md['name']}")
        return True

    async def _fix_identity_and_storage(self, sts: Obj, pod: Obj) -> None:
        """``UpdateStatefulPod``, for what may change on a live pod: its identity labels and its
        claims (volumes themselves are immutable)."""
        if not storage_matches(sts, pod):
            log.debug("StatefulSet %s: pod %s does not mount the claims of the set's templates",
                        object_key(sts), _md(pod).get("name"))
        else:
            await self._create_claims(sts, pod)
        if identity_matches(sts, pod):
            return
        o = ordinal_of(pod)
        await self.pods.patch_pod(pod, {"metadata": {"labels": {POD_NAME_LABEL: _md(pod)["name"],
                                                                POD_INDEX_LABEL: str(o)}}})

    async def _fix_claim_owners(self, sts: Obj, pod: Obj) -> None:
        """Give the pod's claims the ownerReferences the retention policy wants."""
        ns = _md(sts).get("namespace")
        for claim in claims_for(sts, ordinal_of(pod)).values():
            have = self.pvc_inf.get(_md(claim)["name"], ns)
            if have is None or claim_owners_up_to_date(have, sts, pod):
                continue
            refs = claim_owner_refs(have, sts, pod)
            try:
                # a merge patch replaces the list; the resourceVersion makes it compare-and-swap
                rv = _md(have).get("resourceVersion")
                body = {"metadata": {"ownerReferences": refs, "resourceVersion": rv}}
                await self.client.patch(PVC, _md(have)["name"], body, ns, type="merge")
            except NotFoundError:
                pass

    async def _store_status(self, sts: Obj, st: _Status) -> None:
        """``updateStatefulSetStatus``: complete a finished rolling update, write if changed."""
        current_revision, current = st.current_revision, st.current
        us = _spec(sts).get("updateStrategy") or {}
        if (us.get("type") or "RollingUpdate") == "RollingUpdate" and st.updated == st.replicas and \
                st.ready == st.replicas:
            current_revision, current = st.update_revision, st.updated
        new = {"observedGeneration": st.observed_generation, "replicas": st.replicas,
               "readyReplicas": st.ready, "currentReplicas": current, "updatedReplicas": st.updated,
               "availableReplicas": st.available,
               "currentRevision": current_revision, "updateRevision": st.update_revision,
               "collisionCount": st.collision_count}
        old = sts.get("status") or {}
        if all(old.get(k, 0 if isinstance(v, int) else "") == v for k, v in new.items()):
            return
        md = _md(sts)
        body = copy.deepcopy(sts)
        body.setdefault("status", {}).update(new)
        try:
            await self.client.update_status(STATEFULSET, body, md.get("namespace"))
        except ConflictError:
            fresh = await self.client.get(STATEFULSET, str(md.get("name")), md.get("namespace"))
            fresh.setdefault("status", {}).update(new)
            await self.client.update_status(STATEFULSET, fresh, md.get("namespace"))
        except NotFoundError:
            pass

    # -- the governing Service --------------------------------------------------------------------

    def _check_service(self, sts: Obj) -> None:
        """Warn once when ``serviceName`` names no Service (or one that is not headless): the
        set works, but its pods get no DNS names."""
        md = _md(sts)
        uid = str(md.get("uid") or "")
        svc_name = str(_spec(sts).get("serviceName") or "")
        if not svc_name:
            self._warned.pop(uid, None)
            return
        ns = md.get("namespace")
        svc = self.svc_inf.get(svc_name, ns)
        problem = ""
        if svc is None:
            problem = SERVICE_NOT_FOUND
            first = pod_name(sts, start_ordinal(sts))
            msg = (f'service "{svc_name}" not found in namespace "{ns}": the pods of StatefulSet '
                   f"{md.get('name')} get no DNS names ({first}.{svc_name}.{ns}.svc) until a headless "
                   f'Service (clusterIP: None) named "{svc_name}" exists')
        elif _spec(svc).get("clusterIP") != "None":
            problem = SERVICE_NOT_HEADLESS
            kind = _spec(svc).get("type") or "ClusterIP"
            ip = _spec(svc).get("clusterIP") or "<none>"
            msg = (f'service "{svc_name}" is not headless (type {kind}, clusterIP {ip}): the pods of '
                   f"StatefulSet {md.get('name')} get no per-pod DNS names; the governing Service needs "
                   "clusterIP: None")
        if not problem:
            self._warned.pop(uid, None)
            return
        if self._warned.get(uid) == (svc_name, problem):
            return
        self._warned[uid] = (svc_name, problem)
        if len(self._warned) > 4096:
            self._warned.pop(next(iter(self._warned)))
        self.ctx.record(sts, "Warning", problem, msg)
