"""NetworkPolicy semantics, pure: which peers and ports each isolated pod of the node allows, and
the rules and transactions written for them."""

from __future__ import annotations

from typing import Any

from k8py.netpol.model import Allow, block_ranges, compile_policy, evaluate, pod_info
from k8py.netpol.rules import TABLE, State, full_sync, partial_sync, pod_chain, render

NODE = "n1"


def pod(ns: str, name: str, ip: str | tuple[str, ...], labels: dict[str, str] | None = None, node: str = NODE,
        ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    ips = (ip,) if isinstance(ip, str) else ip
    return {"metadata": {"namespace": ns, "name": name, "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}], **spec},
            "status": {"phase": "Running", "podIP": ips[0], "podIPs": [{"ip": i} for i in ips]}}


def policy(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


NAMESPACES = {"default": {"kubernetes.io/metadata.name": "default"},
              "other": {"kubernetes.io/metadata.name": "other", "team": "a"},
              "third": {"kubernetes.io/metadata.name": "third", "team": "b"}}


def plan(policies: list[dict[str, Any]], pods: list[dict[str, Any]]) -> Any:
    infos = [p for p in (pod_info(o) for o in pods) if p is not None]
    return evaluate([compile_policy(p) for p in policies], infos, NAMESPACES, NODE)


SERVER = pod("default", "server", "10.42.0.10", {"app": "web"}, ports=[{"name": "http", "containerPort": 8080}])
CLIENT = pod("default", "client", "10.42.0.11", {"role": "client"})
REMOTE = pod("default", "remote", "10.42.1.5", {"role": "client"}, node="n2")
OTHER_NS = pod("other", "o", "10.42.1.6", {"role": "client"}, node="n2")
THIRD_NS = pod("third", "t", "10.42.1.7", {"role": "client"}, node="n2")
PODS = [SERVER, CLIENT, REMOTE, OTHER_NS, THIRD_NS]


def test_no_policy_isolates_nothing() -> None:
    assert plan([], PODS).pods == {}


def test_default_deny_ingress_isolates_every_pod_of_the_namespace_on_this_node() -> None:
    p = plan([policy("default", "deny", {"podSelector": {}})], PODS)
    # only this node's pods; no policyTypes means Ingress only
    assert set(p.pods) == {"default/server", "default/client"}
    assert p.pods["default/server"].ingress == [] and p.pods["default/server"].egress is None
    chain = render(p).chains[pod_chain("ing", "default/server")]
    assert chain == ("drop",)


def test_policy_types_default_to_egress_when_egress_rules_exist() -> None:
    p = plan([policy("default", "e", {"podSelector": {}, "egress": [{}]})], PODS)
    server = p.pods["default/server"]
    assert server.ingress == [] and server.egress == [Allow(True, "", (), None)]
    p = plan([policy("default", "e", {"podSelector": {}, "policyTypes": ["Egress"]})], PODS)
    assert p.pods["default/server"].ingress is None and p.pods["default/server"].egress == []


def test_pod_selector_peers_are_in_the_policy_namespace_only() -> None:
    p = plan([policy("default", "allow", {"podSelector": {"matchLabels": {"app": "web"}},
                                          "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})],
             PODS)
    assert set(p.pods) == {"default/server"}
    (a,) = p.pods["default/server"].ingress or []
    assert p.peer_sets[a.peer_set] == {"10.42.0.11", "10.42.1.5"}
    rules = render(p).chains[pod_chain("ing", "default/server")]
    assert rules == (f"ip saddr @{a.peer_set}-4 return", f"ip6 saddr @{a.peer_set}-6 return", "drop")


def test_namespace_selector_alone_and_with_pod_selector() -> None:
    alone = plan([policy("default", "ns", {"podSelector": {}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}]})], PODS)
    (a,) = alone.pods["default/server"].ingress or []
    assert alone.peer_sets[a.peer_set] == {"10.42.1.6"}
    both = plan([policy("default", "ns", {"podSelector": {}, "ingress": [
        {"from": [{"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
                   "podSelector": {"matchLabels": {"role": "nope"}}}]}]})], PODS)
    (b,) = both.pods["default/server"].ingress or []
    assert both.peer_sets[b.peer_set] == set()
    every = plan([policy("default", "ns", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]})],
                 PODS)
    (c,) = every.pods["default/server"].ingress or []
    assert every.peer_sets[c.peer_set] == {"10.42.0.10", "10.42.0.11", "10.42.1.5", "10.42.1.6", "10.42.1.7"}


def test_ip_block_except_and_ports() -> None:
    assert block_ranges("10.0.0.0/8", ["10.1.0.0/16"]) == (
        "10.0.0.0/16", "10.2.0.0/15", "10.4.0.0/14", "10.8.0.0/13", "10.16.0.0/12", "10.32.0.0/11",
        "10.64.0.0/10", "10.128.0.0/9")
    assert block_ranges("fd00::/64", ["fd00::/65"]) == ("fd00::8000:0:0:0/65",)
    p = plan([policy("default", "b", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}},
                  {"ipBlock": {"cidr": "fd00::/8"}}],
         "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "UDP", "port": 1000, "endPort": 2000},
                   {"protocol": "SCTP"}]}]})], PODS)
    rules = render(p).chains[pod_chain("ing", "default/server")]
    ports = "meta l4proto . th dport { sctp . 0-65535, tcp . 80, udp . 1000-2000 }"
    assert rules[0].startswith("ip saddr { 192.168.0.0/24, 192.168.2.0/23, ")
    assert rules[0].endswith(f"}} {ports} return")
    assert rules[1] == f"ip6 saddr {{ fd00::/8 }} {ports} return"
    assert rules[2:] == ("drop",)


def test_named_ports_ingress_resolve_on_the_target_pod() -> None:
    spec = {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]}
    p = plan([policy("default", "n", spec)], PODS)
    # the server has a port named http; the client has none, so the rule allows it nothing
    assert p.pods["default/server"].ingress == [Allow(True, "", (), (("tcp", 8080, 8080),))]
    assert p.pods["default/client"].ingress == []
    # the protocol must match too
    spec["ingress"][0]["ports"][0]["protocol"] = "UDP"
    assert plan([policy("default", "n", spec)], PODS).pods["default/server"].ingress == []


def test_named_ports_egress_resolve_on_each_peer_pod() -> None:
    web2 = pod("other", "web2", ("10.42.1.9", "fd42::9"), {"app": "web"}, node="n2",
               ports=[{"name": "http", "containerPort": 9090}])
    spec = {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}],
                        "ports": [{"port": "http"}, {"port": 53, "protocol": "UDP"}]}]}
    p = plan([policy("default", "e", spec)], [*PODS, web2])
    (a,) = p.pods["default/client"].egress or []
    assert p.named_sets[a.named_set] == {("10.42.0.10", "tcp", 8080), ("10.42.1.9", "tcp", 9090),
                                         ("fd42::9", "tcp", 9090)}
    st = render(p)
    assert st.elements[f"{a.named_set}-6"] == {"fd42::9 . tcp . 9090": None}
    assert st.chains[pod_chain("egr", "default/client")] == (
        f"ip daddr @{a.peer_set}-4 meta l4proto . th dport {{ udp . 53 }} return",
        f"ip6 daddr @{a.peer_set}-6 meta l4proto . th dport {{ udp . 53 }} return",
        f"ip daddr . meta l4proto . th dport @{a.named_set}-4 return",
        f"ip6 daddr . meta l4proto . th dport @{a.named_set}-6 return",
        "drop")


def test_policies_are_additive_and_map_every_address_of_a_dual_stack_pod() -> None:
    s = pod("default", "s", ("10.42.0.20", "fd42::20"), {"app": "web"})
    p = plan([policy("default", "a", {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}),
              policy("default", "b", {"podSelector": {"matchLabels": {"app": "web"}},
                                      "ingress": [{"ports": [{"port": 443}]}]})], [s])
    assert [a.ports for a in p.pods["default/s"].ingress or []] == [(("tcp", 80, 80),), (("tcp", 443, 443),)]
    st = render(p)
    chain = pod_chain("ing", "default/s")
    assert st.elements["ingress-pods"] == {"10.42.0.20": f"jump {chain}"}
    assert st.elements["ingress-pods6"] == {"fd42::20": f"jump {chain}"}


def test_host_network_and_finished_pods_are_neither_targets_nor_peers() -> None:
    host = pod("default", "h", "192.168.5.5", {"role": "client"}, hostNetwork=True)
    done = pod("default", "d", "10.42.0.30", {"role": "client"})
    done["status"]["phase"] = "Succeeded"
    pending = pod("default", "p", "10.42.0.31")
    pending["status"] = {"phase": "Pending"}
    p = plan([policy("default", "x", {"podSelector": {}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})], [SERVER, host, done, pending])
    assert set(p.pods) == {"default/server"}
    (a,) = p.pods["default/server"].ingress or []
    assert p.peer_sets[a.peer_set] == set()


def test_a_pod_coming_is_one_set_element_in_a_partial_sync() -> None:
    pols = [policy("default", "allow", {"podSelector": {"matchLabels": {"app": "web"}},
                                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})]
    before = render(plan(pols, PODS))
    newcomer = pod("default", "c2", "10.42.1.77", {"role": "client"}, node="n2")
    after = render(plan(pols, [*PODS, newcomer]))
    script = partial_sync(before, after)
    assert script.splitlines() == [f"add element inet {TABLE} {next(s for s in after.sets if s.startswith('peers-') and s.endswith('-4'))} {{ 10.42.1.77 }}"]
    assert partial_sync(after, after) == ""
    gone = partial_sync(after, before)
    assert gone.splitlines() == [f"delete element inet {TABLE} {next(s for s in after.sets if s.startswith('peers-') and s.endswith('-4'))} {{ 10.42.1.77 }}"]


def test_partial_sync_when_a_policy_goes_removes_its_chains_and_sets_in_order() -> None:
    pols = [policy("default", "allow", {"podSelector": {"matchLabels": {"app": "web"}},
                                        "ingress": [{"from": [{"podSelector": {}}]}]})]
    before = render(plan(pols, PODS))
    script = partial_sync(before, render(plan([], PODS))).splitlines()
    chain = pod_chain("ing", "default/server")
    assert script[0] == f"delete element inet {TABLE} ingress-pods {{ 10.42.0.10 }}"
    assert script.index(f"flush chain inet {TABLE} {chain}") < script.index(f"delete chain inet {TABLE} {chain}")
    assert all(ln.startswith(("delete", "flush")) for ln in script)
    assert sum(ln.startswith("delete set") for ln in script) == 2


def test_full_sync_declares_maps_before_the_base_chains_use_them() -> None:
    script = full_sync(render(plan([policy("default", "deny", {"podSelector": {}})], PODS))).splitlines()
    assert script[:2] == [f"add table inet {TABLE}", f"delete table inet {TABLE}"]
    first_map = next(i for i, ln in enumerate(script) if ln.startswith("add map"))
    first_vmap = next(i for i, ln in enumerate(script) if "vmap" in ln)
    assert first_map < first_vmap
    assert partial_sync(State(), State()) == ""


def test_the_cluster_dns_slice_stands_for_coredns_pods() -> None:
    from k8py.netpol.model import dns_stand_in

    sl = {"metadata": {"namespace": "kube-system", "name": "kube-dns-k8py"},
          "endpoints": [{"addresses": ["10.42.0.1"], "conditions": {"ready": True}}],
          "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}
    dns = dns_stand_in(sl)
    assert dns is not None and dns.ips == ("10.42.0.1",) and dns.node_name == ""
    assert dns_stand_in({**sl, "endpoints": []}) is None
    namespaces = {**NAMESPACES, "kube-system": {"kubernetes.io/metadata.name": "kube-system"}}
    # the rule the Kubernetes documentation and most charts use to allow DNS
    allow_dns = compile_policy(policy("default", "dns", {
        "podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "UDP", "port": "dns"}]}]}))
    infos = [p for p in (pod_info(o) for o in PODS) if p is not None]
    p = evaluate([allow_dns], [*infos, dns], namespaces, NODE)
    (a,) = p.pods["default/client"].egress or []
    assert p.peer_sets[a.peer_set] == {"10.42.0.1"}
    assert p.named_sets[a.named_set] == {("10.42.0.1", "udp", 53)}
    # it is never a target: it has no node
    deny_all = compile_policy(policy("kube-system", "deny", {"podSelector": {}}))
    assert evaluate([deny_all], [dns], namespaces, "").pods == {}


def test_a_policy_that_cannot_be_compiled_is_reported_and_the_others_apply() -> None:
    from k8py.netpol.model import compile_policies

    bad = policy("default", "bad", {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}})
    good = policy("default", "good", {"podSelector": {}})
    compiled, errors = compile_policies([bad, good])
    assert [p.name for p in compiled] == ["good"]
    assert errors == ['NetworkPolicy default/bad: "Near" is not a valid label selector operator']
