"""The Job controller: pods run to completion through the API, played by a FakeNode.

Tests with the whole controller manager use a tiny backoff base (``job_backoff_base``) and no
sync batching; the one that measures the real 10 s backoff runs the controller on a FakeClock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from tests.helpers.cluster import InProcessCluster
from tests.helpers.fakenode import EXIT_CODE

from k8py.client import Client, ClientConfig, FakeClock, SharedInformerFactory
from k8py.client.clock import Clock, RealClock
from k8py.client.events import EventSink
from k8py.controllers.base import ControllerContext
from k8py.controllers.job import (
    COMPLETION_INDEX_ANNOTATION,
    TRACKING_FINALIZER,
    BackoffRecord,
    Intervals,
    JobController,
    backoff_remaining,
    match_pod_failure_policy,
    new_backoff_record,
)

JOB = ("batch/v1", "Job")
POD = ("v1", "Pod")
EVENT = ("v1", "Event")
NS = "default"
FAST = {"job_backoff_base": 0.05, "job_sync_batch_period": 0}

Obj = dict[str, Any]


def job(name: str, *, exit_code: str | None = None, restart: str = "Never", **spec: Any) -> Obj:
    tmeta: Obj = {"annotations": {EXIT_CODE: exit_code}} if exit_code is not None else {}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {**spec, "template": {"metadata": tmeta, "spec": {
                "restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]}}}}


def condition(j: Obj, type_: str) -> Obj | None:
    for c in (j.get("status") or {}).get("conditions") or ():
        if c["type"] == type_:
            return c  # type: ignore[no-any-return]
    return None


async def finished(c: InProcessCluster, name: str, timeout: float = 15.0) -> Obj:
    async def done() -> Obj | None:
        j = await c.client.get(JOB, name, NS)
        for t in ("Complete", "Failed"):
            cond = condition(j, t)
            if cond is not None and cond["status"] == "True":
                return j
        return None

    return await c.until(done, timeout=timeout, what=f"job {name} to finish")  # type: ignore[no-any-return]


async def pods_of(c: InProcessCluster, name: str) -> list[Obj]:
    return (await c.client.list(POD, NS, label_selector=f"batch.kubernetes.io/job-name={name}"))["items"]


async def events_of(c: InProcessCluster, name: str) -> list[tuple[str, str, str]]:
    evs = (await c.client.list(EVENT, NS))["items"]
    return [(e["type"], e["reason"], e["message"]) for e in evs if e["involvedObject"].get("name") == name]


async def wait_events(c: InProcessCluster, name: str, *reasons: str) -> list[tuple[str, str, str]]:
    async def have() -> list[tuple[str, str, str]] | None:
        evs = await events_of(c, name)
        return evs if all(any(r == e[1] for e in evs) for r in reasons) else None

    return await c.until(have, what=f"events {reasons} on {name}")  # type: ignore[no-any-return]


class PodTracker:
    """Watches a Job's pods and remembers the most that were ever active at once."""

    def __init__(self, c: InProcessCluster, name: str) -> None:
        self.c, self.name = c, name
        self.active: set[str] = set()
        self.max_active = 0
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        rv = (await self.c.client.list(POD, NS))["metadata"]["resourceVersion"]
        self.task = asyncio.create_task(self._run(rv))

    async def _run(self, rv: str) -> None:
        async with self.c.client.watch(POD, NS, resource_version=rv, timeout_seconds=60,
                                       label_selector=f"batch.kubernetes.io/job-name={self.name}") as w:
            async for ev in w:
                if ev.type == "BOOKMARK":
                    continue
                p = ev.object
                name = p["metadata"]["name"]
                ended = (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                if ev.type == "DELETED" or ended or p["metadata"].get("deletionTimestamp"):
                    self.active.discard(name)
                else:
                    self.active.add(name)
                self.max_active = max(self.max_active, len(self.active))

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


# -- whole Jobs through the controller manager -----------------------------------------------------


async def test_completions_with_retries_never_more_than_parallelism() -> None:
    async with InProcessCluster(controllers=["job"], manager_options=FAST) as c:
        seen: list[str] = []

        def decide(pod: Obj) -> int:
            seen.append(pod["metadata"]["name"])
            return 1 if len(seen) in (1, 3, 4) else 0  # three of the attempts fail

        await c.add_node(decide=decide)
        tracker = PodTracker(c, "work")
        await tracker.start()
        await c.client.create(JOB, job("work", completions=5, parallelism=2, backoffLimit=6), NS)
        j = await finished(c, "work")
        await tracker.stop()

        st = j["status"]
        assert condition(j, "Complete")["status"] == "True"  # type: ignore[index]
        assert condition(j, "SuccessCriteriaMet")["reason"] == "CompletionsReached"  # type: ignore[index]
        assert condition(j, "Failed") is None
        assert st["succeeded"] == 5 and st["failed"] == 3
        assert st.get("active", 0) == 0 and st["ready"] == 0 and st["terminating"] == 0
        assert st["uncountedTerminatedPods"] == {}
        assert st["startTime"] <= st["completionTime"]
        pods = await pods_of(c, "work")
        phases = sorted(p["status"]["phase"] for p in pods)
        assert phases == ["Failed"] * 3 + ["Succeeded"] * 5
        assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or ()) for p in pods)
        assert all(p["metadata"]["ownerReferences"][0]["uid"] == j["metadata"]["uid"] for p in pods)
        assert tracker.max_active <= 2
        evs = await wait_events(c, "work", "Completed")
        assert sum(1 for e in evs if e[1] == "SuccessfulCreate") == 8
        assert ("Normal", "Completed", "Job completed") in evs


async def test_backoff_limit_exceeded_fails_the_job() -> None:
    async with InProcessCluster(controllers=["job"], manager_options=FAST) as c:
        await c.add_node()
        await c.client.create(JOB, job("doomed", exit_code="1", backoffLimit=2), NS)
        j = await finished(c, "doomed")
        failed = condition(j, "Failed")
        assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
        assert failed["message"] == "Job has reached the specified backoff limit"
        assert condition(j, "FailureTarget")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
        assert condition(j, "Complete") is None and "completionTime" not in j["status"]
        assert j["status"]["failed"] == 3  # the first try and backoffLimit retries
        pods = await pods_of(c, "doomed")
        assert len(pods) == 3 and all(p["status"]["phase"] == "Failed" for p in pods)
        assert all(not p["metadata"].get("finalizers") for p in pods)
        evs = await wait_events(c, "doomed", "BackoffLimitExceeded")
        assert ("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit") in evs


async def test_restart_policy_on_failure_counts_restarts() -> None:
    # The kubelet restarts a failing container in place; its restarts count against backoffLimit.
    async with InProcessCluster(controllers=["job"], manager_options=FAST) as c:
        await c.add_node(restart_interval=0.05)
        await c.client.create(JOB, job("crashy", exit_code="1", restart="OnFailure", backoffLimit=3), NS)
        j = await finished(c, "crashy")
        assert condition(j, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
        # one pod, never ended by itself: its restarts (not failed pods) reached backoffLimit 3;
        # then it was deleted, and counted as failed as it went
        assert j["status"]["failed"] == 1

        async def gone() -> bool:
            return not await pods_of(c, "crashy")

        await c.until(gone, what="the crash-looping pod deleted")


async def test_indexed_job_gets_each_index_once() -> None:
    async with InProcessCluster(controllers=["job"], manager_options=FAST) as c:
        attempts: dict[int, int] = {}

        def decide(pod: Obj) -> int:
            ix = int(pod["metadata"]["annotations"][COMPLETION_INDEX_ANNOTATION])
            attempts[ix] = attempts.get(ix, 0) + 1
            return 1 if ix == 2 and attempts[ix] == 1 else 0  # index 2 fails once

        await c.add_node(decide=decide)
        await c.client.create(JOB, job("idx", completions=4, parallelism=2, completionMode="Indexed"), NS)
        j = await finished(c, "idx")
        assert condition(j, "Complete")["status"] == "True"  # type: ignore[index]
        assert j["status"]["completedIndexes"] == "0-3"
        assert j["status"]["succeeded"] == 4 and j["status"]["failed"] == 1
        pods = await pods_of(c, "idx")
        ok = sorted(int(p["metadata"]["annotations"][COMPLETION_INDEX_ANNOTATION]) for p in pods
                    if p["status"]["phase"] == "Succeeded")
        assert ok == [0, 1, 2, 3]
        assert attempts == {0: 1, 1: 1, 2: 2, 3: 1}
        for p in pods:
            ix = p["metadata"]["annotations"][COMPLETION_INDEX_ANNOTATION]
            assert p["metadata"]["labels"][COMPLETION_INDEX_ANNOTATION] == ix
            assert p["metadata"]["name"].startswith(f"idx-{ix}-")
            assert p["spec"]["hostname"] == f"idx-{ix}"
            env = p["spec"]["containers"][0]["env"]
            assert {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                "apiVersion": "v1", "fieldPath": f"metadata.labels['{COMPLETION_INDEX_ANNOTATION}']"}}} in env


async def test_work_queue_job_without_completions() -> None:
    async with InProcessCluster(controllers=["job"], manager_options=FAST) as c:
        await c.add_node()
        await c.client.create(JOB, job("queue", exit_code="0", parallelism=3), NS)
        j = await finished(c, "queue")
        assert condition(j, "Complete")["status"] == "True"  # type: ignore[index]
        assert "completions" not in j["spec"]
        # once a pod succeeded no new one starts; the ones running finish
        assert j["status"]["succeeded"] == len(await pods_of(c, "queue")) == 3


async def test_active_deadline_seconds() -> None:
    async with InProcessCluster(controllers=["job"], manager_options=FAST) as c:
        await c.add_node()  # no exit code: the pods run until deleted
        t0 = time.monotonic()
        await c.client.create(JOB, job("slow", parallelism=2, completions=4, activeDeadlineSeconds=2), NS)
        j = await finished(c, "slow", timeout=10)
        assert time.monotonic() - t0 >= 1.0  # not before its time (startTime has second precision)
        failed = condition(j, "Failed")
        assert failed is not None and failed["reason"] == "DeadlineExceeded"
        assert failed["message"] == "Job was active longer than specified deadline"
        assert j["status"]["failed"] == 2 and j["status"].get("active", 0) == 0

        async def gone() -> bool:
            return not await pods_of(c, "slow")

        await c.until(gone, what="the running pods deleted")
        await wait_events(c, "slow", "DeadlineExceeded")


async def test_suspend_and_resume() -> None:
    async with InProcessCluster(controllers=["job"], manager_options=FAST) as c:
        await c.add_node()  # pods run until deleted
        await c.client.create(JOB, job("pause", parallelism=2, completions=2, suspend=True), NS)

        async def status(pred: Any, what: str) -> Obj:
            async def check() -> Obj | None:
                j = await c.client.get(JOB, "pause", NS)
                return j if pred(j) else None
            return await c.until(check, what=what)  # type: ignore[no-any-return]

        def suspended(j: Obj, s: str) -> bool:
            cond = condition(j, "Suspended")
            return cond is not None and cond["status"] == s

        j = await status(lambda j: suspended(j, "True"), "created suspended")
        assert "startTime" not in j["status"] and not await pods_of(c, "pause")
        assert condition(j, "Suspended")["reason"] == "JobSuspended"  # type: ignore[index]

        await c.client.patch(JOB, "pause", {"spec": {"suspend": False}}, NS)
        j = await status(lambda j: j["status"].get("active") == 2 and j["status"].get("ready") == 2, "running")
        assert condition(j, "Suspended")["reason"] == "JobResumed"  # type: ignore[index]
        first_start = j["status"]["startTime"]

        await c.client.patch(JOB, "pause", {"spec": {"suspend": True}}, NS)
        j = await status(lambda j: suspended(j, "True") and not j["status"].get("active"), "suspended again")

        async def no_pods() -> bool:
            return not await pods_of(c, "pause")

        await c.until(no_pods, what="pods of the suspended job deleted")
        # pods removed by suspend are not failures
        j = await c.client.get(JOB, "pause", NS)
        assert not j["status"].get("failed") and condition(j, "Failed") is None

        await asyncio.sleep(1.05)  # startTime has second precision
        await c.client.patch(JOB, "pause", {"spec": {"suspend": False}}, NS)
        j = await status(lambda j: j["status"].get("active") == 2 and suspended(j, "False"), "resumed")
        assert j["status"]["startTime"] > first_start  # the deadline clock restarts on resume
        evs = await wait_events(c, "pause", "Suspended", "Resumed", "SuccessfulDelete")
        assert ("Normal", "Suspended", "Job suspended") in evs and ("Normal", "Resumed", "Job resumed") in evs


async def test_pod_failure_policy_fail_job_and_ignore() -> None:
    async with InProcessCluster(controllers=["job"], manager_options=FAST) as c:
        codes = iter([3, 42])  # the first attempt is ignored, the second fails the Job
        await c.add_node(decide=lambda pod: next(codes, 0))
        pfp = {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}},
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
        ]}
        # backoffLimit 0: had the ignored failure counted, the Job would fail by backoff instead
        await c.client.create(JOB, job("policy", backoffLimit=0, podFailurePolicy=pfp), NS)
        j = await finished(c, "policy")
        failed = condition(j, "Failed")
        assert failed is not None and failed["reason"] == "PodFailurePolicy"
        pods = await pods_of(c, "policy")
        culprit = next(p for p in pods if p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 42)
        assert failed["message"] == (f"Container c for pod default/{culprit['metadata']['name']} failed with exit "
                                     "code 42 matching FailJob rule at index 0")
        assert condition(j, "FailureTarget")["reason"] == "PodFailurePolicy"  # type: ignore[index]
        assert j["status"]["failed"] == 1  # the ignored failure is not counted
        assert len(pods) == 2


async def test_deleted_job_releases_pod_finalizers() -> None:
    # No garbage collector runs here: the pods stay, but no Job is left to count them, so the
    # controller takes its finalizer off them rather than leave them undeletable.
    async with InProcessCluster(controllers=["job"], manager_options=FAST) as c:
        await c.add_node()
        await c.client.create(JOB, job("gone", parallelism=2, completions=2), NS)

        async def running() -> list[Obj] | None:
            pods = await pods_of(c, "gone")
            return pods if len(pods) == 2 and all(TRACKING_FINALIZER in p["metadata"]["finalizers"] for p in pods) \
                else None

        await c.until(running, what="two tracked pods")
        await c.client.delete(JOB, "gone", NS, propagation_policy="Orphan")

        async def released() -> bool:
            pods = await pods_of(c, "gone")
            return len(pods) == 2 and all(not p["metadata"].get("finalizers") for p in pods)

        await c.until(released, what="tracking finalizers removed from the orphans")


# -- controller restarts and fake time -------------------------------------------------------------


@contextlib.asynccontextmanager
async def job_controller(c: InProcessCluster, clock: Clock, **options: Any) -> AsyncIterator[JobController]:
    """A Job controller of our own (not the manager's), on ``clock``."""
    client = Client(ClientConfig(server=c.url), component="controller-manager")
    factory = SharedInformerFactory(client, clock=clock)
    recorder = EventSink(client, "controller-manager", clock=clock)
    recorder.start()
    ctx = ControllerContext(client, factory, clock, recorder, {"workers": 2, **FAST, **options})
    jc = JobController(ctx)
    factory.start()
    assert await factory.wait_for_cache_sync(10)
    stop = asyncio.Event()
    task = asyncio.create_task(jc.controller.run(stop))
    try:
        yield jc
    finally:
        stop.set()
        await task
        await recorder.stop()
        await factory.shutdown()
        await client.close()


async def test_finished_pod_deleted_while_controller_down_is_still_counted() -> None:
    async with InProcessCluster(controllers=()) as c:
        await c.client.create(JOB, job("steady", completions=1, exit_code="0"), NS)
        async with job_controller(c, RealClock()):
            pods = await c.until(lambda: pods_of(c, "steady"), what="the pod created")
        pod = pods[0]
        assert TRACKING_FINALIZER in pod["metadata"]["finalizers"]
        await c.add_node()  # the pod runs and succeeds while no controller watches

        async def succeeded() -> bool:
            p = (await pods_of(c, "steady"))[0]
            return p["status"].get("phase") == "Succeeded"

        await c.until(succeeded, what="pod succeeded")
        await c.client.delete(POD, pod["metadata"]["name"], NS)  # kept by the finalizer
        assert (await pods_of(c, "steady"))[0]["metadata"].get("deletionTimestamp")
        async with job_controller(c, RealClock()):
            j = await finished(c, "steady")
        assert condition(j, "Complete") is not None and j["status"]["succeeded"] == 1
        assert not j["status"].get("failed")

        async def gone() -> bool:
            return not await pods_of(c, "steady")

        await c.until(gone, what="the counted pod finally deleted")


async def test_retries_wait_for_exponential_backoff_on_a_fake_clock() -> None:
    # Pod finish times come from the real clock; a fake clock behind it makes each failure
    # count as seen at the controller's "now", so the delays are exact: 10 s, then 20 s.
    clock = FakeClock(wall_start=time.time() - 3600)
    async with InProcessCluster(controllers=()) as c:
        await c.add_node()
        async with job_controller(c, clock, job_backoff_base=10.0):
            await c.client.create(JOB, job("patient", exit_code="1", backoffLimit=5), NS)

            async def failed_pods(n: int) -> bool:
                pods = await pods_of(c, "patient")
                j = await c.client.get(JOB, "patient", NS)
                return len(pods) == n and all(p["status"].get("phase") == "Failed" for p in pods) and \
                    j["status"].get("failed") == n

            async def pods(n: int) -> bool:
                return len(await pods_of(c, "patient")) == n

            await c.until(lambda: failed_pods(1), what="first failure counted")
            clock.advance(9.5)
            await asyncio.sleep(0.3)
            assert await pods(1), "replaced before the 10 s backoff"
            clock.advance(1.0)
            await c.until(lambda: failed_pods(2), what="second attempt after 10 s")
            clock.advance(19.0)
            await asyncio.sleep(0.3)
            assert await pods(2), "replaced before the 20 s backoff"
            clock.advance(1.5)
            await c.until(lambda: failed_pods(3), what="third attempt after 20 s")


# -- pure helpers ----------------------------------------------------------------------------------


def test_completed_indexes_format_and_parse() -> None:
    assert str(Intervals().with_indexes([0, 1, 2, 4])) == "0-2,4"
    assert str(Intervals().with_indexes([0, 1])) == "0,1"
    assert str(Intervals().with_indexes([3, 0, 7, 1, 5, 6])) == "0,1,3,5-7"
    iv = Intervals.parse("0-2,4,6-9", 8)
    assert str(iv) == "0-2,4,6,7" and iv.total() == 6 and iv.has(4) and not iv.has(5)
    assert str(Intervals.parse("1,x,3-4", 10).with_indexes([2])) == "1-4"
    assert Intervals.parse("", 3).total() == 0


def _failed_pod(code: int, container: str = "c", conditions: list[Obj] | None = None) -> Obj:
    return {"metadata": {"namespace": "ns", "name": "p"},
            "status": {"phase": "Failed", "conditions": conditions or [],
                       "containerStatuses": [{"name": container, "state": {"terminated": {"exitCode": code}}}]}}


def test_pod_failure_policy_matching() -> None:
    pfp = {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
        {"action": "Count", "onExitCodes": {"containerName": "c", "operator": "In", "values": [2]}},
    ]}
    assert match_pod_failure_policy(pfp, _failed_pod(1)) == (None, True, None)
    assert match_pod_failure_policy(pfp, _failed_pod(2)) == (None, True, "Count")
    assert match_pod_failure_policy(pfp, _failed_pod(2, "other")) == (None, True, None)
    msg, count, action = match_pod_failure_policy(pfp, _failed_pod(7))
    assert action == "FailJob" and count and msg == \
        "Container c for pod ns/p failed with exit code 7 matching FailJob rule at index 1"
    disrupted = _failed_pod(7, conditions=[{"type": "DisruptionTarget", "status": "True"}])
    assert match_pod_failure_policy(pfp, disrupted) == (None, False, "Ignore")
    assert match_pod_failure_policy(None, _failed_pod(7)) == (None, True, None)


def test_backoff_doubles_up_to_the_cap_and_resets_on_success() -> None:
    assert backoff_remaining(0, None, 100.0, 10, 360) == 0
    assert backoff_remaining(1, 100.0, 100.0, 10, 360) == 10
    assert backoff_remaining(3, 100.0, 105.0, 10, 360) == 35
    assert backoff_remaining(9, 100.0, 100.0, 10, 360) == 360
    assert backoff_remaining(2, 100.0, 130.0, 10, 360) == 0

    def pod(phase: str, finished: str) -> Obj:
        return {"metadata": {}, "status": {"phase": phase, "containerStatuses": [
            {"name": "c", "state": {"terminated": {"finishedAt": finished}}}]}}

    rec = new_backoff_record(None, [], [pod("Failed", "2024-01-01T00:00:05Z")], now=2e9)
    assert rec.failures_after_last_success == 1
    rec = new_backoff_record(rec, [], [pod("Failed", "2024-01-01T00:00:09Z")], now=2e9)
    assert rec.failures_after_last_success == 2
    # a success resets the count; only failures after it count again
    rec = new_backoff_record(rec, [pod("Succeeded", "2024-01-01T00:00:10Z")],
                             [pod("Failed", "2024-01-01T00:00:08Z"), pod("Failed", "2024-01-01T00:00:12Z")], now=2e9)
    assert rec.failures_after_last_success == 1 and rec.last_failure is not None
    # finish times from a clock ahead of the controller's count as "now"
    rec = new_backoff_record(BackoffRecord(), [], [pod("Failed", "2030-01-01T00:00:00Z")], now=1e9)
    assert rec.last_failure == 1e9
