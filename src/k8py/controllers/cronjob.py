"""The CronJob controller: creates Jobs on a cron schedule, as kube's ``cronjob_controllerv2.go``.

One level-based ``reconcile(namespace/name)`` that ends by asking to be called again at the
next scheduled time (``Result(requeue_after=...)``), so nothing polls:

- ``schedule`` is standard cron (``@hourly``-style macros, ``@every``), read in ``timeZone``
  (UTC without one) by :mod:`k8py.api.validation.cron`;
- each run is a Job named ``<cronjob>-<scheduled time in minutes since the epoch>`` (the name
  is the lock against creating one run twice), controlled by the CronJob, annotated
  ``batch.kubernetes.io/cronjob-scheduled-timestamp``;
- after downtime only the most recent missed time runs (at most one catch-up), a
  ``TooManyMissedTimes`` warning when more than 100 were missed; ``startingDeadlineSeconds``
  drops times that are too old;
- ``concurrencyPolicy`` Allow / Forbid (skip while a run is active) / Replace (delete the
  active runs first); ``suspend`` stops new runs;
- finished Jobs beyond ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` are deleted,
  oldest first; ``status.active``, ``lastScheduleTime``, ``lastSuccessfulTime`` are kept.

Every time comes from ``ctx.clock.wall()``, so tests drive schedules with a FakeClock.
Jobs made by ``kubectl create job --from=cronjob/NAME`` are controlled by the CronJob too; as in
kube they are not counted as its active runs (an ``UnexpectedJob`` event says so) but are
cleaned up with its history.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import zoneinfo
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from k8py.api.validation.cron import CronError, CronSchedule, load_location_error, parse_schedule
from k8py.client.controller import Controller, Result
from k8py.client.errors import AlreadyExistsError, ApiError, NotFoundError
from k8py.client.store import OWNER_UID_INDEX
from k8py.controllers.base import ControllerContext, parse_time, rfc3339
from k8py.controllers.podcontrol import (
    controller_ref,
    error_message,
    is_namespace_terminating,
    new_controller_ref,
)

__all__ = [
    "SCHEDULED_TIMESTAMP_ANNOTATION",
    "CronJobController",
    "Missed",
    "job_from_template",
    "job_name",
    "most_recent_schedule_time",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

CRONJOB = ("batch/v1", "CronJob")
JOB = ("batch/v1", "Job")
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# Look again this long after the scheduled time, so the clock is surely past it.
NEXT_SCHEDULE_DELTA = 0.1
TOO_MANY_MISSED = 100


class Missed(IntEnum):
    NONE = 0
    FEW = 1
    MANY = 2


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _time(s: Any) -> dt.datetime | None:
    return parse_time(s) if isinstance(s, str) else None


def _rfc3339_in(t: dt.datetime, tz: dt.tzinfo) -> str:
    """Go's ``t.In(tz).Format(time.RFC3339)``: "Z" for a zero offset, else +hh:mm."""
    lt = t.astimezone(tz)
    off = lt.utcoffset() or dt.timedelta(0)
    if not off:
        return lt.strftime("%Y-%m-%dT%H:%M:%SZ")
    secs = int(off.total_seconds())
    sign = "+" if secs >= 0 else "-"
    secs = abs(secs)
    return lt.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{secs // 3600:02d}:{secs % 3600 // 60:02d}"


def _rfc1123z(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def job_finished_condition(job: Obj) -> str | None:
    """``Complete`` or ``Failed`` when that condition is True, else None."""
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def job_name(cronjob: Obj, scheduled: dt.datetime) -> str:
    return f"{_meta(cronjob).get('name')}-{int(scheduled.timestamp()) // 60}"


def format_schedule(cj: Obj) -> tuple[str, bool]:
    """The schedule to parse, with ``timeZone`` as a ``TZ=`` prefix; True when the schedule
    itself carries TZ (which kube warns is not supported)."""
    spec = cj.get("spec") or {}
    sched = str(spec.get("schedule") or "")
    if "TZ" in sched:
        return sched, True
    tz = spec.get("timeZone")
    if tz is not None and load_location_error(tz) is None:
        return f"TZ={tz} {sched}", False
    return sched, False


def most_recent_schedule_time(cj: Obj, now: dt.datetime, sched: CronSchedule,
                              include_starting_deadline: bool) -> tuple[dt.datetime, dt.datetime | None, Missed]:
    """``(earliest, most recent unmet scheduled time or None, how many were missed)``, as kube's
    ``mostRecentScheduleTime``: counted from the last scheduled time (or the CronJob's creation),
    no further back than ``startingDeadlineSeconds`` when asked. Raises ValueError for a
    schedule whose runs are under a second apart or that never fires."""
    md, st, spec = _meta(cj), cj.get("status") or {}, cj.get("spec") or {}
    earliest = _time(st.get("lastScheduleTime")) or _time(md.get("creationTimestamp")) or now
    sds = spec.get("startingDeadlineSeconds")
    if include_starting_deadline and sds is not None:
        deadline = now - dt.timedelta(seconds=int(sds))
        earliest = max(earliest, deadline)
    t1 = sched.next(earliest)
    if t1 is None:
        raise ValueError("the schedule has no next time in the next five years")
    if now < t1:
        return earliest, None, Missed.NONE
    t2 = sched.next(t1)
    if t2 is None or now < t2:
        return earliest, t1, Missed.NONE
    between = round((t2 - t1).total_seconds())
    if between < 1:
        raise ValueError("time difference between two schedules is less than 1 second")
    # A rough count of the runs missed since t1 (kube's approximation: the first gap times n),
    # then the exact most recent one, found by stepping from just before the estimate.
    elapsed = int((now - t1).total_seconds())
    missed = elapsed // between + 1
    t = sched.next(t1 + dt.timedelta(seconds=(missed - 2) * between))
    most_recent: dt.datetime | None = None
    while t is not None and t <= now:
        most_recent = t
        t = sched.next(t)
    kind = Missed.MANY if missed > TOO_MANY_MISSED else Missed.FEW if missed > 1 else Missed.NONE
    return earliest, most_recent, kind


def next_schedule_delay(cj: Obj, now: dt.datetime, sched: CronSchedule) -> float:
    """Seconds from ``now`` until just after the next scheduled time."""
    try:
        earliest, most_recent, _ = most_recent_schedule_time(cj, now, sched, False)
        base = most_recent or earliest
    except ValueError:
        base = now
    nxt = sched.next(base)
    if nxt is None:
        return 3600.0  # never again: look once an hour in case the spec changes
    return max((nxt - now).total_seconds() + NEXT_SCHEDULE_DELTA, NEXT_SCHEDULE_DELTA)


def job_from_template(cj: Obj, scheduled: dt.datetime) -> Obj:
    """The Job for the run at ``scheduled`` (kube's ``getJobFromTemplate2``)."""
    spec = cj.get("spec") or {}
    tmpl = spec.get("jobTemplate") or {}
    tmeta = tmpl.get("metadata") or {}
    tz_name = spec.get("timeZone")
    tz: dt.tzinfo = zoneinfo.ZoneInfo(tz_name) if tz_name and tz_name not in ("UTC", "Local") else dt.UTC
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = _rfc3339_in(scheduled, tz)
    meta: Obj = {"name": job_name(cj, scheduled), "annotations": annotations,
                 "ownerReferences": [new_controller_ref(cj, "batch/v1", "CronJob")]}
    if tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": copy.deepcopy(tmpl.get("spec") or {})}


def _job_ref(job: Obj) -> Obj:
    md = _meta(job)
    return {"kind": "Job", "namespace": md.get("namespace"), "name": md.get("name"), "uid": md.get("uid"),
            "apiVersion": "batch/v1", "resourceVersion": md.get("resourceVersion")}


def _start_key(job: Obj) -> tuple[int, float, str]:
    """Oldest first by status.startTime, Jobs never started last, names breaking ties."""
    t = _time((job.get("status") or {}).get("startTime"))
    return (0, t.timestamp(), str(_meta(job).get("name"))) if t else (1, 0.0, str(_meta(job).get("name")))


@dataclass(slots=True)
class _Outcome:
    requeue_after: float | None = None
    update_status: bool = False
    error: Exception | None = None


class CronJobController:
    NAME = "cronjob"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        self.cronjobs = ctx.factory.informer(CRONJOB)
        self.jobs = ctx.factory.informer(JOB)
        # keys come from the handlers below
        self.controller = Controller("cronjob", self.reconcile, workers=ctx.options.workers or 5,
                                     clock=ctx.clock, wait_for=(self.cronjobs, self.jobs))
        self.cronjobs.add_handler(self._cronjob_added, self._cronjob_updated, self._cronjob_added)
        self.jobs.add_handler(self._job_added, self._job_updated, self._job_deleted)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC)

    @staticmethod
    def _key(obj: Obj) -> str:
        md = _meta(obj)
        return f"{md.get('namespace')}/{md.get('name')}"

    # -- handlers ----------------------------------------------------------------------------------

    def _cronjob_added(self, cj: Obj) -> None:
        self.controller.queue.add(self._key(cj))

    def _cronjob_updated(self, old: Obj, cur: Obj) -> None:
        os_, cs = old.get("spec") or {}, cur.get("spec") or {}
        if old is not cur and (os_.get("schedule") != cs.get("schedule") or os_.get("timeZone") != cs.get("timeZone")):
            # why not now: a sync now would read the new schedule from the old lastScheduleTime
            # and could start a run that no schedule asked for; wait for the next time instead
            try:
                sched = parse_schedule(format_schedule(cur)[0])
            except CronError:
                self.ctx.record(cur, "Warning", "UnParseableCronJobSchedule",
                                f"unparseable schedule for cronjob: {cs.get('schedule')}")
                return
            self.controller.queue.add_after(self._key(cur), next_schedule_delay(cur, self._now(), sched))
            return
        self.controller.queue.add(self._key(cur))

    def _owner(self, job: Obj, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != "CronJob" or ref.get("apiVersion") != "batch/v1":
            return None
        cj = self.cronjobs.get(str(ref.get("name") or ""), _meta(job).get("namespace"))
        if cj is None or _meta(cj).get("uid") != ref.get("uid"):
            return None
        return cj

    def _job_added(self, job: Obj) -> None:
        if (cj := self._owner(job, controller_ref(job))) is not None:
            self.controller.queue.add(self._key(cj))

    def _job_updated(self, old: Obj, cur: Obj) -> None:
        if old is cur or _meta(old).get("resourceVersion") == _meta(cur).get("resourceVersion"):
            return
        old_ref, cur_ref = controller_ref(old), controller_ref(cur)
        if old_ref is not None and old_ref != cur_ref and (cj := self._owner(old, old_ref)) is not None:
            self.controller.queue.add(self._key(cj))
        if (cj := self._owner(cur, cur_ref)) is not None:
            self.controller.queue.add(self._key(cj))

    def _job_deleted(self, job: Obj) -> None:
        self._job_added(job)

    # -- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        ns, _, name = key.partition("/")
        shared = self.cronjobs.get(name, ns)
        if shared is None:
            return None
        uid = _meta(shared).get("uid")
        jobs = [j for j in self.jobs.store.by_index(OWNER_UID_INDEX, str(uid))
                if (controller_ref(j) or {}).get("uid") == uid]
        cj = copy.deepcopy(shared)
        cleaned = await self._cleanup_finished_jobs(cj, jobs)
        out = await self._sync(cj, jobs)
        if cleaned or out.update_status:
            await self._update_status(cj)
        if out.requeue_after is not None:
            if out.error is not None:
                log.info("cronjob %s: %s", key, error_message(out.error))
            return Result(requeue_after=out.requeue_after)
        if out.error is not None:
            raise out.error
        return None

    async def _update_status(self, cj: Obj) -> None:
        st = cj.setdefault("status", {})
        if not st.get("active"):
            st.pop("active", None)
        await self.client.update_status(CRONJOB, cj, _meta(cj).get("namespace"))

    async def _sync(self, cj: Obj, jobs: list[Obj]) -> _Outcome:
        """kube's ``syncCronJob``; mutates ``cj``'s status in place."""
        now = self._now()
        out = _Outcome()
        st = cj.setdefault("status", {})
        children = set()
        for j in jobs:
            juid = _meta(j).get("uid")
            children.add(juid)
            found = any(r.get("uid") == juid for r in st.get("active") or ())
            finished = job_finished_condition(j)
            if not found and finished is None:
                # why ask the API: our own status write adding this Job may not be in the cache yet
                fresh = await self.client.get(CRONJOB, _meta(cj)["name"], _meta(cj).get("namespace"))
                if any(r.get("uid") == juid for r in (fresh.get("status") or {}).get("active") or ()):
                    cj.clear()
                    cj.update(fresh)
                    st = cj.setdefault("status", {})
                    continue
                self.ctx.record(cj, "Warning", "UnexpectedJob",
                                f"Saw a job that the controller did not create or forgot: {_meta(j).get('name')}")
            elif found and finished is not None:
                st["active"] = [r for r in st.get("active") or () if r.get("uid") != juid]
                self.ctx.record(cj, "Normal", "SawCompletedJob",
                                f"Saw completed job: {_meta(j).get('name')}, condition: {finished}")
                out.update_status = True
            if finished == "Complete":
                # a run need not be in the active list for its success to count
                done = _time((j.get("status") or {}).get("completionTime"))
                last = _time(st.get("lastSuccessfulTime"))
                if done is not None and (last is None or done > last):
                    st["lastSuccessfulTime"] = (j.get("status") or {}).get("completionTime")
                    out.update_status = True

        # Active runs whose Job is gone: drop them, or the CronJob would wait for them forever.
        for ref in list(st.get("active") or ()):
            if ref.get("uid") in children:
                continue
            try:
                # why the API, not the cache: a slow watch must not make a live run look missing
                await self.client.get(JOB, str(ref.get("name")), ref.get("namespace") or _meta(cj).get("namespace"))
            except NotFoundError:
                self.ctx.record(cj, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
                st["active"] = [r for r in st.get("active") or () if r.get("uid") != ref.get("uid")]
                out.update_status = True

        if _meta(cj).get("deletionTimestamp"):
            return out  # being deleted: only keep the status right
        spec = cj.get("spec") or {}
        tz = spec.get("timeZone")
        if tz is not None and (err := load_location_error(tz)) is not None:
            self.ctx.record(cj, "Warning", "UnknownTimeZone", f'invalid timeZone: "{tz}": {err}')
            return out
        if spec.get("suspend") is True:
            return out
        text, has_tz = format_schedule(cj)
        if has_tz:
            self.ctx.record(cj, "Warning", "UnsupportedSchedule",
                            f'CRON_TZ or TZ used in schedule "{spec.get("schedule")}" is not officially supported, '
                            "see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details")
        try:
            sched = parse_schedule(text)
        except CronError as e:
            self.ctx.record(cj, "Warning", "UnparseableSchedule", f'unparseable schedule: "{spec.get("schedule")}" : {e}')
            return out
        try:
            _, scheduled, missed = most_recent_schedule_time(cj, now, sched, True)
        except ValueError as e:
            self.ctx.record(cj, "Warning", "InvalidSchedule", f"invalid schedule: {spec.get('schedule')} : {e}")
            return out
        if scheduled is not None and missed == Missed.MANY:
            self.ctx.record(cj, "Warning", "TooManyMissedTimes",
                            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds "
                            "or check clock skew")
            log.info("cronjob %s/%s: too many missed times", _meta(cj).get("namespace"), _meta(cj).get("name"))
        out.requeue_after = next_schedule_delay(cj, now, sched)
        if scheduled is None:
            return out  # nothing due yet
        sds = spec.get("startingDeadlineSeconds")
        if sds is not None and scheduled + dt.timedelta(seconds=int(sds)) < now:
            self.ctx.record(cj, "Warning", "MissSchedule",
                            f"Missed scheduled time to start a job: {_rfc1123z(scheduled)}")
            return out
        name = job_name(cj, scheduled)
        last = _time(st.get("lastScheduleTime"))
        if any(r.get("name") == name for r in st.get("active") or ()) or (last is not None and last == scheduled):
            return out  # this time was handled already
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and st.get("active"):
            # why this can still overlap: the active list may lag a run that just started;
            # runs far enough apart in time never do
            self.ctx.record(cj, "Normal", "JobAlreadyActive",
                            "Not starting job because prior execution is running and concurrency policy is Forbid")
            return out
        if policy == "Replace":
            for ref in list(st.get("active") or ()):
                try:
                    job = await self.client.get(JOB, str(ref.get("name")),
                                                ref.get("namespace") or _meta(cj).get("namespace"))
                except ApiError as e:
                    self.ctx.record(cj, "Warning", "FailedGet", f"Get job: {error_message(e)}")
                    out.requeue_after, out.error = None, e
                    return out
                if not await self._delete_job(cj, job):
                    out.requeue_after = None
                    out.error = RuntimeError(f"could not replace job {_meta(job).get('namespace')}/{name}")
                    return out
                out.update_status = True

        req = job_from_template(cj, scheduled)
        ns = _meta(cj).get("namespace")
        try:
            created = await self.client.create(JOB, req, ns)
            self.ctx.record(cj, "Normal", "SuccessfulCreate", f"Created job {_meta(created).get('name')}")
        except AlreadyExistsError:
            # made earlier by us (then the status write was lost) or by someone else
            try:
                created = await self.client.get(JOB, name, ns)
            except ApiError as e:
                out.requeue_after, out.error = None, e
                return out
            ref = controller_ref(created)
            if ref is None or ref.get("uid") != _meta(cj).get("uid"):
                return out  # not ours: leave it to whoever made it
            if any(r.get("uid") == _meta(created).get("uid") for r in st.get("active") or ()):
                return out
            log.info("cronjob %s/%s: job %s already exists", ns, _meta(cj).get("name"), name)
        except ApiError as e:
            if not is_namespace_terminating(e):
                self.ctx.record(cj, "Warning", "FailedCreate", f"Error creating job: {error_message(e)}")
            out.requeue_after, out.error = None, e
            return out
        st.setdefault("active", []).append(_job_ref(created))
        st["lastScheduleTime"] = rfc3339(scheduled)
        out.update_status = True
        return out

    async def _delete_job(self, cj: Obj, job: Obj) -> bool:
        md = _meta(job)
        try:
            await self.client.delete(JOB, str(md.get("name")), md.get("namespace"), propagation_policy="Background")
        except NotFoundError:
            pass
        except ApiError as e:
            self.ctx.record(cj, "Warning", "FailedDelete", f"Deleted job: {error_message(e)}")
            log.warning("cronjob %s/%s: deleting job %s: %s", _meta(cj).get("namespace"), _meta(cj).get("name"),
                        md.get("name"), e)
            return False
        st = cj.setdefault("status", {})
        st["active"] = [r for r in st.get("active") or () if r.get("uid") != md.get("uid")]
        self.ctx.record(cj, "Normal", "SuccessfulDelete", f"Deleted job {md.get('name')}")
        return True

    async def _cleanup_finished_jobs(self, cj: Obj, jobs: list[Obj]) -> bool:
        """Delete the oldest finished Jobs beyond the history limits."""
        spec = cj.get("spec") or {}
        ok_limit, failed_limit = spec.get("successfulJobsHistoryLimit"), spec.get("failedJobsHistoryLimit")
        if ok_limit is None and failed_limit is None:
            return False
        succeeded = [j for j in jobs if job_finished_condition(j) == "Complete" and not _meta(j).get("deletionTimestamp")]
        failed = [j for j in jobs if job_finished_condition(j) == "Failed" and not _meta(j).get("deletionTimestamp")]
        changed = False
        for group, limit in ((succeeded, ok_limit), (failed, failed_limit)):
            if limit is None or len(group) <= int(limit):
                continue
            group.sort(key=_start_key)
            for j in group[:len(group) - int(limit)]:
                if await self._delete_job(cj, j):
                    changed = True
        return changed
