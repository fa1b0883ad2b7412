"""Work queue semantics (client-go's) on a fake clock: nothing here waits in real time."""

from __future__ import annotations

import asyncio

import pytest

from k8py.client import (
    BucketRateLimiter,
    FakeClock,
    ItemExponentialRateLimiter,
    MaxOfRateLimiter,
    ShutDown,
    WorkQueue,
    default_controller_rate_limiter,
)


def q(clock: FakeClock | None = None) -> WorkQueue[str]:
    c = clock or FakeClock()
    return WorkQueue("t", clock=c, rate_limiter=ItemExponentialRateLimiter(1.0, 60.0))


async def test_dedup_and_fifo() -> None:
    wq = q()
    for k in ("a", "b", "a", "c", "b"):
        wq.add(k)
    assert len(wq) == 3
    assert [await wq.get() for _ in range(3)] == ["a", "b", "c"]
    assert wq.metrics.adds == 3


async def test_never_two_workers_and_readd_while_processing() -> None:
    wq = q()
    wq.add("a")
    got = await wq.get()
    assert got == "a" and wq.processing == 1
    wq.add("a")  # while processing: remembered, not handed out
    wq.add("a")
    assert len(wq) == 0 and wq.get_nowait() is None
    wq.done("a")
    assert len(wq) == 1  # queued again, once
    assert await wq.get() == "a"
    wq.done("a")
    assert len(wq) == 0 and wq.processing == 0


async def test_waiting_getters_wake_one_per_item() -> None:
    wq = q()
    results: list[str] = []

    async def worker() -> None:
        k = await wq.get()
        results.append(k)

    tasks = [asyncio.create_task(worker()) for _ in range(3)]
    await asyncio.sleep(0)
    wq.add("x")
    wq.add("y")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sorted(results) == ["x", "y"]
    wq.shut_down()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, ShutDown) for r in done) == 1


async def test_cancelled_getter_passes_wakeup_on() -> None:
    wq = q()
    t1 = asyncio.create_task(wq.get())
    t2 = asyncio.create_task(wq.get())
    await asyncio.sleep(0)
    wq.add("a")  # wakes t1 ...
    t1.cancel()  # ... which is cancelled before it runs: t2 must get the item
    assert await asyncio.wait_for(t2, 1) == "a"
    with pytest.raises(asyncio.CancelledError):
        await t1


async def test_add_after_with_fake_clock() -> None:
    clock = FakeClock()
    wq = q(clock)
    wq.add_after("a", 10)
    wq.add_after("a", 5)  # earlier wins
    wq.add_after("a", 7)  # later is ignored
    wq.add_after("b", 0)  # immediate
    assert len(wq) == 1 and wq.waiting == 1
    assert await wq.get() == "b"
    clock.advance(4.9)
    assert len(wq) == 0
    clock.advance(0.1)
    assert len(wq) == 1 and wq.waiting == 0
    getter = asyncio.create_task(wq.get())
    assert await getter == "a"
    clock.advance(100)
    assert len(wq) == 0  # the cancelled 10 s timer did not fire


async def test_rate_limited_backoff_forget_and_requeues() -> None:
    clock = FakeClock()
    wq = q(clock)
    for expected in (1.0, 2.0, 4.0, 8.0):
        wq.add_rate_limited("k")
        clock.advance(expected - 0.01)
        assert len(wq) == 0
        clock.advance(0.01)
        assert await wq.get() == "k"
        wq.done("k")
    assert wq.num_requeues("k") == 4
    wq.forget("k")
    assert wq.num_requeues("k") == 0
    wq.add_rate_limited("k")
    clock.advance(1.0)
    assert len(wq) == 1
    assert wq.metrics.retries == 5


def test_rate_limiters() -> None:
    exp = ItemExponentialRateLimiter(0.005, 1000)
    delays = [exp.when("a") for _ in range(20)]
    assert delays[:3] == [0.005, 0.01, 0.02] and delays[-1] == 1000
    assert exp.when("b") == 0.005
    for _ in range(200):
        exp.when("c")
    assert exp.when("c") == 1000  # no overflow

    clock = FakeClock()
    bucket = BucketRateLimiter(qps=10, burst=2, clock=clock)
    assert [bucket.when(i) for i in range(4)] == [0.0, 0.0, pytest.approx(0.1), pytest.approx(0.2)]
    clock.advance(10)
    assert bucket.when("x") == 0.0

    m = MaxOfRateLimiter(ItemExponentialRateLimiter(1, 100), BucketRateLimiter(1, 1, clock))
    assert m.when("a") == 1 and m.when("a") == 2
    assert m.num_requeues("a") == 2
    m.forget("a")
    assert m.num_requeues("a") == 0
    d = default_controller_rate_limiter(clock)
    assert d.when("z") == 0.005


async def test_shutdown_semantics() -> None:
    clock = FakeClock()
    wq = q(clock)
    wq.add("a")
    wq.add("b")
    wq.add_after("late", 5)
    wq.shut_down()
    wq.add("c")  # ignored
    clock.advance(10)  # the delayed add was dropped
    assert await wq.get() == "a"  # what was queued is still handed out (client-go's Get)
    assert await wq.get() == "b"
    with pytest.raises(ShutDown):
        await wq.get()
    assert wq.shutting_down


async def test_shutdown_with_drain_waits_for_processing() -> None:
    wq = q()
    wq.add("a")
    await wq.get()
    drain = asyncio.create_task(wq.shut_down_with_drain())
    await asyncio.sleep(0)
    assert not drain.done()
    wq.done("a")
    await asyncio.wait_for(drain, 1)


async def test_wait_metrics() -> None:
    clock = FakeClock()
    wq = q(clock)
    wq.add("a")
    clock.advance(3)
    await wq.get()
    assert wq.metrics.wait_seconds_total == 3 and wq.metrics.wait_seconds_max == 3 and wq.metrics.gets == 1
