"""Back up a running cluster's store, wipe it, restore, and find everything: the embedded SQLite
store and etcd (one member started on loopback, through etcd's snapshot API and etcdctl's restore)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.etcd import EtcdCluster, start_k8py_server

from .conftest import KUBECTL, Server, free_port, manifest

pytestmark = pytest.mark.skipif(not KUBECTL, reason="kubectl not installed")

# Nothing but the test writes: every resourceVersion stays what the test saw.
LIGHT = ("--disable-controller-manager", "--disable-scheduler")


def k8py(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "k8py.cli", *args], check=False, capture_output=True, text=True,
                          timeout=60)


def new_server(tmp: Path) -> Server:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    return Server(tmp / "data", free_port(), None, tmp / "server.log", home)


def fill(s: Server) -> list[Any]:
    """Objects in namespace keep; returns (kind, name, resourceVersion) of each."""
    s.kubectl("create", "namespace", "keep")
    # twenty ConfigMaps with one kubectl (it creates them one by one; twenty kubectl processes took seconds)
    s.kubectl("create", "-f", "-", input=manifest(*(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": "keep"},
         "data": {"i": str(i)}} for i in range(20))))
    s.kubectl("apply", "-f", "-", input=manifest({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "keep"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}))
    return keys(s)


def keys(s: Server) -> list[Any]:
    items = s.kjson("get", "cm,deploy", "-n", "keep")["items"]
    return sorted((o["kind"], o["metadata"]["name"], int(o["metadata"]["resourceVersion"])) for o in items)


def check_restored(s: Server, before: list[Any]) -> None:
    """Everything of the snapshot is back with its resourceVersion, nothing written after it is,
    and the cluster goes on: new writes get newer revisions and a watch from the snapshot's
    revision sees them."""
    assert keys(s) == before
    assert s.kubectl("get", "cm", "after-snapshot", "-n", "keep", check=False).returncode != 0
    newest = max(rv for _, _, rv in before)
    s.kubectl("create", "configmap", "new", "-n", "keep")
    new_rv = int(s.kjson("get", "cm", "new", "-n", "keep")["metadata"]["resourceVersion"])
    assert new_rv > newest
    from kubernetes import client

    with s.client() as api:
        resp = client.CoreV1Api(api).list_namespaced_config_map(
            "keep", watch=True, resource_version=str(newest), timeout_seconds=2, _preload_content=False)
        events = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "new")]
    assert events[0]["object"]["metadata"]["resourceVersion"] == str(new_rv)


def test_snapshot_wipe_restore(tmp_path: Path) -> None:
    s = new_server(tmp_path)
    start_k8py_server(s, "", *LIGHT)
    snap = tmp_path / "backup.db"
    try:
        before = fill(s)
        p = k8py("datastore", "snapshot", "save", str(snap), "--data-dir", str(s.data_dir))
        assert p.returncode == 0, p.stderr
        # a restore while the server runs is refused, and changes nothing
        p = k8py("datastore", "snapshot", "restore", str(snap), "--data-dir", str(s.data_dir))
        assert p.returncode == 1 and "in use by a running server" in p.stderr
        s.kubectl("create", "configmap", "after-snapshot", "-n", "keep")
    finally:
        s.stop()
    shutil.rmtree(s.data_dir / "db")
    p = k8py("datastore", "snapshot", "restore", str(snap), "--data-dir", str(s.data_dir))
    assert p.returncode == 0, p.stderr
    assert "restored" in p.stderr
    start_k8py_server(s, "", *LIGHT)
    try:
        check_restored(s, before)
    finally:
        s.stop()


def test_etcd_snapshot_wipe_restore(tmp_path: Path) -> None:
    """etcd: save through etcd's snapshot API while the server runs, throw etcd's data away,
    restore into a new member's data directory, start etcd and the server on it."""
    if not shutil.which("etcdctl"):
        pytest.skip("etcdctl not installed: install Debian's etcd-client (scripts/install does)")
    etcd = EtcdCluster(1)
    etcd.start()
    s = new_server(tmp_path)
    snap = tmp_path / "etcd-backup.db"
    try:
        start_k8py_server(s, etcd.endpoints, *LIGHT)
        try:
            before = fill(s)
            p = k8py("datastore", "snapshot", "save", str(snap), "--datastore-endpoint", etcd.endpoints)
            assert p.returncode == 0, p.stderr
            m = re.search(r"saved snapshot .*: (\d+) objects at revision (\d+)", p.stderr)
            assert m, p.stderr
            # every object: the test's, the namespaces, the kubernetes service, ...
            assert int(m[1]) > len(before) and int(m[2]) >= max(rv for _, _, rv in before)
            s.kubectl("create", "configmap", "after-snapshot", "-n", "keep")
        finally:
            s.stop()
    finally:
        etcd.stop()  # kills etcd and removes its data: the wipe
    assert not Path(etcd.dir).exists()

    restored = EtcdCluster(1)
    try:
        member = restored.members[0]
        p = k8py("datastore", "snapshot", "restore", str(snap), *restored.restore_flags(member))
        assert p.returncode == 0, p.stderr
        assert "restored etcd snapshot" in p.stderr and "etcd --name m0" in p.stderr
        # restoring over an existing member's data is refused
        p = k8py("datastore", "snapshot", "restore", str(snap), *restored.restore_flags(member))
        assert p.returncode == 1 and "already exists and is not empty" in p.stderr
        restored.start()
        start_k8py_server(s, restored.endpoints, *LIGHT)
        try:
            check_restored(s, before)
        finally:
            s.stop()
    finally:
        restored.stop()


def test_snapshot_errors(tmp_path: Path) -> None:
    p = k8py("datastore", "snapshot", "save", str(tmp_path / "x.db"), "--data-dir", str(tmp_path / "none"))
    assert p.returncode == 1 and "no database" in p.stderr
    bogus = tmp_path / "bogus.db"
    bogus.write_text("not a database")
    p = k8py("datastore", "snapshot", "restore", str(bogus), "--data-dir", str(tmp_path / "d"))
    assert p.returncode == 1 and "neither a k8py SQLite snapshot nor an etcd snapshot" in p.stderr
    p = k8py("datastore", "snapshot", "restore", str(tmp_path / "missing.db"), "--data-dir", str(tmp_path / "d"))
    assert p.returncode == 1 and "no snapshot file" in p.stderr
    # an unreachable etcd fails at once, saying where it tried
    port = free_port()
    started = time.monotonic()
    p = k8py("datastore", "snapshot", "save", str(tmp_path / "e.db"), "--datastore-endpoint",
             f"http://127.0.0.1:{port}")
    assert p.returncode == 1 and f"127.0.0.1:{port}" in p.stderr and "could not take an etcd snapshot" in p.stderr
    assert time.monotonic() - started < 20
    assert not (tmp_path / "e.db").exists()


def test_etcd_snapshot_checks(tmp_path: Path) -> None:
    """A damaged snapshot is refused before anything is written; etcd needs --data-dir."""
    etcd = EtcdCluster(1)
    etcd.start()
    try:
        snap = tmp_path / "s.db"
        p = k8py("datastore", "snapshot", "save", str(snap), "--datastore-endpoint", etcd.endpoints)
        assert p.returncode == 0, p.stderr
        assert snap.stat().st_mode & 0o777 == 0o600
    finally:
        etcd.stop()
    p = k8py("datastore", "snapshot", "restore", str(snap))
    assert p.returncode == 1 and "give --data-dir" in p.stderr
    data = bytearray(snap.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken = tmp_path / "broken.db"
    broken.write_bytes(bytes(data))
    p = k8py("datastore", "snapshot", "restore", str(broken), "--data-dir", str(tmp_path / "m"))
    assert p.returncode == 1 and "SHA-256 does not match" in p.stderr
    assert not (tmp_path / "m").exists()
    broken.write_bytes(snap.read_bytes()[:5000])
    p = k8py("datastore", "snapshot", "restore", str(broken), "--data-dir", str(tmp_path / "m"))
    assert p.returncode == 1 and "truncated" in p.stderr
