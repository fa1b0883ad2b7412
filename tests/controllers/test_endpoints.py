"""The Endpoints controller: pure subset computation, then the controller against an in-process
API server with a fake node playing kubelet."""

from __future__ import annotations

from typing import Any

from tests.helpers.cluster import InProcessCluster

from k8py.client.errors import NotFoundError
from k8py.controllers.endpoints import (
    CONTROLLER_NAME,
    LABEL_MANAGED_BY,
    compute_subsets,
    find_port,
    services_to_update_on_pod_change,
    truncate_subsets,
)

Obj = dict[str, Any]
POD = ("v1", "Pod")
SVC = ("v1", "Service")
EP = ("v1", "Endpoints")


def pod(name: str, ip: str | list[str] | None = "10.0.0.1", *, ready: bool = True, labels: Obj | None = None,
        ports: list[Obj] | None = None, phase: str = "Running", deleting: bool = False, **spec: Any) -> Obj:
    ips = [ip] if isinstance(ip, str) else (ip or [])
    status: Obj = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": i} for i in ips]
    m: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {"app": "web"},
              "resourceVersion": "1"}
    if deleting:
        m["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": m, "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports or []}], **spec},
            "status": status}


def svc(name: str = "web", *, ports: list[Obj] | None = None, cluster_ip: str = "10.96.0.10", **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-svc-{name}", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": cluster_ip, "ipFamilies": ["IPv4"],
                     "ports": ports if ports is not None else [{"name": "http", "port": 80, "targetPort": 8080,
                                                                "protocol": "TCP"}], **spec}}


def flat(subsets: list[Obj]) -> set[tuple[str, str, int, bool]]:
    """(pod, port name, port, ready) for every address x port of the subsets."""
    out = set()
    for s in subsets:
        for ready, key in ((True, "addresses"), (False, "notReadyAddresses")):
            for a in s.get(key) or ():
                for p in s.get("ports") or [{"name": "", "port": 0}]:
                    out.add((a["targetRef"]["name"], p.get("name", ""), p["port"], ready))
    return out


# -- pure ------------------------------------------------------------------------------------------

def test_ready_and_not_ready_addresses() -> None:
    subs = compute_subsets(svc(), [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ready=False),
                                   pod("c", None), pod("d", "10.0.0.4", phase="Succeeded"),
                                   pod("e", "10.0.0.5", deleting=True)])
    assert flat(subs) == {("a", "http", 8080, True), ("b", "http", 8080, False)}
    assert len(subs) == 1  # same port: one subset with both lists
    a = subs[0]["addresses"][0]
    assert a == {"ip": "10.0.0.1", "nodeName": "n1",
                 "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}


def test_named_ports_resolve_per_pod_and_pods_without_the_port_are_left_out() -> None:
    s = svc(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
                   {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}])
    pods = [pod("a", "10.0.0.1", ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}]),
            pod("b", "10.0.0.2", ports=[{"name": "web", "containerPort": 8081, "protocol": "TCP"}]),
            pod("c", "10.0.0.3", ports=[{"name": "web", "containerPort": 53, "protocol": "UDP"}])]
    subs = compute_subsets(s, pods)
    assert flat(subs) == {("a", "http", 8080, True), ("b", "http", 8081, True), ("a", "metrics", 9090, True),
                          ("b", "metrics", 9090, True), ("c", "metrics", 9090, True)}
    # kube's repacking: a and b differ on http, so each has its own subset with its http port
    assert sorted(len(x.get("ports") or ()) for x in subs) == [1, 1, 1]
    sidecar = {"metadata": {}, "spec": {"containers": [], "initContainers": [
        {"name": "s", "restartPolicy": "Always", "ports": [{"name": "web", "containerPort": 7000}]}]}}
    assert find_port(sidecar, {"targetPort": "web", "protocol": "TCP"}) == 7000


def test_publish_not_ready_headless_and_hostname() -> None:
    s = svc("web", ports=[], cluster_ip="None", publishNotReadyAddresses=True)
    subs = compute_subsets(s, [pod("a", "10.0.0.1", ready=False, hostname="a", subdomain="web"),
                               pod("b", "10.0.0.2", deleting=True)])
    assert len(subs) == 1 and "ports" not in subs[0]
    addrs = {a["targetRef"]["name"]: a for a in subs[0]["addresses"]}
    assert set(addrs) == {"a", "b"}  # not ready and terminating pods are published
    assert addrs["a"]["hostname"] == "a" and "hostname" not in addrs["b"]
    # a headful service without ports gets no addresses at all
    assert compute_subsets(svc(ports=[]), [pod("a")]) == []


def test_address_family_follows_the_service() -> None:
    dual = pod("a", ["10.0.0.1", "fd00::1"])
    assert compute_subsets(svc(), [dual])[0]["addresses"][0]["ip"] == "10.0.0.1"
    v6 = svc(ipFamilies=["IPv6"], cluster_ip="fd00::a")
    assert compute_subsets(v6, [dual])[0]["addresses"][0]["ip"] == "fd00::1"
    assert compute_subsets(v6, [pod("b", "10.0.0.2")]) == []


def test_not_ready_on_one_port_wins_and_truncation() -> None:
    subs = [{"addresses": [{"ip": f"10.0.{i // 250}.{i % 250}"} for i in range(900)],
             "notReadyAddresses": [{"ip": f"10.1.{i // 250}.{i % 250}"} for i in range(300)]}]
    assert truncate_subsets(subs, 1000)
    assert len(subs[0]["addresses"]) == 900 and len(subs[0]["notReadyAddresses"]) == 100
    assert not truncate_subsets([{"addresses": [{"ip": "1.1.1.1"}]}], 1000)


def test_pod_changes_that_matter() -> None:
    services = [svc("web"), {"metadata": {"name": "other", "namespace": "default"},
                             "spec": {"selector": {"app": "other"}}}]
    old = pod("a")
    same = {**old, "metadata": {**old["metadata"], "resourceVersion": "2", "annotations": {"x": "y"}}}
    assert services_to_update_on_pod_change(services, old, same) == set()
    unready = pod("a", ready=False)
    unready["metadata"]["resourceVersion"] = "2"
    assert services_to_update_on_pod_change(services, old, unready) == {"default/web"}
    moved = pod("a", labels={"app": "other"})
    moved["metadata"]["resourceVersion"] = "2"
    assert services_to_update_on_pod_change(services, old, moved) == {"default/web", "default/other"}


# -- against the API server ------------------------------------------------------------------------

def web_pod(name: str, *, ready: bool = True, port: int = 8080, labels: Obj | None = None, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web", **(labels or {}), "ready": "yes" if ready else "no"}},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "ports": [{"name": "http", "containerPort": port}]}], **spec}}


async def endpoints_of(c: InProcessCluster, name: str) -> Obj | None:
    try:
        return await c.client.get(EP, name, "default")
    except NotFoundError:
        return None


async def test_endpoints_follow_pods() -> None:
    async with InProcessCluster(controllers=["endpoints"]) as c:
        await c.add_node("node-1", ready=lambda p: p["metadata"]["labels"].get("ready") != "no")
        await c.client.create(SVC, {"apiVersion": "v1", "kind": "Service",
                                    "metadata": {"name": "web", "labels": {"team": "a"}},
                                    "spec": {"selector": {"app": "web"},
                                             "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                                       {"name": "raw", "port": 81, "targetPort": 9000}]}},
                              "default")
        await c.client.create(POD, web_pod("w1", port=8080), "default")
        await c.client.create(POD, web_pod("w2", port=8081, ready=False), "default")

        async def shows(want: set[tuple[str, str, int, bool]]) -> bool:
            ep = await endpoints_of(c, "web")
            return ep is not None and flat(ep.get("subsets") or []) == want

        await c.until(lambda: shows({("w1", "http", 8080, True), ("w1", "raw", 9000, True),
                                     ("w2", "http", 8081, False), ("w2", "raw", 9000, False)}),
                      what="endpoints with ready w1 and not-ready w2, named port per pod")
        ep = await endpoints_of(c, "web")
        assert ep is not None
        assert ep["metadata"]["labels"] == {"team": "a", LABEL_MANAGED_BY: CONTROLLER_NAME}
        assert all(a["nodeName"] == "node-1" for s in ep["subsets"] for a in s.get("addresses") or ())

        await c.client.create(POD, web_pod("w3", port=8082), "default")
        await c.client.delete(POD, "w1", "default")
        await c.until(lambda: shows({("w3", "http", 8082, True), ("w3", "raw", 9000, True),
                                     ("w2", "http", 8081, False), ("w2", "raw", 9000, False)}),
                      what="w3 added, w1 gone")

        # deleted by someone: made again
        await c.client.delete(EP, "web", "default")
        await c.until(lambda: shows({("w3", "http", 8082, True), ("w3", "raw", 9000, True),
                                     ("w2", "http", 8081, False), ("w2", "raw", 9000, False)}),
                      what="deleted Endpoints recreated")

        # the service goes: so do its Endpoints
        await c.client.delete(SVC, "web", "default")

        async def gone() -> bool:
            return await endpoints_of(c, "web") is None

        await c.until(gone, what="endpoints deleted with their service")
        # the apiserver's own Endpoints are left alone
        k = await endpoints_of(c, "kubernetes")
        assert k is not None and LABEL_MANAGED_BY not in (k["metadata"].get("labels") or {})


async def test_headless_publish_not_ready_hostname_and_selectorless() -> None:
    async with InProcessCluster(controllers=["endpoints"]) as c:
        await c.add_node("node-1", ready=lambda p: False)
        await c.client.create(SVC, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                                    "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                                             "selector": {"app": "web"}}}, "default")
        await c.client.create(SVC, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
                                    "spec": {"ports": [{"port": 80}]}}, "default")
        manual = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext"},
                  "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]}
        await c.client.create(EP, manual, "default")
        await c.client.create(POD, web_pod("db-0", hostname="db-0", subdomain="db"), "default")

        async def published() -> Obj | None:
            ep = await endpoints_of(c, "db")
            addrs = [a for s in (ep or {}).get("subsets") or () for a in s.get("addresses") or ()]
            return ep if addrs else None

        ep = await c.until(published, what="a not-ready pod published on a headless service")
        sub = ep["subsets"][0]
        assert "ports" not in sub and "notReadyAddresses" not in sub
        assert sub["addresses"][0]["hostname"] == "db-0"
        assert ep["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
        ext = await endpoints_of(c, "ext")
        assert ext is not None and ext["subsets"][0]["addresses"] == [{"ip": "192.0.2.1"}]
