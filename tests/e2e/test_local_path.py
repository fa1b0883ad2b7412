"""k3s's local-path storage on k8py, with real pods (runc) and kubectl: a claim without a class
gets the default class ``local-path``, waits for its first consumer, is provisioned on the node
the scheduler chose (a directory under ``<data-dir>/storage`` and a hostPath PV with the node's
affinity), its data outlives the pod that wrote it, and deleting the claim removes the volume and
its directory; ``ephemeral`` volumes of that class live and die with their pod; a pod whose
bound PV is on another node stays Pending with kube-scheduler's message.

Everything is removed at the end (``k8py killall``; the fixture checks nothing is left)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Server, wait
from tests.helpers.realnode import IMAGE, SHARED_NODE, SharedRealNode, namespace_for

NODE = SHARED_NODE
PROVISIONER_USER = "system:k8py-local-path-provisioner"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        yield s


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    return namespace_for(cluster, request, "lp")


def apply(s: Server, ns: str, manifest: dict[str, Any]) -> None:
    s.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def get(s: Server, kind: str, name: str, ns: str | None = None) -> Any:
    p = s.kubectl("get", kind, name, *(("-n", ns) if ns else ()), "-o", "json", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def claim(name: str, cls: str | None = None, **spec: Any) -> dict[str, Any]:
    sp: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}, **spec}
    if cls is not None:
        sp["storageClassName"] = cls
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": sp}


def pod(name: str, command: str, volume: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", command],
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data", **volume}]}}


def events(s: Server, ns: str, name: str) -> list[dict[str, Any]]:
    items = s.kjson("get", "events", "-n", ns)["items"]
    return [e for e in items if e["involvedObject"].get("name") == name]


def finished(s: Server, name: str, ns: str) -> str:
    p = get(s, "pod", name, ns)
    return str((p or {}).get("status", {}).get("phase", ""))


def run_to_completion(s: Server, ns: str, manifest: dict[str, Any]) -> None:
    name = manifest["metadata"]["name"]
    apply(s, ns, manifest)
    wait(lambda: finished(s, name, ns) in ("Succeeded", "Failed"), 120, f"the pod {name} to finish")
    assert finished(s, name, ns) == "Succeeded", s.kubectl("describe", "pod", name, "-n", ns).stdout


def test_local_path_is_the_default_class_and_only_the_provisioner_may_make_volumes(cluster: Server) -> None:
    s = cluster
    sc = s.kjson("get", "storageclass", "local-path")
    assert sc["provisioner"] == "rancher.io/local-path"
    assert (sc["volumeBindingMode"], sc["reclaimPolicy"]) == ("WaitForFirstConsumer", "Delete")
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    out = s.kubectl("get", "storageclass").stdout
    assert "local-path (default)" in out and "rancher.io/local-path" in out
    # the provisioner's identity: volumes and its class, nothing else
    def can(*args: str) -> str:
        return s.kubectl("auth", "can-i", "--as", PROVISIONER_USER, *args, check=False).stdout.strip()
    assert can("create", "persistentvolumes") == "yes"
    assert can("delete", "persistentvolumes") == "yes"
    assert can("watch", "persistentvolumeclaims", "-A") == "yes"
    assert can("update", "persistentvolumeclaims", "-A") == "no"
    assert can("create", "pods", "-A") == "no"
    assert can("get", "secrets", "-A") == "no"


def test_claim_is_provisioned_for_its_first_consumer_and_deleted_with_its_directory(cluster: Server,
                                                                                     ns: str) -> None:
    s = cluster
    apply(s, ns, claim("data"))
    pvc = get(s, "pvc", "data", ns)
    assert pvc["spec"]["storageClassName"] == "local-path"  # the default class, given at admission
    wait(lambda: any(e["reason"] == "WaitForFirstConsumer" for e in events(s, ns, "data")), 30,
         "the WaitForFirstConsumer event")
    ev = next(e for e in events(s, ns, "data") if e["reason"] == "WaitForFirstConsumer")
    assert ev["message"] == "waiting for first consumer to be created before binding"
    assert get(s, "pvc", "data", ns)["status"]["phase"] == "Pending"

    run_to_completion(s, ns, pod("writer", "echo written-by-writer > /data/hello", {
        "persistentVolumeClaim": {"claimName": "data"}}))
    pvc = get(s, "pvc", "data", ns)
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == NODE
    pv_name = pvc["spec"]["volumeName"]
    assert pv_name == f"pvc-{pvc['metadata']['uid']}"
    pv = get(s, "pv", pv_name)
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "rancher.io/local-path"
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"] == [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE]}]}]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["capacity"] == {"storage": "64Mi"}
    assert pv["spec"]["claimRef"]["name"] == "data" and pv["status"]["phase"] == "Bound"
    path = Path(pv["spec"]["hostPath"]["path"])
    assert path == s.data_dir / "storage" / f"{pv_name}_{ns}_data"
    assert pv["spec"]["hostPath"]["type"] == "DirectoryOrCreate"
    assert (path / "hello").read_text() == "written-by-writer\n"
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o777)
    reasons = [e["reason"] for e in events(s, ns, "data")]
    assert "Provisioning" in reasons and "ProvisioningSucceeded" in reasons, reasons
    ok = next(e for e in events(s, ns, "data") if e["reason"] == "ProvisioningSucceeded")
    assert ok["message"] == f"Successfully provisioned volume {pv_name}"

    # a second pod reading the same claim sees the file
    run_to_completion(s, ns, pod("reader", "cat /data/hello", {"persistentVolumeClaim": {"claimName": "data"}}))
    assert s.kubectl("logs", "reader", "-n", ns).stdout == "written-by-writer\n"

    # the claim goes, then the volume and its directory
    s.kubectl("delete", "pod", "writer", "reader", "-n", ns, "--wait=true", timeout=120)
    s.kubectl("delete", "pvc", "data", "-n", ns, "--wait=true", timeout=120)
    wait(lambda: get(s, "pv", pv_name) is None, 60, "the provisioned PV to be deleted")
    assert not path.exists()


def test_ephemeral_volume_lives_and_dies_with_its_pod(cluster: Server, ns: str) -> None:
    s = cluster
    template = {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                                                 "resources": {"requests": {"storage": "16Mi"}}}}}
    run_to_completion(s, ns, pod("scratch", "echo tmp > /data/f && test -s /data/f", {"ephemeral": template}))
    pvc = get(s, "pvc", "scratch-data", ns)
    assert pvc["status"]["phase"] == "Bound"
    owner = pvc["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Pod", "scratch", True)
    pv_name = pvc["spec"]["volumeName"]
    path = Path(get(s, "pv", pv_name)["spec"]["hostPath"]["path"])
    assert (path / "f").read_text() == "tmp\n"
    s.kubectl("delete", "pod", "scratch", "-n", ns, "--wait=true", timeout=120)
    wait(lambda: get(s, "pvc", "scratch-data", ns) is None, 60, "the ephemeral claim to go with its pod")
    wait(lambda: get(s, "pv", pv_name) is None, 60, "its volume to be deleted")
    assert not path.exists()


def test_pod_whose_volume_is_on_another_node_stays_pending(cluster: Server, ns: str) -> None:
    s = cluster
    pv_name = f"far-{ns}"[:60]
    s.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
        "spec": {"capacity": {"storage": "64Mi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": "/tmp/k8py-e2e-far"},
                 "claimRef": {"namespace": ns, "name": "far"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": ["some-other-node"]}]}]}}}}))
    try:
        apply(s, ns, claim("far", "", volumeName=pv_name))
        wait(lambda: (get(s, "pvc", "far", ns) or {}).get("status", {}).get("phase") == "Bound", 30,
             "the pre-bound claim Bound")
        apply(s, ns, pod("stuck", "true", {"persistentVolumeClaim": {"claimName": "far"}}))
        wait(lambda: any(e["reason"] == "FailedScheduling" for e in events(s, ns, "stuck")), 30,
             "a FailedScheduling event")
        ev = next(e for e in events(s, ns, "stuck") if e["reason"] == "FailedScheduling")
        assert ev["message"] == ("0/1 nodes are available: 1 node(s) had volume node affinity conflict. "
                                 "preemption: 0/1 nodes are available: 1 Preemption is not helpful for "
                                 "scheduling..")
        p = get(s, "pod", "stuck", ns)
        assert p["status"]["phase"] == "Pending" and not p["spec"].get("nodeName")
        assert not os.path.exists("/tmp/k8py-e2e-far")  # nothing was mounted anywhere
    finally:
        s.kubectl("delete", "pod", "stuck", "-n", ns, "--wait=true", "--ignore-not-found", timeout=120)
        s.kubectl("delete", "pvc", "far", "-n", ns, "--wait=true", "--ignore-not-found", timeout=120)
        s.kubectl("delete", "pv", pv_name, "--wait=true", "--ignore-not-found", timeout=120)


def test_statefulset_pods_each_get_their_own_local_path_volume(cluster: Server, ns: str) -> None:
    s = cluster
    apply(s, ns, {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
                  "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
                           "template": {"metadata": {"labels": {"app": "db"}},
                                        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                                            "name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                            "command": ["sh", "-c", "hostname > /data/who; exec sleep 3600"],
                                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                           "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                               "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Mi"}}}}]}})
    s.kubectl("rollout", "status", "statefulset/db", "-n", ns, "--timeout=120s", timeout=150)
    paths = {}
    for i in range(2):
        pvc = get(s, "pvc", f"data-db-{i}", ns)
        assert pvc["status"]["phase"] == "Bound" and pvc["spec"]["storageClassName"] == "local-path"
        pv = get(s, "pv", pvc["spec"]["volumeName"])
        paths[i] = Path(pv["spec"]["hostPath"]["path"])
        wait(lambda i=i: (paths[i] / "who").exists(), 30, f"db-{i}'s file")
        assert (paths[i] / "who").read_text() == f"db-{i}\n"
    assert paths[0] != paths[1]
    # the pods go; the claims stay (the StatefulSet's default retention), and so do the volumes
    s.kubectl("delete", "statefulset", "db", "-n", ns, "--wait=true", timeout=120)
    wait(lambda: not s.kjson("get", "pods", "-n", ns, "-l", "app=db")["items"], 60, "the StatefulSet's pods gone")
    assert all(p.exists() for p in paths.values())
    s.kubectl("delete", "pvc", "data-db-0", "data-db-1", "-n", ns, "--wait=true", timeout=120)
    wait(lambda: not any(p.exists() for p in paths.values()), 60, "both volumes' directories removed")
