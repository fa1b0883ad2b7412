"""The pods' cgroups above each pod (kubelet's node-allocatable ``kubepods`` and its QoS cgroups):
what is computed, and what is written, on a v1 and a v2 layout made of plain directories."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from k8py.kubelet.podcgroups import (
    BESTEFFORT_CGROUP,
    BURSTABLE_CGROUP,
    PodsCgroups,
    node_allocatable_resources,
    qos_resources,
)
from k8py.kubelet.runtime.cgroups import CgroupResources, Cgroups, shares_to_weight

GI = 1 << 30
MI = 1 << 20


def pod(qos: str, *containers: dict[str, Any], init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {"metadata": {"uid": "u"}, "status": {"qosClass": qos},
            "spec": {"containers": list(containers), "initContainers": list(init)}}


def c(cpu_req: str | None = None, cpu_lim: str | None = None, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if cpu_req:
        res["requests"] = {"cpu": cpu_req}
    if cpu_lim:
        res["limits"] = {"cpu": cpu_lim}
    return {"name": "c", "resources": res, **extra}


def test_kubepods_limits_are_capacity_less_the_reservations_not_the_eviction_thresholds() -> None:
    # --system-reserved cpu=300m,memory=3Gi,pid=100 --kube-reserved cpu=200m,memory=1Gi (summed)
    reserved = {"cpu": "500m", "memory": str(4 * GI), "pid": "100"}
    res = node_allocatable_resources(cpus=4, memory=16 * GI, pids=32768, reserved=reserved, enforce_pods=True)
    assert res == CgroupResources(memory=12 * GI, cpu_shares=3584, pids=32668)  # 3500m * 1024 / 1000
    # --enforce-node-allocatable=none: the capacity (CPU shares still set)
    res = node_allocatable_resources(cpus=4, memory=16 * GI, pids=32768, reserved=reserved, enforce_pods=False)
    assert res == CgroupResources(memory=16 * GI, cpu_shares=4096, pids=32768)
    # everything reserved: kubelet's 0 leaves the memory and pids files as they are; CPU the minimum
    res = node_allocatable_resources(cpus=1, memory=GI, pids=0, reserved={"cpu": "2", "memory": str(2 * GI)},
                                     enforce_pods=True)
    assert res == CgroupResources(memory=None, cpu_shares=2, pids=None)


def test_qos_shares_are_the_burstable_pods_cpu_requests_and_the_minimum_for_besteffort() -> None:
    assert qos_resources([]) == {BURSTABLE_CGROUP: CgroupResources(cpu_shares=2),
                                 BESTEFFORT_CGROUP: CgroupResources(cpu_shares=2)}
    pods = [
        pod("Burstable", c("250m"), c("250m", "1")),  # 500m
        pod("Burstable", c(cpu_lim="100m")),  # the request defaults to the limit
        pod("Burstable", c("100m"), init=(c("1"),)),  # the init container's peak: 1 CPU
        pod("Guaranteed", c("2", "2")),  # not in burstable
        pod("BestEffort", c()),
    ]
    out = qos_resources(pods)
    assert out[BURSTABLE_CGROUP] == CgroupResources(cpu_shares=(500 + 100 + 1000) * 1024 // 1000)
    assert out[BESTEFFORT_CGROUP] == CgroupResources(cpu_shares=2)


def test_shares_convert_to_v2_weights_as_libcontainer() -> None:
    assert [shares_to_weight(s) for s in (2, 1024, 262144, 1_000_000)] == [1, 39, 10000, 10000]


def v1_layout(tmp_path: Path) -> Cgroups:
    mounts = {name: str(tmp_path / name) for name in ("memory", "cpu", "pids")}
    for m in mounts.values():
        Path(m).mkdir()
    return Cgroups(version=1, mounts=mounts)


def test_update_writes_v1_files_and_makes_the_cgroup(tmp_path: Path) -> None:
    cg = v1_layout(tmp_path)
    assert cg.update("/kubepods", CgroupResources(memory=300 * MI, cpu_shares=1536, pids=32000)) == []
    assert (tmp_path / "memory/kubepods/memory.limit_in_bytes").read_text() == str(300 * MI)
    assert (tmp_path / "cpu/kubepods/cpu.shares").read_text() == "1536"
    assert (tmp_path / "pids/kubepods/pids.max").read_text() == "32000"
    # None leaves a file alone
    assert cg.update("/kubepods/besteffort", CgroupResources(cpu_shares=2)) == []
    assert (tmp_path / "cpu/kubepods/besteffort/cpu.shares").read_text() == "2"
    assert not (tmp_path / "memory/kubepods/besteffort").exists()
    # a controller that is not mounted is named
    cg = Cgroups(version=1, mounts={"memory": str(tmp_path / "memory")})
    assert cg.update("/kubepods", CgroupResources(cpu_shares=2)) == ["the cpu cgroup controller is not mounted"]


def test_update_on_v2_enables_the_controllers_down_to_the_cgroup(tmp_path: Path) -> None:
    cg = Cgroups(version=2, root=str(tmp_path))
    assert cg.update("/kubepods/burstable", CgroupResources(memory=GI, cpu_shares=1024, pids=-1)) == []
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (tmp_path / "kubepods/cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    d = tmp_path / "kubepods/burstable"
    assert (d / "memory.max").read_text() == str(GI)
    assert (d / "cpu.weight").read_text() == "39"
    assert (d / "pids.max").read_text() == "max"


def test_update_writes_the_cpu_quota_with_its_period(tmp_path: Path) -> None:
    cg = v1_layout(tmp_path)
    assert cg.update("/kubepods/pod1", CgroupResources(cpu_shares=512, cpu_quota=50_000, cpu_period=100_000)) == []
    d = tmp_path / "cpu/kubepods/pod1"
    assert [(d / f).read_text() for f in ("cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us")] == \
        ["512", "100000", "50000"]
    assert cg.update("/kubepods/pod1", CgroupResources(cpu_quota=None, cpu_period=100_000)) == []
    assert (d / "cpu.cfs_quota_us").read_text() == "-1"  # a period without a quota: unlimited
    v2 = Cgroups(version=2, root=str(tmp_path / "v2"))
    (tmp_path / "v2").mkdir()
    assert v2.update("/kubepods/pod1", CgroupResources(cpu_quota=20_000, cpu_period=100_000)) == []
    assert (tmp_path / "v2/kubepods/pod1/cpu.max").read_text() == "20000 100000"


async def test_enforcement_records_kubelets_events_and_retries_until_the_kernel_takes_it(tmp_path: Path) -> None:
    cg = v1_layout(tmp_path)
    events: list[tuple[str, str, str]] = []
    pc = PodsCgroups(lambda t, r, m: events.append((t, r, m)), cg)
    # the kernel refusing the limit (here: the file is a directory), as it refuses a memory
    # limit below what the pods use
    (tmp_path / "memory/kubepods/memory.limit_in_bytes").mkdir(parents=True)
    res = CgroupResources(memory=GI, cpu_shares=2048)
    task = asyncio.ensure_future(pc.enforce_until_done(lambda: res, retry=0.05))
    for _ in range(100):
        if len(events) >= 2:
            break
        await asyncio.sleep(0.02)
    assert not task.done()
    typ, reason, msg = events[0]
    assert (typ, reason) == ("Warning", "FailedNodeAllocatableEnforcement")
    assert msg.startswith('Failed to update Node Allocatable Limits "kubepods": ')
    assert "memory.limit_in_bytes" in msg
    (tmp_path / "memory/kubepods/memory.limit_in_bytes").rmdir()
    await asyncio.wait_for(task, 5)
    assert events[-1] == ("Normal", "NodeAllocatableEnforced", "Updated Node Allocatable limit across pods")
    assert (tmp_path / "memory/kubepods/memory.limit_in_bytes").read_text() == str(GI)
    assert (tmp_path / "cpu/kubepods/cpu.shares").read_text() == "2048"


async def test_qos_updates_write_what_changed_and_run_when_pods_change(tmp_path: Path) -> None:
    cg = v1_layout(tmp_path)
    pc = PodsCgroups(lambda t, r, m: None, cg)
    pods: list[dict[str, Any]] = []
    task = asyncio.ensure_future(pc.run_qos(lambda: list(pods), period=30))
    shares = tmp_path / "cpu/kubepods/burstable/cpu.shares"
    try:
        pc.pods_changed()
        await wait_for(lambda: shares.exists() and shares.read_text() == "2")
        assert (tmp_path / "cpu/kubepods/besteffort/cpu.shares").read_text() == "2"
        pods.append(pod("Burstable", c("500m")))
        pc.pods_changed()
        await wait_for(lambda: shares.read_text() == "512")
        # unchanged shares are not written again (until the periodic pass)
        shares.write_text("7")
        pc.pods_changed()
        await asyncio.sleep(0.1)
        assert shares.read_text() == "7"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def wait_for(cond: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.02)
