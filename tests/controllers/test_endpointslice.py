"""The EndpointSlice controller: the pure planner and write tracker, then the controller against an
in-process API server."""

from __future__ import annotations

from typing import Any

from tests.controllers.test_endpoints import pod, svc, web_pod
from tests.helpers.cluster import InProcessCluster

from k8py.controllers.endpointslice import (
    CONTROLLER_NAME,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    SliceTracker,
    plan_slices,
)

Obj = dict[str, Any]
POD = ("v1", "Pod")
SVC = ("v1", "Service")
NODE = ("v1", "Node")
SLICE = ("discovery.k8s.io/v1", "EndpointSlice")
NODES = {"n1": {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}}}


def get_node(name: str) -> Obj | None:
    return NODES.get(name)


def stored(sl: Obj, name: str, uid: str = "") -> Obj:
    """``sl`` as the API server would hand it back."""
    out = {**sl, "metadata": {**sl["metadata"], "name": name, "uid": uid or f"uid-{name}", "generation": 1,
                              "resourceVersion": "5"}}
    out["metadata"].pop("generateName", None)
    return out


def eps(sl: Obj) -> dict[str, Obj]:
    return {e["targetRef"]["name"]: e for e in sl.get("endpoints") or ()}


# -- pure ------------------------------------------------------------------------------------------

def test_new_slice_shape_and_conditions() -> None:
    s = svc()
    plan = plan_slices(s, [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ready=False),
                           pod("c", "10.0.0.3", deleting=True), pod("d", None)], [], get_node)
    assert not plan.update and not plan.delete and len(plan.create) == 1
    sl = plan.create[0]
    assert sl["addressType"] == "IPv4" and sl["metadata"]["generateName"] == "web-"
    assert sl["metadata"]["labels"] == {"team": "a", LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: CONTROLLER_NAME}
    assert sl["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                                  "uid": "uid-svc-web", "controller": True,
                                                  "blockOwnerDeletion": True}]
    assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    e = eps(sl)
    assert set(e) == {"a", "b", "c"}
    assert e["a"] == {"addresses": ["10.0.0.1"], "conditions": {"ready": True, "serving": True, "terminating": False},
                      "nodeName": "n1", "zone": "z1",
                      "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}
    assert e["b"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert e["c"]["conditions"] == {"ready": False, "serving": True, "terminating": True}


def test_unchanged_slices_are_left_alone_and_changes_update_in_place() -> None:
    s = svc()
    first = plan_slices(s, [pod("a", "10.0.0.1"), pod("b", "10.0.0.2")], [], get_node).create[0]
    existing = [stored(first, "web-abcde")]
    again = plan_slices(s, [pod("a", "10.0.0.1"), pod("b", "10.0.0.2")], existing, get_node)
    assert (again.create, again.update, again.delete) == ([], [], [])
    # b not ready now, c new, a gone: one update of the same slice
    plan = plan_slices(s, [pod("b", "10.0.0.2", ready=False), pod("c", "10.0.0.3")], existing, get_node)
    assert not plan.create and not plan.delete and len(plan.update) == 1
    up = plan.update[0]
    assert up["metadata"]["name"] == "web-abcde" and set(eps(up)) == {"b", "c"}
    assert eps(up)["b"]["conditions"]["ready"] is False


def test_max_endpoints_per_slice_and_placeholder() -> None:
    s = svc()
    plan = plan_slices(s, [pod(f"p{i}", f"10.0.0.{i}") for i in range(5)], [], get_node, max_per_slice=2)
    assert sorted(len(x["endpoints"]) for x in plan.create) == [1, 2, 2]
    empty = plan_slices(s, [], [], get_node)
    assert len(empty.create) == 1 and empty.create[0]["endpoints"] == [] and empty.create[0]["ports"] == []
    # the placeholder stays as it is; once endpoints come it is reused rather than replaced
    placeholder = [stored(empty.create[0], "web-ph")]
    assert plan_slices(s, [], placeholder, get_node).create == []
    filled = plan_slices(s, [pod("a")], placeholder, get_node)
    assert not filled.create and not filled.delete
    assert filled.update[0]["metadata"]["name"] == "web-ph" and set(eps(filled.update[0])) == {"a"}


def test_ports_resolved_per_pod_group_slices() -> None:
    s = svc(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    plan = plan_slices(s, [pod("a", "10.0.0.1", ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}]),
                           pod("b", "10.0.0.2", ports=[{"name": "web", "containerPort": 9090, "protocol": "TCP"}]),
                           pod("c", "10.0.0.3")], [], get_node)
    by_ports = {tuple(p["port"] for p in sl["ports"]): set(eps(sl)) for sl in plan.create}
    assert by_ports == {(8080,): {"a"}, (9090,): {"b"}, (): {"c"}}


def test_dual_stack_and_families() -> None:
    dual = svc(cluster_ip="None", ipFamilies=["IPv4", "IPv6"], ports=[])
    plan = plan_slices(dual, [pod("a", ["10.0.0.1", "fd00::1"]), pod("b", "10.0.0.2")], [], get_node)
    by_type = {sl["addressType"]: sl for sl in plan.create}
    assert set(by_type) == {"IPv4", "IPv6"}
    assert {k: v["addresses"] for k, v in eps(by_type["IPv4"]).items()} == {"a": ["10.0.0.1"], "b": ["10.0.0.2"]}
    assert {k: v["addresses"] for k, v in eps(by_type["IPv6"]).items()} == {"a": ["fd00::1"]}
    assert by_type["IPv4"]["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    # the service drops IPv6: that slice goes (reused as nothing else is to be created)
    v4_only = svc(cluster_ip="None", ipFamilies=["IPv4"], ports=[])
    existing = [stored(by_type["IPv4"], "w-4"), stored(by_type["IPv6"], "w-6")]
    again = plan_slices(v4_only, [pod("a", ["10.0.0.1", "fd00::1"]), pod("b", "10.0.0.2")], existing, get_node)
    assert [x["metadata"]["name"] for x in again.delete] == ["w-6"] and not again.create and not again.update


def test_missing_node_and_foreign_slices() -> None:
    s = svc()
    lost = pod("a")
    lost["spec"]["nodeName"] = "gone"
    plan = plan_slices(s, [lost], [], get_node)
    assert plan.missing_nodes == {"gone"} and plan.create[0]["endpoints"] == []
    # a slice of an older service of the same name is deleted, not reused
    old = stored(plan_slices(svc(), [pod("a")], [], get_node).create[0], "web-old")
    old["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    plan = plan_slices(s, [pod("a")], [old], get_node)
    assert [x["metadata"]["name"] for x in plan.delete] == ["web-old"] and len(plan.create) == 1


def test_tracker_detects_stale_cache() -> None:
    t = SliceTracker()
    a = {"metadata": {"uid": "a", "generation": 2}}
    t.update("ns/s", a)
    assert not t.should_sync("ns/s", a)  # our own write coming back
    assert t.should_sync("ns/s", {"metadata": {"uid": "a", "generation": 3}})  # someone else's
    assert t.stale("ns/s", [])  # the cache has not seen our write yet
    assert t.stale("ns/s", [{"metadata": {"uid": "a", "generation": 1}}])
    assert not t.stale("ns/s", [a])
    t.expect_deletion("ns/s", a)
    assert t.stale("ns/s", [a]) and not t.stale("ns/s", [])
    assert not t.handle_deleted("ns/s", a)  # our delete: nothing to do
    assert t.handle_deleted("ns/s", {"metadata": {"uid": "b"}})  # not ours: look again


# -- against the API server ------------------------------------------------------------------------

async def slices_of(c: InProcessCluster, svc_name: str) -> list[Obj]:
    lst = await c.client.list(SLICE, "default", label_selector=f"{LABEL_SERVICE_NAME}={svc_name}")
    return list(lst["items"])


def summary(slices: list[Obj]) -> set[tuple[str, str, bool]]:
    return {(sl["addressType"], e["targetRef"]["name"], e["conditions"]["ready"])
            for sl in slices for e in sl.get("endpoints") or ()}


async def test_slices_follow_pods() -> None:
    async with InProcessCluster(controllers=["endpointslice"], manager_options={"max_endpoints_per_slice": 2}) as c:
        await c.add_node("node-1", labels={"topology.kubernetes.io/zone": "zone-a"},
                         ready=lambda p: p["metadata"]["labels"].get("ready") != "no")
        created = await c.client.create(SVC, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                              "spec": {"selector": {"app": "web"},
                                                       "ports": [{"name": "http", "port": 80,
                                                                  "targetPort": "http"}]}}, "default")
        # no pods yet: one placeholder slice
        async def placeholder() -> bool:
            s = await slices_of(c, "web")
            return len(s) == 1 and not s[0].get("endpoints")

        await c.until(placeholder, what="placeholder slice")
        for name, ready in (("w1", True), ("w2", False), ("w3", True)):
            await c.client.create(POD, web_pod(name, ready=ready), "default")

        async def shows(want: set[tuple[str, str, bool]], n_slices: int | None = None) -> bool:
            s = await slices_of(c, "web")
            return summary(s) == want and (n_slices is None or len(s) == n_slices)

        await c.until(lambda: shows({("IPv4", "w1", True), ("IPv4", "w2", False), ("IPv4", "w3", True)}, 2),
                      what="3 endpoints in 2 slices of at most 2")
        slices = await slices_of(c, "web")
        for sl in slices:
            m = sl["metadata"]
            assert m["name"].startswith("web-") and m["labels"][LABEL_MANAGED_BY] == CONTROLLER_NAME
            assert m["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
            assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
            for e in sl["endpoints"]:
                assert e["nodeName"] == "node-1" and e["zone"] == "zone-a"

        await c.client.delete(POD, "w1", "default")
        await c.until(lambda: shows({("IPv4", "w2", False), ("IPv4", "w3", True)}), what="w1 gone")

        # a slice deleted by someone comes back
        victim = next(sl for sl in await slices_of(c, "web") if sl.get("endpoints"))
        await c.client.delete(SLICE, victim["metadata"]["name"], "default")
        await c.until(lambda: shows({("IPv4", "w2", False), ("IPv4", "w3", True)}), what="deleted slice restored")

        await c.client.delete(SVC, "web", "default")

        async def none_left() -> bool:
            return not await slices_of(c, "web")

        await c.until(none_left, what="slices gone with the service")


async def test_dual_stack_slices() -> None:
    async with InProcessCluster(controllers=["endpointslice"], service_cidr="10.43.0.0/16,fd00:43::/112") as c:
        await c.client.create(NODE, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "manual"}})
        await c.client.create(SVC, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                                    "spec": {"clusterIP": "None", "ipFamilyPolicy": "RequireDualStack",
                                             "ipFamilies": ["IPv4", "IPv6"], "selector": {"app": "db"}}},
                              "default")
        p = await c.client.create(POD, {"apiVersion": "v1", "kind": "Pod",
                                        "metadata": {"name": "db-0", "labels": {"app": "db"}},
                                        "spec": {"nodeName": "manual", "hostname": "db-0", "subdomain": "db",
                                                 "containers": [{"name": "c", "image": "i"}]}}, "default")
        p["status"] = {"phase": "Running", "podIP": "10.9.0.5", "podIPs": [{"ip": "10.9.0.5"}, {"ip": "fd00::5"}],
                       "conditions": [{"type": "Ready", "status": "True"}]}
        await c.client.update_status(POD, p, "default")

        async def both() -> list[Obj] | None:
            s = await slices_of(c, "db")
            by = {sl["addressType"]: sl for sl in s if sl.get("endpoints")}
            return [by["IPv4"], by["IPv6"]] if set(by) == {"IPv4", "IPv6"} else None

        v4, v6 = await c.until(both, what="an IPv4 and an IPv6 slice")
        assert v4["endpoints"][0]["addresses"] == ["10.9.0.5"] and v6["endpoints"][0]["addresses"] == ["fd00::5"]
        assert v4["endpoints"][0]["hostname"] == "db-0" and v4["ports"] == []
