"""What Pod Security admission costs a pod create.

Three measurements, in one process (no TLS or HTTP, so the plugin's share is not lost in their
noise on a shared machine):

  1. the checks alone (``api.podsecurity.evaluate_pod``) at baseline and restricted, for a pod
     that meets restricted and for a privileged one;
  2. the plugin's ``validate`` per call: in a namespace without labels (privileged: one
     namespace read, nothing evaluated) and in one with enforce=baseline, warn and
     audit=restricted (two evaluations, a warning and an audit annotation);
  3. the API server's whole create path (``ResourceAPI.create_object``: defaults, the admission
     chain, validation, the store write on the in-memory store) in that labelled namespace, with
     the plugin in the chain and without it, in alternating rounds.

Times are this process's CPU time (``time.process_time``), so other work on the machine does not
count.

Usage:  python bench/podsecurity_bench.py [--pods 2000] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from k8py.api import podsecurity as ps
from k8py.apiserver import server as srv
from k8py.apiserver.admission import Attributes
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore

RESTRICTED_SC = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                 "seccompProfile": {"type": "RuntimeDefault"}}


def bench_pod(name: str, sc: dict[str, Any] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", "image": "busybox:1.36",
                         "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
    if sc is not None:
        c["securityContext"] = sc
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "bench"},
            "spec": {"containers": [c], "volumes": [{"name": "tmp", "emptyDir": {}}]}}


async def main_async(n_pods: int, rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    calls = 20000

    # 1. the checks alone
    for label, pod in (("restricted pod", bench_pod("x", RESTRICTED_SC)),
                       ("privileged pod", bench_pod("x", {"privileged": True}))):
        for level in (ps.Level.BASELINE, ps.Level.RESTRICTED):
            lv = ps.LevelVersion(level)
            t = time.process_time()
            for _ in range(calls):
                found = ps.evaluate_pod(lv, pod["metadata"], pod["spec"])
            us = (time.process_time() - t) / calls * 1e6
            results[f"evaluate_us[{label}, {level}]"] = round(us, 2)
            print(f"evaluate_pod, {label} at {level}: {us:.2f} µs ({len(found)} violations)")

    store = MemoryStore()
    await store.start()
    cp = srv.build(ServerConfig(), store)
    await cp.bootstrap()
    tasks = await cp.api.admission.start()
    ns_kind = cp.registry.by_resource("", "v1", "namespaces")
    pod_kind = cp.registry.by_resource("", "v1", "pods")
    assert ns_kind is not None and pod_kind is not None
    await cp.objects.create(ns_kind, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain"}})
    await cp.objects.create(ns_kind, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench", "labels": {
        "pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted"}}})
    chain = cp.api.admission.plugins
    plugin = cp.api.admission.plugin("PodSecurity")
    assert plugin is not None

    # 2. the plugin alone
    pod = bench_pod("x")
    for label, ns in (("namespace without labels", "plain"), ("enforce=baseline, warn/audit=restricted", "bench")):
        a = Attributes("CREATE", pod_kind, ns, "x")
        t = time.process_time()
        for _ in range(calls):
            a.warnings.clear()
            await plugin.validate(a, pod, None)
        us = (time.process_time() - t) / calls * 1e6
        results[f"validate_us[{label}]"] = round(us, 2)
        print(f"plugin.validate, {label}: {us:.2f} µs per call ({len(a.warnings)} warnings, "
              f"{len(a.audit_annotations)} audit annotations)")

    # 3. the whole create path, with and without the plugin, alternating
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
