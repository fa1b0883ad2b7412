"""A second node joins: `k8py agent` in its own network namespace (a test "host" with a veth
to this machine) joins `k8py server` with a join token, gets its own certificate through the
CSR API, runs pods there, and a pod on one node reaches a pod on the other through the
host-gw routes. `kubectl drain` then moves a Deployment's pods off it for real.

Addresses: the test host's veth pair is 172.31.250.1 (this machine) / 172.31.250.2 (node 2);
traffic stays between them and the pods' own namespaces."""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import KUBECTL, Server, free_port, wait
from tests.helpers.images import build_busybox_image
from tests.helpers.nodelock import node_lock

from k8py.kubelet.run import missing_prerequisites

IMAGE = "k8py.test/busybox:1.0"
NETNS = "k8pyt-host2"
VETH, VETH_PEER = "k8pyt-h2a", "k8pyt-h2b"
HOST_IP, NODE2_IP = "172.31.250.1", "172.31.250.2"
NODE1, NODE2 = "k8py-join-1", "k8py-join-2"

pytestmark = pytest.mark.timeout(900)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


@contextlib.contextmanager
def second_host() -> Iterator[None]:
    """A network namespace with a veth to this machine: a second "machine" for node 2."""
    sh("ip", "netns", "add", NETNS)
    try:
        sh("ip", "link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER)
        sh("ip", "link", "set", VETH_PEER, "netns", NETNS)
        sh("ip", "addr", "add", f"{HOST_IP}/30", "dev", VETH)
        sh("ip", "link", "set", VETH, "up")
        sh("ip", "-n", NETNS, "addr", "add", f"{NODE2_IP}/30", "dev", VETH_PEER)
        sh("ip", "-n", NETNS, "link", "set", VETH_PEER, "up")
        sh("ip", "-n", NETNS, "link", "set", "lo", "up")
        sh("ip", "-n", NETNS, "route", "add", "default", "via", HOST_IP)
        yield
    finally:
        sh("ip", "link", "del", VETH, check=False)
        sh("ip", "netns", "del", NETNS, check=False)


def k8py(*args: str, netns: str | None = None, **kw: Any) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "k8py.cli", *args]
    if netns:
        argv = ["nsenter", f"--net=/run/netns/{netns}", *argv]
    return subprocess.Popen(argv, start_new_session=True, **kw)


def node_ready(s: Server, name: str) -> bool:
    p = s.kubectl("get", "node", name, "-o", "json", check=False)
    if p.returncode != 0:
        return False
    n = json.loads(p.stdout)
    return bool(n["spec"].get("podCIDR")) and any(
        c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or ())


def pod(name: str, node: str, command: str, restart: str = "Never") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeName": node, "restartPolicy": restart,
                     "containers": [{"name": "main", "image": IMAGE, "command": ["sh", "-c", command]}]}}


def pod_status(s: Server, name: str) -> Any:
    p = s.kubectl("get", "pod", name, "-o", "json", check=False)
    return json.loads(p.stdout)["status"] if p.returncode == 0 else {}


def test_a_second_node_joins_runs_pods_and_reaches_the_first(tmp_path: Path) -> None:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    missing = missing_prerequisites(str(tmp_path / "probe"))
    if missing:
        pytest.skip("this machine cannot run pods: " + "; ".join(missing))
    data1, data2 = tmp_path / "data1", tmp_path / "data2"
    for d in (data1, data2):
        (d / "agent" / "images").mkdir(parents=True)
        build_busybox_image(d / "agent" / "images", IMAGE)
    home = tmp_path / "home"
    home.mkdir()
    with node_lock(), second_host():
        s = Server(data1, free_port(), None, tmp_path / "server.log", home,
                   ("--bind-address", "0.0.0.0", "--node-ip", HOST_IP, "--node-name", NODE1,
                    "--kubelet-port", str(free_port())), agent=True)
        agent: subprocess.Popen[bytes] | None = None
        try:
            s.start()
            wait(lambda: node_ready(s, NODE1), 60, "node 1 Ready")
            token = subprocess.run([sys.executable, "-m", "k8py.cli", "token", "create", "--join", "-d", str(data1)],
                                   capture_output=True, text=True, check=True, timeout=60).stdout.strip()
            assert token.startswith("K10")
            with open(tmp_path / "agent.log", "wb") as log:
                agent = k8py("agent", "--server", f"https://{HOST_IP}:{s.port}", "--token", token,
                             "--node-name", NODE2, "--data-dir", str(data2), "--node-ip", NODE2_IP,
                             netns=NETNS, stdout=log, stderr=subprocess.STDOUT)
            wait(lambda: agent.poll() is None and node_ready(s, NODE2), 90,
                 f"node 2 Ready:\n{(tmp_path / 'agent.log').read_text()[-3000:] if agent.poll() is not None else ''}")
            # node 2 holds its own credentials, not the admin's
            csrs = s.kjson("get", "csr")["items"]
            mine = [c for c in csrs if c["spec"]["username"].startswith("system:bootstrap:")]
            assert mine and all(c["status"].get("certificate") for c in mine)
            assert any(cond["type"] == "Approved" for cond in mine[0]["status"]["conditions"])
            # and runs the service proxy as system:kube-proxy, with a certificate its own CSR got
            # (and the NetworkPolicy agent as system:k8py-network-policy, the local-path provisioner as
            # system:k8py-local-path-provisioner, the ingress controller as system:k8py-ingress), with
            # certificates its own CSRs got
            own = [c for c in csrs if c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client"
                   and c["spec"]["username"] == f"system:node:{NODE2}"]
            assert len(own) == 4 and all(c["status"].get("certificate") for c in own)
            wait(lambda: "10.43.0.1 . tcp . 443" in sh("ip", "netns", "exec", NETNS, "nft", "list", "table", "inet",
                                                       "k8py-proxy", check=False).stdout, 30, "node 2's proxy rules")
            wait(lambda: "k8py-netpol" in sh("ip", "netns", "exec", NETNS, "nft", "list", "tables").stdout, 30,
                 "node 2's NetworkPolicy table")
            n1 = s.kjson("get", "node", NODE1)["spec"]["podCIDR"]
            n2 = s.kjson("get", "node", NODE2)["spec"]["podCIDR"]
            assert n1 != n2

            s.kubectl("apply", "-f", "-", input=json.dumps(pod("server1", NODE1,
                      "echo from node 1 > /tmp/i; exec httpd -f -p 8080 -h /tmp", restart="Always")))
            wait(lambda: pod_status(s, "server1").get("podIP") and pod_status(s, "server1").get("phase") == "Running",
                 60, "the pod on node 1 Running")
            # node 2's pod reaches node 1's through a Service: node 2's proxy, then the host-gw route
            s.kubectl("expose", "pod", "server1", "--port=80", "--target-port=8080")
            svc_ip = s.kjson("get", "service", "server1")["spec"]["clusterIP"]
            wait(lambda: f"{svc_ip} . tcp . 80 : goto" in sh("ip", "netns", "exec", NETNS, "nft", "list", "table",
                                                              "inet", "k8py-proxy", check=False).stdout, 30,
                 "node 2's rules for the Service")
            s.kubectl("apply", "-f", "-", input=json.dumps(pod("client2", NODE2, f"wget -q -O- http://{svc_ip}/i")))
            wait(lambda: pod_status(s, "client2").get("phase") in ("Succeeded", "Failed"), 90,
                 "the pod on node 2 done")
            st = pod_status(s, "client2")
            assert st["phase"] == "Succeeded", (st, s.kubectl("logs", "client2", check=False).stdout)
            assert st["hostIP"] == NODE2_IP
            # kubectl logs reaches node 2's kubelet API through the API server
            assert s.kubectl("logs", "client2").stdout == "from node 1\n"

            # node 2's own ingress controller (nginx in its namespace, port 80) serves an Ingress
            # whose backend runs on node 1, as k3s's bundled ingress answers on every node
            s.kubectl("apply", "-f", "-", input=json.dumps({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
                "spec": {"rules": [{"host": "join.test", "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "server1", "port": {"number": 80}}}}]}}]}}))

            def through_node2() -> str:
                c = http.client.HTTPConnection(NODE2_IP, 80, timeout=3)
                try:
                    c.request("GET", "/i", headers={"Host": "join.test"})
                    r = c.getresponse()
                    return r.read().decode() if r.status == 200 else ""
                except OSError:
                    return ""
                finally:
                    c.close()

            wait(lambda: through_node2() == "from node 1\n", 60, "the Ingress served by node 2's nginx")

            # a local-path claim of a pod scheduled to node 2 is provisioned there, by node 2's provisioner
            s.kubectl("apply", "-f", "-", input=json.dumps({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "on-node-2"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Mi"}}}}))
            writer = pod("writer2", NODE2, "echo kept on node 2 > /data/f")
            del writer["spec"]["nodeName"]
            writer["spec"]["nodeSelector"] = {"kubernetes.io/hostname": NODE2}
            writer["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
            writer["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "on-node-2"}}]
            s.kubectl("apply", "-f", "-", input=json.dumps(writer))
            wait(lambda: pod_status(s, "writer2").get("phase") in ("Succeeded", "Failed"), 90,
                 "the pod with a local-path volume on node 2 done")
            assert pod_status(s, "writer2")["phase"] == "Succeeded", s.kubectl("describe", "pod", "writer2").stdout
            pv = s.kjson("get", "pv", s.kjson("get", "pvc", "on-node-2")["spec"]["volumeName"])
            assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] \
                == [NODE2]
            assert Path(pv["spec"]["hostPath"]["path"]).parent == data2 / "storage"
            assert (Path(pv["spec"]["hostPath"]["path"]) / "f").read_text() == "kept on node 2\n"

            # drain node 2: a Deployment's pods move to node 1, for real
            s.kubectl("apply", "-f", "-", input=json.dumps({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mover"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "mover"}},
                         "template": {"metadata": {"labels": {"app": "mover"}},
                                      "spec": {"terminationGracePeriodSeconds": 2,
                                               "nodeSelector": {"kubernetes.io/hostname": NODE2},
                                               "containers": [{"name": "c", "image": IMAGE,
                                                               "command": ["sh", "-c", ("trap 'exit 0' TERM; "
                                                                           "while true; do sleep 0.2; done")]}]}}}}))
            s.kubectl("rollout", "status", "deployment/mover", "--timeout=90s", timeout=120)
            s.kubectl("patch", "deployment", "mover", "--type=json", "-p",
                      '[{"op":"remove","path":"/spec/template/spec/nodeSelector"}]')
            s.kubectl("rollout", "status", "deployment/mover", "--timeout=90s", timeout=120)
            s.kubectl("drain", NODE2, "--ignore-daemonsets", "--delete-emptydir-data", "--force",
                      "--timeout=90s", timeout=120)

            def moved() -> bool:
                pods = s.kjson("get", "pods", "-l", "app=mover")["items"]
                return len(pods) == 2 and all(p["spec"].get("nodeName") == NODE1 and
                                              p["status"].get("phase") == "Running" for p in pods)

            wait(moved, 90, "the Deployment's pods running on node 1")
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(30)
            s.stop()
            for d, ns in ((data2, NETNS), (data1, None)):
                k = k8py("killall", "--data-dir", str(d), netns=ns)
                assert k.wait(120) == 0
