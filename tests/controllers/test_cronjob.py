"""The CronJob controller on a FakeClock: schedules, concurrency policies, history limits, missed
runs, suspend and time zones, without real waiting.

The controllers run on a fake clock against an in-process API server; a FakeNode runs the Jobs'
pods (pods with exit-code annotation "0" succeed, "1" fail, none: run until deleted). The fake
wall clock starts a moment behind the real one, so a CronJob's (real) creationTimestamp is never
in the fake future; each test then jumps to just after the next minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from tests.helpers.cluster import InProcessCluster
from tests.helpers.fakenode import EXIT_CODE

from k8py.api.validation.cron import parse_schedule
from k8py.client import Client, ClientConfig, FakeClock, SharedInformerFactory
from k8py.client.events import EventSink
from k8py.controllers.base import ControllerContext, parse_time
from k8py.controllers.cronjob import (
    SCHEDULED_TIMESTAMP_ANNOTATION,
    CronJobController,
    most_recent_schedule_time,
)
from k8py.controllers.job import JobController

CRONJOB = ("batch/v1", "CronJob")
JOB = ("batch/v1", "Job")
POD = ("v1", "Pod")
EVENT = ("v1", "Event")
NS = "default"

Obj = dict[str, Any]


def cronjob(name: str, schedule: str = "* * * * *", *, exit_code: str | None = "0", **spec: Any) -> Obj:
    tmeta: Obj = {"annotations": {EXIT_CODE: exit_code}} if exit_code is not None else {}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": schedule, **spec, "jobTemplate": {
                "metadata": {"labels": {"app": name}},
                "spec": {"backoffLimit": 0, "template": {"metadata": tmeta, "spec": {
                    "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}


class Harness:
    def __init__(self, c: InProcessCluster, clock: FakeClock, ctx: ControllerContext) -> None:
        self.c, self.clock, self.ctx = c, clock, ctx

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC)

    async def until(self, cond: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0) -> Any:
        async def nudged() -> Any:
            # why: a write that lost a race is retried after a few ms on the controllers' (fake)
            # clock; a hundredth of a second per poll lets such retries happen, far from any minute
            self.clock.advance(0.01)
            return await cond()

        return await self.c.until(nudged, timeout=timeout, what=what)

    async def create(self, obj: Obj) -> Obj:
        return await self.c.client.create(CRONJOB, obj, NS)

    def advance_to(self, t: dt.datetime) -> None:
        delta = t.timestamp() - self.clock.wall()
        assert delta > 0, f"{t} is in the (fake) past"
        self.clock.advance(delta)

    def advance_past_next_minute(self, after: dt.datetime | None = None, seconds: int = 5) -> dt.datetime:
        """Jump to ``seconds`` past the first minute boundary after ``after`` (default: now);
        returns that boundary, the scheduled time of an every-minute CronJob."""
        base = max(after or self.now(), self.now())
        boundary = dt.datetime.fromtimestamp((math.floor(base.timestamp() / 60) + 1) * 60, dt.UTC)
        self.advance_to(boundary + dt.timedelta(seconds=seconds))
        return boundary

    async def jobs(self, cj: str) -> list[Obj]:
        items = (await self.c.client.list(JOB, NS, label_selector=f"app={cj}"))["items"]
        return sorted((j for j in items if not j["metadata"].get("deletionTimestamp")),
                      key=lambda j: j["metadata"]["name"])

    async def get(self, name: str) -> Obj:
        return await self.c.client.get(CRONJOB, name, NS)

    async def events(self, name: str) -> list[tuple[str, str, str]]:
        evs = (await self.c.client.list(EVENT, NS))["items"]
        return [(e["type"], e["reason"], e["message"]) for e in evs
                if e["involvedObject"].get("name") == name and e["involvedObject"].get("kind") == "CronJob"]

    async def wait_event(self, name: str, reason: str) -> list[tuple[str, str, str]]:
        async def have() -> list[tuple[str, str, str]] | None:
            evs = await self.events(name)
            return evs if any(e[1] == reason for e in evs) else None

        return await self.until(have, f"event {reason} on {name}")  # type: ignore[no-any-return]


def finished(job: Obj) -> str | None:
    for c in (job.get("status") or {}).get("conditions") or ():
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return str(c["type"])
    return None


def minutes(t: dt.datetime) -> int:
    return int(t.timestamp()) // 60


@contextlib.asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    """An API server, a FakeNode, and the Job and CronJob controllers on one fake clock."""
    clock = FakeClock(wall_start=math.floor(time.time()) - 2)
    async with InProcessCluster(controllers=()) as c:
        await c.add_node()
        client = Client(ClientConfig(server=c.url), component="controller-manager")
        factory = SharedInformerFactory(client, clock=clock)
        recorder = EventSink(client, "controller-manager", clock=clock)
        recorder.start()
        ctx = ControllerContext(client, factory, clock, recorder, {"workers": 2, "job_sync_batch_period": 0})
        controllers = [JobController(ctx), CronJobController(ctx)]
        factory.start()
        assert await factory.wait_for_cache_sync(10)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(x.controller.run(stop)) for x in controllers]
        try:
            yield Harness(c, clock, ctx)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await recorder.stop()
            await factory.shutdown()
            await client.close()


async def test_every_minute_creates_runs_and_keeps_history_limits() -> None:
    async with harness() as h:
        ok = await h.create(cronjob("tick", successfulJobsHistoryLimit=2))
        bad = await h.create(cronjob("oops", exit_code="1", failedJobsHistoryLimit=1))
        created = parse_time(ok["metadata"]["creationTimestamp"])
        assert created is not None and parse_time(bad["metadata"]["creationTimestamp"]) == created
        await asyncio.sleep(0.2)
        assert not await h.jobs("tick"), "nothing is due before the first minute"

        runs: list[dt.datetime] = []
        for i in range(4):
            t = h.advance_past_next_minute(created) if i == 0 else runs[-1] + dt.timedelta(minutes=1)
            if i:
                h.advance_to(t + dt.timedelta(seconds=5))
            runs.append(t)

            async def settled(t: dt.datetime = t, i: int = i) -> bool:
                jobs = {j["metadata"]["name"]: j for j in await h.jobs("tick") + await h.jobs("oops")}
                mine = [jobs.get(f"{n}-{minutes(t)}") for n in ("tick", "oops")]
                if any(j is None or finished(j) is None for j in mine):
                    return False
                st_ok, st_bad = (await h.get("tick"))["status"], (await h.get("oops"))["status"]
                return (not st_ok.get("active") and not st_bad.get("active")
                        and len(await h.jobs("tick")) == min(i + 1, 2) and len(await h.jobs("oops")) == 1)

            await h.until(settled, f"run {i} finished and history trimmed")

        tick = await h.jobs("tick")
        assert [j["metadata"]["name"] for j in tick] == [f"tick-{minutes(t)}" for t in runs[-2:]]
        assert all(finished(j) == "Complete" for j in tick)
        oops = await h.jobs("oops")
        assert [j["metadata"]["name"] for j in oops] == [f"oops-{minutes(runs[-1])}"]
        assert finished(oops[0]) == "Failed"

        j = tick[-1]
        assert j["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] == \
            runs[-1].strftime("%Y-%m-%dT%H:%M:%SZ")
        ref = j["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == \
            ("CronJob", "tick", ok["metadata"]["uid"], True)
        st = (await h.get("tick"))["status"]
        assert parse_time(st["lastScheduleTime"]) == runs[-1]
        last_ok = parse_time(st["lastSuccessfulTime"])
        assert last_ok is not None and last_ok >= runs[-1]
        assert "lastSuccessfulTime" not in (await h.get("oops"))["status"]

        evs = await h.wait_event("tick", "SuccessfulDelete")
        assert sum(1 for e in evs if e[1] == "SuccessfulCreate") == 4
        assert sum(1 for e in evs if e[1] == "SuccessfulDelete") == 2
        assert any(e[1] == "SawCompletedJob" and e[2].endswith("condition: Complete") for e in evs)
        assert ("Normal", "SuccessfulDelete", f"Deleted job tick-{minutes(runs[0])}") in evs


async def test_concurrency_policies() -> None:
    async with harness() as h:
        # pods without an exit code run until deleted: every run stays active
        created = None
        for name, policy in (("allow", "Allow"), ("forbid", "Forbid"), ("replace", "Replace")):
            obj = await h.create(cronjob(name, exit_code=None, concurrencyPolicy=policy))
            created = created or parse_time(obj["metadata"]["creationTimestamp"])
        first = h.advance_past_next_minute(created)

        async def active(name: str, n: int) -> list[Obj] | None:
            st = (await h.get(name))["status"]
            return st["active"] if len(st.get("active") or ()) == n else None

        for name in ("allow", "forbid", "replace"):
            await h.until(lambda name=name: active(name, 1), f"{name}: first run active")  # type: ignore[misc]
        second = first + dt.timedelta(minutes=1)
        h.advance_to(second + dt.timedelta(seconds=5))

        # Allow: both runs at once
        refs = await h.until(lambda: active("allow", 2), "allow: two runs active")
        assert sorted(r["name"] for r in refs) == [f"allow-{minutes(first)}", f"allow-{minutes(second)}"]
        # Replace: the first run deleted, the second started
        async def replaced() -> bool:
            names = [j["metadata"]["name"] for j in await h.jobs("replace")]
            st = (await h.get("replace"))["status"]
            return names == [f"replace-{minutes(second)}"] and \
                [r["name"] for r in st.get("active") or ()] == names
        await h.until(replaced, "replace: the old run replaced by the new one")
        assert any(e[2] == f"Deleted job replace-{minutes(first)}" for e in await h.events("replace"))
        # Forbid: no second run while the first is active
        evs = await h.wait_event("forbid", "JobAlreadyActive")
        assert ("Normal", "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid") in evs
        assert [j["metadata"]["name"] for j in await h.jobs("forbid")] == [f"forbid-{minutes(first)}"]
        assert parse_time((await h.get("forbid"))["status"]["lastScheduleTime"]) == first

        # The forbidden CronJob's run ends. As kube documents, the time it skipped is still the
        # most recent one (and no startingDeadlineSeconds says it is too late): it starts now.
        pod = (await h.c.client.list(POD, NS, label_selector=f"job-name=forbid-{minutes(first)}"))["items"][0]
        await h.c.client.patch(POD, pod["metadata"]["name"], {"metadata": {"annotations": {EXIT_CODE: "0"}}}, NS)

        async def late_start() -> bool:
            st = (await h.get("forbid"))["status"]
            return "lastSuccessfulTime" in st and [r["name"] for r in st.get("active") or ()] == \
                [f"forbid-{minutes(second)}"]
        await h.until(late_start, "forbid: the skipped run started once the first ended")
        assert parse_time((await h.get("forbid"))["status"]["lastScheduleTime"]) == second
        names = [j["metadata"]["name"] for j in await h.jobs("forbid")]
        assert names == [f"forbid-{minutes(first)}", f"forbid-{minutes(second)}"]


async def test_missed_runs_after_downtime() -> None:
    async with harness() as h:
        obj = await h.create(cronjob("late", successfulJobsHistoryLimit=10))
        await h.create(cronjob("strict", startingDeadlineSeconds=20, successfulJobsHistoryLimit=10))
        created = parse_time(obj["metadata"]["creationTimestamp"])
        assert created is not None

        async def jobs(name: str, n: int) -> list[Obj] | None:
            js = await h.jobs(name)
            return js if len(js) == n and not (await h.get(name))["status"].get("active") else None

        # Five minutes pass in one step (the controller "down" meanwhile): one catch-up run, the
        # most recent missed time; no warning for a few misses.
        boundary = h.advance_past_next_minute(created)
        h.advance_to(boundary + dt.timedelta(minutes=4, seconds=5))
        latest = boundary + dt.timedelta(minutes=4)
        js = await h.until(lambda: jobs("late", 1), "one catch-up run")
        assert js[0]["metadata"]["name"] == f"late-{minutes(latest)}"
        assert parse_time((await h.get("late"))["status"]["lastScheduleTime"]) == latest
        # startingDeadlineSeconds 20: 5 s late is still in time
        await h.until(lambda: jobs("strict", 1), "strict: in time")

        # 150 minutes: still one run, and a warning that too many were missed
        h.advance_to(latest + dt.timedelta(minutes=150, seconds=30))
        latest += dt.timedelta(minutes=150)
        js = await h.until(lambda: jobs("late", 2), "second catch-up run")
        assert js[-1]["metadata"]["name"] == f"late-{minutes(latest)}"
        evs = await h.wait_event("late", "TooManyMissedTimes")
        assert ("Warning", "TooManyMissedTimes", ("too many missed start times. Set or decrease "
                                                  ".spec.startingDeadlineSeconds or check clock skew")) in evs
        # ... while 30 s late is too late for a 20 s starting deadline: no run, no warning
        await asyncio.sleep(0.3)
        assert len(await h.jobs("strict")) == 1
        assert not any(e[1] == "TooManyMissedTimes" for e in await h.events("strict"))
        # the next time, in time again
        h.advance_to(latest + dt.timedelta(minutes=1, seconds=5))
        await h.until(lambda: jobs("strict", 2), "strict: next run in time")


async def test_suspend_stops_runs_and_resume_catches_up_once() -> None:
    async with harness() as h:
        obj = await h.create(cronjob("nap", suspend=True))
        created = parse_time(obj["metadata"]["creationTimestamp"])
        boundary = h.advance_past_next_minute(created)
        h.advance_to(boundary + dt.timedelta(minutes=2, seconds=10))
        await asyncio.sleep(0.3)
        assert not await h.jobs("nap") and "lastScheduleTime" not in (await h.get("nap"))["status"]

        await h.c.client.patch(CRONJOB, "nap", {"spec": {"suspend": False}}, NS)
        latest = boundary + dt.timedelta(minutes=2)

        async def one() -> list[Obj] | None:
            js = await h.jobs("nap")
            return js if js else None

        js = await h.until(one, "the most recent missed run once resumed")
        assert [j["metadata"]["name"] for j in js] == [f"nap-{minutes(latest)}"]


async def test_time_zone_and_macros() -> None:
    async with harness() as h:
        tokyo = await h.create(cronjob("tokyo", "30 9 * * *", timeZone="Asia/Tokyo"))
        await h.create(cronjob("hourly", "@hourly"))
        created = parse_time(tokyo["metadata"]["creationTimestamp"])
        assert created is not None

        # @hourly: at the next full hour; 09:30 in Tokyo (UTC+9, no DST) is 00:30 UTC: the first
        # after the creation. Each is checked in the order they come (a test started between
        # 00:00 and 00:30 UTC passes the Tokyo run before the next full hour).
        hour = dt.datetime.fromtimestamp((math.floor(created.timestamp() / 3600) + 1) * 3600, dt.UTC)
        day = created.replace(hour=0, minute=30, second=0, microsecond=0)
        due = day if day > created else day + dt.timedelta(days=1)
        runs = {}
        for when, name in sorted([(hour, "hourly"), (due, "tokyo")]):
            h.advance_to(when - dt.timedelta(seconds=30))
            await asyncio.sleep(0.2)
            assert not await h.jobs(name)
            h.advance_to(when + dt.timedelta(seconds=5))

            async def run(name: str = name) -> list[Obj] | None:
                js = await h.jobs(name)
                return js or None
            runs[name] = await h.until(run, f"the {name} run")
        assert runs["hourly"][0]["metadata"]["name"] == f"hourly-{minutes(hour)}"
        js = runs["tokyo"]
        assert js[0]["metadata"]["name"] == f"tokyo-{minutes(due)}"
        local = due.astimezone(dt.timezone(dt.timedelta(hours=9)))
        assert js[0]["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] == \
            local.strftime("%Y-%m-%dT09:30:00+09:00")


async def test_schedule_change_waits_for_the_new_time() -> None:
    async with harness() as h:
        obj = await h.create(cronjob("shift", "0 0 1 1 *"))  # once a year
        created = parse_time(obj["metadata"]["creationTimestamp"])
        boundary = h.advance_past_next_minute(created)
        await asyncio.sleep(0.2)
        assert not await h.jobs("shift")
        # Every minute now: the run at the boundary just passed was not asked for by any
        # schedule in force then, so it does not start; the next minute's does.
        await h.c.client.patch(CRONJOB, "shift", {"spec": {"schedule": "* * * * *"}}, NS)
        await asyncio.sleep(0.2)
        h.advance_to(boundary + dt.timedelta(minutes=1, seconds=5))

        async def run() -> list[Obj] | None:
            js = await h.jobs("shift")
            return js or None
        js = await h.until(run, "a run on the new schedule")
        assert [j["metadata"]["name"] for j in js] == [f"shift-{minutes(boundary + dt.timedelta(minutes=1))}"]


def test_most_recent_schedule_time() -> None:
    sched = parse_schedule("*/5 * * * *")
    t0 = dt.datetime(2024, 3, 1, 10, 0, 0, tzinfo=dt.UTC)
    cj: Obj = {"metadata": {"creationTimestamp": "2024-03-01T10:00:00Z"}, "spec": {}, "status": {}}
    assert most_recent_schedule_time(cj, t0 + dt.timedelta(minutes=4), sched, True)[1:] == (None, 0)
    _, t, missed = most_recent_schedule_time(cj, t0 + dt.timedelta(minutes=7), sched, True)
    assert t == t0 + dt.timedelta(minutes=5) and missed == 0
    _, t, missed = most_recent_schedule_time(cj, t0 + dt.timedelta(minutes=23), sched, True)
    assert t == t0 + dt.timedelta(minutes=20) and missed == 1
    _, t, missed = most_recent_schedule_time(cj, t0 + dt.timedelta(hours=10, minutes=1), sched, True)
    assert t == t0 + dt.timedelta(hours=10) and missed == 2
    cj["spec"]["startingDeadlineSeconds"] = 60
    assert most_recent_schedule_time(cj, t0 + dt.timedelta(minutes=7), sched, True)[1] is None
    assert most_recent_schedule_time(cj, t0 + dt.timedelta(minutes=7), sched, False)[1] is not None
    cj["status"]["lastScheduleTime"] = "2024-03-01T10:05:00Z"
    assert most_recent_schedule_time(cj, t0 + dt.timedelta(minutes=7), sched, False)[1] is None
    # an irregular schedule: the estimate steps back to the exact most recent time
    odd = parse_schedule("30 6-16/4 * * 1-5")
    cj2: Obj = {"metadata": {"creationTimestamp": "2024-03-01T00:00:00Z"}, "spec": {}, "status": {}}
    _, t, _ = most_recent_schedule_time(cj2, dt.datetime(2024, 3, 4, 15, 0, tzinfo=dt.UTC), odd, True)
    assert t == dt.datetime(2024, 3, 4, 14, 30, tzinfo=dt.UTC)  # Monday; Friday's runs before it


# -- kubectl create job --from=cronjob/NAME --------------------------------------------------------

KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(not KUBECTL, reason="kubectl not installed")
async def test_kubectl_create_job_from_cronjob(tmp_path: Any) -> None:
    fast = {"job_sync_batch_period": 0, "job_backoff_base": 0.05}
    async with InProcessCluster(controllers=["job", "cronjob"], manager_options=fast) as c:
        await c.add_node()
        await c.client.create(CRONJOB, cronjob("nightly", "0 3 * * *"), NS)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--server", c.url, "-n", NS, "create", "job", "by-hand", "--from=cronjob/nightly",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)})
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        assert out.decode().strip() == "job.batch/by-hand created"
        job = await c.client.get(JOB, "by-hand", NS)
        assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
        assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"

        async def complete() -> bool:
            j = await c.client.get(JOB, "by-hand", NS)
            return finished(j) == "Complete"

        await c.until(complete, what="the hand-made Job run by the Job controller")
        # as in kube, the CronJob sees a Job of its own it did not start, and does not count it
        cj = await c.client.get(CRONJOB, "nightly", NS)
        assert not cj["status"].get("active") and "lastScheduleTime" not in cj["status"]

        async def unexpected() -> bool:
            evs = (await c.client.list(EVENT, NS))["items"]
            return any(e["reason"] == "UnexpectedJob" and e["involvedObject"]["name"] == "nightly" and
                       e["message"] == "Saw a job that the controller did not create or forgot: by-hand"
                       for e in evs)

        await c.until(unexpected, what="an UnexpectedJob event on the CronJob")
