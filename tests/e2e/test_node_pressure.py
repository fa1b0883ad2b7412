"""Node pressure with real containers: kubelet's eviction manager, ephemeral-storage limits, the
pods' PID limit, the MemoryPressure condition and taint, the scheduler keeping pods away, and the
container garbage collection that keeps a crash-looping pod's restarts from piling up on disk.

The cluster's memory threshold is set relative to what the machine has free when the module
starts (``memory.available<(free - 2Gi)``), so a BestEffort pod that fills a 4Gi memory-backed
emptyDir puts the node under pressure without exhausting the machine; its eviction frees it.
Everything the pods write is bounded (20Mi of disk, 4Gi of memory) and removed with them.

The eviction manager observes the node every second and dead containers are collected every 2 s
(``--eviction-monitoring-period``, ``--container-gc-period``; kubelet's fixed 10 s and minute):
what the tests wait for comes at the next round, not up to 10 s or a minute later."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Server, wait
from tests.helpers.realnode import IMAGE, namespace_for, real_cluster

from k8py.kubelet.node import read

NODE = "k8py-e2e-pressure"
MI = 1024 * 1024
PIDS = 40

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("pressure")
    free = read(str(tmp)).memory_available
    threshold = (free - 2048 * MI) // MI
    with real_cluster(tmp, NODE, "--eviction-hard", f"memory.available<{threshold}Mi,nodefs.available<1%",
                      "--eviction-pressure-transition-period", "10s", "--pod-max-pids", str(PIDS),
                      "--eviction-monitoring-period", "1s", "--container-gc-period", "2s") as s:
        yield s


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    return namespace_for(cluster, request, "p")


def pod(name: str, command: str, *, resources: dict[str, Any] | None = None,
        volumes: list[dict[str, Any]] | None = None, mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", command]}
    if resources:
        c["resources"] = resources
    if mounts:
        c["volumeMounts"] = mounts
    spec: dict[str, Any] = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2, "containers": [c]}
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def apply(s: Server, ns: str, manifest: dict[str, Any]) -> None:
    s.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def get(s: Server, kind: str, name: str, ns: str | None = None) -> Any:
    args = ["get", kind, name, "-o", "json", *(["-n", ns] if ns else [])]
    p = s.kubectl(*args, check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def status(s: Server, name: str, ns: str) -> dict[str, Any]:
    return dict((get(s, "pod", name, ns) or {}).get("status") or {})


def events(s: Server, ns: str, name: str) -> list[dict[str, Any]]:
    out = s.kubectl("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}", "-o", "json")
    return list(json.loads(out.stdout)["items"])


def condition(node: dict[str, Any], t: str) -> str:
    return next((c["status"] for c in node["status"]["conditions"] if c["type"] == t), "")


def test_pod_over_its_ephemeral_storage_limit_is_evicted(cluster: Server, ns: str) -> None:
    apply(cluster, ns, pod("filler", "dd if=/dev/zero of=/tmp/fill bs=1M count=20; sleep 3600",
                           resources={"limits": {"ephemeral-storage": "10Mi"}}))
    wait(lambda: status(cluster, "filler", ns).get("phase") == "Failed", 90, "the pod evicted")
    st = status(cluster, "filler", ns)
    assert st["reason"] == "Evicted"
    assert st["message"] == "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. "
    assert not any(c.get("type") == "DisruptionTarget" for c in st.get("conditions") or ())
    evs = [e for e in events(cluster, ns, "filler") if e["reason"] == "Evicted"]
    assert evs and evs[0]["type"] == "Warning" and evs[0]["message"] == st["message"]
    state = st["containerStatuses"][0]["state"]
    assert "terminated" in state, state


def test_a_pod_cannot_have_more_processes_than_pod_max_pids(cluster: Server, ns: str) -> None:
    # the inner shell stops at its first failed fork (busybox's "can't fork"); the outer one
    # needs no new process after it (echo is built in, exec replaces it)
    apply(cluster, ns, pod("forker", f"sh -c 'i=0; while [ $i -lt {PIDS + 10} ]; do sleep 600 & i=$((i+1)); done'; "
                                     "echo done forking; exec sleep 600"))
    wait(lambda: "done forking" in cluster.kubectl("logs", "-n", ns, "forker", check=False).stdout, 60,
         "the shell done forking")
    logs = cluster.kubectl("logs", "-n", ns, "forker").stdout
    assert "can't fork" in logs, logs
    uid = get(cluster, "pod", "forker", ns)["metadata"]["uid"]
    with open(f"/sys/fs/cgroup/pids/kubepods/besteffort/pod{uid}/pids.max") as f:
        assert f.read().strip() == str(PIDS)
    with open(f"/sys/fs/cgroup/pids/kubepods/besteffort/pod{uid}/pids.current") as f:
        assert int(f.read()) <= PIDS
    cluster.kubectl("delete", "pod", "-n", ns, "forker", "--wait=true", "--timeout=60s")


def test_memory_pressure_evicts_besteffort_first_and_taints_the_node(cluster: Server, ns: str) -> None:
    guaranteed = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "50m", "memory": "64Mi"}}
    apply(cluster, ns, pod("steady", "sleep 3600", resources=guaranteed))
    wait(lambda: status(cluster, "steady", ns).get("phase") == "Running", 60, "the Guaranteed pod running")
    node = get(cluster, "node", NODE)
    assert condition(node, "MemoryPressure") == "False"
    # the BestEffort pod fills a memory-backed emptyDir: its tmpfs pages are charged to it
    apply(cluster, ns, pod("hog", "dd if=/dev/zero of=/mem/fill bs=1M count=4096; sleep 3600",
                           volumes=[{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "5Gi"}}],
                           mounts=[{"name": "mem", "mountPath": "/mem"}]))
    wait(lambda: status(cluster, "hog", ns).get("phase") == "Failed", 120, "the BestEffort pod evicted")
    hog = status(cluster, "hog", ns)
    assert hog["reason"] == "Evicted"
    assert hog["message"].startswith("The node was low on resource: memory. Threshold quantity: "), hog["message"]
    assert "Container hog was using " in hog["message"] and ", request is 0, has larger consumption of memory. " in (
        hog["message"])
    disruption = next(c for c in hog["conditions"] if c["type"] == "DisruptionTarget")
    assert (disruption["status"], disruption["reason"]) == ("True", "TerminationByKubelet")
    assert status(cluster, "steady", ns).get("phase") == "Running"  # the Guaranteed one stays

    # the node shows the pressure (the condition outlasts it for the transition period) and
    # the node lifecycle controller taints it
    def tainted() -> bool:
        n = get(cluster, "node", NODE)
        return condition(n, "MemoryPressure") == "True" and any(
            t["key"] == "node.kubernetes.io/memory-pressure" and t["effect"] == "NoSchedule"
            for t in n["spec"].get("taints") or ())

    wait(tainted, 30, "the MemoryPressure condition and taint")
    node_events = events(cluster, "default", NODE)
    assert any(e["reason"] == "EvictionThresholdMet" and e["message"] == "Attempting to reclaim memory"
               for e in node_events), node_events
    assert any(e["reason"] == "NodeHasInsufficientMemory"
               and e["message"] == f"Node {NODE} status is now: NodeHasInsufficientMemory" for e in node_events)
    # the scheduler does not place a pod there while it is tainted
    apply(cluster, ns, pod("late", "sleep 3600"))
    wait(lambda: any(e["reason"] == "FailedScheduling" for e in events(cluster, ns, "late")), 30,
         "the late pod's FailedScheduling")
    failed = next(e for e in events(cluster, ns, "late") if e["reason"] == "FailedScheduling")
    assert "untolerated taint {node.kubernetes.io/memory-pressure: }" in failed["message"], failed["message"]
    # once the memory is back and the transition period has passed: no condition, no taint,
    # and the waiting pod is placed and runs
    wait(lambda: not tainted(), 90, "the pressure gone")
    assert any(e["reason"] == "NodeHasSufficientMemory" for e in events(cluster, "default", NODE))
    wait(lambda: status(cluster, "late", ns).get("phase") == "Running", 90, "the late pod running")
    assert status(cluster, "steady", ns).get("phase") == "Running"


def test_dead_containers_of_a_crash_looping_pod_are_collected(cluster: Server, ns: str) -> None:
    """kubelet's periodic container GC (every minute; every 2 s here): of the pod's exited
    containers only the newest stays, so its restart count and ``kubectl logs --previous`` are as
    they were."""
    manifest = pod("crashy", "echo run; exit 1")
    manifest["spec"]["restartPolicy"] = "Always"
    apply(cluster, ns, manifest)

    def restarts() -> int:
        cs = status(cluster, "crashy", ns).get("containerStatuses") or [{}]
        return int(cs[0].get("restartCount") or 0)

    def containers() -> int:
        """The runtime's containers of the pod (each a directory with its meta.json)."""
        root = Path(cluster.data_dir) / "agent" / "containers" / "containers"
        n = 0
        for meta in root.glob("*/meta.json"):
            try:
                n += json.loads(meta.read_text()).get("name") == "crashy"
            except (OSError, ValueError):
                continue  # being written or removed
        return n

    # attempts 0, 1 and 2 made (kubelet's back-off: at once, then 10 s), then the next collection
    wait(lambda: restarts() >= 2, 120, "two restarts")
    wait(lambda: containers() <= 2, 90, "the older exited containers collected")
    assert restarts() >= 2
    assert "run" in cluster.kubectl("logs", "-n", ns, "crashy", "--previous").stdout
    cluster.kubectl("delete", "pod", "-n", ns, "crashy", "--wait=true", "--timeout=60s")
