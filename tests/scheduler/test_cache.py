"""The cache: assume/confirm/forget, aggregates, counters and term groups kept incrementally."""

from __future__ import annotations

import random

from k8py.api.selectors import selector_from_set
from k8py.scheduler.cache import Cache, TermKind
from k8py.scheduler.types import _copy, parse_pod

from .helpers import node, pod


def bound(name: str, node_name: str, **kw: object) -> object:
    return parse_pod(pod(name, node_name=node_name, **kw))  # type: ignore[arg-type]


def test_assume_confirm_forget() -> None:
    c = Cache(validate=True)
    c.add_node(node("n1"))
    p = parse_pod(pod("p", "1", "1Gi"))
    a = _copy(p)
    a.node_name = "n1"
    c.assume(a, "n1")
    ni = c.nodes["n1"]
    assert ni.req_cpu == 1000 and c.is_assumed("default/p")
    c.add_pod(parse_pod(pod("p", "1", "1Gi", node_name="n1")))  # the informer confirms the binding
    assert not c.is_assumed("default/p") and ni.req_cpu == 1000 and len(ni.pods) == 1
    c.remove_pod("default/p")
    assert ni.req_cpu == 0
    c.assume(a, "n1")
    c.forget("default/p")
    assert ni.req_cpu == 0 and not c.pods


def test_pods_on_unknown_nodes_and_node_removal() -> None:
    c = Cache(validate=True)
    c.add_pod(parse_pod(pod("p", "1", node_name="later")))
    assert c.node_count == 0 and c.nodes["later"].req_cpu == 1000  # a placeholder holds the pod
    c.add_node(node("later"))
    assert c.node_count == 1 and c.get_node("later") is not None
    c.remove_node("later")
    assert c.node_count == 0 and "later" in c.nodes  # still holding its pod
    c.remove_pod("default/p")
    assert "later" not in c.nodes


def test_node_order_interleaves_zones() -> None:
    c = Cache()
    for name, zone in (("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("c1", "c")):
        c.add_node(node(name, labels={"topology.kubernetes.io/zone": zone}))
    assert [n.name for n in c.node_list()] == ["a1", "b1", "c1", "a2", "a3"]


def test_counters_follow_pods_and_relabelled_nodes() -> None:
    rnd = random.Random(7)
    c = Cache(validate=True)
    for i in range(6):
        c.add_node(node(f"n{i}", labels={"zone": "ab"[i % 2]}))
    web = selector_from_set({"app": "web"})
    counter = c.counter(frozenset({"default"}), web)
    zones = counter.by_topology("zone", c.nodes)
    names = []
    for i in range(40):
        name = f"p{i}"
        c.add_pod(parse_pod(pod(name, node_name=f"n{rnd.randrange(6)}", labels={"app": rnd.choice(["web", "db"])})))
        names.append(name)
        if rnd.random() < 0.3:
            c.remove_pod(f"default/{names.pop(rnd.randrange(len(names)))}")
    c.check()  # recomputes every counter and topology view from scratch
    assert sum(zones.values()) == sum(counter.per_node.values())
    c.add_node(node("n0", labels={"zone": "c"}))  # relabel: its pods move to zone c
    c.check()
    # terminating pods leave the counts (topology spread ignores them)
    key = next(iter(c.pods))
    st = c.pods[key]
    term = parse_pod({**st.info.obj, "metadata": {**st.info.obj["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}})
    c.update_pod(term)
    c.check()


def test_term_groups_for_existing_anti_affinity() -> None:
    c = Cache(validate=True)
    c.add_node(node("n1", labels={"zone": "a"}))
    c.add_node(node("n2", labels={"zone": "b"}))
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "zone"}]}}
    c.add_pod(parse_pod(pod("g1", node_name="n1", affinity=anti)))
    c.add_pod(parse_pod(pod("g2", node_name="n1", affinity=anti)))
    (g,) = c.groups_of(TermKind.REQUIRED_ANTI)
    assert g.counts == {"a": 2} and c.anti_affinity_pods == 2
    c.add_node(node("n1", labels={"zone": "c"}))
    assert g.counts == {"c": 2}
    c.remove_pod("default/g1")
    c.remove_pod("default/g2")
    assert list(c.groups_of(TermKind.REQUIRED_ANTI)) == [] and c.anti_affinity_pods == 0


def test_counter_lru_bound() -> None:
    c = Cache(max_counters=3)
    for i in range(5):
        c.counter(None, selector_from_set({"k": str(i)}))
    assert len(c._counters) == 3
