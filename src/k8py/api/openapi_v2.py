"""The OpenAPI v2 (Swagger 2.0) document at ``/openapi/v2``, in JSON and in gnostic protobuf.

kube-apiserver serves one v2 document for the whole API: every path of every served
group-version, and under ``definitions`` every schema those paths reach, named as kube names
them (``io.k8s.api.apps.v1.Deployment``) and tagged with ``x-kubernetes-group-version-kind``.
Clients that still read v2 (``kubectl explain --output plaintext-openapiv2``, Helm, older
kubectl validation, client generators) ask for it as protobuf:
``Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` (or ``.v2.v1.0+``), gnostic's
``openapi.v2.Document`` message.

It is built from the same material as the v3 documents (``k8py.api.openapi``): the v3 paths of
each group-version and root, turned back into v2 form —

- a ``requestBody`` becomes the ``body`` parameter (first, as kube lists it) and ``consumes``;
  response ``content`` becomes ``produces`` and a ``schema`` per response code;
- a parameter's ``schema`` (``type``, ``uniqueItems``) moves onto the parameter;
- ``#/components/schemas/X`` becomes ``#/definitions/X``; the ``allOf: [{$ref}]`` wrapper v3
  needs for a ``$ref`` with a description goes (v2 keeps siblings of ``$ref``, as kube's does);
- ``oneOf``/``anyOf`` (which Swagger 2.0 has not) go; IntOrString and Quantity get kube's v2
  forms (``type: string``, IntOrString with ``format: int-or-string``).

A kind that is not served has no schema here, so kubectl's v2 validation, like its v3 one,
leaves ``apiVersion: v1, kind: ReplicaSet`` to the server, which answers ``no matches for kind``
(see ``_LEFT_OUT_PARAMS`` for the one parameter left out so that it does).

The protobuf encoder below writes gnostic's message by its field numbers (OpenAPIv2.proto in
github.com/google/gnostic-models). Values gnostic keeps as ``Any`` (vendor extensions,
``default``, ``enum``, ``example``) are carried in ``Any.yaml``; we write them as JSON, which is
YAML, and which every reader of that field (kube-openapi's ``yaml.Unmarshal``) accepts.

Both encodings are built once per registry (rebuilt when its kinds change) and served with one
ETag, as kube-openapi's: the upper-case hex SHA-512 of the JSON, quoted.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from typing import Any

import orjson

from k8py.api import openapi
from k8py.api.protowire import I64, VARINT, encode_varint, key, length_delimited
from k8py.api.registry import KindInfo, Registry
from k8py.api.schema import K8S_SCHEMA_VERSION

__all__ = [
    "JSON_MEDIA_TYPE",
    "PROTOBUF_MEDIA_TYPE",
    "OpenAPIV2",
    "encode_document",
    "negotiate",
    "v2_document",
    "v2_json",
    "v2_protobuf",
]

Obj = dict[str, Any]

# What the response says it is; kube-openapi answers both this and the older name clients still
# send (``...v2@v1.0+protobuf``, which kubectl 1.37 asks for) with it, as Go's mime parser
# (which kubectl runs on the Content-Type) refuses the "@".
PROTOBUF_MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
PROTOBUF_MEDIA_TYPE_DEPRECATED = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
JSON_MEDIA_TYPE = "application/json"

_V3_REF = "#/components/schemas/"
_V2_REF = "#/definitions/"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
# Query parameters the v2 document does not list although k8py takes them. kubectl reads
# ``fieldValidation`` support from the v3 documents; it asks v2 only about kinds v3 does not
# have, and when v2's Namespace PATCH lists ``fieldValidation`` it takes such a kind for a
# possible CRD and lists CustomResourceDefinitions, which k8py does not serve: kubectl then fails
# with "failed to check CRD" instead of sending the object and reporting the server's
# ``no matches for kind``, as it does against kube-apiserver (where that list is empty). Without
# the parameter here kubectl validates such a kind client-side, finds no schema, and sends it.
_LEFT_OUT_PARAMS = frozenset({"fieldValidation"})


# --------------------------------------------------------------------------- v3 -> v2


def _schema(s: Any) -> Any:
    """One OpenAPI 3.0 schema node -> Swagger 2.0."""
    if not isinstance(s, dict):
        return s
    out: Obj = {}
    for k, v in s.items():
        if k == "$ref" and isinstance(v, str):
            out["$ref"] = _ref(v)
        elif k == "allOf" and isinstance(v, list):
            conv = [_schema(x) for x in v]
            if len(conv) == 1 and set(conv[0]) == {"$ref"} and "$ref" not in s:
                out["$ref"] = conv[0]["$ref"]  # v3's wrapper around a $ref with siblings
            else:
                out["allOf"] = conv
        elif k in ("oneOf", "anyOf", "not", "nullable"):
            continue  # no Swagger 2.0 form
        elif k == "properties" and isinstance(v, dict):
            out[k] = {n: _schema(p) for n, p in v.items()}
        elif k in ("items", "additionalProperties") and isinstance(v, dict):
            out[k] = _schema(v)
        else:
            out[k] = v
    return out


def _ref(r: str) -> str:
    return _V2_REF + r[len(_V3_REF):] if r.startswith(_V3_REF) else r


def _definition(name: str, s: Obj) -> Obj:
    if name == _INT_OR_STRING:
        return {"description": s.get("description", ""), "format": "int-or-string", "type": "string"}
    if name == _QUANTITY:
        return {"description": s.get("description", ""), "type": "string"}
    return _schema(s)  # type: ignore[no-any-return]


def _parameter(p: Obj) -> Obj:
    if "$ref" in p:
        return {"$ref": _ref(str(p["$ref"]))}
    out = {k: v for k, v in p.items() if k != "schema"}
    schema = p.get("schema")
    if isinstance(schema, dict):
        for k, v in _schema(schema).items():
            out.setdefault(k, v)
    return dict(sorted(out.items()))


def _first_schema(content: Obj) -> Obj | None:
    for media in content.values():
        if isinstance(media, dict) and "schema" in media:
            return media["schema"]  # type: ignore[no-any-return]
    return None


def _operation(op: Obj) -> Obj:
    params: list[Obj] = []
    consumes = ["*/*"]
    body = op.get("requestBody")
    if isinstance(body, dict):
        content = body.get("content") or {}
        consumes = list(content) or consumes
        bp: Obj = {"in": "body", "name": "body"}
        if body.get("required"):
            bp["required"] = True
        schema = _first_schema(content)
        if schema is not None:
            bp["schema"] = _schema(schema)
        params.append(bp)
    params.extend(_parameter(p) for p in op.get("parameters") or () if p.get("name") not in _LEFT_OUT_PARAMS)
    produces: list[str] = []
    responses: Obj = {}
    for code, r in (op.get("responses") or {}).items():
        resp: Obj = {"description": r.get("description", "")}
        content = r.get("content") or {}
        for t in content:
            if t not in produces:
                produces.append(t)
        schema = _first_schema(content)
        if schema is not None:
            resp["schema"] = _schema(schema)
        responses[code] = resp
    out: Obj = {"consumes": consumes, "description": op.get("description", ""),
                "operationId": op.get("operationId", "")}
    if params:
        out["parameters"] = params
    out["produces"] = produces
    out["responses"] = responses
    out["schemes"] = ["https"]
    out["tags"] = list(op.get("tags") or ())
    for k, v in op.items():
        if k.startswith("x-"):
            out[k] = v
    return out


def _path_item(item: Obj) -> Obj:
    out: Obj = {}
    for m in _METHODS:
        if isinstance(item.get(m), dict):
            out[m] = _operation(item[m])
    if item.get("parameters"):
        out["parameters"] = [_parameter(p) for p in item["parameters"]]
    return out


def v2_document(registry: Registry) -> Obj:
    """The whole v2 document for ``registry``'s kinds (a new dict; see :class:`OpenAPIV2` for caching)."""
    paths: Obj = {}
    schemas: Obj = {}
    for p in openapi.OpenAPIV3(registry).paths():
        parts = p.split("/")
        if len(parts) == 2 and parts[0] == "api":
            doc = openapi._build_gv(registry, "", parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = openapi._build_gv(registry, parts[1], parts[2])
        else:
            doc = openapi._build_root(registry, p)
        if doc is None:
            continue
        for path, item in doc["paths"].items():
            paths[path] = _path_item(item)
        schemas.update(doc["components"]["schemas"])
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": K8S_SCHEMA_VERSION},
        "paths": dict(sorted(paths.items())),
        "definitions": {n: _definition(n, s) for n, s in sorted(schemas.items())},
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication", "in": "header",
                                                "name": "authorization", "type": "apiKey"}},
        "security": [{"BearerToken": []}],
    }


# --------------------------------------------------------------------------- protobuf wire format


def _msg(field: int, data: bytes) -> bytes:
    """An embedded message (written even when empty: presence matters for oneofs)."""
    return length_delimited(field, data)


def _str(field: int, s: Any) -> bytes:
    if not isinstance(s, str) or not s:
        return b""  # proto3: the empty string is the default and is not written
    return length_delimited(field, s.encode())


def _strs(field: int, values: Iterable[Any]) -> bytes:
    return b"".join(length_delimited(field, str(v).encode()) for v in values)


def _bool(field: int, b: Any, *, always: bool = False) -> bytes:
    if not b and not always:
        return b""
    return key(field, VARINT) + (b"\x01" if b else b"\x00")


def _int(field: int, n: Any) -> bytes:
    if not isinstance(n, int) or isinstance(n, bool) or n == 0:
        return b""
    return key(field, VARINT) + encode_varint(n)


def _double(field: int, x: Any) -> bytes:
    if not isinstance(x, int | float) or isinstance(x, bool) or x == 0:
        return b""
    return key(field, I64) + struct.pack("<d", float(x))


def _any(field: int, value: Any) -> bytes:
    """``openapi.v2.Any`` with the value in ``yaml`` (field 2), written as JSON (a YAML subset)."""
    return _msg(field, length_delimited(2, orjson.dumps(value) + b"\n"))


def _named_any(field: int, name: str, value: Any) -> bytes:
    return _msg(field, _str(1, name) + _any(2, value))


def _extensions(field: int, obj: Obj) -> bytes:
    return b"".join(_named_any(field, k, v) for k, v in obj.items() if k.startswith("x-"))


# --------------------------------------------------------------------------- gnostic messages

def _schema_pb(s: Obj) -> bytes:
    """``openapi.v2.Schema``."""
    out = [
        _str(1, s.get("$ref")),
        _str(2, s.get("format")),
        _str(3, s.get("title")),
        _str(4, s.get("description")),
    ]
    if "default" in s:
        out.append(_any(5, s["default"]))
    out += [
        _double(6, s.get("multipleOf")),
        _double(7, s.get("maximum")),
        _bool(8, s.get("exclusiveMaximum")),
        _double(9, s.get("minimum")),
        _bool(10, s.get("exclusiveMinimum")),
        _int(11, s.get("maxLength")),
        _int(12, s.get("minLength")),
        _str(13, s.get("pattern")),
        _int(14, s.get("maxItems")),
        _int(15, s.get("minItems")),
        _bool(16, s.get("uniqueItems")),
        _int(17, s.get("maxProperties")),
        _int(18, s.get("minProperties")),
        _strs(19, s.get("required") or ()),
    ]
    out += [_any(20, v) for v in s.get("enum") or ()]
    ap = s.get("additionalProperties")
    if isinstance(ap, dict):
        out.append(_msg(21, _msg(1, _schema_pb(ap))))
    elif isinstance(ap, bool):
        out.append(_msg(21, _bool(2, ap, always=True)))
    t = s.get("type")
    if t:
        out.append(_msg(22, _strs(1, t if isinstance(t, list) else [t])))
    items = s.get("items")
    if isinstance(items, dict):
        out.append(_msg(23, _msg(1, _schema_pb(items))))
    elif isinstance(items, list):
        out.append(_msg(23, b"".join(_msg(1, _schema_pb(i)) for i in items if isinstance(i, dict))))
    out += [_msg(24, _schema_pb(x)) for x in s.get("allOf") or () if isinstance(x, dict)]
    props = s.get("properties")
    if isinstance(props, dict):
        out.append(_msg(25, b"".join(_msg(1, _str(1, n) + _msg(2, _schema_pb(p))) for n, p in props.items())))
    out += [_str(26, s.get("discriminator")), _bool(27, s.get("readOnly"))]
    if "example" in s:
        out.append(_any(30, s["example"]))
    out.append(_extensions(31, s))
    return b"".join(out)


# Field numbers of the non-body parameter kinds: (oneof field in NonBodyParameter, and in that
# message: required, in, description, name, type, format, unique_items, enum, vendor_extension).
_NON_BODY = {
    "header": (1, 1, 2, 3, 4, 5, 6, 19, 20, 22),
    "formData": (2, 1, 2, 3, 4, 6, 7, 20, 21, 23),
    "query": (3, 1, 2, 3, 4, 6, 7, 20, 21, 23),
    "path": (4, 1, 2, 3, 4, 5, 6, 19, 20, 22),
}


def _parameter_pb(p: Obj) -> bytes:
    """``openapi.v2.ParametersItem``."""
    if "$ref" in p:
        return _msg(2, _str(1, p["$ref"]))  # json_reference
    where = p.get("in")
    if where == "body":
        body = _str(1, p.get("description")) + _str(2, p.get("name")) + _str(3, "body") + \
            _bool(4, p.get("required"))
        if isinstance(p.get("schema"), dict):
            body += _msg(5, _schema_pb(p["schema"]))
        body += _extensions(6, p)
        return _msg(1, _msg(1, body))  # parameter.body_parameter
    one, f_req, f_in, f_desc, f_name, f_type, f_fmt, f_uniq, f_enum, f_ext = _NON_BODY.get(str(where),
                                                                                        _NON_BODY["query"])
    sub = (_bool(f_req, p.get("required")) + _str(f_in, where) + _str(f_desc, p.get("description")) +
           _str(f_name, p.get("name")) + _str(f_type, p.get("type")) + _str(f_fmt, p.get("format")) +
           _bool(f_uniq, p.get("uniqueItems")) + b"".join(_any(f_enum, v) for v in p.get("enum") or ()) +
           _extensions(f_ext, p))
    return _msg(1, _msg(2, _msg(one, sub)))  # parameter.non_body_parameter.<kind>


def _responses_pb(responses: Obj) -> bytes:
    out = []
    for code, r in responses.items():
        resp = _str(1, r.get("description"))
        if isinstance(r.get("schema"), dict):
            resp += _msg(2, _msg(1, _schema_pb(r["schema"])))  # SchemaItem.schema
        resp += _extensions(5, r)
        out.append(_msg(1, _str(1, code) + _msg(2, _msg(1, resp))))  # NamedResponseValue -> response
    return b"".join(out) + _extensions(2, responses)


def _operation_pb(op: Obj) -> bytes:
    return b"".join((
        _strs(1, op.get("tags") or ()),
        _str(2, op.get("summary")),
        _str(3, op.get("description")),
        _str(5, op.get("operationId")),
        _strs(6, op.get("produces") or ()),
        _strs(7, op.get("consumes") or ()),
        b"".join(_msg(8, _parameter_pb(p)) for p in op.get("parameters") or ()),
        _msg(9, _responses_pb(op.get("responses") or {})),
        _strs(10, op.get("schemes") or ()),
        _bool(11, op.get("deprecated")),
        _extensions(13, op),
    ))


def _path_item_pb(item: Obj) -> bytes:
    out = [_str(1, item.get("$ref"))]
    for i, m in enumerate(_METHODS, start=2):
        if isinstance(item.get(m), dict):
            out.append(_msg(i, _operation_pb(item[m])))
    out += [_msg(9, _parameter_pb(p)) for p in item.get("parameters") or ()]
    out.append(_extensions(10, item))
    return b"".join(out)


def encode_document(doc: Obj) -> bytes:
    """A Swagger 2.0 document (as :func:`v2_document` builds it) as gnostic ``openapi.v2.Document``."""
    info = doc.get("info") or {}
    out = [_str(1, doc.get("swagger")),
           _msg(2, _str(1, info.get("title")) + _str(2, info.get("version")) + _str(3, info.get("description")))]
    paths = doc.get("paths") or {}
    out.append(_msg(8, b"".join(_msg(2, _str(1, p) + _msg(2, _path_item_pb(item))) for p, item in paths.items())))
    defs = doc.get("definitions") or {}
    out.append(_msg(9, b"".join(_msg(1, _str(1, n) + _msg(2, _schema_pb(s))) for n, s in defs.items())))
    for req in doc.get("security") or ():
        out.append(_msg(12, b"".join(_msg(1, _str(1, n) + _msg(2, _strs(1, scopes))) for n, scopes in req.items())))
    sec = doc.get("securityDefinitions") or {}
    if sec:
        items = []
        for name, d in sec.items():
            if d.get("type") == "apiKey":
                api_key = _str(1, "apiKey") + _str(2, d.get("name")) + _str(3, d.get("in")) + \
                    _str(4, d.get("description")) + _extensions(5, d)
                items.append(_msg(1, _str(1, name) + _msg(2, _msg(2, api_key))))
            elif d.get("type") == "basic":
                basic = _str(1, "basic") + _str(2, d.get("description")) + _extensions(3, d)
                items.append(_msg(1, _str(1, name) + _msg(2, _msg(1, basic))))
        out.append(_msg(13, b"".join(items)))
    out.append(_extensions(16, doc))
    return b"".join(out)


# --------------------------------------------------------------------------- serving


def negotiate(accept: str) -> str | None:
    """The media type to serve for an Accept header, as kube-openapi's handler chooses: the
    clauses by preference (q, then order), the first that names or wildcards JSON or one of the
    two protobuf names (JSON tried first) wins; None when none does (406)."""
    clauses = []
    for i, part in enumerate((accept or "*/*").split(",")):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            k, _, v = param.strip().partition("=")
            if k.strip() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        typ, _, sub = media.strip().partition("/")
        if q > 0 and typ:
            clauses.append((-q, i, typ, sub or "*"))
    for _, _, typ, sub in sorted(clauses):
        for offer, served in ((JSON_MEDIA_TYPE, JSON_MEDIA_TYPE),
                              (PROTOBUF_MEDIA_TYPE_DEPRECATED, PROTOBUF_MEDIA_TYPE),
                              (PROTOBUF_MEDIA_TYPE, PROTOBUF_MEDIA_TYPE)):
            offer_type, _, offer_sub = offer.partition("/")
            if typ in (offer_type, "*") and sub in (offer_sub, "*"):
                return served
    return None


# --------------------------------------------------------------------------- cache / service


def _etag(data: bytes) -> str:
    return f'"{hashlib.sha512(data).hexdigest().upper()}"'


class OpenAPIV2:
    """The built document of one registry in both encodings, with their ETags."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._fingerprint: tuple[KindInfo, ...] = ()
        self._doc: Obj | None = None
        self._json: tuple[bytes, str] | None = None
        self._pb: tuple[bytes, str] | None = None

    def _document(self) -> Obj:
        fp = tuple(self._registry.all())
        if fp != self._fingerprint or self._doc is None:
            self._fingerprint = fp
            self._doc = v2_document(self._registry)
            self._json = self._pb = None
        return self._doc

    def json(self) -> tuple[bytes, str]:
        doc = self._document()
        if self._json is None:
            data = orjson.dumps(doc)
            self._json = (data, _etag(data))
        return self._json

    def protobuf(self) -> tuple[bytes, str]:
        doc = self._document()
        if self._pb is None:
            # kube-openapi reuses the JSON's ETag: the response varies by Accept, not its tag
            self._pb = (encode_document(doc), self.json()[1])
        return self._pb


_service = openapi.per_registry(OpenAPIV2)


def v2_json(registry: Registry) -> tuple[bytes, str]:
    """``/openapi/v2`` as JSON, and its (quoted) ETag."""
    return _service(registry).json()


def v2_protobuf(registry: Registry) -> tuple[bytes, str]:
    """``/openapi/v2`` as gnostic protobuf, and its (quoted) ETag."""
    return _service(registry).protobuf()
