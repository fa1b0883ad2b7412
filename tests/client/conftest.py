"""Fixtures: the API server in-process on the memory store (plain HTTP, no auth), a client for it,
and a TCP proxy in between that tests use to drop and refuse connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from k8py.apiserver import server as srv
from k8py.apiserver import watch as apiwatch
from k8py.client import Client, ClientConfig
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore


@dataclass
class Api:
    url: str
    store: MemoryStore
    cp: Any


class Proxy:
    """A TCP forwarder whose connections a test can cut (``drop``) or refuse (``refuse``)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refusing = False
        self.connections = 0
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _accept(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if self.refusing:
            w.close()
            return
        self.connections += 1
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            w.close()
            return
        pair = (w, uw)
        self._pairs.add(pair)
        t1 = asyncio.create_task(self._pipe(r, uw))
        t2 = asyncio.create_task(self._pipe(ur, w))
        self._tasks.update((t1, t2))
        await asyncio.gather(t1, t2, return_exceptions=True)
        self._tasks.difference_update((t1, t2))
        self._pairs.discard(pair)
        for x in pair:
            x.close()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                w.close()

    def drop(self) -> None:
        """Cut every open connection (both sides)."""
        for a, b in list(self._pairs):
            for x in (a, b):
                x.transport.abort()

    async def close(self) -> None:
        self.drop()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store = MemoryStore(progress_interval=0.05)
    await store.start()
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store)
    await cp.bootstrap()
    cp.http.ready = True
    ts = TestServer(cp.http.build(), host="127.0.0.1")
    await ts.start_server()
    try:
        yield Api(str(ts.make_url("")).rstrip("/"), store, cp)
    finally:
        await ts.close()
        await store.close()


@pytest.fixture
async def client(api: Api) -> AsyncIterator[Client]:
    async with Client(ClientConfig(server=api.url), component="test") as c:
        yield c


@pytest.fixture
async def proxy(api: Api) -> AsyncIterator[Proxy]:
    port = int(api.url.rsplit(":", 1)[1])
    p = Proxy(port)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def proxied(proxy: Proxy) -> AsyncIterator[Client]:
    async with Client(ClientConfig(server=proxy.url), component="test") as c:
        yield c


@pytest.fixture
def fast_bookmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apiwatch, "BOOKMARK_INTERVAL", 0.1)


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``cond`` every few milliseconds until true (fails the test after ``timeout``)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def cm(name: str, ns: str = "default", labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        md["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": data}
