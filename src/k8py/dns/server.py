"""The cluster DNS server: UDP and TCP on port 53 (or any), answers from a :class:`ClusterZone`
kept current by informers on Namespaces, Services and EndpointSlices, and forwards every other
name to the node's upstream resolvers (CoreDNS's ``kubernetes`` + ``forward`` plugins).

Speed: a cluster answer depends only on the query's bytes after its 2-byte ID and on the zone's
generation, so answers are cached by those bytes (cleared whenever the zone changes) and a
repeated question costs one dict lookup: dnspython parses and builds only the first one.

Forwarding never goes to a loopback resolver taken from ``resolv.conf``: on hosts whose
``/etc/resolv.conf`` names a local stub (systemd-resolved's 127.0.0.53), the real upstreams are
read from ``/run/systemd/resolve/resolv.conf``, as kubelet's ``--resolv-conf`` advice; a loopback
resolver is used only when given explicitly, and never our own listening address (the classic
DNS loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Iterable
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass

from k8py.dns.zone import ClusterZone

log = logging.getLogger(__name__)

Addr = tuple[str, int]
CACHE_LIMIT = 100_000  # answers kept; the cache is cleared when it is full or the zone changes
UDP_LIMIT = 512  # without EDNS
FORWARD_TIMEOUT = 2.0
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"


def upstreams_from_resolv_conf(path: str = "/etc/resolv.conf") -> list[Addr]:
    """The node's upstream resolvers, skipping loopback ones (see the module docstring)."""

    def read(p: str) -> list[str]:
        try:
            with open(p, encoding="utf-8") as f:
                return [line.split()[1] for line in f
                        if line.strip().startswith("nameserver") and len(line.split()) > 1]
        except OSError:
            return []

    def usable(ip: str) -> bool:
        try:
            return not ipaddress.ip_address(ip.split("%")[0]).is_loopback
        except ValueError:
            return False

    found = read(path)
    if not any(usable(ip) for ip in found) and os.path.exists(SYSTEMD_RESOLV_CONF):
        found = read(SYSTEMD_RESOLV_CONF)
    return [(ip, 53) for ip in found if usable(ip)]


class DNSServer:
    """Answers DNS messages; :meth:`start` listens on UDP and TCP."""

    def __init__(self, zone: ClusterZone, upstreams: Iterable[Addr] = ()) -> None:
        self.zone = zone
        self.upstreams = list(upstreams)
        self._cache: dict[bytes, bytes] = {}
        self._cache_gen = -1
        self._servers: list[Any] = []
        self._transports: list[asyncio.DatagramTransport] = []
        self.listening: list[Addr] = []
        self._forwards: set[asyncio.Task[None]] = set()

    # -- answering ----------------------------------------------------------------------------------
    def cached(self, wire: bytes) -> bytes | None:
        if self._cache_gen != self.zone.generation:
            self._cache.clear()
            self._cache_gen = self.zone.generation
            return None
        hit = self._cache.get(wire[2:])
        return wire[:2] + hit if hit is not None else None

    def answer_local(self, wire: bytes, max_size: int | None) -> tuple[bytes | None, dns.message.Message | None]:
        """The answer if the cluster zone (or a malformed query) settles it; else (None, query)
        for the caller to forward. ``max_size`` is the UDP limit (None over TCP)."""
        try:
            q = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None, None  # not even a header: nothing to answer
        except Exception:  # noqa: BLE001 - any malformed query gets FORMERR, as a DNS server must answer
            return _formerr(wire), None
        if q.opcode() != dns.opcode.QUERY or len(q.question) != 1 or q.flags & dns.flags.QR:
            r = dns.message.make_response(q)
            r.set_rcode(dns.rcode.NOTIMP if q.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
            return r.to_wire(), None
        question = q.question[0]
        ans = self.zone.resolve(question.name, question.rdtype) if question.rdclass == dns.rdataclass.IN else None
        if ans is None:
            return None, q
        r = dns.message.make_response(q)
        r.set_rcode(ans.rcode)
        if ans.authoritative:
            r.flags |= dns.flags.AA
        r.answer.extend(ans.answer)
        r.authority.extend(ans.authority)
        r.additional.extend(ans.additional)
        limit = max_size
        if limit is not None:
            limit = max(UDP_LIMIT, q.payload) if q.edns >= 0 else UDP_LIMIT
        try:
            out = r.to_wire(max_size=limit or 65535)
        except dns.exception.TooBig:
            r.answer.clear()
            r.authority.clear()
            r.additional.clear()
            r.flags |= dns.flags.TC
            out = r.to_wire()
        if max_size is not None and self._cache_gen == self.zone.generation:  # UDP answers are cached
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[wire[2:]] = out[2:]
        return out, None

    async def forward(self, q: dns.message.Message, tcp: bool = False) -> bytes:
        """Ask the upstreams in turn; SERVFAIL when none answers."""
        for host, port in self.upstreams:
            if (host, port) in self.listening:
                continue  # never ourselves
            try:
                if tcp:
                    resp = await dns.asyncquery.tcp(q, host, timeout=FORWARD_TIMEOUT, port=port)
                else:
                    resp = await dns.asyncquery.udp(q, host, timeout=FORWARD_TIMEOUT, port=port,
                                                    ignore_unexpected=True)
                return resp.to_wire(max_size=65535)
            except (dns.exception.DNSException, OSError) as e:
                log.debug("upstream %s:%d failed for %s: %s", host, port, q.question[0].name, e)
        r = dns.message.make_response(q)
        r.set_rcode(dns.rcode.SERVFAIL)
        return r.to_wire()

    # -- transports ---------------------------------------------------------------------------------
    async def start(self, listen: Iterable[Addr]) -> None:
        """Listen on UDP and TCP at each address. Sockets are bound with ``IP_FREEBIND``, so an
        address that appears later (the pod bridge's gateway, made with the first pod) works."""
        loop = asyncio.get_running_loop()
        try:
            for host, port in listen:
                udp, tcp_sock = _bound_pair(host, port)
                transport, _ = await loop.create_datagram_endpoint(lambda: _UDP(self), sock=udp)
                self._transports.append(transport)
                tcp = await asyncio.start_server(self._serve_tcp, sock=tcp_sock)
                self._servers.append(tcp)
                self.listening.append((host, int(udp.getsockname()[1])))
        except BaseException:
            await self.stop()  # what was opened before the failure is closed, not left to the collector
            raise
        log.info("cluster DNS for %s listening on %s", self.zone.origin,
                 ", ".join(f"{h}:{p}" for h, p in self.listening))

    async def stop(self) -> None:
        for t in self._transports:
            t.close()
        for s in self._servers:
            s.close()
            with contextlib.suppress(Exception):
                await s.wait_closed()
        for task in list(self._forwards):
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._forwards.add(task)
        task.add_done_callback(self._forwards.discard)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    async with asyncio.timeout(10.0):
                        head = await reader.readexactly(2)
                    async with asyncio.timeout(10.0):
                        wire = await reader.readexactly(struct.unpack("!H", head)[0])
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                out, q = self.answer_local(wire, None)
                if out is None and q is not None:
                    out = await self.forward(q, tcp=True)
                if out is None:
                    return
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        srv = self.server
        hit = srv.cached(data)
        if hit is not None:
            assert self.transport is not None
            self.transport.sendto(hit, addr)
            return
        out, q = srv.answer_local(data, UDP_LIMIT)
        if out is not None:
            assert self.transport is not None
            self.transport.sendto(out, addr)
        elif q is not None:
            srv._spawn(self._forward(q, addr))

    async def _forward(self, q: dns.message.Message, addr: Any) -> None:
        out = await self.server.forward(q)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS socket error: %s", exc)


IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
IPV6_FREEBIND = 78  # linux/in6.h


def _bound_socket(host: str, port: int, kind: int) -> socket.socket:
    v6 = ":" in host
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):
            if v6:
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
            else:
                s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        s.bind((host, port))
        if kind == socket.SOCK_STREAM:
            s.listen(128)
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def _bound_pair(host: str, port: int, attempts: int = 20) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on one port. Port 0 asks for any free one: the system picks it for
    UDP, and when that number is taken for TCP another is tried (a bounded number of times)."""
    for _ in range(attempts if port == 0 else 1):
        udp = _bound_socket(host, port, socket.SOCK_DGRAM)
        try:
            return udp, _bound_socket(host, int(udp.getsockname()[1]), socket.SOCK_STREAM)
        except OSError as e:
            udp.close()
            if port != 0 or e.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {host} after {attempts} tries")


def _formerr(wire: bytes) -> bytes | None:
    """A FORMERR answer to a query dnspython cannot parse: its ID, QR and the rcode, no question."""
    if len(wire) < 12:
        return None
    flags = 0x8000 | (wire[2] & 0x78) << 8 | dns.rcode.FORMERR
    return wire[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)
