"""The API server in-process (aiohttp test client) over the in-memory store: verbs,
subresources, watch semantics and bad input, without TLS or subprocesses."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from aiohttp.test_utils import TestClient

DEP = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
             "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
}


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}




CM = "/api/v1/namespaces/default/configmaps"
DEPS = "/apis/apps/v1/namespaces/default/deployments"


async def test_create_get_update_delete(api: TestClient) -> None:
    r = await api.post(CM, json=cm("a", k="v"))
    assert r.status == 201
    obj = await r.json()
    assert obj["metadata"]["uid"] and obj["metadata"]["creationTimestamp"]
    assert "generation" not in obj["metadata"]
    r = await api.get(f"{CM}/a")
    got = await r.json()
    assert got == obj
    got["data"]["k"] = "v2"
    r = await api.put(f"{CM}/a", json=got)
    assert r.status == 200
    upd = await r.json()
    assert int(upd["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])
    # stale write
    r = await api.put(f"{CM}/a", json=got)
    assert r.status == 409
    st = await r.json()
    assert st["reason"] == "Conflict" and "the object has been modified" in st["message"]
    r = await api.delete(f"{CM}/a")
    assert r.status == 200 and (await r.json())["status"] == "Success"
    r = await api.get(f"{CM}/a")
    assert r.status == 404
    assert (await r.json())["message"] == 'configmaps "a" not found'


async def test_generation_and_status_subresource(api: TestClient) -> None:
    r = await api.post(DEPS, json=DEP)
    d = await r.json()
    assert d["metadata"]["generation"] == 1
    d["status"] = {"replicas": 99}
    d["metadata"]["labels"] = {"x": "y"}
    r = await api.put(f"{DEPS}/d", json=d)
    d2 = await r.json()
    assert d2["metadata"]["generation"] == 1, "metadata change must not bump generation"
    assert d2.get("status", {}).get("replicas") != 99, "main resource ignores status"
    d2["spec"]["replicas"] = 3
    d3 = await (await api.put(f"{DEPS}/d", json=d2)).json()
    assert d3["metadata"]["generation"] == 2
    d3["status"] = {"replicas": 2, "observedGeneration": 2}
    d3["spec"]["replicas"] = 10
    r = await api.put(f"{DEPS}/d/status", json=d3)
    assert r.status == 200
    d4 = await r.json()
    assert d4["status"]["replicas"] == 2 and d4["spec"]["replicas"] == 3
    assert d4["metadata"]["generation"] == 2


async def test_scale_subresource(api: TestClient) -> None:
    await api.post(DEPS, json=DEP)
    r = await api.get(f"{DEPS}/d/scale")
    sc = await r.json()
    assert sc["kind"] == "Scale" and sc["spec"]["replicas"] == 1 and sc["status"]["selector"] == "a=b"
    r = await api.patch(f"{DEPS}/d/scale", data=json.dumps({"spec": {"replicas": 4}}),
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200 and (await r.json())["spec"]["replicas"] == 4
    r = await api.patch(f"{DEPS}/d/scale", data=json.dumps({"spec": {"replicas": -1}}),
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 422
    assert (await (await api.get(f"{DEPS}/d")).json())["spec"]["replicas"] == 4


async def test_dry_run_stores_nothing(api: TestClient) -> None:
    r = await api.post(CM + "?dryRun=All", json=cm("dry"))
    assert r.status == 201
    assert (await api.get(f"{CM}/dry")).status == 404
    r = await api.post(CM + "?dryRun=Some", json=cm("dry"))
    assert r.status == 422  # kube: CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value


async def test_generate_name(api: TestClient) -> None:
    r = await api.post(CM, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}})
    assert r.status == 201
    name = (await r.json())["metadata"]["name"]
    assert name.startswith("gen-") and len(name) == 9


async def test_bad_input(api: TestClient) -> None:
    r = await api.post(CM, data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["reason"] == "BadRequest"
    big = cm("big", k="x" * (3 * 1024 * 1024 + 10))
    r = await api.post(CM, data=io.BytesIO(json.dumps(big).encode()), headers={"Content-Type": "application/json"})
    assert r.status == 413
    r = await api.get("/apis/apps/v1/namespaces/default/widgets")
    assert r.status == 404
    r = await api.post("/api/v1/namespaces/missing/configmaps", json=cm("x"))
    assert r.status == 404 and (await r.json())["message"] == 'namespaces "missing" not found'
    r = await api.post(CM, json={**cm("x"), "apiVersion": "apps/v1"})
    assert r.status == 400
    r = await api.post(CM + "?fieldValidation=Strict", json={**cm("x"), "bogus": 1})
    assert r.status == 400 and 'unknown field "bogus"' in (await r.json())["message"]
    r = await api.post(CM, json={**cm("x"), "bogus": 1})
    assert r.status == 201 and 'unknown field \\"bogus\\"' in r.headers.get("Warning", "")
    assert "bogus" not in await (await api.get(f"{CM}/x")).json()
    bad = json.loads(json.dumps(DEP))
    bad["spec"]["template"]["metadata"]["labels"] = {"a": "c"}
    r = await api.post(DEPS, json=bad)
    st = await r.json()
    assert r.status == 422 and st["reason"] == "Invalid"
    assert any(c["field"] == "spec.template.metadata.labels" for c in st["details"]["causes"])
    assert (await api.get(f"{DEPS}/d")).status == 404


async def test_list_paging_and_rv_semantics(api: TestClient) -> None:
    for i in range(7):
        await api.post(CM, json=cm(f"c{i}"))
    page = await (await api.get(CM + "?limit=3")).json()
    assert [x["metadata"]["name"] for x in page["items"]] == ["c0", "c1", "c2"]
    assert page["metadata"]["remainingItemCount"] == 4
    tok = page["metadata"]["continue"]
    await api.delete(f"{CM}/c3")
    page2 = await (await api.get(CM + f"?limit=3&continue={tok}")).json()
    assert [x["metadata"]["name"] for x in page2["items"]] == ["c3", "c4", "c5"], "pages read one snapshot"
    r = await api.get(CM + f"?limit=3&continue={tok}&resourceVersion=5")
    assert r.status == 400
    rv = int(page["metadata"]["resourceVersion"])
    exact = await (await api.get(CM + f"?resourceVersion={rv}&resourceVersionMatch=Exact")).json()
    assert "c3" in [x["metadata"]["name"] for x in exact["items"]]
    r = await api.get(CM + f"?resourceVersion={rv + 1000}")
    assert r.status == 504
    r = await api.get(CM + "?labelSelector=a%20in%20(")
    assert r.status == 400


async def test_watch_events_and_too_old(api: TestClient) -> None:
    rv = (await (await api.get(CM)).json())["metadata"]["resourceVersion"]
    await api.post(CM, json=cm("w"))
    await api.patch(f"{CM}/w", data=json.dumps({"data": {"a": "1"}}),
                    headers={"Content-Type": "application/merge-patch+json"})
    await api.delete(f"{CM}/w")
    r = await api.get(CM + f"?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    lines = [json.loads(ln) for ln in (await r.text()).splitlines() if ln.strip()]
    assert [e["type"] for e in lines] == ["ADDED", "MODIFIED", "DELETED"]
    store = api.cp.store  # type: ignore[attr-defined]
    await store.compact(await store.current_revision())
    r = await api.get(CM + "?watch=1&resourceVersion=1&timeoutSeconds=1")
    assert r.status == 200
    ev = json.loads((await r.text()).splitlines()[0])
    assert ev["type"] == "ERROR" and ev["object"]["code"] == 410


async def test_watch_initial_events_and_bookmark(api: TestClient) -> None:
    await api.post(CM, json=cm("i1"))
    r = await api.get(CM + "?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                      "&allowWatchBookmarks=true&timeoutSeconds=1")
    evs = [json.loads(ln) for ln in (await r.text()).splitlines() if ln.strip()]
    assert evs[0]["type"] == "ADDED" and evs[0]["object"]["metadata"]["name"] == "i1"
    bm = [e for e in evs if e["type"] == "BOOKMARK"]
    assert bm and bm[0]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_watch_label_selector_transitions(api: TestClient) -> None:
    rv = (await (await api.get(CM)).json())["metadata"]["resourceVersion"]
    await api.post(CM, json={**cm("s"), "metadata": {"name": "s", "labels": {"t": "x"}}})
    await api.patch(f"{CM}/s", data=json.dumps({"metadata": {"labels": {"t": "y"}}}),
                    headers={"Content-Type": "application/merge-patch+json"})
    await api.patch(f"{CM}/s", data=json.dumps({"metadata": {"labels": {"t": "x"}}}),
                    headers={"Content-Type": "application/merge-patch+json"})
    r = await api.get(CM + f"?watch=1&resourceVersion={rv}&labelSelector=t%3Dx&timeoutSeconds=1")
    evs = [json.loads(ln)["type"] for ln in (await r.text()).splitlines() if ln.strip()]
    assert evs == ["ADDED", "DELETED", "ADDED"]


async def test_finalizers_delay_deletion(api: TestClient) -> None:
    await api.post(CM, json={**cm("f"), "metadata": {"name": "f", "finalizers": ["example.com/x"]}})
    r = await api.delete(f"{CM}/f")
    assert r.status in (200, 202)
    obj = await (await api.get(f"{CM}/f")).json()
    assert obj["metadata"]["deletionTimestamp"]
    # no new finalizers on a deleting object
    r = await api.patch(f"{CM}/f", data=json.dumps({"metadata": {"finalizers": ["example.com/x", "b/c"]}}),
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 403
    r = await api.patch(f"{CM}/f", data=json.dumps({"metadata": {"finalizers": None}}),
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    assert (await api.get(f"{CM}/f")).status == 404


async def test_pod_binding_and_graceful_delete(api: TestClient) -> None:
    pods = "/api/v1/namespaces/default/pods"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    created = await (await api.post(pods, json=pod)).json()
    assert created["status"]["phase"] == "Pending" and created["status"]["qosClass"] == "BestEffort"
    assert created["spec"]["serviceAccountName"] == "default"
    tol = {t["key"]: t for t in created["spec"]["tolerations"]}
    assert tol["node.kubernetes.io/unreachable"]["tolerationSeconds"] == 300
    r = await api.post(f"{pods}/p/binding", json={"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                                                   "target": {"kind": "Node", "name": "n1"}})
    assert r.status == 201
    r = await api.post(f"{pods}/p/binding", json={"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                                                   "target": {"kind": "Node", "name": "n2"}})
    assert r.status == 409
    bound = await (await api.get(f"{pods}/p")).json()
    assert bound["spec"]["nodeName"] == "n1"
    r = await api.delete(f"{pods}/p")
    assert r.status == 200
    still = await (await api.get(f"{pods}/p")).json()
    assert still["metadata"]["deletionTimestamp"] and still["metadata"]["deletionGracePeriodSeconds"] == 30
    r = await api.delete(f"{pods}/p", json={"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0})
    assert r.status == 200
    assert (await api.get(f"{pods}/p")).status == 404
    r = await api.get(f"{pods}/nope/log")
    assert r.status == 404


async def test_a_shorter_grace_period_brings_deletion_forward(api: TestClient) -> None:
    """kube's BeforeDelete: a pod being deleted with 30 s and a finalizer, deleted again with
    grace 5 then 0, gets the shorter periods; with 0 it goes as soon as the finalizer does."""
    pods = "/api/v1/namespaces/default/pods"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "f", "finalizers": ["example.com/hold"]},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}
    assert (await api.post(pods, json=pod)).status == 201
    assert (await api.delete(f"{pods}/f")).status == 200
    got = await (await api.get(f"{pods}/f")).json()
    assert got["metadata"]["deletionGracePeriodSeconds"] == 30
    for grace in (5, 0):
        r = await api.delete(f"{pods}/f", json={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace})
        assert r.status == 200
        got = await (await api.get(f"{pods}/f")).json()
        assert got["metadata"]["deletionGracePeriodSeconds"] == grace
    # a longer one does not push it back
    r = await api.delete(f"{pods}/f", json={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 60})
    assert (await (await api.get(f"{pods}/f")).json())["metadata"]["deletionGracePeriodSeconds"] == 0
    r = await api.patch(f"{pods}/f", data=json.dumps({"metadata": {"finalizers": None}}),
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    assert (await api.get(f"{pods}/f")).status == 404


async def test_immortal_namespaces_and_terminating(api: TestClient) -> None:
    r = await api.delete("/api/v1/namespaces/default")
    assert r.status == 403
    await api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}})
    r = await api.delete("/api/v1/namespaces/t")
    assert r.status in (200, 202)
    ns = await (await api.get("/api/v1/namespaces/t")).json()
    assert ns["status"]["phase"] == "Terminating"
    r = await api.post("/api/v1/namespaces/t/configmaps", json=cm("x"))
    assert r.status == 403 and "being terminated" in (await r.json())["message"]


async def test_discovery_and_table(api: TestClient) -> None:
    r = await api.get("/apis", headers={
        "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"})
    assert r.headers["Content-Type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
    groups = {g["metadata"]["name"] for g in (await r.json())["items"]}
    assert {"apps", "batch", "autoscaling", "policy"} <= groups
    etag = r.headers["ETag"]
    r = await api.get("/apis", headers={
        "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", "If-None-Match": etag})
    assert r.status == 304
    await api.post(DEPS, json=DEP)
    t = await (await api.get(DEPS, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})).json()
    assert t["kind"] == "Table"
    assert [c["name"] for c in t["columnDefinitions"]][:5] == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    assert t["rows"][0]["cells"][:2] == ["d", "0/1"]
    r = await api.get(DEPS, headers={"Accept": "application/vnd.kubernetes.protobuf"})
    assert r.status == 406


async def test_concurrent_creates_of_one_name(api: TestClient) -> None:
    rs = await asyncio.gather(*(api.post(CM, json=cm("race")) for _ in range(10)))
    assert sorted(r.status for r in rs) == [201] + [409] * 9


async def test_wrong_types_are_refused(api: TestClient) -> None:
    bad = json.loads(json.dumps(DEP))
    bad["spec"]["replicas"] = "three"
    r = await api.post(DEPS, json=bad)
    st = await r.json()
    assert r.status == 400 and st["reason"] == "BadRequest"
    assert "cannot unmarshal string" in st["message"] and "spec.replicas" in st["message"]
    assert (await api.get(f"{DEPS}/d")).status == 404


async def test_client_disconnect_mid_watch_does_not_disturb_others(api: TestClient) -> None:
    import aiohttp

    store = api.cp.store  # type: ignore[attr-defined]
    url = str(api.make_url(CM + "?watch=1&timeoutSeconds=30"))
    async with aiohttp.ClientSession() as s:
        resp = await s.get(url)
        assert resp.status == 200
        deadline = asyncio.get_running_loop().time() + 5
        while not store._watchers and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert len(store._watchers) == 1
        resp.connection.transport.abort()  # the client vanishes mid-stream
        resp.release()
    # the server notices, closes the store watch, and keeps serving everyone else
    deadline = asyncio.get_running_loop().time() + 5
    while store._watchers and asyncio.get_running_loop().time() < deadline:
        await api.post(CM, json=cm(f"after-{asyncio.get_running_loop().time()}"))
        await asyncio.sleep(0.05)
    assert store._watchers == []
    r = await api.get(CM)
    assert r.status == 200 and len((await r.json())["items"]) >= 1


async def test_uid_in_body_is_a_precondition(api: TestClient) -> None:
    created = await (await api.post(CM, json=cm("u"))).json()
    r = await api.patch(f"{CM}/u", data=json.dumps({"metadata": {"uid": "not-the-uid", "labels": {"a": "b"}}}),
                        headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status == 409 and "Precondition failed: UID" in (await r.json())["message"]
    r = await api.patch(f"{CM}/u", data=json.dumps({"metadata": {"uid": created["metadata"]["uid"],
                                                                 "labels": {"a": "b"}}}),
                        headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status == 200 and (await r.json())["metadata"]["labels"] == {"a": "b"}


async def test_service_deleted_by_its_last_finalizer_frees_its_ip(api: TestClient) -> None:
    svcs = "/api/v1/namespaces/default/services"

    def svc(name: str, **meta: Any) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, **meta},
                "spec": {"clusterIP": "10.43.0.77", "ports": [{"port": 80}]}}

    r = await api.post(svcs, json=svc("held", finalizers=["example.com/hold"]))
    assert r.status == 201
    assert (await api.delete(f"{svcs}/held")).status in (200, 202)
    r = await api.post(svcs, json=svc("other"))
    assert r.status == 422, "the IP is still held by the terminating Service"
    r = await api.patch(f"{svcs}/held", data=json.dumps({"metadata": {"finalizers": None}}),
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    assert (await api.get(f"{svcs}/held")).status == 404
    r = await api.post(svcs, json=svc("other"))
    assert r.status == 201, await r.text()
