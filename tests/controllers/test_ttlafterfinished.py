"""TTL after finished: finished Jobs with ``ttlSecondsAfterFinished`` are deleted once it passes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.controllers.test_nodelifecycle import make_ctx
from tests.helpers.cluster import InProcessCluster

from k8py.client.errors import NotFoundError
from k8py.controllers.base import rfc3339
from k8py.controllers.ttlafterfinished import JOB, TTLAfterFinishedController, time_left

Obj = dict[str, Any]


def job(name: str, ttl: int | None, finished_at: float | None, *, cond: str = "Complete") -> Obj:
    spec: Obj = {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    status: Obj = {}
    if finished_at is not None:
        t = rfc3339(dt.datetime.fromtimestamp(finished_at, dt.UTC))
        status = {"conditions": [{"type": cond, "status": "True", "lastTransitionTime": t,
                                  "lastProbeTime": t}]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
            "spec": spec, "status": status}


def test_time_left() -> None:
    now = 1_700_000_100.0
    assert time_left(job("j", 30, now - 10), now) == 20
    assert time_left(job("j", 30, now - 40, cond="Failed"), now) == -10
    assert time_left(job("j", None, now - 40), now) is None  # no TTL: kept
    assert time_left(job("j", 30, None), now) is None  # not finished
    running = job("j", 30, now - 40)
    running["status"]["conditions"][0]["status"] = "False"
    assert time_left(running, now) is None


async def test_requeues_for_the_remainder_then_deletes_foreground() -> None:
    ctx, api, clock = make_ctx({})
    ctl = TTLAfterFinishedController(ctx)
    deletes: list[Obj] = []
    real_delete = api.delete

    async def delete(kind: Any, name: str, namespace: str | None = None, **kw: Any) -> Obj:
        deletes.append(kw)
        return await real_delete(kind, name, namespace, **kw)

    api.delete = delete  # type: ignore[method-assign]
    created = api.put(JOB, job("j", 100, clock.wall() - 40))
    res = await ctl.reconcile("default/j")
    assert res is not None and res.requeue_after == 60
    # the TTL was raised meanwhile: the fresh read decides
    stored = api.get_obj(JOB, "j", "default")
    assert stored is not None
    stored["spec"]["ttlSecondsAfterFinished"] = 200
    api.put(JOB, stored, announce=False)  # the API has it, the cache not yet
    clock.advance(60)
    res = await ctl.reconcile("default/j")
    assert res is not None and res.requeue_after == 100 and not deletes
    api.put(JOB, stored)
    clock.advance(100)
    assert await ctl.reconcile("default/j") is None
    assert deletes == [{"propagation_policy": "Foreground", "uid": created["metadata"]["uid"]}]
    assert api.get_obj(JOB, "j", "default") is None


async def test_finished_job_deleted_after_its_ttl() -> None:
    async with InProcessCluster(controllers=["ttlafterfinished"]) as c:
        for name, ttl in (("short", 1), ("kept", None), ("long", 3600)):
            j = job(name, ttl, None)
            j["metadata"] = {"name": name}
            await c.client.create(JOB, j, "default")
        now = dt.datetime.now(dt.UTC).timestamp()
        for name in ("short", "kept", "long"):
            cur = await c.client.get(JOB, name, "default")
            t = rfc3339(dt.datetime.fromtimestamp(now, dt.UTC))
            cur["status"] = {"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": t,
                                             "lastProbeTime": t}],
                             "startTime": t, "completionTime": t, "succeeded": 1}
            await c.client.update_status(JOB, cur, "default")

        async def short_deleted() -> bool:
            try:
                j = await c.client.get(JOB, "short", "default")
            except NotFoundError:
                return True
            # without a garbage collector running, foreground deletion stops at the finalizer
            return bool(j["metadata"].get("deletionTimestamp")) and \
                "foregroundDeletion" in (j["metadata"].get("finalizers") or ())

        await c.until(short_deleted, timeout=10, what="the job with a 1 s TTL deleted (foreground)")
        for name in ("kept", "long"):
            j = await c.client.get(JOB, name, "default")
            assert not j["metadata"].get("deletionTimestamp")
