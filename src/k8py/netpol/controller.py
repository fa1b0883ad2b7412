"""The NetworkPolicy agent of a node (``k8py network-policy``; the place of Calico's Felix or
kube-router's policy controller): informers on NetworkPolicies, Pods and Namespaces (and the
cluster DNS's EndpointSlice, which stands for CoreDNS's pods: :func:`~k8py.netpol.model.dns_stand_in`)
keep the ``inet k8py-netpol`` table in step with them.

Run and sync as the service proxy's (:class:`~k8py.nftsync.TableSync`): any change asks for a
sync, which runs at once unless the last one was less than ``min_interval`` ago (then at that
moment: changes in between coalesce). A sync evaluates the whole plan from the caches (pure:
:func:`~k8py.netpol.model.evaluate`) and applies only the difference from what the table holds
(:func:`~k8py.netpol.rules.partial_sync`: a pod coming or going is one set element per rule that
selects it) in one nft transaction; the first sync, every ``full_interval`` and the sync after a
failure rewrite the whole table. A failed transaction leaves the previous rules in force and is
retried with a full sync after a back-off. On a clean stop the table is deleted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from k8py.client.api import Client
from k8py.netpol.model import DNS_SLICE_SELECTOR, compile_policies, dns_stand_in, evaluate, pod_info
from k8py.netpol.rules import State, cleanup, describe, full_sync, partial_sync, render
from k8py.nftables import Nft
from k8py.nftsync import TableSync

log = logging.getLogger(__name__)

Obj = dict[str, Any]
USER = "system:k8py-network-policy"
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def bridge_nf_problem() -> str:
    """Why bridged pod-to-pod traffic on this node would not be filtered, or "" when it will be."""
    try:
        with open(BRIDGE_NF) as f:
            on = f.read().strip() == "1"
    except OSError:
        return ("the br_netfilter module is not loaded: traffic between pods on the same node will not be "
                "filtered (modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1 "
                "net.bridge.bridge-nf-call-ip6tables=1)")
    if not on:
        return ("net.bridge.bridge-nf-call-iptables is 0: traffic between pods on the same node will not be "
                "filtered (sysctl -w net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1)")
    return ""


class PolicyAgent(TableSync[State]):
    what = "network policy"
    log = log

    def __init__(self, client: Client, node_name: str, nft: Nft | None = None, *, min_interval: float = 0.25,
                 full_interval: float = 3600.0, retry_interval: float = 5.0) -> None:
        super().__init__(client, nft, min_interval=min_interval, full_interval=full_interval,
                         retry_interval=retry_interval)
        self.node_name = node_name
        self.policies = self.factory.informer(("networking.k8s.io/v1", "NetworkPolicy"))
        self.pods = self.factory.informer(("v1", "Pod"))
        self.namespaces = self.factory.informer(("v1", "Namespace"))
        self.dns_slices = self.factory.informer(("discovery.k8s.io/v1", "EndpointSlice"), "kube-system",
                                                label_selector=DNS_SLICE_SELECTOR)
        self._reported: set[str] = set()
        for inf in (self.policies, self.namespaces, self.dns_slices):
            inf.add_handler(on_add=self._changed, on_update=lambda _o, _n: self.loop.request(), on_delete=self._changed)
        self.pods.add_handler(on_add=self._changed, on_update=self._pod_updated, on_delete=self._changed)

    def _changed(self, _obj: Obj) -> None:
        self.loop.request()

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        # a pod's status changes often (conditions, restarts): only what policies read wakes the loop
        if _pod_view(old) != _pod_view(new):
            self.loop.request()

    def desired(self) -> State:
        policies, errors = compile_policies(self.policies.list())
        for e in errors:
            if e not in self._reported:
                self._reported.add(e)
                log.error("network policy: cannot enforce %s; it is skipped (its pods are not isolated by it)", e)
        pods = [p for p in (pod_info(o) for o in self.pods.list()) if p is not None]
        pods += [p for p in (dns_stand_in(sl) for sl in self.dns_slices.list()) if p is not None]
        namespaces = {(n.get("metadata") or {}).get("name", ""): (n.get("metadata") or {}).get("labels") or {}
                      for n in self.namespaces.list()}
        return render(evaluate(policies, pods, namespaces, self.node_name))

    def full_script(self, want: State) -> str:
        return full_sync(want)

    def partial_script(self, applied: State, want: State) -> str:
        return partial_sync(applied, want)

    def cleanup_script(self) -> str:
        return cleanup()

    async def run(self, stop: asyncio.Event) -> None:
        problem = bridge_nf_problem()
        if problem:
            log.error("network policy: %s", problem)
        await super().run(stop)

    async def after_sync(self, previous: State | None, want: State) -> None:
        if self.syncs == 0:
            c = describe(want)
            log.info("network policy agent ready on node %s: %d isolated pod addresses, %d chains, %d peer sets",
                     self.node_name, c["pods"], c["chains"], c["sets"])


def _pod_view(pod: Obj) -> tuple[Any, ...]:
    """What of a pod the policies read (labels, node, addresses, ports, phase, host network)."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    return (meta.get("labels"), spec.get("nodeName"), spec.get("hostNetwork"), status.get("phase"),
            status.get("podIP"), status.get("podIPs"),
            [c.get("ports") for c in spec.get("containers") or () if isinstance(c, dict)],
            [c.get("ports") for c in spec.get("initContainers") or () if isinstance(c, dict)])
