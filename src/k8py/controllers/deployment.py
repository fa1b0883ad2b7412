"""The Deployment controller: rolls ReplicaSets, as kube-controller-manager's does.

A Deployment owns one ReplicaSet per pod template (named ``<deployment>-<pod-template-hash>``);
the one matching the current template is the *new* RS, the others are *old*. Each reconcile
takes one step and writes what it did; the ReplicaSet controller makes and removes the pods,
and its status updates bring the next step:

- RollingUpdate: grow the new RS while all RSs together stay within ``replicas + maxSurge``,
  shrink old RSs while available pods stay at least ``replicas - maxUnavailable``.
- Recreate: scale old RSs to 0, wait until their pods are gone, then scale the new RS up.
- A change of ``replicas`` in mid-rollout (or while paused) scales every active RS in
  proportion to its size.
- Paused: no rollout, but scaling works.
- Revisions: the new RS gets ``max(old revisions) + 1`` in ``deployment.kubernetes.io/revision``,
  also when it is an old RS coming back (a rollback, which kubectl does client side by writing
  the old template into the Deployment); what it served before goes to ``revision-history``.
- ``progressDeadlineSeconds``: the Progressing condition, False with ProgressDeadlineExceeded
  when no progress was made in time; the key is looked at again when the deadline would pass.
- ``revisionHistoryLimit``: the oldest old RSs with no pods are deleted beyond it.

Pure arithmetic and annotation rules live in :mod:`k8py.controllers.deploymentutil`.
"""

from __future__ import annotations

import copy
import logging

from k8py.api.corev1 import is_namespace_terminating
from k8py.api.selectors import LabelSelector, SelectorError, from_label_selector
from k8py.client.api import object_key
from k8py.client.controller import Controller, Result
from k8py.client.errors import AlreadyExistsError, ApiError, NotFoundError
from k8py.client.store import OWNER_UID_INDEX
from k8py.controllers import deploymentutil as du
from k8py.controllers.base import ControllerContext
from k8py.controllers.deploymentutil import (
    Obj,
    annotations_of,
    controller_ref,
    filter_active,
    meta,
    replicas,
    spec,
    status,
    uid,
)

log = logging.getLogger(__name__)

DEPLOYMENT = ("apps/v1", "Deployment")
REPLICASET = ("apps/v1", "ReplicaSet")
POD = ("v1", "Pod")

# Give up on a key after this many failures in a row (kube's maxRetries); the next event
# about the Deployment brings it back.
MAX_RETRIES = 15


class _Skip(Exception):
    """Stop this reconcile quietly (the namespace is terminating)."""


class DeploymentController:
    NAME = "deployment"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        f = ctx.factory
        self.deployments = f.informer(DEPLOYMENT)
        self.replicasets = f.informer(REPLICASET)
        self.pods = f.informer(POD)
        self.controller = Controller(self.NAME, self.reconcile, workers=ctx.options.workers or 2,
                                     clock=ctx.clock, max_retries=MAX_RETRIES)
        self.controller.watch(self.deployments)
        self.controller.watch(self.replicasets, self._keys_for_replica_set, skip_unchanged=True)
        # Pods matter only when one goes away (a Recreate rollout waits for all old pods to be
        # gone); the runner waits for the pod cache before starting.
        self.controller.wait_for(self.pods)
        self.pods.add_handler(on_delete=self._pod_deleted)
        # uid -> resourceVersion of our last write to that Deployment or ReplicaSet
        self._written: dict[str, int] = {}
        forget = self._forget_written
        self.deployments.add_handler(on_delete=forget)
        self.replicasets.add_handler(on_delete=forget)

    # -- our own writes --------------------------------------------------------------------------

    def _note_written(self, obj: Obj) -> Obj:
        try:
            self._written[uid(obj)] = int(meta(obj).get("resourceVersion") or 0)
        except ValueError:
            pass
        return obj

    def _forget_written(self, obj: Obj) -> None:
        self._written.pop(uid(obj), None)

    def _stale(self, obj: Obj) -> bool:
        """Is the cached ``obj`` older than our last write to it? (resourceVersions are the store's
        one monotonic revision, so they compare.)"""
        w = self._written.get(uid(obj))
        if w is None:
            return False
        try:
            rv = int(meta(obj).get("resourceVersion") or 0)
        except ValueError:
            return False
        if rv >= w:
            self._written.pop(uid(obj), None)
            return False
        return True

    # -- event mapping ---------------------------------------------------------------------------

    def _resolve(self, namespace: str, ref: Obj) -> Obj | None:
        if ref.get("kind") != "Deployment":
            return None
        d = self.deployments.get(str(ref.get("name") or ""), namespace)
        if d is None or uid(d) != ref.get("uid"):
            return None
        return d

    def _keys_for_replica_set(self, rs: Obj) -> list[str]:
        ns = str(meta(rs).get("namespace") or "")
        ref = controller_ref(rs)
        if ref is not None:
            d = self._resolve(ns, ref)
            return [object_key(d)] if d is not None else []
        # An orphan: every Deployment whose selector matches may want to adopt it.
        labels = meta(rs).get("labels") or {}
        if not labels:
            return []
        keys = []
        for d in self.deployments.list(ns):
            try:
                sel = from_label_selector(spec(d).get("selector"))
            except SelectorError:
                continue
            if not sel.empty and sel.matches(labels):
                keys.append(object_key(d))
        return keys

    def _pod_deleted(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        ns = str(meta(pod).get("namespace") or "")
        rs = self.replicasets.get(str(ref.get("name") or ""), ns)
        if rs is None or uid(rs) != ref.get("uid"):
            return
        rs_ref = controller_ref(rs)
        d = self._resolve(ns, rs_ref) if rs_ref is not None else None
        if d is None or (spec(d).get("strategy") or {}).get("type") != du.RECREATE:
            return
        # why: a Recreate rollout waits for every old pod to be gone; the last deletion is its cue
        try:
            pod_map = self._pod_map(d, self._owned_replica_sets(d))
        except SelectorError:
            return
        if not any(pod_map.values()):
            self.controller.enqueue(d)

    # -- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        ns, _, name = key.rpartition("/")
        cached = self.deployments.get(name, ns or None)
        if cached is None:
            return None  # deleted; the garbage collector removes its ReplicaSets
        # why: deciding on a cache that does not yet hold our own last writes only produces
        # conflicts (or, for status, a step taken twice); the watch event of that write is on
        # its way and enqueues this key again.
        if self._stale(cached) or any(self._stale(rs) for rs in self._owned_replica_sets(cached)):
            return None
        d = copy.deepcopy(cached)  # never mutate the cache
        if not isinstance(d.get("status"), dict):
            d["status"] = {}
        try:
            return await self._sync_deployment(d)
        except _Skip:
            return None

    async def _sync_deployment(self, d: Obj) -> Result | None:
        sel_obj = spec(d).get("selector")
        if not sel_obj or not (sel_obj.get("matchLabels") or sel_obj.get("matchExpressions")):
            self.ctx.record(d, "Warning", "SelectingAll",
                            "This deployment is selecting all pods. A non-empty selector is required.")
            st = d.setdefault("status", {})
            if int(st.get("observedGeneration") or 0) < int(meta(d).get("generation") or 0):
                st["observedGeneration"] = meta(d).get("generation")
                await self._update_status(d)
            return None
        try:
            selector = from_label_selector(sel_obj)
        except SelectorError as e:
            log.warning("deployment %s has an invalid label selector: %s", object_key(d), e)
            return None

        rs_list = await self._claim_replica_sets(d, selector)

        if meta(d).get("deletionTimestamp"):
            new_rs, old_rss = await self._get_all_replica_sets(d, rs_list, create=False)
            await self._sync_deployment_status([*old_rss, new_rs], new_rs, d)
            return None

        # Pausing and resuming write an Unknown Progressing condition, so that a Deployment
        # resumed after longer than its deadline does not time out at once.
        await self._check_paused_conditions(d)

        if spec(d).get("paused"):
            await self._sync(d, rs_list)
            return None

        if await self._is_scaling_event(d, rs_list):
            await self._sync(d, rs_list)
            return None

        typ = (spec(d).get("strategy") or {}).get("type", du.ROLLING_UPDATE)
        if typ == du.RECREATE:
            return await self._rollout_recreate(d, rs_list, self._pod_map(d, rs_list))
        if typ == du.ROLLING_UPDATE:
            return await self._rollout_rolling(d, rs_list)
        raise ValueError(f"unexpected deployment strategy type: {typ}")

    # -- ownership -------------------------------------------------------------------------------

    def _owner_ref(self, d: Obj) -> Obj:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta(d)["name"], "uid": uid(d),
                "controller": True, "blockOwnerDeletion": True}

    async def _claim_replica_sets(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        """The RSs this Deployment manages: those it controls that still match its selector, plus
        matching orphans it adopts; controlled ones that stopped matching are released."""
        ns = str(meta(d).get("namespace") or "")
        deleting = bool(meta(d).get("deletionTimestamp"))
        out: list[Obj] = []
        errors: list[Exception] = []
        adoption_checked = False
        for rs in self.replicasets.list(ns):
            ref = controller_ref(rs)
            labels = meta(rs).get("labels") or {}
            if ref is not None:
                if ref.get("uid") != uid(d):
                    continue  # someone else's
                if selector.matches(labels):
                    out.append(rs)
                    continue
                if deleting:
                    continue
                try:
                    await self._set_owner_refs(rs, [r for r in meta(rs).get("ownerReferences") or ()
                                                    if r.get("uid") != uid(d)])
                except NotFoundError:
                    pass
                except ApiError as e:
                    errors.append(e)
                continue
            if deleting or not selector.matches(labels) or meta(rs).get("deletionTimestamp"):
                continue
            if not adoption_checked:
                # why: the cache may be stale; never adopt for a Deployment that is being deleted
                # (or was replaced by another of the same name) — ask the API server itself
                fresh = await self.client.get(DEPLOYMENT, meta(d)["name"], ns)
                if uid(fresh) != uid(d):
                    raise RuntimeError(f"original Deployment {ns}/{meta(d)['name']} is gone: got uid "
                                       f"{uid(fresh)}, wanted {uid(d)}")
                if meta(fresh).get("deletionTimestamp"):
                    raise RuntimeError(f"{ns}/{meta(d)['name']} has just been deleted at "
                                       f"{meta(fresh)['deletionTimestamp']}")
                adoption_checked = True
            try:
                adopted = await self._set_owner_refs(rs, [*(meta(rs).get("ownerReferences") or ()),
                                                          self._owner_ref(d)])
            except NotFoundError:
                continue
            except ApiError as e:
                errors.append(e)
                continue
            out.append(adopted)
        if errors:
            raise errors[0]
        return out

    async def _set_owner_refs(self, rs: Obj, refs: list[Obj]) -> Obj:
        m = meta(rs)
        patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": m.get("resourceVersion")}}
        return self._note_written(
            await self.client.patch(REPLICASET, m["name"], patch, m.get("namespace"), type="merge"))

    def _owned_replica_sets(self, d: Obj) -> list[Obj]:
        """Cached RSs that ``d`` controls (by the owner-UID index, no scan)."""
        u = uid(d)
        return [rs for rs in self.replicasets.store.by_index(OWNER_UID_INDEX, u)
                if (controller_ref(rs) or {}).get("uid") == u]

    def _pod_map(self, d: Obj, rs_list: list[Obj]) -> dict[str, list[Obj]]:
        """Pods of the Deployment that match its selector, by the UID of the RS controlling them
        (all of them, not only active ones: Recreate waits for every old pod to be gone)."""
        selector = from_label_selector(spec(d).get("selector"))
        out: dict[str, list[Obj]] = {}
        for rs in rs_list:
            u = uid(rs)
            out[u] = [p for p in self.pods.store.by_index(OWNER_UID_INDEX, u)
                      if (controller_ref(p) or {}).get("uid") == u and selector.matches(meta(p).get("labels") or {})]
        return out

    # -- the new and old ReplicaSets ------------------------------------------------------------

    async def _get_all_replica_sets(self, d: Obj, rs_list: list[Obj],
                                    create: bool) -> tuple[Obj | None, list[Obj]]:
        _, all_old = du.find_old_replica_sets(d, rs_list)
        new_rs = await self._get_new_replica_set(d, rs_list, all_old, create)
        return new_rs, all_old

    async def _get_new_replica_set(self, d: Obj, rs_list: list[Obj], old_rss: list[Obj],
                                   create: bool) -> Obj | None:
        existing = du.find_new_replica_set(d, rs_list)
        new_revision = du.max_revision(old_rss) + 1
        ns = str(meta(d).get("namespace") or "")
        min_ready = int(spec(d).get("minReadySeconds") or 0)

        if existing is not None:
            rs = copy.deepcopy(existing)
            changed = du.set_new_replica_set_annotations(d, rs, new_revision, exists=True)
            if changed or int(spec(rs).get("minReadySeconds") or 0) != min_ready:
                _set_min_ready(rs, min_ready)
                out = self._note_written(await self.client.update(REPLICASET, rs, ns))
                _replace(rs_list, out)
                return out
            meta_changed = self._set_revision(d, str(annotations_of(rs).get(du.REVISION, "")))
            status_changed = False
            if du.has_progress_deadline(d) and du.get_condition(status(d), du.PROGRESSING) is None:
                du.set_condition(d.setdefault("status", {}), du.new_condition(
                    du.PROGRESSING, "True", du.FOUND_NEW_RS, f'Found new replica set "{meta(rs)["name"]}"',
                    self.clock.wall()))
                status_changed = True
            await self._write(d, meta_changed, status_changed)
            return rs

        if not create:
            return None

        template = copy.deepcopy(spec(d).get("template") or {})
        collision = status(d).get("collisionCount")
        h = du.compute_hash(template, collision)
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), du.POD_TEMPLATE_HASH: h}
        selector = copy.deepcopy(spec(d).get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), du.POD_TEMPLATE_HASH: h}
        name = f"{meta(d)['name']}-{h}"
        new_rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": [self._owner_ref(d)],
                         "labels": dict(tmeta["labels"])},
            "spec": {"replicas": 0, "selector": selector, "template": template},
        }
        _set_min_ready(new_rs, min_ready)
        count = du.new_rs_new_replicas(d, [*old_rss, new_rs], new_rs)
        new_rs["spec"]["replicas"] = count
        du.set_new_replica_set_annotations(d, new_rs, new_revision, exists=False)
        already_exists = False
        try:
            created = await self.client.create(REPLICASET, new_rs, ns)
        except AlreadyExistsError:
            # A slow cache, or a hash collision: ours if we control it and it has our template.
            created = await self.client.get(REPLICASET, name, ns)
            ref = controller_ref(created)
            if not (ref is not None and ref.get("uid") == uid(d)
                    and du.equal_ignore_hash(spec(d).get("template"), spec(created).get("template"))):
                st = d.setdefault("status", {})
                st["collisionCount"] = int(st.get("collisionCount") or 0) + 1
                log.info("deployment %s: hash collision on %s; collisionCount now %d", object_key(d), name,
                         st["collisionCount"])
                await self._update_status(d)
                raise
            already_exists = True
        except ApiError as e:
            if is_namespace_terminating(e):
                raise _Skip() from e
            msg = f'Failed to create new replica set "{name}": {e.message or e}'
            if du.has_progress_deadline(d):
                du.set_condition(d.setdefault("status", {}), du.new_condition(
                    du.PROGRESSING, "False", du.FAILED_RS_CREATE, msg, self.clock.wall()))
                try:
                    await self._update_status(d)
                except ApiError:
                    pass  # the failure to create is the news; it is retried anyway
            self.ctx.record(d, "Warning", du.FAILED_RS_CREATE, msg)
            raise
        _replace(rs_list, created)
        if not already_exists and count > 0:
            self.ctx.record(d, "Normal", "ScalingReplicaSet",
                            f"Scaled up replica set {name} from 0 to {count}")
        meta_changed = self._set_revision(d, str(new_revision))
        status_changed = False
        if not already_exists and du.has_progress_deadline(d):
            du.set_condition(d.setdefault("status", {}), du.new_condition(
                du.PROGRESSING, "True", du.NEW_RS_CREATED, f'Created new replica set "{name}"', self.clock.wall()))
            status_changed = True
        await self._write(d, meta_changed, status_changed)
        return created

    # -- writes to the Deployment ---------------------------------------------------------------

    def _set_revision(self, d: Obj, rev: str) -> bool:
        ann = d.setdefault("metadata", {}).setdefault("annotations", {})
        if ann.get(du.REVISION) == rev:
            return False
        ann[du.REVISION] = rev
        return True

    async def _write(self, d: Obj, meta_changed: bool, status_changed: bool) -> None:
        if meta_changed:
            # The revision annotation goes on the object itself (kube's status strategy lets
            # /status carry it, ours keeps metadata); resourceVersion makes it compare-and-swap.
            m = meta(d)
            out = await self.client.patch(
                DEPLOYMENT, m["name"],
                {"metadata": {"resourceVersion": m.get("resourceVersion"),
                              "annotations": {du.REVISION: m["annotations"][du.REVISION]}}},
                m.get("namespace"), type="merge")
            m["resourceVersion"] = meta(out).get("resourceVersion")
            self._note_written(out)
        if status_changed:
            await self._update_status(d)

    async def _update_status(self, d: Obj) -> None:
        out = self._note_written(await self.client.update_status(DEPLOYMENT, d, meta(d).get("namespace")))
        # why: later writes in this reconcile must not conflict with our own
        d["metadata"]["resourceVersion"] = meta(out).get("resourceVersion")

    async def _check_paused_conditions(self, d: Obj) -> None:
        if not du.has_progress_deadline(d):
            return
        cond = du.get_condition(status(d), du.PROGRESSING)
        if cond is not None and cond.get("reason") == du.TIMED_OUT:
            return  # a reported lack of progress stays
        paused_cond = cond is not None and cond.get("reason") == du.PAUSED
        now = self.clock.wall()
        if spec(d).get("paused") and not paused_cond:
            c = du.new_condition(du.PROGRESSING, "Unknown", du.PAUSED, "Deployment is paused", now)
        elif not spec(d).get("paused") and paused_cond:
            c = du.new_condition(du.PROGRESSING, "Unknown", du.RESUMED, "Deployment is resumed", now)
        else:
            return
        du.set_condition(d.setdefault("status", {}), c)
        await self._update_status(d)

    # -- scaling ---------------------------------------------------------------------------------

    async def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        """Did ``replicas`` change? An active RS records the size it was scaled for."""
        new_rs, old_rss = await self._get_all_replica_sets(d, rs_list, create=False)
        for rs in filter_active([*old_rss, new_rs]):
            desired = du.int_annotation(rs, du.DESIRED_REPLICAS)
            if desired is not None and desired != replicas(d):
                return True
        return False

    async def _sync(self, d: Obj, rs_list: list[Obj]) -> None:
        """Scaling (or a paused Deployment): resize, clean up when paused, write status."""
        new_rs, old_rss = await self._get_all_replica_sets(d, rs_list, create=False)
        await self._scale(d, new_rs, old_rss)
        if spec(d).get("paused"):
            await self._cleanup(old_rss, d)
        await self._sync_deployment_status([*old_rss, new_rs], new_rs, d)

    async def _scale(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        one = du.find_active_or_latest(new_rs, old_rss)
        if one is not None:
            if replicas(one) != replicas(d):
                await self._scale_and_record(one, replicas(d), d)
            return
        if du.is_saturated(d, new_rs):
            # The new RS holds everything (e.g. after adopting old RSs): old ones go to 0.
            for old in filter_active(old_rss):
                await self._scale_and_record(old, 0, d)
            return
        if du.is_rolling_update(d):
            sizes, to_add = du.proportional_sizes(d, new_rs, old_rss)
            op = "up" if to_add > 0 else "down" if to_add < 0 else ""
            for rs, size in sizes:
                await self._scale_replica_set(rs, size, d, op)

    async def _scale_and_record(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        if replicas(rs) == new_scale:
            return False, rs
        return await self._scale_replica_set(rs, new_scale, d, "up" if replicas(rs) < new_scale else "down")

    async def _scale_replica_set(self, rs: Obj, new_scale: int, d: Obj, op: str) -> tuple[bool, Obj]:
        size_changes = replicas(rs) != new_scale
        max_r = replicas(d) + du.max_surge(d)
        if not size_changes and not du.replicas_annotations_need_update(rs, replicas(d), max_r):
            return False, rs
        old_scale = replicas(rs)
        c = copy.deepcopy(rs)
        c.setdefault("spec", {})["replicas"] = new_scale
        du.set_replicas_annotations(c, replicas(d), max_r)
        out = self._note_written(await self.client.update(REPLICASET, c, meta(rs).get("namespace")))
        if size_changes:
            self.ctx.record(d, "Normal", "ScalingReplicaSet",
                            f"Scaled {op} replica set {meta(rs)['name']} from {old_scale} to {new_scale}")
        return size_changes, out

    async def _cleanup(self, old_rss: list[Obj], d: Obj) -> None:
        """Delete the oldest old RSs beyond ``revisionHistoryLimit`` (only those with no pods)."""
        if not du.has_revision_history_limit(d):
            return
        alive = [rs for rs in old_rss if not meta(rs).get("deletionTimestamp")]
        diff = len(alive) - int(spec(d)["revisionHistoryLimit"])
        if diff <= 0:
            return
        for rs in du.sort_by_revision(alive)[:diff]:
            st = status(rs)
            if int(st.get("replicas") or 0) != 0 or replicas(rs) != 0 or \
                    int(meta(rs).get("generation") or 0) > int(st.get("observedGeneration") or 0):
                continue
            log.info("deployment %s: deleting old replica set %s (revisionHistoryLimit %s)", object_key(d),
                     meta(rs)["name"], spec(d)["revisionHistoryLimit"])
            try:
                await self.client.delete(REPLICASET, meta(rs)["name"], meta(rs).get("namespace"),
                                         uid=uid(rs))
            except NotFoundError:
                pass

    # -- status ----------------------------------------------------------------------------------

    async def _sync_deployment_status(self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> None:
        new = du.calculate_status(all_rss, new_rs, d, self.clock.wall())
        if du.normalized_status(status(d)) == du.normalized_status(new):
            return
        d["status"] = new
        await self._update_status(d)

    async def _sync_rollout_status(self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> Result | None:
        """Status during a rollout, with the Progressing condition; when nothing changed and the
        rollout is still going, look again when its progress deadline would pass."""
        now = self.clock.wall()
        new = du.calculate_status(all_rss, new_rs, d, now)
        du.rollout_progress(d, new, new_rs, now)
        failures = du.replica_failures(all_rss, new_rs)
        if failures:
            du.set_condition(new, failures[0])
        else:
            du.remove_condition(new, du.REPLICA_FAILURE)
        if du.normalized_status(status(d)) == du.normalized_status(new):
            after = du.progress_check_after(d, new, now)
            if after is None:
                return None
            if after == 0:
                return Result(requeue=True)
            return Result(requeue_after=after)
        d["status"] = new
        await self._update_status(d)
        return None

    # -- strategies ------------------------------------------------------------------------------

    async def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> Result | None:
        new_rs, old_rss = await self._get_all_replica_sets(d, rs_list, create=True)
        assert new_rs is not None
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        if await self._reconcile_new_replica_set(all_rss, new_rs, d):
            return await self._sync_rollout_status(all_rss, new_rs, d)
        if await self._reconcile_old_replica_sets(all_rss, filter_active(old_rss), new_rs, d):
            return await self._sync_rollout_status(all_rss, new_rs, d)
        if du.deployment_complete(d, status(d)):
            await self._cleanup(old_rss, d)
        return await self._sync_rollout_status(all_rss, new_rs, d)

    async def _reconcile_new_replica_set(self, all_rss: list[Obj | None], new_rs: Obj, d: Obj) -> bool:
        if replicas(new_rs) == replicas(d):
            return False
        if replicas(new_rs) > replicas(d):
            scaled, _ = await self._scale_and_record(new_rs, replicas(d), d)
            return scaled
        count = du.new_rs_new_replicas(d, all_rss, new_rs)
        scaled, _ = await self._scale_and_record(new_rs, count, d)
        return scaled

    async def _reconcile_old_replica_sets(self, all_rss: list[Obj | None], old_rss: list[Obj], new_rs: Obj,
                                          d: Obj) -> bool:
        old_pods = du.spec_replicas(old_rss)
        if old_pods == 0:
            return False
        all_pods = du.spec_replicas(all_rss)
        min_available = replicas(d) - du.max_unavailable(d)
        new_unavailable = replicas(new_rs) - du.available_of(new_rs)
        # Scale down no further than what keeps minAvailable, counting the new RS's pods that
        # are not yet available as unavailable (so a broken new template cannot eat old pods).
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        # Unhealthy old pods first: removing them costs no availability.
        old_rss, cleaned = await self._cleanup_unhealthy_replicas(old_rss, d, max_scaled_down)
        scaled = await self._scale_down_old_replica_sets_for_rolling_update([*old_rss, new_rs], old_rss, d)
        return cleaned + scaled > 0

    async def _cleanup_unhealthy_replicas(self, old_rss: list[Obj], d: Obj,
                                          max_cleanup: int) -> tuple[list[Obj], int]:
        old_rss = sorted(old_rss, key=du.by_creation)
        total = 0
        for i, rs in enumerate(old_rss):
            if total >= max_cleanup:
                break
            n = replicas(rs)
            avail = du.available_of(rs)
            if n == 0 or n == avail:
                continue
            count = min(max_cleanup - total, n - avail)
            _, old_rss[i] = await self._scale_and_record(rs, n - count, d)
            total += count
        return old_rss, total

    async def _scale_down_old_replica_sets_for_rolling_update(self, all_rss: list[Obj | None], old_rss: list[Obj],
                                                              d: Obj) -> int:
        min_available = replicas(d) - du.max_unavailable(d)
        available = sum(du.available_of(rs) for rs in all_rss if rs is not None)
        if available <= min_available:
            return 0
        total_down = available - min_available
        done = 0
        for rs in sorted(old_rss, key=du.by_creation):
            if done >= total_down:
                break
            if replicas(rs) == 0:
                continue
            count = min(replicas(rs), total_down - done)
            await self._scale_and_record(rs, replicas(rs) - count, d)
            done += count
        return done

    async def _rollout_recreate(self, d: Obj, rs_list: list[Obj], pod_map: dict[str, list[Obj]]) -> Result | None:
        # Not creating the new RS yet: nothing new may run before the old pods are gone.
        new_rs, old_rss = await self._get_all_replica_sets(d, rs_list, create=False)
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        scaled = False
        for i, rs in enumerate(old_rss):
            if replicas(rs) == 0:
                continue
            did, old_rss[i] = await self._scale_and_record(rs, 0, d)
            scaled = scaled or did
        if scaled:
            return await self._sync_rollout_status(all_rss, new_rs, d)
        if _old_pods_running(new_rs, old_rss, pod_map):
            return await self._sync_rollout_status(all_rss, new_rs, d)
        if new_rs is None:
            new_rs, old_rss = await self._get_all_replica_sets(d, rs_list, create=True)
            assert new_rs is not None
            all_rss = [*old_rss, new_rs]
        await self._scale_and_record(new_rs, replicas(d), d)
        if du.deployment_complete(d, status(d)):
            await self._cleanup(old_rss, d)
        return await self._sync_rollout_status(all_rss, new_rs, d)


def _old_pods_running(new_rs: Obj | None, old_rss: list[Obj], pod_map: dict[str, list[Obj]]) -> bool:
    """Do old RSs report pods, or does any pod not of the new RS still exist and not have ended?"""
    if du.actual_replicas(old_rss) > 0:
        return True
    new_uid = uid(new_rs) if new_rs is not None else None
    for rs_uid, pods in pod_map.items():
        if rs_uid == new_uid:
            continue
        for pod in pods:
            if status(pod).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False


def _replace(rs_list: list[Obj], rs: Obj) -> None:
    """Put a freshly written RS in place of its cached copy (later steps of this reconcile use it)."""
    for i, cur in enumerate(rs_list):
        if uid(cur) == uid(rs):
            rs_list[i] = rs
            return
    rs_list.append(rs)


def _set_min_ready(rs: Obj, seconds: int) -> None:
    # 0 is left out, as kube's omitempty does
    if seconds:
        rs["spec"]["minReadySeconds"] = seconds
    else:
        rs["spec"].pop("minReadySeconds", None)
