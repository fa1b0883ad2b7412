"""metrics-server's HTTPS API: ``metrics.k8s.io/v1beta1`` for the aggregator (and any client
the delegated authentication accepts, :mod:`.auth`).

- ``GET /apis``, ``/apis/metrics.k8s.io``, ``/apis/metrics.k8s.io/v1beta1``: discovery (``/apis``
  also as the aggregated ``APIGroupDiscoveryList`` when asked for it by ``Accept``), and
  ``/openapi/v3[/apis/metrics.k8s.io/v1beta1]`` (:mod:`.openapi`);
- ``GET /apis/metrics.k8s.io/v1beta1/nodes[/{name}]``: NodeMetrics of the nodes (``labelSelector``
  and ``fieldSelector`` on ``metadata.name``); a node without two points yet is left out of a list
  and is 404 ``nodemetrics.metrics.k8s.io "<name>" not found`` alone; an unknown node is
  ``nodes "<name>" not found``;
- ``GET /apis/metrics.k8s.io/v1beta1[/namespaces/{ns}]/pods[/{name}]``: PodMetrics of the running
  pods (metrics-server watches pods with ``status.phase=Running``), 404
  ``podmetrics.metrics.k8s.io "<ns>/<name>" not found`` for one without metrics;
- ``as=Table`` in ``Accept`` (``kubectl get``): metrics-server's Table;
- ``/healthz``, ``/livez`` (the scrape loop ran within 1.5 resolutions: metrics-server's
  ``metric-collection-timely``) and ``/readyz`` (``metric-storage-ready``: some node and pod
  have metrics; ``metric-informer-sync``).

Other verbs are 405 (metrics-server serves get and list only, no watch); unknown paths 404. Every
request is authenticated and authorized first (401/403 as kube's Status objects).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from k8py.api import errors
from k8py.api.selectors import FieldSelector, LabelSelector, parse_field_selector, parse_label_selector
from k8py.metricsserver import api, openapi
from k8py.metricsserver.auth import (
    AuthConfig,
    Authorizer,
    RequestAttributes,
    Unauthorized,
    UserInfo,
    authenticate,
)
from k8py.metricsserver.storage import Storage

__all__ = ["Lister", "MetricsAPI"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PREFIX = f"/apis/{api.GROUP}/{api.VERSION}"


class Lister(Protocol):
    def get(self, name: str, namespace: str | None = None) -> Obj | None: ...

    def list(self, namespace: str | None = None) -> list[Obj]: ...


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE),
                        content_type="application/json")


def _status(e: errors.StatusError) -> web.Response:
    r = _json(e.status(), e.code)
    r.headers.update(e.headers)
    return r


def _not_found() -> errors.StatusError:
    """The generic API server's 404 for a path it does not serve."""
    return errors.StatusError(404, "NotFound", "the server could not find the requested resource", details={})


def _accepts(accept: str) -> str:
    """What to answer: "" (JSON), "Table" or "APIGroupDiscoveryList"; 406 for nothing we serve."""
    if not accept:
        return ""
    for part in accept.split(","):
        bits = [b.strip() for b in part.split(";")]
        mt = bits[0].lower()
        params = dict(b.split("=", 1) for b in bits[1:] if "=" in b)
        if mt not in ("application/json", "application/*", "*/*"):
            continue
        as_ = params.get("as", "")
        if not as_:
            return ""
        if as_ == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return "Table"
        if as_ == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io" and params.get("v") == "v2":
            return as_
    raise errors.not_acceptable("only the following media types are accepted: application/json, "
                                "application/json;as=Table;v=v1;g=meta.k8s.io")


def _meta_fields(obj: Obj, namespaced: bool) -> dict[str, str]:
    m = obj.get("metadata") or {}
    out = {"metadata.name": str(m.get("name", ""))}
    if namespaced:
        out["metadata.namespace"] = str(m.get("namespace", ""))
    return out


class MetricsAPI:
    """The handlers over the storage, the node and pod listers, and the delegated auth."""

    def __init__(self, storage: Storage, nodes: Lister, pods: Lister, *, auth_config: Callable[[], AuthConfig],
                 authorizer: Authorizer, tokens: Callable[[str], Awaitable[UserInfo | None]] | None = None,
                 synced: Callable[[], bool] = lambda: True, last_tick: Callable[[], float] = lambda: 0.0,
                 resolution: float = 15.0, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.nodes = nodes
        self.pods = pods
        self.auth_config = auth_config
        self.authorizer = authorizer
        self.tokens = tokens
        self.synced = synced
        self.last_tick = last_tick
        self.resolution = resolution
        self.clock = clock

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    # -- the request path -------------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            attrs = self.attributes(request)
            user = await self._authenticate(request)
            allowed, reason = await self.authorizer.authorize(user, attrs)
            if not allowed:
                log.debug("forbidden: %s %s for %s: %s", attrs.verb, request.path, user.name, reason)
                raise errors.forbidden_request(user.name, attrs, reason)
            return await self.serve(request, attrs)
        except errors.StatusError as e:
            return _status(e)

    async def _authenticate(self, request: web.Request) -> UserInfo:
        peer: bytes | None = None
        sslobj = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
        if sslobj is not None:
            peer = sslobj.getpeercert(binary_form=True)
        try:
            return await authenticate(self.auth_config(), peer, request.headers, self.tokens)
        except Unauthorized as e:
            log.debug("unauthorized request to %s: %s", request.path, e)
            raise errors.unauthorized() from None

    def attributes(self, request: web.Request) -> RequestAttributes:
        """kube's RequestInfo for this group: a resource request under ``/apis/metrics.k8s.io/v1beta1``."""
        path = request.path
        method = request.method.upper()
        verb = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete"}.get(method, method.lower())
        if not path.startswith(PREFIX + "/"):
            return RequestAttributes(verb, path, False)
        parts = [p for p in path[len(PREFIX) + 1:].split("/") if p]
        ns = ""
        if len(parts) >= 2 and parts[0] == "namespaces":
            ns, parts = parts[1], parts[2:]
            if not parts:  # /namespaces/{ns}: the namespace itself, not ours
                return RequestAttributes(verb, path, True, api.GROUP, api.VERSION, "namespaces", "", ns)
        resource = parts[0] if parts else ""
        name = parts[1] if len(parts) > 1 else ""
        if method in ("GET", "HEAD") and not name:
            verb = "watch" if request.query.get("watch", "") in ("1", "true", "True") else "list"
        elif method == "DELETE" and not name:
            verb = "deletecollection"
        return RequestAttributes(verb, path, True, api.GROUP, api.VERSION, resource, ns, name)

    async def serve(self, request: web.Request, a: RequestAttributes) -> web.StreamResponse:
        if not a.is_resource_request:
            return self.non_resource(request)
        known = {"nodes": False, "pods": True}
        parts = [p for p in request.path[len(PREFIX) + 1:].split("/") if p]
        if a.resource not in known or (a.namespace and not known[a.resource]) or len(parts) > (4 if a.namespace
                                                                                              else 2):
            raise _not_found()
        if a.verb not in ("get", "list"):
            raise errors.method_not_allowed()
        output = _accepts(request.headers.get("Accept", ""))
        query = request.query
        if a.resource == "nodes":
            objs, single = self.node_objects(a, query)
        else:
            objs, single = self.pod_objects(a, query)
        if output == "Table":
            listed = [objs] if single else [{"kind": objs["kind"].removesuffix("List"), "apiVersion": api.API_VERSION,
                                             **o} for o in objs["items"]]
            return _json(api.table(listed, include_object=query.get("includeObject", "Metadata")))
        return _json(objs)

    # -- nodes --------------------------------------------------------------------------------
    def _selectors(self, query: Mapping[str, str]) -> tuple[LabelSelector, FieldSelector]:
        """The list's selectors; a malformed one is 400 (:class:`SelectorError` is a StatusError)."""
        return parse_label_selector(query.get("labelSelector")), parse_field_selector(query.get("fieldSelector"))

    def node_objects(self, a: RequestAttributes, query: Mapping[str, str]) -> tuple[Any, bool]:
        now = self.clock()
        if a.name:
            node = self.nodes.get(a.name)
            if node is None:
                raise errors.not_found_error("nodes", "", a.name)
            u = self.storage.node_usage(a.name)
            if u is None:
                raise errors.not_found_error("nodemetrics", api.GROUP, a.name)
            return api.node_metrics(u, (node.get("metadata") or {}).get("labels"), now), True
        ls, fs = self._selectors(query)
        items = []
        for node in self.nodes.list():
            m = node.get("metadata") or {}
            if not ls.matches(m.get("labels") or {}) or not fs.matches(_meta_fields(node, False)):
                continue
            u = self.storage.node_usage(m.get("name", ""))
            if u is not None:
                items.append((u, m.get("labels")))
        return api.node_metrics_list(items, now), False

    # -- pods ---------------------------------------------------------------------------------
    def pod_objects(self, a: RequestAttributes, query: Mapping[str, str]) -> tuple[Any, bool]:
        now = self.clock()
        if a.name:
            pod = self.pods.get(a.name, a.namespace)
            if pod is None:
                raise errors.not_found_error("pods", "", a.name)
            u = self.storage.pod_usage(a.namespace, a.name)
            if u is None:
                raise errors.not_found_error("podmetrics", api.GROUP, f"{a.namespace}/{a.name}")
            return api.pod_metrics(u, (pod.get("metadata") or {}).get("labels"), now), True
        ls, fs = self._selectors(query)
        items = []
        for pod in self.pods.list(a.namespace or None):
            m = pod.get("metadata") or {}
            if not ls.matches(m.get("labels") or {}) or not fs.matches(_meta_fields(pod, True)):
                continue
            u = self.storage.pod_usage(m.get("namespace", ""), m.get("name", ""))
            if u is not None:
                items.append((u, m.get("labels")))
        return api.pod_metrics_list(items, now), False

    # -- discovery and health -----------------------------------------------------------------
    def non_resource(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed()
        if path in ("/healthz", "/livez", "/readyz"):
            return self.health(path, "verbose" in request.query)
        if path == "/apis":
            if _accepts(request.headers.get("Accept", "")) == "APIGroupDiscoveryList":
                r = _json(api.api_group_discovery())
                r.headers["Content-Type"] = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
                return r
            return _json(api.api_group_list())
        if path == f"/apis/{api.GROUP}":
            return _json(api.api_group())
        if path == PREFIX:
            return _json(api.api_resource_list())
        if path == "/openapi/v3":
            return _json(openapi.index())
        if path == f"/openapi/v3/{openapi.PATH}":
            body, etag = openapi.document()
            r = web.Response(body=body, content_type="application/json")
            r.headers["Etag"] = f'"{etag}"'
            return r
        raise _not_found()

    def checks(self, path: str) -> list[tuple[str, str]]:
        """(name, failure) of the endpoint's checks; failure "" when it passes."""
        out = [("ping", "")]
        if path in ("/livez", "/healthz"):
            last = self.last_tick()
            late = last and self.clock() - last > 1.5 * self.resolution
            out.append(("metric-collection-timely", "metric collection didn't finish on time" if late else ""))
        if path in ("/readyz", "/healthz"):
            out.append(("metric-storage-ready", "" if self.storage.ready() else "no metrics to serve"))
            out.append(("metric-informer-sync", "" if self.synced() else "cache for node informer has not synced"))
        return out

    def health(self, path: str, verbose: bool) -> web.Response:
        checks = self.checks(path)
        failed = [n for n, f in checks if f]
        what = path.lstrip("/")
        if not failed and not verbose:
            return web.Response(text="ok", content_type="text/plain")
        lines = [f"[-]{n} failed: reason withheld" if f else f"[+]{n} ok" for n, f in checks]
        lines.append(f"{what} check failed" if failed else f"{what} check passed")
        return web.Response(status=500 if failed else 200, text="\n".join(lines) + "\n", content_type="text/plain")
