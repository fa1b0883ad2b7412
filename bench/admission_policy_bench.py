"""What ValidatingAdmissionPolicies cost a write.

Measured in one process:

  1. compiling a policy (what the API server does when one is written, and again in the
     admission plugin when its watch delivers it), per policy;
  2. evaluating a policy on a request (``admissionpolicy.evaluate``: match conditions, a variable,
     two validations, one with a messageExpression), per evaluation, CPU time;
  3. creating ConfigMaps through the API server in-process (aiohttp's test client over the
     in-memory store) with no policy, and with ``--policies`` policies each bound to every
     ConfigMap (all pass), wall time per create.

Usage:  python bench/admission_policy_bench.py [--requests 300] [--policies 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from k8py.api import admissionpolicy as ap
from k8py.api import defaults
from k8py.api.registry import Registry
from k8py.apiserver import server as srv
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore

AR = "/apis/admissionregistration.k8s.io/v1"


def policy(name: str) -> dict[str, Any]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                             "operations": ["CREATE", "UPDATE"],
                                                             "resources": ["configmaps"]}]},
                     "matchConditions": [{"name": "not-system", "expression":
                                          "!object.metadata.name.startsWith('system-')"}],
                     "variables": [{"name": "keys", "expression": "has(object.data) ? object.data.size() : 0"}],
                     "validations": [{"expression": "variables.keys <= 10", "message": "at most 10 keys"},
                                     {"expression": "object.metadata.name.size() < 60",
                                      "messageExpression": "'name too long: ' + object.metadata.name"}]}}


def binding(name: str) -> dict[str, Any]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name}, "spec": {"policyName": name, "validationActions": ["Deny"]}}


def pure(n: int) -> dict[str, float]:
    kind = Registry().by_resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies")
    assert kind is not None
    p = policy("p")
    defaults.set_defaults(kind, p)
    ap.compile_policy(p)  # the binding's first compile initialises it
    t = time.process_time()
    for _ in range(20):
        cp = ap.compile_policy(p)
    compile_ms = (time.process_time() - t) / 20 * 1000
    data = {"object": {"metadata": {"name": "cm"}, "data": {"a": "1"}}, "oldObject": None,
            "request": {"operation": "CREATE"}, "namespaceObject": None, "authorizer": {}}
    t = time.process_time()
    for _ in range(n):
        out = ap.evaluate(cp, dict(data))
        assert not out.decisions
    eval_us = (time.process_time() - t) / n * 1e6
    return {"compile_ms_per_policy": round(compile_ms, 2), "evaluate_us_per_policy": round(eval_us, 1)}


async def creates(n: int, policies: int) -> float:
    store = MemoryStore(progress_interval=0.5)
    await store.start()
    cp = srv.build(ServerConfig(data_dir=tempfile.mkdtemp()), store)
    await cp.bootstrap()
    cp.http.ready = True
    tasks = await cp.api.admission.start()
    try:
        async with TestClient(TestServer(cp.http.build())) as c:
            for i in range(policies):
                for plural, obj in (("validatingadmissionpolicies", policy(f"p{i}")),
                                    ("validatingadmissionpolicybindings", binding(f"p{i}"))):
                    r = await c.post(f"{AR}/{plural}", json=obj)
                    assert r.status == 201, await r.text()
            plugin = cp.api.admission.plugin("ValidatingAdmissionPolicy")
            deadline = time.monotonic() + 10
            while len(getattr(plugin, "_bindings", {})) < policies:  # the plugin's watch delivers them
                assert time.monotonic() < deadline, "policies not seen by the plugin"
                await asyncio.sleep(0.01)
            t = time.perf_counter()
            for i in range(n):
                r = await c.post("/api/v1/namespaces/default/configmaps",
                                 json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm{i}"},
                                       "data": {"a": "1"}})
                assert r.status == 201, await r.text()
            return (time.perf_counter() - t) / n * 1000
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--policies", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    out: dict[str, Any] = pure(args.requests * 10)
    out["create_ms_no_policy"] = round(asyncio.run(creates(args.requests, 0)), 2)
    out[f"create_ms_{args.policies}_policies"] = round(asyncio.run(creates(args.requests, args.policies)), 2)
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
