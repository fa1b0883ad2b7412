"""Informers: a local, indexed, always-catching-up copy of one kind, with event handlers.

An :class:`Informer` lists, then watches from the list's resourceVersion, and keeps watching
from the last resourceVersion it saw (bookmarks advance it too) across dropped connections and
server-side timeouts. Only ``410 Gone`` (the version was compacted away) makes it list again;
then objects that vanished meanwhile are reported deleted with their last known state. Other
errors are retried with jittered exponential backoff.

Handlers run in the informer's task right after the cache changed, so a handler sees the cache
already updated. They should only enqueue keys; one that raises is logged and the informer goes
on. A handler added late is first told about every cached object as an add.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from k8py.api.registry import KindInfo
from k8py.client.api import Client, KindRef, object_key
from k8py.client.clock import Clock, RealClock
from k8py.client.errors import GoneError
from k8py.client.store import IndexFunc, Store

__all__ = ["Handler", "Informer", "SharedInformerFactory"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
OnAdd = Callable[[Obj], Any]
OnUpdate = Callable[[Obj, Obj], Any]
OnDelete = Callable[[Obj], Any]

# A watch that ends this fast without a single event is a misbehaving server, not a timeout.
SHORT_WATCH = 1.0


@dataclass(slots=True, eq=False)
class Handler:
    """A registration returned by :meth:`Informer.add_handler` (pass it to ``remove_handler``)."""

    on_add: OnAdd | None = None
    on_update: OnUpdate | None = None
    on_delete: OnDelete | None = None


class Informer:
    """List+watch of one kind (in one namespace, or all), into an indexed :class:`Store`."""

    def __init__(self, client: Client, kind: KindRef, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None, resync: float = 0.0, *,
                 clock: Clock | None = None, page_size: int = 500,
                 watch_timeout: tuple[int, int] = (300, 600), backoff: tuple[float, float] = (0.8, 30.0)) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync = resync
        self.clock: Clock = clock or RealClock()
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.backoff = backoff
        self.store = Store()
        self.resource_version = ""  # the last one seen (list, event or bookmark)
        self.lists = 0  # full lists done (the first one and one per 410)
        self.watches = 0  # watch connections opened
        self._handlers: list[Handler] = []
        self._handler_tasks: set[asyncio.Future[Any]] = set()
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._info: KindInfo | None = client.kind_info(kind)

    def __repr__(self) -> str:
        k = self._info.resource if self._info else self.kind
        sel = "".join(f",{s}" for s in (self.label_selector, self.field_selector) if s)
        return f"<Informer {k} ns={self.namespace or '*'}{sel}>"

    # -- cache -----------------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        """True once the first list is in the cache and its handlers have run."""
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        self.store.add_indexer(name, fn)

    def get(self, name: str, namespace: str | None = None) -> Obj | None:
        return self.store.get_by_name(name, namespace)

    def list(self, namespace: str | None = None) -> list[Obj]:
        return self.store.list(namespace)

    # -- handlers --------------------------------------------------------------------------------

    def add_handler(self, on_add: OnAdd | None = None, on_update: OnUpdate | None = None,
                    on_delete: OnDelete | None = None) -> Handler:
        """Register handlers; if the cache already holds objects, ``on_add`` hears of each now."""
        h = Handler(on_add, on_update, on_delete)
        self._handlers.append(h)
        if on_add is not None:
            for obj in self.store:
                self._call(on_add, obj)
        return h

    def remove_handler(self, h: Handler) -> None:
        self._handlers.remove(h)

    def _call(self, fn: Callable[..., Any], *args: Obj) -> None:
        try:
            res = fn(*args)
            if inspect.isawaitable(res):
                # why: an async handler runs on its own, so a slow one cannot stall the stream
                t = asyncio.ensure_future(res)
                self._handler_tasks.add(t)
                t.add_done_callback(self._log_task_error)
        except Exception:
            log.exception("%r: handler %s failed", self, getattr(fn, "__qualname__", fn))

    def _log_task_error(self, t: asyncio.Future[Any]) -> None:
        self._handler_tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("%r: async handler failed", self, exc_info=t.exception())

    def _added(self, obj: Obj) -> None:
        for h in list(self._handlers):
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _updated(self, old: Obj, new: Obj) -> None:
        for h in list(self._handlers):
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _deleted(self, obj: Obj) -> None:
        for h in list(self._handlers):
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (once); :meth:`stop` ends it."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=repr(self))
        return self._task

    @property
    def started(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        t, self._task = self._task, None
        if t is not None and not t.done():
            t.cancel()
            try:
                await t
            except asyncio.CancelledError:
                pass

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """List and watch until cancelled (or until ``stop`` is set)."""
        if stop is not None:
            t = asyncio.create_task(self.run())
            try:
                await stop.wait()
            finally:
                t.cancel()
                await asyncio.gather(t, return_exceptions=True)
            return
        resync = asyncio.create_task(self._resync_loop()) if self.resync > 0 else None
        try:
            await self._list_and_watch()
        finally:
            if resync is not None:
                resync.cancel()
                await asyncio.gather(resync, return_exceptions=True)

    async def _list_and_watch(self) -> None:
        need_list = True
        delay = self.backoff[0]
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    delay = self.backoff[0]
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                n = await self._watch()
                if n == 0 and loop.time() - t0 < SHORT_WATCH:
                    raise ConnectionError("watch closed immediately without events")
                delay = self.backoff[0]
            except asyncio.CancelledError:
                raise
            except GoneError as e:
                # why: the events between our version and now are compacted away; only a fresh
                # list can bring the cache back in step (client-go relists at once, no backoff)
                log.info("%r: resourceVersion %s is too old (%s); listing again", self, self.resource_version,
                         e.message)
                need_list = True
            except Exception as e:  # noqa: BLE001 -- any failure: log, back off, resume the watch
                wait = delay * random.uniform(1.0, 1.5)
                log.warning("%r: %s failed: %s: %s; retrying in %.2fs", self, "list" if need_list else "watch",
                            type(e).__name__, e, wait)
                await self.clock.sleep(wait)
                delay = min(delay * 2, self.backoff[1])

    async def _list(self) -> None:
        info = self._info = await self.client.resolve(self.kind)
        lst = await self.client.list_all(info, self.namespace, label_selector=self.label_selector,
                                         field_selector=self.field_selector, page_size=self.page_size)
        self.lists += 1
        items: dict[str, Obj] = {}
        for obj in lst.get("items") or ():
            # List items carry no apiVersion/kind on the wire; watch events do. Make them alike.
            obj.setdefault("apiVersion", info.api_version)
            obj.setdefault("kind", info.kind)
            items[object_key(obj)] = obj
        store = self.store
        gone = [k for k in store.keys() if k not in items]  # noqa: SIM118 -- Store.keys() is a list
        for key, obj in items.items():
            old = store.put(obj, key)
            if old is None:
                self._added(obj)
            else:
                self._updated(old, obj)
        for key in gone:
            old = store.remove(key)
            if old is not None:
                self._deleted(old)  # deleted while we were not watching: its last known state
        self.resource_version = str((lst.get("metadata") or {}).get("resourceVersion") or "")
        if not self._synced.is_set():
            self._synced.set()
            log.debug("%r: synced %d objects at resourceVersion %s", self, len(items), self.resource_version)

    async def _watch(self) -> int:
        """One watch connection, from ``resource_version`` until the server ends it; returns events seen."""
        info = self._info
        assert info is not None
        n = 0
        self.watches += 1
        store = self.store
        async with self.client.watch(info, self.namespace, resource_version=self.resource_version,
                                     label_selector=self.label_selector, field_selector=self.field_selector,
                                     timeout_seconds=random.randint(*self.watch_timeout)) as w:
            async for ev in w:
                n += 1
                obj = ev.object
                rv = ev.resource_version
                typ = ev.type
                if typ == "BOOKMARK":
                    if rv:
                        self.resource_version = rv
                    continue
                key = object_key(obj)
                if typ == "DELETED":
                    store.remove(key)
                    self.resource_version = rv or self.resource_version
                    self._deleted(obj)
                elif typ in ("ADDED", "MODIFIED"):
                    old = store.put(obj, key)
                    self.resource_version = rv or self.resource_version
                    if old is None:
                        self._added(obj)
                    else:
                        self._updated(old, obj)
                else:
                    log.warning("%r: unknown watch event type %r", self, typ)
        return n

    async def _resync_loop(self) -> None:
        # A resync re-delivers every cached object as an update (old is new), so level-based
        # controllers get to look again at objects whose events they may have dropped.
        while True:
            await self.clock.sleep(self.resync)
            if self.has_synced:
                for obj in self.store:
                    self._updated(obj, obj)


class SharedInformerFactory:
    """One informer per (kind, namespace, selectors), shared by every controller that asks."""

    def __init__(self, client: Client, *, resync: float = 0.0, namespace: str | None = None,
                 clock: Clock | None = None, **informer_options: Any) -> None:
        self.client = client
        self.resync = resync
        self.namespace = namespace
        self.clock = clock
        self.options = informer_options
        self._informers: dict[tuple[Any, ...], Informer] = {}

    def informer(self, kind: KindRef, namespace: str | None = None, *, label_selector: str | None = None,
                 field_selector: str | None = None) -> Informer:
        ns = namespace if namespace is not None else self.namespace
        info = self.client.kind_info(kind)
        kkey: Any = (info.group, info.version, info.resource) if info is not None else kind
        key = (kkey, ns, label_selector or "", field_selector or "")
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(self.client, kind, ns, label_selector=label_selector, field_selector=field_selector,
                           resync=self.resync, clock=self.clock, **self.options)
            self._informers[key] = inf
        return inf

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        """Start every informer not yet running (call again after asking for more)."""
        for inf in self._informers.values():
            if not inf.started:
                inf.start()

    async def wait_for_cache_sync(self, timeout: float | None = None) -> bool:
        """True when every informer has synced (False on timeout)."""
        infs = list(self._informers.values())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(i.wait_for_sync() for i in infs))
        except TimeoutError:
            return False
        return True

    async def shutdown(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
