"""PersistentVolumes on a real node (runc containers), driven with kubectl: a static hostPath volume
and a local one bind their claims (kube's annotations, phases, capacity); a pod writes into the
claim and a later pod reads it back (subPath and a read-only claim too); a claim deleted while a pod
uses it stays Terminating until the pod is gone, then its Retain volume is Released with the data
kept; an ephemeral volume's claim is made for its pod, bound, and deleted with it.

The volumes are directories under the test's temporary directory; everything else is removed at
the end with ``k8py killall`` (the fixture checks that nothing of the cluster is left)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Server, wait
from tests.helpers.realnode import IMAGE, SHARED_NODE, SharedRealNode, namespace_for

NODE = SHARED_NODE

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pv")


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        yield s


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    return namespace_for(cluster, request, "pv")


def apply(s: Server, obj: dict[str, Any], ns: str | None = None) -> None:
    s.kubectl("apply", *(("-n", ns) if ns else ()), "-f", "-", input=json.dumps(obj))


def volume(name: str, path: Path, *, kind: str = "hostPath", size: str = "1Gi") -> dict[str, Any]:
    spec: dict[str, Any] = {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                            kind: {"path": str(path)}}
    if kind == "local":
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE]}]}]}}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


def claim_spec(size: str = "1Gi") -> dict[str, Any]:
    return {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, "storageClassName": ""}


def claim(name: str, size: str = "1Gi") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": claim_spec(size)}


def pod(name: str, script: str, volumes: list[dict[str, Any]], mounts: list[dict[str, Any]], *,
        restart: str = "Never") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", script], "volumeMounts": mounts}],
                     "volumes": volumes}}


def get(s: Server, kind: str, name: str, ns: str | None = None) -> Any:
    p = s.kubectl("get", kind, name, *(("-n", ns) if ns else ()), "-o", "json", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def phase(s: Server, kind: str, name: str, ns: str | None = None) -> str:
    return str(((get(s, kind, name, ns) or {}).get("status") or {}).get("phase") or "")


def finished_with(s: Server, ns: str, name: str) -> str:
    """The log of the pod once it Succeeded (else "")."""
    if phase(s, "pod", name, ns) != "Succeeded":
        return ""
    return s.kubectl("logs", name, "-n", ns).stdout


def claim_vol(name: str, claim_name: str, read_only: bool = False) -> dict[str, Any]:
    src: dict[str, Any] = {"claimName": claim_name}
    if read_only:
        src["readOnly"] = True
    return {"name": name, "persistentVolumeClaim": src}


def test_static_volumes_bind_and_keep_data_across_pods(cluster: Server, ns: str, tmp: Path) -> None:
    s = cluster
    disk = tmp / "disk-host"
    disk.mkdir()
    local = tmp / "disk-local"
    local.mkdir()
    apply(s, volume("pv-host", disk, size="2Gi"))
    apply(s, volume("pv-local", local, kind="local", size="5Gi"))
    apply(s, claim("data", "1Gi"), ns)
    apply(s, claim("big", "4Gi"), ns)
    wait(lambda: phase(s, "pvc", "data", ns) == "Bound" and phase(s, "pvc", "big", ns) == "Bound", 60,
         "both claims Bound")
    data, big = get(s, "pvc", "data", ns), get(s, "pvc", "big", ns)
    # the smallest volume that fits each claim
    assert data["spec"]["volumeName"] == "pv-host" and big["spec"]["volumeName"] == "pv-local"
    assert data["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert data["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert data["status"]["capacity"] == {"storage": "2Gi"} and data["status"]["accessModes"] == ["ReadWriteOnce"]
    assert "kubernetes.io/pvc-protection" in data["metadata"]["finalizers"]
    pv = get(s, "pv", "pv-host")
    assert pv["status"]["phase"] == "Bound" and pv["spec"]["claimRef"]["name"] == "data"
    assert pv["spec"]["claimRef"]["uid"] == data["metadata"]["uid"]
    assert "kubernetes.io/pv-protection" in pv["metadata"]["finalizers"]
    table = s.kubectl("get", "pvc", "-n", ns).stdout
    assert any(line.split()[:4] == ["data", "Bound", "pv-host", "2Gi"] for line in table.splitlines()), table

    apply(s, pod("writer", "echo hello > /data/greeting && echo sub > /sub/inside && echo big > /big/f && echo ok",
                 [claim_vol("d", "data"), claim_vol("b", "big")],
                 [{"name": "d", "mountPath": "/data"}, {"name": "d", "mountPath": "/sub", "subPath": "nested"},
                  {"name": "b", "mountPath": "/big"}]), ns)
    assert "ok" in wait(lambda: finished_with(s, ns, "writer"), 90, "the writer pod done")
    assert (disk / "greeting").read_text() == "hello\n"
    assert (disk / "nested" / "inside").read_text() == "sub\n"
    assert (local / "f").read_text() == "big\n"
    s.kubectl("delete", "pod", "writer", "-n", ns)

    # a new pod sees what the first one wrote; a read-only claim cannot be written
    apply(s, pod("reader", "cat /data/greeting; (echo x > /data/nope) 2>/dev/null || echo refused",
                 [claim_vol("d", "data", read_only=True)], [{"name": "d", "mountPath": "/data"}]), ns)
    out = wait(lambda: finished_with(s, ns, "reader"), 90, "the reader pod done")
    assert out.split() == ["hello", "refused"], out
    assert not (disk / "nope").exists()
    s.kubectl("delete", "pod", "reader", "-n", ns)


def test_claim_in_use_stays_until_its_pod_is_gone_and_retain_keeps_the_data(cluster: Server, ns: str,
                                                                              tmp: Path) -> None:
    s = cluster
    disk = tmp / "disk-retain"
    disk.mkdir()
    apply(s, volume("pv-retain", disk))
    apply(s, claim("keep"), ns)
    wait(lambda: phase(s, "pvc", "keep", ns) == "Bound", 60, "claim Bound")
    apply(s, pod("user", "echo kept > /data/file && sleep 3600", [claim_vol("d", "keep")],
                 [{"name": "d", "mountPath": "/data"}], restart="Always"), ns)
    wait(lambda: phase(s, "pod", "user", ns) == "Running" and (disk / "file").exists(), 90, "the pod running")
    s.kubectl("delete", "pvc", "keep", "-n", ns, "--wait=false")

    def terminating() -> bool:
        table = s.kubectl("get", "pvc", "keep", "-n", ns, "--no-headers", check=False).stdout
        return table.split()[1:2] == ["Terminating"]

    wait(terminating, 30, "kubectl showing the claim Terminating")
    # the pod keeps running with its claim; the volume stays Bound
    assert phase(s, "pod", "user", ns) == "Running"
    assert get(s, "pvc", "keep", ns)["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert phase(s, "pv", "pv-retain") == "Bound"
    s.kubectl("delete", "pod", "user", "-n", ns, "--timeout=60s")
    wait(lambda: get(s, "pvc", "keep", ns) is None, 60, "the claim deleted once its pod is gone")
    wait(lambda: phase(s, "pv", "pv-retain") == "Released", 60, "the volume Released")
    pv = get(s, "pv", "pv-retain")
    assert pv["spec"]["claimRef"]["name"] == "keep"  # Retain: still pointing at its old claim
    assert (disk / "file").read_text() == "kept\n"
    # a new claim does not get a Released volume
    apply(s, claim("again"), ns)
    wait(lambda: any(e["reason"] == "FailedBinding" and e["involvedObject"]["name"] == "again"
                     for e in json.loads(s.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]),
         30, "FailedBinding on the new claim")
    assert phase(s, "pvc", "again", ns) == "Pending"
    ev = next(e for e in json.loads(s.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
              if e["reason"] == "FailedBinding" and e["involvedObject"]["name"] == "again")
    assert ev["message"] == "no persistent volumes available for this claim and no storage class is set"
    assert ev["source"]["component"] == "persistentvolume-controller"
    s.kubectl("delete", "pvc", "again", "-n", ns)
    s.kubectl("delete", "pv", "pv-retain")
    wait(lambda: get(s, "pv", "pv-retain") is None, 30, "the released volume deleted (not Bound: unprotected)")


def test_ephemeral_volume_claim_lives_and_dies_with_its_pod(cluster: Server, ns: str, tmp: Path) -> None:
    s = cluster
    disk = tmp / "disk-ephemeral"
    disk.mkdir()
    apply(s, volume("pv-ephemeral", disk))
    eph = {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"metadata": {"labels": {"app": "eph"}},
                                                                    "spec": claim_spec()}}}
    apply(s, pod("eph", "echo made-here > /scratch/f && sleep 3600", [eph], [{"name": "scratch", "mountPath": "/scratch"}],
                 restart="Always"), ns)
    wait(lambda: phase(s, "pod", "eph", ns) == "Running", 90, "the pod with an ephemeral volume running")
    claim_obj = get(s, "pvc", "eph-scratch", ns)
    owner = claim_obj["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Pod", "eph", True)
    assert owner["uid"] == get(s, "pod", "eph", ns)["metadata"]["uid"]
    assert claim_obj["metadata"]["labels"] == {"app": "eph"}
    assert claim_obj["status"]["phase"] == "Bound" and claim_obj["spec"]["volumeName"] == "pv-ephemeral"
    wait(lambda: (disk / "f").exists(), 30, "the pod's file in the volume")
    s.kubectl("delete", "pod", "eph", "-n", ns, "--timeout=60s")
    wait(lambda: get(s, "pvc", "eph-scratch", ns) is None, 60, "the ephemeral claim deleted with its pod")
    wait(lambda: phase(s, "pv", "pv-ephemeral") == "Released", 60, "its volume Released")
    s.kubectl("delete", "pv", "pv-ephemeral")
