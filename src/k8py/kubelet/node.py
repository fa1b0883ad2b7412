"""The node as the agent reports it: capacity and allocatable from real readings, addresses,
system info, the images it holds, and the pressure conditions (kubelet's ``nodestatus``
setters; whether there is pressure is the eviction manager's, ``eviction.py``). Readings are
functions of the files they read (``/proc``, ``statvfs``), so the rules (reservations, condition
transitions) are tested on given numbers.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import socket
import struct
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from k8py.api.corev1 import int_value, milli_value
from k8py.hostnet import default_route_ip
from k8py.kubelet.runtime.types import Image

__all__ = [
    "KUBELET_VERSION",
    "Readings",
    "binary_si",
    "float32",
    "node_addresses",
    "node_conditions",
    "node_images",
    "node_labels",
    "node_resources",
    "pressure_events",
    "read",
    "reservations",
    "system_info",
]

Obj = dict[str, Any]
KUBELET_VERSION = "v1.37.0+k8py"
KUBELET_PORT = 10250
DEFAULT_MAX_PODS = 110
# kubelet's default hard eviction thresholds of memory and nodefs (eviction.py has them all);
# allocatable leaves them free
EVICTION_MEMORY_AVAILABLE = 100 * 1024 * 1024
EVICTION_NODEFS_AVAILABLE = 0.10
MAX_IMAGES = 50  # kubelet's --node-status-max-images
MAX_NAMES_PER_IMAGE = 5  # kubelet's MaxNamesPerImageInNodeStatus


@dataclass(frozen=True, slots=True)
class Readings:
    """One look at the machine."""

    cpus: int
    memory_total: int  # bytes
    memory_available: int
    disk_total: int  # bytes of the filesystem holding the data dir
    disk_available: int
    inodes_total: int
    inodes_free: int
    pid_max: int
    pids_in_use: int
    extra: Mapping[str, int] = field(default_factory=dict)


def _meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            parts = v.split()
            if parts:
                out[k] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def read(data_dir: str) -> Readings:
    """The machine now (blocking: a few small files and one statvfs)."""
    mem = _meminfo()
    os.makedirs(data_dir, exist_ok=True)
    st = os.statvfs(data_dir)
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
    except OSError:
        pid_max = 32768
    pids = sum(1 for d in os.listdir("/proc") if d.isdigit())
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return Readings(cpus=cpus, memory_total=mem.get("MemTotal", 0),
                    memory_available=mem.get("MemAvailable", mem.get("MemFree", 0)),
                    disk_total=st.f_blocks * st.f_frsize, disk_available=st.f_bavail * st.f_frsize,
                    inodes_total=st.f_files, inodes_free=st.f_favail, pid_max=pid_max, pids_in_use=pids)


def binary_si(n: int) -> str:
    """A byte count as a ``BinarySI`` Quantity prints: in the largest power-of-1024 unit that
    holds it exactly (``8148456Ki``, ``2Gi``), else plain bytes."""
    if n == 0:
        return "0"
    value, i = n, 0
    while value % 1024 == 0 and i < 6:
        value //= 1024
        i += 1
    return f"{value}{('', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei')[i]}"


def float32(x: float) -> float:
    """kubelet keeps eviction percentages as float32 (``ThresholdValue.Percentage``)."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def node_resources(r: Readings, *, max_pods: int = DEFAULT_MAX_PODS,
                   reserved: Mapping[str, str] | None = None,
                   eviction: tuple[int, int] | None = None) -> tuple[Obj, Obj]:
    """(capacity, allocatable): allocatable = capacity - reserved (``--system-reserved``) - the
    hard eviction thresholds of ``memory.available`` and ``nodefs.available`` (``eviction``, in
    bytes; default kube's 100Mi and 10%), never below 0, as kubelet's
    ``GetNodeAllocatableAbsolute``; quantities printed as kubelet's are."""
    cap = {"cpu": str(r.cpus), "memory": binary_si(r.memory_total), "ephemeral-storage": binary_si(r.disk_total),
           "pods": str(max_pods), "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    res = reserved or {}
    evict_mem, evict_disk = eviction if eviction is not None else (
        EVICTION_MEMORY_AVAILABLE, int(r.disk_total * float32(EVICTION_NODEFS_AVAILABLE)))
    cpu_m = max(0, r.cpus * 1000 - milli_value(res.get("cpu", "0")))
    mem = max(0, r.memory_total - int_value(res.get("memory", "0")) - evict_mem)
    eph = max(0, r.disk_total - int_value(res.get("ephemeral-storage", "0")) - evict_disk)
    alloc = {"cpu": str(cpu_m // 1000) if cpu_m % 1000 == 0 else f"{cpu_m}m", "memory": binary_si(mem),
             "ephemeral-storage": binary_si(eph), "pods": str(max_pods), "hugepages-1Gi": "0",
             "hugepages-2Mi": "0"}
    return cap, alloc


def reservations(*reserved: Mapping[str, str]) -> dict[str, str]:
    """``--system-reserved`` and ``--kube-reserved`` together, as kubelet takes both from the
    capacity (CPU in millicores, the rest in units)."""
    total: dict[str, int] = {}
    for m in reserved:
        for k, v in m.items():
            total[k] = total.get(k, 0) + (milli_value(v) if k == "cpu" else int_value(v))
    return {k: f"{v}m" if k == "cpu" else str(v) for k, v in total.items()}


def node_conditions(pressure: Collection[str], ready: tuple[bool, str], previous: Sequence[Obj], now: str) -> list[Obj]:
    """MemoryPressure, DiskPressure, PIDPressure and Ready, with kubelet's reasons and messages;
    ``pressure``: the conditions the eviction manager holds True now. A transition time moves only
    when the status does. ``ready`` is (ready, why not): kubelet joins its runtime and network
    errors into the message of a Ready that is False."""
    prev = {c.get("type"): c for c in previous}

    def cond(t: str, status: bool, reason: str, message: str) -> Obj:
        s = "True" if status else "False"
        p = prev.get(t)
        moved = p is None or p.get("status") != s
        return {"type": t, "status": s, "reason": reason, "message": message, "lastHeartbeatTime": now,
                "lastTransitionTime": now if moved or p is None else p.get("lastTransitionTime", now)}

    mem_p = "MemoryPressure" in pressure
    disk_p = "DiskPressure" in pressure
    pid_p = "PIDPressure" in pressure
    ok, why = ready
    return [
        cond("MemoryPressure", mem_p, "KubeletHasInsufficientMemory" if mem_p else "KubeletHasSufficientMemory",
             "kubelet has insufficient memory available" if mem_p else "kubelet has sufficient memory available"),
        cond("DiskPressure", disk_p, "KubeletHasDiskPressure" if disk_p else "KubeletHasNoDiskPressure",
             "kubelet has disk pressure" if disk_p else "kubelet has no disk pressure"),
        cond("PIDPressure", pid_p, "KubeletHasInsufficientPID" if pid_p else "KubeletHasSufficientPID",
             "kubelet has insufficient PID available" if pid_p else "kubelet has sufficient PID available"),
        cond("Ready", ok, "KubeletReady" if ok else "KubeletNotReady", "kubelet is posting ready status" if ok else why),
    ]


# kubelet's node status events when a pressure condition turns (status True, status False)
PRESSURE_EVENTS = {"MemoryPressure": ("NodeHasInsufficientMemory", "NodeHasSufficientMemory"),
                   "DiskPressure": ("NodeHasDiskPressure", "NodeHasNoDiskPressure"),
                   "PIDPressure": ("NodeHasInsufficientPID", "NodeHasSufficientPID")}


def pressure_events(previous: Sequence[Obj], current: Sequence[Obj]) -> list[str]:
    """The events kubelet records (``Node X status is now: <event>``) for the pressure conditions
    that changed from ``previous`` to ``current``."""
    prev = {c.get("type"): c.get("status") for c in previous}
    out = []
    for c in current:
        names = PRESSURE_EVENTS.get(str(c.get("type")))
        was = prev.get(c.get("type"))
        if names is not None and was is not None and was != c.get("status"):
            out.append(names[0] if c.get("status") == "True" else names[1])
    return out


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}.get(m, m)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip('"')
    return "Linux"


def system_info(runtime_version: str) -> Obj:
    return {"machineID": _read("/etc/machine-id"), "systemUUID": _read("/sys/class/dmi/id/product_uuid"),
            "bootID": _read("/proc/sys/kernel/random/boot_id"), "kernelVersion": platform.release(),
            "osImage": _os_image(), "containerRuntimeVersion": runtime_version, "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": _arch()}


def node_labels(name: str) -> dict[str, str]:
    arch = _arch()
    return {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch}


def node_addresses(name: str, node_ips: Sequence[str] = ()) -> list[Obj]:
    """InternalIP for each family (the given ``--node-ip`` addresses, else the default-route
    addresses), then Hostname."""
    ips = list(node_ips) or [ip for ip in (default_route_ip(socket.AF_INET), default_route_ip(socket.AF_INET6))
                             if ip and not ipaddress.ip_address(ip).is_link_local]
    ips = ips or ["127.0.0.1"]
    return [*({"type": "InternalIP", "address": ip} for ip in ips), {"type": "Hostname", "address": name}]


def node_images(images: Sequence[Image]) -> list[Obj]:
    """``status.images``: the biggest first (ties: the greater id first), at most 50, each with
    its digests then its tags, at most 5 names, as kubelet lists them."""
    out = []
    ordered = sorted(sorted(images, key=lambda i: i.id, reverse=True), key=lambda i: i.size, reverse=True)
    for im in ordered[:MAX_IMAGES]:
        names = [*im.repo_digests, *im.repo_tags][:MAX_NAMES_PER_IMAGE]
        if names:
            out.append({"names": names, "sizeBytes": im.size})
    return out
