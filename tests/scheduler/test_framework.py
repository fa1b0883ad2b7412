"""The framework's algorithm: how many nodes are looked at, in which order, how scores combine,
how a FitError reads, how multiPoint expands into extension points."""

from __future__ import annotations

from collections import Counter

import pytest

from k8py.scheduler.config import parse_config
from k8py.scheduler.framework import Diagnosis, FitError, num_feasible_nodes_to_find
from k8py.scheduler.types import Code, Status, parse_pod

from .helpers import Env, node, only, pod


@pytest.mark.parametrize("pct,nodes,want", [
    (0, 10, 10), (0, 99, 99), (0, 100, 100),
    (0, 1000, 420),       # 50 - 1000/125 = 42%
    (0, 5000, 500),       # 50 - 40 = 10%
    (0, 6000, 300),       # 50 - 48 = 2% -> at least 5%
    (0, 15000, 750),
    (30, 1000, 300), (100, 5000, 5000), (1, 1000, 100),  # never fewer than 100
])
def test_num_feasible_nodes_to_find(pct: int, nodes: int, want: int) -> None:
    assert num_feasible_nodes_to_find(pct, nodes) == want


def test_fit_error_message_is_kubes() -> None:
    d = Diagnosis()
    taint = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ("node(s) had untolerated taint {node-role: }",), "TaintToleration")
    cpu = Status(Code.UNSCHEDULABLE, ("Insufficient cpu",), "NodeResourcesFit")
    both = Status(Code.UNSCHEDULABLE, ("Insufficient cpu", "Insufficient memory"), "NodeResourcesFit")
    d.node_statuses = {"a": taint, "b": cpu, "c": both}
    err = FitError(parse_pod(pod("p")), 3, d)
    assert err.message() == ("0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint "
                             "{node-role: }, 2 Insufficient cpu.")
    d.post_filter_msg = "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    assert err.message().endswith(". preemption: 0/3 nodes are available: 3 Preemption is not helpful for "
                                  "scheduling..")


def test_a_cluster_without_nodes() -> None:
    with pytest.raises(FitError) as ei:
        Env().schedule(pod("p"))
    assert ei.value.message() == "no nodes available to schedule pods"


def test_only_a_sample_of_a_big_cluster_is_filtered_and_the_sample_rotates() -> None:
    env = Env(nodes=[node(f"n{i:03}") for i in range(1000)])
    assert num_feasible_nodes_to_find(0, 1000) == 420
    seen = Counter()
    calls = 0
    fit = env.plugin("NodeResourcesFit")
    orig = fit.filter_nodes

    def counting(state, p, nodes, statuses):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += len(nodes)
        seen.update(ni.name for ni in nodes)
        return orig(state, p, nodes, statuses)

    fit.filter_nodes = counting
    env.schedule(pod("p1", "100m"))
    assert calls == 420  # not all 1000
    env.schedule(pod("p2", "100m"))
    env.schedule(pod("p3", "100m"))
    assert len(seen) == 1000  # the next cycles start where the last stopped
    assert env.fw.next_start == 260


def test_scores_are_weighted_and_summed() -> None:
    # TaintToleration (weight 3) outweighs NodeResourcesFit (weight 1) under the default profile.
    soft = [{"key": "soft", "effect": "PreferNoSchedule"}]
    env = Env(nodes=[node("roomy-tainted", cpu="64", taints=soft), node("small", cpu="2")])
    assert env.schedule(pod("p", "1")) == "small"
    heavy = Env({"profiles": [{"plugins": {"score": {"enabled": [{"name": "NodeResourcesFit", "weight": 20}]}}}]},
                nodes=[node("roomy-tainted", cpu="64", taints=soft), node("small", cpu="2")])
    assert heavy.schedule(pod("p", "1")) == "roomy-tainted"


def test_ties_are_broken_at_random() -> None:
    got = Counter()
    for seed in range(12):
        env = Env(nodes=[node("a"), node("b"), node("c")], seed=seed)
        got[env.schedule(pod("p", "1"))] += 1
    assert len(got) >= 2


def test_multi_point_expansion_and_overrides() -> None:
    env = Env()
    fw = env.fw
    assert [n for n, _ in fw.filter] == ["NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity",
                                         "NodePorts", "NodeResourcesFit", "VolumeRestrictions", "VolumeBinding",
                                         "VolumeZone", "PodTopologySpread", "InterPodAffinity"]
    assert [(n, w) for n, _, w in fw.score] == [("TaintToleration", 3), ("NodeAffinity", 2), ("NodeResourcesFit", 1),
                                                ("PodTopologySpread", 2), ("InterPodAffinity", 2),
                                                ("NodeResourcesBalancedAllocation", 1), ("ImageLocality", 1)]
    assert [n for n, _ in fw.post_filter] == ["DefaultPreemption"]
    assert [n for n, _ in fw.bind] == ["DefaultBinder"]
    custom = Env({"profiles": [{"plugins": {
        "multiPoint": {"disabled": [{"name": "ImageLocality"}]},
        "score": {"disabled": [{"name": "NodeResourcesBalancedAllocation"}],
                  "enabled": [{"name": "NodeAffinity", "weight": 7}]},
        "filter": {"disabled": [{"name": "*"}]}}}]}).fw
    assert custom.filter == []
    assert [(n, w) for n, _, w in custom.score] == [("NodeAffinity", 7), ("TaintToleration", 3),
                                                    ("NodeResourcesFit", 1), ("PodTopologySpread", 2),
                                                    ("InterPodAffinity", 2)]


def test_unschedulable_plugins_recorded_for_requeueing() -> None:
    env = Env(only("TaintToleration", "NodeResourcesFit"),
              nodes=[node("a", cpu="1"), node("b", taints=[{"key": "k", "effect": "NoSchedule"}])])
    with pytest.raises(FitError) as ei:
        env.schedule(pod("p", "2"))
    assert ei.value.diagnosis.unschedulable_plugins == {"TaintToleration", "NodeResourcesFit"}


def test_profiles_config_exposes_names() -> None:
    cfg = parse_config({"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
                        "profiles": [{"schedulerName": "a"}, {"schedulerName": "b"}]})
    assert cfg.scheduler_names == ("a", "b")
