"""What LimitRanger and ResourceQuota admission cost a pod create.

The API server's whole create path (``ResourceAPI.create_object``: defaults, the admission chain,
validation, the store write, on the in-memory store, no TLS or HTTP) in one process, for pods in
namespaces:

  - ``plain``: no LimitRange, no ResourceQuota (most namespaces: both plugins answer from their
    watched copies without reading the store);
  - ``limitrange``: a LimitRange that fills in requests and limits and checks a max;
  - ``quota``: a ResourceQuota on pods, cpu and memory (each create reads the quotas and writes
    the charge into status.used, compare-and-swap);

and the same ``plain`` pods with both plugins taken out of the chain, in alternating rounds.
Times are this process's CPU time (``time.process_time``).

Usage:  python bench/quota_bench.py [--pods 2000] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from k8py.api.quantity import parse_quantity
from k8py.apiserver import server as srv
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore

PLUGINS = ("LimitRanger", "ResourceQuota")


def bench_pod(name: str, ns: str) -> dict[str, Any]:
    c = {"name": "c", "image": "busybox:1.36",
         "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}, "limits": {"cpu": "10m", "memory": "8Mi"}}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": {"containers": [c]}}


async def main_async(n_pods: int, rounds: int) -> dict[str, Any]:
    store = MemoryStore()
    await store.start()
    cp = srv.build(ServerConfig(), store)
    await cp.bootstrap()
    tasks = await cp.api.admission.start()
    reg = cp.registry
    ns_kind = reg.by_resource("", "v1", "namespaces")
    pod_kind = reg.by_resource("", "v1", "pods")
    lr_kind = reg.by_resource("", "v1", "limitranges")
    rq_kind = reg.by_resource("", "v1", "resourcequotas")
    assert ns_kind and pod_kind and lr_kind and rq_kind
    for ns in ("plain", "limitrange", "quota"):
        await cp.objects.create(ns_kind, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    await cp.objects.create(lr_kind, {"apiVersion": "v1", "kind": "LimitRange",
                                      "metadata": {"name": "lr", "namespace": "limitrange"},
                                      "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"},
                                                           "default": {"cpu": "100m", "memory": "64Mi"},
                                                           "defaultRequest": {"cpu": "10m", "memory": "8Mi"}}]}})
    total = n_pods * rounds + 10
    hard = {"pods": str(total), "requests.cpu": str(total), "limits.memory": f"{total * 8}Mi"}
    await cp.objects.create(rq_kind, {"apiVersion": "v1", "kind": "ResourceQuota",
                                      "metadata": {"name": "q", "namespace": "quota"}, "spec": {"hard": hard},
                                      "status": {"hard": hard, "used": dict.fromkeys(hard, "0")}})
    # the plugins' store watches bring the two objects
    lr_plugin, rq_plugin = cp.api.admission.plugin("LimitRanger"), cp.api.admission.plugin("ResourceQuota")
    deadline = time.monotonic() + 10
    while "limitrange" not in getattr(lr_plugin, "_by_ns", {}) or "quota" not in getattr(rq_plugin, "_quotas_by_ns", {}):
        if time.monotonic() > deadline:
            raise SystemExit("the admission plugins' watches did not bring the LimitRange and the quota in 10 s")
        await asyncio.sleep(0.01)
    chain = cp.api.admission.plugins
    without = [p for p in chain if p.name not in PLUGINS]
    per_create: dict[str, list[float]] = {"plain": [], "limitrange": [], "quota": [], "plain, without the plugins": []}
    seq = 0
    for _ in range(rounds):
        for variant, times in per_create.items():
            ns = variant.split(",")[0]
            cp.api.admission.plugins = without if "without" in variant else chain
            t = time.process_time()
            for _ in range(n_pods):
                seq += 1
                await cp.api.create_object(None, pod_kind, ns, bench_pod(f"p-{seq}", ns), False,  # type: ignore[arg-type]
                                           "bench")
            times.append((time.process_time() - t) / n_pods * 1e6)
    cp.api.admission.plugins = chain
    rq = await cp.objects.get(rq_kind, "quota", "q")
    # every create was charged ("5k" for 5000: quantities print canonically, as kube's)
    assert parse_quantity(rq["status"]["used"]["pods"]).int_value() == n_pods * rounds, rq["status"]
    results: dict[str, Any] = {}
    for variant, xs in per_create.items():
        results[variant] = {"median_us": round(statistics.median(xs), 1), "min_us": round(min(xs), 1),
                            "max_us": round(max(xs), 1)}
        print(f"pod create, {variant}: median {results[variant]['median_us']} µs "
              f"({results[variant]['min_us']}-{results[variant]['max_us']}) over {rounds} rounds of {n_pods}")
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
