"""kubelet's port-forward: ``/portForward/{namespace}/{pod}[/{uid}]`` (GET or POST).

What the API server's ``pods/portforward`` leads to. Three ways in, as kubelet and client-go
speak them:

- **SPDY/3.1 upgrade** (``Connection: Upgrade``, ``Upgrade: SPDY/3.1``,
  ``X-Stream-Protocol-Version: portforward.k8s.io``; kubectl's fallback and what kube-apiserver
  sends kubelets): for each connection it forwards, the client opens an *error* and a *data*
  stream, with the headers ``streamType`` (``error``/``data``), ``port`` and ``requestID`` (the
  pair's key; derived from the stream ids for clients too old to send it, as kubelet does). A
  stream with a bad header is reset; a pair missing its other half after 30 s is told "timed out
  waiting for streams" on its error stream (kubelet's stream creation timeout).
- **SPDY tunnelled in WebSocket** (subprotocol ``SPDY/3.1+portforward.k8s.io``, kubectl 1.37's
  default; kube-apiserver unwraps it, a pass-through proxy hands it to us as it is): the same
  streams in binary messages.
- **WebSocket channels** (``v4.channel.k8s.io``, ``v4.base64.channel.k8s.io``; the Python client):
  the ports are query parameters ``port`` (kube-apiserver's name for the kubelet; ``ports``, the
  client's name, is taken too), one forwarded connection per port, opened at once; port i has the
  data channel 2i and the error channel 2i+1, and the first message on each is the port as two
  bytes little-endian. When every port's connection has ended, the WebSocket closes.

Each forwarded connection goes to ``localhost:PORT`` *inside the pod's network namespace*, as
containerd does it: IPv4 (127.0.0.1) first, then IPv6 (::1). The socket is created by a
short-lived thread that entered the sandbox's netns with ``setns`` (the namespace is the
thread's alone and the socket keeps it after the thread ends); it connects from the event loop.
A failure is written on the error stream in kubelet's and containerd's words (``error forwarding
port 80 to pod <sandbox>, uid : failed to execute portforward in network namespace "...": failed
to connect to localhost:80 inside namespace "<sandbox>", IPv4: dial tcp4 127.0.0.1:80: connect:
connection refused IPv6 dial tcp6 [::1]:80: connect: connection refused ``), the streams are
closed, and the connection to the client stays up for the next forwarded connection (kubectl
1.37 itself then ends its port-forward with "lost connection to pod", as against kubelet).

Bytes are copied both ways as they come. When one direction ends, its end is passed on (FIN on
the stream, a TCP half-close to the pod) and the other direction gets one second to finish
(containerd's grace, after socat), then both are closed. Everything a connection started ends
with it: a client that goes away mid-stream cancels the handler, which closes every pod socket
and task it made. A connection with nothing going either way for kubelet's streaming idle
timeout (``--streaming-connection-idle-timeout``, 4 h) is closed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import functools
import logging
import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from k8py.kubelet import spdy
from k8py.kubelet.runtime.types import Runtime, SandboxState, SandboxStatus

__all__ = ["PortForward", "PortForwardError", "connect_in_sandbox", "parse_ports"]

log = logging.getLogger("k8py.kubelet.portforward")

Pod = Mapping[str, Any]
FindPod = Callable[[str, str], Awaitable[Pod | None]]

PROTOCOL_V1 = "portforward.k8s.io"  # the SPDY protocol (X-Stream-Protocol-Version)
TUNNEL_PROTOCOL = spdy.WEBSOCKET_TUNNEL_PREFIX + PROTOCOL_V1
WS_BINARY = "v4.channel.k8s.io"
WS_BASE64 = "v4.base64.channel.k8s.io"
HEADER_PROTOCOL_VERSION = spdy.HEADER_PROTOCOL_VERSION
HEADER_ACCEPTED_PROTOCOLS = spdy.HEADER_ACCEPTED_PROTOCOLS

STREAM_TYPE = "streamType"
PORT = "port"
REQUEST_ID = "requestID"

STREAM_CREATION_TIMEOUT = 30.0  # kubelet's: both streams of a pair within this
IDLE_TIMEOUT = 4 * 3600.0  # kubelet's --streaming-connection-idle-timeout: nothing either way this long
LINGER = 1.0  # after one direction ends, the other's time to finish (containerd)
DIAL_TIMEOUT = 5.0  # connecting to localhost in the pod (containerd's dial timeout)
READ_CHUNK = 32 * 1024
WS_INPUT_LIMIT = 1 << 20  # unread client bytes per port before the WebSocket is not read


class PortForwardError(Exception):
    """The forward could not start; the message is the runtime's, for the error stream."""


class _Duplex(Protocol):
    """The client's side of one forwarded connection: a SPDY data stream or a WebSocket channel."""

    async def read(self) -> bytes: ...  # b"" at the end

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...  # no more data from us


def _text(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain", charset="utf-8", headers=headers)


def parse_ports(values: Sequence[str]) -> list[int]:
    """kubelet's ``NewV4Options``: each value a comma-separated list of ports 1-65535;
    :class:`ValueError` with kubelet's words."""
    if not values:
        raise ValueError(f'query parameter "{PORT}" is required')
    ports: list[int] = []
    for value in values:
        if not value:
            raise ValueError(f'query parameter "{PORT}" cannot be empty')
        for p in value.split(","):
            port = _parse_port(p, value)
            ports.append(port)
    return ports


def _parse_port(p: str, whole: str) -> int:
    """Go's ``strconv.ParseUint(p, 10, 16)`` and kubelet's "> 0"."""
    if not p.isascii() or not p.isdigit():
        raise ValueError(f'unable to parse "{whole}" as a port: strconv.ParseUint: parsing "{p}": invalid syntax')
    port = int(p)
    if port > 65535:
        raise ValueError(f'unable to parse "{whole}" as a port: strconv.ParseUint: parsing "{p}": value out of range')
    if port < 1:
        raise ValueError(f'port "{whole}" must be > 0')
    return port


# --------------------------------------------------------------------------- into the pod

CLONE_NEWNET = 0x40000000


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns_net(fd: int) -> None:
    """``setns(fd, CLONE_NEWNET)`` for the calling thread (``os.setns`` is Python 3.12's)."""
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _open_sockets(netns_path: str) -> tuple[socket.socket, socket.socket | None]:
    """In a thread of its own: enter the netns, make an IPv4 and (if the namespace has IPv6) an
    IPv6 TCP socket there. A socket belongs to the namespace it was made in for good."""
    if netns_path:
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns_net(fd)
        finally:
            os.close(fd)
    s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s4.setblocking(False)
    s6: socket.socket | None = None
    with contextlib.suppress(OSError):  # a namespace without IPv6
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s6.setblocking(False)
    return s4, s6


async def _sockets_in(netns_path: str) -> tuple[socket.socket, socket.socket | None]:
    """:func:`_open_sockets` on a new thread: the thread's namespace changes with it and it ends
    at once, so no pooled thread is ever left in a pod's namespace."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[tuple[socket.socket, socket.socket | None]] = loop.create_future()

    def deliver(result: tuple[socket.socket, socket.socket | None] | None, error: BaseException | None) -> None:
        if fut.cancelled():  # the client went while the thread worked: nothing must leak
            for s in result or ():
                if s is not None:
                    s.close()
        elif error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = _open_sockets(netns_path)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting coroutine
            loop.call_soon_threadsafe(deliver, None, e)
        else:
            loop.call_soon_threadsafe(deliver, result, None)

    threading.Thread(target=run, name="k8py-portforward-netns", daemon=True).start()
    return await fut


def _dial_error(family: str, addr: str, e: BaseException) -> str:
    """Go's ``net.Dial`` error text (``dial tcp4 127.0.0.1:80: connect: connection refused``)."""
    if isinstance(e, TimeoutError) and not e.errno:
        return f"dial {family} {addr}: i/o timeout"
    if isinstance(e, OSError) and e.errno:
        return f"dial {family} {addr}: connect: {os.strerror(e.errno).lower()}"
    return f"dial {family} {addr}: {e}"


async def connect_in_sandbox(sandbox: SandboxStatus, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to ``localhost:port`` inside the sandbox's network namespace (the agent's
    own for a host-network pod); :class:`PortForwardError` in containerd's words."""
    netns = sandbox.netns_path
    if sandbox.state != SandboxState.READY or (netns and not os.path.exists(netns)):
        raise PortForwardError(f'network namespace for sandbox "{sandbox.id}" is closed')
    try:
        s4, s6 = await _sockets_in(netns)
    except (OSError, RuntimeError) as e:  # RuntimeError: no thread could be started
        raise PortForwardError(f'failed to execute portforward in network namespace "{netns or "host"}": {e}') from None
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    for sock, family, addr, target in ((s4, "tcp4", f"127.0.0.1:{port}", ("127.0.0.1", port)),
                                       (s6, "tcp6", f"[::1]:{port}", ("::1", port, 0, 0))):
        if sock is None:
            errors.append(f"dial {family} {addr}: socket: address family not supported by protocol")
            continue
        try:
            async with asyncio.timeout(DIAL_TIMEOUT):
                await loop.sock_connect(sock, target)
        except (OSError, TimeoutError) as e:
            sock.close()
            errors.append(_dial_error(family, addr, e))
            continue
        except BaseException:
            sock.close()
            if s6 is not None and sock is s4:
                s6.close()
            raise
        if sock is s4 and s6 is not None:
            s6.close()
        try:
            return await asyncio.open_connection(sock=sock, limit=READ_CHUNK * 2)
        except BaseException:
            sock.close()
            raise
    raise PortForwardError(
        f'failed to execute portforward in network namespace "{netns or "host"}": failed to connect to '
        f'localhost:{port} inside namespace "{sandbox.id}", IPv4: {errors[0]} IPv6 {errors[1]} ')


async def forward(client: _Duplex, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy both ways until both are done, or one is and the other had :data:`LINGER` more."""

    async def up() -> None:  # client -> pod
        while data := await client.read():
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # the client is done sending: the pod reads its end

    async def down() -> None:  # pod -> client
        while data := await reader.read(READ_CHUNK):
            await client.write(data)
        await client.close()  # the pod is done: FIN to the client now, not after the grace

    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            await asyncio.wait(pending, timeout=LINGER)
    finally:
        for t in tasks:
            t.cancel()
        for r in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(r, Exception) and not isinstance(r, (ConnectionError, OSError)):
                log.debug("port-forward copy ended with %r", r)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# --------------------------------------------------------------------------- the handler


class PortForward:
    """The kubelet API's port-forward endpoint over ``runtime``'s sandboxes."""

    def __init__(self, runtime: Runtime, find_pod: FindPod, *,
                 stream_creation_timeout: float = STREAM_CREATION_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.runtime = runtime
        self.find_pod = find_pod
        self.stream_creation_timeout = stream_creation_timeout
        self.idle_timeout = idle_timeout

    def add_routes(self, router: web.UrlDispatcher) -> None:
        # kubelet's path is /portForward/; the lower-case spelling is taken too
        for prefix in ("/portForward", "/portforward"):
            for path in (f"{prefix}/{{namespace}}/{{pod}}", f"{prefix}/{{namespace}}/{{pod}}/{{uid}}"):
                router.add_route("GET", path, self.handle)
                router.add_route("POST", path, self.handle)

    async def sandbox_for(self, pod: Pod) -> SandboxStatus | None:
        """The pod's newest sandbox, as kubelet's ``getSandboxIDByPodUID`` picks it."""
        m = pod.get("metadata") or {}
        uid = m.get("uid", "")
        mine = [s for s in await self.runtime.list_pod_sandboxes()
                if s.uid == uid or (not uid and s.name == m.get("name") and s.namespace == m.get("namespace"))]
        if not mine:
            return None
        return max(mine, key=lambda s: (s.created_at, s.attempt))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        client_protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
                            if p.strip()]
        tunnel = websocket and TUNNEL_PROTOCOL in client_protocols
        ports: list[int] = []
        given = request.query.getall(PORT, []) or request.query.getall("ports", [])
        # Ports are the WebSocket channels' (kubelet reads them only then); a request with no
        # upgrade at all that names them is checked the same way, so that a proxy asking again
        # without the upgrade, for the words of a refusal, gets the same words.
        plain = not websocket and "upgrade" not in request.headers.get("Connection", "").lower()
        if (websocket and not tunnel) or (plain and given):
            try:
                ports = parse_ports(given)
            except ValueError as e:
                return _text(400, str(e))
        pod = await self.find_pod(ns, name)
        if pod is None:
            return _text(404, "pod does not exist")
        uid = request.match_info.get("uid")
        if uid and (pod.get("metadata") or {}).get("uid") != uid:
            return _text(404, "pod not found")
        sandbox = await self.sandbox_for(pod)
        if sandbox is None:
            return _text(500, f'pod not found ("{name}_{ns}")')
        if tunnel:
            ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), autoping=True)
            await ws.prepare(request)
            pairs = _SpdyPairs(sandbox, self.stream_creation_timeout, self.idle_timeout)
            session = spdy.Session(pairs.on_stream)
            await spdy.serve_websocket(request, ws, session, pairs.run)
            return ws
        if websocket:
            ws = web.WebSocketResponse(protocols=(WS_BINARY, WS_BASE64), autoping=True)
            await ws.prepare(request)
            await _serve_channels(ws, ports, sandbox, self.idle_timeout)
            return ws
        return await self._spdy_upgrade(request, sandbox)

    async def _spdy_upgrade(self, request: web.Request, sandbox: SandboxStatus) -> web.StreamResponse:
        """kubelet's ``httpstream.Handshake`` and ``UpgradeResponse``."""
        offered = spdy.offered_protocols(request)
        if not offered:
            return _text(400, f"unable to upgrade: {HEADER_PROTOCOL_VERSION} is required")
        if PROTOCOL_V1 not in offered:
            return _text(403, f"unable to upgrade: unable to negotiate protocol: client supports [{' '.join(offered)}], "
                              f"server accepts [{PROTOCOL_V1}]", {HEADER_ACCEPTED_PROTOCOLS: PROTOCOL_V1})
        if not spdy.is_upgrade(request.headers):
            return _text(400, f"unable to upgrade: missing upgrade headers in request: {spdy.go_header(request.headers)}")
        pairs = _SpdyPairs(sandbox, self.stream_creation_timeout, self.idle_timeout)

        def make_session(**kw: Any) -> spdy.Session:
            return spdy.Session(pairs.on_stream, **kw)

        return await spdy.serve_upgraded(request, make_session, {HEADER_PROTOCOL_VERSION: PROTOCOL_V1}, pairs.run)


def _error_text(port: int, sandbox: SandboxStatus, e: BaseException) -> str:
    # kubelet's streaming server names the pod by its sandbox id, with no uid
    return f"error forwarding port {port} to pod {sandbox.id}, uid : {e}"


async def _forward_port(client: _Duplex, port: int, sandbox: SandboxStatus) -> str | None:
    """One forwarded connection; the error text for the error stream, or None."""
    try:
        reader, writer = await connect_in_sandbox(sandbox, port)
    except PortForwardError as e:
        await client.close()
        return _error_text(port, sandbox, e)
    await forward(client, reader, writer)
    return None


# --------------------------------------------------------------------------- SPDY streams


class _Pair:
    __slots__ = ("data", "error", "request_id", "timer")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.data: spdy.Stream | None = None
        self.error: spdy.Stream | None = None
        self.timer: asyncio.TimerHandle | None = None


class _SpdyPairs:
    """kubelet's ``httpStreamHandler``: streams paired by request id, each pair one forwarded
    connection."""

    def __init__(self, sandbox: SandboxStatus, creation_timeout: float, idle_timeout: float) -> None:
        self.sandbox = sandbox
        self.creation_timeout = creation_timeout
        self.idle_timeout = idle_timeout
        self.pairs: dict[str, _Pair] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def on_stream(self, st: spdy.Stream) -> str | None:
        port = st.header(PORT)
        if not port:
            return f'"{PORT}" header is required'
        try:
            _parse_port(port, port)
        except ValueError as e:
            return str(e)
        stype = st.header(STREAM_TYPE)
        if not stype:
            return f'"{STREAM_TYPE}" header is required'
        if stype not in ("error", "data"):
            return f'invalid stream type "{stype}"'
        rid = st.header(REQUEST_ID)
        if not rid:
            # an old client: the pair's streams have consecutive odd ids, error first (kubelet's guess)
            rid = str(st.id if stype == "error" else st.id - 2)
        pair = self.pairs.get(rid)
        if pair is None:
            pair = self.pairs[rid] = _Pair(rid)
            pair.timer = asyncio.get_running_loop().call_later(self.creation_timeout, self._timed_out, pair)
        if getattr(pair, stype) is not None:
            # kubelet tells the pair's error stream and leaves the pair waiting for its other half
            self._spawn(self._report(pair.error, f"error processing stream for request {rid}: {stype} stream "
                                                 f"already assigned", close=False))
            return f"{stype} stream already assigned"
        setattr(pair, stype, st)
        if pair.data is not None and pair.error is not None:
            if pair.timer is not None:
                pair.timer.cancel()
            del self.pairs[rid]
            self._spawn(self._serve_pair(pair.data, pair.error))
        return None

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _timed_out(self, pair: _Pair) -> None:
        if self.pairs.get(pair.request_id) is not pair:
            return
        del self.pairs[pair.request_id]
        log.info("port-forward request %s: timed out waiting for streams", pair.request_id)
        if pair.data is not None:
            pair.data.reset()
        self._spawn(self._report(pair.error, f"(request={pair.request_id}) timed out waiting for streams"))

    @staticmethod
    async def _report(error: spdy.Stream | None, message: str, *, close: bool = True) -> None:
        if error is None:
            return
        with contextlib.suppress(spdy.StreamClosedError):
            await error.write(message.encode())
            if close:
                await error.close()

    async def _serve_pair(self, data: spdy.Stream, error: spdy.Stream) -> None:
        port = int(data.header(PORT))
        try:
            message = await _forward_port(data, port, self.sandbox)
            if message is not None:
                log.info("%s", message)
                await error.write(message.encode())
        except (spdy.StreamClosedError, ConnectionError, OSError) as e:
            log.debug("port-forward to port %d ended: %s", port, e)
        finally:
            await data.close()
            await error.close()

    async def run(self, session: spdy.Session) -> None:
        """Serve until the connection ends (or has been idle for the idle timeout: no frame
        either way, as spdystream counts it); then every forward it started is stopped."""
        try:
            while not session.closed:
                left = session.last_activity + self.idle_timeout - time.monotonic()
                if left <= 0:
                    log.info("port-forward connection idle for %.0f s: closing it", self.idle_timeout)
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await session.wait_closed()
        finally:
            for pair in self.pairs.values():
                if pair.timer is not None:
                    pair.timer.cancel()
            self.pairs.clear()
            tasks = list(self.tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


# --------------------------------------------------------------------------- WebSocket channels


class _Channel:
    """A port's data channel on the WebSocket, as a :class:`_Duplex`."""

    def __init__(self, ws: web.WebSocketResponse, number: int, b64: bool, room: asyncio.Event,
                 activity: _Activity) -> None:
        self.activity = activity
        self.ws = ws
        self.number = number
        self.b64 = b64
        self.inbox: deque[bytes] = deque()
        self.buffered = 0
        self.ended = False
        self.readable = asyncio.Event()
        self.room = room

    def put(self, data: bytes) -> None:
        self.inbox.append(data)
        self.buffered += len(data)
        self.readable.set()

    def end(self) -> None:
        self.ended = True
        self.readable.set()

    async def read(self) -> bytes:
        while not self.inbox:
            if self.ended:
                return b""
            self.readable.clear()
            await self.readable.wait()
        data = self.inbox.popleft()
        self.buffered -= len(data)
        if self.buffered < WS_INPUT_LIMIT:
            self.room.set()
        return data

    async def write(self, data: bytes) -> None:
        self.activity.last = time.monotonic()
        await _send(self.ws, self.number, data, self.b64)

    async def close(self) -> None:
        return None  # the v4 channel protocol has no way to close one channel


class _Activity:
    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = time.monotonic()  # a message either way


async def _send(ws: web.WebSocketResponse, channel: int, data: bytes, b64: bool) -> None:
    if b64:
        await ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
    else:
        await ws.send_bytes(bytes((channel,)) + data)


async def _serve_channels(ws: web.WebSocketResponse, ports: list[int], sandbox: SandboxStatus,
                          idle_timeout: float = IDLE_TIMEOUT) -> None:
    """kubelet's ``handleWebSocketStreams``: one forwarded connection per port, all at once,
    until all have ended or no message went either way for the idle timeout."""
    b64 = ws.ws_protocol == WS_BASE64
    room = asyncio.Event()
    room.set()
    activity = _Activity()
    channels = [_Channel(ws, 2 * i, b64, room, activity) for i in range(len(ports))]
    for i, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        await _send(ws, 2 * i, prefix, b64)
        await _send(ws, 2 * i + 1, prefix, b64)

    async def one(i: int, port: int) -> None:
        try:
            message = await _forward_port(channels[i], port, sandbox)
            if message is not None:
                log.info("%s", message)
                await _send(ws, 2 * i + 1, message.encode(), b64)
        except (ConnectionError, OSError) as e:
            log.debug("port-forward to port %d ended: %s", port, e)

    async def receive() -> None:
        try:
            async for msg in ws:
                activity.last = time.monotonic()
                if msg.type == WSMsgType.BINARY:
                    raw: bytes = msg.data
                    if not raw:
                        continue
                    number, payload = raw[0], raw[1:]
                elif msg.type == WSMsgType.TEXT:
                    text: str = msg.data
                    if not text:
                        continue
                    number = ord(text[0]) - ord("0")
                    try:
                        payload = base64.b64decode(text[1:])
                    except ValueError:
                        continue
                else:
                    continue
                if number % 2 or not 0 <= number // 2 < len(channels):
                    continue  # error channels are the server's; unknown channels are dropped (wsstream)
                ch = channels[number // 2]
                if payload:
                    ch.put(payload)
                if ch.buffered >= WS_INPUT_LIMIT:
                    room.clear()
                    await room.wait()
        finally:
            for ch in channels:
                ch.end()

    reader = asyncio.create_task(receive())
    forwards = asyncio.ensure_future(asyncio.gather(*(one(i, p) for i, p in enumerate(ports))))
    try:
        while not forwards.done():
            left = activity.last + idle_timeout - time.monotonic()
            if left <= 0:
                log.info("port-forward WebSocket idle for %.0f s: closing it", idle_timeout)
                break
            await asyncio.wait({forwards}, timeout=left)
    finally:
        forwards.cancel()
        await asyncio.gather(forwards, return_exceptions=True)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await ws.close()
