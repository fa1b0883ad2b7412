"""The event sink (series, dropping when full) and the plugins' queueing hints."""

from __future__ import annotations

import asyncio
from typing import Any

from k8py.client.errors import NotFoundError
from k8py.scheduler.queue import NODE_ADD, ActionType, ClusterEvent
from k8py.scheduler.scheduler import node_update_action
from k8py.scheduler.types import parse_pod

from .helpers import Env, node, pod


class FakeEvents:
    """Records Event creates and patches, as the API server would take them."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.patched: list[tuple[str, dict[str, Any]]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def create(self, kind: Any, obj: dict[str, Any], ns: str) -> dict[str, Any]:
        await self.gate.wait()
        name = f"ev{len(self.created)}"
        self.created.append(obj)
        return {**obj, "metadata": {**obj["metadata"], "name": name}}

    async def patch(self, kind: Any, name: str, patch: dict[str, Any], ns: str, **kw: Any) -> dict[str, Any]:
        if name == "gone":
            raise NotFoundError({"reason": "NotFound", "code": 404})
        self.patched.append((name, patch))
        return {}


async def test_event_sink_series_and_bounds() -> None:
    from k8py.client.events import EventSink
    api = FakeEvents()
    sink = EventSink(api, "default-scheduler", max_queued=4, workers=1)  # type: ignore[arg-type]
    sink.start()
    p = pod("p")
    for _ in range(3):
        sink.event(p, "Warning", "FailedScheduling", "0/1 nodes are available: 1 Insufficient cpu.")
    sink.event(p, "Normal", "Scheduled", "Successfully assigned default/p to n1")
    await sink.flush()
    assert [e["reason"] for e in api.created] == ["FailedScheduling", "Scheduled"]
    assert [n for n, _ in api.patched] == ["ev0", "ev0"]  # the repeats bump the count
    assert api.patched[-1][1]["count"] == 3
    ev = api.created[0]
    assert ev["involvedObject"]["name"] == "p" and ev["source"]["component"] == "default-scheduler"
    api.gate.clear()  # a stalled API server: the queue fills, then events are dropped
    for i in range(6):
        sink.event(pod(f"q{i}"), "Normal", "Scheduled", "x")
    await asyncio.sleep(0)
    assert sink.dropped >= 2
    api.gate.set()
    await sink.stop()


def test_node_update_actions() -> None:
    a = node("n", labels={"x": "1"})
    assert node_update_action(a, a) == ActionType(0)
    b = node("n", labels={"x": "2"})
    assert node_update_action(a, b) == ActionType.UPDATE_NODE_LABEL
    c = node("n", cpu="8", labels={"x": "1"}, taints=[{"key": "k", "effect": "NoSchedule"}])
    assert node_update_action(a, c) == ActionType.UPDATE_NODE_ALLOCATABLE | ActionType.UPDATE_NODE_TAINT
    beat = node("n", labels={"x": "1"})
    beat["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}]
    beat2 = node("n", labels={"x": "1"})
    beat2["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t2"}]
    assert node_update_action(beat, beat2) == ActionType(0)  # heartbeats are not changes


def test_queueing_hints() -> None:
    env = Env(nodes=[node("small", cpu="1"), node("big", cpu="8")],
              pods=[pod("e", "1", node_name="small"), pod("e2", "1", node_name="big")])
    fw = env.fw
    big_pod = parse_pod(pod("p", "4"))
    fit = {"NodeResourcesFit"}
    # a new node helps only if it could ever hold the pod
    assert fw.may_help(fit, big_pod, NODE_ADD, None, node("huge", cpu="16"))
    assert not fw.may_help(fit, big_pod, NODE_ADD, None, node("tiny", cpu="2"))
    # a pod leaving a node too small for the pod anyway frees nothing useful
    gone_small = parse_pod(pod("e", "1", node_name="small"))
    gone_big = parse_pod(pod("e2", "1", node_name="big"))
    delete = ClusterEvent("AssignedPod", ActionType.DELETE)
    assert not fw.may_help(fit, big_pod, delete, gone_small, None)
    assert fw.may_help(fit, big_pod, delete, gone_big, None)
    # taints: only a node the pod tolerates helps
    taint = {"TaintToleration"}
    assert not fw.may_help(taint, big_pod, NODE_ADD, None, node("t", taints=[{"key": "k", "effect": "NoSchedule"}]))
    assert fw.may_help(taint, big_pod, NODE_ADD, None, node("t"))
    # affinity: a node with matching labels
    picky = parse_pod(pod("q", nodeSelector={"disk": "ssd"}))
    assert not fw.may_help({"NodeAffinity"}, picky, NODE_ADD, None, node("hdd"))
    assert fw.may_help({"NodeAffinity"}, picky, NODE_ADD, None, node("ssd", labels={"disk": "ssd"}))
    # events a plugin does not register for do not help it
    assert not fw.may_help(taint, big_pod, delete, gone_big, None)
    # no rejecting plugin recorded (an error): anything may help
    assert fw.may_help(set(), big_pod, delete, gone_big, None)
