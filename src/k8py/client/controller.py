"""The generic controller runner: workers take keys from a work queue and call ``reconcile(key)``.

A controller is one level-based ``async reconcile(key) -> Result | None`` (key is
``namespace/name`` or ``name``); informer handlers only enqueue keys. The runner owns the rest,
as controller-runtime does:

- an exception retries the key with per-key exponential backoff (``add_rate_limited``); it is
  logged with its traceback, except the expected races (:data:`RACES`: Conflict, NotFound,
  AlreadyExists), which get one debug line;
- ``Result(requeue=True)`` retries with backoff too, without counting an error;
- ``Result(requeue_after=s)`` forgets the backoff and looks again after ``s`` seconds;
- otherwise (``None`` or ``Result()``) the key's backoff is forgotten.

Logging and a few counters (reconciles, errors, requeues, latency, queue depth) live here too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from k8py.client.api import object_key
from k8py.client.clock import Clock, RealClock
from k8py.client.errors import AlreadyExistsError, ConflictError, NotFoundError
from k8py.client.informer import Handler, Informer
from k8py.client.workqueue import ShutDown, WorkQueue

__all__ = ["RACES", "Controller", "ControllerMetrics", "Reconcile", "Result"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# API errors that mean "the world moved while we looked", not "something is broken".
RACES = (ConflictError, NotFoundError, AlreadyExistsError)


@dataclass(frozen=True, slots=True)
class Result:
    requeue: bool = False
    requeue_after: float | None = None


Reconcile = Callable[[str], Awaitable[Result | None]]


@dataclass(slots=True)
class ControllerMetrics:
    reconciles: int = 0
    errors: int = 0
    requeues: int = 0  # keys put back (error, requeue or requeue_after)
    dropped: int = 0  # keys given up after max_retries
    active_workers: int = 0
    latency_seconds_total: float = 0.0
    latency_seconds_max: float = 0.0


class Controller:
    """Runs ``reconcile`` for queued keys on ``workers`` concurrent workers."""

    def __init__(self, name: str, reconcile: Reconcile, queue: WorkQueue[str] | None = None, *,
                 workers: int = 1, clock: Clock | None = None, max_retries: int | None = None,
                 shutdown_timeout: float = 30.0, wait_for: Iterable[Informer] = ()) -> None:
        self.name = name
        self.reconcile = reconcile
        self.clock: Clock = clock or (queue.clock if queue is not None else RealClock())
        self.queue: WorkQueue[str] = queue if queue is not None else WorkQueue(name, clock=self.clock)
        self.workers = workers
        self.max_retries = max_retries
        self.shutdown_timeout = shutdown_timeout
        self.metrics = ControllerMetrics()
        # the caches run() waits for before starting workers: every watched informer, and those
        # a controller reads without enqueueing from (its own handlers, listers)
        self._informers: list[Informer] = list(dict.fromkeys(wait_for))
        self._stopping = False

    def __repr__(self) -> str:
        return f"<Controller {self.name}>"

    # -- enqueueing ------------------------------------------------------------------------------

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    def enqueue_key(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_after(self, key: str, delay: float) -> None:
        self.queue.add_after(key, delay)

    def watch(self, informer: Informer, map_fn: Callable[[Obj], Iterable[str]] | None = None, *,
              skip_unchanged: bool = False) -> Handler:
        """Enqueue keys for ``informer``'s events: the object's own key, or ``map_fn(obj)``'s keys
        (e.g. the owner of a dependent). An update enqueues the keys of both old and new state,
        so a dependent that changed owner or labels reaches both. ``skip_unchanged`` drops
        updates whose resourceVersion did not change (resyncs). ``run()`` waits for the
        informer to sync before starting workers."""
        q = self.queue

        def keys(obj: Obj) -> Iterable[str]:
            return (object_key(obj),) if map_fn is None else map_fn(obj)

        def on_add(obj: Obj) -> None:
            for k in keys(obj):
                q.add(k)

        def on_update(old: Obj, new: Obj) -> None:
            if old is new or _rv(old) == _rv(new):
                if skip_unchanged:
                    return
                for k in keys(new):
                    q.add(k)
                return
            for k in {*keys(old), *keys(new)}:
                q.add(k)

        self.wait_for(informer)
        return informer.add_handler(on_add, on_update, on_add)

    def wait_for(self, informer: Informer) -> None:
        """Have ``run()`` wait for ``informer``'s cache too (one the controller reads from its
        own handlers or listers, without enqueueing keys for its events)."""
        if informer not in self._informers:
            self._informers.append(informer)

    # -- running ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Wait for watched informers to sync, then work until ``stop`` is set or the task is cancelled.

        On stop the queue shuts down; reconciles in flight get ``shutdown_timeout`` to finish.
        """
        stop = stop or asyncio.Event()
        stopped = asyncio.create_task(stop.wait())
        try:
            if self._informers:
                synced: asyncio.Future[Any] = asyncio.ensure_future(
                    asyncio.gather(*(i.wait_for_sync() for i in self._informers)))
                both: list[asyncio.Future[Any]] = [synced, stopped]
                await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
                if not synced.done():
                    synced.cancel()
                    await asyncio.gather(synced, return_exceptions=True)
                    return
            self._stopping = False
            tasks = [asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}")
                     for i in range(self.workers)]
            log.info("controller %s: started %d workers", self.name, self.workers)
            try:
                await stopped
            finally:
                await self._shutdown(tasks)
        finally:
            stopped.cancel()
            await asyncio.gather(stopped, return_exceptions=True)

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        self._stopping = True
        self.queue.shut_down()
        # why: let reconciles in flight finish their writes rather than cut them in half
        _, pending = await asyncio.wait(tasks, timeout=self.shutdown_timeout)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("controller %s: stopped", self.name)

    async def _worker(self) -> None:
        while not self._stopping:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            if self._stopping:
                self.queue.done(key)
                return
            await self.process(key)

    async def process_next(self) -> bool:
        """Take one queued key and reconcile it (for tests); False if nothing was queued."""
        key = self.queue.get_nowait()
        if key is None:
            return False
        await self.process(key)
        return True

    async def process(self, key: str) -> None:
        """Reconcile a key already taken from the queue, then settle it (retry, requeue or forget)."""
        q, m = self.queue, self.metrics
        m.active_workers += 1
        t0 = self.clock.now()
        try:
            res = await self.reconcile(key)
        except asyncio.CancelledError:
            q.done(key)
            raise
        except RACES as e:
            # Expected weather, not a fault: another writer got there first (409 Conflict), the
            # object was deleted while we worked on it (404 NotFound), or an object we create
            # already exists (409 AlreadyExists). As kube's controllers, one debug line and a
            # retry with backoff; the retry reads the cache again and sees how things are now
            # (a deleted object's reconcile then returns quietly).
            m.errors += 1
            log.debug("controller %s: %s: %s (will retry)", self.name, key, e)
            self._retry(key)
        except Exception:
            m.errors += 1
            log.exception("controller %s: reconcile %s failed", self.name, key)
            self._retry(key)
        else:
            if res is not None and res.requeue_after is not None and res.requeue_after > 0:
                q.forget(key)
                q.add_after(key, res.requeue_after)
                m.requeues += 1
            elif res is not None and res.requeue:
                self._retry(key)
            else:
                q.forget(key)
        finally:
            m.active_workers -= 1
            m.reconciles += 1
            dt = self.clock.now() - t0
            m.latency_seconds_total += dt
            m.latency_seconds_max = max(m.latency_seconds_max, dt)
        q.done(key)

    def _retry(self, key: str) -> None:
        q = self.queue
        if self.max_retries is not None and q.num_requeues(key) >= self.max_retries:
            log.warning("controller %s: dropping %s after %d retries", self.name, key, self.max_retries)
            q.forget(key)
            self.metrics.dropped += 1
            return
        q.add_rate_limited(key)
        self.metrics.requeues += 1

    def stats(self) -> dict[str, float]:
        """Counters as a flat dict (metrics plus the queue's depth and waits)."""
        m, qm = self.metrics, self.queue.metrics
        return {
            "reconciles": m.reconciles, "errors": m.errors, "requeues": m.requeues, "dropped": m.dropped,
            "active_workers": m.active_workers, "latency_seconds_total": m.latency_seconds_total,
            "latency_seconds_max": m.latency_seconds_max, "queue_depth": len(self.queue),
            "queue_adds": qm.adds, "queue_retries": qm.retries,
            "queue_wait_seconds_total": qm.wait_seconds_total,
        }


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
