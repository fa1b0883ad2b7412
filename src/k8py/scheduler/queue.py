"""The scheduling queue: kube-scheduler's PriorityQueue with its three sub-queues.

- **active**: a heap in queue-sort order (higher priority first, then earlier arrival); the
  scheduling loop pops from it.
- **backoff**: pods that failed and must wait ``initial * 2**(attempts-1)`` seconds (capped)
  before another attempt; a timer moves them to active when due.
- **unschedulable**: pods no node fits. They stay until a cluster event that could help them
  arrives (node added or changed, a pod deleted, ...): each plugin that rejected the pod names
  the events it cares about and a *queueing hint* that decides per event. Leftovers are retried
  after ``max_in_unschedulable`` seconds anyway.

Pods with ``schedulingGates`` wait (as kube's SchedulingGates PreEnqueue plugin does) until an
update removes the gates. The queue also holds the *nominator*: pods that preempted others and
are nominated to a node, which later cycles account for on that node.

The queue is a pure state machine over a :class:`~k8py.client.clock.Clock` (tests use the fake
one); the only asynchronous part is :meth:`SchedulingQueue.pop` waiting for work.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from k8py.client.clock import Clock, RealClock, TimerHandle
from k8py.scheduler.types import PodInfo

__all__ = [
    "ActionType",
    "ClusterEvent",
    "QueuedPodInfo",
    "SchedulingQueue",
    "ShutDown",
    "Where",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

SCHEDULING_GATES = "SchedulingGates"


class ShutDown(Exception):
    """The queue was closed."""


class ActionType(enum.IntFlag):
    ADD = 1
    DELETE = 2
    UPDATE_NODE_ALLOCATABLE = 4
    UPDATE_NODE_LABEL = 8
    UPDATE_NODE_TAINT = 16
    UPDATE_NODE_CONDITION = 32
    UPDATE_NODE_ANNOTATION = 64
    UPDATE_POD_LABEL = 128
    UPDATE_POD_SCALE_DOWN = 256
    UPDATE_POD_TOLERATION = 512
    UPDATE_POD_GATES_REMOVED = 1024
    UPDATE_OTHER = 2048
    UPDATE = (UPDATE_NODE_ALLOCATABLE | UPDATE_NODE_LABEL | UPDATE_NODE_TAINT | UPDATE_NODE_CONDITION
              | UPDATE_NODE_ANNOTATION | UPDATE_POD_LABEL | UPDATE_POD_SCALE_DOWN | UPDATE_POD_TOLERATION
              | UPDATE_POD_GATES_REMOVED | UPDATE_OTHER)
    ALL = ADD | DELETE | UPDATE


@dataclass(frozen=True, slots=True)
class ClusterEvent:
    """``resource`` is Node, AssignedPod, UnscheduledPod, Pod (both), PersistentVolumeClaim, ...,
    or ``*``; ``action`` a mask of :class:`ActionType`."""

    resource: str
    action: ActionType
    label: str = ""

    def matches(self, incoming: ClusterEvent) -> bool:
        """Does this registered event cover ``incoming``?"""
        r = self.resource
        if r != "*" and r != incoming.resource and not (
                r == "Pod" and incoming.resource in ("AssignedPod", "UnscheduledPod")):
            return False
        return bool(self.action & incoming.action)

    def __str__(self) -> str:
        return self.label or f"{self.resource}/{self.action!r}"


# Events with a name, as kube's framework.* constants.
NODE_ADD = ClusterEvent("Node", ActionType.ADD, "NodeAdd")
ASSIGNED_POD_ADD = ClusterEvent("AssignedPod", ActionType.ADD, "AssignedPodAdd")
ASSIGNED_POD_DELETE = ClusterEvent("AssignedPod", ActionType.DELETE, "AssignedPodDelete")
UNSCHEDULABLE_TIMEOUT = ClusterEvent("*", ActionType.ALL, "UnschedulableTimeout")
FORCE_ACTIVATE = ClusterEvent("*", ActionType.ALL, "ForceActivate")


class Where(enum.IntEnum):
    NONE = 0
    ACTIVE = 1
    BACKOFF = 2
    UNSCHEDULABLE = 3
    GATED = 4
    IN_FLIGHT = 5


@dataclass(slots=True, eq=False)
class QueuedPodInfo:
    pod: PodInfo
    timestamp: float  # when it last entered the queue (the sort's tie-breaker)
    initial_attempt: float | None = None  # first pop
    attempts: int = 0
    unschedulable_plugins: set[str] = field(default_factory=set)
    pending_plugins: set[str] = field(default_factory=set)
    where: Where = Where.NONE
    backoff_expiry: float = 0.0
    unschedulable_since: float = 0.0
    entry: list[Any] | None = None  # its live heap entry (set to None when it leaves that heap)

    @property
    def key(self) -> str:
        return self.pod.key


# (qpi, event, old, new) -> True if the event may make the pod schedulable
MoveCheck = Callable[[QueuedPodInfo, ClusterEvent, Any, Any], bool]


class Nominator:
    """Pods nominated to nodes by preemption (``status.nominatedNodeName``)."""

    def __init__(self) -> None:
        self._by_node: dict[str, dict[str, PodInfo]] = {}
        self._node_of: dict[str, str] = {}

    def add(self, pod: PodInfo, node: str) -> None:
        self.delete(pod.key)
        if not node:
            return
        self._by_node.setdefault(node, {})[pod.key] = pod
        self._node_of[pod.key] = node

    def update(self, pod: PodInfo) -> None:
        """Refresh the stored pod, keeping its nomination (unless the pod now names another)."""
        node = self._node_of.get(pod.key)
        if pod.nominated_node_name and pod.nominated_node_name != node:
            self.add(pod, pod.nominated_node_name)
        elif node is not None:
            self._by_node[node][pod.key] = pod

    def delete(self, key: str) -> None:
        node = self._node_of.pop(key, None)
        if node is not None:
            pods = self._by_node.get(node)
            if pods is not None:
                pods.pop(key, None)
                if not pods:
                    del self._by_node[node]

    def node_of(self, key: str) -> str | None:
        return self._node_of.get(key)

    def nodes(self) -> list[str]:
        """Nodes that have nominated pods."""
        return list(self._by_node)

    def pods_for(self, node: str) -> list[PodInfo]:
        pods = self._by_node.get(node)
        return list(pods.values()) if pods else []

    def __bool__(self) -> bool:
        return bool(self._node_of)

    def __len__(self) -> int:
        return len(self._node_of)


class SchedulingQueue:
    """See the module docstring. ``should_move`` decides, per pod and cluster event, whether the
    event may help the pod (the scheduler wires it to the plugins' queueing hints)."""

    def __init__(self, *, clock: Clock | None = None, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 max_in_unschedulable: float = 300.0, should_move: MoveCheck | None = None) -> None:
        self.clock: Clock = clock or RealClock()
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_in_unschedulable = max_in_unschedulable
        self.should_move: MoveCheck = should_move or (lambda qpi, ev, old, new: True)
        # pod -> the PreEnqueue plugin keeping it out of active, or None (default: scheduling gates)
        self.pre_enqueue: Callable[[PodInfo], str | None] = lambda p: SCHEDULING_GATES if p.gated else None
        self.nominator = Nominator()
        self._pods: dict[str, QueuedPodInfo] = {}
        self._active: list[list[Any]] = []
        self._backoff: list[list[Any]] = []
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._gated: dict[str, QueuedPodInfo] = {}
        self._seq = itertools.count()
        self._wakeup: asyncio.Event | None = None
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self.moves = 0  # pods moved out of unschedulable by events (for tests and metrics)

    # -- reads ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(1 for q in self._pods.values() if q.where != Where.IN_FLIGHT)

    def __contains__(self, key: object) -> bool:
        return key in self._pods

    def get(self, key: str) -> QueuedPodInfo | None:
        return self._pods.get(key)

    def where(self, key: str) -> Where:
        q = self._pods.get(key)
        return q.where if q is not None else Where.NONE

    def counts(self) -> dict[str, int]:
        out = {w.name.lower(): 0 for w in Where if w != Where.NONE}
        for q in self._pods.values():
            out[q.where.name.lower()] += 1
        return out

    def pending(self) -> list[QueuedPodInfo]:
        return [q for q in self._pods.values() if q.where != Where.IN_FLIGHT]

    # -- adding ----------------------------------------------------------------------------------

    def add(self, pod: PodInfo) -> None:
        """A new pending pod (or one the informer re-lists)."""
        q = self._pods.get(pod.key)
        if q is not None:
            self.update(pod)
            return
        q = QueuedPodInfo(pod, self.clock.now())
        self._pods[pod.key] = q
        if pod.nominated_node_name:
            self.nominator.add(pod, pod.nominated_node_name)
        blocker = self.pre_enqueue(pod)
        if blocker:
            self._to_gated(q, blocker)
        else:
            self._to_active(q)

    def update(self, pod: PodInfo) -> None:
        """A newer version of a pending pod. An unschedulable (or gated) pod whose spec or labels
        changed is given another try, as kube does for any update that could matter."""
        q = self._pods.get(pod.key)
        if q is None:
            self.add(pod)
            return
        old = q.pod
        q.pod = pod
        self.nominator.update(pod)
        if q.where == Where.GATED:
            blocker = self.pre_enqueue(pod)
            if not blocker:
                del self._gated[pod.key]
                q.unschedulable_plugins = set()
                self._to_active(q)
            else:
                q.unschedulable_plugins = {blocker}
            return
        if q.where == Where.UNSCHEDULABLE and _pod_changed(old, pod):
            del self._unschedulable[pod.key]
            self._requeue(q)

    def delete(self, key: str) -> None:
        q = self._pods.pop(key, None)
        self.nominator.delete(key)
        if q is None:
            return
        self._detach(q)
        q.where = Where.NONE

    def done(self, key: str) -> None:
        """The cycle of a popped pod ended with the pod assumed (binding) or gone."""
        q = self._pods.get(key)
        if q is not None and q.where == Where.IN_FLIGHT:
            del self._pods[key]
            q.where = Where.NONE

    def add_unschedulable(self, q: QueuedPodInfo, plugins: Iterable[str] = (),
                          pending_plugins: Iterable[str] = ()) -> None:
        """A popped pod no node fits: park it until an event that ``plugins`` care about.
        Without rejecting plugins (an error), it goes to backoff instead."""
        if q.where != Where.IN_FLIGHT or self._pods.get(q.key) is not q:
            return  # deleted meanwhile, or re-added by an update: that copy wins
        q.unschedulable_plugins = set(plugins)
        q.pending_plugins = set(pending_plugins)
        q.timestamp = self.clock.now()
        if not q.unschedulable_plugins and not q.pending_plugins:
            self._to_backoff(q)
            return
        q.where = Where.UNSCHEDULABLE
        q.unschedulable_since = self.clock.now()
        self._unschedulable[q.key] = q

    def add_backoff(self, q: QueuedPodInfo) -> None:
        """Retry after backoff (a scheduler error, or a failed binding)."""
        cur = self._pods.get(q.key)
        if cur is not None and cur is not q and cur.where != Where.IN_FLIGHT:
            return  # an update re-added it already
        self._pods[q.key] = q
        self._detach(q)
        q.unschedulable_plugins = set()
        q.pending_plugins = set()
        q.timestamp = self.clock.now()
        self._to_backoff(q)

    def activate(self, keys: Iterable[str]) -> None:
        """Move these pods to active now, wherever they wait (kube's Activate)."""
        for key in keys:
            q = self._pods.get(key)
            if q is None or q.where in (Where.ACTIVE, Where.IN_FLIGHT, Where.GATED):
                continue
            self._detach(q)
            self._to_active(q)

    # -- events ----------------------------------------------------------------------------------

    def move_all(self, event: ClusterEvent, old: Any = None, new: Any = None,
                 only: Callable[[QueuedPodInfo], bool] | None = None) -> int:
        """Move unschedulable pods that ``event`` may help to active (or backoff, if their backoff
        has not run out). Returns how many moved."""
        if not self._unschedulable:
            return 0
        moved = []
        check = self.should_move
        wildcard = event.resource == "*"  # a timeout or a forced move: no hint can veto it
        for q in self._unschedulable.values():
            if only is not None and not only(q):
                continue
            try:
                ok = wildcard or check(q, event, old, new)
            except Exception:  # a broken hint must not strand the pod: move it
                log.exception("queueing hint failed for %s on %s", q.key, event)
                ok = True
            if ok:
                moved.append(q)
        for q in moved:
            del self._unschedulable[q.key]
            self._requeue(q)
        self.moves += len(moved)
        return len(moved)

    def flush_unschedulable_leftover(self) -> int:
        """Retry pods that waited longer than ``max_in_unschedulable`` (kube: 5 minutes)."""
        now = self.clock.now()
        return self.move_all(UNSCHEDULABLE_TIMEOUT,
                             only=lambda q: now - q.unschedulable_since >= self.max_in_unschedulable)

    def flush_backoff(self) -> int:
        """Move every pod whose backoff ran out to active (the timer does this by itself)."""
        now = self.clock.now()
        n = 0
        heap = self._backoff
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            q = entry[2]
            if q is None:
                continue
            q.entry = None
            self._to_active(q)
            n += 1
        self._arm_timer()
        return n

    # -- popping ---------------------------------------------------------------------------------

    def pop_nowait(self) -> QueuedPodInfo | None:
        heap = self._active
        while heap:
            entry = heapq.heappop(heap)
            q = entry[3]
            if q is None:
                continue
            q.entry = None
            q.where = Where.IN_FLIGHT
            q.attempts += 1
            if q.initial_attempt is None:
                q.initial_attempt = self.clock.now()
            return q
        return None

    async def pop(self) -> QueuedPodInfo:
        """The next pod to schedule; waits while active is empty. Raises :class:`ShutDown` once
        closed."""
        while True:
            if self._closed:
                raise ShutDown
            q = self.pop_nowait()
            if q is not None:
                return q
            if self._wakeup is None:
                self._wakeup = asyncio.Event()
            self._wakeup.clear()
            await self._wakeup.wait()

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._wakeup is not None:
            self._wakeup.set()

    # -- internals -------------------------------------------------------------------------------

    def backoff_duration(self, q: QueuedPodInfo) -> float:
        d = self.initial_backoff
        for _ in range(1, q.attempts):
            d *= 2
            if d > self.max_backoff:
                return self.max_backoff
        return min(d, self.max_backoff)

    def _requeue(self, q: QueuedPodInfo) -> None:
        """Leaving unschedulable: to backoff if it is still backing off, else to active."""
        expiry = q.timestamp + self.backoff_duration(q)
        if expiry > self.clock.now():
            self._to_backoff(q, expiry)
        else:
            self._to_active(q)

    def _to_active(self, q: QueuedPodInfo) -> None:
        q.where = Where.ACTIVE
        entry = [-q.pod.priority, q.timestamp, next(self._seq), q]
        q.entry = entry
        heapq.heappush(self._active, entry)
        if self._wakeup is not None:
            self._wakeup.set()

    def _to_backoff(self, q: QueuedPodInfo, expiry: float | None = None) -> None:
        if expiry is None:
            expiry = q.timestamp + self.backoff_duration(q)
        q.where = Where.BACKOFF
        q.backoff_expiry = expiry
        entry = [expiry, next(self._seq), q]
        q.entry = entry
        heapq.heappush(self._backoff, entry)
        self._arm_timer()

    def _to_gated(self, q: QueuedPodInfo, plugin: str) -> None:
        q.where = Where.GATED
        q.unschedulable_plugins = {plugin}
        self._gated[q.key] = q

    def _detach(self, q: QueuedPodInfo) -> None:
        if q.where in (Where.ACTIVE, Where.BACKOFF) and q.entry is not None:
            q.entry[-1] = None  # lazily dropped when it reaches the top of its heap
            q.entry = None
        elif q.where == Where.UNSCHEDULABLE:
            self._unschedulable.pop(q.key, None)
        elif q.where == Where.GATED:
            self._gated.pop(q.key, None)

    def _arm_timer(self) -> None:
        heap = self._backoff
        while heap and heap[0][-1] is None:
            heapq.heappop(heap)
        if not heap or self._closed:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = self._timer_at = None
            return
        due = heap[0][0]
        if self._timer is not None and self._timer_at is not None and self._timer_at <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = self.clock.call_later(due - self.clock.now(), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.flush_backoff()


def _pod_changed(old: PodInfo, new: PodInfo) -> bool:
    """kube's isPodUpdated: anything but status and bookkeeping metadata changed."""
    if old.obj is new.obj:
        return False
    om, nm = old.obj.get("metadata") or {}, new.obj.get("metadata") or {}
    if om.get("labels") != nm.get("labels") or om.get("annotations") != nm.get("annotations"):
        return True
    return old.obj.get("spec") != new.obj.get("spec")
