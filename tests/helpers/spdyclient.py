"""A SPDY/3.1 port-forward client for tests: kubectl's side of the protocol (client-go's
``tools/portforward``), on the codec of ``k8py.kubelet.spdy``, over a raw upgraded connection or a
WebSocket tunnel. It can keep SPDY flow control (announce a window with SETTINGS, re-open it with
WINDOW_UPDATE after reading, and check the server never sends past it), which Go's spdystream
does not."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from k8py.kubelet import spdy


@dataclass
class ClientStream:
    id: int
    headers: dict[str, list[str]]
    client: SpdyClient
    data: bytearray = field(default_factory=bytearray)
    replied: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # FIN or reset from the server
    reset_status: int | None = None
    received: int = 0  # bytes received in all
    granted: int = spdy.DEFAULT_WINDOW  # what our window allowed the server so far

    async def write(self, data: bytes, fin: bool = False) -> None:
        await self.client.send(self.client.writer.data(self.id, data, spdy.FLAG_FIN if fin else 0))

    async def close(self) -> None:
        await self.write(b"", fin=True)

    async def reset(self, status: int = spdy.CANCEL) -> None:
        await self.client.send(self.client.writer.encode(spdy.RstStream(self.id, status)))

    async def read_all(self, timeout: float = 20.0) -> bytes:
        async with asyncio.timeout(timeout):
            await self.ended.wait()
        return bytes(self.data)

    async def read_at_least(self, n: int, timeout: float = 20.0) -> bytes:
        async with asyncio.timeout(timeout):
            while len(self.data) < n and not self.ended.is_set():
                await self.client.changed.wait()
                self.client.changed.clear()
        return bytes(self.data)


class SpdyClient:
    def __init__(self, send: Callable[[bytes], Awaitable[None]], *, window: int | None = None) -> None:
        self._send = send
        self.reader = spdy.FrameReader()
        self.writer = spdy.FrameWriter()
        self.next_id = 1
        self.next_request = 0
        self.streams: dict[int, ClientStream] = {}
        self.window = window  # None: no flow control (as spdystream)
        self.session_received = 0
        self.session_granted = spdy.DEFAULT_WINDOW
        self.pings: list[int] = []
        self.goaway: spdy.GoAway | None = None
        self.window_updates: list[spdy.WindowUpdate] = []
        self.overruns: list[str] = []
        self.changed = asyncio.Event()
        self.closed = asyncio.Event()
        self._lock = asyncio.Lock()

    async def send(self, data: bytes) -> None:
        async with self._lock:  # frames in the order they were encoded
            await self._send(data)

    async def start(self) -> None:
        if self.window is not None:
            self.session_granted = spdy.DEFAULT_WINDOW
            await self.send(self.writer.encode(spdy.Settings(((0, spdy.SETTINGS_INITIAL_WINDOW_SIZE, self.window),))))

    def feed(self, data: bytes) -> None:
        for f in self.reader.feed(data):
            self._handle(f)
        self.changed.set()

    def feed_eof(self) -> None:
        for st in self.streams.values():
            st.ended.set()
        self.closed.set()
        self.changed.set()

    def _handle(self, f: spdy.Frame) -> None:
        if isinstance(f, spdy.SynReply):
            self.streams[f.stream_id].replied.set()
        elif isinstance(f, spdy.DataFrame):
            st = self.streams.get(f.stream_id)
            if st is None:
                return
            st.data += f.data
            st.received += len(f.data)
            self.session_received += len(f.data)
            if self.window is not None:
                if st.received > st.granted:
                    self.overruns.append(f"stream {st.id}: {st.received} > {st.granted}")
                if self.session_received > self.session_granted:
                    self.overruns.append(f"session: {self.session_received} > {self.session_granted}")
                # read at once: re-open both windows by what came
                if f.data:
                    st.granted += len(f.data)
                    self.session_granted += len(f.data)
                    out = (self.writer.encode(spdy.WindowUpdate(st.id, len(f.data)))
                           + self.writer.encode(spdy.WindowUpdate(0, len(f.data))))
                    asyncio.get_running_loop().create_task(self.send(out))
            if f.flags & spdy.FLAG_FIN:
                st.ended.set()
        elif isinstance(f, spdy.RstStream):
            st = self.streams.get(f.stream_id)
            if st is not None:
                st.reset_status = f.status
                st.replied.set()
                st.ended.set()
        elif isinstance(f, spdy.Ping):
            self.pings.append(f.id)
        elif isinstance(f, spdy.GoAway):
            self.goaway = f
        elif isinstance(f, spdy.WindowUpdate):
            self.window_updates.append(f)

    async def open(self, headers: dict[str, list[str]], fin: bool = False) -> ClientStream:
        async with self._lock:
            sid = self.next_id
            self.next_id += 2
            st = ClientStream(sid, headers, self)
            if self.window is not None:
                st.granted = self.window
            self.streams[sid] = st
            await self._send(self.writer.syn_stream(sid, headers, spdy.FLAG_FIN if fin else 0))
        return st

    async def pair(self, port: int, request_id: int | None = None,
                   timeout: float = 10.0) -> tuple[ClientStream, ClientStream]:
        """kubectl's ``handleConnection``: an error stream (closed by us at once), then a data
        stream, both with ``port`` and ``requestID``; waits for both replies."""
        rid = self.next_request if request_id is None else request_id
        self.next_request = max(self.next_request, rid + 1)
        headers = {"streamtype": ["error"], "port": [str(port)], "requestid": [str(rid)]}
        err = await self.open(headers)
        await err.close()
        data = await self.open({**headers, "streamtype": ["data"]})
        async with asyncio.timeout(timeout):
            await err.replied.wait()
            await data.replied.wait()
        return err, data

    async def ping(self, pid: int) -> None:
        await self.send(self.writer.encode(spdy.Ping(pid)))


# --------------------------------------------------------------------------- transports


@contextlib.asynccontextmanager
async def upgraded(host: str, port: int, path: str, *, ssl_ctx: ssl.SSLContext | None = None,
                   window: int | None = None, protocols: tuple[str, ...] = ("portforward.k8s.io",),
                   extra: str = "") -> AsyncIterator[tuple[SpdyClient, str]]:
    """A raw ``Upgrade: SPDY/3.1`` connection (as client-go's SpdyRoundTripper): yields the
    client and the 101's head (the status line and headers)."""
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl_ctx)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            + "".join(f"X-Stream-Protocol-Version: {p}\r\n" for p in protocols) + extra + "Content-Length: 0\r\n\r\n")
    writer.write(head.encode())
    await writer.drain()
    response = (await reader.readuntil(b"\r\n\r\n")).decode()
    if not response.startswith("HTTP/1.1 101"):
        rest = await reader.read(65536)
        writer.close()
        raise UpgradeRefused(response + rest.decode(errors="replace"))

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    client = SpdyClient(send, window=window)

    async def pump() -> None:
        try:
            while data := await reader.read(65536):
                client.feed(data)
        except (ConnectionError, OSError):
            pass
        finally:
            client.feed_eof()

    task = asyncio.create_task(pump())
    try:
        await client.start()
        yield client, response
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def tunnelled(session: aiohttp.ClientSession, url: str, *,
                    window: int | None = None) -> AsyncIterator[tuple[SpdyClient, aiohttp.ClientWebSocketResponse]]:
    """SPDY in WebSocket binary messages, subprotocol ``SPDY/3.1+portforward.k8s.io`` (kubectl's
    default since 1.31)."""
    ws = await session.ws_connect(url, protocols=("SPDY/3.1+portforward.k8s.io",), max_msg_size=1 << 24)
    assert ws.protocol == "SPDY/3.1+portforward.k8s.io", ws.protocol
    client = SpdyClient(ws.send_bytes, window=window)

    async def pump() -> None:
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    client.feed(msg.data)
        finally:
            client.feed_eof()

    task = asyncio.create_task(pump())
    try:
        await client.start()
        yield client, ws
    finally:
        await ws.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class UpgradeRefused(Exception):
    """The server answered the upgrade with something else than 101 (the answer is the message)."""
