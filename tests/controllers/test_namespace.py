"""The namespace controller: a deleted namespace is emptied, reports what is left, then goes."""

from __future__ import annotations

from typing import Any

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.client.errors import ForbiddenError, NotFoundError
from k8py.controllers.namespace import CONDITION_TYPES, ContentTotals, update_conditions

Obj = dict[str, Any]
NS = ("v1", "Namespace")
CM = ("v1", "ConfigMap")
SECRET = ("v1", "Secret")
POD = ("v1", "Pod")
HOLD = "test.k8py.io/hold"


def pod(name: str, finalizers: list[str] | None = None) -> Obj:
    md: Obj = {"name": name}
    if finalizers:
        md["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def conditions(ns: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in (ns.get("status") or {}).get("conditions") or []}


async def test_deleting_a_namespace_empties_it_then_removes_it() -> None:
    async with InProcessCluster(controllers=["namespace"]) as c:
        await c.add_node("node-1")
        await c.client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
        for i in range(3):
            await c.client.create(CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"},
                                       "data": {"k": "v"}}, "doomed")
        await c.client.create(SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                       "stringData": {"k": "v"}}, "doomed")
        # two pods that a finalizer holds, so what is left can be seen in the conditions
        for i in range(2):
            await c.client.create(POD, pod(f"p{i}", [HOLD]), "doomed")
        await c.client.create(POD, pod("free"), "doomed")

        async def running() -> bool:
            pods = (await c.client.list(POD, "doomed"))["items"]
            return len(pods) == 3 and all((p.get("status") or {}).get("phase") == "Running" for p in pods)

        await c.until(running, what="pods running on the fake node")

        await c.client.delete(NS, "doomed")
        ns = await c.client.get(NS, "doomed")
        assert ns["status"]["phase"] == "Terminating"

        async def only_held_pods_left() -> Obj | None:
            # first the free pod is still finishing on the node (3 left), then only the held two
            ns = await c.client.get(NS, "doomed")
            cond = conditions(ns).get("NamespaceContentRemaining") or {}
            ok = cond.get("status") == "True" and \
                cond.get("message") == "Some resources are remaining: pods. has 2 resource instances"
            return ns if ok else None

        ns = await c.until(only_held_pods_left, what="NamespaceContentRemaining: the two held pods")
        cond = conditions(ns)
        assert cond["NamespaceContentRemaining"]["reason"] == "SomeResourcesRemain"
        assert cond["NamespaceFinalizersRemaining"]["status"] == "True"
        assert cond["NamespaceFinalizersRemaining"]["message"] == \
            f"Some finalizers are remaining: {HOLD} in 2 resource instances"
        for typ in ("NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
                    "NamespaceDeletionContentFailure"):
            assert cond[typ]["status"] == "False", cond[typ]
        assert not (await c.client.list(CM, "doomed"))["items"]
        assert not (await c.client.list(SECRET, "doomed"))["items"]
        assert [p["metadata"]["name"] for p in (await c.client.list(POD, "doomed"))["items"]] == ["p0", "p1"]
        assert (await c.client.get(NS, "doomed"))["spec"]["finalizers"] == ["kubernetes"]
        # nothing new may be created meanwhile
        with pytest.raises(ForbiddenError):
            await c.client.create(CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}},
                                  "doomed")

        # let the pods go: the node finishes them, then the namespace is finalized and deleted
        for i in range(2):
            await c.client.patch(POD, f"p{i}", {"metadata": {"finalizers": None}}, "doomed")

        async def ns_gone() -> bool:
            try:
                await c.client.get(NS, "doomed")
            except NotFoundError:
                return True
            return False

        await c.until(ns_gone, what="namespace deleted once empty")
        assert not (await c.client.list(POD, "doomed"))["items"]


async def test_empty_namespace_goes_at_once_and_immortal_ones_cannot_be_deleted() -> None:
    async with InProcessCluster(controllers=["namespace"]) as c:
        await c.client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "empty"}})
        await c.client.delete(NS, "empty")

        async def gone() -> bool:
            try:
                await c.client.get(NS, "empty")
            except NotFoundError:
                return True
            return False

        await c.until(gone, what="empty namespace deleted")
        for name in ("default", "kube-system", "kube-public"):  # as kube's NamespaceLifecycle
            with pytest.raises(ForbiddenError):
                await c.client.delete(NS, name)
            ns = await c.client.get(NS, name)
            assert not ns["metadata"].get("deletionTimestamp")


async def test_namespace_with_owned_objects_and_the_garbage_collector() -> None:
    # Both controllers at once: the namespace controller deletes with Background propagation,
    # and an owner being deleted in foreground (finalizer on it) only counts as "remaining"
    # until the garbage collector has removed its dependents.
    async with InProcessCluster(controllers=["namespace", "garbagecollector"]) as c:
        await c.client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "owned"}})
        owner = await c.client.create(CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}},
                                      "owned")
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"],
               "blockOwnerDeletion": True}
        for i in range(3):
            await c.client.create(SECRET, {"apiVersion": "v1", "kind": "Secret",
                                           "metadata": {"name": f"s{i}", "ownerReferences": [ref]}}, "owned")
        await c.client.delete(CM, "owner", "owned", propagation_policy="Foreground")
        await c.client.delete(NS, "owned")

        async def gone() -> bool:
            try:
                await c.client.get(NS, "owned")
            except NotFoundError:
                return True
            return False

        await c.until(gone, what="namespace with owners and dependents deleted")


# -- conditions alone --------------------------------------------------------------------------


def test_conditions_flip_and_keep_transition_times() -> None:
    t = ContentTotals(remaining={"pods.": 2, "configmaps.": 0}, estimate=30)
    t.finalizers.update(["a/b", "a/b", "c/d"])
    first = update_conditions([], t.conditions(), "2024-01-01T00:00:00Z")
    assert first is not None and [c["type"] for c in first] == list(CONDITION_TYPES)
    by = {c["type"]: c for c in first}
    assert by["NamespaceContentRemaining"]["message"] == "Some resources are remaining: pods. has 2 resource instances"
    assert by["NamespaceFinalizersRemaining"]["message"] == \
        "Some finalizers are remaining: a/b in 2 resource instances, c/d in 1 resource instances"
    assert by["NamespaceDeletionDiscoveryFailure"] == {
        "type": "NamespaceDeletionDiscoveryFailure", "status": "False", "reason": "ResourcesDiscovered",
        "message": "All resources successfully discovered", "lastTransitionTime": "2024-01-01T00:00:00Z"}
    # the same state again: nothing to write
    assert update_conditions(first, t.conditions(), "2024-01-01T00:01:00Z") is None
    # content gone: ContentRemaining flips (new time), the unchanged ones keep theirs
    done = update_conditions(first, ContentTotals().conditions(), "2024-01-01T00:02:00Z")
    assert done is not None
    by = {c["type"]: c for c in done}
    assert by["NamespaceContentRemaining"] == {
        "type": "NamespaceContentRemaining", "status": "False", "reason": "ContentRemoved",
        "message": "All content successfully removed", "lastTransitionTime": "2024-01-01T00:02:00Z"}
    assert by["NamespaceDeletionDiscoveryFailure"]["lastTransitionTime"] == "2024-01-01T00:00:00Z"
    failing = ContentTotals(discovery_errors=["apps/v1: 503"], delete_errors=["pods.: boom"])
    conds = {c["type"]: c for c in update_conditions(done, failing.conditions(), "t") or []}
    assert conds["NamespaceDeletionDiscoveryFailure"]["message"] == \
        "Discovery failed for some groups, 1 failing: apps/v1: 503"
    assert conds["NamespaceDeletionContentFailure"]["message"] == \
        "Failed to delete all resource types, 1 remaining: pods.: boom"
