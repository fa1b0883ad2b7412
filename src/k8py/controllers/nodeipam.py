"""Node IPAM (kube-controller-manager's ``nodeipam`` controller with the range allocator): every
Node gets pod subnets cut from the cluster CIDR.

``cluster_cidr`` (option; kube's ``--cluster-cidr``) is one CIDR, or two comma-separated ones of
different families for dual-stack. Each is split into subnets of ``node_cidr_mask_size`` bits
(option; default 24 for IPv4 and 64 for IPv6; as kube, a single size cannot serve a dual-stack
cluster, whose defaults are then used). A Node without ``spec.podCIDR`` gets one subnet per family,
written with a merge patch as ``spec.podCIDR`` and ``spec.podCIDRs`` (the first cluster CIDR's
family first). A Node that already has subnets keeps them, and they count as taken.

- **restart**: before the first allocation, the subnets of every Node in the cache are marked
  taken, so nothing is handed out twice;
- **delete**: a Node's subnets are freed when it is gone;
- **full**: when a family has no free subnet left, the Node gets an event ``CIDRNotAvailable``
  (kube's ``Node <name> status is now: CIDRNotAvailable``) and is tried again with backoff.

:class:`CIDRSet` is the pure part (no I/O), as kube's ``cidrset``: a ring of subnet indexes
searched from the one after the last allocation.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any

from k8py.client.controller import Controller, Result
from k8py.client.errors import NotFoundError
from k8py.controllers.base import ControllerContext

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

NODE = ("v1", "Node")
DEFAULT_MASK_V4 = 24
DEFAULT_MASK_V6 = 64
# kube's cidrset refuses more than 2^16 subnets per cluster CIDR (clusterSubnetMaxDiff)
MAX_SUBNET_BITS = 16


class CIDRRangeFullError(Exception):
    """No free subnet is left in the cluster CIDR."""


class CIDRConfigError(ValueError):
    """``cluster_cidr`` / ``node_cidr_mask_size`` cannot be used."""


class CIDRSet:
    """The subnets of ``mask`` bits in ``cluster``; which are taken."""

    def __init__(self, cluster: Network, mask: int) -> None:
        if mask < cluster.prefixlen:
            raise CIDRConfigError(f"node CIDR mask size /{mask} is larger than the cluster CIDR {cluster}")
        if mask > cluster.max_prefixlen:
            raise CIDRConfigError(f"node CIDR mask size /{mask} is not valid for {cluster}")
        if mask - cluster.prefixlen > MAX_SUBNET_BITS:
            raise CIDRConfigError(f"subnet mask size too big: {cluster} split into /{mask} subnets gives more than "
                                  f"2^{MAX_SUBNET_BITS} of them")
        self.cluster = cluster
        self.mask = mask
        self.size = 1 << (mask - cluster.prefixlen)
        self._step = 1 << (cluster.max_prefixlen - mask)
        self._base = int(cluster.network_address)
        self._used: set[int] = set()
        self._next = 0

    def __len__(self) -> int:
        return len(self._used)

    def _subnet(self, i: int) -> Network:
        return ipaddress.ip_network((self._base + i * self._step, self.mask))

    def _index(self, net: Network) -> int | None:
        """The index of ``net`` when it is exactly one of our subnets, else None."""
        if net.version != self.cluster.version or net.prefixlen != self.mask or not net.subnet_of(self.cluster):  # type: ignore[arg-type]
            return None
        return (int(net.network_address) - self._base) // self._step

    def allocate_next(self) -> Network:
        for k in range(self.size):
            i = (self._next + k) % self.size
            if i not in self._used:
                self._used.add(i)
                self._next = (i + 1) % self.size
                return self._subnet(i)
        raise CIDRRangeFullError(f"CIDR allocation failed; there are no remaining CIDRs left to allocate in the "
                                 f"accepted range {self.cluster}")

    def occupy(self, net: Network) -> bool:
        """Mark ``net`` taken; False when it is not one of this set's subnets (another range)."""
        i = self._index(net)
        if i is None:
            return False
        self._used.add(i)
        return True

    def release(self, net: Network) -> None:
        i = self._index(net)
        if i is not None:
            self._used.discard(i)

    def is_taken(self, net: Network) -> bool:
        i = self._index(net)
        return i is not None and i in self._used


def parse_cluster_cidrs(cluster_cidr: str, mask: int | None) -> list[CIDRSet]:
    """One :class:`CIDRSet` per family, in the order given. Raises :class:`CIDRConfigError`."""
    parts = [p.strip() for p in cluster_cidr.split(",") if p.strip()]
    if not parts:
        raise CIDRConfigError("cluster CIDR is empty")
    if len(parts) > 2:
        raise CIDRConfigError(f"cluster CIDR {cluster_cidr!r}: at most two CIDRs (one IPv4, one IPv6) may be given")
    nets: list[Network] = []
    for p in parts:
        try:
            nets.append(ipaddress.ip_network(p, strict=False))
        except ValueError as e:
            raise CIDRConfigError(f"cluster CIDR {p!r} is not a CIDR: {e}") from None
    if len(nets) == 2 and nets[0].version == nets[1].version:
        raise CIDRConfigError(f"cluster CIDR {cluster_cidr!r}: a dual-stack cluster needs one IPv4 and one IPv6 CIDR")
    if len(nets) == 2 and mask is not None:
        raise CIDRConfigError("a single node CIDR mask size cannot serve a dual-stack cluster CIDR "
                              "(kube: usage of --node-cidr-mask-size is not allowed with dual-stack clusters)")
    return [CIDRSet(n, mask if mask is not None else (DEFAULT_MASK_V4 if n.version == 4 else DEFAULT_MASK_V6))
            for n in nets]


def node_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = [str(c) for c in spec.get("podCIDRs") or [] if c]
    if not cidrs and spec.get("podCIDR"):
        cidrs = [str(spec["podCIDR"])]
    return cidrs


@dataclass(slots=True)
class _Held:
    uid: str
    cidrs: list[Network] = field(default_factory=list)


class NodeIPAMController:
    NAME = "nodeipam"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        opts = ctx.options
        self.sets: list[CIDRSet] = []
        if opts.cluster_cidr:
            self.sets = parse_cluster_cidrs(opts.cluster_cidr, opts.node_cidr_mask_size)
        else:
            log.info("nodeipam: no cluster CIDR given; nodes get no pod CIDRs")
        self.nodes = ctx.factory.informer(NODE)
        self.held: dict[str, _Held] = {}  # node name -> what this controller counts as that node's
        self._rebuilt = False
        self.controller = Controller("nodeipam", self.reconcile, workers=ctx.options.workers or 2,
                                     clock=ctx.clock)
        self.controller.watch(self.nodes, skip_unchanged=True)

    # -- bookkeeping -------------------------------------------------------------------------------
    def _occupy(self, name: str, uid: str, cidrs: list[str]) -> None:
        held = _Held(uid)
        for c in cidrs:
            try:
                net = ipaddress.ip_network(c, strict=False)
            except ValueError:
                log.warning("nodeipam: node %s has an invalid pod CIDR %r; ignoring it", name, c)
                continue
            if any(s.occupy(net) for s in self.sets):
                held.cidrs.append(net)
            else:
                log.info("nodeipam: node %s has pod CIDR %s outside the cluster CIDR; leaving it alone", name, c)
        self.held[name] = held

    def _release(self, name: str) -> None:
        held = self.held.pop(name, None)
        if held is None:
            return
        for net in held.cidrs:
            for s in self.sets:
                s.release(net)
        if held.cidrs:
            log.info("nodeipam: released %s of node %s", ", ".join(map(str, held.cidrs)), name)

    def rebuild(self) -> None:
        """Count every cached Node's subnets as taken (before the first allocation: a restarted
        controller must not hand out a subnet a Node already has)."""
        for node in self.nodes.list():
            m = node.get("metadata") or {}
            cidrs = node_cidrs(node)
            if cidrs:
                self._occupy(str(m.get("name")), str(m.get("uid") or ""), cidrs)
        self._rebuilt = True

    # -- reconcile ---------------------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result | None:
        if not self.sets:
            return None
        if not self._rebuilt:
            self.rebuild()
        node = self.nodes.get(key)
        if node is None:
            self._release(key)
            return None
        m = node.get("metadata") or {}
        uid = str(m.get("uid") or "")
        held = self.held.get(key)
        if held is not None and held.uid != uid:
            self._release(key)  # deleted and made again under the same name: the old one's go
            held = None
        cidrs = node_cidrs(node)
        if cidrs:
            if held is None or [str(c) for c in held.cidrs] != cidrs:
                self._release(key)
                self._occupy(key, uid, cidrs)
            return None
        if held is not None and held.cidrs:
            # why: we patched this node and the cache has not seen it yet; a second allocation would
            # leak the first (its update event brings the key back)
            return None
        if m.get("deletionTimestamp"):
            return None
        got: list[Network] = []
        try:
            for s in self.sets:
                got.append(s.allocate_next())
        except CIDRRangeFullError as e:
            for net, s in zip(got, self.sets, strict=False):
                s.release(net)
            log.warning("nodeipam: node %s: %s", key, e)
            self.ctx.record(node, "Normal", "CIDRNotAvailable", f"Node {key} status is now: CIDRNotAvailable")
            return Result(requeue=True)
        self.held[key] = _Held(uid, got)
        wanted = [str(n) for n in got]
        try:
            await self.client.patch(NODE, key, {"metadata": {"uid": uid},
                                                "spec": {"podCIDR": wanted[0], "podCIDRs": wanted}}, type="merge")
        except NotFoundError:
            self._release(key)
            return None
        except BaseException:
            # the write did not happen (or we cannot tell): free them and try again
            self._release(key)
            raise
        log.info("nodeipam: node %s gets pod CIDRs %s", key, ", ".join(wanted))
        return None
