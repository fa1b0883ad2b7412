"""ResourceQuota admission (kube's ``k8s.io/apiserver/pkg/admission/plugin/resourcequota``), last
in the chain: a create (or an update that changes what an object costs) is charged against
every ResourceQuota of its namespace that matches it, and refused when one would go over::

    pods "x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2

The charge is written into the quotas' ``status.used`` by this admission itself, before the
object is stored, with compare-and-swap on each quota's resourceVersion: a quota changed
meanwhile (another request charged it, here or on another API server) is read again and the
request checked again, so two concurrent creates can never both take the last slot. Requests
of one namespace are also taken one at a time on this server (as kube's per-namespace work
queue), which keeps those conflicts for servers racing each other. Dry-run requests are checked
but charge nothing. Which namespaces have quotas at all is kept in memory from a store watch
(``Objects.mirror``), so a create where there is none (most, and every Event) reads nothing; the
quotas themselves are read from the store when there are some, never from a copy that may lag. A charge whose object then fails to be stored stays until the quota
controller recomputes the quota (as in kube); the arithmetic is ``k8py.api.quota``'s, shared
with that controller.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.api.quota import (
    IGNORED,
    LimitedResource,
    QuotaRefused,
    ScopesUncovered,
    check_request,
    evaluator_for,
)
from k8py.apiserver.admission import Attributes, Plugin
from k8py.storage.interface import ConflictError

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]

log = logging.getLogger(__name__)

# kube: checkQuotas with 3 retries after the first attempt
RETRIES = 4
SYNC_TIMEOUT = 10.0


class ResourceQuota(Plugin):
    name = "ResourceQuota"

    def __init__(self, objects: Objects, registry: Registry,
                 limited: tuple[LimitedResource, ...] | None = None) -> None:
        self.objects = objects
        self._rq_kind = registry.by_resource("", "v1", "resourcequotas")
        # ResourceQuotaConfiguration's limitedResources (--admission-control-config-file)
        self.limited = limited or ()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # namespace -> names of its quotas, from the store watch; None until it has synced
        self._quotas_by_ns: dict[str, set[str]] = {}
        self._synced = asyncio.Event()

    # -- which namespaces have quotas ----------------------------------------------------------
    def _reset(self) -> None:
        self._quotas_by_ns.clear()

    def _apply(self, key: str, value: bytes | None) -> None:
        assert self._rq_kind is not None
        ns, _, name = key[len(self._rq_kind.key_prefix(None)):].partition("/")
        if value is not None:
            self._quotas_by_ns.setdefault(ns, set()).add(name)
            return
        names = self._quotas_by_ns.get(ns)
        if names is not None:
            names.discard(name)
            if not names:
                del self._quotas_by_ns[ns]

    async def start(self) -> asyncio.Task[None] | None:
        if self._rq_kind is None:
            return None
        task = asyncio.get_running_loop().create_task(
            self.objects.mirror(self._rq_kind.key_prefix(None), reset=self._reset, apply=self._apply,
                                synced=self._synced.set, what="resource quota admission"),
            name="resourcequota-admission")
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                await self._synced.wait()
        except TimeoutError:
            log.error("resource quota admission: quotas not listed in %.0fs; reading them per request until "
                      "they are", SYNC_TIMEOUT)
        return task

    def _may_have_quotas(self, ns: str) -> bool:
        # before the watch has synced (or when the plugin was not started), ask the store; with
        # limited resources, a namespace without quotas is where they are refused
        return bool(self.limited) or not self._synced.is_set() or ns in self._quotas_by_ns

    @asynccontextmanager
    async def _namespace_lock(self, ns: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(ns) or (asyncio.Lock(), 0)
        self._locks[ns] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[ns]
            if users <= 1:
                del self._locks[ns]  # nobody else waits: no lock kept per namespace ever seen
            else:
                self._locks[ns] = (lock, users - 1)

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        if obj is None or self._rq_kind is None or not a.kind.namespaced or not a.namespace or \
                (a.kind.group, a.kind.resource) in IGNORED:
            return
        ev = evaluator_for(a.kind.group, a.kind.resource)
        if not ev.handles(a.operation, a.subresource, obj, old) or not self._may_have_quotas(a.namespace):
            return
        async with self._namespace_lock(a.namespace):
            await self._charge(a, ev, obj, old)

    async def _quotas(self, ns: str) -> list[Obj]:
        assert self._rq_kind is not None
        page = await self.objects.list(self._rq_kind, ns)
        return [o for o in page.items if isinstance(o, dict)]

    async def _charge(self, a: Attributes, ev: Any, obj: Obj, old: Obj | None) -> None:
        assert self._rq_kind is not None
        pending: set[str] | None = None  # after a partial write: the quotas still to charge
        last: Exception | None = None
        for _ in range(RETRIES):
            quotas = await self._quotas(a.namespace)
            if pending is not None:
                quotas = [q for q in quotas if q["metadata"]["name"] in pending]
            if not quotas and not self.limited:
                return
            try:
                charged = check_request(quotas, ev, a.operation, obj, old, dt.datetime.now(dt.UTC), self.limited)
            except ScopesUncovered as e:
                # kube returns this one unwrapped: a 500 with the bare message
                raise errors.StatusError(500, "", str(e)) from None
            except QuotaRefused as e:
                raise self._forbidden(a, obj, str(e)) from None
            if a.dry_run:
                return
            failed: set[str] = set()
            for before, after in zip(quotas, charged, strict=True):
                if after is before:
                    continue
                try:
                    await self.objects.replace(self._rq_kind, after, int(before["metadata"]["resourceVersion"]))
                except ConflictError as e:
                    # charged by someone else meanwhile: read it again and check again
                    failed.add(before["metadata"]["name"])
                    last = e
                except errors.StatusError as e:
                    if e.code != 404:
                        raise
                    # the quota was deleted meanwhile: nothing to charge there
            if not failed:
                return
            pending = failed
        log.info("quota admission for %s/%s gave up after %d conflicts: %s", a.namespace, a.name, RETRIES, last)
        raise errors.conflict("resourcequotas", "", ",".join(sorted(pending or ())), errors.OPTIMISTIC_LOCK_MSG)

    @staticmethod
    def _forbidden(a: Attributes, obj: Obj, reason: str) -> errors.StatusError:
        meta = obj.get("metadata") or {}
        name = a.name or meta.get("name") or meta.get("generateName") or "Unknown"
        res = errors.qualified(a.kind.resource, a.kind.group)
        return errors.forbidden_error(f'{res} "{name}" is forbidden: {reason}', a.kind.resource, a.kind.group, name)
