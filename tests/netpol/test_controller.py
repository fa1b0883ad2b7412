"""The NetworkPolicy agent's loop against the fake API: informers -> plan -> one nft transaction
per sync, a full sync first, partial ones after (a pod coming is one element), a failed
transaction retried as a full sync, the table removed on stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.helpers.nft import RecordingNft, until
from tests.netpol.test_model import pod, policy

from k8py.client.fake import FakeClient
from k8py.netpol.controller import PolicyAgent
from k8py.netpol.rules import TABLE


def kinded(obj: dict[str, object], api_version: str, kind: str) -> dict[str, object]:
    return {"apiVersion": api_version, "kind": kind, **obj}


@pytest.fixture
def api() -> FakeClient:
    c = FakeClient()
    c.seed({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "labels": {"kubernetes.io/metadata.name": "default"}}})
    c.seed(kinded(pod("default", "server", "10.42.0.10", {"app": "web"}), "v1", "Pod"))
    c.seed(kinded(pod("default", "client", "10.42.1.5", {"role": "client"}, node="n2"), "v1", "Pod"))
    return c


async def test_syncs_full_then_partial_and_cleans_up(api: FakeClient) -> None:
    nft = RecordingNft()
    agent = PolicyAgent(api, "n1", nft, min_interval=0.01, retry_interval=0.05)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await until(lambda: agent.syncs >= 1, "the first sync")
        assert agent.full_syncs == 1 and f"delete table inet {TABLE}" in nft.scripts[0]
        assert "jump ing-" not in nft.scripts[0]  # nothing isolated yet
        api.seed(kinded(policy("default", "allow", {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}),
            "networking.k8s.io/v1", "NetworkPolicy"))
        await until(lambda: any("jump ing-" in s for s in nft.scripts), "the server's chain")
        assert "delete table" not in nft.scripts[-1]  # a partial sync
        assert "10.42.1.5" in nft.scripts[-1]
        n = len(nft.scripts)
        # a status change policies do not read wakes nothing
        srv = api.get_obj(("v1", "Pod"), "server", "default")
        assert srv is not None
        srv["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        api.put(("v1", "Pod"), srv)
        # a new client pod: one element
        api.seed(kinded(pod("default", "c2", "10.42.1.6", {"role": "client"}, node="n2"), "v1", "Pod"))
        await until(lambda: len(nft.scripts) > n, "the new peer")
        assert len(nft.scripts) == n + 1
        assert nft.scripts[-1].splitlines()[0].endswith("{ 10.42.1.6 }") and len(nft.scripts[-1].splitlines()) == 1
        # a failed transaction: retried as a full sync
        nft.fail_next = True
        api.seed(kinded(pod("default", "c3", "10.42.1.7", {"role": "client"}, node="n2"), "v1", "Pod"))
        await until(lambda: agent.full_syncs == 2, "the full sync after the failure")
        assert "NftError" not in agent.last_error and "simulated" in agent.last_error
        assert "10.42.1.7" in nft.scripts[-1] and "delete table" in nft.scripts[-1]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert nft.scripts[-1] == f"add table inet {TABLE}\ndelete table inet {TABLE}\n"


def test_bridge_netfilter_check_says_what_is_not_filtered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from k8py.netpol import controller

    f = tmp_path / "bridge-nf-call-iptables"
    monkeypatch.setattr(controller, "BRIDGE_NF", str(f))
    assert "br_netfilter module is not loaded" in controller.bridge_nf_problem()
    f.write_text("0\n")
    problem = controller.bridge_nf_problem()
    assert "traffic between pods on the same node will not be filtered" in problem
    assert "sysctl -w net.bridge.bridge-nf-call-iptables=1" in problem
    f.write_text("1\n")
    assert controller.bridge_nf_problem() == ""
