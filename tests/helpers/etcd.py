"""Real etcd members for tests, and `k8py server` processes on them.

:class:`EtcdCluster` starts Debian's ``/usr/bin/etcd`` (package ``etcd-server``)
as one or three members on free loopback ports, with their data in a temporary
directory (on /dev/shm when there is one: fsync there costs nothing), and
stops them and removes the directory in :meth:`EtcdCluster.stop`. Tests that
need etcd skip when it is not installed.

:func:`start_k8py_server` starts a `k8py server` process (an
``tests.e2e.conftest.Server``) on such a cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

ETCD = "/usr/bin/etcd"

ETCD_MISSING = f"{ETCD} not found: install Debian's etcd-server package (scripts/install does)"


# ---------------------------------------------------------------------- running etcd


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class EtcdMember:
    def __init__(self, name: str, client_url: str, peer_url: str, data_dir: str) -> None:
        self.name = name
        self.client_url = client_url
        self.peer_url = peer_url
        self.data_dir = data_dir
        self.log_path = data_dir + ".log"
        self.proc: subprocess.Popen[bytes] | None = None

    def log_tail(self, n: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-n:])
        return ""


class EtcdCluster:
    """``size`` etcd members on loopback, in a temporary directory."""

    def __init__(self, size: int = 1, *, tls: dict[str, str] | None = None, progress: str = "200ms") -> None:
        if not os.access(ETCD, os.X_OK):
            pytest.skip(ETCD_MISSING)  # every test that needs a real etcd goes through here
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.dir = tempfile.mkdtemp(prefix="k8py-etcd-", dir=base)
        ports = free_ports(2 * size)
        scheme = "https" if tls else "http"
        self.members = [
            EtcdMember(
                f"m{i}",
                f"{scheme}://127.0.0.1:{ports[2 * i]}",
                f"http://127.0.0.1:{ports[2 * i + 1]}",
                os.path.join(self.dir, f"m{i}"),
            )
            for i in range(size)
        ]
        self.tls = tls
        self.progress = progress
        self.token = f"k8py-test-{uuid.uuid4().hex[:8]}"

    @property
    def endpoints(self) -> str:
        return ",".join(m.client_url for m in self.members)

    def start(self) -> None:
        for m in self.members:
            self._spawn(m)
        self._wait_healthy(self.members)

    def restore_flags(self, m: EtcdMember) -> list[str]:
        """``k8py datastore snapshot restore`` flags that make a data directory
        for member ``m`` of this cluster (restore into ``m.data_dir``, then
        :meth:`start`)."""
        return ["--data-dir", m.data_dir, "--name", m.name,
                "--initial-cluster", ",".join(f"{x.name}={x.peer_url}" for x in self.members),
                "--initial-cluster-token", self.token, "--initial-advertise-peer-urls", m.peer_url]

    def restart(self, m: EtcdMember) -> None:
        """Start a stopped member again on its data (it rejoins the cluster)."""
        self._spawn(m)

    def _spawn(self, m: EtcdMember) -> None:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        args = [
            ETCD,
            f"--name={m.name}",
            f"--data-dir={m.data_dir}",
            f"--listen-client-urls={m.client_url}",
            f"--advertise-client-urls={m.client_url}",
            f"--listen-peer-urls={m.peer_url}",
            f"--initial-advertise-peer-urls={m.peer_url}",
            f"--initial-cluster={initial}",
            f"--initial-cluster-token={self.token}",
            "--initial-cluster-state=new",
            f"--experimental-watch-progress-notify-interval={self.progress}",
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        if self.tls:
            args += [
                f"--cert-file={self.tls['cert']}",
                f"--key-file={self.tls['key']}",
                f"--trusted-ca-file={self.tls['ca']}",
                "--client-cert-auth",
            ]
        with open(m.log_path, "ab") as log:
            m.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _wait_healthy(self, members: list[EtcdMember]) -> None:
        deadline = time.monotonic() + 20
        for m in members:
            while not self._healthy(m):
                assert m.proc is not None
                if m.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"etcd member {m.name} did not start:\n{m.log_tail()}")
                time.sleep(0.05)

    def _healthy(self, m: EtcdMember) -> bool:
        if self.tls:  # TLS members: wait for the port only; the tests check the rest
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", int(m.client_url.rsplit(":", 1)[1])), 0.2),
            ):
                return True
            return False
        try:
            with urllib.request.urlopen(m.client_url + "/health", timeout=1) as resp:
                return json.loads(resp.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def kill(self, m: EtcdMember) -> None:
        if m.proc is not None and m.proc.poll() is None:
            m.proc.send_signal(signal.SIGKILL)
            m.proc.wait(10)

    def leader(self) -> EtcdMember:
        """The member that leads the cluster now."""
        ids = {}
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                req = urllib.request.Request(m.client_url + "/v3/maintenance/status", data=b"{}")
                with urllib.request.urlopen(req, timeout=2) as resp:
                    status = json.loads(resp.read())
                ids[status["header"]["member_id"]] = m
        return ids[status["leader"]]

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                m.proc.terminate()
        # A member whose peers are gone can spend seconds on a graceful
        # stop; the data is thrown away anyway.
        deadline = time.monotonic() + 0.5
        for m in self.members:
            if m.proc is not None:
                try:
                    m.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def start_k8py_server(server: Any, endpoints: str, *extra: str, timeout: float = 30.0) -> None:
    """Start ``server`` (a ``tests.e2e.conftest.Server``) as `k8py server` with
    ``--datastore-endpoint endpoints`` (``""``: the embedded SQLite store) and
    ``extra`` flags; wait until ready. ``server.stop()`` stops it."""
    args = [sys.executable, "-m", "k8py.cli", "server", "--data-dir", str(server.data_dir),
            "--https-listen-port", str(server.port), "--bind-address", "127.0.0.1", "--disable-agent", *extra]
    if endpoints:
        args += ["--datastore-endpoint", endpoints]
    with open(server.log_path, "ab") as log:
        server.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server.wait_ready(timeout)


def share_cluster_ca(first: Any, second: Any) -> None:
    """Give ``second`` (not started yet) ``first``'s certificates, so one
    kubeconfig (the first's) works against both servers, as HA servers share
    their cluster CA."""
    dst = Path(second.data_dir)
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(Path(first.data_dir) / "tls", dst / "tls", dirs_exist_ok=True)
    if (Path(first.data_dir) / "cred").is_dir():  # the encryption-at-rest key: every server reads every Secret
        shutil.copytree(Path(first.data_dir) / "cred", dst / "cred", dirs_exist_ok=True)
    token = Path(first.data_dir) / "token"
    if token.exists():
        shutil.copy2(token, dst / "token")
