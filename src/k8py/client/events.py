"""The one event recorder of every component (scheduler, controllers, node agent), shaped like
client-go's event broadcaster.

``event()`` never waits: it queues (at most ``max_queued``; beyond that events are dropped and
counted, as client-go drops when its channel is full) and a few workers write them in order.
The same (object, type, reason, message) again within ``series_window`` seconds bumps the
existing Event's ``count`` instead of creating another (so a pod retried every few seconds
shows ``FailedScheduling (x12 over 2m)`` in ``kubectl describe``, one object in the store).

Keeping event writes off the callers' paths (a scheduling cycle, a reconcile, a pod worker)
and bounded in number keeps the API server's work per scheduled pod to a binding and at most
one event. A component starts the sink when it starts and stops it (flushing) when it stops.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from typing import Any

from k8py.api.corev1 import format_epoch
from k8py.client.api import Client
from k8py.client.clock import Clock, RealClock
from k8py.client.errors import ApiError, NotFoundError

__all__ = ["EventSink"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
EVENT = ("v1", "Event")


class EventSink:
    def __init__(self, client: Client, component: str, *, clock: Clock | None = None, max_queued: int = 1000,
                 workers: int = 2, series_window: float = 600.0, max_series: int = 4096) -> None:
        self.client = client
        self.component = component
        self.clock: Clock = clock or RealClock()
        self.host = socket.gethostname()
        self.max_queued = max_queued
        self.workers = workers
        self.series_window = series_window
        self.max_series = max_series
        self.dropped = 0
        self.written = 0
        self._queue: collections.deque[tuple[Obj, str, str, str, float, str]] = collections.deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0
        # (namespace, uid, type, reason, message) -> (event name, count, last write)
        self._series: collections.OrderedDict[tuple[str, ...], tuple[str, int, float]] = collections.OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._worker(), name=f"events-{i}") for i in range(self.workers)]

    async def stop(self, flush: float = 2.0) -> None:
        """Write what is queued (for up to ``flush`` seconds), then end the workers."""
        if self._tasks and flush > 0:
            try:
                async with asyncio.timeout(flush):
                    await self.flush()
            except TimeoutError:
                log.debug("event sink: %d event(s) not written at stop", len(self._queue))
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def flush(self) -> None:
        while self._queue or self._busy:
            self._idle.clear()
            await self._idle.wait()

    def event(self, obj: Obj, type_: str, reason: str, message: str, component: str | None = None) -> None:
        """Queue an event about ``obj`` (never raises, never waits). ``component`` is the source
        it names when not the sink's own (kube's controllers each have their recorder: the PV
        controller's events come from ``persistentvolume-controller``)."""
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                log.warning("event sink: queue full, %d event(s) dropped so far", self.dropped)
            return
        self._queue.append((obj, type_, reason, message, self.clock.wall(), component or self.component))
        self._wake.set()

    async def _worker(self) -> None:
        while True:
            if not self._queue:
                if not self._busy:
                    self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._queue.popleft()
            self._busy += 1
            try:
                await self._write(*item)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 -- an event is never worth more than a log line
                log.debug("could not write event %s: %s", item[2], e)
            finally:
                self._busy -= 1

    async def _write(self, obj: Obj, type_: str, reason: str, message: str, when: float, component: str) -> None:
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        key = (ns, str(meta.get("uid") or ""), str(meta.get("name") or ""), type_, reason, message, component)
        now = format_epoch(when)
        prior = self._series.get(key)
        if prior is not None and when - prior[2] < self.series_window:
            name, count, _ = prior
            try:
                await self.client.patch(EVENT, name, {"count": count + 1, "lastTimestamp": now}, ns, type="merge")
                self._series[key] = (name, count + 1, when)
                self._series.move_to_end(key)
                self.written += 1
                return
            except NotFoundError:
                pass  # the event expired: start a new series
            except ApiError as e:
                log.debug("could not update event %s: %s", name, e)
                return
        ref = {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", "Pod"),
               "name": meta.get("name", ""), "namespace": meta.get("namespace", ""), "uid": meta.get("uid", ""),
               "resourceVersion": meta.get("resourceVersion", "")}
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": ns},
              "involvedObject": {k: v for k, v in ref.items() if v},
              "reason": reason, "message": message, "type": type_,
              "source": {"component": component, "host": self.host},
              "firstTimestamp": now, "lastTimestamp": now, "count": 1,
              "reportingComponent": component, "reportingInstance": self.host}
        try:
            created = await self.client.create(EVENT, ev, ns)
        except ApiError as e:
            log.debug("could not record event %s on %s/%s: %s", reason, ns, meta.get("name"), e)
            return
        self.written += 1
        self._series[key] = (str(created["metadata"]["name"]), 1, when)
        while len(self._series) > self.max_series:
            self._series.popitem(last=False)
