"""services/proxy and pods/proxy end to end: a real `k8py server` process, real kubectl
(``get --raw``, ``kubectl proxy``) and the official Python client's ``connect_*`` proxy calls.

The service's backend is an HTTP server on loopback named by an EndpointSlice of a Service
without a selector (k8py's EndpointSlice validation allows loopback addresses; the service proxy
dials them as kube does). A pod's address must be global unicast (kube refuses loopback), so
against the `k8py server` process the pod proxy is driven to kube's answers for a pod with no
address, and its traffic goes through the API server run in a thread (plain HTTP on loopback)
whose ``proxy_dial`` maps the pod's address to the backend. Traffic goes only to loopback."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import KUBECTL, Server

pytestmark = pytest.mark.timeout(180)

PAGE = '<html><body><a href="/docs/">docs</a><img src="/logo.png"></body></html>'


class _Handler(BaseHTTPRequestHandler):
    def _answer(self, body: bytes, ctype: str = "application/json", status: int = 200,
                extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _echo(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size) if size else b""
        if self.path.startswith("/page"):
            self._answer(PAGE.encode(), "text/html; charset=utf-8")
            return
        if self.path.startswith("/moved"):
            self._answer(b"", "text/plain", 302, {"Location": "/login"})
            return
        self._answer(json.dumps({"method": self.command, "path": self.path, "body": body.decode(),
                                 "authorization": self.headers.get("Authorization")}).encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _echo

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()
    t.join(10)


def _service(server: Server, ns: str, backend: int) -> None:
    docs = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
             "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
             "ports": [{"name": "http", "port": backend, "protocol": "TCP"}]},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "empty"},
             "spec": {"ports": [{"port": 80}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unscheduled"},
             "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 8080}]}]}}]
    server.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def test_kubectl_get_raw_through_service_and_pod_proxies(server: Server, ns: str, backend: int) -> None:
    _service(server, ns, backend)
    base = f"/api/v1/namespaces/{ns}/services"
    for name in ("web:80", "web:http", "http:web:80"):
        out = json.loads(server.kubectl("get", "--raw", f"{base}/{name}/proxy/hello?x=1").stdout)
        assert (out["method"], out["path"], out["authorization"]) == ("GET", "/hello?x=1", None)
    p = server.kubectl("get", "--raw", f"{base}/empty:80/proxy/", check=False)
    assert p.returncode != 0
    assert 'Error from server (ServiceUnavailable): no endpoints available for service "empty"' in p.stderr
    p = server.kubectl("get", "--raw", f"{base}/web:81/proxy/", check=False)
    assert 'Error from server (ServiceUnavailable): no service port 81 found for service "web"' in p.stderr
    p = server.kubectl("get", "--raw", f"/api/v1/namespaces/{ns}/pods/unscheduled:8080/proxy/healthz", check=False)
    assert "Error from server (BadRequest): address not allowed" in p.stderr
    p = server.kubectl("get", "--raw", f"/api/v1/namespaces/{ns}/pods/ghost/proxy/", check=False)
    assert 'Error from server (NotFound): pods "ghost" not found' in p.stderr


def test_kubectl_proxy_to_a_service(server: Server, ns: str, backend: int) -> None:
    _service(server, ns, backend)
    assert KUBECTL
    env = dict(os.environ, HOME=str(server.home), KUBECONFIG=server.kubeconfig)
    proc = subprocess.Popen([KUBECTL, "proxy", "--port=0", "--address=127.0.0.1"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Starting to serve on 127.0.0.1:PORT"
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert m, line
        url = f"http://127.0.0.1:{m.group(1)}/api/v1/namespaces/{ns}/services/web:80/proxy"
        with urllib.request.urlopen(f"{url}/page", timeout=30) as r:
            page = r.read().decode()
        # kube's HTML rewriting: the page's absolute links go through the proxy again
        assert f'<a href="/api/v1/namespaces/{ns}/services/web:80/proxy/docs/">' in page
        req = urllib.request.Request(f"{url}/submit", data=b"form=1", method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read()) == {"method": "POST", "path": "/submit", "body": "form=1",
                                            "authorization": None}

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(f"{url}/moved", timeout=30)
            raise AssertionError("no redirect")
        except urllib.error.HTTPError as e:
            assert (e.code, e.headers["Location"]) == (302, f"/api/v1/namespaces/{ns}/services/web:80/proxy/login")
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_python_client_connect_proxy_calls(server: Server, ns: str, backend: int) -> None:
    from kubernetes import client

    _service(server, ns, backend)
    api = client.CoreV1Api(server.client())
    # the client hands back the JSON answer as the str() of what it decoded
    got = ast.literal_eval(api.connect_get_namespaced_service_proxy_with_path("web:80", ns, "status/ok"))
    assert (got["method"], got["path"], got["authorization"]) == ("GET", "/status/ok", None)
    got = ast.literal_eval(api.connect_post_namespaced_service_proxy_with_path("web:http", ns, "items"))
    assert (got["method"], got["path"]) == ("POST", "/items")
    got = ast.literal_eval(api.connect_delete_namespaced_service_proxy_with_path("web:80", ns, "items/1"))
    assert (got["method"], got["path"]) == ("DELETE", "/items/1")
    got = ast.literal_eval(api.connect_get_namespaced_service_proxy("web:80", ns))
    assert got["path"] == "/"
    with pytest.raises(client.ApiException) as e:
        api.connect_get_namespaced_pod_proxy("unscheduled", ns)
    assert e.value.status == 400 and json.loads(e.value.body)["message"] == "address not allowed"
    with pytest.raises(client.ApiException) as e:
        api.connect_get_namespaced_service_proxy_with_path("empty:80", ns, "x")
    assert e.value.status == 503 and json.loads(e.value.body)["reason"] == "ServiceUnavailable"


POD_IP = "10.244.3.3"


class APIThread:
    """k8py's API server on the memory store, served over plain HTTP on a loopback port from its
    own event loop in a thread, with its pods/proxy dialling the backend for ``POD_IP``."""

    def __init__(self, data_dir: Path, backend: int) -> None:
        import asyncio

        self.data_dir = data_dir
        self.backend = backend
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="k8py-api", daemon=True)
        self.port = 0

    async def _start(self) -> None:
        from aiohttp import web

        from k8py.apiserver import server as srv
        from k8py.config import ServerConfig
        from k8py.storage.memory import MemoryStore

        self.store = MemoryStore()
        await self.store.start()
        cp = srv.build(ServerConfig(data_dir=str(self.data_dir)), self.store)
        await cp.bootstrap()
        cp.api.proxy_dial = lambda ip, port: ("127.0.0.1", self.backend) if ip == POD_IP else (ip, port)
        cp.http.ready = True
        self.runner = web.AppRunner(cp.http.build(), handler_cancellation=True, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.store.close()

    def start(self) -> APIThread:
        import asyncio

        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def api_thread(tmp_path_factory: pytest.TempPathFactory, backend: int) -> Iterator[APIThread]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    t = APIThread(tmp_path_factory.mktemp("proxy-api"), backend).start()
    yield t
    t.stop()


def test_pod_proxy_with_kubectl_and_the_python_client(api_thread: APIThread, tmp_path: Path) -> None:
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = f"http://127.0.0.1:{api_thread.port}"
    api = client.CoreV1Api(client.ApiClient(cfg))
    api.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                                          "spec": {"containers": [{"name": "c", "image": "busybox",
                                                                   "ports": [{"containerPort": 8080}]}]}})
    api.patch_namespaced_pod_status("web", "default", {"status": {"podIP": POD_IP, "podIPs": [{"ip": POD_IP}]}})
    assert KUBECTL
    env = dict(os.environ, HOME=str(tmp_path), KUBECONFIG=str(tmp_path / "none"))
    p = subprocess.run([KUBECTL, "--server", cfg.host, "get", "--raw",
                        "/api/v1/namespaces/default/pods/web:8080/proxy/healthz?verbose=1"],
                       capture_output=True, text=True, env=env, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["path"] == "/healthz?verbose=1"
    got = ast.literal_eval(api.connect_get_namespaced_pod_proxy_with_path("web:8080", "default", "metrics"))
    assert (got["method"], got["path"]) == ("GET", "/metrics")
    got = ast.literal_eval(api.connect_put_namespaced_pod_proxy_with_path("web", "default", "config"))
    assert (got["method"], got["path"]) == ("PUT", "/config")
    got = ast.literal_eval(api.connect_get_namespaced_pod_proxy("web", "default"))
    assert got["path"] == "/"
