"""The node agent's eviction manager: node pressure, its conditions, and evictions, as kubelet's
``pkg/kubelet/eviction``.

**Signals** (what is observed every 10 s, kubelet's ``evictionMonitoringPeriod``):
``memory.available`` (the node's available memory), ``allocatableMemory.available`` (the memory
the pods may still use: the pods' cgroup ``kubepods``' limit, capacity less ``--system-reserved``
and ``--kube-reserved``, less the working set of every pod in it), ``nodefs.available`` /
``nodefs.inodesFree`` (the filesystem of the agent's data dir), ``imagefs.available`` /
``imagefs.inodesFree`` (the filesystem of the image store) and ``containerfs.available`` / ``containerfs.inodesFree`` (the filesystem of
the containers' writable layers): both live in the data dir, so the three are one filesystem
unless a disk is mounted for the images (kubelet's dedicated image filesystem, which holds the
writable layers too or not: :class:`FsLayout`, decided on the first round as kubelet does);
``pid.available`` (``pid_max`` less the processes that exist).

**Thresholds** are kubelet's flags: ``--eviction-hard memory.available<100Mi,nodefs.available<10%``
(kube's defaults: ``memory.available<100Mi, nodefs.available<10%, imagefs.available<15%,
nodefs.inodesFree<5%, imagefs.inodesFree<5%``; a flag given replaces them all, as kubelet's flag
does), ``--eviction-soft`` with ``--eviction-soft-grace-period`` (each soft signal needs one),
``--eviction-minimum-reclaim``, ``--eviction-pressure-transition-period`` (default 5m) and
``--eviction-max-pod-grace-period``. Values and errors are kubelet's (``ParseThresholdConfig``). As
kubelet with ``--enforce-node-allocatable=pods`` (its default), each hard ``memory.available``
threshold is also one of ``allocatableMemory.available`` (with its minimum reclaim). As kubelet
(``UpdateContainerFsThresholds``), the ``containerfs`` thresholds are those of the filesystem the
writable layers are on (``nodefs``, or ``imagefs`` when an image disk holds them): one given for
``containerfs`` is replaced (with a warning in the log).

**Each round** (:func:`synchronize`, pure): the thresholds met now, plus those met before whose
minimum reclaim is not yet satisfied; when each was first met (a soft one acts after its grace
period); the node conditions they stand for (``MemoryPressure`` for both memory signals,
``DiskPressure`` for the filesystems, ``PIDPressure``), which stay True until none was seen for
the transition period. Then, as kubelet: pods over their ephemeral-storage limits are evicted (a
container's writable layer (unless on an image disk) and logs against its own
``limits.ephemeral-storage``; the pod's total with its local volumes against the sum of its
containers'); else, when a threshold acts
(memory ones first), the node gets an ``EvictionThresholdMet`` event and one pod is evicted,
chosen by kubelet's ranking (pods whose usage exceeds their requests first, then lower priority,
then usage above requests, disk usage being what is on the filesystem under pressure: writable
layers, logs, local volumes; for PIDs: priority, then process count). A hard threshold evicts with
a grace period of 1 s (kubelet's ``immediateEvictionGracePeriodSeconds``), a soft one with
``--eviction-max-pod-grace-period`` (the pod's own when that is 0 or longer). Critical pods
(system priority) are never evicted. The evicted pod ends ``Failed`` with reason ``Evicted``,
kubelet's message and a ``DisruptionTarget`` condition; the next round waits until it has
stopped (30 s at most).

While the node has a pressure condition, new pods are refused on the node as kubelet's admit
handler does (memory pressure alone refuses only BestEffort pods that do not tolerate the
memory-pressure taint), with reason ``Evicted`` and ``The node had condition: [X]. ``.

Under disk pressure the node reclaims what it can without evicting a pod first (kubelet's
node-level reclaim, :func:`reclaim_steps`): dead containers (kubelet's container GC: every one of
a deleted or finished pod, all but the newest of each name of a running pod), then every image
no container uses, as far as they are on the filesystem under pressure; when that clears every
threshold no pod is evicted. After the containers, dead sandboxes go as kubelet's
``evictSandboxes`` removes them (:func:`dead_sandboxes`: not ready, holding no container, all
but a pod's newest; all of a pod finished or gone); the agent's periodic collection does the same.
The ``kubepods`` cgroup's limit that ``allocatableMemory.available`` is measured against is
written by :mod:`k8py.kubelet.podcgroups`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from k8py.api import gotext
from k8py.api.corev1 import int_value, pod_requests, resource_amount, tolerates
from k8py.api.defaults import pod_qos_class
from k8py.api.quantity import QuantityError, canonicalize, parse_quantity
from k8py.kubelet.node import Readings, binary_si, float32
from k8py.kubelet.runtime.cgroups import Cgroups
from k8py.kubelet.runtime.types import (
    ContainerState,
    ContainerStatus,
    Runtime,
    RuntimeServiceError,
    SandboxState,
    SandboxStatus,
)
from k8py.kubelet.spec import PODS_CGROUP

__all__ = [
    "DEFAULT_HARD",
    "ContainerUsage",
    "EvictionConfig",
    "EvictionError",
    "EvictionManager",
    "EvictionState",
    "Filesystems",
    "FsLayout",
    "FsStats",
    "Observation",
    "PodUsage",
    "PodsCgroup",
    "PodsMemory",
    "Threshold",
    "admit",
    "config_from_flags",
    "container_fs_thresholds",
    "dead_sandboxes",
    "disk_parts",
    "eviction_message",
    "local_storage_violation",
    "measure",
    "observe",
    "parse_duration",
    "parse_enforce",
    "parse_map",
    "parse_thresholds",
    "rank",
    "reclaim_containers",
    "reclaim_images",
    "reclaim_sandboxes",
    "reclaim_steps",
    "synchronize",
    "unused_containers",
]

log = logging.getLogger("k8py.kubelet")
Obj = dict[str, Any]

MEMORY_AVAILABLE = "memory.available"
NODEFS_AVAILABLE = "nodefs.available"
NODEFS_INODES_FREE = "nodefs.inodesFree"
IMAGEFS_AVAILABLE = "imagefs.available"
IMAGEFS_INODES_FREE = "imagefs.inodesFree"
PID_AVAILABLE = "pid.available"
ALLOCATABLE_MEMORY_AVAILABLE = "allocatableMemory.available"
CONTAINERFS_AVAILABLE = "containerfs.available"
CONTAINERFS_INODES_FREE = "containerfs.inodesFree"
MEMORY_SIGNALS = (MEMORY_AVAILABLE, ALLOCATABLE_MEMORY_AVAILABLE)

# signal -> (the resource it reclaims, the node condition it sets): kubelet's signalToResource
# and signalToNodeCondition (swap.available, named in kube's API types, is not one of them:
# kubelet refuses it as an unsupported signal, and so does this)
SIGNALS: dict[str, tuple[str, str]] = {
    MEMORY_AVAILABLE: ("memory", "MemoryPressure"),
    ALLOCATABLE_MEMORY_AVAILABLE: ("memory", "MemoryPressure"),
    NODEFS_AVAILABLE: ("ephemeral-storage", "DiskPressure"),
    NODEFS_INODES_FREE: ("inodes", "DiskPressure"),
    IMAGEFS_AVAILABLE: ("ephemeral-storage", "DiskPressure"),
    IMAGEFS_INODES_FREE: ("inodes", "DiskPressure"),
    CONTAINERFS_AVAILABLE: ("ephemeral-storage", "DiskPressure"),
    CONTAINERFS_INODES_FREE: ("inodes", "DiskPressure"),
    PID_AVAILABLE: ("pids", "PIDPressure"),
}
PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure")
# kubelet's DefaultEvictionHard (Linux; imagefs.inodesFree since 1.30)
DEFAULT_HARD: dict[str, str] = {MEMORY_AVAILABLE: "100Mi", NODEFS_AVAILABLE: "10%", IMAGEFS_AVAILABLE: "15%",
                                NODEFS_INODES_FREE: "5%", IMAGEFS_INODES_FREE: "5%"}
# kubelet's --enforce-node-allocatable: its default, and the values it knows
ENFORCE_PODS = "pods"
ENFORCE_NONE = "none"
ENFORCE_OPTIONS = (ENFORCE_PODS, "system-reserved", "kube-reserved", ENFORCE_NONE)
DEFAULT_TRANSITION_PERIOD = 300.0  # --eviction-pressure-transition-period
MONITORING_INTERVAL = 10.0  # kubelet's evictionMonitoringPeriod
IMMEDIATE_GRACE = 1.0  # kubelet's immediateEvictionGracePeriodSeconds
CLEANUP_TIMEOUT = 30.0  # kubelet's podCleanupTimeout
CLEANUP_POLL = 1.0
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
REASON = "Evicted"
TAINT_MEMORY_PRESSURE = {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}
# ephemeral volumes kubelet counts against the pod's ephemeral storage (IsLocalEphemeralVolume)
LOCAL_EPHEMERAL_KINDS = ("emptyDir", "configMap", "downwardAPI", "gitRepo")


class EvictionError(ValueError):
    """A flag value kubelet would refuse; ``str(e)`` is kubelet's message."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class Threshold:
    """``signal < value``: a quantity (bytes, inodes or PIDs) or a fraction of capacity."""

    signal: str
    quantity: int | None = None
    percentage: float | None = None  # float32, as kubelet keeps it
    grace_period: float = 0.0  # seconds; 0: a hard threshold
    min_reclaim: tuple[int | None, float | None] | None = None  # (quantity, percentage)
    text: str = ""  # the value as given, for messages

    @property
    def hard(self) -> bool:
        return self.grace_period == 0

    def amount(self, capacity: int) -> int:
        """kubelet's ``GetThresholdQuantity``: the threshold in units, given the capacity."""
        if self.quantity is not None:
            return self.quantity
        return int(float(capacity) * float(self.percentage or 0.0))

    def reclaim(self, capacity: int) -> int:
        if self.min_reclaim is None:
            return 0
        q, p = self.min_reclaim
        return q if q is not None else int(float(capacity) * float(p or 0.0))


@dataclass(frozen=True, slots=True)
class EvictionConfig:
    thresholds: tuple[Threshold, ...] = ()
    pressure_transition_period: float = DEFAULT_TRANSITION_PERIOD
    max_pod_grace_period: int = 0  # --eviction-max-pod-grace-period
    monitoring_interval: float = MONITORING_INTERVAL
    # --enforce-node-allocatable: with "pods" the pods' cgroup is limited to allocatable
    # (k8py.kubelet.podcgroups) as well as measured against it here
    enforce: tuple[str, ...] = (ENFORCE_PODS,)

    def hard(self, signal: str) -> Threshold | None:
        return next((t for t in self.thresholds if t.signal == signal and t.hard), None)


def parse_map(text: str, sep: str) -> dict[str, str]:
    """kubelet's map flags: ``a<1,b<2`` (``sep`` ``<``: --eviction-hard/-soft) or ``a=1,b=2``;
    a repeated key keeps the last value."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, s, v = part.partition(sep)
        if not s or not k.strip():
            raise EvictionError(f"malformed pair, expect string{sep}string: {part!r}")
        out[k.strip()] = v.strip()
    return out


def parse_duration(s: str) -> float:
    """Go's ``time.ParseDuration`` (``1m30s``, ``500ms``), in seconds (its errors as EvictionError)."""
    try:
        return gotext.parse_duration(s)
    except gotext.DurationError as e:
        raise EvictionError(str(e)) from None


def _valid(signal: str) -> None:
    if signal not in SIGNALS:
        raise EvictionError(f"unsupported eviction signal {signal}")


def _percentage(signal: str, val: str) -> float:
    try:
        return float32(float(val.rstrip("%")) / 100)
    except ValueError:
        raise EvictionError(f'strconv.ParseFloat: parsing "{val.rstrip("%")}": invalid syntax') from None


def _quantity(val: str) -> int:
    try:
        q = parse_quantity(val)
    except (QuantityError, ValueError) as e:
        raise EvictionError(str(e)) from None
    return -1 if q.sign() < 0 else q.int_value()


def _statement(signal: str, val: str) -> Threshold | None:
    """kubelet's ``parseThresholdStatement``; None for ``0%`` and ``100%`` (ignored)."""
    _valid(signal)
    if val.endswith("%"):
        if val in ("0%", "100%"):
            return None
        p = _percentage(signal, val)
        if p < 0:
            raise EvictionError(f"eviction percentage threshold {signal} must be >= 0%: {val}")
        if p > 1:
            raise EvictionError(f"eviction percentage threshold {signal} must be <= 100%: {val}")
        return Threshold(signal, percentage=p, text=val)
    q = _quantity(val)
    if q <= 0:
        raise EvictionError(f"eviction threshold {signal} must be positive: {canonicalize(val)}")
    return Threshold(signal, quantity=q, text=str(canonicalize(val)))


def parse_enforce(text: str) -> tuple[str, ...]:
    """kubelet's ``--enforce-node-allocatable`` (a comma-separated list; empty: nothing), checked
    as kubelet's configuration validation does. k8py enforces ``pods`` (the pods' cgroup's limits
    and the ``allocatableMemory.available`` thresholds) or nothing."""
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    for v in values:
        if v not in ENFORCE_OPTIONS:
            raise EvictionError(
                f'invalid configuration: option "{v}" specified for enforceNodeAllocatable '
                f'(--enforce-node-allocatable). Valid options are "{ENFORCE_PODS}", "system-reserved", '
                f'"kube-reserved", or "{ENFORCE_NONE}"')
        if v == ENFORCE_NONE and len(values) > 1:
            raise EvictionError(
                "invalid configuration: enforceNodeAllocatable (--enforce-node-allocatable) may not contain "
                f'additional enforcements when "{ENFORCE_NONE}" is specified')
        if v not in (ENFORCE_PODS, ENFORCE_NONE):
            raise EvictionError(f'--enforce-node-allocatable "{v}" is not supported by k8py (it has no reserved '
                                f'cgroups to limit): give "{ENFORCE_PODS}" or "{ENFORCE_NONE}"')
    return values


def parse_thresholds(hard: Mapping[str, str], soft: Mapping[str, str] | None = None,
                     grace: Mapping[str, str] | None = None,
                     min_reclaim: Mapping[str, str] | None = None,
                     enforce: Collection[str] = (ENFORCE_PODS,)) -> tuple[Threshold, ...]:
    """kubelet's ``ParseThresholdConfig``: hard then soft thresholds, each soft one with its
    grace period, minimum reclaims attached by signal; with ``pods`` enforced (kubelet's
    ``--enforce-node-allocatable`` default), each hard ``memory.available`` threshold again for
    ``allocatableMemory.available`` (kubelet's ``addAllocatableThresholds``)."""
    periods: dict[str, float] = {}
    for sig, val in (grace or {}).items():
        _valid(sig)
        d = parse_duration(val)
        if d < 0:
            raise EvictionError(f"invalid eviction grace period specified: {val}, must be a positive value")
        periods[sig] = d
    reclaims: dict[str, tuple[int | None, float | None]] = {}
    for sig, val in (min_reclaim or {}).items():
        _valid(sig)
        if val.endswith("%"):
            p = _percentage(sig, val)
            if p <= 0:
                raise EvictionError(f"eviction percentage minimum reclaim {sig} must be positive: {val}")
            reclaims[sig] = (None, p)
        else:
            q = _quantity(val)
            if q < 0:
                raise EvictionError(f"negative eviction minimum reclaim specified for {sig}")
            reclaims[sig] = (q, None)
    out: list[Threshold] = []
    for sig, val in hard.items():
        t = _statement(sig, val)
        if t is not None:
            out.append(t)
    for sig, val in (soft or {}).items():
        t = _statement(sig, val)
        if t is None:
            continue
        if sig not in periods:
            raise EvictionError(f"grace period must be specified for the soft eviction threshold {sig}")
        out.append(Threshold(t.signal, t.quantity, t.percentage, periods[sig], text=t.text))
    out = [Threshold(t.signal, t.quantity, t.percentage, t.grace_period, reclaims.get(t.signal), t.text) for t in out]
    if ENFORCE_PODS in enforce:
        out += [Threshold(ALLOCATABLE_MEMORY_AVAILABLE, t.quantity, t.percentage, 0.0, t.min_reclaim, t.text)
                for t in out if t.signal == MEMORY_AVAILABLE and t.hard]
    return tuple(out)


def container_fs_thresholds(thresholds: Sequence[Threshold], image_fs: bool = False,
                            split: bool = False) -> tuple[tuple[Threshold, ...], list[str]]:
    """kubelet's ``UpdateContainerFsThresholds``: the ``containerfs`` thresholds follow the
    filesystem the writable layers are on, whatever was given for them (the warnings say what
    was replaced). On one filesystem (``image_fs`` False), or with images and containers split
    onto an image disk and the node's (both True), containerfs is nodefs; with one image disk
    for both (``image_fs`` only), containerfs is imagefs. A threshold the source signal lacks is
    left out (kubelet adds an empty one that is never met)."""
    if image_fs == split:
        source = (NODEFS_AVAILABLE, NODEFS_INODES_FREE)
    elif image_fs:
        source = (IMAGEFS_AVAILABLE, IMAGEFS_INODES_FREE)
    else:  # containers apart from images without an image disk: kubelet knows no such layout
        return tuple(thresholds), []
    warnings = []
    for t in thresholds:
        if t.signal in (CONTAINERFS_AVAILABLE, CONTAINERFS_INODES_FREE):
            warnings.append(f"found {t.signal} for {'hard' if t.hard else 'soft'} eviction. ignoring")
    out = [t for t in thresholds if t.signal not in (CONTAINERFS_AVAILABLE, CONTAINERFS_INODES_FREE)]
    for src, dst in zip(source, (CONTAINERFS_AVAILABLE, CONTAINERFS_INODES_FREE), strict=True):
        for hard in (True, False):
            f = next((t for t in thresholds if t.signal == src and t.hard == hard), None)
            if f is not None:
                out.append(Threshold(dst, f.quantity, f.percentage, f.grace_period, f.min_reclaim, f.text))
    return tuple(out), warnings


def config_from_flags(*, hard: str | None = None, soft: str = "", soft_grace: str = "", min_reclaim: str = "",
                      transition: str = "", max_pod_grace: int = 0, enforce: str = ENFORCE_PODS) -> EvictionConfig:
    """The eviction settings from kubelet's flag strings (``hard`` None: kube's defaults;
    ``enforce``: ``--enforce-node-allocatable``)."""
    enforced = parse_enforce(enforce)
    thresholds = parse_thresholds(DEFAULT_HARD if hard is None else parse_map(hard, "<"), parse_map(soft, "<"),
                                  parse_map(soft_grace, "="), parse_map(min_reclaim, "="), enforced)
    period = parse_duration(transition) if transition else DEFAULT_TRANSITION_PERIOD
    if period < 0:
        raise EvictionError(f"invalid eviction pressure transition period: {transition}, must not be negative")
    if max_pod_grace < 0:
        raise EvictionError(f"invalid eviction max pod grace period: {max_pod_grace}, must not be negative")
    return EvictionConfig(thresholds, period, max_pod_grace, enforce=enforced)


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True, slots=True)
class Observation:
    available: int
    capacity: int


@dataclass(frozen=True, slots=True)
class PodsMemory:
    """The pods' cgroup (``kubepods``): the memory limit kubelet gives it (capacity less the
    reservations) and the working set of everything in it."""

    limit: int
    working_set: int


@dataclass(frozen=True, slots=True)
class FsStats:
    """One filesystem (``statvfs`` of a directory on it)."""

    dev: int
    bytes_total: int
    bytes_available: int
    inodes_total: int
    inodes_free: int

    @classmethod
    def of(cls, path: str) -> FsStats:
        """Blocking: one ``stat`` and one ``statvfs``."""
        st = os.statvfs(path)
        return cls(os.stat(path).st_dev, st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize, st.f_files,
                   st.f_favail)


@dataclass(frozen=True, slots=True)
class Filesystems:
    """The filesystems of the node's data dir, its image store and its containers' writable
    layers (kubelet's nodefs, imagefs and containerfs)."""

    node: FsStats
    images: FsStats
    containers: FsStats

    def layout(self) -> FsLayout:
        """kubelet's ``HasDedicatedImageFs`` (images apart from the node's filesystem) and
        ``IsContainerFsSeparateFromImageFs`` (writable layers apart from the images)."""
        image_fs = self.images.dev != self.node.dev
        return FsLayout(image_fs, image_fs and self.containers.dev != self.images.dev)


@dataclass(frozen=True, slots=True)
class FsLayout:
    image_fs: bool = False  # a dedicated image filesystem
    split: bool = False  # the writable layers are not on it (they are on the node's)


SINGLE_FS = FsLayout()


def observe(r: Readings, pods: PodsMemory | None = None, fs: Filesystems | None = None) -> dict[str, Observation]:
    """The signals from one reading of the machine (kubelet's ``makeSignalObservations``).
    nodefs is the data dir's filesystem (``r``), imagefs the image store's and containerfs the
    writable layers' (``fs``; None: both on the data dir's, as they are unless a disk is mounted
    for them). ``allocatableMemory.available`` is observed when the pods' cgroup was read: its
    limit less its working set (less than 0 when the pods use more), out of its limit, as
    kubelet's summary has it."""
    out = {MEMORY_AVAILABLE: Observation(r.memory_available, r.memory_total)}
    if pods is not None:
        out[ALLOCATABLE_MEMORY_AVAILABLE] = Observation(pods.limit - pods.working_set, pods.limit)
    if r.disk_total > 0:
        out[NODEFS_AVAILABLE] = out[IMAGEFS_AVAILABLE] = out[CONTAINERFS_AVAILABLE] = Observation(
            r.disk_available, r.disk_total)
    if r.inodes_total > 0:
        out[NODEFS_INODES_FREE] = out[IMAGEFS_INODES_FREE] = out[CONTAINERFS_INODES_FREE] = Observation(
            r.inodes_free, r.inodes_total)
    if fs is not None:
        for f, avail, inodes in ((fs.images, IMAGEFS_AVAILABLE, IMAGEFS_INODES_FREE),
                                 (fs.containers, CONTAINERFS_AVAILABLE, CONTAINERFS_INODES_FREE)):
            if f.bytes_total > 0:
                out[avail] = Observation(f.bytes_available, f.bytes_total)
            if f.inodes_total > 0:
                out[inodes] = Observation(f.inodes_free, f.inodes_total)
    if r.pid_max > 0:
        out[PID_AVAILABLE] = Observation(r.pid_max - r.pids_in_use, r.pid_max)
    return out


def _met(thresholds: Iterable[Threshold], obs: Mapping[str, Observation], with_reclaim: bool) -> list[Threshold]:
    """kubelet's ``thresholdsMet``: available below the threshold (plus its minimum reclaim)."""
    out = []
    for t in thresholds:
        o = obs.get(t.signal)
        if o is None:
            continue
        q = t.amount(o.capacity) + (t.reclaim(o.capacity) if with_reclaim else 0)
        if q > o.available:
            out.append(t)
    return out


@dataclass(slots=True)
class EvictionState:
    """What one round hands the next (kubelet's manager fields)."""

    thresholds_met: list[Threshold] = field(default_factory=list)  # acting, not yet reclaimed
    first_observed: dict[Threshold, float] = field(default_factory=dict)
    condition_seen: dict[str, float] = field(default_factory=dict)  # condition -> last time met
    conditions: tuple[str, ...] = ()  # the node's pressure conditions now


def synchronize(config: EvictionConfig, state: EvictionState, obs: Mapping[str, Observation],
                now: float) -> tuple[EvictionState, list[Threshold]]:
    """One round of kubelet's ``synchronize`` up to the choice of what to reclaim: the new state
    and the thresholds that act now (grace periods met), memory first."""
    met = _met(config.thresholds, obs, with_reclaim=False)
    for t in _met(state.thresholds_met, obs, with_reclaim=True):  # not yet reclaimed enough
        if t not in met:
            met.append(t)
    first = {t: state.first_observed.get(t, now) for t in met}
    seen = dict(state.condition_seen)
    for t in met:
        seen[SIGNALS[t.signal][1]] = now
    conditions = tuple(c for c in PRESSURE_CONDITIONS
                       if c in seen and now - seen[c] < config.pressure_transition_period)
    acting = [t for t, at in first.items() if now - at >= t.grace_period]
    new = EvictionState(thresholds_met=acting, first_observed=first, condition_seen=seen, conditions=conditions)
    # kubelet's byEvictionPriority: memory (the node's and the pods') before everything else
    acting = sorted(acting, key=lambda t: t.signal not in MEMORY_SIGNALS)
    return new, acting


# --------------------------------------------------------------------------- pods' usage


@dataclass(slots=True)
class ContainerUsage:
    name: str
    memory: int | None = None  # working set bytes
    rootfs: int | None = None  # writable layer bytes
    logs: int | None = None
    inodes: int = 0  # of its writable layer and logs
    processes: int = 0
    rootfs_inodes: int | None = None  # of its writable layer alone (None: all of inodes)


@dataclass(slots=True)
class PodUsage:
    containers: list[ContainerUsage] = field(default_factory=list)
    volumes: int = 0  # local ephemeral volumes (emptyDir on disk, configMap, downwardAPI)
    volume_inodes: int = 0

    @property
    def memory(self) -> int:
        return sum(c.memory or 0 for c in self.containers)

    @property
    def disk(self) -> int:
        """The pod's ephemeral storage: writable layers, logs and local ephemeral volumes."""
        return sum((c.rootfs or 0) + (c.logs or 0) for c in self.containers) + self.volumes

    @property
    def inodes(self) -> int:
        return sum(c.inodes for c in self.containers) + self.volume_inodes

    @property
    def processes(self) -> int:
        return sum(c.processes for c in self.containers)

    def disk_of(self, parts: Collection[str]) -> int:
        """The bytes of some of the pod's storage (``rootfs``, ``logs``, ``volumes``): kubelet's
        ``podDiskUsage`` with the fs stats one filesystem's signals measure."""
        n = sum(c.rootfs or 0 for c in self.containers) if "rootfs" in parts else 0
        n += sum(c.logs or 0 for c in self.containers) if "logs" in parts else 0
        return n + (self.volumes if "volumes" in parts else 0)

    def inodes_of(self, parts: Collection[str]) -> int:
        n = 0
        for c in self.containers:
            root = c.inodes if c.rootfs_inodes is None else c.rootfs_inodes
            n += (root if "rootfs" in parts else 0) + (c.inodes - root if "logs" in parts else 0)
        return n + (self.volume_inodes if "volumes" in parts else 0)


def _spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("spec") or {}


def _request(pod: Mapping[str, Any], resource: str) -> int:
    """kube's ``GetResourceRequestQuantity``: the pod's requests as the scheduler counts them
    (containers summed, sidecars added, init containers as their peak, pod-level resources in
    place of the containers'), then its overhead when that total is not 0."""
    spec = _spec(pod)
    total = pod_requests({k: v for k, v in spec.items() if k != "overhead"}).get(resource, 0)
    overhead = (spec.get("overhead") or {}).get(resource)
    return total + resource_amount(resource, overhead) if total and overhead is not None else total


def pod_limit(pod: Mapping[str, Any], resource: str) -> int | None:
    """kube's ``PodLimits`` for one resource: the containers' limits summed (None when no
    container sets one), at least the largest init container's; sidecars add up."""
    spec = _spec(pod)
    found = False
    total = 0
    for c in spec.get("containers") or ():
        v = ((c.get("resources") or {}).get("limits") or {}).get(resource)
        if v is not None:
            found = True
            total += int_value(v)
    peak = 0
    for c in spec.get("initContainers") or ():
        v = ((c.get("resources") or {}).get("limits") or {}).get(resource)
        if v is None:
            continue
        found = True
        if c.get("restartPolicy") == "Always":
            total += int_value(v)
        else:
            peak = max(peak, int_value(v))
    return max(total, peak) if found else None


def _priority(pod: Mapping[str, Any]) -> int:
    p = _spec(pod).get("priority")
    return int(p) if p is not None else 0


def is_critical(pod: Mapping[str, Any]) -> bool:
    """kubelet's ``IsCriticalPod``: a static or mirror pod, or a system priority."""
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    if ann.get("kubernetes.io/config.source", "api") != "api" or "kubernetes.io/config.mirror" in ann:
        return True
    return _priority(pod) >= SYSTEM_CRITICAL_PRIORITY


def _uid(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid", ""))


ALL_PARTS = frozenset({"rootfs", "logs", "volumes"})


def disk_parts(signal: str, layout: FsLayout = SINGLE_FS) -> frozenset[str]:
    """What of a pod's storage a filesystem signal ranks it by (kubelet's
    ``buildSignalToRankFunc``): on one filesystem everything; with a dedicated image
    filesystem, nodefs the logs and local volumes, imagefs and containerfs the writable layers;
    with the writable layers split from the image filesystem, nodefs and containerfs all of it,
    imagefs nothing of the pods' (images only)."""
    if not layout.image_fs:
        return ALL_PARTS
    node_side = signal in (NODEFS_AVAILABLE, NODEFS_INODES_FREE)
    if not layout.split:
        return frozenset({"logs", "volumes"}) if node_side else frozenset({"rootfs"})
    return ALL_PARTS if node_side or signal in (CONTAINERFS_AVAILABLE, CONTAINERFS_INODES_FREE) else frozenset()


def reclaim_steps(signal: str, layout: FsLayout = SINGLE_FS) -> tuple[str, ...]:
    """What the node frees before evicting a pod for a filesystem signal (kubelet's
    ``buildSignalToNodeReclaimFuncs``): dead containers then unused images on one filesystem;
    with a dedicated image filesystem nothing for nodefs, both for imagefs and containerfs;
    split, images for imagefs and dead containers for nodefs and containerfs."""
    if not layout.image_fs:
        return ("containers", "images")
    image_side = signal in (IMAGEFS_AVAILABLE, IMAGEFS_INODES_FREE)
    if not layout.split:
        return () if signal in (NODEFS_AVAILABLE, NODEFS_INODES_FREE) else ("containers", "images")
    return ("images",) if image_side else ("containers",)


def rank(pods: Sequence[Obj], usage: Mapping[str, PodUsage], signal: str, layout: FsLayout = SINGLE_FS) -> list[Obj]:
    """The pods in eviction order for ``signal`` (kubelet's rankMemoryPressure,
    rankDiskPressureFunc, rankPIDPressure): a pod without stats goes first."""
    parts = disk_parts(signal, layout)

    def key(pod: Obj) -> tuple[Any, ...]:
        u = usage.get(_uid(pod))
        if u is None:
            return (0,)
        if signal == PID_AVAILABLE:
            return (1, _priority(pod), -u.processes)
        if signal in MEMORY_SIGNALS:
            used = u.memory
            req = over = _request(pod, "memory")
        elif SIGNALS[signal][0] == "inodes":
            used = u.inodes_of(parts)
            # no pod requests inodes: every pod using some exceeds its request. The usage above
            # the request is kubelet's too: inodes less the ephemeral-storage request (its disk
            # comparison subtracts that request whatever the resource)
            req, over = 0, _request(pod, "ephemeral-storage")
        else:
            used = u.disk_of(parts)
            req = over = _request(pod, "ephemeral-storage")
        return (1, 0 if used > req else 1, _priority(pod), -(used - over))

    return sorted(pods, key=key)  # sorted() is stable: ties keep the given order


# --------------------------------------------------------------------------- messages


def _qty(n: int) -> str:
    """A byte count as a BinarySI Quantity prints it (a negative one with its sign)."""
    if n < 0:
        return "-" + _qty(-n)
    return binary_si(n) if n >= 1024 else str(n)


def eviction_message(resource: str, pod: Mapping[str, Any], usage: PodUsage | None, threshold: Threshold,
                     obs: Observation) -> str:
    """kubelet's ``evictionMessage``: the starved resource, the threshold and what was
    available, then (memory, a pod with pod-level memory requests) the pod's use and request,
    then each container using more than it requested."""
    msg = (f"The node was low on resource: {resource}. "
           f"Threshold quantity: {_fmt(threshold.amount(obs.capacity), resource)}, "
           f"available: {_fmt(obs.available, resource)}. ")
    if usage is None or resource not in ("memory", "ephemeral-storage"):
        return msg
    spec = _spec(pod)
    pod_level = ((spec.get("resources") or {}).get("requests") or {}).get(resource)
    if resource == "memory" and pod_level is not None:
        name = (pod.get("metadata") or {}).get("name", "")
        msg += (f"Pod {name} was using {_qty(usage.memory)}, request is {canonicalize(pod_level)}, "
                f"has larger consumption of {resource}. ")
    declared = {str(c.get("name")): c for c in [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]}
    for cu in usage.containers:
        c = declared.get(cu.name)
        if c is None:
            continue
        raw = ((c.get("resources") or {}).get("requests") or {}).get(resource)
        req = int_value(raw) if raw is not None else 0
        if resource == "memory":
            used = cu.memory
        else:
            used = (cu.rootfs or 0) + (cu.logs or 0) if cu.rootfs is not None and cu.logs is not None else None
        if used is not None and used > req:
            msg += (f"Container {cu.name} was using {_qty(used)}, request is "
                    f"{canonicalize(raw) if raw is not None else '0'}, has larger consumption of {resource}. ")
    return msg


def _fmt(n: int, resource: str) -> str:
    return _qty(n) if resource in ("memory", "ephemeral-storage") else str(n)


def local_storage_violation(pod: Mapping[str, Any], usage: PodUsage, image_fs: bool = False) -> str | None:
    """kubelet's ``podEphemeralStorageLimitEviction`` and ``containerEphemeralStorageLimitEviction``:
    the eviction message, or None (emptyDir ``sizeLimit`` is the volume manager's). With a
    dedicated image filesystem (``image_fs``) a container's writable layer is not held against
    its own limit, only its logs are, as kubelet's."""
    limit = pod_limit(pod, "ephemeral-storage")
    if limit is not None and usage.disk > limit:
        return ("Pod ephemeral local storage usage exceeds the total limit of containers "
                f"{_pod_limit_text(pod, limit)}. ")
    limits = {str(c.get("name")): ((c.get("resources") or {}).get("limits") or {}).get("ephemeral-storage")
              for c in _spec(pod).get("containers") or ()}
    for cu in usage.containers:
        raw = limits.get(cu.name)
        if raw is None or int_value(raw) == 0:
            continue
        if (cu.logs or 0) + (0 if image_fs else cu.rootfs or 0) > int_value(raw):
            return f'Container {cu.name} exceeded its local ephemeral storage limit "{canonicalize(raw)}". '
    return None


def _pod_limit_text(pod: Mapping[str, Any], limit: int) -> str:
    """The pod's ephemeral-storage limit as kube prints the summed Quantity: one container's
    limit as written, a sum in the format of the first."""
    raws = [((c.get("resources") or {}).get("limits") or {}).get("ephemeral-storage")
            for c in [*(_spec(pod).get("containers") or ()), *(_spec(pod).get("initContainers") or ())]]
    raws = [r for r in raws if r is not None]
    if len(raws) == 1:
        return str(canonicalize(raws[0]))
    first = str(raws[0]) if raws else ""
    binary = any(first.endswith(s) for s in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))
    return binary_si(limit) if binary else str(canonicalize(str(limit)))


def admit(pod: Mapping[str, Any], conditions: Collection[str]) -> tuple[str, str] | None:
    """kubelet's eviction admit handler: (reason, message) when the node's pressure refuses
    ``pod``, else None."""
    if not conditions or is_critical(pod):
        return None
    if set(conditions) == {"MemoryPressure"}:
        if pod_qos_class(dict(pod)) != "BestEffort":
            return None
        if any(tolerates(t, TAINT_MEMORY_PRESSURE) for t in _spec(pod).get("tolerations") or ()):
            return None
    return REASON, f"The node had condition: [{' '.join(conditions)}]. "


# --------------------------------------------------------------------------- the manager


class EvictionManager:
    """The asyncio shell around :func:`synchronize`: reads the machine and the pods' usage,
    evicts through ``evict(uid, message, grace, disruption)`` (``disruption``: a node-pressure
    eviction, which gets the ``DisruptionTarget`` condition), and tells the node its conditions.

    ``pods()`` gives the active pods (admitted, not finished, not being deleted); ``usage(pod,
    what)`` measures one pod (``what``: the resources needed: ``memory``, ``disk``, ``pids``);
    ``stopped(uid)`` says whether an evicted pod's containers have all stopped; ``record(obj,
    type, reason, message)`` writes an event, ``node()`` the Node to write it on;
    ``reclaim_containers()`` and ``reclaim_images()`` free what the node can without evicting
    pods (dead containers, unused images); ``filesystems()`` reads the node's, the image
    store's and the writable layers' filesystems (None: all are the data dir's);
    ``pods_memory(readings)`` reads the pods' cgroup (None: not known, e.g. simulated nodes, and
    then ``allocatableMemory.available`` is not observed)."""

    def __init__(self, config: EvictionConfig, *, read: Callable[[], Awaitable[Readings]],
                 pods: Callable[[], list[Obj]], usage: Callable[[Obj, frozenset[str]], Awaitable[PodUsage]],
                 evict: Callable[[str, str, float, bool], bool], stopped: Callable[[str], bool],
                 record: Callable[[Obj, str, str, str], None], node: Callable[[], Obj],
                 conditions_changed: Callable[[], None] | None = None,
                 reclaim_containers: Callable[[], Awaitable[object]] | None = None,
                 reclaim_images: Callable[[], Awaitable[object]] | None = None,
                 filesystems: Callable[[], Awaitable[Filesystems]] | None = None,
                 pods_memory: Callable[[Readings], Awaitable[PodsMemory | None]] | None = None) -> None:
        self.config = config
        self.layout: FsLayout | None = None  # known after the first round (kubelet's too)
        self.state = EvictionState()
        self._read = read
        self._pods_memory = pods_memory
        self._filesystems = filesystems
        self._pods = pods
        self._usage = usage
        self._evict = evict
        self._stopped = stopped
        self._record = record
        self._node = node
        self._changed = conditions_changed
        self._reclaim = {"containers": reclaim_containers, "images": reclaim_images}
        self.evictions = 0

    @property
    def conditions(self) -> tuple[str, ...]:
        return self.state.conditions

    def admit(self, pod: Mapping[str, Any]) -> tuple[str, str] | None:
        return admit(pod, self.state.conditions)

    async def run(self) -> None:
        while True:
            evicted: list[str] = []
            try:
                evicted = await self.sync_once(time.monotonic())
            except Exception as e:  # noqa: BLE001 - a failed round must not end the loop
                log.warning("eviction manager: %s", e)
            if evicted:
                await self._wait_cleanup(evicted)
            else:
                await asyncio.sleep(self.config.monitoring_interval)

    async def _observe(self) -> dict[str, Observation]:
        r = await self._read()
        pods = None
        if self._pods_memory is not None:
            try:
                pods = await self._pods_memory(r)
            except OSError as e:  # kubelet: the signal is not observed ("failed to construct signal")
                log.info("eviction manager: the pods' memory: %s", e)
        fs = None
        if self._filesystems is not None:
            try:
                fs = await self._filesystems()
            except OSError as e:  # kubelet: no layout yet, the next round asks again
                log.info("eviction manager: the image and container filesystems: %s", e)
        if self.layout is None and (fs is not None or self._filesystems is None):
            self._set_layout(fs.layout() if fs is not None else SINGLE_FS)
        obs = observe(r, pods, fs)
        if fs is None and self._filesystems is not None:
            # not read this time: the data dir's figures are not theirs (not observed, as kubelet)
            for sig in (IMAGEFS_AVAILABLE, IMAGEFS_INODES_FREE, CONTAINERFS_AVAILABLE, CONTAINERFS_INODES_FREE):
                obs.pop(sig, None)
        return obs

    def _set_layout(self, layout: FsLayout) -> None:
        """kubelet's first round: which filesystems are apart decides the containerfs
        thresholds (``UpdateContainerFsThresholds``), the ranking and the reclaim."""
        self.layout = layout
        thresholds, warnings = container_fs_thresholds(self.config.thresholds, layout.image_fs, layout.split)
        for w in warnings:
            log.warning("eviction manager: %s (its thresholds follow the filesystem the writable layers are on)", w)
        self.config = dataclasses.replace(self.config, thresholds=thresholds)
        log.info("eviction manager: %s", "images and writable layers on the node's filesystem" if not layout.image_fs
                 else "a dedicated image filesystem holding the writable layers too" if not layout.split
                 else "a dedicated image filesystem, writable layers on the node's")

    async def _wait_cleanup(self, uids: list[str]) -> None:
        """kubelet's ``waitForPodsCleanup``: until the evicted pods have stopped, 30 s at most."""
        deadline = time.monotonic() + CLEANUP_TIMEOUT
        while time.monotonic() < deadline and not all(self._stopped(u) for u in uids):
            await asyncio.sleep(CLEANUP_POLL)

    async def sync_once(self, now: float) -> list[str]:
        """One round; the uids of the pods evicted."""
        obs = await self._observe()
        before = self.state.conditions
        self.state, acting = synchronize(self.config, self.state, obs, now)
        if self.state.conditions != before:
            log.info("node pressure conditions: %s", ", ".join(self.state.conditions) or "none")
            if self._changed is not None:
                self._changed()
        layout = self.layout or SINGLE_FS
        pods = [p for p in self._pods() if not is_critical(p)]
        # local storage limits (kubelet's localStorageEviction) before any pressure
        limited = [p for p in pods if pod_limit(p, "ephemeral-storage") is not None]
        for pod in limited:
            u = await self._usage(pod, frozenset({"disk"}))
            msg = local_storage_violation(pod, u, layout.image_fs)
            if msg is not None and self._evict(_uid(pod), msg, IMMEDIATE_GRACE, False):
                self.evictions += 1
                return [_uid(pod)]
        if not acting or not pods:
            return []
        threshold = acting[0]
        resource = SIGNALS[threshold.signal][0]
        self._record(self._node(), "Warning", "EvictionThresholdMet", f"Attempting to reclaim {resource}")
        steps = [f for step in reclaim_steps(threshold.signal, layout) if (f := self._reclaim[step]) is not None]
        if resource in ("ephemeral-storage", "inodes") and steps:
            # kubelet's reclaimNodeLevelResources: dead containers, then unused images, as the
            # filesystem under pressure holds them; no pod is evicted when that was enough
            # (every threshold clear, minimum reclaims included). The eviction message keeps the
            # round's observations, as kubelet's does.
            for step in steps:
                try:
                    await step()
                except RuntimeServiceError as e:  # kubelet logs it and looks again
                    log.info("eviction manager: reclaiming %s: %s", resource, e)
            if not _met(self.config.thresholds, await self._observe(), with_reclaim=True):
                log.info("eviction manager: able to reduce %s pressure without evicting pods", resource)
                return []
        what = frozenset({"memory"} if resource == "memory" else {"pids"} if resource == "pids"
                         else {"disk", "inodes"} if resource == "inodes" else {"disk"})
        usage = {_uid(p): await self._usage(p, what) for p in pods}
        grace = IMMEDIATE_GRACE if threshold.hard else float(self.config.max_pod_grace_period)
        for pod in rank(pods, usage, threshold.signal, layout):
            msg = eviction_message(resource, pod, usage.get(_uid(pod)), threshold, obs[threshold.signal])
            g = grace
            if not threshold.hard:
                own = _spec(pod).get("terminationGracePeriodSeconds")
                own_f = float(own) if own is not None else 30.0
                g = own_f if grace <= 0 or grace > own_f else grace
            if self._evict(_uid(pod), msg, g, True):
                self.evictions += 1
                return [_uid(pod)]
        log.info("eviction manager: unable to evict any pods from the node")
        return []


# --------------------------------------------------------------------------- measuring and reclaiming


class PodsCgroup:
    """The pods' cgroup as the eviction manager reads it (``pods_memory``): the limit kubelet
    gives ``kubepods`` (capacity less ``reserved`` bytes, never below 0, kubelet's
    ``getNodeAllocatableInternalAbsolute``) and the working set of everything in it (0 while no
    pod has made the cgroup yet)."""

    def __init__(self, reserved: int, path: str = "/" + PODS_CGROUP, cgroups: Cgroups | None = None) -> None:
        self.reserved = reserved
        self.path = path
        self._cgroups = cgroups

    def working_set(self) -> int:
        """Blocking: a few small files."""
        if self._cgroups is None:
            self._cgroups = Cgroups.detect()
        where = self._cgroups.path("memory", self.path)
        if where is None:
            raise OSError("the memory cgroup controller is not mounted")
        if not os.path.isdir(where):
            return 0
        st = self._cgroups.stats(self.path)
        return st.memory_working_set_bytes if st is not None else 0

    async def __call__(self, r: Readings) -> PodsMemory:
        return PodsMemory(max(0, r.memory_total - self.reserved), await asyncio.to_thread(self.working_set))


def unused_containers(containers: Iterable[ContainerStatus], pod_of: Mapping[str, str],
                      live: Collection[str]) -> list[ContainerStatus]:
    """kubelet's container GC as the eviction manager runs it (``DeleteAllUnusedContainers``,
    kubelet's default policy: no minimum age, one dead container kept per container name): the
    containers that are not running, every one of a pod not in ``live`` (deleted or finished),
    all but the newest of each name (by attempt, then creation) of a live pod. ``pod_of`` maps a
    sandbox id to its pod's uid. A container created and not yet started is left alone (its pod
    worker is about to start it)."""
    units: dict[tuple[str, str], list[ContainerStatus]] = {}
    for c in containers:
        if c.state in (ContainerState.RUNNING, ContainerState.CREATED):
            continue
        units.setdefault((pod_of.get(c.sandbox_id, ""), c.name), []).append(c)
    out: list[ContainerStatus] = []
    for (uid, _), dead in units.items():
        dead.sort(key=lambda c: (c.attempt, c.created_at), reverse=True)
        out += dead[1:] if uid in live else dead
    return out


async def reclaim_containers(runtime: Runtime, live: Collection[str],
                             containers: Sequence[ContainerStatus] | None = None) -> int:
    """Remove :func:`unused_containers` (``live``: the pods whose newest dead container of each
    name stays, for their restart count and ``kubectl logs --previous``) of ``containers`` (None:
    all the runtime has); how many went."""
    pod_of = {sb.id: sb.uid for sb in await runtime.list_pod_sandboxes()}
    removed = 0
    if containers is None:
        containers = await runtime.list_containers()
    for c in unused_containers(containers, pod_of, live):
        try:
            await runtime.remove_container(c.id)
        except RuntimeServiceError as e:  # gone or busy by now: the next round sees it again
            log.info("eviction manager: container %s stays: %s", c.id[:12], e)
            continue
        removed += 1
    if removed:
        log.info("removed %d dead container(s)", removed)
    return removed


def dead_sandboxes(sandboxes: Iterable[SandboxStatus], containers: Iterable[ContainerStatus],
                   keep_newest: Collection[str]) -> list[SandboxStatus]:
    """kubelet's ``evictSandboxes``: a sandbox is active while it is ready or still holds a
    container (in any state); the inactive ones go, of a pod in ``keep_newest`` (one that exists
    and whose content stays) all but its newest sandbox (by attempt, then creation; kept whatever
    its state), of any other pod (gone from the node, or finished under disk pressure) all."""
    holding = {c.sandbox_id for c in containers}
    by_pod: dict[str, list[SandboxStatus]] = {}
    for sb in sandboxes:
        by_pod.setdefault(sb.uid, []).append(sb)
    out: list[SandboxStatus] = []
    for uid, sbs in by_pod.items():
        sbs.sort(key=lambda sb: (sb.attempt, sb.created_at), reverse=True)
        out += [sb for sb in (sbs[1:] if uid in keep_newest else sbs)
                if sb.state != SandboxState.READY and sb.id not in holding]
    return out


async def reclaim_sandboxes(runtime: Runtime, keep_newest: Collection[str]) -> list[SandboxStatus]:
    """Remove :func:`dead_sandboxes` (their network torn down, their directories and the pod's
    cgroup gone); the ones removed. Run after the containers were collected: a sandbox goes
    with its last container."""
    removed: list[SandboxStatus] = []
    for sb in dead_sandboxes(await runtime.list_pod_sandboxes(), await runtime.list_containers(), keep_newest):
        try:
            await runtime.remove_pod_sandbox(sb.id)
        except RuntimeServiceError as e:  # busy or gone by now: the next round sees it again
            log.info("sandbox %s stays: %s", sb.id[:12], e)
            continue
        removed.append(sb)
    if removed:
        log.info("removed %d dead sandbox(es)", len(removed))
    return removed


async def reclaim_images(runtime: Runtime) -> int:
    """kubelet's ``DeleteUnusedImages`` under disk pressure: every image no container (running
    or not) uses is removed; the bytes freed."""
    used = {c.image_ref for c in await runtime.list_containers()}
    freed = 0
    for im in await runtime.list_images():
        if im.id in used:
            continue
        try:
            await runtime.remove_image(im.id)
        except RuntimeServiceError as e:  # in use by now (a container made meanwhile): keep it
            log.info("eviction manager: image %s stays: %s", im.id[:19], e)
            continue
        freed += im.size
    if freed:
        log.info("eviction manager: removed unused images (%d bytes) under disk pressure", freed)
    return freed


async def measure(runtime: Runtime, sandbox_ids: Iterable[str], volume_paths: Mapping[str, str], pod: Mapping[str, Any],
                  what: frozenset[str]) -> PodUsage:
    """One pod's usage from its running containers (kubelet's summary leaves out ended ones):
    ``memory`` and ``pids`` from their cgroups, ``disk`` from their writable layers, their log
    directories and the pod's local ephemeral volumes (measured as the volume manager does),
    ``inodes`` (with ``disk``) the files and directories in those."""
    u = PodUsage()
    layers: list[tuple[ContainerUsage, str | None, str]] = []
    for sid in sandbox_ids:
        for c in await runtime.list_containers(sid):
            if c.state != ContainerState.RUNNING:
                continue
            cu = ContainerUsage(c.name)
            if what & {"memory", "pids"}:
                st = await runtime.container_stats(c.id)
                if st is not None:
                    cu.memory = st.memory_working_set_bytes
                    cu.processes = st.processes
            if "disk" in what:
                layers.append((cu, await runtime.writable_layer(c.id), os.path.dirname(c.log_path) if c.log_path else ""))
            u.containers.append(cu)
    if "disk" in what:
        vols: list[str] = []
        for v in _spec(pod).get("volumes") or ():
            where = volume_paths.get(str(v.get("name", "")))
            if where and any(k in v for k in LOCAL_EPHEMERAL_KINDS) and (v.get("emptyDir") or {}).get("medium") != "Memory":
                vols.append(where)

        # the volume manager's measures (it loads the API client)
        from k8py.kubelet.volumes import dir_inodes, dir_usage

        count = "inodes" in what

        def du() -> None:
            for cu, layer, logs in layers:
                cu.rootfs = dir_usage(layer) if layer else 0
                cu.logs = dir_usage(logs) if logs else 0
                if count:
                    cu.rootfs_inodes = dir_inodes(layer) if layer else 0
                    cu.inodes = cu.rootfs_inodes + (dir_inodes(logs) if logs else 0)
            u.volumes = sum(dir_usage(v) for v in vols)
            if count:
                u.volume_inodes = sum(dir_inodes(v) for v in vols)

        await asyncio.to_thread(du)
    return u
