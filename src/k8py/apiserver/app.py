"""The HTTP application: request pipeline authn -> authz -> (admission, in handlers) -> REST.

aiohttp was chosen because it gives, in one well-kept library: TLS with the
peer certificate visible to authentication (``transport.get_extra_info``),
long-lived chunked streaming for watches, WebSocket upgrades for
exec/attach/port-forward later, and a fast C HTTP parser. See
docs/architecture.md for the measurement.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from k8py import __version__
from k8py.api import errors
from k8py.api.registry import Registry
from k8py.apiserver import discovery, health, requestinfo, watch
from k8py.apiserver.authn import AUTHN_AUDIT_ANNOTATIONS
from k8py.apiserver.context import Ctx
from k8py.apiserver.negotiate import Output, encode, negotiate_output
from k8py.apiserver.rest import ResourceAPI
from k8py.apiserver.secretsencrypt import PATH_PREFIX as SECRETS_ENCRYPT_PATH
from k8py.apiserver.serviceaccounts import DISCOVERY_PATHS

if TYPE_CHECKING:
    from k8py.apiserver.aggregator import Aggregator
    from k8py.apiserver.audit import AuditLog
    from k8py.apiserver.authn import Authenticator, UserInfo
    from k8py.apiserver.authz import AuthorizerLike, RequestAttributes
    from k8py.apiserver.crd_controller import CRDController
    from k8py.apiserver.secretsencrypt import SecretsEncryption
    from k8py.apiserver.serviceaccounts import ServiceAccountTokens

log = logging.getLogger("k8py.apiserver")

MAX_HEADER_BYTES = 1 << 20
CTX_KEY = web.RequestKey("k8py.ctx", Ctx)
KUBE_VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0+k8py"}
DISCOVERY_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
DISCOVERY_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def version_info() -> dict[str, str]:
    return {
        **KUBE_VERSION,
        "gitCommit": f"k8py-{__version__}",
        "gitTreeState": "clean",
        "buildDate": "2026-11-26T00:00:00Z",
        "goVersion": f"python{platform.python_version()}",
        "compiler": platform.python_implementation().lower(),
        "platform": f"linux/{'amd64' if platform.machine() in ('x86_64', 'AMD64') else platform.machine()}",
    }


def status_response(err: errors.StatusError) -> web.Response:
    body, ct = encode(err.status(), Output())
    resp = web.Response(body=body, status=err.code, content_type=ct)
    for k, v in err.headers.items():
        resp.headers[k] = v
    if err.code == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="kubernetes-master"'
    return resp


class APIServerApp:
    def __init__(
        self,
        api: ResourceAPI,
        registry: Registry,
        authenticator: Authenticator | None,
        authorizer: AuthorizerLike | None,
        server_address: str,
    ) -> None:
        self.api = api
        self.registry = registry
        self.authn = authenticator
        self.authz = authorizer
        self.server_address = server_address
        self.discovery = discovery.DiscoveryCache(registry)
        self.sa_tokens: ServiceAccountTokens | None = None  # set by server.build
        self.ready = False
        # unauthenticated GET endpoints of k8py's own, by path (the sealed server bootstrap data: serverjoin.py)
        self.extra_public: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}
        self.audit: AuditLog | None = None  # --audit-policy-file (apiserver/audit.py); set by server.start
        self.secrets_encrypt: SecretsEncryption | None = None  # `k8py secrets-encrypt`'s endpoints
        self.aggregator: Aggregator | None = None  # APIServices backed by Services (apiserver/aggregator.py)
        self.crds: CRDController | None = None  # CustomResourceDefinitions (apiserver/crd_controller.py)

    def build(self) -> web.Application:
        # Request bodies are read by options.read_body with kube's 3 MiB limit. Request lines and
        # headers may be as long as Go's http server allows (1 MiB, DefaultMaxHeaderBytes): long
        # label selectors and field selectors are valid requests, not a plain-text 400.
        app = web.Application(client_max_size=4 * 1024 * 1024,
                              handler_args={"max_line_size": MAX_HEADER_BYTES, "max_field_size": MAX_HEADER_BYTES})
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        # aiohttp's shutdown signal comes once the listeners are closed, before it waits for
        # the requests in progress: open watches end then instead of holding the shutdown
        app.on_shutdown.append(self._end_watches)
        if self.audit is not None:
            self.audit.install(app)
        return app

    async def _end_watches(self, _app: web.Application) -> None:
        watch.end_watches(self.api)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if self.audit is not None:  # the audit log records the request around all of it
            return await self.audit.serve(request, self._answer)
        return await self._answer(request)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except errors.StatusError as e:
            resp = status_response(e)
            ctx = request.get(CTX_KEY)
            if ctx is not None:  # an error answer still carries the request's warnings, as kube's does
                ResourceAPI.add_warnings(ctx, resp)
            return resp
        except web.HTTPException:
            raise
        except ConnectionResetError:
            raise
        except Exception as e:  # noqa: BLE001 - an internal error must still answer in kube's form
            log.error("internal error on %s %s: %s\n%s", request.method, request.path, e, traceback.format_exc())
            if self.audit is not None:  # kube's Panic stage
                self.audit.panicked(request, e)
            return status_response(errors.internal_error(str(e) or type(e).__name__))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        extra = self.extra_public.get(path) if self.extra_public else None
        if extra is not None and request.method == "GET":
            return await extra(request)
        if path.startswith(requestinfo.PUBLIC_PATHS) and request.method in ("GET", "HEAD"):
            return await self.public(request)
        user = await self.authenticate(request)
        requester = user  # the audit log names who asked, and whom they impersonate
        if user is not None and any(h[:12].lower() == "impersonate-" for h in request.headers):
            user = self.impersonate(request, user)
        info = requestinfo.parse(path, request.method, request.query)  # type: ignore[arg-type]
        ctx = Ctx(request, info, user)
        request[CTX_KEY] = ctx
        notes = request.get(AUTHN_AUDIT_ANNOTATIONS)
        if notes:
            ctx.audit_annotations.update(notes)
        if self.audit is not None:
            self.audit.received(ctx, requester)
        self.authorize(ctx)
        if self.aggregator is not None and info.version and info.api_prefix == "apis":
            # kube-aggregator: a group-version of an APIService backed by a Service is its backend's
            remote = self.aggregator.remote_for(info.group, info.version)
            if remote is not None:
                return await self.aggregator.proxy(ctx, remote)
        if info.is_resource_request:
            return await self.api.handle(ctx)
        return await self.non_resource(ctx)

    async def public(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/version"):
            return web.Response(body=orjson.dumps(version_info(), option=orjson.OPT_INDENT_2),
                                content_type="application/json")
        return await health.serve_health(self, request)

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        if self.authn is None:
            return None
        user = self.authn.authenticate(request)
        if user is None and hasattr(self.authn, "authenticate_service_account"):
            # service-account JWTs: read the objects they are bound to (apiserver/serviceaccounts.py)
            user = await self.authn.authenticate_service_account(request)
        if user is None:
            raise errors.unauthorized()
        return user

    def impersonate(self, request: web.Request, user: UserInfo) -> UserInfo:
        """kube's WithImpersonation filter, between authentication and authorization (authz.py)."""
        from k8py.apiserver.authz import impersonate

        return impersonate(user, request.headers, self.authz)

    @staticmethod
    def named_list(ctx: Ctx, attrs: RequestAttributes) -> RequestAttributes:
        """kube's RequestInfoFactory: a list or watch whose field selector requires one
        ``metadata.name`` is authorized with that name (so a ``resourceNames`` rule allows
        ``kubectl get cm x -w``), and the selector's terms go with the attributes (the Node
        authorizer's ``spec.nodeName``). A malformed selector is left for the list handler to refuse."""
        from k8py.api.selectors import SelectorError, parse_field_selector

        try:
            sel = parse_field_selector(ctx.q("fieldSelector"))
        except SelectorError:
            return attrs
        reqs = tuple((r.field, r.operator, r.value) for r in sel.requirements)
        name = sel.requires_exact_match("metadata.name")
        if not name or "/" in name or name in (".", ".."):
            return dataclasses.replace(attrs, field_requirements=reqs)
        return dataclasses.replace(attrs, name=name, field_requirements=reqs)

    def authorize(self, ctx: Ctx) -> None:
        if self.authz is None or ctx.user is None:
            return
        from k8py.apiserver.authz import RequestAttributes, forbidden

        attrs = RequestAttributes.from_request_info(ctx.info)
        if attrs.verb in ("list", "watch") and "fieldSelector" in ctx.request.query:
            attrs = self.named_list(ctx, attrs)
        ok, reason = self.authz.authorize(ctx.user, attrs)
        if self.audit is not None:  # kube's authorization filter annotates the audit event
            ctx.audit_annotations["authorization.k8s.io/decision"] = "allow" if ok else "forbid"
            ctx.audit_annotations["authorization.k8s.io/reason"] = reason
        if not ok:
            raise forbidden(ctx.user.name, attrs, reason)

    # -- non-resource paths -------------------------------------------------------
    async def non_resource(self, ctx: Ctx) -> web.StreamResponse:
        req = ctx.request
        path = req.path.rstrip("/") or "/"
        if path.startswith(SECRETS_ENCRYPT_PATH) and self.secrets_encrypt is not None:
            return await self.secrets_encrypt.handle(ctx)
        if req.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed()
        if path == "/api" or path == "/apis":
            legacy = path == "/api"
            accept = req.headers.get("Accept", "")
            if "apidiscovery.k8s.io" in accept:
                out = negotiate_output(accept)
                if out.transform == "APIGroupDiscoveryList" and out.version in ("v2", "v2beta1"):
                    hit = self.discovery.get(("agg", legacy, out.version),
                                             lambda: discovery.aggregated(self.registry, legacy, out.version,
                                                                          self.remote_versions()))
                    assert hit is not None
                    ct = DISCOVERY_V2 if out.version == "v2" else DISCOVERY_V2BETA1
                    return self.etag_response(req, hit, ct)
            if legacy:
                return web.Response(body=orjson.dumps(discovery.api_versions(self.server_address)),
                                    content_type="application/json")
            hit = self.discovery.get(("groups",), lambda: discovery.api_group_list(self.registry,
                                                                                   self.remote_versions()))
            assert hit is not None
            return self.etag_response(req, hit, "application/json")
        info = ctx.info
        if info.api_prefix:
            if info.version:
                hit = self.discovery.get(("gv", info.group, info.version),
                                         lambda: discovery.api_resource_list(self.registry, info.group,
                                                                             info.version))
            else:
                hit = self.discovery.get(("g", info.group), lambda: discovery.api_group(self.registry, info.group,
                                                                                         self.remote_versions()))
            if hit is None:
                raise errors.StatusError(404, "NotFound", "the server could not find the requested resource",
                                         details={})
            return self.etag_response(req, hit, "application/json")
        if path.startswith("/openapi/v3"):
            return self.openapi_v3(req, path)
        if path.startswith("/openapi/v2"):
            return self.openapi_v2(req)
        if path in DISCOVERY_PATHS and self.sa_tokens is not None:  # OIDC discovery of the token issuer
            return await self.sa_tokens.discovery(path)
        if path == "/":
            paths = sorted({"/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version", "/openapi/v3"}
                           | {f"/apis/{g}" for g in self.registry.groups() if g}
                           | {f"/apis/{g}/{v}" for g, vs in self.registry.groups().items() if g for v in vs}
                           | {p for g, v in (self.aggregator.remote if self.aggregator else ())
                              for p in (f"/apis/{g}", f"/apis/{g}/{v}")})
            return web.Response(body=orjson.dumps({"paths": paths}), content_type="application/json")
        raise errors.StatusError(404, "NotFound", "the server could not find the requested resource", details={})

    def remote_versions(self) -> discovery.Remote:
        """The aggregated group-versions for the discovery documents (apiserver/aggregator_discovery.py)."""
        if self.aggregator is None or self.aggregator.discovery is None:
            return ()
        return self.aggregator.discovery.snapshot()

    def etag_response(self, req: web.Request, hit: tuple[bytes, str], ct: str) -> web.Response:
        body, etag = hit
        if req.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        resp = web.Response(body=body, headers={"ETag": etag, "Vary": "Accept"})
        resp.headers["Content-Type"] = ct
        return resp

    def openapi_v2(self, req: web.Request) -> web.Response:
        """The whole API as one OpenAPI v2 document (``k8py.api.openapi_v2``), in JSON or, for
        ``Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` (kubectl, Helm), in
        gnostic protobuf; both built once and served with an ETag.

        Negotiation as kube-openapi's handler: the Accept clauses by preference, the first one
        that names (or wildcards) JSON or protobuf wins, JSON first; none of them is 406. Kinds
        that are not served have no schema here, so kubectl, which falls back to v2 for kinds the
        v3 documents do not have (``apiVersion: v1, kind: ReplicaSet``), skips client-side
        validation and reports the real problem (``no matches for kind "ReplicaSet" in version
        "v1"``), as against kube-apiserver.
        """
        from k8py.api import openapi_v2

        served = openapi_v2.negotiate(req.headers.get("Accept", ""))
        if served is None:
            raise errors.not_acceptable(f"only application/json and {openapi_v2.PROTOBUF_MEDIA_TYPE} are served "
                                        "for OpenAPI v2")
        if served == openapi_v2.PROTOBUF_MEDIA_TYPE:
            hit = openapi_v2.v2_protobuf(self.registry)
        else:
            hit = openapi_v2.v2_json(self.registry)
        resp = self.etag_response(req, hit, served)
        if resp.status == 200 and "gzip" in req.headers.get("Accept-Encoding", ""):
            resp.enable_compression()
        return resp

    def openapi_v3(self, req: web.Request, path: str) -> web.StreamResponse:
        from k8py.api import openapi

        accept = req.headers.get("Accept", "")
        if accept and "json" not in accept and "*/*" not in accept:
            raise errors.not_acceptable("only application/json is served for OpenAPI v3")
        rest = path[len("/openapi/v3"):].strip("/")
        # the aggregated group-versions' documents, as their backends serve them (aggregator_discovery.py)
        remote = {f"apis/{rv.group}/{rv.version}": rv.openapi for _, rv in self.remote_versions() if rv.openapi}
        if not rest:
            body, etag = openapi.v3_index_bytes(self.registry)
            if remote:
                hit = self.discovery.get(("openapi-v3",), lambda: {"paths": {
                    **orjson.loads(body)["paths"],
                    **{p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={e[1]}"} for p, e in remote.items()}}})
                assert hit is not None
                return self.etag_response(req, hit, "application/json")
            return self.etag_response(req, (body, f'"{etag}"'), "application/json")
        entry = remote.get(rest) or openapi.v3_entry(self.registry, rest)
        if entry is None:
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource",
                                     details={})
        body, etag = entry
        want = req.query.get("hash")
        if want is not None and want != etag:
            # kube-openapi: an outdated hash redirects to the current one
            raise web.HTTPMovedPermanently(f"/openapi/v3/{rest}?hash={etag}")
        resp = self.etag_response(req, (body, f'"{etag}"'), "application/json")
        if want is not None:
            resp.headers["Cache-Control"] = "public, immutable"
            resp.headers["Expires"] = "Fri, 26 Nov 2027 00:00:00 GMT"
        if resp.status == 200 and "gzip" in req.headers.get("Accept-Encoding", ""):
            resp.enable_compression()
        return resp
