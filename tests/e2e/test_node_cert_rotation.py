"""A joined node agent rotates its certificates while its pods run: `k8py server` (no agent of
its own) signs CSRs for 30 s (``--cluster-signing-duration``); `k8py agent` joins with a token and,
at 70-90 % of each certificate's life, asks for a new client certificate (with its current one:
``selfnodeclient``) and a new serving certificate. Its kubelet API presents the new serving
certificate to new handshakes, the node stays Ready past the first certificates' end, `kubectl
logs` (the API server dialling the kubelet afresh) works then, and the pod was never restarted,
nor was the agent.

The agent runs on this machine (loopback addresses only), under the real-node lock; the test
stops it, runs `k8py killall` on its data directory and checks that nothing is left."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from tests.e2e.conftest import KUBECTL, Server, free_port, wait
from tests.helpers.images import build_busybox_image
from tests.helpers.nodelock import node_lock
from tests.helpers.realnode import IMAGE, netns_names, node_ready

from k8py.kubelet.run import missing_prerequisites

pytestmark = pytest.mark.timeout(600)

NODE = "k8py-rot-1"


def kubelet_certificate(port: int) -> x509.Certificate:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as s:
        der = s.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def node_csrs(s: Server) -> list[dict[str, Any]]:
    return [c for c in s.kjson("get", "csr")["items"] if c["spec"]["username"] == f"system:node:{NODE}"]


def test_a_joined_agent_rotates_its_certificates_without_restarting_pods(tmp_path: Path) -> None:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    data1, data2 = tmp_path / "server", tmp_path / "agent"
    missing = missing_prerequisites(str(data2))
    if missing:
        pytest.skip("this machine cannot run pods: " + "; ".join(missing))
    (data2 / "agent" / "images").mkdir(parents=True)
    build_busybox_image(data2 / "agent" / "images", IMAGE)
    home = tmp_path / "home"
    home.mkdir()
    kubelet_port = free_port()
    with node_lock():
        before_netns = netns_names()
        s = Server(data1, free_port(), None, tmp_path / "server.log", home, ("--cluster-signing-duration", "30s"))
        agent: subprocess.Popen[bytes] | None = None
        try:
            s.start()
            token = subprocess.run([sys.executable, "-m", "k8py.cli", "token", "create", "--join", "-d", str(data1)],
                                   capture_output=True, text=True, check=True, timeout=60).stdout.strip()
            with open(tmp_path / "agent.log", "wb") as log:
                agent = subprocess.Popen(
                    [sys.executable, "-m", "k8py.cli", "agent", "--server", f"https://127.0.0.1:{s.port}", "--token",
                     token, "--node-name", NODE, "--data-dir", str(data2), "--node-ip", "127.0.0.1",
                     "--kubelet-port", str(kubelet_port)],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            wait(lambda: agent.poll() is None and node_ready(s, NODE), 90,
                 f"the node Ready:\n{(tmp_path / 'agent.log').read_text()[-3000:]}")
            first_serving = kubelet_certificate(kubelet_port)
            first_client = x509.load_pem_x509_certificate((data2 / "agent" / "tls" / "client.crt").read_bytes())
            life = first_client.not_valid_after_utc - first_client.not_valid_before_utc
            assert life <= dt.timedelta(seconds=35)  # the server's signing duration, backdated a tenth

            s.kubectl("run", "web", "--image", IMAGE, "--restart", "Always", "--overrides", json.dumps(
                {"spec": {"nodeName": NODE}}), "--command", "--", "sh", "-c", "echo up; exec httpd -f -p 8080")
            wait(lambda: s.kjson("get", "pod", "web")["status"].get("phase") == "Running", 60, "the pod Running")
            started = s.kjson("get", "pod", "web")["status"]["containerStatuses"][0]

            # renewed at 70-90 % of the life: a client CSR by the node itself, then a serving one
            def renewed() -> bool:
                signers = {c["spec"]["signerName"] for c in node_csrs(s) if c["status"].get("certificate")}
                return {"kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving"} <= signers \
                    and kubelet_certificate(kubelet_port).serial_number != first_serving.serial_number

            wait(renewed, 75, f"the agent's renewal:\n{(tmp_path / 'agent.log').read_text()[-3000:]}")
            client_csr = next(c for c in node_csrs(s)
                              if c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet")
            approved = next(c for c in client_csr["status"]["conditions"] if c["type"] == "Approved")
            assert approved["message"] == "Auto approving self kubelet client certificate after SubjectAccessReview."
            assert kubelet_certificate(kubelet_port).not_valid_after_utc > first_serving.not_valid_after_utc

            # past the first certificates' end: the node goes on, and the API server reaches its kubelet
            end = max(first_client.not_valid_after_utc, first_serving.not_valid_after_utc)
            wait(lambda: dt.datetime.now(dt.UTC) > end + dt.timedelta(seconds=5), 70, "the first certificates' end")
            assert node_ready(s, NODE)
            assert s.kubectl("logs", "web").stdout.startswith("up")
            now = s.kjson("get", "pod", "web")["status"]["containerStatuses"][0]
            assert now["restartCount"] == 0 and now["containerID"] == started["containerID"]
            assert agent.poll() is None  # the agent was not restarted either
            assert "rotated its client certificate" in (tmp_path / "agent.log").read_text()
        finally:
            if agent is not None and agent.poll() is None:
                agent.terminate()
                agent.wait(30)
            s.stop()
            k = subprocess.run([sys.executable, "-m", "k8py.cli", "killall", "--data-dir", str(data2)],
                               capture_output=True, text=True, timeout=120, check=False)
            assert k.returncode == 0, k.stderr
            assert netns_names() <= before_netns, f"network namespaces left: {netns_names() - before_netns}"
            assert not list((data2 / "agent" / "containers" / "containers").iterdir()), "containers left"
            with open("/proc/self/mounts") as f:
                assert str(data2) not in f.read(), "mounts left"
