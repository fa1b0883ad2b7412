"""A small extension API server for the aggregation tests (kube's sample-apiserver, in aiohttp):
``wardle.example.com/v1alpha1`` with a namespaced ``flunders`` resource (list, get, create,
delete, watch), over HTTPS with a serving certificate for ``api.wardle.svc`` signed by a CA of
the test's own (the APIService's ``caBundle``).

As a real extension server it believes the ``X-Remote-*`` headers only from a client certificate
signed by the request-header CA (``requestheader-client-ca-file``) whose name is allowed
(``requestheader-allowed-names``); any other request is 401. It records what it saw (path,
user, groups, the certificate's name) for the tests to check.

    backend = WardleServer(requestheader_ca_pem, ("front-proxy-client",))
    await backend.start()            # backend.port, backend.ca_pem
    ...
    await backend.stop()             # the port refuses connections until start() again
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

GROUP, VERSION = "wardle.example.com", "v1alpha1"
GV = f"{GROUP}/{VERSION}"

RESOURCES = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GV, "resources": [
    {"name": "flunders", "singularName": "flunder", "namespaced": True, "kind": "Flunder",
     "verbs": ["create", "delete", "get", "list", "watch"], "shortNames": ["fl"], "categories": ["wardle"]},
    {"name": "flunders/status", "singularName": "", "namespaced": True, "kind": "Flunder",
     "verbs": ["get", "update"]}]}


_GVK = {"group": GROUP, "version": VERSION, "kind": "Flunder"}
_OK = {"200": {"description": "OK", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/com.example.wardle.v1alpha1.Flunder"}}}}}
OPENAPI = {"openapi": "3.0.0", "info": {"title": "wardle", "version": "v0.1"}, "paths": {
    f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/flunders": {"get": {
        "x-kubernetes-action": "list", "x-kubernetes-group-version-kind": _GVK, "responses": _OK}},
    f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/flunders/{{name}}": {"get": {
        "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": _GVK, "responses": _OK}}},
    "components": {"schemas": {
    "com.example.wardle.v1alpha1.Flunder": {
        "description": "A Flunder is a test object of the wardle sample API.", "type": "object",
        "x-kubernetes-group-version-kind": [{"group": GROUP, "version": VERSION, "kind": "Flunder"}],
        "properties": {
            "apiVersion": {"description": "APIVersion of this object.", "type": "string"},
            "kind": {"description": "Kind of this object.", "type": "string"},
            "metadata": {"description": "Standard object's metadata.", "type": "object"},
            "spec": {"description": "What the flunder refers to.", "type": "object", "properties": {
                "reference": {"description": "The name of another flunder.", "type": "string"}}}}}}}}


DISCOVERY_V2_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
# as a k8s.io/apiserver backend serves it; "from-v2" marks what came this way
DISCOVERY_V2 = {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": [
    {"metadata": {"name": GROUP}, "versions": [{"version": VERSION, "freshness": "Current", "resources": [
        {"resource": "flunders", "responseKind": {"group": GROUP, "version": VERSION, "kind": "Flunder"},
         "scope": "Namespaced", "singularResource": "flunder", "verbs": ["get", "list"],
         "categories": ["from-v2"]}]}]}]}


def serving_tls(names: tuple[str, ...] = ("api.wardle.svc",)) -> tuple[str, bytes, bytes]:
    """(CA PEM, serving certificate PEM, key PEM) for ``names``, made fresh."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wardle-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (ca.public_bytes(serialization.Encoding.PEM).decode(), cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


class ServingFiles:
    """A fresh serving certificate for ``names`` and its key (:func:`serving_tls`) in files of a
    temporary directory, for a TLS backend on loopback; ``ca_pem`` is what trusts it."""

    def __init__(self, names: tuple[str, ...], prefix: str) -> None:
        self.ca_pem, cert, key = serving_tls(names)
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.cert_file, self.key_file = os.path.join(self.dir, "tls.crt"), os.path.join(self.dir, "tls.key")
        with open(self.cert_file, "wb") as f:
            f.write(cert)
        with open(self.key_file, "wb") as f:
            f.write(key)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def remove(self) -> None:
        for f in (self.cert_file, self.key_file):
            os.unlink(f)
        os.rmdir(self.dir)


async def serve_tls(runner: web.AppRunner, port: int, ctx: ssl.SSLContext) -> int:
    """Serve ``runner`` (set up) over TLS on 127.0.0.1:``port`` (0: any); the port it got."""
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx, reuse_address=True)
    await site.start()
    return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]


@dataclass
class Seen:
    method: str
    path: str
    user: str
    groups: list[str]
    cert_cn: str
    extra: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # every header, as received (the last of a name)


class WardleServer:
    def __init__(self, requestheader_ca_pem: str | None, allowed_names: tuple[str, ...] = ("front-proxy-client",),
                 port: int = 0, aggregated_discovery: bool = False) -> None:
        self.requestheader_ca_pem = requestheader_ca_pem
        self.aggregated_discovery = aggregated_discovery  # serve apidiscovery.k8s.io/v2 at /apis
        self.allowed_names = allowed_names
        self.port = port
        self.tls = ServingFiles(("api.wardle.svc",), "wardle-")
        self.ca_pem = self.tls.ca_pem
        self.seen: list[Seen] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 1
        self._watchers: list[tuple[str | None, asyncio.Queue[dict[str, Any]]]] = []
        self.runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        ctx = self.tls.server_context()
        if self.requestheader_ca_pem:
            ctx.load_verify_locations(cadata=self.requestheader_ca_pem)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        self.port = await serve_tls(self.runner, self.port, self.ssl_context())

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # -- the API --------------------------------------------------------------------------------
    def _caller(self, req: web.Request) -> Seen | None:
        cert = req.transport.get_extra_info("peercert") if req.transport is not None else None
        cn = ""
        for rdn in (cert or {}).get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    cn = v
        if not cert or cn not in self.allowed_names or not req.headers.get("X-Remote-User"):
            return None
        extra: dict[str, list[str]] = {}
        for k, v in req.headers.items():
            if k.lower().startswith("x-remote-extra-"):
                extra.setdefault(k[len("x-remote-extra-"):].lower(), []).append(v)
        return Seen(req.method, req.path_qs, req.headers["X-Remote-User"], req.headers.getall("X-Remote-Group", []),
                    cn, extra, dict(req.headers))

    async def handle(self, req: web.Request) -> web.StreamResponse:
        who = self._caller(req)
        if who is None:
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 401,
                                      "reason": "Unauthorized", "message": "Unauthorized"}, status=401)
        self.seen.append(who)
        parts = [p for p in req.path.split("/") if p]
        if parts == ["apis"] and self.aggregated_discovery and "apidiscovery.k8s.io" in req.headers.get("Accept", ""):
            return web.Response(body=json.dumps(DISCOVERY_V2).encode(), headers={"Content-Type": DISCOVERY_V2_TYPE})
        if parts == ["openapi", "v3"]:
            return web.json_response({"paths": {f"apis/{GV}": {"serverRelativeURL": f"/openapi/v3/apis/{GV}?hash=1"}}})
        if parts == ["openapi", "v3", "apis", GROUP, VERSION]:
            return web.json_response(OPENAPI)
        if parts[:3] != ["apis", GROUP, VERSION]:
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                      "reason": "NotFound", "message": "not found"}, status=404)
        rest = parts[3:]
        if not rest:
            return web.json_response(RESOURCES)
        ns: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        if rest[0] != "flunders":
            return web.json_response({"kind": "Status", "code": 404, "status": "Failure", "reason": "NotFound",
                                      "message": "not found"}, status=404)
        name = rest[1] if len(rest) > 1 else ""
        if rest[2:] == ["echo"]:  # an exec-like subresource: a WebSocket that answers in capitals
            if req.headers.get("Upgrade", "").lower() != "websocket":
                return web.json_response({"kind": "Status", "code": 400, "status": "Failure", "reason": "BadRequest",
                                          "message": "echo needs a WebSocket"}, status=400)
            ws = web.WebSocketResponse(protocols=("v1.echo.wardle",))
            await ws.prepare(req)
            async for msg in ws:
                await ws.send_str(str(msg.data).upper())
            return ws
        if req.method == "GET" and not name and req.query.get("watch") in ("true", "1"):
            return await self.watch(req, ns)
        if req.method == "GET" and not name:
            items = [o for (n, _), o in sorted(self.objects.items()) if ns is None or n == ns]
            return web.json_response({"kind": "FlunderList", "apiVersion": GV,
                                      "metadata": {"resourceVersion": str(self.rv)}, "items": items})
        if req.method == "GET":
            obj = self.objects.get((ns or "", name))
            if obj is None:
                return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                          "reason": "NotFound", "details": {"name": name, "group": GROUP,
                                                                            "kind": "flunders"},
                                          "message": f'flunders.{GROUP} "{name}" not found'}, status=404)
            return web.json_response(obj)
        if req.method == "POST" and ns:
            obj = json.loads(await req.read())
            n = obj["metadata"]["name"]
            self.rv += 1
            obj["metadata"].update({"namespace": ns, "resourceVersion": str(self.rv), "uid": f"uid-{self.rv}",
                                    "creationTimestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
            obj.setdefault("apiVersion", GV)
            obj.setdefault("kind", "Flunder")
            self.objects[(ns, n)] = obj
            for wns, q in self._watchers:
                if wns is None or wns == ns:
                    q.put_nowait({"type": "ADDED", "object": obj})
            return web.json_response(obj, status=201)
        if req.method == "DELETE" and ns and name:
            obj = self.objects.pop((ns, name), None)
            if obj is None:
                return web.json_response({"kind": "Status", "code": 404, "status": "Failure",
                                          "reason": "NotFound", "message": "not found"}, status=404)
            for wns, q in self._watchers:
                if wns is None or wns == ns:
                    q.put_nowait({"type": "DELETED", "object": obj})
            return web.json_response(obj)
        return web.json_response({"kind": "Status", "code": 405, "status": "Failure", "reason": "MethodNotAllowed",
                                  "message": "method not allowed"}, status=405)

    async def watch(self, req: web.Request, ns: str | None) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(req)
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        entry = (ns, q)
        self._watchers.append(entry)
        try:
            if not req.query.get("resourceVersion"):
                for (n, _), o in sorted(self.objects.items()):
                    if ns is None or n == ns:
                        await resp.write(json.dumps({"type": "ADDED", "object": o}).encode() + b"\n")
            timeout = float(req.query.get("timeoutSeconds") or 60)
            loop = asyncio.get_running_loop()
            end = loop.time() + timeout
            while (left := end - loop.time()) > 0:
                try:
                    async with asyncio.timeout(left):
                        ev = await q.get()
                except TimeoutError:
                    break
                await resp.write(json.dumps(ev).encode() + b"\n")
        finally:
            self._watchers.remove(entry)
        return resp


class WardleThread:
    """A :class:`WardleServer` on its own event loop in a thread (for tests that are not async)."""

    def __init__(self, requestheader_ca_pem: str | None, allowed_names: tuple[str, ...] = ("front-proxy-client",)):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wardle", daemon=True)
        self.server = WardleServer(requestheader_ca_pem, allowed_names)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> WardleThread:
        self.run(self.server.start())
        return self

    def stop(self) -> None:
        self.run(self.server.stop())

    def close(self) -> None:
        self.run(self.server.stop())
        self.run(asyncio.sleep(0.25))  # let TLS transports finish closing (aiohttp's grace for SSL)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.server.tls.remove()
