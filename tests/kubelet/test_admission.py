"""Node admission against kubelet's predicate admit handler (lifecycle/predicate.go): the
order of the checks, the reasons and the exact messages a refused pod carries."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.kubelet.admission import admit, host_ports

GI = 1024**3


def node(**status: Any) -> dict[str, Any]:
    alloc = {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "10Gi", "pods": "110", "hugepages-2Mi": "0",
             "example.com/gpu": "1"}
    alloc.update(status.pop("allocatable", {}))
    return {"metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1", "kubernetes.io/os": "linux",
                                                      "disk": "ssd"}},
            "spec": {"taints": status.pop("taints", [])},
            "status": {"allocatable": alloc, **status}}


def pod(requests: dict[str, str] | None = None, ports: list[dict[str, Any]] | None = None, labels: dict[str, str] | None = None,
        **spec: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "image": "busybox"}
    if requests:
        c["resources"] = {"requests": requests}
    if ports:
        c["ports"] = ports
    return {"metadata": {"name": "p", "namespace": "ns", "labels": labels or {}}, "spec": {"containers": [c], **spec}}


def test_a_pod_that_fits_is_admitted() -> None:
    assert admit(pod({"cpu": "1", "memory": "1Gi"}), node(), [pod({"cpu": "1"})]) is None


def test_out_of_pods() -> None:
    refused = admit(pod(), node(allocatable={"pods": "2"}), [pod(), pod()])
    assert refused == ("OutOfpods", "Node didn't have enough resource: pods, requested: 1, used: 2, capacity: 2")


@pytest.mark.parametrize(("requests", "others", "refused"), [
    ({"cpu": "1"}, [{"cpu": "1500m"}],
     ("OutOfcpu", "Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000")),
    ({"memory": "3Gi"}, [{"memory": "2Gi"}],
     ("OutOfmemory", (f"Node didn't have enough resource: memory, requested: {3 * GI}, used: {2 * GI}, "
                     f"capacity: {4 * GI}"))),
    ({"ephemeral-storage": "11Gi"}, [],
     ("OutOfephemeral-storage", (f"Node didn't have enough resource: ephemeral-storage, requested: {11 * GI}, "
                                f"used: 0, capacity: {10 * GI}"))),
    ({"example.com/gpu": "2"}, [],
     ("OutOfexample.com/gpu", "Node didn't have enough resource: example.com/gpu, requested: 2, used: 0, capacity: 1")),
    ({"hugepages-2Mi": "2Mi"}, [],
     ("OutOfhugepages-2Mi", (f"Node didn't have enough resource: hugepages-2Mi, requested: {2 * 1024**2}, used: 0, "
                            "capacity: 0"))),
    # cpu is checked before memory
    ({"cpu": "3", "memory": "5Gi"}, [],
     ("OutOfcpu", "Node didn't have enough resource: cpu, requested: 3000, used: 0, capacity: 2000")),
])
def test_insufficient_resources(requests: dict[str, str], others: list[dict[str, str]],
                                refused: tuple[str, str]) -> None:
    assert admit(pod(requests), node(), [pod(o) for o in others]) == refused


def test_extended_resources_the_node_does_not_list_are_left_to_the_cluster() -> None:
    assert admit(pod({"example.com/fpga": "1"}), node(), []) is None


def test_init_containers_count_at_their_peak() -> None:
    p = pod({"cpu": "500m"}, initContainers=[{"name": "i", "image": "busybox",
                                              "resources": {"requests": {"cpu": "2500m"}}}])
    assert admit(p, node(), []) == (
        "OutOfcpu", "Node didn't have enough resource: cpu, requested: 2500, used: 0, capacity: 2000")


def test_node_affinity_and_selector() -> None:
    refused = ("NodeAffinity", "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector")
    assert admit(pod(nodeSelector={"disk": "hdd"}), node(), []) == refused
    assert admit(pod(nodeSelector={"disk": "ssd"}), node(), []) is None
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}
    assert admit(pod(affinity=affinity), node(), []) == refused


def test_resources_are_checked_before_affinity() -> None:
    refused = admit(pod({"cpu": "3"}, nodeSelector={"disk": "hdd"}), node(), [])
    assert refused is not None and refused[0] == "OutOfcpu"


def test_node_name() -> None:
    assert admit(pod(nodeName="node-2"), node(), []) == (
        "NodeName", "Predicate NodeName failed: node(s) didn't match the requested node name")
    assert admit(pod(nodeName="node-1"), node(), []) is None


@pytest.mark.parametrize(("mine", "theirs", "conflict"), [
    ({"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 8080}, True),
    ({"containerPort": 80, "hostPort": 8080}, {"containerPort": 80, "hostPort": 8081}, False),
    ({"containerPort": 53, "hostPort": 53, "protocol": "UDP"}, {"containerPort": 53, "hostPort": 53}, False),
    ({"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"},
     {"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.2"}, False),
    ({"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}, {"containerPort": 80, "hostPort": 8080}, True),
    ({"containerPort": 80, "hostPort": 8080}, {"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}, True),
    ({"containerPort": 80}, {"containerPort": 80}, False),  # no host port
])
def test_host_ports(mine: dict[str, Any], theirs: dict[str, Any], conflict: bool) -> None:
    refused = admit(pod(ports=[mine]), node(), [pod(ports=[theirs])])
    expected = ("NodePorts", "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports")
    assert refused == (expected if conflict else None)


def test_host_ports_lists_what_a_pod_asks_for() -> None:
    assert host_ports(pod(ports=[{"containerPort": 80, "hostPort": 8080}, {"containerPort": 9}])) == {
        ("0.0.0.0", "TCP", 8080)}


def test_only_no_execute_taints_are_checked() -> None:
    refused = ("TaintToleration", "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate")
    noexec = [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]
    assert admit(pod(), node(taints=noexec), []) == refused
    assert admit(pod(), node(taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]), []) is None
    tolerating = pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoExecute"}])
    assert admit(tolerating, node(taints=noexec), []) is None


def test_the_pods_os() -> None:
    assert admit(pod(labels={"kubernetes.io/os": "windows"}), node(), []) == (
        "PodOSSelectorNodeLabelDoesNotMatch",
        "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label")
    assert admit(pod(labels={"kubernetes.io/os": "linux"}), node(), []) is None
    assert admit(pod(os={"name": "windows"}), node(), []) == (
        "PodOSNotSupported", "Failed to admit pod as the OS field doesn't match node OS")
    assert admit(pod(os={"name": "linux"}), node(), []) is None


def test_os_is_checked_first() -> None:
    refused = admit(pod({"cpu": "9"}, os={"name": "windows"}), node(), [])
    assert refused is not None and refused[0] == "PodOSNotSupported"


def test_a_node_that_reports_no_allocatable_yet_does_not_refuse_for_resources() -> None:
    n = node()
    n["status"] = {}
    assert admit(pod({"cpu": "9"}), n, []) is None
