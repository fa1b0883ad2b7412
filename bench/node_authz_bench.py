"""What the Node authorizer costs a node's requests: a node agent's GET of a Secret its pod uses.

Usage:  python bench/node_authz_bench.py [--pods N] [--nodes M] [--gets G] [--json out.json]
        PYTHONPATH=<other tree>/src python bench/node_authz_bench.py --http-only   (a before/after pair)

1. In-process (when the tree has :mod:`k8py.apiserver.rbac.node`): one decision, 50,000 calls
   each, over a graph of N pods bound to M nodes (each pod with two Secrets, a ConfigMap and its
   service account): a node's GET of its pod's Secret (allowed along the graph), of another
   node's (denied), a non-node user's request through the ``Node,RBAC`` union (what the Node
   authorizer adds to everyone else's requests), and the graph's update per pod (add, then
   remove; and a status write, which changes nothing in the graph).
2. Over HTTPS against a real ``k8py server --disable-agent``: G GETs of a Secret with a node's
   client certificate (``system:node:bench-node``), 16 concurrent clients, with a pod on that node
   mounting the Secret: the request rate and the server's CPU per GET. Run it with the tree
   before the Node authorizer (the legacy ``system:nodes`` RBAC binding decides) and after.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from api_bench import CPU, Cluster, run_workers, summary

NODE = "bench-node"


def per_call_us(fn: Any, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t) / n * 1e6


def pod(name: str, node: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": f"u-{name}"},
            "spec": {"nodeName": node, "serviceAccountName": "default",
                     "containers": [{"name": "c", "image": "busybox", "envFrom": [
                         {"configMapRef": {"name": f"{name}-cm"}}]}],
                     "volumes": [{"name": "s", "secret": {"secretName": f"{name}-s"}},
                                 {"name": "t", "projected": {"sources": [{"secret": {"name": f"{name}-t"}}]}}]}}


def in_process(n_pods: int, n_nodes: int) -> dict[str, Any]:
    from k8py.apiserver.authn import UserInfo
    from k8py.apiserver.authz import RequestAttributes, UnionAuthorizer
    from k8py.apiserver.rbac import PolicyCache, RBACAuthorizer
    from k8py.apiserver.rbac.bootstrap import cluster_role_bindings, cluster_roles
    from k8py.apiserver.rbac.node import NodeAuthorizer, NodeGraph

    cache = PolicyCache()
    for r in cluster_roles():
        cache.put("clusterroles", "", r["metadata"]["name"], r)
    for b in cluster_role_bindings():
        cache.put("clusterrolebindings", "", b["metadata"]["name"], b)
    graph = NodeGraph()
    pods = [pod(f"p{i}", f"node-{i % n_nodes}", f"ns-{i % 50}") for i in range(n_pods)]
    t = time.perf_counter()
    for p in pods:
        graph.set_pod(p["metadata"]["namespace"], p["metadata"]["name"], p)
    load_s = time.perf_counter() - t
    union = UnionAuthorizer(NodeAuthorizer(graph), RBACAuthorizer(cache))
    n = 50_000
    node0 = UserInfo("system:node:node-0", groups=("system:nodes", "system:authenticated"))
    node1 = UserInfo("system:node:node-1", groups=("system:nodes", "system:authenticated"))
    alice = UserInfo("alice", groups=("system:authenticated",))
    own = [RequestAttributes(verb="get", resource="secrets", namespace=f"ns-{i % 50}", name=f"p{i}-s",
                             is_resource_request=True, api_version="v1") for i in range(0, n_pods, n_nodes)]
    assert union.authorize(node0, own[0])[0] and not union.authorize(node1, own[0])[0]
    res: dict[str, Any] = {"pods": n_pods, "nodes": n_nodes, "graph_load_seconds": round(load_s, 3)}
    res["node_get_own_secret_us"] = per_call_us(lambda i: union.authorize(node0, own[i % len(own)]), n)
    res["node_get_other_secret_us"] = per_call_us(lambda i: union.authorize(node1, own[i % len(own)]), n)
    res["non_node_through_union_us"] = per_call_us(lambda i: union.authorize(alice, own[i % len(own)]), n)
    res["rbac_alone_non_node_us"] = per_call_us(lambda i: union.authorizers[1].authorize(alice, own[i % len(own)]), n)
    extra = [pod(f"x{i}", f"node-{i % n_nodes}", "ns-x") for i in range(5000)]
    t = time.perf_counter()
    for p in extra:
        graph.set_pod("ns-x", p["metadata"]["name"], p)
    for p in extra:
        graph.set_pod("ns-x", p["metadata"]["name"], None)
    res["graph_add_and_remove_pod_us"] = (time.perf_counter() - t) / len(extra) * 1e6
    # most pod writes are the agent's status writes: the node and uid unchanged, nothing to redo
    written = [{**p, "status": {"phase": "Running"}} for p in pods[:5000]]
    t = time.perf_counter()
    for p in written:
        graph.set_pod(p["metadata"]["namespace"], p["metadata"]["name"], p)
    res["graph_pod_status_write_us"] = (time.perf_counter() - t) / len(written) * 1e6
    for k, v in res.items():
        if k.endswith("_us"):
            res[k] = round(v, 2)
    return res


def node_ssl_context(cluster: Cluster) -> ssl.SSLContext:
    from k8py import pki as pki_mod
    from k8py.config import ServerConfig

    p = pki_mod.ensure_pki(ServerConfig(data_dir=str(cluster.data)))
    cert, key = pki_mod.issue_client_certificate(p, f"system:node:{NODE}", ("system:nodes",))
    d = cluster.tmp / "node-certs"
    d.mkdir(exist_ok=True)
    (d / "n.crt").write_bytes(cert)
    (d / "n.key").write_bytes(key)
    ctx = ssl.create_default_context(cafile=str(cluster.tmp / "certs" / "ca.crt"))
    ctx.load_cert_chain(str(d / "n.crt"), str(d / "n.key"))
    return ctx


async def over_http(n_get: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp))
        try:
            cluster.wait_ready()
            base = f"https://127.0.0.1:{cluster.port}"
            admin_ctx = cluster.ssl_context()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=admin_ctx), base_url=base) as a:
                for path, body in [
                    ("/api/v1/namespaces", {"metadata": {"name": "bench"}}),
                    ("/api/v1/namespaces/bench/secrets", {"metadata": {"name": "s"},
                                                          "data": {"k": base64.b64encode(b"v" * 64).decode()}}),
                    ("/api/v1/namespaces/bench/pods", {"metadata": {"name": "p"}, "spec": {
                        "nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}],
                        "volumes": [{"name": "s", "secret": {"secretName": "s"}}]}}),
                ]:
                    r = await a.post(path, json=body)
                    assert r.status == 201, await r.text()
            ctx = node_ssl_context(cluster)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=200), base_url=base) as s:
                deadline = time.monotonic() + 10
                while True:  # the Node authorizer's graph follows the store: the pod shows up there
                    r = await s.get("/api/v1/namespaces/bench/secrets/s")
                    await r.read()
                    if r.status == 200:
                        break
                    assert time.monotonic() < deadline, f"the node never got the secret ({r.status})"
                    await asyncio.sleep(0.05)

                async def get(i: int) -> None:
                    r = await s.get("/api/v1/namespaces/bench/secrets/s")
                    await r.read()
                    assert r.status == 200, r.status

                await run_workers(16, 500, get)  # warm up
                cpu = CPU({"server": cluster.proc.pid})
                el, lat = await run_workers(16, n_get, get)
                out = summary("GET secret as a node", el, lat)
                out["cpu_ms_per_op"] = cpu.per_op(n_get)
                print(f"  server CPU ms per GET: {out['cpu_ms_per_op']['server']}")
                return out
        finally:
            cluster.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--gets", type=int, default=5000)
    ap.add_argument("--http-only", action="store_true", help="only the HTTPS measurement (any tree)")
    ap.add_argument("--json", help="write results as JSON to this file")
    args = ap.parse_args()
    res: dict[str, Any] = {}
    if not args.http_only:
        res["in_process"] = in_process(args.pods, args.nodes)
        for k, v in res["in_process"].items():
            print(f"{k:<32} {v}")
    res["http"] = asyncio.run(over_http(args.gets))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
