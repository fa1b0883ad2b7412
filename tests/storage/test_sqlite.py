"""The SQLite store: the shared contract, plus what only an embedded file store has
(durability across kill -9, restart, bounded disk use, the writer/watch internals)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from k8py.storage.factory import open_store
from k8py.storage.interface import (
    CompactedError,
    EventType,
    KeyValue,
    StoreError,
    StoreUnavailableError,
)
from k8py.storage.sqlite import SQLiteStore

try:  # tests/ as a package, or rootdir-relative imports (pytest's default)
    from .contract import StoreContract, collect
except ImportError:
    from contract import StoreContract, collect  # type: ignore[no-redef]


class TestSQLiteContract(StoreContract):
    @pytest.fixture
    async def store(self, sqlite_factory):
        return await sqlite_factory()


class TestSQLiteContractTinyBuffers(StoreContract):
    """The contract again with a 4-event ring, 2-event watcher queues, one
    write per transaction and every list in the reader pool: every watch goes
    through the database catch-up and fall-behind paths."""

    @pytest.fixture
    async def store(self, sqlite_factory):
        return await sqlite_factory(
            watch_cache_events=4, watch_buffer=2, max_batch=1, inline_list_limit=0, compact_batch=1
        )


def db_files_size(path: str) -> int:
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


# ---------------------------------------------------------------------- durability and restart

_CHILD = r"""
import asyncio, sys
from k8py.storage.sqlite import SQLiteStore

async def main():
    store = SQLiteStore(sys.argv[1])
    await store.start()
    async def writer(n):
        i = 0
        while True:
            key = f"/durable/{n}/{i}"
            rev = await store.create(key, b"x" * 200)
            sys.stdout.write(f"{key} {rev}\n")
            sys.stdout.flush()
            i += 1
    await asyncio.gather(*(writer(n) for n in range(8)))

asyncio.run(main())
"""


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path, sqlite_factory) -> None:
    path = str(tmp_path / "db" / "state.db")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    acked: dict[str, int] = {}
    try:
        assert proc.stdout is not None
        while len(acked) < 400:
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            if not line:
                err = await proc.stderr.read() if proc.stderr else b""
                pytest.fail(f"child exited early: {err.decode()}")
            key, rev = line.decode().split()
            acked[key] = int(rev)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    store = await sqlite_factory(path)
    for key, rev in acked.items():
        assert await store.get(key) == KeyValue(key, b"x" * 200, rev, rev), key
    top = max(acked.values())
    assert await store.current_revision() >= top
    assert await store.create("/after/restart", b"") > await store.current_revision() - 1 >= top


async def test_reopen_keeps_revisions_history_and_compaction(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    store = SQLiteStore(path)
    await store.start()
    r1 = await store.create("/r/a", b"1")
    r2 = await store.update("/r/a", b"2", r1)
    r3 = await store.create("/r/b", b"b")
    r4 = (await store.delete("/r/b")).revision
    r5 = await store.update("/r/a", b"3", r2)
    r6 = await store.create("/r/c", b"c")
    await store.compact(r2)
    await store.close()

    store = SQLiteStore(path)
    await store.start()
    try:
        assert await store.current_revision() == r6
        assert await store.compacted_revision() == r2 - 1
        assert await store.get("/r/a") == KeyValue("/r/a", b"3", r1, r5)
        assert await store.get("/r/a", r2) == KeyValue("/r/a", b"2", r1, r2)
        assert await store.get("/r/b", r3) == KeyValue("/r/b", b"b", r3, r3)
        with pytest.raises(CompactedError):
            await store.get("/r/a", r1)
        # The ring is empty after a restart: history comes from the log.
        w = store.watch("/r/", r2)
        events = await collect(w, 5)
        assert [e.revision for e in events] == [r2, r3, r4, r5, r6]
        assert events[2].type is EventType.DELETE and events[2].kv.value == b"b"
        r7 = await store.create("/r/d", b"d")
        assert r7 == r6 + 1
        assert (await collect(w, 1))[0].revision == r7
        await w.close()
    finally:
        await store.close()


async def test_second_open_of_one_file_is_refused(tmp_path: Path, sqlite_factory) -> None:
    path = str(tmp_path / "state.db")
    await sqlite_factory(path)
    other = SQLiteStore(path)
    with pytest.raises(StoreUnavailableError, match="in use by another process"):
        await other.start()


async def test_use_after_close(sqlite_factory) -> None:
    store = await sqlite_factory()
    await store.create("/x", b"")
    await store.close()
    with pytest.raises(StoreUnavailableError):
        await store.create("/y", b"")
    with pytest.raises(StoreUnavailableError):
        await store.get("/x")
    await store.close()


async def test_close_answers_queued_writes_and_ends_watches(sqlite_factory) -> None:
    store = await sqlite_factory()
    w = store.watch("/", 0)
    writes = [asyncio.ensure_future(store.create(f"/q/{i}", b"")) for i in range(50)]
    await asyncio.sleep(0)
    await store.close()
    revs = await asyncio.gather(*writes)
    assert sorted(revs) == list(range(1, 51))
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(w.__anext__(), 1)


async def test_values_must_be_bytes(sqlite_factory) -> None:
    store = await sqlite_factory()
    with pytest.raises(TypeError):
        await store.create("/a", "text")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- reads against a model


async def test_reads_at_every_past_revision_match_a_model(sqlite_factory) -> None:
    """Random creates/updates/deletes over a few keys; then every revision's
    list and get must equal the model's snapshot at that revision."""
    store = await sqlite_factory()
    rnd = random.Random(7)
    model: dict[str, KeyValue] = {}
    snapshots: dict[int, dict[str, KeyValue]] = {}
    keys = [f"/m/{c}" for c in "abcdefgh"] + ["/m2/x", "/m/a/b"]
    for _ in range(300):
        key = rnd.choice(keys)
        kv = model.get(key)
        value = rnd.randbytes(4)
        if kv is None:
            rev = await store.create(key, value)
            model[key] = KeyValue(key, value, rev, rev)
        elif rnd.random() < 0.3:
            rev = (await store.delete(key, kv.mod_revision)).revision
            del model[key]
        else:
            rev = await store.update(key, value, kv.mod_revision)
            model[key] = KeyValue(key, value, kv.create_revision, rev)
        snapshots[rev] = dict(model)
    for rev, snap in snapshots.items():
        expected = [snap[k] for k in sorted(snap) if k.startswith("/m/")]
        res = await store.list("/m/", revision=rev, count=True)
        assert res.kvs == expected and res.count == len(expected), rev
        page = await store.list("/m/", revision=rev, limit=2)
        assert page.kvs == expected[:2] and page.more == (len(expected) > 2)
        for key in keys[:3]:
            assert await store.get(key, rev) == snap.get(key)
    w = store.watch("/", 1)
    events = await collect(w, 300)
    assert [e.revision for e in events] == list(range(1, 301))
    await w.close()


async def test_large_list_is_read_off_the_loop(sqlite_factory) -> None:
    store = await sqlite_factory()
    await asyncio.gather(*(store.create(f"/big/{i:05}", b"v" * 50) for i in range(3000)))
    res = await store.list("/big/", count=True)
    assert len(res.kvs) == 3000 and res.count == 3000 and not res.more
    assert [kv.key for kv in res.kvs] == [f"/big/{i:05}" for i in range(3000)]
    page = await store.list("/big/", limit=2000, start_key="/big/02000")
    assert len(page.kvs) == 1000 and not page.more


# ---------------------------------------------------------------------- watch internals


async def test_watch_catch_up_from_log_while_writes_continue(sqlite_factory) -> None:
    store = await sqlite_factory(watch_cache_events=16)
    await asyncio.gather(*(store.create(f"/c/{i}", b"v") for i in range(500)))
    w = store.watch("/c/", 1)

    async def more_writes() -> None:
        for i in range(300):
            await store.create(f"/c/live{i}", b"v")

    writer = asyncio.ensure_future(more_writes())
    events = await collect(w, 800, timeout=20)
    await writer
    assert [e.revision for e in events] == list(range(1, 801))
    assert store._live and w in store._live
    await w.close()


async def test_slow_watcher_falls_behind_and_catches_up(sqlite_factory) -> None:
    store = await sqlite_factory(watch_cache_events=64, watch_buffer=10)
    w = store.watch("/s/", 0)
    await asyncio.sleep(0)
    for i in range(300):  # the consumer reads nothing meanwhile
        await store.create(f"/s/{i}", b"v")
    assert w not in store._live and len(w._pending) == 0  # queue dropped, not grown
    events = await collect(w, 300)
    assert [e.kv.key for e in events] == [f"/s/{i}" for i in range(300)]
    assert w in store._live
    await w.close()


async def test_slow_watcher_whose_history_is_compacted_ends(sqlite_factory) -> None:
    store = await sqlite_factory(watch_cache_events=8, watch_buffer=4)
    w = store.watch("/s/", 0)
    for i in range(50):
        await store.create(f"/s/{i}", b"v")
    await store.compact(await store.current_revision())
    with pytest.raises(CompactedError):
        await collect(w, 50)
    with pytest.raises(StopAsyncIteration):
        await w.__anext__()


async def test_watchers_do_not_block_the_writer(sqlite_factory) -> None:
    store = await sqlite_factory(watch_buffer=50)
    idle = [store.watch("/", 0) for _ in range(20)]  # never read
    revs = await asyncio.wait_for(asyncio.gather(*(store.create(f"/n/{i}", b"v") for i in range(2000))), 20)
    assert len(set(revs)) == 2000
    for w in idle:
        assert len(w._pending) <= 50
        await w.close()


# ---------------------------------------------------------------------- compaction and disk use


async def test_compaction_removes_superseded_rows(tmp_path: Path, sqlite_factory) -> None:
    path = str(tmp_path / "state.db")
    store = await sqlite_factory(path, compact_batch=7)
    revs = {f"/k/{i}": await store.create(f"/k/{i}", b"0") for i in range(20)}
    for n in range(5):
        for key in list(revs):
            revs[key] = await store.update(key, str(n).encode(), revs[key])
    for i in range(0, 20, 2):
        await store.delete(f"/k/{i}")
    current = await store.current_revision()
    await store.compact(current)
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, name, deleted FROM kv ORDER BY id").fetchall()
    # Live keys' latest rows, plus the tombstone at the compaction revision itself.
    assert len([r for r in rows if not r[2]]) == 10
    assert [r[0] for r in rows if r[2]] == [current]
    assert [kv.key for kv in (await store.list("/k/")).kvs] == sorted(f"/k/{i}" for i in range(1, 20, 2))


async def test_interrupted_compaction_resumes_on_start(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    store = SQLiteStore(path)
    await store.start()
    r = await store.create("/a", b"0")
    for i in range(30):
        r = await store.update("/a", str(i).encode(), r)
    await store.close()
    # As if the process died right after recording the compaction.
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('compacted', ?)", (r - 1,))
    store = SQLiteStore(path)
    await store.start()
    try:
        with pytest.raises(CompactedError):
            await store.get("/a", r - 1)
        for _ in range(100):
            with sqlite3.connect(path) as conn:
                n = conn.execute("SELECT count(*) FROM kv").fetchone()[0]
            if n == 1:
                break
            await asyncio.sleep(0.02)
        assert n == 1
        assert (await store.get("/a")).mod_revision == r  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_compactor_task(sqlite_factory) -> None:
    store = await sqlite_factory()
    r = await store.create("/a", b"0")
    for i in range(20):
        r = await store.update("/a", str(i).encode(), r)
    task = store.start_compactor(0.05, keep_revisions=5)
    for _ in range(100):
        if await store.compacted_revision() >= r - 6:
            break
        await asyncio.sleep(0.02)
    assert await store.compacted_revision() == r - 6
    assert (await store.get("/a", r - 5)) is not None
    await store.close()
    assert task.done()


async def test_disk_use_stays_bounded_under_churn(tmp_path: Path, sqlite_factory) -> None:
    path = str(tmp_path / "state.db")
    store = await sqlite_factory(path, compact_batch=100)
    rnd = random.Random(1)
    revs = {f"/churn/{i:02}": await store.create(f"/churn/{i:02}", rnd.randbytes(2000)) for i in range(40)}

    async def bump(key: str) -> None:
        revs[key] = await store.update(key, rnd.randbytes(2000), revs[key])

    sizes = []
    for _round in range(25):
        for _ in range(10):
            await asyncio.gather(*(bump(k) for k in revs))
        await store.compact(await store.current_revision() - 40)
        sizes.append(db_files_size(path))
    early = max(sizes[:5])
    # 10,000 updates of 2 kB (20 MB written) must not grow the files past the early rounds.
    assert sizes[-1] <= early * 1.5, sizes
    assert sizes[-1] < 8 * 1024 * 1024, sizes


# ---------------------------------------------------------------------- factory


def test_factory(tmp_path: Path) -> None:
    default = str(tmp_path / "db" / "state.db")
    store = open_store("", default)
    assert isinstance(store, SQLiteStore) and store.path == default
    store = open_store("sqlite://", default)
    assert isinstance(store, SQLiteStore) and store.path == default
    store = open_store(f"sqlite://{tmp_path}/other.db", default)
    assert isinstance(store, SQLiteStore) and store.path == f"{tmp_path}/other.db"
    store = open_store("sqlite://", default, progress_interval=1.0)
    assert isinstance(store, SQLiteStore)
    from k8py.storage.etcd import EtcdStore

    for endpoint in ("http://127.0.0.1:2379", "https://etcd:2379"):
        assert isinstance(open_store(endpoint, default), EtcdStore)
    with pytest.raises(StoreError, match="unsupported"):
        open_store("mysql://x", default)


async def test_factory_store_works(tmp_path: Path) -> None:
    store = open_store("", str(tmp_path / "nested" / "dir" / "state.db"))
    await store.start()
    await store.start()  # idempotent
    try:
        rev = await store.create("/f", b"v")
        assert await store.get("/f") == KeyValue("/f", b"v", rev, rev)
    finally:
        await store.close()
