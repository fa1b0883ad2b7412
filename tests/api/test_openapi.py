"""OpenAPI v3 documents: shape, content, caching, and what real kubectl does with them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from k8py.api import fieldcheck
from k8py.api.errors import StatusError
from k8py.api.openapi import gv_path, v3_document, v3_entry, v3_index, v3_index_bytes
from k8py.api.registry import KindInfo, Registry
from k8py.api.schema import for_kind

REG = Registry()


def doc(path: str, registry: Registry = REG) -> dict[str, Any]:
    data = v3_document(registry, path)
    assert data is not None, path
    return json.loads(data)


def all_refs(node: Any, acc: set[str]) -> set[str]:
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str):
            acc.add(r)
        for v in node.values():
            all_refs(v, acc)
    elif isinstance(node, list):
        for v in node:
            all_refs(v, acc)
    return acc


# --------------------------------------------------------------------------- index


def test_the_definitions_are_read_without_importing_their_package() -> None:
    # kubernetes-validate only carries the data file: importing it would import jsonschema, which
    # the server does not use (a tenth of a second of its start)
    code = ("import sys; from k8py.api.schema import for_kind\n"
            "print(for_kind('apps', 'v1', 'Deployment') is not None, "
            "[m for m in ('kubernetes_validate', 'jsonschema') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.splitlines()[-1] == "True []", r.stdout


def test_index_lists_every_group_version_and_roots() -> None:
    paths = v3_index(REG)["paths"]
    for g, versions in REG.groups().items():
        for v in versions:
            assert gv_path(g, v) in paths
        if g:
            assert f"apis/{g}" in paths
    for p in ("api", "api/v1", "apis", "apis/apps/v1", "apis/autoscaling/v1", "apis/autoscaling/v2", "version"):
        assert p in paths
    for p, entry in paths.items():
        url = entry["serverRelativeURL"]
        m = re.fullmatch(r"/openapi/v3/(.+)\?hash=([0-9A-F]{128})", url)
        assert m, url
        assert m.group(1) == p
        e = v3_entry(REG, p)
        assert e is not None and e[1] == m.group(2)


def test_index_bytes_and_etags_are_stable_and_cached() -> None:
    b1, etag1 = v3_index_bytes(REG)
    b2, etag2 = v3_index_bytes(REG)
    assert b1 == b2 and etag1 == etag2
    e1 = v3_entry(REG, "apis/apps/v1")
    e2 = v3_entry(REG, "/apis/apps/v1/")
    assert e1 is not None and e2 is not None
    assert e1[0] is e2[0]  # served from cache, not rebuilt
    # a second registry with the same kinds produces byte-identical documents
    other = Registry()
    assert v3_entry(other, "apis/apps/v1") == e1


def test_unknown_paths_are_none() -> None:
    for p in ("apis/apps/v2", "apis/nope/v1", "api/v2", "logs", "apis/apps/v1/deployments", ""):
        assert v3_document(REG, p) is None, p


# --------------------------------------------------------------------------- schemas


def test_components_are_openapi3_and_self_contained() -> None:
    for p in v3_index(REG)["paths"]:
        d = doc(p)
        assert d["openapi"] == "3.0.0"
        schemas = d["components"]["schemas"]
        raw = v3_document(REG, p)
        assert raw is not None and b"#/$defs/" not in raw
        for ref in all_refs(d, set()):
            assert ref.startswith("#/components/schemas/"), ref
            assert ref.rsplit("/", 1)[1] in schemas, (p, ref)
        for name, s in schemas.items():
            for node in _walk_schemas(s):
                t = node.get("type")
                assert t is None or isinstance(t, str), (name, t)
                if "$ref" in node:
                    assert set(node) == {"$ref"}, (name, node)  # OpenAPI 3.0 ignores $ref siblings


def _walk_schemas(s: Any) -> list[dict[str, Any]]:
    out = []
    if isinstance(s, dict):
        out.append(s)
        for k in ("properties",):
            for v in s.get(k, {}).values():
                out.extend(_walk_schemas(v))
        for k in ("items", "additionalProperties"):
            if isinstance(s.get(k), dict):
                out.extend(_walk_schemas(s[k]))
        for k in ("allOf", "oneOf", "anyOf"):
            for v in s.get(k, []):
                out.extend(_walk_schemas(v))
    return out


def test_apps_v1_schemas_carry_kube_extensions() -> None:
    schemas = doc("apis/apps/v1")["components"]["schemas"]
    dep = schemas["io.k8s.api.apps.v1.Deployment"]
    assert dep["type"] == "object"
    assert dep["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert dep["required"] == ["spec"]
    assert "enum" not in dep["properties"]["apiVersion"]
    assert "enum" not in dep["properties"]["kind"]
    assert dep["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    assert dep["properties"]["metadata"]["description"].startswith("Standard object's metadata")

    strategy = schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    assert strategy["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}]
    assert schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"] == {
        "description": schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"]["description"],
        "format": "int32",
        "type": "integer",
    }

    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["type"] == "array"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]

    ios = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["format"] == "int-or-string" and ios["description"]
    assert ios["oneOf"] == [{"type": "integer"}, {"type": "string"}]
    q = schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]
    assert q["oneOf"] == [{"type": "string"}, {"type": "number"}] and q["description"]

    # meta types the operations refer to, and the Scale subresource's kind
    for name in ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent", "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList", "io.k8s.api.apps.v1.DeploymentList",
                 "io.k8s.api.autoscaling.v1.Scale", "io.k8s.apimachinery.pkg.apis.meta.v1.Time"):
        assert name in schemas, name
    # nothing from unrelated groups
    assert not any(n.startswith("io.k8s.api.batch.") for n in schemas)
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"] == {
        "description": schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["description"],
        "format": "date-time",
        "type": "string",
    }


# --------------------------------------------------------------------------- paths


def _query_names(op: dict[str, Any]) -> set[str]:
    return {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}


def test_namespaced_resource_paths_like_kube() -> None:
    paths = doc("apis/apps/v1")["paths"]
    gvk = {"group": "apps", "kind": "Deployment", "version": "v1"}
    coll = paths["/apis/apps/v1/namespaces/{namespace}/deployments"]
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert {p["name"] for p in coll["parameters"]} == {"namespace", "pretty"}
    assert {p["name"] for p in item["parameters"]} == {"name", "namespace", "pretty"}

    actions = {("coll", m): coll[m]["x-kubernetes-action"] for m in ("get", "post", "delete")}
    actions |= {("item", m): item[m]["x-kubernetes-action"] for m in ("get", "put", "patch", "delete")}
    assert actions == {("coll", "get"): "list", ("coll", "post"): "post", ("coll", "delete"): "deletecollection",
                       ("item", "get"): "get", ("item", "put"): "put", ("item", "patch"): "patch",
                       ("item", "delete"): "delete"}
    for op in (coll["get"], coll["post"], coll["delete"], item["get"], item["put"], item["patch"], item["delete"]):
        assert op["x-kubernetes-group-version-kind"] == gvk
        assert op["tags"] == ["apps_v1"]
    assert coll["post"]["operationId"] == "createAppsV1NamespacedDeployment"
    assert item["patch"]["operationId"] == "patchAppsV1NamespacedDeployment"
    assert coll["delete"]["operationId"] == "deleteAppsV1CollectionNamespacedDeployment"

    assert _query_names(coll["post"]) == {"dryRun", "fieldManager", "fieldValidation"}
    assert _query_names(item["put"]) == {"dryRun", "fieldManager", "fieldValidation"}
    assert _query_names(item["patch"]) == {"dryRun", "fieldManager", "fieldValidation", "force"}
    assert {"labelSelector", "fieldSelector", "limit", "continue", "watch", "resourceVersion",
            "allowWatchBookmarks", "timeoutSeconds"} <= _query_names(coll["get"])
    assert {"gracePeriodSeconds", "propagationPolicy", "dryRun"} <= _query_names(item["delete"])

    body = item["patch"]["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"application/apply-patch+yaml", "application/json-patch+json",
                                    "application/merge-patch+json", "application/strategic-merge-patch+json"}
    assert coll["post"]["requestBody"]["content"]["*/*"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.apps.v1.Deployment"}
    assert coll["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentList"}

    assert paths["/apis/apps/v1/deployments"]["get"]["operationId"] == "listAppsV1DeploymentForAllNamespaces"
    assert paths["/apis/apps/v1/watch/namespaces/{namespace}/deployments"]["get"]["x-kubernetes-action"] == "watchlist"
    assert paths["/apis/apps/v1/watch/namespaces/{namespace}/deployments/{name}"]["get"][
        "x-kubernetes-action"] == "watch"
    scale = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "kind": "Scale",
                                                                  "version": "v1"}
    assert "fieldValidation" in _query_names(scale["patch"])
    status = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["put"]["operationId"] == "replaceAppsV1NamespacedDeploymentStatus"
    assert status["patch"]["x-kubernetes-group-version-kind"] == gvk
    assert paths["/apis/apps/v1/"]["get"]["operationId"] == "getAppsV1APIResources"


def test_core_and_cluster_scoped_paths() -> None:
    paths = doc("api/v1")["paths"]
    assert paths["/api/v1/nodes/{name}"]["patch"]["operationId"] == "patchCoreV1Node"
    assert "/api/v1/namespaces/{namespace}/nodes" not in paths
    assert paths["/api/v1/namespaces/{name}/finalize"]["put"]["x-kubernetes-action"] == "put"
    log = paths["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]
    assert log["operationId"] == "readCoreV1NamespacedPodLog"
    exec_ = paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"]
    assert exec_["post"]["x-kubernetes-action"] == "connect"
    evict = paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"]
    assert evict["x-kubernetes-group-version-kind"] == {"group": "policy", "kind": "Eviction", "version": "v1"}
    binding = paths["/api/v1/namespaces/{namespace}/bindings"]
    assert set(binding) == {"post", "parameters"}
    # componentstatuses: get and list only
    cs = paths["/api/v1/componentstatuses/{name}"]
    assert set(cs) == {"get", "parameters"}
    assert "io.k8s.api.policy.v1.Eviction" in doc("api/v1")["components"]["schemas"]


def test_roots() -> None:
    assert doc("api")["paths"]["/api/"]["get"]["operationId"] == "getCoreAPIVersions"
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList" in doc("apis")["components"]["schemas"]
    assert doc("apis/apps")["paths"]["/apis/apps/"]["get"]["operationId"] == "getAppsAPIGroup"
    assert doc("version")["paths"]["/version/"]["get"]["operationId"] == "getCodeVersion"


def _supports_query_param(d: dict[str, Any], gvk: dict[str, str], param: str) -> bool:
    """What kubectl's QueryParamVerifierV3 does: the first PATCH tagged with the GVK decides."""
    for item in d["paths"].values():
        op = item.get("patch")
        if op is None or op.get("x-kubernetes-group-version-kind") != gvk:
            continue
        return any(p["name"] == param and p["in"] == "query" for p in op.get("parameters", []))
    return False


def test_every_served_kind_advertises_field_validation_and_smp() -> None:
    for k in REG.all():
        if "patch" not in k.verbs:
            continue
        d = doc(gv_path(k.group, k.version))
        gvk = {"group": k.group, "kind": k.kind, "version": k.version}
        assert _supports_query_param(d, gvk, "fieldValidation"), k
        # kubectl's client-side apply uses OpenAPI v3 patch metadata when SMP is offered
        ops = [i["patch"] for i in d["paths"].values()
               if "patch" in i and i["patch"].get("x-kubernetes-group-version-kind") == gvk]
        assert all("application/strategic-merge-patch+json" in o["requestBody"]["content"] for o in ops)
        schemas = d["components"]["schemas"]
        assert any(gvk in s.get("x-kubernetes-group-version-kind", []) for s in schemas.values()), k


def test_registry_changes_rebuild_and_custom_kinds_get_merge_patch_only() -> None:
    reg = Registry()
    _, etag_before = v3_index_bytes(reg)
    widget = KindInfo(group="example.com", version="v1", kind="Widget", resource="widgets", singular="widget",
                      namespaced=True)
    reg.add(widget)
    _, etag_after = v3_index_bytes(reg)
    assert etag_before != etag_after
    assert "apis/example.com/v1" in v3_index(reg)["paths"]
    d = doc("apis/example.com/v1", reg)
    s = d["components"]["schemas"]["com.example.v1.Widget"]
    assert s["x-kubernetes-preserve-unknown-fields"] is True
    assert s["x-kubernetes-group-version-kind"] == [{"group": "example.com", "kind": "Widget", "version": "v1"}]
    patch = d["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert "application/merge-patch+json" in patch["requestBody"]["content"]
    reg.remove(widget)
    assert v3_document(reg, "apis/example.com/v1") is None
    assert v3_index_bytes(reg)[1] == etag_before


# --------------------------------------------------------------------------- real kubectl

KUBECTL = shutil.which("kubectl")


@dataclass
class FakeAPIServer:
    """A throwaway server: discovery, /version, /openapi/v3 and a tiny object store."""

    registry: Registry
    url: str = ""
    requests: list[str] = field(default_factory=list)
    bodies: list[tuple[str, str, bytes]] = field(default_factory=list)
    store: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            self.requests.append(f"{request.method} {request.path_qs}")
            resp: web.StreamResponse = await handler(request)
            return resp

        app = web.Application(middlewares=[record])
        r = app.router
        r.add_get("/api", self.api)
        r.add_get("/apis", self.apis)
        r.add_get("/version", self.version)
        r.add_get("/openapi/v3", self.openapi_index)
        r.add_get("/openapi/v3/{path:.+}", self.openapi_doc)
        r.add_get("/api/{version}", self.resources)
        r.add_get("/apis/{group}/{version}", self.resources)
        r.add_route("*", "/{tail:.*}", self.objects)
        return app

    async def api(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]})

    async def apis(self, request: web.Request) -> web.Response:
        groups = []
        for g, versions in self.registry.groups().items():
            if g:
                gvs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
                groups.append({"name": g, "versions": gvs, "preferredVersion": gvs[0]})
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "37", "gitVersion": "v1.37.0", "gitCommit": "",
                                  "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24",
                                  "compiler": "gc", "platform": "linux/amd64"})

    async def resources(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        version = request.match_info["version"]
        kinds = self.registry.kinds_in(group, version)
        if not kinds:
            raise web.HTTPNotFound()
        res: list[dict[str, Any]] = []
        for k in kinds:
            res.append({"name": k.resource, "singularName": k.singular, "namespaced": k.namespaced, "kind": k.kind,
                        "verbs": list(k.verbs), "shortNames": list(k.short_names),
                        "categories": list(k.categories)})
            for sub in k.subresources:
                res.append({"name": f"{k.resource}/{sub}", "singularName": "", "namespaced": k.namespaced,
                            "kind": k.kind, "verbs": ["get", "patch", "update"]})
        return web.json_response({"kind": "APIResourceList", "apiVersion": "v1",
                                  "groupVersion": f"{group}/{version}" if group else version, "resources": res})

    async def openapi_index(self, request: web.Request) -> web.Response:
        data, etag = v3_index_bytes(self.registry)
        return web.Response(body=data, content_type="application/json", headers={"ETag": f'"{etag}"'})

    async def openapi_doc(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        entry = v3_entry(self.registry, path)
        if entry is None:
            raise web.HTTPNotFound()
        data, etag = entry
        if request.query.get("hash") not in (None, etag):
            raise web.HTTPMovedPermanently(f"/openapi/v3/{path}?hash={etag}")
        if request.headers.get("If-None-Match") == f'"{etag}"':
            return web.Response(status=304, headers={"ETag": f'"{etag}"'})
        return web.Response(body=data, content_type="application/json", headers={"ETag": f'"{etag}"'})

    async def objects(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.bodies.append((request.method, request.headers.get("Content-Type", ""), raw))
        path = request.path
        if request.method == "GET":
            if path in self.store:
                return web.json_response(self.store[path])
            return _status(404, "NotFound", "not found")
        if request.method == "POST":
            parts = path.strip("/").split("/")
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            kind = self.registry.by_resource(group, version, parts[-1])
            assert kind is not None
            node = for_kind(group, version, kind.kind)
            assert node is not None
            mode = fieldcheck.parse_field_validation(request.query.get("fieldValidation"))
            try:
                obj, dups = fieldcheck.decode_body(raw, request.headers.get("Content-Type", ""),
                                                   mode is not fieldcheck.FieldValidation.IGNORE, kind=kind.kind)
                warnings = fieldcheck.check(obj, node, mode, duplicates=dups, kind=kind.kind, version=version)
            except StatusError as e:
                return web.json_response(e.status(), status=e.code)
            obj["metadata"]["resourceVersion"] = "1"
            self.store[f"{path}/{obj['metadata']['name']}"] = obj
            resp = web.json_response(obj, status=201)
            for w in warnings:
                resp.headers.add("Warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"')
            return resp
        if request.method == "PATCH" and path in self.store:
            return web.json_response(self.store[path])
        return _status(404, "NotFound", "not found")


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, status=code)


@pytest.fixture
async def fake_server() -> AsyncIterator[FakeAPIServer]:
    srv = FakeAPIServer(Registry())
    runner = web.AppRunner(srv.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    srv.url = f"http://127.0.0.1:{port}"
    yield srv
    await runner.cleanup()


async def kubectl(srv: FakeAPIServer, tmp: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    assert KUBECTL is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env["HOME"] = str(tmp)
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--server", srv.url, "--kubeconfig", os.devnull, "--cache-dir", str(tmp / "cache"), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


@needs_kubectl
async def test_kubectl_explain(fake_server: FakeAPIServer, tmp_path: Path) -> None:
    rc, out, err = await kubectl(fake_server, tmp_path, "explain", "deployment.spec.strategy")
    assert rc == 0, err
    assert "GROUP:      apps" in out and "KIND:       Deployment" in out
    assert "FIELD: strategy <DeploymentStrategy>" in out
    assert "The deployment strategy to use to replace existing pods with new ones." in out
    assert "rollingUpdate\t<RollingUpdateDeployment>" in out
    assert 'Type of deployment. Can be "Recreate" or "RollingUpdate".' in out

    rc, out, err = await kubectl(fake_server, tmp_path, "explain", "pods")
    assert rc == 0, err
    assert "KIND:       Pod" in out
    assert "Pod is a collection of containers that can run on a host." in out
    assert "spec\t<PodSpec>" in out

    rc, out, err = await kubectl(fake_server, tmp_path, "explain", "deployment", "--recursive")
    assert rc == 0, err
    assert "    replicas\t<integer>" in out
    assert re.search(r"^\s+containers\t<\[\]Container> -required-$", out, re.MULTILINE)

    rc, out, err = await kubectl(fake_server, tmp_path, "explain", "svc.spec.ports.targetPort")
    assert rc == 0, err
    assert "FIELD: targetPort <IntOrString>" in out
    rc, out, err = await kubectl(fake_server, tmp_path, "explain", "pods.spec.containers.resources")
    assert rc == 0, err
    assert "limits\t<map[string]Quantity>" in out

    assert not any("/openapi/v2" in r for r in fake_server.requests)
    assert any(r.startswith("GET /openapi/v3/apis/apps/v1?hash=") for r in fake_server.requests)


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  foo: bar
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx
        bar: 1
"""


@needs_kubectl
async def test_kubectl_create_uses_server_side_field_validation(fake_server: FakeAPIServer, tmp_path: Path) -> None:
    rc, out, err = await kubectl(fake_server, tmp_path, "create", "-f", "-", stdin=DEPLOYMENT.encode())
    assert rc != 0
    assert ('Error from server (BadRequest): error when creating "STDIN": Deployment in version "v1" cannot be '
            'handled as a Deployment: strict decoding error: unknown field "spec.foo", unknown field '
            '"spec.template.spec.containers[0].bar"') in err
    posts = [r for r in fake_server.requests if r.startswith("POST ")]
    assert posts and "fieldValidation=Strict" in posts[0]

    rc, out, err = await kubectl(fake_server, tmp_path, "create", "--validate=warn", "-f", "-",
                                 stdin=DEPLOYMENT.encode())
    assert rc == 0, err
    assert "deployment.apps/web created" in out
    assert 'Warning: unknown field "spec.foo"' in err
    assert not any("/openapi/v2" in r for r in fake_server.requests)


@needs_kubectl
async def test_kubectl_client_side_apply_computes_smp_from_v3(fake_server: FakeAPIServer, tmp_path: Path) -> None:
    def deployment(containers: list[str]) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": n, "image": "nginx"} for n in containers]}}}}

    live = deployment(["a"])
    live["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(deployment(["a"]))}
    live["metadata"]["resourceVersion"] = "1"
    fake_server.store["/apis/apps/v1/namespaces/default/deployments/web"] = live

    rc, out, err = await kubectl(fake_server, tmp_path, "apply", "-f", "-",
                                 stdin=orjson.dumps(deployment(["a", "b"])))
    assert rc == 0, err
    assert "deployment.apps/web configured" in out
    assert "error calculating patch" not in err
    patches = [(ct, body) for m, ct, body in fake_server.bodies if m == "PATCH"]
    assert patches and patches[0][0] == "application/strategic-merge-patch+json"
    patch = json.loads(patches[0][1])
    tspec = patch["spec"]["template"]["spec"]
    assert tspec["$setElementOrder/containers"] == [{"name": "a"}, {"name": "b"}]
    assert tspec["containers"] == [{"image": "nginx", "name": "b"}]
    assert not any("/openapi/v2" in r for r in fake_server.requests)
