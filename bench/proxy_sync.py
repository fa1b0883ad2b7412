"""Service proxy: time from a Service or endpoint change to its rules in place, at scale.

    sudo python bench/proxy_sync.py [--services 1000] [--endpoints 10] [--changes 20]

A real ``k8py server`` (API only, no node agent) holds ``--services`` Services, each with an
EndpointSlice of ``--endpoints`` ready endpoints (10,000 endpoints by default). The service proxy
(``k8py.proxy.Proxier``, as ``k8py server`` runs it) runs in this process against that server and
programs nftables inside a network namespace made for the bench (so the machine's own rules are
never touched); the namespace is deleted at the end.

Measured:
- the first (full) sync: the whole table in one transaction;
- ``--changes`` endpoint changes, one at a time: from the API write returning to the nft
  transaction that carries the new address having been applied (a partial sync);
- the same for new Services.
kube-proxy's iptables mode takes seconds at this size; the target is under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from api_bench import Cluster

from k8py.client.api import Client
from k8py.client.config import load_kubeconfig
from k8py.nftables import Nft
from k8py.proxy.proxier import Proxier
from k8py.proxy.rules import ProxyConfig


class TimedNft(Nft):
    """Records when each transaction finished and what it carried."""

    def __init__(self, command: tuple[str, ...]) -> None:
        super().__init__(command)
        self.log: list[tuple[float, str, float]] = []  # (finished at, script, seconds in nft)

    async def apply_async(self, script: str, timeout: float = 60.0) -> None:
        t0 = time.monotonic()
        await super().apply_async(script, timeout)
        self.log.append((time.monotonic(), script, time.monotonic() - t0))


def svc(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": "bench"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def eps(i: int, n: int, gen: int = 0) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}-1", "namespace": "bench", "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            # the first endpoint's address changes with ``gen``: the change the bench waits for
            "endpoints": [{"addresses": [f"10.{100 + gen if j == 0 else 60 + j}.{i // 250}.{i % 250 + 1}"],
                           "conditions": {"ready": True}} for j in range(n)]}


async def wait_for(nft: TimedNft, needle: str, since: float, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t, script, _ in nft.log:
            if t >= since and needle in script:
                return t - since
        await asyncio.sleep(0.005)
    raise TimeoutError(f"no transaction carried {needle} within {timeout}s")


async def main_async(args: argparse.Namespace, cluster: Cluster, netns: str) -> None:
    client = Client(load_kubeconfig(str(cluster.data / "kubeconfig.yaml")), component="bench")
    await client.create(("v1", "Namespace"), {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": "bench"}})
    sem = asyncio.Semaphore(16)

    async def make(i: int) -> None:
        async with sem:
            await client.create(("v1", "Service"), svc(i), namespace="bench")
            await client.create(("discovery.k8s.io/v1", "EndpointSlice"), eps(i, args.endpoints), namespace="bench")

    t0 = time.monotonic()
    await asyncio.gather(*(make(i) for i in range(args.services)))
    print(f"created {args.services} Services and {args.services * args.endpoints} endpoints "
          f"in {time.monotonic() - t0:.1f} s")
    nft = TimedNft(("ip", "netns", "exec", netns, "nft"))
    proxier = Proxier(client, ProxyConfig("bench-node", ("10.42.0.0/16",)), nft)
    stop = asyncio.Event()
    task = asyncio.create_task(proxier.run(stop))
    t0 = time.monotonic()
    # the first sync carries every Service
    last = args.services - 1
    await wait_for(nft, f"bench/s{last}:http", 0, timeout=300)
    full = nft.log[-1]
    print(f"first (full) sync: {time.monotonic() - t0:.2f} s after start; nft transaction {full[2]:.2f} s, "
          f"{len(full[1]) / 1e6:.1f} MB, {full[1].count(chr(10))} commands")

    endpoint_lat, service_lat, sizes = [], [], []
    for k in range(args.changes):
        i = (k * 37) % args.services
        new = eps(i, args.endpoints, gen=k + 1)
        cur = await client.get(("discovery.k8s.io/v1", "EndpointSlice"), f"s{i}-1", namespace="bench")
        new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        await client.update(("discovery.k8s.io/v1", "EndpointSlice"), new, namespace="bench")
        since = time.monotonic()
        needle = new["endpoints"][0]["addresses"][0]
        endpoint_lat.append(await wait_for(nft, f"dnat ip to {needle}:", since))
        sizes.append(len(nft.log[-1][1].splitlines()))
    for k in range(args.changes):
        i = args.services + k
        await client.create(("discovery.k8s.io/v1", "EndpointSlice"), eps(i, args.endpoints), namespace="bench")
        await client.create(("v1", "Service"), svc(i), namespace="bench")
        since = time.monotonic()
        service_lat.append(await wait_for(nft, f"bench/s{i}:http", since))
    stop.set()
    await task
    await client.close()

    def show(name: str, xs: list[float]) -> None:
        xs = sorted(xs)
        print(f"{name}: p50 {statistics.median(xs) * 1000:.0f} ms, max {xs[-1] * 1000:.0f} ms (n={len(xs)})")

    show("endpoint change -> rules applied", endpoint_lat)
    show("new Service -> rules applied", service_lat)
    print(f"partial sync size: {statistics.median(sizes):.0f} nft commands (median); syncs {proxier.syncs}, "
          f"full {proxier.full_syncs}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--changes", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root: the proxy programs nftables (in a network namespace of its own)", file=sys.stderr)
        return 2
    netns = f"k8py-bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp))
        try:
            cluster.wait_ready()
            asyncio.run(main_async(args, cluster, netns))
        finally:
            cluster.proc.terminate()
            cluster.proc.wait(30)
            subprocess.run(["ip", "netns", "delete", netns], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
