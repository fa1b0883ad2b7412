"""The resource quota controller (kube-controller-manager's ``resourcequota``): keeps each
ResourceQuota's ``status`` true to the objects of its namespace.

``status.hard`` is the spec's; ``status.used`` is measured from the informers' caches with the
arithmetic the ResourceQuota admission plugin charges with (``k8py.api.quota``). A quota is
recomputed

- when it is created, or its ``spec`` changes (not on status-only updates: those are the
  admission plugin's charges and this controller's own writes);
- when an object it counts is deleted, or changes what it is charged (a pod that finished or
  whose grace period ran out, a service that changed type, a claim whose allocation changed):
  every quota of that namespace tracking the kind is recomputed, which gives the freed usage
  back ("replenishment");
- every ``resync`` seconds (kube's ``--resource-quota-sync-period``, 5 minutes), which also
  corrects charges whose object was never stored.

Creates are not watched: the admission plugin charged them already. Kinds counted only through
``count/<resource>.<group>`` get their informer when a quota first names them. The write is
an update of ``/status`` with the resourceVersion read, so a charge made meanwhile by admission
is a conflict, and the quota is read and measured again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from k8py.api.quota import (
    builtin_evaluators,
    calculate_usage,
    evaluator_for,
    parse_list,
    quota_status,
    to_wire,
    tracked_kinds,
)
from k8py.client.controller import Controller, Result
from k8py.client.errors import ApiError
from k8py.client.informer import Informer
from k8py.controllers.base import ControllerContext

log = logging.getLogger(__name__)

Obj = dict[str, Any]

QUOTA = ("v1", "ResourceQuota")
RESYNC_PERIOD = 300.0  # kube's --resource-quota-sync-period
# a kind first named by a quota gets its informer; until it has synced, look again this soon
SYNC_WAIT = 0.5


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


class ResourceQuotaController:
    NAME = "resourcequota"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        self.resync = RESYNC_PERIOD
        self.quotas = ctx.factory.informer(QUOTA)
        self.controller = Controller("resourcequota", self.reconcile, workers=ctx.options.workers or 2,
                                     clock=ctx.clock, wait_for=(self.quotas,))
        self.quotas.add_handler(self._quota_added, self._quota_updated, None)
        # (group, resource) -> informer of the objects counted; the built-in evaluators' kinds
        # from the start (kube's quota monitors), others when a quota names them
        self.counted: dict[tuple[str, str], Informer] = {}
        for ev in builtin_evaluators():
            inf = ctx.factory.informer(("v1", _KIND_OF[ev.resource]))
            self._follow(ev.group, ev.resource, inf)
            self.controller.wait_for(inf)

    # -- events -----------------------------------------------------------------------------------

    def _quota_added(self, rq: Obj) -> None:
        self.controller.enqueue(rq)

    def _quota_updated(self, old: Obj, new: Obj) -> None:
        # spec changes only: status updates are admission's charges and this controller's writes
        if (old.get("spec") or {}) != (new.get("spec") or {}) or not (new.get("status") or {}).get("hard"):
            self.controller.enqueue(new)

    def _follow(self, group: str, resource: str, inf: Informer) -> None:
        self.counted[(group, resource)] = inf
        ev = evaluator_for(group, resource)

        def updated(old: Obj, new: Obj) -> None:
            if old is not new and ev.usage_changed(old, new, self._now()):
                self._replenish(group, resource, new)

        def deleted(obj: Obj) -> None:
            self._replenish(group, resource, obj)

        inf.add_handler(None, updated, deleted)

    def _replenish(self, group: str, resource: str, obj: Obj) -> None:
        """An object stopped costing what it did: recompute the quotas of its namespace that
        track its kind."""
        ns = _meta(obj).get("namespace")
        if not ns:
            return
        for rq in self.quotas.list(ns):
            if (group, resource) in tracked_kinds(parse_list((rq.get("spec") or {}).get("hard"))):
                self.controller.enqueue(rq)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC)

    # -- reconcile --------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        ns, _, name = key.partition("/")
        rq = self.quotas.get(name, ns)
        if rq is None:
            return None
        kinds = tracked_kinds(parse_list((rq.get("spec") or {}).get("hard")))
        waiting = await self._ensure_informers(kinds)

        def objects(group: str, resource: str) -> Iterable[Obj] | None:
            inf = self.counted.get((group, resource))
            if inf is None or not inf.has_synced:
                return None
            return inf.list(ns)

        used, unknown = calculate_usage(rq, objects, self._now())
        status = quota_status(rq, used, unknown)
        if status != _normalized(rq.get("status")):
            new = {**rq, "status": status}
            await self.client.update_status(QUOTA, new, ns)
            log.debug("resource quota %s: used %s", key, status["used"])
        if waiting:
            return Result(requeue_after=SYNC_WAIT)
        return Result(requeue_after=self.resync)

    async def _ensure_informers(self, kinds: Iterable[tuple[str, str]]) -> bool:
        """Start an informer for each counted kind that has none yet; True while one of them
        has not synced (the usage of its names is then left as last observed)."""
        waiting = False
        started = False
        for group, resource in kinds:
            inf = self.counted.get((group, resource))
            if inf is None:
                info = await self._kind(group, resource)
                if info is None:
                    continue  # not served here: nothing can be counted under that name
                inf = self.ctx.factory.informer(info)
                self._follow(group, resource, inf)
                started = True
            if not inf.has_synced:
                waiting = True
        if started:
            self.ctx.factory.start()
        return waiting

    async def _kind(self, group: str, resource: str) -> Any:
        """The served kind of ``count/<resource>.<group>``, in the group's preferred version."""
        versions = self.client.registry.groups().get(group)
        if versions:
            info = self.client.kind_info((group, versions[0], resource))
            if info is not None:
                return info if info.namespaced else None
        if not group:
            return None
        try:
            doc = await self.client.request("GET", f"/apis/{group}")
            version = str(((doc.get("preferredVersion") or {}).get("version")) or "")
            info = await self.client.resolve((group, version, resource)) if version else None
        except ApiError:
            return None
        return info if info is not None and info.namespaced else None


_KIND_OF = {"pods": "Pod", "services": "Service", "persistentvolumeclaims": "PersistentVolumeClaim",
            "configmaps": "ConfigMap", "secrets": "Secret", "replicationcontrollers": "ReplicationController",
            "resourcequotas": "ResourceQuota"}


def _normalized(status: Any) -> Obj:
    """A status as the controller would write it, to compare quantities by value."""
    if not isinstance(status, dict):
        return {}
    return {"hard": to_wire(parse_list(status.get("hard"))), "used": to_wire(parse_list(status.get("used")))}
