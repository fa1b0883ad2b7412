"""``pods/{name}/proxy/{path}`` and ``services/{name}/proxy/{path}``: the API server as an HTTP
proxy to a pod or to one endpoint of a service, as kube-apiserver's ``ProxyREST`` connecters
(``pkg/registry/core/pod/rest/subresources.go``, ``pkg/registry/core/service/proxy.go``) with
apimachinery's ``UpgradeAwareHandler`` and its rewriting ``Transport``
(``k8s.io/apimachinery/pkg/util/proxy``).

Where a request goes:

- the name is ``name``, ``name:port`` or ``scheme:name:port`` (scheme ``http`` or ``https``;
  anything else is 400 ``invalid pod request "x:y:z:w"``, kube's ``SplitSchemeNamePort``);
- a pod (``pod.ResourceLocation``): its first IP (``status.podIPs[0]``), which must be a global
  unicast address (none, loopback, link-local: 400 ``address not allowed``), and the port given,
  else the first ``containerPort`` of its containers, else none (the scheme's). The port is not
  looked up among the container ports' names: kube passes it to the dialer as it is, which
  knows only ``/etc/services`` names (``http`` is 80); an unknown name is Go's ``unknown port``;
- a service (``REST.ResourceLocation``, on EndpointSlices since kube 1.35): a port number is
  first turned into that service port's name (no such port: 503 ``no service port 81 found for
  service "web"``); then among the service's EndpointSlices (label
  ``kubernetes.io/service-name``; none at all: 503 ``no endpoints available for service "web"``)
  every ready endpoint with a port of that name is a candidate, and one is picked at random
  (none: 503 ``no endpoints available for service "web:80"``). An ExternalName service has no
  slices, so it answers the same 503. Endpoints at loopback or link-local addresses are not
  proxied to (400 ``address not allowed`` when only such are ready): kube's EndpointSlice
  validation refuses them, k8py's allows loopback for its own ``kubernetes`` Service, and the
  proxy must not reach the API server's machine.

What is sent (``UpgradeAwareHandler.ServeHTTP``, Go's ``ReverseProxy``): any of GET, POST, PUT,
PATCH, DELETE, HEAD and OPTIONS, to the path after ``/proxy`` (kube's ``PodProxyOptions`` /
``ServiceProxyOptions`` ``path``, cleaned as Go's ``path.Join``, a trailing slash kept) with the
query as it came and the body streamed. A GET or HEAD with no path at all is answered ``301`` to
the same URL with a ``/`` added (kube's hack for issue 4958). The client's headers go on except the
hop-by-hop ones (and those ``Connection`` names), its ``Authorization`` (kube's authentication
filter removes it once the user is known) and ``Impersonate-*`` headers; ``Host`` is the client's;
``X-Forwarded-For`` gets the client's address and ``X-Forwarded-Uri`` the path as the client
asked it. The answer comes back with its status, its headers but the hop-by-hop and CORS ones
(``Access-Control-Allow-*``: kube's ``corsRemovingTransport``), its body streamed; except that

- a ``Location`` pointing at the backend itself (no host, the backend's address or the client's
  ``Host``, and an absolute path) is rewritten to go through the proxy again
  (``/api/v1/namespaces/ns/services/web:80/proxy/login``), and
- a ``text/html`` body (plain, gzip or deflate) has the same rewriting applied to its links
  (``href``, ``src``, ``action``... of kube's ``atomsToAttrs``), as kube still does.

A backend that cannot be reached is 503 ``error trying to reach service: dial tcp
10.244.0.7:8080: connect: connection refused``. A WebSocket upgrade is opened to the backend with
the client's subprotocols and its messages relayed both ways; any other upgrade (SPDY/3.1) is
sent on and the connections piped once the backend switched protocols; a refused upgrade's
answer is passed back.

Before any of that the request is a CONNECT (kube's ``ConnectResource``): a ``dryRun`` parameter
is 400, then the options object passes admission (mutating, then validating) with the path as a
mutating webhook may change it, and only then is the pod or service read. RBAC sees the request
as ``get``/``create``/``update``/``patch``/``delete`` on ``pods/proxy`` or ``services/proxy``.

The API server connects to pod and endpoint addresses directly, as kube-apiserver on a node in
the cluster network; ``ResourceAPI.proxy_dial`` (when set) maps such an address to the one to
connect to (the tests' backends listen on loopback, which a pod address may not be).
"""

from __future__ import annotations

import gzip
import ipaddress
import os
import posixpath
import random
import socket
import ssl
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import yarl
from aiohttp import web

from k8py.api import errors
from k8py.api.registry import KindInfo
from k8py.api.validation.meta import go_quote
from k8py.apiserver import spdyproxy
from k8py.apiserver.context import Ctx
from k8py.apiserver.kubeletproxy import (
    MAX_STREAM_MESSAGE,
    admit_connect,
    answer_websocket,
    is_websocket,
    pipe,
    refuse_dry_run,
)

if TYPE_CHECKING:
    from k8py.apiserver.rest import ResourceAPI

__all__ = ["PROXY_METHODS", "Location", "ProxyDial", "dial_error", "rewrite_html", "rewrite_url", "serve",
           "split_scheme_name_port"]

Obj = dict[str, Any]
ProxyDial = Callable[[str, int], tuple[str, int]]

# kube's proxyMethods for pods/proxy and services/proxy
PROXY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
DIAL_TIMEOUT = 30.0  # kube's proxy transport dialer
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Go's ReverseProxy: hop-by-hop headers, never passed on either way
_HOP_BY_HOP = frozenset({"connection", "proxy-connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "te", "trailer", "transfer-encoding", "upgrade"})
_CORS = frozenset({"access-control-allow-credentials", "access-control-allow-headers",
                   "access-control-allow-methods", "access-control-allow-origin"})
# kube's atomsToAttrs: which attributes of which tags hold URLs the HTML rewriting fixes
HTML_URL_ATTRS: dict[str, frozenset[str]] = {
    "a": frozenset({"href"}), "applet": frozenset({"codebase"}), "area": frozenset({"href"}),
    "audio": frozenset({"src"}), "base": frozenset({"href"}), "blockquote": frozenset({"cite"}),
    "body": frozenset({"background"}), "button": frozenset({"formaction"}), "command": frozenset({"icon"}),
    "del": frozenset({"cite"}), "embed": frozenset({"src"}), "form": frozenset({"action"}),
    "frame": frozenset({"longdesc", "src"}), "head": frozenset({"profile"}), "html": frozenset({"manifest"}),
    "iframe": frozenset({"longdesc", "src"}), "img": frozenset({"longdesc", "src", "usemap"}),
    "input": frozenset({"src", "usemap", "formaction"}), "ins": frozenset({"cite"}), "link": frozenset({"href"}),
    "object": frozenset({"classid", "codebase", "data", "usemap"}), "q": frozenset({"cite"}),
    "script": frozenset({"src"}), "source": frozenset({"src"}), "video": frozenset({"poster", "src"}),
}


# --------------------------------------------------------------------------- where to


def split_scheme_name_port(id_: str) -> tuple[str, str, str] | None:
    """kube's ``SplitSchemeNamePort``: ``name``, ``name:port`` or ``scheme:name:port`` with scheme
    ``http`` or ``https``; None when invalid."""
    parts = id_.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        return None
    if not name or scheme not in ("", "http", "https"):
        return None
    return scheme, name, port


@dataclass(frozen=True, slots=True)
class Location:
    """Where a proxy request goes: scheme (empty: http), the backend's address and port (empty:
    the scheme's)."""

    scheme: str
    host: str
    port: str

    @property
    def netloc(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{h}:{self.port}" if self.port else h

    def dial_port(self) -> int:
        """The port to dial: a number, a name from /etc/services (as Go's dialer looks it up), or
        the scheme's; an unknown name is Go's dial error."""
        if not self.port:
            return 443 if self.scheme == "https" else 80
        if self.port.isdigit():
            return int(self.port)
        try:
            return socket.getservbyname(self.port, "tcp")
        except OSError:
            raise errors.service_unavailable(f"error trying to reach service: dial tcp: lookup tcp/{self.port}: "
                                             "unknown port") from None


def _is_global_unicast(ip: str) -> bool:
    """Go's ``net.IP.IsGlobalUnicast``: not unspecified, loopback, multicast, link-local or the
    IPv4 broadcast address (private ranges are global unicast)."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return not (a.is_unspecified or a.is_loopback or a.is_multicast or a.is_link_local
                or a == ipaddress.IPv4Address("255.255.255.255"))


async def pod_location(api: ResourceAPI, kind: KindInfo, ns: str | None, id_: str) -> Location:
    """kube's ``pod.ResourceLocation``."""
    parts = split_scheme_name_port(id_)
    if parts is None:
        raise errors.bad_request(f"invalid pod request {go_quote(id_)}")
    scheme, name, port = parts
    pod = await api.objects.get(kind, ns, name)
    if not port:
        for c in (pod.get("spec") or {}).get("containers") or []:
            ports = c.get("ports") or []
            if ports:
                port = str(ports[0].get("containerPort", ""))
                break
    ips = (pod.get("status") or {}).get("podIPs") or []
    ip = str((ips[0] or {}).get("ip") or "") if ips else ""
    if not _is_global_unicast(ip):
        raise errors.bad_request("address not allowed")
    return Location(scheme, ip, port)


def _ready(endpoint: Obj) -> bool:
    ready = (endpoint.get("conditions") or {}).get("ready")
    return ready is None or ready is True  # unset is ready (EndpointConditions)


async def service_location(api: ResourceAPI, kind: KindInfo, ns: str | None, id_: str) -> Location:
    """kube's service ``REST.ResourceLocation`` (on EndpointSlices)."""
    parts = split_scheme_name_port(id_)
    if parts is None:
        raise errors.bad_request(f"invalid service request {go_quote(id_)}")
    scheme, name, port_name = parts
    number = port_name.lstrip("+-")
    if number.isdigit() and number.isascii():  # strconv.ParseInt: a number names the service port
        n = int(port_name)
        svc = await api.objects.get(kind, ns, name)
        for p in (svc.get("spec") or {}).get("ports") or []:
            if p.get("port") == n:
                port_name = str(p.get("name") or "")
                break
        else:
            raise errors.service_unavailable(f"no service port {n} found for service {go_quote(name)}")
    slice_kind = api.registry.by_resource("discovery.k8s.io", "v1", "endpointslices")
    assert slice_kind is not None
    page = await api.objects.list(slice_kind, ns, match=lambda s: (
        (s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL) == name)
    if not page.items:
        raise errors.service_unavailable(f"no endpoints available for service {go_quote(name)}")
    candidates: list[tuple[str, str]] = []
    for s in page.items:
        if s.get("addressType") not in ("IPv4", "IPv6"):
            continue
        for p in s.get("ports") or []:
            if (p.get("name") or "") != port_name or not isinstance(p.get("port"), int):
                continue
            candidates += [(str(e["addresses"][0]), str(p["port"])) for e in s.get("endpoints") or []
                           if _ready(e) and e.get("addresses")]
    if not candidates:
        raise errors.service_unavailable(f"no endpoints available for service {go_quote(id_)}")
    # Deviation, for kube's guarantee: kube's EndpointSlice validation refuses loopback and
    # link-local addresses so that this proxy never reaches the API server's own machine (an
    # etcd on loopback); k8py's allows loopback (its "kubernetes" Service), so the proxy refuses
    # them here, with the pod proxy's words.
    candidates = [c for c in candidates if _is_global_unicast(c[0])]
    if not candidates:
        raise errors.bad_request("address not allowed")
    host, port = random.choice(candidates)  # kube spreads requests over the ready endpoints
    return Location(scheme, host, port)


# --------------------------------------------------------------------------- paths and rewriting


def go_path_join(*elems: str) -> str:
    """Go's ``path.Join``: the non-empty elements joined by slashes and cleaned."""
    joined = "/".join(e for e in elems if e)
    if not joined:
        return ""
    cleaned = posixpath.normpath(joined)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def join_preserving_trailing_slash(*elems: str) -> str:
    """apimachinery's ``JoinPreservingTrailingSlash``."""
    result = go_path_join(*elems)
    if elems and elems[-1].endswith("/") and not result.endswith("/"):
        result += "/"
    return result


def escape_path(path: str) -> str:
    """Go's ``url.URL.EscapedPath`` for a path that has no raw form."""
    return quote(path, safe="/$&+,:;=@")


def rewrite_url(target: str, backend: str, request_host: str, prepend: str) -> str:
    """kube's ``Transport.rewriteURL``: a URL to the backend itself (no host, the backend's
    ``host:port`` or the client's ``Host``) with an absolute path goes through the proxy again
    (``prepend`` before its path, unless it is there already); any other is left as it is."""
    try:
        u = urlsplit(target)
    except ValueError:
        return target
    if (u.netloc and u.netloc not in (backend, request_host)) or not u.path.startswith("/"):
        return target
    scheme, netloc = u.scheme, u.netloc
    if netloc != request_host:  # the proxy's own scheme and host: none (kube's request has no host)
        scheme, netloc = "", ""
    path = u.path
    if not path.startswith(prepend):
        path = go_path_join(prepend, u.path) + ("/" if u.path.endswith("/") else "")
    return urlunsplit((scheme, netloc, path, u.query, u.fragment))


def _go_escape(s: str) -> str:
    """Go's ``html.EscapeString`` (as ``Token.String`` writes attribute values)."""
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\r", "&#13;"))


class _Rewriter(HTMLParser):
    """The tokens of an HTML document written back as kube's ``rewriteHTML`` does: start tags
    re-serialized with the URL attributes rewritten, everything else as it came."""

    def __init__(self, rewrite: Callable[[str], str]) -> None:
        super().__init__(convert_charrefs=False)
        self.rewrite = rewrite
        self.out: list[str] = []

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]], end: str) -> None:
        urls = HTML_URL_ATTRS.get(tag, frozenset())
        parts = [_go_escape(tag)]
        for k, v in attrs:
            value = v or ""
            if k in urls:
                value = self.rewrite(value)
            parts.append(f'{k}="{_go_escape(value)}"')
        self.out.append("<" + " ".join(parts) + end)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, attrs, ">")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, attrs, "/>")

    def handle_endtag(self, tag: str) -> None:
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.out.append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        self.out.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.out.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.out.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.out.append(f"<![{data}]>")


def rewrite_html(body: str, rewrite: Callable[[str], str]) -> str:
    p = _Rewriter(rewrite)
    p.feed(body)
    p.close()
    return "".join(p.out)


def rewrite_html_body(body: bytes, encoding: str, rewrite: Callable[[str], str]) -> bytes | None:
    """A ``text/html`` body with its links rewritten, encoded as it came (``gzip``, ``deflate``
    (raw DEFLATE, as Go's compress/flate) or none); None for another encoding, or a body that
    does not decode (left alone)."""
    try:
        if encoding == "gzip":
            raw = gzip.decompress(body)
        elif encoding == "deflate":
            raw = zlib.decompress(body, -15)
        elif encoding == "":
            raw = body
        else:
            return None
    except (OSError, EOFError, zlib.error):
        return None  # a body that does not decode as it says is passed on as it is
    out = rewrite_html(raw.decode("utf-8", "surrogateescape"), rewrite).encode("utf-8", "surrogateescape")
    if encoding == "gzip":
        return gzip.compress(out)
    if encoding == "deflate":
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(out) + c.flush()
    return out


# --------------------------------------------------------------------------- the handler


def options_path(ctx: Ctx) -> str:
    """The options' ``path`` as kube's ``getRequestOptions`` sets it: the request path's parts
    after ``proxy``, with a leading slash, and a trailing one when the request had it."""
    parts = ctx.info.parts
    p = "/".join(parts[3:])
    if p and not p.startswith("/"):
        p = "/" + p
    if ctx.request.path.endswith("/") and not p.endswith("/"):
        p += "/"
    return p


def _options_kind(kind: KindInfo) -> str:
    return "PodProxyOptions" if kind.kind == "Pod" else "ServiceProxyOptions"


async def serve(api: ResourceAPI, ctx: Ctx, kind: KindInfo, ns: str | None, name: str) -> web.StreamResponse:
    """``pods/{name}/proxy[/path]`` and ``services/{name}/proxy[/path]``."""
    req = ctx.request
    if req.method not in PROXY_METHODS:
        raise errors.method_not_allowed()
    refuse_dry_run(ctx)
    opts: Obj = {"kind": _options_kind(kind), "apiVersion": "v1"}
    sub_path = options_path(ctx)
    if sub_path:
        opts["path"] = sub_path  # omitempty
    await admit_connect(api, ctx, kind, ns or "", name, "proxy", opts)
    path = opts.get("path")
    if path is not None and not isinstance(path, str):
        raise errors.internal_error(f"json: cannot unmarshal {type(path).__name__} into Go struct field "
                                    f"{opts['kind']}.path of type string")
    if kind.kind == "Pod":
        loc = await pod_location(api, kind, ns, name)
    else:
        loc = await service_location(api, kind, ns, name)
    location_path = join_preserving_trailing_slash("", path or "")
    return await _proxy(api, ctx, loc, location_path)


def _request_headers(req: web.Request) -> list[tuple[str, str]]:
    named = {t.strip().lower() for v in req.headers.getall("Connection", []) for t in v.split(",")}
    out = [(k, v) for k, v in req.headers.items()
           if (low := k.lower()) not in _HOP_BY_HOP and low not in named and low != "authorization"
           and not low.startswith("impersonate-") and low != "x-forwarded-for"]
    prior = ", ".join(req.headers.getall("X-Forwarded-For", []))
    peer = req.remote or ""
    if peer:
        out.append(("X-Forwarded-For", f"{prior}, {peer}" if prior else peer))
    elif prior:
        out.append(("X-Forwarded-For", prior))
    return out


def _dial(api: ResourceAPI, loc: Location) -> tuple[str, int]:
    port = loc.dial_port()
    dial = api.proxy_dial
    return dial(loc.host, port) if dial is not None else (loc.host, port)


async def _proxy(api: ResourceAPI, ctx: Ctx, loc: Location, location_path: str) -> web.StreamResponse:
    req = ctx.request
    out_path = location_path
    if not out_path.endswith("/") and req.path.endswith("/"):
        out_path += "/"
    if not out_path and req.method in ("GET", "HEAD"):
        # kube: a proxy URL without a path is sent to the same with a slash (issue 4958)
        query = f"?{req.query_string}" if req.query_string else ""
        return web.Response(status=301, headers={"Location": req.path + "/" + query})
    # what the path before the backend's path is in the client's URL (kube's PathPrepend)
    suffix = location_path
    if req.path.endswith("/") and not suffix.endswith("/"):
        suffix += "/"
    prepend = req.path[:-len(suffix)] if suffix and req.path.endswith(suffix) else req.path
    headers = _request_headers(req)
    forwarded_uri = go_path_join(prepend, escape_path(out_path)) + ("/" if out_path.endswith("/") else "")
    headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-uri"] + [("X-Forwarded-Uri", forwarded_uri)]
    host, port = _dial(api, loc)
    scheme = loc.scheme or "http"
    dial_netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    target = escape_path(out_path) + (f"?{req.query_string}" if req.query_string else "")
    url = yarl.URL(f"{scheme}://{dial_netloc}{target}", encoded=True)
    if req.headers.get("Upgrade") and "upgrade" in req.headers.get("Connection", "").lower():
        return await _upgrade(ctx, loc, url, host, port, target, headers)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=DIAL_TIMEOUT, sock_read=None)
    connector = aiohttp.TCPConnector(ssl=False, force_close=True)  # kube: pod and service backends unverified
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False, connector=connector,
                                     skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type")) as session:
        data = req.content if req.body_exists else None
        try:
            upstream = await session.request(req.method, url, headers=headers, data=data, allow_redirects=False)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise errors.service_unavailable(f"error trying to reach service: {dial_error(loc, e)}") from None
        async with upstream:
            return await _respond(req, upstream, loc, prepend)


def dial_error(loc: Location, e: BaseException) -> str:
    """Go's dial error for the backend's own address (not where a test maps it): a pod network
    this server has no route to is ``no route to host`` or, unanswered, ``i/o timeout``."""
    if isinstance(e, aiohttp.ConnectionTimeoutError | TimeoutError):
        return f"dial tcp {loc.netloc}: i/o timeout"
    if isinstance(e, aiohttp.ClientConnectorError):
        err = e.os_error
        why = os.strerror(err.errno).lower() if err.errno else (err.strerror or str(err))
        return f"dial tcp {loc.netloc}: connect: {why}"
    return str(e) or type(e).__name__


async def _respond(req: web.Request, upstream: aiohttp.ClientResponse, loc: Location,
                   prepend: str) -> web.StreamResponse:
    named = {t.strip().lower() for v in upstream.headers.getall("Connection", []) for t in v.split(",")}
    headers = [(k, v) for k, v in upstream.headers.items()
               if (low := k.lower()) not in _HOP_BY_HOP and low not in named and low not in _CORS]
    request_host = req.host

    def rewrite(target: str) -> str:
        return rewrite_url(target, loc.netloc, request_host, prepend)

    location = upstream.headers.get("Location")
    ctype = upstream.headers.get("Content-Type", "").split(";", 1)[0].strip()
    if location:
        headers = [(k, rewrite(v) if k.lower() == "location" else v) for k, v in headers]
    elif ctype == "text/html" and req.method != "HEAD":
        body = await upstream.read()
        new = rewrite_html_body(body, upstream.headers.get("Content-Encoding", ""), rewrite)
        whole = web.Response(status=upstream.status, reason=upstream.reason, body=body if new is None else new)
        for k, v in headers:
            if k.lower() != "content-length":
                whole.headers.add(k, v)
        return whole
    resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    for k, v in headers:
        resp.headers.add(k, v)
    await resp.prepare(req)
    await pipe(upstream, resp)
    return resp


async def _upgrade(ctx: Ctx, loc: Location, url: yarl.URL, host: str, port: int, target: str,
                   headers: list[tuple[str, str]]) -> web.StreamResponse:
    """An upgrade request: a WebSocket opened to the backend and relayed message by message;
    any other (SPDY/3.1) sent on and piped as bytes once the backend switched protocols."""
    req = ctx.request
    if not is_websocket(req):
        passed = [(k, v) for k, v in headers if k.lower() not in ("host", "content-length")]
        return await spdyproxy.relay(req, None if loc.scheme != "https" else _insecure_tls(), host, port, target,
                                     DIAL_TIMEOUT, headers=passed)
    offered = [p.strip() for p in req.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    passed = [(k, v) for k, v in headers if not k.lower().startswith("sec-websocket-")
              and k.lower() not in ("host", "content-length")]
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=DIAL_TIMEOUT, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(ssl=False)) as session:
        ws_url = url.with_scheme("wss" if loc.scheme == "https" else "ws")
        try:
            upstream = await session.ws_connect(ws_url, protocols=offered, headers=passed, autoping=True,
                                                max_msg_size=MAX_STREAM_MESSAGE)
        except aiohttp.WSServerHandshakeError:
            # the backend refused the upgrade: its answer to the same request without it goes back
            plain = [(k, v) for k, v in passed if k.lower() not in ("connection", "upgrade")]
            try:
                answer = await session.request(req.method, url, headers=plain, allow_redirects=False)
            except (aiohttp.ClientError, OSError) as e:
                raise errors.service_unavailable(f"error trying to reach service: {dial_error(loc, e)}") from None
            async with answer:
                return web.Response(status=answer.status, body=await answer.read(),
                                    headers={"Content-Type": answer.headers.get("Content-Type", "text/plain")})
        except (aiohttp.ClientError, OSError) as e:
            raise errors.StatusError(500, "", f"error dialing backend: {dial_error(loc, e)}") from None
        return await answer_websocket(req, upstream)


def _insecure_tls() -> ssl.SSLContext:
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c

