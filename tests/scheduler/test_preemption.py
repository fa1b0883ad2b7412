"""DefaultPreemption: which node, which victims, PDBs, preemptionPolicy, and the messages."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.scheduler.framework import CycleState, FitError
from k8py.scheduler.types import parse_pod

from .helpers import Env, node, pod


class PDBs:
    def __init__(self, *pdbs: dict[str, Any]) -> None:
        self._pdbs = list(pdbs)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        return {}

    def pdbs(self, namespace: str) -> list[dict[str, Any]]:
        return [p for p in self._pdbs if p["metadata"]["namespace"] == namespace]

    def all_pdbs(self) -> list[dict[str, Any]]:
        return list(self._pdbs)

    def selectors_for_pod(self, pod: Any) -> list[Any]:
        return []


def pdb(labels: dict[str, str], allowed: int | None = None, **spec: Any) -> dict[str, Any]:
    status = {"disruptionsAllowed": allowed, "observedGeneration": 1} if allowed is not None else \
        {"disruptionsAllowed": 0}
    return {"metadata": {"name": "pdb", "namespace": "default"},
            "spec": {"selector": {"matchLabels": labels}, **spec}, "status": status}


def preempt(env: Env, p: dict[str, Any]) -> tuple[str | None, str, list[str]]:
    """(nominated node, message, victim names) for ``p`` after no node fit."""
    info = parse_pod(p)
    state = CycleState()
    with pytest.raises(FitError) as ei:
        env.fw.schedule(state, info)
    pl = env.plugin("DefaultPreemption")
    victims: list[str] = []
    orig = pl.prepare
    pl.prepare = lambda pod, c: (victims.extend(v.name for v in c.victims), orig(pod, c))
    nominated, st = env.fw.run_post_filter(state, info, ei.value.diagnosis.node_statuses)
    if st is not None:
        ei.value.diagnosis.post_filter_msg = st.message
    return nominated, ei.value.message(), victims


def running(name: str, cpu: str, node_name: str, priority: int, start: str = "2026-01-01T00:00:00Z",
            **kw: Any) -> dict[str, Any]:
    p = pod(name, cpu, node_name=node_name, priority=priority, **kw)
    p["status"] = {"phase": "Running", "startTime": start,
                   "conditions": [{"type": "Ready", "status": "True"}]}
    return p


def test_preempts_the_lowest_priority_victims_on_the_best_node() -> None:
    env = Env(nodes=[node("n1", cpu="2"), node("n2", cpu="2")],
              pods=[running("low1", "1", "n1", 1), running("low2", "1", "n1", 1),
                    running("mid1", "1", "n2", 5), running("mid2", "1", "n2", 5)])
    nominated, msg, victims = preempt(env, pod("high", "1", priority=10))
    assert nominated == "n1"
    assert len(victims) == 1 and victims[0].startswith("low")  # one is enough; the other is reprieved
    assert msg == "0/2 nodes are available: 2 Insufficient cpu."


def test_reprieves_the_more_important_pods_first() -> None:
    env = Env(nodes=[node("n1", cpu="3")],
              pods=[running("old", "1", "n1", 1, start="2026-01-01T00:00:00Z"),
                    running("new", "1", "n1", 1, start="2026-01-02T00:00:00Z"),
                    running("mid", "1", "n1", 3)])
    nominated, _, victims = preempt(env, pod("high", "1", priority=10))
    # mid (higher priority) and old (started first) are kept; the newest low pod goes
    assert (nominated, victims) == ("n1", ["new"])


def test_pdb_violations_are_avoided_where_possible() -> None:
    pods = [running("guarded", "2", "n1", 1, labels={"app": "db"}), running("free", "2", "n2", 2)]
    env = Env(nodes=[node("n1", cpu="2"), node("n2", cpu="2")], pods=pods, listers=PDBs(pdb({"app": "db"}, 0)))
    nominated, _, victims = preempt(env, pod("high", "2", priority=10))
    assert (nominated, victims) == ("n2", ["free"])  # a higher-priority victim, but no PDB broken
    # with a budget that allows one disruption, the lower priority wins again
    env2 = Env(nodes=[node("n1", cpu="2"), node("n2", cpu="2")], pods=pods, listers=PDBs(pdb({"app": "db"}, 1)))
    assert preempt(env2, pod("high", "2", priority=10))[:1] == ("n1",)


def test_pdb_budget_estimated_without_a_disruption_controller() -> None:
    pods = [running(f"db{i}", "1", "n1", 1, labels={"app": "db"}) for i in range(2)] + \
        [running("other", "2", "n2", 2)]
    env = Env(nodes=[node("n1", cpu="2"), node("n2", cpu="2")], pods=pods,
              listers=PDBs(pdb({"app": "db"}, None, minAvailable=1)))
    # 2 healthy, minAvailable 1: one may go, so n1 (one low victim, within budget) is chosen
    nominated, _, victims = preempt(env, pod("high", "1", priority=10))
    assert nominated == "n1" and len(victims) == 1


def test_preemption_policy_never_and_nothing_to_preempt() -> None:
    env = Env(nodes=[node("n1", cpu="1")], pods=[running("low", "1", "n1", 1)])
    nominated, msg, _ = preempt(env, pod("p", "1", priority=10, preemptionPolicy="Never"))
    assert nominated is None
    assert msg == ("0/1 nodes are available: 1 Insufficient cpu. "
                   "preemption: not eligible due to preemptionPolicy=Never..")
    nominated, msg, _ = preempt(env, pod("p", "1", priority=1))  # same priority: no victims
    assert nominated is None
    assert msg.endswith("preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..")


def test_preemption_not_helpful_on_unresolvable_nodes() -> None:
    env = Env(nodes=[node("n1", cpu="1", taints=[{"key": "k", "effect": "NoSchedule"}]), node("n2", cpu="1")],
              pods=[running("low", "1", "n2", 1)])
    nominated, msg, _ = preempt(env, pod("p", "4", priority=10))
    assert nominated is None
    assert msg == ("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: }. "
                   "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling..")


def test_the_cache_is_left_as_it_was() -> None:
    env = Env(nodes=[node("n1", cpu="2")], pods=[running("a", "1", "n1", 1), running("b", "1", "n1", 1)])
    before = (env.cache.nodes["n1"].req_cpu, sorted(env.cache.nodes["n1"].pods))
    preempt(env, pod("high", "2", priority=10))
    assert (env.cache.nodes["n1"].req_cpu, sorted(env.cache.nodes["n1"].pods)) == before
    env.cache.check()


def test_nominated_pods_hold_their_room_against_lower_priority_pods() -> None:
    env = Env(nodes=[node("n1", cpu="2"), node("n2", cpu="2")], pods=[running("busy", "2", "n2", 0)])
    env.queue.nominator.add(parse_pod(pod("preemptor", "2", priority=10)), "n1")
    with pytest.raises(FitError):
        env.schedule(pod("low", "1", priority=1))  # n1's room is promised to the preemptor
    assert env.schedule(pod("higher", "1", priority=20)) == "n1"  # a more important pod may take it
