"""Node lifecycle: node health from Leases, condition taints, and taint-based eviction, as
kube-controller-manager's ``node-lifecycle-controller`` and ``taint-eviction-controller`` do.

**Health.** Every ``node_monitor_period`` seconds (option, default 5) each node is checked: a node
is healthy while its Lease ``kube-node-lease/<node>`` keeps being renewed (or its Ready condition's
heartbeat keeps moving). When neither moved for ``node_monitor_grace_period`` seconds (option,
default 40; ``node_startup_grace_period``, default 60, for a node that never posted status), its
Ready, MemoryPressure, DiskPressure and PIDPressure conditions become ``Unknown`` (reason
``NodeStatusUnknown``, "Kubelet stopped posting node status.") and the pods on it are marked not
ready. Times are this controller's own observations, never the node's clock.

**Taints.** Conditions map to NoSchedule taints (Ready False/Unknown -> ``not-ready`` /
``unreachable``; memory, disk, PID pressure; network unavailable; ``spec.unschedulable``). A node
whose Ready is False or Unknown gets the ``not-ready`` / ``unreachable`` NoExecute taint, rate
limited per zone (``node_eviction_rate`` nodes per second, default 0.1; when more than
``unhealthy_zone_threshold`` (0.55) of a zone's nodes are unhealthy, ``secondary_node_eviction_rate``
(0.01) in zones larger than ``large_cluster_size_threshold`` (50) and none in smaller ones). When
every node of every zone is unhealthy, the control plane is the likelier culprit: all NoExecute
taints are removed and none added until some node is healthy again (kube's "master disruption
mode"). A node healthy again loses its NoExecute taints.

**Eviction.** A pod on a node with NoExecute taints it does not tolerate is deleted at once; one
that tolerates them all is deleted after the smallest ``tolerationSeconds`` of the tolerations used
(counted from when this controller first saw it so), never if none sets it. Its controller then
replaces it elsewhere.

k8py addition: a kubelet that only renews its Lease would leave the node ``Unknown`` forever
after an outage, so when the Lease is renewed again after we marked the node ``Unknown``, the
conditions it had before are restored (a real kubelet posts its own status within seconds anyway).
"""

from __future__ import annotations

import copy
import datetime as dt
import enum
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from k8py.api.corev1 import tolerates
from k8py.client.clock import Clock
from k8py.client.controller import RACES, Controller, Result
from k8py.client.errors import ApiError, ConflictError, NotFoundError
from k8py.controllers.base import ControllerContext, parse_time, rfc3339
from k8py.controllers.endpoints import is_pod_ready, meta

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NODE = ("v1", "Node")
POD = ("v1", "Pod")
LEASE = ("coordination.k8s.io/v1", "Lease")
LEASE_NAMESPACE = "kube-node-lease"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_ZONE_BETA = "failure-domain.beta.kubernetes.io/zone"
LABEL_REGION_BETA = "failure-domain.beta.kubernetes.io/region"
LABEL_EXCLUDE_DISRUPTION = "node.kubernetes.io/exclude-disruption"

# condition type -> status -> NoSchedule taint key (kube's nodeConditionToTaintKeyStatusMap)
CONDITION_TAINTS: dict[str, dict[str, str]] = {
    "Ready": {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE},
    "MemoryPressure": {"True": TAINT_MEMORY_PRESSURE},
    "DiskPressure": {"True": TAINT_DISK_PRESSURE},
    "NetworkUnavailable": {"True": TAINT_NETWORK_UNAVAILABLE},
    "PIDPressure": {"True": TAINT_PID_PRESSURE},
}
CONDITION_TAINT_KEYS = {k for m in CONDITION_TAINTS.values() for k in m.values()}
# conditions the kubelet owns; when it goes silent they become Unknown (not NetworkUnavailable)
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

MONITOR_KEY = "monitor"  # the periodic health pass; node and pod keys carry a prefix with ':'
NODE_PREFIX = "node:"
POD_PREFIX = "pod:"
POD_NODE_INDEX = "nodelifecycle:node"
UPDATE_RETRIES = 5


# -- pure helpers ---------------------------------------------------------------------------------

def get_condition(obj: Obj | None, type_: str) -> Obj | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return c  # type: ignore[no-any-return]
    return None


def ready_status(node: Obj | None) -> str | None:
    c = get_condition(node, "Ready")
    return str(c.get("status")) if c is not None else None


def zone_key(node: Obj) -> str:
    """kube's GetZoneKey: region and zone from the node's topology labels ("" when none)."""
    labels = meta(node).get("labels") or {}
    region = labels.get(LABEL_REGION) or labels.get(LABEL_REGION_BETA) or ""
    zone = labels.get(LABEL_ZONE) or labels.get(LABEL_ZONE_BETA) or ""
    return f"{region}:\x00:{zone}" if region or zone else ""


def matching_tolerations(taints: Iterable[Obj], tolerations: Iterable[Obj]) -> tuple[bool, list[Obj]]:
    """Whether every taint is tolerated, and the toleration used for each."""
    tols = list(tolerations)
    used = []
    for taint in taints:
        t = next((x for x in tols if tolerates(x, taint)), None)
        if t is None:
            return False, []
        used.append(t)
    return True, used


def min_toleration_seconds(used: Iterable[Obj]) -> float | None:
    """The smallest tolerationSeconds of ``used`` (negative counts as 0); None: tolerated forever."""
    secs = [max(float(t["tolerationSeconds"]), 0.0) for t in used if t.get("tolerationSeconds") is not None]
    return min(secs) if secs else None


class ZoneState(enum.StrEnum):
    INITIAL = "Initial"
    NORMAL = "Normal"
    FULL_DISRUPTION = "FullDisruption"
    PARTIAL_DISRUPTION = "PartialDisruption"


def compute_zone_state(ready_statuses: Iterable[str | None], unhealthy_threshold: float) -> tuple[int, ZoneState]:
    """kube's ComputeZoneState: (not-ready count, state) of a zone from its nodes' Ready statuses."""
    ready = not_ready = 0
    for s in ready_statuses:
        if s == "True":
            ready += 1
        else:
            not_ready += 1
    if ready == 0 and not_ready > 0:
        return not_ready, ZoneState.FULL_DISRUPTION
    if not_ready > 2 and not_ready / (not_ready + ready) >= unhealthy_threshold:
        return not_ready, ZoneState.PARTIAL_DISRUPTION
    return not_ready, ZoneState.NORMAL


def no_schedule_taints(node: Obj) -> list[Obj]:
    """The NoSchedule taints ``node``'s conditions and ``spec.unschedulable`` call for."""
    out = []
    for c in (node.get("status") or {}).get("conditions") or ():
        key = CONDITION_TAINTS.get(str(c.get("type")), {}).get(str(c.get("status")))
        if key:
            out.append({"key": key, "effect": "NoSchedule"})
    if (node.get("spec") or {}).get("unschedulable"):
        out.append({"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"})
    return out


def _same_taint(a: Obj, b: Obj) -> bool:
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect")


def has_taint(node: Obj, key: str, effect: str) -> bool:
    return any(t.get("key") == key and t.get("effect") == effect for t in (node.get("spec") or {}).get("taints") or ())


def newest(a: Obj | None, b: Obj | None) -> Obj | None:
    """The later of two versions of one object (k8py resourceVersions are store revisions)."""
    if a is None or b is None:
        return a if b is None else b
    try:
        return a if int(meta(a).get("resourceVersion") or 0) >= int(meta(b).get("resourceVersion") or 0) else b
    except ValueError:
        return a


def no_execute_taints(node: Obj | None) -> list[Obj]:
    return [t for t in ((node or {}).get("spec") or {}).get("taints") or () if t.get("effect") == "NoExecute"]


class TokenBucket:
    """``qps`` tokens a second, at most ``burst`` saved (client-go's token bucket); qps 0 never admits."""

    __slots__ = ("burst", "clock", "last", "qps", "tokens")

    def __init__(self, qps: float, clock: Clock, burst: int = 1) -> None:
        self.qps = qps
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.last: float | None = None

    def _refill(self) -> None:
        now = self.clock.now()
        if self.last is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.qps)
        self.last = now

    def try_accept(self) -> bool:
        if self.qps <= 0:
            return False
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def swap(self, qps: float) -> None:
        """Change the rate, as kube's SwapLimiter (a stopped bucket starts again full)."""
        if qps == self.qps:
            return
        self.qps = qps
        self.tokens = float(self.burst)  # a new limiter starts full, as kube's
        self.last = None

    def time_to_token(self) -> float | None:
        if self.qps <= 0:
            return None
        self._refill()
        return max((1.0 - self.tokens) / self.qps, 0.0)


@dataclass(slots=True)
class NodeHealth:
    probe: float  # clock.now() when the node last showed life (heartbeat or lease)
    ready_transition: float
    ready: Obj | None = None  # the Ready condition last seen
    lease_renew: dt.datetime | None = None
    before_unknown: dict[str, Obj] = field(default_factory=dict)  # conditions we turned Unknown


@dataclass(slots=True)
class ZoneTainter:
    """Nodes waiting for their NoExecute taint in one zone, first come first served, rate limited."""

    limiter: TokenBucket
    queue: OrderedDict[str, None] = field(default_factory=OrderedDict)


class NodeLifecycleController:
    NAME = "nodelifecycle"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        self.monitor_period = ctx.options.node_monitor_period
        self.grace = ctx.options.node_monitor_grace_period
        self.startup_grace = ctx.options.node_startup_grace_period
        self.eviction_rate = ctx.options.node_eviction_rate
        self.secondary_eviction_rate = ctx.options.secondary_node_eviction_rate
        self.unhealthy_threshold = ctx.options.unhealthy_zone_threshold
        self.large_cluster = ctx.options.large_cluster_size_threshold
        f = ctx.factory
        self.nodes = f.informer(NODE)
        self.leases = f.informer(LEASE, LEASE_NAMESPACE)
        self.pods = f.informer(POD)
        try:
            self.pods.add_indexer(POD_NODE_INDEX, lambda p: [n] if (n := (p.get("spec") or {}).get("nodeName")) else [])
        except ValueError:
            pass  # already there (another instance on this shared informer)
        self.controller = Controller("node-lifecycle-controller", self.reconcile,
                                     workers=ctx.options.workers or 2, clock=ctx.clock,
                                     wait_for=(self.nodes, self.leases, self.pods))
        self.nodes.add_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        self.pods.add_handler(self._on_pod, lambda _old, new: self._on_pod(new), self._on_pod_delete)
        self.health: dict[str, NodeHealth] = {}
        self.zone_states: dict[str, ZoneState] = {}
        self.tainters: dict[str, ZoneTainter] = {}
        self.retry_mark: set[str] = set()  # nodes whose pods could not all be marked not ready
        self.eviction_start: dict[str, float] = {}  # pod key -> when its countdown began
        self.controller.enqueue_key(MONITOR_KEY)

    # -- handlers (only enqueue) --------------------------------------------------------------------

    def _pod_keys_on(self, node_name: str) -> list[str]:
        return [POD_PREFIX + f"{meta(p).get('namespace')}/{meta(p).get('name')}"
                for p in self.pods.store.by_index(POD_NODE_INDEX, node_name)]

    def _on_node_add(self, node: Obj) -> None:
        self.controller.enqueue_key(NODE_PREFIX + str(meta(node).get("name")))
        if no_execute_taints(node) or ready_status(node) not in ("True", None):
            for k in self._pod_keys_on(str(meta(node).get("name"))):
                self.controller.enqueue_key(k)

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return
        name = str(meta(new).get("name"))
        self.controller.enqueue_key(NODE_PREFIX + name)
        if no_execute_taints(old) != no_execute_taints(new) or ready_status(old) != ready_status(new):
            for k in self._pod_keys_on(name):
                self.controller.enqueue_key(k)

    def _on_node_delete(self, node: Obj) -> None:
        # its health record goes in the next pass; its pods' countdowns end (pod GC takes them)
        for k in self._pod_keys_on(str(meta(node).get("name"))):
            self.controller.enqueue_key(k)

    def _on_pod(self, pod: Obj) -> None:
        key = f"{meta(pod).get('namespace')}/{meta(pod).get('name')}"
        node = self.nodes.get(str((pod.get("spec") or {}).get("nodeName") or ""))
        if key in self.eviction_start or (node is not None and (
                no_execute_taints(node) or ready_status(node) not in ("True", None))):
            self.controller.enqueue_key(POD_PREFIX + key)

    def _on_pod_delete(self, pod: Obj) -> None:
        key = f"{meta(pod).get('namespace')}/{meta(pod).get('name')}"
        if key in self.eviction_start:
            self.controller.enqueue_key(POD_PREFIX + key)  # sync_pod forgets its countdown

    # -- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        if key == MONITOR_KEY:
            try:
                await self.monitor()
            except RACES as e:  # a node or pod changed or went away mid-pass: the next pass sees it
                log.debug("node health pass: %s (next pass soon)", e)
            except Exception:  # the pass must keep coming back
                log.exception("node health pass failed")
            return Result(requeue_after=self._next_monitor())
        if key.startswith(NODE_PREFIX):
            await self.sync_no_schedule_taints(key[len(NODE_PREFIX):])
            return None
        if key.startswith(POD_PREFIX):
            return await self.sync_pod(key[len(POD_PREFIX):])
        return None

    def _next_monitor(self) -> float:
        wait = self.monitor_period
        for t in self.tainters.values():
            if t.queue:
                ttt = t.limiter.time_to_token()
                if ttt is not None:
                    wait = min(wait, ttt + 0.01)
        return max(wait, 0.01)

    def _now_str(self) -> str:
        return rfc3339(dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC))

    def _mono(self, t: dt.datetime | None) -> float:
        """A wall time as this clock's monotonic seconds."""
        now = self.clock.now()
        return now if t is None else now - (self.clock.wall() - t.timestamp())

    # -- the health pass ---------------------------------------------------------------------------

    async def monitor(self) -> None:
        zones: dict[str, list[str | None]] = {}
        nodes = self.nodes.list()
        written: dict[str, Obj] = {}  # nodes as our writes in this pass returned them
        names = {str(meta(n).get("name")) for n in nodes}
        for gone in [n for n in self.health if n not in names]:  # deleted nodes
            del self.health[gone]
            self.retry_mark.discard(gone)
            for t in self.tainters.values():
                t.queue.pop(gone, None)
        for cached in nodes:
            name = str(meta(cached).get("name"))
            node: Obj | None = cached
            observed: Obj = {}
            current: Obj | None = None
            for _ in range(UPDATE_RETRIES):
                assert node is not None
                try:
                    node, observed, current = await self._update_health(node)
                    break
                except ConflictError:
                    try:
                        node = await self.client.get(NODE, name)
                    except NotFoundError:
                        node = None
                        break
                except NotFoundError:
                    node = None
                    break
            else:
                log.warning("node %s: could not update its health after %d tries", name, UPDATE_RETRIES)
                continue
            if node is None:
                continue
            written[name] = node
            if LABEL_EXCLUDE_DISRUPTION not in (meta(node).get("labels") or {}):
                zones.setdefault(zone_key(node), []).append(current.get("status") if current else None)
            if current is None:
                continue
            await self._taint_decision(node, str(current.get("status")))
            if current.get("status") != "True" and observed.get("status") == "True":
                self.ctx.record(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
                await self._mark_node_pods_not_ready(name)
            elif name in self.retry_mark and observed.get("status") != "True":
                await self._mark_node_pods_not_ready(name)
            else:
                self.retry_mark.discard(name)
        await self._handle_disruption(zones, nodes)
        await self._no_execute_tainting_pass(written)

    async def _update_health(self, node: Obj) -> tuple[Obj, Obj, Obj | None]:
        """kube's tryUpdateNodeHealth: (node as now stored, Ready condition seen, Ready condition now)."""
        name = str(meta(node).get("name"))
        now = self.clock.now()
        h = self.health.get(name)
        ready = get_condition(node, "Ready")
        created = parse_time(meta(node).get("creationTimestamp"))
        if ready is None:
            # never posted: a fake Unknown condition from the node's creation, and the startup grace
            observed: Obj = {"type": "Ready", "status": "Unknown"}
            grace = self.startup_grace
            if h is None:
                h = NodeHealth(probe=self._mono(created), ready_transition=self._mono(created))
        else:
            observed = copy.deepcopy(ready)
            grace = self.grace
        saved = h.ready if h is not None else None
        if h is None or (saved is None and ready is not None) or (saved is not None and ready is None):
            h = NodeHealth(probe=now, ready_transition=now, lease_renew=h.lease_renew if h else None,
                           before_unknown=h.before_unknown if h else {})
        elif saved is not None and ready is not None and \
                saved.get("lastHeartbeatTime") != ready.get("lastHeartbeatTime"):
            # the kubelet posted status: that is a sign of life
            if saved.get("lastTransitionTime") != ready.get("lastTransitionTime"):
                h.ready_transition = now
            h.probe = now
        h.ready = copy.deepcopy(ready) if ready is not None else None
        self.health[name] = h
        lease = self.leases.get(name, LEASE_NAMESPACE)
        renew = parse_time(((lease or {}).get("spec") or {}).get("renewTime")) if lease else None
        if renew is not None and (h.lease_renew is None or renew > h.lease_renew):
            h.lease_renew = renew
            h.probe = now  # the lease was renewed: alive, whatever the node's status says

        if now > h.probe + grace:
            return await self._mark_unknown(node, h, observed)
        if ready is not None and ready.get("status") == "Unknown" and ready.get("reason") == "NodeStatusUnknown" \
                and renew is not None and renew > (parse_time(ready.get("lastTransitionTime")) or renew):
            return await self._restore(node, h, observed)
        return node, observed, ready

    async def _mark_unknown(self, node: Obj, h: NodeHealth, observed: Obj) -> tuple[Obj, Obj, Obj | None]:
        new = copy.deepcopy(node)
        conds = new.setdefault("status", {}).setdefault("conditions", [])
        now_s = self._now_str()
        before: dict[str, Obj] = {}
        for t in KUBELET_CONDITIONS:
            c = next((x for x in conds if x.get("type") == t), None)
            if c is None:
                conds.append({"type": t, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                              "message": "Kubelet never posted node status.",
                              "lastHeartbeatTime": meta(node).get("creationTimestamp"), "lastTransitionTime": now_s})
            elif c.get("status") != "Unknown":
                before[t] = copy.deepcopy(c)
                c.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                         lastTransitionTime=now_s)
        current = next((x for x in conds if x.get("type") == "Ready"), None)
        if current == observed:
            return node, observed, current
        name = meta(node).get("name")
        log.info("node %s: no heartbeat for over %.0fs; marking it Unknown", name, self.clock.now() - h.probe)
        updated = await self.client.update_status(NODE, new)
        h.before_unknown = before or h.before_unknown
        h.ready = copy.deepcopy(current)
        h.ready_transition = self.clock.now()
        return updated, observed, get_condition(updated, "Ready")

    async def _restore(self, node: Obj, h: NodeHealth, observed: Obj) -> tuple[Obj, Obj, Obj | None]:
        # k8py: the lease is renewed again after we marked the node Unknown; put back what the
        # kubelet last said (or Ready if we never knew), as a lease-only kubelet never would.
        new = copy.deepcopy(node)
        conds = new["status"]["conditions"]
        now_s = self._now_str()
        for c in conds:
            if c.get("type") not in KUBELET_CONDITIONS or c.get("reason") != "NodeStatusUnknown":
                continue
            prior = h.before_unknown.get(str(c["type"]))
            if prior is not None:
                c.update({k: v for k, v in prior.items() if k not in ("lastHeartbeatTime", "lastTransitionTime")})
            elif c["type"] == "Ready":
                c.update(status="True", reason="KubeletReady",
                         message="kubelet is posting ready status (node lease renewed)")
            else:
                continue
            c["lastHeartbeatTime"] = now_s
            c["lastTransitionTime"] = now_s
        log.info("node %s: lease renewed again; restoring its conditions", meta(node).get("name"))
        updated = await self.client.update_status(NODE, new)
        h.before_unknown = {}
        h.ready = copy.deepcopy(get_condition(updated, "Ready"))
        h.ready_transition = self.clock.now()
        return updated, observed, get_condition(updated, "Ready")

    # -- pods on a node that is not ready -------------------------------------------------------------

    async def _mark_node_pods_not_ready(self, node_name: str) -> None:
        ok = await self._mark_pods_not_ready(node_name, self.pods.store.by_index(POD_NODE_INDEX, node_name))
        if ok:
            self.retry_mark.discard(node_name)
        else:
            self.retry_mark.add(node_name)

    async def _mark_pods_not_ready(self, node_name: str, pods: Iterable[Obj]) -> bool:
        """kube's MarkPodsNotReady: Ready=False on each pod; False when some write failed."""
        ok = True
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName") != node_name:
                continue
            cond = get_condition(pod, "Ready")
            if cond is None or cond.get("status") == "False":
                continue
            new = copy.deepcopy(pod)
            c = get_condition(new, "Ready")
            assert c is not None
            c["status"] = "False"
            c["lastTransitionTime"] = self._now_str()
            try:
                await self.client.update_status(POD, new, meta(pod).get("namespace"))
            except NotFoundError:
                continue  # already gone
            except ConflictError:
                ok = False  # changed meanwhile; its event (or the next pass) brings it back
                continue
            except ApiError as e:
                log.info("could not mark pod %s/%s not ready: %s", meta(pod).get("namespace"), meta(pod).get("name"),
                         e.message)
                ok = False
                continue
            self.ctx.record(pod, "Warning", "NodeNotReady", "Node is not ready")
        return ok

    # -- taints -----------------------------------------------------------------------------------

    async def _swap_taints(self, name: str, add: list[Obj], remove: list[Obj]) -> bool:
        """Add ``add`` and remove ``remove`` (by key and effect) on node ``name``; False if it failed."""
        node = self.nodes.get(name)
        for _ in range(UPDATE_RETRIES):
            if node is None:
                return False
            taints = list((node.get("spec") or {}).get("taints") or ())
            kept = [t for t in taints if not any(_same_taint(t, r) for r in remove)]
            for a in add:
                if not any(_same_taint(t, a) for t in kept):
                    t = dict(a)
                    if t.get("effect") == "NoExecute":
                        t["timeAdded"] = self._now_str()
                    kept.append(t)
            if kept == taints:
                return True
            new = copy.deepcopy(node)
            spec = new.setdefault("spec", {})
            if kept:
                spec["taints"] = kept
            else:
                spec.pop("taints", None)
            try:
                await self.client.update(NODE, new)
                return True
            except ConflictError:
                try:
                    node = await self.client.get(NODE, name)
                except NotFoundError:
                    return False
            except NotFoundError:
                return False
        return False

    async def sync_no_schedule_taints(self, name: str) -> None:
        """kube's doNoScheduleTaintingPass for one node."""
        node = self.nodes.get(name)
        if node is None:
            return
        want = no_schedule_taints(node)
        have = [t for t in (node.get("spec") or {}).get("taints") or ()
                if t.get("effect") == "NoSchedule" and (t.get("key") == TAINT_UNSCHEDULABLE or
                                                         t.get("key") in CONDITION_TAINT_KEYS)]
        add = [t for t in want if not any(_same_taint(t, h) for h in have)]
        remove = [t for t in have if not any(_same_taint(t, w) for w in want)]
        if (add or remove) and not await self._swap_taints(name, add, remove):
            raise RuntimeError(f"failed to swap the NoSchedule taints of node {name}")

    def _tainter(self, zone: str) -> ZoneTainter:
        t = self.tainters.get(zone)
        if t is None:
            t = self.tainters[zone] = ZoneTainter(TokenBucket(self.eviction_rate, self.clock))
        return t

    async def _taint_decision(self, node: Obj, status: str) -> None:
        """kube's processTaintBaseEviction."""
        name = str(meta(node).get("name"))
        if status == "False":
            if has_taint(node, TAINT_UNREACHABLE, "NoExecute"):
                await self._swap_taints(name, [{"key": TAINT_NOT_READY, "effect": "NoExecute"}],
                                        [{"key": TAINT_UNREACHABLE, "effect": "NoExecute"}])
            elif not has_taint(node, TAINT_NOT_READY, "NoExecute"):
                self._tainter(zone_key(node)).queue.setdefault(name, None)
        elif status == "Unknown":
            if has_taint(node, TAINT_NOT_READY, "NoExecute"):
                await self._swap_taints(name, [{"key": TAINT_UNREACHABLE, "effect": "NoExecute"}],
                                        [{"key": TAINT_NOT_READY, "effect": "NoExecute"}])
            elif not has_taint(node, TAINT_UNREACHABLE, "NoExecute"):
                self._tainter(zone_key(node)).queue.setdefault(name, None)
        elif status == "True":
            await self._mark_reachable(node)

    async def _mark_reachable(self, node: Obj) -> None:
        name = str(meta(node).get("name"))
        for t in self.tainters.values():
            t.queue.pop(name, None)
        if has_taint(node, TAINT_UNREACHABLE, "NoExecute") or has_taint(node, TAINT_NOT_READY, "NoExecute"):
            log.info("node %s is healthy again (or evictions are stopped); removing its NoExecute taints", name)
            await self._swap_taints(name, [], [{"key": TAINT_UNREACHABLE, "effect": "NoExecute"},
                                               {"key": TAINT_NOT_READY, "effect": "NoExecute"}])

    async def _no_execute_tainting_pass(self, written: dict[str, Obj] | None = None) -> None:
        """kube's doNoExecuteTaintingPass: taint queued nodes, as fast as each zone's limiter lets."""
        for t in self.tainters.values():
            while t.queue:
                name = next(iter(t.queue))
                if not t.limiter.try_accept():
                    break
                del t.queue[name]
                # why: right after our own status write the cache may still show the node Ready
                node = newest(self.nodes.get(name), (written or {}).get(name))
                status = ready_status(node)
                if node is None or status is None:
                    continue
                if status == "False":
                    add, opposite = TAINT_NOT_READY, TAINT_UNREACHABLE
                elif status == "Unknown":
                    add, opposite = TAINT_UNREACHABLE, TAINT_NOT_READY
                else:
                    continue  # ready again meanwhile
                log.info("node %s is %s; adding the %s:NoExecute taint", name,
                         "not ready" if status == "False" else "unreachable", add)
                if not await self._swap_taints(name, [{"key": add, "effect": "NoExecute"}],
                                               [{"key": opposite, "effect": "NoExecute"}]):
                    t.queue[name] = None  # try again on a later pass

    async def _handle_disruption(self, zones: dict[str, list[str | None]], nodes: list[Obj]) -> None:
        """kube's handleDisruption: per-zone eviction rates, and no evictions at all when every zone
        is fully disrupted (then the control plane's view, not the nodes, is the likelier fault)."""
        new_states: dict[str, ZoneState] = {}
        all_are_full = True
        for zone, statuses in zones.items():
            _, state = compute_zone_state(statuses, self.unhealthy_threshold)
            if state != ZoneState.FULL_DISRUPTION:
                all_are_full = False
            new_states[zone] = state
            if zone not in self.zone_states:
                self.zone_states[zone] = ZoneState.INITIAL
        all_were_full = True
        for zone in list(self.zone_states):
            if zone not in zones:
                del self.zone_states[zone]
                continue
            if self.zone_states[zone] != ZoneState.FULL_DISRUPTION:
                all_were_full = False
                break
        if all_are_full and all_were_full:
            return
        if all_are_full:
            log.info("all nodes are not ready: entering master disruption mode (no evictions)")
            for n in nodes:
                await self._mark_reachable(n)
            for zone in self.zone_states:
                self._tainter(zone).limiter.swap(0)
                self.zone_states[zone] = ZoneState.FULL_DISRUPTION
            return
        if all_were_full:
            log.info("some nodes are ready again: leaving master disruption mode")
            now = self.clock.now()
            for n in nodes:
                h = self.health.get(str(meta(n).get("name")))
                if h is not None:  # why: they had no chance to be seen alive while we were blind
                    h.probe = now
                    h.ready_transition = now
        for zone, state in new_states.items():
            if self.zone_states.get(zone) == state and not all_were_full:
                continue
            log.info("zone %r is now in state %s", zone.replace("\x00", ""), state)
            self._tainter(zone).limiter.swap(self._zone_rate(len(zones[zone]), state))
            self.zone_states[zone] = state

    def _zone_rate(self, size: int, state: ZoneState) -> float:
        if state == ZoneState.PARTIAL_DISRUPTION:
            return self.secondary_eviction_rate if size > self.large_cluster else 0.0
        return self.eviction_rate  # normal, and a single fully disrupted zone: evict at the usual rate

    # -- one pod: not-ready marking and taint-based eviction ------------------------------------------

    async def sync_pod(self, key: str) -> Result | None:
        ns, _, name = key.partition("/")
        pod = self.pods.get(name, ns)
        node_name = str(((pod or {}).get("spec") or {}).get("nodeName") or "")
        node = self.nodes.get(node_name) if node_name else None
        if pod is None or node is None:
            self.eviction_start.pop(key, None)
            return None
        # a pod on a node that is not ready is not ready either (kube's processPod)
        if ready_status(node) not in ("True", None) and is_pod_ready(pod):
            await self._mark_pods_not_ready(node_name, [pod])
        taints = no_execute_taints(node)
        if not taints:
            self._cancel_eviction(key, pod)
            return None
        if meta(pod).get("deletionTimestamp"):
            return None  # already on its way out
        ok, used = matching_tolerations(taints, (pod.get("spec") or {}).get("tolerations") or ())
        if not ok:
            await self._evict(key, pod)
            return None
        seconds = min_toleration_seconds(used)
        if seconds is None:
            self._cancel_eviction(key, pod)  # tolerated forever
            return None
        now = self.clock.now()
        start = self.eviction_start.get(key)
        if start is None:
            start = self.eviction_start[key] = now
            if seconds > 0:
                self.ctx.record(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key}")
        left = start + seconds - now
        if left > 0:
            return Result(requeue_after=left)
        await self._evict(key, pod)
        return None

    def _cancel_eviction(self, key: str, pod: Obj) -> None:
        if self.eviction_start.pop(key, None) is not None:
            self.ctx.record(pod, "Normal", "TaintManagerEviction", f"Cancelling deletion of Pod {key}")

    async def _evict(self, key: str, pod: Obj) -> None:
        ns, name = str(meta(pod).get("namespace")), str(meta(pod).get("name"))
        log.info("taint eviction: deleting pod %s from node %s", key, (pod.get("spec") or {}).get("nodeName"))
        self.ctx.record(pod, "Normal", "TaintManagerEviction", f"Deleting Pod {key}")
        new = copy.deepcopy(pod)
        conds = [c for c in (new.setdefault("status", {}).get("conditions") or ()) if c.get("type") != "DisruptionTarget"]
        conds.append({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                      "message": "Taint manager: deleting due to NoExecute taint",
                      "lastTransitionTime": self._now_str()})
        new["status"]["conditions"] = conds
        try:
            await self.client.update_status(POD, new, ns)
        except ConflictError:
            pass  # the condition is a courtesy; the deletion is what counts
        except NotFoundError:
            self.eviction_start.pop(key, None)
            return
        try:
            await self.client.delete(POD, name, ns, uid=meta(pod).get("uid"))
        except NotFoundError:
            pass
        self.eviction_start.pop(key, None)
