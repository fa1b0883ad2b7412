"""``/openapi/v2``: the whole API as a Swagger 2.0 document in JSON and in gnostic protobuf,
decoded back here by a reader written from gnostic's OpenAPIv2.proto, and read by real kubectl."""

from __future__ import annotations

import gzip
import json
import struct
from typing import Any

import aiohttp
import yaml
from tests.e2e.conftest import Server
from tests.helpers.cluster import InProcessCluster

from k8py.api.openapi_v2 import encode_document, negotiate, v2_document, v2_json, v2_protobuf
from k8py.api.registry import Registry

REG = Registry()
PB_OLD = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PB = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def doc() -> dict[str, Any]:
    return json.loads(v2_json(REG)[0])


def walk(node: Any, fn: Any) -> None:
    fn(node)
    if isinstance(node, dict):
        for v in node.values():
            walk(v, fn)
    elif isinstance(node, list):
        for v in node:
            walk(v, fn)


# --------------------------------------------------------------------------- the JSON document


def test_paths_operations_and_definitions_as_kube_names_them() -> None:
    d = doc()
    assert d["swagger"] == "2.0" and d["info"]["title"] == "Kubernetes"
    assert d["securityDefinitions"]["BearerToken"] == {"description": "Bearer Token authentication",
                                                       "in": "header", "name": "authorization", "type": "apiKey"}
    for p in ("/api/", "/apis/", "/version/", "/api/v1/", "/apis/apps/", "/apis/apps/v1/",
              "/api/v1/namespaces/{namespace}/pods/{name}/log", "/apis/apps/v1/deployments"):
        assert p in d["paths"], p

    item = d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert [p["name"] for p in item["parameters"]] == ["namespace", "pretty"]
    assert item["parameters"][0] == {
        "description": "object name and auth scope, such as for teams and projects", "in": "path",
        "name": "namespace", "required": True, "type": "string", "uniqueItems": True}
    create = item["post"]
    assert create["operationId"] == "createAppsV1NamespacedDeployment"
    assert create["x-kubernetes-action"] == "post"
    assert create["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment", "version": "v1"}
    assert create["consumes"] == ["*/*"] and create["schemes"] == ["https"] and create["tags"] == ["apps_v1"]
    assert "application/json" in create["produces"]
    assert create["parameters"][0] == {"in": "body", "name": "body", "required": True,
                                       "schema": {"$ref": "#/definitions/io.k8s.api.apps.v1.Deployment"}}
    assert create["responses"]["201"] == {"description": "Created",
                                          "schema": {"$ref": "#/definitions/io.k8s.api.apps.v1.Deployment"}}
    assert create["responses"]["401"] == {"description": "Unauthorized"}
    listing = item["get"]
    assert listing["consumes"] == ["*/*"] and "parameters" in listing
    assert all(p["in"] == "query" and "schema" not in p for p in listing["parameters"])
    assert listing["responses"]["200"]["schema"] == {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentList"}

    patch = d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert "application/apply-patch+yaml" in patch["consumes"]
    assert [p["name"] for p in patch["parameters"]][:1] == ["body"]
    assert {"dryRun", "fieldManager", "force"} <= {p["name"] for p in patch["parameters"]}
    delete = d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["delete"]
    assert delete["parameters"][0] == {
        "in": "body", "name": "body", "schema": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"}}

    dep = d["definitions"]["io.k8s.api.apps.v1.Deployment"]
    assert dep["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert dep["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    assert dep["properties"]["kind"] == {"description": dep["properties"]["kind"]["description"], "type": "string"}
    assert d["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    assert d["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"] == "string"
    assert d["definitions"]["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"] == "string"


def test_only_swagger_2_constructs_and_every_ref_resolves() -> None:
    d = doc()
    refs: set[str] = set()
    bad: list[Any] = []

    def check(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"])
            for k in ("oneOf", "anyOf", "requestBody", "content", "components", "nullable"):
                # a property of that name (JSONSchemaProps' own "oneOf", "nullable") is a schema, not the keyword
                if k in node and not (k in ("oneOf", "anyOf", "nullable") and isinstance(node[k], dict)):
                    bad.append((k, node))

    walk(d, check)
    assert not bad, bad[:3]
    assert refs and all(r.startswith("#/definitions/") for r in refs)
    missing = {r for r in refs if r[len("#/definitions/"):] not in d["definitions"]}
    assert not missing, missing


def test_kinds_that_are_not_served_have_no_schema() -> None:
    d = doc()
    gvks = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict) and isinstance(node.get("x-kubernetes-group-version-kind"), list):
            for g in node["x-kubernetes-group-version-kind"]:
                gvks.add((g["group"], g["version"], g["kind"]))

    for name, definition in d["definitions"].items():
        if not name.endswith((".DeleteOptions", ".WatchEvent")):  # kube tags these with every group-version
            collect(definition)
    assert ("apps", "v1", "ReplicaSet") in gvks
    assert ("", "v1", "ReplicaSet") not in gvks
    assert not any("beta" in v or "alpha" in v for _, v, _ in gvks), sorted(gvks)
    # kubectl must not take an unknown kind for a CRD (k8py serves no CRDs): see _LEFT_OUT_PARAMS
    assert not any(p.get("name") == "fieldValidation" for item in d["paths"].values() for op in item.values()
                   if isinstance(op, dict) for p in op.get("parameters") or ())


def test_negotiation_as_kube_openapi() -> None:
    assert negotiate("") == "application/json"
    assert negotiate("*/*") == "application/json"
    assert negotiate("application/json") == "application/json"
    assert negotiate(PB_OLD) == PB  # what kubectl sends; answered under the name Go can parse
    assert negotiate(PB) == PB
    assert negotiate(f"{PB_OLD}, application/json;q=0.5") == PB
    assert negotiate(f"application/json;q=0.5, {PB_OLD}") == PB
    assert negotiate("text/html") is None
    assert negotiate("application/json;q=0") is None


# --------------------------------------------------------------------------- protobuf, decoded back


def _varint(b: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return n, i


def fields(b: bytes) -> list[tuple[int, Any]]:
    """(field number, value) of one protobuf message: bytes for length-delimited, int for varint,
    float for fixed64 (every double in gnostic's messages)."""
    out: list[tuple[int, Any]] = []
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
            out.append((num, v))
        elif wt == 1:
            out.append((num, struct.unpack("<d", b[i:i + 8])[0]))
            i += 8
        elif wt == 2:
            n, i = _varint(b, i)
            out.append((num, b[i:i + n]))
            i += n
        else:
            raise AssertionError(f"unexpected wire type {wt} for field {num}")
        assert i <= len(b), "truncated message"
    return out


def one(b: bytes, num: int) -> Any:
    vals = [v for n, v in fields(b) if n == num]
    assert len(vals) <= 1, (num, vals)
    return vals[0] if vals else None


def many(b: bytes, num: int) -> list[Any]:
    return [v for n, v in fields(b) if n == num]


def any_value(b: bytes) -> Any:
    return yaml.safe_load(one(b, 2).decode())  # openapi.v2.Any: yaml = 2


def named(b: bytes, num: int) -> dict[str, bytes]:
    """A repeated Named* field: name = 1, value = 2."""
    return {one(x, 1).decode(): one(x, 2) or b"" for x in many(b, num)}


def extensions(b: bytes, num: int) -> dict[str, Any]:
    return {k: any_value(v) for k, v in named(b, num).items()}


SCHEMA_STR = {1: "$ref", 2: "format", 3: "title", 4: "description", 13: "pattern", 26: "discriminator"}
SCHEMA_INT = {11: "maxLength", 12: "minLength", 14: "maxItems", 15: "minItems", 17: "maxProperties",
              18: "minProperties"}
SCHEMA_BOOL = {8: "exclusiveMaximum", 10: "exclusiveMinimum", 16: "uniqueItems", 27: "readOnly"}
SCHEMA_DOUBLE = {6: "multipleOf", 7: "maximum", 9: "minimum"}


def schema(b: bytes) -> dict[str, Any]:
    """gnostic ``Schema`` -> the JSON it stands for."""
    out: dict[str, Any] = {}
    for num, v in fields(b):
        if num in SCHEMA_STR:
            out[SCHEMA_STR[num]] = v.decode()
        elif num in SCHEMA_INT:
            out[SCHEMA_INT[num]] = v
        elif num in SCHEMA_BOOL:
            out[SCHEMA_BOOL[num]] = bool(v)
        elif num in SCHEMA_DOUBLE:
            out[SCHEMA_DOUBLE[num]] = v
        elif num == 5:
            out["default"] = any_value(v)
        elif num == 19:
            out.setdefault("required", []).append(v.decode())
        elif num == 20:
            out.setdefault("enum", []).append(any_value(v))
        elif num == 21:  # AdditionalPropertiesItem: schema = 1 | boolean = 2
            (inner,) = fields(v)
            out["additionalProperties"] = schema(inner[1]) if inner[0] == 1 else bool(inner[1])
        elif num == 22:  # TypeItem
            types = [t.decode() for t in many(v, 1)]
            out["type"] = types[0] if len(types) == 1 else types
        elif num == 23:  # ItemsItem
            out["items"] = schema(one(v, 1))
        elif num == 24:
            out.setdefault("allOf", []).append(schema(v))
        elif num == 25:  # Properties
            out["properties"] = {k: schema(s) for k, s in named(v, 1).items()}
        elif num == 30:
            out["example"] = any_value(v)
        elif num == 31:
            name, value = one(v, 1).decode(), any_value(one(v, 2))
            out[name] = value
        else:
            raise AssertionError(f"Schema field {num} not expected")
    return out


def parameter(b: bytes) -> dict[str, Any]:
    """gnostic ``ParametersItem`` -> JSON (body and query/path parameters, which is all k8py has)."""
    p = one(b, 1)  # Parameter
    body = one(p, 1)
    if body is not None:
        out: dict[str, Any] = {"in": one(body, 3).decode(), "name": one(body, 2).decode()}
        if one(body, 4):
            out["required"] = True
        if one(body, 5) is not None:
            out["schema"] = schema(one(body, 5))
        return out
    nb = one(p, 2)
    ((kind, sub),) = fields(nb)
    if kind == 3:  # query: name 4, type 6, unique_items 20
        f_type, f_uniq = 6, 20
    else:
        assert kind == 4  # path: name 4, type 5, unique_items 19
        f_type, f_uniq = 5, 19
    out = {"description": (one(sub, 3) or b"").decode(), "in": one(sub, 2).decode(), "name": one(sub, 4).decode(),
           "type": one(sub, f_type).decode()}
    if one(sub, 1):
        out["required"] = True
    if one(sub, f_uniq):
        out["uniqueItems"] = True
    if not out["description"]:
        del out["description"]
    return dict(sorted(out.items()))


def operation(b: bytes) -> dict[str, Any]:
    responses = {}
    for code, rv in named(one(b, 9), 1).items():
        r = one(rv, 1)
        resp: dict[str, Any] = {"description": one(r, 1).decode()}
        if one(r, 2) is not None:
            resp["schema"] = schema(one(one(r, 2), 1))
        responses[code] = resp
    out: dict[str, Any] = {
        "consumes": [x.decode() for x in many(b, 7)],
        "description": one(b, 3).decode(),
        "operationId": one(b, 5).decode(),
        "produces": [x.decode() for x in many(b, 6)],
        "responses": responses,
        "schemes": [x.decode() for x in many(b, 10)],
        "tags": [x.decode() for x in many(b, 1)],
        **extensions(b, 13),
    }
    params = [parameter(p) for p in many(b, 8)]
    if params:
        out["parameters"] = params
    return out


def path_item(b: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for num, name in enumerate(("get", "put", "post", "delete", "options", "head", "patch"), start=2):
        op = one(b, num)
        if op is not None:
            out[name] = operation(op)
    params = [parameter(p) for p in many(b, 9)]
    if params:
        out["parameters"] = params
    return out


def document(b: bytes) -> dict[str, Any]:
    info = one(b, 2)
    sec = one(b, 13)
    sec_defs = {}
    for name, item in (named(sec, 1) if sec is not None else {}).items():
        api_key = one(item, 2)
        sec_defs[name] = {"description": one(api_key, 4).decode(), "in": one(api_key, 3).decode(),
                          "name": one(api_key, 2).decode(), "type": one(api_key, 1).decode()}
    return {
        "swagger": one(b, 1).decode(),
        "info": {"title": one(info, 1).decode(), "version": one(info, 2).decode()},
        "paths": {k: path_item(v) for k, v in named(one(b, 8), 2).items()},
        "definitions": {k: schema(v) for k, v in named(one(b, 9), 1).items()},
        "securityDefinitions": sec_defs,
        "security": [{k: [s.decode() for s in many(v, 1)] for k, v in named(req, 1).items()}
                     for req in many(b, 12)],
    }


def test_protobuf_decodes_to_the_json_document() -> None:
    data, etag = v2_protobuf(REG)
    jdata, jetag = v2_json(REG)
    assert etag == jetag and etag.startswith('"') and len(etag) == 130  # kube: the JSON's SHA-512
    back = document(data)
    d = json.loads(jdata)
    # a known definition, field by field
    dep = back["definitions"]["io.k8s.api.apps.v1.Deployment"]
    assert dep["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert dep["type"] == "object"
    assert dep["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    assert dep["description"] == "Deployment enables declarative updates for Pods and ReplicaSets."
    # and the whole document, every path and definition
    assert back["paths"].keys() == d["paths"].keys()
    for p in d["paths"]:
        assert back["paths"][p] == d["paths"][p], p
    assert back["definitions"] == d["definitions"]
    assert back == d


def test_encoder_edge_cases() -> None:
    d = {"swagger": "2.0", "info": {"title": "t", "version": "v"}, "paths": {}, "definitions": {
        "x": {"type": "object", "additionalProperties": False, "minimum": -1.5, "maxLength": 3,
              "enum": ["a", 1], "default": {"k": "v"}, "x-kubernetes-map-type": "atomic"},
        "y": {"type": "array", "items": {"type": "integer", "format": "int32"}}}}
    back = document(encode_document(d))
    assert back["definitions"] == d["definitions"]
    assert back["info"] == d["info"] and back["paths"] == {}


def test_registry_change_rebuilds() -> None:
    reg = Registry()
    before = v2_json(reg)
    kind = reg.by_kind("apps", "v1", "Deployment")
    assert kind is not None
    reg.remove(kind)
    after = json.loads(v2_json(reg)[0])
    assert "/apis/apps/v1/deployments" not in after["paths"]
    assert v2_json(reg)[1] != before[1]
    assert "/apis/apps/v1/deployments" in v2_document(Registry())["paths"]


# --------------------------------------------------------------------------- over HTTP


async def test_served_with_negotiation_etag_and_gzip() -> None:
    async with InProcessCluster(controllers=()) as c, aiohttp.ClientSession(
            auto_decompress=False, headers={"Accept-Encoding": "identity"}) as http:
        url = f"{c.url}/openapi/v2"
        async with http.get(url) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "application/json"
            body = await r.read()
            etag = r.headers["ETag"]
            assert r.headers["Vary"] == "Accept"
        assert json.loads(body)["swagger"] == "2.0"
        async with http.get(url, headers={"Accept": PB_OLD}) as r:
            assert r.status == 200 and r.headers["Content-Type"] == PB
            assert r.headers["ETag"] == etag
            pb = await r.read()
        assert document(pb)["definitions"]["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"] == [
            {"group": "", "kind": "Pod", "version": "v1"}]
        async with http.get(url, headers={"Accept": PB_OLD, "If-None-Match": etag}) as r:
            assert r.status == 304 and await r.read() == b""
        async with http.get(url, headers={"Accept": PB, "Accept-Encoding": "gzip"}) as r:
            assert r.status == 200 and r.headers.get("Content-Encoding") == "gzip"
            assert gzip.decompress(await r.read()) == pb
        async with http.get(url, headers={"Accept": "text/html"}) as r:
            assert r.status == 406
            assert (await r.json())["reason"] == "NotAcceptable"


def test_kubectl_reads_the_v2_protobuf(server: Server) -> None:
    # explain's v2 output decodes /openapi/v2 as gnostic protobuf and finds the kind by its
    # x-kubernetes-group-version-kind
    p = server.kubectl("explain", "deployment.spec.strategy", "--output=plaintext-openapiv2")
    assert "KIND:     Deployment" in p.stdout and "VERSION:  apps/v1" in p.stdout
    assert "rollingUpdate\t<Object>" in p.stdout and "type\t<string>" in p.stdout
    p = server.kubectl("explain", "services.spec.ports.targetPort", "--output=plaintext-openapiv2")
    assert "FIELD:    targetPort <string>" in p.stdout
    # a kind not served: kubectl falls back to v2, finds nothing to validate against, and the
    # server's answer is the one kube gives
    bad = server.kubectl("apply", "-f", "-", check=False, input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "ReplicaSet", "metadata": {"name": "x"}, "spec": {"replica": 2}}))
    assert bad.returncode != 0
    assert 'no matches for kind "ReplicaSet" in version "v1"' in bad.stderr
