"""The backend-neutral store contract: etcd v3 semantics as k8py needs them.

A backend runs it by subclassing :class:`StoreContract` in its own test module
and providing an async ``store`` fixture that yields a *started* store::

    class TestMyBackendContract(StoreContract):
        @pytest.fixture
        async def store(self):
            s = MyStore(...); await s.start()
            yield s
            await s.close()

Requirements on the fixture's store:

- each test gets its own store (or at least its own key space: every test
  works under a unique ``root`` prefix, but compaction tests assume nobody
  else compacts);
- progress notifications on idle watches arrive within ``PROGRESS_WAIT``
  seconds (SQLite: ``progress_interval``; etcd: the server's
  ``--experimental-watch-progress-notify-interval``).

Nothing here knows which backend it runs against.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from k8py.storage.interface import (
    CompactedError,
    ConflictError,
    DeleteResult,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    Store,
    Watch,
    WatchResponse,
)

PROGRESS_WAIT = 5.0
EVENT_WAIT = 5.0


async def next_response(w: Watch, timeout: float = EVENT_WAIT) -> WatchResponse:
    return await asyncio.wait_for(w.__anext__(), timeout)


async def collect(w: Watch, n: int, timeout: float = EVENT_WAIT) -> list[Event]:
    """The next ``n`` events of ``w`` (progress notifications skipped)."""
    events: list[Event] = []

    async def run() -> None:
        while len(events) < n:
            resp = await w.__anext__()
            events.extend(resp.events)

    await asyncio.wait_for(run(), timeout)
    assert len(events) == n, f"expected {n} events, got {len(events)}: {events}"
    return events


async def assert_quiet(w: Watch, wait: float = 0.2) -> None:
    """No event arrives within ``wait`` seconds (progress notifications allowed)."""

    async def run() -> list[Event]:
        while True:
            resp = await w.__anext__()
            if resp.events:
                return resp.events

    task = asyncio.ensure_future(run())
    done, _ = await asyncio.wait({task}, timeout=wait)
    if done:
        pytest.fail(f"unexpected events: {task.result()}")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def summary(events: list[Event]) -> list[tuple[str, str, bytes, int]]:
    return [(e.type.value, e.kv.key, e.kv.value, e.kv.mod_revision) for e in events]


class StoreContract:
    """Every backend passes these. Needs a ``store`` fixture (see module doc)."""

    @pytest.fixture
    def root(self) -> str:
        return f"/contract-{uuid.uuid4().hex[:8]}/"

    # ------------------------------------------------------------------ basics

    async def test_is_a_store(self, store: Store) -> None:
        assert isinstance(store, Store)

    async def test_create_then_get(self, store: Store, root: str) -> None:
        before = await store.current_revision()
        rev = await store.create(root + "a", b"one")
        assert rev > before
        assert await store.current_revision() == rev
        kv = await store.get(root + "a")
        assert kv == KeyValue(root + "a", b"one", rev, rev)

    async def test_get_missing_is_none(self, store: Store, root: str) -> None:
        assert await store.get(root + "nothing") is None

    async def test_empty_value(self, store: Store, root: str) -> None:
        rev = await store.create(root + "e", b"")
        assert await store.get(root + "e") == KeyValue(root + "e", b"", rev, rev)

    async def test_create_existing_raises_with_current(self, store: Store, root: str) -> None:
        rev = await store.create(root + "a", b"one")
        with pytest.raises(KeyExistsError) as info:
            await store.create(root + "a", b"two")
        assert info.value.key == root + "a"
        if info.value.current is not None:
            assert info.value.current == KeyValue(root + "a", b"one", rev, rev)
        assert (await store.get(root + "a")).value == b"one"  # type: ignore[union-attr]
        assert await store.current_revision() == rev

    async def test_update_with_matching_revision(self, store: Store, root: str) -> None:
        r1 = await store.create(root + "a", b"one")
        r2 = await store.update(root + "a", b"two", r1)
        assert r2 > r1
        assert await store.get(root + "a") == KeyValue(root + "a", b"two", r1, r2)
        r3 = await store.update(root + "a", b"three", r2)
        assert await store.get(root + "a") == KeyValue(root + "a", b"three", r1, r3)

    async def test_update_with_stale_revision_conflicts(self, store: Store, root: str) -> None:
        r1 = await store.create(root + "a", b"one")
        r2 = await store.update(root + "a", b"two", r1)
        with pytest.raises(ConflictError) as info:
            await store.update(root + "a", b"three", r1)
        err = info.value
        assert err.key == root + "a" and err.expected == r1
        assert err.current == KeyValue(root + "a", b"two", r1, r2)
        assert (await store.get(root + "a")).value == b"two"  # type: ignore[union-attr]
        assert await store.current_revision() == r2

    async def test_update_missing_key(self, store: Store, root: str) -> None:
        with pytest.raises(KeyNotFoundError) as info:
            await store.update(root + "nope", b"x", 1)
        assert info.value.key == root + "nope"

    async def test_delete_missing_key(self, store: Store, root: str) -> None:
        with pytest.raises(KeyNotFoundError):
            await store.delete(root + "nope")
        with pytest.raises(KeyNotFoundError):
            await store.delete(root + "nope", 1)

    async def test_delete_unconditional(self, store: Store, root: str) -> None:
        r1 = await store.create(root + "a", b"one")
        res = await store.delete(root + "a")
        assert isinstance(res, DeleteResult)
        assert res.revision > r1
        assert res.prev_kv == KeyValue(root + "a", b"one", r1, r1)
        assert await store.get(root + "a") is None
        assert await store.current_revision() == res.revision
        with pytest.raises(KeyNotFoundError):
            await store.delete(root + "a")

    async def test_delete_with_expected_revision(self, store: Store, root: str) -> None:
        r1 = await store.create(root + "a", b"one")
        r2 = await store.update(root + "a", b"two", r1)
        with pytest.raises(ConflictError) as info:
            await store.delete(root + "a", r1)
        assert info.value.current == KeyValue(root + "a", b"two", r1, r2)
        assert await store.get(root + "a") is not None
        res = await store.delete(root + "a", r2)
        assert res.prev_kv == KeyValue(root + "a", b"two", r1, r2)
        assert await store.get(root + "a") is None

    async def test_recreate_after_delete_is_a_new_incarnation(self, store: Store, root: str) -> None:
        r1 = await store.create(root + "a", b"one")
        await store.delete(root + "a")
        r3 = await store.create(root + "a", b"again")
        assert await store.get(root + "a") == KeyValue(root + "a", b"again", r3, r3)
        assert r3 > r1
        with pytest.raises(ConflictError):
            await store.update(root + "a", b"x", r1)

    async def test_get_at_past_revisions(self, store: Store, root: str) -> None:
        k = root + "a"
        r0 = await store.create(root + "other", b"-")
        r1 = await store.create(k, b"one")
        r2 = await store.update(k, b"two", r1)
        r3 = (await store.delete(k)).revision
        r4 = await store.create(k, b"four")
        assert await store.get(k, r0) is None
        assert await store.get(k, r1) == KeyValue(k, b"one", r1, r1)
        assert await store.get(k, r2) == KeyValue(k, b"two", r1, r2)
        assert await store.get(k, r3) is None
        assert await store.get(k, r4) == KeyValue(k, b"four", r4, r4)
        assert await store.get(k) == KeyValue(k, b"four", r4, r4)

    async def test_revision_is_global_and_monotonic(self, store: Store, root: str) -> None:
        revs = [await store.current_revision()]
        revs.append(await store.create(root + "a", b"1"))
        revs.append(await store.create(root + "b", b"1"))
        revs.append(await store.update(root + "a", b"2", revs[1]))
        revs.append((await store.delete(root + "b")).revision)
        revs.append(await store.create(root + "b", b"3"))
        assert revs == sorted(revs) and len(set(revs)) == len(revs)
        # Failed writes do not move the revision.
        for bad in (
            store.create(root + "a", b"x"),
            store.update(root + "a", b"x", revs[1]),
            store.update(root + "zz", b"x", 1),
            store.delete(root + "zz"),
            store.delete(root + "a", revs[1]),
        ):
            with pytest.raises((KeyExistsError, ConflictError, KeyNotFoundError)):
                await bad
        assert await store.current_revision() == revs[-1]

    async def test_concurrent_creates_of_one_key(self, store: Store, root: str) -> None:
        results = await asyncio.gather(
            *(store.create(root + "race", str(i).encode()) for i in range(20)), return_exceptions=True
        )
        winners = [(i, r) for i, r in enumerate(results) if isinstance(r, int)]
        losers = [r for r in results if not isinstance(r, int)]
        assert len(winners) == 1, results
        assert all(isinstance(e, KeyExistsError) for e in losers), losers
        i, rev = winners[0]
        assert await store.get(root + "race") == KeyValue(root + "race", str(i).encode(), rev, rev)

    async def test_concurrent_updates_from_one_revision(self, store: Store, root: str) -> None:
        r1 = await store.create(root + "a", b"0")
        results = await asyncio.gather(
            *(store.update(root + "a", str(i).encode(), r1) for i in range(10)), return_exceptions=True
        )
        assert sum(isinstance(r, int) for r in results) == 1
        assert all(isinstance(r, (int, ConflictError)) for r in results)

    async def test_many_concurrent_creates_get_distinct_revisions(self, store: Store, root: str) -> None:
        revs = await asyncio.gather(*(store.create(f"{root}k{i:03}", b"v") for i in range(200)))
        assert len(set(revs)) == 200
        for i in (0, 57, 199):
            kv = await store.get(f"{root}k{i:03}")
            assert kv is not None and kv.mod_revision == revs[i]

    # ------------------------------------------------------------------ list

    async def test_list_prefix_boundaries(self, store: Store, root: str) -> None:
        for k in ("a", "a/", "a/1", "a/2", "a/x/y", "ab/1", "a0", "b/1"):
            await store.create(root + k, k.encode())
        res = await store.list(root + "a/")
        assert [kv.key for kv in res.kvs] == [root + "a/", root + "a/1", root + "a/2", root + "a/x/y"]
        assert not res.more
        assert [kv.key for kv in (await store.list(root + "ab/")).kvs] == [root + "ab/1"]
        assert (await store.list(root + "c/")).kvs == []
        everything = await store.list(root)
        assert len(everything.kvs) == 8
        assert [kv.key for kv in everything.kvs] == sorted(kv.key for kv in everything.kvs)

    async def test_list_values_and_revisions(self, store: Store, root: str) -> None:
        r1 = await store.create(root + "x/1", b"one")
        r2 = await store.create(root + "x/2", b"two")
        r3 = await store.update(root + "x/1", b"uno", r1)
        res = await store.list(root + "x/")
        assert res.kvs == [KeyValue(root + "x/1", b"uno", r1, r3), KeyValue(root + "x/2", b"two", r2, r2)]
        assert res.revision == await store.current_revision()

    async def test_list_skips_deleted(self, store: Store, root: str) -> None:
        await store.create(root + "1", b"")
        await store.create(root + "2", b"")
        await store.delete(root + "1")
        assert [kv.key for kv in (await store.list(root)).kvs] == [root + "2"]

    async def test_list_with_a_limit_beyond_int64_returns_everything(self, store: Store, root: str) -> None:
        # ?limit=9223372036854775808 reaches the store as is: no OverflowError, it means "all".
        for i in range(3):
            await store.create(f"{root}big/{i}", b"v")
        for limit in (2**63 - 1, 2**63, 2**64 + 5, 10**30):
            res = await store.list(root + "big/", limit=limit, count=True)
            assert [kv.key for kv in res.kvs] == [f"{root}big/{i}" for i in range(3)]
            assert not res.more and res.count == 3
            page = await store.list(root + "big/", start_key=f"{root}big/1", limit=limit, revision=res.revision)
            assert [kv.key for kv in page.kvs] == [f"{root}big/1", f"{root}big/2"] and not page.more

    async def test_health_answers_while_open(self, store: Store, root: str) -> None:
        await asyncio.wait_for(store.health(), 5)

    async def test_list_paging_with_limit_and_start_key(self, store: Store, root: str) -> None:
        keys = [f"{root}p/{i:02}" for i in range(25)]
        for k in keys:
            await store.create(k, b"v")
        await store.create(root + "q/after", b"v")
        first = await store.list(root + "p/", limit=10)
        assert [kv.key for kv in first.kvs] == keys[:10] and first.more
        seen = [kv.key for kv in first.kvs]
        start = seen[-1] + "\x00"
        pages = 1
        while True:
            page = await store.list(root + "p/", start_key=start, limit=10, revision=first.revision)
            pages += 1
            assert page.revision == first.revision
            seen += [kv.key for kv in page.kvs]
            if not page.more:
                break
            start = page.kvs[-1].key + "\x00"
        assert seen == keys and pages == 3
        # Exact fit: no "more" when the limit equals what is left.
        exact = await store.list(root + "p/", start_key=keys[15], limit=10)
        assert len(exact.kvs) == 10 and not exact.more
        # start_key inclusive; a start_key before the prefix is the prefix.
        assert (await store.list(root + "p/", start_key=keys[3], limit=1)).kvs[0].key == keys[3]
        assert (await store.list(root + "p/", start_key=root, limit=1)).kvs[0].key == keys[0]
        assert (await store.list(root + "p/", start_key=root + "q", limit=5)).kvs == []

    async def test_list_at_past_revision_is_a_consistent_snapshot(self, store: Store, root: str) -> None:
        revs = {}
        for i in range(10):
            revs[i] = await store.create(f"{root}s/{i}", b"old")
        snapshot = await store.current_revision()
        await store.update(f"{root}s/0", b"new", revs[0])
        await store.delete(f"{root}s/5")
        await store.create(f"{root}s/99", b"new")
        page1 = await store.list(root + "s/", limit=4, revision=snapshot)
        page2 = await store.list(
            root + "s/", start_key=page1.kvs[-1].key + "\x00", limit=100, revision=snapshot
        )
        kvs = page1.kvs + page2.kvs
        assert [kv.key for kv in kvs] == [f"{root}s/{i}" for i in range(10)]
        assert all(kv.value == b"old" for kv in kvs)
        assert kvs[0].mod_revision == revs[0]
        latest = await store.list(root + "s/")
        assert [kv.key for kv in latest.kvs] == [f"{root}s/{i}" for i in (0, 1, 2, 3, 4, 6, 7, 8, 9, 99)]
        assert latest.kvs[0].value == b"new"
        # A past revision where a key existed in an older incarnation.
        before = await store.list(root + "s/", revision=revs[3])
        assert [kv.key for kv in before.kvs] == [f"{root}s/{i}" for i in range(4)]

    async def test_list_count(self, store: Store, root: str) -> None:
        for i in range(12):
            await store.create(f"{root}c/{i:02}", b"v")
        await store.create(root + "cc", b"v")
        await store.delete(f"{root}c/03")
        res = await store.list(root + "c/", limit=5, count=True)
        assert res.count == 11 and len(res.kvs) == 5 and res.more
        res = await store.list(root + "c/", count=True)
        assert res.count == 11 and len(res.kvs) == 11
        # The whole prefix is counted, whatever start_key and limit.
        page = await store.list(root + "c/", start_key=f"{root}c/06", limit=2, count=True)
        assert page.count == 11 and [kv.key for kv in page.kvs] == [f"{root}c/06", f"{root}c/07"]
        page = await store.list(root + "c/", start_key=f"{root}c/10", count=True)
        assert page.count == 11 and len(page.kvs) == 2 and not page.more
        past = await store.list(root + "c/", revision=res.revision - 1, count=True)
        assert past.count == 12 and len(past.kvs) == 12  # just before the delete
        past_page = await store.list(root + "c/", revision=res.revision - 1, limit=3, count=True)
        assert past_page.count == 12 and len(past_page.kvs) == 3 and past_page.more
        empty = await store.list(root + "none/", count=True)
        assert empty.count == 0 and empty.kvs == []

    # ------------------------------------------------------------------ revisions

    async def test_future_revision(self, store: Store, root: str) -> None:
        await store.create(root + "a", b"v")
        current = await store.current_revision()
        with pytest.raises(FutureRevisionError) as info:
            await store.get(root + "a", current + 10)
        assert info.value.requested == current + 10
        with pytest.raises(FutureRevisionError):
            await store.list(root, revision=current + 1)
        with pytest.raises(FutureRevisionError):
            await store.compact(current + 5)
        assert (await store.get(root + "a", current)) is not None

    async def test_compaction(self, store: Store, root: str) -> None:
        k = root + "a"
        r1 = await store.create(k, b"1")
        r2 = await store.update(k, b"2", r1)
        r3 = await store.update(k, b"3", r2)
        gone = await store.create(root + "gone", b"g")
        await store.delete(root + "gone")
        r_keep = await store.create(root + "b", b"b")
        await store.update(k, b"4", r3)
        await store.compact(r3)
        assert await store.compacted_revision() >= r3 - 1
        for old in (r1, r2):
            with pytest.raises(CompactedError) as info:
                await store.get(k, old)
            assert info.value.requested == old
            with pytest.raises(CompactedError):
                await store.list(root, revision=old)
            w = store.watch(root, old)
            with pytest.raises(CompactedError):
                await next_response(w)
            await w.close()
        # The compaction revision itself is still readable, as are later ones.
        assert await store.get(k, r3) == KeyValue(k, b"3", r1, r3)
        at_r3 = await store.list(root, revision=r3)
        assert [kv.key for kv in at_r3.kvs] == [k]
        latest = await store.list(root)
        assert [(kv.key, kv.value) for kv in latest.kvs] == [(k, b"4"), (root + "b", b"b")]
        assert (await store.get(root + "b")) == KeyValue(root + "b", b"b", r_keep, r_keep)
        assert await store.get(root + "gone") is None and gone > r3
        # Watching from the compaction revision replays from there.
        w = store.watch(root, r3)
        events = await collect(w, 5)
        assert events[0].kv.mod_revision == r3 and events[0].prev_kv == KeyValue(k, b"2", r1, r2)
        await w.close()
        # Compacting again to an older revision is harmless; writes go on.
        await store.compact(r2)
        assert await store.create(root + "after", b"x") > r_keep

    async def test_compact_everything_keeps_latest_values(self, store: Store, root: str) -> None:
        r0 = await store.create(root + "a", b"1")
        r = await store.update(root + "a", b"2", r0)
        await store.create(root + "b", b"1")
        await store.delete(root + "b")
        cur = await store.current_revision()
        await store.compact(cur)
        assert await store.get(root + "a") == KeyValue(root + "a", b"2", r0, r)
        assert await store.get(root + "b") is None
        assert [kv.key for kv in (await store.list(root)).kvs] == [root + "a"]
        # Re-creating a key whose history is compacted works.
        r2 = await store.create(root + "b", b"again")
        assert await store.get(root + "b") == KeyValue(root + "b", b"again", r2, r2)
        assert await store.update(root + "a", b"3", r) > r2

    # ------------------------------------------------------------------ watch

    async def test_watch_from_past_revision_then_live(self, store: Store, root: str) -> None:
        k = root + "w"
        r1 = await store.create(k, b"1")
        r2 = await store.update(k, b"2", r1)
        r3 = (await store.delete(k)).revision
        w = store.watch(root, r1)
        history = await collect(w, 3)
        assert history == [
            Event(EventType.PUT, KeyValue(k, b"1", r1, r1), None),
            Event(EventType.PUT, KeyValue(k, b"2", r1, r2), KeyValue(k, b"1", r1, r1)),
            Event(EventType.DELETE, KeyValue(k, b"2", r1, r3), KeyValue(k, b"2", r1, r2)),
        ]
        assert history[0].is_create and not history[1].is_create
        r4 = await store.create(k, b"4")
        r5 = await store.update(k, b"5", r4)
        live = await collect(w, 2)
        assert live == [
            Event(EventType.PUT, KeyValue(k, b"4", r4, r4), None),
            Event(EventType.PUT, KeyValue(k, b"5", r4, r5), KeyValue(k, b"4", r4, r4)),
        ]
        await w.close()

    async def test_watch_start_revision_is_inclusive(self, store: Store, root: str) -> None:
        r1 = await store.create(root + "a", b"1")
        r2 = await store.create(root + "b", b"2")
        w = store.watch(root, r2)
        events = await collect(w, 1)
        assert events[0].kv.key == root + "b" and events[0].revision == r2 > r1
        await assert_quiet(w)
        await w.close()

    async def test_watch_history_and_live_in_order(self, store: Store, root: str) -> None:
        start = await store.create(root + "k0", b"0")
        for i in range(1, 30):
            await store.create(f"{root}k{i}", b"x")
        w = store.watch(root, start)
        first = await next_response(w)
        writer = asyncio.ensure_future(
            asyncio.gather(*(store.create(f"{root}live{i}", b"y") for i in range(30)))
        )
        rest = await collect(w, 60 - len(first.events))
        await writer
        events = first.events + rest
        revs = [e.revision for e in events]
        assert revs == sorted(revs) and len(set(revs)) == 60
        assert revs[0] == start and revs[-1] == await store.current_revision()
        await assert_quiet(w)
        await w.close()

    async def test_watch_filters_by_prefix(self, store: Store, root: str) -> None:
        start = await store.current_revision() + 1
        w = store.watch(root + "a/", start)
        await store.create(root + "a/1", b"in")
        await store.create(root + "ab/1", b"out")
        await store.create(root + "b/1", b"out")
        await store.create(root + "a", b"out")
        r = await store.create(root + "a/2", b"in")
        events = await collect(w, 2)
        assert [e.kv.key for e in events] == [root + "a/1", root + "a/2"]
        assert events[-1].revision == r
        await assert_quiet(w)
        await w.close()

    async def test_watch_from_zero_gets_only_new_events(self, store: Store, root: str) -> None:
        await store.create(root + "old", b"old")
        w = store.watch(root, 0)
        await asyncio.sleep(0.05)
        r = await store.create(root + "new", b"new")
        events = await collect(w, 1)
        assert events[0].kv == KeyValue(root + "new", b"new", r, r) and events[0].prev_kv is None
        await assert_quiet(w)
        await w.close()

    async def test_watch_delete_event_carries_last_value(self, store: Store, root: str) -> None:
        r1 = await store.create(root + "d", b"first")
        r2 = await store.update(root + "d", b"last", r1)
        w = store.watch(root, 0)
        await asyncio.sleep(0.05)
        res = await store.delete(root + "d")
        (ev,) = await collect(w, 1)
        assert ev.type is EventType.DELETE
        assert ev.kv == KeyValue(root + "d", b"last", r1, res.revision)
        assert ev.prev_kv == KeyValue(root + "d", b"last", r1, r2)
        await w.close()

    async def test_watch_future_start_revision_waits(self, store: Store, root: str) -> None:
        current = await store.current_revision()
        w = store.watch(root, current + 3)
        await store.create(root + "1", b"")
        await store.create(root + "2", b"")
        await store.create(root + "3", b"")
        events = await collect(w, 1)
        assert events[0].kv.key == root + "3"
        await w.close()

    async def test_many_watchers_see_the_same_sequence(self, store: Store, root: str) -> None:
        start = await store.current_revision() + 1
        watchers = [store.watch(root, start) for _ in range(5)]
        r = 0
        for i in range(20):
            r = await store.create(f"{root}{i:02}", b"v")
            if i % 3 == 0:
                r = await store.update(f"{root}{i:02}", b"v2", r)
        seqs = [summary(await collect(w, 27)) for w in watchers]
        assert all(s == seqs[0] for s in seqs)
        assert seqs[0][-1][3] == r
        for w in watchers:
            await w.close()

    async def test_watch_response_revision(self, store: Store, root: str) -> None:
        w = store.watch(root, 0)
        await asyncio.sleep(0.05)
        r = await store.create(root + "a", b"")
        resp = await next_response(w)
        assert resp.events and resp.revision >= r
        await w.close()

    async def test_progress_notify(self, store: Store, root: str) -> None:
        r = await store.create(root + "p", b"")
        w = store.watch(root, 0, progress_notify=True)
        resp = await next_response(w, PROGRESS_WAIT * 2)
        assert resp.events == [] and resp.revision >= r
        await store.create(root + "q", b"")
        assert [e.kv.key for e in await collect(w, 1, PROGRESS_WAIT * 2)] == [root + "q"]
        # Writes elsewhere do not count as activity for this watch.
        other = await store.create("/elsewhere-" + root.strip("/") + "/x", b"")
        resp = await next_response(w, PROGRESS_WAIT * 2)
        assert resp.events == [] and resp.revision >= other
        await w.close()

    async def test_no_progress_without_asking(self, store: Store, root: str) -> None:
        w = store.watch(root, 0)
        task = asyncio.ensure_future(w.__anext__())
        done, _ = await asyncio.wait({task}, timeout=0.5)
        assert not done
        await w.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(task, 2)

    async def test_watch_close_ends_iteration_promptly(self, store: Store, root: str) -> None:
        w = store.watch(root, 0)
        received: list[WatchResponse] = []

        async def consume() -> None:
            async for resp in w:
                received.append(resp)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        await store.create(root + "a", b"")
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.02)
        await w.close()
        await asyncio.wait_for(task, 2)
        assert received and received[0].events[0].kv.key == root + "a"
        with pytest.raises(StopAsyncIteration):
            await w.__anext__()
        await w.close()  # idempotent

    async def test_close_before_iterating(self, store: Store, root: str) -> None:
        await store.create(root + "a", b"")
        w = store.watch(root, 1)
        await w.close()
        with pytest.raises(StopAsyncIteration):
            await w.__anext__()
