"""What CRD validation rules (x-kubernetes-validations, CEL) cost.

Measured in one process on Gateway API's standard Gateway and HTTPRoute CRDs (the test data in
tests/e2e/testdata/gateway-api, full of rules):

  1. loading the CEL binding (``cel-expr-python``) and compiling a first rule (the binding
     initialises itself), which a server pays once, only when a CRD with rules is written or
     served;
  2. checking a CRD's schemas when it is written (``api.crd.structural_errors``: every rule
     compiled), per CRD and per rule;
  3. building a version's validator (every rule compiled again, once per CRD version and
     server) and evaluating the rules on a sound Gateway and HTTPRoute, per object.

Times are this process's CPU time (``time.process_time``).

Usage:  python bench/cel_rules_bench.py [--objects 500] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import yaml

from k8py.api import cel, crd

DATA = Path(__file__).resolve().parent.parent / "tests" / "e2e" / "testdata" / "gateway-api"

GATEWAY = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "g"},
           "spec": {"gatewayClassName": "k8py", "listeners": [
               {"name": "http", "protocol": "HTTP", "port": 80},
               {"name": "https", "protocol": "HTTPS", "port": 443, "hostname": "a.example.com",
                "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]}}]}}
ROUTE = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
         "spec": {"parentRefs": [{"name": "g"}], "hostnames": ["a.example.com"], "rules": [
             {"matches": [{"path": {"type": "PathPrefix", "value": f"/api{i}"}}],
              "filters": [{"type": "RequestHeaderModifier",
                           "requestHeaderModifier": {"add": [{"name": "X-A", "value": "1"}]}}],
              "backendRefs": [{"name": "svc", "port": 8080}]} for i in range(4)]}}


def count_rules(s: Any) -> int:
    if not isinstance(s, dict):
        return 0
    n = len(s.get("x-kubernetes-validations") or [])
    for v in (s.get("properties") or {}).values():
        n += count_rules(v)
    return n + count_rules(s.get("items")) + count_rules(s.get("additionalProperties"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=500)
    ap.add_argument("--json")
    args = ap.parse_args()
    out: dict[str, Any] = {}

    t = time.process_time()
    cel._load()
    out["load binding ms"] = round((time.process_time() - t) * 1000, 1)
    t = time.process_time()
    cel.compile_rules({"type": "object", "x-kubernetes-validations": [{"rule": "true"}]})
    out["first rule compiled ms"] = round((time.process_time() - t) * 1000, 1)

    for name, obj in (("gateways", GATEWAY), ("httproutes", ROUTE)):
        doc = yaml.safe_load((DATA / f"gateway.networking.k8s.io_{name}.yaml").read_text())
        schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        rules = count_rules(schema)
        t = time.process_time()
        assert crd.structural_errors(schema, "s") == []
        check = time.process_time() - t
        t = time.process_time()
        validator = crd.rules_validator(schema)
        build = time.process_time() - t
        o = copy.deepcopy(obj)
        crd.prune(o, schema)
        crd.default(o, schema)
        t = time.process_time()
        for _ in range(args.objects):
            assert crd.rule_errors(validator, o, None, []) == []
        per_create = (time.process_time() - t) / args.objects
        t = time.process_time()
        for _ in range(args.objects):
            assert crd.rule_errors(validator, o, o, []) == []
        per_update = (time.process_time() - t) / args.objects
        out[name] = {"rules": rules, "CRD check ms": round(check * 1000, 1),
                     "per rule compiled us": round(check / rules * 1e6), "validator build ms": round(build * 1000, 1),
                     "per create ms": round(per_create * 1000, 2), "per update ms": round(per_update * 1000, 2)}
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
