"""The service proxy and the cluster DNS survive the API server being killed and started again:
their informers list again and they carry on (changes made after the restart reach nftables and
DNS answers), while what was programmed before stays in force during the outage.

The proxy programs nftables inside a network namespace this test makes (deleted at the end); the
DNS server listens on a loopback port; both run in this process against a real `k8py server`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import dns.asyncquery
import dns.message
import pytest
from tests.e2e.conftest import Server, start_server

from k8py.client.api import Client
from k8py.client.config import load_kubeconfig
from k8py.dns.cluster import ClusterDNS
from k8py.nftables import Nft
from k8py.proxy.proxier import Proxier
from k8py.proxy.rules import TABLE, ProxyConfig

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="needs root and nft")


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"k8pyt-restart-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
    assert not os.path.exists(f"/run/netns/{name}")


def svc(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"port": 80}]}}


async def until(cond: object, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_proxy_and_dns_carry_on_across_an_api_server_restart(tmp_path: Path, netns: str) -> None:
    server: Server = start_server(tmp_path)
    nft = Nft(("ip", "netns", "exec", netns, "nft"))
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    clients = [Client(load_kubeconfig(server.kubeconfig), component=c) for c in ("test", "kube-proxy", "dns")]
    try:
        client = clients[0]
        proxier = Proxier(clients[1], ProxyConfig("node", ("10.42.0.0/16",)), nft, min_interval=0.05)
        cdns = ClusterDNS(clients[2], domain="cluster.local", listen=[("127.0.0.1", 0)])
        tasks = [asyncio.create_task(proxier.run(stop)), asyncio.create_task(cdns.run(stop))]

        async def rules_have(ip: str) -> bool:
            return f"{ip} . tcp . 80" in await asyncio.to_thread(nft.list_table, "inet", TABLE)

        async def resolves(name: str, ip: str) -> bool:
            if not cdns.server.listening:
                return False
            host, port = cdns.server.listening[0]
            r = await dns.asyncquery.udp(dns.message.make_query(f"{name}.default.svc.cluster.local", "A"), host,
                                         port=port, timeout=2)
            return any(rd.address == ip for rr in r.answer for rd in rr)

        before = await client.create(("v1", "Service"), svc("before"), namespace="default")
        ip1 = before["spec"]["clusterIP"]
        await until(lambda: rules_have(ip1), 20, "rules for the first Service")
        await until(lambda: resolves("before", ip1), 20, "DNS for the first Service")

        server.stop(signal.SIGKILL)  # no goodbye to the watches
        assert await rules_have(ip1)  # what was programmed stays in force during the outage
        assert await resolves("before", ip1)
        server.start()

        after = await client.create(("v1", "Service"), svc("after"), namespace="default")
        ip2 = after["spec"]["clusterIP"]
        await until(lambda: rules_have(ip2), 60, "rules for a Service made after the restart")
        await until(lambda: resolves("after", ip2), 60, "DNS for a Service made after the restart")
        await client.delete(("v1", "Service"), "before", namespace="default")

        async def gone() -> bool:
            return not await rules_have(ip1)

        await until(gone, 30, "the deleted Service's rules gone")
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in clients:
            await c.close()
        server.stop()
    # a clean stop removes the proxy's table
    assert not await asyncio.to_thread(nft.list_table, "inet", TABLE)
