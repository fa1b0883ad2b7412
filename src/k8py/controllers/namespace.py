"""The namespace controller: empties a namespace being deleted, then releases it.

``DELETE /api/v1/namespaces/NAME`` only marks the namespace (``deletionTimestamp``, phase
``Terminating``); the API server keeps it while ``spec.finalizers`` holds ``kubernetes``. This
controller, as kube's namespace deleter does:

1. discovers every namespaced resource the server serves (``/api``, ``/apis``) that can be
   deleted;
2. deletes everything of each resource in the namespace (``deletecollection`` where served,
   else list and delete one by one), with Background propagation so the garbage collector
   never has to orphan anything;
3. lists again and reports what is left in the namespace's status conditions
   (``NamespaceContentRemaining``: "Some resources are remaining: pods. has 2 resource
   instances", ``NamespaceFinalizersRemaining``, and the failure conditions for discovery,
   group versions and deletion), exactly the five condition types kube maintains;
4. while anything remains — pods finishing their grace period on a node, objects waiting for
   finalizers — looks again after a short delay that grows up to half the expected wait
   (kube waits the estimate / 2 at once; a fast node finishes sooner, so we start small);
5. when the namespace is empty, removes ``kubernetes`` from ``spec.finalizers`` through the
   ``finalize`` subresource, and the API server deletes the namespace.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from k8py.api.registry import VIRTUAL_KINDS, KindInfo
from k8py.client.api import Client
from k8py.client.controller import Controller, Result
from k8py.client.errors import ApiError, MethodNotAllowedError, NotFoundError
from k8py.controllers.base import ControllerContext, parse_time, rfc3339

__all__ = ["FINALIZER", "ContentTotals", "NamespaceController", "discover_namespaced_kinds", "update_conditions"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NAMESPACE = ("v1", "Namespace")
FINALIZER = "kubernetes"  # the spec.finalizers token this controller owns
# kube's estimate for objects that wait for finalizers, and the default pod grace period
FINALIZER_ESTIMATE = 15.0
DEFAULT_POD_GRACE = 30.0
FIRST_RECHECK = 0.05
DISCOVERY_TTL = 10.0

# condition type -> (reason, message) when nothing is wrong; kube's list and words
CONDITION_TYPES: dict[str, tuple[str, str]] = {
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions",
                                                    "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": ("ContentDeleted",
                                        "All content successfully deleted, may be waiting on finalization"),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentRemoved", "All content successfully removed"),
}


@dataclass(slots=True)
class ContentTotals:
    """What one pass over a namespace found and did."""

    remaining: dict[str, int] = field(default_factory=dict)  # "resource.group" -> objects left
    finalizers: Counter[str] = field(default_factory=Counter)  # finalizer -> objects holding it
    estimate: float = 0.0  # seconds until what is left should be gone
    discovery_errors: list[str] = field(default_factory=list)
    group_version_errors: list[str] = field(default_factory=list)
    delete_errors: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return self.discovery_errors + self.group_version_errors + self.delete_errors

    def conditions(self) -> dict[str, tuple[str, str]]:
        """condition type -> (reason, message) for each condition that is True now."""
        out: dict[str, tuple[str, str]] = {}
        if self.discovery_errors:
            out["NamespaceDeletionDiscoveryFailure"] = (
                "DiscoveryFailed", f"Discovery failed for some groups, {len(self.discovery_errors)} failing: "
                + ", ".join(sorted(self.discovery_errors)))
        if self.group_version_errors:
            out["NamespaceDeletionGroupVersionParsingFailure"] = (
                "GroupVersionParsingFailed", ", ".join(sorted(self.group_version_errors)))
        if self.delete_errors:
            out["NamespaceDeletionContentFailure"] = (
                "ContentDeletionFailed", (f"Failed to delete all resource types, {len(self.delete_errors)} "
                                          f"remaining: {', '.join(sorted(self.delete_errors))}"))
        left = sorted(f"{r} has {n} resource instances" for r, n in self.remaining.items() if n)
        if left:
            out["NamespaceContentRemaining"] = ("SomeResourcesRemain",
                                                f"Some resources are remaining: {', '.join(left)}")
        fins = sorted(f"{f} in {n} resource instances" for f, n in self.finalizers.items() if n)
        if fins:
            out["NamespaceFinalizersRemaining"] = ("SomeFinalizerRemain",
                                                   f"Some finalizers are remaining: {', '.join(fins)}")
        return out


def update_conditions(current: list[Obj], true_now: dict[str, tuple[str, str]], now: str) -> list[Obj] | None:
    """The namespace's conditions after this pass, or None if nothing changed. Each of kube's five
    types is always present: True with the problem, or False with its all-clear words;
    lastTransitionTime moves only when the status flips."""
    by_type = {c.get("type"): c for c in current}
    out = [dict(c) for c in current if c.get("type") not in CONDITION_TYPES]
    changed = False
    for typ, ok in CONDITION_TYPES.items():
        status, (reason, message) = ("True", true_now[typ]) if typ in true_now else ("False", ok)
        old = by_type.get(typ)
        if old is None:
            new = {"type": typ, "status": status, "lastTransitionTime": now, "reason": reason, "message": message}
            changed = True
        else:
            new = dict(old)
            if old.get("status") != status:
                new["lastTransitionTime"] = now
            new.update(status=status, reason=reason, message=message)
            changed = changed or new != old
        out.append(new)
    return out if changed else None


async def discover_namespaced_kinds(client: Client) -> tuple[list[KindInfo], list[str], list[str]]:
    """Namespaced, deletable resources in each group's preferred version, asking the server.

    Returns (kinds, discovery errors, group-version parsing errors); whatever could be
    discovered is returned even when some groups failed, as kube's discovery does.
    """
    return await discover_kinds(client, lambda r: bool(r.get("namespaced")), ("delete", "list"))


async def discover_kinds(client: Client, keep: Callable[[dict[str, Any]], bool], verbs_needed: tuple[str, ...],
                         skip_groups: frozenset[str] = frozenset()) -> tuple[list[KindInfo], list[str], list[str]]:
    """The resources (``keep`` given each discovery entry) with ``verbs_needed``, in each group's
    preferred version, asking the server (groups in ``skip_groups`` are not asked);
    (kinds, discovery errors, group-version parsing errors) as :func:`discover_namespaced_kinds`."""
    kinds: list[KindInfo] = []
    disc_errs: list[str] = []
    gv_errs: list[str] = []
    gvs: list[str] = []
    try:
        if "" not in skip_groups:
            core = await client.request("GET", "/api")
            gvs.extend(str(v) for v in core.get("versions") or ["v1"])
    except (ApiError, OSError, TimeoutError) as e:
        disc_errs.append(f"/api: {e}")
    try:
        groups = await client.request("GET", "/apis")
        for g in groups.get("groups") or []:
            pv = (g.get("preferredVersion") or {}).get("groupVersion") or ""
            if g.get("name") in skip_groups:
                continue
            if pv.count("/") != 1 or not all(pv.split("/")):
                gv_errs.append(f'unexpected GroupVersion string: "{pv}" in group {g.get("name")}')
                continue
            gvs.append(pv)
    except (ApiError, OSError, TimeoutError) as e:
        disc_errs.append(f"/apis: {e}")
    for gv in gvs:
        group, _, version = gv.rpartition("/")
        path = f"/apis/{gv}" if group else f"/api/{gv}"
        try:
            doc = await client.request("GET", path)
        except (ApiError, OSError, TimeoutError) as e:
            disc_errs.append(f"{gv}: {e}")
            continue
        for r in doc.get("resources") or []:
            name = str(r.get("name") or "")
            verbs = tuple(r.get("verbs") or ())
            if not name or "/" in name or not keep(r) or not all(v in verbs for v in verbs_needed):
                continue
            info = client.kind_info((group, version, name)) or KindInfo(
                group, version, str(r.get("kind") or ""), name, str(r.get("singularName") or ""),
                bool(r.get("namespaced")), verbs=verbs)
            if info.kind in VIRTUAL_KINDS:
                continue
            kinds.append(info)
    return kinds, disc_errs, gv_errs


class NamespaceController:
    NAME = "namespace"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.informer = ctx.factory.informer(NAMESPACE)
        self.controller = Controller("namespace", self.reconcile, workers=ctx.options.workers or 2,
                                     clock=ctx.clock)
        # only namespaces being deleted are work
        self.controller.watch(self.informer, lambda ns: [ns["metadata"]["name"]]
                              if (ns.get("metadata") or {}).get("deletionTimestamp") else [])
        self._passes: dict[str, int] = {}  # namespace -> passes that found content left
        self._no_deletecollection: set[tuple[str, str]] = set()  # (group, resource)
        self._discovered: tuple[float, list[KindInfo], list[str], list[str]] | None = None

    async def reconcile(self, name: str) -> Result | None:
        try:
            ns = await self.client.get(NAMESPACE, name)  # live: several parties edit a terminating namespace
        except NotFoundError:
            self._passes.pop(name, None)
            return None
        meta = ns.get("metadata") or {}
        if not meta.get("deletionTimestamp"):
            self._passes.pop(name, None)
            return None
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or ()):
            self._passes.pop(name, None)
            return None  # our part is done; other finalizers are someone else's
        totals = await self.delete_all_content(name)
        await self._report(ns, totals)
        if totals.errors:
            log.warning("namespace %s: deletion incomplete, will retry: %s", name, "; ".join(totals.errors))
            return Result(requeue=True)
        if totals.remaining:
            n = self._passes.get(name, 0)
            self._passes[name] = n + 1
            cap = max(totals.estimate / 2, 1.0)
            return Result(requeue_after=min(FIRST_RECHECK * 2 ** n, cap))
        self._passes.pop(name, None)
        await self._finalize(ns)
        return None

    async def delete_all_content(self, namespace: str) -> ContentTotals:
        totals = ContentTotals()
        kinds, totals.discovery_errors, totals.group_version_errors = await self._discover()
        seen: set[str] = set()
        for info in kinds:
            # a resource served in two groups or versions (events) is one set of objects
            if info.storage_name in seen:
                continue
            seen.add(info.storage_name)
            try:
                await self._delete_kind(info, namespace, totals)
            except ApiError as e:
                totals.delete_errors.append(f"{info.resource}.{info.group}: {e.message or e}")
        return totals

    async def _discover(self) -> tuple[list[KindInfo], list[str], list[str]]:
        now = self.ctx.clock.now()
        if self._discovered is not None and now - self._discovered[0] < DISCOVERY_TTL:
            return self._discovered[1], [], []
        kinds, disc, gv = await discover_namespaced_kinds(self.client)
        if not disc and not gv:  # cache only a complete answer
            self._discovered = (now, kinds, [], [])
        return kinds, disc, gv

    async def _delete_kind(self, info: KindInfo, namespace: str, totals: ContentTotals) -> None:
        items = await self._list(info, namespace)
        if not items:
            return
        estimate = _pod_grace_estimate(items) if info.group == "" and info.resource == "pods" else 0.0
        opts = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        key = (info.group, info.resource)
        done = False
        if "deletecollection" in info.verbs and key not in self._no_deletecollection:
            try:
                await self.client.request("DELETE", self.client.path(info, namespace), body=opts)
                done = True
            except (MethodNotAllowedError, NotFoundError):
                self._no_deletecollection.add(key)  # served without it after all: one by one
        if not done:
            for obj in items:
                md = obj.get("metadata") or {}
                if md.get("deletionTimestamp"):
                    continue
                try:
                    await self.client.delete(info, md["name"], namespace, propagation_policy="Background")
                except NotFoundError:
                    pass
        left = await self._list(info, namespace)
        if not left:
            return
        totals.remaining[f"{info.resource}.{info.group}"] = len(left)
        held = unexplained = 0
        for obj in left:
            md = obj.get("metadata") or {}
            fins = md.get("finalizers") or ()
            totals.finalizers.update(fins)
            held += bool(fins)
            # neither waiting for finalizers nor on its way out (a pod's grace period)
            unexplained += not fins and not md.get("deletionTimestamp")
        if unexplained:
            # kube: nothing explains why they are still here, so something went wrong; retry
            totals.delete_errors.append(f"unexpected items still remain in namespace: {namespace} for gvr: "
                                        f"{info.group}/{info.version}, Resource={info.resource}")
        if held:
            estimate = max(estimate, FINALIZER_ESTIMATE)
        totals.estimate = max(totals.estimate, estimate or FINALIZER_ESTIMATE)

    async def _list(self, info: KindInfo, namespace: str) -> list[Obj]:
        return list((await self.client.list_all(info, namespace)).get("items") or [])

    async def _report(self, ns: Obj, totals: ContentTotals) -> None:
        status = ns.get("status") or {}
        now = rfc3339(dt.datetime.fromtimestamp(self.ctx.clock.wall(), dt.UTC))
        conds = update_conditions(list(status.get("conditions") or []), totals.conditions(), now)
        patch: Obj = {}
        if conds is not None:
            patch["conditions"] = conds
        if status.get("phase") != "Terminating":
            patch["phase"] = "Terminating"
        if not patch:
            return
        name = ns["metadata"]["name"]
        try:
            await self.client.patch(NAMESPACE, name, {"status": patch}, subresource="status")
        except NotFoundError as e:
            if await self._exists(name):
                log.warning("namespace %s: the server refused the status update: %s", name, e)
        except ApiError as e:  # the report is worth less than the deletion itself: go on
            log.warning("namespace %s: could not update status conditions: %s", name, e)

    async def _exists(self, name: str) -> bool:
        try:
            await self.client.get(NAMESPACE, name)
        except NotFoundError:
            return False
        return True

    async def _finalize(self, ns: Obj) -> None:
        md = ns["metadata"]
        fins = [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != FINALIZER]
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": md["name"], "resourceVersion": md.get("resourceVersion")},
                "spec": {"finalizers": fins}}
        try:
            await self.client.update(NAMESPACE, body, subresource="finalize")
        except NotFoundError as e:
            if await self._exists(md["name"]):
                raise RuntimeError(f"namespace {md['name']}: the server did not take the finalize request "
                                   f"(PUT /api/v1/namespaces/{md['name']}/finalize): {e}") from e
            return  # deleted meanwhile: done
        took = ""
        started = parse_time(md.get("deletionTimestamp"))
        if started is not None:
            took = f" after {max(self.ctx.clock.wall() - started.timestamp(), 0.0):.1f}s"
        log.info("namespace %s: content deleted%s; finalized", md["name"], took)


def _pod_grace_estimate(pods: list[Obj]) -> float:
    """kube's estimate for pods: the longest grace period of those not finished yet."""
    best = 0.0
    for p in pods:
        if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        md = p.get("metadata") or {}
        g = md.get("deletionGracePeriodSeconds")
        if g is None:
            g = (p.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_POD_GRACE)
        best = max(best, float(g or 0))
    return best
