"""The node's HTTP GET client for ``httpGet`` probes and lifecycle hooks: one request per new
connection, as kubelet's probe transport (Go's ``net/http`` with keep-alive off).

kubelet's semantics (``pkg/probe/http``) with the request Go writes: ``GET <path> HTTP/1.1``,
``Host`` (the ``Host`` header of the probe, else the URL's ``host:port``), ``User-Agent``
(the probe's own, else ``kube-probe/1.37``; an empty one sends none), the other headers sorted
by name, ``Accept: */*`` unless the probe sets one (an empty ``Accept`` removes it), and
``Connection: close``. No proxy, no compression, TLS without verification and without ALPN
(HTTP/1.1 only). Redirects (301, 302, 303, 307, 308 with a ``Location``) are followed to the
same host name only, ten requests at most; a redirect elsewhere ends the chain with that
response. At most 10 KiB of a body is read (``Content-Length``, chunked, or until the server
closes); what is past it is left unread. ``timeout`` bounds the whole exchange, redirects and
body included (Go's ``Client.Timeout``). Errors carry Go's text (``Get "url": dial tcp ...``).

Why not aiohttp: a probe is one small request on a new connection each second for each
probed container; aiohttp's client costs about four times this module's CPU per request (its
session, connector, cookie and redirect machinery, a stream reader per response). Here a
request is one :class:`asyncio.Protocol` that writes the request in ``connection_made`` and
parses the answer from one buffer as it arrives.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

__all__ = ["MAX_BODY", "MAX_REDIRECTS", "HTTPGetError", "Reply", "get", "host_port", "insecure_tls"]

MAX_BODY = 10 * 1024  # kubelet's maxRespBodyLength
MAX_REDIRECTS = 10  # Go's default, kept by kubelet's redirect checker: ten requests in all
MAX_HEADER = 1 << 20  # Go's DefaultMaxHeaderBytes for a response's head
MAX_INFORMATIONAL = 5  # Go skips at most five 1xx responses before the real one
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
# what Go's request writer leaves out of the sorted headers (written apart, or not at all)
_NOT_WRITTEN = frozenset(("Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer"))
_PLAIN = re.compile(r"/[A-Za-z0-9/:@!$&'()*+,;=._~-]*(\?[A-Za-z0-9/?:@!$&'()*+,;=._~-]*)?")  # nothing to escape
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class HTTPGetError(Exception):
    """The request failed; ``str()`` is Go's ``url.Error`` text. ``reading_body``: the response
    came but its body could not be read (kubelet turns that into a probe error, not a failure)."""

    def __init__(self, message: str, *, reading_body: bool = False) -> None:
        super().__init__(message)
        self.reading_body = reading_body


@dataclass(frozen=True, slots=True)
class Reply:
    """The response that ended the chain: ``url`` is the request's that got it; ``body`` at most
    ``MAX_BODY`` bytes; ``redirect_refused``: a redirect to another host, not followed."""

    status: int
    body: bytes
    url: str
    redirect_refused: bool = False


def insecure_tls() -> ssl.SSLContext:
    """kubelet's probe TLS: ``InsecureSkipVerify`` (no certificate or name check)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def canonical(name: str) -> str:
    """Go's ``CanonicalMIMEHeaderKey``: ``x-custom-thing`` -> ``X-Custom-Thing``; a name with
    a character that is not a token character is left as it is."""
    raw = name.encode("latin-1", "replace")
    if not raw or any(b not in _TOKEN for b in raw):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _valid_value(v: str) -> bool:
    """Go's ``httpguts.ValidHeaderFieldValue``: no control character but the tab."""
    return not any((c < " " and c != "\t") or c == "\x7f" for c in v)


def _request_target(path: str) -> str:
    """The request-target of a probe's ``path`` as Go's URL writes it: percent-encoded where
    needed (existing escapes kept), the fragment dropped, ``/`` when empty."""
    if _PLAIN.fullmatch(path):
        return path
    path, _, _ = path.partition("#")
    p, sep, q = path.partition("?")
    p = quote(p, safe="/%:@!$&'()*+,;=-._~") or "/"
    if not p.startswith("/"):
        p = "/" + p
    return p + sep + quote(q, safe="/?%:@!$&'()*+,;=-._~") if sep else p


def _hostname(netloc: str) -> str:
    """Go's ``URL.Hostname``: the host without port and brackets."""
    if netloc.startswith("["):
        return netloc[1:].partition("]")[0]
    return netloc.rpartition(":")[0] if netloc.count(":") == 1 else netloc


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Exchange(asyncio.Protocol):
    """One request and its response on one connection: the request is written when the
    connection opens; ``done`` gets ``(status, body, location)`` once the head and enough of the
    body (all of it, or ``max_body`` bytes) are in, or an :class:`HTTPGetError`'s text."""

    def __init__(self, request: bytes, max_body: int, done: asyncio.Future[tuple[int, bytes, str | None]]) -> None:
        self.request = request
        self.max_body = max_body
        self.done = done
        self.transport: asyncio.BaseTransport | None = None
        self.buf = bytearray()
        self.eof = False
        self.status = 0  # 0 until the head of the final (non-1xx) response is in
        self.location: str | None = None
        self.mode = ""  # how the body ends: "none", "length", "chunked", "close"
        self.length = 0
        self.pos = 0  # where the body (or the next chunk) starts in buf
        self.body = bytearray()  # a chunked body, decoded
        self.informational = 0
        self.where = ""  # host:port, for a dial error's text
        self.error: HTTPGetError | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.done.done():
            self._advance()

    def eof_received(self) -> bool:
        self.eof = True
        if not self.done.done():
            self._advance()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if self.done.done():
            return
        if exc is None:  # closed without an EOF first (what was read may be a whole response)
            self._advance()
        if not self.done.done():
            self._fail(_read_error(exc, self.transport), body=bool(self.status))

    # -- parsing -------------------------------------------------------------------------------

    def _finish(self, body: bytes) -> None:
        self.done.set_result((self.status, body, self.location))
        if self.transport is not None:
            self.transport.close()

    def _fail(self, message: str, *, body: bool = False) -> None:
        self.error = HTTPGetError(message, reading_body=body)
        self.done.set_exception(self.error)
        if self.transport is not None:
            self.transport.close()

    def _advance(self) -> None:
        while not self.status:
            if not self._head():
                return
        buf, pos = self.buf, self.pos
        if self.mode == "none":
            self._finish(b"")
        elif self.mode == "length":
            want = min(self.length, self.max_body)
            if len(buf) - pos >= want:
                self._finish(bytes(buf[pos:pos + want]))
            elif self.eof:
                self._fail("unexpected EOF", body=True)
        elif self.mode == "close":
            if len(buf) - pos >= self.max_body:
                self._finish(bytes(buf[pos:pos + self.max_body]))
            elif self.eof:
                self._finish(bytes(buf[pos:]))
        else:
            self._chunks()

    def _head(self) -> bool:
        """Parse a response head from the buffer; False when more data is needed (or it failed)."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        cut = 4
        lf = buf.find(b"\n\n")
        if lf >= 0 and (end < 0 or lf < end):
            end, cut = lf, 2
        if end < 0:
            if len(buf) > MAX_HEADER:
                self._fail(f"net/http: server response headers exceeded {MAX_HEADER} bytes; aborted")
            elif self.eof:
                self._fail("EOF" if not buf else "unexpected EOF")
            return False
        lines = bytes(buf[:end]).decode("latin-1").split("\n")
        del buf[:end + cut]
        first = lines[0].rstrip("\r")
        proto, _, rest = first.partition(" ")
        code_text = rest.partition(" ")[0]
        if not proto.startswith("HTTP/") or not rest:
            self._fail(f"net/http: HTTP/1.x transport connection broken: malformed HTTP response {_go_quote(first)}")
            return False
        if len(code_text) != 3 or not code_text.isdigit():
            self._fail(f"net/http: HTTP/1.x transport connection broken: malformed HTTP status code "
                       f"{_go_quote(code_text)}")
            return False
        status = int(code_text)
        length: str | None = None
        chunked = False
        location = None
        for line in lines[1:]:
            name, colon, value = line.rstrip("\r").partition(":")
            if not colon:
                continue
            key = name.strip().lower()
            if key == "content-length":
                length = value.strip()
            elif key == "transfer-encoding":
                chunked = chunked or "chunked" in value.lower()
            elif key == "location" and location is None:
                location = value.strip()
        if 100 <= status < 200 and status != 101:
            self.informational += 1
            if self.informational > MAX_INFORMATIONAL:
                self._fail("net/http: HTTP/1.x transport connection broken: too many 1xx informational responses")
            return not self.done.done()
        self.status, self.location, self.pos = status, location, 0
        if status in (204, 304) or 100 <= status < 200:
            self.mode = "none"
        elif chunked:
            self.mode = "chunked"
        elif length is not None:
            if not length.isdigit():
                self._fail(f"net/http: HTTP/1.x transport connection broken: bad Content-Length {_go_quote(length)}")
                return False
            self.mode, self.length = "length", int(length)
        else:
            self.mode = "close"
        return True

    def _chunks(self) -> None:
        """Decode the chunks that are in; finish at the last one or at ``max_body`` bytes."""
        buf = self.buf
        while True:
            nl = buf.find(b"\n", self.pos)
            if nl < 0:
                if self.eof or len(buf) - self.pos > 4096:
                    self._fail("unexpected EOF" if self.eof else "invalid byte in chunk length", body=True)
                return
            size_text = bytes(buf[self.pos:nl]).rstrip(b"\r").partition(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                self._fail("invalid byte in chunk length", body=True)
                return
            if size == 0:  # the last chunk; trailers are not read
                self._finish(bytes(self.body))
                return
            start = nl + 1
            room = self.max_body - len(self.body)
            if room <= size and len(buf) - start >= room:  # enough: the rest is not read
                self.body += buf[start:start + room]
                self._finish(bytes(self.body))
                return
            after = start + size  # the chunk's data, then its line end
            end = buf.find(b"\n", after, after + 2)
            if end < 0:
                if len(buf) >= after + 2:
                    self._fail("malformed chunked encoding", body=True)
                elif self.eof:
                    self._fail("unexpected EOF", body=True)
                return  # the rest of the chunk is not in yet: read it again from its size line
            self.body += buf[start:after]
            self.pos = end + 1

def _read_error(exc: BaseException | None, transport: asyncio.BaseTransport | None) -> str:
    """Go's text of a failed read on an open connection."""
    if isinstance(exc, OSError) and exc.errno is not None:
        here = there = ""
        if transport is not None:
            here, there = _addr(transport.get_extra_info("sockname")), _addr(transport.get_extra_info("peername"))
        return f"read tcp {here}->{there}: read: {os.strerror(exc.errno).lower()}"
    if isinstance(exc, ssl.SSLError):
        return f"local error: tls: {exc.reason or exc}"
    return "EOF"


def _addr(a: object) -> str:
    return host_port(str(a[0]), int(a[1])) if isinstance(a, tuple) and len(a) >= 2 else "?"


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def _build(target: str, host_header: str, user_agent: str, headers: Sequence[tuple[str, str]]) -> bytes:
    """The request's bytes in Go's order: Host, User-Agent, the rest sorted by name, Connection."""
    out = [f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\n"]
    if user_agent:
        out.append(f"User-Agent: {user_agent}\r\n")
    close = False
    for name, value in sorted(headers, key=lambda h: h[0]):  # stable: a name's values keep their order
        if name in _NOT_WRITTEN:
            continue
        if name == "Connection" and "close" in value.lower():
            close = True
        out.append(f"{name}: {value.strip(' ')}\r\n")
    if not close:
        out.append("Connection: close\r\n")
    out.append("\r\n")
    return "".join(out).encode("latin-1", "replace")


async def get(scheme: str, host: str, port: int, path: str, headers: Sequence[tuple[str, str]], timeout: float, *,
              user_agent: str, tls: ssl.SSLContext, follow_other_hosts: bool = False,
              max_body: int = MAX_BODY) -> Reply:
    """GET ``scheme://host:port/path`` with kubelet's request and redirect rules (see the module
    docstring); ``headers`` are the probe's ``httpHeaders`` in order. ``timeout`` <= 0: none.
    ``follow_other_hosts``: Go's default redirect policy (any host), as lifecycle hooks use.
    Raises :class:`HTTPGetError` when no response ends the chain."""
    scheme = (scheme or "http").lower()
    url = f"{scheme}://{host_port(host, port)}{_request_target(path)}"
    hdrs: list[tuple[str, str]] = []
    for name, value in headers:
        key = canonical(name)
        if not key or any(b not in _TOKEN for b in key.encode("latin-1", "replace")):
            raise HTTPGetError(f'Get "{url}": net/http: invalid header field name {_go_quote(name)}')
        if not _valid_value(value):
            raise HTTPGetError(f'Get "{url}": net/http: invalid header field value for {_go_quote(key)}')
        hdrs.append((key, value))
    names = {k for k, _ in hdrs}
    first = {k: v for k, v in reversed(hdrs)}  # Go's Header.Get: a name's first value
    if "User-Agent" in names:
        user_agent = first["User-Agent"]
    if "Accept" not in names:
        hdrs.append(("Accept", "*/*"))
    elif not first["Accept"]:
        hdrs = [h for h in hdrs if h[0] != "Accept"]
    host_override = first.get("Host", "")
    first_netloc = netloc = host_port(host, port)
    current, target, name, p = url, url[len(scheme) + 3 + len(netloc):], host, port
    state: dict[str, _Exchange | None] = {"x": None}
    try:
        async with asyncio.timeout(timeout if timeout > 0 else None):
            referer = ""
            for n in range(1, MAX_REDIRECTS + 1):
                if scheme not in ("http", "https"):
                    raise HTTPGetError(f'Get "{current}": unsupported protocol scheme {_go_quote(scheme)}')
                # Go sends the Host override only while the URL's host is the first one's
                host_header = host_override if host_override and netloc == first_netloc else netloc
                extra = [*hdrs, ("Referer", referer)] if referer and "Referer" not in names else hdrs
                status, body, location = await _one(scheme, name, p, target, host_header, user_agent, extra,
                                                    tls, max_body, current, state)
                if status not in _REDIRECTS or not location:
                    return Reply(status, body, current)
                nxt = urljoin(current, location).partition("#")[0]
                parts = urlsplit(nxt)
                if not follow_other_hosts and _hostname(parts.netloc) != host:
                    return Reply(status, body, current, redirect_refused=True)
                if n == MAX_REDIRECTS:
                    raise HTTPGetError(f'Get "{current}": stopped after {MAX_REDIRECTS} redirects')
                # Go's Referer: the previous URL, unless the chain goes from https to http
                referer = "" if scheme == "https" and parts.scheme == "http" else current
                current, scheme, netloc, name = nxt, parts.scheme, parts.netloc, _hostname(parts.netloc)
                try:
                    p = parts.port or (443 if scheme == "https" else 80)
                except ValueError:
                    raise HTTPGetError(f'Get "{current}": invalid port in {_go_quote(netloc)}') from None
                target = _request_target(parts.path + ("?" + parts.query if parts.query else ""))
    except TimeoutError:
        x = state["x"]
        if x is None or x.transport is None:
            where = x.where if x is not None else host_port(host, port)
            raise HTTPGetError(f'Get "{current}": dial tcp {where}: i/o timeout '
                               "(Client.Timeout exceeded while awaiting headers)") from None
        if x.status:
            raise HTTPGetError(f'Get "{current}": context deadline exceeded '
                               "(Client.Timeout or context cancellation while reading body)", reading_body=True) from None
        raise HTTPGetError(f'Get "{current}": context deadline exceeded '
                           "(Client.Timeout exceeded while awaiting headers)") from None
    finally:
        x = state["x"]
        if x is not None and x.transport is not None:
            x.transport.close()
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


async def _one(scheme: str, host: str, port: int, target: str, host_header: str, user_agent: str,
               headers: Sequence[tuple[str, str]], tls: ssl.SSLContext, max_body: int, url: str,
               state: dict[str, _Exchange | None]) -> tuple[int, bytes, str | None]:
    """One request on a new connection."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[int, bytes, str | None]] = loop.create_future()
    x = _Exchange(_build(target, host_header, user_agent, headers), max_body, done)
    x.where = where = host_port(host, port)
    state["x"] = x
    try:
        if scheme == "https":
            # Go sends the name (SNI) only for a host name, never for an address
            await loop.create_connection(lambda: x, host, port, ssl=tls,
                                         server_hostname=host if not _is_ip(host) else "")
        else:
            await loop.create_connection(lambda: x, host, port)
    except ssl.SSLError as e:
        if "WRONG_VERSION_NUMBER" in str(e) or "record layer failure" in str(e):
            raise HTTPGetError(f'Get "{url}": http: server gave HTTP response to HTTPS client') from None
        raise HTTPGetError(f'Get "{url}": tls: {e.reason or e}') from None
    except socket.gaierror:
        raise HTTPGetError(f'Get "{url}": dial tcp: lookup {host}: no such host') from None
    except OSError as e:
        # asyncio's own text ("Connect call failed ...") hides the reason: the errno's, as Go's
        reason = (os.strerror(e.errno) if e.errno else str(e)).lower()
        raise HTTPGetError(f'Get "{url}": dial tcp {where}: connect: {reason}') from None
    try:
        return await done
    except HTTPGetError as e:
        raise HTTPGetError(f'Get "{url}": {e}', reading_body=e.reading_body) from None
