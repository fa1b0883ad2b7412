"""What one RBAC decision costs, in-process: ``RBACAuthorizer.authorize`` over kube's bootstrap
policy plus many user bindings (to show the subject index: a decision reads only the bindings
naming the user or their groups, not all of them).

Usage:  python bench/authz_bench.py [--bindings N] [--json out.json]

Measures microseconds per decision for: a ``system:masters`` user (no RBAC lookup), a repeated
request (the decision cache), a request never seen before (a full RBAC decision, allowed), a
denied one (every binding of the user read, no rule matches), and the decision cache's refill
after an RBAC change. Nothing here does I/O.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from k8py.apiserver.authn import UserInfo
from k8py.apiserver.authz import RequestAttributes
from k8py.apiserver.rbac import PolicyCache, RBACAuthorizer
from k8py.apiserver.rbac.bootstrap import cluster_role_bindings, cluster_roles, role_bindings, roles

RBAC = "rbac.authorization.k8s.io"


def load_policy(cache: PolicyCache, n_bindings: int) -> None:
    for r in cluster_roles():
        cache.put("clusterroles", "", r["metadata"]["name"], r)
    for b in cluster_role_bindings():
        cache.put("clusterrolebindings", "", b["metadata"]["name"], b)
    for r in roles():
        cache.put("roles", r["metadata"]["namespace"], r["metadata"]["name"], r)
    for b in role_bindings():
        cache.put("rolebindings", b["metadata"]["namespace"], b["metadata"]["name"], b)
    # view's rules, as the aggregation controller fills them
    view = next(r for r in cluster_roles() if r["metadata"]["name"] == "system:aggregate-to-view")
    cache.put("clusterroles", "", "view", {"metadata": {"name": "view"}, "rules": view["rules"]})
    # many users, each with a view binding in their own namespace (user-7, the one measured, always)
    for i in range(max(n_bindings, 8)):
        cache.put("rolebindings", f"ns-{i}", "view", {
            "metadata": {"name": "view", "namespace": f"ns-{i}"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "apiGroup": RBAC, "name": f"user-{i}"}]})


def per_call_us(fn: Any, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t) / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bindings", type=int, default=10_000, help="user RoleBindings besides the bootstrap policy")
    ap.add_argument("--json", help="write results as JSON to this file")
    args = ap.parse_args()
    cache = PolicyCache()
    auth = RBACAuthorizer(cache)
    t = time.perf_counter()
    load_policy(cache, args.bindings)
    load_s = time.perf_counter() - t
    n = 50_000
    user = UserInfo("user-7", groups=("system:authenticated",))
    admin = UserInfo("admin", groups=("system:masters", "system:authenticated"))

    def get(name: str) -> RequestAttributes:
        return RequestAttributes(verb="get", resource="configmaps", namespace="ns-7", name=name,
                                 is_resource_request=True, api_version="v1")

    fixed = get("cm-1")
    many = [get(f"cm-{i}") for i in range(n)]
    secrets = [RequestAttributes(verb="get", resource="secrets", namespace="ns-7", name=f"s-{i}",
                                 is_resource_request=True, api_version="v1") for i in range(n)]
    res: dict[str, Any] = {"bindings": args.bindings, "load_seconds": round(load_s, 3)}
    res["masters_us"] = per_call_us(lambda i: auth.authorize(admin, fixed), n)
    auth.authorize(user, fixed)
    res["cached_us"] = per_call_us(lambda i: auth.authorize(user, fixed), n)
    auth._decisions.clear()
    res["allowed_uncached_us"] = per_call_us(lambda i: auth.authorize(user, many[i]), n)
    auth._decisions.clear()
    res["denied_uncached_us"] = per_call_us(lambda i: auth.authorize(user, secrets[i]), n)
    assert not auth.authorize(user, secrets[0])[0] and auth.authorize(user, many[0])[0]
    # an RBAC change drops every cached decision
    cache.put("clusterroles", "", "x", {"metadata": {"name": "x"}, "rules": []})
    assert not auth._decisions
    for k, v in res.items():
        if k.endswith("_us"):
            res[k] = round(v, 2)
    for k, v in res.items():
        print(f"{k:<22} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
