"""The scheduling queue with fake time: order, backoff, parking, event-driven requeueing, gates."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from k8py.client.clock import FakeClock
from k8py.scheduler.queue import (
    ASSIGNED_POD_DELETE,
    NODE_ADD,
    ActionType,
    ClusterEvent,
    QueuedPodInfo,
    SchedulingQueue,
    ShutDown,
    Where,
)
from k8py.scheduler.types import parse_pod

from .helpers import pod


def info(name: str, priority: int = 0, **kw: Any) -> Any:
    return parse_pod(pod(name, priority=priority, **kw))


def drain(q: SchedulingQueue) -> list[str]:
    out = []
    while (x := q.pop_nowait()) is not None:
        out.append(x.pod.name)
    return out


def test_priority_then_arrival_order() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock)
    for name, prio in (("a", 0), ("b", 10), ("c", 0), ("d", 10)):
        q.add(info(name, prio))
        clock.advance(1)
    assert drain(q) == ["b", "d", "a", "c"]


def test_backoff_doubles_up_to_the_cap() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock, initial_backoff=1, max_backoff=10)
    q.add(info("p"))
    waits = []
    for _ in range(6):
        x = q.pop_nowait()
        assert x is not None
        q.add_backoff(x)
        assert q.where("default/p") == Where.BACKOFF
        start = clock.now()
        while q.where("default/p") != Where.ACTIVE:
            clock.advance(0.25)
        waits.append(clock.now() - start)
    assert waits == [1, 2, 4, 8, 10, 10]


def test_unschedulable_pods_move_only_on_events_that_may_help() -> None:
    clock = FakeClock()

    def hint(qpi: QueuedPodInfo, ev: ClusterEvent, old: Any, new: Any) -> bool:
        return "NodeResourcesFit" in qpi.unschedulable_plugins and ev.resource in ("Node", "AssignedPod")

    q = SchedulingQueue(clock=clock, should_move=hint)
    q.add(info("fit"))
    q.add(info("other"))
    q.add_unschedulable(q.pop_nowait(), {"NodeResourcesFit"})  # type: ignore[arg-type]
    q.add_unschedulable(q.pop_nowait(), {"TaintToleration"})  # type: ignore[arg-type]
    assert q.counts()["unschedulable"] == 2
    assert q.move_all(ClusterEvent("PersistentVolumeClaim", ActionType.ADD)) == 0
    clock.advance(5)  # past the first backoff (1s)
    assert q.move_all(NODE_ADD) == 1
    assert q.where("default/fit") == Where.ACTIVE and q.where("default/other") == Where.UNSCHEDULABLE
    # moved soon after failing: it waits out its backoff first
    q.add_unschedulable(q.pop_nowait(), {"NodeResourcesFit"})  # type: ignore[arg-type]
    assert q.move_all(ASSIGNED_POD_DELETE) == 1
    assert q.where("default/fit") == Where.BACKOFF
    clock.advance(2)
    assert q.where("default/fit") == Where.ACTIVE


def test_leftovers_retried_after_the_maximum_wait() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock, should_move=lambda *a: False, max_in_unschedulable=300)
    q.add(info("p"))
    q.add_unschedulable(q.pop_nowait(), {"X"})  # type: ignore[arg-type]
    clock.advance(299)
    assert q.flush_unschedulable_leftover() == 0
    clock.advance(2)
    assert q.flush_unschedulable_leftover() == 1
    assert q.where("default/p") == Where.ACTIVE


def test_errors_go_to_backoff_and_updates_retry_parked_pods() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock, should_move=lambda *a: False)
    q.add(info("p"))
    q.add_unschedulable(q.pop_nowait(), set())  # type: ignore[arg-type]
    assert q.where("default/p") == Where.BACKOFF  # no plugin to wait on: an error, retried after backoff
    clock.advance(1)
    q.add_unschedulable(q.pop_nowait(), {"NodeAffinity"})  # type: ignore[arg-type]
    same = info("p")
    same.obj = q.get("default/p").pod.obj  # type: ignore[union-attr]
    q.update(same)
    assert q.where("default/p") == Where.UNSCHEDULABLE  # nothing changed
    changed = parse_pod({**q.get("default/p").pod.obj, "spec": {**q.get("default/p").pod.obj["spec"],  # type: ignore[union-attr]
                                                       "nodeSelector": {"a": "b"}}})
    clock.advance(10)
    q.update(changed)
    assert q.where("default/p") == Where.ACTIVE


def test_gated_pods_wait_for_their_gates() -> None:
    q = SchedulingQueue(clock=FakeClock())
    gated = info("p", schedulingGates=[{"name": "g"}])
    q.add(gated)
    assert q.where("default/p") == Where.GATED and q.pop_nowait() is None
    q.update(info("p"))
    assert q.where("default/p") == Where.ACTIVE


def test_delete_and_done() -> None:
    q = SchedulingQueue(clock=FakeClock())
    q.add(info("a"))
    q.add(info("b"))
    q.delete("default/a")
    x = q.pop_nowait()
    assert x is not None and x.pod.name == "b" and q.where("default/b") == Where.IN_FLIGHT
    q.done("default/b")
    assert "default/b" not in q and len(q) == 0


async def test_pop_waits_and_close_wakes() -> None:
    q = SchedulingQueue(clock=FakeClock())
    t = asyncio.create_task(q.pop())
    await asyncio.sleep(0)
    assert not t.done()
    q.add(info("p"))
    assert (await asyncio.wait_for(t, 1)).pod.name == "p"
    t2 = asyncio.create_task(q.pop())
    await asyncio.sleep(0)
    q.close()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(t2, 1)


def test_nominator() -> None:
    q = SchedulingQueue(clock=FakeClock())
    q.add(parse_pod({**pod("p"), "status": {"nominatedNodeName": "n1"}}))
    assert [p.name for p in q.nominator.pods_for("n1")] == ["p"]
    q.nominator.add(info("p"), "n2")
    assert q.nominator.pods_for("n1") == [] and q.nominator.node_of("default/p") == "n2"
    q.delete("default/p")
    assert not q.nominator
