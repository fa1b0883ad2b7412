"""Admission on the node, pure: may this node run this pod? kubelet's predicate admit handler
(``pkg/kubelet/lifecycle/predicate.go``) re-checks what the scheduler checked, against what the
node really runs: resources fit, the node's name, selector and required affinity, host ports
free, and ``NoExecute`` taints tolerated. A refused pod fails with kubelet's reason
(``OutOfcpu``, ``NodeAffinity``, ...) and message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from k8py.api.corev1 import (
    find_untolerated_taint,
    int_value,
    milli_value,
    pod_matches_node_selector_and_affinity,
    pod_requests,
)

__all__ = ["admit", "host_ports"]

Obj = dict[str, Any]
_OUT_OF = {"cpu": "OutOfcpu", "memory": "OutOfmemory", "ephemeral-storage": "OutOfephemeral-storage",
           "pods": "OutOfpods"}


def host_ports(pod: Mapping[str, Any]) -> set[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) the pod asks for; hostIP "0.0.0.0" when unset."""
    out = set()
    for c in (pod.get("spec") or {}).get("containers") or ():
        for p in c.get("ports") or ():
            if p.get("hostPort"):
                out.add((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"])))
    return out


def _ports_conflict(want: set[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    for ip, proto, port in want:
        for uip, uproto, uport in used:
            if port == uport and proto == uproto and (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def admit(pod: Mapping[str, Any], node: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """``None`` when the pod may run; else kubelet's (reason, message). ``others`` are the pods
    already admitted to this node and not terminal."""
    others = list(others)
    alloc = (node.get("status") or {}).get("allocatable") or {}
    want = pod_requests(pod.get("spec") or {})
    want["pods"] = 1
    used: dict[str, int] = {"pods": len(others)}
    for o in others:
        for k, v in pod_requests(o.get("spec") or {}).items():
            used[k] = used.get(k, 0) + v
    for res in ("pods", "cpu", "memory", "ephemeral-storage", *sorted(k for k in want if "/" in k)):
        req = want.get(res, 0)
        if req <= 0 or (res not in alloc and res != "pods"):
            if req > 0 and "/" in res:  # an extended resource the node does not have
                return "UnexpectedAdmissionError", f"Allocate failed due to no healthy devices present; cannot allocate unhealthy devices {res}, which is unexpected"
            continue
        cap = milli_value(alloc[res]) if res == "cpu" else int_value(alloc.get(res, 110))
        if req > cap - used.get(res, 0):
            reason = _OUT_OF.get(res, f"OutOf{res}")
            return reason, (f"Node didn't have enough resource: {res}, requested: {req}, "
                            f"used: {used.get(res, 0)}, capacity: {cap}")
    spec = pod.get("spec") or {}
    name = (node.get("metadata") or {}).get("name")
    if not pod_matches_node_selector_and_affinity(spec, node):
        return "NodeAffinity", "Predicate NodeAffinity failed: node(s) didn't match Node selector"
    if spec.get("nodeName") and spec["nodeName"] != name:
        return "NodeName", "Predicate NodeName failed: node(s) didn't match the requested node name"
    mine = host_ports(pod)
    if mine:
        taken: set[tuple[str, str, int]] = set()
        for o in others:
            taken |= host_ports(o)
        if _ports_conflict(mine, taken):
            return "NodePorts", "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"
    taints = (node.get("spec") or {}).get("taints") or ()
    if find_untolerated_taint(taints, spec.get("tolerations") or (), effects=("NoExecute",)) is not None:
        return "TaintToleration", "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate"
    return None
