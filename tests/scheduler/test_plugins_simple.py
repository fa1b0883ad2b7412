"""Table-driven tests of the node-local plugins: NodeName, NodeUnschedulable, TaintToleration,
NodeAffinity, NodePorts, ImageLocality, SchedulingGates, VolumeBinding."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.scheduler.types import Code, parse_pod

from .helpers import Env, node, only, pod

MB = 1024 * 1024


def verdict(st: Any) -> str:
    """'ok', or the status code's short name and its reasons."""
    if st is None:
        return "ok"
    short = {Code.UNSCHEDULABLE: "unsched", Code.UNSCHEDULABLE_AND_UNRESOLVABLE: "unresolvable"}.get(st.code, st.code.name)
    return f"{short}: {st.message}"


# -- NodeName, NodeUnschedulable -------------------------------------------------------------------

@pytest.mark.parametrize("pod_spec,node_name,want", [
    ({}, "n1", "ok"),
    ({"nodeName": "n1"}, "n1", "ok"),
    ({"nodeName": "n2"}, "n1", "unresolvable: node(s) didn't match the requested node name"),
])
def test_node_name(pod_spec: dict[str, Any], node_name: str, want: str) -> None:
    env = Env(only("NodeName"), nodes=[node("n1")])
    p = pod("p", **pod_spec)
    assert verdict(env.filter(p, node_name)) == want


@pytest.mark.parametrize("tolerations,unschedulable,want", [
    ([], False, "ok"),
    ([], True, "unresolvable: node(s) were unschedulable"),
    ([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}], True, "ok"),
])
def test_node_unschedulable(tolerations: list[Any], unschedulable: bool, want: str) -> None:
    env = Env(only("NodeUnschedulable"), nodes=[node("n1", unschedulable=unschedulable)])
    assert verdict(env.filter(pod("p", tolerations=tolerations), "n1")) == want


# -- TaintToleration -----------------------------------------------------------------------------------

@pytest.mark.parametrize("taints,tolerations,want", [
    ([], [], "ok"),
    ([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}], [],
     "unresolvable: node(s) had untolerated taint {dedicated: gpu}"),
    ([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
     [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}], "ok"),
    ([{"key": "a", "effect": "NoExecute"}], [{"key": "a", "operator": "Exists"}], "ok"),
    ([{"key": "a", "effect": "NoExecute"}], [{"key": "a", "operator": "Exists", "effect": "NoSchedule"}],
     "unresolvable: node(s) had untolerated taint {a: }"),
    ([{"key": "soft", "effect": "PreferNoSchedule"}], [], "ok"),  # only scoring looks at those
])
def test_taint_toleration_filter(taints: list[Any], tolerations: list[Any], want: str) -> None:
    env = Env(only("TaintToleration"), nodes=[node("n1", taints=taints)])
    assert verdict(env.filter(pod("p", tolerations=tolerations), "n1")) == want


def test_taint_toleration_score_prefers_fewer_untolerated_prefer_taints() -> None:
    soft = [{"key": f"s{i}", "effect": "PreferNoSchedule"} for i in range(2)]
    env = Env(only("TaintToleration"), nodes=[node("a"), node("b", taints=soft), node("c", taints=soft[:1])])
    assert env.scores(pod("p"), "TaintToleration") == {"a": 100, "b": 0, "c": 50}
    tolerant = pod("p", tolerations=[{"key": "s0", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert env.scores(tolerant, "TaintToleration") == {"a": 100, "b": 0, "c": 100}


# -- NodeAffinity ----------------------------------------------------------------------------------------

ZONE_A = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}


@pytest.mark.parametrize("spec,labels,want", [
    ({}, {}, "ok"),
    ({"nodeSelector": {"disk": "ssd"}}, {"disk": "ssd"}, "ok"),
    ({"nodeSelector": {"disk": "ssd"}}, {"disk": "hdd"}, "unresolvable: node(s) didn't match Pod's node affinity/selector"),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": ZONE_A}}}, {"zone": "a"}, "ok"),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": ZONE_A}}}, {"zone": "b"},
     "unresolvable: node(s) didn't match Pod's node affinity/selector"),
    # selector and affinity must both hold
    ({"nodeSelector": {"disk": "ssd"}, "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": ZONE_A}}}, {"zone": "a"},
     "unresolvable: node(s) didn't match Pod's node affinity/selector"),
])
def test_node_affinity_filter(spec: dict[str, Any], labels: dict[str, str], want: str) -> None:
    env = Env(only("NodeAffinity"), nodes=[node("n1", labels=labels)])
    assert verdict(env.filter(pod("p", **spec), "n1")) == want


def test_node_affinity_added_affinity_and_prefilter_node_names() -> None:
    env = Env(only("NodeAffinity", args={"NodeAffinity": {"addedAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": ZONE_A}}}),
        nodes=[node("n1", labels={"zone": "a"}), node("n2", labels={"zone": "b"})])
    assert verdict(env.filter(pod("p"), "n2")) == \
        "unresolvable: node(s) didn't match scheduler-enforced node affinity"
    assert env.schedule(pod("p")) == "n1"
    pinned = pod("q", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}})
    from k8py.scheduler.framework import CycleState
    allowed, st = env.fw.run_pre_filter(CycleState(), parse_pod(pinned))
    assert allowed == {"n1"} and st is None


def test_node_affinity_score_sums_matching_preferred_weights() -> None:
    env = Env(only("NodeAffinity"), nodes=[node("a", labels={"zone": "a"}), node("b", labels={"zone": "a", "disk": "ssd"}),
                                          node("c")])
    p = pod("p", affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 2, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
        {"weight": 8, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
    ]}})
    assert env.scores(p, "NodeAffinity") == {"a": 20, "b": 100, "c": 0}


# -- NodePorts ---------------------------------------------------------------------------------------------

def _ported(name: str, port: int, ip: str = "", proto: str = "TCP", node_name: str = "") -> dict[str, Any]:
    pp: dict[str, Any] = {"containerPort": 80, "hostPort": port, "protocol": proto}
    if ip:
        pp["hostIP"] = ip
    return pod(name, node_name=node_name, containers=[{"name": "c", "image": "x", "ports": [pp]}])


@pytest.mark.parametrize("existing,wanted,conflict", [
    (_ported("e", 8080, node_name="n1"), _ported("p", 8080), True),
    (_ported("e", 8080, node_name="n1"), _ported("p", 8081), False),
    (_ported("e", 8080, node_name="n1"), _ported("p", 8080, proto="UDP"), False),
    (_ported("e", 8080, "10.0.0.1", node_name="n1"), _ported("p", 8080, "10.0.0.2"), False),
    (_ported("e", 8080, "10.0.0.1", node_name="n1"), _ported("p", 8080), True),  # 0.0.0.0 clashes with all
    (_ported("e", 8080, node_name="n1"), _ported("p", 8080, "10.0.0.2"), True),
])
def test_node_ports(existing: dict[str, Any], wanted: dict[str, Any], conflict: bool) -> None:
    env = Env(only("NodePorts"), nodes=[node("n1")], pods=[existing])
    want = "unsched: node(s) didn't have free ports for the requested pod ports" if conflict else "ok"
    assert verdict(env.filter(wanted, "n1")) == want


# -- ImageLocality -----------------------------------------------------------------------------------------

def test_image_locality_scores_by_size_and_spread() -> None:
    env = Env(only("ImageLocality"), nodes=[node("a", images=[(["nginx:latest"], 500 * MB)]), node("b")])
    # 500 MB on 1 of 2 nodes counts 250 MB: (250 - 23) * 100 // (1000 - 23)
    assert env.scores(pod("p", containers=[{"name": "c", "image": "nginx"}]), "ImageLocality") == {"a": 23, "b": 0}
    # an image no node has: every node scores the same (the plugin skips)
    assert env.scores(pod("q", containers=[{"name": "c", "image": "redis"}]), "ImageLocality") == {"a": 0, "b": 0}
    big = Env(only("ImageLocality"), nodes=[node("a", images=[(["big:1"], 4000 * MB)])])
    assert big.scores(pod("p", containers=[{"name": "c", "image": "big:1"}]), "ImageLocality") == {"a": 100}


# -- SchedulingGates and VolumeBinding ---------------------------------------------------------------------

def test_scheduling_gates_pre_enqueue() -> None:
    env = Env()
    gated = parse_pod(pod("p", schedulingGates=[{"name": "example.com/wait"}]))
    assert env.fw.run_pre_enqueue(gated) == "SchedulingGates"
    assert env.fw.run_pre_enqueue(parse_pod(pod("q"))) is None


def test_volume_binding_without_informers_lets_pods_through() -> None:
    # a framework built without the scheduler's informers (as here) has no binder; the binder's
    # answers are tested in test_volumebinding.py
    env = Env(only("VolumeBinding"), nodes=[node("n1")])
    p = pod("p", volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
    assert env.plugin("VolumeBinding").binder is None
    assert verdict(env.filter(p, "n1")) == "ok"
