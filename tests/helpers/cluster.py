"""An in-process cluster for controller tests: API server on the memory store, served over
plain HTTP on a loopback port, a k8py API client, and optionally the controller manager.

    async with InProcessCluster(controllers=["replicaset"]) as c:
        await c.client.create(("apps/v1", "ReplicaSet"), rs, "default")
        node = await c.add_node("node-1")          # the node agent (fake runtime) + a scheduler stand-in
        await c.until(lambda: ..., timeout=10)
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Self

from aiohttp import web

from k8py.apiserver import server as srv
from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.config import ServerConfig
from k8py.controllers.manager import ControllerManager
from k8py.storage.memory import MemoryStore

from .fakenode import FakeNode


class InProcessCluster:
    def __init__(self, *, controllers: Iterable[str] | None = (), progress_interval: float = 0.2,
                 manager_options: dict[str, Any] | None = None, service_cidr: str = "") -> None:
        self.service_cidr = service_cidr  # "" -> ServerConfig's default
        self.controller_names = list(controllers) if controllers is not None else None
        self.store = MemoryStore(progress_interval=progress_interval)
        self.manager_options = manager_options or {}
        self.nodes: list[FakeNode] = []
        self.manager: ControllerManager | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> Self:
        await self.store.start()
        self.cp = srv.build(ServerConfig(service_cidr=self.service_cidr) if self.service_cidr else ServerConfig(),
                            self.store)
        await self.cp.bootstrap()
        self.cp.http.ready = True
        self.runner = web.AppRunner(self.cp.http.build(), handler_cancellation=True, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self.client = Client(ClientConfig(server=self.url), component="test")
        if self.controller_names is None or self.controller_names:
            self.manager = ControllerManager(Client(ClientConfig(server=self.url), component="controller-manager"),
                                             controllers=self.controller_names, leader_elect=False,
                                             options=self.manager_options)
            self._tasks.append(asyncio.create_task(self.manager.run(self._stop)))
            async with asyncio.timeout(30):
                await self.manager.ready.wait()
        return self

    async def add_node(self, name: str = "node-1", **kw: Any) -> FakeNode:
        node = FakeNode(Client(ClientConfig(server=self.url), component=f"fakenode-{name}"), name, **kw)
        await node.start()
        self.nodes.append(node)
        return node

    async def until(self, cond: Callable[[], Any | Awaitable[Any]], timeout: float = 15.0,
                    interval: float = 0.05, what: str = "condition") -> Any:
        """Poll ``cond`` (sync or async) until truthy; fail with ``what`` after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            v = cond()
            if inspect.isawaitable(v):
                v = await v
            if v:
                return v
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(interval)

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        for n in self.nodes:
            await n.stop()
        for t in self._tasks:
            try:
                async with asyncio.timeout(10):
                    await t
            except (TimeoutError, asyncio.CancelledError):
                t.cancel()
        if self.manager is not None:
            await self.manager.client.close()
        await self.client.close()
        await self.runner.cleanup()
        await self.store.close()
