"""The local-path provisioner: its pure decisions, and its loop against the fake API with a
temporary data directory (directories made and removed for real)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from k8py.api.volume import ANN_DYNAMICALLY_PROVISIONED, ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER
from k8py.client.fake import FakeClient
from k8py.kubelet.localpath import (
    CLASS_NAME,
    PROVISIONER,
    LocalPathProvisioner,
    build_volume,
    default_storage_class,
    inside,
    provision_problem,
    should_delete,
    should_provision,
    volume_dir,
)

Obj = dict[str, Any]
PVC = ("v1", "PersistentVolumeClaim")
PV = ("v1", "PersistentVolume")
SC = ("storage.k8s.io/v1", "StorageClass")
EVENT = ("v1", "Event")


def claim(name: str = "data", node: str | None = "n1", *, provisioner: str = PROVISIONER, **spec: Any) -> Obj:
    ann = {ANN_STORAGE_PROVISIONER: provisioner}
    if node:
        ann[ANN_SELECTED_NODE] = node
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default", "uid": f"u-{name}", "annotations": ann},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}},
                     "storageClassName": CLASS_NAME, **spec},
            "status": {"phase": "Pending"}}


def test_the_default_class_is_k3s_local_path() -> None:
    sc = default_storage_class()
    assert sc["metadata"] == {"name": "local-path",
                              "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}
    assert (sc["provisioner"], sc["volumeBindingMode"], sc["reclaimPolicy"]) == \
        ("rancher.io/local-path", "WaitForFirstConsumer", "Delete")


def test_only_claims_selected_for_this_node_and_provisioner() -> None:
    assert should_provision(claim(), "n1")
    assert not should_provision(claim(), "n2")
    assert not should_provision(claim(node=None), "n1")  # the scheduler has not chosen yet
    assert not should_provision(claim(provisioner="example.com/other"), "n1")
    assert not should_provision(claim(volumeName="pv-1"), "n1")


def test_what_local_path_refuses() -> None:
    sc = default_storage_class()
    assert provision_problem(claim(), sc) is None
    assert provision_problem(claim(accessModes=["ReadWriteOncePod"]), sc) is None
    assert provision_problem(claim(accessModes=["ReadWriteMany"]), sc) == \
        "NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes"
    assert provision_problem(claim(selector={"matchLabels": {"a": "b"}}), sc) == \
        "claim.Spec.Selector is not supported"
    assert provision_problem(claim(volumeMode="Block"), sc) == \
        "rancher.io/local-path does not support block volume provisioning"
    assert provision_problem(claim(), None) == 'storageClass "local-path" not found'


def test_the_volume_it_builds() -> None:
    sc = {**default_storage_class(), "reclaimPolicy": "Retain"}
    pv = build_volume(claim(), sc, "n1", "/var/lib/k8py/storage/pvc-u-data_default_data")
    assert pv["metadata"] == {"name": "pvc-u-data", "annotations": {ANN_DYNAMICALLY_PROVISIONED: PROVISIONER}}
    assert pv["spec"] == {
        "capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "local-path", "volumeMode": "Filesystem",
        "hostPath": {"path": "/var/lib/k8py/storage/pvc-u-data_default_data", "type": "DirectoryOrCreate"},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}},
        "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "data", "uid": "u-data",
                     "apiVersion": "v1"}}
    assert volume_dir("/s", "pvc-1", "ns", "c") == "/s/pvc-1_ns_c"


def test_deletes_only_its_released_delete_volumes_on_this_node() -> None:
    pv = build_volume(claim(), default_storage_class(), "n1", "/s/x")
    pv["status"] = {"phase": "Released"}
    assert should_delete(pv, "n1")
    assert not should_delete(pv, "n2")
    assert not should_delete({**pv, "status": {"phase": "Bound"}}, "n1")
    assert not should_delete({**pv, "spec": {**pv["spec"], "persistentVolumeReclaimPolicy": "Retain"}}, "n1")
    assert not should_delete({**pv, "metadata": {"name": "x", "annotations": {}}}, "n1")  # not ours
    assert inside("/s", "/s/x") and not inside("/s", "/s") and not inside("/s", "/etc") and \
        not inside("/s", "/s/../etc") and not inside("/s", "/s/a/b")


async def until(cond: Callable[[], Any], what: str, timeout: float = 5.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def running(tmp_path: Path) -> Any:
    api = FakeClient()
    prov = LocalPathProvisioner(api, "n1", str(tmp_path))
    stop = asyncio.Event()
    task = asyncio.create_task(prov.run(stop))
    await asyncio.wait_for(prov.ready.wait(), 5)
    yield api, prov, tmp_path
    stop.set()
    await asyncio.wait_for(task, 10)


def reasons(api: FakeClient, name: str) -> list[str]:
    return [e["reason"] for e in api.all(EVENT) if e["involvedObject"].get("name") == name]


async def test_provisions_then_deletes(running: Any) -> None:
    api, _, tmp = running
    assert api.get_obj(SC, CLASS_NAME) is not None  # made at start
    api.seed(claim())
    api.seed(claim("elsewhere", "n2"))
    pv = await until(lambda: api.get_obj(PV, "pvc-u-data"), "the volume")
    path = pv["spec"]["hostPath"]["path"]
    assert path == str(tmp / "storage" / "pvc-u-data_default_data")
    assert os.path.isdir(path) and os.stat(path).st_mode & 0o777 == 0o777
    await until(lambda: "ProvisioningSucceeded" in reasons(api, "data"), "the events")
    assert reasons(api, "data")[:2] == ["Provisioning", "ProvisioningSucceeded"]
    assert api.get_obj(PV, "pvc-u-elsewhere") is None  # another node's claim
    # the claim is gone and the PV controller released the volume: directory, then object
    Path(path, "file").write_text("data")
    pv["status"] = {"phase": "Released"}
    api.put(PV, pv)
    await until(lambda: api.get_obj(PV, "pvc-u-data") is None, "the PV to be deleted")
    assert not os.path.exists(path)


async def test_refusals_are_events_and_a_user_class_is_kept(tmp_path: Path) -> None:
    api = FakeClient()
    mine = {**default_storage_class(), "reclaimPolicy": "Retain"}
    mine["metadata"] = {"name": CLASS_NAME, "annotations": {}}
    api.seed(mine)
    prov = LocalPathProvisioner(api, "n1", str(tmp_path))
    stop = asyncio.Event()
    task = asyncio.create_task(prov.run(stop))
    try:
        await asyncio.wait_for(prov.ready.wait(), 5)
        stored = api.get_obj(SC, CLASS_NAME)
        assert stored is not None and stored["reclaimPolicy"] == "Retain" and stored["metadata"]["annotations"] == {}
        api.seed(claim("shared", accessModes=["ReadWriteMany"]))
        await until(lambda: "ProvisioningFailed" in reasons(api, "shared"), "the refusal")
        ev = next(e for e in api.all(EVENT) if e["reason"] == "ProvisioningFailed")
        assert ev["message"] == ('failed to provision volume with StorageClass "local-path": NodePath only supports '
                                 "ReadWriteOnce and ReadWriteOncePod (1.22+) access modes")
        assert api.get_obj(PV, "pvc-u-shared") is None
        # a volume whose path is not one of ours is never removed
        pv = build_volume(claim("odd"), default_storage_class(), "n1", str(tmp_path))
        pv["status"] = {"phase": "Released"}
        api.seed(pv)
        await until(lambda: "VolumeFailedDelete" in reasons(api, "pvc-u-odd"), "the refusal to delete")
        assert tmp_path.is_dir() and api.get_obj(PV, "pvc-u-odd") is not None
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_node_that_cannot_hold_volumes_says_so_and_stops_nothing_else(tmp_path: Path,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    stop = asyncio.Event()
    await asyncio.wait_for(LocalPathProvisioner(FakeClient(), "n1", str(not_a_dir)).run(stop), 5)
    assert not stop.is_set()  # the process's other components run on
    assert "provisions no volumes" in caplog.text


def test_disable_local_storage_flags(tmp_path: Path) -> None:
    from k8py.cli.main import build_parser
    from k8py.cli.server import build_config

    parser = build_parser()
    assert build_config(parser.parse_args(["server", "--disable-local-storage", "--data-dir", str(tmp_path)])) \
        .disable_local_storage is True
    assert build_config(parser.parse_args(["server", "--data-dir", str(tmp_path)])).disable_local_storage is False
    agent = ["agent", "--server", "https://127.0.0.1:6443", "--token", "K10x::a.b"]
    assert parser.parse_args([*agent, "--disable-local-storage"]).disable_local_storage is True
    assert parser.parse_args(agent).disable_local_storage is False
