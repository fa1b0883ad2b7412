"""The disruption controller: the status of every PodDisruptionBudget (kube's
``pkg/controller/disruption``), which the ``pods/eviction`` subresource reads to decide.

For each PDB, one level-based ``reconcile``:

1. Its pods: the pods in its namespace its selector matches (nil selects nothing, ``{}``
   everything, as policy/v1 says).
2. ``expectedPods`` and ``desiredHealthy``: with ``minAvailable`` as a number, the number of
   matched pods and that number; otherwise (``minAvailable`` as a percentage, or
   ``maxUnavailable``) the sum of ``spec.replicas`` of the pods' controllers, found through
   their controller ownerReferences (ReplicationController, Deployment via its ReplicaSet,
   ReplicaSet, StatefulSet, or any kind with a ``scale`` subresource), percentages rounded up.
   Pods without a controller are "unmanaged": an ``UnmanagedPods`` warning event says so.
3. ``currentHealthy``: matched pods that are Ready, not being deleted, and not named in
   ``disruptedPods`` (pods the eviction handler has just allowed to go).
4. ``disruptionsAllowed = max(0, currentHealthy - desiredHealthy)`` (0 while no pods are
   expected), ``observedGeneration``, ``disruptedPods`` without the entries older than
   :data:`DELETION_TIMEOUT` or of pods that are gone or going, and the ``DisruptionAllowed``
   condition (``SufficientPods`` / ``InsufficientPods``).
5. Anything failing (a bad selector, a pod whose controller cannot be found) sets
   ``disruptionsAllowed`` to 0 with the condition ``SyncFailed``: evictions stop rather than
   guess ("fail safe").

PDBs are looked at again when their pods change, when they change, when a controller of
their pods changes scale, and when the oldest ``disruptedPods`` entry expires.

Also as kube: a pod left with a ``DisruptionTarget=True`` condition (set by an eviction whose
delete then failed) that is neither terminating nor finished gets that condition reset to False
after :data:`STALE_POD_DISRUPTION_TIMEOUT`.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from k8py.api.selectors import LabelSelector, SelectorError, format_label_selector, from_label_selector
from k8py.client.api import object_key
from k8py.client.controller import Controller, Result
from k8py.client.errors import ApiError, ConflictError, NotFoundError
from k8py.controllers.base import ControllerContext, parse_time, rfc3339
from k8py.controllers.deploymentutil import scaled_value
from k8py.controllers.podcontrol import controller_ref, is_pod_ready, is_pod_terminal

__all__ = [
    "DELETION_TIMEOUT",
    "DISRUPTION_ALLOWED",
    "DisruptionController",
    "PDBCounts",
    "conditions_up_to_date",
    "count_healthy",
    "matches_pod",
    "pdb_selector",
    "set_condition",
    "update_disruption_allowed_condition",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

POD = ("v1", "Pod")
PDB = ("policy/v1", "PodDisruptionBudget")
RC = ("v1", "ReplicationController")
RS = ("apps/v1", "ReplicaSet")
DEPLOYMENT = ("apps/v1", "Deployment")
STATEFULSET = ("apps/v1", "StatefulSet")

# An eviction approved this long ago whose pod still is not being deleted no longer counts as
# "about to go" (kube's DeletionTimeout).
DELETION_TIMEOUT = 120.0
# A DisruptionTarget condition on a pod that did not go is reset after this (kube: 2 minutes).
STALE_POD_DISRUPTION_TIMEOUT = 120.0

DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"
DISRUPTION_TARGET = "DisruptionTarget"
TERMINATION_BY_KUBELET = "TerminationByKubelet"

# Workqueue keys of pods whose stale DisruptionTarget condition is due; namespaces cannot hold
# ":", so these never collide with the "namespace/name" keys of PDBs.
STALE_POD_PREFIX = "stale-pod:"


class SyncError(Exception):
    """Why a PDB's status cannot be computed (its message goes into the SyncFailed condition)."""


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _ts(t: float) -> str:
    return rfc3339(dt.datetime.fromtimestamp(t, dt.UTC))


# -- selectors -------------------------------------------------------------------------------------

def pdb_selector(pdb: Obj) -> LabelSelector:
    """``metav1.LabelSelectorAsSelector(spec.selector)``; raises SelectorError when invalid."""
    return from_label_selector((pdb.get("spec") or {}).get("selector"))


def matches_pod(pdb: Obj, pod: Obj) -> bool:
    """The PDB lister's rule (policy/v1): same namespace, selector matches (``{}`` matches every
    pod, a nil or invalid selector none)."""
    if _meta(pdb).get("namespace") != _meta(pod).get("namespace"):
        return False
    try:
        sel = pdb_selector(pdb)
    except SelectorError:
        return False
    return sel.matches(_meta(pod).get("labels") or {})


# -- conditions ------------------------------------------------------------------------------------

def set_condition(conditions: list[Obj], new: Obj, now: float) -> None:
    """``apimeta.SetStatusCondition``: add ``new``, or update the one of its type in place (the
    transition time moves only when the status changes)."""
    for c in conditions:
        if c.get("type") == new["type"]:
            if c.get("status") != new["status"]:
                c["status"] = new["status"]
                c["lastTransitionTime"] = new.get("lastTransitionTime") or _ts(now)
            c["reason"] = new.get("reason", "")
            c["message"] = new.get("message", "")
            if new.get("observedGeneration"):
                c["observedGeneration"] = new["observedGeneration"]
            else:
                c.pop("observedGeneration", None)
            return
    cond = {"type": new["type"], "status": new["status"]}
    if new.get("observedGeneration"):
        cond["observedGeneration"] = new["observedGeneration"]
    cond["lastTransitionTime"] = new.get("lastTransitionTime") or _ts(now)
    cond["reason"] = new.get("reason", "")
    cond["message"] = new.get("message", "")
    conditions.append(cond)


def update_disruption_allowed_condition(status: Obj, now: float) -> None:
    """kube's ``pdbhelper.UpdateDisruptionAllowedCondition`` on a PDB's ``status``."""
    conds = status.setdefault("conditions", [])
    allowed = int(status.get("disruptionsAllowed") or 0) > 0
    set_condition(conds, {"type": DISRUPTION_ALLOWED, "status": "True" if allowed else "False",
                          "reason": SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS, "message": "",
                          "observedGeneration": status.get("observedGeneration") or 0}, now)


def conditions_up_to_date(pdb: Obj) -> bool:
    """kube's ``pdbhelper.ConditionsAreUpToDate``."""
    st = pdb.get("status") or {}
    cond = next((c for c in st.get("conditions") or () if c.get("type") == DISRUPTION_ALLOWED), None)
    if cond is None or int(st.get("observedGeneration") or 0) != int(_meta(pdb).get("generation") or 0):
        return False
    if int(st.get("disruptionsAllowed") or 0) > 0:
        return cond.get("status") == "True" and cond.get("reason") == SUFFICIENT_PODS
    return cond.get("status") == "False" and cond.get("reason") == INSUFFICIENT_PODS


# -- the pure part of a sync -----------------------------------------------------------------------

def _time_of(v: Any) -> float | None:
    t = parse_time(v) if isinstance(v, str) else None
    return t.timestamp() if t is not None else None


def build_disrupted_pods(pods: list[Obj], disrupted: dict[str, Any] | None,
                         now: float) -> tuple[dict[str, Any], float | None, list[Obj]]:
    """kube's ``buildDisruptedPodMap``: the entries of ``disrupted`` to keep (pods still there,
    not being deleted, approved less than DELETION_TIMEOUT ago), the wall time at which the
    first kept one expires (None: nothing to recheck), and the pods whose entry expired without
    their deletion starting (they get a ``NotDeleted`` event)."""
    kept: dict[str, Any] = {}
    recheck: float | None = None
    expired: list[Obj] = []
    if not disrupted:
        return kept, recheck, expired
    for pod in pods:
        m = _meta(pod)
        if m.get("deletionTimestamp"):
            continue  # its deletion began: the entry did its job
        name = m.get("name", "")
        if name not in disrupted:
            continue
        at = _time_of(disrupted[name])
        due = (at if at is not None else 0.0) + DELETION_TIMEOUT
        if due < now:
            expired.append(pod)
            continue
        recheck = due if recheck is None else min(recheck, due)
        kept[name] = disrupted[name]
    return kept, recheck, expired


def count_healthy(pods: list[Obj], disrupted: dict[str, Any], now: float) -> int:
    """kube's ``countHealthyPods``: Ready pods not being deleted and not about to be."""
    n = 0
    for pod in pods:
        m = _meta(pod)
        if m.get("deletionTimestamp"):
            continue
        name = m.get("name", "")
        if name in disrupted:
            at = _time_of(disrupted[name])
            if at is not None and at + DELETION_TIMEOUT > now:
                continue
        if is_pod_ready(pod):
            n += 1
    return n


@dataclass(frozen=True, slots=True)
class PDBCounts:
    expected: int
    desired: int
    current: int
    allowed: int


def disruptions_allowed(current: int, desired: int, expected: int) -> int:
    """Never more than 0 while no pods are expected: a PDB whose first pods just appeared must
    not allow evictions before this controller has seen them (kube's updatePdbStatus)."""
    allowed = current - desired
    return 0 if expected <= 0 or allowed <= 0 else allowed


def _int_or_percent(v: Any, total: int) -> int:
    try:
        return scaled_value(v, total, True)
    except (TypeError, ValueError) as e:
        raise SyncError(str(e)) from None


def _status_shape(pdb: Obj, counts: PDBCounts, disrupted: dict[str, Any]) -> Obj:
    st: Obj = {}
    gen = int(_meta(pdb).get("generation") or 0)
    if gen:
        st["observedGeneration"] = gen
    if disrupted:
        st["disruptedPods"] = disrupted
    st.update({"disruptionsAllowed": counts.allowed, "currentHealthy": counts.current,
               "desiredHealthy": counts.desired, "expectedPods": counts.expected})
    return st


# -- the controller --------------------------------------------------------------------------------

class DisruptionController:
    """Keeps every PodDisruptionBudget's status current; see the module docstring."""

    NAME: ClassVar[str] = "disruption"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        f = ctx.factory
        self.pdbs = f.informer(PDB)
        self.pods = f.informer(POD)
        self.rcs = f.informer(RC)
        self.rss = f.informer(RS)
        self.deployments = f.informer(DEPLOYMENT)
        self.statefulsets = f.informer(STATEFULSET)
        self.stale_pod_timeout = (STALE_POD_DISRUPTION_TIMEOUT if ctx.options.stale_pod_disruption_timeout
                                  is None else ctx.options.stale_pod_disruption_timeout)
        self.controller = Controller("disruption", self.reconcile, workers=ctx.options.workers or 2,
                                     clock=ctx.clock)
        self.controller.watch(self.pdbs)
        self.controller.watch(self.pods, self._pdb_keys_for_pod)
        self.pods.add_handler(self._on_pod, lambda _old, new: self._on_pod(new))
        for inf in (self.rcs, self.rss, self.deployments, self.statefulsets):
            self.controller.wait_for(inf)
            inf.add_handler(None, self._on_workload_update)

    # -- handlers: map events to keys ---------------------------------------------------------------

    def _pdb_keys_for_pod(self, pod: Obj) -> list[str]:
        # why every matching PDB (kube enqueues only the first): each one's counts change
        ns = _meta(pod).get("namespace")
        return [object_key(p) for p in self.pdbs.list(ns) if matches_pod(p, pod)]

    def _on_workload_update(self, old: Obj, new: Obj) -> None:
        """A controller of pods changed scale: the PDBs over its pods expect a different count."""
        if (old.get("spec") or {}).get("replicas") == (new.get("spec") or {}).get("replicas"):
            return
        ns = _meta(new).get("namespace")
        uid = _meta(new).get("uid")
        for pod in self.pods.list(ns):
            ref = controller_ref(pod)
            if ref is None:
                continue
            if ref.get("uid") == uid or self._owner_uid(ref, ns) == uid:
                for k in self._pdb_keys_for_pod(pod):
                    self.controller.enqueue_key(k)

    def _owner_uid(self, ref: Obj, ns: str | None) -> str | None:
        """The uid of the controller of the ReplicaSet ``ref`` names (its Deployment), if cached."""
        if ref.get("kind") != "ReplicaSet":
            return None
        rs = self.rss.get(str(ref.get("name") or ""), ns)
        if rs is None or _meta(rs).get("uid") != ref.get("uid"):
            return None
        owner = controller_ref(rs)
        return str(owner.get("uid")) if owner else None

    def _on_pod(self, pod: Obj) -> None:
        wait = self._stale_disruption_wait(pod)
        if wait is not None:
            self.controller.enqueue_after(STALE_POD_PREFIX + object_key(pod), wait)

    def _stale_disruption_wait(self, pod: Obj) -> float | None:
        """Seconds until ``pod``'s DisruptionTarget condition counts as stale (0: now), or None
        when it has none that can go stale (kube's nonTerminatingPodHasStaleDisruptionCondition)."""
        if _meta(pod).get("deletionTimestamp") or is_pod_terminal(pod):
            return None
        cond = next((c for c in (pod.get("status") or {}).get("conditions") or ()
                     if c.get("type") == DISRUPTION_TARGET), None)
        if cond is None or cond.get("status") != "True" or cond.get("reason") == TERMINATION_BY_KUBELET:
            return None
        since = _time_of(cond.get("lastTransitionTime"))
        elapsed = self.clock.wall() - since if since is not None else self.stale_pod_timeout
        return max(self.stale_pod_timeout - elapsed, 0.0)

    # -- reconcile ------------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        if key.startswith(STALE_POD_PREFIX):
            return await self._sync_stale_pod(key[len(STALE_POD_PREFIX):])
        ns, _, name = key.partition("/")
        pdb = self.pdbs.get(name, ns)
        if pdb is None:
            return None  # deleted: nothing to keep
        try:
            return await self._try_sync(pdb)
        except ConflictError:
            raise  # the cache is behind our own write: the runner retries quietly
        except (SyncError, SelectorError, ApiError) as e:
            log.info("disruption: PodDisruptionBudget %s: %s", key, e)
            await self._fail_safe(pdb, e)
            return None

    def _pods_for(self, pdb: Obj) -> list[Obj]:
        try:
            sel = pdb_selector(pdb)
        except SelectorError as e:
            self.ctx.record(self._typed(pdb), "Warning", "NoPods", f"Failed to get pods: {e.message}")
            raise
        return [p for p in self.pods.list(_meta(pdb).get("namespace")) if sel.matches(_meta(p).get("labels") or {})]

    async def _try_sync(self, pdb: Obj) -> Result | None:
        pods = self._pods_for(pdb)
        typed = self._typed(pdb)
        if not pods:
            self.ctx.record(typed, "Normal", "NoPods", "No matching pods found")
        try:
            expected, desired, unmanaged = await self._expected_pod_count(pdb, pods)
        except (SyncError, ApiError) as e:
            self.ctx.record(typed, "Warning", "CalculateExpectedPodCountFailed",
                            f"Failed to calculate the number of expected pods: {e}")
            raise
        if unmanaged:
            # why not an error: hot-looping on these would only write status over and over
            log.debug("disruption: PDB %s selects unmanaged pods %s", object_key(pdb), unmanaged)
            sel = format_label_selector((pdb.get("spec") or {}).get("selector"))
            self.ctx.record(typed, "Warning", "UnmanagedPods",
                            f"Pods selected by this PodDisruptionBudget (selector: {sel}) were found to be "
                            "unmanaged. As a result, the status of the PDB cannot be calculated correctly, which "
                            "may result in undefined behavior. To account for these pods please set "
                            "\".spec.minAvailable\" field of the PDB to an integer value.")
        now = self.clock.wall()
        disrupted, recheck, expired = build_disrupted_pods(pods, (pdb.get("status") or {}).get("disruptedPods"), now)
        for pod in expired:
            m = _meta(pdb)
            self.ctx.record(self._typed(pod, POD), "Warning", "NotDeleted",
                            f"Pod was expected by PDB {m.get('namespace')}/{m.get('name')} to be deleted but it "
                            "wasn't")
        current = count_healthy(pods, disrupted, now)
        counts = PDBCounts(expected, desired, current, disruptions_allowed(current, desired, expected))
        await self._update_status(pdb, counts, disrupted, now)
        if recheck is not None:
            # why: the entry's expiry changes currentHealthy without any event to tell us
            return Result(requeue_after=max(recheck - now, 0.001))
        return None

    async def _expected_pod_count(self, pdb: Obj, pods: list[Obj]) -> tuple[int, int, list[str]]:
        """(expectedPods, desiredHealthy, unmanaged pod names), as kube's getExpectedPodCount."""
        spec = pdb.get("spec") or {}
        mu, mn = spec.get("maxUnavailable"), spec.get("minAvailable")
        if mu is not None:
            expected, unmanaged = await self._expected_scale(pods)
            return expected, max(expected - _int_or_percent(mu, expected), 0), unmanaged
        if mn is not None:
            if isinstance(mn, int) and not isinstance(mn, bool):
                return len(pods), mn, []
            expected, unmanaged = await self._expected_scale(pods)
            return expected, _int_or_percent(mn, expected), unmanaged
        return 0, 0, []

    async def _expected_scale(self, pods: list[Obj]) -> tuple[int, list[str]]:
        """The sum of the scales of the pods' controllers (each counted once) and the names of the
        pods without one; a pod whose controller cannot be found is an error."""
        scale: dict[str, int] = {}
        unmanaged: list[str] = []
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                unmanaged.append(_meta(pod).get("name", ""))
                continue
            if ref.get("uid") in scale:
                continue
            found = await self._find_controller(ref, str(_meta(pod).get("namespace") or ""))
            if found is None:
                raise SyncError(f'found no controllers for pod "{_meta(pod).get("name", "")}"')
            scale[found[0]] = found[1]
        return sum(scale.values()), unmanaged

    async def _find_controller(self, ref: Obj, ns: str) -> tuple[str, int] | None:
        """(uid, replicas) of the controller ``ref`` leads to, in kube's finder order: RC, the
        Deployment over a ReplicaSet, a ReplicaSet no Deployment controls, StatefulSet, then any
        kind through its scale subresource."""
        kind = ref.get("kind")
        group = str(ref.get("apiVersion") or "").rpartition("/")[0]
        name = str(ref.get("name") or "")
        uid = ref.get("uid")
        if kind == "ReplicationController" and group == "":
            rc = self.rcs.get(name, ns)
            if rc is not None and _meta(rc).get("uid") == uid:
                return str(uid), _replicas(rc)
        if kind == "ReplicaSet" and group in ("apps", "extensions"):
            rs = self.rss.get(name, ns)
            if rs is not None and _meta(rs).get("uid") == uid:
                owner = controller_ref(rs)
                if owner is not None and owner.get("kind") == "Deployment":
                    if str(owner.get("apiVersion") or "").rpartition("/")[0] in ("apps", "extensions"):
                        d = self.deployments.get(str(owner.get("name") or ""), ns)
                        if d is not None and _meta(d).get("uid") == owner.get("uid"):
                            return str(owner.get("uid")), _replicas(d)
                    # a Deployment we cannot see: fall through to the ReplicaSet's own scale
                else:
                    return str(uid), _replicas(rs)
        if kind == "StatefulSet" and group == "apps":
            ss = self.statefulsets.get(name, ns)
            if ss is not None and _meta(ss).get("uid") == uid:
                return str(uid), _replicas(ss)
        return await self._scale_of(ref, ns)

    async def _scale_of(self, ref: Obj, ns: str) -> tuple[str, int] | None:
        """kube's getScaleController: GET the owner's ``scale`` subresource."""
        api_version, kind = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
        try:
            info = await self.client.resolve((api_version, kind))
        except NotFoundError as e:
            raise SyncError(f"no matches for kind \"{kind}\" in version \"{api_version}\": {e.message}") from None
        if "scale" not in info.subresources:
            qualified = f"{info.resource}.{info.group}" if info.group else info.resource
            raise SyncError(f"{qualified} does not implement the scale subresource")
        try:
            sc = await self.client.get(info, str(ref.get("name") or ""), ns, subresource="scale")
        except NotFoundError:
            return None
        if _meta(sc).get("uid") != ref.get("uid"):
            return None
        return str(ref.get("uid")), int((sc.get("spec") or {}).get("replicas") or 0)

    async def _update_status(self, pdb: Obj, counts: PDBCounts, disrupted: dict[str, Any], now: float) -> None:
        st = pdb.get("status") or {}
        gen = int(_meta(pdb).get("generation") or 0)
        if int(st.get("currentHealthy") or 0) == counts.current and \
                int(st.get("desiredHealthy") or 0) == counts.desired and \
                int(st.get("expectedPods") or 0) == counts.expected and \
                int(st.get("disruptionsAllowed") or 0) == counts.allowed and \
                (st.get("disruptedPods") or {}) == disrupted and \
                int(st.get("observedGeneration") or 0) == gen and conditions_up_to_date(pdb):
            return
        new = self._typed(copy.deepcopy(pdb))
        status = _status_shape(pdb, counts, disrupted)
        status["conditions"] = copy.deepcopy(st.get("conditions") or [])
        update_disruption_allowed_condition(status, now)
        new["status"] = status
        await self.client.update_status(PDB, new)

    async def _fail_safe(self, pdb: Obj, err: BaseException) -> None:
        """Set disruptionsAllowed to 0 with a SyncFailed condition, so that evictions stop while
        the status cannot be computed (kube's failSafe)."""
        new = self._typed(copy.deepcopy(pdb))
        status = new.setdefault("status", {})
        status["disruptionsAllowed"] = 0
        msg = err.message if isinstance(err, ApiError | SelectorError) else str(err)
        set_condition(status.setdefault("conditions", []),
                      {"type": DISRUPTION_ALLOWED, "status": "False", "reason": SYNC_FAILED, "message": msg,
                       "observedGeneration": status.get("observedGeneration") or 0}, self.clock.wall())
        if new == self._typed(copy.deepcopy(pdb)):
            return
        try:
            await self.client.update_status(PDB, new)
        except NotFoundError:
            pass

    async def _sync_stale_pod(self, key: str) -> Result | None:
        ns, _, name = key.partition("/")
        pod = self.pods.get(name, ns)
        if pod is None:
            return None
        wait = self._stale_disruption_wait(pod)
        if wait is None:
            return None
        if wait > 0:
            return Result(requeue_after=wait)
        new = self._typed(copy.deepcopy(pod), POD)
        conds = new.setdefault("status", {}).setdefault("conditions", [])
        for i, c in enumerate(conds):
            if c.get("type") == DISRUPTION_TARGET:
                # kube's UpdatePodCondition: the new condition replaces the old one whole
                conds[i] = {"type": DISRUPTION_TARGET, "status": "False", "lastProbeTime": None,
                            "lastTransitionTime": _ts(self.clock.wall())}
        try:
            await self.client.update_status(POD, new)
        except NotFoundError:
            return None
        log.info("disruption: reset stale DisruptionTarget condition of pod %s to False", key)
        return None

    @staticmethod
    def _typed(obj: Obj, kind: tuple[str, str] = PDB) -> Obj:
        """A shallow copy of ``obj`` sure to carry apiVersion and kind (events and writes need
        them; cached objects are never changed in place)."""
        return {**obj, "apiVersion": obj.get("apiVersion") or kind[0], "kind": obj.get("kind") or kind[1]}


def _replicas(obj: Obj) -> int:
    r = (obj.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)
