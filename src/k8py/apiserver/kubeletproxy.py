"""The API server's way to kubelets: ``pods/log``, ``nodes/proxy``, and the streaming
subresources ``pods/exec``, ``pods/attach`` and ``pods/portforward``.

As kube-apiserver (``pkg/registry/core/pod/rest/log.go``, ``strategy.go``'s ``LogLocation``,
``pkg/kubelet/client``): a log request's ``PodLogOptions`` are decoded and validated (422 with
kube's field errors), the pod is read (404), its container chosen (400 with kube's words when
there are several and none was named, or the name is not the pod's), and when the pod is on a
node the request goes on to that node's kubelet: the Node's address by preferred type
(``InternalIP`` first, then ``InternalDNS``, ``ExternalIP``, ``ExternalDNS``, ``Hostname``) and
``status.daemonEndpoints.kubeletEndpoint.Port`` (10250 when unset), over HTTPS with the API
server's ``apiserver-kubelet-client`` certificate, the kubelet's serving certificate verified
against the cluster CA. The kubelet's answer is streamed back as ``text/plain`` (a follow stays
open until the client or the kubelet closes); an error answer becomes a ``Status`` the way kube's
``GenericHttpResponseChecker`` makes it (400 keeps the kubelet's text, 404 is "the server could
not find the requested resource ( pods/log p)"). A pod not bound to a node has no log yet: kube
answers ``204 No Content`` (an empty log), and so does this.

``nodes/{name}/proxy/{path}`` passes any request through to the kubelet's ``/{path}`` the same way
and answers with the kubelet's status, type and body unchanged, as kube's proxy does.

``pods/{name}/exec``, ``attach`` and ``portforward`` are kube's ``UpgradeAwareHandler`` for
WebSockets (``pkg/registry/core/pod/rest/subresources.go``, ``strategy.go``'s ``streamLocation``):
the options (``PodExecOptions``: ``command``, ``container``, ``stdin``, ``stdout``, ``stderr``
(none by default), ``tty``; ``PodAttachOptions`` the same without a command;
``PodPortForwardOptions``' ``ports``) are decoded, the container is chosen as for logs, a pod on
no node is 400 "pod p does not have a host assigned", and the request goes on to the kubelet's
``/exec/{ns}/{pod}/{container}``, ``/attach/...`` or ``/portForward/{ns}/{pod}`` with kube's
query (``stdin=1``, ``command=...``, ``ports=80,443``). A WebSocket upgrade (GET; besides ``get``
it must be allowed to ``create`` the subresource, as kube-apiserver checks since 1.35) is opened
to the kubelet with the client's subprotocols; when the kubelet accepts, the client's upgrade is
accepted with the subprotocol the kubelet chose and every message is relayed both ways, unchanged,
until either side closes (then the other is closed too). When the kubelet refuses the upgrade
its answer (status, type, body: "container not found", "pod does not exist") goes back to the
client as it is, as kube's proxy passes a failed upgrade through. kubectl's SPDY/3.1 fallback
(``Upgrade: SPDY/3.1``) is passed through as bytes once the kubelet switched protocols
(:mod:`.spdyproxy`); any other request is passed to the kubelet as a plain request and its
answer returned.

``exec``, ``attach``, ``portforward`` and ``nodes/proxy`` are CONNECT requests: as kube's
``ConnectResource``, a ``dryRun`` parameter is a 400, then the options object (``PodExecOptions``,
..., ``NodeProxyOptions``) passes admission (mutating, then validating; :func:`admit_connect`)
before the pod or node is read, and what mutating admission left in it is what is used.
``pods/log`` is a read, without admission.

The connection settings (:class:`KubeletConnection`) come from the composition root
(``cli/process.py``), which sets ``ResourceAPI.kubelet``; without them (an API server started
without its PKI, as in-process tests do) these requests are ``503 ServiceUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from k8py.api import errors
from k8py.api.corev1 import DEFAULT_KUBELET_PORT, KUBELET_ADDRESS_TYPES, kubelet_address, kubelet_port
from k8py.api.registry import KindInfo
from k8py.apiserver import spdyproxy
from k8py.apiserver.context import Ctx

if TYPE_CHECKING:
    from k8py.apiserver.rest import ResourceAPI

__all__ = ["STREAM_SUBRESOURCES", "KubeletConnection", "serve", "serve_stream"]

Obj = dict[str, Any]

PREFERRED_ADDRESS_TYPES = KUBELET_ADDRESS_TYPES
# kube's GenericHttpResponseChecker reads at most this much of an error answer
MAX_ERROR_BODY = 50000
# headers not passed on by the node proxy: hop-by-hop ones, and the client's credentials (the
# kubelet sees the API server's certificate, never the user's token)
_DROP_REQUEST = frozenset({"host", "connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "te",
                           "trailer", "transfer-encoding", "upgrade", "authorization", "cookie", "content-length"})
_DROP_RESPONSE = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
                            "trailer", "upgrade"})


class KubeletConnection:
    """How the API server connects to kubelets: the cluster CA that signs their serving
    certificates, and the API server's client certificate."""

    def __init__(self, ca_file: str, cert_file: str, key_file: str, *, default_port: int = DEFAULT_KUBELET_PORT,
                 connect_timeout: float = 10.0) -> None:
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.default_port = default_port
        self.connect_timeout = connect_timeout
        self._ssl: ssl.SSLContext | None = None

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=self.ca_file)
            ctx.load_cert_chain(self.cert_file, self.key_file)
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl = ctx
        return self._ssl

    def session(self) -> aiohttp.ClientSession:
        # One session a request: log and proxy requests are few and long; nothing to close at shutdown.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout, sock_read=None)
        return aiohttp.ClientSession(timeout=timeout, auto_decompress=False,
                                     connector=aiohttp.TCPConnector(ssl=self.ssl_context(), force_close=True))


# --------------------------------------------------------------------------- PodLogOptions

_INT_PARAMS = ("tailLines", "sinceSeconds", "limitBytes")
_BOOL_PARAMS = ("follow", "previous", "timestamps", "insecureSkipTLSVerifyBackend")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _go_int64(value: str) -> int:
    """``strconv.ParseInt(value, 10, 64)`` with its error text."""
    if re.fullmatch(r"[+-]?\d+", value) is None:
        raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    n = int(value)
    if not -(1 << 63) <= n < (1 << 63):
        raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": value out of range')
    return n


def _query_bool(query: Any, name: str, default: bool = False) -> bool:
    """kube's parameter codec for a bool: false only for "0" and "false"; absent is the default."""
    v = query.get(name)
    if v is None:
        return default
    return v != "0" and v.lower() != "false"


def parse_log_options(query: Any, name: str) -> dict[str, Any]:
    """``PodLogOptions`` from the query as kube's parameter codec decodes them (a bool is false
    only for "0" and "false"; numbers as Go parses them), then validated as
    ``ValidatePodLogOptions`` (422 ``PodLogOptions "<pod>" is invalid: ...``)."""
    opts: dict[str, Any] = {"container": query.get("container", "")}
    for p in _BOOL_PARAMS:
        opts[p] = _query_bool(query, p)
    for p in _INT_PARAMS:
        v = query.get(p)
        opts[p] = None if v is None else _go_int64(v)
    since_time = query.get("sinceTime")
    opts["sinceTime"] = None
    if since_time not in (None, "", "null"):
        if _RFC3339.match(since_time) is None:
            raise errors.bad_request(f'parsing time "{since_time}" as "2006-01-02T15:04:05Z07:00": cannot parse '
                                     f'"{since_time}" as "2006"')
        parsed = dt.datetime.fromisoformat(since_time)
        opts["sinceTime"] = parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # kube sends RFC3339
    errs: list[errors.FieldError] = []
    if opts["tailLines"] is not None and opts["tailLines"] < 0:
        errs.append(errors.invalid("tailLines", opts["tailLines"], "must be greater than or equal to 0"))
    if opts["limitBytes"] is not None and opts["limitBytes"] < 1:
        errs.append(errors.invalid("limitBytes", opts["limitBytes"], "must be greater than 0"))
    if opts["sinceSeconds"] is not None and opts["sinceTime"] is not None:
        errs.append(errors.forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    elif opts["sinceSeconds"] is not None and opts["sinceSeconds"] < 1:
        errs.append(errors.invalid("sinceSeconds", opts["sinceSeconds"], "must be greater than 0"))
    if errs:
        raise errors.invalid_error("PodLogOptions", "", name, errs)
    return opts


def choose_container(pod: Obj, container: str) -> str:
    """kube's ``validateContainer``: the named container must be the pod's; none named is fine
    only when the pod has one container."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    # podutil.VisitContainers' order: init containers, containers, ephemeral containers
    every = [c.get("name", "") for key in ("initContainers", "containers", "ephemeralContainers")
             for c in spec.get(key) or ()]
    if not container:
        regular = spec.get("containers") or []
        if len(regular) == 1:
            return str(regular[0].get("name", ""))
        if not regular:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        raise errors.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                 f"[{' '.join(every)}]")
    if container not in every:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    return container


# --------------------------------------------------------------------------- nodes


def _go_addresses(addresses: list[Obj]) -> str:
    return "[" + " ".join(f"{{{a.get('type', '')} {a.get('address', '')}}}" for a in addresses) + "]"


async def kubelet_location(api: ResourceAPI, node_name: str) -> tuple[str, int]:
    """(host, port) of the kubelet on ``node_name``, as kube's ``NodeConnectionInfoGetter``."""
    node_kind = api.registry.by_resource("", "v1", "nodes")
    assert node_kind is not None
    node = await api.objects.get(node_kind, None, node_name)
    host = kubelet_address(node, PREFERRED_ADDRESS_TYPES)
    if not host:
        addresses = [a for a in (node.get("status") or {}).get("addresses") or [] if isinstance(a, dict)]
        raise errors.StatusError(500, "", f"no preferred addresses found; known addresses: {_go_addresses(addresses)}")
    conn = api.kubelet
    return host, kubelet_port(node, conn.default_port if conn is not None else DEFAULT_KUBELET_PORT)


def _url(host: str, port: int, path: str, query: str = "") -> str:
    h = f"[{host}]" if ":" in host else host
    return f"https://{h}:{port}{path}" + (f"?{query}" if query else "")


def _connection(api: ResourceAPI) -> KubeletConnection:
    if api.kubelet is None:
        raise errors.service_unavailable("this API server has no credentials for kubelets (it was started without "
                                         "its PKI): pods/log and nodes/proxy are not available")
    return api.kubelet


def _checked(code: int, body: bytes, resource: str, name: str) -> errors.StatusError:
    """kube's GenericHttpResponseChecker: a kubelet's error answer as a Status."""
    text = body[:MAX_ERROR_BODY].decode("utf-8", "replace")
    if code == 500:
        return errors.internal_error(text)
    if code == 400:
        return errors.bad_request(text)
    reason, message = "", f"the server responded with the status code {code} but did not return more information"
    generic = {404: ("NotFound", "the server could not find the requested resource"),
               401: ("Unauthorized", "the server has asked for the client to provide credentials"),
               403: ("Forbidden", text),
               405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
               409: ("Conflict", "the server reported a conflict"),
               422: ("Invalid", "the server rejected our request due to an error in our request"),
               429: ("TooManyRequests", ("the server has received too many requests and has asked us to try again "
                                        "later")),
               504: ("Timeout", ("the server was unable to return a response in the time allotted, but may still be "
                                "processing the request"))}
    if code in generic:
        reason, message = generic[code]
    elif code >= 500:
        reason = "InternalError"
        message = f"an error on the server ({json.dumps(text)}) has prevented the request from succeeding"
    return errors.StatusError(code, reason, f"{message} ( {resource} {name})",
                              details={"name": name, "kind": resource})


# --------------------------------------------------------------------------- handlers


async def serve(api: ResourceAPI, ctx: Ctx, kind: KindInfo, ns: str | None, name: str) -> web.StreamResponse:
    """``pods/{name}/log`` (GET) and ``nodes/{name}/proxy/...`` (any method)."""
    if kind.kind == "Pod":
        return await pod_log(api, ctx, kind, ns, name)
    return await node_proxy(api, ctx, kind, name)


async def pod_log(api: ResourceAPI, ctx: Ctx, kind: KindInfo, ns: str | None, name: str) -> web.StreamResponse:
    opts = parse_log_options(ctx.query, name)
    pod = await api.objects.get(kind, ns, name)
    container = choose_container(pod, opts["container"])
    node_name = (pod.get("spec") or {}).get("nodeName") or ""
    if not node_name:
        return web.Response(status=204)  # no node, no log: kube's LocationStreamer without a location
    conn = _connection(api)
    host, port = await kubelet_location(api, node_name)
    params: list[tuple[str, str]] = []
    for p in ("follow", "previous", "timestamps"):
        if opts[p]:
            params.append((p, "true"))
    for p in ("sinceSeconds", "sinceTime", "tailLines", "limitBytes"):
        if opts[p] is not None:
            params.append((p, str(opts[p])))
    pod_ns = pod["metadata"].get("namespace", ns or "")
    url = _url(host, port, f"/containerLogs/{pod_ns}/{name}/{container}", urlencode(params))
    async with conn.session() as session:
        try:
            upstream = await session.get(url)
        except (aiohttp.ClientError, OSError) as e:
            raise errors.StatusError(500, "", f'Get "{url}": {describe_error(e)}') from None
        async with upstream:
            if not 200 <= upstream.status <= 206:
                raise _checked(upstream.status, await upstream.content.read(MAX_ERROR_BODY), "pods/log", name)
            resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
            await resp.prepare(ctx.request)
            await pipe(upstream, resp)
            return resp


async def node_proxy(api: ResourceAPI, ctx: Ctx, kind: KindInfo, name: str) -> web.StreamResponse:
    req = ctx.request
    refuse_dry_run(ctx)
    raw = req.raw_path.split("?", 1)[0]
    marker = f"/nodes/{name}/proxy"
    idx = raw.find(marker)
    sub_path = raw[idx + len(marker):] if idx >= 0 else ""
    # kube's NodeProxyOptions: the path after .../proxy, with a leading slash when not empty
    opts: Obj = {"kind": "NodeProxyOptions", "apiVersion": "v1"}
    if sub_path.strip("/") or sub_path == "/":
        opts["path"] = sub_path if sub_path.startswith("/") else "/" + sub_path
    await admit_connect(api, ctx, kind, "", name, "proxy", opts)
    path = opts.get("path")
    if path is not None and not isinstance(path, str):
        raise _options_error(opts, "path", "string")
    node_name, port_req = name, ""
    if ":" in name:  # kube accepts "name:port" and "scheme:name:port"
        parts = name.split(":")
        if len(parts) == 2:
            node_name, port_req = parts
        elif len(parts) == 3:
            node_name, port_req = parts[1], parts[2]
    conn = _connection(api)
    host, port = await kubelet_location(api, node_name)
    if port_req and port_req != str(port):
        raise errors.service_unavailable(f"k8py proxies nodes/proxy to the kubelet's port ({port}) only, not to "
                                         f"port {port_req}")
    path = path or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = _url(host, port, path, req.query_string)
    headers = {k: v for k, v in req.headers.items() if k.lower() not in _DROP_REQUEST}
    body = await req.read() if req.can_read_body else None
    async with conn.session() as session:
        try:
            upstream = await session.request(req.method, url, headers=headers, data=body, allow_redirects=False)
        except (aiohttp.ClientError, OSError) as e:
            raise errors.StatusError(503, "ServiceUnavailable", f"error trying to reach service: {describe_error(e)}") \
                from None
        async with upstream:
            return await relay_response(req, upstream, _DROP_RESPONSE)


# --------------------------------------------------------------------------- exec, attach, portforward

STREAM_SUBRESOURCES = ("exec", "attach", "portforward")
# a message may be as large as a client sends (kubectl cp writes 32 KiB pieces)
MAX_STREAM_MESSAGE = 16 * 1024 * 1024
_KUBELET_PATH = {"exec": "exec", "attach": "attach", "portforward": "portForward"}


_OPTIONS_KINDS = {"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}


def connect_options(sub: str, query: Any) -> Obj:
    """The v1 options object of a streaming request, decoded from its query as kube's parameter
    codec decodes it (``PodExecOptions``: the streams, ``tty``, ``container``, ``command``;
    ``PodAttachOptions`` the same without a command; ``PodPortForwardOptions``' ``ports``, each a
    number: else 400). A stream not asked for is false: kube has not defaulted stdout and stderr
    to true since 1.7, whatever old API docs say (kubectl and the clients name them). This is the
    object admission sees (and a mutating webhook may change) before the kubelet is called."""
    opts: Obj = {"kind": _OPTIONS_KINDS[sub], "apiVersion": "v1"}
    if sub == "portforward":
        ports = [p.strip() for v in query.getall("ports", []) for p in v.split(",") if p.strip()]
        if ports:
            opts["ports"] = [_go_int64(p) for p in ports]  # kube decodes []int32: a word is a 400
        return opts
    for p in ("stdin", "stdout", "stderr", "tty"):
        if _query_bool(query, p):
            opts[p] = True  # Go's omitempty: false is left out
    if query.get("container"):
        opts["container"] = query["container"]
    if sub == "exec":
        opts["command"] = list(query.getall("command", [])) or None  # `json:"command"`: null when empty
    return opts


def _options_error(opts: Obj, field: str, go_type: str) -> errors.StatusError:
    value = opts.get(field)
    what = {bool: "bool", str: "string", int: "number", float: "number", list: "array", dict: "object"}.get(
        type(value), "value")
    return errors.internal_error(f"json: cannot unmarshal {what} into Go struct field {opts.get('kind')}.{field} of "
                                 f"type {go_type}")


def options_params(sub: str, opts: Obj) -> tuple[str, list[tuple[str, str]]]:
    """(container, the kubelet's query) from the options as admission left them, as kube's
    ``streamParams``: the streams asked for as ``=1``, the command's words, the ports. A field
    of the wrong type (a webhook's patch) is the 500 kube answers when it cannot decode it."""
    params: list[tuple[str, str]] = []
    if sub == "portforward":
        ports = opts.get("ports")
        if ports is not None and (not isinstance(ports, list) or any(
                not isinstance(p, int) or isinstance(p, bool) or not -(1 << 31) <= p < (1 << 31) for p in ports)):
            raise _options_error(opts, "ports", "[]int32")
        if ports:
            params.append(("port", ",".join(str(p) for p in ports)))  # kube's api.PortHeader
        return "", params
    for p in ("stdin", "stdout", "stderr", "tty"):
        v = opts.get(p)
        if v is not None and not isinstance(v, bool):
            raise _options_error(opts, p, "bool")
        if v:
            params.append((p, "1"))
    container = opts.get("container")
    if container is not None and not isinstance(container, str):
        raise _options_error(opts, "container", "string")
    if sub == "exec":
        command = opts.get("command")
        if command is not None and (not isinstance(command, list) or not all(isinstance(c, str) for c in command)):
            raise _options_error(opts, "command", "[]string")
        params.extend(("command", c) for c in command or ())
    return container or "", params


def stream_params(sub: str, query: Any) -> tuple[str, list[tuple[str, str]]]:
    """(container, the kubelet's query) straight from a streaming request's query."""
    return options_params(sub, connect_options(sub, query))


async def admit_connect(api: ResourceAPI, ctx: Ctx, kind: KindInfo, ns: str, name: str, sub: str,
                        opts: Obj) -> None:
    """Admission of a CONNECT (kube's ``ConnectResource``): the mutating phase, then the
    validating one, with ``opts`` (the options object) as the request's object and no old one,
    before anything else is read or dialled; a plugin's refusal is the answer. What a mutating
    webhook changes in ``opts`` is what the request goes on with, as in kube."""
    a = api.admission_attributes(ctx, "CONNECT", kind, ns, name, False, sub)
    await api.admission.mutate(a, opts, None)
    await api.admission.validate(a, opts, None)


def refuse_dry_run(ctx: Ctx) -> None:
    """kube's ConnectResource answers any ``dryRun`` parameter with a 400 before it looks further."""
    if "dryRun" in ctx.query:
        raise errors.bad_request("dryRun is not supported")


def is_websocket(req: web.Request) -> bool:
    return (req.headers.get("Upgrade", "").lower() == "websocket"
            and "upgrade" in req.headers.get("Connection", "").lower())


async def serve_stream(api: ResourceAPI, ctx: Ctx, kind: KindInfo, ns: str | None, name: str,
                       sub: str) -> web.StreamResponse:
    """``pods/{name}/exec``, ``attach``, ``portforward`` (GET or POST)."""
    req = ctx.request
    refuse_dry_run(ctx)
    opts = connect_options(sub, ctx.query)
    await admit_connect(api, ctx, kind, ns or "", name, sub, opts)
    websocket = is_websocket(req)
    if websocket and ctx.info.verb == "get":
        # a WebSocket upgrade is a GET, authorized as get by the pipeline; kube also requires
        # create on the subresource (what the SPDY POST needs), in its Connect: after admission
        api.authorize_create(ctx)
    container, params = options_params(sub, opts)
    pod = await api.objects.get(kind, ns, name)
    if sub != "portforward":
        container = choose_container(pod, container)
    node_name = (pod.get("spec") or {}).get("nodeName") or ""
    if not node_name:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    conn = _connection(api)
    host, port = await kubelet_location(api, node_name)
    pod_ns = pod["metadata"].get("namespace", ns or "")
    path = f"/{_KUBELET_PATH[sub]}/{pod_ns}/{name}" + (f"/{container}" if container else "")
    url = _url(host, port, path, urlencode(params))
    if spdyproxy.is_spdy_upgrade(req):  # kubectl's SPDY/3.1 fallback: a byte pipe once the kubelet switched
        target = path + (f"?{urlencode(params)}" if params else "")
        return await spdyproxy.relay(req, conn.ssl_context(), host, port, target, conn.connect_timeout)
    async with conn.session() as session:
        if websocket:
            return await _websocket(ctx, session, url, sub, name)
        return await _plain(ctx, session, url, sub, name)


async def _websocket(ctx: Ctx, session: aiohttp.ClientSession, url: str, sub: str, name: str) -> web.StreamResponse:
    req = ctx.request
    offered = [p.strip() for p in req.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    try:
        upstream = await session.ws_connect(url, protocols=offered, autoping=True, max_msg_size=MAX_STREAM_MESSAGE)
    except aiohttp.WSServerHandshakeError:
        # The kubelet refused the upgrade; aiohttp keeps no body of a refusal, so the same
        # request without the upgrade fetches the kubelet's words (its checks come first).
        return await _plain(ctx, session, url, sub, name)
    except (aiohttp.ClientError, OSError) as e:
        raise errors.StatusError(500, "", f'error dialing backend: {describe_error(e)}') from None
    return await answer_websocket(req, upstream)


async def answer_websocket(req: web.Request, upstream: aiohttp.ClientWebSocketResponse) -> web.WebSocketResponse:
    """Answer ``req``'s WebSocket upgrade with ``upstream``'s subprotocol and relay the two
    until one closes (:func:`relay_websocket`); ``upstream`` is closed at the end."""
    async with upstream:
        client = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (),
                                       max_msg_size=MAX_STREAM_MESSAGE, autoping=True)
        await client.prepare(req)
        await relay_websocket(client, upstream)
        return client


async def relay_websocket(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Messages both ways, unchanged and in order, until one side closes; then the other is
    closed with the same code (a kubelet's final status message is sent before its close)."""

    async def pump(src: Any, dst: Any) -> None:
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)

    down = asyncio.create_task(pump(upstream, client))
    up = asyncio.create_task(pump(client, upstream))
    try:
        done, _ = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if (e := t.exception()) is not None and not isinstance(e, (ConnectionError, aiohttp.ClientError)):
                raise e
    finally:
        for t in (down, up):
            t.cancel()
        await asyncio.gather(down, up, return_exceptions=True)
        code = upstream.close_code if upstream.closed and upstream.close_code else client.close_code
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await upstream.close()
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await client.close(code=code or aiohttp.WSCloseCode.OK)


async def _plain(ctx: Ctx, session: aiohttp.ClientSession, url: str, sub: str, name: str) -> web.StreamResponse:
    """The request without an upgrade, and the kubelet's answer as it is (kube's proxy passes a
    refused upgrade through)."""
    req = ctx.request
    try:
        upstream = await session.request(req.method, url, allow_redirects=False)
    except (aiohttp.ClientError, OSError) as e:
        raise errors.StatusError(500, "", f'error dialing backend: {describe_error(e)}') from None
    async with upstream:
        body = await upstream.content.read(MAX_ERROR_BODY)
        if 200 <= upstream.status < 300:
            # The kubelet would have streamed: only an upgrade does that.
            raise errors.bad_request(f"pods/{sub} needs an upgrade: WebSocket (subprotocol v5.channel.k8s.io or "
                                     "v4.channel.k8s.io) or SPDY/3.1")
        return web.Response(status=upstream.status, body=body,
                            content_type=upstream.content_type or "text/plain",
                            charset=upstream.charset or ("utf-8" if upstream.content_type.startswith("text/") else None))


async def relay_response(req: web.Request, upstream: aiohttp.ClientResponse, drop: frozenset[str]) -> web.StreamResponse:
    """``upstream``'s answer to ``req`` as it comes: its status, its headers but those in ``drop``
    (lower case: hop-by-hop ones, and what aiohttp's own framing replaces), its body streamed
    (the node proxy here; the aggregation layer's proxy to extension API servers)."""
    resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    for k, v in upstream.headers.items():
        if k.lower() not in drop:
            resp.headers.add(k, v)
    await resp.prepare(req)
    await pipe(upstream, resp)
    return resp


async def pipe(upstream: aiohttp.ClientResponse, resp: web.StreamResponse) -> None:
    """The kubelet's body to the client as it comes (each piece flushed: a follow shows lines as
    they are written). A kubelet that goes away mid-stream ends the answer; a client that goes
    away cancels this handler, which closes the kubelet connection (and so its follower)."""
    try:
        async for chunk in upstream.content.iter_any():
            await resp.write(chunk)
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
        return  # the kubelet closed mid-body: what came is sent, then the stream ends
    await resp.write_eof()


def describe_error(e: BaseException) -> str:
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        return f"tls: failed to verify certificate: {e.certificate_error}"
    if isinstance(e, aiohttp.ClientConnectorError):
        err = e.os_error
        # Go's syscall texts are strerror's, lower-cased ("connection refused")
        why = os.strerror(err.errno).lower() if err.errno else (err.strerror or str(err))
        return f"dial tcp {e.host}:{e.port}: connect: {why}"
    return str(e) or type(e).__name__
