"""The controller runner: retries, requeues, metrics (fake clock), and a run against the server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from k8py.client import (
    OWNER_UID_INDEX,
    Client,
    ConflictError,
    Controller,
    FakeClock,
    Informer,
    ItemExponentialRateLimiter,
    Result,
    WorkQueue,
)

from .conftest import cm, until

CM = ("v1", "ConfigMap")


def make(reconcile: Any, clock: FakeClock, **kw: Any) -> Controller:
    q: WorkQueue[str] = WorkQueue("t", clock=clock, rate_limiter=ItemExponentialRateLimiter(1.0, 100.0))
    return Controller("t", reconcile, q, **kw)


async def test_error_retries_with_backoff_then_forgets(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    calls: list[str] = []

    async def reconcile(key: str) -> None:
        calls.append(key)
        if len(calls) <= 2:
            raise RuntimeError("transient")

    c = make(reconcile, clock)
    c.enqueue_key("ns/a")
    with caplog.at_level(logging.ERROR, logger="k8py.client.controller"):
        assert await c.process_next()
    assert "reconcile ns/a failed" in caplog.text
    assert not await c.process_next()  # backing off: nothing queued
    clock.advance(1.0)
    assert await c.process_next()
    assert c.queue.num_requeues("ns/a") == 2
    clock.advance(1.9)
    assert not await c.process_next()
    clock.advance(0.1)  # second backoff is 2 s
    assert await c.process_next()
    assert calls == ["ns/a"] * 3
    assert c.queue.num_requeues("ns/a") == 0  # success forgets
    s = c.stats()
    assert s["reconciles"] == 3 and s["errors"] == 2 and s["requeues"] == 2 and s["queue_depth"] == 0


async def test_results_requeue_and_requeue_after() -> None:
    clock = FakeClock()
    results = {"a": Result(requeue_after=30), "b": Result(requeue=True), "c": None}

    async def reconcile(key: str) -> Result | None:
        return results[key]

    c = make(reconcile, clock)
    for k in "abc":
        c.enqueue_key(k)
    for _ in range(3):
        await c.process_next()
    assert c.queue.num_requeues("a") == 0 and c.queue.num_requeues("b") == 1
    assert c.metrics.errors == 0
    clock.advance(1.0)
    assert c.queue.get_nowait() == "b"
    c.queue.done("b")
    clock.advance(28.9)
    assert len(c.queue) == 0
    clock.advance(0.1)
    assert c.queue.get_nowait() == "a"


async def test_conflicts_are_quiet_and_max_retries_drops(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()

    async def reconcile(key: str) -> None:
        raise ConflictError({"reason": "Conflict", "code": 409, "message": "the object has been modified"})

    c = make(reconcile, clock, max_retries=2)
    c.enqueue_key("k")
    with caplog.at_level(logging.DEBUG, logger="k8py.client.controller"):
        for _ in range(3):
            clock.advance(100)
            assert await c.process_next()
    assert "Traceback" not in caplog.text and "will retry" in caplog.text
    assert "dropping k after 2 retries" in caplog.text
    assert c.metrics.dropped == 1 and c.queue.num_requeues("k") == 0
    clock.advance(1000)
    assert len(c.queue) == 0 and c.queue.waiting == 0


async def test_run_with_informer_workers_and_stop(client: Client) -> None:
    active: set[str] = set()
    overlap: list[str] = []
    done: list[str] = []

    async def reconcile(key: str) -> None:
        if key in active:
            overlap.append(key)
        active.add(key)
        await asyncio.sleep(0.01)
        active.discard(key)
        done.append(key)

    inf = Informer(client, CM, "default", backoff=(0.01, 0.05))
    c = Controller("cms", reconcile, workers=4)
    c.watch(inf)
    await client.create(CM, cm("before"))
    stop = asyncio.Event()
    inf.start()
    runner = asyncio.create_task(c.run(stop))
    try:
        await until(lambda: "default/before" in done, what="initial reconcile")
        for i in range(5):
            await client.create(CM, cm(f"c{i}"))
        obj = await client.get(CM, "c0")
        for n in range(5):  # a burst of updates to one key while it is being reconciled
            obj["data"] = {"n": str(n)}
            obj = await client.update(CM, obj)
        await until(lambda: {f"default/c{i}" for i in range(5)} <= set(done), what="reconciles")
        await until(lambda: len(c.queue) == 0 and c.queue.processing == 0, what="idle queue")
        assert not overlap, "a key was reconciled by two workers at once"
        assert done.count("default/c0") <= 7
    finally:
        stop.set()
        await asyncio.wait_for(runner, 5)
        await inf.stop()
    assert c.queue.shutting_down and c.metrics.active_workers == 0


async def test_watch_maps_dependents_to_owner(client: Client) -> None:
    seen: list[str] = []

    async def reconcile(key: str) -> None:
        seen.append(key)

    owner = await client.create(CM, cm("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    inf = Informer(client, CM, "default", backoff=(0.01, 0.05))
    c = Controller("owners", reconcile)

    def owners(o: dict[str, Any]) -> list[str]:
        ns = o["metadata"]["namespace"]
        return [f"{ns}/{r['name']}" for r in o["metadata"].get("ownerReferences") or []]

    c.watch(inf, owners)
    stop = asyncio.Event()
    inf.start()
    runner = asyncio.create_task(c.run(stop))
    try:
        dep = cm("dep")
        dep["metadata"]["ownerReferences"] = [ref]
        await client.create(CM, dep)
        await until(lambda: "default/owner" in seen, what="owner enqueued for its dependent")
        assert [o["metadata"]["name"] for o in inf.store.by_index(OWNER_UID_INDEX, ref["uid"])] == ["dep"]
    finally:
        stop.set()
        await asyncio.wait_for(runner, 5)
        await inf.stop()


async def test_inflight_reconcile_finishes_on_stop() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def reconcile(key: str) -> None:
        started.set()
        await release.wait()
        finished.append(key)

    c = Controller("slow", reconcile, workers=1)
    c.enqueue_key("k")
    stop = asyncio.Event()
    runner = asyncio.create_task(c.run(stop))
    await asyncio.wait_for(started.wait(), 2)
    c.enqueue_key("other")  # queued but not started before stop: not taken
    stop.set()
    await asyncio.sleep(0.01)
    assert not runner.done()
    release.set()
    await asyncio.wait_for(runner, 2)
    assert finished == ["k"]


async def test_workers_wait_for_caches_the_controller_only_reads() -> None:
    """``wait_for``: a cache the controller reads from its own handlers (no keys enqueued for its
    events) still holds the workers back until it has synced."""

    class SlowCache:
        def __init__(self) -> None:
            self.synced = asyncio.Event()

        async def wait_for_sync(self, timeout: float | None = None) -> bool:
            await self.synced.wait()
            return True

    cache = SlowCache()
    seen: list[str] = []

    async def reconcile(key: str) -> None:
        seen.append(key)

    c = Controller("w", reconcile, wait_for=[cache])  # type: ignore[list-item]
    c.enqueue_key("k")
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    for _ in range(20):
        await asyncio.sleep(0)
    assert seen == []  # not synced: no worker ran
    cache.synced.set()
    await until(lambda: seen == ["k"], 5, "the reconcile after the sync")
    stop.set()
    await task
