"""SPDY/3.1, as much of it as Kubernetes' streaming protocols use, for the server end.

kubectl's ``port-forward`` (and client-go's SPDY fallback for the other streaming calls) speaks
SPDY/3.1 through ``github.com/moby/spdystream``: the client opens streams with SYN_STREAM (their
headers say what each stream is for), the server answers each with SYN_REPLY, and both sides send
DATA frames, half-close a stream with FLAG_FIN, end it with RST_STREAM, answer PINGs and say
GOAWAY before they close. There is no well-kept SPDY library for Python, so this module is one,
in two layers:

- the codec (no I/O): :class:`FrameReader` cuts a byte stream into frames, :class:`FrameWriter`
  encodes them. Header blocks are zlib-compressed with SPDY/3's dictionary, one compression
  context per direction for the whole connection (so every header block is inflated in order,
  including those of frames nobody needs). Malformed input is a :class:`SpdyProtocolError`
  (the connection ends with GOAWAY PROTOCOL_ERROR); a bad header block of one stream is a
  :class:`FrameError` in the frame list (that stream is reset, the rest goes on).
- the session (asyncio, transport-agnostic): :class:`Session` takes bytes with :meth:`~Session.feed`
  and hands out bytes to send with :meth:`~Session.next_output`; :class:`Stream` is a stream's
  reader and writer. The transports (a plain ``Upgrade: SPDY/3.1`` connection or SPDY tunnelled in
  WebSocket binary messages) are in :func:`serve_upgraded` and :func:`serve_websocket`.

Flow control. SPDY/3.1 gives every stream and the session a 64 KiB window that the receiver
re-opens with WINDOW_UPDATE. This session keeps its own windows as a receiver: it sends
WINDOW_UPDATE for what its reader consumed (half a window at a time), so a peer that keeps
windows never stalls. As a sender it counts the peer's windows and *waits* on them once the peer
shows it keeps them, by a SETTINGS INITIAL_WINDOW_SIZE or a WINDOW_UPDATE. Go's spdystream (kubectl,
client-go, kube-apiserver, kubelet) does neither: it never sends WINDOW_UPDATE and ignores the ones
it gets, so a sender that waited on its windows would stop for good after 64 KiB; with such a
peer, as between kubelet and kubectl, TCP alone paces the sender (:meth:`Session.next_output` is
drained by the transport, and writers wait while more than ``output_limit`` bytes are queued).
What the peer sends is bounded the same way: past ``input_limit`` unread bytes the transport
stops reading until the streams' readers catch up.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import WSMsgType, web

__all__ = [
    "CANCEL",
    "DEFAULT_WINDOW",
    "DICTIONARY",
    "FLAG_FIN",
    "FLAG_UNIDIRECTIONAL",
    "PROTOCOL_ERROR",
    "REFUSED_STREAM",
    "DataFrame",
    "FrameError",
    "FrameReader",
    "FrameWriter",
    "GoAway",
    "HeadersFrame",
    "Ping",
    "RstStream",
    "Session",
    "Settings",
    "SpdyProtocolError",
    "Stream",
    "StreamClosedError",
    "SynReply",
    "SynStream",
    "UnknownControl",
    "WindowUpdate",
    "go_header",
    "is_upgrade",
    "offered_protocols",
    "serve_upgraded",
    "serve_websocket",
]

log = logging.getLogger("k8py.kubelet.spdy")

VERSION = 3

# control frame types
SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02  # SYN_STREAM: the sender will not receive on it

# RST_STREAM status codes
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
UNSUPPORTED_VERSION = 4
CANCEL = 5
INTERNAL_ERROR = 6
FLOW_CONTROL_ERROR = 7
STREAM_IN_USE = 8
STREAM_ALREADY_CLOSED = 9
FRAME_TOO_LARGE = 11

# GOAWAY status codes
GOAWAY_OK = 0
GOAWAY_PROTOCOL_ERROR = 1

SETTINGS_INITIAL_WINDOW_SIZE = 7

DEFAULT_WINDOW = 64 * 1024
MAX_WINDOW = 2**31 - 1
MAX_LENGTH = 2**24 - 1  # a frame's 24-bit length
MAX_DATA_CHUNK = 32 * 1024  # what one DATA frame carries at most (Go's io.Copy buffer)
MAX_HEADER_BYTES = 256 * 1024  # an inflated header block

Headers = dict[str, list[str]]

# SPDY/3's header compression dictionary (draft 3, section 2.6.10.1): these words, each with a
# 32-bit big-endian length before it, then the text below. Its Adler-32, the dictionary id in
# every SPDY/3 zlib stream, is 0xe3c6a7c2.
_DICT_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base content-encoding "
    "content-language content-length content-location content-md5 content-range content-type date etag "
    "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
    "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
    "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
    "method get status 200\0OK version HTTP/1.1 url public set-cookie keep-alive origin"
)
_DICT_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in
                      (w.replace("\0", " ") for w in _DICT_WORDS.split(" "))) + _DICT_TAIL.encode()


class SpdyProtocolError(Exception):
    """The peer broke the protocol for the whole connection (a bad frame, a corrupt header
    compression context): the session says GOAWAY PROTOCOL_ERROR and ends."""


class StreamClosedError(ConnectionError):
    """Writing on a stream that is reset, half-closed by us, or whose session ended."""


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class DataFrame:
    stream_id: int
    data: bytes
    flags: int = 0


@dataclass(frozen=True, slots=True)
class SynStream:
    stream_id: int
    headers: Headers
    flags: int = 0
    associated_id: int = 0
    priority: int = 0
    slot: int = 0


@dataclass(frozen=True, slots=True)
class SynReply:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclass(frozen=True, slots=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...]  # (flags, id, value)
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Ping:
    id: int


@dataclass(frozen=True, slots=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True, slots=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclass(frozen=True, slots=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True, slots=True)
class UnknownControl:
    """A control frame of a type this codec does not know (CREDENTIAL, NOOP): ignored, as
    SPDY/3 asks."""

    type: int
    flags: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class FrameError:
    """A frame of one stream that cannot be used (bad header block): that stream is reset."""

    stream_id: int
    status: int
    message: str


Frame = (DataFrame | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate
         | UnknownControl | FrameError)

_U32 = struct.Struct(">I")
_U32x2 = struct.Struct(">II")


def encode_header_block(headers: Mapping[str, Sequence[str]]) -> bytes:
    """The uncompressed block: the number of names, then each name and its values (joined by
    NUL), each with a 32-bit length before it. Names are lower case in SPDY."""
    parts = [_U32.pack(len(headers))]
    for name, values in headers.items():
        n = name.lower().encode()
        v = "\0".join(values).encode()
        parts += (_U32.pack(len(n)), n, _U32.pack(len(v)), v)
    return b"".join(parts)


def decode_header_block(raw: bytes) -> Headers:
    """:class:`ValueError` for a truncated block, an empty, upper-case or repeated name."""
    try:
        (count,) = _U32.unpack_from(raw, 0)
        pos = 4
        out: Headers = {}
        for _ in range(count):
            (n,) = _U32.unpack_from(raw, pos)
            name = raw[pos + 4:pos + 4 + n]
            pos += 4 + n
            (m,) = _U32.unpack_from(raw, pos)
            value = raw[pos + 4:pos + 4 + m]
            pos += 4 + m
            if len(name) != n or len(value) != m:
                raise ValueError("header block truncated")
            key = name.decode()
            if not key or key != key.lower():
                raise ValueError(f"header name {key!r} is empty or not lower case")
            if key in out:
                raise ValueError(f"header {key!r} appears twice")
            out[key] = value.decode().split("\0")
    except (struct.error, UnicodeDecodeError) as e:
        raise ValueError(f"bad header block: {e}") from None
    if pos != len(raw):
        raise ValueError("trailing bytes after the header block")
    return out


class FrameReader:
    """Bytes in, frames out; keeps a partial frame until the rest arrives. One inflate context
    for the connection's header blocks."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        buf = self._buf
        out: list[Frame] = []
        pos = 0
        while len(buf) - pos >= 8:
            first, second = _U32x2.unpack_from(buf, pos)
            length = second & 0xFFFFFF
            flags = second >> 24
            if len(buf) - pos - 8 < length:
                break
            payload = bytes(buf[pos + 8:pos + 8 + length])
            pos += 8 + length
            if first & 0x80000000:
                version = (first >> 16) & 0x7FFF
                if version != VERSION:
                    raise SpdyProtocolError(f"SPDY version {version} is not supported (only {VERSION})")
                out.append(self._control(first & 0xFFFF, flags, payload))
            else:
                stream_id = first & 0x7FFFFFFF
                if stream_id == 0:
                    raise SpdyProtocolError("a data frame on stream 0")
                out.append(DataFrame(stream_id, payload, flags))
        del buf[:pos]
        return out

    def _headers(self, stream_id: int, block: bytes) -> Headers | FrameError:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BYTES)
        except zlib.error as e:
            raise SpdyProtocolError(f"header block of stream {stream_id} does not inflate: {e}") from None
        if self._inflate.unconsumed_tail:
            raise SpdyProtocolError(f"header block of stream {stream_id} is larger than {MAX_HEADER_BYTES} bytes")
        try:
            return decode_header_block(raw)
        except ValueError as e:
            return FrameError(stream_id, PROTOCOL_ERROR, str(e))

    def _control(self, ftype: int, flags: int, p: bytes) -> Frame:
        def need(n: int, exact: bool = True) -> None:
            if len(p) < n or (exact and len(p) != n):
                raise SpdyProtocolError(f"control frame {ftype} of {len(p)} bytes (expected {n})")

        if ftype == SYN_STREAM:
            need(10, exact=False)
            sid, assoc = _U32x2.unpack_from(p, 0)
            sid &= 0x7FFFFFFF
            headers = self._headers(sid, p[10:])
            if sid == 0:
                raise SpdyProtocolError("SYN_STREAM for stream 0")
            if isinstance(headers, FrameError):
                return headers
            return SynStream(sid, headers, flags, assoc & 0x7FFFFFFF, p[8] >> 5, p[9])
        if ftype in (SYN_REPLY, HEADERS):
            need(4, exact=False)
            sid = _U32.unpack_from(p, 0)[0] & 0x7FFFFFFF
            headers = self._headers(sid, p[4:])
            if sid == 0:
                raise SpdyProtocolError(f"control frame {ftype} for stream 0")
            if isinstance(headers, FrameError):
                return headers
            return SynReply(sid, headers, flags) if ftype == SYN_REPLY else HeadersFrame(sid, headers, flags)
        if ftype == RST_STREAM:
            need(8)
            sid, status = _U32x2.unpack_from(p, 0)
            return RstStream(sid & 0x7FFFFFFF, status)
        if ftype == SETTINGS:
            need(4, exact=False)
            (count,) = _U32.unpack_from(p, 0)
            need(4 + 8 * count)
            entries = []
            for i in range(count):
                head, value = _U32x2.unpack_from(p, 4 + 8 * i)
                entries.append((head >> 24, head & 0xFFFFFF, value))
            return Settings(tuple(entries), flags)
        if ftype == PING:
            need(4)
            return Ping(_U32.unpack_from(p, 0)[0])
        if ftype == GOAWAY:
            need(8)
            last, status = _U32x2.unpack_from(p, 0)
            return GoAway(last & 0x7FFFFFFF, status)
        if ftype == WINDOW_UPDATE:
            need(8)
            sid, delta = _U32x2.unpack_from(p, 0)
            sid &= 0x7FFFFFFF
            delta &= 0x7FFFFFFF
            if delta == 0:
                return FrameError(sid, PROTOCOL_ERROR, "WINDOW_UPDATE with a delta of 0")
            return WindowUpdate(sid, delta)
        return UnknownControl(ftype, flags, p)


def _control_frame(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise ValueError(f"a control frame of {len(payload)} bytes is too large")
    return _U32x2.pack(0x80000000 | (VERSION << 16) | ftype, (flags << 24) | len(payload)) + payload


class FrameWriter:
    """Frames to bytes. One deflate context for the connection's header blocks: the frames must
    be sent in the order they were encoded."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def _block(self, headers: Mapping[str, Sequence[str]]) -> bytes:
        raw = encode_header_block(headers)
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            return self.data(frame.stream_id, frame.data, frame.flags)
        if isinstance(frame, SynStream):
            return self.syn_stream(frame.stream_id, frame.headers, frame.flags, frame.associated_id,
                                   frame.priority, frame.slot)
        if isinstance(frame, SynReply):
            return _control_frame(SYN_REPLY, frame.flags, _U32.pack(frame.stream_id) + self._block(frame.headers))
        if isinstance(frame, HeadersFrame):
            return _control_frame(HEADERS, frame.flags, _U32.pack(frame.stream_id) + self._block(frame.headers))
        if isinstance(frame, RstStream):
            return _control_frame(RST_STREAM, 0, _U32x2.pack(frame.stream_id, frame.status))
        if isinstance(frame, Settings):
            body = _U32.pack(len(frame.entries)) + b"".join(
                _U32x2.pack((f << 24) | i, v) for f, i, v in frame.entries)
            return _control_frame(SETTINGS, frame.flags, body)
        if isinstance(frame, Ping):
            return _control_frame(PING, 0, _U32.pack(frame.id))
        if isinstance(frame, GoAway):
            return _control_frame(GOAWAY, 0, _U32x2.pack(frame.last_good_stream_id, frame.status))
        if isinstance(frame, WindowUpdate):
            return _control_frame(WINDOW_UPDATE, 0, _U32x2.pack(frame.stream_id, frame.delta))
        if isinstance(frame, UnknownControl):
            return _control_frame(frame.type, frame.flags, frame.payload)
        raise TypeError(f"cannot encode {type(frame).__name__}")

    def syn_stream(self, stream_id: int, headers: Mapping[str, Sequence[str]], flags: int = 0,
                   associated_id: int = 0, priority: int = 0, slot: int = 0) -> bytes:
        body = _U32x2.pack(stream_id, associated_id) + bytes(((priority & 7) << 5, slot)) + self._block(headers)
        return _control_frame(SYN_STREAM, flags, body)

    @staticmethod
    def data(stream_id: int, data: bytes | memoryview, flags: int = 0) -> bytes:
        if len(data) > MAX_LENGTH:
            raise ValueError(f"a data frame of {len(data)} bytes is too large")
        return _U32x2.pack(stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + bytes(data)


# --------------------------------------------------------------------------- the session


class _Signal:
    """Wake every waiter (no lost wake-ups, unlike clearing a shared Event)."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    async def wait(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)


class Stream:
    """One SPDY stream of a :class:`Session`: its headers, a reader and a writer."""

    def __init__(self, session: Session, stream_id: int, headers: Headers, *, remote_closed: bool,
                 local_closed: bool) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.remote_closed = remote_closed  # the peer sent FIN (or reset)
        self.local_closed = local_closed  # we sent FIN
        self.reset_status: int | None = None  # set when reset by either side
        self.send_window = session.initial_send_window
        self._inbox: deque[bytes] = deque()
        self._readable = _Signal()
        self._unacked = 0  # bytes read since our last WINDOW_UPDATE for this stream

    def header(self, name: str) -> str:
        """The first value of a header ("" without it); names are matched case-insensitively."""
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    @property
    def is_reset(self) -> bool:
        return self.reset_status is not None

    async def read(self) -> bytes:
        """The next piece of data; ``b""`` once the peer half-closed (FIN) or the stream is reset."""
        while not self._inbox:
            if self.remote_closed or self.reset_status is not None:
                return b""
            await self._readable.wait()
        chunk = self._inbox.popleft()
        self.session._consumed(self, len(chunk))
        return chunk

    async def write(self, data: bytes) -> None:
        """Send ``data`` (in frames of at most 32 KiB); waits while the session's output is full
        and, with a peer that keeps windows, for window. :class:`StreamClosedError` when the
        stream is reset or half-closed by us."""
        await self.session._send_data(self, data)

    async def close(self) -> None:
        """Half-close: FIN, no more data from us. Idempotent; nothing on a reset stream."""
        self.session._finish(self)

    def reset(self, status: int = CANCEL) -> None:
        """End the stream both ways with RST_STREAM (idempotent)."""
        self.session._reset(self, status, send=True)


StreamHandler = Callable[[Stream], str | None]  # an error (the stream is reset with CANCEL) or None


class Session:
    """The server end of a SPDY/3.1 connection. ``on_stream`` is called for each new stream the
    peer opens, before its SYN_REPLY is sent; it returns an error text to refuse the stream
    (reset with CANCEL, as spdystream's ``Reset``), or None, and starts whatever serves it (a
    task; it must not block)."""

    def __init__(self, on_stream: StreamHandler, *, input_limit: int = 1 << 20, output_limit: int = 256 << 10,
                 pause_reading: Callable[[], None] | None = None,
                 resume_reading: Callable[[], None] | None = None) -> None:
        self.on_stream = on_stream
        self.streams: dict[int, Stream] = {}
        self.initial_send_window = DEFAULT_WINDOW
        self.send_window = DEFAULT_WINDOW  # the session-level window (SPDY/3.1)
        self.peer_flow_control = False  # the peer announced windows (SETTINGS) or sent WINDOW_UPDATE
        self.closed = False
        self.goaway_received = False
        self._reader = FrameReader()
        self._writer = FrameWriter()
        self._last_remote_id = 0
        self.last_activity = time.monotonic()  # a frame read or queued
        self._session_unacked = 0
        self._out: deque[bytes] = deque()
        self._out_bytes = 0
        self._out_signal = _Signal()  # output queued, or the session closed
        self._room_signal = _Signal()  # output drained below the limit
        self._window_signal = _Signal()  # a window opened, or a stream/the session ended
        self._input_room = _Signal()
        self._in_bytes = 0
        self._input_limit = input_limit
        self._output_limit = output_limit
        self._pause_reading = pause_reading
        self._resume_reading = resume_reading
        self._paused = False
        self._ended = asyncio.Event()

    async def wait_closed(self) -> None:
        """Until the session has ended (the peer went, a protocol error, :meth:`close`)."""
        await self._ended.wait()

    # -- input ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes from the peer, in order. A protocol error ends the session (GOAWAY)."""
        if self.closed:
            return
        self.last_activity = time.monotonic()
        try:
            frames = self._reader.feed(data)
        except SpdyProtocolError as e:
            log.info("SPDY protocol error from the peer: %s", e)
            self.close(GOAWAY_PROTOCOL_ERROR)
            return
        for frame in frames:
            if self.closed:
                return
            self._handle(frame)

    def feed_eof(self) -> None:
        """The peer's connection ended: every stream ends (readers see EOF, writers fail)."""
        self._terminate()

    @property
    def input_full(self) -> bool:
        return self._in_bytes >= self._input_limit

    async def wait_input_room(self) -> None:
        """Wait until the streams' readers took enough that more input may be read."""
        while self.input_full and not self.closed:
            await self._input_room.wait()

    def _handle(self, f: Frame) -> None:
        if isinstance(f, DataFrame):
            self._on_data(f)
        elif isinstance(f, SynStream):
            self._on_syn_stream(f)
        elif isinstance(f, RstStream):
            st = self.streams.get(f.stream_id)
            if st is not None:
                self._reset(st, f.status, send=False)
        elif isinstance(f, WindowUpdate):
            self.peer_flow_control = True
            if f.stream_id == 0:
                self.send_window = min(self.send_window + f.delta, MAX_WINDOW)
            elif (st := self.streams.get(f.stream_id)) is not None:
                st.send_window = min(st.send_window + f.delta, MAX_WINDOW)
            self._window_signal.notify()
        elif isinstance(f, Settings):
            for _flags, sid, value in f.entries:
                if sid == SETTINGS_INITIAL_WINDOW_SIZE and 0 <= value <= MAX_WINDOW:
                    delta = value - self.initial_send_window
                    self.initial_send_window = value
                    for st in self.streams.values():
                        st.send_window += delta
                    self.peer_flow_control = True
            self._window_signal.notify()
        elif isinstance(f, Ping):
            if f.id & 1:  # odd ids are the client's pings: echo them (ours would be even; we send none)
                self._queue(self._writer.encode(f))
        elif isinstance(f, GoAway):
            self.goaway_received = True  # no new streams will come; the open ones go on
        elif isinstance(f, HeadersFrame):
            st = self.streams.get(f.stream_id)
            if st is not None:
                for k, v in f.headers.items():
                    st.headers.setdefault(k, []).extend(v)
                if f.flags & FLAG_FIN:
                    self._remote_fin(st)
        elif isinstance(f, FrameError):
            log.info("SPDY stream %d: %s", f.stream_id, f.message)
            st = self.streams.get(f.stream_id)
            if st is not None:
                self._reset(st, f.status, send=True)
            else:
                self._queue(self._writer.encode(RstStream(f.stream_id, f.status)))
        # SYN_REPLY (a server opens no streams) and unknown control frames are ignored

    def _on_syn_stream(self, f: SynStream) -> None:
        sid = f.stream_id
        if sid in self.streams:
            self._queue(self._writer.encode(RstStream(sid, STREAM_IN_USE)))
            return
        if sid % 2 == 0 or sid <= self._last_remote_id:
            # a client's streams are odd and increasing (spdystream resets others the same way)
            self._queue(self._writer.encode(RstStream(sid, PROTOCOL_ERROR)))
            return
        self._last_remote_id = sid
        if self.goaway_received:
            self._queue(self._writer.encode(RstStream(sid, REFUSED_STREAM)))
            return
        st = Stream(self, sid, f.headers, remote_closed=bool(f.flags & FLAG_FIN),
                    local_closed=bool(f.flags & FLAG_UNIDIRECTIONAL))
        self.streams[sid] = st
        try:
            error = self.on_stream(st)
        except Exception as e:  # a handler bug refuses this stream, not the connection
            log.exception("SPDY stream handler failed")
            error = str(e) or type(e).__name__
        if st.is_reset:
            return
        if error is not None:
            log.info("SPDY stream %d rejected: %s", sid, error)
            self._reset(st, CANCEL, send=True)
            return
        # Why queued here, synchronously: the handler's tasks run later, so the reply is sent
        # before any data of the stream (the header contexts also stay in order).
        self._queue(self._writer.encode(SynReply(sid, {})))

    def _on_data(self, f: DataFrame) -> None:
        st = self.streams.get(f.stream_id)
        if st is None or st.remote_closed:
            # a stream we no longer know (reset, both sides finished): dropped, as spdystream
            # does; its bytes still re-open the session window of a peer that keeps one
            self._ack_session(len(f.data))
            if st is not None and not st.is_reset:
                self._reset(st, STREAM_ALREADY_CLOSED, send=True)
            return
        if f.data:
            st._inbox.append(f.data)
            self._in_bytes += len(f.data)
            if self._in_bytes >= self._input_limit and self._pause_reading is not None and not self._paused:
                self._paused = True
                self._pause_reading()
        if f.flags & FLAG_FIN:
            self._remote_fin(st)
        st._readable.notify()

    def _remote_fin(self, st: Stream) -> None:
        st.remote_closed = True
        st._readable.notify()
        self._forget_if_done(st)

    def _consumed(self, st: Stream, n: int) -> None:
        """A reader took ``n`` bytes: room for input, and window for a peer that keeps one."""
        self._in_bytes -= n
        if self._in_bytes < self._input_limit // 2:
            if self._paused and self._resume_reading is not None:
                self._paused = False
                self._resume_reading()
            self._input_room.notify()
        st._unacked += n
        if st._unacked >= DEFAULT_WINDOW // 2 and not st.remote_closed and not st.is_reset:
            self._queue(self._writer.encode(WindowUpdate(st.id, st._unacked)))
            st._unacked = 0
        self._ack_session(n)

    def _ack_session(self, n: int) -> None:
        self._session_unacked += n
        if self._session_unacked >= DEFAULT_WINDOW // 2 and not self.closed:
            self._queue(self._writer.encode(WindowUpdate(0, self._session_unacked)))
            self._session_unacked = 0

    # -- output --------------------------------------------------------------------------
    def _queue(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_activity = time.monotonic()
        self._out.append(data)
        self._out_bytes += len(data)
        self._out_signal.notify()

    async def next_output(self) -> bytes | None:
        """What to send next (all that is queued, joined); None once the session has ended and
        everything queued was handed out."""
        while not self._out:
            if self.closed:
                return None
            await self._out_signal.wait()
        data = b"".join(self._out)
        self._out.clear()
        self._out_bytes = 0
        self._room_signal.notify()
        return data

    async def _send_data(self, st: Stream, data: bytes) -> None:
        view = memoryview(data)
        while True:
            if st.local_closed or st.is_reset or self.closed:
                raise StreamClosedError(f"stream {st.id} is closed")
            if not view:
                return
            n = min(len(view), MAX_DATA_CHUNK)
            if self.peer_flow_control:
                if st.send_window <= 0 or self.send_window <= 0:
                    await self._window_signal.wait()
                    continue
                n = min(n, st.send_window, self.send_window)
            st.send_window -= n
            self.send_window -= n
            self._queue(self._writer.data(st.id, view[:n]))
            view = view[n:]
            while self._out_bytes > self._output_limit and not self.closed:
                await self._room_signal.wait()

    def _finish(self, st: Stream) -> None:
        if st.local_closed or st.is_reset or self.closed:
            return
        st.local_closed = True
        self._queue(self._writer.data(st.id, b"", FLAG_FIN))
        self._forget_if_done(st)

    def _reset(self, st: Stream, status: int, *, send: bool) -> None:
        if st.is_reset:
            return
        st.reset_status = status
        if send and not self.closed and self.streams.get(st.id) is st:
            self._queue(self._writer.encode(RstStream(st.id, status)))
        st.remote_closed = st.local_closed = True
        self._drop(st)
        st._readable.notify()
        self._window_signal.notify()

    def _forget_if_done(self, st: Stream) -> None:
        if st.remote_closed and st.local_closed:
            self._drop(st)

    def _drop(self, st: Stream) -> None:
        if self.streams.get(st.id) is st:
            del self.streams[st.id]
        if st._inbox:  # unread input of a stream that ended: no longer held
            left = sum(len(c) for c in st._inbox)
            st._inbox.clear()
            self._in_bytes -= left
            self._ack_session(left)
            if self._in_bytes < self._input_limit // 2:
                if self._paused and self._resume_reading is not None:
                    self._paused = False
                    self._resume_reading()
                self._input_room.notify()

    # -- the end -------------------------------------------------------------------------
    def close(self, status: int = GOAWAY_OK) -> None:
        """Say GOAWAY and end: every stream ends; :meth:`next_output` hands out what was queued
        (the GOAWAY last), then None."""
        if self.closed:
            return
        self._queue(self._writer.encode(GoAway(self._last_remote_id, status)))
        self._terminate()

    def _terminate(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._ended.set()
        for st in list(self.streams.values()):
            if not st.is_reset:
                st.reset_status = CANCEL
                st.remote_closed = st.local_closed = True
            st._inbox.clear()
            st._readable.notify()
        self.streams.clear()
        self._in_bytes = 0
        if self._paused and self._resume_reading is not None:
            self._paused = False
            self._resume_reading()
        self._input_room.notify()
        self._window_signal.notify()
        self._room_signal.notify()
        self._out_signal.notify()


# --------------------------------------------------------------------------- transports

UPGRADE_PROTOCOL = "SPDY/3.1"
WEBSOCKET_TUNNEL_PREFIX = "SPDY/3.1+"  # client-go's tunnelling subprotocol prefix
HEADER_PROTOCOL_VERSION = "X-Stream-Protocol-Version"
HEADER_ACCEPTED_PROTOCOLS = "X-Accepted-Stream-Protocol-Versions"


def is_upgrade(headers: Mapping[str, str]) -> bool:
    """``Connection: Upgrade`` with ``Upgrade: SPDY/3.1``."""
    return ("upgrade" in headers.get("Connection", "").lower()
            and UPGRADE_PROTOCOL.lower() in headers.get("Upgrade", "").lower())


def offered_protocols(headers: web.Request | Mapping[str, str]) -> list[str]:
    """The client's ``X-Stream-Protocol-Version`` values, in its order (httpstream's handshake)."""
    h = headers.headers if isinstance(headers, web.Request) else headers
    getall = getattr(h, "getall", None)
    values = getall(HEADER_PROTOCOL_VERSION, []) if getall else [h.get(HEADER_PROTOCOL_VERSION, "")]
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


def go_header(headers: Mapping[str, str]) -> str:
    """A request's headers as Go's ``%#v`` of ``http.Header`` prints them (kubelet's upgrade error)."""
    items: dict[str, list[str]] = {}
    for k, v in headers.items():
        canon = "-".join(part[:1].upper() + part[1:].lower() for part in k.split("-"))
        items.setdefault(canon, []).append(v)
    body = ", ".join(f'"{k}":[]string{{{", ".join(chr(34) + v + chr(34) for v in vs)}}}' for k, vs in items.items())
    return f"http.Header{{{body}}}"


class _UpgradedReader:
    """What aiohttp feeds an upgraded connection's bytes to (it calls this its payload parser)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.session.feed(data)
        return False, b""

    def feed_eof(self) -> None:
        self.session.feed_eof()


def _resumer(transport: asyncio.Transport) -> Callable[[], None]:
    def resume() -> None:
        if not transport.is_closing():
            transport.resume_reading()
    return resume


async def serve_upgraded(request: web.Request, session_factory: Callable[..., Session],
                         headers: Mapping[str, str], run: Callable[[Session], Awaitable[None]]) -> web.StreamResponse:
    """Answer ``request`` (its ``Connection: Upgrade``, ``Upgrade: SPDY/3.1`` already checked)
    with ``101 Switching Protocols`` and ``headers``, then speak SPDY on the connection:
    ``session_factory(pause_reading=, resume_reading=)`` makes the session, ``run(session)``
    serves it until it returns; then the session says GOAWAY and the connection closes."""
    resp = web.StreamResponse(status=101, headers={"Connection": "Upgrade", "Upgrade": UPGRADE_PROTOCOL,
                                                   **headers})
    resp.force_close()
    writer = await resp.prepare(request)
    assert writer is not None
    protocol = request.protocol
    transport = request.transport
    assert transport is not None
    # the transport itself: aiohttp's protocol would pause its HTTP parser, which this
    # connection no longer uses (aiohttp does not know SPDY as an upgrade)
    session = session_factory(pause_reading=transport.pause_reading, resume_reading=_resumer(transport))
    # aiohttp keeps what came after the request's head and hands it to this parser
    protocol.set_parser(_UpgradedReader(session))  # type: ignore[arg-type]

    async def pump() -> None:
        while (chunk := await session.next_output()) is not None:
            await writer.write(chunk)
            await writer.drain()

    await _serve(session, run, pump())
    return resp


async def serve_websocket(request: web.Request, ws: web.WebSocketResponse, session: Session,
                          run: Callable[[Session], Awaitable[None]]) -> None:
    """SPDY tunnelled in WebSocket binary messages (client-go's ``TunnelingConnection``: each
    message carries any part of the byte stream); ``ws`` is prepared. A text message is a
    protocol error."""

    async def receive() -> None:
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    session.feed(msg.data)
                    await session.wait_input_room()
                elif msg.type == WSMsgType.TEXT:
                    log.info("a text message in a SPDY tunnel: closing it")
                    session.close(GOAWAY_PROTOCOL_ERROR)
                    break
        finally:
            session.feed_eof()

    async def pump() -> None:
        while (chunk := await session.next_output()) is not None:
            await ws.send_bytes(chunk)

    reader = asyncio.create_task(receive())
    try:
        await _serve(session, run, pump())
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await ws.close()


async def _serve(session: Session, run: Callable[[Session], Awaitable[None]], pump: Awaitable[None]) -> None:
    """Run the session's server and its output pump. The server returns when it is done (or is
    cancelled when the client goes); then GOAWAY is sent and the pump drains what is queued. A
    pump that fails (the client is gone) ends the session, so the server returns."""

    async def pumping() -> None:
        try:
            await pump
        except (ConnectionError, OSError) as e:
            log.debug("SPDY output stopped: %s", e)
        finally:
            session.feed_eof()

    pump_task = asyncio.create_task(pumping())
    try:
        await run(session)
    finally:
        session.close()
        try:
            # the queued frames and the GOAWAY, bounded: a peer that reads nothing is not waited for
            async with asyncio.timeout(5.0):
                await asyncio.shield(pump_task)
        except TimeoutError:
            pass
        finally:  # also when cancelled: the pump never outlives the connection
            pump_task.cancel()
            await asyncio.gather(pump_task, return_exceptions=True)
