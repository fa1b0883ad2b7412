"""A cluster for scheduler integration tests: the API server in-process (memory store), hollow
nodes of chosen sizes, and a k8py scheduler, all talking through the real API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.client import Client, ClientConfig
from k8py.kubelet.hollow import HollowNodes, HollowNodeSpec, node_specs
from k8py.scheduler import Scheduler, parse_config

POD = ("v1", "Pod")
EVENT = ("v1", "Event")
NODE = ("v1", "Node")


class SchedCluster:
    def __init__(self, c: InProcessCluster) -> None:
        self.c = c
        self.client = c.client
        self.schedulers: list[tuple[Scheduler, asyncio.Event, asyncio.Task[None]]] = []
        self.hollow: list[HollowNodes] = []
        self._clients: list[Client] = []

    def new_client(self, component: str) -> Client:
        cl = Client(ClientConfig(server=self.c.url), component=component)
        self._clients.append(cl)
        return cl

    async def nodes(self, specs: Sequence[HollowNodeSpec], **kw: Any) -> HollowNodes:
        h = HollowNodes(self.new_client("hollow"), specs, lease_interval=kw.pop("lease_interval", 5.0),
                        status_interval=0, **kw)
        await h.start()
        self.hollow.append(h)
        return h

    async def scheduler(self, config: dict[str, Any] | None = None, *, wait: bool = True, **kw: Any) -> Scheduler:
        doc = {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
               "leaderElection": {"leaderElect": False}, **(config or {})}
        kw.setdefault("validate_cache", True)
        kw.setdefault("seed", 1)
        s = Scheduler(self.new_client("scheduler"), parse_config(doc, registry=kw.get("registry")), **kw)
        stop = asyncio.Event()
        t = asyncio.create_task(s.run(stop))
        self.schedulers.append((s, stop, t))
        if wait:
            await asyncio.wait_for(s.ready.wait(), 10)
        return s

    async def stop_scheduler(self, s: Scheduler) -> None:
        for entry in list(self.schedulers):
            if entry[0] is s:
                entry[1].set()
                await asyncio.wait_for(entry[2], 10)
                self.schedulers.remove(entry)

    async def create(self, pod: dict[str, Any], ns: str = "default") -> dict[str, Any]:
        return await self.client.create(POD, pod, ns)

    async def pods(self, ns: str = "default", prefix: str = "") -> list[dict[str, Any]]:
        items = (await self.client.list(POD, ns))["items"]
        return [p for p in items if p["metadata"]["name"].startswith(prefix)]

    async def placed(self, ns: str = "default", prefix: str = "") -> dict[str, str]:
        """pod name -> node, for bound pods."""
        return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in await self.pods(ns, prefix)
                if p["spec"].get("nodeName")}

    async def wait_placed(self, n: int, ns: str = "default", prefix: str = "", timeout: float = 15) -> dict[str, str]:
        async def ok() -> dict[str, str] | None:
            got = await self.placed(ns, prefix)
            return got if len(got) >= n else None

        return await self.c.until(ok, timeout=timeout, what=f"{n} pods bound")  # type: ignore[no-any-return]

    async def events(self, name: str, reason: str, ns: str = "default") -> list[dict[str, Any]]:
        items = (await self.client.list(EVENT, ns))["items"]
        return [e for e in items if e["involvedObject"].get("name") == name and e["reason"] == reason]

    async def wait_event(self, name: str, reason: str, ns: str = "default", timeout: float = 10) -> dict[str, Any]:
        async def ok() -> dict[str, Any] | None:
            evs = await self.events(name, reason, ns)
            return evs[-1] if evs else None

        return await self.c.until(ok, timeout=timeout, what=f"a {reason} event on {name}")  # type: ignore[no-any-return]

    async def close(self) -> None:
        for s, stop, t in self.schedulers:
            stop.set()
        for _, _, t in self.schedulers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(t, 10)
        for h in self.hollow:
            await h.stop()
        for cl in self._clients:
            await cl.close()


@pytest.fixture
async def cluster() -> AsyncIterator[SchedCluster]:
    async with InProcessCluster(controllers=()) as c:
        sc = SchedCluster(c)
        try:
            yield sc
        finally:
            await sc.close()


def specs(*sizes: tuple[str, str, str], **kw: Any) -> list[HollowNodeSpec]:
    """Hollow nodes named by the first item of each (name, cpu, memory)."""
    out = []
    for name, cpu, mem in sizes:
        (s,) = node_specs(1, prefix=name, cpu=cpu, memory=mem, **kw)
        out.append(HollowNodeSpec(name, s.capacity, {**s.labels, "kubernetes.io/hostname": name}, s.taints, (),
                                  s.pod_cidr))
    return out
