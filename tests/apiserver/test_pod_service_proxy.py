"""pods/proxy and services/proxy through the API server in-process, with RBAC and a backend HTTP
server on loopback standing in for the pods.

A pod's or endpoint's address must be a global unicast one (kube refuses loopback: "address not
allowed"), so the pods and EndpointSlices here have addresses in 10.244.0.0/16 and the API
server's ``proxy_dial`` (``ResourceAPI.proxy_dial``) maps them to the backends' loopback ports.
Traffic goes only to loopback."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from tests.helpers.headerauthn import HeaderAuthn, as_
from tests.helpers.webhookserver import Review, WebhookThread, allow, deny

from k8py.apiserver import server as srv
from k8py.apiserver.admission.webhook import MutatingAdmissionWebhook, ValidatingAdmissionWebhook
from k8py.apiserver.proxy_subresource import (
    Location,
    dial_error,
    rewrite_html,
    rewrite_html_body,
    rewrite_url,
    split_scheme_name_port,
)
from k8py.apiserver.rbac import RBACAuthorizer
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore

Obj = dict[str, Any]


ADMIN = as_("root", "system:masters")
ALICE = as_("alice", "dev")
NS = "/api/v1/namespaces/default"
POD_IP = "10.244.0.7"
CLOSED_PORT_POD_IP = "10.244.0.8"
EP_A, EP_B, EP_DOWN = "10.244.1.1", "10.244.1.2", "10.244.1.3"  # endpoints: backends a, b, none
BIG = 6 * 1024 * 1024
PAGE = ('<!DOCTYPE html><html><head><link rel="stylesheet" href="/static/site.css"></head>'
        '<body><a href="/next/">next</a> <a href="rel/page">rel</a> <a href="http://example.com/x">out</a>'
        '<img src="/img.png"/><p>fish &amp; chips</p></body></html>')


class Backend:
    """An HTTP server on loopback that tells what it was sent."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.port = 0
        self.seen: list[Obj] = []
        self.runner: web.AppRunner | None = None

    async def echo(self, req: web.Request) -> web.StreamResponse:
        body = await req.read()
        self.seen.append({"method": req.method, "path": req.raw_path, "headers": dict(req.headers), "body": body})
        if req.path == "/big":
            resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            await resp.prepare(req)
            chunk = b"x" * 65536
            for _ in range(BIG // len(chunk)):
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        if req.path == "/redirect":
            return web.Response(status=302, headers={"Location": req.query["to"]})
        if req.path == "/page":
            if "gzip" in req.query:
                return web.Response(body=gzip.compress(PAGE.encode()), content_type="text/html",
                                    headers={"Content-Encoding": "gzip"})
            return web.Response(text=PAGE, content_type="text/html")
        if req.path == "/cors":
            return web.Response(text="cors", headers={"Access-Control-Allow-Origin": "*", "X-Kept": "yes"})
        if req.path == "/nows":
            return web.Response(status=403, text="no websockets here")
        if req.path == "/ws":
            ws = web.WebSocketResponse(protocols=("echo.k8py",))
            await ws.prepare(req)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await ws.send_str(f"{self.tag}:{msg.data}")
            return ws
        return web.json_response({"tag": self.tag, "method": req.method, "path": req.raw_path,
                                  "query": req.query_string, "size": len(body),
                                  "sha": hashlib.sha256(body).hexdigest()},
                                 headers={"X-Backend": self.tag})

    async def start(self) -> Backend:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.echo)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def backends() -> AsyncIterator[tuple[Backend, Backend]]:
    a, b = await Backend("a").start(), await Backend("b").start()
    yield a, b
    await a.stop()
    await b.stop()


def _closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def api(tmp_path: Any, backends: tuple[Backend, Backend]) -> AsyncIterator[TestClient]:
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    authz = RBACAuthorizer()
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store, authenticator=HeaderAuthn(), authorizer=authz)
    await cp.bootstrap()
    task = await authz.start(cp)
    # the pods' addresses are where the backends on loopback stand in for them
    pods = {POD_IP: ("127.0.0.1", backends[0].port), CLOSED_PORT_POD_IP: ("127.0.0.1", _closed_port()),
            EP_A: ("127.0.0.1", backends[0].port), EP_B: ("127.0.0.1", backends[1].port),
            EP_DOWN: ("127.0.0.1", _closed_port())}
    cp.api.proxy_dial = lambda ip, port: pods.get(ip, (ip, port))
    cp.http.ready = True
    async with TestClient(TestServer(cp.http.build())) as c:
        c.cp = cp  # type: ignore[attr-defined]
        c.pods = pods  # type: ignore[attr-defined]
        yield c
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.close()


async def _pod(api: TestClient, name: str, ip: str | None, ports: list[Obj] | None = None) -> None:
    c: Obj = {"name": "c", "image": "busybox"}
    if ports:
        c["ports"] = ports
    r = await api.post(f"{NS}/pods", headers=ADMIN, json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                                          "spec": {"containers": [c]}})
    assert r.status == 201, await r.text()
    if ip:
        r = await api.patch(f"{NS}/pods/{name}/status", headers={**ADMIN, "Content-Type": "application/merge-patch+json"},
                            json={"status": {"podIP": ip, "podIPs": [{"ip": ip}]}})
        assert r.status == 200, await r.text()


async def _service(api: TestClient, name: str, ports: list[Obj], endpoints: list[tuple[int, list[Obj]]] | None,
                   **spec: Any) -> None:
    r = await api.post(f"{NS}/services", headers=ADMIN, json={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"ports": ports, **spec}})
    assert r.status == 201, await r.text()
    for i, (port, eps) in enumerate(endpoints or []):
        r = await api.post("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", headers=ADMIN, json={
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-{i}", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": eps,
            "ports": [{"name": ports[0].get("name", ""), "port": port, "protocol": "TCP"}]})
        assert r.status == 201, await r.text()


async def _status(r: Any) -> Obj:
    body = await r.json()
    assert body["kind"] == "Status", body
    return dict(body)


# --------------------------------------------------------------------------- pure helpers


def test_names_split_as_kube() -> None:
    assert split_scheme_name_port("web") == ("", "web", "")
    assert split_scheme_name_port("web:8080") == ("", "web", "8080")
    assert split_scheme_name_port("https:web:8443") == ("https", "web", "8443")
    assert split_scheme_name_port("ftp:web:21") is None
    assert split_scheme_name_port("a:b:c:d") is None
    assert split_scheme_name_port(":80") is None


def test_redirects_and_links_are_rewritten_only_when_they_point_at_the_backend() -> None:
    prepend = "/api/v1/namespaces/ns/services/web:80/proxy"
    be, host = "10.0.0.5:8080", "localhost:8001"
    assert rewrite_url("/login", be, host, prepend) == f"{prepend}/login"
    assert rewrite_url("/dir/", be, host, prepend) == f"{prepend}/dir/"
    assert rewrite_url("http://10.0.0.5:8080/x?y=1", be, host, prepend) == f"{prepend}/x?y=1"
    assert rewrite_url("http://localhost:8001/x", be, host, prepend) == f"http://localhost:8001{prepend}/x"
    assert rewrite_url(f"{prepend}/already", be, host, prepend) == f"{prepend}/already"
    assert rewrite_url("relative/x", be, host, prepend) == "relative/x"
    assert rewrite_url("http://elsewhere/x", be, host, prepend) == "http://elsewhere/x"
    out = rewrite_html('<A HREF="/a" class=x>t</A><img src="b.png"><br/>&lt;', lambda u: "P" + u)
    assert out == '<a href="P/a" class="x">t</a><img src="Pb.png"><br/>&lt;'
    zipped = rewrite_html_body(gzip.compress(b'<a href="/a">'), "gzip", lambda u: "P" + u)
    assert zipped is not None and gzip.decompress(zipped) == b'<a href="P/a">'
    assert rewrite_html_body(b"not gzip", "gzip", lambda u: u) is None
    assert rewrite_html_body(b"<a>", "br", lambda u: u) is None


def test_an_unanswered_dial_is_gos_timeout_for_the_pod_address() -> None:
    # a pod network this server has no route to: Go's words, for the pod's address
    loc = Location("", "10.42.1.5", "8080")
    assert dial_error(loc, aiohttp.ConnectionTimeoutError("Connection timeout to host")) == \
        "dial tcp 10.42.1.5:8080: i/o timeout"
    assert dial_error(Location("", "fd00::5", "80"), TimeoutError()) == "dial tcp [fd00::5]:80: i/o timeout"


# --------------------------------------------------------------------------- pods


async def test_pod_proxy_sends_path_query_body_and_kubes_headers(api: TestClient, backends: tuple[Backend, Backend]) -> None:
    a = backends[0]
    await _pod(api, "web", POD_IP, [{"containerPort": 8080, "name": "http"}])
    headers = {**ADMIN, "Authorization": "Bearer secret-token", "X-Custom": "kept", "Connection": "keep-alive, X-Hop",
               "X-Hop": "dropped"}
    for name in ("web", "web:8080", "http:web:8080"):
        r = await api.get(f"{NS}/pods/{name}/proxy/echo/a%20b/?x=1&y=two", headers=headers)
        assert r.status == 200, await r.text()
        body = await r.json()
        assert (body["method"], body["path"], body["query"]) == ("GET", "/echo/a%20b/?x=1&y=two", "x=1&y=two")
    seen = a.seen[-1]["headers"]
    assert "Authorization" not in seen and "X-Hop" not in seen and "X-Test-User" in seen
    assert seen["X-Custom"] == "kept"
    assert seen["X-Forwarded-For"] == "127.0.0.1"
    assert seen["X-Forwarded-Uri"] == f"{NS}/pods/http:web:8080/proxy/echo/a%20b/"
    assert seen["Host"] == f"127.0.0.1:{api.port}"  # the client's Host, as kube's proxy
    assert r.headers["X-Backend"] == "a"


async def test_every_proxy_verb_with_bodies_streamed_both_ways(api: TestClient,
                                                               backends: tuple[Backend, Backend]) -> None:
    await _pod(api, "web", POD_IP, [{"containerPort": 8080}])
    payload = bytes(range(256)) * (BIG // 256)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = await api.request(method, f"{NS}/pods/web/proxy/upload", headers=ADMIN, data=io.BytesIO(payload))
        assert r.status == 200, await r.text()
        body = await r.json()
        assert (body["method"], body["size"], body["sha"]) == (method, len(payload),
                                                               hashlib.sha256(payload).hexdigest())
    r = await api.options(f"{NS}/pods/web/proxy/x", headers=ADMIN)
    assert (await r.json())["method"] == "OPTIONS"
    r = await api.head(f"{NS}/pods/web/proxy/x", headers=ADMIN)
    assert r.status == 200 and r.headers["X-Backend"] == "a"
    r = await api.get(f"{NS}/pods/web/proxy/big", headers=ADMIN)
    got = 0
    async for chunk in r.content.iter_any():
        got += len(chunk)
    assert got == BIG


async def test_redirects_html_and_cors_headers_as_kube(api: TestClient) -> None:
    await _pod(api, "web", POD_IP, [{"containerPort": 8080}])
    base = f"{NS}/pods/web:8080/proxy"
    r = await api.get(f"{base}?a=1", headers=ADMIN, allow_redirects=False)
    assert (r.status, r.headers["Location"]) == (301, f"{base}/?a=1")
    for to, want in (("/login", f"{base}/login"), (f"http://{POD_IP}:8080/x/", f"{base}/x/"),
                     ("http://other.example/x", "http://other.example/x"), ("rel", "rel")):
        r = await api.get(f"{base}/redirect", params={"to": to}, headers=ADMIN, allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (302, want)
    for query in ("", "?gzip=1"):
        r = await api.get(f"{base}/page{query}", headers=ADMIN)
        text = await r.text()
        assert f'<a href="{base}/next/">next</a>' in text, text
        assert f'href="{base}/static/site.css"' in text and f'<img src="{base}/img.png"/>' in text
        assert '<a href="rel/page">rel</a>' in text and 'href="http://example.com/x"' in text
        assert "fish &amp; chips" in text
    r = await api.get(f"{base}/cors", headers=ADMIN)
    assert "Access-Control-Allow-Origin" not in r.headers and r.headers["X-Kept"] == "yes"


async def test_pod_errors_in_kubes_words(api: TestClient) -> None:
    await _pod(api, "web", POD_IP, [{"containerPort": 8080}])
    await _pod(api, "pending", None)
    await _pod(api, "local", "127.0.0.1")
    await _pod(api, "down", CLOSED_PORT_POD_IP, [{"containerPort": 9000}])
    cases = [
        ("ghost:80", 404, "NotFound", 'pods "ghost" not found'),
        ("pending", 400, "BadRequest", "address not allowed"),
        ("local:80", 400, "BadRequest", "address not allowed"),
        ("a:b:c:d", 400, "BadRequest", 'invalid pod request "a:b:c:d"'),
        ("ftp:web:21", 400, "BadRequest", 'invalid pod request "ftp:web:21"'),
        ("down", 503, "ServiceUnavailable",
         f"error trying to reach service: dial tcp {CLOSED_PORT_POD_IP}:9000: connect: connection refused"),
        ("web:no-such-port-name", 503, "ServiceUnavailable",
         "error trying to reach service: dial tcp: lookup tcp/no-such-port-name: unknown port"),
    ]
    for name, code, reason, message in cases:
        r = await api.get(f"{NS}/pods/{name}/proxy/", headers=ADMIN)
        st = await _status(r)
        assert (r.status, st["reason"], st["message"]) == (code, reason, message), name
    r = await api.get(f"{NS}/pods/web/proxy/?dryRun=All", headers=ADMIN)
    assert (r.status, (await _status(r))["message"]) == (400, "dryRun is not supported")


async def test_websocket_through_the_pod_proxy(api: TestClient) -> None:
    await _pod(api, "web", POD_IP, [{"containerPort": 8080}])
    async with api.ws_connect(f"{NS}/pods/web/proxy/ws", headers=ADMIN, protocols=("echo.k8py",)) as ws:
        assert ws.protocol == "echo.k8py"
        await ws.send_str("hello")
        assert (await ws.receive(timeout=10)).data == "a:hello"


async def test_a_refused_websocket_upgrade_is_passed_back(api: TestClient) -> None:
    await _pod(api, "web", POD_IP, [{"containerPort": 8080}])
    r = await api.get(f"{NS}/pods/web/proxy/nows", headers={**ADMIN, "Connection": "Upgrade", "Upgrade": "websocket",
                                                            "Sec-WebSocket-Version": "13",
                                                            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert (r.status, await r.text()) == (403, "no websockets here")


async def test_other_upgrades_are_piped_as_bytes(api: TestClient) -> None:
    """An upgrade that is no WebSocket (kubectl's SPDY/3.1) goes to the backend with the
    client's headers and, once it switched protocols, the two connections are one pipe."""
    heads: list[bytes] = []

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    backend = await asyncio.start_server(tunnel, "127.0.0.1", 0)
    api.pods["10.244.0.9"] = ("127.0.0.1", backend.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    await _pod(api, "spdy", "10.244.0.9", [{"containerPort": 8080}])
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    try:
        writer.write((f"POST {NS}/pods/spdy/proxy/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Test-User: root\r\n"
                      "X-Test-Groups: system:masters\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                      "X-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"PING"
        assert heads[0].startswith(b"POST /stream HTTP/1.1\r\n")
        assert b"X-Stream-Protocol-Version: portforward.k8s.io" in heads[0]
    finally:
        writer.close()
        backend.close()
        await backend.wait_closed()


# --------------------------------------------------------------------------- services


async def test_service_proxy_picks_a_ready_endpoint_by_port_number_or_name(api: TestClient) -> None:
    await _service(api, "web", [{"name": "http", "port": 80, "targetPort": 8080}],
                   [(8080, [{"addresses": [EP_A], "conditions": {"ready": True}}]),
                    (8080, [{"addresses": [EP_B]}]),  # no conditions: ready
                    (8080, [{"addresses": [EP_DOWN], "conditions": {"ready": False}}])])
    tags: set[str] = set()
    for _ in range(60):  # random among the ready endpoints, as kube: both answer sooner or later
        r = await api.get(f"{NS}/services/web:80/proxy/echo?q=1", headers=ADMIN)
        assert r.status == 200, await r.text()
        body = await r.json()
        assert (body["path"], body["query"]) == ("/echo?q=1", "q=1")
        tags.add(body["tag"])
        if tags == {"a", "b"}:
            break
    assert tags == {"a", "b"}
    for name in ("web:http", "http:web:80"):
        r = await api.post(f"{NS}/services/{name}/proxy/post", headers=ADMIN, data=b"body")
        assert r.status == 200 and (await r.json())["size"] == 4, name


async def test_service_errors_in_kubes_words(api: TestClient, backends: tuple[Backend, Backend]) -> None:
    a = backends[0]
    await _service(api, "none", [{"port": 80}], None)
    await _service(api, "unready", [{"port": 80}], [(8080, [{"addresses": [EP_A], "conditions": {"ready": False}}])])
    await _service(api, "ext", [{"port": 80}], None, type="ExternalName", externalName="example.com")
    # k8py's EndpointSlices may name loopback (kube's may not): never proxied to, the API
    # server's own machine is not reachable through it
    await _service(api, "local", [{"port": 80}], [(a.port, [{"addresses": ["127.0.0.1"]}])])
    cases = [
        ("none:80", 503, "ServiceUnavailable", 'no endpoints available for service "none"'),
        ("none:81", 503, "ServiceUnavailable", 'no service port 81 found for service "none"'),
        ("unready:80", 503, "ServiceUnavailable", 'no endpoints available for service "unready:80"'),
        ("ext:80", 503, "ServiceUnavailable", 'no endpoints available for service "ext"'),
        ("ghost:80", 404, "NotFound", 'services "ghost" not found'),
        ("x:y:z:w", 400, "BadRequest", 'invalid service request "x:y:z:w"'),
        ("local:80", 400, "BadRequest", "address not allowed"),
    ]
    for name, code, reason, message in cases:
        r = await api.get(f"{NS}/services/{name}/proxy/", headers=ADMIN)
        st = await _status(r)
        assert (r.status, st["reason"], st["message"]) == (code, reason, message), name


# --------------------------------------------------------------------------- authorization, admission, discovery


async def test_rbac_on_the_proxy_subresources(api: TestClient) -> None:
    await _pod(api, "web", POD_IP, [{"containerPort": 8080}])
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    r = await api.get(f"{NS}/pods/web/proxy/", headers=ALICE)
    st = await _status(r)
    assert (r.status, st["message"]) == (403, ('pods "web" is forbidden: User "alice" cannot get resource '
                                               '"pods/proxy" in API group "" in the namespace "default"'))
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "proxy-get"},
            "rules": [{"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "alice"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "proxy-get"},
               "subjects": [{"kind": "User", "name": "alice"}]}
    for path, obj in ((f"{rbac}/roles", role), (f"{rbac}/rolebindings", binding)):
        r = await api.post(path, headers=ADMIN, json=obj)
        assert r.status == 201, await r.text()

    async def allowed() -> bool:
        return (await api.get(f"{NS}/pods/web/proxy/", headers=ALICE)).status == 200

    deadline = asyncio.get_running_loop().time() + 5
    while not await allowed():
        assert asyncio.get_running_loop().time() < deadline, "the binding never took effect"
        await asyncio.sleep(0.02)
    r = await api.post(f"{NS}/pods/web/proxy/", headers=ALICE, data=b"x")
    assert (r.status, (await _status(r))["message"]) == (
        403, ('pods "web" is forbidden: User "alice" cannot create resource "pods/proxy" in API group "" in the '
              'namespace "default"'))
    r = await api.get(f"{NS}/services/web/proxy/", headers=ALICE)
    assert r.status == 403
    # OPTIONS is no verb of kube's (the empty one): only a rule for every verb allows it
    r = await api.options(f"{NS}/pods/web/proxy/", headers=ALICE)
    assert (r.status, (await _status(r))["message"]) == (
        403, ('pods "web" is forbidden: User "alice" cannot  resource "pods/proxy" in API group "" in the '
              'namespace "default"'))


def _review(review: Review) -> Review:
    obj = review["request"].get("object") or {}
    if obj.get("path", "").startswith("/admin"):
        return deny(review, "admin pages are private")
    return allow(review)


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookThread]:
    h = WebhookThread(("localhost",), {"/validate": _review})
    h.start()
    yield h
    h.close()


async def test_admission_sees_a_connect_of_the_proxy_options(api: TestClient, hooks: WebhookThread) -> None:
    hooks.seen.clear()
    cfg = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": "proxy"},
           "webhooks": [{"name": "validate.proxy.k8py.test", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                         "clientConfig": {"url": f"https://localhost:{hooks.port}/validate",
                                          "caBundle": hooks.ca_bundle},
                         "rules": [{"operations": ["CONNECT"], "apiGroups": [""], "apiVersions": ["v1"],
                                    "resources": ["pods/proxy", "services/proxy"]}]}]}
    r = await api.post("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", headers=ADMIN,
                       json=cfg)
    assert r.status == 201, await r.text()
    try:
        await _pod(api, "web", POD_IP, [{"containerPort": 8080}])
        r = await api.get(f"{NS}/pods/web/proxy/ok", headers=ADMIN)
        assert r.status == 200, await r.text()
        # refused before the pod is read: no such pod, still the webhook's answer
        r = await api.post(f"{NS}/pods/ghost/proxy/admin/x", headers=ADMIN, data=b"")
        assert (r.status, (await _status(r))["message"]) == (
            403, 'admission webhook "validate.proxy.k8py.test" denied the request: admin pages are private')
        r = await api.get(f"{NS}/services/web:80/proxy/", headers=ADMIN)
        assert r.status == 404
        reqs = [rv["request"] for _, rv in hooks.seen]
        assert [(q["operation"], q["subResource"], q["name"], q["object"]) for q in reqs] == [
            ("CONNECT", "proxy", "web", {"kind": "PodProxyOptions", "apiVersion": "v1", "path": "/ok"}),
            ("CONNECT", "proxy", "ghost", {"kind": "PodProxyOptions", "apiVersion": "v1", "path": "/admin/x"}),
            ("CONNECT", "proxy", "web:80", {"kind": "ServiceProxyOptions", "apiVersion": "v1", "path": "/"})]
        assert reqs[0]["kind"] == {"group": "", "version": "v1", "kind": "PodProxyOptions"}
    finally:
        for name in ("MutatingAdmissionWebhook", "ValidatingAdmissionWebhook"):
            plugin = api.cp.api.admission.plugin(name)  # type: ignore[attr-defined]
            assert isinstance(plugin, MutatingAdmissionWebhook | ValidatingAdmissionWebhook)
            await plugin._close_all()


async def test_discovery_lists_the_proxy_subresources_with_kubes_verbs(api: TestClient) -> None:
    r = await api.get("/api/v1", headers=ADMIN)
    resources = {x["name"]: x for x in (await r.json())["resources"]}
    for name, kind in (("pods/proxy", "PodProxyOptions"), ("services/proxy", "ServiceProxyOptions")):
        assert resources[name]["kind"] == kind
        assert sorted(resources[name]["verbs"]) == ["create", "delete", "get", "patch", "update"]
