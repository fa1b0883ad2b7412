"""Node IPAM: pod CIDRs cut from the cluster CIDR, one per node and family, kept across a restart,
freed when the node goes, and a CIDRNotAvailable event when the range is full."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.client.clock import FakeClock
from k8py.client.fake import FakeClient
from k8py.client.informer import SharedInformerFactory
from k8py.controllers.base import ControllerContext
from k8py.controllers.nodeipam import (
    CIDRConfigError,
    CIDRRangeFullError,
    CIDRSet,
    NodeIPAMController,
    parse_cluster_cidrs,
)

Obj = dict[str, Any]
NODE = ("v1", "Node")


class Events:
    """A recorder that keeps what it is asked to record."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str]] = []

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.seen.append((obj["metadata"]["name"], type_, reason, message))


def make(options: Obj) -> tuple[NodeIPAMController, FakeClient, Events]:
    clock = FakeClock()
    api = FakeClient(clock)
    factory = SharedInformerFactory(api, clock=clock)
    api.attach(factory)
    events = Events()
    ctx = ControllerContext(api, factory, clock, events, options)  # type: ignore[arg-type]
    return NodeIPAMController(ctx), api, events


def node(name: str, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}


def test_cidr_set_hands_out_each_subnet_once_and_reuses_freed_ones() -> None:
    s = CIDRSet(ipaddress.ip_network("10.42.0.0/22"), 24)
    got = [str(s.allocate_next()) for _ in range(4)]
    assert got == ["10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24", "10.42.3.0/24"]
    with pytest.raises(CIDRRangeFullError, match="no remaining CIDRs left to allocate in the accepted range "
                                                  "10.42.0.0/22"):
        s.allocate_next()
    s.release(ipaddress.ip_network("10.42.1.0/24"))
    assert str(s.allocate_next()) == "10.42.1.0/24"
    # a subnet of another size or range is not ours
    assert not s.occupy(ipaddress.ip_network("10.42.0.0/25"))
    assert not s.occupy(ipaddress.ip_network("10.43.0.0/24"))


def test_configuration_errors_are_clear() -> None:
    with pytest.raises(CIDRConfigError, match="is not a CIDR"):
        parse_cluster_cidrs("10.42.0.0/33", None)
    with pytest.raises(CIDRConfigError, match="one IPv4 and one IPv6"):
        parse_cluster_cidrs("10.42.0.0/16,10.43.0.0/16", None)
    with pytest.raises(CIDRConfigError, match="larger than the cluster CIDR"):
        parse_cluster_cidrs("10.42.0.0/16", 8)
    with pytest.raises(CIDRConfigError, match="subnet mask size too big"):
        parse_cluster_cidrs("10.0.0.0/8", 30)
    with pytest.raises(CIDRConfigError, match="dual-stack"):
        parse_cluster_cidrs("10.42.0.0/16,fd00:42::/56", 24)
    v4, v6 = parse_cluster_cidrs("10.42.0.0/16, fd00:42::/56", None)
    assert (v4.mask, v6.mask) == (24, 64)


async def test_nodes_get_distinct_cidrs_with_a_patch() -> None:
    c, api, _ = make({"cluster_cidr": "10.42.0.0/16"})
    api.put(NODE, node("a"))
    api.put(NODE, node("b"))
    await c.reconcile("a")
    await c.reconcile("b")
    a, b = api.get_obj(NODE, "a"), api.get_obj(NODE, "b")
    assert a is not None and b is not None
    assert a["spec"]["podCIDR"] == "10.42.0.0/24" and a["spec"]["podCIDRs"] == ["10.42.0.0/24"]
    assert b["spec"]["podCIDR"] == "10.42.1.0/24"
    assert ("patch", "Node", "a") in api.writes and ("patch", "Node", "b") in api.writes
    # a node that has its CIDR is left alone
    n = len(api.writes)
    await c.reconcile("a")
    assert len(api.writes) == n


async def test_dual_stack_ipv4_first_and_mask_sizes() -> None:
    c, api, _ = make({"cluster_cidr": "fd00:42::/56,10.42.0.0/16"})
    api.put(NODE, node("a"))
    await c.reconcile("a")
    a = api.get_obj(NODE, "a")
    assert a is not None
    # the order of the cluster CIDRs: here IPv6 first, as given
    assert a["spec"]["podCIDRs"] == ["fd00:42::/64", "10.42.0.0/24"]
    assert a["spec"]["podCIDR"] == "fd00:42::/64"

    c2, api2, _ = make({"cluster_cidr": "10.42.0.0/16,fd00:42::/56"})
    api2.put(NODE, node("a"))
    await c2.reconcile("a")
    a2 = api2.get_obj(NODE, "a")
    assert a2 is not None and a2["spec"]["podCIDRs"] == ["10.42.0.0/24", "fd00:42::/64"]


async def test_restart_rebuilds_from_existing_nodes() -> None:
    c, api, _ = make({"cluster_cidr": "10.42.0.0/16", "node_cidr_mask_size": 24})
    api.put(NODE, node("old-1", podCIDR="10.42.0.0/24", podCIDRs=["10.42.0.0/24"]))
    api.put(NODE, node("old-2", podCIDR="10.42.1.0/24", podCIDRs=["10.42.1.0/24"]))
    api.put(NODE, node("new"))
    # the new node's key comes first: the rebuild must still see both old nodes
    await c.reconcile("new")
    new = api.get_obj(NODE, "new")
    assert new is not None and new["spec"]["podCIDR"] == "10.42.2.0/24"


async def test_delete_frees_and_a_stale_cache_does_not_double_allocate() -> None:
    c, api, _ = make({"cluster_cidr": "10.42.0.0/23"})
    api.put(NODE, node("a"))
    api.hold()  # the patch's watch event is not seen yet: the cache still shows no podCIDR
    await c.reconcile("a")
    await c.reconcile("a")
    assert [w for w in api.writes if w[0] == "patch"] == [("patch", "Node", "a")]
    api.release()
    await c.reconcile("a")
    await api.delete(NODE, "a")
    await c.reconcile("a")
    # both /24s are free again: two new nodes get them
    api.put(NODE, node("b"))
    api.put(NODE, node("c"))
    await c.reconcile("b")
    await c.reconcile("c")
    cidrs = {api.get_obj(NODE, n)["spec"]["podCIDR"] for n in ("b", "c")}  # type: ignore[index]
    assert cidrs == {"10.42.0.0/24", "10.42.1.0/24"}


async def test_full_range_records_cidr_not_available() -> None:
    c, api, events = make({"cluster_cidr": "10.42.0.0/24", "node_cidr_mask_size": 24})
    api.put(NODE, node("a"))
    api.put(NODE, node("b"))
    await c.reconcile("a")
    res = await c.reconcile("b")
    assert res is not None and res.requeue
    b = api.get_obj(NODE, "b")
    assert b is not None and not b["spec"].get("podCIDR")
    assert events.seen == [("b", "Normal", "CIDRNotAvailable", "Node b status is now: CIDRNotAvailable")]
    # once a node goes, the waiting one gets its subnet
    await api.delete(NODE, "a")
    await c.reconcile("a")
    await c.reconcile("b")
    b = api.get_obj(NODE, "b")
    assert b is not None and b["spec"]["podCIDR"] == "10.42.0.0/24"


async def test_against_the_api_server() -> None:
    async with InProcessCluster(controllers=["nodeipam"],
                                manager_options={"cluster_cidr": "10.42.0.0/23,fd00:42::/63"}) as cl:
        for name in ("n1", "n2"):
            await cl.client.create(NODE, node(name))

        async def assigned() -> list[Obj] | None:
            nodes = (await cl.client.list(NODE))["items"]
            return nodes if len(nodes) == 2 and all(n["spec"].get("podCIDR") for n in nodes) else None

        nodes = await cl.until(assigned, what="pod CIDRs on both nodes")
        v4 = {n["spec"]["podCIDRs"][0] for n in nodes}
        v6 = {n["spec"]["podCIDRs"][1] for n in nodes}
        assert v4 == {"10.42.0.0/24", "10.42.1.0/24"}
        assert v6 == {"fd00:42::/64", "fd00:42:0:1::/64"}
        assert all(n["spec"]["podCIDR"] == n["spec"]["podCIDRs"][0] for n in nodes)

        # the range is full (two subnets per family): a deleted node's subnets go to the next node
        gone = next(n for n in nodes if n["metadata"]["name"] == "n1")["spec"]["podCIDRs"]
        await cl.client.delete(NODE, "n1")
        await cl.client.create(NODE, node("n3"))

        async def n3() -> list[str] | None:
            got = (await cl.client.get(NODE, "n3"))["spec"].get("podCIDRs")
            return list(got) if got else None

        assert await cl.until(n3, what="pod CIDRs on n3") == gone
