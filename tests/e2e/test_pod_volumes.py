"""Pod volumes on a real node (runc containers), driven with kubectl: a ConfigMap change reaches
the mounted file without a restart (and not a subPath mount of it), env and files from a Secret
with their modes, a pod waiting on a missing ConfigMap with kubelet's FailedMount event and
starting once it is created, downward API labels that follow the pod, a memory emptyDir that is
a tmpfs of its sizeLimit, an emptyDir over its sizeLimit evicted, and nothing left mounted once
the pods are deleted.

The containers print what they see and the test reads ``kubectl logs`` (``kubectl exec`` is not
served yet). Everything is removed at the end with ``k8py killall``, and the fixture checks that
no mount of the cluster is left."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from tests.e2e.conftest import Server, wait
from tests.helpers.realnode import IMAGE, SHARED_NODE, SharedRealNode, namespace_for

NODE = SHARED_NODE

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        yield s


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    return namespace_for(cluster, request, "v")


def apply(s: Server, ns: str, obj: dict[str, Any]) -> None:
    s.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(obj))


def pod(name: str, script: str, volumes: list[dict[str, Any]], mounts: list[dict[str, Any]], *,
        restart: str = "Always", env: list[dict[str, Any]] | None = None, labels: dict[str, str] | None = None,
        resources: dict[str, Any] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                         "command": ["sh", "-c", script], "volumeMounts": mounts}
    if env:
        c["env"] = env
    if resources:
        c["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 1, "containers": [c],
                     "volumes": volumes}}


def get(s: Server, ns: str, name: str) -> Any:
    p = s.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def logs(s: Server, ns: str, name: str) -> str:
    p = s.kubectl("logs", name, "-n", ns, check=False)
    return p.stdout if p.returncode == 0 else ""


def output_with(s: Server, ns: str, name: str, text: str) -> str:
    """The pod's log once it holds ``text`` (else "")."""
    out = logs(s, ns, name)
    return out if text in out else ""


def running(s: Server, ns: str, name: str) -> bool:
    return ((get(s, ns, name) or {}).get("status") or {}).get("phase") == "Running"


def volume_dir(s: Server, uid: str) -> str:
    return os.path.join(str(s.data_dir), "agent", "pods", uid)


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(path)]


def delete_and_check_torn_down(s: Server, ns: str, name: str) -> None:
    uid = get(s, ns, name)["metadata"]["uid"]
    s.kubectl("delete", "pod", name, "-n", ns, "--wait=true", timeout=90)
    d = volume_dir(s, uid)
    wait(lambda: not os.path.exists(d), 30, f"the volumes of {name} removed")
    assert mounts_under(d) == [], "mounts left"


def test_configmap_change_reaches_the_mounted_file_without_a_restart(cluster: Server, ns: str) -> None:
    s = cluster
    s.kubectl("create", "configmap", "app", "-n", ns, "--from-literal=greeting=one")
    script = "while true; do echo \"full=$(cat /cfg/greeting) sub=$(cat /sub/greeting)\"; sleep 1; done"
    apply(s, ns, pod("watcher", script, [{"name": "cfg", "configMap": {"name": "app"}}],
                     [{"name": "cfg", "mountPath": "/cfg"},
                      {"name": "cfg", "mountPath": "/sub/greeting", "subPath": "greeting"}]))
    wait(lambda: "full=one sub=one" in logs(s, ns, "watcher"), 90, "the pod to print the ConfigMap")
    p = get(s, ns, "watcher")
    d = os.path.join(volume_dir(s, p["metadata"]["uid"]), "volumes", "kubernetes.io~configmap", "cfg")
    assert os.readlink(os.path.join(d, "greeting")) == "..data/greeting"
    before = os.readlink(os.path.join(d, "..data"))
    t0 = time.monotonic()
    s.kubectl("patch", "configmap", "app", "-n", ns, "-p", json.dumps({"data": {"greeting": "two"}}))
    wait(lambda: "full=two sub=one" in logs(s, ns, "watcher"), 60, "the change in the mounted file")
    took = time.monotonic() - t0
    assert took < 60
    assert os.readlink(os.path.join(d, "..data")) != before, "the ..data link was swapped"
    status = get(s, ns, "watcher")["status"]
    assert status["containerStatuses"][0]["restartCount"] == 0
    assert "full=two sub=two" not in logs(s, ns, "watcher"), "a subPath mount does not follow updates"
    print(f"configmap change visible in the container after {took:.1f}s")
    delete_and_check_torn_down(s, ns, "watcher")


def test_secret_env_and_volume_modes(cluster: Server, ns: str) -> None:
    s = cluster
    s.kubectl("create", "secret", "generic", "creds", "-n", ns, "--from-literal=user=admin",
              "--from-literal=password=s3cr3t")
    script = ("echo \"env=$PASSWORD\"; echo \"file=$(cat /creds/user)\"; ls -lL /creds/user /creds/pw; "
              "cat /proc/mounts; sleep 3600")
    apply(s, ns, pod("reader", script,
                     [{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400,
                                                   "items": [{"key": "user", "path": "user"},
                                                             {"key": "password", "path": "pw", "mode": 0o440}]}}],
                     [{"name": "creds", "mountPath": "/creds"}],
                     env=[{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]))
    out = wait(lambda: output_with(s, ns, "reader", "/creds"), 90, "the pod's output")
    assert "env=s3cr3t" in out and "file=admin" in out
    modes = {line.split()[-1]: line.split()[0] for line in out.splitlines() if line.startswith("-")}
    assert modes == {"/creds/user": "-r--------", "/creds/pw": "-r--r-----"}
    creds = next(line.split() for line in out.splitlines() if len(line.split()) > 2 and line.split()[1] == "/creds")
    assert creds[2] == "tmpfs" and creds[3].startswith("ro"), "a secret volume is a read-only tmpfs"
    uid = get(s, ns, "reader")["metadata"]["uid"]
    host = os.path.join(volume_dir(s, uid), "volumes", "kubernetes.io~secret", "creds")
    assert host in mounts_under(host)
    delete_and_check_torn_down(s, ns, "reader")


def _events(s: Server, ns: str, name: str) -> list[dict[str, Any]]:
    p = s.kubectl("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}", "-o", "json")
    return list(json.loads(p.stdout)["items"])


def test_missing_configmap_waits_with_failed_mount_then_starts(cluster: Server, ns: str) -> None:
    s = cluster
    apply(s, ns, pod("early", "cat /cfg/k; sleep 3600", [{"name": "cfg", "configMap": {"name": "late"}}],
                     [{"name": "cfg", "mountPath": "/cfg"}]))
    msg = 'MountVolume.SetUp failed for volume "cfg" : configmap "late" not found'
    wait(lambda: any(e["reason"] == "FailedMount" and e["message"] == msg and e["type"] == "Warning"
                     for e in _events(s, ns, "early")), 60, "the FailedMount event")
    st = get(s, ns, "early")["status"]
    assert st["phase"] == "Pending"
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    t0 = time.monotonic()
    s.kubectl("create", "configmap", "late", "-n", ns, "--from-literal=k=arrived")
    wait(lambda: running(s, ns, "early"), 30, "the pod to start once the ConfigMap exists")
    print(f"pod started {time.monotonic() - t0:.1f}s after its ConfigMap was created")
    wait(lambda: "arrived" in logs(s, ns, "early"), 30, "the pod to read the ConfigMap")
    s.kubectl("delete", "pod", "early", "-n", ns, "--wait=true", timeout=90)


def test_downward_api_labels_follow_the_pod(cluster: Server, ns: str) -> None:
    s = cluster
    script = "while true; do echo \"labels=$(echo $(cat /info/labels)) name=$(cat /info/name)\"; sleep 1; done"
    apply(s, ns, pod("labelled", script,
                     [{"name": "info", "downwardAPI": {"items": [
                         {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                         {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}],
                     [{"name": "info", "mountPath": "/info"}], labels={"tier": "web"}))
    wait(lambda: 'labels=tier="web" name=labelled' in logs(s, ns, "labelled"), 90, "the labels file")
    s.kubectl("label", "pod", "labelled", "-n", ns, "stage=prod")
    wait(lambda: 'labels=stage="prod" tier="web" name=labelled' in logs(s, ns, "labelled"), 60, "the new label")
    s.kubectl("delete", "pod", "labelled", "-n", ns, "--wait=true", timeout=90)


def test_memory_empty_dir_is_a_tmpfs_of_its_size_limit_released_when_the_pod_ends(cluster: Server, ns: str) -> None:
    s = cluster
    apply(s, ns, pod("ram", "cat /proc/mounts; sleep 2",
                     [{"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
                     [{"name": "scratch", "mountPath": "/scratch"}], restart="Never"))
    out = wait(lambda: output_with(s, ns, "ram", "/scratch"), 90, "the pod's mounts")
    line = next(x.split() for x in out.splitlines() if len(x.split()) > 3 and x.split()[1] == "/scratch")
    assert line[2] == "tmpfs" and "size=16384k" in line[3] and line[3].startswith("rw")
    uid = get(s, ns, "ram")["metadata"]["uid"]
    wait(lambda: get(s, ns, "ram")["status"]["phase"] == "Succeeded", 60, "the pod to finish")
    wait(lambda: not mounts_under(volume_dir(s, uid)), 30, "the finished pod's tmpfs unmounted")
    delete_and_check_torn_down(s, ns, "ram")


def test_empty_dir_over_its_size_limit_is_evicted(cluster: Server, ns: str) -> None:
    s = cluster
    apply(s, ns, pod("hog", "dd if=/dev/zero of=/data/fill bs=1024 count=2048; sleep 3600",
                     [{"name": "data", "emptyDir": {"sizeLimit": "1Mi"}}], [{"name": "data", "mountPath": "/data"}]))
    wait(lambda: ((get(s, ns, "hog") or {}).get("status") or {}).get("reason") == "Evicted", 90, "the eviction")
    st = get(s, ns, "hog")["status"]
    assert st["phase"] == "Failed"
    assert st["message"] == 'Usage of EmptyDir volume "data" exceeds the limit "1Mi". '
    assert any(e["reason"] == "Evicted" for e in _events(s, ns, "hog"))
    uid = get(s, ns, "hog")["metadata"]["uid"]
    wait(lambda: not os.path.exists(os.path.join(volume_dir(s, uid), "volumes")), 30, "the evicted pod's emptyDir removed")
    delete_and_check_torn_down(s, ns, "hog")


def test_fs_group_lets_a_non_root_user_read_a_secret(cluster: Server, ns: str) -> None:
    s = cluster
    s.kubectl("create", "secret", "generic", "key", "-n", ns, "--from-literal=tls.key=private")
    p = pod("grouped", "id; ls -lnL /key/tls.key; cat /key/tls.key; echo; sleep 3600",
            [{"name": "key", "secret": {"secretName": "key", "defaultMode": 0o400}}],
            [{"name": "key", "mountPath": "/key"}])
    p["spec"]["securityContext"] = {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000}
    apply(s, ns, p)
    out = wait(lambda: output_with(s, ns, "grouped", "tls.key"), 90, "the pod's output")
    assert "uid=1000" in out and "2000" in out.splitlines()[0], out
    listing = next(line.split() for line in out.splitlines() if line.startswith("-"))
    assert listing[0] == "-r--r-----" and listing[3] == "2000", "fsGroup owns the file, readable by the group"
    assert "private" in out
    s.kubectl("delete", "pod", "grouped", "-n", ns, "--wait=true", timeout=90)


def test_host_path_types(cluster: Server, ns: str, tmp_path: Any) -> None:
    s = cluster
    made = tmp_path / "made"
    apply(s, ns, pod("writer", "echo hi > /host/out; sleep 3600",
                     [{"name": "host", "hostPath": {"path": str(made), "type": "DirectoryOrCreate"}}],
                     [{"name": "host", "mountPath": "/host"}]))
    wait(lambda: (made / "out").exists() and (made / "out").read_text() == "hi\n", 90, "the file on the host")
    assert oct(os.stat(made).st_mode & 0o777) == "0o755"
    apply(s, ns, pod("wrong", "sleep 3600", [{"name": "host", "hostPath": {"path": str(made), "type": "File"}}],
                     [{"name": "host", "mountPath": "/host"}]))
    msg = f'MountVolume.SetUp failed for volume "host" : hostPath type check failed: {made} is not a file, it\'s a Directory'
    wait(lambda: any(e["reason"] == "FailedMount" and e["message"] == msg for e in _events(s, ns, "wrong")), 60,
         "the FailedMount event")
    assert get(s, ns, "wrong")["status"]["phase"] == "Pending"
    s.kubectl("delete", "pod", "writer", "wrong", "-n", ns, "--wait=true", timeout=90)


def test_projected_volume_and_a_service_account_token(cluster: Server, ns: str) -> None:
    s = cluster
    s.kubectl("create", "configmap", "conf", "-n", ns, "--from-literal=mode=fast")
    s.kubectl("create", "secret", "generic", "pw", "-n", ns, "--from-literal=pw=hunter2")
    sources = [{"configMap": {"name": "conf"}}, {"secret": {"name": "pw", "items": [{"key": "pw", "path": "auth/pw"}]}},
               {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]
    apply(s, ns, pod("all-in-one", "echo \"$(cat /all/mode) $(cat /all/auth/pw) $(cat /all/ns)\"; sleep 3600",
                     [{"name": "all", "projected": {"sources": sources}}], [{"name": "all", "mountPath": "/all"}]))
    wait(lambda: f"fast hunter2 {ns}" in logs(s, ns, "all-in-one"), 90, "the projected files")
    # a token for another audience, bound to the pod (docs/service-accounts.md)
    apply(s, ns, pod("tokened", "cat /tok/token; echo; sleep 3600", [{"name": "tok", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "audience": "vault", "expirationSeconds": 3600}}]}}],
        [{"name": "tok", "mountPath": "/tok"}]))
    token = wait(lambda: logs(s, ns, "tokened").strip(), 90, "the token file")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == ["vault"] and claims["exp"] - claims["iat"] == 3600
    assert claims["kubernetes.io"]["pod"]["uid"] == get(s, ns, "tokened")["metadata"]["uid"]
    # both are left running: `k8py killall` at the end must unmount the projected tmpfs (the
    # fixture checks that no mount of the cluster is left)
