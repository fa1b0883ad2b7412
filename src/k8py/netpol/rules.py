"""The NetworkPolicy ruleset in nftables, written as ``nft -f`` transactions (nothing here does I/O).

One table of our own, ``inet k8py-netpol`` (IPv4 and IPv6 at once); nothing outside it is touched
and :func:`cleanup` deletes it:

- base chains ``forward`` and ``input`` (type filter, priority filter). ``forward`` sees pod-to-pod
  traffic: routed between nodes, and bridged on this node's pod bridge when br_netfilter passes
  bridged IP traffic to the IP hooks (``net.bridge.bridge-nf-call-iptables=1``), and traffic that
  the service proxy DNATed in prerouting, with the real pod as destination (policies apply to
  endpoints, as in kube). ``input`` sees pods' traffic to the node itself (the cluster DNS on the
  bridge's address), for egress. Traffic the node sends (kubelet's probes) leaves through
  ``output`` and is never filtered: "traffic from the pod's local node" is always allowed.
- first, replies and related traffic of allowed connections pass (``ct state
  established,related accept``), and IPv6 neighbour discovery (it is not a connection);
- verdict maps from a local isolated pod's address to its chain: ``egress-pods``/``egress-pods6``
  by source address (``egr-<pod>``), ``ingress-pods``/``ingress-pods6`` by destination
  (``ing-<pod>``). A pod's chain ``return``\\ s what one of its allowances matches and drops the
  rest; egress is checked first, then the destination's ingress, so traffic between two isolated
  pods needs both;
- per policy rule, the addresses of its selected peer pods in the sets ``peers-<rule>-4`` and
  ``-6`` (and ``named-<rule>-4``/``-6`` of address . protocol . port for egress named ports), which a
  pod coming or going changes by one element; ipBlocks are anonymous interval sets in the rules.

:func:`render` turns a :class:`~k8py.netpol.model.Plan` into a :class:`State`; :func:`full_sync`
writes a whole table, :func:`partial_sync` only the difference between two states.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from k8py.netpol.model import Allow, Plan, family

TABLE = "k8py-netpol"
ND_TYPES = "{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert }"
MAPS = {
    "ingress-pods": "{ type ipv4_addr : verdict ; }",
    "ingress-pods6": "{ type ipv6_addr : verdict ; }",
    "egress-pods": "{ type ipv4_addr : verdict ; }",
    "egress-pods6": "{ type ipv6_addr : verdict ; }",
}


@dataclass(slots=True)
class State:
    """The table's contents: sets and maps (name -> declaration), their elements (name -> key ->
    verdict or None), chains (name -> rules) with comments."""

    sets: dict[str, str] = field(default_factory=dict)
    elements: dict[str, dict[str, str | None]] = field(default_factory=dict)
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)


def pod_chain(prefix: str, pod_key: str) -> str:
    return f"{prefix}-{hashlib.sha256(pod_key.encode()).hexdigest()[:16]}"


def _comment(text: str) -> str:
    return '"' + text.replace('"', "'")[:120] + '"'


def _ports(ports: tuple[tuple[str, int, int], ...]) -> str:
    items = sorted(set(ports))
    return "meta l4proto . th dport { " + ", ".join(
        f"{proto} . {lo}" if lo == hi else f"{proto} . {lo}-{hi}" for proto, lo, hi in items) + " }"


def _allow_rules(a: Allow, addr: str) -> list[str]:
    """The rules (each ends in ``return``) for one allowance; ``addr`` is saddr (ingress: the peer
    is the source) or daddr (egress)."""
    out: list[str] = []
    port_match = "" if a.ports is None else (_ports(a.ports) + " " if a.ports else None)
    if port_match is not None:
        if a.all_peers:
            out.append(f"{port_match}return")
        else:
            if a.peer_set:
                out.append(f"ip {addr} @{a.peer_set}-4 {port_match}return")
                out.append(f"ip6 {addr} @{a.peer_set}-6 {port_match}return")
            v4 = [b for b in a.blocks if family(b) == 4]
            v6 = [b for b in a.blocks if family(b) == 6]
            if v4:
                out.append(f"ip {addr} {{ {', '.join(v4)} }} {port_match}return")
            if v6:
                out.append(f"ip6 {addr} {{ {', '.join(v6)} }} {port_match}return")
    if a.named_set:
        out.append(f"ip {addr} . meta l4proto . th dport @{a.named_set}-4 return")
        out.append(f"ip6 {addr} . meta l4proto . th dport @{a.named_set}-6 return")
    return out


def render(plan: Plan) -> State:
    st = State()
    st.sets.update(MAPS)
    for m in MAPS:
        st.elements[m] = {}
    used_peers: set[str] = set()
    used_named: set[str] = set()
    for key in sorted(plan.pods):
        pp = plan.pods[key]
        for direction, allows, prefix, addr in (("egress", pp.egress, "egr", "daddr"),
                                                ("ingress", pp.ingress, "ing", "saddr")):
            if allows is None:
                continue
            chain = pod_chain(prefix, key)
            rules: list[str] = []
            for a in allows:
                rules.extend(_allow_rules(a, addr))
                if a.peer_set:
                    used_peers.add(a.peer_set)
                if a.named_set:
                    used_named.add(a.named_set)
            rules.append("drop")
            st.chains[chain] = tuple(dict.fromkeys(rules))
            st.comments[chain] = _comment(f"{direction} of pod {key}")
            for ip in pp.ips:
                m = f"{direction}-pods6" if family(ip) == 6 else f"{direction}-pods"
                st.elements[m][ip] = f"jump {chain}"
    for name in sorted(used_peers):
        ips = plan.peer_sets.get(name, set())
        for fam, typ in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            st.sets[f"{name}-{fam}"] = f"{{ type {typ} ; }}"
            st.elements[f"{name}-{fam}"] = {ip: None for ip in sorted(ips) if family(ip) == fam}
    for name in sorted(used_named):
        elems = plan.named_sets.get(name, set())
        for fam, typ in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            st.sets[f"{name}-{fam}"] = f"{{ type {typ} . inet_proto . inet_service ; }}"
            st.elements[f"{name}-{fam}"] = {f"{ip} . {proto} . {port}": None
                                             for ip, proto, port in sorted(elems) if family(ip) == fam}
    return st


def skeleton() -> list[str]:
    """The base chains (``add`` commands; the maps are in every :class:`State`)."""
    t = f"inet {TABLE}"
    out = [f'add table {t} {{ comment "k8py NetworkPolicy rules, owned by k8py network-policy" ; }}']
    w = out.append
    for name, hook in (("forward", "forward"), ("input", "input")):
        w(f"add chain {t} {name} {{ type filter hook {hook} priority filter ; policy accept ; }}")
        w(f"add rule {t} {name} ct state established,related accept")
        w(f"add rule {t} {name} icmpv6 type {ND_TYPES} accept")
        w(f"add rule {t} {name} ip saddr vmap @egress-pods")
        w(f"add rule {t} {name} ip6 saddr vmap @egress-pods6")
    w(f"add rule {t} forward ip daddr vmap @ingress-pods")
    w(f"add rule {t} forward ip6 daddr vmap @ingress-pods6")
    return out


def _element(name: str, key: str, verdict: str | None) -> str:
    return f"add element inet {TABLE} {name} {{ {key} : {verdict} }}" if verdict is not None else \
        f"add element inet {TABLE} {name} {{ {key} }}"


def _add_chain(name: str, st: State) -> str:
    c = st.comments.get(name)
    return f"add chain inet {TABLE} {name} {{ comment {c} ; }}" if c else f"add chain inet {TABLE} {name}"


def full_sync(st: State) -> str:
    """The whole table, replacing what was there (all or nothing)."""
    t = f"inet {TABLE}"
    # the maps first: the base chains refer to them
    out = [f"add table {t}", f"delete table {t}", *skeleton()[:1]]
    out.extend(f"add map {t} {m} {decl}" if m in MAPS else f"add set {t} {m} {decl}" for m, decl in st.sets.items())
    out.extend(skeleton()[1:])
    out.extend(_add_chain(c, st) for c in st.chains)
    for c, rules in st.chains.items():
        out.extend(f"add rule {t} {c} {r}" for r in rules)
    for m, elems in st.elements.items():
        out.extend(_element(m, k, v) for k, v in elems.items())
    return "\n".join(out) + "\n"


def partial_sync(old: State, new: State) -> str:
    """Only what changed from ``old`` to ``new``, in an order nft accepts in one transaction:
    elements that go or change (map entries first, so no chain is referred to when it goes),
    changed or removed chains flushed, then chains and sets that go deleted, new sets and chains
    added, changed chains refilled, new elements added. "" when nothing changed."""
    t = f"inet {TABLE}"
    out: list[str] = []
    w = out.append
    gone_sets = [s for s in old.sets if s not in MAPS and new.sets.get(s) != old.sets[s]]
    for m, elems in old.elements.items():
        if m in gone_sets:
            continue  # the set itself goes, with its elements
        want = new.elements.get(m, {})
        for k, v in elems.items():
            if k not in want or want[k] != v:
                w(f"delete element {t} {m} {{ {k} }}")
    changed = [c for c in old.chains if new.chains.get(c) != old.chains[c]]
    for c in changed:
        w(f"flush chain {t} {c}")
    for c in changed:
        if c not in new.chains:
            w(f"delete chain {t} {c}")
    for s in gone_sets:
        w(f"delete set {t} {s}")
    for s, decl in new.sets.items():
        if s not in MAPS and old.sets.get(s) != decl:
            w(f"add set {t} {s} {decl}")
    for c in new.chains:
        if c not in old.chains:
            w(_add_chain(c, new))
    for c, rules in new.chains.items():
        if old.chains.get(c) != rules:
            out.extend(f"add rule {t} {c} {r}" for r in rules)
    for m, elems in new.elements.items():
        have = {} if m in gone_sets else old.elements.get(m, {})
        for k, v in elems.items():
            if k not in have or have[k] != v:
                w(_element(m, k, v))
    return "\n".join(out) + "\n" if out else ""


def cleanup() -> str:
    """What a clean stop (and ``k8py killall``) runs: our table goes, nothing else is touched."""
    return f"add table inet {TABLE}\ndelete table inet {TABLE}\n"


def describe(st: State) -> Mapping[str, int]:
    """Counts for the ready line and the logs."""
    return {"pods": len(st.elements["ingress-pods"]) + len(st.elements["ingress-pods6"]) +
            len(st.elements["egress-pods"]) + len(st.elements["egress-pods6"]), "chains": len(st.chains),
            "sets": len(st.sets) - len(MAPS)}
