"""Parse a request path into Kubernetes' RequestInfo (like apiserver's RequestInfoFactory)."""

from __future__ import annotations

from dataclasses import dataclass

# Paths outside the resource API that are served without a group/version.
NON_RESOURCE_PREFIXES = ("/healthz", "/livez", "/readyz", "/version", "/openapi", "/metrics")
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(slots=True)
class RequestInfo:
    path: str
    method: str
    is_resource_request: bool = False
    api_prefix: str = ""  # "api" or "apis"
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    name: str = ""
    subresource: str = ""
    verb: str = ""
    parts: tuple[str, ...] = ()


_METHOD_VERB = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "GET": "get", "HEAD": "get"}


def parse(path: str, method: str, query: dict[str, str] | None = None) -> RequestInfo:
    info = RequestInfo(path=path, method=method)
    parts = tuple(p for p in path.strip("/").split("/") if p)
    if not parts or parts[0] not in ("api", "apis"):
        info.verb = method.lower()
        return info
    info.api_prefix = parts[0]
    rest = parts[1:]
    if parts[0] == "api":
        if not rest:
            info.verb = "get"
            return info
        info.version = rest[0]
        rest = rest[1:]
    else:
        if len(rest) < 2:
            # /apis or /apis/<group>
            if rest:
                info.group = rest[0]
            info.verb = "get"
            return info
        info.group, info.version = rest[0], rest[1]
        rest = rest[2:]
    if not rest:
        info.verb = "get"  # group-version discovery
        return info
    info.is_resource_request = True
    # Old-style watch paths /api/v1/watch/namespaces/x/pods
    watch_path = False
    if rest[0] == "watch":
        watch_path = True
        rest = rest[1:]
    if len(rest) >= 2 and rest[0] == "namespaces":
        if len(rest) == 2 or (len(rest) == 3 and rest[2] in NAMESPACE_SUBRESOURCES):
            # /namespaces/<name> is the namespace object itself, /namespaces/<name>/status|finalize
            # its subresources (kube's RequestInfoFactory: namespaceSubresources)
            info.resource = "namespaces"
            info.name = rest[1]
            if len(rest) == 3:
                info.subresource = rest[2]
        else:
            info.namespace = rest[1]
            rest = rest[2:]
            info.resource = rest[0]
            if len(rest) > 1:
                info.name = rest[1]
            if len(rest) > 2:
                info.subresource = rest[2]
    else:
        info.resource = rest[0]
        if len(rest) > 1:
            info.name = rest[1]
        if len(rest) > 2:
            info.subresource = rest[2]
    info.parts = rest
    # kube's RequestInfoFactory: any other method (OPTIONS on a proxy) is the empty verb
    verb = _METHOD_VERB.get(method, "")
    q = query or {}
    if verb == "get" and not info.name:
        verb = "list"
        if watch_path or q.get("watch") in ("1", "true", "True"):
            verb = "watch"
    elif verb == "get" and watch_path:
        verb = "watch"
    elif verb == "delete" and not info.name:
        verb = "deletecollection"
    info.verb = verb
    return info
