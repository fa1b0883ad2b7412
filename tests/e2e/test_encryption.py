"""Encryption at rest on a real ``k8py server`` with real kubectl: a Secret's value is not in the
SQLite files nor in etcd in the clear and reads back after ``k8py secrets-encrypt rotate`` (also
after a server killed with SIGKILL in the middle of one); a lost key is reported per object (LIST
warns and answers the rest, GET is kube's 500 "corrupt object"); a malformed encryption config
refuses to start naming the line."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import KUBECTL, Server, free_port, manifest, start_server

from k8py.storage.encryption import load_config


def marker() -> str:
    return f"s3cr3t-{uuid.uuid4().hex}"


def store_bytes(data_dir: Path) -> bytes:
    """Everything the SQLite store has on disk: the database, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in sorted((data_dir / "db").iterdir()) if p.is_file())


def secrets_encrypt(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "k8py.cli", "secrets-encrypt", *args, "-d", str(server.data_dir)],
                       capture_output=True, text=True, timeout=300, check=False)
    if check and p.returncode != 0:
        raise AssertionError(f"secrets-encrypt {args} failed ({p.returncode}): {p.stdout}\n{p.stderr}")
    return p


def secret_value(server: Server, name: str, ns: str = "default") -> str:
    out = server.kubectl("get", "secret", name, "-n", ns, "-o", "jsonpath={.data.password}").stdout
    return base64.b64decode(out).decode()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    s = start_server(tmp_path_factory.mktemp("encryption"))
    yield s
    s.stop()


def test_secret_is_not_in_the_sqlite_files_in_the_clear(cluster: Server) -> None:
    value, plain = marker(), marker()
    cluster.kubectl("create", "secret", "generic", "db-pass", f"--from-literal=password={value}")
    cluster.kubectl("create", "configmap", "not-secret", f"--from-literal=x={plain}")
    assert secret_value(cluster, "db-pass") == value
    disk = store_bytes(cluster.data_dir)
    assert plain.encode() in disk  # a ConfigMap is stored as it is: the scan does find values
    assert value.encode() not in disk
    assert base64.b64encode(value.encode()) not in disk  # nor as the Secret's base64 data
    assert b"k8s:enc:aescbc:v1:" in disk
    cfg = cluster.data_dir / "cred" / "encryption-config.json"
    assert cfg.stat().st_mode & 0o777 == 0o600
    status = secrets_encrypt(cluster, "status").stdout
    assert "Encryption Status: Enabled" in status and "AES-CBC" in status
    assert "Current Rotation Stage: all objects use the active key" in status


def test_secrets_read_back_after_a_rotation(cluster: Server) -> None:
    values = {f"rot-{i}": marker() for i in range(5)}
    for name, v in values.items():
        cluster.kubectl("create", "secret", "generic", name, f"--from-literal=password={v}")
    before = json.loads(secrets_encrypt(cluster, "status", "-o", "json").stdout)
    old_key = before["resources"][0]["keys"][0]["name"]
    out = json.loads(secrets_encrypt(cluster, "rotate", "-o", "json").stdout)
    assert out["retired"] == [f"aescbc:{old_key}"] and out["rewritten"] >= 5 and not out["unreadable"]
    for name, v in values.items():
        assert secret_value(cluster, name) == v
    after = json.loads(secrets_encrypt(cluster, "status", "-o", "json").stdout)
    keys = after["resources"][0]["keys"]
    assert keys[0]["name"] != old_key and keys[0]["active"] and [k["type"] for k in keys] == ["aescbc", "identity"]
    assert after["objects"]["stale"] == 0 and after["objects"]["active"] == after["objects"]["total"]
    # the file a restart reads holds the new key only
    chain = load_config(str(cluster.data_dir / "cred" / "encryption-config.json")).chain_for("", "secrets")
    assert chain is not None and chain.writer.name == keys[0]["name"]


def test_a_rotation_killed_with_sigkill_leaves_every_secret_readable(tmp_path: Path) -> None:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    s = start_server(tmp_path)
    try:
        values = {f"k{i}": marker() for i in range(150)}
        s.kubectl("apply", "-f", "-", input=manifest(*[
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": n, "namespace": "default"},
             "stringData": {"password": v}} for n, v in values.items()]), timeout=120)
        rotate = subprocess.Popen([sys.executable, "-m", "k8py.cli", "secrets-encrypt", "rotate", "-d",
                                   str(s.data_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # kill the server once the rotation has begun: the config file then holds the new key
        cfg = s.data_dir / "cred" / "encryption-config.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(json.loads(cfg.read_text())["resources"][0]["providers"][0]
                                                  ["aescbc"]["keys"]) < 2:
            time.sleep(0.005)
        s.stop(signal.SIGKILL)
        rotate.wait(60)
        s.start()
        got = json.loads(s.kubectl("get", "secrets", "-n", "default", "-o", "json").stdout)
        read = {i["metadata"]["name"]: base64.b64decode(i["data"]["password"]).decode()
                for i in got["items"] if i["metadata"]["name"] in values}
        assert read == values
        secrets_encrypt(s, "rotate")  # finishes the job
        status = json.loads(secrets_encrypt(s, "status", "-o", "json").stdout)
        assert status["objects"]["stale"] == 0 and not status["objects"]["unreadable"]
        assert len(status["resources"][0]["keys"]) == 2  # the new aescbc key and identity
    finally:
        s.stop()


def test_a_lost_key_is_reported_per_object(tmp_path: Path) -> None:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    s = start_server(tmp_path)
    try:
        s.kubectl("create", "secret", "generic", "lost", f"--from-literal=password={marker()}")
        s.stop()
        cfg_path = s.data_dir / "cred" / "encryption-config.json"
        cfg = json.loads(cfg_path.read_text())
        old = cfg["resources"][0]["providers"][0]["aescbc"]["keys"][0]["name"]
        cfg["resources"][0]["providers"][0]["aescbc"]["keys"] = [
            {"name": "other", "secret": base64.b64encode(b"o" * 32).decode()}]
        cfg_path.write_text(json.dumps(cfg))
        s.start()
        kept = marker()
        s.kubectl("create", "secret", "generic", "kept", f"--from-literal=password={kept}")
        p = s.kubectl("get", "secrets", "-n", "default", "-o", "name")
        assert p.stdout.split() == ["secret/kept"]
        assert (f'Warning: secrets "lost" in namespace "default" is left out of this list: data from the storage is '
                f"not transformable: no matching prefix found: the value was written with aescbc key '{old}', which "
                "the encryption configuration does not have") in p.stderr
        p = s.kubectl("get", "secret", "lost", check=False)
        assert p.returncode == 1
        assert p.stderr.startswith("Error from server (InternalError): Internal error occurred: StorageError: corrupt "
                                   "object, Code: 7, Key: /registry/core/secrets/default/lost")
        assert secret_value(s, "kept") == kept
        status = secrets_encrypt(s, "status", check=False)
        assert status.returncode == 1 and "Unreadable: /registry/core/secrets/default/lost" in status.stdout
        # kube's way out: an unsafe delete (the official client's DeleteOptions field)
        from kubernetes import client as k8s
        from kubernetes.client.rest import ApiException

        with s.client() as api_client:
            core = k8s.CoreV1Api(api_client)
            with pytest.raises(ApiException) as info:
                core.delete_namespaced_secret("lost", "default")
            assert info.value.status == 500
            core.delete_namespaced_secret("lost", "default", body=k8s.V1DeleteOptions(
                ignore_store_read_error_with_cluster_breaking_potential=True))
            assert [i.metadata.name for i in core.list_namespaced_secret("default").items] == ["kept"]
        assert "left out" not in s.kubectl("get", "secrets", "-n", "default").stderr
    finally:
        s.stop()


BAD_CONFIG = """\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: dG9vc2hvcnQ=
"""


def test_a_malformed_config_refuses_to_start_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "enc.yaml"
    bad.write_text(BAD_CONFIG)
    p = subprocess.run([sys.executable, "-m", "k8py.cli", "server", "--data-dir", str(tmp_path / "data"),
                        "--https-listen-port", str(free_port()), "--bind-address", "127.0.0.1", "--disable-agent",
                        "--encryption-provider-config", str(bad)], capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == 1
    assert (f'{bad}:9: resources[0].providers[0].aesgcm.keys[0].secret: Invalid value: "REDACTED": secret is not of '
            "the expected length, got 8, expected one of [16, 24, 32]") in p.stderr


def etcd_get(endpoint: str, key: str) -> bytes | None:
    """A key's raw value, read from etcd's own JSON gateway (not through k8py)."""
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    req = urllib.request.Request(f"{endpoint}/v3/kv/range", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        kvs = json.loads(r.read()).get("kvs") or []
    return base64.b64decode(kvs[0]["value"]) if kvs else None


def test_secret_is_not_in_etcd_in_the_clear(tmp_path: Path) -> None:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    from tests.helpers.etcd import EtcdCluster, start_k8py_server

    etcd = EtcdCluster(1)
    etcd.start()
    home = tmp_path / "home"
    home.mkdir()
    s = Server(tmp_path / "data", free_port(), None, tmp_path / "server.log", home)
    try:
        start_k8py_server(s, etcd.endpoints)
        value = marker()
        s.kubectl("create", "secret", "generic", "in-etcd", f"--from-literal=password={value}")
        raw = etcd_get(etcd.members[0].client_url, "/registry/core/secrets/default/in-etcd")
        assert raw is not None and raw.startswith(b"k8s:enc:aescbc:v1:")
        assert value.encode() not in raw and base64.b64encode(value.encode()) not in raw
        assert secret_value(s, "in-etcd") == value
        refused = secrets_encrypt(s, "rotate", check=False)
        assert refused.returncode == 1 and "other servers may share" in refused.stderr
        secrets_encrypt(s, "rotate", "--single-server")
        assert secret_value(s, "in-etcd") == value
        raw2 = etcd_get(etcd.members[0].client_url, "/registry/core/secrets/default/in-etcd")
        assert raw2 is not None and raw2[:40] != raw[:40]  # sealed again, with the new key
    finally:
        if s.proc is not None:
            s.stop()
        etcd.stop()


def test_only_cluster_admins_may_use_secrets_encrypt(cluster: Server) -> None:
    import yaml

    token = subprocess.run([sys.executable, "-m", "k8py.cli", "token", "create", "-d", str(cluster.data_dir),
                            "--user", "mallory", "--groups", "dev"], capture_output=True, text=True,
                           check=True).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    path = cluster.data_dir.parent / "mallory.kubeconfig"
    path.write_text(yaml.safe_dump({**admin, "users": [{"name": "default", "user": {"token": token}}]}))
    for action in ("status", "rotate"):
        p = subprocess.run([sys.executable, "-m", "k8py.cli", "secrets-encrypt", action, "--kubeconfig", str(path)],
                           capture_output=True, text=True, timeout=60, check=False)
        assert p.returncode == 1
        verb = "get" if action == "status" else "post"
        assert (f'forbidden: User "mallory" cannot {verb} path "/k8py/v1/secrets-encrypt/{action}"') in p.stderr
