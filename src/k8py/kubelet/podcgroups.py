"""The pods' cgroups above each pod: kubelet's node-allocatable cgroup ``kubepods`` and its QoS
cgroups ``kubepods/burstable`` and ``kubepods/besteffort`` (``pkg/kubelet/cm``:
``node_container_manager_linux.go``, ``qos_container_manager_linux.go``), on a real node.

**kubepods** (``enforceNodeAllocatableCgroups``): its limits are the node's internal capacity
(CPUs, memory, and processes: the smaller of ``kernel.pid_max`` and ``kernel.threads-max``), less
``--system-reserved`` and ``--kube-reserved`` when ``--enforce-node-allocatable`` has ``pods`` (its
default), each never below 0 (``getNodeAllocatableInternalAbsolute``). The hard eviction thresholds
are not taken off: they are what the eviction manager keeps free below this limit (the node's
allocatable, which the scheduler sees, leaves them out too). Memory is the cgroup's memory limit,
CPU its shares (``MilliCPUToShares``), processes its ``pids.max``: the pods together can never use
more, whatever their own limits. With ``none`` the limits are the capacity (CPU shares still set:
a new cgroup's default 1024 would starve the pods of a big node). Written when the agent starts;
a write the kernel refuses (the pods use more memory than the new limit) is tried again every
minute, as kubelet does, with its events on the Node: ``NodeAllocatableEnforced`` ("Updated Node
Allocatable limit across pods"), ``FailedNodeAllocatableEnforcement`` ("Failed to update Node
Allocatable Limits "kubepods": ...").

**QoS cgroups** (``qosContainerManagerImpl.UpdateCgroups``): ``besteffort`` always has the
minimum CPU shares (2), so BestEffort pods get CPU only when the others leave some;
``burstable`` has the shares of the CPU requests of the node's active Burstable pods together
(pod requests as kube counts them: init containers' peak, sidecars, overhead). Written when the
agent starts, when the node's pods change, and every minute. Guaranteed pods sit directly in
``kubepods`` with their own shares.

Each pod's own cgroup (``kubepods[/<qos>]/pod<uid>``) gets kubelet's ``ResourceConfigForPod``
when its sandbox is made (``spec.pod_cgroup_resources``: CPU shares from its requests, CPU quota
and memory limit from its limits, ``--pod-max-pids``).

Not here (kubelet does them): the QoS memory reservations of the ``QOSReserved`` alpha feature,
``system-reserved`` and ``kube-reserved`` cgroups, huge pages, resizing a pod's cgroup in place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from k8py.api.corev1 import int_value, milli_value, pod_requests
from k8py.kubelet.runtime.cgroups import CgroupResources, Cgroups
from k8py.kubelet.spec import MIN_SHARES, PODS_CGROUP, milli_cpu_to_shares, pod_qos

__all__ = [
    "BESTEFFORT_CGROUP",
    "BURSTABLE_CGROUP",
    "ENFORCED",
    "FAILED_ENFORCEMENT",
    "PodsCgroups",
    "node_allocatable_resources",
    "pids_capacity",
    "qos_resources",
]

log = logging.getLogger("k8py.kubelet")
Obj = dict[str, Any]

BURSTABLE_CGROUP = f"/{PODS_CGROUP}/burstable"
BESTEFFORT_CGROUP = f"/{PODS_CGROUP}/besteffort"
ENFORCED = "NodeAllocatableEnforced"  # kubelet's events.SuccessfulNodeAllocatableEnforcement
FAILED_ENFORCEMENT = "FailedNodeAllocatableEnforcement"
ENFORCE_RETRY = 60.0  # kubelet retries a refused kubepods update every minute
QOS_UPDATE_PERIOD = 60.0  # kubelet's periodicQOSCgroupUpdateInterval


def pids_capacity() -> int:
    """The node's process capacity as kubelet's ``pidlimit.Stats``: the smaller of
    ``kernel.pid_max`` and ``kernel.threads-max`` (blocking: two small reads)."""
    out = 0
    for name in ("pid_max", "threads-max"):
        try:
            with open(f"/proc/sys/kernel/{name}", encoding="ascii") as f:
                v = int(f.read().strip())
        except (OSError, ValueError):
            continue
        out = v if out == 0 else min(out, v)
    return out


def node_allocatable_resources(*, cpus: int, memory: int, pids: int, reserved: Mapping[str, str],
                               enforce_pods: bool) -> CgroupResources:
    """The limits of ``kubepods`` (see the module's docstring): ``cpus``, ``memory`` (bytes) and
    ``pids`` the node's capacity, ``reserved`` the sum of ``--system-reserved`` and
    ``--kube-reserved`` (``node.reservations``), taken off only with ``pods`` enforced."""
    cpu_m, mem, pid = cpus * 1000, memory, pids
    if enforce_pods:
        cpu_m = max(0, cpu_m - milli_value(reserved.get("cpu", "0")))
        mem = max(0, mem - int_value(reserved.get("memory", "0")))
        pid = max(0, pid - int_value(reserved.get("pid", "0")))
    # why 0 leaves the file alone: libcontainer, which kubelet's cgroup manager writes through,
    # takes a memory or pids limit of 0 as "not set" (a reservation of everything changes nothing)
    return CgroupResources(memory=mem or None, cpu_shares=milli_cpu_to_shares(cpu_m), pids=pid or None)


def qos_resources(pods: Iterable[Mapping[str, Any]]) -> dict[str, CgroupResources]:
    """The QoS cgroups' CPU shares for the node's active ``pods`` (kubelet's
    ``setCPUCgroupConfig``): BestEffort the minimum, Burstable its pods' CPU requests."""
    burstable_m = 0
    for p in pods:
        if pod_qos(p) != "Burstable":
            continue
        burstable_m += pod_requests(p.get("spec") or {}).get("cpu", 0)
    return {BURSTABLE_CGROUP: CgroupResources(cpu_shares=milli_cpu_to_shares(burstable_m)),
            BESTEFFORT_CGROUP: CgroupResources(cpu_shares=MIN_SHARES)}


class PodsCgroups:
    """Writes ``kubepods`` and its QoS cgroups (blocking steps in threads). ``record(type, reason,
    message)`` puts an event on the Node."""

    def __init__(self, record: Callable[[str, str, str], None], cgroups: Cgroups | None = None) -> None:
        self.record = record
        self._cgroups = cgroups
        self._qos_written: dict[str, CgroupResources] = {}
        self._qos_wake = asyncio.Event()

    @property
    def cgroups(self) -> Cgroups:
        if self._cgroups is None:
            self._cgroups = Cgroups.detect()
        return self._cgroups

    async def enforce(self, res: CgroupResources) -> bool:
        """One attempt to write ``kubepods``' limits; the node gets kubelet's event either way."""
        errors = await asyncio.to_thread(self.cgroups.update, "/" + PODS_CGROUP, res)
        if errors:
            msg = f'Failed to update Node Allocatable Limits "{PODS_CGROUP}": {"; ".join(errors)}'
            log.warning("%s", msg)
            self.record("Warning", FAILED_ENFORCEMENT, msg)
            return False
        log.info("pods' cgroup %s: memory limit %s, cpu shares %s, pids limit %s", PODS_CGROUP,
                 res.memory, res.cpu_shares, res.pids if res.pids is not None else "max")
        self.record("Normal", ENFORCED, "Updated Node Allocatable limit across pods")
        return True

    async def enforce_until_done(self, res: Callable[[], CgroupResources], retry: float = ENFORCE_RETRY) -> None:
        """kubelet's enforcement goroutine: until a write succeeds, once every ``retry`` seconds
        (the evictions bring the pods' use below a lowered limit meanwhile)."""
        while not await self.enforce(res()):
            await asyncio.sleep(retry)

    def pods_changed(self) -> None:
        """The node's pods changed: the QoS cgroups are brought up to date soon."""
        self._qos_wake.set()

    async def update_qos(self, pods: Iterable[Mapping[str, Any]]) -> list[str]:
        """Write the QoS cgroups' shares that differ from what was written last; what failed."""
        want = qos_resources(pods)
        errors: list[str] = []
        for path, res in want.items():
            if self._qos_written.get(path) == res:
                continue
            errs = await asyncio.to_thread(self.cgroups.update, path, res)
            if errs:
                errors += errs
                self._qos_written.pop(path, None)
            else:
                self._qos_written[path] = res
        return errors

    async def run_qos(self, pods: Callable[[], list[Obj]], period: float = QOS_UPDATE_PERIOD) -> None:
        """kubelet's QoS updates: when woken by :meth:`pods_changed`, and every ``period``
        seconds (what was changed under it is put back)."""
        while True:
            try:
                async with asyncio.timeout(period):
                    await self._qos_wake.wait()
            except TimeoutError:
                self._qos_written.clear()  # the periodic pass writes all again
            self._qos_wake.clear()
            try:
                errors = await self.update_qos(pods())
            except Exception as e:  # noqa: BLE001 - a hiccup reading the pods: the next pass tries again
                errors = [str(e)]
            if errors:
                log.warning("QoS cgroups: %s", "; ".join(errors))
