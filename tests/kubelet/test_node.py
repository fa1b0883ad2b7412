"""The node's reported status against kubelet's nodestatus setters and node allocatable: the
quantities as kubelet prints them, the conditions' reasons, messages and transition times, the
image list and the addresses."""

from __future__ import annotations

import struct

import pytest

from k8py.kubelet.node import (
    EVICTION_MEMORY_AVAILABLE,
    Readings,
    binary_si,
    node_addresses,
    node_conditions,
    node_images,
    node_resources,
    pressure_events,
    reservations,
)
from k8py.kubelet.runtime.types import Image

GI = 1024**3
MEM_TOTAL = 8148456 * 1024  # /proc/meminfo's MemTotal is in kB
T0, T1 = "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"


def readings(**kw: int) -> Readings:
    base = {"cpus": 4, "memory_total": MEM_TOTAL, "memory_available": 4 * GI, "disk_total": 100 * GI,
            "disk_available": 60 * GI, "inodes_total": 1_000_000, "inodes_free": 900_000, "pid_max": 32768,
            "pids_in_use": 300}
    base.update(kw)
    return Readings(**base)


@pytest.mark.parametrize(("n", "text"), [
    (0, "0"), (1000, "1000"), (1024, "1Ki"), (1536, "1536"), (MEM_TOTAL, "8148456Ki"), (2 * GI, "2Gi"),
    (3 * 1024**4, "3Ti"), (100 * 1024**2 + 1, str(100 * 1024**2 + 1))])
def test_binary_si_prints_like_a_quantity(n: int, text: str) -> None:
    assert binary_si(n) == text


def test_capacity_and_allocatable() -> None:
    cap, alloc = node_resources(readings())
    assert cap == {"cpu": "4", "memory": "8148456Ki", "ephemeral-storage": "100Gi", "pods": "110",
                   "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    # memory: minus the 100Mi eviction threshold; disk: minus 10% as kubelet's float32 makes it
    tenth = int(100 * GI * struct.unpack("f", struct.pack("f", 0.1))[0])
    assert alloc == {"cpu": "4", "memory": f"{8148456 - 102400}Ki", "ephemeral-storage": binary_si(100 * GI - tenth),
                     "pods": "110", "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    assert tenth != int(100 * GI * 0.1)  # the float32 is what a real node shows


def test_reservations_come_off_allocatable() -> None:
    _, alloc = node_resources(readings(), max_pods=20,
                              reserved={"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "1Gi"})
    assert alloc["cpu"] == "3500m" and alloc["pods"] == "20"
    assert alloc["memory"] == binary_si(MEM_TOTAL - GI - EVICTION_MEMORY_AVAILABLE)
    _, alloc = node_resources(readings(), reserved={"memory": "500M"})  # decimal: not whole Ki any more
    assert alloc["memory"] == str(MEM_TOTAL - 500_000_000 - EVICTION_MEMORY_AVAILABLE)


def test_system_and_kube_reserved_add_up() -> None:
    total = reservations({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "512Mi", "pid": "100"})
    assert total == {"cpu": "1500m", "memory": str(GI + 512 * 1024 * 1024), "pid": "100"}
    _, alloc = node_resources(readings(), reserved=total)
    assert alloc["cpu"] == "2500m" and alloc["memory"] == binary_si(MEM_TOTAL - GI - 512 * 1024 * 1024 -
                                                                      EVICTION_MEMORY_AVAILABLE)
    assert reservations({}, {}) == {}


def test_allocatable_leaves_the_configured_hard_thresholds_free() -> None:
    _, alloc = node_resources(readings(), eviction=(500 * 1024**2, 0))
    assert alloc["memory"] == binary_si(MEM_TOTAL - 500 * 1024**2)
    assert alloc["ephemeral-storage"] == binary_si(readings().disk_total)


def test_allocatable_never_goes_below_zero() -> None:
    _, alloc = node_resources(readings(cpus=1, memory_total=50 * 1024**2), reserved={"cpu": "2"})
    assert alloc["cpu"] == "0" and alloc["memory"] == "0"


def test_conditions_of_a_healthy_node() -> None:
    got = node_conditions((), (True, ""), [], T0)
    assert got == [
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
         "message": "kubelet has sufficient memory available", "lastHeartbeatTime": T0, "lastTransitionTime": T0},
        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
         "message": "kubelet has no disk pressure", "lastHeartbeatTime": T0, "lastTransitionTime": T0},
        {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
         "message": "kubelet has sufficient PID available", "lastHeartbeatTime": T0, "lastTransitionTime": T0},
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
         "lastHeartbeatTime": T0, "lastTransitionTime": T0},
    ]


def test_pressure_conditions() -> None:
    got = {c["type"]: c for c in node_conditions(
        ("MemoryPressure", "DiskPressure", "PIDPressure"), (True, ""), [], T0)}
    assert (got["MemoryPressure"]["status"], got["MemoryPressure"]["reason"], got["MemoryPressure"]["message"]) == (
        "True", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")
    assert (got["DiskPressure"]["status"], got["DiskPressure"]["reason"], got["DiskPressure"]["message"]) == (
        "True", "KubeletHasDiskPressure", "kubelet has disk pressure")
    assert (got["PIDPressure"]["status"], got["PIDPressure"]["reason"], got["PIDPressure"]["message"]) == (
        "True", "KubeletHasInsufficientPID", "kubelet has insufficient PID available")
    only_disk = {c["type"]: c["status"] for c in node_conditions(("DiskPressure",), (True, ""), [], T0)}
    assert only_disk == {"MemoryPressure": "False", "DiskPressure": "True", "PIDPressure": "False", "Ready": "True"}


def test_pressure_events_on_transitions_only() -> None:
    first = node_conditions((), (True, ""), [], T0)
    assert pressure_events([], first) == []  # nothing to compare with
    hot = node_conditions(("MemoryPressure", "PIDPressure"), (True, ""), first, T1)
    assert pressure_events(first, hot) == ["NodeHasInsufficientMemory", "NodeHasInsufficientPID"]
    assert pressure_events(hot, hot) == []
    cool = node_conditions(("PIDPressure",), (True, ""), hot, T1)
    assert pressure_events(hot, cool) == ["NodeHasSufficientMemory"]
    assert pressure_events(cool, node_conditions(("DiskPressure",), (True, ""), cool, T1)) == [
        "NodeHasDiskPressure", "NodeHasSufficientPID"]


def test_not_ready_says_why() -> None:
    why = "container runtime network not ready: NetworkReady=false"
    ready = node_conditions((), (False, why), [], T0)[-1]
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "KubeletNotReady", why)


def test_transition_times_move_only_with_the_status() -> None:
    first = node_conditions((), (True, ""), [], T0)
    same = node_conditions((), (True, ""), first, T1)
    assert all(c["lastTransitionTime"] == T0 and c["lastHeartbeatTime"] == T1 for c in same)
    changed = {c["type"]: c for c in node_conditions(("MemoryPressure",), (False, "down"), same, T1)}
    assert changed["MemoryPressure"]["lastTransitionTime"] == T1 and changed["Ready"]["lastTransitionTime"] == T1
    assert changed["DiskPressure"]["lastTransitionTime"] == T0
    # the node controller's Unknown: kubelet's next report is a transition
    unknown = [{**c, "status": "Unknown"} if c["type"] == "Ready" else c for c in same]
    assert node_conditions((), (True, ""), unknown, T1)[-1]["lastTransitionTime"] == T1


def test_images_biggest_first_digests_then_tags_at_most_five_names() -> None:
    many = Image("sha256:m", repo_tags=[f"r/m:{i}" for i in range(6)], repo_digests=["r/m@sha256:1"], size=50)
    images = [Image("sha256:a", repo_tags=["r/a:1"], size=10), many,
              Image("sha256:b", repo_tags=["r/b:1"], repo_digests=["r/b@sha256:2"], size=10),
              Image("sha256:none", size=99)]
    assert node_images(images) == [
        {"names": ["r/m@sha256:1", "r/m:0", "r/m:1", "r/m:2", "r/m:3"], "sizeBytes": 50},
        {"names": ["r/b@sha256:2", "r/b:1"], "sizeBytes": 10},  # same size: the greater id first
        {"names": ["r/a:1"], "sizeBytes": 10},
    ]


def test_at_most_fifty_images() -> None:
    images = [Image(f"sha256:{i:03}", repo_tags=[f"r/{i}:1"], size=i) for i in range(60)]
    got = node_images(images)
    assert len(got) == 50 and got[0]["sizeBytes"] == 59 and got[-1]["sizeBytes"] == 10


def test_addresses_from_given_ips() -> None:
    assert node_addresses("node-1", ["192.168.1.10", "fd00::10"]) == [
        {"type": "InternalIP", "address": "192.168.1.10"}, {"type": "InternalIP", "address": "fd00::10"},
        {"type": "Hostname", "address": "node-1"}]
