"""The node agent's own cgroups, its sandbox garbage collection and its claims after a restart,
on a real node (runc, CNI) with kubectl, in one cluster:

- the pods' cgroup ``kubepods`` holds kubelet's node-allocatable limits (capacity less
  ``--system-reserved`` and ``--kube-reserved``: memory, CPU shares, processes) and its QoS
  cgroups their CPU shares (BestEffort the minimum, Burstable its pods' CPU requests), and a pod
  cannot push the pods' memory over that limit (the kernel stops it, while the machine has
  plenty free);
- a sandbox that died under its pod (stopped as ``crictl stopp`` does) is replaced, and the
  periodic garbage collection removes the dead one once it holds no container: its network
  namespace, directory and containers gone (the collection runs every 2 s here,
  ``--container-gc-period``, instead of kubelet's minute);
- ``/stats/summary`` reports a pod's local volumes (emptyDir on disk and in memory, configMap)
  with their usage, as kubelet's volume stats;
- a pod whose claim is being deleted (Terminating, still protected) keeps mounting it after the
  agent restarts: its container restarts with its data, no ``FailedMount``.

The pods' memory limit is 400Mi here; what the pods of these tests use is a few MiB, and the one
that asks for more is stopped by that limit. Everything is removed at the end (``k8py killall``;
the fixture checks nothing is left).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Server, wait
from tests.helpers.realnode import IMAGE, namespace_for, node_ready, real_cluster

from k8py.kubelet.node import read
from k8py.kubelet.runtime.cgroups import Cgroups

NODE = "k8py-e2e-cgroups-gc"
MI = 1 << 20
PODS_LIMIT_MI = 400  # the kubepods memory limit this node gets
PID_RESERVED = 1000
DATA: list[Path] = []  # the cluster's data dir (set by the fixture)
# sh as a container's first process ignores SIGTERM unless it traps it: a pod deleted while it
# waits would stop only when killed, after kubelet's minimum grace period (2 s); with the trap it
# ends at once (``wait`` returns for a trapped signal; a foreground ``sleep`` ends first)
ON_TERM_EXIT = "trap 'exit 0' TERM; "

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("cgroupsgc")
    machine = read(str(tmp))
    reserved = machine.memory_total - PODS_LIMIT_MI * MI
    DATA[:] = [tmp / "data"]
    # split between the two flags, as kubelet sums them; the eviction thresholds are set far
    # below anything these tests reach, so the kernel's limit is what stops the pods; dead
    # containers and sandboxes are collected every 2 s (kubelet: every minute)
    with real_cluster(tmp, NODE, "--system-reserved", f"cpu=500m,memory={reserved // 2},pid={PID_RESERVED}",
                      "--kube-reserved", f"memory={reserved - reserved // 2}",
                      "--eviction-hard", "memory.available<1Mi,nodefs.available<1%",
                      "--container-gc-period", "2s") as s:
        yield s


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    return namespace_for(cluster, request, "cg")


def apply(s: Server, ns: str, manifest: dict[str, Any]) -> None:
    s.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def get(s: Server, kind: str, name: str, ns: str | None = None) -> Any:
    p = s.kubectl("get", kind, name, *(("-n", ns) if ns else ()), "-o", "json", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def status(s: Server, name: str, ns: str) -> dict[str, Any]:
    return dict((get(s, "pod", name, ns) or {}).get("status") or {})


def pod(name: str, command: str, *, restart: str = "Never", resources: dict[str, Any] | None = None,
        volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                         "command": ["sh", "-c", command]}
    if resources:
        c["resources"] = resources
    spec: dict[str, Any] = {"restartPolicy": restart, "terminationGracePeriodSeconds": 1, "containers": [c]}
    if volumes:
        spec["volumes"] = volumes
        c["volumeMounts"] = [{"name": v["name"], "mountPath": f"/{v['name']}"} for v in volumes]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def cgroup_file(controller: str, path: str, v1: str, v2: str) -> str | None:
    cg = Cgroups.detect()
    return cg.read(controller, path, v2 if cg.version == 2 else v1)


def shares(path: str) -> int | None:
    """The cgroup's CPU shares (v2: its weight)."""
    text = cgroup_file("cpu", path, "cpu.shares", "cpu.weight")
    return int(text) if text is not None else None


def pids_capacity() -> int:
    with open("/proc/sys/kernel/pid_max") as a, open("/proc/sys/kernel/threads-max") as b:
        return min(int(a.read()), int(b.read()))


def test_kubepods_and_qos_cgroups_hold_kubelets_limits(cluster: Server, ns: str) -> None:
    s = cluster
    cg = Cgroups.detect()
    limit = cgroup_file("memory", "/kubepods", "memory.limit_in_bytes", "memory.max")
    assert limit == str(PODS_LIMIT_MI * MI)
    cpus = read("/").cpus
    want = max(2, (cpus * 1000 - 500) * 1024 // 1000)  # MilliCPUToShares(capacity - 500m)
    assert shares("/kubepods") == (want if cg.version == 1 else 1 + (want - 2) * 9999 // 262142)
    assert cgroup_file("pids", "/kubepods", "pids.max", "pids.max") == str(pids_capacity() - PID_RESERVED)
    assert shares("/kubepods/besteffort") == (2 if cg.version == 1 else 1)
    # the node's allocatable is that limit less the hard memory threshold (1Mi)
    node = get(s, "node", NODE)
    assert node["status"]["allocatable"]["memory"] == f"{PODS_LIMIT_MI - 1}Mi"
    events = s.kjson("get", "events", "-n", "default", "--field-selector", f"involvedObject.name={NODE}")["items"]
    assert any(e["reason"] == "NodeAllocatableEnforced" and e["message"] == "Updated Node Allocatable limit across pods"
               and e["type"] == "Normal" for e in events), [(e["reason"], e["message"]) for e in events]
    # a Burstable pod's CPU request becomes the burstable cgroup's shares, and goes with the pod
    apply(s, ns, pod("burst", ON_TERM_EXIT + "sleep 3600 & wait", restart="Always",
                     resources={"requests": {"cpu": "300m"}}))
    wait(lambda: status(s, "burst", ns).get("phase") == "Running", 60, "the burstable pod Running")
    expect = 307 if cg.version == 1 else 1 + (307 - 2) * 9999 // 262142
    wait(lambda: shares("/kubepods/burstable") == expect, 30, f"burstable cpu shares {expect}")
    s.kubectl("delete", "pod", "burst", "-n", ns, "--wait=true", timeout=60)
    wait(lambda: shares("/kubepods/burstable") == (2 if cg.version == 1 else 1), 30, "burstable shares back to 2")


def test_a_pod_cannot_push_the_pods_memory_over_their_limit(cluster: Server, ns: str) -> None:
    s = cluster
    assert read("/").memory_available > 2 * PODS_LIMIT_MI * MI, "the machine itself is short of memory"
    cg = Cgroups.detect()
    if cg.version == 1:
        # the kubepods cgroup outlives clusters (machine-wide, as kubelet's): its high-water mark
        # and failure count start from this test (writing 0 resets both, cgroup v1)
        base = cg.path("memory", "/kubepods")
        assert base is not None
        for name in ("memory.max_usage_in_bytes", "memory.failcnt"):
            with open(f"{base}/{name}", "w") as f:
                f.write("0")
    # dd's buffer is one block: 500Mi of touched memory, more than the pods may have together
    # (dd is the container's process: the OOM killer's victim ends the container)
    apply(s, ns, pod("hog", "exec dd if=/dev/zero of=/dev/null bs=500M count=1"))
    wait(lambda: status(s, "hog", ns).get("phase") in ("Failed", "Succeeded"), 120, "the pod finished")
    st = status(s, "hog", ns)
    term = st["containerStatuses"][0]["state"]["terminated"]
    assert st["phase"] == "Failed", st
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137), term
    if cg.version == 1:
        # the pods' cgroup met its limit and never went past it
        assert int(cg.read("memory", "/kubepods", "memory.failcnt") or 0) > 0
        assert int(cg.read("memory", "/kubepods", "memory.max_usage_in_bytes") or 0) <= PODS_LIMIT_MI * MI
    else:
        assert "oom_kill" in (cg.read("memory", "/kubepods", "memory.events") or "")
    # the node is fine: a pod within the limit runs
    apply(s, ns, pod("small", "dd if=/dev/zero of=/dev/null bs=50M count=1 && echo fine"))
    wait(lambda: status(s, "small", ns).get("phase") in ("Failed", "Succeeded"), 120, "the small pod finished")
    assert status(s, "small", ns)["phase"] == "Succeeded"


def runtime_of(data: Path) -> Any:
    """The node's runtime as a tool beside the agent sees it (``crictl``): the same state on disk."""
    from k8py.kubelet.images import ImageStore
    from k8py.kubelet.run import NodeNetwork, node_paths
    from k8py.kubelet.runtime.runc import RuncRuntime

    paths = node_paths(str(data))
    return RuncRuntime(paths["containers"], ImageStore(paths["images"]), NodeNetwork(paths["cni"]))


def sandboxes_of(uid: str) -> list[Any]:
    rt = runtime_of(DATA[0])
    return sorted((sb for sb in asyncio.run(rt.list_pod_sandboxes()) if sb.uid == uid), key=lambda sb: sb.attempt)


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout


def test_a_dead_sandbox_is_replaced_and_then_collected(cluster: Server, ns: str) -> None:
    s = cluster
    # each run lasts 3 s: the new sandbox's first container outlives a collection (every 2 s),
    # so the test sees the two sandboxes side by side before the old one goes
    apply(s, ns, pod("crashy", ON_TERM_EXIT + "sleep 3 & wait; exit 1", restart="Always"))
    uid = get(s, "pod", "crashy", ns)["metadata"]["uid"]
    wait(lambda: len(sandboxes_of(uid)) == 1 and status(s, "crashy", ns).get("podIP"), 60, "the pod's sandbox")
    old = sandboxes_of(uid)[0]
    netns = os.path.basename(old.netns_path)
    assert netns and netns in netns_list()
    sandbox_dir = DATA[0] / "agent" / "containers" / "sandboxes" / old.id
    assert sandbox_dir.is_dir()
    # the sandbox dies under the pod (crictl stopp): its container killed, its network torn down
    asyncio.run(runtime_of(DATA[0]).stop_pod_sandbox(old.id))
    wait(lambda: len(sandboxes_of(uid)) == 2 and sandboxes_of(uid)[1].state.value == "SANDBOX_READY", 60,
         "a new sandbox for the pod")
    new = sandboxes_of(uid)[1]
    assert new.attempt == 1
    # once the new sandbox's container has run and died, the old one's are no longer the newest
    # dead containers of their name: the next collection removes them and the sandbox
    wait(lambda: [sb.id for sb in sandboxes_of(uid)] == [new.id], 60, "the dead sandbox collected")
    assert not sandbox_dir.exists()
    assert netns not in netns_list()
    rt = runtime_of(DATA[0])
    assert all(c.sandbox_id != old.id for c in asyncio.run(rt.list_containers()))
    # the pod carries on in its new sandbox
    st = status(s, "crashy", ns)
    assert st["phase"] == "Running" and st["containerStatuses"][0]["restartCount"] >= 1
    s.kubectl("delete", "pod", "crashy", "-n", ns, "--wait=true", timeout=60)


def test_the_summary_reports_the_pods_local_volumes(cluster: Server, ns: str) -> None:
    """``/stats/summary`` (through the API server's node proxy, as ``kubectl get --raw`` reads
    it): a pod's emptyDir volumes, on disk and in memory, and its configMap volume, with what is
    used in them and their filesystem's size, as kubelet reports them."""
    s = cluster
    s.kubectl("create", "configmap", "conf", "-n", ns, "--from-literal=key=value")
    apply(s, ns, pod("writer", ON_TERM_EXIT + "dd if=/dev/zero of=/disk/blob bs=1M count=5 && mkdir /disk/d && "
                               "touch /disk/d/a /disk/d/b && dd if=/dev/zero of=/mem/blob bs=1M count=3 && "
                               "echo written && sleep 3600 & wait", restart="Always",
                     volumes=[{"name": "disk", "emptyDir": {}},
                              {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                              {"name": "conf", "configMap": {"name": "conf"}}]))
    wait(lambda: "written" in s.kubectl("logs", "writer", "-n", ns, check=False).stdout, 60, "the files written")
    uid = get(s, "pod", "writer", ns)["metadata"]["uid"]
    summary = json.loads(s.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/stats/summary").stdout)
    (mine,) = [p for p in summary["pods"] if p["podRef"]["uid"] == uid]
    vols = {v["name"]: v for v in mine["volume"]}
    # the service account token's projected volume too, as kubelet reports it
    assert {n for n in vols if not n.startswith("kube-api-access-")} == {"disk", "mem", "conf"}, vols
    assert len(vols) == 4, vols
    disk, mem = vols["disk"], vols["mem"]
    assert 5 * MI <= disk["usedBytes"] < 6 * MI and disk["inodesUsed"] == 5  # the dir, blob, d, d/a, d/b
    machine = os.statvfs(DATA[0])
    assert disk["capacityBytes"] == machine.f_blocks * machine.f_frsize  # the node's filesystem
    assert 3 * MI <= mem["usedBytes"] < 4 * MI and mem["capacityBytes"] == 64 * MI  # its own tmpfs
    for v in vols.values():
        assert {"time", "availableBytes", "capacityBytes", "usedBytes", "inodesFree", "inodes", "inodesUsed"} <= set(v)
    s.kubectl("delete", "pod", "writer", "-n", ns, "--wait=true", timeout=60)


def test_a_claim_being_deleted_still_mounts_for_its_pod_after_the_agent_restarts(cluster: Server, ns: str) -> None:
    s = cluster
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}}
    apply(s, ns, claim)
    # each run of the container records itself on the claim and ends when told (a file there)
    apply(s, ns, pod("user", ON_TERM_EXIT + "rm -f /data/stop; echo run >> /data/runs; "
                             "while [ ! -f /data/stop ]; do sleep 1; done; exit 1", restart="Always",
                     volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]))
    wait(lambda: status(s, "user", ns).get("phase") == "Running", 120, "the pod with the claim Running")
    s.kubectl("delete", "pvc", "data", "-n", ns, "--wait=false")
    pvc = get(s, "pvc", "data", ns)
    assert pvc["metadata"].get("deletionTimestamp") and "kubernetes.io/pvc-protection" in pvc["metadata"]["finalizers"]
    s.stop()
    s.start()
    wait(lambda: node_ready(s, NODE), 60, "the node Ready again")

    def restarts() -> int:
        cs = status(s, "user", ns).get("containerStatuses") or [{}]
        return int(cs[0].get("restartCount") or 0)

    assert restarts() == 0
    # the container ends: the restarted agent starts it again with its claim mounted (the
    # agent resolves the claim anew, and it is being deleted)
    s.kubectl("exec", "user", "-n", ns, "--", "touch", "/data/stop")
    wait(lambda: restarts() >= 1 and status(s, "user", ns)["containerStatuses"][0].get("state", {}).get("running"),
         90, "the container running again")

    def runs() -> list[str]:
        p = s.kubectl("exec", "user", "-n", ns, "--", "cat", "/data/runs", check=False)
        return p.stdout.split() if p.returncode == 0 else []

    wait(lambda: runs() == ["run", "run"], 30, "both runs on the claim")
    warnings = [e["message"] for e in s.kjson("get", "events", "-n", ns)["items"]
                if e["involvedObject"].get("name") == "user" and e["reason"] == "FailedMount"]
    assert not warnings, warnings
    # the pod gone, the claim is released and goes
    s.kubectl("delete", "pod", "user", "-n", ns, "--wait=true", timeout=60)
    wait(lambda: get(s, "pvc", "data", ns) is None, 60, "the claim deleted")


def test_a_pods_own_cgroup_holds_its_limits(cluster: Server, ns: str) -> None:
    # kubelet's ResourceConfigForPod: a Guaranteed pod's cgroup (kubepods/pod<uid>) gets the CPU
    # shares of its requests, the CPU quota and memory limit of its limits
    s = cluster
    cg = Cgroups.detect()
    apply(s, ns, pod("fixed", "sleep 3600", restart="Always",
                     resources={"limits": {"cpu": "250m", "memory": "48Mi"}}))
    wait(lambda: status(s, "fixed", ns).get("phase") == "Running", 60, "the guaranteed pod Running")
    p = get(s, "pod", "fixed", ns)
    assert p["status"]["qosClass"] == "Guaranteed"
    path = f"/kubepods/pod{p['metadata']['uid']}"
    assert cgroup_file("memory", path, "memory.limit_in_bytes", "memory.max") == str(48 * MI)
    if cg.version == 1:
        assert [cg.read("cpu", path, f) for f in ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us")] == \
            ["256", "25000", "100000"]
    else:
        assert cg.read("cpu", path, "cpu.max") == "25000 100000"
    s.kubectl("delete", "pod", "fixed", "-n", ns, "--wait=true", timeout=60)
