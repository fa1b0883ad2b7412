"""The components run alone as their own commands (``k8py cloud-controller-manager``, ``k8py
proxy``, ``k8py network-policy``), each a process against a real API server with a kubeconfig,
as on a machine that is not the server: they do their work, and stop cleanly (exit 0) on SIGTERM.

The proxy and the NetworkPolicy agent program nftables: they run, with their API server, inside a
network namespace this test makes, so nothing of the machine's own rules is touched. No pod runs
(no node agent): Services' endpoints are EndpointSlices written with kubectl.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import KUBECTL, free_port, manifest, start_server
from tests.helpers.netns import namespaces

NFT_OK = os.geteuid() == 0 and bool(shutil.which("nft")) and bool(shutil.which("ip"))


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(0.2)


def stop_process(p: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError("the command did not stop on SIGTERM") from None
    return p.returncode


@pytest.mark.skipif(not KUBECTL, reason="needs kubectl")
def test_cloud_controller_manager_alone(tmp_path: Path) -> None:
    s = start_server(tmp_path, "--disable-cloud-controller")
    log = tmp_path / "ccm.log"
    try:
        with open(log, "wb") as out:
            ccm = subprocess.Popen([sys.executable, "-m", "k8py.cli", "cloud-controller-manager", "--kubeconfig",
                                    s.kubeconfig, "--lb-pool", "192.0.2.10-192.0.2.20"],
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            s.kubectl("create", "service", "loadbalancer", "web", "--tcp=80:8080")

            def external_ip() -> str:
                return s.kubectl("get", "service", "web", "-o",
                                 "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout

            wait_for(lambda: external_ip() == "192.0.2.10", 30, "the LoadBalancer address from the pool")
            assert "192.0.2.10" in s.kubectl("get", "service", "web").stdout  # EXTERNAL-IP
        finally:
            rc = stop_process(ccm)
        assert rc == 0, log.read_text()
    finally:
        s.stop()


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"k8pyt-cmd-{uuid.uuid4().hex[:6]}"  # not k8py-: real-node tests count those as theirs
    with namespaces(name):
        yield name


@pytest.mark.skipif(not (KUBECTL and NFT_OK), reason="needs kubectl, root, nft and ip")
def test_proxy_and_network_policy_alone_in_a_network_namespace(tmp_path: Path, netns: str) -> None:
    inside = ["ip", "netns", "exec", netns]
    data, port = tmp_path / "data", free_port()
    kubeconfig = str(data / "kubeconfig.yaml")
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": kubeconfig}
    env.pop("KUBERNETES_SERVICE_HOST", None)

    def kubectl(*args: str, input: str | None = None) -> str:
        assert KUBECTL
        p = subprocess.run([*inside, KUBECTL, *args], input=input, capture_output=True, text=True, env=env,
                           timeout=60, check=False)
        assert p.returncode == 0, f"kubectl {' '.join(args)}: {p.stderr}"
        return p.stdout

    def table(name: str) -> str:
        return subprocess.run([*inside, "nft", "list", "table", "inet", name], capture_output=True, text=True,
                              timeout=30, check=False).stdout

    def start(name: str, *argv: str) -> subprocess.Popen[bytes]:
        with open(tmp_path / f"{name}.log", "wb") as out:
            return subprocess.Popen([*inside, sys.executable, "-m", "k8py.cli", *argv], stdout=out,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def ready() -> bool:
        if not os.path.exists(kubeconfig):
            return False
        return subprocess.run([*inside, str(KUBECTL), "get", "--raw", "/readyz"], capture_output=True, env=env,
                              timeout=30, check=False).returncode == 0

    server = start("server", "server", "--data-dir", str(data), "--https-listen-port", str(port), "--bind-address",
                   "127.0.0.1", "--disable-agent", "--disable-ingress", "--cluster-dns-listen", "127.0.0.1:0")
    procs = [server]
    try:
        wait_for(lambda: server.poll() is not None or ready(), 60, "the API server in the namespace")
        assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        proxy = start("proxy", "proxy", "--kubeconfig", kubeconfig, "--node-name", "n1", "--cluster-cidr",
                      "10.42.0.0/16", "--min-sync-period", "0.05")
        netpol = start("netpol", "network-policy", "--kubeconfig", kubeconfig, "--node-name", "n1")
        procs += [proxy, netpol]
        kubectl("create", "service", "clusterip", "web", "--tcp=80:8080")
        cluster_ip = kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
        kubectl("apply", "-f", "-", input=manifest({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "web-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "ports": [{"name": "80-8080", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.42.0.5"], "conditions": {"ready": True}}]}))
        wait_for(lambda: cluster_ip in table("k8py-proxy") and "10.42.0.5" in table("k8py-proxy"), 30,
                 "the Service's rules in the proxy's table")
        wait_for(lambda: bool(table("k8py-netpol")), 30, "the NetworkPolicy agent's table")
        for p, name, tbl in ((proxy, "proxy", "k8py-proxy"), (netpol, "netpol", "k8py-netpol")):
            assert stop_process(p) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
            assert not table(tbl), f"{tbl} left after a clean stop"
    finally:
        for p in reversed(procs):
            stop_process(p)
