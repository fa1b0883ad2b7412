"""The scheduler against a real API server (in-process, memory store) with hollow nodes."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from k8py.kubelet.hollow import HollowNodeSpec

from .conftest import NODE, SchedCluster, specs
from .helpers import pod

PC = ("scheduling.k8s.io/v1", "PriorityClass")


def new_pod(name: str, cpu: str = "100m", memory: str = "64Mi", **spec: Any) -> dict[str, Any]:
    p = pod(name, cpu, memory, **spec)
    p["metadata"] = {"name": name, "labels": p["metadata"]["labels"]}
    p.pop("status")
    p["spec"].pop("priority")  # admission sets it (from priorityClassName)
    return p


async def test_most_allocated_packs_while_least_allocated_spreads(cluster: SchedCluster) -> None:
    await cluster.nodes(specs(("small", "2", "4Gi"), ("mid-a", "4", "8Gi"), ("mid-b", "4", "8Gi"),
                              ("large", "8", "16Gi")))
    await cluster.scheduler({"profiles": [
        {"schedulerName": "default-scheduler"},
        {"schedulerName": "bin-packing", "pluginConfig": [{"name": "NodeResourcesFit", "args": {
            "scoringStrategy": {"type": "MostAllocated"}}}]}]})
    for i in range(8):
        await cluster.create(new_pod(f"spread-{i}", "500m", "1Gi"))
    spread = await cluster.wait_placed(8, prefix="spread-")
    for name in list(spread):
        await cluster.client.delete(("v1", "Pod"), name, "default", grace_period_seconds=0)
    for i in range(8):
        await cluster.create(new_pod(f"packed-{i}", "500m", "1Gi", schedulerName="bin-packing"))
    packed = await cluster.wait_placed(8, prefix="packed-")
    assert len(set(spread.values())) == 4, spread  # LeastAllocated: every node gets some
    # MostAllocated fills the fullest nodes first: the small node (4 pods), then one 4-cpu node
    assert Counter(packed.values()) in (Counter({"small": 4, "mid-a": 4}), Counter({"small": 4, "mid-b": 4}))


async def test_taints_keep_pods_off_until_tolerated(cluster: SchedCluster) -> None:
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    await cluster.nodes(specs(("plain", "4", "8Gi")) + specs(("gpu", "4", "8Gi"), taints=[taint]))
    await cluster.scheduler()
    for i in range(4):
        await cluster.create(new_pod(f"p{i}"))
    assert set((await cluster.wait_placed(4, prefix="p")).values()) == {"plain"}
    pinned = new_pod("pinned", nodeSelector={"kubernetes.io/hostname": "gpu"})
    await cluster.create(pinned)
    ev = await cluster.wait_event("pinned", "FailedScheduling")
    assert ev["message"] == ("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
                             "1 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/2 nodes are "
                             "available: 2 Preemption is not helpful for scheduling..")
    tolerant = new_pod("tolerant", nodeSelector={"kubernetes.io/hostname": "gpu"},
                       tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}])
    await cluster.create(tolerant)
    assert (await cluster.wait_placed(1, prefix="tolerant"))["tolerant"] == "gpu"
    # taking the taint off lets the waiting pod in (a node update event requeues it)
    node = await cluster.client.get(NODE, "gpu")
    node["spec"].pop("taints")
    await cluster.client.update(NODE, node)
    assert (await cluster.wait_placed(1, prefix="pinned"))["pinned"] == "gpu"


async def test_required_anti_affinity_puts_replicas_on_distinct_nodes(cluster: SchedCluster) -> None:
    await cluster.nodes(specs(("n1", "4", "8Gi"), ("n2", "4", "8Gi"), ("n3", "4", "8Gi")))
    await cluster.scheduler()
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    for i in range(4):
        p = new_pod(f"web-{i}", affinity=anti)
        p["metadata"]["labels"] = {"app": "web"}
        await cluster.create(p)
    placed = await cluster.wait_placed(3, prefix="web-")
    assert len(set(placed.values())) == 3
    (left,) = {f"web-{i}" for i in range(4)} - set(placed)
    ev = await cluster.wait_event(left, "FailedScheduling")
    assert ev["message"] == ("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: "
                             "0/3 nodes are available: 3 No preemption victims found for incoming pod..")
    await cluster.nodes([HollowNodeSpec("n4", {"cpu": "4", "memory": "8Gi", "pods": "110"},
                                        {"kubernetes.io/hostname": "n4"})])
    assert (await cluster.wait_placed(1, prefix=left))[left] == "n4"


async def test_topology_spread_across_zones_stays_within_max_skew(cluster: SchedCluster) -> None:
    await cluster.nodes([HollowNodeSpec(f"z{i}", {"cpu": "8", "memory": "16Gi", "pods": "110"},
                                        {"kubernetes.io/hostname": f"z{i}",
                                         "topology.kubernetes.io/zone": ("a", "b", "c")[i % 3]})
                         for i in range(7)])
    await cluster.scheduler()
    zone = {f"z{i}": ("a", "b", "c")[i % 3] for i in range(7)}
    for i in range(14):
        p = new_pod(f"s-{i}", topologySpreadConstraints=[{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "spread"}}}])
        p["metadata"]["labels"] = {"app": "spread"}
        await cluster.create(p)
        if i % 5 == 4:
            await asyncio.sleep(0.05)
    placed = await cluster.wait_placed(14, prefix="s-")
    per_zone = Counter(zone[n] for n in placed.values())
    assert max(per_zone.values()) - min(per_zone.values()) <= 1, per_zone
    assert sum(per_zone.values()) == 14


async def test_a_high_priority_pod_preempts_low_priority_ones(cluster: SchedCluster) -> None:
    for name, value in (("low", 100), ("high", 1000)):
        await cluster.client.create(PC, {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                         "metadata": {"name": name}, "value": value})
    await cluster.nodes(specs(("n1", "2", "8Gi"), ("n2", "2", "8Gi")))
    await cluster.scheduler()
    for i in range(4):
        await cluster.create(new_pod(f"low-{i}", "1", priorityClassName="low"))
    low = await cluster.wait_placed(4, prefix="low-")
    await cluster.create(new_pod("never", "2", priorityClassName="high", preemptionPolicy="Never"))
    ev = await cluster.wait_event("never", "FailedScheduling")
    assert ev["message"] == ("0/2 nodes are available: 2 Insufficient cpu. "
                             "preemption: not eligible due to preemptionPolicy=Never..")
    await cluster.create(new_pod("high", "2", priorityClassName="high"))

    async def high_bound() -> str | None:
        p = await cluster.client.get(("v1", "Pod"), "high", "default")
        return p["spec"].get("nodeName")

    node = await cluster.c.until(high_bound, timeout=20, what="the high-priority pod bound")
    high = await cluster.client.get(("v1", "Pod"), "high", "default")
    assert high["status"].get("nominatedNodeName") == node  # set when it preempted, before binding
    victims = [n for n, where in low.items() if where == node]
    assert len(victims) == 2
    left = await cluster.placed(prefix="low-")
    assert not set(victims) & set(left)  # both evicted (deleted) from the chosen node
    ev = await cluster.wait_event(victims[0], "Preempted")
    assert ev["message"].startswith("Preempted by pod ") and ev["message"].endswith(f"on node {node}")
    assert (await cluster.client.get(("v1", "Pod"), "never", "default"))["spec"].get("nodeName") is None


async def test_unschedulable_pods_get_a_condition_and_retry_when_nodes_change(cluster: SchedCluster) -> None:
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    await cluster.nodes(specs(("cp", "8", "8Gi"), taints=[taint]) + specs(("w1", "1", "8Gi"), ("w2", "1", "8Gi")))
    s = await cluster.scheduler()
    await cluster.create(new_pod("big", "2"))
    ev = await cluster.wait_event("big", "FailedScheduling")
    want = ("0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
            "2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..")
    assert ev["message"] == want

    async def condition() -> dict[str, Any] | None:
        p = await cluster.client.get(("v1", "Pod"), "big", "default")
        return next((c for c in p["status"].get("conditions") or () if c["type"] == "PodScheduled"), None)

    cond = await cluster.c.until(condition, what="PodScheduled condition")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", want)
    # impossible for now: no busy loop while nothing changes (lease renewals are not node changes)
    attempts = s.metrics.attempts
    await asyncio.sleep(1.0)
    assert s.metrics.attempts == attempts
    await cluster.nodes(specs(("w3", "4", "8Gi")))
    assert (await cluster.wait_placed(1, prefix="big"))["big"] == "w3"
    assert s.metrics.attempts == attempts + 1


async def test_pods_for_unknown_schedulers_stay_pending(cluster: SchedCluster) -> None:
    await cluster.nodes(specs(("n1", "4", "8Gi")))
    s = await cluster.scheduler(unknown_scheduler_delay=0.3)
    await cluster.create(new_pod("theirs", schedulerName="someone-else"))
    await cluster.create(new_pod("ours"))
    await cluster.wait_placed(1, prefix="ours")
    ev = await cluster.wait_event("theirs", "FailedScheduling")
    assert ev["message"] == ('no scheduler serves schedulerName "someone-else": this scheduler has the profiles '
                             '[default-scheduler]; the pod stays Pending until a scheduler named "someone-else" '
                             "binds it")
    assert (await cluster.client.get(("v1", "Pod"), "theirs", "default"))["spec"].get("nodeName") is None
    assert s.metrics.attempts == 1


async def test_leader_election_one_schedules_the_other_takes_over(cluster: SchedCluster) -> None:
    await cluster.nodes(specs(("n1", "4", "8Gi")))
    le = {"leaderElection": {"leaderElect": True, "leaseDuration": "3s", "renewDeadline": "2s",
                             "retryPeriod": "100ms"}}
    a = await cluster.scheduler(le, identity="a")
    b = await cluster.scheduler(le, identity="b", wait=False)
    await cluster.create(new_pod("first"))
    await cluster.wait_placed(1, prefix="first")
    assert (a.metrics.scheduled, b.metrics.scheduled) == (1, 0) and not b.ready.is_set()
    await cluster.stop_scheduler(a)  # releases the lease on a clean stop
    await asyncio.wait_for(b.ready.wait(), 5)
    await cluster.create(new_pod("second"))
    await cluster.wait_placed(1, prefix="second")
    assert b.metrics.scheduled == 1


class Gang:
    """An out-of-tree Permit plugin: pods labelled ``gang`` wait until ``size`` of them are waiting."""

    NAME = "Gang"

    def __init__(self, args: dict[str, Any], handle: Any) -> None:
        self.handle = handle
        self.size = int(args.get("size", 2))
        self.timeout = float(args.get("timeout", 5))
        self.waiting: list[str] = []

    def permit(self, state: Any, pod: Any, node: str) -> Any:
        from k8py.scheduler.types import Code, Status
        if "gang" not in pod.labels:
            return None
        self.waiting.append(pod.key)
        if len(self.waiting) < self.size:
            return Status(Code.WAIT), self.timeout
        for key in self.waiting[:-1]:
            self.handle.framework.allow(key, self.NAME)
        self.waiting.clear()
        return None

    def reserve(self, state: Any, pod: Any, node: str) -> None:
        return None

    def unreserve(self, state: Any, pod: Any, node: str) -> None:  # rejected or timed out
        if pod.key in self.waiting:
            self.waiting.remove(pod.key)


async def test_an_out_of_tree_permit_plugin_holds_pods_back(cluster: SchedCluster) -> None:
    from k8py.scheduler.plugins import REGISTRY
    await cluster.nodes(specs(("n1", "4", "8Gi")))
    cfg = {"profiles": [{"plugins": {"multiPoint": {"enabled": [{"name": "Gang"}]}},
                         "pluginConfig": [{"name": "Gang", "args": {"size": 2, "timeout": 0.4}}]}],
           "podInitialBackoffSeconds": 5, "podMaxBackoffSeconds": 5}
    await cluster.scheduler(cfg, registry={**REGISTRY, "Gang": Gang})
    first = new_pod("g1")
    first["metadata"]["labels"] = {"gang": "a"}
    await cluster.create(first)
    ev = await cluster.wait_event("g1", "FailedScheduling")  # waited alone, timed out
    assert ev["message"] == "rejected due to timeout after waiting 0.4s at plugin Gang"
    assert not await cluster.placed(prefix="g")
    g2, g3 = new_pod("g2"), new_pod("g3")
    g2["metadata"]["labels"] = g3["metadata"]["labels"] = {"gang": "a"}
    await cluster.create(g2)
    await cluster.create(g3)
    placed = await cluster.wait_placed(2, prefix="g")
    assert set(placed) == {"g2", "g3"}


async def test_a_cluster_without_nodes_waits_for_one(cluster: SchedCluster) -> None:
    s = await cluster.scheduler()
    await cluster.create(new_pod("early"))
    ev = await cluster.wait_event("early", "FailedScheduling")
    assert ev["message"] == "no nodes available to schedule pods"
    await asyncio.sleep(0.3)
    assert s.metrics.attempts == 1  # parked, not retried in a loop
    await cluster.nodes(specs(("n1", "4", "8Gi")))
    assert (await cluster.wait_placed(1, prefix="early"))["early"] == "n1"


async def test_finished_pods_free_their_room(cluster: SchedCluster) -> None:
    from k8py.kubelet.hollow import EXIT_CODE_ANNOTATION
    await cluster.nodes(specs(("n1", "1", "8Gi")))
    await cluster.scheduler()
    job = new_pod("job", "1", restartPolicy="Never")
    job["metadata"]["annotations"] = {EXIT_CODE_ANNOTATION: "0"}
    await cluster.create(job)
    await cluster.wait_placed(1, prefix="job")
    await cluster.create(new_pod("next", "1"))
    # the job's pod succeeds; the scheduler stops counting it (it watches only active pods)
    assert (await cluster.wait_placed(1, prefix="next"))["next"] == "n1"
    done = await cluster.client.get(("v1", "Pod"), "job", "default")
    assert done["status"]["phase"] == "Succeeded"
