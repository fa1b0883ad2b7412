"""The eviction manager's rules (kubelet's pkg/kubelet/eviction), on given numbers."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from k8py.cli import nodepressure
from k8py.kubelet.eviction import (
    DEFAULT_HARD,
    MONITORING_INTERVAL,
    ContainerUsage,
    EvictionConfig,
    EvictionError,
    EvictionManager,
    EvictionState,
    Filesystems,
    FsLayout,
    FsStats,
    Observation,
    PodsCgroup,
    PodsMemory,
    PodUsage,
    Threshold,
    admit,
    config_from_flags,
    container_fs_thresholds,
    disk_parts,
    eviction_message,
    local_storage_violation,
    observe,
    parse_duration,
    parse_thresholds,
    rank,
    reclaim_containers,
    reclaim_steps,
    synchronize,
    unused_containers,
)
from k8py.kubelet.node import Readings

MI = 1024 * 1024
GI = 1024 * MI


def readings(**kw: Any) -> Readings:
    base = {"cpus": 2, "memory_total": 8 * GI, "memory_available": 4 * GI, "disk_total": 100 * GI,
            "disk_available": 50 * GI, "inodes_total": 1_000_000, "inodes_free": 500_000, "pid_max": 32768,
            "pids_in_use": 300}
    return Readings(**{**base, **kw})


def pod(name: str, *, uid: str | None = None, priority: int | None = None, containers: list[dict[str, Any]] | None = None,
        **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"containers": containers or [{"name": "c", "image": "i"}], **spec}
    if priority is not None:
        s["priority"] = priority
    return {"metadata": {"name": name, "namespace": "default", "uid": uid or name}, "spec": s}


def res(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


# -- flags -----------------------------------------------------------------------------------------


def test_defaults_are_kubes() -> None:
    cfg = config_from_flags()
    got = {t.signal: (t.quantity, t.percentage, t.hard) for t in cfg.thresholds}
    # kubelet 1.30+ adds imagefs.inodesFree; --enforce-node-allocatable=pods (the default) copies
    # the hard memory threshold to allocatableMemory.available
    assert got == {"memory.available": (100 * MI, None, True), "nodefs.available": (None, pytest.approx(0.1), True),
                   "imagefs.available": (None, pytest.approx(0.15), True),
                   "nodefs.inodesFree": (None, pytest.approx(0.05), True),
                   "imagefs.inodesFree": (None, pytest.approx(0.05), True),
                   "allocatableMemory.available": (100 * MI, None, True)}
    assert cfg.pressure_transition_period == 300
    assert nodepressure.DEFAULT_HARD_TEXT == ",".join(f"{k}<{v}" for k, v in DEFAULT_HARD.items())


def test_flags_replace_the_defaults_and_soft_needs_a_grace_period() -> None:
    cfg = config_from_flags(hard="memory.available<1Gi", soft="nodefs.available<20%",
                            soft_grace="nodefs.available=1m30s", min_reclaim="memory.available=500Mi",
                            transition="30s", max_pod_grace=20)
    assert [t.signal for t in cfg.thresholds] == ["memory.available", "nodefs.available", "allocatableMemory.available"]
    mem, disk, alloc = cfg.thresholds
    assert (alloc.quantity, alloc.min_reclaim, alloc.hard) == (GI, (500 * MI, None), True)
    assert (mem.quantity, mem.min_reclaim, mem.hard) == (GI, (500 * MI, None), True)
    assert (disk.grace_period, disk.hard) == (90.0, False)
    assert (cfg.pressure_transition_period, cfg.max_pod_grace_period) == (30.0, 20)
    # 0% and 100% are ignored, as kubelet does
    assert parse_thresholds({"memory.available": "0%", "nodefs.available": "100%"}) == ()


@pytest.mark.parametrize(("kw", "message"), [
    ({"hard": "memory.free<1Gi"}, "unsupported eviction signal memory.free"),
    ({"hard": "memory.available<0"}, "eviction threshold memory.available must be positive: 0"),
    ({"hard": "nodefs.available<150%"}, "eviction percentage threshold nodefs.available must be <= 100%: 150%"),
    ({"hard": "nodefs.available<-5%"}, "eviction percentage threshold nodefs.available must be >= 0%: -5%"),
    ({"soft": "memory.available<1Gi"}, "grace period must be specified for the soft eviction threshold memory.available"),
    ({"soft_grace": "memory.available=-1s"},
     "invalid eviction grace period specified: -1s, must be a positive value"),
    ({"min_reclaim": "memory.available=-1Mi"}, "negative eviction minimum reclaim specified for memory.available"),
    ({"min_reclaim": "nodefs.available=0%"}, "eviction percentage minimum reclaim nodefs.available must be positive: 0%"),
    ({"hard": "memory.available"}, "malformed pair, expect string<string: 'memory.available'"),
    ({"soft_grace": "memory.available=10parsecs"}, 'time: unknown unit "parsecs" in duration "10parsecs"'),
])
def test_bad_flags_are_kubelets_errors(kw: dict[str, str], message: str) -> None:
    with pytest.raises(EvictionError) as e:
        config_from_flags(**kw)
    assert str(e.value) == message


def test_cli_checks_the_flags() -> None:
    p = argparse.ArgumentParser(exit_on_error=False)
    nodepressure.add_flags(p)
    args = p.parse_args(["--eviction-hard", "memory.available<1Gi", "--pod-max-pids", "100"])
    flags = nodepressure.flags_of(args)
    assert dict(flags) == {"eviction_hard": "memory.available<1Gi", "pod_max_pids": "100"}
    assert nodepressure.pod_max_pids(flags) == 100
    assert [t.signal for t in nodepressure.eviction_config(flags).thresholds] == [
        "memory.available", "allocatableMemory.available"]
    assert nodepressure.flags_of(p.parse_args([])) == ()
    off = nodepressure.flags_of(p.parse_args(["--eviction-hard", "memory.available<1Gi", "--enforce-node-allocatable="]))
    assert [t.signal for t in nodepressure.eviction_config(off).thresholds] == ["memory.available"]
    with pytest.raises(EvictionError, match='option "cpus" specified for enforceNodeAllocatable'):
        nodepressure.flags_of(p.parse_args(["--enforce-node-allocatable", "cpus"]))
    with pytest.raises(EvictionError, match="unsupported eviction signal foo"):
        nodepressure.flags_of(p.parse_args(["--eviction-hard", "foo<1"]))
    with pytest.raises(EvictionError, match="pod-max-pids"):
        nodepressure.flags_of(p.parse_args(["--pod-max-pids", "0"]))


def test_the_periods_kubelet_fixes_are_kubelets_unless_shortened() -> None:
    """``--eviction-monitoring-period`` and ``--container-gc-period`` (k8py's own): kubelet's
    10 s and minute when not given; a Go duration above 0 otherwise."""
    p = argparse.ArgumentParser(exit_on_error=False)
    nodepressure.add_flags(p)
    plain = nodepressure.flags_of(p.parse_args([]))
    assert nodepressure.eviction_config(plain).monitoring_interval == MONITORING_INTERVAL == 10.0
    assert nodepressure.container_gc_period(plain) == 60.0
    flags = nodepressure.flags_of(p.parse_args(["--eviction-monitoring-period", "1s", "--container-gc-period",
                                                "1500ms", "--eviction-hard", "memory.available<1Gi"]))
    config = nodepressure.eviction_config(flags)
    assert config.monitoring_interval == 1.0
    assert [t.signal for t in config.thresholds] == ["memory.available", "allocatableMemory.available"]
    assert nodepressure.container_gc_period(flags) == 1.5
    for flag in ("--eviction-monitoring-period", "--container-gc-period"):
        with pytest.raises(EvictionError, match=f"invalid {flag} 0s: must be greater than 0"):
            nodepressure.flags_of(p.parse_args([flag, "0s"]))
        with pytest.raises(EvictionError, match="invalid duration"):
            nodepressure.flags_of(p.parse_args([flag, "soon"]))


def test_go_durations() -> None:
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("1h") == 3600.0
    with pytest.raises(EvictionError, match="missing unit"):
        parse_duration("10")


# -- observations and the pure round ------------------------------------------------------------------


def test_observations() -> None:
    obs = observe(readings())
    assert obs["memory.available"] == Observation(4 * GI, 8 * GI)
    assert obs["nodefs.available"] == obs["imagefs.available"] == Observation(50 * GI, 100 * GI)
    assert obs["nodefs.inodesFree"] == Observation(500_000, 1_000_000)
    assert obs["pid.available"] == Observation(32768 - 300, 32768)


def test_hard_threshold_acts_at_once_and_the_condition_outlasts_it_for_the_transition_period() -> None:
    cfg = config_from_flags(hard="memory.available<1Gi", transition="60s")
    st, acting = synchronize(cfg, EvictionState(), observe(readings()), 0.0)
    assert (st.conditions, acting) == ((), [])
    st, acting = synchronize(cfg, st, observe(readings(memory_available=512 * MI)), 10.0)
    assert st.conditions == ("MemoryPressure",) and [t.signal for t in acting] == ["memory.available"]
    st, acting = synchronize(cfg, st, observe(readings()), 20.0)
    assert st.conditions == ("MemoryPressure",) and acting == []  # within the transition period
    st, acting = synchronize(cfg, st, observe(readings()), 71.0)
    assert st.conditions == ()


def test_soft_threshold_waits_for_its_grace_period() -> None:
    cfg = config_from_flags(hard="", soft="nodefs.available<60%", soft_grace="nodefs.available=30s")
    st, acting = synchronize(cfg, EvictionState(), observe(readings()), 0.0)
    assert st.conditions == ("DiskPressure",) and acting == []  # the condition at once
    st, acting = synchronize(cfg, st, observe(readings()), 20.0)
    assert acting == []
    st, acting = synchronize(cfg, st, observe(readings()), 30.0)
    assert [t.signal for t in acting] == ["nodefs.available"]


def test_minimum_reclaim_holds_a_threshold_until_recovered_beyond_it() -> None:
    cfg = config_from_flags(hard="memory.available<1Gi", min_reclaim="memory.available=1Gi")
    st, acting = synchronize(cfg, EvictionState(), observe(readings(memory_available=512 * MI)), 0.0)
    assert acting
    st, acting = synchronize(cfg, st, observe(readings(memory_available=1536 * MI)), 10.0)
    assert [t.signal for t in acting] == ["memory.available"]  # above 1Gi but not above 2Gi
    st, acting = synchronize(cfg, st, observe(readings(memory_available=3 * GI)), 20.0)
    assert acting == []


def test_memory_is_reclaimed_first_and_pids_set_pid_pressure() -> None:
    cfg = config_from_flags(hard="nodefs.available<60%,memory.available<5Gi,pid.available<32600")
    st, acting = synchronize(cfg, EvictionState(), observe(readings()), 0.0)
    assert acting[0].signal == "memory.available"
    assert st.conditions == ("MemoryPressure", "DiskPressure", "PIDPressure")


# -- ranking and messages -----------------------------------------------------------------------------


def test_memory_ranking_over_requests_first_then_priority_then_usage_above_requests() -> None:
    guaranteed = pod("guaranteed", containers=[{"name": "c", "resources": res({"memory": "1Gi"}, {"memory": "1Gi"})}])
    besteffort = pod("besteffort")
    burstable_hi = pod("burstable-hi", priority=1000, containers=[{"name": "c", "resources": res({"memory": "100Mi"})}])
    small = pod("small-over")
    usage = {"guaranteed": PodUsage([ContainerUsage("c", memory=900 * MI)]),
             "besteffort": PodUsage([ContainerUsage("c", memory=50 * MI)]),
             "burstable-hi": PodUsage([ContainerUsage("c", memory=800 * MI)]),
             "small-over": PodUsage([ContainerUsage("c", memory=10 * MI)])}
    got = [p["metadata"]["name"] for p in rank([guaranteed, burstable_hi, small, besteffort], usage, "memory.available")]
    # over requests: besteffort, small-over (priority 0), burstable-hi (priority 1000); the
    # Guaranteed one (under its request) last
    assert got == ["besteffort", "small-over", "burstable-hi", "guaranteed"]
    # a pod without stats goes first
    assert rank([guaranteed, pod("nostats")], usage, "memory.available")[0]["metadata"]["name"] == "nostats"


def test_pid_ranking_priority_then_processes() -> None:
    a, b, c = pod("a", priority=10), pod("b"), pod("c")
    usage = {"a": PodUsage([ContainerUsage("c", processes=500)]), "b": PodUsage([ContainerUsage("c", processes=5)]),
             "c": PodUsage([ContainerUsage("c", processes=50)])}
    assert [p["metadata"]["name"] for p in rank([a, b, c], usage, "pid.available")] == ["c", "b", "a"]


def test_memory_eviction_message_is_kubelets() -> None:
    p = pod("p", containers=[{"name": "app", "resources": res({"memory": "64Mi"})}, {"name": "side"}])
    u = PodUsage([ContainerUsage("app", memory=200 * MI), ContainerUsage("side", memory=1024)])
    t = Threshold("memory.available", quantity=100 * MI)
    msg = eviction_message("memory", p, u, t, Observation(50 * MI, 8 * GI))
    assert msg == ("The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
                   "Container app was using 200Mi, request is 64Mi, has larger consumption of memory. "
                   "Container side was using 1Ki, request is 0, has larger consumption of memory. ")


def test_ephemeral_storage_limits() -> None:
    one = pod("one", containers=[{"name": "c", "resources": res(limits={"ephemeral-storage": "10Mi"})}])
    assert local_storage_violation(one, PodUsage([ContainerUsage("c", rootfs=5 * MI, logs=0)], volumes=6 * MI)) == (
        "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. ")
    assert local_storage_violation(one, PodUsage([ContainerUsage("c", rootfs=5 * MI, logs=MI)])) is None
    two = pod("two", containers=[{"name": "a", "resources": res(limits={"ephemeral-storage": "10Mi"})},
                                 {"name": "b", "resources": res(limits={"ephemeral-storage": "20Mi"})}])
    assert local_storage_violation(two, PodUsage([ContainerUsage("a", rootfs=11 * MI, logs=0),
                                                  ContainerUsage("b", rootfs=0, logs=0)])) == (
        'Container a exceeded its local ephemeral storage limit "10Mi". ')
    assert local_storage_violation(two, PodUsage([ContainerUsage("a", rootfs=5 * MI, logs=0)], volumes=40 * MI)) == (
        "Pod ephemeral local storage usage exceeds the total limit of containers 30Mi. ")
    assert local_storage_violation(pod("none"), PodUsage([ContainerUsage("c", rootfs=GI, logs=0)])) is None


def test_admission_under_pressure() -> None:
    be = pod("be")
    burst = pod("burst", containers=[{"name": "c", "resources": res({"memory": "10Mi"})}])
    tolerant = pod("tol", tolerations=[{"key": "node.kubernetes.io/memory-pressure", "operator": "Exists",
                                        "effect": "NoSchedule"}])
    critical = pod("crit", priority=2_000_001_000)
    assert admit(be, ()) is None
    assert admit(be, ("MemoryPressure",)) == ("Evicted", "The node had condition: [MemoryPressure]. ")
    assert admit(burst, ("MemoryPressure",)) is None
    assert admit(tolerant, ("MemoryPressure",)) is None
    assert admit(burst, ("MemoryPressure", "DiskPressure")) == (
        "Evicted", "The node had condition: [MemoryPressure DiskPressure]. ")
    assert admit(critical, ("DiskPressure",)) is None


# -- the manager --------------------------------------------------------------------------------------


async def test_manager_evicts_one_pod_per_round_in_rank_order_and_records_the_node_event() -> None:
    guaranteed = pod("g", containers=[{"name": "c", "resources": res({"memory": "1Gi"}, {"memory": "1Gi"})}])
    besteffort = pod("be")
    critical = pod("crit", priority=2_000_000_000)
    usage = {"g": PodUsage([ContainerUsage("c", memory=10 * MI)]), "be": PodUsage([ContainerUsage("c", memory=MI)]),
             "crit": PodUsage([ContainerUsage("c", memory=GI)])}
    evicted: list[tuple[str, str, float, bool]] = []
    events: list[tuple[str, str, str]] = []
    avail = [4 * GI]
    changed: list[bool] = []

    async def read() -> Readings:
        return readings(memory_available=avail[0])

    async def measure(p: dict[str, Any], what: frozenset[str]) -> PodUsage:
        assert what == frozenset({"memory"})
        return usage[p["metadata"]["uid"]]

    def evict(uid: str, msg: str, grace: float, disruption: bool) -> bool:
        evicted.append((uid, msg, grace, disruption))
        return True

    pods = [guaranteed, besteffort, critical]
    m = EvictionManager(EvictionConfig((Threshold("memory.available", quantity=GI),)), read=read,
                        pods=lambda: [p for p in pods if p["metadata"]["uid"] not in {e[0] for e in evicted}],
                        usage=measure, evict=evict, stopped=lambda uid: True,
                        record=lambda obj, t, r, msg: events.append((t, r, msg)), node=lambda: {"kind": "Node"},
                        conditions_changed=lambda: changed.append(True))
    assert await m.sync_once(0.0) == [] and m.conditions == ()
    avail[0] = 512 * MI
    assert await m.sync_once(10.0) == ["be"]
    assert m.conditions == ("MemoryPressure",) and changed == [True]
    assert events == [("Warning", "EvictionThresholdMet", "Attempting to reclaim memory")]
    _, msg, grace, disruption = evicted[0]
    assert msg.startswith("The node was low on resource: memory. Threshold quantity: 1Gi, available: 512Mi. ")
    assert (grace, disruption) == (1.0, True)
    assert await m.sync_once(20.0) == ["g"]
    assert await m.sync_once(30.0) == []  # only the critical pod is left: never evicted


async def test_manager_local_storage_first_without_pressure() -> None:
    limited = pod("lim", containers=[{"name": "c", "resources": res(limits={"ephemeral-storage": "10Mi"})}])
    evicted: list[tuple[str, str, float, bool]] = []

    async def read() -> Readings:
        return readings()

    async def measure(p: dict[str, Any], what: frozenset[str]) -> PodUsage:
        assert what == frozenset({"disk"})
        return PodUsage([ContainerUsage("c", rootfs=20 * MI, logs=0)])

    m = EvictionManager(config_from_flags(), read=read, pods=lambda: [limited], usage=measure,
                        evict=lambda *a: evicted.append(a) is None, stopped=lambda uid: True,
                        record=lambda *a: None, node=dict)
    assert await m.sync_once(0.0) == ["lim"]
    assert evicted == [("lim", "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. ",
                        1.0, False)]


# -- measuring ------------------------------------------------------------------------------------------


async def test_measure_counts_writable_layers_logs_and_local_ephemeral_volumes(tmp_path: Any) -> None:
    """A running container's writable layer and log directory, the pod's disk emptyDir and
    configMap volumes; not a memory emptyDir, not an ended container."""
    from k8py.kubelet.eviction import measure
    from k8py.kubelet.runtime.fake import FakeRuntime
    from k8py.kubelet.runtime.types import ContainerConfig, SandboxConfig

    class Layered(FakeRuntime):
        async def writable_layer(self, container_id: str) -> str | None:
            d = tmp_path / "layers" / container_id
            return str(d) if d.is_dir() else None

    def fill(path: Any, n: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"x" * n)
            f.flush()

    rt = Layered()
    await rt.pull_image("busybox")
    sb = SandboxConfig("p", "default", "uid-p")
    sid = await rt.run_pod_sandbox(sb)
    app = await rt.create_container(sid, ContainerConfig("app", "busybox"), sb)
    await rt.start_container(app)
    done = await rt.create_container(sid, ContainerConfig("done", "busybox"), sb)
    await rt.start_container(done)
    rt.kill(done, 0)
    rt.containers[app].log_path = str(tmp_path / "logs" / "app" / "0.log")
    fill(tmp_path / "layers" / app / "big", 3 * MI)
    fill(tmp_path / "layers" / done / "big", 7 * MI)  # ended: not counted
    fill(tmp_path / "logs" / "app" / "0.log", MI)
    fill(tmp_path / "vols" / "scratch" / "f", 2 * MI)
    fill(tmp_path / "vols" / "cfg" / "f", MI)
    fill(tmp_path / "vols" / "ram" / "f", 5 * MI)
    p = pod("p", uid="uid-p", volumes=[{"name": "scratch", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}},
                                        {"name": "ram", "emptyDir": {"medium": "Memory"}}])
    paths = {n: str(tmp_path / "vols" / n) for n in ("scratch", "cfg", "ram")}
    u = await measure(rt, [sid], paths, p, frozenset({"disk"}))
    assert [c.name for c in u.containers] == ["app"]
    (c,) = u.containers
    assert 3 * MI <= (c.rootfs or 0) < 3 * MI + 64 * 1024 and MI <= (c.logs or 0) < MI + 64 * 1024
    assert 3 * MI <= u.volumes < 3 * MI + 64 * 1024
    assert u.disk == (c.rootfs or 0) + (c.logs or 0) + u.volumes
    assert c.inodes == 0 and u.volume_inodes == 0  # counted only when asked
    u = await measure(rt, [sid], paths, p, frozenset({"disk", "inodes"}))
    # the layer dir and its file, the log dir and its file; scratch and cfg: a dir and a file each
    assert (u.containers[0].inodes, u.volume_inodes) == (4, 4)
    # memory only: no disk walk
    u = await measure(rt, [sid], paths, p, frozenset({"memory"}))
    assert u.containers[0].rootfs is None and u.volumes == 0


async def test_disk_pressure_removes_unused_images_before_evicting_a_pod() -> None:
    from k8py.kubelet.eviction import reclaim_images
    from k8py.kubelet.runtime.fake import FakeRuntime
    from k8py.kubelet.runtime.types import ContainerConfig, SandboxConfig

    rt = FakeRuntime()
    for ref in ("used", "old-a", "old-b"):
        await rt.pull_image(ref)
        rt.images[ref].size = 100 * MI
    sb = SandboxConfig("p", "default", "uid-p")
    sid = await rt.run_pod_sandbox(sb)
    await rt.create_container(sid, ContainerConfig("c", "used"), sb)
    assert await reclaim_images(rt) == 200 * MI
    assert sorted(rt.images) == ["used"]  # a container's image stays, even a stopped one's
    assert await reclaim_images(rt) == 0

    # the manager: enough freed -> no pod evicted; not enough -> the pod goes
    disk = [5 * GI]
    evicted: list[str] = []
    freed_by_reclaim = [0]

    async def read() -> Readings:
        return readings(disk_available=disk[0])

    async def reclaim() -> int:
        disk[0] += freed_by_reclaim[0]
        return freed_by_reclaim[0]

    async def measure(p: dict[str, Any], what: frozenset[str]) -> PodUsage:
        return PodUsage([ContainerUsage("c", rootfs=MI, logs=0)])

    m = EvictionManager(config_from_flags(hard="nodefs.available<10Gi"), read=read, pods=lambda: [pod("p")],
                        usage=measure, evict=lambda uid, *a: evicted.append(uid) is None, stopped=lambda uid: True,
                        record=lambda *a: None, node=dict, reclaim_images=reclaim)
    freed_by_reclaim[0] = 6 * GI
    assert await m.sync_once(0.0) == [] and evicted == []
    assert m.conditions == ("DiskPressure",)  # the condition was met this round
    disk[0] = 5 * GI
    freed_by_reclaim[0] = GI
    assert await m.sync_once(10.0) == ["p"] and evicted == ["p"]


def test_inode_and_pid_messages_name_their_resource_in_plain_numbers() -> None:
    p = pod("p")
    u = PodUsage([ContainerUsage("c", rootfs=MI, logs=0, processes=10)])
    assert eviction_message("inodes", p, u, Threshold("nodefs.inodesFree", percentage=0.05),
                            Observation(1000, 1_000_000)) == (
        "The node was low on resource: inodes. Threshold quantity: 50000, available: 1000. ")
    assert eviction_message("pids", p, u, Threshold("pid.available", quantity=500), Observation(100, 32768)) == (
        "The node was low on resource: pids. Threshold quantity: 500, available: 100. ")


def test_inode_pressure_ranks_by_inodes() -> None:
    few_big = pod("few-big")
    many_small = pod("many-small")
    usage = {"few-big": PodUsage([ContainerUsage("c", rootfs=GI, logs=0, inodes=3)]),
             "many-small": PodUsage([ContainerUsage("c", rootfs=MI, logs=0, inodes=50_000)], volume_inodes=10)}
    assert usage["many-small"].inodes == 50_010
    assert [p["metadata"]["name"] for p in rank([few_big, many_small], usage, "nodefs.inodesFree")] == [
        "many-small", "few-big"]
    assert [p["metadata"]["name"] for p in rank([few_big, many_small], usage, "nodefs.available")] == [
        "few-big", "many-small"]


# -- allocatableMemory.available ------------------------------------------------------------------------


def test_allocatable_thresholds_copy_the_hard_memory_ones_unless_pods_are_not_enforced() -> None:
    ts = parse_thresholds({"memory.available": "5%", "nodefs.available": "10%"}, {"memory.available": "1Gi"},
                          {"memory.available": "1m"}, {"memory.available": "200Mi"})
    # the hard memory threshold again, with its minimum reclaim; not the soft one
    assert [(t.signal, t.hard) for t in ts] == [("memory.available", True), ("nodefs.available", True),
                                                ("memory.available", False), ("allocatableMemory.available", True)]
    alloc = ts[-1]
    assert (alloc.percentage, alloc.min_reclaim) == (pytest.approx(0.05), (200 * MI, None))
    assert [t.signal for t in config_from_flags(hard="memory.available<1Gi", enforce="none").thresholds] == [
        "memory.available"]
    # given by name it is a signal of its own, soft ones included
    cfg = config_from_flags(hard="allocatableMemory.available<500Mi", soft="allocatableMemory.available<1Gi",
                            soft_grace="allocatableMemory.available=30s", enforce="")
    assert [(t.signal, t.quantity, t.grace_period) for t in cfg.thresholds] == [
        ("allocatableMemory.available", 500 * MI, 0.0), ("allocatableMemory.available", GI, 30.0)]


@pytest.mark.parametrize(("enforce", "message"), [
    ("pods,cpus", ('invalid configuration: option "cpus" specified for enforceNodeAllocatable '
                   '(--enforce-node-allocatable). Valid options are "pods", "system-reserved", "kube-reserved", '
                   'or "none"')),
    ("none,pods", ('invalid configuration: enforceNodeAllocatable (--enforce-node-allocatable) may not contain '
                   'additional enforcements when "none" is specified')),
    ("pods,system-reserved", '--enforce-node-allocatable "system-reserved" is not supported by k8py'),
])
def test_enforce_node_allocatable_is_checked(enforce: str, message: str) -> None:
    with pytest.raises(EvictionError) as e:
        config_from_flags(enforce=enforce)
    assert str(e.value).startswith(message)


def test_allocatable_memory_is_observed_from_the_pods_cgroup() -> None:
    assert "allocatableMemory.available" not in observe(readings())  # the pods' cgroup not read
    obs = observe(readings(), PodsMemory(limit=2 * GI, working_set=512 * MI))
    assert obs["allocatableMemory.available"] == Observation(1536 * MI, 2 * GI)
    # the pods may use more than the limit kubelet would give them: less than nothing is left
    assert observe(readings(), PodsMemory(GI, GI + 20 * MI))["allocatableMemory.available"] == Observation(
        -20 * MI, GI)


def test_pods_over_allocatable_set_memory_pressure_and_are_reclaimed_first() -> None:
    cfg = config_from_flags(hard="memory.available<100Mi,nodefs.available<60%")
    r = readings()  # plenty of memory on the node: memory.available is not met
    st, acting = synchronize(cfg, EvictionState(), observe(r, PodsMemory(GI, 950 * MI)), 0.0)
    assert st.conditions == ("MemoryPressure", "DiskPressure")
    assert [t.signal for t in acting] == ["allocatableMemory.available", "nodefs.available"]
    st, acting = synchronize(cfg, st, observe(r, PodsMemory(GI, 800 * MI)), 10.0)
    assert [t.signal for t in acting] == ["nodefs.available"]


def test_allocatable_memory_ranks_and_words_as_memory() -> None:
    be = pod("be")
    burst = pod("burst", containers=[{"name": "c", "resources": res({"memory": "500Mi"})}])
    usage = {"be": PodUsage([ContainerUsage("c", memory=10 * MI)]), "burst": PodUsage([ContainerUsage("c", memory=GI)])}
    assert [p["metadata"]["name"] for p in rank([burst, be], usage, "allocatableMemory.available")] == [
        "burst", "be"]  # both over their requests, same priority: the most above its request first
    msg = eviction_message("memory", burst, usage["burst"], Threshold("allocatableMemory.available", quantity=100 * MI),
                           Observation(-20 * MI, GI))
    assert msg == ("The node was low on resource: memory. Threshold quantity: 100Mi, available: -20Mi. "
                   "Container c was using 1Gi, request is 500Mi, has larger consumption of memory. ")


def test_pods_cgroup_reads_the_working_set_of_kubepods(tmp_path: Any) -> None:
    from k8py.kubelet.runtime.cgroups import Cgroups

    mem = tmp_path / "memory"
    (mem / "kubepods").mkdir(parents=True)
    (mem / "kubepods" / "memory.usage_in_bytes").write_text(str(300 * MI))
    (mem / "kubepods" / "memory.stat").write_text(f"total_inactive_file {50 * MI}\ntotal_rss {200 * MI}\n")
    cg = PodsCgroup(reserved=GI, cgroups=Cgroups(version=1, mounts={"memory": str(mem)}))
    assert cg.working_set() == 250 * MI
    empty = PodsCgroup(reserved=GI, cgroups=Cgroups(version=1, mounts={"memory": str(tmp_path / "none")}))
    assert empty.working_set() == 0  # no pod made the cgroup yet
    with pytest.raises(OSError, match="not mounted"):
        PodsCgroup(reserved=0, cgroups=Cgroups(version=1, mounts={})).working_set()
    # cgroup v2: one tree
    v2 = tmp_path / "unified"
    (v2 / "kubepods").mkdir(parents=True)
    (v2 / "kubepods" / "memory.current").write_text(str(200 * MI))
    (v2 / "kubepods" / "memory.stat").write_text(f"anon {150 * MI}\ninactive_file {20 * MI}\n")
    assert PodsCgroup(reserved=0, cgroups=Cgroups(version=2, root=str(v2))).working_set() == 180 * MI


async def test_pods_cgroup_limit_is_capacity_less_reserved(tmp_path: Any) -> None:
    from k8py.kubelet.runtime.cgroups import Cgroups

    cg = Cgroups(version=2, root=str(tmp_path))  # no kubepods yet: nothing used
    assert await PodsCgroup(reserved=GI, cgroups=cg)(readings()) == PodsMemory(7 * GI, 0)
    assert await PodsCgroup(reserved=9 * GI, cgroups=cg)(readings()) == PodsMemory(0, 0)  # never below 0


async def test_manager_evicts_when_the_pods_pass_allocatable() -> None:
    be, burst = pod("be"), pod("burst", containers=[{"name": "c", "resources": res({"memory": "100Mi"})}])
    usage = {"be": PodUsage([ContainerUsage("c", memory=20 * MI)]),
             "burst": PodUsage([ContainerUsage("c", memory=300 * MI)])}
    ws = [100 * MI]
    evicted: list[tuple[str, str]] = []
    events: list[str] = []
    seen: list[Readings] = []

    async def read() -> Readings:
        return readings()

    async def pods_memory(r: Readings) -> PodsMemory:
        seen.append(r)
        return PodsMemory(512 * MI, ws[0])

    async def measure(p: dict[str, Any], what: frozenset[str]) -> PodUsage:
        assert what == frozenset({"memory"})
        return usage[p["metadata"]["uid"]]

    m = EvictionManager(config_from_flags(hard="memory.available<100Mi"), read=read, pods=lambda: [be, burst],
                        usage=measure, evict=lambda uid, msg, g, d: evicted.append((uid, msg)) is None,
                        stopped=lambda uid: True, record=lambda obj, t, r, msg: events.append(msg), node=dict,
                        pods_memory=pods_memory)
    assert await m.sync_once(0.0) == [] and m.conditions == ()
    assert seen and seen[0].memory_total == 8 * GI
    ws[0] = 480 * MI  # 32Mi left of 512Mi: below the 100Mi threshold
    assert await m.sync_once(10.0) == ["burst"]
    assert m.conditions == ("MemoryPressure",) and events == ["Attempting to reclaim memory"]
    assert evicted[0][1] == ("The node was low on resource: memory. Threshold quantity: 100Mi, available: 32Mi. "
                             "Container c was using 300Mi, request is 100Mi, has larger consumption of memory. ")


# -- containerfs ----------------------------------------------------------------------------------------


def test_containerfs_thresholds_are_nodefs_ones_on_one_filesystem() -> None:
    cfg = config_from_flags(hard="nodefs.available<10%,nodefs.inodesFree<5%,containerfs.available<1%",
                            soft="nodefs.available<20%,containerfs.inodesFree<50%",
                            soft_grace="nodefs.available=1m,containerfs.inodesFree=10s",
                            min_reclaim="nodefs.available=1Gi")
    ts, warnings = container_fs_thresholds(cfg.thresholds)
    got = [(t.signal, t.percentage, t.grace_period, t.min_reclaim) for t in ts
           if t.signal.startswith("containerfs.")]
    assert got == [("containerfs.available", pytest.approx(0.1), 0.0, (GI, None)),
                   ("containerfs.available", pytest.approx(0.2), 60.0, (GI, None)),
                   ("containerfs.inodesFree", pytest.approx(0.05), 0.0, None)]
    assert warnings == ["found containerfs.available for hard eviction. ignoring",
                        "found containerfs.inodesFree for soft eviction. ignoring"]
    # with an image disk holding the writable layers too, containerfs is imagefs
    ts, _ = container_fs_thresholds(config_from_flags().thresholds, image_fs=True, split=False)
    assert [(t.signal, t.percentage) for t in ts if t.signal.startswith("containerfs.")] == [
        ("containerfs.available", pytest.approx(0.15)), ("containerfs.inodesFree", pytest.approx(0.05))]


def test_containerfs_is_observed_as_the_node_filesystem_and_ranks_as_it() -> None:
    obs = observe(readings())
    assert obs["containerfs.available"] == obs["nodefs.available"] == Observation(50 * GI, 100 * GI)
    assert obs["containerfs.inodesFree"] == obs["nodefs.inodesFree"]
    big, small = pod("big"), pod("small", containers=[{"name": "c", "resources": res({"ephemeral-storage": "1Mi"})}])
    usage = {"big": PodUsage([ContainerUsage("c", rootfs=GI, logs=0, inodes=10)]),
             "small": PodUsage([ContainerUsage("c", rootfs=2 * MI, logs=0, inodes=10)])}
    for signal in ("containerfs.available", "containerfs.inodesFree"):
        assert [p["metadata"]["name"] for p in rank([small, big], usage, signal)] == ["big", "small"], signal


def test_inode_ranking_subtracts_the_ephemeral_storage_request_as_kubelet() -> None:
    # both use inodes (no pod requests any); kubelet's "usage above request" for inodes takes
    # the ephemeral-storage request off the inode count, so the pod asking for storage ranks later
    asks = pod("asks", containers=[{"name": "c", "resources": res({"ephemeral-storage": "1Mi"})}])
    plain = pod("plain")
    usage = {"asks": PodUsage([ContainerUsage("c", rootfs=0, logs=0, inodes=1000)]),
             "plain": PodUsage([ContainerUsage("c", rootfs=0, logs=0, inodes=500)])}
    assert [p["metadata"]["name"] for p in rank([asks, plain], usage, "nodefs.inodesFree")] == ["plain", "asks"]


async def test_manager_replaces_containerfs_thresholds_and_reclaims_images_under_containerfs_pressure(
        caplog: pytest.LogCaptureFixture) -> None:
    disk = [5 * GI]
    evicted: list[tuple[str, str]] = []
    reclaims: list[int] = []

    async def read() -> Readings:
        return readings(disk_available=disk[0])

    async def reclaim() -> int:
        reclaims.append(1)
        return 0

    async def reclaim_images() -> int:
        reclaims.append(2)
        return 0

    async def measure(p: dict[str, Any], what: frozenset[str]) -> PodUsage:
        assert what == frozenset({"disk"})
        return PodUsage([ContainerUsage("c", rootfs=MI, logs=0)])

    # containerfs given alone: kubelet replaces it with nodefs' thresholds (none here)
    cfg = config_from_flags(hard="containerfs.available<10Gi")
    with caplog.at_level("WARNING", logger="k8py.kubelet"):
        m = EvictionManager(cfg, read=read, pods=lambda: [pod("p")], usage=measure,
                            evict=lambda uid, msg, *a: evicted.append((uid, msg)) is None, stopped=lambda uid: True,
                            record=lambda *a: None, node=dict, reclaim_containers=reclaim)
        assert await m.sync_once(0.0) == [] and m.conditions == ()  # the first round decides
    assert "found containerfs.available for hard eviction. ignoring" in caplog.text
    assert m.config.thresholds == () and m.layout == FsLayout(False, False)
    # nodefs given: containerfs follows it, and acts as a disk signal (images first, then a pod)
    m = EvictionManager(config_from_flags(hard="nodefs.available<10Gi"), read=read, pods=lambda: [pod("p")],
                        usage=measure, evict=lambda uid, msg, *a: evicted.append((uid, msg)) is None,
                        stopped=lambda uid: True, record=lambda *a: None, node=dict, reclaim_containers=reclaim,
                        reclaim_images=reclaim_images)
    assert await m.sync_once(0.0) == ["p"] and reclaims == [1, 2]  # dead containers, then images
    assert [t.signal for t in m.config.thresholds] == ["nodefs.available", "containerfs.available"]
    assert m.conditions == ("DiskPressure",)
    assert [t.signal for t in m.state.thresholds_met] == ["nodefs.available", "containerfs.available"]
    assert evicted[0][1].startswith("The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, "
                                    "available: 5Gi. ")


# -- container GC under disk pressure -----------------------------------------------------------------


def test_unused_containers_are_kubelets_container_gc() -> None:
    from k8py.kubelet.runtime.types import ContainerState, ContainerStatus

    def c(cid: str, sb: str, name: str, attempt: int, state: ContainerState = ContainerState.EXITED,
          created: float = 0.0) -> ContainerStatus:
        return ContainerStatus(cid, sb, name, attempt, "i", "sha256:i", state, created_at=created)

    containers = [
        c("run-0", "sb-a", "app", 0), c("run-1", "sb-a", "app", 1), c("run-2", "sb-a", "app", 2),
        c("run-3", "sb-a", "app", 3, ContainerState.RUNNING),  # running: never
        c("side-0", "sb-a", "side", 0), c("side-1", "sb-a2", "side", 0, created=5.0),  # same attempt: the newer stays
        c("new", "sb-a", "init", 0, ContainerState.CREATED),  # about to start: left alone
        c("done-0", "sb-done", "app", 0), c("done-1", "sb-done", "app", 1),
        c("gone", "sb-unknown", "app", 0, ContainerState.UNKNOWN),
    ]
    pod_of = {"sb-a": "a", "sb-a2": "a", "sb-done": "done"}
    out = {x.id for x in unused_containers(containers, pod_of, live={"a"})}
    # a live pod keeps its newest dead container of each name; a finished one and one the node
    # no longer has keep nothing
    assert out == {"run-0", "run-1", "side-0", "done-0", "done-1", "gone"}


async def test_reclaim_containers_removes_them_from_the_runtime() -> None:
    from k8py.kubelet.runtime.fake import FakeRuntime
    from k8py.kubelet.runtime.types import ContainerConfig, SandboxConfig

    rt = FakeRuntime()
    await rt.pull_image("busybox")
    ids: dict[str, list[str]] = {}
    for uid in ("live", "finished"):
        sb = SandboxConfig(uid, "default", uid)
        sid = await rt.run_pod_sandbox(sb)
        for attempt in range(3):
            cid = await rt.create_container(sid, ContainerConfig("c", "busybox", attempt=attempt), sb)
            await rt.start_container(cid)
            if attempt < 2 or uid == "finished":
                rt.kill(cid, 1)
            ids.setdefault(uid, []).append(cid)
    assert await reclaim_containers(rt, live={"live"}) == 4
    # the live pod: the running attempt and the newest dead one; the finished pod: nothing
    assert sorted(c.id for c in await rt.list_containers()) == sorted(ids["live"][1:])
    assert await reclaim_containers(rt, live={"live"}) == 0


@pytest.mark.parametrize("pressure", [True, False], ids=["under-disk-pressure", "periodic"])
async def test_agent_container_gc_keeps_what_its_pods_still_need(tmp_path: Any, pressure: bool) -> None:
    """The agent's container GC on the fake runtime against a real API: a crash-looping pod
    keeps its newest dead container (its restart count and last state stay); a failed pod keeps
    its status and is not run again, and loses its containers under disk pressure (kubelet's
    ``DeleteAllUnusedContainers``) but not to the periodic GC."""
    from tests.helpers.cluster import InProcessCluster

    from k8py.client.api import Client
    from k8py.client.config import ClientConfig
    from k8py.kubelet.agent import Agent, AgentConfig
    from k8py.kubelet.runtime.fake import EXIT_CODE_ANNOTATION, FakeRuntime
    from k8py.kubelet.runtime.types import ContainerState

    def crashing(name: str, restart: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "annotations": {EXIT_CODE_ANNOTATION: "1"}},
                "spec": {"nodeName": "n1", "restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "app", "image": "busybox:1.36"}]}}

    async with InProcessCluster() as c:
        client = Client(ClientConfig(server=c.url), component="kubelet")
        rt = FakeRuntime()
        a = Agent(client, rt, AgentConfig(node_name="n1", data_dir=str(tmp_path / "n1"), relist_interval=0.1,
                                          capacity={"cpu": "2", "memory": "4Gi", "pods": "10"}, backoff=(0.05, 0.1)))
        await a.start()
        try:
            await c.client.create(("v1", "Pod"), crashing("loop", "Always"), "default")
            await c.client.create(("v1", "Pod"), crashing("failed", "Never"), "default")

            async def status(name: str) -> dict[str, Any]:
                return dict((await c.client.get(("v1", "Pod"), name, "default")).get("status") or {})

            async def restarted() -> bool:
                cs = (await status("loop")).get("containerStatuses") or [{}]
                return int(cs[0].get("restartCount") or 0) >= 3

            await c.until(restarted, what="the looping pod restarted 3 times")
            await c.until(lambda: _phase_is(status, "failed", "Failed"), what="the failed pod Failed")
            failed_before = (await status("failed"))["containerStatuses"]
            uids = {p: (await c.client.get(("v1", "Pod"), p, "default"))["metadata"]["uid"] for p in ("loop", "failed")}
            await (a.reclaim_containers() if pressure else a.collect_containers())
            by_pod: dict[str, list[Any]] = {}
            sandboxes = {sb.id: sb.uid for sb in await rt.list_pod_sandboxes()}
            for ct in await rt.list_containers():
                by_pod.setdefault(sandboxes[ct.sandbox_id], []).append(ct)
            assert len(by_pod.get(uids["failed"], ())) == (0 if pressure else 1)
            loop_left = by_pod.get(uids["loop"], [])
            dead = [ct for ct in loop_left if ct.state != ContainerState.RUNNING]
            assert len(dead) == 1, loop_left  # the newest exited attempt (another may be running)
            count = int((await status("loop"))["containerStatuses"][0]["restartCount"])

            async def restarted_again() -> bool:
                cs = (await status("loop")).get("containerStatuses") or [{}]
                return int(cs[0].get("restartCount") or 0) > count

            # the looping pod carries on counting from where it was (the agent relisted and
            # synced meanwhile); the failed pod was not run again and its status stands
            await c.until(restarted_again, what="the looping pod restarted once more")
            st = await status("failed")
            assert st["phase"] == "Failed" and st["containerStatuses"] == failed_before
            now = {sb.id: sb.uid for sb in await rt.list_pod_sandboxes()}
            assert [now[ct.sandbox_id] for ct in await rt.list_containers()].count(uids["failed"]) == (
                0 if pressure else 1)
            assert [i for i, u in now.items() if u == uids["failed"]] == [
                i for i, u in sandboxes.items() if u == uids["failed"]]  # no new sandbox either
        finally:
            await a.stop()
            await client.close()


async def _phase_is(status: Any, name: str, phase: str) -> bool:
    return bool((await status(name)).get("phase") == phase)


# -- a dedicated image filesystem ------------------------------------------------------------------------


def fs(dev: int, total: int = 100 * GI, avail: int = 50 * GI) -> FsStats:
    return FsStats(dev, total, avail, 1_000_000, 500_000)


def test_filesystem_layouts_are_kubelets() -> None:
    assert Filesystems(fs(1), fs(1), fs(1)).layout() == FsLayout(False, False)  # one filesystem
    assert Filesystems(fs(1), fs(2), fs(2)).layout() == FsLayout(True, False)  # an image disk for both
    assert Filesystems(fs(1), fs(2), fs(1)).layout() == FsLayout(True, True)  # images apart, layers on the node's
    obs = observe(readings(), fs=Filesystems(fs(1), fs(2, 20 * GI, GI), fs(3, 30 * GI, 2 * GI)))
    assert obs["nodefs.available"] == Observation(50 * GI, 100 * GI)
    assert obs["imagefs.available"] == Observation(GI, 20 * GI)
    assert obs["containerfs.available"] == Observation(2 * GI, 30 * GI)
    assert obs["imagefs.inodesFree"] == Observation(500_000, 1_000_000)


def test_ranking_and_reclaim_follow_the_filesystems_as_kubelets() -> None:
    one, dedicated, split = FsLayout(), FsLayout(True, False), FsLayout(True, True)
    everything = {"rootfs", "logs", "volumes"}
    for sig in ("nodefs.available", "imagefs.inodesFree", "containerfs.available"):
        assert disk_parts(sig, one) == everything and reclaim_steps(sig, one) == ("containers", "images")
    assert disk_parts("nodefs.available", dedicated) == {"logs", "volumes"}
    assert disk_parts("imagefs.available", dedicated) == disk_parts("containerfs.inodesFree", dedicated) == {"rootfs"}
    assert reclaim_steps("nodefs.inodesFree", dedicated) == ()
    assert reclaim_steps("imagefs.available", dedicated) == reclaim_steps("containerfs.available", dedicated) == (
        "containers", "images")
    assert disk_parts("nodefs.available", split) == disk_parts("containerfs.available", split) == everything
    assert disk_parts("imagefs.available", split) == frozenset()
    assert reclaim_steps("imagefs.available", split) == ("images",)
    assert reclaim_steps("nodefs.available", split) == reclaim_steps("containerfs.inodesFree", split) == (
        "containers",)
    # with an image disk, nodefs pressure ranks by logs and volumes, imagefs by writable layers
    writer, logger = pod("writer"), pod("logger")
    usage = {"writer": PodUsage([ContainerUsage("c", rootfs=GI, logs=MI, inodes=100, rootfs_inodes=90)]),
             "logger": PodUsage([ContainerUsage("c", rootfs=MI, logs=500 * MI, inodes=1000, rootfs_inodes=10)])}
    names = [p["metadata"]["name"] for p in rank([writer, logger], usage, "nodefs.available", dedicated)]
    assert names == ["logger", "writer"]
    names = [p["metadata"]["name"] for p in rank([logger, writer], usage, "imagefs.available", dedicated)]
    assert names == ["writer", "logger"]
    assert usage["writer"].inodes_of({"rootfs"}) == 90 and usage["writer"].inodes_of({"logs"}) == 10
    names = [p["metadata"]["name"] for p in rank([logger, writer], usage, "imagefs.inodesFree", dedicated)]
    assert names == ["writer", "logger"]


def test_with_an_image_disk_a_containers_limit_counts_its_logs_only() -> None:
    p = pod("p", containers=[{"name": "c", "resources": res(limits={"ephemeral-storage": "10Mi"})},
                             {"name": "d", "resources": res(limits={"ephemeral-storage": "20Mi"})}])
    u = PodUsage([ContainerUsage("c", rootfs=8 * MI, logs=4 * MI), ContainerUsage("d", rootfs=0, logs=0)])
    assert local_storage_violation(p, u) == 'Container c exceeded its local ephemeral storage limit "10Mi". '
    assert local_storage_violation(p, u, image_fs=True) is None


async def test_manager_on_a_dedicated_image_disk(caplog: pytest.LogCaptureFixture) -> None:
    image_avail = [50 * GI]
    node_avail = [50 * GI]
    steps: list[str] = []
    evicted: list[tuple[str, str]] = []

    async def read() -> Readings:
        return readings(disk_available=node_avail[0])

    async def filesystems() -> Filesystems:
        disk = fs(2, 100 * GI, image_avail[0])
        return Filesystems(fs(1, 100 * GI, node_avail[0]), disk, disk)

    async def reclaim(what: str) -> None:
        steps.append(what)

    async def measure(p: dict[str, Any], what: frozenset[str]) -> PodUsage:
        return PodUsage([ContainerUsage("c", rootfs=MI, logs=0)])

    cfg = config_from_flags(hard="nodefs.available<10Gi,imagefs.available<20Gi")
    with caplog.at_level("INFO", logger="k8py.kubelet"):
        m = EvictionManager(cfg, read=read, pods=lambda: [pod("p")], usage=measure,
                            evict=lambda uid, msg, *a: evicted.append((uid, msg)) is None, stopped=lambda uid: True,
                            record=lambda *a: None, node=dict, reclaim_containers=lambda: reclaim("containers"),
                            reclaim_images=lambda: reclaim("images"), filesystems=filesystems)
        assert await m.sync_once(0.0) == []
    assert m.layout == FsLayout(True, False)
    assert "a dedicated image filesystem holding the writable layers too" in caplog.text
    # containerfs follows imagefs here
    assert [(t.signal, t.text) for t in m.config.thresholds if t.signal.startswith("containerfs")] == [
        ("containerfs.available", "20Gi")]
    # the image disk fills: dead containers and images go first, then a pod, named by imagefs
    image_avail[0] = 10 * GI
    assert await m.sync_once(10.0) == ["p"] and steps == ["containers", "images"]
    assert evicted[-1][1].startswith("The node was low on resource: ephemeral-storage. Threshold quantity: 20Gi, "
                                     "available: 10Gi. ")
    # the node's filesystem fills: nothing to reclaim there (kubelet: logs only), a pod goes
    image_avail[0], node_avail[0], steps[:] = 50 * GI, 5 * GI, []
    assert await m.sync_once(20.0) == ["p"] and steps == []


async def test_manager_waits_for_the_filesystems_before_deciding_the_layout() -> None:
    calls = [0]

    async def read() -> Readings:
        return readings()

    async def filesystems() -> Filesystems:
        calls[0] += 1
        if calls[0] == 1:
            raise FileNotFoundError("no image store yet")
        return Filesystems(fs(1), fs(2, 100 * GI, 10 * GI), fs(1))

    async def measure(p: dict[str, Any], what: frozenset[str]) -> PodUsage:
        return PodUsage([ContainerUsage("c", rootfs=MI, logs=0)])

    m = EvictionManager(config_from_flags(hard="imagefs.available<20Gi"), read=read, pods=list, usage=measure,
                        evict=lambda *a: True, stopped=lambda uid: True, record=lambda *a: None, node=dict,
                        filesystems=filesystems)
    assert await m.sync_once(0.0) == [] and m.layout is None and m.conditions == ()  # imagefs not observed
    await m.sync_once(10.0)
    assert m.layout == FsLayout(True, True) and m.conditions == ("DiskPressure",)


def test_requests_rank_as_kubes_pod_requests() -> None:
    """kube's GetResourceRequestQuantity: pod-level resources, sidecars added up, the overhead
    only on a request that is not 0."""
    pod_level = pod("pod-level", resources={"requests": {"memory": "1Gi"}})
    sidecar = pod("sidecar", containers=[{"name": "c", "resources": res({"memory": "100Mi"})}],
                  initContainers=[{"name": "s", "restartPolicy": "Always", "resources": res({"memory": "200Mi"})}])
    overhead = pod("overhead", containers=[{"name": "c", "resources": res({"memory": "100Mi"})}],
                   overhead={"memory": "50Mi"})
    free_overhead = pod("free-overhead", overhead={"memory": "50Mi"})
    usage = {"pod-level": PodUsage([ContainerUsage("c", memory=800 * MI)]),
             "sidecar": PodUsage([ContainerUsage("c", memory=250 * MI)]),
             "overhead": PodUsage([ContainerUsage("c", memory=120 * MI)]),
             "free-overhead": PodUsage([ContainerUsage("c", memory=MI)])}
    got = [p["metadata"]["name"] for p in rank([pod_level, sidecar, overhead, free_overhead], usage,
                                                 "memory.available")]
    # only the pod with no request exceeds it; the others by usage above their requests
    # (-30Mi, -50Mi, -224Mi)
    assert got == ["free-overhead", "overhead", "sidecar", "pod-level"]


def test_memory_message_names_the_pod_with_pod_level_requests() -> None:
    p = pod("web", resources={"requests": {"memory": "256Mi"}},
            containers=[{"name": "app"}, {"name": "side"}])
    u = PodUsage([ContainerUsage("app", memory=200 * MI), ContainerUsage("side", memory=100 * MI)])
    msg = eviction_message("memory", p, u, Threshold("memory.available", quantity=100 * MI), Observation(MI, 8 * GI))
    assert msg == ("The node was low on resource: memory. Threshold quantity: 100Mi, available: 1Mi. "
                   "Pod web was using 300Mi, request is 256Mi, has larger consumption of memory. "
                   "Container app was using 200Mi, request is 0, has larger consumption of memory. "
                   "Container side was using 100Mi, request is 0, has larger consumption of memory. ")
