"""Node lifecycle: lease-based health, condition and NoExecute taints, zone disruption handling and
taint-based eviction. Unit tests drive the controller's reconcile on a fake clock against a tiny
in-memory API; the end-to-end test lets a fake node's lease lapse in an in-process cluster."""

from __future__ import annotations

from typing import Any

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.api.corev1 import tolerates
from k8py.client.clock import FakeClock
from k8py.client.controller import Result
from k8py.client.errors import NotFoundError
from k8py.client.fake import FakeClient
from k8py.client.informer import SharedInformerFactory
from k8py.client.leaderelection import format_micro_time
from k8py.controllers.base import ControllerContext
from k8py.controllers.nodelifecycle import (
    MONITOR_KEY,
    NodeLifecycleController,
    ZoneState,
    compute_zone_state,
    matching_tolerations,
    min_toleration_seconds,
    no_schedule_taints,
)

Obj = dict[str, Any]
NODE = ("v1", "Node")
POD = ("v1", "Pod")
LEASE = ("coordination.k8s.io/v1", "Lease")
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


# the in-memory API, its writes landing in the informer caches at once (no informer runs here)
FakeApi = FakeClient


def make_ctx(options: Obj) -> tuple[ControllerContext, FakeApi, FakeClock]:
    clock = FakeClock()
    api = FakeClient(clock)
    factory = SharedInformerFactory(api, clock=clock)
    api.attach(factory)
    return ControllerContext(api, factory, clock, None, options), api, clock  # type: ignore[arg-type]


def node_obj(name: str, zone: str = "") -> Obj:
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "ok", "lastHeartbeatTime": "2023-11-14T22:13:20Z",
                                       "lastTransitionTime": "2023-11-14T22:13:20Z"},
                                      {"type": "MemoryPressure", "status": "False", "reason": "Fine"}]}}


def renew(api: FakeApi, name: str) -> None:
    api.put(LEASE, {"metadata": {"name": name, "namespace": "kube-node-lease"},
                    "spec": {"holderIdentity": name, "renewTime": format_micro_time(api.clock.wall())}})


def pod_obj(name: str, node: str, tolerations: list[Obj]) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "tolerations": tolerations, "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def taints(api: FakeApi, node: str) -> set[tuple[str, str]]:
    n = api.get_obj(NODE, node)
    assert n is not None
    return {(t["key"], t["effect"]) for t in n["spec"].get("taints") or ()}


def condition(api: FakeApi, node: str, type_: str = "Ready") -> Obj:
    n = api.get_obj(NODE, node)
    assert n is not None
    return next(c for c in n["status"]["conditions"] if c["type"] == type_)


def ready(api: FakeApi, node: str) -> Obj:
    return condition(api, node)


def pod_ready_status(api: FakeApi, name: str) -> str:
    p = api.get_obj(POD, name, "default")
    assert p is not None
    return str(p["status"]["conditions"][0]["status"])


async def monitor(ctl: NodeLifecycleController) -> Result | None:
    return await ctl.reconcile(MONITOR_KEY)


OPTIONS = {"node_monitor_grace_period": 40, "node_monitor_period": 5, "node_eviction_rate": 100}


# -- pure ------------------------------------------------------------------------------------------

def test_tolerations() -> None:
    taint = {"key": UNREACHABLE, "effect": "NoExecute"}
    assert tolerates({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}, taint)
    assert tolerates({"operator": "Exists"}, taint)
    assert not tolerates({"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}, taint)
    assert tolerates({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"})
    assert not tolerates({"key": "k", "operator": "Equal", "value": "w"}, {"key": "k", "value": "v"})
    two = [taint, {"key": NOT_READY, "effect": "NoExecute"}]
    ok, used = matching_tolerations(two, [{"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": 30},
                                          {"key": NOT_READY, "operator": "Exists", "tolerationSeconds": 10}])
    assert ok and min_toleration_seconds(used) == 10
    assert matching_tolerations(two, [{"key": UNREACHABLE, "operator": "Exists"}]) == (False, [])
    assert min_toleration_seconds([{"operator": "Exists"}]) is None
    assert min_toleration_seconds([{"operator": "Exists", "tolerationSeconds": -5}]) == 0


def test_zone_states_and_condition_taints() -> None:
    assert compute_zone_state(["True", "Unknown"], 0.55) == (1, ZoneState.NORMAL)
    assert compute_zone_state(["Unknown", None], 0.55) == (2, ZoneState.FULL_DISRUPTION)
    assert compute_zone_state(["True", "False", "False", "Unknown"], 0.55) == (3, ZoneState.PARTIAL_DISRUPTION)
    assert compute_zone_state(["True", "True", "False", "False"], 0.55) == (2, ZoneState.NORMAL)
    n = node_obj("n")
    n["status"]["conditions"][0]["status"] = "Unknown"
    n["status"]["conditions"].append({"type": "DiskPressure", "status": "True"})
    n["spec"]["unschedulable"] = True
    assert {t["key"] for t in no_schedule_taints(n)} == {
        UNREACHABLE, "node.kubernetes.io/disk-pressure", "node.kubernetes.io/unschedulable"}


# -- reconcile on a fake clock ---------------------------------------------------------------------

async def test_lease_expiry_unknown_taint_evict_and_recover() -> None:
    ctx, api, clock = make_ctx(OPTIONS)
    ctl = NodeLifecycleController(ctx)
    for n in ("n1", "n2"):
        api.put(NODE, node_obj(n))
        renew(api, n)
    forever = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]
    short = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]
    api.put(POD, pod_obj("forever", "n2", forever))
    api.put(POD, pod_obj("short", "n2", short))
    api.put(POD, pod_obj("intolerant", "n2", []))
    api.put(POD, pod_obj("elsewhere", "n1", []))

    res = await monitor(ctl)
    assert res is not None and res.requeue_after == 5
    clock.advance(30)
    renew(api, "n1")
    await monitor(ctl)
    assert ready(api, "n2")["status"] == "True" and not api.writes  # 30 s < 40 s grace

    clock.advance(15)
    renew(api, "n1")
    await monitor(ctl)
    cond = ready(api, "n2")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    assert condition(api, "n2", "MemoryPressure")["status"] == "Unknown"
    assert taints(api, "n2") == {(UNREACHABLE, "NoExecute")}
    assert ready(api, "n1")["status"] == "True" and taints(api, "n1") == set()
    for p in ("forever", "short", "intolerant"):
        assert pod_ready_status(api, p) == "False"
    assert pod_ready_status(api, "elsewhere") == "True"

    await ctl.reconcile("node:n2")  # the NoSchedule twin, from the condition
    assert taints(api, "n2") == {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")}

    assert await ctl.reconcile("pod:default/intolerant") is None
    assert api.get_obj(POD, "intolerant", "default") is None  # no matching toleration: at once
    res = await ctl.reconcile("pod:default/short")
    assert res is not None and res.requeue_after == 5
    assert await ctl.reconcile("pod:default/forever") is None
    clock.advance(3)
    res = await ctl.reconcile("pod:default/short")  # counted from when first seen, not reset
    assert res is not None and res.requeue_after == 2
    clock.advance(2)
    await ctl.reconcile("pod:default/short")
    assert api.get_obj(POD, "short", "default") is None
    assert api.get_obj(POD, "forever", "default") is not None
    assert ("delete", "Pod", "elsewhere") not in api.writes

    # the lease is renewed again: conditions restored, taints gone, the countdown of nothing left
    clock.advance(1)
    renew(api, "n1")
    renew(api, "n2")
    await monitor(ctl)
    cond = ready(api, "n2")
    assert (cond["status"], cond["reason"]) == ("True", "KubeletReady")
    mem = condition(api, "n2", "MemoryPressure")
    assert (mem["status"], mem["reason"]) == ("False", "Fine")
    assert taints(api, "n2") == {(UNREACHABLE, "NoSchedule")}
    await ctl.reconcile("node:n2")
    assert taints(api, "n2") == set()


async def test_all_nodes_down_is_a_control_plane_problem() -> None:
    ctx, api, clock = make_ctx(OPTIONS)
    ctl = NodeLifecycleController(ctx)
    api.put(NODE, node_obj("solo"))
    renew(api, "solo")
    api.put(POD, pod_obj("p", "solo", []))
    await monitor(ctl)
    clock.advance(41)
    await monitor(ctl)
    assert ready(api, "solo")["status"] == "Unknown"
    assert (UNREACHABLE, "NoExecute") not in taints(api, "solo")  # master disruption mode: no evictions
    assert await ctl.reconcile("pod:default/p") is None
    assert api.get_obj(POD, "p", "default") is not None


async def test_partial_disruption_stops_small_zone_and_rate_limits_normal_ones() -> None:
    # a long monitor period: the pass comes back sooner by itself when a token is due
    ctx, api, clock = make_ctx({**OPTIONS, "node_eviction_rate": 0.1, "node_monitor_period": 60})
    ctl = NodeLifecycleController(ctx)
    # zone a: 4 nodes, 3 will go down (partial disruption, small zone: no tainting at all)
    # zone b: 6 nodes, 2 will go down (normal: one taint per 10 s)
    a = [f"a{i}" for i in range(4)]
    b = [f"b{i}" for i in range(6)]
    for n in a:
        api.put(NODE, node_obj(n, "a"))
    for n in b:
        api.put(NODE, node_obj(n, "b"))
    for n in a + b:
        renew(api, n)
    await monitor(ctl)
    clock.advance(41)
    for n in ["a0"] + b[2:]:
        renew(api, n)
    await monitor(ctl)
    assert sorted(ctl.zone_states.values()) == [ZoneState.NORMAL, ZoneState.PARTIAL_DISRUPTION]
    assert all((UNREACHABLE, "NoExecute") not in taints(api, n) for n in a)
    tainted = [n for n in b[:2] if (UNREACHABLE, "NoExecute") in taints(api, n)]
    assert len(tainted) == 1  # the first straight away, the second must wait for a token
    res = await monitor(ctl)
    assert res is not None and res.requeue_after is not None and 9 < res.requeue_after <= 10.01
    clock.advance(10)
    for n in ["a0"] + b[2:]:
        renew(api, n)
    await monitor(ctl)
    assert all((UNREACHABLE, "NoExecute") in taints(api, n) for n in b[:2])


# -- end to end ------------------------------------------------------------------------------------

def pod_on(name: str, node: str, toleration_seconds: int | None = None, **meta: Any) -> Obj:
    spec: Obj = {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}
    if toleration_seconds is not None:
        spec["tolerations"] = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": toleration_seconds}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta}, "spec": spec}


FAST = {"node_monitor_grace_period": 2.0, "node_monitor_period": 0.25}


async def test_lease_lapse_evicts_pods_after_their_toleration_and_recovery() -> None:
    async with InProcessCluster(controllers=["nodelifecycle"], manager_options=FAST) as c:
        await c.add_node("node-1", lease_interval=0.3)
        n2 = await c.add_node("node-2", lease_interval=0.3)
        await c.client.create(POD, pod_on("quick", "node-2", toleration_seconds=1), "default")
        await c.client.create(POD, pod_on("patient", "node-2"), "default")  # admission's 300 s
        await c.client.create(POD, pod_on("safe", "node-1", toleration_seconds=1), "default")

        async def pod_ready(name: str) -> bool | None:
            try:
                p = await c.client.get(POD, name, "default")
            except NotFoundError:
                return None
            return any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions") or ())

        for name in ("quick", "patient", "safe"):
            await c.until(lambda n=name: pod_ready(n), what=f"{name} running")  # type: ignore[misc]
        n2.stop_renewing()

        async def node(name: str) -> Obj:
            return await c.client.get(NODE, name)

        async def unreachable() -> bool:
            n = await node("node-2")
            cond = next(x for x in n["status"]["conditions"] if x["type"] == "Ready")
            keys = {(t["key"], t["effect"]) for t in n["spec"].get("taints") or ()}
            return cond["status"] == "Unknown" and cond["reason"] == "NodeStatusUnknown" and \
                {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")} <= keys

        await c.until(unreachable, timeout=10, what="node-2 Ready=Unknown with the unreachable taints")

        async def quick_gone() -> bool:
            return await pod_ready("quick") is None

        await c.until(quick_gone, timeout=10, what="the pod tolerating 1 s evicted")
        assert await pod_ready("patient") is False  # still there, marked not ready
        assert await pod_ready("safe") is True
        n1 = await node("node-1")
        assert not n1["spec"].get("taints")

        n2.renew = True

        async def recovered() -> bool:
            n = await node("node-2")
            cond = next(x for x in n["status"]["conditions"] if x["type"] == "Ready")
            return cond["status"] == "True" and not n["spec"].get("taints")

        await c.until(recovered, timeout=10, what="node-2 Ready again without taints")
        assert await pod_ready("patient") is False  # the kubelet, not us, says when it is ready again


async def test_evicted_replicaset_pods_are_replaced_elsewhere() -> None:
    pytest.importorskip("k8py.controllers.replicaset")
    async with InProcessCluster(controllers=["nodelifecycle", "replicaset"], manager_options=FAST) as c:
        await c.add_node("node-1", lease_interval=0.3, schedule=False)
        n2 = await c.add_node("node-2", lease_interval=0.3)
        tol = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]
        await c.client.create(("apps/v1", "ReplicaSet"), {
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "rs"}},
                     "template": {"metadata": {"labels": {"app": "rs"}},
                                  "spec": {"tolerations": tol, "containers": [{"name": "c", "image": "busybox"}]}}}},
            "default")

        async def placed(node: str) -> bool:
            pods = (await c.client.list(POD, "default", label_selector="app=rs"))["items"]
            return len(pods) == 2 and all(p["spec"].get("nodeName") == node and not
                                          p["metadata"].get("deletionTimestamp") for p in pods)

        await c.until(lambda: placed("node-2"), what="both replicas on node-2")
        n2.stop_renewing()
        n2.schedule = False
        c.nodes[0].schedule = True  # node-1 now takes the replacements
        await c.until(lambda: placed("node-1"), timeout=15, what="replicas replaced on node-1")
