"""OpenAPI v3 documents, shaped as kube-apiserver serves them under ``/openapi/v3``.

``/openapi/v3`` is an index (kube-openapi's ``handler3``)::

    {"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=<SHA512 hex>"}, ...}}

and ``/openapi/v3/<path>`` is one OpenAPI 3.0 document per group-version (plus
the roots ``api``, ``apis``, ``apis/<group>`` and ``version``). kubectl reads
these documents for ``explain``, for client-side ``apply``/``edit`` patch
computation (strategic merge metadata on ``components.schemas``), and to
learn whether the server supports ``fieldValidation`` (it looks for that
query parameter on the PATCH operation tagged with the kind's
``x-kubernetes-group-version-kind``); when it finds it, it sends
``fieldValidation=Strict`` and skips its own client-side schema validation.

The schemas are Kubernetes' own, from ``k8py.api.schema`` (kubernetes-validate's
JSON-schema form), converted back to OpenAPI 3.0: ``["string", "null"]``
becomes ``"string"``, ``#/$defs/X`` becomes ``#/components/schemas/X`` (wrapped
in ``allOf`` when the property carries its own description or extensions, as
kube does, because OpenAPI 3.0 ignores siblings of ``$ref``), the
``apiVersion``/``kind`` enums kubernetes-validate adds are dropped, and
IntOrString/Quantity get kube's ``type: string`` (+ ``format: int-or-string``).

Documents are built lazily, serialised once, and cached per registry together
with their ETag (upper-case hex SHA-512 of the bytes, like kube-openapi); the
cache is rebuilt when the registry's set of kinds changes.
"""

from __future__ import annotations

import copy
import hashlib
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from k8py.api.registry import KindInfo, Registry
from k8py.api.schema import K8S_SCHEMA_VERSION, definitions, gvk_index, ref_name

__all__ = [
    "OpenAPIV3",
    "extension_document",
    "gv_path",
    "v3_document",
    "v3_entry",
    "v3_index",
    "v3_index_bytes",
]

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
STATUS = _META + "Status"
DELETE_OPTIONS = _META + "DeleteOptions"
PATCH = _META + "Patch"
WATCH_EVENT = _META + "WatchEvent"
API_RESOURCE_LIST = _META + "APIResourceList"

PATCH_CONTENT_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
# What the API server answers with (no protobuf/CBOR in k8py).
_READ_TYPES = ("application/json", "application/yaml")
_LIST_TYPES = ("application/json", "application/json;stream=watch", "application/yaml")
_WATCH_TYPES = ("application/json", "application/json;stream=watch", "application/yaml")

# kubernetes-validate drops these two descriptions; kube serves them with the
# OpenAPI v3 ``oneOf`` of their JSON forms (IntOrString also has its format).
_OVERRIDES: dict[str, dict[str, Any]] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "description": "IntOrString is a type that can hold an int32 or a string. In JSON or YAML it is "
        "written as the inner type, so a field of this type accepts either a number or a name.",
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "description": "Quantity is a fixed-point representation of a number, written in JSON and YAML as a "
        "string such as \"100m\", \"1.5\", \"128Mi\" or \"1e3\" (or as a plain number): a signed decimal "
        "number followed by an optional suffix, either binary SI (Ki, Mi, Gi, Ti, Pi, Ei), decimal SI (m, "
        "\"\", k, M, G, T, P, E) or a decimal exponent (e or E and a signed number). A quantity cannot exceed "
        "2^63-1 in magnitude nor have more than 3 decimal places; more precise values are rounded up.",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
}


# --------------------------------------------------------------------------- schemas


def _convert(schema: dict[str, Any], top: bool = False) -> dict[str, Any]:
    """One JSON-schema node (kubernetes-validate form) -> OpenAPI 3.0 form."""
    out: dict[str, Any] = {}
    ref = schema.get("$ref")
    for k, v in schema.items():
        if k == "$ref":
            continue
        if k == "type":
            if isinstance(v, list):
                ts = [t for t in v if t != "null"]
                if len(ts) == 1:
                    out["type"] = ts[0]
                # several non-null types cannot be said in OpenAPI 3.0: leave unconstrained
            else:
                out["type"] = v
        elif k == "properties":
            props = {}
            for pname, p in v.items():
                conv = _convert(p)
                if top and pname in ("apiVersion", "kind"):
                    conv.pop("enum", None)  # added by kubernetes-validate, not by kube
                props[pname] = conv
            out["properties"] = props
        elif k in ("items", "additionalProperties") and isinstance(v, dict):
            out[k] = _convert(v)
        elif k in ("allOf", "oneOf", "anyOf") and isinstance(v, list):
            out[k] = [_convert(x) for x in v]
        else:
            out[k] = v
    if ref is not None:
        target = {"$ref": "#/components/schemas/" + ref_name(ref)}
        if not out:
            return target
        out["allOf"] = [target]
    return out


def _refs_of(schema: Any, acc: set[str]) -> None:
    if isinstance(schema, dict):
        r = schema.get("$ref")
        if isinstance(r, str):
            acc.add(ref_name(r))
        for v in schema.values():
            if isinstance(v, dict | list):
                _refs_of(v, acc)
    elif isinstance(schema, list):
        for v in schema:
            _refs_of(v, acc)


@dataclass(slots=True)
class _SchemaCache:
    """Converted definitions and their direct references, computed once per process."""

    converted: dict[str, dict[str, Any]] = field(default_factory=dict)
    refs: dict[str, frozenset[str]] = field(default_factory=dict)

    def get(self, name: str) -> dict[str, Any]:
        c = self.converted.get(name)
        if c is None:
            if name in _OVERRIDES:
                c = dict(_OVERRIDES[name])
            else:
                c = _convert(definitions()[name], top=True)
            self.converted[name] = c
        return c

    def direct_refs(self, name: str) -> frozenset[str]:
        r = self.refs.get(name)
        if r is None:
            acc: set[str] = set()
            if name not in _OVERRIDES:
                _refs_of(definitions()[name], acc)
            r = frozenset(acc)
            self.refs[name] = r
        return r

    def closure(self, roots: set[str]) -> list[str]:
        defs = definitions()
        seen: set[str] = set()
        stack = [n for n in roots if n in defs]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            stack.extend(x for x in self.direct_refs(n) if x not in seen and x in defs)
        return sorted(seen)


_SCHEMAS = _SchemaCache()


def _definition_name(group: str, version: str, kind: str) -> str | None:
    return gvk_index().get((group, version, kind))


def _custom_name(group: str, version: str, kind: str) -> str:
    """kube's naming of CRD schemas: reversed group domain, version, kind."""
    rev = ".".join(reversed(group.split("."))) if group else "io.k8s.api.core"
    return f"{rev}.{version}.{kind}"


# --------------------------------------------------------------------------- parameters


def _q(name: str, description: str, typ: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": typ, "uniqueItems": True}}


P_PRETTY = _q("pretty", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent "
                        "indicates a browser or command-line HTTP tool (curl and wget).")
P_NAMESPACE = {"name": "namespace", "in": "path", "description": "object name and auth scope, such as for teams "
               "and projects", "required": True, "schema": {"type": "string", "uniqueItems": True}}
P_DRY_RUN = _q("dryRun", "When present, indicates that modifications should not be persisted. An invalid or "
                         "unrecognized dryRun directive will result in an error response and no further "
                         "processing of the request. Valid values are: - All: all dry run stages will be "
                         "processed")
P_FIELD_MANAGER = _q("fieldManager", "fieldManager is a name associated with the actor or entity that is making "
                                     "these changes. The value must be less than or 128 characters long, and only "
                                     "contain printable characters, as defined by "
                                     "https://golang.org/pkg/unicode/#IsPrint.")
P_FIELD_VALIDATION = _q(
    "fieldValidation",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing "
    "unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are "
    "silently dropped from the object, and will ignore all but the last duplicate field that the decoder "
    "encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the "
    "standard warning response header for each unknown field that is dropped from the object, and for each "
    "duplicate field that is encountered. The request will still succeed if there are no other errors, and "
    "will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will "
    "fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if "
    "any duplicate fields are present. The error returned from the server will contain all unknown and "
    "duplicate fields encountered.")
P_FORCE = _q("force", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting "
                      "fields owned by other people. Force flag must be unset for non-apply patch requests.",
             "boolean")
P_GRACE = _q("gracePeriodSeconds", "The duration in seconds before the object should be deleted. Value must be "
                                   "non-negative integer. The value zero indicates delete immediately. If this "
                                   "value is nil, the default grace period for the specified type will be used. "
                                   "Defaults to a per object value if not specified. zero means delete "
                                   "immediately.", "integer")
P_IGNORE_STORE = _q("ignoreStoreReadErrorWithClusterBreakingPotential",
                    "if set to true, it will trigger an unsafe deletion of the resource in case the normal "
                    "deletion flow fails with a corrupt object error. A resource is considered corrupt if it "
                    "can not be retrieved from the underlying storage successfully because of a) its data can "
                    "not be transformed e.g. decryption failure, or b) it fails to decode into an object.",
                    "boolean")
P_ORPHAN = _q("orphanDependents", "Deprecated: please use the PropagationPolicy, this field will be deprecated "
                                  "in 1.7. Should the dependent objects be orphaned. If true/false, the "
                                  "\"orphan\" finalizer will be added to/removed from the object's finalizers "
                                  "list. Either this field or PropagationPolicy may be set, but not both.",
              "boolean")
P_PROPAGATION = _q("propagationPolicy", "Whether and how garbage collection will be performed. Either this field "
                                        "or OrphanDependents may be set, but not both. The default policy is "
                                        "decided by the existing finalizer set in the metadata.finalizers and the "
                                        "resource-specific default policy. Acceptable values are: 'Orphan' - "
                                        "orphan the dependents; 'Background' - allow the garbage collector to "
                                        "delete the dependents in the background; 'Foreground' - a cascading "
                                        "policy that deletes all dependents in the foreground.")
P_BOOKMARKS = _q("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". "
                                        "Servers that do not implement bookmarks may ignore this flag and "
                                        "bookmarks are sent at the server's discretion.", "boolean")
P_CONTINUE = _q("continue", "The continue option should be set when retrieving more results from the server. "
                            "Since this value is server defined, clients may only use the continue value from a "
                            "previous query result with identical query parameters (except for the value of "
                            "continue) and the server may reject a continue value it does not recognize.")
P_FIELD_SELECTOR = _q("fieldSelector", "A selector to restrict the list of returned objects by their fields. "
                                       "Defaults to everything.")
P_LABEL_SELECTOR = _q("labelSelector", "A selector to restrict the list of returned objects by their labels. "
                                       "Defaults to everything.")
P_LIMIT = _q("limit", "limit is a maximum number of responses to return for a list call. If more items exist, "
                      "the server will set the `continue` field on the list metadata to a value that can be "
                      "used with the same initial query to retrieve the next set of results.", "integer")
P_RV = _q("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be "
                             "served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/"
                             "#resource-versions for details.\n\nDefaults to unset")
P_RV_MATCH = _q("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is applied to list "
                                        "calls. It is highly recommended that resourceVersionMatch be set for "
                                        "list calls where resourceVersion is set See https://kubernetes.io/docs/"
                                        "reference/using-api/api-concepts/#resource-versions for details.\n\n"
                                        "Defaults to unset")
P_INITIAL_EVENTS = _q("sendInitialEvents", "`sendInitialEvents=true` may be set together with `watch=true`. In "
                                           "that case, the watch stream will begin with synthetic events to "
                                           "produce the current state of objects in the collection, followed by "
                                           "a bookmark event.", "boolean")
P_TIMEOUT = _q("timeoutSeconds", "Timeout for the list/watch call. This limits the duration of the call, "
                                 "regardless of any activity or inactivity.", "integer")
P_WATCH = _q("watch", "Watch for changes to the described resources and return them as a stream of add, "
                      "update, and remove notifications. Specify resourceVersion.", "boolean")

LIST_PARAMS = (P_BOOKMARKS, P_CONTINUE, P_FIELD_SELECTOR, P_LABEL_SELECTOR, P_LIMIT, P_RV, P_RV_MATCH,
               P_INITIAL_EVENTS, P_TIMEOUT, P_WATCH)
WRITE_PARAMS = (P_DRY_RUN, P_FIELD_MANAGER, P_FIELD_VALIDATION)
PATCH_PARAMS = (P_DRY_RUN, P_FIELD_MANAGER, P_FIELD_VALIDATION, P_FORCE)
DELETE_PARAMS = (P_DRY_RUN, P_GRACE, P_IGNORE_STORE, P_ORPHAN, P_PROPAGATION)
DELETE_COLLECTION_PARAMS = (P_CONTINUE, P_DRY_RUN, P_FIELD_SELECTOR, P_GRACE, P_IGNORE_STORE, P_LABEL_SELECTOR,
                            P_LIMIT, P_ORPHAN, P_PROPAGATION, P_RV, P_RV_MATCH, P_INITIAL_EVENTS, P_TIMEOUT)
WATCH_PATH_PARAMS = (P_BOOKMARKS, P_CONTINUE, P_FIELD_SELECTOR, P_LABEL_SELECTOR, P_LIMIT, P_PRETTY, P_RV,
                     P_RV_MATCH, P_INITIAL_EVENTS, P_TIMEOUT, P_WATCH)

_LOG_PARAMS = (
    _q("container", "The container for which to stream logs. Defaults to only container if there is one "
                    "container in the pod."),
    _q("follow", "Follow the log stream of the pod. Defaults to false.", "boolean"),
    _q("insecureSkipTLSVerifyBackend", "insecureSkipTLSVerifyBackend indicates that the apiserver should not "
                                       "confirm the validity of the serving certificate of the backend it is "
                                       "connecting to.", "boolean"),
    _q("limitBytes", "If set, the number of bytes to read from the server before terminating the log output.",
       "integer"),
    _q("previous", "Return previous terminated container logs. Defaults to false.", "boolean"),
    _q("sinceSeconds", "A relative time in seconds before the current time from which to show logs.", "integer"),
    _q("stream", "Specify which container log stream to return to the client. Acceptable values are \"All\", "
                 "\"Stdout\" and \"Stderr\". If not specified, \"All\" is used."),
    _q("tailLines", "If set, the number of lines from the end of the logs to show.", "integer"),
    _q("timestamps", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log "
                     "output. Defaults to false.", "boolean"),
)
_EXEC_PARAMS = (
    _q("command", "Command is the remote command to execute. argv array. Not executed within a shell."),
    _q("container", "Container in which to execute the command. Defaults to only container if there is only "
                    "one container in the pod."),
    _q("stderr", "Redirect the standard error stream of the pod for this call.", "boolean"),
    _q("stdin", "Redirect the standard input stream of the pod for this call. Defaults to false.", "boolean"),
    _q("stdout", "Redirect the standard output stream of the pod for this call.", "boolean"),
    _q("tty", "TTY if true indicates that a tty will be allocated for the exec call. Defaults to false.",
       "boolean"),
)
_ATTACH_PARAMS = tuple(p for p in _EXEC_PARAMS if p["name"] != "command")
_PORTFORWARD_PARAMS = (_q("ports", "List of ports to forward Required when using WebSockets", "integer"),)


_CONNECT_OPTIONS = {"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}


def _p_name(kind: str, sub: str = "") -> dict[str, Any]:
    what = kind
    if sub == "proxy":
        what = f"{kind}ProxyOptions"
    elif sub in _CONNECT_OPTIONS:
        what = _CONNECT_OPTIONS[sub]
    return {"name": "name", "in": "path", "description": f"name of the {what}", "required": True,
            "schema": {"type": "string", "uniqueItems": True}}


# --------------------------------------------------------------------------- operations


def _group_camel(group: str) -> str:
    """Operation id prefix: "" -> "Core", "rbac.authorization.k8s.io" -> "RbacAuthorization"."""
    if not group:
        return "Core"
    g = group.removesuffix(".k8s.io")
    return "".join(p[:1].upper() + p[1:] for p in g.replace("-", ".").split("."))


def _tag(group: str, version: str) -> str:
    if not group:
        return f"core_{version}"
    g = group.removesuffix(".k8s.io")
    parts = g.replace("-", ".").split(".")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]) + "_" + version


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


def _schema_ref(name: str | None) -> dict[str, Any]:
    if name is None:
        return {"type": "object"}
    return {"$ref": "#/components/schemas/" + name}


def _content(schema: dict[str, Any], types: tuple[str, ...]) -> dict[str, Any]:
    return {t: {"schema": schema} for t in types}


def _ok(schema: dict[str, Any], types: tuple[str, ...] = _READ_TYPES, codes: tuple[str, ...] = ("200",)
        ) -> dict[str, Any]:
    desc = {"200": "OK", "201": "Created", "202": "Accepted"}
    out: dict[str, Any] = {c: {"description": desc[c], "content": _content(schema, types)} for c in codes}
    out["401"] = {"description": "Unauthorized"}
    return out


@dataclass(slots=True)
class _DocBuilder:
    group: str
    version: str
    paths: dict[str, dict[str, Any]] = field(default_factory=dict)
    roots: set[str] = field(default_factory=set)  # definition names the paths refer to
    custom: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # CRD-like kinds: name -> gvk

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def ref(self, name: str | None) -> dict[str, Any]:
        if name is not None:
            self.roots.add(name)
        return _schema_ref(name)

    def op(self, action: str, op_id: str, description: str, gvk: dict[str, str] | None,
           params: tuple[dict[str, Any], ...] = (), responses: dict[str, Any] | None = None,
           body: dict[str, Any] | None = None) -> dict[str, Any]:
        o: dict[str, Any] = {
            "tags": [_tag(self.group, self.version)],
            "description": description,
            "operationId": op_id,
        }
        if params:
            o["parameters"] = list(params)
        if body is not None:
            o["requestBody"] = body
        o["responses"] = responses or {"401": {"description": "Unauthorized"}}
        o["x-kubernetes-action"] = action
        if gvk is not None:
            o["x-kubernetes-group-version-kind"] = gvk
        return o

    def add_resource(self, k: KindInfo) -> None:
        gc = _group_camel(k.group) + k.version[:1].upper() + k.version[1:]
        ns = "Namespaced" if k.namespaced else ""
        kind = k.kind
        gvk = _gvk(k.group, k.version, kind)
        defname = _definition_name(k.group, k.version, kind)
        if defname is None:
            defname = _custom_name(k.group, k.version, kind)
            self.custom[defname] = (k.group, k.version, kind)
        listname = _definition_name(k.group, k.version, k.list_kind_name)
        obj = self.ref(defname)
        lst = self.ref(listname) if listname else {"type": "object"}
        status = self.ref(STATUS)
        verbs = set(k.verbs)
        builtin = _definition_name(k.group, k.version, kind) is not None

        coll_path = (f"{self.prefix}/namespaces/{{namespace}}/{k.resource}" if k.namespaced
                     else f"{self.prefix}/{k.resource}")
        item_path = coll_path + "/{name}"
        ns_params = [P_NAMESPACE] if k.namespaced else []

        coll: dict[str, Any] = {}
        if "list" in verbs:
            coll["get"] = self.op("list", f"list{gc}{ns}{kind}", f"list or watch objects of kind {kind}", gvk,
                                  LIST_PARAMS, _ok(lst, _LIST_TYPES))
        if "create" in verbs:
            coll["post"] = self.op("post", f"create{gc}{ns}{kind}", f"create a {kind}", gvk, WRITE_PARAMS,
                                   _ok(obj, codes=("200", "201", "202")),
                                   {"content": {"*/*": {"schema": obj}}, "required": True})
        if "deletecollection" in verbs:
            coll["delete"] = self.op("deletecollection", f"delete{gc}Collection{ns}{kind}",
                                     f"delete collection of {kind}", gvk, DELETE_COLLECTION_PARAMS, _ok(status),
                                     {"content": {"*/*": {"schema": self.ref(DELETE_OPTIONS)}}})
        if coll:
            coll["parameters"] = [*ns_params, P_PRETTY]
            self.paths[coll_path] = coll

        item: dict[str, Any] = {}
        if "get" in verbs:
            item["get"] = self.op("get", f"read{gc}{ns}{kind}", f"read the specified {kind}", gvk,
                                  (), _ok(obj))
        if "update" in verbs:
            item["put"] = self.op("put", f"replace{gc}{ns}{kind}", f"replace the specified {kind}", gvk,
                                  WRITE_PARAMS, _ok(obj, codes=("200", "201")),
                                  {"content": {"*/*": {"schema": obj}}, "required": True})
        if "delete" in verbs:
            deleted = obj if kind in ("Pod", "Service") else status
            item["delete"] = self.op("delete", f"delete{gc}{ns}{kind}", f"delete a {kind}", gvk, DELETE_PARAMS,
                                     _ok(deleted, codes=("200", "202")),
                                     {"content": {"*/*": {"schema": self.ref(DELETE_OPTIONS)}}})
        if "patch" in verbs:
            item["patch"] = self.op("patch", f"patch{gc}{ns}{kind}", f"partially update the specified {kind}",
                                    gvk, PATCH_PARAMS, _ok(obj, codes=("200", "201")),
                                    self._patch_body(builtin))
        if item:
            item["parameters"] = [_p_name(kind), *ns_params, P_PRETTY]
            self.paths[item_path] = item

        if "list" in verbs and k.namespaced:
            self.paths[f"{self.prefix}/{k.resource}"] = {
                "get": self.op("list", f"list{gc}{kind}ForAllNamespaces", f"list or watch objects of kind {kind}",
                               gvk, (), _ok(lst, _LIST_TYPES)),
                "parameters": list(WATCH_PATH_PARAMS),
            }
        if "watch" in verbs:
            ev = self.ref(WATCH_EVENT)
            wprefix = f"{self.prefix}/watch"
            wcoll = (f"{wprefix}/namespaces/{{namespace}}/{k.resource}" if k.namespaced
                     else f"{wprefix}/{k.resource}")
            self.paths[wcoll] = {
                "get": self.op("watchlist", f"watch{gc}{ns}{kind}List",
                               f"watch individual changes to a list of {kind}. deprecated: use the 'watch' "
                               "parameter with a list operation instead.", gvk, (), _ok(ev, _WATCH_TYPES)),
                "parameters": [*WATCH_PATH_PARAMS[:5], *ns_params, *WATCH_PATH_PARAMS[5:]],
            }
            self.paths[wcoll + "/{name}"] = {
                "get": self.op("watch", f"watch{gc}{ns}{kind}",
                               f"watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter "
                               "with a list operation instead, filtered to a single item with the 'fieldSelector' "
                               "parameter.", gvk, (), _ok(ev, _WATCH_TYPES)),
                "parameters": [*WATCH_PATH_PARAMS[:5], _p_name(kind), *ns_params, *WATCH_PATH_PARAMS[5:]],
            }
            if k.namespaced:
                self.paths[f"{wprefix}/{k.resource}"] = {
                    "get": self.op("watchlist", f"watch{gc}{kind}ListForAllNamespaces",
                                   f"watch individual changes to a list of {kind}. deprecated: use the 'watch' "
                                   "parameter with a list operation instead.", gvk, (), _ok(ev, _WATCH_TYPES)),
                    "parameters": list(WATCH_PATH_PARAMS),
                }

        for sub in k.subresources:
            self._add_subresource(k, sub, gc, ns, item_path, ns_params, builtin)

    def _patch_body(self, strategic: bool) -> dict[str, Any]:
        patch = self.ref(PATCH)
        types = PATCH_CONTENT_TYPES if strategic else tuple(
            t for t in PATCH_CONTENT_TYPES if t != "application/strategic-merge-patch+json")
        return {"content": {t: {"schema": patch} for t in types}, "required": True}

    def _add_subresource(self, k: KindInfo, sub: str, gc: str, ns: str, item_path: str,
                         ns_params: list[dict[str, Any]], builtin: bool) -> None:
        kind = k.kind
        cap = sub[:1].upper() + sub[1:]
        path = f"{item_path}/{sub}"
        params = [_p_name(kind), *ns_params, P_PRETTY]

        def get_put_patch(gvk: dict[str, str], target: dict[str, Any], what: str) -> dict[str, Any]:
            return {
                "get": self.op("get", f"read{gc}{ns}{kind}{cap}", f"read {what} of the specified {kind}", gvk,
                               (), _ok(target)),
                "put": self.op("put", f"replace{gc}{ns}{kind}{cap}", f"replace {what} of the specified {kind}",
                               gvk, WRITE_PARAMS, _ok(target, codes=("200", "201")),
                               {"content": {"*/*": {"schema": target}}, "required": True}),
                "patch": self.op("patch", f"patch{gc}{ns}{kind}{cap}",
                                 f"partially update {what} of the specified {kind}", gvk, PATCH_PARAMS,
                                 _ok(target, codes=("200", "201")), self._patch_body(builtin)),
                "parameters": params,
            }

        own_gvk = _gvk(k.group, k.version, kind)
        own_def = _definition_name(k.group, k.version, kind) or _custom_name(k.group, k.version, kind)
        if sub in ("status", "ephemeralcontainers", "resize"):
            what = {"status": "status", "ephemeralcontainers": "ephemeralcontainers", "resize": "resize"}[sub]
            self.paths[path] = get_put_patch(own_gvk, self.ref(own_def), what)
        elif sub == "scale":
            self.paths[path] = get_put_patch(_gvk("autoscaling", "v1", "Scale"),
                                             self.ref("io.k8s.api.autoscaling.v1.Scale"), "scale")
        elif sub == "finalize":
            self.paths[path] = {
                "put": self.op("put", f"replace{gc}{ns}{kind}{cap}", f"replace finalize of the specified {kind}",
                               own_gvk, (P_DRY_RUN, P_FIELD_MANAGER, P_FIELD_VALIDATION),
                               _ok(self.ref(own_def), codes=("200", "201")),
                               {"content": {"*/*": {"schema": self.ref(own_def)}}, "required": True}),
                "parameters": params,
            }
        elif sub in ("binding", "eviction", "token"):
            target_name, gvk = {
                "binding": ("io.k8s.api.core.v1.Binding", _gvk("", "v1", "Binding")),
                "eviction": ("io.k8s.api.policy.v1.Eviction", _gvk("policy", "v1", "Eviction")),
                "token": ("io.k8s.api.authentication.v1.TokenRequest",
                          _gvk("authentication.k8s.io", "v1", "TokenRequest")),
            }[sub]
            target = self.ref(target_name)
            self.paths[path] = {
                "post": self.op("post", f"create{gc}{ns}{kind}{cap}", f"create {sub} of a {kind}", gvk,
                                WRITE_PARAMS, _ok(target, codes=("200", "201", "202")),
                                {"content": {"*/*": {"schema": target}}, "required": True}),
                "parameters": params,
            }
        elif sub == "log":
            self.paths[path] = {
                "get": self.op("get", f"read{gc}{ns}{kind}Log", f"read log of the specified {kind}", own_gvk, (),
                               _ok({"type": "string"}, ("text/plain", "application/json", "application/yaml"))),
                "parameters": [*params[:-1], *_LOG_PARAMS[:6], P_PRETTY, *_LOG_PARAMS[6:]],
            }
        elif sub in ("exec", "attach", "portforward", "proxy"):
            opts = _CONNECT_OPTIONS.get(sub, f"{kind}ProxyOptions")
            gvk = _gvk("", "v1", opts)
            qp: tuple[dict[str, Any], ...] = {"exec": _EXEC_PARAMS, "attach": _ATTACH_PARAMS,
                                               "portforward": _PORTFORWARD_PARAMS}.get(sub, ())
            methods = ("get", "post") if sub != "proxy" else ("get", "put", "post", "delete", "options", "head",
                                                             "patch")
            entry: dict[str, Any] = {}
            for m in methods:
                entry[m] = self.op("connect", f"connect{m.capitalize()}{gc}{ns}{kind}{cap}",
                                   f"connect {m.upper()} requests to {sub} of {kind}", gvk, (),
                                   _ok({"type": "string"}, ("*/*",)))
            entry["parameters"] = [_p_name(kind, sub), *ns_params, *qp]
            if sub == "proxy":
                entry["parameters"].append(_q("path", "Path is the URL path to use for the current proxy request."))
            self.paths[path] = entry
            if sub == "proxy":
                sub_path = dict(entry)
                sub_path["parameters"] = [_p_name(kind, sub), *ns_params,
                                          {"name": "path", "in": "path", "description": "path to the resource",
                                           "required": True, "schema": {"type": "string", "uniqueItems": True}}]
                self.paths[path + "/{path}"] = sub_path


def _custom_schema(group: str, version: str, kind: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A custom resource's schema: its CRD's openAPIV3Schema with apiVersion, kind and metadata
    as kube publishes them (``builder.BuildOpenAPIV3``); without one, any object."""
    if schema is None:
        return {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-group-version-kind": [_gvk(group, version, kind)],
        }
    out = copy.deepcopy(schema)
    props = out.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": _API_VERSION_DOC}
    props["kind"] = {"type": "string", "description": _KIND_DOC}
    props["metadata"] = {"allOf": [{"$ref": "#/components/schemas/" + OBJECT_META}],
                         "description": "Standard object's metadata. More info: "
                         "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}
    out["x-kubernetes-group-version-kind"] = [_gvk(group, version, kind)]
    return out


_API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an object. Servers should "
                    "convert recognized schemas to the latest internal value, and may reject unrecognized values. "
                    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
                    "api-conventions.md#resources")
_KIND_DOC = ("Kind is a string value representing the REST resource this object represents. Servers may infer this "
             "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
             "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds")
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _finish(title_paths: dict[str, Any], roots: set[str],
            custom: dict[str, tuple[str, str, str]] | None = None,
            custom_schemas: dict[tuple[str, str, str], Any] | None = None) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    if custom and custom_schemas:
        roots = roots | {OBJECT_META}
    for name in _SCHEMAS.closure(roots):
        schemas[name] = _SCHEMAS.get(name)
    for name, gvk in (custom or {}).items():
        schemas.setdefault(name, _custom_schema(*gvk, schema=(custom_schemas or {}).get(gvk)))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": K8S_SCHEMA_VERSION},
        "paths": title_paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                "name": "authorization", "in": "header"},
            },
        },
        "security": [{"BearerToken": []}],
    }


def _build_gv(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    kinds = registry.kinds_in(group, version)
    if not kinds:
        return None
    b = _DocBuilder(group, version)
    gc = _group_camel(group) + version[:1].upper() + version[1:]
    b.paths[b.prefix + "/"] = {
        "get": {
            "tags": [_tag(group, version)],
            "description": "get available resources",
            "operationId": f"get{gc}APIResources",
            "responses": _ok(b.ref(API_RESOURCE_LIST)),
        }
    }
    for k in sorted(kinds, key=lambda x: x.resource):
        b.add_resource(k)
    return _finish(dict(sorted(b.paths.items())), b.roots, b.custom, registry.custom_schemas)


def _build_root(registry: Registry, path: str) -> dict[str, Any] | None:
    if path == "api":
        if "" not in registry.groups():
            return None
        p, op_id, tag, name, desc = "/api/", "getCoreAPIVersions", "core", "APIVersions", "get available API versions"
    elif path == "apis":
        p, op_id, tag, name, desc = "/apis/", "getAPIVersions", "apis", "APIGroupList", "get available API versions"
    elif path == "version":
        return _finish({"/version/": {"get": {
            "tags": ["version"], "description": "get the version information for this server",
            "operationId": "getCodeVersion", "responses": _ok(_schema_ref("io.k8s.apimachinery.pkg.version.Info")),
        }}}, {"io.k8s.apimachinery.pkg.version.Info"})
    elif path.startswith("apis/") and path.count("/") == 1:
        group = path[5:]
        if group not in registry.groups() or not group:
            return None
        gname = _group_camel(group)
        p, op_id, name, desc = f"/{path}/", f"get{gname}APIGroup", "APIGroup", "get information of a group"
        tag = _tag(group, "v0").rsplit("_", 1)[0]
    else:
        return None
    ref = _META + name
    return _finish({p: {"get": {"tags": [tag], "description": desc, "operationId": op_id,
                                "responses": _ok(_schema_ref(ref))}}}, {ref})


def extension_document(paths: dict[str, Any], schemas: dict[str, dict[str, Any]], refs: set[str]) -> dict[str, Any]:
    """An OpenAPI v3 document as kube-openapi writes one, for an extension API server (k8py's
    metrics-server): its ``paths``, its own ``schemas``, and the Kubernetes schemas they refer to
    (``refs``: ObjectMeta, Quantity ...) with everything those refer to."""
    doc = _finish(dict(sorted(paths.items())), refs)
    doc["components"]["schemas"].update(schemas)
    return doc


def gv_path(group: str, version: str) -> str:
    """The index key of a group-version: ``api/v1`` or ``apis/apps/v1``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _etag(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest().upper()


# --------------------------------------------------------------------------- cache / service


class OpenAPIV3:
    """Built documents of one registry, with their ETags; rebuilt when its kinds change."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._fingerprint: tuple[object, ...] = ()
        self._docs: dict[str, tuple[bytes, str] | None] = {}
        self._index: bytes | None = None

    def _check(self) -> None:
        fp = (*self._registry.all(), self._registry.custom_schemas_version)
        if fp != self._fingerprint:
            self._fingerprint = fp
            self._docs = {}
            self._index = None

    def paths(self) -> list[str]:
        """Every document path served: each group-version, the roots ``api``, ``apis``,
        ``apis/<group>`` and ``version``, sorted as kube's index is."""
        groups = self._registry.groups()
        out: list[str] = []
        if "" in groups:
            out.append("api")
        out.append("apis")
        for g, versions in groups.items():
            if g:
                out.append(f"apis/{g}")
            for v in versions:
                out.append(gv_path(g, v))
        out.append("version")
        return sorted(out)

    def entry(self, path: str) -> tuple[bytes, str] | None:
        """``(document bytes, etag)`` for ``path`` (``apis/apps/v1``), or None when not served."""
        self._check()
        path = path.strip("/")
        if path in self._docs:
            return self._docs[path]
        doc: dict[str, Any] | None
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == "api":
            doc = _build_gv(self._registry, "", parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = _build_gv(self._registry, parts[1], parts[2])
        else:
            doc = _build_root(self._registry, path)
        result = None
        if doc is not None:
            data = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
            result = (data, _etag(data))
        self._docs[path] = result
        return result

    def index(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.paths():
            e = self.entry(p)
            if e is not None:
                out[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={e[1]}"}
        return {"paths": out}

    def index_bytes(self) -> tuple[bytes, str]:
        self._check()
        if self._index is None:
            self._index = orjson.dumps(self.index(), option=orjson.OPT_SORT_KEYS)
        return self._index, _etag(self._index)


S = TypeVar("S")


def per_registry(factory: Callable[[Registry], S]) -> Callable[[Registry], S]:
    """``factory(registry)`` made once per registry and kept while the registry lives: the
    documents are built on first use and then served from memory."""
    made: weakref.WeakKeyDictionary[Registry, S] = weakref.WeakKeyDictionary()

    def get(registry: Registry) -> S:
        s = made.get(registry)
        if s is None:
            s = made[registry] = factory(registry)
        return s

    return get


_service = per_registry(OpenAPIV3)


def v3_index(registry: Registry) -> dict[str, Any]:
    """The ``/openapi/v3`` discovery document: ``{"paths": {path: {"serverRelativeURL": ...}}}``."""
    return _service(registry).index()


def v3_index_bytes(registry: Registry) -> tuple[bytes, str]:
    """``/openapi/v3`` serialised, and its ETag (unquoted)."""
    return _service(registry).index_bytes()


def v3_entry(registry: Registry, path: str) -> tuple[bytes, str] | None:
    """``(bytes, etag)`` of ``/openapi/v3/<path>``, or None (404)."""
    return _service(registry).entry(path)


def v3_document(registry: Registry, path: str) -> bytes | None:
    """The OpenAPI 3.0 document for ``path`` (``api/v1``, ``apis/apps/v1``, ``apis``, ...), or None."""
    e = _service(registry).entry(path)
    return e[0] if e is not None else None
