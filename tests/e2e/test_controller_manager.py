"""`k8py controller-manager` alone against a server, and leader election between two of them."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import KUBECTL, start_server, wait

pytestmark = pytest.mark.skipif(not KUBECTL, reason="kubectl not installed")




def test_standalone_managers_elect_one_leader(tmp_path: Path) -> None:
    s = start_server(tmp_path, "--disable-controller-manager", "--disable-scheduler")
    managers: list[subprocess.Popen[bytes]] = []
    try:
        s.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2", "-n", "default")
        # no controller runs in the server: nothing makes the ReplicaSet
        assert s.kjson("get", "rs", "-n", "default")["items"] == []
        for i in range(2):
            with open(tmp_path / f"cm{i}.log", "wb") as log:
                managers.append(subprocess.Popen(
                    [sys.executable, "-m", "k8py.cli", "controller-manager", "--kubeconfig", s.kubeconfig,
                     "--controllers", "deployment,replicaset"], stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True))
        wait(lambda: [r for r in s.kjson("get", "rs", "-n", "default")["items"]
                      if r["metadata"]["name"].startswith("web-")], what="ReplicaSet made by a standalone manager")
        lease = s.kjson("get", "lease", "kube-controller-manager", "-n", "kube-system")
        holder = lease["spec"]["holderIdentity"]
        assert holder
        # stop the leader cleanly: it releases the lease and the other takes over
        logs = [(tmp_path / f"cm{i}.log").read_text() for i in range(2)]
        leader = next(i for i, text in enumerate(logs) if "became leader" in text)
        managers[leader].send_signal(signal.SIGTERM)
        assert managers[leader].wait(30) == 0
        def new_holder() -> bool:
            h = s.kjson("get", "lease", "kube-controller-manager", "-n", "kube-system")["spec"].get("holderIdentity")
            return bool(h) and h != holder

        wait(new_holder, what="the other manager to take over the lease")
        s.kubectl("create", "deployment", "after", "--image=nginx", "-n", "default")
        wait(lambda: [r for r in s.kjson("get", "rs", "-n", "default")["items"]
                      if r["metadata"]["name"].startswith("after-")], what="the new leader to work")
    finally:
        for m in managers:
            if m.poll() is None:
                m.send_signal(signal.SIGTERM)
                try:
                    m.wait(20)
                except subprocess.TimeoutExpired:
                    m.kill()
                    m.wait()
        s.stop()
