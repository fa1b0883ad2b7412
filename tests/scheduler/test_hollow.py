"""Hollow nodes and the fake runtime: registration, leases, pods run, finish and go away."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from k8py.client.leaderelection import parse_micro_time
from k8py.scheduler.hollow import EXIT_CODE_ANNOTATION, FakeRuntime, node_specs

from .conftest import NODE, POD, SchedCluster

LEASE = ("coordination.k8s.io/v1", "Lease")


async def test_fake_runtime_has_the_cri_verbs() -> None:
    rt = FakeRuntime("10.9.8.0/24")
    sid = await rt.run_pod_sandbox("p", "ns", "uid-1", {"app": "x"})
    assert await rt.run_pod_sandbox("p", "ns", "uid-1") == sid  # idempotent per pod
    sb = await rt.pod_sandbox_status(sid)
    assert sb is not None and ipaddress.ip_address(sb.ip) in ipaddress.ip_network("10.9.8.0/24")
    cid = await rt.create_container(sid, "c", "nginx:1")
    assert (await rt.image_status("nginx:1")) is not None  # pulled on demand
    await rt.start_container(cid)
    assert (await rt.container_status(cid)).state == "CONTAINER_RUNNING"  # type: ignore[union-attr]
    assert await rt.exec_sync(cid, ["true"]) == (b"", b"", 0)
    assert b"runs nothing" in await rt.container_logs(cid)
    done = await rt.create_container(sid, "job", "busybox", exit_on_start=3)
    await rt.start_container(done)
    st = await rt.container_status(done)
    assert st is not None and (st.state, st.exit_code, st.reason) == ("CONTAINER_EXITED", 3, "Error")
    await rt.stop_pod_sandbox(sid)
    assert (await rt.container_status(cid)).state == "CONTAINER_EXITED"  # type: ignore[union-attr]
    await rt.remove_pod_sandbox(sid)
    assert await rt.list_containers() == [] and await rt.list_pod_sandboxes() == []
    assert (await rt.version())["runtimeName"] == "fake"


async def test_nodes_register_and_keep_their_leases(cluster: SchedCluster) -> None:
    specs = node_specs(3, prefix="h-", cpu="16", memory="64Gi", pods=50, zones=["a", "b"],
                       taints=[{"key": "k", "value": "v", "effect": "PreferNoSchedule"}],
                       extended={"example.com/dongle": "2"})
    h = await cluster.nodes(specs, lease_interval=0.2, report_pods=False)
    nodes = {n["metadata"]["name"]: n for n in (await cluster.client.list(NODE))["items"]}
    assert set(nodes) == {"h-0", "h-1", "h-2"}
    n0 = nodes["h-0"]
    assert n0["status"]["allocatable"]["cpu"] == "16" and n0["status"]["allocatable"]["example.com/dongle"] == "2"
    assert n0["metadata"]["labels"]["topology.kubernetes.io/zone"] == "a"
    assert n0["spec"]["taints"] == [{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]
    assert [c["status"] for c in n0["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
    first = parse_micro_time((await cluster.client.get(LEASE, "h-1", "kube-node-lease"))["spec"]["renewTime"])
    await asyncio.sleep(0.7)
    later = parse_micro_time((await cluster.client.get(LEASE, "h-1", "kube-node-lease"))["spec"]["renewTime"])
    assert first is not None and later is not None and later > first
    assert h.lease_renewals >= 6


async def _bind(cluster: SchedCluster, pod: dict[str, Any], node: str) -> None:
    name = pod["metadata"]["name"]
    await cluster.client.create(POD, pod, "default")
    await cluster.client.create(POD, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                                      "target": {"apiVersion": "v1", "kind": "Node", "name": node}},
                                "default", subresource="binding", name=name)


async def test_bound_pods_run_finish_and_are_finalized(cluster: SchedCluster) -> None:
    await cluster.nodes(node_specs(1, prefix="h-"))
    c = {"name": "c", "image": "busybox"}
    await _bind(cluster, {"metadata": {"name": "web"}, "spec": {"containers": [c]}}, "h-0")
    for name, code in (("ok", "0"), ("bad", "2")):
        await _bind(cluster, {"metadata": {"name": name, "annotations": {EXIT_CODE_ANNOTATION: code}},
                              "spec": {"containers": [c], "restartPolicy": "Never"}}, "h-0")

    async def phases() -> dict[str, str] | None:
        got = {p["metadata"]["name"]: p["status"].get("phase") for p in await cluster.pods()}
        return got if got == {"web": "Running", "ok": "Succeeded", "bad": "Failed"} else None

    await cluster.c.until(phases, what="pods run and finish")
    web = await cluster.client.get(POD, "web", "default")
    assert web["status"]["podIP"].startswith("10.128.0.")
    assert {x["type"]: x["status"] for x in web["status"]["conditions"]}["Ready"] == "True"
    assert web["status"]["containerStatuses"][0]["state"]["running"]
    await cluster.client.delete(POD, "web", "default")  # graceful: the node finishes it

    async def gone() -> bool:
        return "web" not in {p["metadata"]["name"] for p in await cluster.pods()}

    await cluster.c.until(gone, what="the node to finalize the deletion")
