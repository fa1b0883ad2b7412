"""kubectl against a real `k8py server` whose controllers run the workloads; a fake node plays kubelet."""

from __future__ import annotations

import time

import pytest

from .conftest import KUBECTL, Server

pytestmark = pytest.mark.skipif(not KUBECTL, reason="kubectl not installed")


def wait(cond, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def new_ns(cluster: Server, name: str) -> str:
    cluster.kubectl("create", "namespace", name)
    return name


def test_deployment_rollout_status_undo_history(cluster: Server) -> None:
    ns = new_ns(cluster, "roll")
    cluster.kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=3", "-n", ns)
    out = cluster.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", timeout=120).stdout
    assert 'deployment "web" successfully rolled out' in out
    d = cluster.kjson("get", "deploy", "web", "-n", ns)
    assert d["status"]["availableReplicas"] == 3 and d["status"]["updatedReplicas"] == 3
    pods = cluster.kjson("get", "pods", "-n", ns, "-l", "app=web")["items"]
    assert len(pods) == 3 and all(p["status"]["phase"] == "Running" for p in pods)

    cluster.kubectl("set", "image", "deployment/web", "nginx=nginx:1.26", "-n", ns)
    out = cluster.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", timeout=120).stdout
    assert "successfully rolled out" in out
    images = {p["spec"]["containers"][0]["image"]
              for p in cluster.kjson("get", "pods", "-n", ns, "-l", "app=web")["items"]
              if not p["metadata"].get("deletionTimestamp")}
    assert images == {"nginx:1.26"}
    hist = cluster.kubectl("rollout", "history", "deployment/web", "-n", ns).stdout
    assert "REVISION" in hist and "1" in hist and "2" in hist

    cluster.kubectl("rollout", "undo", "deployment/web", "-n", ns)
    cluster.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", timeout=120)
    d = cluster.kjson("get", "deploy", "web", "-n", ns)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

    cluster.kubectl("scale", "deployment/web", "--replicas=1", "-n", ns)
    wait(lambda: len([p for p in cluster.kjson("get", "pods", "-n", ns, "-l", "app=web")["items"]
                      if not p["metadata"].get("deletionTimestamp")]) == 1, what="scale down to 1")

    cluster.kubectl("rollout", "pause", "deployment/web", "-n", ns)
    cluster.kubectl("set", "image", "deployment/web", "nginx=nginx:1.27", "-n", ns)
    time_rs = cluster.kjson("get", "rs", "-n", ns)["items"]
    assert not any(r["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27" for r in time_rs)
    cluster.kubectl("rollout", "resume", "deployment/web", "-n", ns)
    cluster.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", timeout=120)


def test_progress_deadline_exceeded(cluster: Server) -> None:
    ns = new_ns(cluster, "stuck")
    cluster.kubectl("create", "deployment", "web", "--image=nginx:bad", "-n", ns)
    cluster.kubectl("patch", "deployment/web", "-n", ns, "-p", '{"spec":{"progressDeadlineSeconds":3}}')
    p = cluster.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s", check=False, timeout=90)
    assert p.returncode != 0
    assert 'deployment "web" exceeded its progress deadline' in p.stderr
    conds = {c["type"]: c for c in cluster.kjson("get", "deploy", "web", "-n", ns)["status"]["conditions"]}
    assert conds["Progressing"]["status"] == "False" and conds["Progressing"]["reason"] == "ProgressDeadlineExceeded"


def test_replaced_pod_and_namespace_deletion(cluster: Server) -> None:
    ns = new_ns(cluster, "heal")
    cluster.kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=2", "-n", ns)
    cluster.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", timeout=120)
    victim = cluster.kjson("get", "pods", "-n", ns)["items"][0]["metadata"]["name"]
    cluster.kubectl("delete", "pod", victim, "-n", ns, "--wait=true", "--timeout=60s")
    wait(lambda: len([p for p in cluster.kjson("get", "pods", "-n", ns)["items"]
                      if p["metadata"]["name"] != victim and p["status"].get("phase") == "Running"]) == 2,
         what="replacement pod running")
    cluster.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=90s", timeout=120)
    p = cluster.kubectl("get", "namespace", ns, check=False)
    assert p.returncode != 0 and "not found" in p.stderr
    sa = cluster.kjson("get", "serviceaccount", "default", "-n", "default")
    assert sa["metadata"]["name"] == "default"


def test_cascading_deletes_and_undo_to_revision(cluster: Server) -> None:
    ns = new_ns(cluster, "cascade")
    for name in ("keep", "drop"):
        cluster.kubectl("create", "deployment", name, "--image=nginx:1.25", "--replicas=1", "-n", ns)
    cluster.kubectl("set", "image", "deployment/drop", "nginx=nginx:1.26", "-n", ns)
    cluster.kubectl("set", "image", "deployment/drop", "nginx=nginx:1.27", "-n", ns)
    cluster.kubectl("rollout", "status", "deployment/drop", "-n", ns, "--timeout=90s", timeout=120)
    cluster.kubectl("rollout", "undo", "deployment/drop", "--to-revision=1", "-n", ns)
    cluster.kubectl("rollout", "status", "deployment/drop", "-n", ns, "--timeout=90s", timeout=120)
    d = cluster.kjson("get", "deploy", "drop", "-n", ns)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    cluster.kubectl("rollout", "status", "deployment/keep", "-n", ns, "--timeout=90s", timeout=120)

    cluster.kubectl("delete", "deployment", "keep", "-n", ns, "--cascade=orphan", "--wait=true", "--timeout=60s")
    rs = [r for r in cluster.kjson("get", "rs", "-n", ns)["items"] if r["metadata"]["name"].startswith("keep-")]
    assert len(rs) == 1 and not rs[0]["metadata"].get("ownerReferences"), "orphaned ReplicaSet stays, unowned"

    cluster.kubectl("delete", "deployment", "drop", "-n", ns, "--wait=true", "--timeout=60s")
    wait(lambda: not [r for r in cluster.kjson("get", "rs", "-n", ns)["items"]
                      if r["metadata"]["name"].startswith("drop-")], what="dependent ReplicaSets collected")
    wait(lambda: not [p for p in cluster.kjson("get", "pods", "-n", ns)["items"]
                      if p["metadata"]["name"].startswith("drop-")], what="dependent pods collected")
    assert [p for p in cluster.kjson("get", "pods", "-n", ns)["items"] if p["metadata"]["name"].startswith("keep-")]
