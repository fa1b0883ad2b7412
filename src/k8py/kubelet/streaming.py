"""``kubectl exec`` and ``kubectl attach`` on the node: kubelet's ``/exec`` and ``/attach`` over
WebSocket with Kubernetes' channel protocols.

Routes (as kubelet's): ``/exec/{namespace}/{pod}/{container}`` and
``/attach/{namespace}/{pod}/{container}`` (also with ``/{uid}`` before the container), GET or
POST, with the options the API server passes on: ``command`` (repeated, exec only), ``stdin``,
``stdout``, ``stderr``, ``tty`` (``1`` or ``true``). Before the upgrade, as kubelet checks them:
no stream asked for is 400 "you must specify at least 1 of stdin, stdout, stderr"; an unknown
pod 404 "pod does not exist"; a container that is not running 500 ``container not found ("c")``.

**SPDY** (kubectl with ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``, and older clients): an
``Upgrade: SPDY/3.1`` request names its protocols in ``X-Stream-Protocol-Version``
(``v5.channel.k8s.io`` -- over SPDY the same as v4 --, ``v4``, ``v3``, ``v2``, ``channel.k8s.io``;
none: the original one); the first of the client's that is served here is answered in the ``101``,
else 403 with kubelet's "unable to negotiate protocol". The client then opens one SPDY stream per
``streamType``: ``error``, and ``stdin``, ``stdout``, ``stderr`` as asked, ``resize`` with a TTY
(v3 and later); once all have come (30 s at most, kubelet's stream creation timeout) the command
runs: stdout and stderr go out on their streams, stdin comes in on its (its FIN closes the
command's stdin), resize carries ``{"Width":..,"Height":..}`` documents, and at the end the
error stream gets the exit status (v4, v5: the ``metav1.Status`` in JSON; older: the error's
text, nothing on success), the streams are closed and the session says GOAWAY. The SPDY codec and
session are :mod:`k8py.kubelet.spdy`, shared with port-forward.

The WebSocket subprotocols (``k8s.io/apimachinery/pkg/util/httpstream/wsstream``): each binary
message is one byte of channel then data; the ``base64`` variants send text messages with the
channel as an ASCII digit and the data base64-encoded. Channels: 0 stdin, 1 stdout, 2 stderr,
3 error, 4 resize (``{"Width": w, "Height": h}``); ``v5.channel.k8s.io`` adds 255 "close": the
client sends ``[255, 0]`` at the end of its stdin. Right after the upgrade an empty message goes
out on the lowest channel the client reads (stdout, else stderr, else error), as kubelet's
streams announce they are ready. When the command ends its exit status goes on the error
channel -- for v4 and v5 a ``metav1.Status`` in JSON (``Success``; or ``Failure`` with reason
``NonZeroExitCode`` and an ``ExitCode`` cause, so that ``kubectl exec -- false`` exits 1; or
``InternalError`` when the command could not be started; an attach's ``Success`` when the
container's output ends), for the older protocols the error's text -- and the connection is
closed. A client that goes away ends the exec: the command and
what it started are killed (:meth:`StreamSession.close`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from k8py.kubelet import spdy
from k8py.kubelet.runtime.types import ContainerState, RuntimeServiceError, StreamOptions, StreamSession

if TYPE_CHECKING:
    from k8py.kubelet.server import KubeletServer

__all__ = [
    "PROTOCOLS",
    "ChannelProtocol",
    "decode_frame",
    "encode_frame",
    "exit_status",
    "negotiate",
    "parse_stream_options",
    "serve",
]

log = logging.getLogger("k8py.kubelet.streaming")

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255  # v5: the client closes one of its streams (data: the channel)
# the SPDY protocols, kubelet's SupportedStreamingProtocols: v5 is v4 over SPDY
SPDY_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                  "channel.k8s.io")
STREAM_CREATION_TIMEOUT = 30.0  # kubelet's DefaultStreamCreationTimeout
MAX_MESSAGE = 16 * 1024 * 1024
_TRUE = ("1", "true", "True", "TRUE", "t", "T")


@dataclass(frozen=True, slots=True)
class ChannelProtocol:
    name: str
    base64: bool = False  # text messages, channel as a digit, data base64
    status_json: bool = True  # v4+: the error channel carries a metav1.Status
    stream_close: bool = False  # v5: channel 255 closes a stream


# kubelet's order of preference does not matter: the client's first supported one is chosen
PROTOCOLS: dict[str, ChannelProtocol] = {
    p.name: p
    for p in (
        ChannelProtocol("v5.channel.k8s.io", stream_close=True),
        ChannelProtocol("v4.channel.k8s.io"),
        ChannelProtocol("v4.base64.channel.k8s.io", base64=True),
        ChannelProtocol("channel.k8s.io", status_json=False),
        ChannelProtocol("base64.channel.k8s.io", base64=True, status_json=False),
    )
}


class OptionsError(ValueError):
    pass


def parse_stream_options(query: Mapping[str, str]) -> StreamOptions:
    """kubelet's ``remotecommand.NewOptions``: a TTY has no separate stderr."""
    def flag(name: str) -> bool:
        return query.get(name, "") in _TRUE

    tty, stdin, stdout, stderr = flag("tty"), flag("stdin"), flag("stdout"), flag("stderr")
    if tty and stderr:
        stderr = False  # kubelet: "Access to exec with tty and stderr is not supported, bypassing stderr"
    if not (stdin or stdout or stderr):
        raise OptionsError("you must specify at least 1 of stdin, stdout, stderr")
    return StreamOptions(stdin=stdin, stdout=stdout, stderr=stderr, tty=tty)


def negotiate(header: str) -> ChannelProtocol | None:
    """The first subprotocol the client offers that is served here; with none offered the
    original ``channel.k8s.io``, as wsstream does."""
    offered = [p.strip() for p in header.split(",") if p.strip()]
    if not offered:
        return PROTOCOLS["channel.k8s.io"]
    return next((PROTOCOLS[p] for p in offered if p in PROTOCOLS), None)


def encode_frame(proto: ChannelProtocol, channel: int, data: bytes) -> bytes | str:
    if proto.base64:
        return chr(ord("0") + channel) + base64.b64encode(data).decode("ascii")
    return bytes((channel,)) + data


def decode_frame(proto: ChannelProtocol, message: bytes | str) -> tuple[int, bytes] | None:
    """(channel, data) of a client's message; None for an empty or undecodable one (skipped,
    as wsstream skips them)."""
    if not message:
        return None
    if proto.base64:
        text = message if isinstance(message, str) else message.decode("ascii", "replace")
        channel = ord(text[0]) - ord("0")
        try:
            return channel, base64.b64decode(text[1:], validate=True)
        except ValueError:
            return None
    raw = message if isinstance(message, bytes) else message.encode()
    return raw[0], raw[1:]


def exit_status(cmd: Sequence[str], code: int | None, error: str = "") -> dict[str, Any]:
    """The ``metav1.Status`` kubelet writes on the error channel when an exec ends."""
    if error:
        message = f"error executing command in container: {error}"
        return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
                "reason": "InternalError", "details": {"causes": [{"message": message}]}, "code": 500}
    if not code:
        return {"metadata": {}, "status": "Success"}
    # what the CRI runtime's exit error reads (containerd's), quoted by kubelet
    detail = f"error executing command [{' '.join(cmd)}], exit code {code}"
    return {"metadata": {}, "status": "Failure", "message": f"command terminated with non-zero exit code: {detail}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain", charset="utf-8")


def _is_websocket(request: web.Request) -> bool:
    return (request.headers.get("Upgrade", "").lower() == "websocket"
            and "upgrade" in request.headers.get("Connection", "").lower())


# --------------------------------------------------------------------------- the handler


async def serve(server: KubeletServer, request: web.Request, attach: bool) -> web.StreamResponse:
    """``/exec/...`` (``attach`` False) and ``/attach/...``."""
    ns = request.match_info["namespace"]
    pod_name = request.match_info["pod"]
    cname = request.match_info["container"]
    uid = request.match_info.get("uid", "")
    try:
        opts = parse_stream_options(request.query)
    except OptionsError as e:
        return _text(400, str(e))
    cmd = [] if attach else list(request.query.getall("command", []))
    pod = await server.find_pod(ns, pod_name)
    if pod is None or (uid and (pod.get("metadata") or {}).get("uid") != uid):
        return _text(404, "pod does not exist")
    running = [c for c in await server.containers_of(pod, cname) if c.state == ContainerState.RUNNING]
    if not running:
        return _text(500, f'container not found ("{cname}")')
    container_id = max(running, key=lambda c: c.attempt).id
    if attach:
        # kubelet's GetAttach: whether there is a terminal is the container's, not the request's
        tty = any(c.get("name") == cname and c.get("tty") for key in ("containers", "initContainers",
                  "ephemeralContainers") for c in (pod.get("spec") or {}).get(key) or ())
        opts = dataclasses.replace(opts, tty=tty, stderr=opts.stderr and not tty)
    if not attach and not cmd:
        return _text(400, "a command to run is required (query parameter \"command\")")
    if not _is_websocket(request):
        return await _serve_spdy(server, request, container_id, cmd, opts, attach)
    proto = negotiate(request.headers.get("Sec-WebSocket-Protocol", ""))
    if proto is None:
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        return _text(400, f"unable to upgrade: unable to negotiate protocol: client supports [{offered}], "
                          f"server supports [{' '.join(PROTOCOLS)}]")
    ws = web.WebSocketResponse(protocols=(proto.name,), max_msg_size=MAX_MESSAGE, autoping=True)
    await ws.prepare(request)
    stream = _Stream(ws, proto)
    try:
        first = STDOUT if opts.stdout else STDERR if opts.stderr else ERROR
        await stream.send(first, b"")  # "the streams are ready"
        try:
            if attach:
                session = await server.runtime.attach(container_id, opts)
            else:
                session = await server.runtime.exec_stream(container_id, cmd, opts)
        except RuntimeServiceError as e:
            await stream.status(exit_status(cmd, None, str(e)))
            return ws
        try:
            await _run(stream, session, cmd)
        finally:
            await session.close()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        log.debug("%s %s/%s/%s: the client went away", "attach" if attach else "exec", ns, pod_name, cname)
    finally:
        await ws.close()
    return ws


class _Stream:
    def __init__(self, ws: web.WebSocketResponse, proto: ChannelProtocol) -> None:
        self.ws = ws
        self.proto = proto

    async def send(self, channel: int, data: bytes) -> None:
        frame = encode_frame(self.proto, channel, data)
        if isinstance(frame, str):
            await self.ws.send_str(frame)
        else:
            await self.ws.send_bytes(frame)

    async def status(self, status: dict[str, Any]) -> None:
        if self.proto.status_json:
            await self.send(ERROR, json.dumps(status, separators=(",", ":")).encode())
        elif status.get("status") != "Success":
            await self.send(ERROR, str(status.get("message", "")).encode())


async def _run(stream: _Stream, session: StreamSession, cmd: Sequence[str]) -> None:
    """Pipe both ways until the output ends (then the exit status goes out) or the client goes."""
    output = asyncio.create_task(_pump_output(stream, session))
    client = asyncio.create_task(_pump_input(stream, session))
    try:
        done, _ = await asyncio.wait({output, client}, return_when=asyncio.FIRST_COMPLETED)
        if output in done:
            output.result()
            # an attach ends when the container's process does: Success, as kubelet's ServeAttach
            code = await session.wait()
            await stream.status(exit_status(cmd, code or 0))
    finally:
        for t in (output, client):
            t.cancel()
        await asyncio.gather(output, client, return_exceptions=True)


async def _pump_output(stream: _Stream, session: StreamSession) -> None:
    while (piece := await session.read()) is not None:
        await stream.send(piece[0], piece[1])


async def _pump_input(stream: _Stream, session: StreamSession) -> None:
    """The client's messages until it closes; then the session is ended by the caller."""
    resize_buf = b""
    async for msg in stream.ws:
        if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            continue
        frame = decode_frame(stream.proto, msg.data)
        if frame is None:
            continue
        channel, data = frame
        if channel == STDIN:
            await session.write(data)
        elif channel == RESIZE:
            resize_buf = _resize(session, resize_buf + data)
        elif channel == CLOSE and stream.proto.stream_close and data[:1] == bytes((STDIN,)):
            await session.close_stdin()


def _resize(session: StreamSession, buf: bytes) -> bytes:
    """Each complete ``{"Width":..,"Height":..}`` in ``buf`` resizes the terminal; the rest of
    ``buf`` (a document cut between two messages) is returned. Garbage is dropped."""
    decoder = json.JSONDecoder()
    text = buf.decode("utf-8", "replace")
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return b""
        try:
            size, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            # an unfinished document waits for the next message; a bad one is dropped
            return text[pos:].encode() if len(text) - pos < 1024 and text[pos] == "{" else b""
        pos = end
        if isinstance(size, dict):
            with contextlib.suppress(TypeError, ValueError):
                session.resize(int(size.get("Width", 0)), int(size.get("Height", 0)))


# --------------------------------------------------------------------------- SPDY


async def _serve_spdy(server: KubeletServer, request: web.Request, container_id: str, cmd: Sequence[str],
                      opts: StreamOptions, attach: bool) -> web.StreamResponse:
    """kubelet's ``createHTTPStreamStreams``: the handshake, the upgrade, the streams, the run."""
    offered = spdy.offered_protocols(request)
    if offered:
        version = next((p for p in offered if p in SPDY_PROTOCOLS), None)
        if version is None:
            return web.Response(status=403, content_type="text/plain", charset="utf-8",
                                headers={spdy.HEADER_ACCEPTED_PROTOCOLS: ", ".join(SPDY_PROTOCOLS)},
                                text=f"unable to upgrade: unable to negotiate protocol: client supports "
                                     f"[{' '.join(offered)}], server accepts [{' '.join(SPDY_PROTOCOLS)}]")
    else:
        version = "channel.k8s.io"  # no negotiation: the first protocol, as kubelet falls back
    if not spdy.is_upgrade(request.headers):
        return _text(400, f"unable to upgrade: missing upgrade headers in request: {spdy.go_header(request.headers)}")
    streams = _SpdyStreams(opts, version)

    async def run(session: spdy.Session) -> None:
        await streams.run(session, server, container_id, cmd, opts, attach)

    def make_session(**kw: Any) -> spdy.Session:
        return spdy.Session(streams.on_stream, **kw)

    headers = {spdy.HEADER_PROTOCOL_VERSION: version} if offered else {}
    return await spdy.serve_upgraded(request, make_session, headers, run)


def _level(version: str) -> int:
    """1 for ``channel.k8s.io``, else the number of ``vN.channel.k8s.io``."""
    return int(version[1]) if version.startswith("v") else 1


class _SpdyStreams:
    """The client's streams by ``streamType`` (kubelet's ``waitForStreams``), then the command."""

    TYPES = ("error", "stdin", "stdout", "stderr", "resize")

    def __init__(self, opts: StreamOptions, version: str) -> None:
        self.version = version
        self.level = _level(version)
        self.expected = 1 + opts.stdin + opts.stdout + opts.stderr + (opts.tty and self.level >= 3)
        self.streams: dict[str, spdy.Stream] = {}
        self.all_here = asyncio.Event()

    def on_stream(self, st: spdy.Stream) -> str | None:
        kind = st.header("streamType")
        if kind not in self.TYPES or (kind == "resize" and self.level < 3):
            log.info("exec over SPDY: unexpected stream type: %q", kind)
            return None  # answered, not used (kubelet's HandleError)
        self.streams[kind] = st
        if len(self.streams) >= self.expected:
            self.all_here.set()
        return None

    async def run(self, session: spdy.Session, server: KubeletServer, container_id: str, cmd: Sequence[str],
                  opts: StreamOptions, attach: bool) -> None:
        try:
            async with asyncio.timeout(STREAM_CREATION_TIMEOUT):
                await self._wait(session)
        except TimeoutError:
            log.info("exec over SPDY: timed out waiting for client to create streams")
            return
        if session.closed:
            return
        if self.level == 1 and "stdin" in self.streams:
            await self.streams["stdin"].close()  # what 1.0 kubelets did; v2 fixed it
        try:
            if attach:
                rt_session = await server.runtime.attach(container_id, opts)
            else:
                rt_session = await server.runtime.exec_stream(container_id, cmd, opts)
        except RuntimeServiceError as e:
            await self._status(exit_status(cmd, None, str(e)))
            return
        try:
            await self._pipe(session, rt_session, cmd)
        finally:
            await rt_session.close()

    async def _wait(self, session: spdy.Session) -> None:
        ended = asyncio.ensure_future(session.wait_closed())
        here = asyncio.ensure_future(self.all_here.wait())
        try:
            await asyncio.wait({ended, here}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            here.cancel()

    async def _pipe(self, session: spdy.Session, rt: StreamSession, cmd: Sequence[str]) -> None:
        tasks = [asyncio.create_task(self._output(rt))]
        if "stdin" in self.streams and self.level > 1:
            tasks.append(asyncio.create_task(self._input(rt, self.streams["stdin"])))
        if "resize" in self.streams:
            tasks.append(asyncio.create_task(self._resize(rt, self.streams["resize"])))
        gone = asyncio.ensure_future(session.wait_closed())
        try:
            done, _ = await asyncio.wait({tasks[0], gone}, return_when=asyncio.FIRST_COMPLETED)
            if tasks[0] in done and not session.closed:
                tasks[0].result()
                code = await rt.wait()
                await self._status(exit_status(cmd, code or 0))
                for kind in ("stdout", "stderr", "error"):
                    if (st := self.streams.get(kind)) is not None:
                        await st.close()
        except spdy.StreamClosedError:
            log.debug("exec over SPDY: the client went away")
        finally:
            gone.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(gone, *tasks, return_exceptions=True)

    async def _status(self, status: dict[str, Any]) -> None:
        err = self.streams.get("error")
        if err is None:
            return
        if self.level >= 4:
            data = json.dumps(status, separators=(",", ":")).encode()
        elif status.get("status") != "Success":
            data = str(status.get("message", "")).encode()
        else:
            return
        with contextlib.suppress(spdy.StreamClosedError):
            await err.write(data)

    async def _output(self, rt: StreamSession) -> None:
        while (piece := await rt.read()) is not None:
            st = self.streams.get("stdout" if piece[0] == STDOUT else "stderr")
            if st is not None:
                await st.write(piece[1])

    @staticmethod
    async def _input(rt: StreamSession, st: spdy.Stream) -> None:
        while data := await st.read():
            await rt.write(data)
        await rt.close_stdin()

    @staticmethod
    async def _resize(rt: StreamSession, st: spdy.Stream) -> None:
        buf = b""
        while data := await st.read():
            buf = _resize(rt, buf + data)
