"""Admission on the node, pure: may this node run this pod? kubelet's predicate admit handler
(``pkg/kubelet/lifecycle/predicate.go``) re-checks what the scheduler checked, against what the
node really runs, in kubelet's order: the pod's OS, then resources fit (pods, cpu, memory,
ephemeral-storage, then the other scalar resources the node lists), the node's selector and
required affinity, its name, free host ports, and ``NoExecute`` taints tolerated. A refused pod
fails with kubelet's reason (``OutOfcpu``, ``NodeAffinity``, ...) and message; only the first
failure is reported, as kubelet does."""

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
NODE_OS = "linux"
_OUT_OF = {"cpu": "OutOfcpu", "memory": "OutOfmemory", "ephemeral-storage": "OutOfephemeral-storage",
           "pods": "OutOfpods"}
_FIXED = ("cpu", "memory", "ephemeral-storage")
# the scheduler plugins' reasons (nodeaffinity.ErrReasonPod, nodename.ErrReason, ...)
_PREDICATES = {
    "NodeAffinity": "node(s) didn't match Pod's node affinity/selector",
    "NodeName": "node(s) didn't match the requested node name",
    "NodePorts": "node(s) didn't have free ports for the requested pod ports",
    "TaintToleration": "node(s) had taints that the pod didn't tolerate",
}


def host_ports(pod: Mapping[str, Any]) -> set[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) the pod asks for; hostIP "0.0.0.0" when unset."""
    out = set()
    for c in (pod.get("spec") or {}).get("containers") or ():
        for p in c.get("ports") or ():
            if p.get("hostPort"):
                out.add((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"])))
    return out


def _ports_conflict(want: set[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    """The scheduler's ``HostPortInfo.CheckConflict``: 0.0.0.0 clashes with every address."""
    for ip, proto, port in want:
        for uip, uproto, uport in used:
            if port == uport and proto == uproto and (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def _predicate(name: str) -> tuple[str, str]:
    return name, f"Predicate {name} failed: {_PREDICATES[name]}"


def _resources(pod: Mapping[str, Any], node: Mapping[str, Any], others: list[Mapping[str, Any]]) -> tuple[str, str] | None:
    """The scheduler's ``fitsRequest`` as kubelet calls it: the first resource that does not fit."""
    alloc = (node.get("status") or {}).get("allocatable")
    if not alloc:
        return None  # a node that reports nothing yet: nothing to check against
    want = pod_requests(pod.get("spec") or {})
    used: dict[str, int] = {}
    for o in others:
        for k, v in pod_requests(o.get("spec") or {}).items():
            used[k] = used.get(k, 0) + v

    def cap(res: str) -> int:
        return milli_value(alloc.get(res, 0)) if res == "cpu" else int_value(alloc.get(res, 0))

    def short(res: str, req: int, in_use: int, capacity: int) -> tuple[str, str]:
        return (_OUT_OF.get(res, f"OutOf{res}"),
                f"Node didn't have enough resource: {res}, requested: {req}, used: {in_use}, capacity: {capacity}")

    if len(others) + 1 > cap("pods"):
        return short("pods", 1, len(others), cap("pods"))
    for res in _FIXED:
        req = want.get(res, 0)
        if req > 0 and req > cap(res) - used.get(res, 0):
            return short(res, req, used.get(res, 0), cap(res))
    # scalar resources (extended, hugepages): kubelet drops extended resources the node does
    # not list (cluster-level ones), and checks the rest
    for res in sorted(k for k in want if k not in (*_FIXED, "pods")):
        req = want[res]
        if req <= 0 or ("/" in res and res not in alloc):
            continue
        if req > cap(res) - used.get(res, 0):
            return short(res, req, used.get(res, 0), cap(res))
    return None


def admit(pod: Mapping[str, Any], node: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """``None`` when the pod may run; else kubelet's (reason, message). ``others`` are the pods
    already admitted to this node and not terminal."""
    others = list(others)
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    node_meta = node.get("metadata") or {}
    pod_os = (meta.get("labels") or {}).get("kubernetes.io/os")
    if pod_os is not None and pod_os != ((node_meta.get("labels") or {}).get("kubernetes.io/os") or NODE_OS):
        return ("PodOSSelectorNodeLabelDoesNotMatch",
                "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label")
    if spec.get("os") and (spec["os"] or {}).get("name") != NODE_OS:
        return "PodOSNotSupported", "Failed to admit pod as the OS field doesn't match node OS"
    short = _resources(pod, node, others)
    if short is not None:
        return short
    if not pod_matches_node_selector_and_affinity(spec, node):
        return _predicate("NodeAffinity")
    if spec.get("nodeName") and spec["nodeName"] != node_meta.get("name"):
        return _predicate("NodeName")
    mine = host_ports(pod)
    if mine:
        taken: set[tuple[str, str, int]] = set()
        for o in others:
            taken |= host_ports(o)
        if _ports_conflict(mine, taken):
            return _predicate("NodePorts")
    taints = (node.get("spec") or {}).get("taints") or ()
    if find_untolerated_taint(taints, spec.get("tolerations") or (), effects=("NoExecute",)) is not None:
        return _predicate("TaintToleration")
    return None
