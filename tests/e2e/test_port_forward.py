"""``kubectl port-forward`` and the Python client's ``portforward`` into real pods: `k8py server`
with its node agent (runc, CNI), the API server relaying to the agent's kubelet API, the agent
connecting to localhost inside the pod's network namespace.

Traffic goes only to loopback (kubectl's local ports) and, through the agent, to the pods' own
localhost. Everything is removed at the end with `k8py killall`, and the test checks nothing is
left."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import select
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from tests.e2e.conftest import KUBECTL, Server, free_port, wait
from tests.helpers.realnode import IMAGE, SHARED_NODE, SharedRealNode, netns_names

NODE = SHARED_NODE
NS = "pf"
BIG_LINES = 300_000  # `seq 1 300000`: about 2 MB
BIG = "".join(f"{i}\n" for i in range(1, BIG_LINES + 1)).encode()

pytestmark = pytest.mark.timeout(600)

# two web servers in one pod: :8080 (a page) and :9090 (a 2 MB file, and a 60 MB one that no
# chain of socket buffers holds whole), nothing on :7777
WEB = ("mkdir -p /www && echo hello-from-web > /www/index.html && seq 1 300000 > /www/big && "
       "seq 1 8000000 > /www/huge && "
       "httpd -p 8080 -h /www && exec httpd -f -p 9090 -h /www")


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        s.kubectl("create", "namespace", NS)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"containers": [{"name": "web", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                        "command": ["sh", "-c", WEB],
                                        "ports": [{"name": "http", "containerPort": 8080},
                                                  {"name": "big", "containerPort": 9090}],
                                        "readinessProbe": {"tcpSocket": {"port": 9090}, "periodSeconds": 1}}]}}
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
        s.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                   "items": [pod, svc]}))
        s.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod/web", "--timeout=120s", timeout=150)
        yield s


class PortForward:
    """A running ``kubectl port-forward``; its output is read as it comes (bounded waits)."""

    def __init__(self, s: Server, *args: str, env: dict[str, str] | None = None) -> None:
        e = dict(os.environ)
        e.update({"HOME": str(s.home), "KUBECONFIG": s.kubeconfig})
        e.pop("KUBERNETES_SERVICE_HOST", None)
        e.update(env or {})
        assert KUBECTL
        self.proc = subprocess.Popen([KUBECTL, "port-forward", "-n", NS, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=e)
        self.out = b""
        self.err = b""

    def _pump(self, timeout: float) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        r, _, _ = select.select([self.proc.stdout, self.proc.stderr], [], [], timeout)
        for f in r:
            chunk = os.read(f.fileno(), 65536)
            if f is self.proc.stdout:
                self.out += chunk
            else:
                self.err += chunk

    def wait_for(self, what: str, timeout: float = 30.0, stream: str = "out") -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = (self.out if stream == "out" else self.err).decode(errors="replace")
            if what in text:
                return text
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"kubectl port-forward never printed {what!r}:\nstdout: {self.out!r}\n"
                                     f"stderr: {self.err!r}")
            if self.proc.poll() is not None:
                self._pump(0)
                if what not in (self.out if stream == "out" else self.err).decode(errors="replace"):
                    raise AssertionError(f"kubectl port-forward exited {self.proc.returncode} without {what!r}:\n"
                                         f"stdout: {self.out!r}\nstderr: {self.err!r}")
                continue
            self._pump(min(left, 0.5))

    def exit_code(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._pump(0.2)
        self._pump(0)
        assert self.proc.returncode is not None, "kubectl port-forward did not exit"
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def get(port: int, path: str = "/") -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return bytes(r.read())


@pytest.mark.parametrize("websockets", ["true", "false"], ids=["websocket-tunnel", "spdy"])
def test_kubectl_port_forward_carries_http_on_two_ports(cluster: Server, websockets: str) -> None:
    """Two ports at once, several requests each, a 2 MB body intact; kubectl 1.37 tunnels SPDY in a
    WebSocket, and with KUBECTL_PORT_FORWARD_WEBSOCKETS=false it upgrades to SPDY/3.1 directly."""
    page, big = free_port(), free_port()
    pf = PortForward(cluster, "pod/web", f"{page}:8080", f"{big}:9090",
                     env={"KUBECTL_PORT_FORWARD_WEBSOCKETS": websockets})
    try:
        pf.wait_for(f"Forwarding from 127.0.0.1:{big} -> 9090")
        for _ in range(5):
            assert get(page) == b"hello-from-web\n"
        assert get(big, "/big") == BIG
        assert get(page, "/index.html") == b"hello-from-web\n"
        # connections side by side over the one forward, as a browser opens them
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda i: get(big, "/big") if i % 4 == 0 else get(page), range(16)))
        assert got == [BIG if i % 4 == 0 else b"hello-from-web\n" for i in range(16)]
        pf.wait_for(f"Handling connection for {page}")
        assert pf.proc.poll() is None
    finally:
        pf.stop()
    assert b"error" not in pf.err.lower(), pf.err


def test_kubectl_port_forward_to_a_closed_port_prints_the_error(cluster: Server) -> None:
    local = free_port()
    pf = PortForward(cluster, "pod/web", f"{local}:7777")
    try:
        pf.wait_for(f"Forwarding from 127.0.0.1:{local} -> 7777")
        with socket.create_connection(("127.0.0.1", local), timeout=30) as c:
            c.settimeout(30)
            assert c.recv(1024) == b""  # the pod refused: kubectl closes the local connection
        err = pf.wait_for("failed to connect to localhost:7777 inside namespace", stream="err")
        # kubelet's words through kubectl: "error forwarding port 7777 to pod <sandbox>, uid : ..."
        # (klog quotes the message: its own quotes come escaped)
        assert re.search(r"error forwarding port 7777 to pod [0-9a-f]+, uid : failed to execute portforward in "
                         r'network namespace \\?"/[^"\\]+\\?": failed to connect to localhost:7777 inside namespace '
                         r'\\?"[0-9a-f]+\\?", IPv4: dial tcp4 127.0.0.1:7777: connect: connection refused', err), err
        # kubectl 1.37 ends the whole forward after an error on the error stream, as with kubelet
        assert pf.exit_code() == 1
        assert "lost connection to pod" in pf.err.decode()
    finally:
        pf.stop()
    # the agent serves the next forward as before
    page = free_port()
    pf2 = PortForward(cluster, "pod/web", f"{page}:8080")
    try:
        pf2.wait_for(f"Forwarding from 127.0.0.1:{page} -> 8080")
        assert get(page) == b"hello-from-web\n"
    finally:
        pf2.stop()


def test_kubectl_port_forward_to_a_service_port_and_a_random_local_port(cluster: Server) -> None:
    """kubectl picks the Service's pod and maps port 80 to its named target port (8080)."""
    pf = PortForward(cluster, "svc/web", ":80")
    try:
        out = pf.wait_for(" -> 8080")
        m = re.search(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", out)
        assert m, out
        assert get(int(m.group(1))) == b"hello-from-web\n"
    finally:
        pf.stop()


def _pod_netns(s: Server) -> str:
    """The network namespace holding the pod's address."""
    ip = s.kjson("get", "pod", "web", "-n", NS)["status"]["podIP"]
    holders = []
    for name in sorted(netns_names()):
        out = subprocess.run(["ip", "-n", name, "-4", "-o", "addr"], capture_output=True, text=True, check=False)
        if f" {ip}/" in out.stdout:
            holders.append(name)
    assert len(holders) == 1, f"network namespaces with {ip}: {holders}"
    return holders[0]


def _connections_to(netns: str, port: int) -> list[str]:
    """TCP connections to ``port`` inside the pod (looked at with ss, no traffic)."""
    out = subprocess.run(["ip", "netns", "exec", netns, "ss", "-Htn", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


def test_kubectl_killed_mid_transfer_leaves_no_connection_in_the_pod(cluster: Server) -> None:
    netns = _pod_netns(cluster)
    assert _connections_to(netns, 9090) == []
    big = free_port()
    pf = PortForward(cluster, "pod/web", f"{big}:9090")
    try:
        pf.wait_for(f"Forwarding from 127.0.0.1:{big} -> 9090")
        with socket.create_connection(("127.0.0.1", big), timeout=30) as c:
            c.sendall(b"GET /huge HTTP/1.0\r\n\r\n")
            assert c.recv(65536)  # the transfer has begun (and cannot have ended: we read no more) ...
            assert _connections_to(netns, 9090)
            pf.proc.kill()  # ... and kubectl dies in the middle of it
            pf.proc.wait(10)
    finally:
        pf.stop()
    # the agent closes its end in the pod: no connection is left there
    wait(lambda: _connections_to(netns, 9090) == [], 30, "the pod's connections closed")
    page = free_port()
    pf2 = PortForward(cluster, "pod/web", f"{page}:8080")
    try:
        pf2.wait_for(f"Forwarding from 127.0.0.1:{page} -> 8080")
        assert get(page) == b"hello-from-web\n"
    finally:
        pf2.stop()


def test_python_client_portforward(cluster: Server) -> None:
    from kubernetes import client
    from kubernetes.stream import portforward

    api = client.CoreV1Api(cluster.client())
    pf: Any = portforward(api.connect_get_namespaced_pod_portforward, "web", NS, ports="8080,9090,7777")
    try:
        for port, path in ((8080, "/"), (9090, "/big")):
            sock = pf.socket(port)
            sock.settimeout(30)
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: web\r\n\r\n".encode())
        answers = {}
        for port in (8080, 9090):
            sock = pf.socket(port)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            answers[port] = b"".join(chunks)
        assert answers[8080].startswith(b"HTTP/1.1 200 OK") and answers[8080].endswith(b"\r\n\r\nhello-from-web\n")
        assert answers[9090].endswith(b"\r\n\r\n" + BIG)
        assert pf.error(8080) is None and pf.error(9090) is None
        # nothing listens on 7777: the error channel says so, in kubelet's words
        assert (pf.error(7777) or "").startswith("error forwarding port 7777 to pod "), pf.error(7777)
        assert "failed to connect to localhost:7777 inside namespace" in pf.error(7777)
    finally:
        pf.close()
        deadline = time.monotonic() + 10
        while pf.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        pf.websocket.shutdown()
