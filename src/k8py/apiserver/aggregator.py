"""The aggregation layer (kube-aggregator inside kube-apiserver): requests for the group-version
of an APIService backed by a Service are proxied to that Service.

What it keeps: APIServices, Services and EndpointSlices, read from the store and followed by its
watch (:meth:`Objects.mirror`, the same door as every server-side reader), and from them the
remote group-versions (``(group, version) -> APIService``).

A request (``APIServerApp._dispatch``) is authenticated, audited and authorized by k8py first,
exactly as any other (RBAC sees ``flunders`` in ``wardle.example.com`` as it would see pods);
then, when its path is ``/apis/<group>/<version>[/...]`` of a remote APIService,
:meth:`Aggregator.proxy` sends it on as kube's ``proxyHandler`` does:

- an APIService that is not ``Available`` (the availability controller's condition) is
  ``503 service unavailable``, as kube's plain-text answer;
- the Service is resolved to one ready endpoint of its EndpointSlices (kube's
  ``--enable-aggregator-routing=true``: k8py does not rely on routing ClusterIPs from the API
  server); none is ``503 service unavailable``, the reason in the log;
- HTTPS to that address with the APIService's ``caBundle`` (or no verification with
  ``insecureSkipTLSVerify``), server name ``<service>.<namespace>.svc``, and the front-proxy client
  certificate (``pki.ensure_front_proxy_certificates``), the user named in ``X-Remote-User``,
  ``X-Remote-Uid``, ``X-Remote-Group`` and ``X-Remote-Extra-*`` (the client's own such headers,
  its ``Authorization`` and ``Impersonate-*`` headers are not passed on);
- the backend's answer goes back as it comes (status, headers, the body piece by piece, so a
  watch streams); a backend that cannot be reached is ``503`` with the dial error's text (kube's
  ``responder.Error``). A WebSocket upgrade is opened to the backend with the same headers and
  subprotocols and its messages relayed both ways (a refused upgrade's answer is passed back as
  it is); a SPDY/3.1 upgrade (kubectl's fallback) is sent on with the same headers and piped as
  bytes once the backend switched protocols (``spdyproxy``); any other upgrade is ``501``.

Discovery of the remote groups is :mod:`.aggregator_discovery`; the ``Available`` condition is set
by ``controllers/apiservice.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiohttp import web

from k8py.api import aggregator as agg
from k8py.api import errors
from k8py.api.registry import KindInfo, Registry
from k8py.apiserver import spdyproxy
from k8py.apiserver.context import Ctx
from k8py.apiserver.kubeletproxy import (
    MAX_STREAM_MESSAGE,
    answer_websocket,
    describe_error,
    is_websocket,
    relay_response,
)
from k8py.apiserver.sessions import RetiredSessions

if TYPE_CHECKING:
    from k8py.apiserver.aggregator_discovery import RemoteDiscovery
    from k8py.apiserver.objects import Objects

__all__ = ["Aggregator", "ProxyClientCertificate"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

SYNC_TIMEOUT = 10.0
# A session whose TLS settings are no longer any APIService's (a new caBundle, a renewed proxy
# certificate) takes no new requests and is closed after this long: its watches run out first.
RETIRE_AFTER = 3600.0
DIAL_TIMEOUT = 30.0  # kube's proxy dialer
# not passed on: hop-by-hop headers, the client's credentials (the backend trusts the front-proxy
# certificate and its headers, never the user's token), and what aiohttp writes itself
_DROP_REQUEST = frozenset({"host", "connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "te",
                           "trailer", "transfer-encoding", "upgrade", "authorization", "content-length"})
_DROP_RESPONSE = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "trailer",
                            "upgrade", "proxy-authenticate"})


class ProxyClientCertificate:
    """The front-proxy client certificate files (kube's ``--proxy-client-cert-file`` and
    ``--proxy-client-key-file``); a renewed file is picked up by the next connection."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file

    def version(self) -> int:
        try:
            return os.stat(self.cert_file).st_mtime_ns
        except OSError:
            return 0


def proxy_error(message: str, code: int) -> web.Response:
    """kube's ``proxyError``: Go's ``http.Error``, a plain-text line."""
    return web.Response(status=code, text=message + "\n", content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


class Aggregator:
    def __init__(self, objects: Objects, registry: Registry, proxy_cert: ProxyClientCertificate | None,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.objects = objects
        self.registry = registry
        self.proxy_cert = proxy_cert
        self.on_change = on_change  # the discovery documents depend on APIServices: drop their cache
        self.apiservices: dict[str, Obj] = {}
        self.remote: dict[tuple[str, str], Obj] = {}  # (group, version) -> APIService with a service
        self.services: dict[tuple[str, str], Obj] = {}
        self.slices: dict[tuple[str, str], Obj] = {}  # (namespace, slice name) -> EndpointSlice
        # (namespace, service) -> its EndpointSlices by name: a request reads only its Service's
        self._slices_by_service: dict[tuple[str, str], dict[str, Obj]] = {}
        self._sessions: dict[tuple[Any, ...], aiohttp.ClientSession] = {}
        self._tls: dict[tuple[Any, ...], ssl.SSLContext] = {}  # the sessions' TLS contexts (SPDY dials with them)
        self._retiring = RetiredSessions("aggregator", RETIRE_AFTER)
        self._synced: dict[str, asyncio.Event] = {k: asyncio.Event() for k in ("apiservices", "services", "slices")}
        self.discovery: RemoteDiscovery | None = None  # set by start

    # -- the mirrors ---------------------------------------------------------------------------
    def _kind(self, group: str, resource: str) -> KindInfo:
        k = self.registry.by_resource(group, "v1", resource)
        assert k is not None
        return k

    def _apply_apiservice(self, key: str, value: bytes | None) -> None:
        name = key.rsplit("/", 1)[-1]
        old = self.apiservices.get(name)
        if value is None:
            self.apiservices.pop(name, None)
        else:
            obj = _load(key, value)
            if obj is None:
                return
            self.apiservices[name] = obj
        self.remote = {agg.group_version(a): a for a in self.apiservices.values() if agg.service_ref(a) is not None}
        if self.discovery is not None:
            self.discovery.apiservice_changed(name, old, self.apiservices.get(name))
        self.on_change()

    def _reset_apiservices(self) -> None:
        self.apiservices.clear()
        self.remote = {}

    @staticmethod
    def _ns_name(key: str, prefix: str) -> tuple[str, str]:
        ns, _, name = key[len(prefix):].partition("/")
        return ns, name

    def _mirror(self, group: str, resource: str, store: dict[tuple[str, str], Obj], what: str,
                on_change: Callable[[tuple[str, str], Obj | None, Obj | None], None] | None = None) -> Any:
        prefix = self._kind(group, resource).key_prefix(None)

        def apply(key: str, value: bytes | None) -> None:
            k = self._ns_name(key, prefix)
            obj = _load(key, value) if value is not None else None
            old = store.pop(k, None) if obj is None else store.get(k)
            if obj is not None:
                store[k] = obj
            if on_change is not None:
                on_change(k, old, obj)

        def reset() -> None:
            for k in list(store):
                apply_removed(k)

        def apply_removed(k: tuple[str, str]) -> None:
            old = store.pop(k, None)
            if on_change is not None:
                on_change(k, old, None)

        return self.objects.mirror(prefix, reset=reset, apply=apply, synced=self._synced[what].set,
                                   what=f"aggregator {what}")

    def _index_slice(self, key: tuple[str, str], old: Obj | None, new: Obj | None) -> None:
        def service_of(s: Obj | None) -> tuple[str, str] | None:
            name = (((s or {}).get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
            return (key[0], name) if s is not None and name else None

        was, now = service_of(old), service_of(new)
        if was is not None and was != now:
            by_name = self._slices_by_service.get(was) or {}
            by_name.pop(key[1], None)
            if not by_name:
                self._slices_by_service.pop(was, None)
        if now is not None and new is not None:
            self._slices_by_service.setdefault(now, {})[key[1]] = new

    async def start(self) -> list[asyncio.Task[Any]]:
        """Load the APIServices, Services and EndpointSlices, then follow them; start the
        discovery of the remote groups. Returns the tasks (the server cancels them at stop)."""
        from k8py.apiserver.aggregator_discovery import RemoteDiscovery

        self.discovery = RemoteDiscovery(self)
        api_prefix = self._kind("apiregistration.k8s.io", "apiservices").key_prefix(None)
        loop = asyncio.get_running_loop()
        tasks = [
            loop.create_task(self.objects.mirror(api_prefix, reset=self._reset_apiservices,
                                                 apply=self._apply_apiservice,
                                                 synced=self._synced["apiservices"].set,
                                                 what="aggregator apiservices"), name="aggregator-apiservices"),
            loop.create_task(self._mirror("", "services", self.services, "services"), name="aggregator-services"),
            loop.create_task(self._mirror("discovery.k8s.io", "endpointslices", self.slices, "slices",
                                          self._index_slice),
                             name="aggregator-endpointslices"),
        ]
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                await asyncio.gather(*(e.wait() for e in self._synced.values()))
        except TimeoutError:
            log.error("aggregator: APIServices, Services or EndpointSlices not listed in %.0fs; aggregated APIs "
                      "answer 503 until they are", SYNC_TIMEOUT)
        tasks.append(loop.create_task(self.discovery.run(), name="aggregator-discovery"))
        tasks.append(loop.create_task(self._close_sessions_at_end(), name="aggregator-sessions"))
        return tasks

    async def _close_sessions_at_end(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await self._retiring.close_all()
            for s in list(self._sessions.values()):
                with contextlib.suppress(Exception):
                    await s.close()
            self._sessions.clear()

    def _session_key(self, apiservice: Obj) -> tuple[Any, ...]:
        spec = apiservice.get("spec") or {}
        ref = agg.service_ref(apiservice)
        assert ref is not None
        version = self.proxy_cert.version() if self.proxy_cert is not None else 0
        return spec.get("caBundle"), spec.get("insecureSkipTLSVerify") is True, agg.server_name(ref), version

    def _retire_unused_sessions(self) -> None:
        live = {self._session_key(a) for a in self.remote.values()}
        for key in [k for k in self._sessions if k not in live]:
            self._retiring.retire(self._sessions.pop(key))
            self._tls.pop(key, None)

    # -- lookups -------------------------------------------------------------------------------
    def remote_for(self, group: str, version: str) -> Obj | None:
        """The APIService backed by a Service that serves ``group/version``, if any."""
        if not self.remote:
            return None
        return self.remote.get((group, version))

    def resolve(self, ref: agg.ServiceRef) -> tuple[str, int]:
        """One ready endpoint of the Service (:func:`k8py.api.aggregator.resolve_endpoint`)."""
        svc = self.services.get((ref.namespace, ref.name))
        slices = list((self._slices_by_service.get((ref.namespace, ref.name)) or {}).values()) \
            if svc is not None else []
        return agg.resolve_endpoint(svc, slices, ref)

    def session_for(self, apiservice: Obj) -> aiohttp.ClientSession:
        """A pooled HTTPS session for the APIService's TLS settings (kept per caBundle,
        insecureSkipTLSVerify, server name and proxy certificate version). A caBundle that does
        not load is a ``ValueError`` (kube's transport building error)."""
        key = self._session_key(apiservice)
        s = self._sessions.get(key)
        if s is None or s.closed:
            self._retire_unused_sessions()
            cert = self.proxy_cert
            ctx = agg.client_ssl_context(apiservice, cert.cert_file if cert else None, cert.key_file if cert else None)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=DIAL_TIMEOUT, sock_read=None)
            s = aiohttp.ClientSession(timeout=timeout, auto_decompress=False, skip_auto_headers=(
                "Accept-Encoding", "User-Agent", "Content-Type"), connector=aiohttp.TCPConnector(ssl=ctx, limit=0))
            self._sessions[key] = s
            self._tls[key] = ctx
        return s

    # -- the proxy -----------------------------------------------------------------------------
    async def proxy(self, ctx: Ctx, apiservice: Obj) -> web.StreamResponse:
        req = ctx.request
        name = (apiservice.get("metadata") or {}).get("name", "")
        if not agg.is_available(apiservice):
            return proxy_error("service unavailable", 503)
        try:
            session = self.session_for(apiservice)
        except (ValueError, OSError) as e:
            log.warning("aggregator: cannot build the transport for %s: %s", name, e)
            return proxy_error(str(e), 500)
        if ctx.user is None:
            return proxy_error("missing user", 500)
        ref = agg.service_ref(apiservice)
        assert ref is not None
        try:
            host, port = self.resolve(ref)
        except agg.ResolveError as e:
            log.warning("aggregator: error resolving %s/%s: %s", ref.namespace, ref.name, e)
            return proxy_error("service unavailable", 503)
        websocket = is_websocket(req)
        spdy = spdyproxy.is_spdy_upgrade(req)
        if req.headers.get("Upgrade") and not websocket and not spdy:
            raise errors.not_implemented(
                f"k8py does not proxy upgrade requests (Upgrade: {req.headers['Upgrade']}) to aggregated API "
                f"servers yet ({name})")
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        url = f"https://{hostport}{req.raw_path}"
        headers: list[tuple[str, str]] = [
            (k, v) for k, v in req.headers.items()
            if k.lower() not in _DROP_REQUEST and not k.lower().startswith("impersonate-")
            and not agg.is_auth_proxy_header(k)]
        u = ctx.user
        headers += agg.auth_proxy_headers(u.name, u.uid, u.groups, u.extra)
        peer = req.remote or ""
        if peer:
            prior = req.headers.get("X-Forwarded-For")
            headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-for"]
            headers.append(("X-Forwarded-For", f"{prior}, {peer}" if prior else peer))
        if websocket:
            return await self._websocket(req, session, url, headers, ref)
        if spdy:  # kubectl's SPDY/3.1 fallback: a byte pipe once the backend switched protocols
            passed = [(k, v) for k, v in headers if k.lower() != spdyproxy.HEADER_PROTOCOL_VERSION.lower()]
            try:
                return await spdyproxy.relay(req, self._tls[self._session_key(apiservice)], host, port,
                                             req.raw_path, DIAL_TIMEOUT, headers=passed,
                                             server_hostname=agg.server_name(ref))
            except errors.StatusError as e:  # the backend not reached: kube's responder answers 503
                return proxy_error(str(e).removeprefix("error dialing backend: "), 503)
        body = await req.read() if req.can_read_body else None
        try:
            upstream = await session.request(req.method, yarl_url(url), headers=headers, data=body,
                                             allow_redirects=False, server_hostname=agg.server_name(ref))
        except (aiohttp.ClientError, OSError) as e:
            why = describe_error(e)
            log.warning("aggregator: error proxying %s %s to %s: %s", req.method, req.path, name, why)
            return proxy_error(why, 503)
        async with upstream:
            return await relay_response(req, upstream, _DROP_RESPONSE)

    async def _websocket(self, req: web.Request, session: aiohttp.ClientSession, url: str,
                         headers: list[tuple[str, str]], ref: agg.ServiceRef) -> web.StreamResponse:
        """A WebSocket upgrade: opened to the backend with the client's subprotocols, then every
        message relayed both ways (kubeletproxy's relay); a backend that refuses the upgrade
        answers the same request without it, and that answer goes back as it is."""
        offered = [p.strip() for p in req.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        drop = {"sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol", "sec-websocket-extensions"}
        ws_headers = [(k, v) for k, v in headers if k.lower() not in drop]
        try:
            upstream = await session.ws_connect(yarl_url(url), protocols=offered, headers=ws_headers, autoping=True,
                                                max_msg_size=MAX_STREAM_MESSAGE, server_hostname=agg.server_name(ref))
        except aiohttp.WSServerHandshakeError:
            try:
                async with session.get(yarl_url(url), headers=ws_headers, allow_redirects=False,
                                       server_hostname=agg.server_name(ref)) as r:
                    return web.Response(status=r.status, body=await r.read(),
                                        headers={k: v for k, v in r.headers.items()
                                                 if k.lower() not in _DROP_RESPONSE})
            except (aiohttp.ClientError, OSError) as e:
                return proxy_error(describe_error(e), 503)
        except (aiohttp.ClientError, OSError) as e:
            return proxy_error(describe_error(e), 503)
        return await answer_websocket(req, upstream)

    async def get(self, apiservice: Obj, path: str, timeout: float,
                  accept: str = "application/json") -> tuple[int, str, bytes]:
        """GET ``path`` from the APIService's backend as ``system:kube-aggregator`` (the
        discovery fetch): (status, content type, body). Raises ``ResolveError``, ``ValueError``,
        aiohttp and timeout errors."""
        ref = agg.service_ref(apiservice)
        assert ref is not None
        host, port = self.resolve(ref)
        session = self.session_for(apiservice)
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        headers = [("Accept", accept), *agg.auth_proxy_headers(agg.AGGREGATOR_USER, "", (), {})]
        async with asyncio.timeout(timeout):
            async with session.get(f"https://{hostport}{path}", headers=headers, allow_redirects=False,
                                   server_hostname=agg.server_name(ref)) as r:
                return r.status, r.headers.get("Content-Type", ""), await r.read()


def yarl_url(url: str) -> Any:
    """The URL as given: the client's raw path and query go on unchanged (no re-encoding)."""
    from yarl import URL

    return URL(url, encoded=True)


def _load(key: str, value: bytes) -> Obj | None:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as e:  # e.g. an object whose encryption key is lost
        log.warning("aggregator: cannot read %s: %s", key, e)
        return None
    return obj if isinstance(obj, dict) else None


# --------------------------------------------------------------------------- extension-apiserver-authentication

AUTH_CONFIGMAP_NAMESPACE = "kube-system"
AUTH_CONFIGMAP_NAME = "extension-apiserver-authentication"


def authentication_info(client_ca: str, requestheader_ca: str) -> Obj:
    """``kube-system/extension-apiserver-authentication`` as kube-apiserver publishes it (its
    ``ClusterAuthenticationInfo`` controller): how extension API servers authenticate callers
    (the client CA) and the front proxy (its CA, the allowed certificate name and the headers)."""
    def j(*v: str) -> str:
        return orjson.dumps(list(v)).decode()

    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": AUTH_CONFIGMAP_NAME, "namespace": AUTH_CONFIGMAP_NAMESPACE},
            "data": {"client-ca-file": client_ca,
                     "requestheader-client-ca-file": requestheader_ca,
                     "requestheader-allowed-names": j(agg.FRONT_PROXY_CLIENT_CN),
                     "requestheader-username-headers": j(agg.USERNAME_HEADER),
                     "requestheader-uid-headers": j(agg.UID_HEADER),
                     "requestheader-group-headers": j(agg.GROUP_HEADER),
                     "requestheader-extra-headers-prefix": j(agg.EXTRA_HEADER_PREFIX)}}


def authentication_info_from_files(client_ca_file: str, requestheader_ca_file: str) -> Obj:
    """:func:`authentication_info` with the CAs read from their files."""
    with open(client_ca_file, encoding="ascii") as f:
        client_ca = f.read()
    with open(requestheader_ca_file, encoding="ascii") as f:
        requestheader_ca = f.read()
    return authentication_info(client_ca, requestheader_ca)


async def publish_authentication_info(cp: Any, configmap: Obj) -> None:
    """Create the ConfigMap, or bring its data up to date (``cp`` is the ``ControlPlane``)."""
    kind = cp.registry.by_resource("", "v1", "configmaps")
    await cp._reconcile(kind, AUTH_CONFIGMAP_NAMESPACE, configmap, ("data",))


AUTH_RESYNC_SECONDS = 60.0  # kube's ClusterAuthenticationTrustController looks again every minute


async def keep_authentication_info(cp: Any, client_ca_file: str, requestheader_ca_file: str, *,
                                   resync: float = AUTH_RESYNC_SECONDS) -> None:
    """kube-apiserver's ``ClusterAuthenticationTrustController``: the ConfigMap is written again
    as soon as somebody changes or deletes it (a watch on its key), and every ``resync`` seconds
    from the CA files, so a rotated CA reaches the extension API servers. Runs until cancelled;
    the first write is the caller's (:func:`publish_authentication_info`, before serving)."""
    kind = cp.registry.by_resource("", "v1", "configmaps")
    key = kind.key(AUTH_CONFIGMAP_NAMESPACE, AUTH_CONFIGMAP_NAME)
    changed = asyncio.Event()

    def seen(k: str, _value: bytes | None) -> None:
        if k == key:
            changed.set()

    mirror = asyncio.create_task(cp.objects.mirror(key, reset=changed.set, apply=seen, synced=lambda: None,
                                                   what=AUTH_CONFIGMAP_NAME), name="authentication-info watch")
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(resync):
                    await changed.wait()
            changed.clear()
            try:
                await publish_authentication_info(cp, authentication_info_from_files(client_ca_file,
                                                                                      requestheader_ca_file))
            except Exception as e:  # noqa: BLE001 - the store or a file briefly unavailable: next round
                log.warning("cannot update %s/%s: %s", AUTH_CONFIGMAP_NAMESPACE, AUTH_CONFIGMAP_NAME, e)
    finally:
        mirror.cancel()
        await asyncio.gather(mirror, return_exceptions=True)
