"""Request options, in one place: the body, dry run, field manager, field validation,
DeleteOptions and the query parameters of lists and watches.

kube-apiserver decodes these through ``metainternalversion.ParameterCodec`` (query
strings into ``ListOptions``, ``CreateOptions``, ``DeleteOptions`` ...) and validates
them with ``apimachinery/pkg/apis/meta/v1/validation``; every handler here uses the
same functions, so a value refused on one path is refused on all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from k8py.api import errors, fieldcheck, protobuf
from k8py.api.validation.meta import GoRaw, go_strings
from k8py.apiserver.context import Ctx
from k8py.apiserver.negotiate import JSON, YAML, content_type_of

Obj = dict[str, Any]

MAX_BODY = 3 * 1024 * 1024  # kube's request body limit (3 MiB, --max-request-bytes... of the apiserver)
YAML_TYPES = (YAML, "application/yml", "text/yaml", "application/x-yaml")

_INT = re.compile(r"[+-]?[0-9]+\Z")
_GO_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_DRY_RUN_VALUES = ("All",)
_PROPAGATION = ("Foreground", "Background", "Orphan")


# -- the body ----------------------------------------------------------------------------------

BODY_KEY = web.RequestKey("k8py.body", bytes)


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The whole request body, however it arrives (Content-Length or chunked, one TLS record
    or many), or 413 as soon as more than ``limit`` bytes have been read.

    A single ``content.read(n)`` returns what has arrived so far, not ``n`` bytes: reading
    to the end of the stream is what makes a body whole."""
    if request.content_length is not None and request.content_length > limit:
        raise errors.too_large(f"Request entity too large: limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise errors.too_large(f"Request entity too large: limit is {limit}")
        chunks.append(chunk)
    body = b"".join(chunks)
    request[BODY_KEY] = body  # for the audit log's requestObject
    return body


def body_media_type(ctx: Ctx) -> str:
    return content_type_of(ctx.request.headers.get("Content-Type", "")) or JSON


def decode_plain(ctx: Ctx, raw: bytes, strict: bool) -> Any:
    """A body that is not a stored kind (Scale, Binding, DeleteOptions, Eviction ...), decoded
    by its Content-Type: JSON, YAML or Kubernetes protobuf."""
    ct = body_media_type(ctx)
    if protobuf.is_protobuf(ct):
        return protobuf.decode(raw)
    if ct not in (JSON, *YAML_TYPES):
        raise errors.unsupported_media_type(ct)
    body, dups = fieldcheck.decode_body(raw, ct, strict)
    if strict and dups:
        raise errors.bad_request("strict decoding error: " + ", ".join(dups))
    return body


# -- query parameters, decoded as Go's ParameterCodec does ---------------------------------------

def parse_int64(value: str) -> int:
    """``strconv.ParseInt(value, 10, 64)``, with its error text."""
    if not _INT.match(value):
        raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    n = int(value)
    if not _INT64_MIN <= n <= _INT64_MAX:
        raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": value out of range')
    return n


def parse_bool(value: str) -> bool:
    """``strconv.ParseBool``, with its error text."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise errors.bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def query_int(query: Mapping[str, str], name: str) -> int | None:
    v = query.get(name)
    return None if v is None or v == "" else parse_int64(v)


def query_bool(query: Mapping[str, str], name: str) -> bool | None:
    v = query.get(name)
    return None if v is None or v == "" else parse_bool(v)


_LIST_INTS = ("limit", "timeoutSeconds")
_LIST_BOOLS = ("watch", "allowWatchBookmarks", "sendInitialEvents")


def check_list_query(ctx: Ctx) -> None:
    """Refuse list and watch parameters Go could not decode into ListOptions (400, with
    strconv's words), as kube's ParameterCodec does before the handler runs."""
    q = ctx.query
    for name in _LIST_INTS:
        query_int(q, name)
    for name in _LIST_BOOLS:
        query_bool(q, name)


def list_limit(ctx: Ctx) -> int:
    n = query_int(ctx.query, "limit")
    return max(n or 0, 0)


# -- write options -------------------------------------------------------------------------------

_OPTIONS_KIND = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions",
                 "DELETE": "DeleteOptions"}


def _invalid_options(options_kind: str, errs: list[errors.FieldError]) -> errors.StatusError:
    return errors.invalid_error(options_kind, "meta.k8s.io", "", errs)


def _dry_run_errors(values: list[Any]) -> list[errors.FieldError]:
    """kube's ValidateDryRun: every value must be "All"."""
    if all(v in _DRY_RUN_VALUES for v in values):
        return []
    return [errors.not_supported("dryRun", GoRaw(go_strings(values)), _DRY_RUN_VALUES)]


def validate_dry_run(values: list[Any], options_kind: str) -> bool:
    if errs := _dry_run_errors(values):
        raise _invalid_options(options_kind, errs)
    return bool(values)


def dry_run(ctx: Ctx) -> bool:
    return validate_dry_run(list(ctx.query.getall("dryRun", [])),
                            _OPTIONS_KIND.get(ctx.request.method, "CreateOptions"))


def field_manager(ctx: Ctx) -> str:
    fm = ctx.q("fieldManager")
    if fm:
        if len(fm) > 128:
            raise errors.bad_request("fieldManager: Too long: must have at most 128 bytes")
        return fm
    ua = ctx.user_agent
    # kube: the user agent up to the first "/" (e.g. "kubectl/v1.37.1 (linux/amd64)" -> "kubectl")
    return (ua.split("/", 1)[0] or "unknown")[:128] if ua else "unknown"


def field_validation(ctx: Ctx) -> str:
    return fieldcheck.parse_field_validation(ctx.q("fieldValidation"),
                                             _OPTIONS_KIND.get(ctx.request.method, "CreateOptions")).value


# -- DeleteOptions ---------------------------------------------------------------------------------

# Go types of DeleteOptions' fields, for json.Unmarshal's type errors.
_DELETE_FIELD_TYPES: dict[str, tuple[str, tuple[type, ...]]] = {
    "gracePeriodSeconds": ("int64", (int,)),
    "preconditions": ("v1.Preconditions", (dict,)),
    "orphanDependents": ("bool", (bool,)),
    "propagationPolicy": ("v1.DeletionPropagation", (str,)),
    "dryRun": ("[]string", (list,)),
    "ignoreStoreReadErrorWithClusterBreakingPotential": ("bool", (bool,)),
    "kind": ("string", (str,)),
    "apiVersion": ("string", (str,)),
}
_PRECONDITION_TYPES = {"uid": "types.UID", "resourceVersion": "string"}


def _unmarshal_error(value: Any, struct: str, path: str, go_type: str) -> errors.StatusError:
    return errors.bad_request(f"json: cannot unmarshal {fieldcheck.json_kind(value)} into Go struct field "
                              f"{struct}.{path} of type {go_type}")


def check_delete_options_types(opts: Obj, struct: str = "DeleteOptions", prefix: str = "") -> Obj:
    """Refuse what Go's json.Unmarshal could not put into a ``metav1.DeleteOptions`` (400),
    and drop nulls as it does. Returns a cleaned copy."""
    out: Obj = {}
    for k, v in opts.items():
        if v is None:
            continue
        spec = _DELETE_FIELD_TYPES.get(k)
        if spec is None:
            continue  # unknown fields are ignored, as the non-strict decoder does
        go_type, py_types = spec
        ok = isinstance(v, py_types) and not (bool not in py_types and isinstance(v, bool))
        if k == "gracePeriodSeconds" and isinstance(v, float) and v.is_integer():
            v, ok = int(v), True
        if not ok:
            raise _unmarshal_error(v, struct, prefix + k, go_type)
        if k == "gracePeriodSeconds" and not _INT64_MIN <= v <= _INT64_MAX:
            raise errors.bad_request(f"json: cannot unmarshal number {v} into Go struct field {struct}."
                                     f"{prefix}{k} of type int64")
        if k == "dryRun":
            for item in v:
                if not isinstance(item, str):
                    raise _unmarshal_error(item, struct, prefix + k, "string")
        if k == "preconditions":
            pre: Obj = {}
            for pk, pv in v.items():
                if pv is None or pk not in _PRECONDITION_TYPES:
                    continue
                if not isinstance(pv, str):
                    raise _unmarshal_error(pv, struct, f"{prefix}preconditions.{pk}", _PRECONDITION_TYPES[pk])
                pre[pk] = pv
            v = pre
        out[k] = v
    return out


def validate_delete_options(opts: Obj) -> None:
    """kube's ValidateDeleteOptions (422 DeleteOptions.meta.k8s.io); a negative grace period
    becomes 1 s, as kube's BeforeDelete makes it."""
    errs: list[errors.FieldError] = []
    pp = opts.get("propagationPolicy")
    if pp is not None and opts.get("orphanDependents") is not None:
        errs.append(errors.invalid("propagationPolicy", pp, "orphanDependents and deletionPropagation cannot be "
                                   "both set"))
    if pp is not None and pp not in _PROPAGATION:
        errs.append(errors.not_supported("propagationPolicy", pp, [*_PROPAGATION, "nil"]))
    errs += _dry_run_errors(opts.get("dryRun") or [])
    if errs:
        raise _invalid_options("DeleteOptions", errs)
    gp = opts.get("gracePeriodSeconds")
    if gp is not None and gp < 0:
        opts["gracePeriodSeconds"] = 1  # kube's BeforeDelete: negative values mean 1 s


def delete_options_from_query(query: Mapping[str, str] | Any) -> Obj:
    opts: Obj = {}
    gp = query_int(query, "gracePeriodSeconds")
    if gp is not None:
        opts["gracePeriodSeconds"] = gp
    od = query_bool(query, "orphanDependents")
    if od is not None:
        opts["orphanDependents"] = od
    if query.get("propagationPolicy"):
        opts["propagationPolicy"] = query["propagationPolicy"]
    dry = [v for v in query.getall("dryRun", []) if v != ""] if hasattr(query, "getall") else []
    if dry:
        opts["dryRun"] = dry
    return opts


async def delete_options(ctx: Ctx) -> Obj:
    """The request's DeleteOptions: from the body when there is one (JSON, YAML or protobuf,
    by Content-Type), else from the query, as kube's delete handlers do; validated."""
    raw = await read_body(ctx.request)
    if raw.strip():
        body = decode_plain(ctx, raw, False)
        if not isinstance(body, dict):
            raise errors.bad_request("decoded object cannot be converted to DeleteOptions")
        kind = body.get("kind")
        if kind not in (None, "", "DeleteOptions"):
            raise errors.bad_request("decoded object cannot be converted to DeleteOptions")
        opts = check_delete_options_types(body)
        opts.pop("kind", None)
        opts.pop("apiVersion", None)
    else:
        opts = delete_options_from_query(ctx.query)
    validate_delete_options(opts)
    return opts


def eviction_delete_options(ctx: Ctx, body: Obj) -> Obj:
    """An Eviction's ``deleteOptions``, type-checked and validated as DeleteOptions, with the
    request's dryRun merged in (kube's propagateDryRun)."""
    opts = body.get("deleteOptions")
    if opts is None:
        opts = {}
    if not isinstance(opts, dict):
        raise _unmarshal_error(opts, "Eviction", "deleteOptions", "v1.DeleteOptions")
    opts = check_delete_options_types(opts, "Eviction", "deleteOptions.")
    query_dry = ["All"] if dry_run(ctx) else []
    body_dry = opts.get("dryRun") or []
    validate_delete_options(opts)
    if not body_dry:
        if query_dry:
            opts["dryRun"] = query_dry
    elif query_dry and body_dry != query_dry:
        # kube returns this as a plain (500) error
        raise errors.StatusError(500, "", "Non-matching dry-run options in request and content: "
                                 f"[{' '.join(query_dry)}] and [{' '.join(body_dry)}]")
    return opts
