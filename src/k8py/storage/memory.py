"""An in-memory Store: the fake for fast tests of the layers above the store.

Same semantics as the real backends (it runs the same contract suite), no
durability. Not for production use.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator

from k8py.storage.interface import (
    MAX_LIST_LIMIT,
    CompactedError,
    ConflictError,
    DeleteResult,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    StoreUnavailableError,
    WatchResponse,
)


class _MemWatch:
    """A watch on a :class:`MemoryStore`. Live events wait in a queue of at most
    ``store.watch_buffer`` responses; a watcher that lets it fill falls behind:
    the queue is dropped and it replays from the log, from its first
    undelivered revision, when it reads again (as the SQLite store does)."""

    def __init__(self, store: MemoryStore, prefix: str, start: int, progress: bool) -> None:
        self.store = store
        self.prefix = prefix
        self.start = start
        self.progress = progress
        self.queue: asyncio.Queue[WatchResponse | None] = asyncio.Queue()
        self.closed = False
        self.started = False
        if start == 0:
            self.start = store._rev + 1  # "from now" means from the moment watch() was called

    def __aiter__(self) -> AsyncIterator[WatchResponse]:
        return self

    async def __anext__(self) -> WatchResponse:
        if self.closed:
            raise StopAsyncIteration
        if not self.started:
            self.started = True
            while not self.queue.empty():  # a fall-behind wake-up: the replay below supersedes it
                if self.queue.get_nowait() is None:
                    raise StopAsyncIteration
            s = self.store
            if self.start and self.start <= s._compacted:
                raise CompactedError(self.start, s._compacted)
            history = [e for e in s._log if e.revision >= self.start and e.kv.key.startswith(self.prefix)]
            s._watchers.append(self)
            if history:
                return WatchResponse(history, s._rev)
        if self.closed:
            raise StopAsyncIteration
        if self.progress:
            try:
                async with asyncio.timeout(self.store.progress_interval):
                    item = await self.queue.get()
            except TimeoutError:
                return WatchResponse([], self.store._rev)
        else:
            item = await self.queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def _deliver(self, events: list[Event], rev: int) -> None:
        mine = [e for e in events if e.kv.key.startswith(self.prefix) and e.revision >= self.start]
        if not mine:
            return
        if self.queue.qsize() >= self.store.watch_buffer:
            self._fall_behind(mine[0].revision)
            return
        self.queue.put_nowait(WatchResponse(mine, rev))

    def _fall_behind(self, first_new: int) -> None:
        """Drop the queue; the next read replays the log from the first revision not read."""
        first = first_new
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if item is not None and item.events:
                first = min(first, item.events[0].revision)
        self.start = first
        self.started = False
        self.store._watchers.remove(self)
        self.queue.put_nowait(WatchResponse([], first - 1))  # wakes a reader waiting on the queue

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self in self.store._watchers:
                self.store._watchers.remove(self)
            self.queue.put_nowait(None)


class MemoryStore:
    def __init__(self, progress_interval: float = 5.0, watch_buffer: int = 1000) -> None:
        self._rev = 0
        self._compacted = 0
        self._current: dict[str, KeyValue] = {}
        self._keys: list[str] = []  # sorted current keys
        self._log: list[Event] = []
        self._watchers: list[_MemWatch] = []
        self._closed = False
        self.progress_interval = progress_interval
        self.watch_buffer = watch_buffer  # responses queued per live watcher before it falls behind

    async def start(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for w in list(self._watchers):
            await w.close()

    def _check(self) -> None:
        if self._closed:
            raise StoreUnavailableError("store is closed")

    async def current_revision(self) -> int:
        return self._rev

    async def health(self) -> None:
        self._check()

    async def compacted_revision(self) -> int:
        return self._compacted

    def _commit(self, ev: Event) -> int:
        self._log.append(ev)
        for w in list(self._watchers):
            w._deliver([ev], self._rev)
        return self._rev

    async def create(self, key: str, value: bytes) -> int:
        self._check()
        if key in self._current:
            raise KeyExistsError(key, self._current[key])
        self._rev += 1
        kv = KeyValue(key, value, self._rev, self._rev)
        self._current[key] = kv
        bisect.insort(self._keys, key)
        return self._commit(Event(EventType.PUT, kv, None))

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        self._check()
        cur = self._current.get(key)
        if cur is None:
            raise KeyNotFoundError(key)
        if cur.mod_revision != expected_revision:
            raise ConflictError(key, expected_revision, cur)
        self._rev += 1
        kv = KeyValue(key, value, cur.create_revision, self._rev)
        self._current[key] = kv
        return self._commit(Event(EventType.PUT, kv, cur))

    async def delete(self, key: str, expected_revision: int | None = None) -> DeleteResult:
        self._check()
        cur = self._current.get(key)
        if cur is None:
            raise KeyNotFoundError(key)
        if expected_revision is not None and cur.mod_revision != expected_revision:
            raise ConflictError(key, expected_revision, cur)
        self._rev += 1
        del self._current[key]
        self._keys.pop(bisect.bisect_left(self._keys, key))
        self._commit(Event(EventType.DELETE, KeyValue(key, cur.value, cur.create_revision, self._rev), cur))
        return DeleteResult(self._rev, cur)

    def _state_at(self, revision: int) -> dict[str, KeyValue]:
        if revision <= self._compacted:
            raise CompactedError(revision, self._compacted)
        if revision > self._rev:
            raise FutureRevisionError(revision, self._rev)
        state = dict(self._current)
        for ev in reversed(self._log):
            if ev.revision <= revision:
                break
            if ev.prev_kv is None:
                state.pop(ev.kv.key, None)
            else:
                state[ev.kv.key] = ev.prev_kv
        return state

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        self._check()
        if revision:
            return self._state_at(revision).get(key)
        return self._current.get(key)

    async def list(self, prefix: str, *, start_key: str | None = None, limit: int = 0, revision: int = 0,
                   count: bool = False) -> ListResult:
        self._check()
        if revision and revision != self._rev:
            state = self._state_at(revision)
            keys = sorted(k for k in state if k.startswith(prefix))
        else:
            state = self._current
            lo = bisect.bisect_left(self._keys, prefix)
            keys = []
            for k in self._keys[lo:]:
                if not k.startswith(prefix):
                    break
                keys.append(k)
            revision = self._rev
        total = len(keys)
        limit = min(limit, MAX_LIST_LIMIT)
        if start_key is not None:
            keys = keys[bisect.bisect_left(keys, start_key):]
        more = bool(limit) and len(keys) > limit
        if limit:
            keys = keys[:limit]
        return ListResult([state[k] for k in keys], revision, more, total if count else 0)

    def watch(self, prefix: str, start_revision: int, *, progress_notify: bool = False) -> _MemWatch:
        self._check()
        return _MemWatch(self, prefix, start_revision, progress_notify)

    async def compact(self, revision: int) -> None:
        if revision - 1 <= self._compacted:
            return
        if revision > self._rev:
            raise FutureRevisionError(revision, self._rev)
        self._log = [e for e in self._log if e.revision >= revision]
        self._compacted = revision - 1  # the highest revision no longer readable
