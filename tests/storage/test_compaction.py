"""Automatic compaction of the SQLite store (by revision count, file size and time), that
compaction never stalls writers, the health probe, and the server flags that set it up."""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from k8py.cli import server as server_cli
from k8py.storage.factory import open_store
from k8py.storage.interface import CompactedError, StoreUnavailableError
from k8py.storage.sqlite import SQLiteStore

DEADLINE = 20.0  # seconds a background compaction may take to show up (it normally takes milliseconds)


def files_size(path: str) -> int:
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


def history_rows(path: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM kv").fetchone()[0])


async def wait_compacted(store: SQLiteStore, at_least: int) -> int:
    """Poll until the store has compacted up to ``at_least``; bounded by DEADLINE."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while (compacted := await store.compacted_revision()) < at_least:
        assert loop.time() < deadline, f"compacted only to {compacted}, expected {at_least}"
        await asyncio.sleep(0.02)
    return compacted


async def churn(store: SQLiteStore, keys: int, rounds: int, value: bytes) -> dict[str, int]:
    revs = {f"/c/{i:03}": await store.create(f"/c/{i:03}", value) for i in range(keys)}

    async def bump(key: str) -> None:
        revs[key] = await store.update(key, value, revs[key])

    for _ in range(rounds):
        await asyncio.gather(*(bump(k) for k in revs))
    return revs


async def test_compaction_triggers_by_revision_count_before_the_interval(tmp_path: Path, sqlite_factory) -> None:
    path = str(tmp_path / "state.db")
    # An hour between timed compactions, and the size limit far away: only the count can trigger.
    store = await sqlite_factory(path, compaction_retention=50, compaction_interval=3600,
                                 compaction_max_bytes=1 << 40, compact_batch=20)
    r = await store.create("/a", b"0")
    for i in range(300):
        r = await store.update("/a", str(i).encode(), r)
    # Retention 50 plus a step of 25: the commit that crossed 75 revisions of history woke it.
    compacted = await wait_compacted(store, r - 75)
    assert compacted <= r - 50  # the retention is kept
    assert (await store.get("/a", r - 49)) is not None
    with pytest.raises(CompactedError):
        await store.get("/a", compacted)
    assert history_rows(path) <= 76  # the log was cleaned, not just marked


async def test_compaction_triggers_by_file_size(tmp_path: Path, sqlite_factory) -> None:
    path = str(tmp_path / "state.db")
    # The count trigger is out of reach (step 100,000); the files are always "too big".
    store = await sqlite_factory(path, compaction_retention=10, compaction_interval=3600,
                                 compaction_max_bytes=1, compact_batch=100_000)
    r = await store.create("/a", b"0")
    for i in range(40):
        r = await store.update("/a", str(i).encode(), r)
    await wait_compacted(store, r - 11)
    assert (await store.get("/a", r - 10)) is not None


async def test_compaction_by_interval(tmp_path: Path, sqlite_factory) -> None:
    store = await sqlite_factory(str(tmp_path / "state.db"), compaction_retention=5, compaction_interval=0.05,
                                 compaction_max_bytes=1 << 40, compact_batch=1000)
    r = await store.create("/a", b"0")
    for i in range(20):
        r = await store.update("/a", str(i).encode(), r)
    await wait_compacted(store, r - 6)


async def test_no_automatic_compaction_without_a_retention(tmp_path: Path, sqlite_factory) -> None:
    store = await sqlite_factory(str(tmp_path / "state.db"), compaction_max_bytes=1, compaction_interval=0.01)
    r = await store.create("/a", b"0")
    for i in range(200):
        r = await store.update("/a", str(i).encode(), r)
    # A second store instance on another file proves time passed through several ticks.
    other = await sqlite_factory(str(tmp_path / "other.db"), compaction_retention=0, compaction_interval=0.01)
    o = await other.create("/b", b"0")
    o = await other.update("/b", b"1", o)
    await wait_compacted(other, o - 1)
    assert await store.compacted_revision() == 0
    assert (await store.get("/a", 1)) is not None


async def test_auto_compaction_bounds_the_file_under_churn(tmp_path: Path, sqlite_factory) -> None:
    path = str(tmp_path / "state.db")
    store = await sqlite_factory(path, compaction_retention=100, compaction_interval=3600, compact_batch=100)
    value = os.urandom(2000)
    revs = await churn(store, 50, 0, value)

    async def bump(key: str) -> None:
        revs[key] = await store.update(key, value, revs[key])

    sizes = []
    for _ in range(10):
        for _ in range(20):
            await asyncio.gather(*(bump(k) for k in revs))
        sizes.append(files_size(path))
    # 10,000 updates of 2 kB: over 40 MB of history (old and new values) without compaction.
    assert sizes[-1] < 8 * 1024 * 1024, sizes
    assert sizes[-1] <= max(sizes[:3]) * 1.5, sizes
    await wait_compacted(store, await store.current_revision() - 250)


async def test_writes_interleave_with_compaction_batches(tmp_path: Path, sqlite_factory) -> None:
    path = str(tmp_path / "state.db")
    # One batch of 50 revisions per transaction (no time budget), so the run has ~200 steps
    # whatever the speed of the machine.
    store = await sqlite_factory(path, compact_batch=50, compact_step_seconds=0)
    await churn(store, 100, 100, b"x" * 200)  # 10,100 revisions of history
    target = await store.current_revision()
    progress_at_ack: list[int] = []
    compaction: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def writer(key: str) -> None:
        r = await store.create(key, b"0")
        while not compaction.done():
            r = await store.update(key, b"1", r)
            progress_at_ack.append(store._compact_done)  # how far the log was cleaned when this write landed

    # Several writers, so writes are queued whenever a compaction step ends: the writer thread
    # takes them before the next step.
    writers = asyncio.gather(*(writer(f"/w/{i}") for i in range(4)))
    while len(progress_at_ack) < 40:  # the writers are in full swing
        await asyncio.sleep(0.001)
    compaction = asyncio.ensure_future(store.compact(target))
    await writers
    await compaction
    during = [p for p in progress_at_ack if 0 < p < target - 1]
    # Writes were acknowledged between compaction transactions all along the way (about 200
    # steps): the compaction never held the writer for the whole run, nor for long stretches.
    assert len(during) >= 100, (len(progress_at_ack), progress_at_ack[:20])
    assert len(set(during)) >= 50, sorted(set(during))[:20]
    assert max(b - a for a, b in zip(sorted(set(during)), sorted(set(during))[1:])) <= 20 * 50
    with sqlite3.connect(path) as conn:  # up to the target, only each key's latest row is left
        assert conn.execute("SELECT count(*) FROM kv WHERE id <= ?", (target,)).fetchone()[0] == 100


async def test_health_checks_the_writer(tmp_path: Path, sqlite_factory) -> None:
    store = await sqlite_factory(str(tmp_path / "state.db"))
    await asyncio.wait_for(store.health(), 5)
    await store.close()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await store.health()


def test_factory_turns_auto_compaction_on(tmp_path: Path) -> None:
    store = open_store("", str(tmp_path / "state.db"))
    assert isinstance(store, SQLiteStore) and store._retention == 1000 and store._compact_interval == 300.0
    store = open_store("", str(tmp_path / "state.db"), compaction_retention=50, compaction_interval=10.0)
    assert isinstance(store, SQLiteStore) and store._retention == 50 and store._compact_interval == 10.0
    assert SQLiteStore(str(tmp_path / "x.db"))._retention is None  # the class alone: only explicit compact()
    with pytest.raises(ValueError):
        SQLiteStore(str(tmp_path / "x.db"), compaction_retention=-1)


def parse_server(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    server_cli.add_parser(sub)
    return parser.parse_args(["server", *argv])


def test_server_compaction_flags_reach_the_config() -> None:
    config = server_cli.build_config(parse_server())
    assert (config.compact_interval_seconds, config.compact_keep_revisions) == (300.0, 1000)
    config = server_cli.build_config(parse_server("--compaction-interval", "1m30s", "--compaction-retention", "50"))
    assert (config.compact_interval_seconds, config.compact_keep_revisions) == (90.0, 50)
    assert server_cli.build_config(parse_server("--compaction-interval", "15")).compact_interval_seconds == 15.0
    for bad in (["--compaction-interval", "0"], ["--compaction-interval", "5x"], ["--compaction-retention", "-1"]):
        with pytest.raises(SystemExit):
            parse_server(*bad)
