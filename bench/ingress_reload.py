"""Ingress: time from an Ingress change to nginx routing by it, and requests lost while nginx
reloads under load.

    sudo python bench/ingress_reload.py [--ingresses 200] [--changes 20] [--clients 8]

A real ``k8py server`` (API only, no node agent) holds ``--ingresses`` Ingresses, each a host of
its own routed to one of two Services; their EndpointSlices point at two HTTP servers of this
process on loopback. The ingress controller (``k8py.ingress.IngressController`` with Debian's
nginx, as ``k8py server`` runs it) runs in this process on free loopback-reachable ports.

Measured:
- the first configuration: from the controller's start to nginx serving every host;
- ``--changes`` Ingress changes, one at a time (a host moved to the other Service): from the API
  write returning to the first request through nginx answered by the new Service (requests every
  10 ms), and the time of each reload (``nginx -t`` of the candidate + SIGHUP + the new generation
  answering on the status socket);
- meanwhile ``--clients`` clients send requests without pause (half on kept-alive connections,
  half on a new connection each): requests that failed or got anything but 200 are counted (the
  target is none: reloads are graceful).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from api_bench import Cluster, free_port

from k8py.client.api import Client
from k8py.client.config import load_kubeconfig
from k8py.ingress.controller import IngressController
from k8py.ingress.nginx import Nginx

ING = ("networking.k8s.io/v1", "Ingress")


class TimedNginx(Nginx):
    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.reloads: list[float] = []

    async def apply(self, text: str, certs: object, generation: int, *, timeout: float = 15.0) -> None:
        t0 = time.monotonic()
        await super().apply(text, certs, generation, timeout=timeout)  # type: ignore[arg-type]
        self.reloads.append(time.monotonic() - t0)


async def backend(name: str) -> tuple[web.AppRunner, int]:
    async def handle(_req: web.Request) -> web.Response:
        return web.Response(text=name)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def service(name: str, port: int) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "bench"},
             "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
             "metadata": {"name": f"{name}-1", "namespace": "bench", "labels": {"kubernetes.io/service-name": name}},
             "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
             "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}]


def ingress(i: int, svc: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": f"i{i}", "namespace": "bench"},
            "spec": {"ingressClassName": "k8py-nginx", "rules": [{"host": f"h{i}.bench.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}]}}


async def get(session: aiohttp.ClientSession, port: int, host: str) -> tuple[int, str]:
    async with session.get(f"http://127.0.0.1:{port}/", headers={"Host": host},
                           timeout=aiohttp.ClientTimeout(total=5)) as r:
        return r.status, await r.text()


async def main_async(args: argparse.Namespace, cluster: Cluster, tmp: Path) -> None:
    runners = {}
    ports = {}
    for name in ("one", "two"):
        runners[name], ports[name] = await backend(name)
    client = Client(load_kubeconfig(str(cluster.data / "kubeconfig.yaml")), component="bench")
    await client.create(("v1", "Namespace"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
    for name, port in ports.items():
        for o in service(name, port):
            await client.create((o["apiVersion"], o["kind"]), o, namespace="bench")
    sem = asyncio.Semaphore(16)

    async def make(i: int) -> None:
        async with sem:
            await client.create(ING, ingress(i, "one"), namespace="bench")

    await asyncio.gather(*(make(i) for i in range(args.ingresses)))
    http_port, https_port = free_port(), free_port()
    nginx = TimedNginx(str(tmp / "ingress"))
    ctl = IngressController(client, nginx, http_port=http_port, https_port=https_port,
                            status_addresses=("127.0.0.1",), worker_user="nobody nogroup" if os.geteuid() == 0 else "")
    stop = asyncio.Event()
    t0 = time.monotonic()
    task = asyncio.create_task(ctl.run(stop))
    async with aiohttp.ClientSession() as s:
        last = f"h{args.ingresses - 1}.bench.test"
        while True:
            try:
                if await get(s, http_port, last) == (200, "one"):
                    break
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() - t0 > 120:
                raise TimeoutError("nginx did not serve the Ingresses")
            await asyncio.sleep(0.01)  # poll interval of a bounded wait
    first = time.monotonic() - t0
    await asyncio.wait_for(ctl.synced.wait(), 60)  # nginx answers before the controller has seen the reload done
    print(f"{args.ingresses} Ingresses: served {first:.2f} s after the controller started "
          f"(configuration {len(ctl.applied_text) / 1000:.0f} kB)")

    counts = {"ok": 0, "failed": 0}
    errors: dict[str, int] = {}
    load_stop = asyncio.Event()

    async def load(keepalive: bool, k: int) -> None:
        conn = aiohttp.TCPConnector(force_close=not keepalive, limit=1)
        async with aiohttp.ClientSession(connector=conn) as s:
            while not load_stop.is_set():
                try:
                    status, _ = await get(s, http_port, f"h{k % args.ingresses}.bench.test")
                    counts["ok" if status == 200 else "failed"] += 1
                    if status != 200:
                        errors[str(status)] = errors.get(str(status), 0) + 1
                except (aiohttp.ClientError, TimeoutError) as e:
                    counts["failed"] += 1
                    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1

    loaders = [asyncio.create_task(load(c % 2 == 0, c)) for c in range(args.clients)]
    lat = []
    reloads_before = len(nginx.reloads)
    t_load = time.monotonic()
    async with aiohttp.ClientSession() as s:
        for k in range(args.changes):
            i = (k * 7) % args.ingresses
            cur = await client.get(ING, f"i{i}", namespace="bench")
            svc = cur["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
            want = svc["name"] = "two" if svc["name"] == "one" else "one"  # a real change each time
            await client.update(ING, cur, namespace="bench")
            since = time.monotonic()
            while True:
                try:
                    if await get(s, http_port, f"h{i}.bench.test") == (200, want):
                        break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() - since > 30:
                    raise TimeoutError("the change was not served within 30 s")
                await asyncio.sleep(0.01)  # poll interval of a bounded wait
            lat.append(time.monotonic() - since)
            # the earlier of this and the next change: leave nginx 0.3 s under load between reloads
            await asyncio.sleep(0.3)
    load_stop.set()
    await asyncio.gather(*loaders)
    elapsed = time.monotonic() - t_load
    stop.set()
    await task
    await client.close()
    for r in runners.values():
        await r.cleanup()

    def show(name: str, xs: list[float]) -> None:
        xs = sorted(xs)
        print(f"{name}: p50 {statistics.median(xs) * 1000:.0f} ms, max {xs[-1] * 1000:.0f} ms (n={len(xs)})")

    show("Ingress change -> served by nginx", lat)
    show("reload (nginx -t + SIGHUP + new generation answering)", nginx.reloads[reloads_before:])
    total = counts["ok"] + counts["failed"]
    print(f"under load during {args.changes} reloads: {total} requests in {elapsed:.1f} s "
          f"({total / elapsed:.0f}/s, {args.clients} clients), failed {counts['failed']} {errors or ''}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ingresses", type=int, default=200)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="k8py-ingress-bench-") as d:
        tmp = Path(d)
        cluster = Cluster(tmp)
        try:
            cluster.wait_ready()
            asyncio.run(main_async(args, cluster, tmp))
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
