"""The bounded-frequency sync loop: requests coalesce, a minimum interval, retries, periodic syncs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator

import pytest

from k8py.client.syncloop import SyncLoop


@contextlib.asynccontextmanager
async def running(loop: SyncLoop) -> AsyncIterator[None]:
    """``loop`` runs for the block; then it is stopped and must end."""
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_requests_coalesce_and_failures_are_retried() -> None:
    runs: list[float] = []
    fail = [True]

    async def sync() -> bool:
        runs.append(asyncio.get_running_loop().time())
        if fail[0]:
            fail[0] = False
            return False  # the first sync fails: retried after retry_interval
        return True

    loop = SyncLoop(sync, min_interval=0.2, retry_interval=0.1)
    async with running(loop):
        async with asyncio.timeout(5):
            while len(runs) < 2:  # the first sync (at start) and its retry
                await asyncio.sleep(0.01)
            for _ in range(20):  # a burst of requests: one more sync, not twenty
                loop.request()
            while len(runs) < 3:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # a window in which no further sync may come
        assert len(runs) == 3
        assert all(b - a >= 0.09 for a, b in itertools.pairwise(runs))  # never closer than allowed


async def test_max_interval_syncs_without_requests() -> None:
    runs = 0

    async def sync() -> bool:
        nonlocal runs
        runs += 1
        return True

    loop = SyncLoop(sync, min_interval=0.01, max_interval=0.05)
    async with running(loop):
        async with asyncio.timeout(5):
            while runs < 3:
                await asyncio.sleep(0.01)


async def test_a_request_during_the_retry_wait_runs_without_waiting_for_the_retry() -> None:
    """kube's RetryAfter only brings the next run forward: a change while a failure waits for its
    retry is synced once the minimum interval allows, not after the retry interval."""
    runs: list[float] = []

    async def sync() -> bool:
        runs.append(time.monotonic())
        return len(runs) > 1  # the first fails

    loop = SyncLoop(sync, min_interval=0.05, retry_interval=30.0)
    async with running(loop):
        async with asyncio.timeout(5):
            while not runs:
                await asyncio.sleep(0.01)
            assert loop.retry_at is not None
            loop.request()
            while len(runs) < 2:
                await asyncio.sleep(0.01)
        assert runs[1] - runs[0] < 5  # long before the 30 s retry
        assert loop.retry_at is None  # it succeeded: no retry pending


async def test_sync_now_before_run_counts_as_the_first_sync() -> None:
    calls: list[str] = []

    async def sync() -> bool:
        calls.append("loop")
        return True

    async def first() -> bool:
        calls.append("first")
        return True

    loop = SyncLoop(sync, min_interval=0.2)
    assert await loop.sync_now(first)
    started = loop.last_sync
    async with running(loop):
        await asyncio.sleep(0.3)  # a window in which the loop must not sync on its own
        assert calls == ["first"]
        loop.request()
        async with asyncio.timeout(5):
            while len(calls) < 2:
                await asyncio.sleep(0.01)
        assert calls == ["first", "loop"] and loop.last_sync - started >= 0.2


async def test_a_first_sync_that_raises_reaches_the_caller() -> None:
    async def boom() -> bool:
        raise RuntimeError("first sync failed")

    async def sync() -> bool:
        return True

    loop = SyncLoop(sync, min_interval=0.01)
    with pytest.raises(RuntimeError, match="first sync failed"):
        await loop.sync_now(boom)
