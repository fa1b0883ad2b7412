"""The probes' HTTP client (``kubelet/httpget.py``) against a raw asyncio server on loopback:
the exact request bytes kubelet's Go client writes, header overrides, status codes, redirects
(same host followed, another host not, the ten-request limit), bodies by length, chunked and
until close (each cut at 10 KiB), informational responses, malformed answers, timeouts at each
stage, refused connections, IPv6 literals and HTTPS."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from k8py.kubelet import httpget
from k8py.kubelet.prober import HTTPProber, ProbeError

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


def response(status: str, body: bytes = b"", headers: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n\r\n").encode() + body


class RawServer:
    """Answers each request by its path from ``routes`` (bytes to write, or a coroutine given
    the request and the writer); keeps every request's raw bytes."""

    def __init__(self, routes: dict[str, bytes | Handler]) -> None:
        self.routes = routes
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        self.requests.append(head)
        path = head.split(b" ", 2)[1].decode().partition("?")[0]
        route = self.routes.get(path, response("404 Not Found"))
        try:
            if isinstance(route, bytes):
                writer.write(route)
                await writer.drain()
            else:
                await route(head, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def start(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> RawServer:
        self.server = await asyncio.start_server(self._serve, host, 0, ssl=tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


TLS = httpget.insecure_tls()


async def fetch(port: int, path: str, headers: list[tuple[str, str]] | None = None, timeout: float = 2,
                host: str = "127.0.0.1", scheme: str = "http") -> httpget.Reply:
    return await httpget.get(scheme, host, port, path, headers or [], timeout, user_agent="kube-probe/1.37", tls=TLS)


async def stall(head: bytes, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


async def head_then_stall(head: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    await writer.drain()
    await asyncio.sleep(30)


async def in_pieces(head: bytes, writer: asyncio.StreamWriter) -> None:
    """A chunked body written a few bytes at a time (chunk sizes and data split across reads)."""
    data = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nTrailer: x\r\n\r\n")
    for i in range(0, len(data), 3):
        writer.write(data[i:i + 3])
        await writer.drain()
        await asyncio.sleep(0.002)


def chunked(body: bytes, size: int = 1000) -> bytes:
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


@pytest.fixture
async def srv() -> AsyncIterator[RawServer]:
    big = bytes(range(256)) * 400  # 100 KiB
    s = RawServer({
        "/ok": response("200 OK", b"all good"),
        "/created": response("201 Created"),
        "/nocontent": b"HTTP/1.1 204 No Content\r\n\r\n",
        "/fail": response("500 Internal Server Error", b"secret"),
        "/notfound": response("404 Not Found"),
        "/multiple": response("300 Multiple Choices", b"pick one"),
        "/nolocation": response("302 Found", b"where?"),
        "/same": response("302 Found", b"", "Location: /ok\r\n"),
        "/away": response("301 Moved Permanently", b"gone there", "Location: http://127.0.0.2:1/ok\r\n"),
        "/loop": response("307 Temporary Redirect", b"", "Location: /loop\r\n"),
        "/big-length": response("200 OK", big),
        "/big-chunked": chunked(big),
        "/big-close": b"HTTP/1.1 200 OK\r\n\r\n" + big,
        "/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        "/chunked": chunked(b"abc" * 10, 7),
        "/pieces": in_pieces,
        "/continue": b"HTTP/1.1 100 Continue\r\n\r\n" + response("200 OK", b"after continue"),
        "/lf": b"HTTP/1.0 200 OK\nContent-Length: 2\n\nok",
        "/garbage": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        "/badcode": b"HTTP/1.1 2x0 OK\r\n\r\n",
        "/short": b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly this",
        "/nothing": b"",
        "/stall": stall,
        "/stall-body": head_then_stall,
    })
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


# --------------------------------------------------------------------------- the request


async def test_the_request_is_kubelets_byte_for_byte(srv: RawServer) -> None:
    await fetch(srv.port, "/ok")
    assert srv.requests[-1] == (f"GET /ok HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nUser-Agent: kube-probe/1.37\r\n"
                                "Accept: */*\r\nConnection: close\r\n\r\n").encode()


async def test_probe_headers_are_canonical_sorted_and_override(srv: RawServer) -> None:
    await fetch(srv.port, "/ok", [("x-b", "2"), ("X-A", "1"), ("user-agent", "mine"), ("host", "example.com"),
                                  ("x-b", "3"), ("accept", "application/json")])
    assert srv.requests[-1] == (b"GET /ok HTTP/1.1\r\nHost: example.com\r\nUser-Agent: mine\r\n"
                                b"Accept: application/json\r\nX-A: 1\r\nX-B: 2\r\nX-B: 3\r\nConnection: close\r\n\r\n")
    # an empty Accept removes it; an empty User-Agent sends none (Go's request writer)
    await fetch(srv.port, "/ok", [("Accept", ""), ("User-Agent", "")])
    assert srv.requests[-1] == f"GET /ok HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nConnection: close\r\n\r\n".encode()


async def test_paths_are_escaped_and_keep_their_query(srv: RawServer) -> None:
    await fetch(srv.port, "/ok?a=1&b=x y#frag")
    assert srv.requests[-1].startswith(b"GET /ok?a=1&b=x%20y HTTP/1.1\r\n")
    await fetch(srv.port, "ok")
    assert srv.requests[-1].startswith(b"GET /ok HTTP/1.1\r\n")


async def test_invalid_header_names_and_values_are_go_errors(srv: RawServer) -> None:
    with pytest.raises(httpget.HTTPGetError, match='net/http: invalid header field name "bad name"'):
        await fetch(srv.port, "/ok", [("bad name", "v")])
    with pytest.raises(httpget.HTTPGetError, match='net/http: invalid header field value for "X-A"'):
        await fetch(srv.port, "/ok", [("x-a", "line\r\nInjected: 1")])
    assert srv.requests == []  # nothing was sent


# --------------------------------------------------------------------------- status and body


@pytest.mark.parametrize(("path", "result", "output"), [
    ("/ok", "success", "all good"),
    ("/created", "success", ""),
    ("/nocontent", "success", ""),
    ("/multiple", "warning", "Probe terminated redirects, Response body: pick one"),
    ("/nolocation", "warning", "Probe terminated redirects, Response body: where?"),
    ("/notfound", "failure", "HTTP probe failed with statuscode: 404"),
    ("/fail", "failure", "HTTP probe failed with statuscode: 500"),  # the body never shows
    ("/chunked", "success", "abc" * 10),
    ("/pieces", "success", "hello world!"),
    ("/close", "success", "until the end"),
    ("/continue", "success", "after continue"),
    ("/lf", "success", "ok"),
])
async def test_status_codes_and_bodies(srv: RawServer, path: str, result: str, output: str) -> None:
    out = await HTTPProber().get("HTTP", "127.0.0.1", srv.port, path, [], 2)
    assert (out.result, out.output) == (result, output)


@pytest.mark.parametrize("path", ["/big-length", "/big-chunked", "/big-close"])
async def test_at_most_10_kib_of_a_body_is_read(srv: RawServer, path: str) -> None:
    r = await fetch(srv.port, path)
    assert r.status == 200 and r.body == (bytes(range(256)) * 40)[:10 * 1024]


async def test_malformed_answers_fail_with_gos_text(srv: RawServer) -> None:
    http = HTTPProber()
    out = await http.get("HTTP", "127.0.0.1", srv.port, "/garbage", [], 2)
    assert out.result == "failure" and out.output == (
        f'Get "http://127.0.0.1:{srv.port}/garbage": net/http: HTTP/1.x transport connection broken: '
        'malformed HTTP response "SSH-2.0-OpenSSH_9.6"')
    out = await http.get("HTTP", "127.0.0.1", srv.port, "/badcode", [], 2)
    assert out.output.endswith('malformed HTTP status code "2x0"')
    out = await http.get("HTTP", "127.0.0.1", srv.port, "/nothing", [], 2)
    assert out.output == f'Get "http://127.0.0.1:{srv.port}/nothing": EOF'


async def test_a_body_cut_short_is_a_probe_error_in_failure_state(srv: RawServer) -> None:
    with pytest.raises(ProbeError, match="unexpected EOF") as e:
        await HTTPProber().get("HTTP", "127.0.0.1", srv.port, "/short", [], 2)
    assert e.value.state == "failure"


# --------------------------------------------------------------------------- redirects


async def test_redirects_to_the_same_host_are_followed(srv: RawServer) -> None:
    r = await fetch(srv.port, "/same", [("Host", "example.com")])
    assert (r.status, r.body, r.url) == (200, b"all good", f"http://127.0.0.1:{srv.port}/ok")
    second = srv.requests[-1].decode()
    assert "Host: example.com\r\n" in second  # the Host override stays while the host:port does
    assert f"Referer: http://127.0.0.1:{srv.port}/same\r\n" in second


async def test_a_redirect_to_another_host_is_a_warning_and_not_followed(srv: RawServer) -> None:
    out = await HTTPProber().get("HTTP", "127.0.0.1", srv.port, "/away", [], 2)
    assert (out.result, out.output) == ("warning", "Probe terminated redirects, Response body: gone there")
    assert len(srv.requests) == 1


async def test_redirects_stop_after_ten_requests(srv: RawServer) -> None:
    out = await HTTPProber().get("HTTP", "127.0.0.1", srv.port, "/loop", [], 2)
    assert (out.result, out.output) == (
        "failure", f'Get "http://127.0.0.1:{srv.port}/loop": stopped after 10 redirects')
    assert len(srv.requests) == 10


async def test_a_redirect_to_another_port_of_the_same_host_is_followed(srv: RawServer) -> None:
    other = await RawServer({"/here": response("200 OK", b"other port")}).start()
    try:
        srv.routes["/port"] = response("302 Found", b"", f"Location: http://127.0.0.1:{other.port}/here\r\n")
        r = await fetch(srv.port, "/port", [("Host", "example.com")])
        assert (r.status, r.body) == (200, b"other port")
        # another host:port: Go sends the URL's own host, not the override
        assert f"Host: 127.0.0.1:{other.port}\r\n".encode() in other.requests[-1]
    finally:
        await other.stop()


# --------------------------------------------------------------------------- errors and timeouts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_refused_connection(srv: RawServer) -> None:
    port = free_port()
    out = await HTTPProber().get("HTTP", "127.0.0.1", port, "/healthz", [], 1)
    assert (out.result, out.output) == (
        "failure", f'Get "http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: connect: connection refused')


async def test_timeouts_awaiting_headers_and_reading_the_body(srv: RawServer) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    out = await HTTPProber().get("HTTP", "127.0.0.1", srv.port, "/stall", [], 0.3)
    assert loop.time() - t0 < 2
    assert (out.result, out.output) == ("failure", (f'Get "http://127.0.0.1:{srv.port}/stall": context deadline '
                                                    "exceeded (Client.Timeout exceeded while awaiting headers)"))
    with pytest.raises(ProbeError, match=r"Client.Timeout or context cancellation while reading body") as e:
        await HTTPProber().get("HTTP", "127.0.0.1", srv.port, "/stall-body", [], 0.3)
    assert e.value.state == "failure"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_literals() -> None:
    s = await RawServer({"/ok": response("200 OK", b"v6")}).start("::1")
    try:
        r = await fetch(s.port, "/ok", host="::1")
        assert (r.status, r.body, r.url) == (200, b"v6", f"http://[::1]:{s.port}/ok")
        assert f"Host: [::1]:{s.port}\r\n".encode() in s.requests[-1]
    finally:
        await s.stop()


# --------------------------------------------------------------------------- HTTPS


def _self_signed(tmp: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "somewhere-else")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    return ctx


async def test_https_without_verification_and_an_http_server_asked_for_https(tmp_path: Path) -> None:
    s = await RawServer({"/ok": response("200 OK", b"over tls")}).start(tls=_self_signed(tmp_path))
    try:
        r = await fetch(s.port, "/ok", scheme="HTTPS")
        assert (r.status, r.body, r.url) == (200, b"over tls", f"https://127.0.0.1:{s.port}/ok")
    finally:
        await s.stop()

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # what an HTTP server answers to a TLS hello
        await reader.read(1)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    http_only = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = http_only.sockets[0].getsockname()[1]
    try:
        out = await HTTPProber().get("HTTPS", "127.0.0.1", port, "/ok", [], 2)
    finally:
        http_only.close()
        await http_only.wait_closed()
    assert (out.result, out.output) == (
        "failure", f'Get "https://127.0.0.1:{port}/ok": http: server gave HTTP response to HTTPS client')


async def test_nothing_is_left_open(srv: RawServer) -> None:
    """Every exchange closes its connection (kubelet keeps none alive between probes)."""
    import os

    before = len(os.listdir("/proc/self/fd"))
    for path in ("/ok", "/big-close", "/same", "/fail"):
        await fetch(srv.port, path)
    with pytest.raises(httpget.HTTPGetError):
        await fetch(srv.port, "/short")
    deadline = asyncio.get_running_loop().time() + 2
    while len(os.listdir("/proc/self/fd")) > before and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    assert len(os.listdir("/proc/self/fd")) <= before


def test_canonical_header_names() -> None:
    assert httpget.canonical("x-custom-thing") == "X-Custom-Thing"
    assert httpget.canonical("USER-AGENT") == "User-Agent"
    assert httpget.canonical("bad name") == "bad name"

