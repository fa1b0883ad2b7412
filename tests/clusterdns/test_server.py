"""The DNS server on loopback: UDP and TCP, the answer cache, forwarding, truncation, bad input."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from tests.clusterdns.test_zone import eps, svc

from k8py.dns.server import DNSServer, upstreams_from_resolv_conf
from k8py.dns.zone import ClusterZone


def query(name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def upstream() -> AsyncIterator[DNSServer]:
    """Another server, authoritative for example.org, standing in for the node's resolver."""
    z = ClusterZone("example.org")
    z.set_namespace("up")
    z.set_service(svc("up", "www", ["192.0.2.80"]))
    s = DNSServer(z)
    await s.start([("127.0.0.1", 0)])
    yield s
    await s.stop()


@pytest.fixture
async def server(upstream: DNSServer) -> AsyncIterator[DNSServer]:
    z = ClusterZone("cluster.local")
    z.set_namespace("default")
    z.set_service(svc("default", "web", ["10.43.0.20"]))
    s = DNSServer(z, upstreams=upstream.listening)
    await s.start([("127.0.0.1", 0)])
    yield s
    await s.stop()


async def udp(s: DNSServer, q: dns.message.Message) -> dns.message.Message:
    host, port = s.listening[0]
    return await dns.asyncquery.udp(q, host, port=port, timeout=5)


async def test_udp_and_tcp_answers(server: DNSServer) -> None:
    r = await udp(server, query("web.default.svc.cluster.local"))
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert [rd.address for rd in r.answer[0]] == ["10.43.0.20"]
    host, port = server.listening[0]
    t = await dns.asyncquery.tcp(query("nope.default.svc.cluster.local"), host, port=port, timeout=5)
    assert t.rcode() == dns.rcode.NXDOMAIN and t.authority[0].rdtype == dns.rdatatype.SOA


async def test_cached_answers_follow_zone_changes(server: DNSServer) -> None:
    q = query("web.default.svc.cluster.local")
    first = await udp(server, q)
    q.id = (q.id + 1) % 65536
    again = await udp(server, q)  # from the cache: the same answer under the new ID
    assert again.id == q.id and again.answer == first.answer
    server.zone.set_service(svc("default", "web", ["10.43.0.99"]))
    q.id = (q.id + 1) % 65536
    changed = await udp(server, q)
    assert [rd.address for rd in changed.answer[0]] == ["10.43.0.99"]


async def test_other_names_are_forwarded_upstream(server: DNSServer) -> None:
    r = await udp(server, query("www.up.svc.example.org"))
    assert [rd.address for rd in r.answer[0]] == ["192.0.2.80"]
    host, port = server.listening[0]
    t = await dns.asyncquery.tcp(query("www.up.svc.example.org"), host, port=port, timeout=5)
    assert [rd.address for rd in t.answer[0]] == ["192.0.2.80"]


async def test_no_upstream_or_only_ourselves_is_servfail_not_a_loop(server: DNSServer) -> None:
    server.upstreams = list(server.listening)
    r = await udp(server, query("example.com"))
    assert r.rcode() == dns.rcode.SERVFAIL


async def test_large_answers_are_truncated_over_udp_and_whole_over_tcp(server: DNSServer) -> None:
    z = server.zone
    z.set_service(svc("default", "big", headless=True))
    z.set_slice(eps("default", "big-1", "big", [{"addresses": [f"10.42.{i // 250}.{i % 250 + 1}"]}
                                                 for i in range(100)]))
    r = await udp(server, query("big.default.svc.cluster.local"))
    assert r.flags & dns.flags.TC and not r.answer
    host, port = server.listening[0]
    t = await dns.asyncquery.tcp(query("big.default.svc.cluster.local"), host, port=port, timeout=5)
    assert len(t.answer[0]) == 100
    # with EDNS and a large buffer it fits in one datagram
    e = await udp(server, query("big.default.svc.cluster.local", use_edns=0, payload=4096))
    assert len(e.answer[0]) == 100 and not e.flags & dns.flags.TC


async def test_garbage_gets_formerr_or_nothing_and_the_server_goes_on(server: DNSServer) -> None:
    host, port = server.listening[0]
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        s.connect((host, port))
        s.send(b"\x12\x34" + b"\x01\x00\x00\x01" + b"\xff" * 20)  # a header, then junk
        data = await asyncio.wait_for(loop.sock_recv(s, 512), 5)
        assert data[:2] == b"\x12\x34" and data[3] & 0x0F == dns.rcode.FORMERR
        s.send(b"\x00")  # too short to answer at all
    r = await udp(server, query("web.default.svc.cluster.local"))
    assert r.rcode() == dns.rcode.NOERROR


def test_upstreams_skip_loopback_resolvers(tmp_path: pytest.TempPathFactory) -> None:
    conf = tmp_path / "resolv.conf"  # type: ignore[operator]
    conf.write_text("search example\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver ::1\n")
    assert upstreams_from_resolv_conf(str(conf)) == [("192.0.2.53", 53)]
