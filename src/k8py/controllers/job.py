"""The Job controller: runs pods to completion, as kube's ``pkg/controller/job`` does.

One level-based ``reconcile(namespace/name)`` (kube's ``syncJob``):

- pods are counted through the ``batch.kubernetes.io/job-tracking`` finalizer: every pod is
  created with it; a finished pod's uid first goes into ``status.uncountedTerminatedPods``, then
  its finalizer is removed, then it moves into ``status.succeeded``/``status.failed``. So no
  finished pod is missed or counted twice, even if it is deleted right after it ends;
- ``completions``/``parallelism`` (nil completions: a work queue, done once any pod succeeded
  and none runs), ``completionMode: Indexed`` (one pod per index, annotation/label
  ``batch.kubernetes.io/job-completion-index``, env ``JOB_COMPLETION_INDEX``, hostname
  ``<job>-<index>``, ``status.completedIndexes`` as ``"0-2,4"``);
- failures: ``backoffLimit`` (failed pods, and with restartPolicy OnFailure the restarts of
  running pods), replacement pods delayed by exponential backoff (``job_backoff_base`` 10 s
  doubling up to ``job_backoff_max`` 6 min, reset by a success), ``activeDeadlineSeconds``,
  ``podFailurePolicy`` (FailJob / Ignore / Count on exit codes and pod conditions);
- a failing or succeeding Job first gets the interim ``FailureTarget`` / ``SuccessCriteriaMet``
  condition, its remaining pods are deleted, and only once every pod is counted and none is
  terminating the final ``Failed`` / ``Complete`` condition (kube >= 1.31);
- ``suspend``: active pods deleted, ``Suspended`` condition; resuming restarts ``startTime``.

Options (``ctx.options``): ``workers``, ``job_backoff_base`` and ``job_backoff_max`` (seconds),
``job_sync_batch_period`` (seconds pod events wait so a burst of them makes one sync; kube: 1).

Not done here: ``backoffLimitPerIndex``/``maxFailedIndexes`` and ``successPolicy`` (the API
accepts them; this controller ignores them), ``ttlSecondsAfterFinished`` (its own controller).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from k8py.api.selectors import SelectorError, from_label_selector
from k8py.client.controller import Controller, Result
from k8py.client.errors import NotFoundError
from k8py.client.store import OWNER_UID_INDEX
from k8py.controllers.base import ControllerContext, parse_time, rfc3339
from k8py.controllers.podcontrol import (
    CONTROLLERLESS_INDEX,
    ControllerExpectations,
    ControllerRefManager,
    PodControl,
    controller_ref,
    index_controllerless,
    is_namespace_terminating,
    is_pod_active,
    is_pod_ready,
    is_pod_terminating,
    pod_key,
    rank_pods_for_deletion,
    recheck_deletion_timestamp,
    slow_start_batch,
)

__all__ = [
    "COMPLETION_INDEX_ANNOTATION",
    "TRACKING_FINALIZER",
    "ConditionType",
    "Intervals",
    "JobController",
    "Reason",
    "backoff_remaining",
    "is_job_finished",
    "match_pod_failure_policy",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

JOB = ("batch/v1", "Job")
POD = ("v1", "Pod")

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"  # also the label's key
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
JOB_CONTROLLER_NAME = "kubernetes.io/job-controller"  # spec.managedBy value meaning "us"

DEFAULT_BACKOFF = 10.0  # kube's DefaultJobPodFailureBackOff
MAX_BACKOFF = 360.0  # kube's MaxJobPodFailureBackOff
SYNC_BATCH_PERIOD = 1.0  # kube's syncJobBatchPeriod
MAX_UNCOUNTED_PODS = 500  # uids in status.uncountedTerminatedPods per sync (keeps the status small)
MAX_POD_CREATE_DELETE_PER_SYNC = 500
MAX_GENERATED_NAME_LENGTH = 58  # a generateName prefix leaves 5 characters of random suffix

ORPHAN_PREFIX = "pod:"  # queue keys of pods whose tracking finalizer no live Job will remove


class ConditionType(StrEnum):
    COMPLETE = "Complete"
    FAILED = "Failed"
    SUSPENDED = "Suspended"
    FAILURE_TARGET = "FailureTarget"
    SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"


class Reason(StrEnum):
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    POD_FAILURE_POLICY = "PodFailurePolicy"
    COMPLETIONS_REACHED = "CompletionsReached"


BACKOFF_LIMIT_MESSAGE = "Job has reached the specified backoff limit"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
COMPLETIONS_MESSAGE = "Reached expected number of succeeded pods"


# -- small pure helpers ----------------------------------------------------------------------------


def _ts(s: Any) -> float | None:
    t = parse_time(s) if isinstance(s, str) else None
    return t.timestamp() if t is not None else None


def _now_str(now: float) -> str:
    return rfc3339(dt.datetime.fromtimestamp(now, dt.UTC))


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _uid(obj: Obj) -> str:
    return str(_meta(obj).get("uid") or "")


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def has_tracking_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in (_meta(pod).get("finalizers") or ())


def find_condition(job: Obj, type_: str) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def _condition_true(job: Obj, type_: str) -> bool:
    c = find_condition(job, type_)
    return c is not None and c.get("status") == "True"


def is_job_finished(job: Obj) -> bool:
    """``Complete`` or ``Failed`` is True (kube's ``IsJobFinished``)."""
    return _condition_true(job, ConditionType.COMPLETE) or _condition_true(job, ConditionType.FAILED)


def is_suspended(job: Obj) -> bool:
    return (job.get("spec") or {}).get("suspend") is True


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def only_replace_failed_pods(job: Obj) -> bool:
    """podReplacementPolicy Failed (the default with a podFailurePolicy): a terminating pod is
    neither replaced nor counted failed until it reaches phase Failed."""
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    if _phase(pod) == "Failed":
        return True
    if only_replace_failed_pods(job):
        return False
    # why: a pod deleted before it could finish (evicted, node gone, deleted by hand) would
    # otherwise never be counted; kube counts it as a failure
    return bool(_meta(pod).get("deletionTimestamp")) and _phase(pod) != "Succeeded"


def completion_index(pod: Obj) -> int | None:
    v = (_meta(pod).get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION)
    if v is None:
        return None
    try:
        i = int(str(v))
    except ValueError:
        return None
    return i if i >= 0 else None


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    t = _now_str(now)
    c: Obj = {"type": type_, "status": status, "lastProbeTime": t, "lastTransitionTime": t}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def ensure_condition(job: Obj, type_: str, status: str, reason: str, message: str, now: float) -> bool:
    """Set a condition (kube's ``ensureJobConditionStatus``): a missing condition is only added
    when not False; returns whether anything changed."""
    conds = job.setdefault("status", {}).setdefault("conditions", [])
    for i, c in enumerate(conds):
        if c.get("type") == type_:
            if c.get("status") != status or c.get("reason", "") != reason or c.get("message", "") != message:
                conds[i] = new_condition(type_, status, reason, message, now)
                return True
            return False
    if status != "False":
        conds.append(new_condition(type_, status, reason, message, now))
        return True
    return False


# -- completed indexes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Intervals:
    """Ordered, disjoint, non-adjacent index ranges (kube's ``orderedIntervals``)."""

    spans: tuple[tuple[int, int], ...] = ()

    @classmethod
    def parse(cls, s: str | None, completions: int) -> Intervals:
        """``status.completedIndexes`` ("1,3-5,7"), keeping only indexes below ``completions``;
        corrupt parts are skipped, as kube does."""
        out: list[tuple[int, int]] = []
        for part in (s or "").split(","):
            if not part:
                continue
            lo_s, _, hi_s = part.partition("-")
            try:
                lo = int(lo_s)
            except ValueError:
                continue
            if lo >= completions:
                break
            if hi_s:
                try:
                    hi = int(hi_s)
                except ValueError:
                    continue
                hi = min(hi, completions - 1)
            else:
                hi = lo
            if out and out[-1][1] == lo - 1:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
        return cls(tuple(out))

    def with_indexes(self, indexes: Iterable[int]) -> Intervals:
        items = sorted([*self.spans, *((i, i) for i in indexes)])
        out: list[tuple[int, int]] = []
        for lo, hi in items:
            if out and lo <= out[-1][1] + 1:
                out[-1] = (out[-1][0], max(out[-1][1], hi))
            else:
                out.append((lo, hi))
        return Intervals(tuple(out))

    def total(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.spans)

    def has(self, ix: int) -> bool:
        return any(lo <= ix <= hi for lo, hi in self.spans)

    def __str__(self) -> str:
        parts = []
        for lo, hi in self.spans:
            if hi == lo:
                parts.append(str(lo))
            elif hi == lo + 1:
                parts.append(f"{lo},{hi}")
            else:
                parts.append(f"{lo}-{hi}")
        return ",".join(parts)


# -- pod failure policy ----------------------------------------------------------------------------


def _exit_code_matches(code: int, req: Obj) -> bool:
    values = req.get("values") or ()
    op = req.get("operator")
    if op == "In":
        return code in values
    if op == "NotIn":
        return code not in values
    return False


def _match_exit_codes(pod: Obj, req: Obj) -> Obj | None:
    st = pod.get("status") or {}
    for statuses in (st.get("containerStatuses") or (), st.get("initContainerStatuses") or ()):
        for cs in statuses:
            term = (cs.get("state") or {}).get("terminated")
            if not term:
                continue  # still running or terminating: no exit code to match
            name = req.get("containerName")
            if name is not None and name != cs.get("name"):
                continue
            code = int(term.get("exitCode") or 0)
            if code != 0 and _exit_code_matches(code, req):
                return cs
    return None


def _match_pod_conditions(pod: Obj, patterns: list[Obj]) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        for pat in patterns:
            if cond.get("type") == pat.get("type") and cond.get("status") == (pat.get("status") or "True"):
                return cond  # type: ignore[no-any-return]
    return None


def match_pod_failure_policy(pfp: Obj | None, pod: Obj) -> tuple[str | None, bool, str | None]:
    """``(FailJob message or None, counts toward backoffLimit, matched action or None)`` for a
    failed pod (kube's ``matchPodFailurePolicy``); the first matching rule wins."""
    if pfp is None:
        return None, True, None
    md = _meta(pod)
    for i, rule in enumerate(pfp.get("rules") or ()):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            cs = _match_exit_codes(pod, rule["onExitCodes"])
            if cs is None:
                continue
            if action == "Ignore":
                return None, False, action
            if action == "Count":
                return None, True, action
            if action == "FailJob":
                code = cs["state"]["terminated"].get("exitCode")
                return (f"Container {cs.get('name')} for pod {md.get('namespace')}/{md.get('name')} failed with "
                        f"exit code {code} matching FailJob rule at index {i}"), True, action
            # FailIndex needs backoffLimitPerIndex, which this controller does not do: no match
        elif rule.get("onPodConditions") is not None:
            cond = _match_pod_conditions(pod, rule["onPodConditions"])
            if cond is None:
                continue
            if action == "Ignore":
                return None, False, action
            if action == "Count":
                return None, True, action
            if action == "FailJob":
                return (f"Pod {md.get('namespace')}/{md.get('name')} has condition {cond.get('type')} matching "
                        f"FailJob rule at index {i}"), True, action
    return None, True, None


# -- backoff between retries -----------------------------------------------------------------------


def pod_finished_time(pod: Obj) -> float | None:
    """When a pod ended (kube's ``getFinishedTime``): its containers' latest finish, else its
    Ready=False transition, else its deletion time less the grace period, else its creation."""
    st = pod.get("status") or {}
    latest: float | None = None
    statuses = st.get("containerStatuses") or ()
    for cs in statuses:
        term = (cs.get("state") or {}).get("terminated")
        t = _ts((term or {}).get("finishedAt"))
        if t is None:
            latest = None
            break
        latest = t if latest is None else max(latest, t)
    if statuses and latest is not None:
        return latest
    for c in st.get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "False":
            t = _ts(c.get("lastTransitionTime"))
            if t is not None:
                return t
    md = _meta(pod)
    t = _ts(md.get("deletionTimestamp"))
    if t is not None:
        return t - float(md.get("deletionGracePeriodSeconds") or 0)
    return _ts(md.get("creationTimestamp"))


@dataclass(slots=True)
class BackoffRecord:
    failures_after_last_success: int = 0
    last_failure: float | None = None


def backoff_remaining(failures: int, last_failure: float | None, now: float, base: float,
                      cap: float) -> float:
    """Seconds until a replacement may be created after ``failures`` consecutive failures, the
    last at ``last_failure``: ``base`` doubling per failure, at most ``cap``."""
    if failures <= 0 or last_failure is None:
        return 0.0
    delay = base
    for _ in range(1, failures):
        delay *= 2
        if delay >= cap:
            delay = cap
            break
    return max(0.0, delay - (now - last_failure))


def new_backoff_record(old: BackoffRecord | None, new_succeeded: list[Obj], new_failed: list[Obj],
                       now: float) -> BackoffRecord:
    """kube's ``newBackoffRecord``: a success resets the count, failures after the last success
    add to it. Finish times are capped at ``now``, so pods timed by a clock ahead of the
    controller's never make the backoff longer than it should be."""
    rec = BackoffRecord(old.failures_after_last_success, old.last_failure) if old else BackoffRecord()

    def finished(p: Obj) -> float:
        t = pod_finished_time(p)
        return now if t is None else min(t, now)

    failed = sorted(finished(p) for p in new_failed)
    if not new_succeeded:
        if failed:
            rec.failures_after_last_success += len(failed)
            rec.last_failure = failed[-1]
        return rec
    rec.failures_after_last_success = 0
    rec.last_failure = None
    last_success = max(finished(p) for p in new_succeeded)
    for t in reversed(failed):
        if t <= last_success:
            break
        if rec.last_failure is None:
            rec.last_failure = t
        rec.failures_after_last_success += 1
    return rec


# -- pod templates ---------------------------------------------------------------------------------


def _add_index_env(template: Obj) -> None:
    spec = template.setdefault("spec", {})
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or ():
            env = c.setdefault("env", [])
            if any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                continue
            env.append({"name": COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
                "fieldPath": f"metadata.labels['{COMPLETION_INDEX_ANNOTATION}']"}}})


def generate_name_with_index(job_name: str, index: int) -> str:
    suffix = f"-{index}-"
    prefix = job_name + suffix
    if len(prefix) > MAX_GENERATED_NAME_LENGTH:
        prefix = prefix[:MAX_GENERATED_NAME_LENGTH - len(suffix)] + suffix
    return prefix


def _template_for_index(template: Obj, job_name: str, index: int) -> Obj:
    t = copy.deepcopy(template)
    md = t.setdefault("metadata", {})
    md.setdefault("annotations", {})[COMPLETION_INDEX_ANNOTATION] = str(index)
    md.setdefault("labels", {})[COMPLETION_INDEX_ANNOTATION] = str(index)
    t.setdefault("spec", {})["hostname"] = f"{job_name}-{index}"
    return t


# -- one sync --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _SyncCtx:
    key: str
    job: Obj
    pods: list[Obj]
    active_pods: list[Obj]
    ready: int
    terminating: int
    uncounted_succeeded: set[str]
    uncounted_failed: set[str]
    expected_rm_finalizers: set[str]
    now: float
    succeeded: int = 0
    failed: int = 0
    finished_condition: Obj | None = None
    succeeded_indexes: Intervals = field(default_factory=Intervals)
    prev_succeeded_indexes: Intervals = field(default_factory=Intervals)
    backoff: BackoffRecord = field(default_factory=BackoffRecord)
    requeue: list[float] = field(default_factory=list)

    @property
    def completions(self) -> int | None:
        c = (self.job.get("spec") or {}).get("completions")
        return int(c) if c is not None else None

    @property
    def status(self) -> Obj:
        return self.job.setdefault("status", {})  # type: ignore[no-any-return]


def _first_pending_indexes(sctx: _SyncCtx, count: int, completions: int) -> list[int]:
    if count <= 0:
        return []
    taken = {ix for p in sctx.active_pods if (ix := completion_index(p)) is not None}
    if only_replace_failed_pods(sctx.job):
        taken |= {ix for p in sctx.pods if is_pod_terminating(p) and (ix := completion_index(p)) is not None}
    non_pending = sctx.succeeded_indexes.with_indexes(taken)
    out: list[int] = []
    for ix in range(completions):
        if not non_pending.has(ix):
            out.append(ix)
            if len(out) == count:
                break
    return out


def _active_pods_for_removal(job: Obj, pods: list[Obj], rm_at_least: int, now: float) -> list[Obj]:
    """Pods to delete: for Indexed Jobs first those without a valid index and duplicates of an
    index (keeping the most advanced one), then the least advanced pods."""
    rm: list[Obj] = []
    left: list[Obj] = pods
    if is_indexed(job):
        completions = int((job.get("spec") or {}).get("completions") or 0)
        left = []
        by_ix: dict[int, list[Obj]] = {}
        for p in pods:
            ix = completion_index(p)
            if ix is None or ix >= completions:
                rm.append(p)
            else:
                by_ix.setdefault(ix, []).append(p)
        for group in by_ix.values():
            if len(group) == 1:
                left.append(group[0])
                continue
            ranked = rank_pods_for_deletion(group, (), now)
            rm.extend(ranked[:-1])
            left.append(ranked[-1])
    if len(rm) < rm_at_least:
        rm.extend(rank_pods_for_deletion(left, (), now)[:rm_at_least - len(rm)])
    return rm


def _past_backoff_limit_on_failure(job: Obj, pods: list[Obj]) -> bool:
    """With restartPolicy OnFailure the kubelet restarts failing containers in place: their
    restarts count against backoffLimit."""
    spec = job.get("spec") or {}
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for p in pods:
        if _phase(p) in ("Running", "Pending"):
            st = p.get("status") or {}
            for cs in (*(st.get("initContainerStatuses") or ()), *(st.get("containerStatuses") or ())):
                restarts += int(cs.get("restartCount") or 0)
    limit = int(spec.get("backoffLimit") or 0)
    return restarts > 0 if limit == 0 else restarts >= limit


def _clean_uncounted(status: Obj, uids_with_finalizer: set[str]) -> bool:
    """Move uids whose finalizer is gone from uncountedTerminatedPods into the counters."""
    unc = status.setdefault("uncountedTerminatedPods", {})
    changed = False
    for lst, counter in (("succeeded", "succeeded"), ("failed", "failed")):
        uids = unc.get(lst) or []
        keep = [u for u in uids if u in uids_with_finalizer]
        if len(keep) != len(uids):
            changed = True
            status[counter] = int(status.get(counter) or 0) + len(uids) - len(keep)
            unc[lst] = keep
    return changed


def _wire_status(job: Obj) -> Obj:
    """The job as it goes on the wire: zero counters and empty uid lists left out (omitempty)."""
    st = job.setdefault("status", {})
    for k in ("active", "succeeded", "failed"):
        if not st.get(k):
            st.pop(k, None)
    unc = st.setdefault("uncountedTerminatedPods", {})
    for k in ("succeeded", "failed"):
        if not unc.get(k):
            unc.pop(k, None)
    if not st.get("conditions"):
        st.pop("conditions", None)
    return job


# -- the controller --------------------------------------------------------------------------------


class JobController:
    NAME = "job"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        opts = ctx.options
        self.backoff_base = opts.job_backoff_base if opts.job_backoff_base is not None else DEFAULT_BACKOFF
        self.backoff_max = opts.job_backoff_max if opts.job_backoff_max is not None else MAX_BACKOFF
        self.batch_period = (opts.job_sync_batch_period if opts.job_sync_batch_period is not None
                             else SYNC_BATCH_PERIOD)
        self.jobs = ctx.factory.informer(JOB)
        self.pods = ctx.factory.informer(POD)
        index_controllerless(self.pods)
        self.pod_control = PodControl(ctx.client, ctx.record)
        self.expectations = ControllerExpectations(ctx.clock)
        # job key -> uids whose finalizer removal was sent but not yet seen in the informer
        self.finalizer_expectations: dict[str, set[str]] = {}
        self.backoff: dict[str, BackoffRecord] = {}
        # job key -> resourceVersion of our last status write (see reconcile)
        self.written: dict[str, int] = {}
        # keys come from the handlers below
        self.controller = Controller("job", self.reconcile, workers=opts.workers or 5, clock=ctx.clock,
                                     wait_for=(self.jobs, self.pods))
        self.jobs.add_handler(self._job_added, self._job_updated, self._job_deleted)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # -- event handlers (they only enqueue, and count expectations) -------------------------------

    def _enqueue(self, job: Obj, delay: float = 0.0) -> None:
        md = _meta(job)
        key = f"{md.get('namespace')}/{md.get('name')}"
        if delay > 0:
            self.controller.queue.add_after(key, delay)
        else:
            self.controller.queue.add(key)

    def _enqueue_orphan(self, pod: Obj) -> None:
        self.controller.queue.add(ORPHAN_PREFIX + pod_key(pod))

    def _resolve(self, pod: Obj, ref: Obj | None) -> Obj | None:
        """The Job a pod's controller reference names, if it is in the cache with that uid."""
        if ref is None or ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
            return None
        job = self.jobs.get(str(ref.get("name") or ""), _meta(pod).get("namespace"))
        if job is None or _uid(job) != ref.get("uid"):
            return None
        return job

    def _jobs_matching(self, pod: Obj) -> list[Obj]:
        labels = _meta(pod).get("labels") or {}
        out = []
        for job in self.jobs.list(_meta(pod).get("namespace")):
            try:
                if from_label_selector((job.get("spec") or {}).get("selector")).matches(labels):
                    out.append(job)
            except SelectorError:
                continue
        return out

    def _job_key(self, job: Obj) -> str:
        md = _meta(job)
        return f"{md.get('namespace')}/{md.get('name')}"

    def _pod_added(self, pod: Obj) -> None:
        if _meta(pod).get("deletionTimestamp"):
            # why: after a restart a pod may first show up already being deleted; it must not
            # count as one of our creations
            self._pod_deleted(pod, final=False)
            return
        ref = controller_ref(pod)
        if ref is not None:
            job = self._resolve(pod, ref)
            if job is None:
                if has_tracking_finalizer(pod):
                    self._enqueue_orphan(pod)
                return
            self.expectations.creation_observed(self._job_key(job))
            self._enqueue(job, self.batch_period)
            return
        if has_tracking_finalizer(pod):
            self._enqueue_orphan(pod)
        for job in self._jobs_matching(pod):  # an orphan: someone may adopt it
            self._enqueue(job, self.batch_period)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old is cur or _meta(old).get("resourceVersion") == _meta(cur).get("resourceVersion"):
            return
        if _meta(cur).get("deletionTimestamp"):
            # why: a graceful delete first sets deletionTimestamp; the Job may replace the pod now
            # rather than when the kubelet finally removes it
            self._pod_deleted(cur, final=False)
            old_ref, cur_ref = controller_ref(old), controller_ref(cur)
            moved = old_ref is not None and (cur_ref is None or old_ref.get("uid") != cur_ref.get("uid"))
            if moved and (old_job := self._resolve(old, old_ref)) is not None:
                self._enqueue(old_job, self.batch_period)
            return
        finalizer_removed = has_tracking_finalizer(old) and not has_tracking_finalizer(cur)
        old_ref, cur_ref = controller_ref(old), controller_ref(cur)
        ref_changed = (old_ref or {}).get("uid") != (cur_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            old_job = self._resolve(old, old_ref)
            if old_job is not None:
                if finalizer_removed:
                    self._finalizer_removal_observed(self._job_key(old_job), _uid(old))
                self._enqueue(old_job, self.batch_period)
        if cur_ref is not None:
            job = self._resolve(cur, cur_ref)
            if job is None:
                if has_tracking_finalizer(cur):
                    self._enqueue_orphan(cur)
                return
            if finalizer_removed:
                self._finalizer_removal_observed(self._job_key(job), _uid(cur))
            self._enqueue(job, self.batch_period)
            return
        if has_tracking_finalizer(cur):
            self._enqueue_orphan(cur)
        if ref_changed or (_meta(old).get("labels") != _meta(cur).get("labels")):
            for job in self._jobs_matching(cur):
                self._enqueue(job, self.batch_period)

    def _pod_deleted(self, pod: Obj, final: bool = True) -> None:
        ref = controller_ref(pod)
        finalizer = has_tracking_finalizer(pod)
        if ref is None:
            if finalizer and not final:
                self._enqueue_orphan(pod)
            return
        job = self._resolve(pod, ref)
        if job is None or is_job_finished(job):
            if finalizer and not final:
                self._enqueue_orphan(pod)  # no sync of a live Job will remove its finalizer
            return
        key = self._job_key(job)
        self.expectations.deletion_observed(key, pod_key(pod))
        if final or not finalizer:
            self._finalizer_removal_observed(key, _uid(pod))
        self._enqueue(job, self.batch_period)

    def _finalizer_removal_observed(self, key: str, uid: str) -> None:
        exp = self.finalizer_expectations.get(key)
        if exp is not None:
            exp.discard(uid)

    def _job_added(self, job: Obj) -> None:
        self._enqueue(job)

    def _job_updated(self, old: Obj, cur: Obj) -> None:
        if old is not cur and _meta(old).get("generation") != _meta(cur).get("generation"):
            self._enqueue(cur)  # spec changed: now
        else:
            self._enqueue(cur, self.batch_period)  # our own status writes, mostly: batched
        if is_job_finished(cur):
            # why: a finished Job is never synced again; a pod whose finalizer is still there
            # (a removal that failed, a pod created late) must not stay undeletable
            self._cleanup_pod_finalizers(cur)

    def _job_deleted(self, job: Obj) -> None:
        self._enqueue(job)
        self._cleanup_pod_finalizers(job)

    def _cleanup_pod_finalizers(self, job: Obj) -> None:
        for pod in self.pods.store.by_index(OWNER_UID_INDEX, _uid(job)):
            if has_tracking_finalizer(pod):
                self._enqueue_orphan(pod)

    # -- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        if key.startswith(ORPHAN_PREFIX):
            await self._sync_orphan_pod(key[len(ORPHAN_PREFIX):])
            return None
        ns, _, name = key.partition("/")
        shared = self.jobs.get(name, ns)
        if shared is None:
            self.expectations.delete(key)
            self.finalizer_expectations.pop(key, None)
            self.backoff.pop(key, None)
            self.written.pop(key, None)
            return None
        rv = _int_rv(shared)
        if rv is not None and rv < self.written.get(key, 0):
            # why: the cache has not caught up with our own last status write, so this sync
            # could only end in a conflict; the watch event of that write enqueues the Job again
            return None
        managed_by = (shared.get("spec") or {}).get("managedBy")
        if managed_by is not None and managed_by != JOB_CONTROLLER_NAME:
            return None  # another controller runs this Job
        job = copy.deepcopy(shared)
        if is_job_finished(job):
            self.backoff.pop(key, None)
            return None
        mode = (job.get("spec") or {}).get("completionMode")
        if mode not in (None, "NonIndexed", "Indexed"):
            self.ctx.record(job, "Warning", "UnknownCompletionMode",
                            "Skipped Job sync because completion mode is unknown")
            return None
        try:
            return await self._sync(key, job)
        except NotFoundError as e:
            if e.details.get("kind") == "jobs" and e.details.get("name") == name:
                log.debug("job %s was deleted during its sync", key)
                return None  # its delete event brings the key back, to a Job that is gone
            raise

    async def _sync(self, key: str, job: Obj) -> Result | None:
        now = self.clock.wall()
        spec = job.setdefault("spec", {})
        status = job.setdefault("status", {})
        unc = status.setdefault("uncountedTerminatedPods", {})
        # why before listing pods: a pod created after this check but before the list would
        # otherwise look like a missing creation
        satisfied = self.expectations.satisfied(key)
        pods = await self._pods_for_job(job)
        active_pods = [p for p in pods if is_pod_active(p)]
        sctx = _SyncCtx(
            key=key, job=job, pods=pods, active_pods=active_pods,
            ready=sum(1 for p in active_pods if is_pod_ready(p)),
            terminating=sum(1 for p in pods if is_pod_terminating(p)),
            uncounted_succeeded=set(unc.get("succeeded") or ()), uncounted_failed=set(unc.get("failed") or ()),
            expected_rm_finalizers=set(self.finalizer_expectations.get(key, ())), now=now)
        active = len(active_pods)
        new_succeeded, new_failed = self._new_finished_pods(sctx)
        sctx.succeeded = int(status.get("succeeded") or 0) + len(new_succeeded) + len(sctx.uncounted_succeeded)
        pfp = spec.get("podFailurePolicy")
        counted_failed = sum(1 for p in new_failed if match_pod_failure_policy(pfp, p)[1])
        sctx.failed = int(status.get("failed") or 0) + counted_failed + len(sctx.uncounted_failed)

        if status.get("startTime") is None and not is_suspended(job):
            status["startTime"] = _now_str(now)  # first start (not while suspended)

        sctx.backoff = new_backoff_record(self.backoff.get(key), new_succeeded, new_failed, now)

        # -- does it finish? --
        scm = find_condition(job, ConditionType.SUCCESS_CRITERIA_MET)
        if scm is not None and scm.get("status") == "True":
            sctx.finished_condition = dict(scm)
        if sctx.finished_condition is None:
            ft = find_condition(job, ConditionType.FAILURE_TARGET)
            if ft is not None and ft.get("status") == "True":
                sctx.finished_condition = new_condition(ConditionType.FAILED, "True", ft.get("reason", ""),
                                                        ft.get("message", ""), now)
            elif (msg := self._fail_job_message(job, pods)) is not None:
                sctx.finished_condition = new_condition(ConditionType.FAILURE_TARGET, "True",
                                                        Reason.POD_FAILURE_POLICY, msg, now)
        if sctx.finished_condition is None:
            if sctx.failed > int(spec.get("backoffLimit") or 0) or _past_backoff_limit_on_failure(job, pods):
                sctx.finished_condition = new_condition(ConditionType.FAILURE_TARGET, "True",
                                                        Reason.BACKOFF_LIMIT_EXCEEDED, BACKOFF_LIMIT_MESSAGE, now)
            elif self._past_active_deadline(job, now):
                sctx.finished_condition = new_condition(ConditionType.FAILURE_TARGET, "True",
                                                        Reason.DEADLINE_EXCEEDED, DEADLINE_MESSAGE, now)
            elif spec.get("activeDeadlineSeconds") is not None and not is_suspended(job):
                start = _ts(status.get("startTime"))
                if start is not None:
                    sctx.requeue.append(start + float(spec["activeDeadlineSeconds"]) - now)

        if is_indexed(job):
            n = sctx.completions or 0
            prev = Intervals.parse(status.get("completedIndexes"), n)
            new = {ix for p in pods if _phase(p) == "Succeeded" and has_tracking_finalizer(p)
                   and (ix := completion_index(p)) is not None and ix < n}
            sctx.prev_succeeded_indexes, sctx.succeeded_indexes = prev, prev.with_indexes(new)
            sctx.succeeded = sctx.succeeded_indexes.total()

        suspend_changed = False
        manage_err: Exception | None = None
        if sctx.finished_condition is not None:
            # finishing: every pod still running goes (finalizers kept, so each is counted)
            deleted_ready, deleted, manage_err = await self._delete_active_pods(job, sctx.active_pods)
            if deleted != active or not satisfied:
                # why: pods we cannot see yet or could not delete still hold finalizers; the
                # Job is declared finished only when none is left to count
                sctx.finished_condition = None
            active -= deleted
            sctx.terminating += deleted
            sctx.ready -= deleted_ready
        else:
            manage_called = False
            if satisfied and not _meta(job).get("deletionTimestamp"):
                active, manage_err = await self._manage(sctx)
                manage_called = True
            if (completions := sctx.completions) is None:
                # a work queue: done once any pod succeeded and the others have ended
                complete = sctx.succeeded > 0 and active == 0
            else:
                complete = sctx.succeeded >= completions and active == 0
            if complete:
                sctx.finished_condition = new_condition(ConditionType.SUCCESS_CRITERIA_MET, "True",
                                                        Reason.COMPLETIONS_REACHED, COMPLETIONS_MESSAGE, now)
            elif manage_called:
                if is_suspended(job):
                    if ensure_condition(job, ConditionType.SUSPENDED, "True", "JobSuspended", "Job suspended", now):
                        suspend_changed = True
                        self.ctx.record(job, "Normal", "Suspended", "Job suspended")
                elif ensure_condition(job, ConditionType.SUSPENDED, "False", "JobResumed", "Job resumed", now):
                    suspend_changed = True
                    self.ctx.record(job, "Normal", "Resumed", "Job resumed")
                    # why: activeDeadlineSeconds counts time continuously active, so the clock
                    # restarts on resume (as for a Job created suspended)
                    status["startTime"] = _now_str(now)

        needs_update = (suspend_changed or active != int(status.get("active") or 0)
                        or sctx.ready != status.get("ready") or sctx.terminating != status.get("terminating"))
        status["active"] = active
        status["ready"] = sctx.ready
        status["terminating"] = sctx.terminating
        await self._track_status_and_remove_finalizers(sctx, needs_update)
        if manage_err is not None:
            raise manage_err
        waits = [w for w in sctx.requeue if w > 0]
        if any(w <= 0 for w in sctx.requeue):
            waits.append(0.001)
        return Result(requeue_after=min(waits)) if waits else None

    def _past_active_deadline(self, job: Obj, now: float) -> bool:
        ads = (job.get("spec") or {}).get("activeDeadlineSeconds")
        start = _ts((job.get("status") or {}).get("startTime"))
        if ads is None or start is None or is_suspended(job):
            return False
        return now - start >= float(ads)

    def _fail_job_message(self, job: Obj, pods: list[Obj]) -> str | None:
        pfp = (job.get("spec") or {}).get("podFailurePolicy")
        if pfp is None:
            return None
        for p in pods:
            if is_pod_failed(p, job):
                msg = match_pod_failure_policy(pfp, p)[0]
                if msg is not None:
                    return msg
        return None

    def _valid_uncounted(self, sctx: _SyncCtx, pod: Obj, uncounted: set[str]) -> bool:
        uid = _uid(pod)
        if not has_tracking_finalizer(pod) or uid in uncounted or uid in sctx.expected_rm_finalizers:
            return False  # counted already, or on its way
        if is_indexed(sctx.job):
            ix = completion_index(pod)
            if ix is None or ix >= (sctx.completions or 0):
                return False
        return True

    def _new_finished_pods(self, sctx: _SyncCtx) -> tuple[list[Obj], list[Obj]]:
        succeeded = [p for p in sctx.pods
                     if self._valid_uncounted(sctx, p, sctx.uncounted_succeeded) and _phase(p) == "Succeeded"]
        failed = [p for p in sctx.pods
                  if self._valid_uncounted(sctx, p, sctx.uncounted_failed) and is_pod_failed(p, sctx.job)]
        return succeeded, failed

    # -- pods of a job -----------------------------------------------------------------------------

    async def _pods_for_job(self, job: Obj) -> list[Obj]:
        """The Job's pods: the ones it controls and still selects, plus matching orphans it
        adopts (with the tracking finalizer); controlled pods that stopped matching are released."""
        md = _meta(job)
        ns = str(md.get("namespace") or "")
        try:
            selector = from_label_selector((job.get("spec") or {}).get("selector"))
        except SelectorError as e:
            raise ValueError(f"couldn't convert Job selector: {e}") from e
        uid = _uid(job)
        candidates = {pod_key(p): p for p in self.pods.store.by_index(OWNER_UID_INDEX, uid)}
        for p in self.pods.store.by_index(CONTROLLERLESS_INDEX, ns):
            candidates.setdefault(pod_key(p), p)

        async def fresh() -> Obj:
            return await self.client.get(JOB, str(md.get("name")), ns)

        async def patch(pod: Obj, body: Obj) -> Obj:
            pmd = body.get("metadata") or {}
            if any(isinstance(r, dict) and "$patch" not in r for r in pmd.get("ownerReferences") or ()):
                # adoption: the pod is tracked from now on, so it gets the finalizer too
                pmd["finalizers"] = [TRACKING_FINALIZER]
            return await self.pod_control.patch_pod(pod, body)

        manager = ControllerRefManager(job, selector, "batch/v1", "Job", patch=patch,
                                       can_adopt=recheck_deletion_timestamp(fresh, uid))
        claimed, errors = await manager.claim(candidates.values())
        out = []
        for p in claimed:
            if not any(r.get("uid") == uid for r in _meta(p).get("ownerReferences") or ()):
                # just adopted: count it as the tracked pod it now is
                p = copy.deepcopy(p)
                p["metadata"].setdefault("finalizers", []).append(TRACKING_FINALIZER)
            out.append(p)
        if errors:
            raise errors[0]
        return out

    async def _sync_orphan_pod(self, key: str) -> None:
        """Remove the tracking finalizer from a pod no live Job will count (its Job is gone or
        finished, or it lost its controller)."""
        ns, _, name = key.partition("/")
        pod = self.pods.get(name, ns)
        if pod is None or not has_tracking_finalizer(pod):
            return
        ref = controller_ref(pod)
        if ref is not None:
            if ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
                return  # not a Job's pod: not ours to touch
            job = self._resolve(pod, ref)
            if job is not None:
                managed_by = (job.get("spec") or {}).get("managedBy")
                if managed_by is not None and managed_by != JOB_CONTROLLER_NAME:
                    return
                if not is_job_finished(job):
                    return  # adopted meanwhile: the Job's sync handles it
        try:
            await self.pod_control.patch_pod(pod, _remove_finalizer_patch())
        except NotFoundError:
            pass

    # -- creating and deleting pods ----------------------------------------------------------------

    async def _manage(self, sctx: _SyncCtx) -> tuple[int, Exception | None]:
        """Create or delete pods toward the wanted number of active ones (kube's ``manageJob``):
        either deletions or creations in one sync, never both."""
        job, key = sctx.job, sctx.key
        spec = job.get("spec") or {}
        active = len(sctx.active_pods)
        parallelism = int(spec.get("parallelism") or 0)
        if is_suspended(job):
            to_delete = _active_pods_for_removal(job, sctx.active_pods, active, sctx.now)
            self.expectations.expect_deletions(key, [pod_key(p) for p in to_delete])
            removed_ready, removed, err = await self._delete_job_pods(job, key, to_delete)
            sctx.terminating += removed
            sctx.ready -= removed_ready
            return active - removed, err
        completions = sctx.completions
        if completions is None:
            # a work queue: once one pod succeeded, no new ones; the running ones finish
            want = active if sctx.succeeded > 0 else parallelism
        else:
            want = max(0, min(completions - sctx.succeeded, parallelism))
        rm_at_least = max(0, active - want)
        to_delete = _active_pods_for_removal(job, sctx.active_pods, rm_at_least, sctx.now)
        to_delete = to_delete[:MAX_POD_CREATE_DELETE_PER_SYNC]
        if to_delete:
            self.expectations.expect_deletions(key, [pod_key(p) for p in to_delete])
            removed_ready, removed, err = await self._delete_job_pods(job, key, to_delete)
            sctx.terminating += removed
            sctx.ready -= removed_ready
            return active - removed, err
        terminating = sctx.terminating if only_replace_failed_pods(job) else 0
        diff = want - terminating - active
        if diff <= 0:
            return active, None
        remaining = backoff_remaining(sctx.backoff.failures_after_last_success, sctx.backoff.last_failure,
                                      sctx.now, self.backoff_base, self.backoff_max)
        if remaining > 0:
            # why: kube reports active 0 here; the pods that run are still active, so we don't
            sctx.requeue.append(max(remaining, self.batch_period))
            return active, None
        diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
        indexes: list[int] = []
        if is_indexed(job):
            indexes = _first_pending_indexes(sctx, diff, completions or 0)
            diff = len(indexes)
            if diff == 0:
                return active, None
        template = copy.deepcopy(spec.get("template") or {})
        if is_indexed(job):
            _add_index_env(template)
        tmd = template.setdefault("metadata", {})
        fins = tmd.setdefault("finalizers", [])
        if TRACKING_FINALIZER not in fins:
            fins.append(TRACKING_FINALIZER)
        name = str(_meta(job).get("name") or "")
        self.expectations.expect_creations(key, diff)
        pending = iter(indexes)
        attempted = 0

        async def create(ix: int | None) -> None:
            nonlocal attempted
            attempted += 1
            t, gen = template, None
            if ix is not None:
                t, gen = _template_for_index(template, name, ix), generate_name_with_index(name, ix)
            try:
                await self.pod_control.create_pod(str(_meta(job).get("namespace")), t, job, generate_name=gen)
            except Exception:
                # the informer will never see this pod: stop expecting it
                self.expectations.creation_observed(key)
                raise

        successes, err = await slow_start_batch(diff, 1, lambda: create(next(pending, None)))
        skipped = diff - attempted
        if skipped > 0:
            # slow start stopped after a failed batch: these were never tried
            self.expectations.lower(key, add=skipped)
        if err is not None and is_namespace_terminating(err):
            err = None  # the namespace is going away; nothing to retry
        return active + successes, err

    async def _delete_job_pods(self, job: Obj, key: str, pods: list[Obj]) -> tuple[int, int, Exception | None]:
        """Delete pods that will not be counted (suspend, too many): finalizer off first."""
        async def one(pod: Obj) -> bool:
            try:
                if has_tracking_finalizer(pod):
                    await self.pod_control.patch_pod(pod, _remove_finalizer_patch())
                await self.pod_control.delete_pod(str(_meta(job).get("namespace")), _meta(pod)["name"], job)
            except NotFoundError:
                self.expectations.deletion_observed(key, pod_key(pod))
                return True
            except Exception:
                self.expectations.deletion_observed(key, pod_key(pod))
                raise
            return True

        return await self._delete_all(pods, one)

    async def _delete_active_pods(self, job: Obj, pods: list[Obj]) -> tuple[int, int, Exception | None]:
        """Delete the pods of a finishing Job, keeping their finalizers: they are counted
        (as failed) before they may go."""
        async def one(pod: Obj) -> bool:
            try:
                await self.pod_control.delete_pod(str(_meta(job).get("namespace")), _meta(pod)["name"], job)
            except NotFoundError:
                pass
            return True

        return await self._delete_all(pods, one)

    @staticmethod
    async def _delete_all(pods: list[Obj], one: Any) -> tuple[int, int, Exception | None]:
        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        deleted = deleted_ready = 0
        err: Exception | None = None
        for pod, r in zip(pods, results, strict=True):
            if isinstance(r, BaseException):
                if not isinstance(r, Exception):
                    raise r
                err = err or r
                continue
            deleted += 1
            if is_pod_ready(pod):
                deleted_ready += 1
        return deleted_ready, deleted, err

    # -- status and finalizers ---------------------------------------------------------------------

    def _can_remove_finalizer(self, sctx: _SyncCtx, pod: Obj, failed: bool) -> bool:
        if _meta(sctx.job).get("deletionTimestamp") or sctx.finished_condition is not None:
            return True
        return _phase(pod) == "Succeeded" or failed

    async def _track_status_and_remove_finalizers(self, sctx: _SyncCtx, needs_flush: bool) -> None:
        """Count finished pods (uids into uncountedTerminatedPods, then finalizers off, then into
        the counters) and add the finished conditions once everything is counted."""
        job = sctx.job
        indexed = is_indexed(job)
        completions = sctx.completions or 0
        pfp = (job.get("spec") or {}).get("podFailurePolicy")
        pods = sorted(sctx.pods, key=lambda p: completion_index(p) or -1) if indexed else sctx.pods
        uids_with_finalizer = {_uid(p) for p in pods
                               if has_tracking_finalizer(p) and _uid(p) not in sctx.expected_rm_finalizers}
        status = sctx.status
        old_counters = (status.get("succeeded"), status.get("failed"), status.get("completedIndexes"))
        if _clean_uncounted(status, uids_with_finalizer):
            needs_flush = True
        unc = status["uncountedTerminatedPods"]
        unc_succeeded: list[str] = unc.setdefault("succeeded", [])
        unc_failed: list[str] = unc.setdefault("failed", [])
        to_remove: list[Obj] = []
        new_indexes: list[int] = []
        reached_max = False
        for pod in pods:
            uid = _uid(pod)
            if not has_tracking_finalizer(pod) or uid in sctx.expected_rm_finalizers:
                continue  # done in an earlier sync
            failed = is_pod_failed(pod, job)
            if not self._can_remove_finalizer(sctx, pod, failed):
                continue
            to_remove.append(pod)
            fc = sctx.finished_condition
            if _phase(pod) == "Succeeded" and uid not in sctx.uncounted_failed:
                if indexed:
                    # the index is enough to never count a success twice: no uid needed
                    ix = completion_index(pod)
                    if ix is not None and ix < completions and not sctx.prev_succeeded_indexes.has(ix):
                        new_indexes.append(ix)
                        needs_flush = True
                elif uid not in sctx.uncounted_succeeded:
                    unc_succeeded.append(uid)
                    needs_flush = True
            elif failed or (fc is not None and fc["type"] != ConditionType.SUCCESS_CRITERIA_MET):
                # once the Job fails, every pod not yet ended counts as failed
                ix = completion_index(pod)
                valid = not indexed or (ix is not None and ix < completions)
                if uid not in sctx.uncounted_failed and valid and match_pod_failure_policy(pfp, pod)[1]:
                    unc_failed.append(uid)
                    needs_flush = True
            if len(new_indexes) + len(unc_succeeded) + len(unc_failed) >= MAX_UNCOUNTED_PODS:
                # why: keeps the status small and lets other Jobs have a turn; the status write
                # brings this Job back for the rest
                reached_max = True
                break
        if indexed:
            sctx.succeeded_indexes = sctx.succeeded_indexes.with_indexes(new_indexes)
            s = str(sctx.succeeded_indexes)
            if s != (status.get("completedIndexes") or ""):
                needs_flush = True
            status["succeeded"] = sctx.succeeded_indexes.total()
            status["completedIndexes"] = s
        fc = sctx.finished_condition
        if fc is not None and fc["type"] == ConditionType.FAILURE_TARGET:
            # the interim condition first, with the reason, before any finalizer goes
            status.setdefault("conditions", []).append(fc)
            needs_flush = True
            sctx.finished_condition = new_condition(ConditionType.FAILED, "True", fc.get("reason", ""),
                                                    fc.get("message", ""), sctx.now)
        elif fc is not None and fc["type"] == ConditionType.SUCCESS_CRITERIA_MET:
            if not _condition_true(job, ConditionType.SUCCESS_CRITERIA_MET):
                status.setdefault("conditions", []).append(fc)
                needs_flush = True
            sctx.finished_condition = new_condition(ConditionType.COMPLETE, "True", fc.get("reason", ""),
                                                    fc.get("message", ""), sctx.now)
        needs_flush = await self._flush_uncounted_and_remove_finalizers(sctx, to_remove, uids_with_finalizer,
                                                                        needs_flush)
        finished = not reached_max and self._enact_job_finished(sctx)
        if finished or needs_flush:
            sctx.job = await self._update_status(sctx.job)
            if finished:
                self._record_finished(sctx.job, sctx.finished_condition)
        new_counters = (sctx.status.get("succeeded"), sctx.status.get("failed"), sctx.status.get("completedIndexes"))
        if new_counters != old_counters:
            log.debug("job %s: succeeded %s failed %s", sctx.key, new_counters[0], new_counters[1])

    async def _flush_uncounted_and_remove_finalizers(self, sctx: _SyncCtx, to_remove: list[Obj],
                                                     uids_with_finalizer: set[str], needs_flush: bool) -> bool:
        if needs_flush:
            sctx.job = await self._update_status(sctx.job)
            # why only now: the backoff record may advance only once the failures it counts
            # are written down
            self.backoff[sctx.key] = sctx.backoff
            needs_flush = False
        rm_err: Exception | None = None
        if to_remove:
            ok, rm_err = await self._remove_tracking_finalizers(sctx.key, to_remove)
            for pod, done in zip(to_remove, ok, strict=True):
                if done:
                    uids_with_finalizer.discard(_uid(pod))
        if _clean_uncounted(sctx.status, uids_with_finalizer):
            needs_flush = True
        if rm_err is not None:
            if needs_flush:
                sctx.job = await self._update_status(sctx.job)  # keep the partial progress
            raise rm_err
        return needs_flush

    async def _remove_tracking_finalizers(self, key: str, pods: list[Obj]) -> tuple[list[bool], Exception | None]:
        exp = self.finalizer_expectations.setdefault(key, set())
        exp.update(_uid(p) for p in pods)

        async def one(pod: Obj) -> None:
            try:
                await self.pod_control.patch_pod(pod, _remove_finalizer_patch())
            except NotFoundError:
                exp.discard(_uid(pod))  # gone: as good as removed
            except Exception:
                exp.discard(_uid(pod))  # no update will show it removed
                raise

        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        ok: list[bool] = []
        err: Exception | None = None
        for r in results:
            if isinstance(r, BaseException):
                if not isinstance(r, Exception):
                    raise r
                err = err or r
                ok.append(False)
            else:
                ok.append(True)
        return ok, err

    def _enact_job_finished(self, sctx: _SyncCtx) -> bool:
        fc = sctx.finished_condition
        if fc is None:
            return False
        unc = sctx.status.get("uncountedTerminatedPods") or {}
        if unc.get("succeeded") or unc.get("failed"):
            return False  # not everything counted yet
        if sctx.terminating > 0:
            return False  # pods still shutting down: the Job is not over until they are
        ensure_condition(sctx.job, fc["type"], fc["status"], fc.get("reason", ""), fc.get("message", ""), sctx.now)
        if fc["type"] == ConditionType.COMPLETE:
            sctx.status["completionTime"] = _now_str(sctx.now)
        return True

    def _record_finished(self, job: Obj, fc: Obj | None) -> None:
        if fc is None:
            return
        if fc["type"] == ConditionType.COMPLETE:
            completions = (job.get("spec") or {}).get("completions")
            if completions is not None and int((job.get("status") or {}).get("succeeded") or 0) > completions:
                self.ctx.record(job, "Warning", "TooManySucceededPods",
                                "Too many succeeded pods running after completion count reached")
            self.ctx.record(job, "Normal", "Completed", "Job completed")
        else:
            self.ctx.record(job, "Warning", fc.get("reason", ""), fc.get("message", ""))

    async def _update_status(self, job: Obj) -> Obj:
        md = _meta(job)
        out = await self.client.update_status(JOB, _wire_status(job), md.get("namespace"))
        out.setdefault("apiVersion", "batch/v1")
        out.setdefault("kind", "Job")
        st = out.setdefault("status", {})
        st.setdefault("uncountedTerminatedPods", {})
        if (rv := _int_rv(out)) is not None:
            self.written[f"{md.get('namespace')}/{md.get('name')}"] = rv
        return out


def _int_rv(obj: Obj) -> int | None:
    """The resourceVersion as a number: k8py's are store revisions, ordered in time."""
    rv = str(_meta(obj).get("resourceVersion") or "")
    return int(rv) if rv.isdigit() else None


def _remove_finalizer_patch() -> Obj:
    return {"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}}
