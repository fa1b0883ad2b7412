"""The bounded-frequency sync loop: requests coalesce, a minimum interval, retries, periodic syncs."""

from __future__ import annotations

import asyncio
import itertools

from k8py.client.syncloop import SyncLoop


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
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
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
    finally:
        stop.set()
        await task


async def test_max_interval_syncs_without_requests() -> None:
    runs = 0

    async def sync() -> bool:
        nonlocal runs
        runs += 1
        return True

    loop = SyncLoop(sync, min_interval=0.01, max_interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        async with asyncio.timeout(5):
            while runs < 3:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task
