"""pods/log and nodes/proxy end to end: a real `k8py server` process, a KubeletServer on loopback
registered as a Node (its serving certificate from k8py.pki), pods bound to it whose containers
(a fake runtime) have CRI log files, and real kubectl and the official Python client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from tests.e2e.conftest import KUBECTL, Server, free_port, start_server
from tests.kubelet.test_server import FakeRuntime, cri

from k8py import pki as pki_mod
from k8py.kubelet.runtime.types import ContainerState, ContainerStats, ContainerStatus
from k8py.kubelet.server import KubeletServer

NODE = "node-1"


class KubeletThread:
    """A KubeletServer on its own event loop in a thread (kubectl runs synchronously here)."""

    def __init__(self, server: KubeletServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kubelet-api", daemon=True)

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Cluster:
    server: Server
    rt: FakeRuntime
    pods: list[dict[str, Any]]
    kubelet: KubeletServer
    api: Any  # kubernetes.client.CoreV1Api

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.server.kubectl(*args, check=check)

    def run_pod(self, name: str, containers: dict[str, tuple[str, ...]], labels: dict[str, str] | None = None,
                node: str = NODE) -> dict[str, Any]:
        """A Pod bound to ``node`` in the API, known to the kubelet, with a running container
        per entry whose log holds the given CRI records."""
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
                "spec": {"nodeName": node, "containers": [{"name": c, "image": "busybox"} for c in containers]}}
        created = self.api.api_client.sanitize_for_serialization(self.api.create_namespaced_pod("default", body))
        if node == NODE:
            self.pods.append(created)
            for cname, lines in containers.items():
                self.rt.add("default", name, created["metadata"]["uid"], cname, lines=lines)
        return cast(dict[str, Any], created)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    tmp = tmp_path_factory.mktemp("kubeletproxy")
    server = start_server(tmp)
    kt: KubeletThread | None = None
    try:
        p = pki_mod.PKI.in_dir(str(server.data_dir / "tls"))
        cert, key = pki_mod.issue_kubelet_serving_certificate(p, NODE, ips=("127.0.0.1",))
        (tmp / "kubelet.crt").write_bytes(cert)
        (tmp / "kubelet.key").write_bytes(key)
        rt = FakeRuntime(tmp / "pods")
        pods: list[dict[str, Any]] = []
        kubelet = KubeletServer(cast(Any, rt), lambda: list(pods), node_name=NODE, host="127.0.0.1", port=0,
                                cert_file=str(tmp / "kubelet.crt"), key_file=str(tmp / "kubelet.key"),
                                client_ca_file=p.ca_cert, poll_interval=0.05)
        kt = KubeletThread(kubelet)
        kt.start()
        from kubernetes import client

        api = client.CoreV1Api(server.client())
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
        api.create_node(node)
        api.patch_node_status(NODE, {"status": {
            "addresses": [{"type": "Hostname", "address": "no-such-host.invalid"},
                          {"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}}}})
        yield Cluster(server, rt, pods, kubelet, api)
    finally:
        if kt is not None:
            kt.stop()
        server.stop()


def test_kubectl_logs_and_options(cluster: Cluster) -> None:
    now = time.time()
    cluster.run_pod("plain", {"c": (cri("one", at=now - 7200), cri("tw", tag="P", at=now - 60),
                                    cri("o", at=now - 60), cri("three", stream="stderr", at=now - 1))})
    assert cluster.kubectl("logs", "plain").stdout == "one\ntwo\nthree\n"
    assert cluster.kubectl("logs", "plain", "--tail=1").stdout == "three\n"
    assert cluster.kubectl("logs", "plain", "--since=1h").stdout == "two\nthree\n"
    assert cluster.kubectl("logs", "plain", "--limit-bytes=6").stdout == "one\ntw"
    since_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 120))
    assert cluster.kubectl("logs", "plain", f"--since-time={since_time}").stdout == "two\nthree\n"
    # tail counts records as kubelet does: the two parts of "two" are two of them
    stamped = cluster.kubectl("logs", "plain", "--timestamps", "--tail=3").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["two", "three"]
    assert stamped[1].split(" ")[0].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(now - 1))))


def test_containers_previous_and_all(cluster: Cluster) -> None:
    pod = cluster.run_pod("multi", {"a": (cri("from a"),), "b": (cri("from b"),)})
    uid = pod["metadata"]["uid"]
    out = cluster.kubectl("logs", "multi")
    assert out.stdout == "from a\n"  # kubectl picks the first container, and says so
    assert 'Defaulted container "a" out of: a, b' in out.stderr
    assert cluster.kubectl("logs", "multi", "-c", "b").stdout == "from b\n"
    both = cluster.kubectl("logs", "multi", "--all-containers").stdout
    # kubectl walks its requests in Go map order: the containers' logs come in either order
    assert sorted(both.splitlines()) == ["from a", "from b"]
    # b restarted: attempt 0 exited, attempt 1 runs
    old_b = next(c for c in cluster.rt.containers.values() if c.labels["io.kubernetes.pod.uid"] == uid
                 and c.name == "b")
    cluster.rt.exit(old_b)
    cluster.rt.add("default", "multi", uid, "b", attempt=1, lines=(cri("b again"),))
    assert cluster.kubectl("logs", "multi", "-c", "b").stdout == "b again\n"
    assert cluster.kubectl("logs", "multi", "-c", "b", "--previous").stdout == "from b\n"
    err = cluster.kubectl("logs", "multi", "-c", "a", "--previous", check=False)
    assert err.returncode != 0
    assert err.stderr.strip() == \
        'Error from server (BadRequest): previous terminated container "a" in pod "multi" not found'


def test_label_selector(cluster: Cluster) -> None:
    cluster.run_pod("web-1", {"c": (cri("hello from 1"),)}, labels={"app": "web"})
    cluster.run_pod("web-2", {"c": (cri("hello from 2"),)}, labels={"app": "web"})
    cluster.run_pod("other", {"c": (cri("not me"),)}, labels={"app": "db"})
    out = cluster.kubectl("logs", "-l", "app=web", "--prefix").stdout.splitlines()
    assert sorted(out) == ["[pod/web-1/c] hello from 1", "[pod/web-2/c] hello from 2"]


def test_follow(cluster: Cluster) -> None:
    cluster.run_pod("follow", {"c": (cri("start"),)})
    c = next(c for c in cluster.rt.containers.values() if c.labels["io.kubernetes.pod.name"] == "follow")
    env = dict(os.environ, HOME=str(cluster.server.home), KUBECONFIG=cluster.server.kubeconfig)
    assert KUBECTL
    proc = subprocess.Popen([KUBECTL, "logs", "-f", "follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []

        def read_line() -> None:
            lines.append(proc.stdout.readline())  # type: ignore[union-attr]

        def next_line(timeout: float = 15.0) -> str:
            t = threading.Thread(target=read_line, daemon=True)
            t.start()
            t.join(timeout)
            assert not t.is_alive(), f"no line from kubectl logs -f in {timeout}s"
            return lines[-1]

        assert next_line() == "start\n"
        cluster.rt.append(c, cri("appended while following"))
        assert next_line() == "appended while following\n"
        cluster.rt.append(c, cri("last words"))
        cluster.rt.exit(c)  # the container exits: the kubelet ends the stream, kubectl exits 0
        assert next_line() == "last words\n"
        assert proc.wait(15) == 0
        assert proc.stdout.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_errors_as_kube_words_them(cluster: Cluster) -> None:
    from kubernetes.client.rest import ApiException

    cluster.run_pod("errs", {"a": (cri("x"),), "b": ()})
    api = cluster.api

    def status_of(**kw: Any) -> tuple[int, str, str]:
        with pytest.raises(ApiException) as ei:
            api.read_namespaced_pod_log("errs", "default", **kw)
        body = json.loads(ei.value.body)
        return ei.value.status, body.get("reason", ""), body["message"]

    assert status_of() == (400, "BadRequest", "a container name must be specified for pod errs, choose one of: [a b]")
    assert status_of(container="nope") == (400, "BadRequest", "container nope is not valid for pod errs")
    assert status_of(container="a", tail_lines=-1) == (
        422, "Invalid", ('PodLogOptions "errs" is invalid: tailLines: Invalid value: -1: must be greater than or '
        "equal to 0"))
    assert status_of(container="a", limit_bytes=0)[2].endswith("limitBytes: Invalid value: 0: must be greater than 0")
    with pytest.raises(ApiException) as ei:
        api.read_namespaced_pod_log("ghost", "default")
    assert ei.value.status == 404 and json.loads(ei.value.body)["message"] == 'pods "ghost" not found'
    # a container the kubelet has not started: the kubelet's words, through the API server
    cluster.rt.containers = {k: v for k, v in cluster.rt.containers.items()
                             if not (v.labels["io.kubernetes.pod.name"] == "errs" and v.name == "b")}
    assert status_of(container="b") == (400, "BadRequest",
                                        'container "b" in pod "errs" is waiting to start: ContainerCreating')
    # kubectl shows the same texts
    out = cluster.kubectl("logs", "errs", "-c", "b", check=False)
    assert out.stderr.strip() == \
        'Error from server (BadRequest): container "b" in pod "errs" is waiting to start: ContainerCreating'
    # the Python client reads a log too
    assert api.read_namespaced_pod_log("errs", "default", container="a") == "x\n"
    assert api.read_namespaced_pod_log("errs", "default", container="a", tail_lines=1, timestamps=True) \
        .split(" ", 1)[1] == "x\n"


def test_unscheduled_pod_and_unreachable_kubelet(cluster: Cluster) -> None:
    # no node yet: kube answers 204 (an empty log), kubectl prints nothing
    cluster.run_pod("pending", {"c": ()}, node="")
    out = cluster.kubectl("logs", "pending")
    assert (out.returncode, out.stdout) == (0, "")
    # a node whose kubelet does not answer
    dead_port = free_port()
    cluster.api.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "dead"}})
    cluster.api.patch_node_status("dead", {"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": dead_port}}}})
    cluster.run_pod("on-dead", {"c": ()}, node="dead")
    out = cluster.kubectl("logs", "on-dead", check=False)
    assert out.returncode != 0
    assert out.stderr.strip() == (f'Error from server: Get "https://127.0.0.1:{dead_port}/containerLogs/default/'
                                  f'on-dead/c": dial tcp 127.0.0.1:{dead_port}: connect: connection refused')
    # a node without addresses
    cluster.api.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "nowhere"}})
    cluster.run_pod("on-nowhere", {"c": ()}, node="nowhere")
    out = cluster.kubectl("logs", "on-nowhere", check=False)
    assert out.stderr.strip() == "Error from server: no preferred addresses found; known addresses: []"


def test_node_proxy(cluster: Cluster) -> None:
    assert cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/healthz").stdout == "ok"
    pods = json.loads(cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/pods").stdout)
    assert pods["kind"] == "PodList" and pods["items"]
    pod = cluster.run_pod("stats", {"c": ()})
    c = next(c for c in cluster.rt.containers.values() if c.labels["io.kubernetes.pod.uid"] == pod["metadata"]["uid"])
    cluster.rt.stats[c.id] = ContainerStats(time.time(), 123_000_000, 7 << 20)
    summary = json.loads(cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/stats/summary").stdout)
    assert summary["node"]["nodeName"] == NODE
    mine = next(p for p in summary["pods"] if p["podRef"]["name"] == "stats")
    assert mine["containers"][0]["cpu"]["usageCoreNanoSeconds"] == 123_000_000
    assert mine["containers"][0]["memory"]["workingSetBytes"] == 7 << 20
    logs = cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/containerLogs/default/stats/c").stdout
    assert logs == ""
    # the kubelet's own 404 passes through unchanged
    missing = cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/nope", check=False)
    assert missing.returncode != 0
    assert missing.stderr.strip() == "Error from server (NotFound): the server could not find the requested resource"
    # kubectl refuses a bad container by itself; the API's own text is in test_errors_as_kube_words_them
    bad = cluster.kubectl("logs", "stats", "-c", "nope", check=False)
    assert bad.stderr.strip() == "error: container nope is not valid for pod stats out of: c"
    raw = cluster.kubectl("get", "--raw", "/api/v1/namespaces/default/pods/stats/log?tailLines=abc", check=False)
    assert raw.stderr.strip() == 'Error from server (BadRequest): strconv.ParseInt: parsing "abc": invalid syntax'
    assert isinstance(c, ContainerStatus) and c.state == ContainerState.RUNNING


def test_kubelet_client_certificate_files(cluster: Cluster) -> None:
    tls = cluster.server.data_dir / "tls"
    for name in ("apiserver-kubelet-client.crt", "apiserver-kubelet-client.key"):
        assert (tls / name).stat().st_mode & 0o777 == 0o600
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tls / "apiserver-kubelet-client.crt").read_bytes())
    assert cert.subject.rfc4514_string().startswith("CN=kube-apiserver-kubelet-client")
    assert Path(cluster.kubelet.cert_file).exists()
