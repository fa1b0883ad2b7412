"""The NetworkPolicy rules with real packets, inside network namespaces this test makes:

    [node netns: bridge br0 10.77.0.1 fd77::1, the rules, a server on :9000]
        --bridge port-- [pod a 10.77.0.2 fd77::2]
        --bridge port-- [pod b 10.77.0.3 fd77::3]
        --bridge port-- [pod c 10.77.0.4 fd77::4]
        --routed veth-- [pod d 10.78.0.2]   (stands for a pod of another node)

a, b and c share the bridge, so their traffic to each other is bridged and reaches the rules
through br_netfilter (as pods on one node do); d's is routed. Every pod runs a server on 8080 and
8081 that answers its name. Traffic goes only to addresses inside these namespaces; every
namespace (with the veths, the bridge and the rules) is deleted at the end.
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
from typing import Any

import pytest
from tests.helpers.netns import namespaces, sh
from tests.helpers.nft import normalized_table
from tests.netpol.test_model import pod, policy

from k8py.netpol.model import compile_policy, evaluate, pod_info
from k8py.netpol.rules import TABLE, cleanup, full_sync, partial_sync, render
from k8py.nftables import Nft, NftError

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
                                reason="needs root, nft and ip")

SERVER = r"""
import socket, sys, threading
name = sys.argv[1].encode()
def serve(port):
    s = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
    while True:
        c, _ = s.accept()
        try:
            c.sendall(name)
        finally:
            c.close()
for p in sys.argv[2:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
threading.Event().wait()
"""

CONNECT = ("import socket,sys\n"
           "h,p=sys.argv[1],int(sys.argv[2])\n"
           "try:\n"
           "  s=socket.create_connection((h,p),timeout=float(sys.argv[3]))\n"
           "  print(s.recv(100).decode() or 'EMPTY')\n"
           "except OSError as e:\n"
           "  print('ERR', type(e).__name__)\n")

IPS = {"a": ("10.77.0.2", "fd77::2"), "b": ("10.77.0.3", "fd77::3"), "c": ("10.77.0.4", "fd77::4"),
       "d": ("10.78.0.2",)}


@dataclass
class Topology:
    node: str
    pods: dict[str, str]  # name -> netns

    def nft(self) -> Nft:
        return Nft(("ip", "netns", "exec", self.node, "nft"))

    def connect(self, src: str, host: str, port: int = 8080, timeout: float = 1.0) -> str:
        """A TCP connection from inside ``src`` (a pod name or "node"): the server's name or 'ERR ...'."""
        ns = self.node if src == "node" else self.pods[src]
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CONNECT, host, str(port),
                               str(timeout)], capture_output=True, text=True, timeout=timeout + 20,
                              check=True).stdout.strip()

    def apply(self, policies: list[dict[str, Any]]) -> str:
        st = render(evaluate([compile_policy(p) for p in policies],
                             [p for p in (pod_info(o) for o in PODS) if p is not None], {}, "n1"))
        script = full_sync(st)
        self.nft().apply(script)
        return script


PODS = [pod("default", "a", IPS["a"], {"app": "a"}), pod("default", "b", IPS["b"], {"app": "b"},
                                                         ports=[{"name": "http", "containerPort": 8080}]),
        pod("default", "c", IPS["c"], {"app": "c"}), pod("default", "d", IPS["d"], {"app": "d"}, node="n2")]


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    tag = uuid.uuid4().hex[:6]
    node = f"k8pyt-npn-{tag}"
    pods = {n: f"k8pyt-np{n}-{tag}" for n in IPS}
    with namespaces(node, *pods.values()) as procs:
        sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
        sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.bridge.bridge-nf-call-ip6tables=1")
        sh("ip", "-n", node, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", node, "addr", "add", "10.77.0.1/24", "dev", "br0")
        sh("ip", "-n", node, "addr", "add", "fd77::1/64", "dev", "br0", "nodad")
        sh("ip", "-n", node, "link", "set", "br0", "up")
        for name, ns in pods.items():
            host = f"np{name}{tag}"[:15]
            sh("ip", "-n", node, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", node, "link", "set", host, "up")
            if name == "d":  # routed: a /24 of its own
                sh("ip", "-n", node, "addr", "add", "10.78.0.1/24", "dev", host)
                sh("ip", "-n", ns, "addr", "add", "10.78.0.2/24", "dev", "eth0")
                sh("ip", "-n", ns, "route", "add", "default", "via", "10.78.0.1")
            else:
                sh("ip", "-n", node, "link", "set", host, "master", "br0")
                v4, v6 = IPS[name]
                sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", "eth0")
                sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
                sh("ip", "-n", ns, "route", "add", "default", "via", "10.77.0.1")
                sh("ip", "-n", ns, "-6", "route", "add", "default", "via", "fd77::1")
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, name,
                                           "8080", "8081"]))
        procs.append(subprocess.Popen(["ip", "netns", "exec", node, sys.executable, "-c", SERVER, "node", "9000"]))
        t = Topology(node, pods)
        deadline = time.monotonic() + 20
        while not all(t.connect("a", IPS[n][0]) == n for n in ("b", "c", "d")) or t.connect("a", "10.77.0.1",
                                                                                             9000) != "node":
            assert time.monotonic() < deadline, "the pod servers did not start"
            time.sleep(0.1)
        yield t


DENY_B = policy("default", "deny", {"podSelector": {"matchLabels": {"app": "b"}}})


def test_default_deny_ingress_blocks_pods_but_not_the_node(topo: Topology) -> None:
    topo.apply([DENY_B])
    assert topo.connect("a", "10.77.0.3") == "ERR TimeoutError"  # bridged
    assert topo.connect("a", "fd77::3") == "ERR TimeoutError"  # bridged, IPv6
    assert topo.connect("d", "10.77.0.3") == "ERR TimeoutError"  # routed from "another node"
    assert topo.connect("node", "10.77.0.3") == "b"  # the node itself (kubelet's probes)
    assert topo.connect("node", "fd77::3") == "b"
    assert topo.connect("b", "10.77.0.2") == "a"  # b is not isolated for egress; the reply comes back
    assert topo.connect("a", "10.77.0.4") == "c"  # c is not selected


def test_allow_by_pod_label_opens_and_a_pod_coming_is_one_element(topo: Topology) -> None:
    allow = policy("default", "allow", {"podSelector": {"matchLabels": {"app": "b"}},
                                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                                                     "ports": [{"port": "http"}]}]})
    topo.apply([DENY_B, allow])
    assert topo.connect("a", "10.77.0.3") == "ERR TimeoutError"  # a has no role=client yet
    labelled = [dict(p) for p in PODS]
    labelled[0] = pod("default", "a", IPS["a"], {"app": "a", "role": "client"})
    pods_before = [p for p in (pod_info(o) for o in PODS) if p is not None]
    pods_after = [p for p in (pod_info(o) for o in labelled) if p is not None]
    pols = [compile_policy(p) for p in (DENY_B, allow)]
    script = partial_sync(render(evaluate(pols, pods_before, {}, "n1")), render(evaluate(pols, pods_after, {}, "n1")))
    assert len(script.splitlines()) == 2, script  # a's two addresses join the rule's peer sets
    topo.nft().apply(script)
    assert topo.connect("a", "10.77.0.3") == "b"
    assert topo.connect("a", "fd77::3") == "b"
    assert topo.connect("a", "10.77.0.3", 8081) == "ERR TimeoutError"  # only the port named http (8080)
    assert topo.connect("c", "10.77.0.3") == "ERR TimeoutError"


def test_ip_block_with_except(topo: Topology) -> None:
    allow = policy("default", "blk", {"podSelector": {"matchLabels": {"app": "b"}}, "ingress": [
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.77.0.4/32"]}}]}]})
    topo.apply([allow])
    assert topo.connect("d", "10.77.0.3") == "b"
    assert topo.connect("a", "10.77.0.3", 8081) == "b"
    assert topo.connect("c", "10.77.0.3") == "ERR TimeoutError"
    assert topo.connect("a", "fd77::3") == "ERR TimeoutError"  # an IPv4 block says nothing of IPv6


def test_egress_default_deny_covers_the_node_and_a_port_rule_opens_it(topo: Topology) -> None:
    deny = policy("default", "egress", {"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"]})
    topo.apply([deny])
    assert topo.connect("a", "10.77.0.3") == "ERR TimeoutError"
    assert topo.connect("a", "10.78.0.2") == "ERR TimeoutError"
    assert topo.connect("a", "10.77.0.1", 9000) == "ERR TimeoutError"  # the node itself (input hook)
    assert topo.connect("b", "10.77.0.2") == "a"  # ingress to a is not restricted
    assert topo.connect("node", "10.77.0.2") == "a"
    port = policy("default", "dns", {"podSelector": {}, "policyTypes": ["Egress"],
                                     "egress": [{"ports": [{"port": 9000}]}]})
    named = policy("default", "named", {"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"],
                                        "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": "http"}]}]})
    topo.apply([deny, port, named])
    assert topo.connect("a", "10.77.0.1", 9000) == "node"
    assert topo.connect("a", "10.77.0.3") == "b"  # b's port named http
    assert topo.connect("a", "10.77.0.3", 8081) == "ERR TimeoutError"
    assert topo.connect("a", "10.77.0.4") == "ERR TimeoutError"  # c has no port named http


def test_between_two_isolated_pods_both_sides_must_allow(topo: Topology) -> None:
    egress = policy("default", "e", {"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"],
                                     "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "b"}}}]}]})
    topo.apply([egress, DENY_B])
    assert topo.connect("a", "10.77.0.3") == "ERR TimeoutError"
    ingress = policy("default", "i", {"podSelector": {"matchLabels": {"app": "b"}},
                                      "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}]}]})
    topo.apply([egress, DENY_B, ingress])
    assert topo.connect("a", "10.77.0.3") == "b"
    assert topo.connect("a", "10.77.0.4") == "ERR TimeoutError"


def test_a_bad_transaction_keeps_the_rules_and_cleanup_removes_only_our_table(topo: Topology) -> None:
    topo.apply([DENY_B])
    nft = topo.nft()
    with pytest.raises(NftError):
        nft.apply(f"flush table inet {TABLE}\nadd rule inet {TABLE} nope bogus\n")
    assert topo.connect("a", "10.77.0.3") == "ERR TimeoutError"  # still enforced
    nft.apply("add table inet someone-else\n")
    nft.apply(cleanup())
    assert not nft.list_table("inet", TABLE)
    assert nft.list_table("inet", "someone-else")
    nft.apply("delete table inet someone-else\n")
    assert topo.connect("a", "10.77.0.3") == "b"


def test_partial_syncs_end_where_a_full_sync_would(topo: Topology) -> None:
    def state(policies: list[dict[str, Any]], pods: list[dict[str, Any]]) -> Any:
        return render(evaluate([compile_policy(p) for p in policies],
                               [p for p in (pod_info(o) for o in pods) if p is not None], {}, "n1"))

    nft = topo.nft()
    named = policy("default", "named", {"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"],
                                        "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": "http"}]}]})
    allow = policy("default", "allow", {"podSelector": {"matchLabels": {"app": "b"}},
                                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}]}]})
    old = state([DENY_B, named, allow], PODS)
    nft.apply(full_sync(old))
    # a policy goes, another changes its rules, one comes; a pod gets a label, another goes
    changed = policy("default", "allow", {"podSelector": {"matchLabels": {"app": "b"}}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"role": "x"}}}], "ports": [{"port": 8081}]}]})
    new_pol = policy("default", "c-egress", {"podSelector": {"matchLabels": {"app": "c"}}, "policyTypes": ["Egress"],
                                             "egress": [{"to": [{"ipBlock": {"cidr": "10.78.0.0/16"}}]}]})
    pods = [pod("default", "a", IPS["a"], {"app": "a2", "role": "x"}), *PODS[1:3]]
    new = state([changed, new_pol], pods)
    nft.apply(partial_sync(old, new))
    after_partial = normalized_table(nft, TABLE)
    assert topo.connect("a", "10.77.0.3", 8081) == "b"  # a now has role=x
    assert topo.connect("a", "10.77.0.3", 8080) == "ERR TimeoutError"
    assert topo.connect("c", "10.78.0.2") == "d"
    assert topo.connect("c", "10.77.0.2") == "ERR TimeoutError"
    nft.apply(full_sync(new))
    assert after_partial == normalized_table(nft, TABLE)
    # and back
    nft.apply(partial_sync(new, old))
    after_back = normalized_table(nft, TABLE)
    nft.apply(full_sync(old))
    assert after_back == normalized_table(nft, TABLE)
