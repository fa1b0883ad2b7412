"""services/proxy and pods/proxy end to end with real kubectl (``get --raw``, ``kubectl proxy``) and
the official Python client's ``connect_*`` proxy calls.

A pod's or endpoint's address must be a global unicast one (kube refuses loopback: "address not
allowed"), and the backend here is an HTTP server on loopback. So the traffic goes through k8py's
API server run in a thread (plain HTTP on a loopback port), whose ``proxy_dial`` maps the pod's
and the endpoint's addresses (10.244.3.x) to the backend; a real `k8py server` process gives
kube's answers where nothing is dialled. Traffic goes only to loopback."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import threading
import urllib.error
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


def _objects(endpoint: str) -> str:
    docs = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
             "addressType": "IPv4", "endpoints": [{"addresses": [endpoint], "conditions": {"ready": True}}],
             "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "empty"},
             "spec": {"ports": [{"port": 80}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unscheduled"},
             "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 8080}]}]}}]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def test_kubes_answers_from_a_k8py_server(server: Server, ns: str) -> None:
    # an endpoint on loopback (k8py's EndpointSlices may name it, kube's may not) is never dialled
    server.kubectl("apply", "-n", ns, "-f", "-", input=_objects("127.0.0.1"))
    cases = [("services/web:80/proxy/", "Error from server (BadRequest): address not allowed"),
             ("services/empty:80/proxy/",
              'Error from server (ServiceUnavailable): no endpoints available for service "empty"'),
             ("services/web:81/proxy/",
              'Error from server (ServiceUnavailable): no service port 81 found for service "web"'),
             ("pods/unscheduled:8080/proxy/healthz", "Error from server (BadRequest): address not allowed"),
             ("pods/ghost/proxy/", 'Error from server (NotFound): pods "ghost" not found')]
    for path, want in cases:
        p = server.kubectl("get", "--raw", f"/api/v1/namespaces/{ns}/{path}", check=False)
        assert p.returncode != 0 and want in p.stderr, (path, p.stderr)


POD_IP, ENDPOINT_IP = "10.244.3.3", "10.244.3.4"  # both stand for the backend


class APIThread:
    """k8py's API server on the memory store, served over plain HTTP on a loopback port from its
    own event loop in a thread, its proxy dialling the backend for ``POD_IP`` and ``ENDPOINT_IP``."""

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
        cp.api.proxy_dial = lambda ip, port: ("127.0.0.1", self.backend) if ip in (POD_IP, ENDPOINT_IP) else (ip, port)
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


class Kubectl:
    """kubectl against the API server in the thread (no kubeconfig: ``--server``)."""

    def __init__(self, api: APIThread, home: Path) -> None:
        assert KUBECTL
        self.server = f"http://127.0.0.1:{api.port}"
        self.env = dict(os.environ, HOME=str(home), KUBECONFIG=str(home / "none"))

    def argv(self, *args: str) -> list[str]:
        assert KUBECTL
        return [KUBECTL, "--server", self.server, *args]

    def __call__(self, *args: str, input: str | None = None) -> str:
        p = subprocess.run(self.argv(*args), input=input, capture_output=True, text=True, env=self.env, timeout=60,
                           check=False)
        assert p.returncode == 0, p.stderr
        return p.stdout


@pytest.fixture(scope="module")
def kubectl(api_thread: APIThread, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    k = Kubectl(api_thread, tmp_path_factory.mktemp("proxy-home"))
    k("apply", "-f", "-", input=_objects(ENDPOINT_IP))
    k("patch", "pod", "unscheduled", "--subresource=status", "--type=merge",
      "-p", json.dumps({"status": {"podIP": POD_IP, "podIPs": [{"ip": POD_IP}]}}))
    return k


def test_kubectl_get_raw_through_service_and_pod_proxies(kubectl: Kubectl) -> None:
    for path in ("services/web:80", "services/web:http", "services/http:web:80", "pods/unscheduled:8080"):
        out = json.loads(kubectl("get", "--raw", f"/api/v1/namespaces/default/{path}/proxy/healthz?x=1"))
        assert (out["method"], out["path"], out["authorization"]) == ("GET", "/healthz?x=1", None), path


def test_kubectl_proxy_to_a_service(kubectl: Kubectl) -> None:
    proc = subprocess.Popen(kubectl.argv("proxy", "--port=0", "--address=127.0.0.1"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=kubectl.env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Starting to serve on 127.0.0.1:PORT"
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert m, line
        prefix = "/api/v1/namespaces/default/services/web:80/proxy"
        url = f"http://127.0.0.1:{m.group(1)}{prefix}"
        with urllib.request.urlopen(f"{url}/page", timeout=30) as r:
            page = r.read().decode()
        # kube's HTML rewriting: the page's absolute links go through the proxy again
        assert f'<a href="{prefix}/docs/">docs</a><img src="{prefix}/logo.png">' in page, page
        req = urllib.request.Request(f"{url}/submit", data=b"form=1", method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read()) == {"method": "POST", "path": "/submit", "body": "form=1",
                                            "authorization": None}

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any) -> None:
                return None

        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.build_opener(NoRedirect).open(f"{url}/moved", timeout=30)
        assert (e.value.code, e.value.headers["Location"]) == (302, f"{prefix}/login")
        e.value.close()
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_python_client_connect_proxy_calls(api_thread: APIThread, kubectl: Kubectl) -> None:
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = f"http://127.0.0.1:{api_thread.port}"
    api = client.CoreV1Api(client.ApiClient(cfg))

    def call(fn: Any, *args: str) -> Any:
        # the client hands back the JSON answer as the str() of what it decoded
        return ast.literal_eval(fn(*args))

    got = call(api.connect_get_namespaced_service_proxy_with_path, "web:80", "default", "status/ok")
    assert (got["method"], got["path"], got["authorization"]) == ("GET", "/status/ok", None)
    got = call(api.connect_post_namespaced_service_proxy_with_path, "web:http", "default", "items")
    assert (got["method"], got["path"]) == ("POST", "/items")
    got = call(api.connect_delete_namespaced_service_proxy_with_path, "web:80", "default", "items/1")
    assert (got["method"], got["path"]) == ("DELETE", "/items/1")
    assert call(api.connect_get_namespaced_service_proxy, "web:80", "default")["path"] == "/"
    got = call(api.connect_get_namespaced_pod_proxy_with_path, "unscheduled:8080", "default", "metrics")
    assert (got["method"], got["path"]) == ("GET", "/metrics")
    got = call(api.connect_put_namespaced_pod_proxy_with_path, "unscheduled", "default", "config")
    assert (got["method"], got["path"]) == ("PUT", "/config")
    assert call(api.connect_get_namespaced_pod_proxy, "unscheduled", "default")["path"] == "/"
    with pytest.raises(client.ApiException) as e:
        api.connect_get_namespaced_service_proxy_with_path("empty:80", "default", "x")
    assert e.value.status == 503 and json.loads(e.value.body)["message"] == \
        'no endpoints available for service "empty"'
