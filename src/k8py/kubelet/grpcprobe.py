"""gRPC probes: the ``grpc.health.v1.Health/Check`` call kubelet's ``pkg/probe/grpc`` makes.

One plaintext HTTP/2 connection (h2c, "prior knowledge") per probe to ``podIP:port``, one
stream: ``POST /grpc.health.v1.Health/Check`` with a length-prefixed ``HealthCheckRequest``
(``service``, field 1), answered by a ``HealthCheckResponse`` (``status``, field 1: UNKNOWN,
SERVING, NOT_SERVING, SERVICE_UNKNOWN) and the ``grpc-status`` trailer. The HTTP/2 framing and
HPACK are the ``h2`` library's (pure Python, about 1.3 MB once loaded, and loaded only when a
pod has a gRPC probe: the full gRPC stack would cost the agent over 17 MB); the two protobuf
messages are one field each and written by hand.

The outcome and its text are kubelet's: connecting is retried until ``timeoutSeconds`` (gRPC's
``WithBlock``), then ``timeout: failed to connect service "ip:port" within 1s: context deadline
exceeded``; an RPC that does not finish in time is ``timeout: health rpc did not complete within
1s``; a server without the health service is ``error: this server does not implement the grpc
health protocol (grpc.health.v1.Health): ...``; another gRPC error is ``error: health rpc probe
failed: rpc error: code = NotFound desc = unknown service``; a status other than SERVING is
``service unhealthy (responded with "NOT_SERVING")``; success is ``service healthy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from typing import Any
from urllib.parse import unquote

from k8py.api.gotext import go_duration
from k8py.api.protowire import VARINT, WireError, fields, length_delimited

__all__ = ["HEALTH_PATH", "check", "decode_response", "encode_request"]

HEALTH_PATH = "/grpc.health.v1.Health/Check"
STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
# grpc's codes.Code names, as Go prints them
CODE_NAMES = ("OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
              "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
              "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated")
UNIMPLEMENTED = 12
DEADLINE_EXCEEDED = 4
CONNECT_RETRY = 0.1  # between connection attempts within the probe's timeout
MAX_MESSAGE = 4 * 1024 * 1024


def encode_request(service: str) -> bytes:
    """A gRPC message (1-byte compressed flag, 4-byte length) holding ``HealthCheckRequest``."""
    raw = service.encode()
    msg = length_delimited(1, raw) if raw else b""  # HealthCheckRequest.service
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


def decode_response(body: bytes) -> int:
    """``HealthCheckResponse.status`` from the first gRPC message in ``body`` (0 when absent);
    ValueError for a message that is not one."""
    if len(body) < 5:
        raise ValueError("grpc: a response without a message")
    if body[0] != 0:
        raise ValueError("grpc: a compressed response message")
    n = int.from_bytes(body[1:5], "big")
    msg = body[5:5 + n]
    if len(msg) != n:
        raise ValueError("grpc: a truncated response message")
    try:
        parsed = fields(msg)
    except WireError as e:  # grpc-go's words for a message that does not parse
        raise ValueError(f"grpc: failed to unmarshal the received message: {e}") from None
    status = 0
    for field, wire, v in parsed:
        if field == 1 and wire == VARINT:  # HealthCheckResponse.status; the last one wins, as protobuf's
            status = v
    return status


def _host_port(host: str, port: int) -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    return f"{host}:{port}"


class _RPCError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def go(self) -> str:
        name = CODE_NAMES[self.code] if 0 <= self.code < len(CODE_NAMES) else f"Code({self.code})"
        return f"rpc error: code = {name} desc = {self.message}"


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """gRPC's blocking dial: connection attempts until one works (the caller bounds it)."""
    while True:
        try:
            return await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(CONNECT_RETRY)


async def check(host: str, port: int, service: str, timeout: float, user_agent: str) -> tuple[bool, str]:
    """One health check: (healthy, kubelet's output)."""
    addr = _host_port(host, port)
    dur = go_duration(timeout)
    deadline = time.monotonic() + timeout
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _connect(host, port)
    except TimeoutError:
        return False, f'timeout: failed to connect service "{addr}" within {dur}: context deadline exceeded'
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            status = await _call(reader, writer, addr, service, deadline, user_agent)
    except TimeoutError:
        return False, f"timeout: health rpc did not complete within {dur}"
    except _RPCError as e:
        if e.code == UNIMPLEMENTED:
            return False, ("error: this server does not implement the grpc health protocol "
                           f"(grpc.health.v1.Health): {e.message}")
        if e.code == DEADLINE_EXCEEDED:
            return False, f"timeout: health rpc did not complete within {dur}"
        return False, f"error: health rpc probe failed: {e.go()}"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if status != 1:
        return False, f'service unhealthy (responded with "{STATUS_NAMES.get(status, str(status))}")'
    return True, "service healthy"


async def _call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str, service: str,
                deadline: float, user_agent: str) -> int:
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions

    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    left_ms = max(1, int((deadline - time.monotonic()) * 1000))
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", HEALTH_PATH),
                            (":authority", authority), ("te", "trailers"), ("content-type", "application/grpc"),
                            ("user-agent", user_agent), ("grpc-timeout", f"{left_ms}m")])
    conn.send_data(sid, encode_request(service), end_stream=True)
    writer.write(conn.data_to_send())
    await writer.drain()
    body = b""
    headers: dict[str, str] = {}
    while True:
        data = await reader.read(65536)
        if not data:
            raise _RPCError(14, "error reading from server: EOF")
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            raise _RPCError(14, f"connection error: {e}") from None
        ended = False
        for ev in events:
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)) and ev.stream_id == sid:
                headers.update({_s(k): _s(v) for k, v in ev.headers})
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                body += ev.data
                if len(body) > MAX_MESSAGE:
                    raise _RPCError(8, "grpc: received message larger than max")
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                ended = True
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                raise _RPCError(13, f"stream terminated by RST_STREAM with error code: {ev.error_code}")
            elif isinstance(ev, h2.events.ConnectionTerminated):
                raise _RPCError(14, f"connection closed by the server (GOAWAY {ev.error_code})")
        out = conn.data_to_send()
        if out:
            writer.write(out)
            await writer.drain()
        if ended:
            break
    if headers.get(":status", "200") != "200":
        raise _RPCError(2 if headers[":status"] != "404" else UNIMPLEMENTED,
                        f"unexpected HTTP status code received from server: {headers[':status']}")
    code = int(headers.get("grpc-status", "2") or 2)
    if code != 0:
        raise _RPCError(code, unquote(headers.get("grpc-message", "")))
    try:
        return decode_response(body)
    except ValueError as e:
        raise _RPCError(13, str(e)) from None


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
