"""The garbage collector: deletes objects whose owners are gone, as kube-controller-manager's does.

Every object's ``metadata.ownerReferences`` make a dependency graph (owner uid -> dependents).
It is built from a metadata-only informer per deletable kind (list, watch and delete verbs;
events are ignored, as in kube) and kept in :class:`Graph`, a pure state machine: informer
events go in, the uids to look at come out. One level-based ``reconcile(uid)`` then acts
through the API:

- **dangling owners** — a dependent whose owners are all absent is deleted (Background, unless
  the dependent itself carries the ``orphan`` or ``foregroundDeletion`` finalizer). Absence is
  always confirmed by a live GET of the owner by name, comparing its uid: the cache is never
  trusted to delete. A dependent that still has a live owner only loses the references to the
  absent ones (kube's behaviour), so it goes when its last owner goes.
- **foreground** — an owner being deleted with the ``foregroundDeletion`` finalizer has its
  dependents deleted (Foreground for dependents that have dependents themselves, so the
  deletion cascades depth-first); once none of its dependents with ``blockOwnerDeletion`` is
  left, the finalizer is removed (a patch with the resourceVersion precondition) and the API
  server deletes the owner.
- **orphan** — an owner being deleted with the ``orphan`` finalizer has its reference removed
  from every dependent, then the finalizer removed.
- **invalid references** — a namespaced dependent can only be owned by an object in its own
  namespace or a cluster-scoped one: a reference to a namespaced owner is looked up in the
  dependent's namespace, and an owner observed in another namespace is reported
  (``OwnerRefInvalidNamespace``) and counts as absent. A cluster-scoped dependent that names a
  namespaced owner is reported and left alone, as kube does.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from k8py.api.registry import VIRTUAL_KINDS, KindInfo, Registry
from k8py.client.api import Client, object_key
from k8py.client.controller import Controller, Result
from k8py.client.errors import ApiError, ConflictError, NotFoundError
from k8py.client.informer import Informer
from k8py.client.store import Store
from k8py.controllers.base import ControllerContext
from k8py.controllers.namespace import discover_kinds

__all__ = ["FOREGROUND", "ORPHAN", "GarbageCollector", "Graph", "Instructions", "Node", "OwnerRef",
           "deletable_kinds"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Policy = Literal["Foreground", "Background", "Orphan"]

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
# kube's GC ignores events: they are many, short-lived, and never own anything.
IGNORED_RESOURCES = frozenset({("", "events"), ("events.k8s.io", "events")})
REQUIRED_VERBS = ("list", "watch", "delete")
# Fields of metadata the graph needs; the informers keep nothing else (memory).
_KEEP_META = ("name", "namespace", "uid", "resourceVersion", "ownerReferences", "finalizers",
              "deletionTimestamp")


def deletable_kinds(registry: Registry) -> list[KindInfo]:
    """Every kind the GC watches: listable, watchable and deletable, one version per stored resource."""
    seen: set[str] = set()
    out: list[KindInfo] = []
    for k in registry.all():
        if k.kind in VIRTUAL_KINDS or (k.group, k.resource) in IGNORED_RESOURCES:
            continue
        if not all(v in k.verbs for v in REQUIRED_VERBS):
            continue
        # why: a resource served in two versions (HPA v1/v2) is one set of objects; watching
        # both would put every object in the graph twice under two identities
        if k.storage_name in seen:
            continue
        seen.add(k.storage_name)
        out.append(k)
    return out


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


# -- the graph (pure) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OwnerRef:
    uid: str
    api_version: str
    kind: str
    name: str
    block: bool = False

    def __str__(self) -> str:
        return f"[{self.api_version}/{self.kind}, name: {self.name}, uid: {self.uid}]"


def owner_refs(meta: Obj) -> tuple[OwnerRef, ...]:
    out = []
    for r in meta.get("ownerReferences") or ():
        if isinstance(r, dict) and r.get("uid"):
            out.append(OwnerRef(str(r["uid"]), str(r.get("apiVersion") or ""), str(r.get("kind") or ""),
                                str(r.get("name") or ""), r.get("blockOwnerDeletion") is True))
    return tuple(out)


class Node:
    """One object in the graph. ``observed`` is False for a *virtual* node: an owner that some
    dependent names but no informer has shown yet (its identity is the dependent's guess)."""

    __slots__ = ("api_version", "being_deleted", "deleting_dependents", "dependents", "kind", "name",
                 "namespace", "observed", "orphaning", "owners", "uid")

    def __init__(self, uid: str, api_version: str, kind: str, namespace: str, name: str,
                 observed: bool = True) -> None:
        self.uid = uid
        self.api_version = api_version
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.observed = observed
        self.owners: tuple[OwnerRef, ...] = ()
        self.dependents: set[Node] = set()
        self.being_deleted = False
        self.deleting_dependents = False  # being deleted with the foregroundDeletion finalizer
        self.orphaning = False  # being deleted with the orphan finalizer

    def __repr__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"<{self.api_version}/{self.kind} {where}{self.name} uid={self.uid}" + \
            ("" if self.observed else " virtual") + ">"

    def ref_to(self, owner_uid: str) -> OwnerRef | None:
        for r in self.owners:
            if r.uid == owner_uid:
                return r
        return None

    def blocks(self, owner_uid: str) -> bool:
        r = self.ref_to(owner_uid)
        return r is not None and r.block

    def as_object(self) -> Obj:
        """A minimal object for event recording."""
        md: Obj = {"name": self.name, "uid": self.uid}
        if self.namespace:
            md["namespace"] = self.namespace
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": md}


def _matches(ref: OwnerRef, owner: Node) -> bool:
    # kube compares group (not version), kind and name: any served version names the object
    return group_of(ref.api_version) == group_of(owner.api_version) and ref.kind == owner.kind and \
        ref.name == owner.name


@dataclass(slots=True)
class Instructions:
    """What a graph change asks of the collector: uids to look at, references to report."""

    enqueue: list[str] = field(default_factory=list)
    invalid_namespace: list[tuple[Node, OwnerRef]] = field(default_factory=list)
    absent: list[Node] = field(default_factory=list)  # deleted objects that had dependents


class Graph:
    """uid -> :class:`Node`, with owner -> dependents links. No I/O."""

    __slots__ = ("nodes",)

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def __len__(self) -> int:
        return len(self.nodes)

    def get(self, uid: str) -> Node | None:
        return self.nodes.get(uid)

    def observe(self, api_version: str, kind: str, meta: Obj) -> Instructions:
        """An object was added or changed (``meta`` is its metadata)."""
        out = Instructions()
        uid = str(meta.get("uid") or "")
        if not uid:
            return out
        ns = str(meta.get("namespace") or "")
        name = str(meta.get("name") or "")
        owners = owner_refs(meta)
        node = self.nodes.get(uid)
        was_deleting_deps = was_orphaning = False
        if node is None:
            node = Node(uid, api_version, kind, ns, name)
            self.nodes[uid] = node
            node.owners = owners
            self._link(node, owners, out)
        else:
            if not node.observed:
                self._observe_virtual(node, api_version, kind, ns, name, out)
            was_deleting_deps, was_orphaning = node.deleting_dependents, node.orphaning
            if owners != node.owners:
                self._owners_changed(node, owners, out)
        deleting = bool(meta.get("deletionTimestamp"))
        fins = meta.get("finalizers") or ()
        node.being_deleted = deleting
        node.deleting_dependents = deleting and FOREGROUND in fins
        node.orphaning = deleting and ORPHAN in fins
        if node.orphaning and not was_orphaning:
            out.enqueue.append(uid)
        if node.deleting_dependents and not was_deleting_deps:
            # the owner starts waiting for its dependents: every one of them is to be deleted
            out.enqueue.extend(d.uid for d in node.dependents)
            out.enqueue.append(uid)
        return out

    def remove(self, uid: str) -> Instructions:
        """An object was deleted."""
        out = Instructions()
        node = self.nodes.pop(uid, None)
        if node is None:
            return out
        self._unlink(node, node.owners)
        if node.dependents:
            out.absent.append(node)
            out.enqueue.extend(d.uid for d in node.dependents)
        for r in node.owners:
            owner = self.nodes.get(r.uid)
            # an owner waiting for its dependents may have just lost its last blocking one
            if owner is not None and owner.deleting_dependents:
                out.enqueue.append(owner.uid)
        return out

    def remove_virtual(self, uid: str) -> list[Node]:
        """A virtual node turned out not to exist: drop it; returns its dependents to look at."""
        node = self.nodes.get(uid)
        if node is None or node.observed:
            return []
        del self.nodes[uid]
        return list(node.dependents)

    # -- helpers -----------------------------------------------------------------------------

    def _link(self, node: Node, refs: Iterable[OwnerRef], out: Instructions) -> None:
        for r in refs:
            owner = self.nodes.get(r.uid)
            if owner is None:
                # the owner is not (yet) known: a virtual node, to be verified against the API
                owner = Node(r.uid, r.api_version, r.kind, node.namespace, r.name, observed=False)
                self.nodes[r.uid] = owner
                owner.dependents.add(node)
                out.enqueue.append(r.uid)
                continue
            owner.dependents.add(node)
            if owner.namespace and owner.namespace != node.namespace:
                # a namespaced owner can only own objects of its own namespace
                if owner.observed:
                    out.invalid_namespace.append((node, r))
                out.enqueue.append(node.uid)
            elif not _matches(r, owner) or (not owner.observed and owner.namespace != node.namespace):
                out.enqueue.append(node.uid)  # coordinates disagree: let the live lookup decide
            elif owner.deleting_dependents:
                out.enqueue.append(node.uid)  # a new dependent of an owner deleted in foreground

    def _unlink(self, node: Node, refs: Iterable[OwnerRef]) -> None:
        for r in refs:
            owner = self.nodes.get(r.uid)
            if owner is not None:
                owner.dependents.discard(node)

    def _observe_virtual(self, node: Node, api_version: str, kind: str, ns: str, name: str,
                         out: Instructions) -> None:
        node.observed = True
        node.api_version, node.kind, node.namespace, node.name = api_version, kind, ns, name
        for dep in node.dependents:
            ref = dep.ref_to(node.uid)
            if ref is None:
                continue
            if ns and dep.namespace != ns:
                out.invalid_namespace.append((dep, ref))
                out.enqueue.append(dep.uid)
            elif not _matches(ref, node):
                out.enqueue.append(dep.uid)

    def _owners_changed(self, node: Node, owners: tuple[OwnerRef, ...], out: Instructions) -> None:
        old = {r.uid: r for r in node.owners}
        new = {r.uid: r for r in owners}
        added = [r for r in owners if r.uid not in old]
        removed = [r for u, r in old.items() if u not in new]
        # an owner waiting for its blocking dependents is unblocked when a reference that
        # blocked it goes away or stops blocking
        for r in removed:
            if r.block and r.uid in self.nodes:
                out.enqueue.append(r.uid)
        for u, r in new.items():
            if u in old and old[u].block and not r.block and u in self.nodes:
                out.enqueue.append(u)
        node.owners = owners
        self._link(node, added, out)
        self._unlink(node, removed)


# -- informers that keep metadata only ---------------------------------------------------------


def metadata_only(obj: Obj) -> Obj:
    m = obj.get("metadata") or {}
    return {"metadata": {k: m[k] for k in _KEEP_META if k in m}}


class _MetadataStore(Store):
    """An informer cache that keeps only what the graph needs of each object."""

    __slots__ = ()

    def put(self, obj: Obj, key: str | None = None) -> Obj | None:
        return super().put(metadata_only(obj), key or object_key(obj))


class MetadataInformer(Informer):
    """An informer whose cache holds metadata only (kube's GC uses metadata informers too)."""

    def __init__(self, client: Client, kind: KindInfo, **kw: Any) -> None:
        super().__init__(client, kind, **kw)
        self.store = _MetadataStore()


# -- the collector -----------------------------------------------------------------------------


class _AbsentOwners:
    """Owners confirmed absent by a live lookup: (uid, group, kind, name, namespace). uids are
    never reused, so an entry stays true; the cache is bounded (LRU)."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._d: OrderedDict[tuple[str, str, str, str, str], None] = OrderedDict()

    def __contains__(self, key: tuple[str, str, str, str, str]) -> bool:
        if key in self._d:
            self._d.move_to_end(key)
            return True
        return False

    def add(self, key: tuple[str, str, str, str, str]) -> None:
        self._d[key] = None
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)


class _UnknownKind(Exception):
    pass


class _InvalidReference(Exception):
    pass


class _Runner(Controller):
    """The generic runner, plus the collector's own informers: started with it, synced before
    the first worker runs, stopped with it."""

    def __init__(self, gc: GarbageCollector, **kw: Any) -> None:
        super().__init__("garbagecollector", gc.reconcile, **kw)
        self._gc = gc

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        resync: asyncio.Task[None] | None = None
        try:
            if await self._gc.start_informers(stop):
                resync = asyncio.create_task(self._gc.resync_kinds(stop), name="gc-resync-kinds")
                await super().run(stop)
        finally:
            if resync is not None:
                resync.cancel()
                await asyncio.gather(resync, return_exceptions=True)
            await self._gc.stop_informers()


class GarbageCollector:
    NAME = "garbagecollector"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.graph = Graph()
        self.absent = _AbsentOwners()
        self.kinds = deletable_kinds(self.client.registry)
        self.informers: list[MetadataInformer] = []
        for k in self.kinds:
            inf = MetadataInformer(self.client, k, clock=ctx.clock)
            self._add_handlers(inf, k)
            self.informers.append(inf)
        workers = ctx.options.gc_workers or max(4, ctx.options.workers or 2)
        self.controller: Controller = _Runner(self, workers=workers, clock=ctx.clock)
        self.sync_timeout = ctx.options.gc_sync_timeout
        # kube's GC looks at discovery again this often for resources to watch (custom resources)
        self.resync_period = ctx.options.gc_resync_period
        self._dynamic: dict[tuple[str, str], tuple[KindInfo, MetadataInformer]] = {}
        self._started = False
        self._parallel = asyncio.Semaphore(16)  # writes in flight for one owner's dependents
        self._warned: set[str] = set()

    # -- informers -----------------------------------------------------------------------------

    def _add_handlers(self, inf: Informer, k: KindInfo) -> None:
        av, kind = k.api_version, k.kind

        def on_add(obj: Obj) -> None:
            self._apply(self.graph.observe(av, kind, obj.get("metadata") or {}))

        def on_update(old: Obj, new: Obj) -> None:
            om, nm = old.get("metadata") or {}, new.get("metadata") or {}
            if om.get("uid") != nm.get("uid"):
                # why: after a relist, a name can come back with another uid (deleted and
                # created again while the watch was down): the old object is gone
                self._apply(self.graph.remove(str(om.get("uid") or "")))
            elif om.get("resourceVersion") == nm.get("resourceVersion") and \
                    self.graph.get(str(nm.get("uid") or "")) is not None:
                return
            self._apply(self.graph.observe(av, kind, nm))

        def on_delete(obj: Obj) -> None:
            self._apply(self.graph.remove(str((obj.get("metadata") or {}).get("uid") or "")))

        inf.add_handler(on_add, on_update, on_delete)

    def _apply(self, ins: Instructions) -> None:
        q = self.controller.queue
        for uid in ins.enqueue:
            q.add(uid)
        for n in ins.absent:
            self.absent.add(self._absent_key(n.uid, n.api_version, n.kind, n.name, n.namespace))
        for dep, ref in ins.invalid_namespace:
            self.ctx.record(dep.as_object(), "Warning", "OwnerRefInvalidNamespace",
                            f"ownerRef [{ref.api_version}/{ref.kind}, namespace: {dep.namespace}, "
                            f"name: {ref.name}, uid: {ref.uid}] does not exist in namespace \"{dep.namespace}\"")

    async def start_informers(self, stop: asyncio.Event) -> bool:
        """Start the informers and wait until all have synced (or ``sync_timeout`` passed); False
        if stopped first.

        Workers may start with some kinds not synced (a kind the server fails to list, say), as
        kube's GC does: nothing is deleted on the cache's word, every absence is confirmed by a
        live lookup, so a partial graph only delays collection, it never causes a wrong one.
        """
        try:
            await self.sync_kinds()  # the custom resources served now join the built-in kinds
        except ApiError as e:
            log.warning("garbage collector: discovery of custom resources failed: %s", e)
        for inf in self.informers:
            inf.start()
        synced: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*(i.wait_for_sync() for i in self.informers)))
        stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([synced, stopped], timeout=self.sync_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (synced, stopped):
                if not t.done():
                    t.cancel()
            await asyncio.gather(synced, stopped, return_exceptions=True)
        if stop.is_set():
            return False
        late = [repr(i) for i in self.informers if not i.has_synced]
        if late:
            log.warning("garbage collector: starting before %d informers synced (%s); their objects join "
                        "the graph when they do", len(late), ", ".join(late))
        log.info("garbage collector: watching %d kinds, %d objects in the dependency graph",
                 len(self.informers), len(self.graph))
        return True

    async def stop_informers(self) -> None:
        await asyncio.gather(*(i.stop() for i in self.informers))

    # -- kinds beyond the built-in ones (custom resources) ----------------------------------------

    async def discover_kinds(self) -> list[KindInfo]:
        """The deletable kinds the server's discovery lists in groups k8py does not build in (a
        CRD's custom resources), in each group's preferred version."""
        kinds, errs, _ = await discover_kinds(self.client, lambda r: True, REQUIRED_VERBS,
                                              frozenset(self.client.registry.groups()))
        if errs:  # an aggregated API that does not answer: nothing of it is collected
            log.debug("garbage collector: discovery: %s", "; ".join(errs))
        return kinds

    async def sync_kinds(self) -> None:
        """kube's GC resync: informers started for kinds discovery now lists, stopped for those
        it no longer does (a deleted CRD)."""
        found = {(k.group, k.resource): k for k in await self.discover_kinds()}
        def ident(k: KindInfo | None) -> tuple[str, str, bool] | None:
            return (k.version, k.kind, k.namespaced) if k is not None else None

        for key, (kind, inf) in list(self._dynamic.items()):
            if ident(found.get(key)) != ident(kind):
                del self._dynamic[key]
                self.informers.remove(inf)
                self.kinds.remove(kind)
                await inf.stop()
        for key, k in found.items():
            if key in self._dynamic:
                continue
            inf = MetadataInformer(self.client, k, clock=self.ctx.clock)
            self._add_handlers(inf, k)
            self._dynamic[key] = (k, inf)
            self.informers.append(inf)
            self.kinds.append(k)
            if self._started:
                inf.start()
                log.info("garbage collector: now watching %s.%s", k.resource, k.group)

    async def resync_kinds(self, stop: asyncio.Event) -> None:
        self._started = True
        while not stop.is_set():
            try:
                async with asyncio.timeout(self.resync_period):
                    await stop.wait()
                return
            except TimeoutError:
                pass
            try:
                await self.sync_kinds()
            except ApiError as e:
                log.warning("garbage collector: discovery failed: %s; again in %.0fs", e, self.resync_period)

    # -- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, uid: str) -> Result | None:
        node = self.graph.get(uid)
        if node is None:
            return None
        if not node.observed:
            return await self._verify_virtual(node)
        if node.orphaning:
            await self._orphan_dependents(node)
            await self._remove_finalizer(node, ORPHAN)
            if not node.deleting_dependents:
                return None
        if node.being_deleted and not node.deleting_dependents:
            return None  # deletion is a one-way trip: its dependents are looked at once it is gone
        info = await self._kind(node.api_version, node.kind)
        latest = await self._get_live(info, node)
        if latest is None:
            return None  # gone already: the informer's delete event takes it from here
        if node.deleting_dependents:
            if not self._process_deleting_dependents(node):
                await self._finish_foreground(node)
            return None
        refs = owner_refs(latest.get("metadata") or {})
        if not refs:
            return None
        try:
            solid, dangling, waiting = await self._classify(node, refs)
        except _UnknownKind as e:
            return self._unknown_kind(node, str(e))
        except _InvalidReference as e:
            self.ctx.record(node.as_object(), "Warning", "OwnerRefInvalidNamespace", str(e))
            log.info("garbage collector: %r: %s; leaving it alone", node, e)
            return None
        if solid:
            if dangling or waiting:
                # why: references to owners that are gone (or waiting for their dependents)
                # would otherwise keep those owners' deletions waiting on this object forever
                await self._remove_references(node, {r.uid for r in (*dangling, *waiting)}, latest)
            return None
        if waiting and node.dependents:
            if any(d.deleting_dependents for d in node.dependents):
                # an owner and a dependent of this object both wait for their dependents: a
                # cycle is possible; stop this object from blocking its owners, then cascade
                latest = await self._unblock_references(node, latest)
            log.info("garbage collector: deleting %r (Foreground): an owner waits for its dependents", node)
            await self._delete(info, node, latest, "Foreground")
            return None
        fins = (latest.get("metadata") or {}).get("finalizers") or ()
        policy: Policy = "Orphan" if ORPHAN in fins else "Foreground" if FOREGROUND in fins else "Background"
        log.info("garbage collector: deleting %r (%s): %s", node, policy,
                 "an owner waits for its dependents" if waiting else "its owners are gone")
        await self._delete(info, node, latest, policy)
        return None

    def _process_deleting_dependents(self, node: Node) -> bool:
        """True while blocking dependents remain (each is looked at again)."""
        blocking = [d for d in node.dependents if d.blocks(node.uid)]
        for d in blocking:
            # one already on its way out re-enqueues this owner when it is gone
            if not d.being_deleted:
                self.controller.queue.add(d.uid)
        return bool(blocking)

    async def _finish_foreground(self, node: Node) -> None:
        log.info("garbage collector: %r has no blocking dependents left; removing %s", node, FOREGROUND)
        await self._remove_finalizer(node, FOREGROUND)

    async def _verify_virtual(self, node: Node) -> Result | None:
        """A virtual owner: find out whether it exists, by a live lookup."""
        try:
            info = await self._kind(node.api_version, node.kind)
        except _UnknownKind as e:
            return self._unknown_kind(node, str(e))
        if info.namespaced and not node.namespace:
            # only cluster-scoped objects name this namespaced owner: it cannot be found; let
            # them be looked at (and reported) one by one
            self._enqueue(self.graph.remove_virtual(node.uid))
            return None
        ns = node.namespace if info.namespaced else ""
        key = self._absent_key(node.uid, info.api_version, info.kind, node.name, ns)
        if key not in self.absent:
            try:
                live = await self.client.get(info, node.name, ns or None)
            except NotFoundError:
                live = None
            if live is not None and (live.get("metadata") or {}).get("uid") == node.uid:
                # it exists, our informer has not shown it yet: look again later
                return Result(requeue=True)
            self.absent.add(key)
        log.info("garbage collector: owner %r does not exist; looking at its %d dependents", node,
                 len(node.dependents))
        self._enqueue(self.graph.remove_virtual(node.uid))
        return None

    async def _classify(self, node: Node, refs: tuple[OwnerRef, ...]
                        ) -> tuple[list[OwnerRef], list[OwnerRef], list[OwnerRef]]:
        """Owners that exist (solid), do not (dangling), or wait for their dependents' deletion."""
        solid: list[OwnerRef] = []
        dangling: list[OwnerRef] = []
        waiting: list[OwnerRef] = []
        for r in refs:
            info = await self._kind(r.api_version, r.kind)
            if info.namespaced and not node.namespace:
                raise _InvalidReference(
                    f"ownerRef {r} names a namespaced {r.kind}, but {node.kind} {node.name} is cluster-scoped: "
                    "cluster-scoped objects cannot refer to namespaced owners")
            ns = node.namespace if info.namespaced else ""
            key = self._absent_key(r.uid, info.api_version, info.kind, r.name, ns)
            if key in self.absent:
                dangling.append(r)
                continue
            try:
                owner = await self.client.get(info, r.name, ns or None)
            except NotFoundError:
                owner = None
            om = (owner or {}).get("metadata") or {}
            if owner is None or om.get("uid") != r.uid:
                self.absent.add(key)
                dangling.append(r)
            elif om.get("deletionTimestamp") and FOREGROUND in (om.get("finalizers") or ()):
                waiting.append(r)
            else:
                solid.append(r)
        return solid, dangling, waiting

    # -- API writes ----------------------------------------------------------------------------

    async def _get_live(self, info: KindInfo, node: Node) -> Obj | None:
        try:
            obj = await self.client.get(info, node.name, node.namespace or None)
        except NotFoundError:
            return None
        return obj if (obj.get("metadata") or {}).get("uid") == node.uid else None

    async def _delete(self, info: KindInfo, node: Node, latest: Obj, policy: Policy) -> None:
        md = latest.get("metadata") or {}
        try:
            # why: uid and resourceVersion preconditions: if the object changed since we decided
            # (adopted by a new owner, say), the server refuses and we look again
            await self.client.delete(info, node.name, node.namespace or None, propagation_policy=policy,
                                     uid=node.uid, resource_version=md.get("resourceVersion"))
        except NotFoundError:
            pass

    async def _patch_meta(self, info: KindInfo, node: Node, patch: Obj) -> Obj | None:
        try:
            return await self.client.patch(info, node.name, {"metadata": patch}, node.namespace or None,
                                           type="merge")
        except NotFoundError:
            return None

    async def _remove_references(self, node: Node, uids: set[str], latest: Obj | None = None) -> None:
        """Drop the ownerReferences to ``uids`` from ``node``'s object (resourceVersion precondition)."""
        info = await self._kind(node.api_version, node.kind)
        for _ in range(5):
            if latest is None:
                latest = await self._get_live(info, node)
                if latest is None:
                    return
            md = latest.get("metadata") or {}
            refs = md.get("ownerReferences") or []
            keep = [r for r in refs if not (isinstance(r, dict) and r.get("uid") in uids)]
            if len(keep) == len(refs):
                return
            try:
                await self._patch_meta(info, node, {"resourceVersion": md.get("resourceVersion"),
                                                    "ownerReferences": keep or None})
                return
            except ConflictError:
                latest = None  # changed meanwhile: read it again
        raise ConflictError({"code": 409, "reason": "Conflict",
                             "message": f"{node!r} kept changing while its ownerReferences were updated"})

    async def _unblock_references(self, node: Node, latest: Obj) -> Obj:
        info = await self._kind(node.api_version, node.kind)
        md = latest.get("metadata") or {}
        refs = [dict(r, blockOwnerDeletion=False) if isinstance(r, dict) and r.get("blockOwnerDeletion")
                else r for r in md.get("ownerReferences") or []]
        out = await self._patch_meta(info, node, {"resourceVersion": md.get("resourceVersion"),
                                                  "ownerReferences": refs})
        return out if out is not None else latest

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        info = await self._kind(node.api_version, node.kind)
        for _ in range(5):
            latest = await self._get_live(info, node)
            if latest is None:
                return
            md = latest.get("metadata") or {}
            fins = list(md.get("finalizers") or [])
            if finalizer not in fins:
                return
            try:
                await self._patch_meta(info, node, {"resourceVersion": md.get("resourceVersion"),
                                                    "finalizers": [f for f in fins if f != finalizer]})
                return
            except ConflictError:
                continue
        raise ConflictError({"code": 409, "reason": "Conflict",
                             "message": f"{node!r} kept changing while the {finalizer} finalizer was removed"})

    async def _orphan_dependents(self, owner: Node) -> None:
        deps = list(owner.dependents)
        if deps:
            log.info("garbage collector: orphaning %d dependents of %r", len(deps), owner)

        async def one(dep: Node) -> str | None:
            async with self._parallel:
                try:
                    await self._remove_references(dep, {owner.uid})
                except (ApiError, _UnknownKind) as e:
                    return f"{dep!r}: {e}"
                return None

        errs = [e for e in await asyncio.gather(*(one(d) for d in deps)) if e]
        if errs:
            raise RuntimeError(f"orphaning the dependents of {owner!r} failed: {'; '.join(errs)}")

    # -- helpers -------------------------------------------------------------------------------

    async def _kind(self, api_version: str, kind: str) -> KindInfo:
        try:
            return await self.client.resolve((api_version, kind))
        except NotFoundError as e:
            raise _UnknownKind(f"the server does not serve {kind} in {api_version or '(no apiVersion)'}") from e

    def _unknown_kind(self, node: Node, msg: str) -> Result:
        # kube retries these too: the kind may appear later (a custom resource being installed)
        if node.uid not in self._warned:
            if len(self._warned) > 10000:
                self._warned.clear()
            self._warned.add(node.uid)
            log.warning("garbage collector: %r: %s; will retry", node, msg)
            if node.observed:
                self.ctx.record(node.as_object(), "Warning", "OwnerRefInvalidKind", f"an ownerReference: {msg}")
        return Result(requeue=True)

    def _enqueue(self, nodes: Iterable[Node]) -> None:
        for n in nodes:
            self.controller.queue.add(n.uid)

    @staticmethod
    def _absent_key(uid: str, api_version: str, kind: str, name: str, ns: str) -> tuple[str, str, str, str, str]:
        return (uid, group_of(api_version), kind, name, ns)
