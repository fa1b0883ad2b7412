"""The NetworkPolicy agent against a real API server, with its own identity (the
``system:k8py-network-policy`` user and its bootstrap ClusterRole), programming nft inside a
network namespace this test makes: policies applied with kubectl reach the table, a pod getting a
label is one more element in a peer set, and a stop removes the table.

No pod runs here (the API server runs without a node agent; pods are bound to a Node object and
given addresses through the status subresource, as a node agent would report them).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import KUBECTL, Server, manifest

from k8py.client.api import Client
from k8py.client.config import load_config
from k8py.netpol.controller import USER, PolicyAgent
from k8py.netpol.rules import TABLE
from k8py.nftables import Nft

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not KUBECTL,
                                reason="needs root, nft and kubectl")


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"k8pyt-npapi-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=30)
    assert not os.path.exists(f"/run/netns/{name}")


def agent_kubeconfig(s: Server, tmp: Path) -> str:
    out = tmp / "netpol.kubeconfig"
    subprocess.run([sys.executable, "-m", "k8py.cli", "kubeconfig", "create", "--user", USER, "--data-dir",
                    str(s.data_dir), "-o", str(out), "--server", f"https://127.0.0.1:{s.port}"],
                   check=True, capture_output=True, timeout=60)
    return str(out)


def running_pod(s: Server, ns: str, name: str, ip: str, labels: dict[str, str]) -> None:
    s.kubectl("apply", "-f", "-", input=manifest({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                                                    "ports": [{"name": "http", "containerPort": 8080}]}]}}))
    status = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}
    s.kubectl("patch", "pod", name, "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps(status))


async def until(cond: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
def leaves_nothing(server: Server) -> Iterator[None]:
    """What the test makes on the session's server (tests/conftest.py) goes when it ends: its
    namespace and its node."""
    yield
    server.kubectl("delete", "namespace", "shop", "--wait=false", check=False)
    server.kubectl("delete", "node", "n1", "--ignore-not-found", check=False)


@pytest.mark.usefixtures("leaves_nothing")
async def test_agent_with_its_own_identity_follows_kubectl(server: Server, netns: str, tmp_path: Path) -> None:
    s = server
    kubeconfig = agent_kubeconfig(s, tmp_path)
    # least privilege: it reads pods, namespaces and policies, nothing more
    denied = s.kubectl("--kubeconfig", kubeconfig, "get", "secrets", "-A", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    s.kubectl("create", "namespace", "shop")
    s.kubectl("apply", "-f", "-", input=manifest({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}))
    running_pod(s, "shop", "web", "10.88.0.10", {"app": "web"})
    running_pod(s, "shop", "client", "10.88.0.11", {})

    nft = Nft(("ip", "netns", "exec", netns, "nft"))
    stop = asyncio.Event()
    async with Client(load_config(kubeconfig, None), component="k8py-network-policy") as client:
        agent = PolicyAgent(client, "n1", nft, min_interval=0.05)
        task = asyncio.create_task(agent.run(stop))
        try:
            await until(lambda: agent.syncs >= 1, "the first sync")
            assert nft.list_table("inet", TABLE)
            s.kubectl("apply", "-f", "-", input=manifest({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                         "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                                      "ports": [{"port": "http"}]}]}}))
            await until(lambda: "10.88.0.10 : jump ing-" in nft.list_table("inet", TABLE), "the web pod isolated")
            table = nft.list_table("inet", TABLE)
            assert "tcp . 8080" in table and "10.88.0.11" not in table
            s.kubectl("label", "pod", "client", "-n", "shop", "role=client")
            await until(lambda: "10.88.0.11" in nft.list_table("inet", TABLE), "the client in the peer set")
            assert agent.last_script.strip().splitlines() == [
                next(ln for ln in agent.last_script.splitlines() if "10.88.0.11" in ln)]  # one element, nothing else
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
    assert not nft.list_table("inet", TABLE)
    assert agent.last_error == ""
