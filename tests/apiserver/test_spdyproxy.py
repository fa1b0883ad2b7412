"""The API server's SPDY/3.1 pass-through (``apiserver/spdyproxy.py``) between a SPDY client
(kubectl's side, ``tests/helpers/spdyclient.py``) and the kubelet's port-forward handler, all on
loopback in this process: the 101 and the bytes both ways, a refusal passed on as it is, a
kubelet that cannot be reached, and a client that goes away."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from tests.helpers.spdyclient import UpgradeRefused, upgraded
from tests.kubelet.test_portforward import FakeSandboxes, Target

from k8py.api import errors
from k8py.apiserver import spdyproxy
from k8py.kubelet.portforward import PortForward
from k8py.kubelet.runtime.types import SandboxState, SandboxStatus

pytestmark = pytest.mark.timeout(60)


@dataclass
class Proxy:
    port: int
    kubelet_port: int
    relays: list[str]


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    sandboxes = [SandboxStatus("sb-web", "web", "default", "uid-web", 0, SandboxState.READY, time.time())]

    async def find_pod(ns: str, name: str) -> Any:
        return {"metadata": {"name": name, "namespace": ns, "uid": "uid-web"}} if name == "web" else None

    kubelet = web.Application()
    PortForward(FakeSandboxes(sandboxes), find_pod).add_routes(kubelet.router)  # type: ignore[arg-type]
    k_runner, k_port = await _serve(kubelet)
    relays: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        assert spdyproxy.is_spdy_upgrade(request)
        target = f"/portForward/default/{request.match_info['pod']}"
        relays.append(target)
        port = int(request.query.get("kubelet", k_port))
        try:
            return await spdyproxy.relay(request, None, "127.0.0.1", port, target, 5.0)
        except errors.StatusError as e:
            return web.Response(status=e.code, text=e.message)

    app = web.Application()
    app.router.add_post("/api/v1/namespaces/default/pods/{pod}/portforward", handler)
    runner, port = await _serve(app)
    try:
        yield Proxy(port, k_port, relays)
    finally:
        await runner.cleanup()
        await k_runner.cleanup()


async def test_bytes_both_ways_once_the_kubelet_switched(proxy: Proxy) -> None:
    async with Target() as t, upgraded("127.0.0.1", proxy.port, "/api/v1/namespaces/default/pods/web/portforward") as (
            client, head):
        assert head.startswith("HTTP/1.1 101")
        assert "Upgrade: SPDY/3.1" in head and "X-Stream-Protocol-Version: portforward.k8s.io" in head
        for _ in range(2):  # two forwarded connections over one relayed connection
            err, data = await client.pair(t.port)
            payload = os.urandom(1 << 20)
            await data.write(payload)
            assert await data.read_at_least(len(payload)) == payload
            await data.close()
            await data.read_all()
            assert await err.read_all() == b""
    assert proxy.relays == ["/portForward/default/web"]


async def test_a_refusal_is_passed_on_as_it_is(proxy: Proxy) -> None:
    with pytest.raises(UpgradeRefused) as e:
        async with upgraded("127.0.0.1", proxy.port, "/api/v1/namespaces/default/pods/web/portforward",
                            protocols=("v9.example",)):
            pass
    answer = e.value.args[0]
    assert answer.startswith("HTTP/1.1 403")
    assert "X-Accepted-Stream-Protocol-Versions: portforward.k8s.io" in answer
    assert answer.endswith("unable to upgrade: unable to negotiate protocol: client supports [v9.example], server "
                           "accepts [portforward.k8s.io]")
    with pytest.raises(UpgradeRefused) as e:
        async with upgraded("127.0.0.1", proxy.port, "/api/v1/namespaces/default/pods/nope/portforward"):
            pass
    assert e.value.args[0].startswith("HTTP/1.1 404") and e.value.args[0].endswith("pod does not exist")


async def test_an_unreachable_kubelet(proxy: Proxy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(UpgradeRefused) as e:
        async with upgraded("127.0.0.1", proxy.port,
                            f"/api/v1/namespaces/default/pods/web/portforward?kubelet={closed}"):
            pass
    assert e.value.args[0].startswith("HTTP/1.1 500")
    assert e.value.args[0].endswith(f"error dialing backend: dial tcp 127.0.0.1:{closed}: connect: connection refused")


async def test_a_client_gone_closes_the_kubelet_side(proxy: Proxy) -> None:
    async with Target("endless") as t:
        async with upgraded("127.0.0.1", proxy.port, "/api/v1/namespaces/default/pods/web/portforward") as (client, _):
            _, data = await client.pair(t.port)
            await data.read_at_least(300_000)
        # the client's connection is gone: the relay closes the kubelet's, which closes the pod's
        async with asyncio.timeout(10):
            await t.closed.wait()
        assert t.open == 0
