"""One log line per HTTP request, as kube-apiserver's httplog writes them (at debug level here,
``k8py server --debug``)::

    "HTTP" verb="LIST" URI="/api/v1/pods?limit=500" latency="1.234ms" userAgent="kubectl/v1.37.0 ..."
    audit-ID="" srcIP="127.0.0.1:51234" resp=200

The line is written when the request ends, so a watch is logged when it closes (with its whole
duration as the latency), as kube logs long-running requests. The verb is kube's normalized one
(``metrics.NormalizedVerb``): GET of a collection is LIST, with ``watch`` it is WATCH, an
apply patch is APPLY.

It is an aiohttp middleware, not an access logger, because aiohttp's access log is skipped when
the client goes away mid-request (a watch ended by Ctrl-C); ``on_response_prepare`` remembers
the status a streaming response already sent, for that line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from k8py.api.gotext import go_duration
from k8py.apiserver import requestinfo

__all__ = ["install", "log", "middleware", "normalized_verb"]

log = logging.getLogger("k8py.httplog")

_STATUS = web.RequestKey("k8py.httplog.status", int)
APPLY_PATCH = "application/apply-patch+yaml"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install(app: web.Application) -> None:
    """Log every request of ``app`` (outermost middleware, so the status is the one sent)."""
    app.middlewares.insert(0, middleware)
    app.on_response_prepare.append(_remember_status)


async def _remember_status(request: web.Request, response: web.StreamResponse) -> None:
    request[_STATUS] = response.status


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not log.isEnabledFor(logging.DEBUG):
        return await handler(request)
    loop = asyncio.get_running_loop()
    start = loop.time()
    status = 0
    audit_id = ""
    try:
        resp = await handler(request)
        status = resp.status
        audit_id = resp.headers.get("Audit-Id", "")
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    except asyncio.CancelledError:
        # The client went away: what was already sent (a watch's 200), or nothing (kube's 0).
        status = request.get(_STATUS, 0)
        raise
    except Exception:
        status = 500
        raise
    finally:
        log.debug('"HTTP" verb=%s URI=%s latency=%s userAgent=%s audit-ID=%s srcIP=%s resp=%d',
                  _q(normalized_verb(request)), _q(request.path_qs), _q(go_duration(loop.time() - start)),
                  _q(request.headers.get("User-Agent", "")), _q(audit_id), _q(_src_ip(request)), status)


def normalized_verb(request: web.Request) -> str:
    """kube's metrics.NormalizedVerb: the HTTP method, with GET made LIST or WATCH for
    collections and watches, and PATCH made APPLY for server-side apply."""
    method = request.method.upper()
    if method == "GET":
        info = requestinfo.parse(request.path, method, dict(request.query))
        if info.is_resource_request and info.verb in ("list", "watch"):
            return info.verb.upper()
        return method
    if method == "PATCH" and request.content_type == APPLY_PATCH:
        return "APPLY"
    return method


def _src_ip(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    if not peer:
        return ""
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _q(s: str) -> str:
    """Go's %q for the strings that occur here: double quotes, backslash escapes."""
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    if not out.isprintable():
        out = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
                      for c in out)
    return f'"{out}"'


