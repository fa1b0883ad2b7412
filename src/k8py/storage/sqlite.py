"""The embedded store: etcd's model on one SQLite file (after kine, k3s's SQL store).

Layout
------
``kv`` is an append-only log. The row id *is* the revision: every create,
update and delete appends one row, so revisions are dense (1, 2, 3, ...).
A row carries the key (``name``), ``created``/``deleted`` flags, the
``create_revision`` of this incarnation of the key, ``prev_revision`` (the row
it supersedes, 0 for a first create), the new ``value`` (for a delete: the
value the key had) and ``old_value`` (for an update: the value it replaced).
One row therefore is one complete watch event, even after its predecessor has
been compacted away.

``UNIQUE(name, prev_revision)`` is kine's compare-and-swap: two writes that
both claim to supersede the same row cannot both commit. Here there is only
one writer, which checks revisions itself before inserting; the constraint is
the guard that keeps the log consistent if that logic is ever wrong.

``current`` maps each live key to the row id of its latest value, updated in
the same transaction as the log. Point reads and lists at the latest revision
use it, so they never scan history ("latest per key" was kine's slow query).
Reads at a past revision use the ``(name, id)`` index.

``meta`` holds the compacted revision and how far compaction has got.

Compaction and disk use
-----------------------
With ``compaction_retention`` set (the server's default: 1000 revisions, as
kine), a background task keeps the log to about that many revisions: it
compacts when the history outgrows the retention by a step (the commit that
crosses the line wakes it, so at 1,000 writes/s it runs about twice a
second, each run small), when the database and WAL grow past
``compaction_max_bytes``, and every ``compaction_interval`` seconds. A
compaction is a series of short transactions on the writer thread, queued
like writes (each stops as soon as a write is waiting), so writers are never
stalled behind it. After it, freed pages are given back to the filesystem
(``auto_vacuum = INCREMENTAL``, in chunks) when they are more than a quarter
of the file, and the WAL is checkpointed and truncated without waiting for
readers; ``journal_size_limit`` caps what a WAL keeps after a reset.

Threads
-------
- One writer thread owns the only writing connection. Writes are queued; the
  writer takes everything waiting (up to ``max_batch``), evaluates each
  request's precondition *in order* inside one transaction and commits once
  (group commit: one fsync for many writes). It then hands the outcomes and
  the committed events to the event loop with ``call_soon_threadsafe``.
- Point gets and small pages run directly on the event-loop thread on a
  read-only connection (WAL readers never wait for the writer).
- Large lists and watch catch-up reads run in a small thread pool, each
  thread with its own connection.

Watches
-------
Committed events go into a ring buffer indexed by revision (dense revisions
make that ``ring[rev % size]``) and into the per-watcher queues of live
watchers whose prefix matches. A watcher that starts in the past replays from
the ring if it still holds the revision, else from the log in the database,
and then turns live; both steps run on the loop thread between publications,
so the hand-over has no gap and no duplicate.

A slow watcher never blocks the writer or other watchers: when its queue
exceeds ``watch_buffer`` events it drops the queue and falls back to catching
up from the ring / database like a watcher started in the past. If the history
it still needs has been compacted meanwhile it ends with
:class:`CompactedError` (the client relists), as etcd does.

Use: ``start()`` and ``close()`` must run inside the event loop that will use
the store; every method must be called from that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .interface import (
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
    StoreError,
    StoreStats,
    StoreUnavailableError,
    WatchResponse,
)

__all__ = ["SQLiteStore", "SQLiteWatch"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB,
    old_value BLOB,
    UNIQUE (name, prev_revision)
);
CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id);
CREATE TABLE IF NOT EXISTS current (name TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""

# Writer: the latest row of a key, whatever its state.
_SQL_LATEST_ROW = "SELECT id, deleted, create_revision, value FROM kv WHERE name = ? ORDER BY id DESC LIMIT 1"
_SQL_INSERT = (
    "INSERT INTO kv (id, name, created, deleted, create_revision, prev_revision, value, old_value)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_GET_LATEST = (
    "SELECT kv.value, kv.create_revision, kv.id FROM current JOIN kv ON kv.id = current.id"
    " WHERE current.name = ?"
)
_SQL_GET_AT = (
    "SELECT value, create_revision, id, deleted FROM kv WHERE name = ? AND id <= ? ORDER BY id DESC LIMIT 1"
)
_SQL_MAX_ID = "SELECT max(id) FROM kv"
_SQL_META_GET = "SELECT value FROM meta WHERE key = ?"
_SQL_META_SET = (
    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_SQL_EVENT_COLUMNS = "id, name, created, deleted, create_revision, prev_revision, value, old_value"

_META_COMPACTED = "compacted"  # highest revision that has been compacted
_META_COMPACT_DONE = "compact_done"  # compaction has cleaned the log up to here

# Module-level aliases: inside SQLiteStore, ``list`` names the list() method.
_Outcomes = list[tuple[Any, Any, BaseException | None]]
_Events = list[Event]
_KVs = list[KeyValue]

_OP_CREATE = 0
_OP_UPDATE = 1
_OP_DELETE = 2
_OP_COMPACT = 3  # one bounded step of compaction
_OP_MAINTAIN = 4  # one bounded step of space reclamation
_OP_STOP = 5
_OP_PING = 6  # a no-op through the writer queue: proves the writer serves requests

_MAX_EVENTS_PER_RESPONSE = 1000
_VACUUM_PAGES = 512  # pages returned to the filesystem per maintenance step
_SIZE_CHECK_PERIOD = 1.0  # seconds between the auto compactor's looks at the file size
_LOG_READ_SPAN = 10_000  # revisions scanned per catch-up query


def _prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``
    (None: no upper bound). SQLite compares TEXT as UTF-8 bytes, which orders
    like Python's code-point comparison."""
    while prefix:
        last = ord(prefix[-1]) + 1
        if 0xD800 <= last <= 0xDFFF:  # surrogates cannot be encoded
            last = 0xE000
        if last <= 0x10FFFF:
            return prefix[:-1] + chr(last)
        prefix = prefix[:-1]
    return None


def _row_event(row: tuple[Any, ...]) -> Event:
    """A watch event from one log row (``_SQL_EVENT_COLUMNS`` order)."""
    rev, name, created, deleted, create_rev, prev_rev, value, old_value = row
    if deleted:
        prev = KeyValue(name, value, create_rev, prev_rev)
        return Event(EventType.DELETE, KeyValue(name, value, create_rev, rev), prev)
    if created:
        return Event(EventType.PUT, KeyValue(name, value, rev, rev), None)
    return Event(
        EventType.PUT, KeyValue(name, value, create_rev, rev), KeyValue(name, old_value, create_rev, prev_rev)
    )


def _range_clause(column: str, hi: str | None) -> str:
    return f"{column} >= ? AND {column} < ?" if hi is not None else f"{column} >= ?"


def _range_args(lo: str, hi: str | None) -> tuple[str, ...]:
    return (lo, hi) if hi is not None else (lo,)


class SQLiteStore:
    """:class:`~k8py.storage.interface.Store` on a SQLite file.

    ``path``: database file (parent directories are created).
    ``compact_batch``: revisions cleaned per compaction batch.
    ``compact_step_seconds``: a compaction transaction runs batches until this
    much time has passed or a write is waiting, whichever comes first.
    ``max_batch``: most writes committed in one transaction.
    ``watch_cache_events``: size of the in-memory ring of recent events.
    ``watch_buffer``: events queued per live watcher before it falls back to
    catching up from the ring / database.
    ``progress_interval``: seconds of idleness before a watch with
    ``progress_notify`` gets an empty response carrying the current revision.
    ``inline_list_limit``: pages up to this size are read on the loop thread;
    unlimited and larger lists run in the reader thread pool.
    ``busy_timeout_ms``: SQLite busy timeout for every connection.
    ``journal_size_limit``: bytes a WAL file keeps after it is reset.
    ``compaction_retention``: revisions of history to keep; None (default)
    means no automatic compaction (only :meth:`compact`).
    ``compaction_interval``: with a retention, also compact this often (s).
    ``compaction_max_bytes``: with a retention, compact as soon as the
    database and WAL together grow past this many bytes.
    """

    def __init__(
        self,
        path: str,
        *,
        compact_batch: int = 500,
        max_batch: int = 1000,
        watch_cache_events: int = 10_000,
        watch_buffer: int = 1000,
        progress_interval: float = 5.0,
        inline_list_limit: int = 500,
        reader_threads: int = 2,
        busy_timeout_ms: int = 10_000,
        journal_size_limit: int = 16 * 1024 * 1024,
        compaction_retention: int | None = None,
        compaction_interval: float = 300.0,
        compaction_max_bytes: int = 64 * 1024 * 1024,
        compact_step_seconds: float = 0.02,
    ) -> None:
        if compact_batch < 1 or max_batch < 1 or watch_cache_events < 1 or watch_buffer < 1:
            raise ValueError("batch, cache and buffer sizes must be positive")
        if compaction_retention is not None and compaction_retention < 0:
            raise ValueError(f"compaction_retention must be >= 0, got {compaction_retention}")
        if compaction_interval <= 0 or compaction_max_bytes <= 0:
            raise ValueError("compaction_interval and compaction_max_bytes must be positive")
        self.path = path
        self._compact_batch = compact_batch
        self._compact_step_seconds = compact_step_seconds
        self._max_batch = max_batch
        self._ring_size = watch_cache_events
        self._watch_buffer = watch_buffer
        self._progress_interval = progress_interval
        self._inline_list_limit = inline_list_limit
        self._reader_threads = reader_threads
        self._busy_timeout_ms = busy_timeout_ms
        self._journal_size_limit = journal_size_limit
        self._retention = compaction_retention
        self._compact_interval = compaction_interval
        self._compact_max_bytes = compaction_max_bytes
        # History (published - compacted) that wakes the automatic compactor:
        # the retention plus a step, so each compaction cleans at least a
        # step's worth of revisions instead of a handful per write.
        retention = compaction_retention or 0
        self._compact_trigger = retention + max(compact_batch, retention // 2, 1)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closing = False
        self._start_lock: asyncio.Lock | None = None
        self._lock_fd: int | None = None

        # Writer thread state: touched only by the writer thread after start.
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._wconn: sqlite3.Connection | None = None
        self._wrev = 0
        self._compact_done = 0
        self._writer_dead: StoreUnavailableError | None = None  # set once, by the writer

        # Loop-thread state.
        self._rconn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tlocal = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_conns_lock = threading.Lock()
        self._published_rev = 0  # every event up to here is in the ring and was dispatched
        self._compacted = 0  # reads at or below this revision raise CompactedError
        self._ring: list[Event | None] = [None] * watch_cache_events
        self._ring_first = 1  # the ring never holds revisions older than this
        self._watches: set[SQLiteWatch] = set()
        self._live: set[SQLiteWatch] = set()
        self._compact_lock: asyncio.Lock | None = None
        self._compact_wake: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            return
        if self._closing:
            raise StoreUnavailableError("store is closed")
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            await self._start()

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._lock_fd = self._take_file_lock()
        ready: asyncio.Future[tuple[int, int, int]] = loop.create_future()
        self._writer = threading.Thread(
            target=self._writer_main, args=(ready,), name="k8py-sqlite-writer", daemon=True
        )
        self._writer.start()
        try:
            rev, compacted, done = await ready
        except BaseException:
            self._release_file_lock()
            raise
        self._published_rev = rev
        self._ring_first = rev + 1
        self._compacted = compacted
        self._compact_lock = asyncio.Lock()
        self._rconn = self._connect_reader()
        self._executor = ThreadPoolExecutor(
            max_workers=self._reader_threads, thread_name_prefix="k8py-sqlite-reader"
        )
        self._started = True
        if done < compacted:
            # A compaction was interrupted (crash or close): finish it in the background.
            self._spawn(self._run_compaction(compacted), "k8py-sqlite-compaction-resume")
        if self._retention is not None:
            self._compact_wake = asyncio.Event()
            self._spawn(self._auto_compactor(), "k8py-sqlite-auto-compactor")
        log.info("sqlite store ready: %s (revision %d, compacted %d)", self.path, rev, compacted)

    def _take_file_lock(self) -> int:
        # Why: the writer keeps the revision counter in memory; two processes
        # writing one file would hand out the same revisions.
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreUnavailableError(
                f"database {self.path} is in use by another process; stop it or use another --data-dir"
            ) from None
        return fd

    def _release_file_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def close(self) -> None:
        if not self._started or self._closing:
            self._closing = True
            return
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for w in list(self._watches):
            w._finish()
        # Writes queued before this point are still committed and answered:
        # the writer drains the queue in order up to the stop marker.
        self._queue.put((_OP_STOP, None, None, None, None))
        assert self._writer is not None
        await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
        await asyncio.sleep(0)  # run the writer's last call_soon_threadsafe callbacks
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        if self._rconn is not None:
            self._rconn.close()
        with self._reader_conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        self._release_file_lock()

    def _check_open(self) -> None:
        if not self._started:
            raise StoreUnavailableError("store is not started; call await store.start() first")
        if self._closing:
            raise StoreUnavailableError("store is closed")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        assert self._loop is not None
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ connections

    def _connect(self, *, check_same_thread: bool = True) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=check_same_thread, cached_statements=64
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = self._connect(check_same_thread=False)
        conn.execute("PRAGMA query_only = 1")
        return conn

    def _thread_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._tlocal, "conn", None)
        if conn is None:
            conn = self._connect_reader()
            self._tlocal.conn = conn
            with self._reader_conns_lock:
                self._reader_conns.append(conn)
        return conn

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> int:
        rows = conn.execute(_SQL_META_GET, (key,)).fetchall()
        return int(rows[0][0]) if rows else 0

    # ------------------------------------------------------------------ writer thread

    def _writer_main(self, ready: asyncio.Future[tuple[int, int, int]]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            conn = self._connect()
            # auto_vacuum only takes effect before the first table exists.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot put {self.path} in WAL mode (got {mode})")
            # FULL: the WAL is fsynced at every commit, so an acknowledged
            # write survives a crash of the process or the machine.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(f"PRAGMA journal_size_limit = {int(self._journal_size_limit)}")
            conn.executescript(_SCHEMA)
            self._wconn = conn
            self._wrev = conn.execute(_SQL_MAX_ID).fetchall()[0][0] or 0
            compacted = self._meta(conn, _META_COMPACTED)
            self._compact_done = self._meta(conn, _META_COMPACT_DONE)
        except BaseException as exc:  # noqa: BLE001 -- reported to start(), which re-raises
            err = (
                exc
                if isinstance(exc, StoreError)
                else StoreUnavailableError(f"cannot open {self.path}: {exc}")
            )
            loop.call_soon_threadsafe(_resolve, ready, None, err)
            return
        loop.call_soon_threadsafe(_resolve, ready, (self._wrev, compacted, self._compact_done), None)
        try:
            self._writer_loop(conn)
        except BaseException as exc:  # a bug or a broken database: fail everyone, loudly
            log.exception("sqlite writer thread died")
            self._writer_dead = StoreUnavailableError(f"sqlite writer stopped: {exc}")
            self._fail_queue(self._writer_dead)
        finally:
            conn.close()

    def _fail_queue(self, err: StoreError) -> None:
        outcomes: _Outcomes = []
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                break
            if req[4] is not None:
                outcomes.append((req[4], None, err))
        self._post(outcomes, [])

    def _writer_loop(self, conn: sqlite3.Connection) -> None:
        q = self._queue
        while True:
            batch = [q.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            group: list[tuple[Any, ...]] = []
            for req in batch:
                op = req[0]
                if op <= _OP_DELETE:
                    group.append(req)
                    continue
                if group:
                    self._commit_group(conn, group)
                    group = []
                if op == _OP_STOP:
                    return
                self._run_maintenance(conn, req)
            if group:
                self._commit_group(conn, group)

    def _commit_group(self, conn: sqlite3.Connection, group: list[tuple[Any, ...]]) -> None:
        """Apply queued writes in order in one transaction; one fsync for all."""
        rev = self._wrev
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        events: list[Event] = []
        execute = conn.execute
        try:
            execute("BEGIN IMMEDIATE")
            for op, key, value, expected, fut in group:
                # Each precondition is checked against the state left by the
                # writes before it in this same transaction.
                rows = execute(_SQL_LATEST_ROW, (key,)).fetchall()
                latest = rows[0] if rows else None
                live = latest is not None and not latest[1]
                current = KeyValue(key, latest[3], latest[2], latest[0]) if live and latest else None
                if op == _OP_CREATE:
                    if current is not None:
                        outcomes.append((fut, None, KeyExistsError(key, current)))
                        continue
                    rev += 1
                    prev_rev = latest[0] if latest is not None else 0
                    execute(_SQL_INSERT, (rev, key, 1, 0, rev, prev_rev, value, None))
                    execute("INSERT INTO current (name, id) VALUES (?, ?)", (key, rev))
                    events.append(Event(EventType.PUT, KeyValue(key, value, rev, rev), None))
                    outcomes.append((fut, rev, None))
                    continue
                if current is None:
                    outcomes.append((fut, None, KeyNotFoundError(key)))
                    continue
                if expected is not None and expected != current.mod_revision:
                    outcomes.append((fut, None, ConflictError(key, expected, current)))
                    continue
                rev += 1
                if op == _OP_UPDATE:
                    execute(
                        _SQL_INSERT,
                        (rev, key, 0, 0, current.create_revision, current.mod_revision, value, current.value),
                    )
                    execute("UPDATE current SET id = ? WHERE name = ?", (rev, key))
                    kv = KeyValue(key, value, current.create_revision, rev)
                    events.append(Event(EventType.PUT, kv, current))
                    outcomes.append((fut, rev, None))
                else:
                    execute(
                        _SQL_INSERT,
                        (rev, key, 0, 1, current.create_revision, current.mod_revision, current.value, None),
                    )
                    execute("DELETE FROM current WHERE name = ?", (key,))
                    kv = KeyValue(key, current.value, current.create_revision, rev)
                    events.append(Event(EventType.DELETE, kv, current))
                    outcomes.append((fut, DeleteResult(rev, current), None))
            execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 -- sqlite3.Error (disk full, I/O) or a bug: fail this group only
            log.error("sqlite write transaction failed: %s", exc)
            with contextlib.suppress(sqlite3.Error):
                execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):
                self._wrev = execute(_SQL_MAX_ID).fetchall()[0][0] or 0
            err = StoreUnavailableError(f"sqlite write failed: {exc}")
            self._post([(req[4], None, err) for req in group], [])
            return
        self._wrev = rev
        self._post(outcomes, events)

    def _post(self, outcomes: _Outcomes, events: _Events) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self._loop.call_soon_threadsafe(self._on_commit, outcomes, events)

    def _run_maintenance(self, conn: sqlite3.Connection, req: tuple[Any, ...]) -> None:
        op, _key, arg, _expected, fut = req
        try:
            if op == _OP_COMPACT:
                result: Any = self._compact_step(conn, arg)
            elif op == _OP_PING:
                result = conn.execute(_SQL_MAX_ID).fetchall()[0][0] or 0
            else:
                result = self._maintain_step(conn)
        except Exception as exc:  # noqa: BLE001 -- reported to the caller of compact()
            self._rollback_quietly(conn)
            self._post([(fut, None, StoreUnavailableError(f"sqlite maintenance failed: {exc}"))], [])
            return
        self._post([(fut, result, None)], [])

    def _compact_step(self, conn: sqlite3.Connection, target: int) -> bool:
        """Clean the log for revisions up to ``target`` (the new compacted
        revision) in one short transaction; True when finished.

        A row is removed when a later row of the same key with id <= target+1
        supersedes it (reads at target+1 and later never need it), and a
        tombstone is removed when its id <= target. Rows are visited in id
        order and a row's predecessor is removed together with it, so between
        steps every key still reads correctly at any revision > target.
        """
        execute = conn.execute
        done = self._compact_done
        deadline = time.monotonic() + self._compact_step_seconds
        execute("BEGIN IMMEDIATE")
        try:
            execute(_SQL_META_SET, (_META_COMPACTED, target))
            while done < target:
                hi = min(done + self._compact_batch, target)
                # Row target+1 too: its predecessor is superseded at target+1.
                succ_hi = hi + 1 if hi == target else hi
                execute(
                    "DELETE FROM kv WHERE id IN"
                    " (SELECT prev_revision FROM kv WHERE id BETWEEN ? AND ? AND prev_revision > 0)",
                    (done + 1, succ_hi),
                )
                execute("DELETE FROM kv WHERE id BETWEEN ? AND ? AND deleted = 1", (done + 1, hi))
                done = hi
                # Keep each transaction short unless nobody is waiting to write.
                if not self._queue.empty() or time.monotonic() > deadline:
                    break
            execute(_SQL_META_SET, (_META_COMPACT_DONE, done))
            execute("COMMIT")
        except BaseException:
            self._rollback_quietly(conn)
            raise
        self._compact_done = done
        return done >= target

    def _maintain_step(self, conn: sqlite3.Connection) -> bool:
        """Give freed pages back to the filesystem, a bounded chunk at a time,
        then truncate the WAL. True when finished.

        Why only past a quarter of the file: under steady churn each small
        compaction frees about as many pages as the next second of writes
        needs; giving them back only to grow the file again costs I/O for
        nothing. A file that shrank for good (a big compaction, mass deletes)
        is returned in chunks of ``_VACUUM_PAGES`` pages, one short
        transaction each, so queued writes run in between.
        """
        free = conn.execute("PRAGMA freelist_count").fetchall()[0][0]
        pages = conn.execute("PRAGMA page_count").fetchall()[0][0]
        if free > _VACUUM_PAGES and free * 4 > pages:
            conn.execute(f"PRAGMA incremental_vacuum({_VACUUM_PAGES})").fetchall()
            return False
        # Why busy_timeout 0: TRUNCATE must wait for readers to leave the WAL;
        # the writer thread must not stall behind a long read. A checkpoint
        # that finds readers does what it can and returns; the next one
        # (automatic, or after the next compaction) finishes the job, and
        # journal_size_limit caps what a reset WAL keeps on disk meanwhile.
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        return True

    @staticmethod
    def _rollback_quietly(conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    # ------------------------------------------------------------------ loop side of writes

    def _submit(self, op: int, key: Any, value: Any, expected: Any) -> asyncio.Future[Any]:
        self._check_open()
        assert self._loop is not None
        if self._writer_dead is not None:
            raise self._writer_dead
        fut = self._loop.create_future()
        self._queue.put((op, key, value, expected, fut))
        if self._writer_dead is not None:  # died between the check and the put
            self._fail_queue(self._writer_dead)
        return fut

    def _on_commit(self, outcomes: _Outcomes, events: _Events) -> None:
        # Events first: when a writer's await returns, watchers already have its event.
        if events:
            self._publish(events)
            wake = self._compact_wake
            if wake is not None and self._published_rev - self._compacted > self._compact_trigger:
                wake.set()  # the history outgrew the retention: compact now, not at the next tick
        for fut, result, exc in outcomes:
            if fut.done():
                continue
            if exc is None:
                fut.set_result(result)
            else:
                fut.set_exception(exc)

    def _publish(self, events: list[Event]) -> None:
        ring, size = self._ring, self._ring_size
        for ev in events:
            ring[ev.kv.mod_revision % size] = ev
        self._published_rev = events[-1].kv.mod_revision
        if not self._live:
            return
        matched: dict[str, list[Event]] = {}
        for w in list(self._live):
            prefix = w.prefix
            m = matched.get(prefix)
            if m is None:
                m = events if not prefix else [e for e in events if e.kv.key.startswith(prefix)]
                matched[prefix] = m
            if not m:
                continue
            if m[0].kv.mod_revision < w._next:  # a watch started in the future
                m = [e for e in m if e.kv.mod_revision >= w._next]
                if not m:
                    continue
            w._pending.extend(m)
            if len(w._pending) > self._watch_buffer:
                w._fall_behind()
            w._wake.set()

    def _ring_low(self) -> int:
        """Oldest revision the ring still holds."""
        return max(self._ring_first, self._published_rev - self._ring_size + 1)

    # ------------------------------------------------------------------ Store API: writes

    async def create(self, key: str, value: bytes) -> int:
        _check_value(value)
        result: int = await self._submit(_OP_CREATE, key, value, None)
        return result

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        _check_value(value)
        result: int = await self._submit(_OP_UPDATE, key, value, expected_revision)
        return result

    async def delete(self, key: str, expected_revision: int | None = None) -> DeleteResult:
        result: DeleteResult = await self._submit(_OP_DELETE, key, None, expected_revision)
        return result

    # ------------------------------------------------------------------ Store API: reads

    async def current_revision(self) -> int:
        self._check_open()
        assert self._rconn is not None
        # The database may be ahead of _published_rev by a batch whose
        # callback has not run yet; a list may already have returned it.
        db_rev = self._rconn.execute(_SQL_MAX_ID).fetchall()[0][0] or 0
        return max(db_rev, self._published_rev)

    async def compacted_revision(self) -> int:
        self._check_open()
        return self._compacted

    async def health(self) -> None:
        """Raise StoreUnavailableError unless the writer thread serves its
        queue and the database can be read (see :meth:`Store.health`)."""
        self._check_open()
        if self._writer_dead is not None:
            raise self._writer_dead
        if self._writer is None or not self._writer.is_alive():
            raise StoreUnavailableError(f"the sqlite writer thread for {self.path} is not running")
        # Through the writer, behind whatever is queued: a writer stuck in
        # fsync (a hung disk) makes this wait, and the caller's timeout fails it.
        await self._submit(_OP_PING, None, None, None)
        assert self._rconn is not None
        try:
            self._rconn.execute(_SQL_MAX_ID).fetchall()
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"cannot read {self.path}: {e}") from None

    def _check_revision(self, revision: int) -> None:
        if revision < 0:
            raise ValueError(f"revision must be >= 0, got {revision}")
        if 0 < revision <= self._compacted:
            raise CompactedError(revision, self._compacted)

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        self._check_open()
        conn = self._rconn
        assert conn is not None
        if revision == 0:
            rows = conn.execute(_SQL_GET_LATEST, (key,)).fetchall()
            return KeyValue(key, rows[0][0], rows[0][1], rows[0][2]) if rows else None
        # Why the in-memory compacted check is enough here: compaction raises
        # it before deleting any row, and this read runs on the loop thread.
        self._check_revision(revision)
        if revision > self._published_rev:
            current = conn.execute(_SQL_MAX_ID).fetchall()[0][0] or 0
            if revision > current:
                raise FutureRevisionError(revision, current)
        rows = conn.execute(_SQL_GET_AT, (key, revision)).fetchall()
        if not rows or rows[0][3]:
            return None
        value, create_rev, mod_rev, _deleted = rows[0]
        return KeyValue(key, value, create_rev, mod_rev)

    async def list(
        self,
        prefix: str,
        *,
        start_key: str | None = None,
        limit: int = 0,
        revision: int = 0,
        count: bool = False,
    ) -> ListResult:
        """See :meth:`Store.list`. ``count`` is the number of keys under the
        whole prefix at the read revision, whatever ``start_key`` and ``limit``
        (so on a first page ``count - len(kvs)`` is what remains)."""
        self._check_open()
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        limit = min(limit, MAX_LIST_LIMIT)
        self._check_revision(revision)
        if 0 < limit <= self._inline_list_limit:
            assert self._rconn is not None
            return self._list_sync(self._rconn, prefix, start_key, limit, revision, count)
        assert self._loop is not None and self._executor is not None
        return await self._loop.run_in_executor(
            self._executor, self._list_in_thread, prefix, start_key, limit, revision, count
        )

    def _list_in_thread(
        self, prefix: str, start_key: str | None, limit: int, revision: int, count: bool
    ) -> ListResult:
        return self._list_sync(self._thread_conn(), prefix, start_key, limit, revision, count)

    def _list_sync(
        self,
        conn: sqlite3.Connection,
        prefix: str,
        start_key: str | None,
        limit: int,
        revision: int,
        count: bool,
    ) -> ListResult:
        lo = prefix if start_key is None or start_key < prefix else start_key
        hi = _prefix_end(prefix)
        # One read transaction: the revision, the rows and the count all come
        # from the same snapshot.
        conn.execute("BEGIN")
        try:
            current = conn.execute(_SQL_MAX_ID).fetchall()[0][0] or 0
            if revision:
                if revision > current:
                    raise FutureRevisionError(revision, current)
                # Checked again inside the snapshot: a compaction may have
                # started after the caller's check on the loop thread.
                compacted = self._meta(conn, _META_COMPACTED)
                if revision <= compacted:
                    raise CompactedError(revision, compacted)
            at = revision or current
            latest = at == current
            kvs: _KVs = []
            more = False
            if hi is None or lo < hi:
                if latest:
                    kvs, more = self._list_latest(conn, lo, hi, limit)
                else:
                    kvs, more = self._list_at(conn, lo, hi, limit, at)
            total = 0
            if count:
                if not more and lo == prefix:
                    total = len(kvs)
                else:
                    total = self._count(conn, prefix, hi, at if not latest else 0)
        finally:
            conn.execute("COMMIT")
        return ListResult(kvs, at, more, total)

    @staticmethod
    def _list_latest(conn: sqlite3.Connection, lo: str, hi: str | None, limit: int) -> tuple[_KVs, bool]:
        sql = (
            "SELECT current.name, kv.value, kv.create_revision, kv.id FROM current"
            " JOIN kv ON kv.id = current.id"
            f" WHERE {_range_clause('current.name', hi)} ORDER BY current.name"
        )
        args: tuple[Any, ...] = _range_args(lo, hi)
        if limit:
            sql += " LIMIT ?"
            args += (limit + 1,)
        rows = conn.execute(sql, args).fetchall()
        more = bool(limit) and len(rows) > limit
        if more:
            del rows[limit:]
        return [KeyValue(*row) for row in rows], more

    @staticmethod
    def _list_at(conn: sqlite3.Connection, lo: str, hi: str | None, limit: int, at: int) -> tuple[_KVs, bool]:
        # SQLite's documented min/max rule: with a single max() aggregate the
        # bare columns come from the row holding the max, i.e. each key's
        # latest row at or before ``at``.
        cur = conn.execute(
            "SELECT name, value, create_revision, max(id), deleted FROM kv"
            f" WHERE {_range_clause('name', hi)} AND id <= ? GROUP BY name ORDER BY name",
            (*_range_args(lo, hi), at),
        )
        kvs: _KVs = []
        more = False
        try:
            for name, value, create_rev, mod_rev, deleted in cur:
                if deleted:
                    continue
                if limit and len(kvs) == limit:
                    more = True
                    break
                kvs.append(KeyValue(name, value, create_rev, mod_rev))
        finally:
            cur.close()  # end the statement before COMMIT
        return kvs, more

    @staticmethod
    def _count(conn: sqlite3.Connection, prefix: str, hi: str | None, at: int) -> int:
        """Live keys under ``prefix`` at revision ``at`` (0: latest)."""
        if not at:
            sql = f"SELECT count(*) FROM current WHERE {_range_clause('name', hi)}"
            return int(conn.execute(sql, _range_args(prefix, hi)).fetchall()[0][0])
        sql = (
            "SELECT count(*) FROM (SELECT max(id), deleted FROM kv"
            f" WHERE {_range_clause('name', hi)} AND id <= ? GROUP BY name) WHERE deleted = 0"
        )
        return int(conn.execute(sql, (*_range_args(prefix, hi), at)).fetchall()[0][0])

    def _read_log(self, prefix: str, lo: int, hi: int, limit: int) -> tuple[_Events, int]:
        """Events under ``prefix`` with revisions in [lo, hi] from the database
        (reader thread). Returns the events and the last revision scanned."""
        conn = self._thread_conn()
        end = _prefix_end(prefix)
        hi = min(hi, lo + _LOG_READ_SPAN - 1)
        conn.execute("BEGIN")
        try:
            compacted = self._meta(conn, _META_COMPACTED)
            if lo <= compacted:
                raise CompactedError(lo, compacted)
            rows = conn.execute(
                f"SELECT {_SQL_EVENT_COLUMNS} FROM kv WHERE id BETWEEN ? AND ?"
                f" AND {_range_clause('name', end)} ORDER BY id LIMIT ?",
                (lo, hi, *_range_args(prefix, end), limit),
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        scanned = rows[-1][0] if len(rows) == limit else hi
        return [_row_event(row) for row in rows], scanned

    # ------------------------------------------------------------------ watch

    def watch(self, prefix: str, start_revision: int, *, progress_notify: bool = False) -> SQLiteWatch:
        self._check_open()
        if start_revision < 0:
            raise ValueError(f"start_revision must be >= 0, got {start_revision}")
        w = SQLiteWatch(self, prefix, start_revision, progress_notify)
        self._watches.add(w)
        if start_revision == 0:
            # "From now": registration is synchronous on the loop thread, so
            # every event published after this line reaches the watcher.
            w._next = self._published_rev + 1
            w._go_live()
        return w

    # ------------------------------------------------------------------ compaction

    async def compact(self, revision: int) -> None:
        """Forget history before ``revision`` (reads at ``revision`` still work).

        Returns when the log has been cleaned and space reclaimed. Compacting
        to a revision at or below the current compacted one does nothing.
        """
        self._check_open()
        current = await self.current_revision()
        if revision > current:
            raise FutureRevisionError(revision, current)
        target = revision - 1
        if target <= self._compacted:
            return
        # Why first: from here on, reads at <= target are refused, so the
        # rows the cleaner deletes next are never needed by a loop-thread read.
        self._compacted = target
        await self._run_compaction(target)

    async def _run_compaction(self, target: int) -> None:
        assert self._compact_lock is not None
        async with self._compact_lock:
            while not await self._submit(_OP_COMPACT, None, target, None):
                pass
            while not await self._submit(_OP_MAINTAIN, None, None, None):
                pass

    def start_compactor(self, interval_s: float, keep_revisions: int) -> asyncio.Task[None]:
        """Every ``interval_s`` seconds compact away all but the last
        ``keep_revisions`` revisions. The task ends with :meth:`close`."""
        self._check_open()
        if interval_s <= 0 or keep_revisions < 0:
            raise ValueError("interval_s must be > 0 and keep_revisions >= 0")

        async def run() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    target = await self.current_revision() - keep_revisions
                    if target - 1 > self._compacted:
                        started = time.monotonic()
                        await self.compact(target)
                        log.info(
                            "compacted sqlite store to revision %d in %.2fs",
                            target,
                            time.monotonic() - started,
                        )
                except StoreUnavailableError:
                    if self._closing:
                        return
                    log.exception("sqlite compaction failed; retrying in %ss", interval_s)
                except Exception:
                    log.exception("sqlite compaction failed; retrying in %ss", interval_s)

        return self._spawn(run(), "k8py-sqlite-compactor")

    def files_size(self) -> int:
        """Bytes on disk: the database file plus its WAL."""
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += os.path.getsize(self.path + suffix)
        return size

    def _compaction_reason(self, now: float, next_timed: float) -> str | None:
        """Why the automatic compactor should compact now, if it should."""
        history = self._published_rev - self._compacted
        assert self._retention is not None
        if history <= self._retention + 1:  # compacting would clean nothing
            return None
        if history > self._compact_trigger:
            return "revisions"
        if now >= next_timed:
            return "interval"
        if self.files_size() > self._compact_max_bytes:
            return "size"
        return None

    async def _auto_compactor(self) -> None:
        """Keep the last ``compaction_retention`` revisions, compacting when
        the history outgrows the retention by a step (woken by the commit
        that crosses it), when the files grow past ``compaction_max_bytes``,
        and every ``compaction_interval`` seconds.

        Each compaction is a series of short writer-thread transactions
        (:meth:`_compact_step`, :meth:`_maintain_step`) queued like writes,
        so writers keep flowing while it runs.
        """
        assert self._loop is not None and self._compact_wake is not None and self._retention is not None
        loop, wake, keep = self._loop, self._compact_wake, self._retention
        next_timed = loop.time() + self._compact_interval
        while not self._closing:
            timeout = max(0.0, min(_SIZE_CHECK_PERIOD, next_timed - loop.time()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wake.wait()
            wake.clear()
            now = loop.time()
            reason = self._compaction_reason(now, next_timed)
            if now >= next_timed:
                next_timed = now + self._compact_interval
            if reason is None:
                continue
            target = self._published_rev - keep
            started = time.monotonic()
            try:
                await self.compact(target)
            except StoreUnavailableError:
                if self._closing:
                    return
                log.exception("sqlite compaction to revision %d failed; retrying later", target)
                continue
            except Exception:
                log.exception("sqlite compaction to revision %d failed; retrying later", target)
                continue
            took = time.monotonic() - started
            # Per-revision-trigger compactions run every second or so under
            # load: log them only when they are slow.
            log.log(
                logging.INFO if reason != "revisions" or took > 1.0 else logging.DEBUG,
                "compacted sqlite store to revision %d (%s) in %.2fs, files %.1f MB",
                target,
                reason,
                took,
                self.files_size() / 1e6,
            )

    # ------------------------------------------------------------------ diagnostics

    async def stats(self) -> StoreStats:
        self._check_open()
        assert self._rconn is not None
        keys = self._rconn.execute("SELECT count(*) FROM current").fetchall()[0][0]
        size = self.files_size()
        return StoreStats(
            revision=await self.current_revision(),
            compacted=self._compacted,
            keys=keys,
            db_size_bytes=size,
            extra={"watchers": len(self._watches), "live_watchers": len(self._live)},
        )


def _check_value(value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"store values must be bytes, got {type(value).__name__}")


def _resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(result)
    else:
        fut.set_exception(exc)


class SQLiteWatch:
    """An open watch on a :class:`SQLiteStore` (see :class:`Watch`).

    States: *catching up* (reads the ring or the log from ``_next`` on each
    ``__anext__``) and *live* (the store pushes matching events into
    ``_pending`` as they are published).
    """

    __slots__ = (
        "_checked",
        "_closed",
        "_live",
        "_next",
        "_pending",
        "_progress",
        "_start",
        "_store",
        "_wake",
        "prefix",
    )

    def __init__(self, store: SQLiteStore, prefix: str, start_revision: int, progress_notify: bool) -> None:
        self._store = store
        self.prefix = prefix
        self._start = start_revision
        self._progress = progress_notify
        self._next = start_revision  # first revision not yet handed to the consumer
        self._live = False
        self._pending: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._checked = False

    def __aiter__(self) -> SQLiteWatch:
        return self

    async def __anext__(self) -> WatchResponse:
        store = self._store
        if not self._checked:
            self._checked = True
            if not self._closed and 0 < self._start <= store._compacted:
                self._finish()
                raise CompactedError(self._start, store._compacted)
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._live:
                if self._pending:
                    return self._drain()
                self._wake.clear()
                if not self._progress:
                    await self._wake.wait()
                    continue
                try:
                    async with asyncio.timeout(store._progress_interval):
                        await self._wake.wait()
                except TimeoutError:
                    if self._live and not self._closed and not self._pending:
                        return WatchResponse([], store._published_rev)
                continue
            try:
                response = await self._catch_up()
            except CompactedError:
                self._finish()
                raise
            if response is not None:
                return response

    def _drain(self) -> WatchResponse:
        pending = self._pending
        n = min(len(pending), _MAX_EVENTS_PER_RESPONSE)
        events = [pending.popleft() for _ in range(n)]
        # Drained: every published event was offered to this watcher.
        revision = events[-1].kv.mod_revision if pending else self._store._published_rev
        return WatchResponse(events, max(revision, events[-1].kv.mod_revision))

    async def _catch_up(self) -> WatchResponse | None:
        """One step of replay from ``_next``; None when nothing matched."""
        store = self._store
        nxt = self._next
        if nxt <= store._compacted:
            raise CompactedError(nxt, store._compacted)
        published = store._published_rev
        if nxt > published:
            self._go_live()
            return None
        low = store._ring_low()
        prefix = self.prefix
        if nxt >= low:
            # From memory, synchronously: nothing is published meanwhile, so
            # turning live at the end leaves no gap and no duplicate.
            ring, size = store._ring, store._ring_size
            events: list[Event] = []
            rev = nxt
            while rev <= published and len(events) < _MAX_EVENTS_PER_RESPONSE:
                ev = ring[rev % size]
                assert ev is not None and ev.kv.mod_revision == rev
                if ev.kv.key.startswith(prefix):
                    events.append(ev)
                rev += 1
            self._next = rev
            if rev > published:
                self._go_live()
            return WatchResponse(events, rev - 1) if events else None
        # From the database, in a reader thread, up to what the ring covers.
        assert store._loop is not None and store._executor is not None
        events, scanned = await store._loop.run_in_executor(
            store._executor, store._read_log, prefix, nxt, low - 1, _MAX_EVENTS_PER_RESPONSE
        )
        if self._closed:
            raise StopAsyncIteration
        self._next = scanned + 1
        return WatchResponse(events, scanned) if events else None

    def _go_live(self) -> None:
        self._live = True
        self._store._live.add(self)

    def _fall_behind(self) -> None:
        """Too many undelivered events: drop them and replay from the first."""
        self._next = self._pending[0].kv.mod_revision
        self._pending.clear()
        self._live = False
        self._store._live.discard(self)

    def _finish(self) -> None:
        self._closed = True
        self._live = False
        self._pending.clear()
        self._store._live.discard(self)
        self._store._watches.discard(self)
        self._wake.set()

    async def close(self) -> None:
        self._finish()
