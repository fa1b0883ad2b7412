"""The service proxy's loop against the fake API (nft and conntrack stand-ins record what they
are given): a full sync first, then partial ones for what changed (only the dirty Service is
recomputed), stale UDP conntrack entries removed after the sync that made them stale, a failed
transaction retried as a full sync, and the table deleted on stop."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers.nft import RecordingNft, until

from k8py.client.fake import FakeClient
from k8py.proxy.proxier import Proxier
from k8py.proxy.rules import TABLE, ProxyConfig

Obj = dict[str, Any]


class RecordingConntrack:
    def __init__(self) -> None:
        self.runs: list[list[list[str]]] = []

    async def run(self, commands: list[list[str]]) -> None:
        self.runs.append(commands)


def service(name: str, ip: str, protocol: str = "TCP") -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "default", "name": name},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                     "ports": [{"name": "p", "port": 53 if protocol == "UDP" else 80, "protocol": protocol}]}}


def endpoint_slice(svc: str, ips: list[str], protocol: str = "TCP") -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"namespace": "default", "name": f"{svc}-x", "labels": {"kubernetes.io/service-name": svc}},
            "ports": [{"name": "p", "port": 5353 if protocol == "UDP" else 8080, "protocol": protocol}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


async def test_full_then_partial_syncs_conntrack_retry_and_cleanup() -> None:
    api = FakeClient()
    for o in (service("web", "10.43.0.10"), endpoint_slice("web", ["10.42.0.5"]),
              service("dns", "10.43.0.53", "UDP"), endpoint_slice("dns", ["10.42.0.7", "10.42.0.8"], "UDP")):
        api.seed(o)
    nft, ct = RecordingNft(), RecordingConntrack()
    proxier = Proxier(api, ProxyConfig("n1", ("10.42.0.0/16",)), nft, min_interval=0.01,  # type: ignore[arg-type]
                      retry_interval=0.05, conntrack=ct)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(proxier.run(stop))
    try:
        await until(lambda: proxier.syncs >= 1, "the first sync")
        assert proxier.full_syncs == 1 and f"delete table inet {TABLE}" in nft.scripts[0]
        assert "10.42.0.5" in nft.scripts[0] and "10.42.0.8" in nft.scripts[0]
        # a new endpoint of one Service: a partial transaction naming it, nothing of the other
        api.seed(endpoint_slice("web", ["10.42.0.5", "10.42.0.6"]))
        await until(lambda: any("10.42.0.6" in s for s in nft.scripts), "the new endpoint")
        assert "delete table" not in nft.scripts[-1] and "10.42.0.8" not in nft.scripts[-1]
        assert proxier.full_syncs == 1
        # a UDP endpoint going: its conntrack entries are deleted after the sync
        api.seed(endpoint_slice("dns", ["10.42.0.7"], "UDP"))
        await until(lambda: any(any("10.42.0.8" in a for a in cmd) for run in ct.runs for cmd in run),
                    "the stale UDP flows' removal")
        # a failed transaction: the previous rules stay and the next sync rewrites the whole table
        nft.fail_next = True
        api.seed(service("extra", "10.43.0.20"))
        await until(lambda: proxier.full_syncs == 2, "the full sync after the failure")
        assert proxier.last_error == "Error: simulated"
        assert "10.43.0.20" in nft.scripts[-1] and "delete table" in nft.scripts[-1]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert nft.scripts[-1] == f"add table inet {TABLE}\ndelete table inet {TABLE}\n"
