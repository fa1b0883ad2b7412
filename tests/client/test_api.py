"""The async API client against the in-process API server: verbs, errors, kinds, watch."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from k8py import __version__
from k8py.api.registry import Registry
from k8py.client import (
    AlreadyExistsError,
    ApiError,
    Client,
    ClientConfig,
    ConflictError,
    GoneError,
    InvalidError,
    NotFoundError,
    api_error,
    object_key,
)

from .conftest import Api, cm

CM = ("v1", "ConfigMap")
DEP = ("apps", "v1", "deployments")


def deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"a": name}},
                     "template": {"metadata": {"labels": {"a": name}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


async def test_crud_and_typed_errors(client: Client) -> None:
    created = await client.create(CM, cm("a", k="v"))
    assert created["metadata"]["uid"]
    assert created["metadata"]["managedFields"][0]["manager"] == "test"  # the component by default
    got = await client.get(CM, "a", "default")
    assert got == created
    got["data"]["k"] = "v2"
    upd = await client.update(CM, got)
    assert upd["data"]["k"] == "v2"
    with pytest.raises(ConflictError) as ei:
        await client.update(CM, got)  # stale resourceVersion
    assert ei.value.code == 409 and ei.value.reason == "Conflict"
    assert "the object has been modified" in ei.value.message
    with pytest.raises(AlreadyExistsError) as ae:
        await client.create(CM, cm("a"))
    assert ae.value.code == 409 and ae.value.reason == "AlreadyExists" and isinstance(ae.value, ApiError)
    st = await client.delete(CM, "a", "default")
    assert st["status"] == "Success"
    with pytest.raises(NotFoundError) as nf:
        await client.get(CM, "a", "default")
    assert nf.value.code == 404 and nf.value.message == 'configmaps "a" not found'
    assert nf.value.details["name"] == "a"


async def test_invalid_has_causes(client: Client) -> None:
    bad = deployment("bad")
    bad["spec"]["replicas"] = -1
    with pytest.raises(InvalidError) as ei:
        await client.create(DEP, bad, "default")
    assert ei.value.code == 422
    assert any(c["field"] == "spec.replicas" for c in ei.value.details["causes"])


async def test_kind_refs_status_patch_and_field_manager(client: Client) -> None:
    info = Registry().by_kind("apps", "v1", "Deployment")
    assert info is not None
    d = await client.create(info, deployment("d"), field_manager="my-ctl")
    assert d["metadata"]["managedFields"][0]["manager"] == "my-ctl"
    d["status"] = {"replicas": 1, "observedGeneration": 1}
    s = await client.update_status(("apps/v1", "Deployment"), d)
    assert s["status"]["replicas"] == 1
    p = await client.patch(DEP, "d", {"spec": {"replicas": 3}}, "default")
    assert p["spec"]["replicas"] == 3
    p = await client.patch(DEP, "d", [{"op": "replace", "path": "/spec/replicas", "value": 4}], type="json")
    assert p["spec"]["replicas"] == 4
    p = await client.patch(DEP, "d", {"metadata": {"labels": {"x": "y"}}}, type="strategic")
    assert p["metadata"]["labels"] == {"x": "y"}
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ap", "namespace": "default"},
               "data": {"a": "1"}}
    p = await client.patch(CM, "ap", applied, type="apply", field_manager="applier")
    assert p["data"] == {"a": "1"}
    sc = await client.get(DEP, "d", subresource="scale")
    assert sc["kind"] == "Scale" and sc["spec"]["replicas"] == 4
    with pytest.raises(ValueError):
        await client.patch(DEP, "d", {}, type="bogus")  # type: ignore[arg-type]


async def test_cluster_scoped_and_discovery(client: Client) -> None:
    ns = await client.create(("v1", "Namespace"), {"metadata": {"name": "team-a"}})
    assert ns["metadata"]["name"] == "team-a" and "namespace" not in ns["metadata"]
    names = [n["metadata"]["name"] for n in (await client.list(("", "v1", "namespaces")))["items"]]
    assert "team-a" in names and "default" in names
    # a client without the built-in registry finds kinds through discovery
    async with Client(client.config, registry=Registry(())) as bare:
        info = await bare.resolve(("apps", "v1", "deployments"))
        assert info.kind == "Deployment" and info.namespaced and "scale" in info.subresources
        assert (await bare.resolve(("v1", "Node"))).namespaced is False
        with pytest.raises(NotFoundError):
            await bare.resolve(("example.com/v1", "Widget"))


async def test_list_selectors_and_paging(client: Client) -> None:
    for i in range(7):
        await client.create(CM, cm(f"c{i}", labels={"even": str(i % 2 == 0).lower()}))
    await client.create(CM, cm("other", ns="kube-public"))
    lst = await client.list(CM, "default", label_selector="even=true")
    assert sorted(o["metadata"]["name"] for o in lst["items"]) == ["c0", "c2", "c4", "c6"]
    page = await client.list(CM, "default", limit=3)
    assert len(page["items"]) == 3 and page["metadata"]["continue"]
    every = await client.list_all(CM, "default", page_size=3)
    assert sorted(o["metadata"]["name"] for o in every["items"]) == [f"c{i}" for i in range(7)]
    assert "continue" not in every["metadata"] and every["metadata"]["resourceVersion"]
    everywhere = await client.list_all(CM, None, field_selector="metadata.name=other")
    assert [object_key(o) for o in everywhere["items"]] == ["kube-public/other"]


async def test_watch_events_and_clean_end(client: Client) -> None:
    rv = (await client.list(CM, "default"))["metadata"]["resourceVersion"]
    a = await client.create(CM, cm("w"))
    a["data"] = {"x": "1"}
    await client.update(CM, a)
    await client.delete(CM, "w", "default")
    seen = []
    async with client.watch(CM, "default", resource_version=rv, timeout_seconds=1) as w:
        async for ev in w:
            if ev.type != "BOOKMARK":
                seen.append((ev.type, ev.object["metadata"]["name"]))
    # the stream ended by itself after timeoutSeconds
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


async def test_watch_break_early_releases(client: Client) -> None:
    await client.create(CM, cm("b1"))
    async with client.watch(CM, "default", resource_version="0") as w:
        async for ev in w:
            assert ev.type == "ADDED"
            break
    # iterating without a context manager: ends (and closes) at the stream's end
    n = 0
    async for _ in client.watch(CM, "default", resource_version="0", timeout_seconds=1, allow_bookmarks=False):
        n += 1
    assert n == 1


async def test_watch_too_old_is_gone(api: Api, client: Client) -> None:
    first = await client.create(CM, cm("g1"))
    for i in range(3):
        await client.create(CM, cm(f"g{i + 2}"))
    await api.store.compact(await api.store.current_revision())
    with pytest.raises(GoneError) as ei:
        async with client.watch(CM, "default", resource_version=first["metadata"]["resourceVersion"]) as w:
            async for _ in w:
                pass
    assert ei.value.code == 410


async def test_unreachable_server_raises_oserror() -> None:
    async with Client(ClientConfig(server="http://127.0.0.1:9"), timeout=2) as c:
        with pytest.raises(OSError):
            await c.get(CM, "x", "default")


async def test_delete_options_and_dry_run(client: Client) -> None:
    o = await client.create(CM, cm("d1"))
    dry = await client.create(CM, cm("dry"), dry_run=True)
    assert dry["metadata"]["name"] == "dry"
    with pytest.raises(NotFoundError):
        await client.get(CM, "dry")
    with pytest.raises(ConflictError) as ei:
        await client.delete(CM, "d1", uid="not-the-uid")
    assert "Precondition failed" in ei.value.message
    # Orphan propagation: the garbage collector's "orphan" finalizer keeps the object for now
    gone = await client.delete(CM, "d1", uid=o["metadata"]["uid"], propagation_policy="Orphan")
    assert gone["metadata"]["deletionTimestamp"] and gone["metadata"]["finalizers"] == ["orphan"]


async def test_request_plumbing_against_a_stub() -> None:
    """User agent, bearer token, Retry-After retries and non-Status error bodies, on a stub server."""
    seen: list[dict[str, str]] = []
    calls = {"n": 0}

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append({"ua": request.headers.get("User-Agent", ""), "auth": request.headers.get("Authorization", ""),
                     "q": request.query_string})
        if request.path.endswith("/busy"):
            calls["n"] += 1
            if calls["n"] < 3:
                return web.Response(status=429, headers={"Retry-After": "0"}, text="slow down")
            return web.json_response({"kind": "ConfigMap", "metadata": {"name": "busy"}})
        if request.method == "POST":
            return web.json_response(await request.json(), status=201)
        if request.path.endswith("/proxyerr"):
            return web.Response(status=502, text="<html>bad gateway</html>")
        return web.json_response({"kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound",
                                  "message": "nope", "details": {"name": "x"}}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with TestServer(app, host="127.0.0.1") as ts:
        cfg = ClientConfig(server=str(ts.make_url("")).rstrip("/"), token="s3cret")
        async with Client(cfg, component="scheduler") as c:
            got = await c.get(CM, "busy", "ns")
            assert got["metadata"]["name"] == "busy" and calls["n"] == 3
            with pytest.raises(ApiError) as ei:
                await c.get(CM, "proxyerr", "ns")
            assert ei.value.code == 502 and "bad gateway" in ei.value.message
            with pytest.raises(NotFoundError):
                await c.get(CM, "x", "ns")
            await c.create(CM, cm("w"), dry_run=True)
    assert all(s["ua"] == f"k8py/{__version__} (scheduler)" for s in seen)
    assert all(s["auth"] == "Bearer s3cret" for s in seen)
    assert seen[-1]["q"] == "fieldManager=scheduler&dryRun=All"


def test_error_mapping() -> None:
    assert isinstance(api_error({"reason": "Expired", "code": 410}), GoneError)
    assert isinstance(api_error({"code": 409}), ConflictError)
    assert isinstance(api_error({"reason": "AlreadyExists", "code": 409}), AlreadyExistsError)
    e = api_error({"reason": "Weird", "code": 418, "message": "teapot"})
    assert type(e) is ApiError and str(e) == "418 Weird: teapot"
