"""NodeResourcesFit (filter and the three scoring strategies) and NodeResourcesBalancedAllocation."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import Env, node, only, pod
from .test_plugins_simple import verdict


def gpu_pod(name: str, n: int, node_name: str = "") -> dict[str, Any]:
    return pod(name, node_name=node_name, containers=[{"name": "c", "image": "x", "resources": {
        "requests": {"nvidia.com/gpu": str(n)}, "limits": {"nvidia.com/gpu": str(n)}}}])


@pytest.mark.parametrize("existing,wanted,want", [
    ([], pod("p", "1", "1Gi"), "ok"),
    ([pod("e", "3500m", node_name="n1")], pod("p", "1"), "unsched: Insufficient cpu"),
    ([pod("e", "3500m", "31Gi", node_name="n1")], pod("p", "1", "2Gi"), "unsched: Insufficient cpu, Insufficient memory"),
    # more than the node has at all: evicting cannot help
    ([], pod("p", "5"), "unresolvable: Insufficient cpu"),
    ([pod("e", node_name="n1")], pod("p"), "unsched: Too many pods"),  # pods: 1 on this node
    ([], gpu_pod("p", 1), "unresolvable: Insufficient nvidia.com/gpu"),  # the node has none
    ([], pod("p", containers=[{"name": "c", "resources": {"requests": {"ephemeral-storage": "200Gi"}}}]),
     "unresolvable: Insufficient ephemeral-storage"),
    # init containers count at their peak
    ([pod("e", "3", node_name="n1")], pod("p", "100m", initContainers=[
        {"name": "i", "resources": {"requests": {"cpu": "2"}}}]), "unsched: Insufficient cpu"),
])
def test_fit_filter(existing: list[dict[str, Any]], wanted: dict[str, Any], want: str) -> None:
    pods_allowed = 1 if want.endswith("Too many pods") else 110
    env = Env(only("NodeResourcesFit"), nodes=[node("n1", pods=pods_allowed)], pods=existing)
    assert verdict(env.filter(wanted, "n1")) == want


def test_fit_extended_resources_and_ignored() -> None:
    env = Env(only("NodeResourcesFit"), nodes=[node("g", extra={"nvidia.com/gpu": "4"})],
              pods=[gpu_pod("e", 3, "g")])
    assert verdict(env.filter(gpu_pod("p", 1), "g")) == "ok"
    assert verdict(env.filter(gpu_pod("p", 2), "g")) == "unsched: Insufficient nvidia.com/gpu"
    ignoring = Env(only("NodeResourcesFit", args={"NodeResourcesFit": {"ignoredResourceGroups": ["nvidia.com"]}}),
                   nodes=[node("g")])
    assert verdict(ignoring.filter(gpu_pod("p", 8), "g")) == "ok"


def test_fit_batch_and_per_node_filters_agree() -> None:
    nodes = [node(f"n{i}", cpu=str(1 + i % 3), pods=2 + i % 2) for i in range(12)]
    existing = [pod(f"e{i}", "500m", node_name=f"n{i % 12}") for i in range(20)]
    env = Env(only("NodeResourcesFit"), nodes=nodes, pods=existing)
    from k8py.scheduler.framework import CycleState
    from k8py.scheduler.types import parse_pod
    for want in (pod("p", "600m"), pod("q", "1500m"), pod("r", "100m", "40Gi"), pod("s")):
        info = parse_pod(want)
        statuses: dict[str, Any] = {}
        fit = env.plugin("NodeResourcesFit")
        batch = {ni.name for ni in fit.filter_nodes(CycleState(), info, env.cache.node_list(), statuses)}
        single = {ni.name for ni in env.cache.node_list() if fit.filter(CycleState(), info, ni) is None}
        assert batch == single
        assert set(statuses) == {ni.name for ni in env.cache.node_list()} - single


def _scores(strategy: dict[str, Any]) -> dict[str, int]:
    env = Env(only("NodeResourcesFit", args={"NodeResourcesFit": {"scoringStrategy": strategy}}),
              nodes=[node("empty"), node("half", cpu="4", memory="32Gi")],
              pods=[pod("e", "2", "0", node_name="half")])
    return env.scores(pod("p", "1", "8Gi"), "NodeResourcesFit")


@pytest.mark.parametrize("strategy,want", [
    # LeastAllocated: (free after placing) * 100 / allocatable, averaged over cpu and memory.
    # empty: cpu 3/4 -> 75, memory 24/32 -> 75. half: cpu 1/4 -> 25, memory 75 -> 50.
    ({"type": "LeastAllocated"}, {"empty": 75, "half": 50}),
    ({"type": "MostAllocated"}, {"empty": 25, "half": 50}),
    # weights: cpu counts 3x -> half: (25*3 + 75) / 4 = 37
    ({"type": "LeastAllocated", "resources": [{"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}]},
     {"empty": 75, "half": 37}),
    # a shape from 0 at idle to 10 (scaled to 100) at full: like MostAllocated
    ({"type": "RequestedToCapacityRatio", "resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}],
      "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}},
     {"empty": 25, "half": 50}),
    # a shape that peaks at half full
    ({"type": "RequestedToCapacityRatio", "resources": [{"name": "cpu", "weight": 1}],
      "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 50, "score": 10},
                                             {"utilization": 100, "score": 0}]}},
     {"empty": 50, "half": 50}),
])
def test_fit_scoring_strategies(strategy: dict[str, Any], want: dict[str, int]) -> None:
    assert _scores(strategy) == want


def test_pods_without_requests_score_with_the_defaults() -> None:
    env = Env(only("NodeResourcesFit"), nodes=[node("a", cpu="1", memory="1Gi")])
    # 100m and 200Mi count: cpu (1000-100)/1000 -> 90, memory (1024-200)/1024 -> 80
    assert env.scores(pod("p"), "NodeResourcesFit") == {"a": 85}


def test_balanced_allocation() -> None:
    env = Env(only("NodeResourcesBalancedAllocation"), nodes=[node("even"), node("skewed")],
              pods=[pod("e", "2", node_name="skewed")])
    # even: cpu 1/4 and memory 8/32 -> no deviation -> 100; skewed: cpu 3/4 vs memory 1/4 -> 100 - 25
    assert env.scores(pod("p", "1", "8Gi"), "NodeResourcesBalancedAllocation") == {"even": 100, "skewed": 75}
    # a pod requesting nothing is skipped: it changes no balance
    assert env.scores(pod("q"), "NodeResourcesBalancedAllocation") == {"even": 0, "skewed": 0}
    three = Env(only("NodeResourcesBalancedAllocation", args={"NodeResourcesBalancedAllocation": {"resources": [
        {"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}, {"name": "nvidia.com/gpu", "weight": 1}]}}),
        nodes=[node("g", extra={"nvidia.com/gpu": "4"})])
    p = pod("p", containers=[{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "8Gi",
                                                                      "nvidia.com/gpu": "4"}}}])
    # fractions .25, .25, 1: mean .5, std sqrt((.0625*2 + .25)/3) = .3536 -> 64
    assert three.scores(p, "NodeResourcesBalancedAllocation") == {"g": 64}
