"""What the aggregation layer adds to a request: the same list of an extension API server's
objects asked directly (HTTPS with the front-proxy certificate and headers, pooled connections)
and through k8py's API server (authentication, authorization, the proxy to the backend over
pooled HTTPS), next to a list k8py serves itself.

Usage:  python bench/aggregation_bench.py [--requests N] [--concurrency C] [--json out.json]

In-process: the API server on the memory store over plain HTTP on loopback (aiohttp's test
server), the backend ``tests/helpers/wardle.py`` over HTTPS on loopback, one client. Reports
p50/p99 milliseconds of N sequential requests, then requests per second with C at once.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers.wardle import GROUP, GV, VERSION, WardleServer

from k8py.api import aggregator as agg
from k8py.apiserver import server as srv
from k8py.apiserver.aggregator import ProxyClientCertificate
from k8py.apiserver.authn import UserInfo
from k8py.config import ServerConfig
from k8py.pki import PKI, ensure_front_proxy_certificates
from k8py.storage.memory import MemoryStore


class Authn:
    def authenticate(self, request: web.Request) -> UserInfo | None:
        return UserInfo("root", groups=("system:masters", "system:authenticated"))


async def measure(call: Callable[[], Awaitable[int]], n: int, concurrency: int) -> dict[str, float]:
    for _ in range(20):  # warm the pools
        assert await call() == 200
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        assert await call() == 200
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    t = time.perf_counter()

    async def worker(k: int) -> None:
        for _ in range(k):
            assert await call() == 200

    await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
    rps = (n // concurrency) * concurrency / (time.perf_counter() - t)
    return {"p50_ms": round(statistics.median(lat), 3), "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 3),
            "rps": round(rps, 1)}


async def main(n: int, concurrency: int) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="aggbench-")
    files = ensure_front_proxy_certificates(PKI.in_dir(os.path.join(tmp, "tls")))
    backend = WardleServer(Path(files.ca_cert).read_text())
    await backend.start()
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    cp = srv.build(ServerConfig(data_dir=tmp), store, authenticator=Authn())
    await cp.bootstrap()
    assert cp.http.aggregator is not None
    cp.http.aggregator.proxy_cert = ProxyClientCertificate(files.client_cert, files.client_key)
    tasks = await cp.http.aggregator.start()
    cp.http.ready = True
    out: dict[str, Any] = {}
    try:
        async with TestClient(TestServer(cp.http.build())) as c:
            for path, obj in (
                    ("/api/v1/namespaces", {"metadata": {"name": "wardle"}}),
                    ("/api/v1/namespaces/wardle/services", {"metadata": {"name": "api"}, "spec": {
                        "ports": [{"name": "https", "port": 443, "targetPort": backend.port}]}}),
                    ("/apis/discovery.k8s.io/v1/namespaces/wardle/endpointslices", {
                        "metadata": {"name": "api-1", "labels": {"kubernetes.io/service-name": "api"}},
                        "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"]}],
                        "ports": [{"name": "https", "port": backend.port}]}),
                    ("/apis/apiregistration.k8s.io/v1/apiservices", {
                        "metadata": {"name": f"{VERSION}.{GROUP}"},
                        "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 1000,
                                 "versionPriority": 15, "service": {"namespace": "wardle", "name": "api"},
                                 "caBundle": base64.b64encode(backend.ca_pem.encode()).decode()},
                        "status": {}})):
                r = await c.post(path, json=obj)
                assert r.status == 201, await r.text()
            name = f"/apis/apiregistration.k8s.io/v1/apiservices/{VERSION}.{GROUP}"
            a = await (await c.get(name)).json()
            a["status"] = {"conditions": [{"type": "Available", "status": "True", "reason": "Passed",
                                           "message": "all checks passed",
                                           "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
            assert (await c.put(name + "/status", json=a)).status == 200
            for i in range(10):
                r = await c.post(f"/apis/{GV}/namespaces/wardle/flunders",
                                 json={"apiVersion": GV, "kind": "Flunder", "metadata": {"name": f"f{i}"}})
                if r.status != 201:  # the APIService's status reaches the proxy through the store watch
                    await asyncio.sleep(0.1)
            for i in range(10):
                await c.post("/api/v1/namespaces/wardle/configmaps", json={"metadata": {"name": f"c{i}"}})

            ctx = ssl.create_default_context(cadata=backend.ca_pem)
            ctx.load_cert_chain(files.client_cert, files.client_key)
            headers = dict(agg.auth_proxy_headers("root", "", ("system:masters",), {}))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as direct:
                url = f"https://127.0.0.1:{backend.port}/apis/{GV}/namespaces/wardle/flunders"

                async def backend_alone() -> int:
                    async with direct.get(url, headers=headers, server_hostname="api.wardle.svc") as r:
                        await r.read()
                        return r.status

                async def proxied() -> int:
                    async with c.get(f"/apis/{GV}/namespaces/wardle/flunders") as r:
                        await r.read()
                        return r.status

                async def local() -> int:
                    async with c.get("/api/v1/namespaces/wardle/configmaps") as r:
                        await r.read()
                        return r.status

                out["backend_direct"] = await measure(backend_alone, n, concurrency)
                out["through_k8py"] = await measure(proxied, n, concurrency)
                out["k8py_local_list"] = await measure(local, n, concurrency)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()
        await backend.stop()
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    result = asyncio.run(main(args.requests, args.concurrency))
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
