"""Port-forward on the kubelet: the SPDY/3.1 codec against hand-made frames and round trips, the
session (streams, pings, windows), and the /portForward handler on a local aiohttp app whose fake
sandbox's network namespace is this process's own (so "localhost inside the pod" is 127.0.0.1
here; as root the handler still enters it with setns). Clients: the test SPDY client
(kubectl's side) over a raw upgrade and over a WebSocket tunnel, and the official Python
client's ``PortForward`` over ``v4.channel.k8s.io``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Self

import aiohttp
import pytest
from aiohttp import web
from tests.helpers.spdyclient import UpgradeRefused, tunnelled, upgraded

from k8py.kubelet import portforward, spdy
from k8py.kubelet.runtime.types import SandboxState, SandboxStatus

pytestmark = pytest.mark.timeout(120)

# --------------------------------------------------------------------------- the codec


def test_dictionary_is_spdy3s() -> None:
    # every SPDY/3 zlib stream names its dictionary by this Adler-32
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_reader_decodes_hand_made_frames() -> None:
    frames = bytes.fromhex(
        "80030006 00000004 00000001"  # PING id 1
        "80030003 00000008 00000005 00000005"  # RST_STREAM stream 5, CANCEL
        "80030009 00000008 00000003 00001000"  # WINDOW_UPDATE stream 3, +4096
        "80030007 00000008 00000009 00000000"  # GOAWAY last good 9, OK
        "80030004 0000000c 00000001 00000007 00010000"  # SETTINGS INITIAL_WINDOW_SIZE 65536
        "00000001 01000003 616263"  # DATA stream 1, FIN, "abc"
        "8003000a 00000002 abcd"  # an unknown control frame type (CREDENTIAL)
    )
    want = [spdy.Ping(1), spdy.RstStream(5, spdy.CANCEL), spdy.WindowUpdate(3, 4096), spdy.GoAway(9, 0),
            spdy.Settings(((0, 7, 65536),)), spdy.DataFrame(1, b"abc", spdy.FLAG_FIN),
            spdy.UnknownControl(10, 0, b"\xab\xcd")]
    assert spdy.FrameReader().feed(frames) == want
    # a byte at a time: the same frames, each once it is whole
    r = spdy.FrameReader()
    got: list[spdy.Frame] = []
    for i in range(len(frames)):
        got += r.feed(frames[i:i + 1])
    assert got == want
    assert r.buffered == 0


def _hand_syn_stream(stream_id: int, pairs: list[tuple[bytes, bytes]], deflate: Any, flags: int = 0) -> bytes:
    raw = struct.pack(">I", len(pairs)) + b"".join(
        struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v for k, v in pairs)
    block = deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH)
    body = struct.pack(">II", stream_id, 0) + b"\x60\x00" + block  # priority 3
    return struct.pack(">II", 0x80030001, (flags << 24) | len(body)) + body


def test_header_blocks_inflate_with_one_context_per_connection() -> None:
    # compressed here with zlib directly, the way Go's framer does (best compression, the dictionary)
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
    pairs = [(b"streamtype", b"error"), (b"port", b"8080"), (b"requestid", b"0")]
    first = _hand_syn_stream(1, pairs, deflate, spdy.FLAG_FIN)
    second = _hand_syn_stream(3, [(b"streamtype", b"data"), (b"port", b"8080"), (b"requestid", b"0")], deflate)
    assert len(second) < len(first)  # the second block refers back to the first: one context
    r = spdy.FrameReader()
    assert r.feed(first + second) == [
        spdy.SynStream(1, {"streamtype": ["error"], "port": ["8080"], "requestid": ["0"]}, spdy.FLAG_FIN, 0, 3, 0),
        spdy.SynStream(3, {"streamtype": ["data"], "port": ["8080"], "requestid": ["0"]}, 0, 0, 3, 0)]
    # NUL separates the values of one name
    deflate2 = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
    (f,) = spdy.FrameReader().feed(_hand_syn_stream(1, [(b"x", b"a\0b")], deflate2))
    assert isinstance(f, spdy.SynStream) and f.headers == {"x": ["a", "b"]}


def test_writer_output_is_what_a_go_peer_reads() -> None:
    w = spdy.FrameWriter()
    frame = w.encode(spdy.SynReply(1, {}))
    # control bit, version 3, type 2; then the stream id and a zlib stream naming SPDY/3's dictionary
    assert frame[:4] == bytes.fromhex("80030002")
    assert frame[8:12] == bytes.fromhex("00000001")
    block = frame[12:]
    assert block[0] == 0x78 and block[1] & 0x20  # deflate, FDICT set
    assert block[2:6] == bytes.fromhex("e3c6a7c2")
    inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
    assert inflate.decompress(block) == b"\x00\x00\x00\x00"  # no headers
    assert w.data(7, b"hi", spdy.FLAG_FIN) == bytes.fromhex("00000007 01000002 6869")
    assert w.encode(spdy.Ping(2)) == bytes.fromhex("80030006 00000004 00000002")


def test_round_trips_of_every_frame_type() -> None:
    w, r = spdy.FrameWriter(), spdy.FrameReader()
    frames: list[spdy.Frame] = [
        spdy.SynStream(1, {"streamtype": ["data"], "port": ["80"]}, spdy.FLAG_FIN | spdy.FLAG_UNIDIRECTIONAL, 0, 7, 1),
        spdy.SynReply(1, {"a": ["1", "2"]}, spdy.FLAG_FIN),
        spdy.HeadersFrame(1, {"b": [""]}),
        spdy.DataFrame(1, b"x" * 70000),
        spdy.DataFrame(3, b"", spdy.FLAG_FIN),
        spdy.RstStream(1, spdy.PROTOCOL_ERROR),
        spdy.Settings(((1, 4, 100), (0, 7, 1 << 20)), 1),
        spdy.Ping(0xFFFFFFFF),
        spdy.GoAway(11, 1),
        spdy.WindowUpdate(0, 2**31 - 1),
    ]
    wire = b"".join(w.encode(f) for f in frames)
    # split anywhere: the frames come back whole and in order
    assert r.feed(wire[:5]) + r.feed(wire[5:9999]) + r.feed(wire[9999:]) == frames


@pytest.mark.parametrize("wire, why", [
    (bytes.fromhex("80020006 00000004 00000001"), "version 2"),
    (bytes.fromhex("00000000 00000001 61"), "data on stream 0"),
    (bytes.fromhex("80030006 00000005 0000000100"), "PING of 5 bytes"),
    (bytes.fromhex("80030003 00000004 00000001"), "RST_STREAM of 4 bytes"),
    (bytes.fromhex("80030001 0000000e 00000001 00000000 0000 deadbeef"), "a header block that does not inflate"),
])
def test_connection_errors(wire: bytes, why: str) -> None:
    with pytest.raises(spdy.SpdyProtocolError):
        spdy.FrameReader().feed(wire)


def test_a_bad_header_block_is_an_error_of_its_stream_only() -> None:
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
    bad = _hand_syn_stream(1, [(b"Port", b"80")], deflate)  # not lower case
    dup = _hand_syn_stream(3, [(b"port", b"80"), (b"port", b"81")], deflate)
    good = _hand_syn_stream(5, [(b"port", b"80")], deflate)
    zero = bytes.fromhex("80030009 00000008 00000001 00000000")  # WINDOW_UPDATE by 0
    got = spdy.FrameReader().feed(bad + dup + good + zero)
    assert [type(f).__name__ for f in got] == ["FrameError", "FrameError", "SynStream", "FrameError"]
    assert [f.stream_id for f in got] == [1, 3, 5, 1]  # type: ignore[union-attr]


# --------------------------------------------------------------------------- the session


@dataclass
class Wire:
    """A session with a peer made of a FrameWriter/FrameReader pair."""

    session: spdy.Session
    peer_w: spdy.FrameWriter = field(default_factory=spdy.FrameWriter)
    peer_r: spdy.FrameReader = field(default_factory=spdy.FrameReader)
    streams: list[spdy.Stream] = field(default_factory=list)

    def send(self, *frames: spdy.Frame) -> None:
        self.session.feed(b"".join(self.peer_w.encode(f) for f in frames))

    async def received(self) -> list[spdy.Frame]:
        out: list[spdy.Frame] = []
        while self.session._out:
            data = await self.session.next_output()
            assert data is not None
            out += self.peer_r.feed(data)
        return out


def wire(refuse: str | None = None, **kw: Any) -> Wire:
    box: list[Wire] = []

    def on_stream(st: spdy.Stream) -> str | None:
        box[0].streams.append(st)
        return refuse

    w = Wire(spdy.Session(on_stream, **kw))
    box.append(w)
    return w


async def test_session_streams_replies_data_and_fin() -> None:
    w = wire()
    w.send(spdy.SynStream(1, {"port": ["80"]}), spdy.DataFrame(1, b"hello"), spdy.DataFrame(1, b"", spdy.FLAG_FIN))
    (st,) = w.streams
    assert st.header("Port") == "80" and st.header("missing") == ""
    assert await w.received() == [spdy.SynReply(1, {})]
    assert await st.read() == b"hello"
    assert await st.read() == b""  # FIN
    await st.write(b"x" * 70000)
    await st.close()
    got = await w.received()
    assert [len(f.data) for f in got if isinstance(f, spdy.DataFrame)] == [32768, 32768, 4464, 0]
    assert isinstance(got[-1], spdy.DataFrame) and got[-1].flags == spdy.FLAG_FIN
    assert w.session.streams == {}  # both sides finished: forgotten
    with pytest.raises(spdy.StreamClosedError):
        await st.write(b"more")


async def test_session_refuses_resets_and_pings() -> None:
    w = wire(refuse='"port" header is required')
    w.send(spdy.SynStream(1, {}))
    assert await w.received() == [spdy.RstStream(1, spdy.CANCEL)]
    w = wire()
    w.send(spdy.SynStream(2, {}),  # even: a server's id
           spdy.SynStream(5, {}), spdy.SynStream(3, {}),  # not increasing
           spdy.SynStream(5, {}),  # in use
           spdy.Ping(7), spdy.Ping(8))  # the client's ping is echoed, a server-parity one is not
    assert await w.received() == [spdy.RstStream(2, spdy.PROTOCOL_ERROR), spdy.SynReply(5, {}),
                                  spdy.RstStream(3, spdy.PROTOCOL_ERROR), spdy.RstStream(5, spdy.STREAM_IN_USE),
                                  spdy.Ping(7)]
    (st,) = w.streams
    w.send(spdy.RstStream(5, spdy.CANCEL))
    assert await st.read() == b"" and st.is_reset
    with pytest.raises(spdy.StreamClosedError):
        await st.write(b"x")
    w.send(spdy.GoAway(5), spdy.SynStream(7, {}))
    assert await w.received() == [spdy.RstStream(7, spdy.REFUSED_STREAM)]
    w.session.close()
    assert await w.received() == [spdy.GoAway(7, 0)]
    assert await w.session.next_output() is None


async def test_session_without_peer_flow_control_sends_past_the_window() -> None:
    # Go's spdystream never sends WINDOW_UPDATE: waiting on the 64 KiB window would stall forever
    w = wire()
    w.send(spdy.SynStream(1, {}))
    (st,) = w.streams
    await asyncio.wait_for(st.write(b"y" * 200_000), 5)  # the output is drained below, past its limit
    got = [f for f in await w.received() if isinstance(f, spdy.DataFrame)]
    assert sum(len(f.data) for f in got) == 200_000


async def test_session_honours_the_windows_of_a_peer_that_keeps_them() -> None:
    w = wire()
    w.send(spdy.Settings(((0, spdy.SETTINGS_INITIAL_WINDOW_SIZE, 1000),)), spdy.SynStream(1, {}))
    (st,) = w.streams
    writing = asyncio.create_task(st.write(b"z" * 5000))
    await asyncio.sleep(0)
    got = [f for f in await w.received() if isinstance(f, spdy.DataFrame)]
    assert sum(len(f.data) for f in got) == 1000 and not writing.done()  # waits for window
    w.send(spdy.WindowUpdate(1, 1500))
    await asyncio.sleep(0)
    got = [f for f in await w.received() if isinstance(f, spdy.DataFrame)]
    assert sum(len(f.data) for f in got) == 1500 and not writing.done()
    w.send(spdy.WindowUpdate(1, 100_000))  # the session window (64 KiB) is plenty
    await asyncio.wait_for(writing, 5)
    got = [f for f in await w.received() if isinstance(f, spdy.DataFrame)]
    assert sum(len(f.data) for f in got) == 2500
    # a reset stream's writer is woken and fails instead of waiting for window forever
    w.send(spdy.SynStream(3, {}))
    st3 = w.streams[1]
    w.send(spdy.Settings(((0, spdy.SETTINGS_INITIAL_WINDOW_SIZE, 0),)))
    blocked = asyncio.create_task(st3.write(b"q"))
    await asyncio.sleep(0)
    w.send(spdy.RstStream(3, spdy.CANCEL))
    with pytest.raises(spdy.StreamClosedError):
        await asyncio.wait_for(blocked, 5)


async def test_session_reopens_its_windows_and_bounds_unread_input() -> None:
    paused: list[bool] = []
    w = wire(input_limit=100_000, pause_reading=lambda: paused.append(True),
             resume_reading=lambda: paused.append(False))
    w.send(spdy.SynStream(1, {}))
    (st,) = w.streams
    await w.received()
    w.send(*(spdy.DataFrame(1, b"d" * 30_000) for _ in range(4)))
    assert paused == [True] and w.session.input_full
    for _ in range(4):
        assert len(await st.read()) == 30_000
    assert paused == [True, False]
    updates = [f for f in await w.received() if isinstance(f, spdy.WindowUpdate)]
    # half a window read: the stream's and the session's windows are re-opened by what was read
    assert updates == [spdy.WindowUpdate(1, 60_000), spdy.WindowUpdate(0, 60_000),
                       spdy.WindowUpdate(1, 60_000), spdy.WindowUpdate(0, 60_000)]


async def test_session_protocol_error_and_eof_end_every_stream() -> None:
    w = wire()
    w.send(spdy.SynStream(1, {}))
    (st,) = w.streams
    reading = asyncio.create_task(st.read())
    await asyncio.sleep(0)
    w.session.feed(bytes.fromhex("80020006 00000004 00000001"))  # SPDY/2
    assert await asyncio.wait_for(reading, 5) == b""
    assert (await w.received())[-1] == spdy.GoAway(1, spdy.GOAWAY_PROTOCOL_ERROR)
    assert w.session.closed and await w.session.next_output() is None
    w = wire()
    w.send(spdy.SynStream(1, {}))
    w.session.feed_eof()
    assert w.streams[0].is_reset
    await asyncio.wait_for(w.session.wait_closed(), 5)


# --------------------------------------------------------------------------- the handler


class Target:
    """A TCP server on 127.0.0.1 (the pod's localhost here): echo, or a fixed HTTP answer."""

    def __init__(self, mode: str = "echo", host: str = "127.0.0.1") -> None:
        self.mode = mode
        self.host = host
        self.server: asyncio.Server | None = None
        self.port = 0
        self.open = 0
        self.accepted = 0
        self.closed = asyncio.Event()
        self.go = asyncio.Event()  # "gated": echo only once this is set

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self.serve, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.accepted += 1
        try:
            if self.mode == "gated":
                await self.go.wait()
            if self.mode in ("echo", "gated"):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            elif self.mode == "http":
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1].decode()
                body = f"hello from {path}".encode()
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
            elif self.mode == "endless":
                while True:
                    writer.write(b"e" * 65536)
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()
            self.closed.set()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeSandboxes:
    def __init__(self, sandboxes: list[SandboxStatus]) -> None:
        self.sandboxes = sandboxes

    async def list_pod_sandboxes(self) -> list[SandboxStatus]:
        return list(self.sandboxes)


# as root the handler enters this process's own network namespace with setns, as for a pod
OWN_NETNS = f"/proc/{os.getpid()}/ns/net" if os.geteuid() == 0 else ""


@dataclass
class App:
    url: str
    host: str
    port: int
    session: aiohttp.ClientSession
    sandboxes: list[SandboxStatus]
    handler: portforward.PortForward


@pytest.fixture
async def app() -> AsyncIterator[App]:
    pods = {("default", "web"): {"metadata": {"name": "web", "namespace": "default", "uid": "uid-web"}},
            ("default", "gone"): {"metadata": {"name": "gone", "namespace": "default", "uid": "uid-gone"}},
            ("default", "nosandbox"): {"metadata": {"name": "nosandbox", "namespace": "default", "uid": "uid-x"}}}
    sandboxes = [
        SandboxStatus("sb-old", "web", "default", "uid-web", 0, SandboxState.NOTREADY, time.time() - 100),
        SandboxStatus("sb-web", "web", "default", "uid-web", 1, SandboxState.READY, time.time(), ("10.0.0.2",),
                      netns_path=OWN_NETNS),
        SandboxStatus("sb-gone", "gone", "default", "uid-gone", 0, SandboxState.NOTREADY, time.time()),
    ]

    async def find_pod(ns: str, name: str) -> Any:
        return pods.get((ns, name))

    handler = portforward.PortForward(FakeSandboxes(sandboxes), find_pod,  # type: ignore[arg-type]
                                      stream_creation_timeout=0.5)
    web_app = web.Application()
    handler.add_routes(web_app.router)
    runner = web.AppRunner(web_app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    session = aiohttp.ClientSession()
    try:
        yield App(f"http://127.0.0.1:{port}", "127.0.0.1", port, session, sandboxes, handler)
    finally:
        await session.close()
        await runner.cleanup()


def refused_text(port: int, sandbox: str = "sb-web") -> str:
    return (f"error forwarding port {port} to pod {sandbox}, uid : failed to execute portforward in network namespace "
            f'"{OWN_NETNS or "host"}": failed to connect to localhost:{port} inside namespace "{sandbox}", IPv4: '
            f"dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 dial tcp6 [::1]:{port}: connect: ")


async def test_spdy_upgrade_forwards_both_ways_in_order(app: App) -> None:
    async with Target() as t, upgraded(app.host, app.port, "/portForward/default/web") as (client, head):
        assert "Upgrade: SPDY/3.1" in head and "X-Stream-Protocol-Version: portforward.k8s.io" in head
        err, data = await client.pair(t.port)
        payload = os.urandom(2 * 1024 * 1024)
        for i in range(0, len(payload), 100_000):
            await data.write(payload[i:i + 100_000])
        echoed = await data.read_at_least(len(payload))
        assert echoed == payload
        await data.close()  # kubectl: the local connection ended; the pod sees it (echo ends), FIN comes back
        await data.read_all()
        assert await err.read_all() == b""  # no error, and FIN
        async with asyncio.timeout(5):
            while t.open:
                await asyncio.sleep(0.01)
        # the client's ping is answered
        await client.ping(1)
        async with asyncio.timeout(5):
            while not client.pings:
                await client.changed.wait()
                client.changed.clear()
        assert client.pings == [1]


async def test_a_pod_that_reads_late_pauses_the_client_and_loses_nothing(app: App) -> None:
    # past the session's input limit (1 MiB unread) the kubelet stops reading the connection
    async with Target("gated") as t, upgraded(app.host, app.port, "/portForward/default/web") as (client, _):
        _, data = await client.pair(t.port)
        payload = os.urandom(8 * 1024 * 1024)
        writing = asyncio.create_task(data.write(payload))
        await asyncio.wait({writing}, timeout=2)  # sent, or held back by the paused server
        t.go.set()
        assert await data.read_at_least(len(payload), timeout=60) == payload
        await writing


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
async def test_a_pod_listening_on_ipv6_localhost_only_is_reached(app: App) -> None:
    # containerd's order: 127.0.0.1 first, then ::1
    async with Target(host="::1") as t, upgraded(app.host, app.port, "/portForward/default/web") as (client, _):
        err, data = await client.pair(t.port)
        await data.write(b"over ipv6")
        assert await data.read_at_least(9) == b"over ipv6"
        await data.close()
        await data.read_all()
        assert await err.read_all() == b""


async def test_closed_port_is_an_error_on_the_stream_and_the_tunnel_goes_on(app: App) -> None:
    port = closed_port()
    async with Target("http") as t, upgraded(app.host, app.port, "/portForward/default/web") as (client, _):
        err, data = await client.pair(port)
        assert await data.read_all() == b""  # the data stream ends (FIN) ...
        text = (await err.read_all()).decode()
        assert text.startswith(refused_text(port)), text  # ... and the error says why, in kubelet's words
        # the next connection over the same tunnel works
        err2, data2 = await client.pair(t.port)
        await data2.write(b"GET /next HTTP/1.0\r\n\r\n")
        assert (await data2.read_all()).endswith(b"hello from /next")
        assert await err2.read_all() == b""


async def test_several_ports_and_connections_at_once_over_a_websocket_tunnel(app: App) -> None:
    async with Target("http") as a, Target() as b, tunnelled(app.session, app.url + "/portForward/default/web") as (
            client, _):
        pairs = [await client.pair(a.port), await client.pair(b.port), await client.pair(a.port)]
        await pairs[1][1].write(b"ping-b")
        await pairs[0][1].write(b"GET /a1 HTTP/1.0\r\n\r\n")
        await pairs[2][1].write(b"GET /a2 HTTP/1.0\r\n\r\n")
        assert (await pairs[0][1].read_all()).endswith(b"hello from /a1")
        assert (await pairs[2][1].read_all()).endswith(b"hello from /a2")
        assert await pairs[1][1].read_at_least(6) == b"ping-b"
        await pairs[1][1].close()
        await pairs[1][1].read_all()
        for err, _ in pairs:
            assert await err.read_all() == b""


async def test_a_client_that_keeps_windows_is_never_overrun(app: App) -> None:
    async with Target() as t, tunnelled(app.session, app.url + "/portForward/default/web", window=16384) as (
            client, _):
        err, data = await client.pair(t.port)
        payload = os.urandom(1024 * 1024)
        await data.write(payload)
        assert await data.read_at_least(len(payload)) == payload
        assert client.overruns == []
        await data.close()
        await data.read_all()
        assert await err.read_all() == b""


async def test_stream_errors_and_the_pair_timeout(app: App) -> None:
    async with upgraded(app.host, app.port, "/portForward/default/web") as (client, _):
        bad = await client.open({"streamtype": ["data"], "port": ["http"], "requestid": ["9"]})
        async with asyncio.timeout(5):
            await bad.ended.wait()
        assert bad.reset_status == spdy.CANCEL  # refused: the port is no number
        nothing = await client.open({"streamtype": ["data"], "requestid": ["9"]})
        async with asyncio.timeout(5):
            await nothing.ended.wait()
        assert nothing.reset_status == spdy.CANCEL
        # only an error stream, never its data stream: told after the creation timeout (0.5 s here)
        lone = await client.open({"streamtype": ["error"], "port": ["80"], "requestid": ["7"]})
        text = (await lone.read_all(timeout=10)).decode()
        assert text == "(request=7) timed out waiting for streams"
        # the connection is still good
        async with Target() as t:
            _, data = await client.pair(t.port, request_id=8)
            await data.write(b"still here")
            assert await data.read_at_least(10) == b"still here"


async def test_refused_requests_in_kubelets_words(app: App) -> None:
    async with app.session.get(app.url + "/portForward/default/nope") as r:
        assert (r.status, await r.text()) == (404, "pod does not exist")
    async with app.session.get(app.url + "/portForward/default/web/other-uid") as r:
        assert (r.status, await r.text()) == (404, "pod not found")
    async with app.session.get(app.url + "/portForward/default/nosandbox") as r:
        assert (r.status, await r.text()) == (500, 'pod not found ("nosandbox_default")')
    async with app.session.get(app.url + "/portForward/default/web") as r:  # no upgrade at all
        assert (r.status, await r.text()) == (400, "unable to upgrade: X-Stream-Protocol-Version is required")
    with pytest.raises(UpgradeRefused) as e:
        async with upgraded(app.host, app.port, "/portForward/default/web", protocols=("v9.example",)):
            pass
    assert e.value.args[0].startswith("HTTP/1.1 403")
    assert "X-Accepted-Stream-Protocol-Versions: portforward.k8s.io" in e.value.args[0]
    assert ("unable to upgrade: unable to negotiate protocol: client supports [v9.example], server accepts "
            "[portforward.k8s.io]") in e.value.args[0]
    for query, why in (("", 'query parameter "port" is required'), ("?port=", 'query parameter "port" cannot be empty'),
                       ("?port=0", 'port "0" must be > 0'),
                       ("?port=80,x", 'unable to parse "80,x" as a port: strconv.ParseUint: parsing "x": invalid syntax'),
                       ("?port=70000", ('unable to parse "70000" as a port: strconv.ParseUint: parsing "70000": '
                                        "value out of range"))):
        with pytest.raises(aiohttp.WSServerHandshakeError) as ws_err:
            await app.session.ws_connect(app.url + "/portForward/default/web" + query, protocols=("v4.channel.k8s.io",))
        assert ws_err.value.status == 400, why
        async with app.session.get(app.url + "/portForward/default/web" + query,
                                   headers={"Upgrade": "websocket", "Connection": "Upgrade"}) as r:
            assert (r.status, await r.text()) == (400, why)
        if query:  # asked again without any upgrade (the API server's way to a refusal's words): the same
            async with app.session.get(app.url + "/portForward/default/web" + query) as r:
                assert (r.status, await r.text()) == (400, why)


async def test_a_stopped_sandbox_is_an_error_on_the_stream(app: App) -> None:
    async with upgraded(app.host, app.port, "/portForward/default/gone") as (client, _):
        err, data = await client.pair(80)
        assert await data.read_all() == b""
        assert (await err.read_all()).decode() == (
            'error forwarding port 80 to pod sb-gone, uid : network namespace for sandbox "sb-gone" is closed')


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_client_gone_mid_stream_leaves_no_socket_or_task(app: App) -> None:
    async with Target("endless") as t:
        fds = _fds()
        tasks = len(asyncio.all_tasks())
        for transport in ("upgraded", "tunnel"):
            t.closed.clear()
            cm = (upgraded(app.host, app.port, "/portForward/default/web") if transport == "upgraded"
                  else tunnelled(app.session, app.url + "/portForward/default/web"))
            async with cm as (client, _):
                _, data = await client.pair(t.port)
                await data.read_at_least(200_000)
            # the client's connection is gone (closed without a word): the pod's socket is closed
            async with asyncio.timeout(10):
                await t.closed.wait()
            assert t.open == 0
        async with asyncio.timeout(10):
            while _fds() > fds or len(asyncio.all_tasks()) > tasks:
                await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- the Python client


def _python_client_forward(url: str, ports: list[int], requests: dict[int, bytes]) -> dict[int, tuple[bytes, str | None]]:
    """The official client's PortForward over a websocket-client connection (as
    ``kubernetes.stream.portforward`` makes it), one request per port; (answer, error) per port."""
    from kubernetes.stream.ws_client import PortForward
    from websocket import WebSocket

    ws = WebSocket()
    ws.connect(url, header=["sec-websocket-protocol: v5.channel.k8s.io,v4.channel.k8s.io"])
    pf = PortForward(ws, ports)
    out: dict[int, tuple[bytes, str | None]] = {}
    try:
        for port in ports:  # every request first: the WebSocket ends (and with it each answer) when all are done
            if requests.get(port):
                pf.socket(port).sendall(requests[port])
        for port in ports:
            sock = pf.socket(port)
            sock.settimeout(20)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            out[port] = (b"".join(chunks), pf.error(port))
    finally:
        pf.close()
        # the client's proxy thread leaves its socket open when the server closed first
        deadline = time.monotonic() + 10
        while pf.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        ws.shutdown()
    return out


async def test_the_python_clients_portforward_over_v4_channels(app: App) -> None:
    refused = closed_port()
    async with Target("http") as a, Target("http") as b:
        url = (app.url.replace("http://", "ws://") + f"/portForward/default/web?ports={a.port},{refused}"
               f"&ports={b.port}")
        got = await asyncio.to_thread(_python_client_forward, url, [a.port, refused, b.port],
                                      {a.port: b"GET /a HTTP/1.0\r\n\r\n", b.port: b"GET /b HTTP/1.0\r\n\r\n"})
    assert got[a.port][0].endswith(b"hello from /a") and got[a.port][1] is None
    assert got[b.port][0].endswith(b"hello from /b") and got[b.port][1] is None
    assert got[refused][0] == b""
    assert (got[refused][1] or "").startswith(refused_text(refused))


async def test_v4_base64_channels(app: App) -> None:
    import base64

    async with Target() as t:
        ws = await app.session.ws_connect(app.url + f"/portForward/default/web?port={t.port}",
                                          protocols=("v4.base64.channel.k8s.io",))
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(ws.close)
            assert ws.protocol == "v4.base64.channel.k8s.io"
            port_b64 = base64.b64encode(struct.pack("<H", t.port)).decode()
            assert await ws.receive_str() == "0" + port_b64
            assert await ws.receive_str() == "1" + port_b64
            await ws.send_str("0" + base64.b64encode(b"echo me").decode())
            msg = await ws.receive_str()
            assert msg[0] == "0" and base64.b64decode(msg[1:]) == b"echo me"


async def test_idle_connections_are_closed(app: App) -> None:
    # kubelet's --streaming-connection-idle-timeout (4 h by default; 0.3 s here)
    app.handler.idle_timeout = 0.3
    async with upgraded(app.host, app.port, "/portForward/default/web") as (client, _):
        for i in range(5):  # activity (the client's pings) keeps it open past the timeout
            await client.ping(2 * i + 1)
            await asyncio.sleep(0.1)
        assert not client.closed.is_set()
        async with asyncio.timeout(5):
            await client.closed.wait()  # then nothing for 0.3 s: GOAWAY, and the connection ends
        assert client.goaway == spdy.GoAway(0, spdy.GOAWAY_OK)
    async with Target() as t:
        ws = await app.session.ws_connect(app.url + f"/portForward/default/web?port={t.port}",
                                          protocols=("v4.channel.k8s.io",))
        try:
            async with asyncio.timeout(5):
                while (await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    pass
                await t.closed.wait()  # the forward inside the pod is closed with it
        finally:
            await ws.close()
