"""The TTL-after-finished controller: a Job with ``spec.ttlSecondsAfterFinished`` is deleted (with
its pods, Foreground propagation) that many seconds after it finished, i.e. after the
``lastTransitionTime`` of its ``Complete`` or ``Failed`` condition (kube's ``ttl-after-finished``
controller). Before deleting, the Job is read again from the API server: the TTL may have been
changed meanwhile, and the cache may be behind.
"""

from __future__ import annotations

import logging
from typing import Any

from k8py.client.controller import Controller, Result
from k8py.client.errors import NotFoundError
from k8py.controllers.base import ControllerContext, parse_time

log = logging.getLogger(__name__)

Obj = dict[str, Any]

JOB = ("batch/v1", "Job")


def finish_time(job: Obj) -> float | None:
    """Epoch seconds at which the Job finished, or None when it has not (or says no time)."""
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            t = parse_time(c.get("lastTransitionTime"))
            return t.timestamp() if t is not None else None
    return None


def is_finished(job: Obj) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or ())


def needs_cleanup(job: Obj) -> bool:
    return (job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None and is_finished(job) and \
        not (job.get("metadata") or {}).get("deletionTimestamp")


def time_left(job: Obj, now: float) -> float | None:
    """Seconds until ``job`` expires (<= 0: expired), or None when it never does or cannot tell."""
    if not needs_cleanup(job):
        return None
    finished = finish_time(job)
    if finished is None:
        key = f"{(job.get('metadata') or {}).get('namespace')}/{(job.get('metadata') or {}).get('name')}"
        log.warning("unable to find the time when the Job %s finished", key)
        return None
    if finished > now:
        key = f"{(job.get('metadata') or {}).get('namespace')}/{(job.get('metadata') or {}).get('name')}"
        log.info("found Job %s finished in the future; this is likely due to time skew in the cluster, "
                 "its cleanup will be deferred", key)
    return finished + float(job["spec"]["ttlSecondsAfterFinished"]) - now


class TTLAfterFinishedController:
    NAME = "ttlafterfinished"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        self.jobs = ctx.factory.informer(JOB)
        self.controller = Controller("ttl-after-finished-controller", self.reconcile,
                                     workers=ctx.options.workers or 2, clock=ctx.clock, wait_for=(self.jobs,))
        self.jobs.add_handler(self._on_job, lambda _old, new: self._on_job(new))

    def _on_job(self, job: Obj) -> None:
        if needs_cleanup(job):
            self.controller.enqueue(job)

    async def reconcile(self, key: str) -> Result | None:
        ns, _, name = key.partition("/")
        job = self.jobs.get(name, ns)
        if job is None:
            return None
        left = time_left(job, self.clock.wall())
        if left is None:
            return None
        if left > 0:
            return Result(requeue_after=left)
        # The cached Job says it expired; make sure the stored one agrees (the TTL may have been
        # raised, or the Job recreated) before deleting it.
        try:
            fresh = await self.client.get(JOB, name, ns)
        except NotFoundError:
            return None
        left = time_left(fresh, self.clock.wall())
        if left is None:
            return None
        if left > 0:
            return Result(requeue_after=left)
        log.info("cleaning up Job %s: its TTL of %ss after finishing has passed", key,
                 fresh["spec"]["ttlSecondsAfterFinished"])
        try:
            # uid precondition: never delete a newer Job of the same name
            await self.client.delete(JOB, name, ns, propagation_policy="Foreground",
                                     uid=fresh["metadata"].get("uid"))
        except NotFoundError:
            pass
        return None
