"""The pods/eviction subresource in-process (aiohttp test client over the memory store): budgets
honoured, spent and refused as kube-apiserver does, with PDB status written here as the
disruption controller would."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from tests.api.test_protobuf import envelope, f_int, f_msg, f_str

Obj = dict[str, Any]

PODS = "/api/v1/namespaces/default/pods"
PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"
TOO_MANY = "Cannot evict pod as it would violate the pod's disruption budget."




async def make_pod(api: TestClient, name: str, *, phase: str = "Running", ready: bool = True,
                   labels: dict[str, str] | None = None, node: str | None = "node-1") -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "nginx"}]}
    if node:
        spec["nodeName"] = node
    r = await api.post(PODS, json={"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": name, "labels": labels or {"app": "web"}}, "spec": spec})
    assert r.status == 201, await r.text()
    pod = await r.json()
    pod["status"] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastProbeTime": None,
         "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
    r = await api.put(f"{PODS}/{name}/status", json=pod)
    assert r.status == 200, await r.text()
    return await r.json()  # type: ignore[no-any-return]


async def make_pdb(api: TestClient, name: str, *, allowed: int, current: int = 3, desired: int = 2,
                   selector: Obj | None = None, policy: str | None = None, observed: bool = True,
                   min_available: int = 2) -> Obj:
    spec: Obj = {"minAvailable": min_available,
                 "selector": selector if selector is not None else {"matchLabels": {"app": "web"}}}
    if policy:
        spec["unhealthyPodEvictionPolicy"] = policy
    r = await api.post(PDBS, json={"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                   "metadata": {"name": name}, "spec": spec})
    assert r.status == 201, await r.text()
    pdb = await r.json()
    pdb["status"] = {"observedGeneration": 1 if observed else 0, "disruptionsAllowed": allowed,
                     "currentHealthy": current, "desiredHealthy": desired, "expectedPods": current}
    r = await api.put(f"{PDBS}/{name}/status", json=pdb)
    assert r.status == 200, await r.text()
    return await r.json()  # type: ignore[no-any-return]


def eviction(name: str, **delete_options: Any) -> Obj:
    body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}}
    if delete_options:
        body["deleteOptions"] = delete_options
    return body


async def evict(api: TestClient, name: str, body: Obj | None = None, **kw: Any) -> tuple[int, Obj]:
    r = await api.post(f"{PODS}/{name}/eviction", json=body if body is not None else eviction(name), **kw)
    return r.status, await r.json()


async def get(api: TestClient, path: str) -> Obj | None:
    r = await api.get(path)
    if r.status == 404:
        return None
    assert r.status == 200
    return await r.json()  # type: ignore[no-any-return]


async def test_missing_pod_is_404(api: TestClient) -> None:
    code, st = await evict(api, "nope")
    assert code == 404 and st["reason"] == "NotFound" and st["message"] == 'pods "nope" not found'


async def test_no_budget_evicts_gracefully_with_the_condition(api: TestClient) -> None:
    await make_pod(api, "p")
    code, st = await evict(api, "p", eviction("p", gracePeriodSeconds=7))
    assert code == 201
    assert st == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
    pod = await get(api, f"{PODS}/p")
    assert pod is not None  # bound to a node: graceful, the node finishes it
    assert pod["metadata"]["deletionTimestamp"] and pod["metadata"]["deletionGracePeriodSeconds"] == 7
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert cond["status"] == "True" and cond["reason"] == "EvictionByEvictionAPI"
    assert cond["message"] == "Eviction API: evicting"


async def test_budget_spent_then_refused(api: TestClient) -> None:
    for n in ("a", "b"):
        await make_pod(api, n)
    await make_pdb(api, "web", allowed=1, current=3, desired=2)
    code, _ = await evict(api, "a", eviction("a", gracePeriodSeconds=0))
    assert code == 201
    assert await get(api, f"{PODS}/a") is None  # grace 0: gone at once
    pdb = await get(api, f"{PDBS}/web")
    assert pdb is not None
    st = pdb["status"]
    assert st["disruptionsAllowed"] == 0 and list(st["disruptedPods"]) == ["a"]
    cond = next(c for c in st["conditions"] if c["type"] == "DisruptionAllowed")
    assert cond["status"] == "False" and cond["reason"] == "InsufficientPods"

    r = await api.post(f"{PODS}/b/eviction", json=eviction("b"))
    assert r.status == 429 and "Retry-After" not in r.headers
    body = await r.json()
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": TOO_MANY,
                    "reason": "TooManyRequests", "code": 429,
                    "details": {"causes": [{"reason": "DisruptionBudget",
                                            "message": "The disruption budget web needs 2 healthy pods and has 3 "
                                                       "currently"}]}}
    pod = await get(api, f"{PODS}/b")
    assert pod is not None and not pod["metadata"].get("deletionTimestamp")


async def test_budget_not_yet_observed_is_429_with_retry_after(api: TestClient) -> None:
    await make_pod(api, "p")
    await make_pdb(api, "web", allowed=5, observed=False)
    r = await api.post(f"{PODS}/p/eviction", json=eviction("p"))
    assert r.status == 429 and r.headers["Retry-After"] == "10"
    st = await r.json()
    assert st["details"]["retryAfterSeconds"] == 10
    assert st["details"]["causes"][0]["message"] == "The disruption budget web is still being processed by the server."


async def test_more_than_one_budget_is_500(api: TestClient) -> None:
    await make_pod(api, "p")
    await make_pdb(api, "one", allowed=1)
    await make_pdb(api, "two", allowed=1)
    code, st = await evict(api, "p")
    assert code == 500 and st["status"] == "Failure" and "reason" not in st
    assert st["message"] == ("This pod has more than one PodDisruptionBudget, which the eviction subresource does "
                             "not support.")


async def test_pods_not_running_or_terminating_skip_budgets(api: TestClient) -> None:
    await make_pdb(api, "web", allowed=0)
    await make_pod(api, "pending", phase="Pending", node=None)
    await make_pod(api, "done", phase="Succeeded")
    await make_pod(api, "going")
    r = await api.delete(f"{PODS}/going", json={"gracePeriodSeconds": 30})
    assert r.status == 200
    for n in ("pending", "done", "going"):
        code, st = await evict(api, n)
        assert code == 201, st
    assert await get(api, f"{PODS}/pending") is None
    assert await get(api, f"{PODS}/done") is None  # finished pods go at once
    pdb = await get(api, f"{PDBS}/web")
    assert pdb is not None and pdb["status"]["disruptionsAllowed"] == 0 and "disruptedPods" not in pdb["status"]


async def test_unready_pod_and_unhealthy_pod_eviction_policy(api: TestClient) -> None:
    # IfHealthyBudget (default): an unready pod goes without spending budget while the rest are healthy
    await make_pod(api, "u1", ready=False)
    await make_pdb(api, "web", allowed=0, current=2, desired=2)
    code, _ = await evict(api, "u1", eviction("u1", gracePeriodSeconds=0))
    assert code == 201 and await get(api, f"{PODS}/u1") is None
    pdb = await get(api, f"{PDBS}/web")
    assert pdb is not None and "disruptedPods" not in pdb["status"]
    # ... but not when the budget is already short
    await make_pod(api, "u2", ready=False)
    r = await api.put(f"{PDBS}/web/status", json={**pdb, "status": {**pdb["status"], "currentHealthy": 1}})
    assert r.status == 200
    code, st = await evict(api, "u2")
    assert code == 429 and st["details"]["causes"][0]["message"].endswith("needs 2 healthy pods and has 1 currently")
    # AlwaysAllow: unready pods may always go
    pdb = await get(api, f"{PDBS}/web")
    assert pdb is not None
    pdb["spec"]["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    r = await api.put(f"{PDBS}/web", json=pdb)
    assert r.status == 200
    upd = await r.json()
    upd["status"]["observedGeneration"] = upd["metadata"]["generation"]
    assert (await api.put(f"{PDBS}/web/status", json=upd)).status == 200
    code, _ = await evict(api, "u2", eviction("u2", gracePeriodSeconds=0))
    assert code == 201 and await get(api, f"{PODS}/u2") is None


async def test_dry_run_changes_nothing(api: TestClient) -> None:
    await make_pod(api, "p")
    before_pdb = await make_pdb(api, "web", allowed=1)
    before_pod = await get(api, f"{PODS}/p")
    code, st = await evict(api, "p", params={"dryRun": "All"})
    assert code == 201 and st["status"] == "Success"
    code, _ = await evict(api, "p", eviction("p", dryRun=["All"]))
    assert code == 201
    assert await get(api, f"{PODS}/p") == before_pod
    assert await get(api, f"{PDBS}/web") == before_pdb
    # a dry run still says no when the budget would
    await make_pod(api, "q", labels={"app": "db"})
    await make_pdb(api, "db", allowed=0, selector={"matchLabels": {"app": "db"}})
    code, st = await evict(api, "q", params={"dryRun": "All"})
    assert code == 429 and st["reason"] == "TooManyRequests"


async def test_concurrent_evictions_spend_one_budget_once(api: TestClient) -> None:
    names = [f"p{i}" for i in range(6)]
    for n in names:
        await make_pod(api, n)
    await make_pdb(api, "web", allowed=2, current=6, desired=4)
    results = await asyncio.gather(*(evict(api, n, eviction(n, gracePeriodSeconds=0)) for n in names))
    codes = sorted(c for c, _ in results)
    assert codes == [201, 201, 429, 429, 429, 429]
    pdb = await get(api, f"{PDBS}/web")
    assert pdb is not None and pdb["status"]["disruptionsAllowed"] == 0
    assert len(pdb["status"]["disruptedPods"]) == 2


async def test_bad_requests(api: TestClient) -> None:
    await make_pod(api, "p")
    code, st = await evict(api, "p", eviction("other"))
    assert code == 400 and st["message"] == "name in URL does not match name in Eviction object"
    code, st = await evict(api, "p", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
    assert code == 400
    # the same DeleteOptions checks as DELETE: a wrong type is a decoding error (400) ...
    code, st = await evict(api, "p", eviction("p", gracePeriodSeconds=True))
    assert code == 400
    assert st["message"] == ("json: cannot unmarshal bool into Go struct field Eviction.deleteOptions."
                             "gracePeriodSeconds of type int64")
    code, st = await evict(api, "p", eviction("p", dryRun="All"))
    assert code == 400
    # ... and a value kube's ValidateDeleteOptions refuses is Invalid (422)
    code, st = await evict(api, "p", eviction("p", propagationPolicy="Bogus"))
    assert code == 422 and st["details"]["causes"][0]["field"] == "propagationPolicy"
    code, st = await evict(api, "p", eviction("p", dryRun=["All"]), params={"dryRun": "Nope"})
    assert code == 422
    assert st["message"] == ('CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: '
                             '[]string{"Nope"}: supported values: "All"')
    # the pod is untouched by all of that
    pod = await get(api, f"{PODS}/p")
    assert pod is not None and not pod["metadata"].get("deletionTimestamp")


async def test_preconditions_are_honoured(api: TestClient) -> None:
    pod = await make_pod(api, "p")
    code, st = await evict(api, "p", eviction("p", preconditions={"uid": "not-the-uid"}))
    assert code == 409 and st["reason"] == "Conflict"
    code, st = await evict(api, "p", eviction("p", preconditions={"resourceVersion": "1"}))
    assert code == 409
    code, _ = await evict(api, "p", eviction("p", gracePeriodSeconds=0,
                                             preconditions={"uid": pod["metadata"]["uid"],
                                                            "resourceVersion": pod["metadata"]["resourceVersion"]}))
    assert code == 201 and await get(api, f"{PODS}/p") is None


async def test_empty_selector_budget_does_not_guard_evictions(api: TestClient) -> None:
    # kube's eviction handler: an empty selector matches nothing (the controller reads it as "all")
    await make_pod(api, "p")
    await make_pdb(api, "all", allowed=0, selector={})
    code, _ = await evict(api, "p", eviction("p", gracePeriodSeconds=0))
    assert code == 201


async def test_protobuf_eviction_body(api: TestClient) -> None:
    await make_pod(api, "p")
    await make_pdb(api, "web", allowed=1)
    meta = f_msg(1, f_str(1, "p"), f_str(3, "default"))
    body = envelope("policy/v1", "Eviction", meta, f_msg(2, f_int(1, 0)))
    r = await api.post(f"{PODS}/p/eviction", data=body,
                       headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert r.status == 201, await r.text()
    assert await get(api, f"{PODS}/p") is None
