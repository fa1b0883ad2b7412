"""Hollow nodes: the node agent on the fake runtime, many to a process, sharing one pod watch and
the lease, node-status and relist loops; and the ``k8py hollow-nodes`` command's flags."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.client.leaderelection import parse_micro_time
from k8py.kubelet.hollow import EXIT_CODE_ANNOTATION, HollowNodes, HollowNodeSpec, node_specs
from k8py.kubelet.hollowcli import add_hollow_nodes_parser

POD = ("v1", "Pod")
NODE = ("v1", "Node")
LEASE = ("coordination.k8s.io/v1", "Lease")
NS = "default"


@contextlib.asynccontextmanager
async def hollow(c: InProcessCluster, specs: Sequence[HollowNodeSpec], **kw: Any) -> AsyncIterator[HollowNodes]:
    client = Client(ClientConfig(server=c.url), component="hollow")
    h = HollowNodes(client, specs, **kw)
    try:
        await h.start()
        yield h
    finally:
        await h.stop()
        await client.close()


async def _bind(c: InProcessCluster, pod: dict[str, Any], node: str) -> None:
    name = pod["metadata"]["name"]
    await c.client.create(POD, {"apiVersion": "v1", "kind": "Pod", **pod}, NS)
    await c.client.create(POD, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                                "target": {"apiVersion": "v1", "kind": "Node", "name": node}},
                          NS, subresource="binding", name=name)


async def test_nodes_register_and_keep_their_leases() -> None:
    specs = node_specs(3, prefix="h-", cpu="16", memory="64Gi", pods=50, zones=["a", "b"],
                       taints=[{"key": "k", "value": "v", "effect": "PreferNoSchedule"}],
                       extended={"example.com/dongle": "2"})
    specs[0] = HollowNodeSpec(specs[0].name, specs[0].capacity, specs[0].labels, specs[0].taints,
                              ((("registry.k8s.io/pause:3.10",), 700_000),), specs[0].pod_cidr)
    async with InProcessCluster() as c, hollow(c, specs, lease_interval=0.2, report_pods=False) as h:
        nodes = {n["metadata"]["name"]: n for n in (await c.client.list(NODE))["items"]}
        assert set(nodes) == {"h-0", "h-1", "h-2"}
        n0 = nodes["h-0"]
        assert n0["status"]["allocatable"]["cpu"] == "16" and n0["status"]["allocatable"]["example.com/dongle"] == "2"
        assert n0["status"]["capacity"]["pods"] == "50"
        assert n0["metadata"]["labels"]["topology.kubernetes.io/zone"] == "a"
        assert n0["metadata"]["labels"]["kubernetes.io/hostname"] == "h-0"
        assert n0["spec"]["taints"] == [{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]
        assert [x["status"] for x in n0["status"]["conditions"] if x["type"] == "Ready"] == ["True"]
        assert n0["status"]["nodeInfo"]["containerRuntimeVersion"] == "fake://0.1.0"
        assert n0["status"]["addresses"][0] == {"type": "InternalIP", "address": "127.0.0.1"}
        assert n0["status"]["images"] == [{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 700_000}]
        lease = await c.client.get(LEASE, "h-1", "kube-node-lease")
        assert lease["metadata"]["ownerReferences"][0]["uid"] == nodes["h-1"]["metadata"]["uid"]
        first = parse_micro_time(lease["spec"]["renewTime"])

        async def renewed() -> bool:
            later = (await c.client.get(LEASE, "h-1", "kube-node-lease"))["spec"]["renewTime"]
            return parse_micro_time(later) > first  # type: ignore[operator]

        await c.until(renewed, timeout=5, what="h-1's lease renewed by the shared loop")
        await c.until(lambda: h.lease_renewals >= 9, timeout=5, what="every node renewed its lease twice")
        assert h.failures == 0


async def test_bound_pods_run_finish_and_are_finalized() -> None:
    async with InProcessCluster() as c, hollow(c, node_specs(2, prefix="h-")) as h:
        box = {"name": "c", "image": "busybox"}
        await _bind(c, {"metadata": {"name": "web"}, "spec": {"containers": [box]}}, "h-0")
        await _bind(c, {"metadata": {"name": "other"}, "spec": {"containers": [box]}}, "h-1")
        for name, code in (("ok", "0"), ("bad", "2")):
            await _bind(c, {"metadata": {"name": name, "annotations": {EXIT_CODE_ANNOTATION: code}},
                            "spec": {"containers": [box], "restartPolicy": "Never"}}, "h-0")

        async def phases() -> dict[str, str] | None:
            got = {p["metadata"]["name"]: p["status"].get("phase") for p in (await c.client.list(POD, NS))["items"]}
            return got if got == {"web": "Running", "other": "Running", "ok": "Succeeded", "bad": "Failed"} else None

        await c.until(phases, what="pods run and finish")
        web = await c.client.get(POD, "web", NS)
        assert web["status"]["podIP"].startswith("10.128.0.") and web["status"]["hostIP"] == "127.0.0.1"
        assert (await c.client.get(POD, "other", NS))["status"]["podIP"].startswith("10.128.1.")
        assert {x["type"]: x["status"] for x in web["status"]["conditions"]}["Ready"] == "True"
        assert web["status"]["containerStatuses"][0]["state"]["running"]
        bad = (await c.client.get(POD, "bad", NS))["status"]["containerStatuses"][0]["state"]["terminated"]
        assert bad["exitCode"] == 2 and bad["reason"] == "Error"
        # each node's agent has its own pods only (one shared watch, handed out by node)
        assert {w.pod["metadata"]["name"] for w in h.agents["h-0"].workers.values()} == {"web", "ok", "bad"}
        assert {w.pod["metadata"]["name"] for w in h.agents["h-1"].workers.values()} == {"other"}
        assert h.pods_started == 4
        await c.client.delete(POD, "web", NS)  # graceful: the node finishes it

        async def gone() -> bool:
            return "web" not in {p["metadata"]["name"] for p in (await c.client.list(POD, NS))["items"]}

        await c.until(gone, what="the node to finalize the deletion")
        await c.until(lambda: not h.runtimes["h-0"].sandboxes or all(
            s.name != "web" for s in h.runtimes["h-0"].sandboxes.values()), what="web's sandbox removed")


async def test_pods_bound_before_start_are_picked_up_and_volumes_are_plain_dirs() -> None:
    async with InProcessCluster() as c:
        vols = [{"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
                {"name": "cfg", "configMap": {"name": "missing-is-fine-for-a-volume-here"}}]
        mounts = [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/cfg"}]
        await _bind(c, {"metadata": {"name": "db"}, "spec": {
            "volumes": vols, "containers": [{"name": "c", "image": "postgres:16", "volumeMounts": mounts}]}}, "h-0")
        async with hollow(c, node_specs(1, prefix="h-")) as h:
            async def running() -> bool:
                p = await c.client.get(POD, "db", NS)
                return p["status"].get("phase") == "Running"

            await c.until(running, what="the pod bound before the node started, running")
            base = os.path.join(h.data_dir, "h-0")
            assert os.path.isdir(base)
        assert not os.path.exists(base)  # the temporary data dir goes at stop


async def test_report_pods_false_leaves_pods_alone() -> None:
    async with InProcessCluster() as c, hollow(c, node_specs(1, prefix="h-"), report_pods=False) as h:
        await _bind(c, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}, "h-0")
        await c.until(lambda: h.lease_renewals >= 1, what="the node's lease")
        await asyncio.sleep(0.3)  # a quiet period: nothing is expected to happen to the pod
        p = await c.client.get(POD, "p", NS)
        assert "phase" not in p.get("status", {}) or p["status"]["phase"] == "Pending"
        assert not h.agents["h-0"].workers and h.pods_started == 0


async def test_delete_on_stop_removes_nodes_and_leases() -> None:
    async with InProcessCluster() as c:
        async with hollow(c, node_specs(2, prefix="h-"), delete_on_stop=True):
            assert len((await c.client.list(NODE))["items"]) == 2
        assert (await c.client.list(NODE))["items"] == []
        assert (await c.client.list(LEASE, "kube-node-lease"))["items"] == []


async def test_many_nodes_cost_a_few_tasks_each() -> None:
    n = 300
    async with InProcessCluster() as c:
        before = len(asyncio.all_tasks())
        async with hollow(c, node_specs(n, prefix="m-"), lease_interval=5.0, concurrency=64) as h:
            assert len((await c.client.list(NODE))["items"]) == n
            tasks = len(asyncio.all_tasks()) - before
            # per node: its pod-status writer; shared: the watch, the loops, the event sink, and
            # at most `concurrency` loop calls in flight (plus the in-process server's requests)
            assert tasks <= n + 64 + 20, tasks
            await _bind(c, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
                        "m-123")

            async def running() -> bool:
                return (await c.client.get(POD, "p", NS))["status"].get("phase") == "Running"

            await c.until(running, what="the pod on node m-123 running")
            assert [name for name, a in h.agents.items() if a.workers] == ["m-123"]


def test_duplicate_names_are_refused() -> None:
    specs = node_specs(1, prefix="d-") * 2
    with pytest.raises(ValueError, match="unique"):
        HollowNodes(None, specs)  # type: ignore[arg-type]


# -- the command -----------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="k8py")
    add_hollow_nodes_parser(p.add_subparsers(dest="command"))
    return p


@pytest.mark.parametrize("argv,message", [
    (["hollow-nodes", "--count", "0"], "must be greater than zero"),
    (["hollow-nodes", "--cpu", "lots"], "invalid quantity"),
    (["hollow-nodes", "--taints", "k=v:Sometimes"], "invalid taint"),
    (["hollow-nodes", "--labels", "novalue"], "use key=value"),
    (["hollow-nodes", "--lease-interval", "0"], "must be greater than zero"),
    (["hollow-nodes", "--status-interval", "-1"], "must be greater than zero or 0"),
])
def test_hollow_nodes_flags(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_hollow_nodes_defaults() -> None:
    a = parser().parse_args(["hollow-nodes", "--count", "3", "--zones", "a,b", "--taints", "x=y:NoSchedule",
                             "--extended-resource", "nvidia.com/gpu=8", "--status-interval", "0"])
    assert (a.count, a.cpu, a.memory, a.pods, a.lease_interval, a.status_interval) == (3, "32", "256Gi", 110, 10.0, 0)
    assert a.taints == [{"key": "x", "value": "y", "effect": "NoSchedule"}]
    assert a.extended_resource == {"nvidia.com/gpu": "8"}
