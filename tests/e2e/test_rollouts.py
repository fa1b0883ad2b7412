"""kubectl against a real `k8py server` whose controllers run the workloads; a fake node plays kubelet."""

from __future__ import annotations

import pytest

from .conftest import KUBECTL, Server, wait

pytestmark = pytest.mark.skipif(not KUBECTL, reason="kubectl not installed")




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


def test_statefulset_daemonset_job_cronjob(cluster: Server) -> None:
    from .conftest import manifest

    ns = new_ns(cluster, "workloads")
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=manifest(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
         "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
         "spec": {"serviceName": "db", "replicas": 3, "selector": {"matchLabels": {"app": "db"}},
                  "template": {"metadata": {"labels": {"app": "db"}},
                               "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
                  "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                      "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
         "spec": {"selector": {"matchLabels": {"app": "agent"}},
                  "template": {"metadata": {"labels": {"app": "agent"}},
                               "spec": {"containers": [{"name": "a", "image": "busybox:1.36"}]}}}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "five"},
         "spec": {"completions": 5, "parallelism": 2,
                  "template": {"metadata": {"annotations": {"k8py.io/fake-exit-code": "0"}},
                               "spec": {"restartPolicy": "Never",
                                        "containers": [{"name": "w", "image": "busybox:1.36"}]}}}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
         "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {
             "metadata": {"annotations": {"k8py.io/fake-exit-code": "0"}},
             "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "w", "image": "busybox:1.36"}]}}}}}},
    ))
    out = cluster.kubectl("rollout", "status", "statefulset/db", "-n", ns, "--timeout=90s", timeout=120).stdout
    assert "roll out complete" in out
    pods = sorted(p["metadata"]["name"] for p in cluster.kjson("get", "pods", "-n", ns, "-l", "app=db")["items"])
    assert pods == ["db-0", "db-1", "db-2"]
    pvcs = sorted(p["metadata"]["name"] for p in cluster.kjson("get", "pvc", "-n", ns)["items"])
    assert pvcs == ["data-db-0", "data-db-1", "data-db-2"]
    cluster.kubectl("rollout", "status", "daemonset/agent", "-n", ns, "--timeout=90s", timeout=120)
    assert cluster.kjson("get", "ds", "agent", "-n", ns)["status"]["numberReady"] == 1
    cluster.kubectl("wait", "--for=condition=complete", "job/five", "-n", ns, "--timeout=90s", timeout=120)
    job = cluster.kjson("get", "job", "five", "-n", ns)
    assert job["status"]["succeeded"] == 5
    cluster.kubectl("create", "job", "manual", "--from=cronjob/nightly", "-n", ns)
    cluster.kubectl("wait", "--for=condition=complete", "job/manual", "-n", ns, "--timeout=90s", timeout=120)
    # a deleted StatefulSet pod comes back with its name and claim
    cluster.kubectl("delete", "pod", "db-1", "-n", ns, "--wait=true", "--timeout=60s")
    wait(lambda: any(p["metadata"]["name"] == "db-1" and p["status"].get("phase") == "Running"
                     for p in cluster.kjson("get", "pods", "-n", ns, "-l", "app=db")["items"]),
         what="db-1 back")
    vols = cluster.kjson("get", "pod", "db-1", "-n", ns)["spec"]["volumes"]
    assert any((v.get("persistentVolumeClaim") or {}).get("claimName") == "data-db-1" for v in vols)
