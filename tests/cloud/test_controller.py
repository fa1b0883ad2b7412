"""The service controller against a real API server: a Service the pool cannot serve gets a
Warning event and waits (with back-off); an address given back goes to a waiting Service at once."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers.cluster import InProcessCluster

from k8py.cloud.controller import FINALIZER, ServiceLBController
from k8py.cloud.provider import LocalProvider

SVC = ("v1", "Service")
EVENT = ("v1", "Event")


def lb(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]}}


async def test_a_freed_address_goes_to_the_waiting_service_at_once() -> None:
    async with InProcessCluster() as c:
        # a retry an hour away: only the wake-up can give "b" its address within the test's wait
        ctl = ServiceLBController(c.client, LocalProvider("10.45.0.1/32"), retry_delays=(3600.0, 3600.0))
        stop = asyncio.Event()
        task = asyncio.create_task(ctl.run(stop))
        try:
            async def ingress(name: str) -> list[str]:
                s = await c.client.get(SVC, name, "default")
                return [i.get("ip") for i in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()]

            await c.client.create(SVC, lb("a"), "default")
            assert await c.until(lambda: ingress("a"), what="a's address") == ["10.45.0.1"]
            await c.client.create(SVC, lb("b"), "default")

            async def failed() -> list[Any]:
                evs = (await c.client.list(EVENT, "default", field_selector="involvedObject.name=b"))["items"]
                return [e for e in evs if e.get("reason") == "SyncLoadBalancerFailed"]

            evs = await c.until(failed, what="b's SyncLoadBalancerFailed event")
            assert evs[0]["type"] == "Warning"
            assert "no IPv4 address left in the load balancer pool 10.45.0.1/32" in evs[0]["message"]
            assert await ingress("b") == []

            await c.client.delete(SVC, "a", "default")
            assert await c.until(lambda: ingress("b"), what="b given a's address") == ["10.45.0.1"]
            b = await c.client.get(SVC, "b", "default")
            assert FINALIZER in b["metadata"]["finalizers"]
        finally:
            stop.set()
            async with asyncio.timeout(10):
                await task
