"""CNINetwork with the real CNI plugins (bridge, host-local, portmap, loopback), as root.

Every test uses its own bridge (``k8pyt<hex>``), state dir and CIDRs in 10.250.0.0/16 and
fd00:250::/32, so it never meets a running cluster's network, and the fixture removes all of it
(``teardown_node``) and checks that no namespace, link, nft table or iptables rule is left.
Traffic goes only into namespaces the tests made.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from k8py.kubelet.cni import NETNS_DIR, ROUTE_PROTO, CNINetwork, netns_name
from k8py.kubelet.runtime.types import PodNetwork, PortMapping, SandboxConfig, SandboxError

PLUGIN_DIR = "/usr/lib/cni"


def _skip_reason() -> str:
    if os.geteuid() != 0:
        return "needs root (network namespaces, bridges, iptables)"
    missing = CNINetwork(pod_cidrs=["10.250.0.0/24"], state_dir="/nonexistent").missing()
    if missing:
        return "missing: " + "; ".join(missing)
    return ""


pytestmark = pytest.mark.skipif(bool(_skip_reason()), reason=_skip_reason() or "-")

# A TCP server for ``ip netns exec``: listens on [::]:port (IPv4 too), prints "ready", then for
# each of ``count`` connections sends back the client's address and closes it.
SERVER = r"""
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", port)); s.listen(16)
print("ready", flush=True)
for _ in range(count):
    c, a = s.accept()
    ip = a[0][7:] if a[0].startswith("::ffff:") else a[0]
    c.sendall(ip.encode()); c.close()
"""

# A TCP client for ``ip netns exec``: prints what the server sent back.
CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(s.recv(200).decode())
"""


def _cidr_octets(n: int) -> list[int]:
    """``n`` distinct third octets for 10.250.x.0/24 test CIDRs."""
    return [int(x) for x in (secrets.SystemRandom().sample(range(1, 250), n))]


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


async def _run(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"{argv}: {err.decode()}"
    return out.decode()


def _pod(name: str, ports: tuple[PortMapping, ...] = ()) -> SandboxConfig:
    return SandboxConfig(name=name, namespace="default", uid=f"uid-{name}", port_mappings=ports)


def _sid() -> str:
    return secrets.token_hex(32)


@dataclass
class Env:
    """One test's network, and what it made that the fixture must see removed."""

    bridge: str
    state_dir: str
    networks: list[CNINetwork] = field(default_factory=list)
    servers: list[asyncio.subprocess.Process] = field(default_factory=list)
    netns: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)

    def network(self, **kw: object) -> CNINetwork:
        kw.setdefault("bridge", self.bridge)
        kw.setdefault("state_dir", self.state_dir)
        net = CNINetwork(**kw)  # type: ignore[arg-type]
        self.networks.append(net)
        return net

    async def create(self, net: CNINetwork, sid: str, config: SandboxConfig) -> tuple[str, tuple[str, ...]]:
        self.netns.add(netns_name(sid))
        return await net.create(sid, config)

    async def serve(self, ns: str, port: int, count: int) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-c",
            SERVER,
            str(port),
            str(count),
            stdout=asyncio.subprocess.PIPE,
        )
        self.servers.append(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line.strip() == b"ready"
        return proc


async def _connect_from(ns: str, host: str, port: int) -> str:
    """Connects from inside namespace ``ns``; returns the address the server saw."""
    return (await _run("ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, host, str(port))).strip()


async def _connect_from_host(host: str, port: int) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    data = await asyncio.wait_for(reader.read(200), 5)
    writer.close()
    await writer.wait_closed()
    return data.decode()


def _host_addresses() -> set[str]:
    return {a["local"] for i in json.loads(_sh("ip", "-j", "addr").stdout) for a in i.get("addr_info", [])}


def _iptables_mentions(name: str) -> list[str]:
    out = []
    for tool in ("iptables", "ip6tables"):
        out += [line for line in _sh(tool, "-w", "-t", "nat", "-S").stdout.splitlines() if name in line]
    return out


def _nat_tables() -> set[str]:
    return {
        t
        for t in ("ip nat", "ip6 nat")
        if _sh("nft", "list", "table", *t.split(), check=False).returncode == 0
    }


def _remove_empty_nat_tables(keep: set[str]) -> None:
    """iptables-nft makes ``ip nat``/``ip6 nat`` when portmap first runs; one the test made and
    that holds no rule any more (teardown_node removed portmap's chains) goes too."""
    for t in _nat_tables() - keep:
        listing = json.loads(_sh("nft", "-j", "list", "table", *t.split()).stdout)["nftables"]
        if not any("rule" in item for item in listing):
            _sh("nft", "delete", "table", *t.split(), check=False)


@pytest.fixture
async def env(tmp_path: object) -> AsyncIterator[Env]:
    e = Env(bridge="k8pyt" + secrets.token_hex(3), state_dir=os.path.join(str(tmp_path), "cni"))
    e.links.add(e.bridge)
    nat_before = _nat_tables()
    try:
        yield e
    finally:
        for p in e.servers:
            if p.returncode is None:
                p.kill()
            await p.wait()
        errors = []
        for net in e.networks:
            try:
                await net.teardown_node()
            except Exception as err:  # noqa: BLE001 - clean up the rest, fail below
                errors.append(err)
        _remove_empty_nat_tables(nat_before)
        leftovers = [n for n in e.netns if os.path.lexists(os.path.join(NETNS_DIR, n))]
        links = [n for n in e.links if os.path.exists(f"/sys/class/net/{n}")]
        tables = [
            n.nft_table
            for n in e.networks
            if _sh("nft", "list", "table", "inet", n.nft_table, check=False).returncode == 0
        ]
        rules = [r for n in e.networks for r in _iptables_mentions(n.network_name)]
        for n in leftovers:
            _sh("ip", "netns", "delete", n, check=False)
        for n in links:
            _sh("ip", "link", "delete", n, check=False)
        for t in tables:
            _sh("nft", "delete", "table", "inet", t, check=False)
        assert not errors and not leftovers and not links and not tables and not rules, (
            errors,
            leftovers,
            links,
            tables,
            rules,
        )


async def test_is_a_pod_network(env: Env) -> None:
    assert isinstance(env.network(pod_cidrs=["10.250.1.0/24"]), PodNetwork)


async def test_two_pods_reach_each_other_and_the_host_reaches_them(env: Env) -> None:
    (x,) = _cidr_octets(1)
    cidr = ipaddress.ip_network(f"10.250.{x}.0/24")
    net = env.network(pod_cidrs=[str(cidr)])
    a, b = _sid(), _sid()
    # Created at once: host-local's lock and the per-sandbox state files keep them apart.
    (path_a, ips_a), (path_b, ips_b) = await asyncio.gather(
        env.create(net, a, _pod("a")), env.create(net, b, _pod("b"))
    )
    assert path_a == f"{NETNS_DIR}/{netns_name(a)}" and os.path.exists(path_a)
    assert path_b == f"{NETNS_DIR}/{netns_name(b)}" and os.path.exists(path_b)
    assert len(ips_a) == len(ips_b) == 1 and ips_a != ips_b
    assert all(ipaddress.ip_address(ip) in cidr for ip in (*ips_a, *ips_b))
    assert sorted(net.list_netns()) == sorted([netns_name(a), netns_name(b)])

    await env.serve(netns_name(b), 8080, 2)
    assert await _connect_from(netns_name(a), ips_b[0], 8080) == ips_a[0]  # pod to pod, not NATed
    gateway = str(cidr.network_address + 1)
    assert await _connect_from_host(ips_b[0], 8080) == gateway  # the host reaches the pod

    lo = json.loads(await _run("ip", "netns", "exec", netns_name(a), "ip", "-j", "addr", "show", "lo"))[0]
    assert "UP" in lo["flags"] and any(i["local"] == "127.0.0.1" for i in lo["addr_info"])
    eth0 = json.loads(await _run("ip", "netns", "exec", netns_name(a), "ip", "-j", "link", "show", "eth0"))[0]
    assert eth0["mtu"] == 1500

    await net.destroy(a, path_a, _pod("a"))
    await net.destroy(b, path_b, _pod("b"))
    assert net.list_netns() == []


async def test_dual_stack_gives_ipv4_first_and_both_work(env: Env) -> None:
    (x,) = _cidr_octets(1)
    v4, v6 = ipaddress.ip_network(f"10.250.{x}.0/24"), ipaddress.ip_network(f"fd00:250:{x}::/64")
    net = env.network(pod_cidrs=[str(v6), str(v4)])  # IPv6 given first on purpose
    sid = _sid()
    path, ips = await env.create(net, sid, _pod("dual"))
    assert len(ips) == 2
    assert ipaddress.ip_address(ips[0]) in v4 and ipaddress.ip_address(ips[1]) in v6
    await env.serve(netns_name(sid), 8080, 2)
    assert await _connect_from_host(ips[0], 8080) == str(v4.network_address + 1)
    # Over IPv6 the node picks its source address itself (the bridge's gateway address may
    # still be in duplicate address detection): some address of the node, not NATed away.
    seen = await _connect_from_host(ips[1], 8080)
    assert seen in _host_addresses(), seen
    await net.destroy(sid, path, _pod("dual"))


async def test_host_port_reaches_the_pod(env: Env) -> None:
    """portmap DNATs traffic to any local address; for 127.0.0.1 it sets route_localnet on the
    bridge and masquerades (the pod sees the gateway address), so both work from the node."""
    (x,) = _cidr_octets(1)
    cidr = ipaddress.ip_network(f"10.250.{x}.0/24")
    net = env.network(pod_cidrs=[str(cidr)])
    host_port = 30000 + secrets.randbelow(2000)
    ports = (
        PortMapping(container_port=8080, host_port=host_port),
        PortMapping(container_port=9, host_port=0),
    )
    sid = _sid()
    path, _ = await env.create(net, sid, _pod("web", ports))
    gateway = str(cidr.network_address + 1)
    await env.serve(netns_name(sid), 8080, 2)
    assert await _connect_from_host("127.0.0.1", host_port) == gateway
    assert await _connect_from_host(gateway, host_port) == gateway
    assert _iptables_mentions(net.network_name)
    await net.destroy(sid, path, _pod("web", ports))
    assert not _iptables_mentions(net.network_name)  # DEL took portmap's rules away


async def test_destroy_releases_is_idempotent_and_survives_a_restart(env: Env) -> None:
    x, y = _cidr_octets(2)
    net = env.network(pod_cidrs=[f"10.250.{x}.0/24"])
    store = os.path.join(net.ipam_dir, net.network_name)
    sid = _sid()
    path, ips = await env.create(net, sid, _pod("p"))
    held = await asyncio.to_thread(Path(store, ips[0]).read_text)
    assert held.startswith(sid)  # host-local holds the address for this sandbox
    await net.destroy(sid, path, _pod("p"))
    assert not os.path.exists(os.path.join(store, ips[0]))
    assert not os.path.lexists(path)
    await net.destroy(sid, path, _pod("p"))  # again: nothing to do, no error
    await net.destroy(sid, "", _pod("p"))

    # "Restart": a new instance on the same state dir, and the node's pod CIDR changed.
    sid2 = _sid()
    path2, ips2 = await env.create(net, sid2, _pod("q"))
    net2 = env.network(pod_cidrs=[f"10.250.{y}.0/24"])
    assert net2.list_netns() == [netns_name(sid2)]
    await net2.destroy(sid2, path2, _pod("q"))
    assert not os.path.exists(os.path.join(store, ips2[0]))
    assert not os.path.lexists(path2)
    assert net2.list_netns() == []


async def test_host_network_has_no_namespace(env: Env) -> None:
    net = env.network(pod_cidrs=["10.250.0.0/24"])
    config = SandboxConfig(name="h", namespace="kube-system", uid="u", host_network=True)
    assert await net.create(_sid(), config) == ("", ())
    await net.destroy(_sid(), "", config)
    assert net.list_netns() == []


async def test_plugin_failure_raises_its_message_and_leaves_nothing(env: Env, tmp_path: object) -> None:
    (x,) = _cidr_octets(1)
    net = env.network(pod_cidrs=[f"10.250.{x}.0/31"])  # host-local: too small to allocate from
    sid = _sid()
    with pytest.raises(SandboxError) as info:
        await env.create(net, sid, _pod("bad"))
    assert "too small to allocate from" in str(info.value)
    assert 'plugin type="bridge"' in str(info.value) and sid in str(info.value)
    assert not os.path.lexists(os.path.join(NETNS_DIR, netns_name(sid)))
    assert net.list_netns() == [] and not os.listdir(os.path.join(net.state_dir, "sandboxes"))

    # A plugin directory without bridge: found at the version check, before anything is made.
    nobridge = os.path.join(str(tmp_path), "plugins")
    os.makedirs(nobridge)
    for p in ("host-local", "portmap", "loopback"):
        os.symlink(os.path.join(PLUGIN_DIR, p), os.path.join(nobridge, p))
    net2 = env.network(pod_cidrs=[f"10.250.{x}.0/24"], plugin_dir=nobridge, state_dir=net.state_dir + "2")
    assert any("'bridge'" in m and "apt-get install containernetworking-plugins" in m for m in net2.missing())
    sid2 = _sid()
    with pytest.raises(SandboxError, match='failed to find plugin "bridge"'):
        await env.create(net2, sid2, _pod("bad2"))
    assert not os.path.lexists(os.path.join(NETNS_DIR, netns_name(sid2)))


async def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="not a CIDR"):
        CNINetwork(pod_cidrs=["10.250.0.0/33"], state_dir="/tmp/x")
    with pytest.raises(ValueError, match="at least one pod CIDR"):
        CNINetwork(pod_cidrs=[], state_dir="/tmp/x")
    with pytest.raises(ValueError, match="not a valid interface name"):
        CNINetwork(pod_cidrs=["10.250.0.0/24"], state_dir="/tmp/x", bridge="much-too-long-name")
    net = CNINetwork(pod_cidrs=["10.250.0.0/24"], state_dir="/tmp/x")
    with pytest.raises(ValueError, match="not an IP address"):
        await net.sync_routes({"10.250.1.0/24": "node-2"})
    with pytest.raises(ValueError, match="different families"):
        await net.sync_routes({"fd00:250:1::/64": "10.0.0.2"})


@dataclass
class Peer:
    """A test "node" behind a veth: its netns, its IPs, and an IP of one of its pods on lo."""

    ns: str
    host_if: str
    host_ip: str
    node_ips: tuple[str, str]
    node_ip6: str


def _make_peer(env: Env, x: int, pod_cidr: str) -> Peer:
    tag = env.bridge[5:]
    ns, host_if, peer_if = f"k8pyt{tag}-peer", f"k8pyt{tag}h", f"k8pyt{tag}p"
    env.netns.add(ns)
    env.links.add(host_if)
    steps = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", ns],
        ["ip", "addr", "add", f"10.251.{x}.1/24", "dev", host_if],
        ["ip", "-6", "addr", "add", f"fd00:251:{x}::1/64", "dev", host_if, "nodad"],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
        ["ip", "-n", ns, "addr", "add", f"10.251.{x}.2/24", "dev", peer_if],
        ["ip", "-n", ns, "addr", "add", f"10.251.{x}.3/24", "dev", peer_if],
        ["ip", "-n", ns, "-6", "addr", "add", f"fd00:251:{x}::2/64", "dev", peer_if, "nodad"],
        ["ip", "-n", ns, "link", "set", peer_if, "up"],
        ["ip", "-n", ns, "addr", "add", pod_cidr.replace(".0/24", ".5/32"), "dev", "lo"],  # a peer pod
        ["ip", "-n", ns, "route", "add", "10.250.0.0/16", "via", f"10.251.{x}.1"],  # back to our pods
    ]
    for s in steps:
        _sh(*s)
    return Peer(ns, host_if, f"10.251.{x}.1", (f"10.251.{x}.2", f"10.251.{x}.3"), f"fd00:251:{x}::2")


def _routes(fam: str, match: Callable[[dict[str, str]], bool]) -> dict[str, tuple[str, str]]:
    out = {}
    for r in json.loads(_sh("ip", "-j", fam, "route", "show").stdout):
        if match(r):
            out[r["dst"]] = (r.get("gateway", ""), str(r.get("protocol", "")))
    return out


async def test_sync_routes_adds_replaces_and_removes_only_its_own(env: Env) -> None:
    x, own, p1, p2, p3, other = _cidr_octets(6)
    peer_pods, peer_pods2 = f"10.250.{p1}.0/24", f"10.250.{p2}.0/24"
    unrelated, foreign = f"10.250.{p3}.0/24", f"10.250.{other}.0/24"
    peer6 = f"fd00:250:{p1}::/64"
    net = env.network(pod_cidrs=[f"10.250.{own}.0/24"], cluster_cidrs=["10.250.0.0/16", "fd00:250::/32"])
    peer = _make_peer(env, x, peer_pods)
    # Routes that are not this network's: one static, one with our protocol made by someone else.
    _sh("ip", "route", "add", unrelated, "via", peer.node_ips[0])
    _sh("ip", "route", "add", foreign, "via", peer.node_ips[0], "proto", str(ROUTE_PROTO))
    try:
        await net.sync_routes(
            {
                peer_pods: peer.node_ips[0],
                peer_pods2: peer.node_ips[1],
                peer6: peer.node_ip6,
                f"10.250.{own}.0/24": "10.250.255.1",  # our own CIDR: skipped
            }
        )
        assert await net.routes() == {
            peer_pods: peer.node_ips[0],
            peer_pods2: peer.node_ips[1],
            peer6: peer.node_ip6,
        }
        v4 = _routes("-4", lambda r: r["dst"].startswith("10.250."))
        assert f"10.250.{own}.0/24" not in v4 or v4[f"10.250.{own}.0/24"][0] == ""

        # A pod here reaches a pod there unmasqueraded (cluster CIDR), and the peer node's own
        # address (outside the cluster CIDRs) masqueraded as this node's address on that link.
        sid = _sid()
        path, ips = await env.create(net, sid, _pod("client"))
        await env.serve(peer.ns, 8081, 2)
        assert await _connect_from(netns_name(sid), peer_pods.replace(".0/24", ".5"), 8081) == ips[0]
        assert await _connect_from(netns_name(sid), peer.node_ips[0], 8081) == peer.host_ip
        await net.destroy(sid, path, _pod("client"))

        # Second sync: peer 2 and the IPv6 peer are gone, peer 1 moved to the other address.
        await net.sync_routes({peer_pods: peer.node_ips[1]})
        assert await net.routes() == {peer_pods: peer.node_ips[1]}
        v4 = _routes("-4", lambda r: r["dst"].startswith("10.250."))
        assert peer_pods2 not in v4 and v4[peer_pods][0] == peer.node_ips[1]
        assert v4[unrelated][0] == peer.node_ips[0] and v4[foreign][0] == peer.node_ips[0]
        assert peer6 not in _routes("-6", lambda r: True)

        await net.teardown_node()
        v4 = _routes("-4", lambda r: r["dst"].startswith("10.250."))
        assert peer_pods not in v4 and unrelated in v4 and foreign in v4
    finally:
        _sh("ip", "route", "del", unrelated, check=False)
        _sh("ip", "route", "del", foreign, check=False)
        _sh("ip", "netns", "delete", peer.ns, check=False)  # takes the veth pair with it
        deadline = time.monotonic() + 10
        while os.path.exists(f"/sys/class/net/{peer.host_if}") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


async def test_masquerade_table_is_atomic_and_owned(env: Env) -> None:
    (x,) = _cidr_octets(1)
    net = env.network(pod_cidrs=[f"10.250.{x}.0/24", f"fd00:250:{x}::/64"], cluster_cidrs=["10.250.0.0/16"])
    text = net.masquerade_ruleset()
    assert f"ip saddr {{ 10.250.{x}.0/24 }} ip daddr != {{ 10.250.0.0/16, 224.0.0.0/4 }} masquerade" in text
    assert (
        f"ip6 saddr {{ fd00:250:{x}::/64 }} ip6 daddr != {{ fd00:250:{x}::/64, ff00::/8 }} masquerade" in text
    )
    sid = _sid()
    path, _ = await env.create(net, sid, _pod("m"))
    listed = _sh("nft", "list", "table", "inet", net.nft_table).stdout
    assert "masquerade" in listed and f"10.250.{x}.0/24" in listed
    await net.destroy(sid, path, _pod("m"))
    net_off = env.network(
        pod_cidrs=[f"10.250.{x}.0/24"], masquerade=False, bridge=env.bridge, state_dir=net.state_dir + "-off"
    )
    await net.teardown_node()
    sid = _sid()
    path, _ = await env.create(net_off, sid, _pod("n"))
    assert _sh("nft", "list", "table", "inet", net_off.nft_table, check=False).returncode != 0
    await net_off.destroy(sid, path, _pod("n"))


async def test_leftovers_are_found_and_removed(env: Env) -> None:
    (x,) = _cidr_octets(1)
    net = env.network(pod_cidrs=[f"10.250.{x}.0/24"])
    keep, gone = _sid(), _sid()
    (path_keep, _), (path_gone, _) = await asyncio.gather(
        env.create(net, keep, _pod("keep")), env.create(net, gone, _pod("gone"))
    )
    # The same sandbox set up again (an agent that died mid-create): the old one is undone first.
    path_again, ips_again = await env.create(net, gone, _pod("gone"))
    assert path_again == path_gone and os.path.exists(path_gone)
    store = os.path.join(net.ipam_dir, net.network_name)
    assert sorted(n for n in os.listdir(store) if n.startswith("10.")) == sorted(
        [*ips_again, *(await _held_by(store, keep))]
    )
    restarted = env.network(pod_cidrs=[f"10.250.{x}.0/24"])
    assert restarted.list_netns() == sorted([netns_name(keep), netns_name(gone)])
    assert await restarted.remove_leftovers({keep}) == [gone]
    assert restarted.list_netns() == [netns_name(keep)] and os.path.exists(path_keep)
    assert not os.path.lexists(path_gone)


async def _held_by(store: str, sid: str) -> list[str]:
    out = []
    for name in os.listdir(store):
        if name.startswith("10."):
            text = await asyncio.to_thread(Path(store, name).read_text)
            if text.startswith(sid):
                out.append(name)
    return out


async def test_teardown_node_removes_portmap_rules_left_without_state(env: Env) -> None:
    """The agent's state lost (no DEL possible): teardown_node still finds portmap's chains of
    this network by their comment and removes them, and only them."""
    (x,) = _cidr_octets(1)
    net = env.network(pod_cidrs=[f"10.250.{x}.0/24", f"fd00:250:{x}::/64"])
    sid = _sid()
    await env.create(net, sid, _pod("lost", (PortMapping(8080, 31000 + secrets.randbelow(999)),)))
    assert _iptables_mentions(net.network_name)
    os.unlink(os.path.join(net.state_dir, "sandboxes", sid + ".json"))
    assert net.list_netns() == []  # no record: not this network's to list any more
    await net.teardown_node()
    assert not _iptables_mentions(net.network_name)
    _sh("ip", "netns", "delete", netns_name(sid))


def test_missing_names_what_to_install(tmp_path: object) -> None:
    net = CNINetwork(pod_cidrs=["10.250.0.0/24"], state_dir=str(tmp_path), plugin_dir=str(tmp_path))
    missing = net.missing()
    assert len([m for m in missing if "containernetworking-plugins" in m]) == 4
    assert shutil.which("ip") is None or not any(m.startswith("ip:") for m in missing)
