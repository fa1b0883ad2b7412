"""PodTopologySpread and InterPodAffinity: filter verdicts and scores over small fixed clusters."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.api.selectors import selector_from_set
from k8py.scheduler.types import PodInfo

from .helpers import Env, node, only, pod
from .test_plugins_simple import verdict

NOT_MATCH = "unsched: node(s) didn't match pod topology spread constraints"
NO_LABEL = "unresolvable: node(s) didn't match pod topology spread constraints (missing required label)"


def spread(key: str = "zone", skew: int = 1, when: str = "DoNotSchedule", **extra: Any) -> dict[str, Any]:
    return {"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}, **extra}


def web(name: str, node_name: str = "", ns: str = "default", **spec: Any) -> dict[str, Any]:
    return pod(name, labels={"app": "web"}, node_name=node_name, ns=ns, **spec)


ZONED = [node("a1", labels={"zone": "a"}), node("a2", labels={"zone": "a"}), node("b1", labels={"zone": "b"}),
         node("x1")]


@pytest.mark.parametrize("constraint,existing,want", [
    # zone a has 2, zone b none: a would make skew 3
    (spread(), [web("w1", "a1"), web("w2", "a2")], {"a1": NOT_MATCH, "a2": NOT_MATCH, "b1": "ok", "x1": NO_LABEL}),
    (spread(skew=3), [web("w1", "a1"), web("w2", "a2")], {"a1": "ok", "a2": "ok", "b1": "ok", "x1": NO_LABEL}),
    # per hostname: the emptiest node is the minimum
    (spread("kubernetes.io/hostname"), [web("w1", "a1")], {"a1": NOT_MATCH, "a2": "ok", "b1": "ok", "x1": "ok"}),
    # pods not matching the selector do not count
    (spread(), [pod("o1", node_name="a1", labels={"app": "db"})], {"a1": "ok", "a2": "ok", "b1": "ok",
                                                                   "x1": NO_LABEL}),
    # minDomains above the domains there are: the global minimum counts as 0
    (spread(skew=2, minDomains=3), [web("w1", "b1"), web("w2", "a1")],
     {"a1": "ok", "a2": "ok", "b1": "ok", "x1": NO_LABEL}),
    (spread(skew=1, minDomains=3), [web("w1", "b1"), web("w2", "a1")],
     {"a1": NOT_MATCH, "a2": NOT_MATCH, "b1": NOT_MATCH, "x1": NO_LABEL}),
])
def test_spread_filter(constraint: dict[str, Any], existing: list[dict[str, Any]], want: dict[str, str]) -> None:
    env = Env(only("PodTopologySpread"), nodes=ZONED, pods=existing)
    p = web("p", topologySpreadConstraints=[constraint])
    assert {n: verdict(env.filter(p, n)) for n in want} == want


def test_spread_honors_node_affinity_when_counting() -> None:
    # Pods in zone b sit on nodes the incoming pod cannot use (its nodeSelector): with the default
    # nodeAffinityPolicy Honor they are not counted, so zone a alone sets the minimum.
    nodes = [node("a1", labels={"zone": "a", "pool": "x"}), node("b1", labels={"zone": "b", "pool": "y"})]
    env = Env(only("PodTopologySpread"), nodes=nodes, pods=[web("w1", "a1")])
    p = web("p", nodeSelector={"pool": "x"}, topologySpreadConstraints=[spread()])
    assert verdict(env.filter(p, "a1")) == "ok"
    ignore = web("q", nodeSelector={"pool": "x"},
                 topologySpreadConstraints=[spread(nodeAffinityPolicy="Ignore")])
    assert verdict(env.filter(ignore, "a1")) == NOT_MATCH


def test_spread_batch_filter_matches_per_node() -> None:
    nodes = [node(f"n{i}", labels={"zone": "abc"[i % 3]}) for i in range(9)]
    existing = [web(f"w{i}", f"n{i % 4}") for i in range(7)]
    env = Env(only("PodTopologySpread"), nodes=nodes, pods=existing)
    from k8py.scheduler.framework import CycleState
    from k8py.scheduler.types import parse_pod
    for c in (spread(), spread("kubernetes.io/hostname"), spread(skew=2)):
        info = parse_pod(web("p", topologySpreadConstraints=[c]))
        st = CycleState()
        env.plugin("PodTopologySpread").pre_filter(st, info)
        pl = env.plugin("PodTopologySpread")
        batch = {ni.name for ni in pl.filter_nodes(st, info, env.cache.node_list(), {})}
        single = {ni.name for ni in env.cache.node_list() if pl.filter(st, info, ni) is None}
        assert batch == single


def test_spread_score_prefers_emptier_domains() -> None:
    nodes = [node("n1", labels={"zone": "a"}), node("n2", labels={"zone": "a"}), node("n3", labels={"zone": "b"})]
    env = Env(only("PodTopologySpread"), nodes=nodes, pods=[web("w1", "n1"), web("w2", "n1"), web("w3", "n3")])
    p = web("p", topologySpreadConstraints=[spread(when="ScheduleAnyway")])
    # weight log(2 zones + 2); a: 2 pods -> 3, b: 1 pod -> 1; normalized 100 * (max + min - s) / max
    assert env.scores(p, "PodTopologySpread") == {"n1": 33, "n2": 33, "n3": 100}


class WebService:
    """Listers with one Service selecting app=web (for the default constraints)."""

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        return {}

    def pdbs(self, namespace: str) -> list[Any]:
        return []

    def selectors_for_pod(self, pod: PodInfo) -> list[Any]:
        sel = selector_from_set({"app": "web"})
        return [sel] if sel.matches(pod.labels) else []


def test_default_constraints_spread_service_pods() -> None:
    nodes = [node("n1", labels={"topology.kubernetes.io/zone": "a"}),
             node("n2", labels={"topology.kubernetes.io/zone": "a"}),
             node("n3", labels={"topology.kubernetes.io/zone": "b"})]
    env = Env(only("PodTopologySpread"), nodes=nodes, pods=[web("w1", "n1"), web("w2", "n1")], listers=WebService())
    s = env.scores(web("p"), "PodTopologySpread")
    assert s["n3"] == 100 and s["n2"] > s["n1"]
    # a pod no Service/ReplicaSet selects gets no default spreading
    assert env.scores(pod("lonely"), "PodTopologySpread") == {"n1": 0, "n2": 0, "n3": 0}


# -- InterPodAffinity -----------------------------------------------------------------------------------

AFF = "unresolvable: node(s) didn't match pod affinity rules"
ANTI = "unsched: node(s) didn't match pod anti-affinity rules"
EXISTING = "unsched: node(s) didn't satisfy existing pods anti-affinity rules"


def term(labels: dict[str, str], key: str = "zone", **extra: Any) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **extra}


def affinity(kind: str, *terms: dict[str, Any]) -> dict[str, Any]:
    return {"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}}


NODES3 = [node("n1", labels={"zone": "a"}), node("n2", labels={"zone": "a"}), node("n3", labels={"zone": "b"})]


@pytest.mark.parametrize("incoming,existing,want", [
    (pod("p", **affinity("podAffinity", term({"app": "web"}))), [web("w", "n1")],
     {"n1": "ok", "n2": "ok", "n3": AFF}),
    (pod("p", **affinity("podAntiAffinity", term({"app": "web"}, "kubernetes.io/hostname"))), [web("w", "n1")],
     {"n1": ANTI, "n2": "ok", "n3": "ok"}),
    (pod("p", **affinity("podAntiAffinity", term({"app": "web"}))), [web("w", "n1")],
     {"n1": ANTI, "n2": ANTI, "n3": "ok"}),
    # an existing pod's anti-affinity keeps matching pods out of its zone
    (pod("p", labels={"app": "intruder"}),
     [pod("guard", node_name="n3", **affinity("podAntiAffinity", term({"app": "intruder"})))],
     {"n1": "ok", "n2": "ok", "n3": EXISTING}),
    # the first of a series with affinity to itself: nothing matches anywhere, it matches itself
    (web("p", **affinity("podAffinity", term({"app": "web"}))), [], {"n1": "ok", "n2": "ok", "n3": "ok"}),
    # other namespaces are not looked at unless named
    (pod("p", **affinity("podAntiAffinity", term({"app": "web"}))), [web("w", "n1", ns="other")],
     {"n1": "ok", "n3": "ok"}),
    (pod("p", **affinity("podAntiAffinity", term({"app": "web"}, namespaces=["other"])))
     , [web("w", "n1", ns="other")], {"n1": ANTI, "n3": "ok"}),
    (pod("p", **affinity("podAntiAffinity", term({"app": "web"}, namespaceSelector={}))),
     [web("w", "n1", ns="other")], {"n1": ANTI, "n3": "ok"}),
])
def test_inter_pod_affinity_filter(incoming: dict[str, Any], existing: list[dict[str, Any]],
                                   want: dict[str, str]) -> None:
    env = Env(only("InterPodAffinity"), nodes=NODES3, pods=existing)
    assert {n: verdict(env.filter(incoming, n)) for n in want} == want


def test_inter_pod_affinity_score() -> None:
    existing = [web("w", "n1"), pod("d", node_name="n2", labels={"app": "db"}),
                pod("fan", node_name="n3", affinity={"podAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 4, "podAffinityTerm": term({"app": "new"}, "kubernetes.io/hostname")}]}})]
    env = Env(only("InterPodAffinity"), nodes=NODES3, pods=existing)
    p = pod("p", labels={"app": "new"}, affinity={
        "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "podAffinityTerm": term({"app": "web"})}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "podAffinityTerm": term({"app": "db"}, "kubernetes.io/hostname")}]}})
    # n1: +10 (web in zone a); n2: +10 - 5 (db on it); n3: +4 (the existing pod there wants app=new)
    assert env.scores(p, "InterPodAffinity") == {"n1": 100, "n2": 50, "n3": 40}
    # a plain pod is scored only by the existing pods' terms that match it
    assert env.scores(pod("q"), "InterPodAffinity") == {"n1": 0, "n2": 0, "n3": 0}


def test_required_affinity_of_existing_pods_counts_in_scores() -> None:
    existing = [pod("e", node_name="n3", **affinity("podAffinity", term({"app": "new"})))]
    env = Env(only("InterPodAffinity"), nodes=NODES3, pods=existing)
    assert env.scores(pod("p", labels={"app": "new"}), "InterPodAffinity") == {"n1": 0, "n2": 0, "n3": 100}
