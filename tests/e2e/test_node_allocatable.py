"""Pods over the node's allocatable memory, with real containers: kubelet's
``allocatableMemory.available`` signal (each hard ``memory.available`` threshold applied to the
pods' cgroup ``kubepods`` as well, ``--enforce-node-allocatable=pods``).

The memory threshold is set relative to what the machine has free when the module starts
(``memory.available<(free - 2Gi)``, as in ``test_node_pressure``), and ``--system-reserved`` with
``--kube-reserved`` (half each) keep all of the machine's memory but 200Mi plus that threshold
from the pods: the pods' limit
is the threshold plus 200Mi, so the node's allocatable memory is 200Mi. A pod that fills 300Mi
passes it and is evicted while the machine has memory to spare (``memory.available`` is not
met). This needs a cluster of its own: in ``test_node_pressure``'s, whose pods may use up to
2Gi before ``memory.available`` acts, any pod big enough to pass a small allocatable would be
evicted by this signal first and its memory test would no longer be about the node's memory.
What the pod writes is bounded (300Mi of memory) and removed with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.e2e.conftest import Server, wait
from tests.e2e.test_node_pressure import MI, apply, condition, events, get, pod, status
from tests.helpers.realnode import namespace_for, real_cluster

from k8py.api.quantity import parse_quantity
from k8py.kubelet.node import read

NODE = "k8py-e2e-allocatable"
ALLOCATABLE_MI = 200  # the node's allocatable memory
THRESHOLD: list[int] = []  # the memory.available threshold in Mi (set by the cluster fixture)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("allocatable")
    machine = read(str(tmp))
    threshold = (machine.memory_available - 2048 * MI) // MI
    THRESHOLD[:] = [threshold]
    # the pods' cgroup limit (capacity less reserved) is the threshold plus 200Mi: allocatable,
    # which also leaves the hard threshold out, is 200Mi
    reserved = machine.memory_total - (threshold + ALLOCATABLE_MI) * MI
    with real_cluster(tmp, NODE, "--eviction-hard", f"memory.available<{threshold}Mi,nodefs.available<1%",
                      "--eviction-pressure-transition-period", "10s", "--system-reserved", f"memory={reserved // 2}",
                      "--kube-reserved", f"memory={reserved - reserved // 2}",
                      # the eviction manager observes every second (kubelet: every 10 s), so the
                      # pod is evicted as soon as it passes allocatable
                      "--eviction-monitoring-period", "1s") as s:
        yield s


def threshold_met(s: Server) -> int:
    """How many times the node said ``Attempting to reclaim memory`` (events count repeats)."""
    return sum(int(e.get("count") or 1) for e in events(s, "default", NODE)
               if e["reason"] == "EvictionThresholdMet" and e["message"] == "Attempting to reclaim memory")


def test_pods_over_allocatable_memory_are_evicted_while_the_node_has_memory(
        cluster: Server, request: pytest.FixtureRequest) -> None:
    ns = namespace_for(cluster, request, "a")
    node = get(cluster, "node", NODE)
    assert node["status"]["allocatable"]["memory"] == f"{ALLOCATABLE_MI}Mi"
    assert condition(node, "MemoryPressure") == "False"
    met_before = threshold_met(cluster)
    # 300Mi in a memory-backed emptyDir: more than allocatable, far less than the machine has
    apply(cluster, ns, pod("greedy", "dd if=/dev/zero of=/mem/fill bs=1M count=300; sleep 3600",
                           volumes=[{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "400Mi"}}],
                           mounts=[{"name": "mem", "mountPath": "/mem"}]))
    wait(lambda: status(cluster, "greedy", ns).get("phase") == "Failed", 120, "the pod evicted")
    free_now = read("/").memory_available
    st = status(cluster, "greedy", ns)
    assert st["reason"] == "Evicted"
    head = f"The node was low on resource: memory. Threshold quantity: {THRESHOLD[0]}Mi, available: "
    assert st["message"].startswith(head), st["message"]
    available = parse_quantity(st["message"][len(head):].split(".", 1)[0]).int_value()
    # what was available is the pods' cgroup's (its limit less the pods' working set: below the
    # threshold), not the machine's (far above it)
    assert (THRESHOLD[0] - ALLOCATABLE_MI) * MI < available < THRESHOLD[0] * MI, st["message"]
    assert free_now > THRESHOLD[0] * MI + 512 * MI, "the machine itself was short of memory"
    assert "Container greedy was using " in st["message"], st["message"]
    disruption = next(c for c in st["conditions"] if c["type"] == "DisruptionTarget")
    assert (disruption["status"], disruption["reason"]) == ("True", "TerminationByKubelet")
    evs = [e for e in events(cluster, ns, "greedy") if e["reason"] == "Evicted"]
    assert evs and evs[0]["message"] == st["message"]
    # MemoryPressure while the pods were over allocatable (it outlasts the eviction for the 10 s
    # transition period), then gone
    wait(lambda: condition(get(cluster, "node", NODE), "MemoryPressure") == "True", 10, "MemoryPressure")
    wait(lambda: threshold_met(cluster) > met_before, 30, "the node's EvictionThresholdMet event")
    wait(lambda: condition(get(cluster, "node", NODE), "MemoryPressure") == "False", 90, "the pressure gone")
