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

Usage:  python bench/seedpolicy_bench.py [--pods 2000] [--rounds 5] [--json out.json]
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=2000, help="pods per round and variant")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    res = asyncio.run(main_async(args.pods, args.rounds))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
