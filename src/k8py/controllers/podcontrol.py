"""What every controller that owns pods needs: kube's ``controller_utils.go`` and
``controller_ref_manager.go``, for ReplicaSet, ReplicationController, Deployment, DaemonSet,
Job and StatefulSet alike.

- :class:`ControllerExpectations` -- creates and deletes in flight, so a controller never acts
  twice on a cache that has not caught up with its own writes.
- Pod state: :func:`is_pod_active`, :func:`is_pod_terminating`, :func:`is_pod_ready`,
  :func:`is_pod_available`, :func:`seconds_until_available`.
- Ownership: :func:`controller_ref`, :func:`new_controller_ref`, :func:`adopt_patch`,
  :func:`release_patch` and :class:`ControllerRefManager` (adopt matching orphans, release owned
  objects that stopped matching).
- Pods from templates and the API writes that go with them: :func:`pod_from_template`,
  :class:`PodControl` (create/delete/patch pods and record kube's Events), :func:`slow_start_batch`.
- Which pods to delete first: :func:`rank_pods_for_deletion`, :func:`pods_to_delete`.

Times: functions taking ``now`` want wall-clock seconds since the epoch (``ctx.clock.wall()``),
since the timestamps they compare with are written on objects.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from k8py.api.corev1 import is_namespace_terminating, is_pod_ready, pod_ready_condition
from k8py.api.selectors import LabelSelector
from k8py.client.api import Client
from k8py.client.clock import Clock, RealClock
from k8py.client.errors import ApiError, InvalidError, NotFoundError
from k8py.client.informer import Informer
from k8py.controllers.base import parse_time

__all__ = [
    "BURST_REPLICAS",
    "CONTROLLERLESS_INDEX",
    "EXPECTATIONS_TIMEOUT",
    "POD_DELETION_COST",
    "SLOW_START_INITIAL_BATCH_SIZE",
    "AdoptionError",
    "ControllerExpectations",
    "ControllerRefManager",
    "EventReason",
    "PodControl",
    "adopt_patch",
    "controller_ref",
    "error_message",
    "index_controllerless",
    "is_namespace_terminating",
    "is_pod_active",
    "is_pod_available",
    "is_pod_ready",
    "is_pod_terminating",
    "new_controller_ref",
    "pod_from_template",
    "pod_key",
    "pod_ready_condition",
    "pod_ready_time",
    "pods_prefix",
    "pods_to_delete",
    "rank_pods_for_deletion",
    "recheck_deletion_timestamp",
    "release_patch",
    "seconds_until_available",
    "slow_start_batch",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Record = Callable[[Obj, str, str, str], None]  # (object, type, reason, message): ControllerContext.record

POD = ("v1", "Pod")

# kube-controller-manager's defaults: at most this many creates/deletes per sync of one owner;
# creates go out in batches of 1, 2, 4, ... (slow start).
BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH_SIZE = 1
# Expectations not met within this time are given up on (a watch event was lost, a create timed out).
EXPECTATIONS_TIMEOUT = 300.0
# Pods with a lower cost are deleted first (an int32 annotation; unparsable counts as 0).
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
# Index on the shared pod informer: namespace of each pod without a controller ownerReference.
CONTROLLERLESS_INDEX = "k8py.io/controllerless-by-namespace"


class EventReason(StrEnum):
    SUCCESSFUL_CREATE = "SuccessfulCreate"
    FAILED_CREATE = "FailedCreate"
    SUCCESSFUL_DELETE = "SuccessfulDelete"
    FAILED_DELETE = "FailedDelete"


def error_message(e: BaseException) -> str:
    """What Go's ``err.Error()`` says: a Status's message for API errors."""
    if isinstance(e, ApiError):
        return e.message or str(e)
    return str(e)


# -- expectations ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Expectation:
    add: int
    delete: int
    timestamp: float
    # keys (namespace/name) of the pods whose deletion is expected, when tracked by key
    keys: set[str] | None = None

    @property
    def fulfilled(self) -> bool:
        return self.add <= 0 and self.delete <= 0


class ControllerExpectations:
    """Creates and deletes a controller is waiting to see in its informer, per owner key.

    kube's ``UIDTrackingControllerExpectations``: before writing, a controller says how many
    creates (``expect_creations``) or which deletes (``expect_deletions``) it is about to do; its
    informer handlers count them off (``creation_observed`` on a pod add, ``deletion_observed``
    on a pod delete or deletionTimestamp). Until they are all seen -- or ``timeout`` passes --
    ``satisfied(key)`` is False and the controller must not create or delete again, because its
    cache does not show its own writes yet. Status may still be computed and written.

    Deletes given as pod keys are tracked one by one, so a delete observed twice (as a
    deletionTimestamp update, then as the delete) counts once; given as a number they are
    counted, as kube's plain ``ControllerExpectations`` does (DaemonSet).
    """

    def __init__(self, clock: Clock | None = None, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self.clock: Clock = clock or RealClock()
        self.timeout = timeout
        self._exp: dict[str, _Expectation] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._exp

    def get(self, key: str) -> tuple[int, int] | None:
        """``(adds, deletes)`` still expected for ``key``, or None when nothing was set."""
        e = self._exp.get(key)
        return None if e is None else (e.add, e.delete)

    def satisfied(self, key: str) -> bool:
        """True when the controller may create/delete for ``key``: nothing was expected, all that
        was expected has been seen, or the expectations expired."""
        e = self._exp.get(key)
        if e is None:
            return True
        if e.fulfilled:
            return True
        if self.clock.now() - e.timestamp > self.timeout:
            log.info("expectations of %s expired with %d creates and %d deletes unseen", key, e.add, e.delete)
            return True
        return False

    def set(self, key: str, add: int, delete: int) -> None:
        """Replace ``key``'s expectations (and restart their timeout)."""
        self._exp[key] = _Expectation(add, delete, self.clock.now())

    def expect_creations(self, key: str, count: int) -> None:
        self.set(key, count, 0)

    def expect_deletions(self, key: str, pods: int | Iterable[str]) -> None:
        """Expect ``pods`` deletes: a number, or the keys (``namespace/name``) of the pods."""
        if isinstance(pods, int):
            self.set(key, 0, pods)
            return
        keys = set(pods)
        self._exp[key] = _Expectation(0, len(keys), self.clock.now(), keys)

    def raise_expectations(self, key: str, add: int = 0, delete: int = 0) -> None:
        e = self._exp.get(key)
        if e is not None:
            e.add += add
            e.delete += delete

    def lower(self, key: str, add: int = 0, delete: int = 0) -> None:
        e = self._exp.get(key)
        if e is not None:
            e.add -= add
            e.delete -= delete

    def creation_observed(self, key: str) -> None:
        self.lower(key, add=1)

    def deletion_observed(self, key: str, pod_key: str | None = None) -> None:
        """One expected delete seen. When deletes are tracked by pod key, only a tracked pod
        counts, and only once."""
        e = self._exp.get(key)
        if e is None:
            return
        if e.keys is not None:
            if pod_key is None or pod_key not in e.keys:
                return
            e.keys.discard(pod_key)
        e.delete -= 1

    def delete(self, key: str) -> None:
        """Forget ``key`` (its owner is gone, so a new one of the same name starts clean)."""
        self._exp.pop(key, None)


# -- pod state -------------------------------------------------------------------------------------


def _ts(s: Any) -> float | None:
    t = parse_time(s) if isinstance(s, str) else None
    return t.timestamp() if t is not None else None


def pod_key(pod: Obj) -> str:
    """``namespace/name`` (kube's ``PodKey``)."""
    md = pod.get("metadata") or {}
    return f"{md.get('namespace', '')}/{md.get('name', '')}"


def is_pod_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_pod_active(pod: Obj) -> bool:
    """Not finished and not being deleted: a pod that counts as a replica."""
    return not is_pod_terminal(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp")


def is_pod_terminating(pod: Obj) -> bool:
    """Being deleted but not finished yet."""
    return not is_pod_terminal(pod) and bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_ready_time(pod: Obj) -> float | None:
    """When a ready pod became ready (epoch seconds); None when not ready or not recorded."""
    c = pod_ready_condition(pod)
    if c is None or c.get("status") != "True":
        return None
    return _ts(c.get("lastTransitionTime"))


def is_pod_available(pod: Obj, min_ready_seconds: float, now: float) -> bool:
    """Ready, and (when ``min_ready_seconds`` > 0) ready for longer than that at ``now``."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = pod_ready_time(pod)
    # why strict: kube's LastTransitionTime.Add(minReadySeconds).Before(now)
    return since is not None and since + min_ready_seconds < now


def seconds_until_available(pod: Obj, min_ready_seconds: float, now: float) -> float | None:
    """0 when the pod is available at ``now``; else the seconds until it will be (> 0) if it
    stays ready; None when it is not ready (or can never count: no ready transition time)."""
    if is_pod_available(pod, min_ready_seconds, now):
        return 0.0
    since = pod_ready_time(pod)
    if since is None:
        return None
    # at exactly since+min it is not available yet (strict): ask for a moment later
    return max(since + min_ready_seconds - now, 1e-3)


# -- ownership -------------------------------------------------------------------------------------


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true`` (kube's ``GetControllerOf``), if any."""
    for r in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(r, dict) and r.get("controller") is True:
            return r
    return None


def resolve_controller_ref(informer: Any, namespace: str, ref: Obj | None, kind: str,
                           group: str = "apps") -> Obj | None:
    """The cached owner ``ref`` points to, if it is a ``kind`` of ``group`` and still the same
    object (same uid): the handlers' way from a dependent to the key to enqueue."""
    if ref is None or ref.get("kind") != kind or str(ref.get("apiVersion", "")).rpartition("/")[0] != group:
        return None
    owner = informer.get(str(ref.get("name", "")), namespace)
    if owner is None or (owner.get("metadata") or {}).get("uid") != ref.get("uid"):
        return None
    return owner  # type: ignore[no-any-return]


def owners_selecting(informer: Any, obj: Obj) -> list[Obj]:
    """Cached owners in ``obj``'s namespace whose label selector matches its labels (the ones
    that may adopt an orphan). An empty or invalid selector matches nothing here."""
    from k8py.api.selectors import SelectorError, from_label_selector

    md = obj.get("metadata") or {}
    labels = md.get("labels") or {}
    out = []
    for owner in informer.list(md.get("namespace") or ""):
        try:
            sel = from_label_selector((owner.get("spec") or {}).get("selector"))
        except SelectorError:
            continue
        if not sel.empty and sel.matches(labels):
            out.append(owner)
    return out


def new_controller_ref(owner: Obj, api_version: str | None = None, kind: str | None = None) -> Obj:
    """An ownerReference making ``owner`` the controller, with ``blockOwnerDeletion`` (kube's
    ``NewControllerRef``). ``api_version``/``kind`` default to the owner's own."""
    md = owner.get("metadata") or {}
    return {"apiVersion": api_version or owner.get("apiVersion", ""), "kind": kind or owner.get("kind", ""),
            "name": md.get("name", ""), "uid": md.get("uid", ""), "controller": True,
            "blockOwnerDeletion": True}


def adopt_patch(owner: Obj, api_version: str, kind: str, dependent_uid: str) -> Obj:
    """Strategic merge patch adding ``owner`` as controller; the dependent's uid in it makes the
    patch apply only to that incarnation of the object."""
    return {"metadata": {"ownerReferences": [new_controller_ref(owner, api_version, kind)],
                         "uid": dependent_uid}}


def release_patch(owner_uid: str, dependent_uid: str) -> Obj:
    """Strategic merge patch removing the ownerReference to ``owner_uid``."""
    return {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": dependent_uid}}


def _controllerless_by_namespace(obj: Obj) -> list[str]:
    if controller_ref(obj) is not None:
        return []
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


def index_controllerless(informer: Informer) -> None:
    """Add :data:`CONTROLLERLESS_INDEX` (objects without a controller, by namespace) to a shared
    informer, once however many controllers ask: orphans are the only objects a controller may
    adopt, so it need not look at every object of the namespace."""
    try:
        informer.add_indexer(CONTROLLERLESS_INDEX, _controllerless_by_namespace)
    except ValueError:
        pass  # already there (another controller shares the informer)


class AdoptionError(Exception):
    """The owner may not adopt now (it is being deleted, or it was replaced)."""


def recheck_deletion_timestamp(get_fresh: Callable[[], Awaitable[Obj]], uid: str) -> Callable[[], Awaitable[None]]:
    """kube's ``RecheckDeletionTimestamp``: before the first adoption, read the owner from the API
    (not the cache) and refuse if it is gone, replaced (other uid) or being deleted -- an owner
    being deleted must not grab pods that the garbage collector would then have to delete too."""

    async def can_adopt() -> None:
        fresh = await get_fresh()
        md = fresh.get("metadata") or {}
        if md.get("uid") != uid:
            raise AdoptionError(f"original {fresh.get('kind', 'object')} {md.get('namespace', '')}/"
                                f"{md.get('name', '')} is gone: got uid {md.get('uid')}, wanted {uid}")
        if md.get("deletionTimestamp"):
            raise AdoptionError(f"{md.get('namespace', '')}/{md.get('name', '')} has just been deleted at "
                                f"{md['deletionTimestamp']}")

    return can_adopt


class ControllerRefManager:
    """Claims objects for one owner, as kube's ``BaseControllerRefManager.ClaimObject`` does:

    - controlled by someone else: not ours, leave it;
    - controlled by the owner and matching: ours;
    - controlled by the owner but no longer matching: release it (unless the owner is being
      deleted);
    - an orphan that matches, not being deleted, in the owner's namespace: adopt it (unless the
      owner is being deleted, or ``can_adopt`` refuses).

    ``patch(obj, body)`` sends a strategic merge patch to the object (for pods,
    :meth:`PodControl.patch_pod`). ``can_adopt`` runs at most once per manager, before the
    first adoption. One manager serves one sync.
    """

    def __init__(self, owner: Obj, selector: LabelSelector, api_version: str, kind: str, *,
                 patch: Callable[[Obj, Obj], Awaitable[Any]],
                 can_adopt: Callable[[], Awaitable[None]] | None = None) -> None:
        self.owner = owner
        md = owner.get("metadata") or {}
        self.uid = str(md.get("uid") or "")
        self.namespace = md.get("namespace") or ""
        self.deleting = bool(md.get("deletionTimestamp"))
        self.selector = selector
        self.api_version = api_version
        self.kind = kind
        self._patch = patch
        self._can_adopt = can_adopt
        self._adopt_checked = False
        self._adopt_error: Exception | None = None

    async def claim(self, objs: Iterable[Obj],
                    filters: Sequence[Callable[[Obj], bool]] = ()) -> tuple[list[Obj], list[Exception]]:
        """The objects the owner keeps (already owned or just adopted), and the errors of
        adoptions/releases that failed (the caller should retry the sync)."""
        claimed: list[Obj] = []
        errors: list[Exception] = []

        def match(o: Obj) -> bool:
            return self.selector.matches((o.get("metadata") or {}).get("labels")) and all(f(o) for f in filters)

        for o in objs:
            try:
                if await self.claim_one(o, match):
                    claimed.append(o)
            except Exception as e:  # noqa: BLE001 -- collected for the caller, as kube aggregates them
                errors.append(e)
        return claimed, errors

    async def claim_one(self, obj: Obj, match: Callable[[Obj], bool]) -> bool:
        ref = controller_ref(obj)
        md = obj.get("metadata") or {}
        if ref is not None:
            if ref.get("uid") != self.uid:
                return False
            if match(obj):
                return True
            if self.deleting:
                return False
            try:
                await self.release(obj)
            except NotFoundError:
                pass
            return False
        if self.deleting or not match(obj):
            return False
        if md.get("deletionTimestamp"):
            return False
        if self.namespace and md.get("namespace") != self.namespace:
            return False
        try:
            await self.adopt(obj)
        except NotFoundError:
            return False
        return True

    async def can_adopt(self) -> None:
        """Run ``can_adopt`` once; its verdict holds for the rest of this manager's claims."""
        if self._can_adopt is None:
            return
        if not self._adopt_checked:
            self._adopt_checked = True
            try:
                await self._can_adopt()
            except Exception as e:  # noqa: BLE001 -- remembered and re-raised per adoption
                self._adopt_error = e
        if self._adopt_error is not None:
            raise self._adopt_error

    async def adopt(self, obj: Obj) -> None:
        md = obj.get("metadata") or {}
        try:
            await self.can_adopt()
        except Exception as e:
            raise AdoptionError(f"can't adopt {obj.get('kind', 'object')} {md.get('namespace', '')}/"
                                f"{md.get('name', '')} ({md.get('uid', '')}): {error_message(e)}") from e
        await self._patch(obj, adopt_patch(self.owner, self.api_version, self.kind, str(md.get("uid") or "")))

    async def release(self, obj: Obj) -> None:
        md = obj.get("metadata") or {}
        try:
            await self._patch(obj, release_patch(self.uid, str(md.get("uid") or "")))
        except (NotFoundError, InvalidError):
            # gone, or (kube) no such ownerReference / another uid: nothing left to release
            pass


# -- pods from templates ---------------------------------------------------------------------------


def pods_prefix(owner_name: str) -> str:
    """``generateName`` for an owner's pods: ``"<name>-"`` (the name alone if that would be too
    long for a name)."""
    prefix = f"{owner_name}-"
    return prefix if len(prefix) <= 253 else owner_name


def pod_from_template(template: Obj | None, owner: Obj | None, generate_name: str | None = None, *,
                      controller_ref: Obj | None = None) -> Obj:
    """A new pod (kube's ``GetPodFromTemplate``): the template's labels, annotations, finalizers
    and spec; ``generateName`` (default :func:`pods_prefix` of the owner's name); and the owner
    as controller (``controller_ref``, default :func:`new_controller_ref` of ``owner``)."""
    template = template or {}
    tmeta = template.get("metadata") or {}
    meta: Obj = {}
    if tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    if generate_name is None:
        generate_name = pods_prefix(str(((owner or {}).get("metadata") or {}).get("name") or ""))
    if generate_name:
        meta["generateName"] = generate_name
    ref = controller_ref if controller_ref is not None else (new_controller_ref(owner) if owner else None)
    if ref is not None:
        meta["ownerReferences"] = [dict(ref)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


class PodControl:
    """Pod writes on behalf of an owner, with the Events kube's ``RealPodControl`` records on the
    owner (``SuccessfulCreate "Created pod: x"``, ``FailedCreate "Error creating: ..."``,
    ``SuccessfulDelete "Deleted pod: x"``, ``FailedDelete "Error deleting: ..."``)."""

    def __init__(self, client: Client, record: Record | None = None) -> None:
        self.client = client
        self.record: Record = record or (lambda obj, type_, reason, message: None)

    async def create_pod(self, namespace: str, template: Obj | None, owner: Obj,
                         controller_ref: Obj | None = None, generate_name: str | None = None) -> Obj:
        """Create one pod from ``template`` owned by ``owner``; returns it as created."""
        pod = pod_from_template(template, owner, generate_name, controller_ref=controller_ref)
        if not (pod["metadata"].get("labels")):
            raise ValueError("unable to create pods, no labels")
        try:
            created = await self.client.create(POD, pod, namespace)
        except ApiError as e:
            if not is_namespace_terminating(e):
                self.record(owner, "Warning", EventReason.FAILED_CREATE, f"Error creating: {error_message(e)}")
            raise
        name = (created.get("metadata") or {}).get("name", "")
        log.debug("%s/%s: created pod %s", namespace, (owner.get("metadata") or {}).get("name"), name)
        self.record(owner, "Normal", EventReason.SUCCESSFUL_CREATE, f"Created pod: {name}")
        return created

    async def delete_pod(self, namespace: str, name: str, owner: Obj) -> None:
        """Delete a pod (gracefully). A pod already gone raises :class:`NotFoundError` without
        an Event."""
        try:
            await self.client.delete(POD, name, namespace)
        except NotFoundError:
            raise
        except ApiError as e:
            self.record(owner, "Warning", EventReason.FAILED_DELETE, f"Error deleting: {error_message(e)}")
            raise
        self.record(owner, "Normal", EventReason.SUCCESSFUL_DELETE, f"Deleted pod: {name}")

    async def patch_pod(self, pod: Obj, patch: Obj) -> Obj:
        """Strategic-merge-patch ``pod`` (e.g. :func:`adopt_patch`, :func:`release_patch`)."""
        md = pod.get("metadata") or {}
        return await self.client.patch(POD, md.get("name", ""), patch, md.get("namespace"), type="strategic")


async def slow_start_batch(count: int, initial_batch_size: int,
                           fn: Callable[[], Awaitable[Any]]) -> tuple[int, Exception | None]:
    """Call ``fn`` ``count`` times in concurrent batches of 1, 2, 4, ... (from
    ``initial_batch_size``); stop after the first batch with a failure. Returns the number of
    calls that succeeded and the first error. A quota or admission problem then costs one
    failed request, not ``count`` of them."""
    remaining = count
    successes = 0
    batch = min(remaining, initial_batch_size)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        errors: list[Exception] = []
        for r in results:
            if isinstance(r, Exception):
                errors.append(r)
            elif isinstance(r, BaseException):  # cancellation and the like are not ours to swallow
                raise r
        successes += batch - len(errors)
        if errors:
            return successes, errors[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


# -- choosing pods to delete -----------------------------------------------------------------------

# kube's podPhaseToOrdinal; phases not listed (and none) count as 0
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


@dataclass(slots=True)
class _Ranked:
    pod: Obj
    node: str
    phase: int
    ready: bool
    cost: int
    rank: int
    ready_time: float | None
    restarts: int
    sidecar_restarts: int
    created: float | None
    uid: str


def _deletion_cost(pod: Obj) -> int:
    v = ((pod.get("metadata") or {}).get("annotations") or {}).get(POD_DELETION_COST)
    if v is None:
        return 0
    try:
        n = int(str(v).strip())
    except ValueError:
        return 0
    return n if -(2**31) <= n < 2**31 else 0


def _max_restarts(pod: Obj) -> tuple[int, int]:
    st = pod.get("status") or {}
    regular = max((int(c.get("restartCount") or 0) for c in st.get("containerStatuses") or ()), default=0)
    sidecars = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or ()
                if c.get("restartPolicy") == "Always"}
    sidecar = max((int(c.get("restartCount") or 0) for c in st.get("initContainerStatuses") or ()
                   if c.get("name") in sidecars), default=0)
    return regular, sidecar


def _after_or_zero(t1: float | None, t2: float | None) -> bool:
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _log_rank_diff(t1: float, t2: float, now: float) -> int:
    # kube's LogarithmicScaleDown: times in the same power-of-two bucket of age (in ns) tie
    def bucket(t: float) -> int:
        d = (now - t) * 1e9
        return int(math.log2(d)) if d > 0 else -1

    return bucket(t1) - bucket(t2)


def _less(a: _Ranked, b: _Ranked, now: float | None) -> bool:
    """True when ``a`` should be deleted before ``b`` (kube's ``ActivePodsWithRanks.Less``)."""
    # 1. unassigned < assigned
    if a.node != b.node and (not a.node or not b.node):
        return not a.node
    # 2. Pending < Unknown < Running
    if a.phase != b.phase:
        return a.phase < b.phase
    # 3. not ready < ready
    if a.ready != b.ready:
        return not a.ready
    # 4. lower pod-deletion-cost first
    if a.cost != b.cost:
        return a.cost < b.cost
    # 5. doubled up (more related pods on the same node) first
    if a.rank != b.rank:
        return a.rank > b.rank
    # 6. ready for less time first (in logarithmic buckets when now is given; ties by uid)
    if a.ready and b.ready and a.ready_time != b.ready_time:
        if now is None or a.ready_time is None or b.ready_time is None:
            return _after_or_zero(a.ready_time, b.ready_time)
        d = _log_rank_diff(a.ready_time, b.ready_time, now)
        if d == 0:
            return a.uid < b.uid
        return d < 0
    # 7. more container restarts first (regular containers, then sidecars)
    if a.restarts != b.restarts:
        return a.restarts > b.restarts
    if a.sidecar_restarts != b.sidecar_restarts:
        return a.sidecar_restarts > b.sidecar_restarts
    # 8. created more recently first
    if a.created != b.created:
        if now is None or a.created is None or b.created is None:
            return _after_or_zero(a.created, b.created)
        d = _log_rank_diff(a.created, b.created, now)
        if d == 0:
            return a.uid < b.uid
        return d < 0
    return False


def rank_pods_for_deletion(pods: Iterable[Obj], related_pods: Iterable[Obj] | None = None,
                           now: float | None = None) -> list[Obj]:
    """``pods`` in the order kube's ReplicaSet controller deletes them (first = first to go):

    1. not yet scheduled before scheduled;
    2. Pending before Unknown before Running;
    3. not ready before ready;
    4. lower ``controller.kubernetes.io/pod-deletion-cost`` first;
    5. pods sharing their node with more active ``related_pods`` (default: ``pods``) first;
    6. ready for a shorter time first;
    7. more container restarts first;
    8. created more recently first.

    With ``now`` (epoch seconds), times in 6 and 8 compare in power-of-two age buckets and ties
    go by uid (kube's LogarithmicScaleDown), so scale-down does not always pick the very newest
    pods; without it they compare exactly.
    """
    pods = list(pods)
    related = pods if related_pods is None else list(related_pods)
    on_node = Counter(str((p.get("spec") or {}).get("nodeName") or "") for p in related if is_pod_active(p))
    ranked = []
    for p in pods:
        md = p.get("metadata") or {}
        node = str((p.get("spec") or {}).get("nodeName") or "")
        regular, sidecar = _max_restarts(p)
        ready = is_pod_ready(p)
        ranked.append(_Ranked(
            pod=p, node=node, phase=_PHASE_ORDINAL.get(str((p.get("status") or {}).get("phase") or ""), 0),
            ready=ready, cost=_deletion_cost(p), rank=on_node[node],
            ready_time=pod_ready_time(p) if ready else None, restarts=regular, sidecar_restarts=sidecar,
            created=_ts(md.get("creationTimestamp")), uid=str(md.get("uid") or "")))

    def cmp(a: _Ranked, b: _Ranked) -> int:
        if _less(a, b, now):
            return -1
        if _less(b, a, now):
            return 1
        return 0

    ranked.sort(key=functools.cmp_to_key(cmp))
    return [r.pod for r in ranked]


def pods_to_delete(pods: Sequence[Obj], related_pods: Iterable[Obj] | None, count: int,
                   now: float | None = None) -> list[Obj]:
    """The ``count`` pods of ``pods`` to delete first (see :func:`rank_pods_for_deletion`)."""
    if count >= len(pods):
        return list(pods)
    return rank_pods_for_deletion(pods, related_pods, now)[:count]
