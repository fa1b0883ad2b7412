"""A second server joins the first with no file copied by hand: `k8py server --server URL --token
TOKEN` on the same etcd fetches the cluster CA and the other shared files (sealed with the
token), then both servers serve the same cluster with certificates of the same CA: one
kubeconfig works against both, and what one writes the other lists. A wrong token, a token of
another cluster, a missing datastore and a data directory of another cluster are refused with
their reason."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from tests.helpers.etcd import ETCD, EtcdCluster, start_k8py_server

from k8py.config import ServerConfig
from k8py.pki import ensure_pki

from .conftest import KUBECTL, Server, free_port, wait

pytestmark = pytest.mark.skipif(not shutil.which(ETCD), reason="etcd not installed")

LIGHT = ("--disable-controller-manager", "--disable-scheduler")


def _server(tmp: Path, name: str) -> Server:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    return Server(tmp / name, free_port(), None, tmp / f"{name}.log", home)


@pytest.fixture
def etcd() -> Iterator[EtcdCluster]:
    e = EtcdCluster(1)
    e.start()
    yield e
    e.stop()


def join_args(first: Server, token: str) -> tuple[str, ...]:
    return ("--server", f"https://127.0.0.1:{first.port}", "--token", token)


def run_server(tmp: Path, data: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A server start that is expected to fail before serving."""
    return subprocess.run([sys.executable, "-m", "k8py.cli", "server", "--data-dir", str(tmp / data),
                           "--https-listen-port", str(free_port()), "--bind-address", "127.0.0.1", "--disable-agent",
                           *args], capture_output=True, text=True, timeout=60, check=False)


def test_a_second_server_joins_with_the_server_token(etcd: EtcdCluster, tmp_path: Path) -> None:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    a, b = _server(tmp_path, "a"), _server(tmp_path, "b")
    try:
        start_k8py_server(a, etcd.endpoints, *LIGHT)
        token = (a.data_dir / "server-token").read_text().strip()
        ca_pem = (a.data_dir / "tls" / "ca.crt").read_bytes()
        assert token.startswith(f"K10{hashlib.sha256(ca_pem).hexdigest()}::server:")
        assert (a.data_dir / "server-token").stat().st_mode & 0o777 == 0o600

        # refused: a wrong secret, a token of another cluster, no shared datastore, --token alone
        r = run_server(tmp_path, "x1", "--datastore-endpoint", etcd.endpoints, *join_args(a, token[:-4] + "zzzz"))
        assert r.returncode == 1 and "do not open with this token" in r.stderr, r.stderr
        other = "K10" + "0" * 64 + token[67:]
        r = run_server(tmp_path, "x2", "--datastore-endpoint", etcd.endpoints, *join_args(a, other))
        assert r.returncode == 1 and "CA hash mismatch" in r.stderr, r.stderr
        r = run_server(tmp_path, "x3", *join_args(a, token))
        assert r.returncode == 2 and "shared datastore" in r.stderr
        r = run_server(tmp_path, "x4", "--token", token)
        assert r.returncode == 2 and "--server too" in r.stderr
        assert not (tmp_path / "x1" / "tls").exists() and not (tmp_path / "x2" / "tls").exists()

        # a static token made on the first server before the join (the token file is carried once, at the join)
        made = subprocess.run([sys.executable, "-m", "k8py.cli", "token", "create", "--data-dir", str(a.data_dir),
                               "--user", "tess"], capture_output=True, text=True, timeout=60, check=True)
        bearer = made.stdout.strip()

        # joined: the same CA and keys, its own serving certificate from that CA
        start_k8py_server(b, etcd.endpoints, *LIGHT, *join_args(a, token))
        for rel in ("tls/ca.crt", "tls/ca.key", "token", "server-token"):
            assert (b.data_dir / rel).read_bytes() == (a.data_dir / rel).read_bytes(), rel
            assert (b.data_dir / rel).stat().st_mode & 0o777 == 0o600, rel
        for rel in ("tls/service-account.key", "cred/encryption-config.json"):  # when the first server has them
            if (a.data_dir / rel).exists():
                assert (b.data_dir / rel).read_bytes() == (a.data_dir / rel).read_bytes(), rel
        ca = x509.load_pem_x509_certificate(ca_pem)
        b_serving = x509.load_pem_x509_certificate((b.data_dir / "tls" / "serving.crt").read_bytes())
        b_serving.verify_directly_issued_by(ca)
        assert b_serving.serial_number != x509.load_pem_x509_certificate(
            (a.data_dir / "tls" / "serving.crt").read_bytes()).serial_number

        # one cluster: a's kubeconfig works against b, and what b writes a lists
        env_b = {"KUBECONFIG": a.kubeconfig}
        b.kubectl("--server", f"https://127.0.0.1:{b.port}", "create", "configmap", "from-b", "--from-literal=k=v",
                  env=env_b)
        assert a.kjson("get", "configmap", "from-b")["data"] == {"k": "v"}
        assert b.kjson("get", "configmap", "from-b")["data"] == {"k": "v"}  # b's own kubeconfig
        # the first server's static token authenticates on the second
        b.stop()
        start_k8py_server(b, etcd.endpoints, *LIGHT)  # a restart needs no token: the files are there
        wait(lambda: "tess" in b.kubectl("--server", f"https://127.0.0.1:{b.port}", "--token", bearer,
                                         "--certificate-authority", str(b.data_dir / "tls" / "ca.crt"),
                                         "auth", "whoami", check=False, env={"KUBECONFIG": "/dev/null"}).stdout,
             15, "the first server's token to authenticate on the second server")

        # a data directory of another cluster is not overwritten
        ensure_pki(ServerConfig(data_dir=str(tmp_path / "x5")))
        theirs = (tmp_path / "x5" / "tls" / "ca.key").read_bytes()
        r = run_server(tmp_path, "x5", "--datastore-endpoint", etcd.endpoints, *join_args(a, token))
        assert r.returncode == 1 and "already belongs to another cluster" in r.stderr, r.stderr
        assert (tmp_path / "x5" / "tls" / "ca.key").read_bytes() == theirs
    finally:
        for s in (a, b):
            if s.proc is not None:
                s.stop(timeout=10)
