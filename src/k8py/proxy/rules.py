"""The service proxy's nftables ruleset, written as one ``nft -f`` transaction (kube-proxy's
nftables mode, ``pkg/proxy/nftables``, followed for structure and behaviour):

- one table of our own, ``inet k8py-proxy``, for IPv4 and IPv6 at once; nothing outside it is
  touched, and a clean shutdown deletes it;
- verdict maps from (destination address, protocol, port) to a per-Service-port chain: the
  ClusterIPs (``cluster-ips``/``cluster-ips6``), external and load-balancer IPs (same maps, to the
  *external* chain), and NodePorts on the node's own addresses (``node-ports``);
- a Service chain picks an endpoint at random with ``numgen random mod N`` (even balancing), after
  ``sessionAffinity: ClientIP`` pinning (a dynamic set per endpoint with the affinity timeout);
- an endpoint chain DNATs to the pod, marking hairpin traffic (a pod reaching itself through its
  Service) for masquerade;
- traffic from outside the pod network to a ClusterIP, and NodePort / external traffic without
  ``externalTrafficPolicy: Local``, is marked and masqueraded in postrouting;
- a Service port with no usable endpoint is *rejected* at once (sets ``no-endpoint-services*``
  and ``no-endpoint-nodeports``, checked in the filter hooks before anything else), instead of
  leaving connections to hang.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from k8py.proxy.model import Endpoint, ServicePort, family, in_family, usable_endpoints

TABLE = "k8py-proxy"
MASQ_MARK = "0x4000"  # kube-proxy's masquerade bit


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    node_name: str
    cluster_cidrs: tuple[str, ...] = ()  # the pod network(s): traffic from elsewhere to a ClusterIP is masqueraded
    node_port_addresses: tuple[str, ...] = ()  # () -> every local address but loopback


def _hash(*parts: object) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:16].upper()


def service_chain(sp: ServicePort) -> str:
    return f"svc-{_hash(sp.namespace, sp.name, sp.protocol, sp.port_name)}"


def external_chain(sp: ServicePort) -> str:
    return f"ext-{_hash(sp.namespace, sp.name, sp.protocol, sp.port_name)}"


def endpoint_chain(sp: ServicePort, ep: Endpoint) -> str:
    return f"sep-{_hash(sp.namespace, sp.name, sp.protocol, sp.port_name, ep.ip, ep.port)}"


def _addr(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _comment(text: str) -> str:
    return '"' + text.replace('"', "'")[:120] + '"'


@dataclass(slots=True)
class Unit:
    """The nftables objects of one Service port: its chains (name -> rules, in order), its affinity
    sets (name -> declaration) and its elements in the shared maps and sets ((map, key) -> verdict,
    or None for a set element)."""

    chains: dict[str, list[str]] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)
    elements: dict[tuple[str, str], str | None] = field(default_factory=dict)
    # what the rules were made from: the Service port and the addresses its traffic may reach
    # (for the stale-conntrack cleanup of UDP, k8py.proxy.conntrack)
    service: ServicePort | None = None
    endpoints: frozenset[str] = frozenset()


def skeleton(cfg: ProxyConfig) -> list[str]:
    """The fixed part of the table: maps, sets, the hook chains (``add`` commands, prefix-less)."""
    t = f"inet {TABLE}"
    out: list[str] = []
    w = out.append
    w(f"add table {t} {{ comment \"k8py service proxy: rules for Services, owned by k8py proxy\" ; }}")
    w(f"add map {t} cluster-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}")
    w(f"add map {t} cluster-ips6 {{ type ipv6_addr . inet_proto . inet_service : verdict ; }}")
    w(f"add map {t} node-ports {{ type inet_proto . inet_service : verdict ; }}")
    w(f"add set {t} no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service ; }}")
    w(f"add set {t} no-endpoint-services6 {{ type ipv6_addr . inet_proto . inet_service ; }}")
    w(f"add set {t} no-endpoint-nodeports {{ type inet_proto . inet_service ; }}")
    w(f"add set {t} node-port-addresses {{ type ipv4_addr ; flags interval ; }}")
    w(f"add set {t} node-port-addresses6 {{ type ipv6_addr ; flags interval ; }}")
    w(f"add chain {t} mark-for-masquerade")
    w(f"add rule {t} mark-for-masquerade meta mark set meta mark or {MASQ_MARK}")
    w(f"add chain {t} masquerading")
    w(f"add rule {t} masquerading meta mark and {MASQ_MARK} == 0 return")
    w(f"add rule {t} masquerading meta mark set meta mark xor {MASQ_MARK}")
    w(f"add rule {t} masquerading masquerade fully-random")
    w(f"add chain {t} services")
    w(f"add rule {t} services ip daddr . meta l4proto . th dport vmap @cluster-ips")
    w(f"add rule {t} services ip6 daddr . meta l4proto . th dport vmap @cluster-ips6")
    np_match = ("ip daddr @node-port-addresses" if cfg.node_port_addresses
                else "fib daddr type local ip daddr != 127.0.0.0/8")
    np_match6 = ("ip6 daddr @node-port-addresses6" if cfg.node_port_addresses
                 else "fib daddr type local ip6 daddr != ::1")
    w(f"add rule {t} services {np_match} meta l4proto . th dport vmap @node-ports")
    w(f"add rule {t} services {np_match6} meta l4proto . th dport vmap @node-ports")
    w(f"add chain {t} endpoints-check")
    w(f"add rule {t} endpoints-check ip daddr . meta l4proto . th dport @no-endpoint-services reject")
    w(f"add rule {t} endpoints-check ip6 daddr . meta l4proto . th dport @no-endpoint-services6 reject")
    w(f"add rule {t} endpoints-check {np_match} meta l4proto . th dport @no-endpoint-nodeports reject")
    w(f"add rule {t} endpoints-check {np_match6} meta l4proto . th dport @no-endpoint-nodeports reject")
    for name, hook, prio in (("nat-prerouting", "prerouting", "dstnat"), ("nat-output", "output", "-100")):
        w(f"add chain {t} {name} {{ type nat hook {hook} priority {prio} ; policy accept ; }}")
        w(f"add rule {t} {name} jump services")
    w(f"add chain {t} nat-postrouting {{ type nat hook postrouting priority srcnat ; policy accept ; }}")
    w(f"add rule {t} nat-postrouting jump masquerading")
    for name, hook in (("filter-input", "input"), ("filter-forward", "forward"), ("filter-output", "output")):
        w(f"add chain {t} {name} {{ type filter hook {hook} priority -110 ; policy accept ; }}")
        w(f"add rule {t} {name} ct state new jump endpoints-check")
    a4 = [a for a in cfg.node_port_addresses if family(a.split("/")[0]) == 4]
    a6 = [a for a in cfg.node_port_addresses if family(a.split("/")[0]) == 6]
    if a4:
        w(f"add element {t} node-port-addresses {{ {', '.join(a4)} }}")
    if a6:
        w(f"add element {t} node-port-addresses6 {{ {', '.join(a6)} }}")
    return out


def units(services: Sequence[ServicePort], endpoints: Mapping[tuple[str, str, str, str], list[Endpoint]],
          cfg: ProxyConfig) -> dict[str, Unit]:
    """Every Service port's objects, by ``namespace/name/protocol/port-name``.

    ``endpoints`` is keyed by (namespace, service name, port name, protocol)."""
    v4 = [c for c in cfg.cluster_cidrs if family(c.split("/")[0]) == 4]
    v6 = [c for c in cfg.cluster_cidrs if family(c.split("/")[0]) == 6]
    out: dict[str, Unit] = {}
    for sp in services:
        eps = endpoints.get((sp.namespace, sp.name, sp.port_name, sp.protocol), [])
        out[f"{sp.namespace}/{sp.name}/{sp.protocol}/{sp.port_name}"] = _service_port(
            sp, usable_endpoints(sp, eps, cfg.node_name, external=False),
            usable_endpoints(sp, eps, cfg.node_name, external=True), v4, v6)
    return out


def _add_chain(t: str, name: str, u: Unit) -> str:
    comment = u.comments.get(name)
    return f"add chain {t} {name} {{ comment {comment} ; }}" if comment else f"add chain {t} {name}"


def _element(name: str, key: str, verdict: str | None) -> str:
    return f"{name} {{ {key} : {verdict} }}" if verdict is not None else f"{name} {{ {key} }}"


def full_sync(cfg: ProxyConfig, new: Mapping[str, Unit]) -> str:
    """The whole table, replacing what was there (``nft -f`` input: all or nothing)."""
    t = f"inet {TABLE}"
    out = [f"add table {t}", f"delete table {t}", *skeleton(cfg)]
    w = out.append
    for key in sorted(new):
        u = new[key]
        for name, decl in u.sets.items():
            w(f"add set {t} {name} {decl}")
        for name in u.chains:
            w(_add_chain(t, name, u))
        for name, rules in u.chains.items():
            out.extend(f"add rule {t} {name} {r}" for r in rules)
        out.extend(f"add element {t} {_element(m, k, v)}" for (m, k), v in u.elements.items())
    return "\n".join(out) + "\n"


def partial_sync(old: Mapping[str, Unit], new: Mapping[str, Unit]) -> str:
    """Only what changed since ``old`` was applied, in an order nft accepts in one transaction:
    elements that go, chains of changed Service ports flushed, chains and sets that go deleted,
    new chains and sets added and every changed chain refilled, then the new elements. Affinity
    sets that stay are kept (with their entries). "" when nothing changed."""
    t = f"inet {TABLE}"
    changed = [k for k in new if k in old and new[k] != old[k]]
    added = [k for k in new if k not in old]
    removed = [k for k in old if k not in new]
    if not (changed or added or removed):
        return ""
    old_el: dict[tuple[str, str], str | None] = {}
    new_el: dict[tuple[str, str], str | None] = {}
    for k in (*changed, *removed):
        old_el.update(old[k].elements)
    for k in (*changed, *added):
        new_el.update(new[k].elements)
    out: list[str] = []
    w = out.append
    for (m, key), v in old_el.items():
        if (m, key) not in new_el or new_el[(m, key)] != v:
            w(f"delete element {t} {m} {{ {key} }}")
    for k in (*changed, *removed):
        for name in old[k].chains:
            w(f"flush chain {t} {name}")
    for k in (*changed, *removed):
        keep_chains = new[k].chains if k in new else {}
        keep_sets = new[k].sets if k in new else {}
        for name in old[k].chains:
            if name not in keep_chains:
                w(f"delete chain {t} {name}")
        for name, decl in old[k].sets.items():
            if keep_sets.get(name) != decl:
                w(f"delete set {t} {name}")
    for k in (*changed, *added):
        u = new[k]
        before = old[k] if k in old else Unit()
        for name, decl in u.sets.items():
            if before.sets.get(name) != decl:
                w(f"add set {t} {name} {decl}")
        for name in u.chains:
            if name not in before.chains:
                w(_add_chain(t, name, u))
        for name, rules in u.chains.items():
            out.extend(f"add rule {t} {name} {r}" for r in rules)
    for (m, key), v in new_el.items():
        if (m, key) not in old_el or old_el[(m, key)] != v:
            w(f"add element {t} {_element(m, key, v)}")
    return "\n".join(out) + "\n"


def ruleset(services: Sequence[ServicePort], endpoints: Mapping[tuple[str, str, str, str], list[Endpoint]],
            cfg: ProxyConfig) -> str:
    """The whole table for these Services (a full sync)."""
    return full_sync(cfg, units(services, endpoints, cfg))


def _pick(u: Unit, chain: str, sp: ServicePort, eps: Sequence[Endpoint]) -> None:
    """The rules of a chain that sends a connection to one of ``eps`` (affinity first, then at random)."""
    rules = u.chains.setdefault(chain, [])
    if sp.affinity_timeout:
        for ep in eps:
            sel = "ip6 saddr" if family(ep.ip) == 6 else "ip saddr"
            rules.append(f"{sel} @{endpoint_chain(sp, ep)}-affinity goto {endpoint_chain(sp, ep)}")
    if len(eps) == 1:
        rules.append(f"goto {endpoint_chain(sp, eps[0])}")
    else:
        vmap = ", ".join(f"{i} : goto {endpoint_chain(sp, ep)}" for i, ep in enumerate(eps))
        rules.append(f"numgen random mod {len(eps)} vmap {{ {vmap} }}")


def _service_port(sp: ServicePort, cluster_eps: Sequence[Endpoint], external_eps: Sequence[Endpoint],
                  v4: list[str], v6: list[str]) -> Unit:
    u = Unit(service=sp, endpoints=frozenset(e.ip for e in (*cluster_eps, *external_eps)))
    svc, ext = service_chain(sp), external_chain(sp)
    proto, port = sp.protocol, sp.port
    has_external = bool(sp.node_port or sp.external_ips)
    # endpoint chains (both sets: a Local external policy may use endpoints the cluster set has too)
    for ep in {e.ip + ":" + str(e.port): e for e in (*cluster_eps, *external_eps)}.values():
        chain = endpoint_chain(sp, ep)
        nf = "ip6" if family(ep.ip) == 6 else "ip"
        u.comments[chain] = _comment(sp.key + " -> " + ep.ip)
        rules = u.chains.setdefault(chain, [])
        rules.append(f"{nf} saddr {ep.ip} jump mark-for-masquerade")  # hairpin
        if sp.affinity_timeout:
            u.sets[f"{chain}-affinity"] = (f"{{ type {'ipv6_addr' if nf == 'ip6' else 'ipv4_addr'} ; "
                                           f"flags dynamic,timeout ; timeout {sp.affinity_timeout}s ; }}")
            rules.append(f"update @{chain}-affinity {{ {nf} saddr }}")
        rules.append(f"meta l4proto {proto} dnat {nf} to {_addr(ep.ip)}:{ep.port}")
    # the cluster chain
    if cluster_eps:
        u.comments[svc] = _comment(sp.key)
        rules = u.chains.setdefault(svc, [])
        for fam_ips, cidrs, sel in ((in_family(sp.cluster_ips, 4), v4, "ip"), (in_family(sp.cluster_ips, 6), v6, "ip6")):
            for ip in fam_ips:
                if cidrs:  # from outside the pod network (kube-proxy's masqueradeAll: false)
                    rules.append(f"{sel} daddr {ip} {sel} saddr != {{ {', '.join(cidrs)} }} jump mark-for-masquerade")
        fams = {family(e.ip) for e in cluster_eps}
        for fam in sorted(fams):
            chosen = [e for e in cluster_eps if family(e.ip) == fam]
            if len(fams) > 1:
                sub = f"{svc}-v{fam}"
                _pick(u, sub, sp, chosen)
                rules.append(f"meta nfproto {'ipv6' if fam == 6 else 'ipv4'} goto {sub}")
            else:
                _pick(u, svc, sp, chosen)
    # the external chain (NodePorts, external and load-balancer IPs)
    if has_external and external_eps:
        u.comments[ext] = _comment(sp.key + " external")
        rules = u.chains.setdefault(ext, [])
        if sp.external_local:
            # pods and the node itself may use any endpoint (kube: short-circuit to the cluster chain)
            for sel, cidrs in (("ip", v4), ("ip6", v6)):
                if cidrs and cluster_eps:
                    rules.append(f"{sel} saddr {{ {', '.join(cidrs)} }} goto {svc}")
            if cluster_eps:
                rules.append("fib saddr type local jump mark-for-masquerade")
                rules.append(f"fib saddr type local goto {svc}")
            local = f"{ext}-local"
            _pick(u, local, sp, external_eps)
            rules.append(f"goto {local}")
        else:
            rules.append("jump mark-for-masquerade")
            rules.append(f"goto {svc}")
    # map elements
    for ip in sp.cluster_ips:
        m, s = ("cluster-ips6", "no-endpoint-services6") if family(ip) == 6 else ("cluster-ips", "no-endpoint-services")
        key = f"{ip} . {proto} . {port}"
        if cluster_eps and any(family(e.ip) == family(ip) for e in cluster_eps):
            u.elements[(m, key)] = f"goto {svc}"
        else:
            u.elements[(s, key)] = None
    for ip in sp.external_ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            continue
        m, s = ("cluster-ips6", "no-endpoint-services6") if family(ip) == 6 else ("cluster-ips", "no-endpoint-services")
        key = f"{ip} . {proto} . {port}"
        if external_eps:
            u.elements[(m, key)] = f"goto {ext}"
        else:
            u.elements[(s, key)] = None
    if sp.node_port:
        key = f"{proto} . {sp.node_port}"
        if external_eps:
            u.elements[("node-ports", key)] = f"goto {ext}"
        else:
            u.elements[("no-endpoint-nodeports", key)] = None
    return u


def cleanup() -> str:
    """What a clean shutdown runs: our table goes, nothing else is touched."""
    return f"add table inet {TABLE}\ndelete table inet {TABLE}\n"


def merge_endpoints(slices: Iterable[tuple[str, str, dict[tuple[str, str], list[Endpoint]]]]
                    ) -> dict[tuple[str, str, str, str], list[Endpoint]]:
    """(namespace, service, slice endpoints by port) -> endpoints by (ns, service, port name, protocol),
    one per address and port (an address in two slices counts once)."""
    out: dict[tuple[str, str, str, str], dict[tuple[str, int], Endpoint]] = {}
    for ns, svc, by_port in slices:
        for (pname, proto), eps in by_port.items():
            bucket = out.setdefault((ns, svc, pname, proto), {})
            for e in eps:
                bucket.setdefault((e.ip, e.port), e)
    return {k: sorted(v.values(), key=lambda e: (e.ip, e.port)) for k, v in out.items()}
