"""The proxy's nftables rules with real packets, inside network namespaces this test makes:

    [node netns: the rules, 10.99.1.1 / 10.99.2.1] --veth-- [pod-a 10.99.1.2]
                                                   --veth-- [pod-b 10.99.2.2]

Each pod runs a small HTTP server that answers its own name. Traffic goes only to addresses
inside these namespaces; every namespace (and with it the veths and the rules) is deleted at
the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from tests.helpers.netns import namespaces, sh
from tests.helpers.nft import normalized_table

from k8py.nftables import Nft, NftError
from k8py.proxy.model import Endpoint, ServicePort
from k8py.proxy.rules import TABLE, ProxyConfig, cleanup, ruleset

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
                                reason="needs root, nft and ip")

SERVER = r"""
import http.server, socket, sys
name, host = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} {self.client_address[0]}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
class S(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
S((host, 8080), H).serve_forever()
"""


@dataclass
class Topology:
    node: str
    pods: dict[str, str]  # name -> netns
    procs: list[subprocess.Popen[bytes]]

    def nft(self) -> Nft:
        return Nft(("ip", "netns", "exec", self.node, "nft"))

    def get(self, ns: str, host: str, port: int, timeout: float = 3.0) -> str:
        """An HTTP GET from inside ``ns``; returns the body or raises with the error's name."""
        code = ("import socket,sys\n"
                "h,p=sys.argv[1],int(sys.argv[2])\n"
                "try:\n"
                f"  s=socket.create_connection((h,p),timeout={timeout})\n"
                "  s.sendall(b'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')\n"
                "  d=b''\n"
                "  while (c:=s.recv(4096)): d+=c\n"
                "  print(d.split(b'\\r\\n\\r\\n',1)[1].decode())\n"
                "except OSError as e:\n"
                "  print('ERR', type(e).__name__)\n")
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, host, str(port)],
                             capture_output=True, text=True, timeout=timeout + 10, check=True).stdout.strip()
        return out


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    tag = uuid.uuid4().hex[:6]
    node = f"k8pyt-node-{tag}"
    pods = {"pod-a": f"k8pyt-a-{tag}", "pod-b": f"k8pyt-b-{tag}"}
    with namespaces(node, *pods.values()) as procs:
        sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for i, (name, ns) in enumerate(pods.items(), start=1):
            host, peer = f"k8pyt{i}{tag}"[:15], "eth0"
            sh("ip", "-n", node, "link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns)
            sh("ip", "-n", node, "addr", "add", f"10.99.{i}.1/24", "dev", host)
            sh("ip", "-n", node, "link", "set", host, "up")
            sh("ip", "-n", ns, "addr", "add", f"10.99.{i}.2/24", "dev", peer)
            sh("ip", "-n", ns, "link", "set", peer, "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", f"10.99.{i}.1")
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, name,
                                           f"10.99.{i}.2"]))
        # the node reaches the service range through the first pod link (routing precedes DNAT)
        sh("ip", "-n", node, "route", "add", "10.43.0.0/16", "via", "10.99.1.2")
        t = Topology(node, pods, procs)
        deadline = time.monotonic() + 20
        while not all(t.get(node, f"10.99.{i}.2", 8080, 1).startswith(n) for i, n in ((1, "pod-a"), (2, "pod-b"))):
            assert time.monotonic() < deadline, "the pod servers did not start"
            time.sleep(0.1)
        yield t


A = Endpoint("10.99.1.2", 8080, node_name="node")
B = Endpoint("10.99.2.2", 8080, node_name="other")
CFG = ProxyConfig("node", cluster_cidrs=("10.99.0.0/16",))


def apply(t: Topology, sps: list[ServicePort], eps: dict[tuple[str, str, str, str], list[Endpoint]],
          cfg: ProxyConfig = CFG) -> None:
    t.nft().apply(ruleset(sps, eps, cfg))


def test_cluster_ip_balances_over_ready_endpoints(topo: Topology) -> None:
    web = ServicePort("default", "web", "http", "tcp", 80, ("10.43.0.50",))
    apply(topo, [web], {("default", "web", "http", "tcp"): [A, B]})
    seen = {topo.get(topo.node, "10.43.0.50", 80).split()[0] for _ in range(30)}
    assert seen == {"pod-a", "pod-b"}
    # a not-ready endpoint gets nothing
    apply(topo, [web], {("default", "web", "http", "tcp"): [A, Endpoint(B.ip, B.port, ready=False, serving=False)]})
    assert {topo.get(topo.node, "10.43.0.50", 80).split()[0] for _ in range(10)} == {"pod-a"}


def test_no_endpoints_is_refused_at_once(topo: Topology) -> None:
    empty = ServicePort("default", "empty", "", "tcp", 80, ("10.43.0.51",), node_port=30081)
    apply(topo, [empty], {})
    t0 = time.monotonic()
    assert topo.get(topo.node, "10.43.0.51", 80) == "ERR ConnectionRefusedError"
    assert topo.get(topo.pods["pod-a"], "10.99.1.1", 30081) == "ERR ConnectionRefusedError"
    assert time.monotonic() - t0 < 5


def test_node_port_and_hairpin(topo: Topology) -> None:
    web = ServicePort("default", "web", "http", "tcp", 80, ("10.43.0.50",), node_port=30080)
    apply(topo, [web], {("default", "web", "http", "tcp"): [A]})
    # pod-b reaches pod-a through the node port on its gateway; NodePort traffic is masqueraded
    body = topo.get(topo.pods["pod-b"], "10.99.2.1", 30080)
    assert body == "pod-a 10.99.1.1"
    # pod-a reaches itself through its Service (hairpin): masqueraded, so the reply comes back
    assert topo.get(topo.pods["pod-a"], "10.43.0.50", 80).split()[0] == "pod-a"


def test_external_traffic_policy_local_keeps_the_client_address(topo: Topology) -> None:
    web = ServicePort("default", "web", "http", "tcp", 80, ("10.43.0.50",), node_port=30082, external_local=True)
    # pod-b stands for a client outside the pod network here (pods themselves go to any endpoint)
    apply(topo, [web], {("default", "web", "http", "tcp"): [A, B]}, ProxyConfig("node", ("10.99.1.0/24",)))
    # only this node's endpoint (pod-a), and no masquerade: pod-a sees the client's own address
    for _ in range(5):
        assert topo.get(topo.pods["pod-b"], "10.99.2.1", 30082) == "pod-a 10.99.2.2"


def test_session_affinity_pins_a_client(topo: Topology) -> None:
    web = ServicePort("default", "sticky", "", "tcp", 80, ("10.43.0.52",), affinity_timeout=60)
    apply(topo, [web], {("default", "sticky", "", "tcp"): [A, B]})
    first = topo.get(topo.node, "10.43.0.52", 80).split()[0]
    assert {topo.get(topo.node, "10.43.0.52", 80).split()[0] for _ in range(10)} == {first}


def test_a_bad_ruleset_keeps_the_previous_rules(topo: Topology) -> None:
    web = ServicePort("default", "web", "http", "tcp", 80, ("10.43.0.50",))
    apply(topo, [web], {("default", "web", "http", "tcp"): [A]})
    bad = ruleset([web], {("default", "web", "http", "tcp"): [A]}, CFG) + "add rule inet k8py-proxy nope bogus\n"
    with pytest.raises(NftError):
        topo.nft().apply(bad)
    assert topo.get(topo.node, "10.43.0.50", 80).startswith("pod-a")


def test_cleanup_removes_only_our_table(topo: Topology) -> None:
    nft = topo.nft()
    nft.apply("add table inet someone-else\n")
    apply(topo, [], {})
    assert nft.list_table("inet", TABLE)
    nft.apply(cleanup())
    assert not nft.list_table("inet", TABLE)
    assert nft.list_table("inet", "someone-else")
    nft.apply("delete table inet someone-else\n")


def test_a_thousand_services_fit_in_one_transaction(topo: Topology) -> None:
    sps = [ServicePort("ns", f"s{i}", "http", "tcp", 80, (f"10.43.{4 + i // 250}.{i % 250 + 1}",))
           for i in range(1000)]
    eps = {("ns", f"s{i}", "http", "tcp"): [Endpoint(f"10.98.{i // 25}.{j + (i % 25) * 10 + 1}", 8080)
                                              for j in range(10)] for i in range(1000)}
    apply(topo, sps, eps)
    assert "10.43.7.250" in topo.nft().list_table("inet", TABLE)


def test_partial_syncs_end_where_a_full_sync_would(topo: Topology) -> None:
    from k8py.proxy.rules import full_sync, partial_sync, units

    nft = topo.nft()
    web = ServicePort("default", "web", "http", "tcp", 80, ("10.43.0.50",), node_port=30080)
    sticky = ServicePort("default", "sticky", "", "tcp", 80, ("10.43.0.52",), affinity_timeout=60)
    gone = ServicePort("default", "gone", "", "udp", 53, ("10.43.0.53",))
    new = ServicePort("default", "new", "", "tcp", 81, ("10.43.0.54",), external_ips=("10.99.1.1",))
    key = ("default", "web", "http", "tcp")
    old_units = units([web, sticky, gone], {key: [A], ("default", "sticky", "", "tcp"): [A, B],
                                            ("default", "gone", "", "udp"): [B]}, CFG)
    nft.apply(full_sync(CFG, old_units))
    assert topo.get(topo.node, "10.43.0.50", 80).startswith("pod-a")
    # endpoints change, one Service goes, one comes, the sticky one loses an endpoint
    new_units = units([web, sticky, new], {key: [B], ("default", "sticky", "", "tcp"): [A],
                                           ("default", "new", "", "tcp"): [A]}, CFG)
    script = partial_sync(old_units, new_units)
    assert "gone" not in script or "delete" in script
    assert len(script.splitlines()) < 40, script  # only what changed, not the whole table
    nft.apply(script)
    assert {topo.get(topo.node, "10.43.0.50", 80).split()[0] for _ in range(5)} == {"pod-b"}
    assert topo.get(topo.node, "10.43.0.52", 80).startswith("pod-a")
    after_partial = normalized_table(nft, TABLE, lambda name: name.endswith("-affinity"))
    nft.apply(full_sync(CFG, new_units))
    assert after_partial == normalized_table(nft, TABLE, lambda name: name.endswith("-affinity"))
    assert partial_sync(new_units, new_units) == ""


UDP_SERVER = r"""
import socket, sys
name, host = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((host, 5353))
while True:
    data, addr = s.recvfrom(512)
    s.sendto(name.encode(), addr)
"""


def test_stale_udp_flows_are_cleared_when_endpoints_change(topo: Topology) -> None:
    """A UDP client sending from one port keeps its NAT binding; when its endpoint goes away the
    proxy deletes the binding, so the next datagram reaches the new endpoint."""
    import asyncio

    from k8py.proxy.conntrack import Conntrack, cleanup_commands
    from k8py.proxy.rules import full_sync, partial_sync, units

    servers = [subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", UDP_SERVER, name, f"10.99.{i}.2"])
               for i, (name, ns) in enumerate(topo.pods.items(), start=1)]
    ask = ("import socket,sys\n"
           "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0', 40053)); s.settimeout(2)\n"
           "s.sendto(b'q', ('10.43.0.60', 53))\n"
           "try:\n  print(s.recvfrom(512)[0].decode())\nexcept OSError as e:\n  print('ERR', type(e).__name__)\n")

    def query() -> str:
        return subprocess.run(["ip", "netns", "exec", topo.node, sys.executable, "-c", ask], capture_output=True,
                              text=True, timeout=20, check=True).stdout.strip()

    try:
        dns = ServicePort("kube-system", "dns", "dns", "udp", 53, ("10.43.0.60",))
        key = ("kube-system", "dns", "dns", "udp")
        a, b = Endpoint("10.99.1.2", 5353), Endpoint("10.99.2.2", 5353)
        old = units([dns], {key: [a]}, CFG)
        nft = topo.nft()
        nft.apply(full_sync(CFG, old))
        deadline = time.monotonic() + 10
        while (got := query()) != "pod-a":
            assert time.monotonic() < deadline, got
        new = units([dns], {key: [b]}, CFG)
        nft.apply(partial_sync(old, new))
        assert query() == "pod-a"  # the old binding still holds: the rules alone do not move it
        commands = cleanup_commands(old, new)
        assert commands == [["-D", "-p", "udp", "--orig-dst", "10.43.0.60", "--dst-nat", "10.99.1.2"]]
        asyncio.run(Conntrack(("ip", "netns", "exec", topo.node, "conntrack")).run(commands))
        assert query() == "pod-b"
    finally:
        for p in servers:
            p.kill()
            p.wait()
