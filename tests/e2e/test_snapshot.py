"""Back up a running cluster's SQLite store, wipe the data directory, restore, and find everything."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import KUBECTL, manifest, start_server

pytestmark = pytest.mark.skipif(not KUBECTL, reason="kubectl not installed")


def k8py(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "k8py.cli", *args], capture_output=True, text=True, timeout=60)


def test_snapshot_wipe_restore(tmp_path: Path) -> None:
    s = start_server(tmp_path)
    snap = tmp_path / "backup.db"
    try:
        s.kubectl("create", "namespace", "keep")
        for i in range(20):
            s.kubectl("create", "configmap", f"c{i}", "-n", "keep", f"--from-literal=i={i}")
        s.kubectl("apply", "-f", "-", input=manifest({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "keep"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}))
        before = s.kjson("get", "cm,deploy", "-n", "keep")
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
    s.start()
    try:
        after = s.kjson("get", "cm,deploy", "-n", "keep")
        key = lambda o: (o["kind"], o["metadata"]["name"], o["metadata"]["resourceVersion"])  # noqa: E731
        assert sorted(map(key, after["items"])) == sorted(map(key, before["items"]))
        assert s.kubectl("get", "cm", "after-snapshot", "-n", "keep", check=False).returncode != 0
        # the restored cluster goes on with new revisions
        s.kubectl("create", "configmap", "new", "-n", "keep")
        new_rv = int(s.kjson("get", "cm", "new", "-n", "keep")["metadata"]["resourceVersion"])
        assert new_rv > max(int(o["metadata"]["resourceVersion"]) for o in before["items"])
    finally:
        s.stop()


def test_snapshot_errors(tmp_path: Path) -> None:
    p = k8py("datastore", "snapshot", "save", str(tmp_path / "x.db"), "--data-dir", str(tmp_path / "none"))
    assert p.returncode == 1 and "no database" in p.stderr
    bogus = tmp_path / "bogus.db"
    bogus.write_text("not a database")
    p = k8py("datastore", "snapshot", "restore", str(bogus), "--data-dir", str(tmp_path / "d"))
    assert p.returncode == 1 and "not a k8py SQLite store" in p.stderr
