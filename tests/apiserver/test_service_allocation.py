"""Service ClusterIP / NodePort allocation through the store: several API servers on one store
never hand out one address or port twice; deletes free at once; failed writes and type changes
leave nothing that blocks; a repair pass records old allocations and frees leaked ones."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from k8py.api.registry import Registry
from k8py.apiserver import server as srv
from k8py.apiserver.objects import Objects
from k8py.apiserver.registry.serviceallocation import IP_PREFIX, PORT_PREFIX, Owner, ServiceAllocator
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore

SVCS = "/api/v1/namespaces/default/services"
SERVICES = Registry().by_resource("", "v1", "services")
assert SERVICES is not None


def svc(name: str, *, ip: str | None = None, node_port: int | None = None, type_: str | None = None,
        port: int = 80) -> dict[str, Any]:
    p: dict[str, Any] = {"port": port, "protocol": "TCP"}
    spec: dict[str, Any] = {"selector": {"app": name}, "ports": [p]}
    if ip:
        spec["clusterIP"] = ip
    if node_port:
        p["nodePort"] = node_port
        type_ = type_ or "NodePort"
    if type_:
        spec["type"] = type_
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


async def _client(store: MemoryStore, tmp: Path, cidr: str) -> TestClient:
    cp = srv.build(ServerConfig(data_dir=str(tmp), service_cidr=cidr), store)
    await cp.bootstrap()
    cp.http.ready = True
    c = TestClient(TestServer(cp.http.build()))
    await c.start_server()
    c.cp = cp  # type: ignore[attr-defined]
    return c


class SlowStore(MemoryStore):
    """The memory store with a store's latency: every read and write waits a little (as a network
    round trip to etcd would), so requests on two servers interleave between their reads and
    writes. (The plain memory store answers without yielding, so nothing would race.)"""

    def __init__(self, seed: int) -> None:
        super().__init__(progress_interval=0.1)
        self._rng = random.Random(seed)

    async def _pause(self) -> None:
        await asyncio.sleep(self._rng.random() * 0.002)

    async def get(self, *a: Any, **kw: Any) -> Any:
        await self._pause()
        return await super().get(*a, **kw)

    async def list(self, *a: Any, **kw: Any) -> Any:
        await self._pause()
        return await super().list(*a, **kw)

    async def create(self, *a: Any, **kw: Any) -> Any:
        await self._pause()
        return await super().create(*a, **kw)

    async def update(self, *a: Any, **kw: Any) -> Any:
        await self._pause()
        return await super().update(*a, **kw)

    async def delete(self, *a: Any, **kw: Any) -> Any:
        await self._pause()
        return await super().delete(*a, **kw)


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[MemoryStore, list[TestClient]]]:
    """Two API servers (two ControlPlanes) on one store, with a small service CIDR: 29 addresses."""
    store = SlowStore(seed=7)
    await store.start()
    clients = [await _client(store, tmp_path / str(i), "10.96.0.0/27") for i in range(2)]
    yield store, clients
    for c in clients:
        await c.close()
    await store.close()


async def _create(c: TestClient, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    r = await c.post(SVCS, json=body)
    return r.status, await r.json()


async def test_two_servers_racing_never_share_an_address_or_port(two: tuple[MemoryStore, list[TestClient]]) -> None:
    _, (a, b) = two
    # 29 Services for the 29 addresses left (the kubernetes Service has the first), all at once.
    results = await asyncio.gather(*(
        _create(a if i % 2 else b, svc(f"s{i}", type_="NodePort")) for i in range(29)))
    assert [st for st, _ in results] == [201] * 29, [o.get("message") for st, o in results if st != 201]
    ips = [o["spec"]["clusterIP"] for _, o in results]
    ports = [o["spec"]["ports"][0]["nodePort"] for _, o in results]
    assert len(set(ips)) == 29 and "10.96.0.1" not in ips
    assert len(set(ports)) == 29
    # The range is full now, for both servers.
    for c in (a, b):
        st, o = await _create(c, svc("one-more"))
        assert st == 500 and o["message"].endswith("failed to allocate a serviceIP: range is full")
    # Deleting frees at once, for the other server too.
    r = await a.delete(f"{SVCS}/s0")
    assert r.status == 200
    st, o = await _create(b, svc("one-more", ip=ips[0]))
    assert st == 201 and o["spec"]["clusterIP"] == ips[0]


async def test_same_explicit_address_or_port_through_both_servers(two: tuple[MemoryStore, list[TestClient]]) -> None:
    _, (a, b) = two
    results = await asyncio.gather(*(_create(a if i % 2 else b, svc(f"ip{i}", ip="10.96.0.20")) for i in range(6)))
    assert sorted(st for st, _ in results) == [201] + [422] * 5
    for st, o in results:
        if st == 422:
            assert o["details"]["causes"] == [{
                "reason": "FieldValueInvalid", "field": "spec.clusterIPs",
                "message": 'Invalid value: ["10.96.0.20"]: failed to allocate IP 10.96.0.20: provided IP is '
                           "already allocated"}]
    results = await asyncio.gather(*(_create(a if i % 2 else b, svc(f"np{i}", node_port=30555)) for i in range(6)))
    assert sorted(st for st, _ in results) == [201] + [422] * 5
    assert {o["details"]["causes"][0]["message"] for st, o in results if st == 422} == {
        "Invalid value: 30555: provided port is already allocated"}


async def test_failed_writes_and_type_changes_leave_nothing_blocking(two: tuple[MemoryStore, list[TestClient]]) -> None:
    _, (a, b) = two
    # A create that fails validation after its address was reserved does not keep it.
    bad = svc("bad", ip="10.96.0.21", node_port=30600)
    bad["spec"]["ports"][0]["protocol"] = "BOGUS"
    st, _ = await _create(a, bad)
    assert st == 422
    st, o = await _create(a, svc("good", ip="10.96.0.21", node_port=30600))
    assert st == 201, o
    # Nor does one that fails because the name exists.
    st, _ = await _create(a, svc("good", ip="10.96.0.22"))
    assert st == 409
    st, _ = await _create(a, svc("other", ip="10.96.0.22"))
    assert st == 201
    # NodePort -> ClusterIP: the node port is free again.
    r = await a.get(f"{SVCS}/good")
    good = await r.json()
    good["spec"]["type"] = "ClusterIP"
    del good["spec"]["ports"][0]["nodePort"]
    del good["spec"]["externalTrafficPolicy"]
    r = await a.put(f"{SVCS}/good", json=good)
    assert r.status == 200, await r.text()
    # (its address given: a random one from this small range could be the dry run's below)
    st, o = await _create(a, svc("takes-port", ip="10.96.0.24", node_port=30600))
    assert st == 201, o
    # ... and back: the port it had is someone else's now; it gets another.
    good = await (await a.get(f"{SVCS}/good")).json()
    good["spec"]["type"] = "NodePort"
    r = await a.put(f"{SVCS}/good", json=good)
    assert r.status == 200
    good_port = (await r.json())["spec"]["ports"][0]["nodePort"]
    assert good_port not in (30600, None)
    # Keeping what one has across updates needs nothing new.
    r = await a.get(f"{SVCS}/takes-port")
    o = await r.json()
    o["metadata"]["labels"] = {"x": "y"}
    r = await a.put(f"{SVCS}/takes-port", json=o)
    assert r.status == 200 and (await r.json())["spec"]["ports"][0]["nodePort"] == 30600
    # Dry runs reserve nothing (a port "good" was not given at random).
    port = 30601 if good_port != 30601 else 30602
    r = await a.post(f"{SVCS}?dryRun=All", json=svc("dry", ip="10.96.0.23", node_port=port))
    assert r.status == 201, await r.text()
    st, _ = await _create(b, svc("wet", ip="10.96.0.23", node_port=port))
    assert st == 201


async def test_repair_records_old_allocations_and_frees_leaks(tmp_path: Path) -> None:
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    try:
        # A Service stored before reservations existed, and a leaked reservation of nobody.
        legacy = svc("legacy", ip="10.96.0.30", node_port=30700)
        legacy["metadata"].update(namespace="default", uid="u-legacy")
        await store.create(SERVICES.key("default", "legacy"), orjson.dumps(legacy))
        await store.create(IP_PREFIX + "10.96.0.31", orjson.dumps(
            {"namespace": "default", "name": "gone", "uid": "u-gone", "claimed": 0, "by": "", "claim": ""}))
        c = await _client(store, tmp_path, "10.96.0.0/24")  # its bootstrap runs the first repair
        try:
            assert await store.get(IP_PREFIX + "10.96.0.30") is not None
            assert await store.get(PORT_PREFIX + "30700") is not None
            assert await store.get(IP_PREFIX + "10.96.0.31") is None
            st, o = await _create(c, svc("x", ip="10.96.0.30"))
            assert st == 422 and "already allocated" in o["message"]
            st, o = await _create(c, svc("y", node_port=30700))
            assert st == 422 and "already allocated" in o["message"]
        finally:
            await c.close()
    finally:
        await store.close()


async def test_another_servers_claim_blocks_for_the_grace_period(tmp_path: Path) -> None:
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    try:
        objects = Objects(store)
        now = [1000.0]
        mine = ServiceAllocator(objects, SERVICES, clock=lambda: now[0], grace=60)
        theirs = ServiceAllocator(objects, SERVICES, clock=lambda: now[0], grace=60)
        key = IP_PREFIX + "10.43.0.9"
        # Their claim for a Service not written yet (in flight, or failed: nobody can tell yet).
        assert await theirs.claim(key, Owner("default", "theirs", "u1"))
        assert not await mine.claim(key, Owner("default", "mine", "u2"))
        assert not await mine.claim(key, Owner("default", "mine", "u2"), dry=True)
        now[0] += 61  # their Service never came: the claim is stale
        assert await mine.claim(key, Owner("default", "mine", "u2"), dry=True)
        assert await mine.claim(key, Owner("default", "mine", "u2"))
        # A Service that holds it keeps it, however old the claim.
        await store.create(SERVICES.key("default", "mine"), orjson.dumps(
            {"metadata": {"name": "mine", "namespace": "default", "uid": "u2"},
             "spec": {"clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"]}}))
        now[0] += 1000
        assert not await theirs.claim(key, Owner("default", "theirs", "u1"))
        # A repair pass leaves it alone and releases nothing held.
        await theirs.repair()
        assert await store.get(key) is not None
    finally:
        await store.close()


async def test_what_a_request_left_is_released_by_the_next_allocation(tmp_path: Path) -> None:
    """A failed create and a NodePort -> ClusterIP change leave reservations nobody holds; the
    server's next allocation releases them, so they are free for picking again."""
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    c = await _client(store, tmp_path, "10.96.0.0/24")
    try:
        bad = svc("bad", ip="10.96.0.40", node_port=30800)
        bad["spec"]["ports"][0]["protocol"] = "BOGUS"
        assert (await _create(c, bad))[0] == 422
        st, o = await _create(c, svc("np", node_port=30801))
        assert st == 201
        o["spec"]["type"] = "ClusterIP"
        del o["spec"]["ports"][0]["nodePort"]
        del o["spec"]["externalTrafficPolicy"]
        r = await c.put(f"{SVCS}/np", json=o)
        assert r.status == 200, await r.text()
        assert await store.get(PORT_PREFIX + "30801") is not None  # the update cannot know it succeeded
        assert (await _create(c, svc("next")))[0] == 201
        for key in (IP_PREFIX + "10.96.0.40", PORT_PREFIX + "30800", PORT_PREFIX + "30801"):
            assert await store.get(key) is None, key
        assert await store.get(IP_PREFIX + o["spec"]["clusterIP"]) is not None  # still held
    finally:
        await c.close()
        await store.close()


# -- dual-stack (kube's initIPFamilyFields) -------------------------------------------------------

DUAL = "10.96.0.0/24,fd00:96::/112"


async def _create(c: TestClient, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    r = await c.post("/api/v1/namespaces/default/services", data=orjson.dumps(body),
                     headers={"Content-Type": "application/json"})
    return r.status, orjson.loads(await r.read())


def _spec(**kw: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": kw.pop("name")},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}], **kw}}


async def test_dual_stack_policies_and_families(tmp_path: Path) -> None:
    c = await _client(MemoryStore(), tmp_path, DUAL)
    try:
        code, s = await _create(c, _spec(name="single"))
        assert code == 201 and s["spec"]["ipFamilyPolicy"] == "SingleStack" and s["spec"]["ipFamilies"] == ["IPv4"]
        assert len(s["spec"]["clusterIPs"]) == 1 and s["spec"]["clusterIP"].startswith("10.96.0.")
        code, s = await _create(c, _spec(name="prefer", ipFamilyPolicy="PreferDualStack"))
        assert code == 201 and s["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
        v4, v6 = s["spec"]["clusterIPs"]
        assert v4.startswith("10.96.0.") and v6.startswith("fd00:96::") and s["spec"]["clusterIP"] == v4
        code, s = await _create(c, _spec(name="v6first", ipFamilyPolicy="RequireDualStack",
                                         ipFamilies=["IPv6", "IPv4"]))
        assert code == 201 and [":" in ip for ip in s["spec"]["clusterIPs"]] == [True, False]
        code, s = await _create(c, _spec(name="v6only", ipFamilies=["IPv6"]))
        assert code == 201 and s["spec"]["clusterIP"].startswith("fd00:96::")
        # two addresses asked for: RequireDualStack is inferred... only when no policy says otherwise
        code, s = await _create(c, _spec(name="two", clusterIP="10.96.0.77", clusterIPs=["10.96.0.77", "fd00:96::77"],
                                         ipFamilyPolicy="RequireDualStack"))
        assert code == 201 and s["spec"]["clusterIPs"] == ["10.96.0.77", "fd00:96::77"]
        code, s = await _create(c, _spec(name="bad", clusterIP="10.96.0.78", clusterIPs=["10.96.0.78", "fd00:96::78"],
                                         ipFamilyPolicy="SingleStack"))
        assert code == 422
        assert s["details"]["causes"][0] == {
            "reason": "FieldValueInvalid", "field": "spec.ipFamilyPolicy",
            "message": "Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when "
                       "multiple cluster IPs are specified"}
        # an address of the other family taken is refused as kube refuses it
        code, s = await _create(c, _spec(name="taken", clusterIP="10.96.0.79", clusterIPs=["10.96.0.79", "fd00:96::77"],
                                         ipFamilyPolicy="RequireDualStack"))
        assert code == 422 and "provided IP is already allocated" in s["message"]
    finally:
        await c.close()


async def test_single_stack_cluster_refuses_what_it_cannot_give(tmp_path: Path) -> None:
    c = await _client(MemoryStore(), tmp_path, "10.96.0.0/24")
    try:
        code, s = await _create(c, _spec(name="req", ipFamilyPolicy="RequireDualStack"))
        assert code == 422
        assert s["details"]["causes"][0]["message"] == (
            'Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services')
        code, s = await _create(c, _spec(name="v6", ipFamilies=["IPv6"]))
        assert code == 422 and s["details"]["causes"][0]["field"] == "spec.ipFamilies[0]"
        assert s["details"]["causes"][0]["message"] == 'Invalid value: "IPv6": not configured on this cluster'
        # PreferDualStack on a single-stack cluster is single-stack
        code, s = await _create(c, _spec(name="prefer", ipFamilyPolicy="PreferDualStack"))
        assert code == 201 and s["spec"]["ipFamilies"] == ["IPv4"] and len(s["spec"]["clusterIPs"]) == 1
        # headless without a selector defaults to RequireDualStack and keeps one family here
        body = _spec(name="hl", clusterIP="None")
        del body["spec"]["selector"]
        code, s = await _create(c, body)
        assert code == 201 and s["spec"]["ipFamilyPolicy"] == "RequireDualStack"
        assert s["spec"]["ipFamilies"] == ["IPv4", "IPv6"] and s["spec"]["clusterIPs"] == ["None"]
    finally:
        await c.close()


async def test_upgrade_to_dual_stack_and_back(tmp_path: Path) -> None:
    c = await _client(MemoryStore(), tmp_path, DUAL)
    try:
        code, s = await _create(c, _spec(name="up"))
        assert code == 201
        v4 = s["spec"]["clusterIP"]
        patch = {"spec": {"ipFamilyPolicy": "PreferDualStack"}}
        r = await c.patch("/api/v1/namespaces/default/services/up", data=orjson.dumps(patch),
                          headers={"Content-Type": "application/merge-patch+json"})
        s = orjson.loads(await r.read())
        assert r.status == 200, s
        assert s["spec"]["clusterIPs"][0] == v4 and len(s["spec"]["clusterIPs"]) == 2
        assert s["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
        patch = {"spec": {"ipFamilyPolicy": "SingleStack"}}
        r = await c.patch("/api/v1/namespaces/default/services/up", data=orjson.dumps(patch),
                          headers={"Content-Type": "application/merge-patch+json"})
        s = orjson.loads(await r.read())
        assert r.status == 200, s
        assert s["spec"]["clusterIPs"] == [v4] and s["spec"]["ipFamilies"] == ["IPv4"]
    finally:
        await c.close()


async def test_kubernetes_service_endpoints_follow_the_advertised_address(tmp_path: Path) -> None:
    """kube's endpoint reconciler: the `kubernetes` Service's Endpoints and EndpointSlice name the
    server's address, and a server started with another address brings them up to date."""
    store = MemoryStore()
    for addr in ("127.0.0.1", "127.0.0.2"):
        cp = srv.build(ServerConfig(data_dir=str(tmp_path), service_cidr="10.96.0.0/24", bind_address=addr,
                                    https_listen_port=6443), store)
        await cp.bootstrap()
        slices = cp.registry.by_resource("discovery.k8s.io", "v1", "endpointslices")
        eps = cp.registry.by_resource("", "v1", "endpoints")
        assert slices is not None and eps is not None
        sl = await cp.objects.get(slices, "default", "kubernetes")
        assert sl["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
        assert sl["endpoints"] == [{"addresses": [addr], "conditions": {"ready": True}}]
        assert sl["ports"] == [{"name": "https", "port": 6443, "protocol": "TCP"}]
        ep = await cp.objects.get(eps, "default", "kubernetes")
        assert ep["subsets"][0]["addresses"] == [{"ip": addr}]
