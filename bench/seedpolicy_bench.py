"""What the K8pySeedPolicy admission plugin costs a pod create.

Two measurements, in one process (no TLS or HTTP, so the plugin's share is not lost in their
noise on a shared machine):

  1. the plugin's ``validate`` alone, per call, for the pods api_bench creates (bare, no limits,
     no probes: three warnings), a pod a ReplicaSet owns (the controllers' creates: skipped
     after the ownerReferences scan), and a clean pod;
  2. the API server's whole create path (``ResourceAPI.create_object``: defaults, the admission
     chain, validation, the store write on the in-memory store) for the same bare pods, with the
     plugin in the chain and without it, in alternating rounds.

Times are this process's CPU time (``time.process_time``), so other work on the machine does not
count. Over HTTPS a create costs the server more than this in-process path (TLS, HTTP, JSON in
and out: api_bench), so the plugin's share there is smaller still.

With ``--https``, a third: a real ``k8py server`` on loopback (api_bench's Cluster, without the
agent and controllers) and 16 concurrent clients creating api_bench's pods over HTTPS, in
alternating rounds into a namespace in ``warn`` mode (three warnings each), one labelled
``k8py.io/policy=off`` (the plugin returns after a dict lookup: as without it) and, in the
``warn`` namespace, pods a ReplicaSet owns (the controllers' creates); the figure is the server
process's CPU per create.

Usage:  python bench/seedpolicy_bench.py [--pods 2000] [--rounds 5] [--https] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from k8py.apiserver import server as srv
from k8py.apiserver.admission import Attributes
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore


def bench_pod(name: str, owned: bool = False, clean: bool = False) -> dict[str, Any]:
    """api_bench's pod (bare, requests but no limits, no probes), optionally owned or clean."""
    c: dict[str, Any] = {"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "100m",
                                                                                       "memory": "64Mi"}}}
    if clean:
        c["resources"]["limits"] = {"cpu": "100m", "memory": "64Mi"}
        c["readinessProbe"] = c["livenessProbe"] = {"exec": {"command": ["true"]}}
    meta: dict[str, Any] = {"name": name, "namespace": "bench", "labels": {"app": "bench"}}
    if owned or clean:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-1",
                                    "controller": True, "blockOwnerDeletion": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": [c]}}


async def main_async(n_pods: int, rounds: int) -> dict[str, Any]:
    store = MemoryStore()
    await store.start()
    cp = srv.build(ServerConfig(), store)
    await cp.bootstrap()
    tasks = await cp.api.admission.start()
    ns_kind = cp.registry.by_resource("", "v1", "namespaces")
    pod_kind = cp.registry.by_resource("", "v1", "pods")
    assert ns_kind is not None and pod_kind is not None
    await cp.objects.create(ns_kind, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
    chain = cp.api.admission.plugins
    plugin = cp.api.admission.plugin("K8pySeedPolicy")
    assert plugin is not None
    results: dict[str, Any] = {}

    # 1. the plugin alone
    calls = 20000
    for label, pod in (("bare pod, 3 warnings", bench_pod("x")), ("pod owned by a ReplicaSet", bench_pod("x", True)),
                       ("clean pod", bench_pod("x", clean=True))):
        a = Attributes("CREATE", pod_kind, "bench", "x")
        t = time.process_time()
        for _ in range(calls):
            a.warnings.clear()
            await plugin.validate(a, pod, None)
        us = (time.process_time() - t) / calls * 1e6
        results[f"validate_us[{label}]"] = round(us, 2)
        print(f"plugin.validate, {label}: {us:.2f} µs per call ({len(a.warnings)} warnings)")

    # 2. the whole create path, with and without the plugin, alternating
    per_create: dict[str, list[float]] = {"with": [], "without": []}
    seq = 0
    for _ in range(rounds):
        for variant in ("with", "without"):
            cp.api.admission.plugins = chain if variant == "with" else [p for p in chain if p is not plugin]
            t = time.process_time()
            for _ in range(n_pods):
                seq += 1
                await cp.api.create_object(None, pod_kind, "bench", bench_pod(f"p-{seq}"), False,  # type: ignore[arg-type]
                                           "bench")
            per_create[variant].append((time.process_time() - t) / n_pods * 1e6)
    cp.api.admission.plugins = chain
    for variant, xs in per_create.items():
        results[f"create_us_{variant}"] = {"median": round(statistics.median(xs), 1), "min": round(min(xs), 1),
                                           "max": round(max(xs), 1)}
    w, wo = results["create_us_with"]["median"], results["create_us_without"]["median"]
    results["plugin_share_of_create"] = round((w - wo) / wo, 4)
    print(f"pod create path, {rounds} rounds of {n_pods}: with the plugin median {w} µs, without {wo} µs "
          f"(ranges {results['create_us_with']['min']}-{results['create_us_with']['max']} and "
          f"{results['create_us_without']['min']}-{results['create_us_without']['max']})")
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await store.close()
    return results


async def https_async(n_pods: int, rounds: int) -> dict[str, Any]:
    import os
    import sys
    import tempfile
    from pathlib import Path

    import aiohttp

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from api_bench import CPU, Cluster, run_workers  # the same server start and worker pool

    variants = {"warn, bare": ("warned", False), "off, bare": ("quiet", False), "warn, owned": ("warned", True),
                "off, owned": ("quiet", True)}
    cpu_us: dict[str, list[float]] = {v: [] for v in variants}
    rate: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="seedpolicy-bench-") as tmp:
        cluster = Cluster(Path(tmp))
        try:
            cluster.wait_ready()
            base = f"https://127.0.0.1:{cluster.port}"
            conn = aiohttp.TCPConnector(ssl=cluster.ssl_context(), limit=200)
            async with aiohttp.ClientSession(connector=conn, base_url=base) as s:
                for ns, labels in (("warned", {}), ("quiet", {"k8py.io/policy": "off"})):
                    r = await s.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                                 "metadata": {"name": ns, "labels": labels}})
                    assert r.status == 201, await r.text()
                # the label reaches the plugin through its watch: wait (bounded) until a dry run in
                # the off namespace comes back without warnings
                deadline = time.monotonic() + 10
                while True:
                    r = await s.post("/api/v1/namespaces/quiet/pods?dryRun=All", json=bench_pod("probe"))
                    await r.read()
                    if not r.headers.getall("Warning", []):
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError("the off label did not reach the plugin in 10 s")
                    await asyncio.sleep(0.05)
                seq = 0
                order = list(variants)
                for r_i in range(rounds):
                    # a different order each round: no variant always runs first or after another
                    for variant in order[r_i % len(order):] + order[:r_i % len(order)]:
                        ns, owned = variants[variant]
                        base_seq = seq
                        seq += n_pods
                        warned: list[int] = []

                        async def create(i: int, ns: str = ns, owned: bool = owned, base_seq: int = base_seq,
                                         warned: list[int] = warned) -> None:
                            body = bench_pod(f"p-{base_seq + i}", owned)
                            body["metadata"]["namespace"] = ns
                            r = await s.post(f"/api/v1/namespaces/{ns}/pods", json=body)
                            await r.read()
                            assert r.status == 201, r.status
                            warned.append(len(r.headers.getall("Warning", [])))

                        cpu = CPU({"server": cluster.proc.pid})
                        elapsed, _ = await run_workers(16, n_pods, create)
                        cpu_us[variant].append(cpu.per_op(n_pods)["server"] * 1000)
                        rate[variant].append(n_pods / elapsed)
                        want = 3 if variant == "warn, bare" else 0
                        assert set(warned) == {want}, (variant, set(warned))
        finally:
            cluster.stop()
    out: dict[str, Any] = {}
    for v in variants:
        out[f"https_server_cpu_us_per_create[{v}]"] = {"median": round(statistics.median(cpu_us[v]), 1),
                                                       "min": round(min(cpu_us[v]), 1),
                                                       "max": round(max(cpu_us[v]), 1)}
        out[f"https_creates_per_s[{v}]"] = round(statistics.median(rate[v]), 1)
        print(f"HTTPS pod create, {v}: server CPU {out[f'https_server_cpu_us_per_create[{v}]']} µs per create, "
              f"{out[f'https_creates_per_s[{v}]']}/s (median of {rounds} rounds of {n_pods})")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=2000, help="pods per round and variant")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--https", action="store_true", help="also measure creates over HTTPS against a k8py server")
    args = ap.parse_args()
    res = asyncio.run(main_async(args.pods, args.rounds))
    if args.https:
        res.update(asyncio.run(https_async(args.pods, args.rounds)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
