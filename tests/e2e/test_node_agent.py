"""Pods run for real: `k8py server` with its node agent (runc, conmon, CNI bridge, overlayfs
images), driven with kubectl. The busybox test image is built by the tests and put in the
agent's airgap folder, which the agent imports when it starts (as k3s does).

Traffic goes only to pod IPs inside the cluster's own network namespaces and to loopback.
Everything is removed at the end with `k8py killall`, and the test checks nothing is left."""

from __future__ import annotations

import glob
import ipaddress
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from tests.e2e.conftest import Server, wait
from tests.helpers.images import build_busybox_image, running_registry
from tests.helpers.realnode import IMAGE, namespace_for, node_ready, real_cluster

NODE = "k8py-e2e-node"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # a cluster of its own, not the shared one: a test here stops and restarts the server
    with real_cluster(tmp_path_factory.mktemp("node"), NODE) as s:
        yield s


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    """A namespace per test on this module's cluster."""
    return namespace_for(cluster, request, "n")


def pod_json(s: Server, name: str, ns: str) -> Any:
    p = s.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def phase(s: Server, name: str, ns: str) -> str:
    p = pod_json(s, name, ns)
    return str((p or {}).get("status", {}).get("phase", ""))


def http_get(url: str, attempts: int = 20) -> str:
    """GET ``url`` (a pod IP), a bounded number of times while the server comes up."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError as e:
            last = e
            time.sleep(0.25)
    raise AssertionError(f"GET {url} failed {attempts} times: {last}")


def apply(s: Server, ns: str, manifest: dict[str, Any]) -> None:
    s.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def pod(name: str, command: str, *, restart: str = "Never", grace: int | None = None,
        resources: dict[str, Any] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                         "command": ["sh", "-c", command]}
    if resources:
        c["resources"] = resources
    spec: dict[str, Any] = {"restartPolicy": restart, "containers": [c]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


HTTPD = "echo \"hello from $(hostname)\" > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"


def test_the_seeds_deployment_serves_http_on_its_pod_ips(cluster: Server, ns: str) -> None:
    s = cluster
    apply(s, ns, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "httpd", "image": IMAGE,
                                                                 "command": ["sh", "-c", HTTPD],
                                                                 "ports": [{"containerPort": 8080}]}]}}}})
    s.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", timeout=120)
    pods = s.kjson("get", "pods", "-n", ns, "-l", "app=web")["items"]
    assert len(pods) == 3
    node = s.kjson("get", "node", NODE)
    cidr = ipaddress.ip_network(node["spec"]["podCIDR"])
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == 3, ips
    assert all(ipaddress.ip_address(ip) in cidr for ip in ips), (ips, cidr)
    for p in pods:
        st = p["status"]
        assert st["hostIP"] == "127.0.0.1" and st["qosClass"] == "BestEffort"
        cs = st["containerStatuses"][0]
        assert cs["ready"] and cs["started"] and cs["containerID"].startswith("runc://")
        assert cs["imageID"].startswith("sha256:")
        # from the node
        assert http_get(f"http://{st['podIP']}:8080/index.html") == f"hello from {p['metadata']['name']}\n"
    # from inside another pod
    target = pods[0]
    apply(s, ns, pod("client", f"wget -q -O- http://{target['status']['podIP']}:8080/index.html"))
    wait(lambda: phase(s, "client", ns) in ("Succeeded", "Failed"), 60, "the client pod done")
    assert phase(s, "client", ns) == "Succeeded", s.kubectl("describe", "pod", "client", "-n", ns).stdout
    assert s.kubectl("logs", "client", "-n", ns).stdout == f"hello from {target['metadata']['name']}\n"


def test_logs_follow_stream_until_the_container_exits(cluster: Server, ns: str) -> None:
    s = cluster
    apply(s, ns, pod("counter", "for i in $(seq 1 15); do echo line $i; sleep 0.2; done"))
    wait(lambda: phase(s, "counter", ns) in ("Running", "Succeeded"), 60, "the pod running")
    out = s.kubectl("logs", "-f", "counter", "-n", ns, timeout=60).stdout
    assert out.splitlines() == [f"line {i}" for i in range(1, 16)]
    wait(lambda: phase(s, "counter", ns) == "Succeeded", 30, "Succeeded")
    ts = s.kubectl("logs", "counter", "-n", ns, "--timestamps", "--tail=2").stdout.splitlines()
    assert len(ts) == 2 and ts[1].endswith(" line 15") and ts[1][:4].isdigit()


def test_delete_stops_the_container_within_its_grace_period(cluster: Server, ns: str) -> None:
    s = cluster
    apply(s, ns, pod("polite", "trap 'exit 0' TERM; while true; do sleep 0.1; done", grace=30))
    apply(s, ns, pod("stubborn", "trap '' TERM; while true; do sleep 0.1; done", grace=2))
    wait(lambda: phase(s, "polite", ns) == "Running" and phase(s, "stubborn", ns) == "Running", 60, "Running")
    uid = pod_json(s, "polite", ns)["metadata"]["uid"]
    t0 = time.monotonic()
    s.kubectl("delete", "pod", "polite", "-n", ns, timeout=60)
    polite = time.monotonic() - t0
    # nothing of it is left on the node: its cgroups go with its sandbox
    wait(lambda: not glob.glob(f"/sys/fs/cgroup/*/kubepods/**/pod{uid}", recursive=True), 30,
         "the pod's cgroups removed")
    t0 = time.monotonic()
    s.kubectl("delete", "pod", "stubborn", "-n", ns, timeout=60)
    stubborn = time.monotonic() - t0
    assert polite < 10, f"a container that exits on SIGTERM took {polite:.1f}s to stop"
    assert 2 <= stubborn < 12, f"a container that ignores SIGTERM took {stubborn:.1f}s (grace 2s)"


def test_memory_limit_is_enforced_and_reported_as_oomkilled(cluster: Server, ns: str) -> None:
    s = cluster
    apply(s, ns, pod("hog", "head -c 200m /dev/zero | tail",
                     resources={"limits": {"memory": "32Mi", "cpu": "500m"}}))
    wait(lambda: phase(s, "hog", ns) == "Failed", 90, "the pod Failed")
    st = pod_json(s, "hog", ns)["status"]
    term = st["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137, term
    assert st["qosClass"] == "Guaranteed"


def test_a_crashing_container_backs_off_and_keeps_its_last_run(cluster: Server, ns: str) -> None:
    s = cluster
    apply(s, ns, pod("crash", "echo run at $(date +%s); exit 2", restart="Always"))

    def looping() -> Any:
        p = pod_json(s, "crash", ns)
        for c in (p or {}).get("status", {}).get("containerStatuses") or ():
            if (c["state"].get("waiting") or {}).get("reason") == "CrashLoopBackOff":
                return c
        return None

    c = wait(looping, 90, "CrashLoopBackOff")
    assert c["restartCount"] >= 1 and c["lastState"]["terminated"]["exitCode"] == 2
    prev = s.kubectl("logs", "crash", "-n", ns, "--previous").stdout
    assert prev.startswith("run at "), prev
    out = s.kubectl("get", "pod", "crash", "-n", ns).stdout
    assert "CrashLoopBackOff" in out or "Error" in out


def test_bad_input_shows_in_the_pods_status(cluster: Server, ns: str) -> None:
    s = cluster
    never = pod("never", "true")
    never["spec"]["containers"][0].update(image="k8py.test/absent:1", imagePullPolicy="Never")
    apply(s, ns, never)
    nocmd = pod("nocmd", "true")
    nocmd["spec"]["containers"][0]["command"] = ["/no/such/binary"]
    apply(s, ns, nocmd)

    def waiting(name: str) -> Any:
        p = pod_json(s, name, ns)
        for c in (p or {}).get("status", {}).get("containerStatuses") or ():
            w = c["state"].get("waiting") or {}
            if w.get("reason") not in (None, "ContainerCreating"):
                return w
        return None

    w = wait(lambda: waiting("never"), 60, "ErrImageNeverPull")
    assert w == {"reason": "ErrImageNeverPull",
                 "message": 'Container image "k8py.test/absent:1" is not present with pull policy of Never'}
    w = wait(lambda: waiting("nocmd"), 60, "a create error")
    # runc checks the executable at create: CreateContainerError, as CRI-O (also on runc) reports it
    assert w["reason"] in ("CreateContainerError", "RunContainerError"), w
    assert "/no/such/binary" in w["message"], w
    # the node goes on serving other pods
    apply(s, ns, pod("fine", "echo fine"))
    wait(lambda: phase(s, "fine", ns) == "Succeeded", 60, "another pod runs")


def test_restarting_the_server_leaves_running_pods_alone(cluster: Server, ns: str) -> None:
    s = cluster
    apply(s, ns, pod("steady", HTTPD, restart="Always"))
    wait(lambda: phase(s, "steady", ns) == "Running", 60, "Running")
    before = pod_json(s, "steady", ns)["status"]["containerStatuses"][0]
    ip = pod_json(s, "steady", ns)["status"]["podIP"]
    namespaces = s.kubectl("exec", "steady", "-n", ns, "--", "sh", "-c",
                           "readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts").stdout.split()
    s.stop()
    # while the agent is down, the container keeps serving
    assert http_get(f"http://{ip}:8080/index.html") == "hello from steady\n"
    s.start()
    wait(lambda: node_ready(s, NODE), 60, "the node Ready again")
    apply(s, ns, pod("after", "echo after"))
    wait(lambda: phase(s, "after", ns) == "Succeeded", 60, "a new pod runs after the restart")
    after = pod_json(s, "steady", ns)["status"]["containerStatuses"][0]
    assert after["containerID"] == before["containerID"]
    assert after["restartCount"] == 0 and after["state"] == before["state"]
    assert http_get(f"http://{ip}:8080/index.html") == "hello from steady\n"
    # a container the restarted agent adds to the pod joins the pod's IPC and UTS namespaces
    s.kubectl("debug", "steady", "-n", ns, f"--image={IMAGE}", "--container=dbg", "--", "sh", "-c",
              "readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; hostname")
    wait(lambda: s.kubectl("logs", "steady", "-n", ns, "-c", "dbg", check=False).stdout.split() == [
        *namespaces, "steady"], 60, "the debug container's namespaces in its log")



def test_images_are_pulled_with_image_pull_secrets(cluster: Server, ns: str, tmp_path_factory: pytest.TempPathFactory
                                                   ) -> None:
    """The pull path for real: a local registry (Debian's docker-registry on loopback, htpasswd
    auth) holds the image; a pod with the right imagePullSecret runs, one without it gets
    ErrImagePull then ImagePullBackOff, as kubectl users know them."""
    s = cluster
    archive = build_busybox_image(tmp_path_factory.mktemp("img"), IMAGE)
    with running_registry() as reg:
        ref = reg.push(archive, "pulled/busybox:2.0")
        s.kubectl("create", "secret", "docker-registry", "regcred", "-n", ns, f"--docker-server={reg.host}",
                  f"--docker-username={reg.username}", f"--docker-password={reg.password}")
        with_secret = pod("pulled", "echo pulled fine")
        with_secret["spec"]["containers"][0].update(image=ref, imagePullPolicy="Always")
        with_secret["spec"]["imagePullSecrets"] = [{"name": "regcred"}]
        apply(s, ns, with_secret)
        without = pod("refused", "echo never")
        without["spec"]["containers"][0].update(image=ref, imagePullPolicy="Always")
        apply(s, ns, without)
        wait(lambda: phase(s, "pulled", ns) == "Succeeded", 120, "the pod with the secret done")
        assert s.kubectl("logs", "pulled", "-n", ns).stdout == "pulled fine\n"
        events = s.kubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name=pulled").stdout
        assert "Pulling" in events and "Successfully pulled image" in events

        def waiting_reason() -> Any:
            p = pod_json(s, "refused", ns)
            for c in (p or {}).get("status", {}).get("containerStatuses") or ():
                w = c["state"].get("waiting") or {}
                if w.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
                    return w
            return None

        w = wait(waiting_reason, 60, "ErrImagePull")
        assert "unauthorized" in w.get("message", "").lower() or w["reason"] == "ImagePullBackOff", w
        assert phase(s, "refused", ns) == "Pending"
