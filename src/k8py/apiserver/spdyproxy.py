"""The API server's pass-through for SPDY/3.1 upgrades to a kubelet.

kubectl falls back to a plain ``Upgrade: SPDY/3.1`` request (a POST with
``X-Stream-Protocol-Version``) for ``pods/portforward`` when its WebSocket tunnel is off
(``KUBECTL_PORT_FORWARD_WEBSOCKETS=false``) or refused. kube-apiserver's ``UpgradeAwareHandler``
sends the same upgrade to the kubelet and, once the kubelet switched protocols, copies bytes both
ways; so does this. The kubelet's answer to the upgrade is passed on: its ``101`` with the
protocol it chose, or its refusal (status, type and body as they are). Nothing of SPDY is read
here: the connection is a byte pipe, and ends as soon as either side ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Sequence

from aiohttp import web

from k8py.api import errors

__all__ = ["is_spdy_upgrade", "relay"]

log = logging.getLogger("k8py.apiserver.spdyproxy")

HEADER_PROTOCOL_VERSION = "X-Stream-Protocol-Version"
HEADER_ACCEPTED_PROTOCOLS = "X-Accepted-Stream-Protocol-Versions"
MAX_HEAD = 64 * 1024
MAX_ERROR_BODY = 50000
PIPE_HIGH_WATER = 1 << 20  # bytes waiting for the kubelet before the client is not read


def is_spdy_upgrade(req: web.Request) -> bool:
    return (req.headers.get("Upgrade", "").upper().startswith("SPDY/")
            and "upgrade" in req.headers.get("Connection", "").lower())


class _ToKubelet:
    """What aiohttp feeds the client's bytes to once the connection is upgraded (its "payload
    parser"): written to the kubelet, the client paused while the kubelet is behind."""

    def __init__(self, request: web.Request, upstream: asyncio.StreamWriter, ended: asyncio.Event) -> None:
        self.request = request
        self.upstream = upstream
        self.ended = ended
        self.paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self.upstream.is_closing():
            return False, b""
        self.upstream.write(data)
        if not self.paused and self.upstream.transport.get_write_buffer_size() > PIPE_HIGH_WATER:
            self.paused = True
            # the transport itself: aiohttp's protocol would pause its HTTP parser, which this
            # connection no longer uses (aiohttp does not know SPDY as an upgrade)
            if self.request.transport is not None:
                self.request.transport.pause_reading()
            asyncio.get_running_loop().create_task(self._resume())
        return False, b""

    async def _resume(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self.upstream.drain()
        self.paused = False
        transport = self.request.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    def feed_eof(self) -> None:
        self.ended.set()


def _parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"malformed status line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
    return int(parts[1]), headers


async def relay(req: web.Request, ssl_ctx: ssl.SSLContext | None, host: str, port: int, target: str,
                connect_timeout: float, *, headers: Sequence[tuple[str, str]] = (),
                server_hostname: str | None = None) -> web.StreamResponse:
    """Send ``req``'s upgrade to the kubelet at ``host:port`` as ``target`` (path and query), and
    pipe the two connections together once it switched protocols. ``headers`` go with the
    upgrade (the aggregation layer's front-proxy headers); ``server_hostname`` is the name the
    backend's certificate is checked for (default: ``host``)."""
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        async with asyncio.timeout(connect_timeout):
            up_r, up_w = await asyncio.open_connection(host, port, ssl=ssl_ctx, limit=MAX_HEAD,
                                                       server_hostname=server_hostname if ssl_ctx else None)
    except TimeoutError:
        raise errors.StatusError(500, "", f"error dialing backend: dial tcp {hostport}: i/o timeout") from None
    except OSError as e:
        why = os.strerror(e.errno).lower() if e.errno else str(e)
        raise errors.StatusError(500, "", f"error dialing backend: dial tcp {hostport}: connect: {why}") from None
    try:
        lines = [f"{req.method} {target} HTTP/1.1", f"Host: {hostport}", "Connection: Upgrade",
                 f"Upgrade: {req.headers['Upgrade']}"]
        lines += [f"{HEADER_PROTOCOL_VERSION}: {v}" for v in req.headers.getall(HEADER_PROTOCOL_VERSION, [])]
        lines += [f"{k}: {v}" for k, v in headers]
        lines.append("Content-Length: 0")
        up_w.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            status, headers = _parse_head(await up_r.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError) as e:
            raise errors.StatusError(500, "", f"error upgrading connection: {e}") from None
        if status != 101:
            return await _refused(status, headers, up_r)
        return await _pipe(req, headers, up_r, up_w)
    finally:
        up_w.close()
        with contextlib.suppress(Exception):
            await up_w.wait_closed()


async def _refused(status: int, headers: list[tuple[str, str]], up_r: asyncio.StreamReader) -> web.Response:
    """The kubelet's refusal, as it is (kube's proxy passes a failed upgrade through)."""
    h = {k.lower(): v for k, v in headers}
    try:
        if "content-length" in h and h["content-length"].isdigit():
            body = await up_r.readexactly(min(int(h["content-length"]), MAX_ERROR_BODY))
        else:
            body = await up_r.read(MAX_ERROR_BODY)
    except (asyncio.IncompleteReadError, ConnectionError) as e:
        body = getattr(e, "partial", b"")
    out = {k: v for k, v in headers if k.lower() == HEADER_ACCEPTED_PROTOCOLS.lower()}
    resp = web.Response(status=status, body=body, headers=out)
    resp.headers["Content-Type"] = h.get("content-type", "text/plain; charset=utf-8")
    return resp


async def _pipe(req: web.Request, headers: list[tuple[str, str]], up_r: asyncio.StreamReader,
                up_w: asyncio.StreamWriter) -> web.StreamResponse:
    passed = {k: v for k, v in headers if k.lower() in ("upgrade", HEADER_PROTOCOL_VERSION.lower())}
    resp = web.StreamResponse(status=101, headers={"Connection": "Upgrade", **passed})
    resp.force_close()
    writer = await resp.prepare(req)
    assert writer is not None
    ended = asyncio.Event()
    # from here the client's bytes go to the kubelet as they come
    req.protocol.set_parser(_ToKubelet(req, up_w, ended))  # type: ignore[arg-type]

    async def down() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await up_r.read(65536):
                await writer.write(data)

    down_task = asyncio.create_task(down())
    client_gone = asyncio.create_task(ended.wait())
    try:
        await asyncio.wait({down_task, client_gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (down_task, client_gone):
            t.cancel()
        await asyncio.gather(down_task, client_gone, return_exceptions=True)
    return resp
