"""The in-memory fake store passes the same contract as the real backends."""

from __future__ import annotations

import pytest

from k8py.storage.memory import MemoryStore

try:
    from .contract import StoreContract, collect
except ImportError:
    from contract import StoreContract, collect  # type: ignore[no-redef]


class TestMemoryContract(StoreContract):
    @pytest.fixture
    async def store(self):
        s = MemoryStore(progress_interval=0.2)
        await s.start()
        yield s
        await s.close()


class TestMemoryContractTinyBuffer(StoreContract):
    """The contract again with 2-response watcher queues: every watch goes through the
    fall-behind and replay path."""

    @pytest.fixture
    async def store(self):
        s = MemoryStore(progress_interval=0.2, watch_buffer=2)
        await s.start()
        yield s
        await s.close()


async def test_slow_watcher_queue_is_bounded_and_it_catches_up() -> None:
    store = MemoryStore(watch_buffer=10)
    await store.start()
    w = store.watch("/s/", 0)
    first = await store.create("/s/first", b"v")
    assert [e.kv.key for e in (await w.__anext__()).events] == ["/s/first"]  # live now
    for i in range(300):  # the consumer reads nothing meanwhile
        await store.create(f"/s/{i:03}", b"v")
        assert w.queue.qsize() <= 10
    events = await collect(w, 300)
    assert [e.kv.key for e in events] == [f"/s/{i:03}" for i in range(300)]
    assert [e.revision for e in events] == list(range(first + 1, first + 301))
    r = await store.create("/s/after", b"v")  # live again
    assert [e.revision for e in await collect(w, 1)] == [r]
    await w.close()
    await store.close()
