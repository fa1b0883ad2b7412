"""An in-memory stand-in for :class:`~k8py.client.api.Client`, for controller and scheduler tests
(as client-go's fake clientset): objects by kind, namespace and name, resourceVersions and
optimistic concurrency, strategic-merge and merge patches, the status subresource, watches.

What tests of controllers need beyond that:

- ``writes``: every write as ``(verb, kind name, object name)``, verbs ``create``, ``update``,
  ``update_status``, ``patch``, ``delete``; ``deleted`` adds the propagation policy of deletes;
- ``fail[(verb, kind name)] = error``: that call raises;
- ``hold()`` / ``release()``: watch events are kept back (a stale informer cache) until released;
- ``attach(factory)``: every write also lands in the matching informer caches at once, for
  tests that call ``reconcile`` directly without running informers;
- ``put(kind, obj)``: store an object as someone else (a kubelet, another controller) wrote it.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Self

from k8py.api import patch as patchlib
from k8py.api import schema
from k8py.api.corev1 import format_time
from k8py.api.registry import VIRTUAL_KINDS, KindInfo
from k8py.client.api import Client, KindRef, WatchEvent
from k8py.client.clock import Clock, RealClock
from k8py.client.config import ClientConfig
from k8py.client.errors import ApiError, api_error

if TYPE_CHECKING:
    from k8py.client.informer import SharedInformerFactory

Obj = dict[str, Any]


def status_error(code: int, reason: str, message: str) -> ApiError:
    return api_error({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
                      "message": message})


class _Watch:
    def __init__(self, q: asyncio.Queue[WatchEvent]) -> None:
        self.q = q

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self

    async def __anext__(self) -> WatchEvent:
        return await self.q.get()


class FakeClient(Client):
    """See the module docstring."""

    def __init__(self, clock: Clock | None = None, *objects: Obj) -> None:
        super().__init__(ClientConfig(server="http://fake.invalid"), component="fake")
        self.clock: Clock = clock or RealClock()
        self.objects: dict[tuple[str, str], dict[str, Obj]] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.deleted: list[tuple[str, str, str | None]] = []  # (kind, name, propagation policy)
        self.fail: dict[tuple[str, str], ApiError] = {}
        self.graceful_pods = False  # a pod delete sets deletionTimestamp (a node finishes it)
        # review kinds (SubjectAccessReview, ...) are answered, never stored: allowed unless this
        # says otherwise, as by an API server without an authorizer
        self.review_allows: Callable[[Obj], bool] = lambda review: True
        self.factory: SharedInformerFactory | None = None
        self._subs: dict[tuple[str, str], list[asyncio.Queue[WatchEvent]]] = {}
        self._held: list[tuple[tuple[str, str], WatchEvent]] | None = None
        self._rv = itertools.count(1)
        self._suffix = itertools.count(1)
        for o in objects:
            self.put((o["apiVersion"], o["kind"]), o)

    # -- bookkeeping ------------------------------------------------------------------------------
    def _info(self, kind: KindRef) -> KindInfo:
        info = self.kind_info(kind)
        if info is None:
            raise status_error(404, "NotFound", f"the server could not find the requested resource ({kind})")
        return info

    def _key(self, kind: KindRef) -> tuple[str, str]:
        info = self._info(kind)
        return info.api_version, info.kind

    def _fake_ns(self, kind: KindRef, namespace: str | None) -> str:
        if not self._info(kind).namespaced:
            return ""
        return namespace or "default"

    def attach(self, factory: SharedInformerFactory) -> None:
        """Writes land in ``factory``'s informer caches at once (no informer needs to run)."""
        self.factory = factory

    def _emit(self, k: tuple[str, str], typ: str, obj: Obj) -> None:
        if self.factory is not None:
            ns = obj["metadata"].get("namespace") or ""
            for inf in self.factory.informers:
                info = self.kind_info(inf.kind)
                if info is None or (info.api_version, info.kind) != k or inf.namespace not in (None, ns):
                    continue
                if typ == "DELETED":
                    inf.store.remove(f"{ns}/{obj['metadata']['name']}" if ns else obj["metadata"]["name"])
                else:
                    inf.store.put(copy.deepcopy(obj))
        ev = WatchEvent(typ, copy.deepcopy(obj))
        if self._held is not None:
            self._held.append((k, ev))
            return
        for q in self._subs.get(k, ()):
            q.put_nowait(ev)

    def hold(self) -> None:
        """Keep watch events back until :meth:`release` (the informers' caches go stale)."""
        self._held = []

    def drop_held(self) -> None:
        """Lose the held watch events (and hold no more): a cache that will never hear of them."""
        self._held = None

    def release(self) -> None:
        held, self._held = self._held or [], None
        for k, ev in held:
            for q in self._subs.get(k, ()):
                q.put_nowait(ev)

    def _check(self, verb: str, k: tuple[str, str], name: str) -> None:
        self.writes.append((verb, k[1], name))
        err = self.fail.get((verb, k[1]))
        if err is not None:
            raise err

    def _store(self, k: tuple[str, str], obj: Obj, namespace: str) -> Obj:
        md = obj.setdefault("metadata", {})
        if namespace:
            md["namespace"] = namespace
        else:
            md.pop("namespace", None)
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("generation", 1)
        md.setdefault("creationTimestamp", format_time(dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC)))
        md["resourceVersion"] = str(next(self._rv))
        obj.setdefault("apiVersion", k[0])
        obj.setdefault("kind", k[1])
        self.objects.setdefault(k, {})[f"{namespace}/{md['name']}"] = obj
        return obj

    def put(self, kind: KindRef, obj: Obj, *, announce: bool = True) -> Obj:
        """Store ``obj`` as someone else wrote it: no write recorded; a watch event sent, unless
        ``announce`` is False (a write no watch has delivered yet: the caches do not know it)."""
        k = self._key(kind)
        obj = copy.deepcopy(obj)
        ns = self._fake_ns(kind, (obj.get("metadata") or {}).get("namespace"))
        existed = f"{ns}/{obj['metadata']['name']}" in self.objects.get(k, {})
        obj = self._store(k, obj, ns)
        if announce:
            self._emit(k, "MODIFIED" if existed else "ADDED", obj)
        return copy.deepcopy(obj)

    def seed(self, obj: Obj) -> Obj:
        return self.put((obj["apiVersion"], obj["kind"]), obj)

    def get_obj(self, kind: KindRef, name: str, namespace: str | None = None) -> Obj | None:
        o = self.objects.get(self._key(kind), {}).get(f"{self._fake_ns(kind, namespace)}/{name}")
        return copy.deepcopy(o) if o is not None else None

    def stored(self, kind: KindRef, name: str, namespace: str | None = None) -> Obj:
        """The stored object itself (a test may change it, then :meth:`touch` it)."""
        return self.objects[self._key(kind)][f"{self._fake_ns(kind, namespace)}/{name}"]

    def touch(self, kind: KindRef, name: str, namespace: str | None = None) -> None:
        """Announce a change made to :meth:`stored`'s object in place (a new resourceVersion)."""
        obj = self.stored(kind, name, namespace)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self._emit(self._key(kind), "MODIFIED", obj)

    def all(self, kind: KindRef) -> list[Obj]:
        return list(self.objects.get(self._key(kind), {}).values())

    def _missing(self, k: tuple[str, str], name: str) -> ApiError:
        info = self._info(k)
        return status_error(404, "NotFound", f'{info.resource} "{name}" not found')

    # -- the verbs ----------------------------------------------------------------------------------
    async def list_all(self, kind: KindRef, namespace: str | None = None, **kw: Any) -> Obj:
        k = self._key(kind)
        items = [copy.deepcopy(o) for key, o in self.objects.get(k, {}).items()
                 if namespace is None or key.split("/", 1)[0] == namespace]
        return {"metadata": {"resourceVersion": str(next(self._rv))}, "items": items}

    def watch(self, kind: KindRef, namespace: str | None = None, **kw: Any) -> Any:
        q: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self._subs.setdefault(self._key(kind), []).append(q)
        return _Watch(q)

    async def get(self, kind: KindRef, name: str, namespace: str | None = None, **kw: Any) -> Obj:
        o = self.get_obj(kind, name, namespace)
        if o is None:
            raise self._missing(self._key(kind), name)
        return o

    async def create(self, kind: KindRef, obj: Obj, namespace: str | None = None, **kw: Any) -> Obj:
        k = self._key(kind)
        obj = copy.deepcopy(obj)
        if self._info(k).kind in VIRTUAL_KINDS:
            return {**obj, "status": {"allowed": self.review_allows(obj)}}
        md = obj.setdefault("metadata", {})
        if not md.get("name"):
            md["name"] = f"{md['generateName']}{next(self._suffix):05d}"
        ns = self._fake_ns(kind, namespace or md.get("namespace"))
        self._check("create", k, md["name"])
        if f"{ns}/{md['name']}" in self.objects.get(k, {}):
            raise status_error(409, "AlreadyExists", f'{self._info(k).resource} "{md["name"]}" already exists')
        obj = self._store(k, obj, ns)
        self._emit(k, "ADDED", obj)
        return copy.deepcopy(obj)

    async def update(self, kind: KindRef, obj: Obj, namespace: str | None = None, *,
                     subresource: str | None = None, **kw: Any) -> Obj:
        k = self._key(kind)
        md = obj["metadata"]
        ns = self._fake_ns(kind, namespace or md.get("namespace"))
        self._check("update_status" if subresource == "status" else "update", k, md["name"])
        cur = self.objects.get(k, {}).get(f"{ns}/{md['name']}")
        if cur is None:
            raise self._missing(k, md["name"])
        if md.get("resourceVersion") and md["resourceVersion"] != cur["metadata"]["resourceVersion"]:
            raise status_error(409, "Conflict", f'Operation cannot be fulfilled on {self._info(k).resource} '
                               f'"{md["name"]}": the object has been modified; please apply your changes to the '
                               "latest version and try again")
        if subresource == "status":
            new = copy.deepcopy(cur)
            new["status"] = copy.deepcopy(obj.get("status"))
        else:
            new = copy.deepcopy(obj)
            if "status" in cur:
                new["status"] = copy.deepcopy(cur["status"])
            new["metadata"]["uid"] = cur["metadata"]["uid"]
            new["metadata"]["creationTimestamp"] = cur["metadata"].get("creationTimestamp")
        new = self._store(k, new, ns)
        self._emit(k, "MODIFIED", new)
        return copy.deepcopy(new)

    async def update_status(self, kind: KindRef, obj: Obj, namespace: str | None = None, **kw: Any) -> Obj:
        return await self.update(kind, obj, namespace, subresource="status")

    async def patch(self, kind: KindRef, name: str, patch: Any, namespace: str | None = None, **kw: Any) -> Obj:
        k = self._key(kind)
        self._check("patch", k, name)
        cur = await self.get(kind, name, namespace)
        if kw.get("type", "strategic") == "strategic":
            group, _, version = k[0].rpartition("/")
            new = patchlib.strategic_merge_patch(cur, patch, schema.for_kind(group, version, k[1]))
        else:
            new = patchlib.merge_patch(cur, patch)
        if new["metadata"].get("uid") != cur["metadata"]["uid"]:  # kube: the uid is a precondition
            raise status_error(409, "Conflict", "Precondition failed: UID in precondition")
        ns = self._fake_ns(kind, namespace)
        new = self._store(k, new, ns)
        self._emit(k, "MODIFIED", new)
        return copy.deepcopy(new)

    async def delete(self, kind: KindRef, name: str, namespace: str | None = None, **kw: Any) -> Obj:
        k = self._key(kind)
        self._check("delete", k, name)
        self.deleted.append((k[1], name, kw.get("propagation_policy")))
        ns = self._fake_ns(kind, namespace)
        obj = self.objects.get(k, {}).get(f"{ns}/{name}")
        if obj is None:
            raise self._missing(k, name)
        if self.graceful_pods and k == ("v1", "Pod") and not obj["metadata"].get("deletionTimestamp"):
            obj["metadata"]["deletionTimestamp"] = format_time(dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC))
            obj["metadata"]["resourceVersion"] = str(next(self._rv))
            self._emit(k, "MODIFIED", obj)
            return copy.deepcopy(obj)
        del self.objects[k][f"{ns}/{name}"]
        self._emit(k, "DELETED", obj)
        return {"kind": "Status", "apiVersion": "v1", "status": "Success",
                "details": {"name": name, "kind": self._info(k).resource}}
