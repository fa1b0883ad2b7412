"""The ReplicaSet and ReplicationController controllers: keep ``spec.replicas`` pods running.

One level-based ``reconcile(key)``, as kube's ``syncReplicaSet``:

1. Read the owner from the cache; gone -> forget its expectations, done.
2. Claim pods: active pods (not finished, not being deleted) it controls and that still match
   its selector; adopt matching orphans, release controlled pods that no longer match.
3. Unless creates/deletes of an earlier sync are still unseen in the cache (expectations), or
   the owner is being deleted: create the missing pods (slow-start batches, at most
   ``burst_replicas`` per sync) or delete the surplus, chosen as kube chooses.
4. Write status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
   observedGeneration, the ReplicaFailure condition; terminatingReplicas for apps/v1), and look
   again when the next ready pod becomes available after ``minReadySeconds``.

ReplicationController is the same controller on ``v1`` objects whose selector is a plain map
(kube too runs the ReplicaSet code for it, converting on the way in and out).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from typing import Any, ClassVar

from k8py.api.selectors import LabelSelector, SelectorError, from_label_selector, selector_from_set
from k8py.client.api import object_key
from k8py.client.controller import RACES, Controller, Result
from k8py.client.errors import ApiError, ConflictError, NotFoundError
from k8py.client.store import NAMESPACE_INDEX, OWNER_UID_INDEX
from k8py.controllers.base import ControllerContext, rfc3339
from k8py.controllers.podcontrol import (
    BURST_REPLICAS,
    CONTROLLERLESS_INDEX,
    SLOW_START_INITIAL_BATCH_SIZE,
    AdoptionError,
    ControllerExpectations,
    ControllerRefManager,
    PodControl,
    controller_ref,
    error_message,
    index_controllerless,
    is_namespace_terminating,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    is_pod_terminating,
    new_controller_ref,
    pod_key,
    pods_to_delete,
    recheck_deletion_timestamp,
    seconds_until_available,
    slow_start_batch,
)

__all__ = ["ReplicaSetController", "ReplicationControllerController", "calculate_status"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
POD = ("v1", "Pod")
REPLICA_FAILURE = "ReplicaFailure"
# Look again this long after a pod's minReadySeconds are due: timestamps on objects are whole
# seconds on the wall clock, timers run on the monotonic one.
AVAILABILITY_SLACK = 0.05


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _template_labels(owner: Obj) -> dict[str, str]:
    return dict(_meta((owner.get("spec") or {}).get("template") or {}).get("labels") or {})


def desired_replicas(owner: Obj) -> int:
    r = (owner.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)


def calculate_status(owner: Obj, pods: list[Obj], manage_error: BaseException | None, now: float, *,
                     terminating: int | None = None) -> Obj:
    """The status ``owner`` should have given its claimed active ``pods`` at ``now`` (epoch
    seconds) and the error of this sync's creates/deletes, if any (kube's ``calculateStatus``).
    ``observedGeneration`` is left as it was; the caller sets it when writing."""
    spec = owner.get("spec") or {}
    old = owner.get("status") or {}
    template_labels = _template_labels(owner)
    min_ready = spec.get("minReadySeconds") or 0
    fully_labeled = ready = available = 0
    for p in pods:
        labels = _meta(p).get("labels") or {}
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully_labeled += 1
        if is_pod_ready(p):
            ready += 1
            if is_pod_available(p, min_ready, now):
                available += 1
    conditions = [dict(c) for c in old.get("conditions") or ()]
    failure = next((c for c in conditions if c.get("type") == REPLICA_FAILURE), None)
    if manage_error is not None and failure is None:
        diff = len(pods) - desired_replicas(owner)
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        conditions.append({"type": REPLICA_FAILURE, "status": "True",
                           "lastTransitionTime": rfc3339(dt.datetime.fromtimestamp(now, dt.UTC)),
                           "reason": reason, "message": error_message(manage_error)})
    elif manage_error is None and failure is not None:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    # shaped as kube serializes it: replicas always, other counts only when not zero
    status: Obj = {"replicas": len(pods)}
    for field, n in (("fullyLabeledReplicas", fully_labeled), ("readyReplicas", ready),
                     ("availableReplicas", available)):
        if n:
            status[field] = n
    if terminating is not None:
        status["terminatingReplicas"] = terminating
    if old.get("observedGeneration"):
        status["observedGeneration"] = old["observedGeneration"]
    if conditions:
        status["conditions"] = conditions
    return status


_COUNTS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")


def _status_equal(a: Obj, b: Obj) -> bool:
    return all((a.get(f) or 0) == (b.get(f) or 0) for f in _COUNTS) and \
        a.get("terminatingReplicas") == b.get("terminatingReplicas") and \
        (a.get("conditions") or []) == (b.get("conditions") or [])


class ReplicaSetController:
    """Keeps each ReplicaSet's pods at ``spec.replicas``; see the module docstring."""

    NAME: ClassVar[str] = "replicaset"
    API_VERSION: ClassVar[str] = "apps/v1"
    KIND: ClassVar[str] = "ReplicaSet"
    # apps/v1 status has terminatingReplicas; core/v1 ReplicationControllerStatus does not
    TERMINATING_REPLICAS: ClassVar[bool] = True

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        self.burst_replicas = ctx.options.burst_replicas or BURST_REPLICAS
        self.expectations = ControllerExpectations(ctx.clock)
        self.pod_control = PodControl(ctx.client, ctx.record)
        self.kind_ref = (self.API_VERSION, self.KIND)
        self.owners = ctx.factory.informer(self.kind_ref)
        self.pods = ctx.factory.informer(POD)
        index_controllerless(self.pods)
        self._selectors: dict[str, tuple[Any, LabelSelector]] = {}  # uid -> (generation, selector)
        self.controller = Controller(self.NAME, self.reconcile, workers=ctx.options.workers or 5,
                                     clock=ctx.clock)
        self.controller.watch(self.owners)
        self.owners.add_handler(None, self._owner_updated, self._owner_deleted)
        self.pods.add_handler(self.pod_added, self.pod_updated, self.pod_deleted)

    # -- kind specifics --------------------------------------------------------------------------

    def parse_selector(self, owner: Obj) -> LabelSelector:
        """``spec.selector`` (a metav1.LabelSelector) as a selector; raises SelectorError."""
        return from_label_selector((owner.get("spec") or {}).get("selector"))

    def selector(self, owner: Obj) -> LabelSelector:
        md = _meta(owner)
        uid, gen = str(md.get("uid") or ""), md.get("generation")
        hit = self._selectors.get(uid)
        if hit is not None and hit[0] == gen:
            return hit[1]
        sel = self.parse_selector(owner)
        if uid:
            self._selectors[uid] = (gen, sel)
        return sel

    # -- event handlers: map events to keys, count off expectations ------------------------------

    def _owner_updated(self, old: Obj, cur: Obj) -> None:
        if _meta(old).get("uid") != _meta(cur).get("uid"):
            # deleted and created again while the watch was away: the old one's expectations go
            self._owner_deleted(old)

    def _owner_deleted(self, owner: Obj) -> None:
        # why here and not only in reconcile: a new owner of the same name must start clean even
        # if it shows up before the key is worked on
        self.expectations.delete(object_key(owner))
        self._selectors.pop(str(_meta(owner).get("uid") or ""), None)

    def _resolve(self, namespace: str, ref: Obj) -> Obj | None:
        """The owner ``ref`` points to, if it is ours and still the same object (uid)."""
        if ref.get("kind") != self.KIND:
            return None
        owner = self.owners.get(str(ref.get("name") or ""), namespace or None)
        if owner is None or _meta(owner).get("uid") != ref.get("uid"):
            return None
        return owner

    def _selecting(self, pod: Obj) -> list[Obj]:
        """Owners in the pod's namespace whose selector matches it (for orphans)."""
        md = _meta(pod)
        labels = md.get("labels") or {}
        out = []
        for owner in self.owners.store.by_index(NAMESPACE_INDEX, str(md.get("namespace") or "")):
            try:
                sel = self.selector(owner)
            except SelectorError:
                continue
            # an empty selector must match nothing here, not everything
            if not sel.empty and sel.matches(labels):
                out.append(owner)
        return out

    def pod_added(self, pod: Obj) -> None:
        md = _meta(pod)
        if md.get("deletionTimestamp"):
            # after a restart a pod may first show up already being deleted: not a creation
            self.pod_deleted(pod)
            return
        ref = controller_ref(pod)
        if ref is not None:
            owner = self._resolve(str(md.get("namespace") or ""), ref)
            if owner is None:
                return
            key = object_key(owner)
            self.expectations.creation_observed(key)
            self.controller.enqueue_key(key)
            return
        # an orphan: owners that might adopt it look again (no creation is observed: nobody
        # waits for an orphan)
        for owner in self._selecting(pod):
            self.controller.enqueue(owner)

    def pod_updated(self, old: Obj, cur: Obj) -> None:
        om, cm = _meta(old), _meta(cur)
        if om.get("resourceVersion") == cm.get("resourceVersion"):
            return  # a resync: nothing changed
        labels_changed = (om.get("labels") or {}) != (cm.get("labels") or {})
        if cm.get("deletionTimestamp"):
            # a graceful delete starts: count it now so the owner replaces the pod at once
            # instead of after the grace period
            self.pod_deleted(cur)
            if labels_changed:
                self.pod_deleted(old)
            return
        cur_ref, old_ref = controller_ref(cur), controller_ref(old)
        ns = str(cm.get("namespace") or "")
        if cur_ref != old_ref and old_ref is not None:
            prev = self._resolve(ns, old_ref)
            if prev is not None:
                self.controller.enqueue(prev)
        if cur_ref is not None:
            owner = self._resolve(ns, cur_ref)
            if owner is not None:
                # readiness changes land here too; reconcile schedules the minReadySeconds look
                self.controller.enqueue(owner)
            return
        if labels_changed or cur_ref != old_ref:
            for owner in self._selecting(cur):
                self.controller.enqueue(owner)

    def pod_deleted(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref is None:
            return  # no controller cares about an orphan going away
        owner = self._resolve(str(_meta(pod).get("namespace") or ""), ref)
        if owner is None:
            return
        key = object_key(owner)
        self.expectations.deletion_observed(key, pod_key(pod))
        self.controller.enqueue_key(key)

    # -- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        if not (self.pods.has_synced and self.owners.has_synced):
            # why: acting on a half-filled pod cache would create pods that already exist
            return Result(requeue=True)
        ns, _, name = key.rpartition("/")
        owner = self.owners.get(name, ns or None)
        if owner is None:
            self.expectations.delete(key)
            return None
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = self.selector(owner)
        except SelectorError as e:
            log.error("%s %s: invalid selector: %s", self.KIND, key, e)
            return None
        md = _meta(owner)
        uid = str(md.get("uid") or "")

        candidates = self._candidate_pods(ns, uid)
        claimed, errors = await self._claim(owner, selector, [p for p in candidates if is_pod_active(p)])
        if errors:
            return self._retry(key, errors[0])
        terminating = None
        if self.TERMINATING_REPLICAS:
            terminating = sum(1 for p in candidates if is_pod_terminating(p)
                              and (controller_ref(p) or {}).get("uid") == uid
                              and selector.matches(_meta(p).get("labels")))

        manage_error: Exception | None = None
        if needs_sync and not md.get("deletionTimestamp"):
            try:
                await self.manage_replicas(key, owner, claimed)
            except Exception as e:  # noqa: BLE001 -- reported in status first, then retried below
                manage_error = e

        now = self.clock.wall()
        status = calculate_status(owner, claimed, manage_error, now, terminating=terminating)
        updated = await self._update_status(owner, status)
        if manage_error is not None:
            return self._retry(key, manage_error)
        if updated is None:
            return None
        return self._availability_check(owner, claimed, now)

    def _retry(self, key: str, error: Exception) -> Result:
        """Retry with backoff: API refusals and adoption vetoes are expected weather (one log line);
        anything else is a bug and goes to the runner with its traceback."""
        if not isinstance(error, ApiError | AdoptionError):
            raise error
        # A race (a pod deleted or renamed under us, a conflicting write) is routine: debug only.
        level = logging.DEBUG if isinstance(error, RACES) else logging.WARNING
        log.log(level, "%s %s: %s (will retry)", self.KIND, key, error_message(error))
        return Result(requeue=True)

    def _candidate_pods(self, namespace: str, uid: str) -> list[Obj]:
        """Pods this owner may claim: those referring to it, and those without a controller in its
        namespace (pods controlled by others are never its own)."""
        store = self.pods.store
        found = {pod_key(p): p for p in store.by_index(OWNER_UID_INDEX, uid)} if uid else {}
        for p in store.by_index(CONTROLLERLESS_INDEX, namespace):
            found.setdefault(pod_key(p), p)
        return list(found.values())

    async def _claim(self, owner: Obj, selector: LabelSelector, pods: list[Obj]) -> tuple[list[Obj], list[Exception]]:
        md = _meta(owner)
        name, ns = str(md.get("name") or ""), md.get("namespace")

        async def fresh() -> Obj:
            return await self.client.get(self.kind_ref, name, ns)

        mgr = ControllerRefManager(owner, selector, self.API_VERSION, self.KIND, patch=self.pod_control.patch_pod,
                                   can_adopt=recheck_deletion_timestamp(fresh, str(md.get("uid") or "")))
        return await mgr.claim(pods)

    async def manage_replicas(self, key: str, owner: Obj, pods: list[Obj]) -> None:
        """Create or delete pods so that ``pods`` (the claimed active ones) becomes
        ``spec.replicas``; raises the first error."""
        md = _meta(owner)
        ns = str(md.get("namespace") or "")
        diff = len(pods) - desired_replicas(owner)
        if diff < 0:
            count = min(-diff, self.burst_replicas)
            # why before the first create: the informer may report a new pod before create returns
            self.expectations.expect_creations(key, count)
            log.debug("%s %s: too few replicas, creating %d", self.KIND, key, count)
            template = (owner.get("spec") or {}).get("template")
            ref = new_controller_ref(owner, self.API_VERSION, self.KIND)

            async def create() -> None:
                try:
                    await self.pod_control.create_pod(ns, template, owner, ref)
                except ApiError as e:
                    if is_namespace_terminating(e):
                        return  # every create will fail until the namespace is gone; not an error
                    raise

            created, err = await slow_start_batch(count, SLOW_START_INITIAL_BATCH_SIZE, create)
            # creates that failed or were never tried will never be observed: stop waiting for them
            for _ in range(count - created):
                self.expectations.creation_observed(key)
            if err is not None:
                raise err
        elif diff > 0:
            count = min(diff, self.burst_replicas)
            log.debug("%s %s: too many replicas, deleting %d", self.KIND, key, count)
            victims = pods_to_delete(pods, self._related_pods(owner), count, now=self.clock.wall())
            # why keys, not a count: a delete is seen twice (deletionTimestamp, then gone)
            self.expectations.expect_deletions(key, [pod_key(p) for p in victims])
            results = await asyncio.gather(*(self._delete(key, ns, p, owner) for p in victims))
            errors = [e for e in results if e is not None]
            if errors:
                raise errors[0]  # they are likely all alike: the first one tells

    async def _delete(self, key: str, ns: str, pod: Obj, owner: Obj) -> Exception | None:
        try:
            await self.pod_control.delete_pod(ns, str(_meta(pod).get("name") or ""), owner)
        except Exception as e:  # noqa: BLE001 -- returned to manage_replicas
            # the informer will not see this delete: stop waiting for it
            self.expectations.deletion_observed(key, pod_key(pod))
            return None if isinstance(e, NotFoundError) else e
        return None

    def _related_pods(self, owner: Obj) -> list[Obj]:
        """Pods of every owner sharing this one's controller (a Deployment's ReplicaSets): to
        prefer deleting pods doubled up on a node with their siblings."""
        md = _meta(owner)
        ns = str(md.get("namespace") or "")
        ctrl = controller_ref(owner)
        if ctrl is None:
            siblings = [owner]
        else:
            cuid = ctrl.get("uid")
            siblings = [o for o in self.owners.store.by_index(OWNER_UID_INDEX, str(cuid))
                        if (controller_ref(o) or {}).get("uid") == cuid and _meta(o).get("namespace") == ns] or [owner]
        ns_pods = self.pods.store.by_index(NAMESPACE_INDEX, ns)
        seen: set[str] = set()
        out: list[Obj] = []
        for sib in siblings:
            try:
                sel = self.selector(sib)
            except SelectorError:
                continue
            for p in ns_pods:
                k = pod_key(p)
                if k not in seen and sel.matches(_meta(p).get("labels")):
                    seen.add(k)
                    out.append(p)
        return out

    async def _update_status(self, owner: Obj, status: Obj) -> Obj | None:
        """Write ``status`` (with observedGeneration) unless nothing changed; one retry on a
        conflict with the object read fresh. None when the owner is gone."""
        md = _meta(owner)
        old = owner.get("status") or {}
        gen = md.get("generation")
        if _status_equal(old, status) and old.get("observedGeneration") == gen:
            return owner
        status = dict(status)
        if gen is not None:
            # the generation this status was computed for, even when retrying on a newer object
            status["observedGeneration"] = gen
        obj = copy.deepcopy(owner)
        obj["status"] = status
        name, ns = str(md.get("name") or ""), md.get("namespace")
        for attempt in range(2):
            try:
                return await self.client.update_status(self.kind_ref, obj, ns)
            except NotFoundError:
                return None
            except ConflictError:
                if attempt:
                    raise
            try:
                obj = await self.client.get(self.kind_ref, name, ns)
            except NotFoundError:
                return None
            if _meta(obj).get("uid") != md.get("uid"):
                return None
            obj["status"] = status
        return None  # not reached

    def _availability_check(self, owner: Obj, pods: list[Obj], now: float) -> Result | None:
        """Look again when the next ready-but-not-yet-available pod passes minReadySeconds."""
        min_ready = (owner.get("spec") or {}).get("minReadySeconds") or 0
        if min_ready <= 0:
            return None
        waits = [w for w in (seconds_until_available(p, min_ready, now) for p in pods if is_pod_ready(p))
                 if w is not None and w > 0]
        if not waits:
            return None
        return Result(requeue_after=min(waits) + AVAILABILITY_SLACK)


class ReplicationControllerController(ReplicaSetController):
    """The same controller for core/v1 ReplicationControllers: ``spec.selector`` is a map of
    labels (an empty one selects every pod, as in kube), and status has no terminatingReplicas."""

    NAME: ClassVar[str] = "replicationcontroller"
    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "ReplicationController"
    TERMINATING_REPLICAS: ClassVar[bool] = False

    def parse_selector(self, owner: Obj) -> LabelSelector:
        sel = (owner.get("spec") or {}).get("selector")
        if sel is not None and not isinstance(sel, dict):
            raise SelectorError(f"spec.selector must be a map of labels, not {type(sel).__name__}")
        return selector_from_set(sel)
