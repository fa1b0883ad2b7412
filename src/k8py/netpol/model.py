"""NetworkPolicy semantics, pure (nothing here does I/O): which traffic each pod of this node
allows, from the NetworkPolicies, Pods and Namespaces (the API reference's
``networking/v1`` types and https://kubernetes.io/docs/concepts/services-networking/network-policies/).

- A pod is *isolated for ingress* (egress) when some policy in its namespace selects it
  (``spec.podSelector``) and lists ``Ingress`` (``Egress``) in ``policyTypes``; without
  ``policyTypes`` a policy affects Ingress always, and Egress when it has egress rules.
- An isolated pod allows what at least one rule of the policies selecting it allows (policies are
  additive). A rule allows traffic that matches one of its peers (``from``/``to``; empty: every
  peer) *and* one of its ports (empty: every port).
- Peers: ``podSelector`` alone selects pods of the policy's namespace; ``namespaceSelector``
  alone every pod of the selected namespaces; both together the pods matching the pod selector
  in those namespaces (AND); ``ipBlock`` a CIDR minus its ``except`` CIDRs.
- Ports: a protocol (default TCP) with a number, a number to ``endPort``, no port (all ports of the
  protocol), or a *named* port, resolved against the container ports of the destination pod:
  the isolated pod itself for ingress, the peer pod for egress (so egress named ports become a set
  of (peer address, protocol, port)).
- Traffic from the pod's own node is always allowed (the API's "OR if the traffic source is the
  pod's local node": kubelet's probes); the rule writer (:mod:`k8py.netpol.rules`) does that.
- Pods on the host network, and finished pods (Succeeded, Failed), are neither selected nor peers:
  their addresses are the node's, or free to be given to another pod.

:func:`evaluate` returns a :class:`Plan`: per rule the addresses of its selected peers (sets that
a pod coming or going changes by one element), and per isolated pod of this node its allowances.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from k8py.api.selectors import LabelSelector, SelectorError, from_label_selector

Obj = dict[str, Any]
NS_NAME_LABEL = "kubernetes.io/metadata.name"
ALL_PORTS = (0, 65535)


def family(ip: str) -> int:
    return 6 if ":" in ip else 4


@dataclass(frozen=True, slots=True)
class PodInfo:
    namespace: str
    name: str
    labels: Mapping[str, str]
    ips: tuple[str, ...]
    node_name: str
    named_ports: Mapping[tuple[str, str], int]  # (name, protocol) -> container port

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_info(pod: Obj) -> PodInfo | None:
    """What policies need of a pod; None for pods policies do not apply to (no address yet, on the
    host network, finished)."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return None
    ips = [p.get("ip") for p in status.get("podIPs") or () if isinstance(p, dict)] or [status.get("podIP")]
    good = tuple(dict.fromkeys(ip for ip in ips if isinstance(ip, str) and _is_ip(ip)))
    if not good:
        return None
    ports: dict[tuple[str, str], int] = {}
    sidecars = [c for c in spec.get("initContainers") or () if isinstance(c, dict) and c.get("restartPolicy") == "Always"]
    for c in (*(spec.get("containers") or ()), *sidecars):
        for p in (c.get("ports") or ()) if isinstance(c, dict) else ():
            if isinstance(p, dict) and p.get("name") and isinstance(p.get("containerPort"), int):
                ports.setdefault((str(p["name"]), str(p.get("protocol") or "TCP").upper()), p["containerPort"])
    return PodInfo(str(meta.get("namespace") or ""), str(meta.get("name") or ""), dict(meta.get("labels") or {}),
                   good, str(spec.get("nodeName") or ""), ports)


# The cluster DNS runs in k8py server, not in pods; the EndpointSlice it publishes for the kube-dns
# Service (managed by k8py-dns) stands for CoreDNS's pods: kube-system pods labelled
# k8s-app=kube-dns, as kubeadm and k3s label them, so that the usual rule that allows DNS
# (to: namespaceSelector kube-system + podSelector k8s-app=kube-dns, port 53) selects it.
DNS_SLICE_SELECTOR = "endpointslice.kubernetes.io/managed-by=k8py-dns,kubernetes.io/service-name=kube-dns"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}


def dns_stand_in(sl: Obj) -> PodInfo | None:
    """The cluster DNS's EndpointSlice as the pod it stands for (no node: never isolated itself)."""
    meta = sl.get("metadata") or {}
    ips = tuple(dict.fromkeys(
        str(a) for ep in sl.get("endpoints") or () if isinstance(ep, dict)
        and (ep.get("conditions") or {}).get("ready") is not False for a in ep.get("addresses") or ()
        if isinstance(a, str) and _is_ip(a)))
    if not ips:
        return None
    ports = {(str(p.get("name") or ""), str(p.get("protocol") or "TCP").upper()): p["port"]
             for p in sl.get("ports") or () if isinstance(p, dict) and isinstance(p.get("port"), int) and p.get("name")}
    return PodInfo(str(meta.get("namespace") or "kube-system"), f"{meta.get('name', '')} (cluster DNS)",
                   DNS_POD_LABELS, ips, "", ports)


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


# -- policies, compiled -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Peer:
    """One ``from``/``to`` item. ``block`` for an ipBlock (CIDRs left after ``except``), else
    selectors: ``namespaces`` None means the policy's own namespace."""

    pods: LabelSelector | None = None
    namespaces: LabelSelector | None = None
    block: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Port:
    protocol: str  # TCP, UDP, SCTP
    lo: int = 0  # 0 with hi 65535: every port
    hi: int = 65535
    name: str = ""  # a named port (lo, hi unused)


@dataclass(frozen=True, slots=True)
class Rule:
    peers: tuple[Peer, ...] | None  # None: every peer
    ports: tuple[Port, ...] | None  # None: every port


@dataclass(frozen=True, slots=True)
class Policy:
    namespace: str
    name: str
    selector: LabelSelector
    ingress: tuple[Rule, ...] | None  # None: not an Ingress policy
    egress: tuple[Rule, ...] | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def block_ranges(cidr: str, excepts: Iterable[str] = ()) -> tuple[str, ...]:
    """A CIDR minus its exceptions, as the fewest CIDRs."""
    net = ipaddress.ip_network(cidr, strict=False)
    parts: list[Any] = [net]
    for e in excepts:
        ex: Any = ipaddress.ip_network(e, strict=False)
        if ex.version != net.version:
            continue
        out: list[Any] = []
        for p in parts:
            if ex.supernet_of(p):
                continue
            if p.supernet_of(ex):
                out.extend(p.address_exclude(ex))
            else:
                out.append(p)
        parts = out
    return tuple(str(n) for n in ipaddress.collapse_addresses(sorted(parts)))


@functools.lru_cache(maxsize=4096)
def _network(cidr: str) -> Any:
    return ipaddress.ip_network(cidr)


def _selector(ls: Any) -> LabelSelector | None:
    return from_label_selector(ls) if isinstance(ls, dict) else None


def _rules(items: Any, peer_key: str) -> tuple[Rule, ...]:
    out = []
    for r in items or ():
        if not isinstance(r, dict):
            continue
        peers: list[Peer] = []
        for p in r.get(peer_key) or ():
            if not isinstance(p, dict):
                continue
            blk = p.get("ipBlock")
            if isinstance(blk, dict):
                peers.append(Peer(block=block_ranges(str(blk.get("cidr")), blk.get("except") or ())))
            else:
                peers.append(Peer(pods=_selector(p.get("podSelector")), namespaces=_selector(p.get("namespaceSelector"))))
        ports: list[Port] = []
        for p in r.get("ports") or ():
            if not isinstance(p, dict):
                continue
            proto = str(p.get("protocol") or "TCP").upper()
            port = p.get("port")
            if isinstance(port, str) and not port.isdigit():
                ports.append(Port(proto, name=port))
            elif port is None:
                ports.append(Port(proto))
            else:
                lo = int(port)
                ports.append(Port(proto, lo, int(p.get("endPort") or lo)))
        out.append(Rule(tuple(peers) if peers else None, tuple(ports) if ports else None))
    return tuple(out)


def compile_policy(np: Obj) -> Policy:
    """A NetworkPolicy as :class:`Policy` (defaults as the API server fills them). Raises
    ValueError (SelectorError) for what validation would have refused."""
    meta, spec = np.get("metadata") or {}, np.get("spec") or {}
    types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if spec.get("egress") else []))
    return Policy(str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                  from_label_selector(spec.get("podSelector") or {}),
                  _rules(spec.get("ingress"), "from") if "Ingress" in types else None,
                  _rules(spec.get("egress"), "to") if "Egress" in types else None)


# -- the plan -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allow:
    """Traffic one rule allows for one pod. ``peer_set``: the name of the rule's selected-peer
    address set ("" when the rule has no selector peers); ``blocks``: CIDRs; ``all_peers``: any
    address. ``ports``: (protocol, lo, hi) numeric ranges (None: every port; () with no
    ``named_set``: nothing). ``named_set``: the rule's (address, protocol, port) set for egress
    named ports, which already holds only the rule's peers."""

    all_peers: bool
    peer_set: str
    blocks: tuple[str, ...]
    ports: tuple[tuple[str, int, int], ...] | None
    named_set: str = ""


@dataclass(slots=True)
class PodPlan:
    ips: tuple[str, ...]
    ingress: list[Allow] | None = None  # None: not isolated
    egress: list[Allow] | None = None


@dataclass(slots=True)
class Plan:
    peer_sets: dict[str, set[str]] = field(default_factory=dict)  # name -> addresses (both families)
    named_sets: dict[str, set[tuple[str, str, int]]] = field(default_factory=dict)  # -> (addr, proto, port)
    pods: dict[str, PodPlan] = field(default_factory=dict)  # "ns/name" of this node's isolated pods


def rule_id(policy: Policy, direction: str, index: int) -> str:
    return hashlib.sha256(f"{policy.key}\x00{direction}\x00{index}".encode()).hexdigest()[:12]


class Cluster:
    """Indexes of pods and namespaces for selector evaluation."""

    def __init__(self, pods: Iterable[PodInfo], namespaces: Mapping[str, Mapping[str, str]]) -> None:
        self.by_ns: dict[str, list[PodInfo]] = {}
        for p in pods:
            self.by_ns.setdefault(p.namespace, []).append(p)
        self.ns_labels = dict(namespaces)

    def labels_of(self, ns: str) -> Mapping[str, str]:
        return self.ns_labels.get(ns) or {NS_NAME_LABEL: ns}

    def all_pods(self) -> Iterable[PodInfo]:
        for pods in self.by_ns.values():
            yield from pods

    def selected(self, policy_ns: str, peer: Peer) -> Iterable[PodInfo]:
        if peer.namespaces is None:
            namespaces: Iterable[str] = (policy_ns,)
        else:
            namespaces = [ns for ns in set(self.by_ns) if peer.namespaces.matches(self.labels_of(ns))]
        pod_sel = peer.pods
        for ns in namespaces:
            for p in self.by_ns.get(ns, ()):
                if pod_sel is None or pod_sel.matches(p.labels):
                    yield p


def _in_blocks(ip: str, blocks: Sequence[str]) -> bool:
    a = ipaddress.ip_address(ip)
    return any(a.version == _network(b).version and a in _network(b) for b in blocks)


def evaluate(policies: Sequence[Policy], pods: Sequence[PodInfo], namespaces: Mapping[str, Mapping[str, str]],
             node_name: str) -> Plan:
    """What this node must enforce (see the module docstring)."""
    cluster = Cluster(pods, namespaces)
    plan = Plan()
    local = {p.key: p for p in pods if p.node_name and p.node_name == node_name}
    for pol in sorted(policies, key=lambda p: p.key):
        targets = [p for p in cluster.by_ns.get(pol.namespace, ()) if p.key in local and pol.selector.matches(p.labels)]
        if not targets:
            continue
        for direction, rules in (("ingress", pol.ingress), ("egress", pol.egress)):
            if rules is None:
                continue
            for pod in targets:
                pp = plan.pods.setdefault(pod.key, PodPlan(pod.ips))
                if getattr(pp, direction) is None:
                    setattr(pp, direction, [])
            for i, rule in enumerate(rules):
                rid = rule_id(pol, direction, i)
                selector_peers = [p for p in rule.peers or () if p.block is None]
                blocks = tuple(b for p in rule.peers or () if p.block is not None for b in p.block)
                peer_set = ""
                if selector_peers:
                    peer_set = f"peers-{rid}"
                    plan.peer_sets[peer_set] = {ip for peer in selector_peers
                                                for p in cluster.selected(pol.namespace, peer) for ip in p.ips}
                named = [p for p in rule.ports or () if p.name]
                numeric = tuple((p.protocol.lower(), p.lo, p.hi) for p in rule.ports or () if not p.name)
                named_set = ""
                if direction == "egress" and named:
                    named_set = f"named-{rid}"
                    addrs: dict[str, tuple[PodInfo, set[str]]] = {}  # the rule's peer pods, their addresses
                    if rule.peers is None:
                        addrs = {p.key: (p, set(p.ips)) for p in cluster.all_pods()}
                    else:
                        for peer in selector_peers:
                            addrs.update((p.key, (p, set(p.ips))) for p in cluster.selected(pol.namespace, peer))
                        for p in cluster.all_pods() if blocks else ():
                            inside = {ip for ip in p.ips if _in_blocks(ip, blocks)}
                            if inside:
                                addrs.setdefault(p.key, (p, set()))[1].update(inside)
                    elems: set[tuple[str, str, int]] = set()
                    for p, ips in addrs.values():
                        for np_ in named:
                            port = p.named_ports.get((np_.name, np_.protocol))
                            if port is not None:
                                elems.update((ip, np_.protocol.lower(), port) for ip in ips)
                    plan.named_sets[named_set] = elems
                for pod in targets:
                    ports: tuple[tuple[str, int, int], ...] | None
                    if rule.ports is None:
                        ports = None
                    elif direction == "ingress":
                        resolved = [(p.protocol.lower(), port, port) for p in named
                                    if (port := pod.named_ports.get((p.name, p.protocol))) is not None]
                        ports = numeric + tuple(resolved)
                    else:
                        ports = numeric
                    if ports == () and not named_set:
                        continue  # its ports name none of this pod's ports: allows nothing here
                    allows = getattr(plan.pods[pod.key], direction)
                    allows.append(Allow(rule.peers is None, peer_set, blocks, ports, named_set))
    return plan


def compile_policies(objs: Iterable[Obj]) -> tuple[list[Policy], list[str]]:
    """The policies, and a message for each that could not be compiled (skipped)."""
    out, errors = [], []
    for np in objs:
        try:
            out.append(compile_policy(np))
        except (SelectorError, ValueError, TypeError) as e:
            meta = np.get("metadata") or {}
            errors.append(f"NetworkPolicy {meta.get('namespace')}/{meta.get('name')}: {e}")
    return out, errors
