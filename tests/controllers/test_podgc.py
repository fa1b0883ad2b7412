"""Pod garbage collection: orphaned pods of deleted nodes, terminated pods over the threshold,
terminating pods that were never scheduled."""

from __future__ import annotations

from typing import Any

from tests.controllers.test_nodelifecycle import make_ctx
from tests.helpers.cluster import InProcessCluster

from k8py.controllers.podgc import GC_KEY, PodGCController, terminated_to_delete

Obj = dict[str, Any]
POD = ("v1", "Pod")
NODE = ("v1", "Node")


def test_terminated_pods_over_the_threshold_evicted_then_oldest_first() -> None:
    def p(name: str, created: str, phase: str, reason: str = "") -> Obj:
        return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"phase": phase, "reason": reason}}

    pods = [p("new", "2024-01-03T00:00:00Z", "Succeeded"), p("old", "2024-01-01T00:00:00Z", "Failed"),
            p("evicted", "2024-01-05T00:00:00Z", "Failed", "Evicted"), p("run", "2023-01-01T00:00:00Z", "Running"),
            p("mid-b", "2024-01-02T00:00:00Z", "Succeeded"), p("mid-a", "2024-01-02T00:00:00Z", "Succeeded")]
    names = [x["metadata"]["name"] for x in terminated_to_delete(pods, 2)]
    assert names == ["evicted", "old", "mid-a"]
    assert terminated_to_delete(pods, 5) == [] and terminated_to_delete(pods, 0) == []


async def test_quarantine_live_check_and_stuck_pods_on_a_fake_clock() -> None:
    ctx, api, clock = make_ctx({"pod_gc_period": 20, "pod_gc_quarantine": 40})
    gc = PodGCController(ctx)
    api.put(NODE, {"metadata": {"name": "alive"}})
    api.put(NODE, {"metadata": {"name": "dead"}, "spec": {"taints": [
        {"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}]},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    for name, node in (("orphan", "gone"), ("cached-only", "late"), ("ok", "alive")):
        api.put(POD, {**pod_on(name, node), "metadata": {"name": name, "namespace": "default"},
                      "status": {"phase": "Running"}})
    deleting = {"name": "", "namespace": "default", "deletionTimestamp": "2024-01-01T00:00:00Z"}
    api.put(POD, {**pod_on("limbo", None), "metadata": {**deleting, "name": "limbo"}})
    api.put(POD, {**pod_on("stuck", "dead"), "metadata": {**deleting, "name": "stuck"}})
    # "late" exists in the API but not (yet) in our cache
    api.put(NODE, {"metadata": {"name": "late"}}, announce=False)

    res = await gc.reconcile(GC_KEY)
    assert res is not None and res.requeue_after == 20
    # unscheduled terminating pods and terminating pods on an out-of-service node go at once
    assert api.get_obj(POD, "limbo", "default") is None and api.get_obj(POD, "stuck", "default") is None
    assert api.get_obj(POD, "orphan", "default") is not None  # quarantine first
    clock.advance(39)
    await gc.reconcile(GC_KEY)
    assert api.get_obj(POD, "orphan", "default") is not None
    clock.advance(1)
    writes = len(api.writes)
    statuses: list[Obj] = []
    real = api.update_status

    async def spy(kind: Any, obj: Obj, namespace: str | None = None, **kw: Any) -> Obj:
        statuses.append(obj["status"])
        return await real(kind, obj, namespace, **kw)

    api.update_status = spy  # type: ignore[method-assign]
    await gc.reconcile(GC_KEY)
    assert api.get_obj(POD, "orphan", "default") is None
    assert api.get_obj(POD, "cached-only", "default") is not None  # the live GET found its node
    assert api.get_obj(POD, "ok", "default") is not None
    assert api.writes[writes:] == [("update_status", "Pod", "orphan"), ("delete", "Pod", "orphan")]
    assert statuses[0]["phase"] == "Failed"
    cond = statuses[0]["conditions"][-1]
    assert (cond["type"], cond["reason"], cond["message"]) == (
        "DisruptionTarget", "DeletionByPodGC", "PodGC: node no longer exists")


def pod_on(name: str, node: str | None) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def names(c: InProcessCluster) -> set[str]:
    return {p["metadata"]["name"] for p in (await c.client.list(POD, "default"))["items"]}


async def test_orphans_of_a_deleted_node_and_terminated_pods_over_threshold() -> None:
    opts = {"pod_gc_period": 0.2, "pod_gc_quarantine": 0.5, "terminated_pod_gc_threshold": 2}
    async with InProcessCluster(controllers=["podgc"], manager_options=opts) as c:
        for n in ("doomed", "stays"):
            await c.client.create(NODE, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}})
        await c.client.create(POD, pod_on("orphan-1", "doomed"), "default")
        await c.client.create(POD, pod_on("orphan-2", "doomed"), "default")
        await c.client.create(POD, pod_on("fine", "stays"), "default")
        for i in range(4):
            p = await c.client.create(POD, pod_on(f"done-{i}", "stays"), "default")
            p["status"] = {"phase": "Succeeded"}
            await c.client.update_status(POD, p, "default")

        await c.until(lambda: _eq(c, {"orphan-1", "orphan-2", "fine", "done-2", "done-3"}),
                      what="the two oldest terminated pods deleted")
        await c.client.delete(NODE, "doomed")
        await c.until(lambda: _eq(c, {"fine", "done-2", "done-3"}), what="orphans of the deleted node gone")


async def _eq(c: InProcessCluster, want: set[str]) -> bool:
    return await names(c) == want
