"""The garbage collector: background, foreground and orphan propagation, several owners,
dangling and invalid references; and its pure dependency graph."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.api.registry import Registry
from k8py.client.errors import NotFoundError
from k8py.client.fake import FakeClient
from k8py.controllers.garbagecollector import FOREGROUND, ORPHAN, Graph, deletable_kinds

Obj = dict[str, Any]
CM = ("v1", "ConfigMap")
SECRET = ("v1", "Secret")
POD = ("v1", "Pod")
NS = ("v1", "Namespace")
CLUSTER_ROLE = ("rbac.authorization.k8s.io/v1", "ClusterRole")
EVENT = ("v1", "Event")
HOLD = "test.k8py.io/hold"  # a finalizer nobody removes but the test


def ref(owner: Obj, block: bool | None = None) -> Obj:
    r = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
         "uid": owner["metadata"]["uid"]}
    if block is not None:
        r["blockOwnerDeletion"] = block
    return r


def cm(name: str, *owners: Obj, finalizers: list[str] | None = None, ns: str = "default") -> Obj:
    md: Obj = {"name": name, "namespace": ns}
    if owners:
        md["ownerReferences"] = list(owners)
    if finalizers:
        md["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": {"k": "v"}}


async def get(c: InProcessCluster, kind: tuple[str, str], name: str, ns: str | None = "default") -> Obj | None:
    try:
        return await c.client.get(kind, name, ns)
    except NotFoundError:
        return None


async def gone(c: InProcessCluster, kind: tuple[str, str], name: str, ns: str | None = "default") -> bool:
    return await get(c, kind, name, ns) is None


async def make_owner(c: InProcessCluster, name: str, ns: str = "default") -> Obj:
    return await c.client.create(CM, cm(name, ns=ns), ns)


async def test_background_deletion_removes_dependents() -> None:
    async with InProcessCluster(controllers=["garbagecollector"]) as c:
        owner = await make_owner(c, "rs-like")
        await c.client.create(CM, cm("dep-cm", ref(owner)), "default")
        await c.client.create(SECRET, {"apiVersion": "v1", "kind": "Secret",
                                       "metadata": {"name": "dep-secret", "ownerReferences": [ref(owner)]}},
                              "default")
        await c.client.create(POD, {"apiVersion": "v1", "kind": "Pod",
                                    "metadata": {"name": "dep-pod", "ownerReferences": [ref(owner, True)]},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, "default")
        await c.client.create(CM, cm("unrelated"), "default")
        await c.client.delete(CM, "rs-like", "default", propagation_policy="Background")
        assert await gone(c, CM, "rs-like")  # background: the owner goes at once

        async def dependents_gone() -> bool:
            return all([await gone(c, CM, "dep-cm"), await gone(c, SECRET, "dep-secret"),
                        await gone(c, POD, "dep-pod")])

        await c.until(dependents_gone, what="dependents of a background-deleted owner removed")
        assert await get(c, CM, "unrelated") is not None


async def test_foreground_keeps_owner_until_dependents_are_gone() -> None:
    async with InProcessCluster(controllers=["garbagecollector"]) as c:
        owner = await make_owner(c, "owner")
        # a blocking dependent held by a finalizer, so the owner's wait can be seen
        await c.client.create(CM, cm("held", ref(owner, True), finalizers=[HOLD]), "default")
        # a middle object with its own dependent: the deletion cascades depth-first
        middle = await c.client.create(CM, cm("middle", ref(owner, True)), "default")
        await c.client.create(CM, cm("leaf", ref(middle, True)), "default")
        await c.client.create(CM, cm("loose", ref(owner, False)), "default")

        await c.client.delete(CM, "owner", "default", propagation_policy="Foreground")

        async def waiting() -> bool:
            held = await get(c, CM, "held")
            return held is not None and bool(held["metadata"].get("deletionTimestamp")) and \
                await gone(c, CM, "middle") and await gone(c, CM, "leaf") and await gone(c, CM, "loose")

        await c.until(waiting, what="dependents deleted while the held one waits for its finalizer")
        o = await get(c, CM, "owner")
        assert o is not None, "the owner must stay while a blocking dependent exists"
        assert o["metadata"]["deletionTimestamp"]
        assert FOREGROUND in o["metadata"]["finalizers"]

        await c.client.patch(CM, "held", {"metadata": {"finalizers": None}}, "default")
        await c.until(lambda: gone(c, CM, "owner"), what="owner deleted once its dependents are gone")
        assert await gone(c, CM, "held")


async def test_orphan_leaves_dependents_without_the_reference() -> None:
    async with InProcessCluster(controllers=["garbagecollector"]) as c:
        owner = await make_owner(c, "owner")
        other = await make_owner(c, "other")
        await c.client.create(CM, cm("dep-1", ref(owner, True)), "default")
        await c.client.create(CM, cm("dep-2", ref(owner), ref(other)), "default")
        await c.client.delete(CM, "owner", "default", propagation_policy="Orphan")
        await c.until(lambda: gone(c, CM, "owner"), what="owner deleted after orphaning")
        d1 = await c.client.get(CM, "dep-1", "default")
        d2 = await c.client.get(CM, "dep-2", "default")
        assert not d1["metadata"].get("ownerReferences")
        assert [r["uid"] for r in d2["metadata"]["ownerReferences"]] == [other["metadata"]["uid"]]


async def test_dependent_with_two_owners_survives_until_both_are_gone() -> None:
    async with InProcessCluster(controllers=["garbagecollector"]) as c:
        a = await make_owner(c, "owner-a")
        b = await make_owner(c, "owner-b")
        await c.client.create(CM, cm("shared", ref(a), ref(b)), "default")
        await c.client.create(CM, cm("only-a", ref(a)), "default")
        await c.client.delete(CM, "owner-a", "default")
        await c.until(lambda: gone(c, CM, "only-a"), what="the dependent of owner-a alone removed")

        async def reference_dropped() -> bool:
            s = await get(c, CM, "shared")
            assert s is not None, "a dependent with a live owner must survive"
            return [r["uid"] for r in s["metadata"].get("ownerReferences") or []] == [b["metadata"]["uid"]]

        # kube's GC drops the reference to the absent owner and keeps the object
        await c.until(reference_dropped, what="reference to the deleted owner removed from the survivor")
        await c.client.delete(CM, "owner-b", "default")
        await c.until(lambda: gone(c, CM, "shared"), what="shared dependent removed with its last owner")


async def test_dependents_of_owners_that_never_existed_are_deleted() -> None:
    async with InProcessCluster(controllers=["garbagecollector"]) as c:
        real = await make_owner(c, "real")
        ghost = {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": str(uuid.uuid4())}
        wrong_uid = {"apiVersion": "v1", "kind": "ConfigMap", "name": "real", "uid": str(uuid.uuid4())}
        await c.client.create(CM, cm("of-ghost", ghost), "default")
        await c.client.create(CM, cm("of-wrong-uid", wrong_uid), "default")
        await c.client.create(CM, cm("of-real", ref(real)), "default")
        await c.until(lambda: gone(c, CM, "of-ghost"), what="dependent of a missing owner deleted")
        await c.until(lambda: gone(c, CM, "of-wrong-uid"), what="dependent of an owner with another uid deleted")
        assert await get(c, CM, "real") is not None, "the name-alike owner is not touched"
        assert await get(c, CM, "of-real") is not None


async def test_invalid_references_across_namespaces() -> None:
    async with InProcessCluster(controllers=["garbagecollector"]) as c:
        await c.client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
        owner = await make_owner(c, "owner", ns="default")
        # namespaced dependent naming a namespaced owner of another namespace: that owner
        # cannot exist for it, so the reference is dangling and the dependent is collected
        await c.client.create(CM, cm("cross", ref(owner), ns="other"), "other")
        # a cluster-scoped object cannot be owned by a namespaced one: reported, left alone
        await c.client.create(CLUSTER_ROLE, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                             "metadata": {"name": "gc-test-role", "ownerReferences": [ref(owner)]},
                                             "rules": []})
        await c.until(lambda: gone(c, CM, "cross", "other"), what="cross-namespace dependent deleted")

        async def reported(name: str, ns: str) -> bool:
            evs = (await c.client.list(EVENT, ns))["items"]
            return any(e["reason"] == "OwnerRefInvalidNamespace" and e["involvedObject"]["name"] == name
                       for e in evs)

        await c.until(lambda: reported("cross", "other"), what="OwnerRefInvalidNamespace event for cross")
        await c.until(lambda: reported("gc-test-role", "default"), what="event for the cluster-scoped dependent")
        assert await get(c, CLUSTER_ROLE, "gc-test-role", None) is not None
        assert await get(c, CM, "owner") is not None


# -- the graph alone ---------------------------------------------------------------------------


def meta(name: str, uid: str, *owners: tuple[str, bool], ns: str = "default", deleting: bool = False,
         finalizers: tuple[str, ...] = ()) -> Obj:
    md: Obj = {"name": name, "namespace": ns, "uid": uid, "resourceVersion": "1",
               "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": o, "uid": o,
                                    "blockOwnerDeletion": b} for o, b in owners]}
    if deleting:
        md["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    if finalizers:
        md["finalizers"] = list(finalizers)
    return md


def test_graph_virtual_owner_is_verified_then_observed() -> None:
    g = Graph()
    ins = g.observe("v1", "ConfigMap", meta("dep", "d1", ("o1", True)))
    assert ins.enqueue == ["o1"]  # unknown owner: look it up
    owner = g.get("o1")
    assert owner is not None and not owner.observed
    ins = g.observe("v1", "ConfigMap", meta("o1", "o1"))
    assert ins.enqueue == [] and owner.observed
    assert {d.uid for d in owner.dependents} == {"d1"}


def test_graph_foreground_and_orphan_transitions() -> None:
    g = Graph()
    g.observe("v1", "ConfigMap", meta("o1", "o1"))
    g.observe("v1", "ConfigMap", meta("d1", "d1", ("o1", True)))
    g.observe("v1", "ConfigMap", meta("d2", "d2", ("o1", False)))
    ins = g.observe("v1", "ConfigMap", meta("o1", "o1", deleting=True, finalizers=(FOREGROUND,)))
    assert sorted(ins.enqueue) == ["d1", "d2", "o1"]
    # nothing new while it keeps waiting
    assert g.observe("v1", "ConfigMap", meta("o1", "o1", deleting=True, finalizers=(FOREGROUND,))).enqueue == []
    # the blocking dependent stops blocking: the owner is looked at again
    assert g.observe("v1", "ConfigMap", meta("d1", "d1", ("o1", False))).enqueue == ["o1"]
    # a dependent deleted: the waiting owner is looked at again
    assert g.remove("d2").enqueue == ["o1"]

    g.observe("v1", "ConfigMap", meta("o2", "o2"))
    g.observe("v1", "ConfigMap", meta("d3", "d3", ("o2", False)))
    assert g.observe("v1", "ConfigMap", meta("o2", "o2", deleting=True, finalizers=(ORPHAN,))).enqueue == ["o2"]


def test_graph_deleted_owner_enqueues_dependents_and_namespace_mismatch_is_reported() -> None:
    g = Graph()
    g.observe("v1", "ConfigMap", meta("o1", "o1", ns="a"))
    ins = g.observe("v1", "ConfigMap", meta("d1", "d1", ("o1", False), ns="b"))
    assert ins.enqueue == ["d1"] and [(d.uid, r.uid) for d, r in ins.invalid_namespace] == [("d1", "o1")]
    ins = g.remove("o1")
    assert ins.enqueue == ["d1"] and [n.uid for n in ins.absent] == ["o1"]
    assert g.get("o1") is None
    g.remove("d1")
    assert len(g) == 0


def test_deletable_kinds_skip_events_virtual_and_duplicate_versions() -> None:
    kinds = deletable_kinds(Registry())
    names = {(k.group, k.resource) for k in kinds}
    assert ("", "pods") in names and ("", "namespaces") in names and ("apps", "replicasets") in names
    assert ("", "events") not in names and ("events.k8s.io", "events") not in names
    assert ("", "bindings") not in names and ("", "componentstatuses") not in names
    assert [k.version for k in kinds if k.resource == "horizontalpodautoscalers"] == ["v2"]


@pytest.mark.parametrize("policy", ["Foreground", "Background"])
async def test_pods_of_a_deleted_owner_are_finished_by_the_node(policy: str) -> None:
    async with InProcessCluster(controllers=["garbagecollector"]) as c:
        await c.add_node("node-1")
        owner = await make_owner(c, "owner")
        for i in range(2):
            await c.client.create(POD, {"apiVersion": "v1", "kind": "Pod",
                                        "metadata": {"name": f"p{i}", "ownerReferences": [ref(owner, True)]},
                                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, "default")

        async def running() -> bool:
            pods = (await c.client.list(POD, "default"))["items"]
            return len(pods) == 2 and all((p.get("status") or {}).get("phase") == "Running" for p in pods)

        await c.until(running, what="pods running on the fake node")
        await c.client.delete(CM, "owner", "default", propagation_policy=policy)  # type: ignore[arg-type]

        async def all_gone() -> bool:
            return not (await c.client.list(POD, "default"))["items"] and await gone(c, CM, "owner")

        await c.until(all_gone, what=f"{policy} deletion of an owner with running pods")


# -- reconcile against a fake API: live lookups decide, never the cache ------------------------


def FakeAPI(*objs: Obj) -> FakeClient:
    return FakeClient(None, *objs)


def obj(name: str, uid: str, *owners: Obj) -> Obj:
    md: Obj = {"name": name, "namespace": "default", "uid": uid, "resourceVersion": "5"}
    if owners:
        md["ownerReferences"] = list(owners)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md}


def collector(api: FakeClient) -> Any:
    from k8py.client.informer import SharedInformerFactory
    from k8py.controllers.base import ControllerContext
    from k8py.controllers.garbagecollector import GarbageCollector

    ctx = ControllerContext(api, SharedInformerFactory(api))
    return GarbageCollector(ctx)


async def test_an_owner_missing_from_the_cache_but_alive_is_not_trusted_away() -> None:
    owner = obj("owner", "o1")
    dep = obj("dep", "d1", {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "o1"})
    api = FakeAPI(owner, dep)
    gc = collector(api)
    # only the dependent reached the cache: its owner is a virtual node
    gc._apply(gc.graph.observe("v1", "ConfigMap", dep["metadata"]))
    res = await gc.reconcile("o1")
    assert res is not None and res.requeue, "alive but not yet observed: look again later"
    assert await gc.reconcile("d1") is None
    assert api.deleted == []


async def test_an_owner_the_cache_still_holds_but_that_is_gone_lets_the_dependent_go() -> None:
    owner = obj("owner", "o1")
    dep = obj("dep", "d1", {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "o1"})
    recreated = obj("owner", "o2")  # same name, another object
    api = FakeAPI(recreated, dep)
    gc = collector(api)
    gc.graph.observe("v1", "ConfigMap", owner["metadata"])
    gc.graph.observe("v1", "ConfigMap", dep["metadata"])
    assert await gc.reconcile("d1") is None
    assert api.deleted == [("ConfigMap", "dep", "Background")]


CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
WIDGET = ("example.com/v1", "Widget")


async def test_custom_resources_of_a_crd_made_after_the_start_are_collected_after_a_resync() -> None:
    """A CRD created while the GC runs: its kind joins the graph at the GC's next discovery resync
    (kube's 30 s, 0.5 s here), after which a Widget owned by a deleted ConfigMap is collected, as
    is a ConfigMap owned by a deleted Widget."""

    async with InProcessCluster(controllers=["garbagecollector"], manager_options={"gc_resync_period": 0.5}) as c:
        assert c.cp.http.crds is not None
        crds = await c.cp.http.crds.start()  # the API server's CRD controllers (the helper runs none)
        try:
            await widgets_collected(c)
        finally:
            for t in crds:
                t.cancel()
            await asyncio.gather(*crds, return_exceptions=True)


async def widgets_collected(c: InProcessCluster) -> None:
    await c.client.create(CRD, {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})

    async def established() -> bool:
        conds = ((await c.client.get(CRD, "widgets.example.com")).get("status") or {}).get("conditions") or []
        return any(x["type"] == "Established" and x["status"] == "True" for x in conds)

    await c.until(established, what="the CRD Established")
    owner = await make_owner(c, "owner")
    widget = await c.client.create(WIDGET, {"apiVersion": "example.com/v1", "kind": "Widget",
                                            "metadata": {"name": "child", "ownerReferences": [ref(owner)]}},
                                   "default")
    await c.client.create(CM, cm("grandchild", ref(widget)), "default")
    await c.client.delete(CM, "owner", "default", propagation_policy="Background")
    # the Widget is known to the GC only through a watch of its kind: the resync starts one
    await c.until(lambda: gone(c, WIDGET, "child"), what="the Widget of a deleted ConfigMap collected")
    await c.until(lambda: gone(c, CM, "grandchild"), what="the ConfigMap of a collected Widget collected")
