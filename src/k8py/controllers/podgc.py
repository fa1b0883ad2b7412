"""Pod garbage collection (kube-controller-manager's ``pod-garbage-collector``), one pass every
``pod_gc_period`` seconds (option, default 20):

- **terminated pods** (Succeeded/Failed) beyond ``terminated_pod_gc_threshold`` (option, default
  12500; 0 turns this off) are deleted, evicted ones first, then oldest first;
- **orphaned pods**, bound to a node that does not exist: once the node has been missing for
  ``pod_gc_quarantine`` seconds (option, default 40) and a live GET confirms it is gone, they are
  marked Failed (condition ``DisruptionTarget``, reason ``DeletionByPodGC``) and force-deleted;
- **terminating pods that were never scheduled** are force-deleted (no kubelet will finish them);
- **terminating pods on a not-ready node with the ``node.kubernetes.io/out-of-service`` taint**
  are force-deleted (the node was declared dead by its operator).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from typing import Any, TypeVar

from k8py.client.controller import RACES, Controller, Result
from k8py.client.errors import ApiError, ConflictError, NotFoundError
from k8py.controllers.base import ControllerContext, rfc3339
from k8py.controllers.endpoints import meta

log = logging.getLogger(__name__)

Obj = dict[str, Any]
T = TypeVar("T", int, float)

POD = ("v1", "Pod")
NODE = ("v1", "Node")
GC_KEY = "gc"  # the one key: each reconcile is one whole pass
TAINT_OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
DEFAULT_TERMINATED_THRESHOLD = 12500
DEFAULT_PERIOD = 20.0
DEFAULT_QUARANTINE = 40.0
DELETE_CONCURRENCY = 20


def is_terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Pending", "Running", "Unknown", None, "")


def is_evicted(pod: Obj) -> bool:
    st = pod.get("status") or {}
    return st.get("phase") == "Failed" and st.get("reason") == "Evicted"


def terminated_to_delete(pods: list[Obj], threshold: int) -> list[Obj]:
    """The terminated pods over ``threshold``: evicted first, then oldest, then by name."""
    if threshold <= 0:
        return []
    done = [p for p in pods if is_terminated(p)]
    n = len(done) - threshold
    if n <= 0:
        return []
    done.sort(key=lambda p: (not is_evicted(p), str(meta(p).get("creationTimestamp") or ""),
                             str(meta(p).get("name") or "")))
    return done[:n]


def node_is_ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or ())


def _or(value: T | None, default: T) -> T:
    return default if value is None else value


class PodGCController:
    NAME = "podgc"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        self.threshold = _or(ctx.options.terminated_pod_gc_threshold, DEFAULT_TERMINATED_THRESHOLD)
        self.period = _or(ctx.options.pod_gc_period, DEFAULT_PERIOD)
        self.quarantine = _or(ctx.options.pod_gc_quarantine, DEFAULT_QUARANTINE)
        self.pods = ctx.factory.informer(POD)
        self.nodes = ctx.factory.informer(NODE)
        # one worker: passes never overlap
        self.controller = Controller("pod-garbage-collector", self.reconcile, workers=1, clock=ctx.clock,
                                     wait_for=(self.pods, self.nodes))
        self.controller.enqueue_key(GC_KEY)
        self._missing_since: dict[str, float] = {}  # node name -> when first seen missing

    async def reconcile(self, key: str) -> Result | None:
        if key != GC_KEY:
            return None
        try:
            await self.gc()
        except RACES as e:  # a pod or node changed or went away mid-pass: the next pass sees it
            log.debug("pod garbage collection pass: %s (next pass soon)", e)
        except Exception:  # a failed pass must not stop the next ones
            log.exception("pod garbage collection pass failed")
        return Result(requeue_after=self._next_pass())

    def _next_pass(self) -> float:
        wait = self.period
        now = self.clock.now()
        for since in self._missing_since.values():
            wait = min(wait, max(since + self.quarantine - now, 0.0) + 0.01)
        return max(wait, 0.01)

    async def gc(self) -> None:
        pods = self.pods.list()
        if self.threshold > 0:
            await self._delete_all(terminated_to_delete(pods, self.threshold), mark_failed=False, condition=None,
                                   why="terminated pods over the threshold")
        await self._gc_terminating(pods)
        await self._gc_orphaned(pods)
        await self._delete_all([p for p in pods if meta(p).get("deletionTimestamp") and
                                not (p.get("spec") or {}).get("nodeName")],
                               mark_failed=True, condition=None, why="unscheduled terminating pod")

    async def _gc_terminating(self, pods: list[Obj]) -> None:
        doomed = []
        for p in pods:
            if not meta(p).get("deletionTimestamp"):
                continue
            node = self.nodes.get(str((p.get("spec") or {}).get("nodeName") or ""))
            if node is None or node_is_ready(node):
                continue
            if any(t.get("key") == TAINT_OUT_OF_SERVICE for t in (node.get("spec") or {}).get("taints") or ()):
                doomed.append(p)
        doomed.sort(key=lambda p: str(meta(p).get("creationTimestamp") or ""))
        await self._delete_all(doomed, mark_failed=True, condition=None, why="terminating on an out-of-service node")

    async def _gc_orphaned(self, pods: list[Obj]) -> None:
        now = self.clock.now()
        known = {str(meta(n).get("name")) for n in self.nodes.list()}
        wanted = set()
        for p in pods:
            node = (p.get("spec") or {}).get("nodeName")
            if node and node not in known:
                wanted.add(node)
                self._missing_since.setdefault(node, now)
        for name in list(self._missing_since):
            if name not in wanted:
                del self._missing_since[name]  # back, or no pods left on it
        deleted = set()
        for name, since in list(self._missing_since.items()):
            if now - since < self.quarantine:
                continue
            # why: the cache may simply be behind; only a live answer that the node is gone counts
            try:
                await self.client.get(NODE, name)
            except NotFoundError:
                deleted.add(name)
            except ApiError as e:
                log.info("pod gc: could not check node %s: %s", name, e.message)
            else:
                continue
        if not deleted:
            return
        orphans = [p for p in pods if (p.get("spec") or {}).get("nodeName") in deleted]
        cond = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists"}
        await self._delete_all(orphans, mark_failed=True, condition=cond, why="orphaned (node gone)")
        for name in deleted:
            self._missing_since.pop(name, None)

    async def _delete_all(self, pods: list[Obj], *, mark_failed: bool, condition: Obj | None, why: str) -> None:
        if not pods:
            return
        log.info("pod gc: force-deleting %d pod(s): %s", len(pods), why)
        sem = asyncio.Semaphore(DELETE_CONCURRENCY)

        async def one(p: Obj) -> None:
            async with sem:
                try:
                    await self._mark_failed_and_delete(p, mark_failed, condition)
                except NotFoundError:
                    pass
                except ApiError as e:
                    log.info("pod gc: could not delete %s/%s: %s", meta(p).get("namespace"), meta(p).get("name"),
                             e.message)

        await asyncio.gather(*(one(p) for p in pods))

    async def _mark_failed_and_delete(self, pod: Obj, mark_failed: bool, condition: Obj | None) -> None:
        m = meta(pod)
        ns, name = str(m.get("namespace")), str(m.get("name"))
        # why: an orphaned pod would otherwise stay Running forever, no kubelet is left to end it
        if mark_failed and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            new = copy.deepcopy(pod)
            st = new.setdefault("status", {})
            st["phase"] = "Failed"
            if condition is not None:
                now = rfc3339(dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC))
                conds = [c for c in st.get("conditions") or () if c.get("type") != condition["type"]]
                conds.append({**condition, "lastTransitionTime": now})
                st["conditions"] = conds
            try:
                await self.client.update_status(POD, new, ns)
            except ConflictError:
                pass  # changed meanwhile: deleting it is what matters
        await self.client.delete(POD, name, ns, grace_period_seconds=0, uid=m.get("uid"))
        log.info("pod gc: deleted %s/%s", ns, name)
