"""NetworkPolicy agent: the cost of a sync at scale, and the size of what one pod changes.

    sudo python bench/netpol_sync.py [--pods 10000] [--policies 500] [--nodes 100]

Builds ``--pods`` pods over ``--nodes`` nodes and 50 namespaces, and ``--policies`` policies (each
selecting pods by label, with an ingress rule from a pod selector and a namespace selector on a
named port, and an egress rule to pods of every namespace on UDP 53), then measures for node n0:
the plan (``k8py.netpol.model.evaluate``), the rules (``render``), the whole table written by
nft (a full sync) and one pod added (the plan again and the partial sync's transaction). nft runs
inside a network namespace made for the bench (the machine's rules are never touched), deleted
at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from k8py.netpol.model import compile_policy, evaluate, pod_info
from k8py.netpol.rules import full_sync, partial_sync, render
from k8py.nftables import Nft

NAMESPACES = 50


def pod(i: int, nodes: int) -> dict[str, Any]:
    ip = f"10.{40 + i // 64000}.{(i // 250) % 256}.{i % 250 + 1}"
    return {"metadata": {"namespace": f"ns{i % NAMESPACES}", "name": f"p{i}",
                         "labels": {"app": f"a{i % 20}", "tier": f"t{i % 3}"}},
            "spec": {"nodeName": f"n{i % nodes}",
                     "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def policy(j: int) -> dict[str, Any]:
    return {"metadata": {"namespace": f"ns{j % NAMESPACES}", "name": f"np{j}"}, "spec": {
        "podSelector": {"matchLabels": {"app": f"a{j % 20}"}}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": "t1"}}},
                              {"namespaceSelector": {"matchLabels": {"team": "x"}}}], "ports": [{"port": "http"}]}],
        "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": f"a{(j + 1) % 20}"}}}],
                    "ports": [{"port": 53, "protocol": "UDP"}]}]}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--policies", type=int, default=500)
    ap.add_argument("--nodes", type=int, default=100)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (nft in a network namespace)", file=sys.stderr)
        return 1
    infos = [p for p in (pod_info(pod(i, args.nodes)) for i in range(args.pods)) if p is not None]
    namespaces = {f"ns{i}": {"team": "x" if i % 5 == 0 else "y"} for i in range(NAMESPACES)}
    policies = [compile_policy(policy(j)) for j in range(args.policies)]
    t = time.perf_counter()
    plan = evaluate(policies, infos, namespaces, "n0")
    t_eval = time.perf_counter() - t
    t = time.perf_counter()
    state = render(plan)
    t_render = time.perf_counter() - t
    script = full_sync(state)
    newcomer = pod_info(pod(args.pods, args.nodes))
    assert newcomer is not None
    t = time.perf_counter()
    state2 = render(evaluate(policies, [*infos, newcomer], namespaces, "n0"))
    delta = partial_sync(state, state2)
    t_delta = time.perf_counter() - t
    ns = f"k8py-bench-np-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        nft = Nft(("ip", "netns", "exec", ns, "nft"))
        t = time.perf_counter()
        nft.apply(script, timeout=300)
        t_full = time.perf_counter() - t
        t = time.perf_counter()
        nft.apply(delta)
        t_partial = time.perf_counter() - t
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=True)
    isolated = len(plan.pods)
    print(f"{args.pods} pods on {args.nodes} nodes, {args.policies} policies; node n0 has {isolated} isolated pods")
    print(f"plan {t_eval * 1000:.0f} ms, rules {t_render * 1000:.0f} ms, full table {len(script.splitlines())} "
          f"lines applied in {t_full * 1000:.0f} ms")
    print(f"one pod added: plan and diff {t_delta * 1000:.0f} ms, a {len(delta.splitlines())}-line transaction "
          f"applied in {t_partial * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
