"""The DaemonSet controller (kube's ``pkg/controller/daemon``): one pod of the DaemonSet on every
node that should run it.

A node should run the daemon pod when the pod's ``nodeSelector`` and required node affinity
match it and every ``NoSchedule``/``NoExecute`` taint on it is tolerated; a pod already there may
stay while it tolerates the node's ``NoExecute`` taints. Daemon pods get the tolerations kube
adds (:func:`add_daemon_tolerations`), so node problems and cordoning do not evict them.

Binding: as in kube >= 1.12, a daemon pod names its node through required node affinity
(``matchFields metadata.name In [<node>]``) and the scheduler binds it. With the controller
option ``daemonset_set_node_name`` (for clusters run without a scheduler) the controller also
sets ``spec.nodeName`` itself, which is what kube did before 1.12.

Nodes that leave: kube leaves daemon pods bound to a deleted Node to PodGC (after a 40 s
quarantine). This controller deletes its own pods from nodes that no longer exist at once, so a
DaemonSet follows nodes leaving whether or not PodGC runs.

Updates: RollingUpdate replaces old pods node by node within ``maxUnavailable`` or, with
``maxSurge``, starts the new pod beside the old one and removes the old one once the new one is
available; OnDelete only uses the new template for pods created after old ones are deleted.
Each template is a ControllerRevision (see :mod:`k8py.controllers.history`), so
``kubectl rollout history/undo daemonset`` work; pods carry ``controller-revision-hash``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from k8py.api.corev1 import find_untolerated_taint, pod_matches_node_selector_and_affinity
from k8py.api.selectors import LabelSelector, SelectorError, from_label_selector
from k8py.client.api import object_key
from k8py.client.controller import Controller, Result
from k8py.client.errors import AlreadyExistsError, ConflictError, NotFoundError
from k8py.client.store import OWNER_UID_INDEX
from k8py.controllers.base import ControllerContext
from k8py.controllers.deploymentutil import compute_hash, scaled_value
from k8py.controllers.history import (
    CONTROLLER_REVISION,
    HASH_LABEL,
    History,
    equal_data,
    max_revision,
    new_revision,
    revision_number,
    sort_revisions,
    template_patch,
)
from k8py.controllers.podcontrol import (
    BURST_REPLICAS,
    CONTROLLERLESS_INDEX,
    SLOW_START_INITIAL_BATCH_SIZE,
    ControllerExpectations,
    ControllerRefManager,
    PodControl,
    controller_ref,
    index_controllerless,
    is_pod_available,
    is_pod_ready,
    new_controller_ref,
    owners_selecting,
    pod_key,
    recheck_deletion_timestamp,
    resolve_controller_ref,
    seconds_until_available,
    slow_start_batch,
)

__all__ = [
    "DaemonSetController",
    "add_daemon_tolerations",
    "node_should_run",
    "target_node_name",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

DAEMONSET = ("apps/v1", "DaemonSet")
POD = ("v1", "Pod")
NODE = ("v1", "Node")

# apps.DeprecatedTemplateGeneration / extensions.DaemonSetTemplateGenerationKey
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
NODE_NAME_FIELD = "metadata.name"  # the one field node affinity's matchFields may name

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

# Events (kube's reasons)
SELECTING_ALL = "SelectingAll"
FAILED_DAEMON_POD = "FailedDaemonPod"
FAILED_PLACEMENT = "FailedPlacement"

# failed daemon pods are replaced no faster than this backoff (kube's failedPodsBackoff)
FAILED_POD_BACKOFF = (1.0, 900.0)


# -- scheduling predicates -------------------------------------------------------------------------


def _add_toleration(spec: Obj, tol: Obj) -> None:
    """``AddOrUpdateTolerationInPodSpec``: replace a toleration with the same key, operator, value
    and effect (whatever its tolerationSeconds), else append."""
    tols = spec.get("tolerations") or []
    out, updated = [], False
    for t in tols:
        same = all(t.get(k, "") == tol.get(k, "") for k in ("key", "value", "effect")) and \
            (t.get("operator") or "Equal") == tol["operator"]
        if same:
            out.append(dict(tol))
            updated = True
        else:
            out.append(t)
    if not updated:
        out.append(dict(tol))
    spec["tolerations"] = out


def add_daemon_tolerations(spec: Obj) -> None:
    """The tolerations kube gives every daemon pod (``AddOrUpdateDaemonPodTolerations``):
    not-ready and unreachable ``NoExecute`` without ``tolerationSeconds`` (node problems never
    evict daemon pods), disk/memory/pid pressure and unschedulable ``NoSchedule``, and
    network-unavailable ``NoSchedule`` for host-network pods."""
    for key in (TAINT_NOT_READY, TAINT_UNREACHABLE):
        _add_toleration(spec, {"key": key, "operator": "Exists", "effect": "NoExecute"})
    keys = [TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_PID_PRESSURE, TAINT_UNSCHEDULABLE]
    if spec.get("hostNetwork"):
        keys.append(TAINT_NETWORK_UNAVAILABLE)
    for key in keys:
        _add_toleration(spec, {"key": key, "operator": "Exists", "effect": "NoSchedule"})


def daemon_pod_spec(ds: Obj) -> Obj:
    """The pod spec the predicates look at (kube's ``NewPod``): the template's, with the daemon
    tolerations."""
    spec = copy.deepcopy((((ds.get("spec") or {}).get("template") or {}).get("spec")) or {})
    add_daemon_tolerations(spec)
    return spec


def node_should_run(node: Obj, ds: Obj, spec: Obj | None = None) -> tuple[bool, bool]:
    """``NodeShouldRunDaemonPod``: (should a daemon pod be started here, may one that is
    here keep running). ``spec`` is :func:`daemon_pod_spec` of ``ds`` when already built."""
    if spec is None:
        spec = daemon_pod_spec(ds)
    name = (node.get("metadata") or {}).get("name")
    if spec.get("nodeName") and spec["nodeName"] != name:
        return False, False
    if not pod_matches_node_selector_and_affinity(spec, node):
        return False, False
    taints = (node.get("spec") or {}).get("taints") or []
    tols = spec.get("tolerations") or []
    if find_untolerated_taint(taints, tols, ("NoSchedule", "NoExecute")) is not None:
        # a daemon pod already here may stay as long as it tolerates the NoExecute taints
        return False, find_untolerated_taint(taints, tols, ("NoExecute",)) is None
    return True, True


def replace_node_affinity(spec: Obj, node_name: str) -> None:
    """``ReplaceDaemonSetPodNodeNameNodeAffinity``: the required node affinity becomes the one
    term ``metadata.name In [node_name]`` (the scheduler then binds the pod to that node)."""
    term = {"matchFields": [{"key": NODE_NAME_FIELD, "operator": "In", "values": [node_name]}]}
    aff = spec.get("affinity") or {}
    na = aff.get("nodeAffinity") or {}
    req = na.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    req["nodeSelectorTerms"] = [term]
    na["requiredDuringSchedulingIgnoredDuringExecution"] = req
    aff["nodeAffinity"] = na
    spec["affinity"] = aff


def target_node_name(pod: Obj) -> str | None:
    """``GetTargetNodeName``: ``spec.nodeName``, else the node named by the affinity the
    controller wrote; None when neither says."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution")) or {}
    for term in req.get("nodeSelectorTerms") or ():
        for r in term.get("matchFields") or ():
            if r.get("key") == NODE_NAME_FIELD and r.get("operator") == "In":
                vals = r.get("values") or []
                return str(vals[0]) if len(vals) == 1 else None
    return None


# -- small helpers ---------------------------------------------------------------------------------


def _md(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _template_generation(ds: Obj) -> str | None:
    return (_md(ds).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)


def is_pod_updated(pod: Obj, hash_: str, generation: str | None) -> bool:
    """``util.IsPodUpdated``: the pod carries the current revision's hash (or the deprecated
    template generation)."""
    labels = _md(pod).get("labels") or {}
    if generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == generation:
        return True
    return bool(hash_) and labels.get(HASH_LABEL) == hash_


def _rolling(ds: Obj) -> Obj | None:
    us = _spec(ds).get("updateStrategy") or {}
    if (us.get("type") or "RollingUpdate") != "RollingUpdate":
        return None
    return us.get("rollingUpdate") or {}


def surge_count(ds: Obj, n: int) -> int:
    ru = _rolling(ds)
    if ru is None:
        return 0
    return scaled_value(ru.get("maxSurge"), n, True) if ru.get("maxSurge") is not None else 0


def unavailable_count(ds: Obj, n: int) -> int:
    ru = _rolling(ds)
    if ru is None:
        return 0
    mu = ru.get("maxUnavailable")
    return scaled_value(mu if mu is not None else 1, n, True)


def allows_surge(ds: Obj) -> bool:
    return surge_count(ds, 1) != 0


def _created_key(pod: Obj) -> tuple[bool, str, str]:
    # kube's podByCreationTimestampAndPhase: scheduled first, then oldest, then by name
    md = _md(pod)
    return (not _spec(pod).get("nodeName"), str(md.get("creationTimestamp") or ""), str(md.get("name") or ""))


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


@dataclass(slots=True)
class _Backoff:
    delay: float
    updated: float


class _FailedPodBackoff:
    """flowcontrol.Backoff for replacing failed daemon pods: per (DaemonSet, node), doubling."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial, self.maximum = initial, maximum
        self._e: dict[str, _Backoff] = {}

    def in_backoff(self, key: str, now: float) -> float:
        """Seconds of backoff left (0 when a retry may happen now)."""
        e = self._e.get(key)
        if e is None:
            return 0.0
        return max(0.0, e.updated + e.delay - now)

    def next(self, key: str, now: float) -> None:
        e = self._e.get(key)
        if e is None or now - e.updated > 2 * self.maximum:
            self._e[key] = _Backoff(self.initial, now)
        else:
            e.delay = min(e.delay * 2, self.maximum)
            e.updated = now

    def gc(self, now: float) -> None:
        for k in [k for k, e in self._e.items() if now - e.updated > 2 * self.maximum]:
            del self._e[k]


# -- the controller --------------------------------------------------------------------------------


class DaemonSetController:
    NAME = "daemonset"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        f = ctx.factory
        self.ds_inf = f.informer(DAEMONSET)
        self.pod_inf = f.informer(POD)
        self.node_inf = f.informer(NODE)
        self.rev_inf = f.informer(CONTROLLER_REVISION)
        index_controllerless(self.pod_inf)
        self.history = History(self.client, self.rev_inf)
        self.expectations = ControllerExpectations(self.clock)
        self.pods = PodControl(self.client, ctx.record)
        self.backoff = _FailedPodBackoff(*FAILED_POD_BACKOFF)
        self.set_node_name = ctx.options.daemonset_set_node_name
        self.controller = Controller(self.NAME, self.reconcile, workers=ctx.options.workers or 2,
                                     clock=self.clock)
        self.controller.watch(self.ds_inf)
        self.pod_inf.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.node_inf.add_handler(self._node_added, self._node_updated, self._node_deleted)
        self.controller.watch(self.rev_inf, self._revision_keys)

    # -- event handlers (they only map events to keys) -------------------------------------------

    def _ds_of_ref(self, namespace: str, ref: Obj | None) -> Obj | None:
        return resolve_controller_ref(self.ds_inf, namespace, ref, "DaemonSet")

    def _selecting(self, obj: Obj) -> list[Obj]:
        """DaemonSets in the object's namespace whose selector matches its labels (for orphans)."""
        return owners_selecting(self.ds_inf, obj)

    def _revision_keys(self, cr: Obj) -> list[str]:
        ns = str(_md(cr).get("namespace") or "")
        ds = self._ds_of_ref(ns, controller_ref(cr))
        if ds is not None:
            return [object_key(ds)]
        if controller_ref(cr) is None:
            return [object_key(d) for d in self._selecting(cr)]
        return []

    def _pod_added(self, pod: Obj) -> None:
        if _md(pod).get("deletionTimestamp"):
            # a pod already being deleted when first seen (a restart) is no creation to count
            self._pod_deleted(pod)
            return
        ref = controller_ref(pod)
        if ref is not None:
            ds = self._ds_of_ref(str(_md(pod).get("namespace") or ""), ref)
            if ds is not None:
                key = object_key(ds)
                self.expectations.creation_observed(key)
                self.controller.enqueue_key(key)
            return
        for ds in self._selecting(pod):
            self.controller.enqueue(ds)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if _md(old).get("resourceVersion") == _md(new).get("resourceVersion"):
            return
        ns = str(_md(new).get("namespace") or "")
        if _md(new).get("deletionTimestamp"):
            # why: a graceful delete shows up as this update first; count the delete now, so the
            # controller can create the replacement without waiting out the grace period
            self._pod_deleted(new)
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref is not None and (new_ref is None or old_ref.get("uid") != new_ref.get("uid")):
            ds = self._ds_of_ref(ns, old_ref)
            if ds is not None:
                self.controller.enqueue(ds)
        if new_ref is not None:
            ds = self._ds_of_ref(ns, new_ref)
            if ds is not None:
                self.controller.enqueue(ds)
                mrs = int(_spec(ds).get("minReadySeconds") or 0)
                if mrs > 0 and not is_pod_ready(old) and is_pod_ready(new):
                    self.controller.enqueue_after(object_key(ds), mrs + 1)
            return
        if (_md(old).get("labels") != _md(new).get("labels")) or old_ref is not None:
            for ds in self._selecting(new):
                self.controller.enqueue(ds)

    def _pod_deleted(self, pod: Obj) -> None:
        ds = self._ds_of_ref(str(_md(pod).get("namespace") or ""), controller_ref(pod))
        if ds is None:
            return
        key = object_key(ds)
        self.expectations.deletion_observed(key, pod_key(pod))
        self.controller.enqueue_key(key)

    def _node_added(self, node: Obj) -> None:
        for ds in self.ds_inf.list():
            if node_should_run(node, ds)[0]:
                self.controller.enqueue(ds)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if _md(old).get("resourceVersion") == _md(new).get("resourceVersion"):
            return
        # why: heartbeats change only status; only labels and spec (taints) change placement
        if _md(old).get("labels") == _md(new).get("labels") and old.get("spec") == new.get("spec"):
            return
        for ds in self.ds_inf.list():
            if node_should_run(old, ds) != node_should_run(new, ds):
                self.controller.enqueue(ds)

    def _node_deleted(self, node: Obj) -> None:
        name = _md(node).get("name")
        for ds in self.ds_inf.list():
            if any(target_node_name(p) == name for p in self.pod_inf.store.by_index(OWNER_UID_INDEX,
                                                                                    str(_md(ds).get("uid")))):
                self.controller.enqueue(ds)

    # -- reconcile --------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        ns, _, name = key.partition("/")
        ds = self.ds_inf.get(name, ns)
        if ds is None:
            self.expectations.delete(key)
            return None
        sel = _spec(ds).get("selector")
        if not sel or (not sel.get("matchLabels") and not sel.get("matchExpressions")):
            self.ctx.record(ds, "Warning", SELECTING_ALL,
                            "This daemon set is selecting all pods. A non-empty selector is required.")
            return None
        try:
            selector = from_label_selector(sel)
        except SelectorError as e:
            self.ctx.record(ds, "Warning", SELECTING_ALL, f"invalid selector: {e}")
            return None
        if _md(ds).get("deletionTimestamp"):
            # the garbage collector may be removing revisions and pods in any order: status
            # computed now would be wrong, so leave it (as kube does)
            return None
        nodes = self.node_inf.list()
        cur, old = await self._construct_history(ds, selector)
        hash_ = str((_md(cur).get("labels") or {}).get(HASH_LABEL) or "")
        all_pods = await self._claim_pods(ds, selector)
        by_node = self._by_node(all_pods)
        if not self.expectations.satisfied(key):
            # only status; observedGeneration stays, since this generation was not acted on
            return await self._update_status(ds, nodes, hash_, by_node, False)
        failed = await self._manage(ds, nodes, hash_, by_node)
        if self.expectations.satisfied(key) and _rolling(ds) is not None:
            await self._rolling_update(ds, nodes, hash_, self._by_node(await self._claim_pods(ds, selector)))
        await self._cleanup_history(ds, old, all_pods)
        res = await self._update_status(ds, nodes, hash_, by_node, True)
        self.backoff.gc(self.clock.now())
        if failed:
            # why: an error (not a requeue) so the runner's rate limiter stops a kill/recreate hot loop
            raise RuntimeError(f"deleted {failed} failed pods of DaemonSet {key}")
        return res

    async def _claim_pods(self, ds: Obj, selector: LabelSelector) -> list[Obj]:
        """The DaemonSet's pods: owned ones that still match, and matching orphans adopted now."""
        md = _md(ds)
        ns, uid = str(md.get("namespace") or ""), str(md.get("uid") or "")
        store = self.pod_inf.store
        cands: dict[str, Obj] = {}
        for p in [*store.by_index(OWNER_UID_INDEX, uid), *store.by_index(CONTROLLERLESS_INDEX, ns)]:
            if _md(p).get("namespace") == ns:
                cands[str(_md(p).get("uid") or _md(p).get("name"))] = p
        can_adopt = self._can_adopt(ds)
        mgr = ControllerRefManager(ds, selector, "apps/v1", "DaemonSet", patch=self.pods.patch_pod,
                                   can_adopt=can_adopt)
        claimed, errors = await mgr.claim(cands.values())
        if errors:
            raise errors[0]
        return claimed

    def _can_adopt(self, ds: Obj) -> Callable[[], Awaitable[None]]:
        md = _md(ds)
        name, ns = str(md.get("name")), md.get("namespace")
        uid = str(md.get("uid") or "")
        return recheck_deletion_timestamp(lambda: self.client.get(DAEMONSET, name, ns), uid)

    @staticmethod
    def _by_node(pods: Iterable[Obj], include_deleted_terminal: bool = False) -> dict[str, list[Obj]]:
        """``getNodesToDaemonPods``: pods by the node they are (or are meant to be) on; finished
        pods already being deleted are left out unless asked for."""
        out: dict[str, list[Obj]] = {}
        for p in pods:
            if not include_deleted_terminal and _phase(p) in ("Succeeded", "Failed") and \
                    _md(p).get("deletionTimestamp"):
                continue
            node = target_node_name(p)
            if node is None:
                log.debug("daemon pod %s names no node", pod_key(p))
                continue
            out.setdefault(node, []).append(p)
        return out

    # -- creating and deleting pods ---------------------------------------------------------------

    def _pods_should_be_on_node(self, node: Obj, by_node: dict[str, list[Obj]], ds: Obj, hash_: str,
                                spec: Obj) -> tuple[list[str], list[Obj], int]:
        """``podsShouldBeOnNode``: (nodes needing a pod, pods to delete, failed pods seen)."""
        name = str(_md(node).get("name"))
        should_run, should_continue = node_should_run(node, ds, spec)
        pods = by_node.get(name)
        needing: list[str] = []
        delete: list[Obj] = []
        failed = 0
        if should_run and not pods:
            needing.append(name)
        elif should_continue:
            running: list[Obj] = []
            for p in pods or ():
                if _md(p).get("deletionTimestamp"):
                    continue
                if _phase(p) == "Failed":
                    failed += 1
                    # kubelets that reject a pod make it Failed at once: back off so the
                    # controller and the kubelet do not fight in a hot loop
                    bkey = f"{_md(ds).get('uid')}/{name}"
                    now = self.clock.now()
                    left = self.backoff.in_backoff(bkey, now)
                    if left > 0:
                        self.controller.enqueue_after(object_key(ds), left)
                        continue
                    self.backoff.next(bkey, now)
                    msg = f"Found failed daemon pod {pod_key(p)} on node {name}, will try to kill it"
                    log.info("%s", msg)
                    self.ctx.record(ds, "Warning", FAILED_DAEMON_POD, msg)
                    delete.append(p)
                else:
                    running.append(p)
            running.sort(key=_created_key)
            if not allows_surge(ds):
                # more than one: keep the oldest
                delete.extend(running[1:])
            elif len(running) <= 1:
                if not running and should_run:
                    needing.append(name)
            else:
                # surging: keep at most the oldest old pod (while the new one is not yet
                # available) and the oldest new pod
                oldest_new = oldest_old = None
                for p in running:
                    if (_md(p).get("labels") or {}).get(HASH_LABEL) == hash_:
                        if oldest_new is None:
                            oldest_new = p
                            continue
                    elif oldest_old is None:
                        oldest_old = p
                        continue
                    delete.append(p)
                if oldest_new is not None and oldest_old is not None:
                    mrs = int(_spec(ds).get("minReadySeconds") or 0)
                    if not is_pod_ready(oldest_old) or is_pod_available(oldest_new, mrs, self.clock.wall()):
                        delete.append(oldest_old)
        elif pods:
            delete.extend(p for p in pods if not _md(p).get("deletionTimestamp"))
        return needing, delete, failed

    async def _manage(self, ds: Obj, nodes: list[Obj], hash_: str, by_node: dict[str, list[Obj]]) -> int:
        """Start daemon pods where missing, remove them where they should not be. Returns the
        number of failed pods seen (deleted, or waiting out their backoff)."""
        spec = daemon_pod_spec(ds)
        needing: list[str] = []
        delete: list[Obj] = []
        failed = 0
        names = set()
        for node in nodes:
            names.add(_md(node).get("name"))
            n, d, f = self._pods_should_be_on_node(node, by_node, ds, hash_, spec)
            needing += n
            delete += d
            failed += f
        # pods meant for nodes that are gone (kube: only unscheduled ones; bound ones are PodGC's)
        for node_name, pods in by_node.items():
            if node_name not in names:
                delete.extend(p for p in pods if not _md(p).get("deletionTimestamp"))
        await self._sync_nodes(ds, delete, needing, hash_)
        return failed

    def _pod_template(self, ds: Obj, hash_: str) -> Obj:
        """``CreatePodTemplate``: the template with the daemon tolerations and the hash label."""
        t = copy.deepcopy(_spec(ds).get("template") or {})
        add_daemon_tolerations(t.setdefault("spec", {}))
        labels = t.setdefault("metadata", {}).setdefault("labels", {})
        gen = _template_generation(ds)
        if gen is not None:
            labels[TEMPLATE_GENERATION_LABEL] = gen
        if hash_:
            labels[HASH_LABEL] = hash_
        return t

    async def _sync_nodes(self, ds: Obj, delete: list[Obj], needing: list[str], hash_: str) -> None:
        """``syncNodes``: delete ``delete`` and create a pod for each node in ``needing``, with
        expectations set first so that no sync acts again before the cache shows these writes."""
        key = object_key(ds)
        ns = str(_md(ds).get("namespace") or "")
        creates = min(len(needing), BURST_REPLICAS)
        delete = delete[:BURST_REPLICAS]
        if not creates and not delete:
            return
        self.expectations.expect_deletions(key, [pod_key(p) for p in delete])
        self.expectations.raise_expectations(key, add=creates)
        template = self._pod_template(ds, hash_)
        ref = new_controller_ref(ds, "apps/v1", "DaemonSet")
        targets = iter(needing[:creates])
        attempted = 0
        errors: list[Exception] = []

        async def create_one() -> None:
            nonlocal attempted
            attempted += 1
            node = next(targets)
            t = copy.deepcopy(template)
            replace_node_affinity(t["spec"], node)
            if self.set_node_name:
                t["spec"]["nodeName"] = node
            try:
                await self.pods.create_pod(ns, t, ds, controller_ref=ref)
            except Exception:
                self.expectations.creation_observed(key)  # it will never be seen
                raise

        if creates:
            log.debug("%s: creating daemon pods on %s", key, needing[:creates])
            _, err = await slow_start_batch(creates, SLOW_START_INITIAL_BATCH_SIZE, create_one)
            if err is not None:
                errors.append(err)
                skipped = creates - attempted
                if skipped:
                    # the next sync retries these; do not wait for them
                    self.expectations.lower(key, add=skipped)

        async def delete_one(p: Obj) -> None:
            try:
                await self.pods.delete_pod(ns, str(_md(p).get("name")), ds)
            except NotFoundError:
                self.expectations.deletion_observed(key, pod_key(p))
            except Exception as e:  # noqa: BLE001 -- collected, the sync is retried
                self.expectations.deletion_observed(key, pod_key(p))
                errors.append(e)

        if delete:
            await asyncio.gather(*(delete_one(p) for p in delete))
        if errors:
            raise errors[0]

    # -- rolling update ---------------------------------------------------------------------------

    def _updated_desired_counts(self, ds: Obj, nodes: list[Obj],
                                by_node: dict[str, list[Obj]]) -> tuple[int, int, int]:
        """(maxSurge, maxUnavailable, desired); nodes that should run a pod get an entry in
        ``by_node`` even when empty."""
        spec = daemon_pod_spec(ds)
        desired = 0
        for node in nodes:
            if not node_should_run(node, ds, spec)[0]:
                continue
            desired += 1
            by_node.setdefault(str(_md(node).get("name")), [])
        max_unavailable = unavailable_count(ds, desired)
        max_surge = surge_count(ds, desired)
        if desired > 0 and max_unavailable == 0 and max_surge == 0:
            max_unavailable = 1  # an impossible configuration: accept unavailability, as kube does
        return max_surge, max_unavailable, desired

    @staticmethod
    def _new_and_old(pods: list[Obj], hash_: str,
                     generation: str | None) -> tuple[Obj | None, Obj | None, bool]:
        """``findUpdatedPodsOnNode``: the node's live new and old pod; False when it has more
        than one of either (the manage loop prunes those first)."""
        new = old = None
        for p in pods:
            if _md(p).get("deletionTimestamp"):
                continue
            if is_pod_updated(p, hash_, generation):
                if new is not None:
                    return None, None, False
                new = p
            else:
                if old is not None:
                    return None, None, False
                old = p
        return new, old, True

    async def _rolling_update(self, ds: Obj, nodes: list[Obj], hash_: str,
                              by_node: dict[str, list[Obj]]) -> None:
        max_surge, max_unavailable, desired = self._updated_desired_counts(ds, nodes, by_node)
        now = self.clock.wall()
        mrs = int(_spec(ds).get("minReadySeconds") or 0)
        gen = _template_generation(ds)
        # node order: by name, so a rollout goes through nodes in a stable, predictable order
        items = sorted(by_node.items())
        if max_surge == 0:
            # delete just enough old pods to stay within maxUnavailable; manage() makes new ones
            unavailable = 0
            replace: list[Obj] = []
            candidates: list[Obj] = []
            for node_name, pods in items:
                new, old, ok = self._new_and_old(pods, hash_, gen)
                if not ok:
                    unavailable += 1
                    continue
                if (new is None) == (old is None):
                    unavailable += 1  # nothing here yet, or both: the manage loop acts first
                elif new is not None:
                    if not is_pod_available(new, mrs, now):
                        unavailable += 1
                elif old is not None and not is_pod_available(old, mrs, now):
                    replace.append(old)  # old and unavailable anyway: replace it at once
                    unavailable += 1
                elif old is not None and unavailable < max_unavailable:
                    candidates.append(old)
            room = max(0, min(max_unavailable - unavailable, len(candidates)))
            await self._sync_nodes(ds, replace + candidates[:room], [], hash_)
            return
        # surging: start new pods beside old ones, up to maxSurge at a time; delete an old pod
        # once the new one on its node is available
        node_by_name = {str(_md(n).get("name")): n for n in nodes}
        spec = daemon_pod_spec(ds)
        delete: list[Obj] = []
        should_not_run: list[Obj] = []
        candidate_nodes: list[str] = []
        allowed_nodes: list[str] = []
        surging = available = 0
        for node_name, pods in items:
            new, old, ok = self._new_and_old(pods, hash_, gen)
            if not ok:
                surging += 1
                continue
            if old is not None:
                available += is_pod_available(old, mrs, now)
            elif new is not None:
                available += is_pod_available(new, mrs, now)
            if old is None:
                continue
            node = node_by_name.get(node_name)
            runs = node is not None and node_should_run(node, ds, spec)[0]
            if new is None:
                if not is_pod_available(old, mrs, now):
                    if not runs:
                        delete.append(old)
                    else:
                        allowed_nodes.append(node_name)
                    continue
                if not runs:
                    should_not_run.append(old)
                    continue
                if surging >= max_surge:
                    continue
                candidate_nodes.append(node_name)
            else:
                if not is_pod_available(new, mrs, now):
                    surging += 1
                    continue
                delete.append(old)
        # keep availability: old pods on nodes that no longer qualify go only as others come up
        deletable = available - desired
        if deletable > 0:
            delete.extend(should_not_run[:deletable])
        room = max(0, min(max_surge - surging, len(candidate_nodes)))
        await self._sync_nodes(ds, delete, allowed_nodes + candidate_nodes[:room], hash_)

    # -- history ----------------------------------------------------------------------------------

    async def _construct_history(self, ds: Obj, selector: LabelSelector) -> tuple[Obj, list[Obj]]:
        """``constructHistory``: the revision of the current template (created, or renumbered
        to be the newest after a rollback to it) and the older ones."""
        ns = str(_md(ds).get("namespace") or "")
        revisions = await self.history.controlled(ds, selector, self._can_adopt(ds))
        want = template_patch(ds)
        current: list[Obj] = []
        old: list[Obj] = []
        for r in revisions:
            labels = _md(r).get("labels") or {}
            if HASH_LABEL not in labels:
                # older revisions without the label get their name as the hash, as kube does
                label = {"metadata": {"labels": {HASH_LABEL: _md(r)["name"]}}}
                r = await self.client.patch(CONTROLLER_REVISION, _md(r)["name"], label, ns, type="merge")
            (current if equal_data(r.get("data"), want) else old).append(r)
        number = max_revision(old) + 1
        if not current:
            cur = await self._snapshot(ds, number)
        else:
            cur = await self._dedup(ds, current)
            if revision_number(cur) < number:
                cur = await self.history.update_revision(cur, number)
        return cur, old

    async def _snapshot(self, ds: Obj, revision: int) -> Obj:
        md = _md(ds)
        ns = str(md.get("namespace") or "")
        collision = (ds.get("status") or {}).get("collisionCount")
        h = compute_hash(_spec(ds).get("template") or {}, collision)
        cr = new_revision(ds, template_patch(ds), revision, hash_=h)
        cr["metadata"]["ownerReferences"] = [new_controller_ref(ds, "apps/v1", "DaemonSet")]
        try:
            return await self.client.create(CONTROLLER_REVISION, cr, ns)
        except AlreadyExistsError:
            pass
        existing = await self.client.get(CONTROLLER_REVISION, cr["metadata"]["name"], ns)
        ref = controller_ref(existing)
        ours = ref is not None and ref.get("uid") == md.get("uid")
        if ours and equal_data(existing.get("data"), cr["data"]):
            return existing
        # a different template hashed to the same name: count the collision, try again later
        fresh = await self.client.get(DAEMONSET, str(md.get("name")), ns)
        st = fresh.setdefault("status", {})
        st["collisionCount"] = int(st.get("collisionCount") or 0) + 1
        await self.client.update_status(DAEMONSET, fresh, ns)
        raise RuntimeError(f"found a hash collision for DaemonSet {ns}/{md.get('name')}: bumping "
                           f"collisionCount to {st['collisionCount']}")

    async def _dedup(self, ds: Obj, current: list[Obj]) -> Obj:
        """Several revisions hold the current template: keep the newest, move pods to its hash."""
        if len(current) == 1:
            return current[0]
        keep = sort_revisions(current)[-1]
        keep_hash = (_md(keep).get("labels") or {}).get(HASH_LABEL)
        for r in current:
            if r is keep:
                continue
            for p in self.pod_inf.store.by_index(OWNER_UID_INDEX, str(_md(ds).get("uid"))):
                if (_md(p).get("labels") or {}).get(HASH_LABEL) != keep_hash:
                    await self.pods.patch_pod(p, {"metadata": {"labels": {HASH_LABEL: keep_hash}}})
            await self.history.delete(r)
        return keep

    async def _cleanup_history(self, ds: Obj, old: list[Obj], pods: list[Obj]) -> None:
        """Delete the oldest revisions beyond ``revisionHistoryLimit`` that no pod still runs."""
        limit = _spec(ds).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        to_kill = len(old) - limit
        if to_kill <= 0:
            return
        live = {(_md(p).get("labels") or {}).get(HASH_LABEL) for p in pods}
        for r in sort_revisions(old):
            if to_kill <= 0:
                break
            if (_md(r).get("labels") or {}).get(HASH_LABEL) in live:
                continue
            await self.history.delete(r)
            to_kill -= 1

    # -- status -----------------------------------------------------------------------------------

    async def _update_status(self, ds: Obj, nodes: list[Obj], hash_: str, by_node: dict[str, list[Obj]],
                             observed: bool) -> Result | None:
        spec = daemon_pod_spec(ds)
        now = self.clock.wall()
        mrs = int(_spec(ds).get("minReadySeconds") or 0)
        gen = _template_generation(ds)
        desired = current = misscheduled = ready = updated = available = 0
        wait: float | None = None
        for node in nodes:
            should_run, _ = node_should_run(node, ds, spec)
            pods = by_node.get(str(_md(node).get("name"))) or []
            if not should_run:
                if pods:
                    misscheduled += 1
                continue
            desired += 1
            if not pods:
                continue
            current += 1
            pod = min(pods, key=_created_key)  # the oldest counts for the node
            if is_pod_ready(pod):
                ready += 1
                if is_pod_available(pod, mrs, now):
                    available += 1
                else:
                    left = seconds_until_available(pod, mrs, now)
                    if left is not None:
                        wait = left if wait is None else min(wait, left)
            if is_pod_updated(pod, hash_, gen):
                updated += 1
        counts = {"desiredNumberScheduled": desired, "currentNumberScheduled": current,
                  "numberMisscheduled": misscheduled, "numberReady": ready, "updatedNumberScheduled": updated,
                  "numberAvailable": available, "numberUnavailable": desired - available}
        await self._store_status(ds, counts, observed)
        if mrs > 0 and ready != available:
            # look again when the next ready pod has been ready for minReadySeconds
            return Result(requeue_after=wait if wait is not None else float(mrs))
        return None

    async def _store_status(self, ds: Obj, counts: dict[str, int], observed: bool) -> None:
        st = ds.get("status") or {}
        gen = int(_md(ds).get("generation") or 0)
        if all(int(st.get(k) or 0) == v for k, v in counts.items()) and \
                (not observed or int(st.get("observedGeneration") or 0) >= gen):
            return  # nothing new to say (and never a write that says nothing: it would wake us again)
        new = copy.deepcopy(ds)
        nst = new.setdefault("status", {})
        nst.update(counts)
        if observed:
            nst["observedGeneration"] = gen
        md = _md(ds)
        try:
            await self.client.update_status(DAEMONSET, new, md.get("namespace"))
        except ConflictError:
            # the cached copy is stale; retry on the fresh object once, else let the runner retry
            fresh = await self.client.get(DAEMONSET, str(md.get("name")), md.get("namespace"))
            fst = fresh.setdefault("status", {})
            fst.update(counts)
            if observed:
                fst["observedGeneration"] = gen
            await self.client.update_status(DAEMONSET, fresh, md.get("namespace"))
        except NotFoundError:
            pass
