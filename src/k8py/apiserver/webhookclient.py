"""The API server's webhook client (kube's ``k8s.io/apiserver/pkg/util/webhook``): what the
admission webhooks (:mod:`k8py.apiserver.admission.webhook`) and the CRD conversion webhooks
(:mod:`k8py.apiserver.conversionwebhook`) share.

- Where: a ``clientConfig`` names a ``url`` (dialled as given) or a ``service`` (namespace, name,
  ``path``, ``port`` 443 by default) resolved to one ready endpoint by the aggregation layer's
  resolver (``Aggregator.resolve``); a Service is dialled over HTTPS with the server name
  ``<service>.<namespace>.svc``.
- Trust: ``caBundle``, else the system's roots. One pooled HTTPS session per CA bundle
  (:class:`Sessions`); a bundle no configuration names any more has its session retired.
- A failed call raises ``CallError`` with Go's net/http and client-go's words (``Post "<url>":
  dial tcp ...: connect: connection refused``, ``context deadline exceeded``...).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
import orjson

from k8py.api import aggregator as agg
from k8py.api.admissionwebhook import CallError
from k8py.apiserver.sessions import RetiredSessions

Obj = dict[str, Any]

MAX_RESPONSE_BYTES = 3 * 1024 * 1024  # kube reads at most this much of a webhook's answer
RETIRE_AFTER = 35.0  # a retired session closes after the longest call (timeoutSeconds <= 30) could end

__all__ = ["MAX_RESPONSE_BYTES", "CallError", "Sessions", "describe", "http_error", "post", "target"]


class Sessions:
    """HTTPS sessions by CA bundle. ``live()`` lists the bundles the configurations name now: a
    new session retires those of bundles no longer named (cert-manager rotates them), after the
    longest call that may still be using one."""

    def __init__(self, name: str, live: Callable[[], Iterable[str]]) -> None:
        self.by_ca: dict[str, aiohttp.ClientSession] = {}
        self.retiring = RetiredSessions(name, RETIRE_AFTER)
        self._live = live

    def get(self, ca_bundle: str) -> aiohttp.ClientSession:
        """The session trusting ``ca_bundle``; raises ValueError for a bundle that is not PEM."""
        s = self.by_ca.get(ca_bundle)
        if s is None or s.closed:
            live = set(self._live())
            for ca in [c for c in self.by_ca if c not in live and c != ca_bundle]:
                self.retiring.retire(self.by_ca.pop(ca))
            # the aggregation layer's TLS client: caBundle, else the system's roots
            ctx = agg.client_ssl_context({"spec": {"caBundle": ca_bundle}}, None, None)
            s = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=0),
                                      skip_auto_headers=("User-Agent",))
            self.by_ca[ca_bundle] = s
        return s

    async def close_all(self) -> None:
        await self.retiring.close_all()
        for s in self.by_ca.values():
            with contextlib.suppress(Exception):
                await s.close()
        self.by_ca.clear()


def target(client_config: Obj, resolver: Any, query: str = "") -> tuple[str, str, str | None]:
    """(URL to dial, URL as kube names it in errors, TLS server name) of a ``clientConfig``;
    ``query`` (``?timeout=10s``) is appended to both."""
    if client_config.get("url"):
        url = f"{client_config['url']}{query}"
        return url, url, None
    svc = client_config.get("service") or {}
    ref = agg.ServiceRef(str(svc.get("namespace") or ""), str(svc.get("name") or ""), int(svc.get("port") or 443))
    path = str(svc.get("path") or "")
    shown = f"https://{agg.server_name(ref)}:{ref.port}{path}{query}"
    if resolver is None:
        raise CallError(f'Post "{shown}": no service resolver: webhooks of Services need the aggregation layer')
    try:
        host, port = resolver.resolve(ref)
    except agg.ResolveError as e:
        raise CallError(f'Post "{shown}": {e}') from None
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"https://{hostport}{path}{query}", shown, agg.server_name(ref)


async def post(sessions: Sessions, client_config: Obj, resolver: Any, body: Obj, timeout: float,
               query: str = "") -> Any:
    """POST ``body`` as JSON to the webhook of ``client_config`` within ``timeout`` seconds; the
    decoded JSON answer of a 2xx reply. Every failure raises ``CallError`` in kube's words."""
    url, shown, server_name = target(client_config, resolver, query)
    try:
        session = sessions.get(str(client_config.get("caBundle") or ""))
    except ValueError as e:
        raise CallError(f"could not get REST client: {e}") from None
    extra: dict[str, Any] = {"server_hostname": server_name} if server_name else {}
    try:
        async with asyncio.timeout(timeout):
            async with session.post(url, data=orjson.dumps(body), allow_redirects=False,
                                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                                    **extra) as r:
                status = r.status
                raw = bytearray()
                while len(raw) <= MAX_RESPONSE_BYTES:  # read() may return less than asked
                    chunk = await r.content.read(MAX_RESPONSE_BYTES + 1 - len(raw))
                    if not chunk:
                        break
                    raw += chunk
    except TimeoutError:
        raise CallError(f'Post "{shown}": context deadline exceeded') from None
    except (aiohttp.ClientError, OSError, ssl.SSLError) as e:
        raise CallError(f'Post "{shown}": {describe(e)}') from None
    if len(raw) > MAX_RESPONSE_BYTES:
        raise CallError(f"the webhook's response is larger than {MAX_RESPONSE_BYTES} bytes")
    if not 200 <= status < 300:
        raise CallError(http_error(status, bytes(raw)))
    try:
        return orjson.loads(bytes(raw))
    except orjson.JSONDecodeError as e:
        raise CallError(f"the server responded with a body that is not JSON: {e}") from None


def describe(e: BaseException) -> str:
    """A transport error as Go's net/http words the usual ones."""
    os_err = getattr(e, "os_error", None)
    cause = os_err if isinstance(os_err, OSError) else e
    host = getattr(e, "host", None)
    port = getattr(e, "port", None)
    if isinstance(cause, ConnectionRefusedError) and host is not None:
        return f"dial tcp {host}:{port}: connect: connection refused"
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        return f"tls: failed to verify certificate: {e.certificate_error}"
    return str(e) or type(e).__name__


def http_error(status: int, body: bytes) -> str:
    """client-go's error for an answer that is not 2xx (a Status body speaks for itself)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("message"):
        return str(doc["message"])
    text = body.decode("utf-8", "replace").strip()
    if text:
        return f'an error on the server ("{text[:1024]}") has prevented the request from succeeding'
    return f"the server responded with the status code {status} but did not return more information"
