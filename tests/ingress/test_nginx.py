"""The ingress controller's nginx, for real (Debian's nginx on loopback ports, backends in this
process): routing by host and path as the Ingress API says, TLS with SNI, a graceful reload that
finishes a request in flight, a refused configuration that leaves the previous one serving,
restart after a crash, and nothing left after stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from tests.ingress.helpers import (
    backend,
    endpoint_slice,
    ingress,
    path,
    rule,
    self_signed,
    service,
    tls_secret,
)

from k8py.ingress.model import build_plan
from k8py.ingress.nginx import Nginx, NginxError, choose_port, find_nginx, ipv6_available
from k8py.ingress.render import RenderOptions, render

pytestmark = pytest.mark.skipif(not find_nginx() or os.geteuid() != 0, reason="needs nginx (Debian) and root")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _backend(name: str) -> tuple[web.AppRunner, int]:
    async def handle(req: web.Request) -> web.Response:
        if req.path.startswith("/slow"):
            await asyncio.sleep(1.5)
        fwd = f"{req.headers.get('X-Forwarded-Proto')}|{req.headers.get('X-Forwarded-Host')}"
        if req.path == "/xff":
            fwd = str(req.headers.get("X-Forwarded-For"))
        return web.Response(text=f"{name} {req.path} {fwd}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, int]]:
    runners = {}
    ports = {}
    for name in ("web", "api"):
        runners[name], ports[name] = await _backend(name)
    yield ports
    for r in runners.values():
        await r.cleanup()


def objects(ports: dict[str, int]) -> tuple[dict, dict]:
    services = {("default", n): service(n) for n in ports}
    slices = {("default", n): [endpoint_slice(n, ["127.0.0.1"], p)] for n, p in ports.items()}
    return services, slices


async def fetch(port: int, host: str, p: str = "/", *, scheme: str = "http",
                ctx: ssl.SSLContext | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    conn = aiohttp.TCPConnector(ssl=ctx if ctx is not None else False)
    async with aiohttp.ClientSession(connector=conn) as s:
        if scheme == "https":  # SNI and Host from the URL; the name resolves to loopback below
            url = f"https://{host}:{port}{p}"
        else:
            url = f"http://127.0.0.1:{port}{p}"
        headers = {**(headers or {}), **({} if scheme == "https" else {"Host": host})}
        async with s.get(url, headers=headers, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=10)) as r:
            return r.status, (await r.text()).strip()


class LoopbackResolver(aiohttp.abc.AbstractResolver):
    """Every name is 127.0.0.1: TLS tests send SNI for a test name to the local nginx only."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:  # type: ignore[override]
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": 0}]

    async def close(self) -> None:
        pass


async def fetch_tls(port: int, host: str, ca: bytes, p: str = "/") -> tuple[int, str]:
    ctx = ssl.create_default_context(cadata=ca.decode())
    conn = aiohttp.TCPConnector(ssl=ctx, resolver=LoopbackResolver())
    async with aiohttp.ClientSession(connector=conn) as s, s.get(f"https://{host}:{port}{p}",
                                                                  timeout=aiohttp.ClientTimeout(total=10)) as r:
        return r.status, (await r.text()).strip()


async def test_routing_tls_reload_refusal_restart_and_stop(tmp_path: Path, backends: dict[str, int]) -> None:
    services, slices = objects(backends)
    crt, key = self_signed("secure.example.com")
    secrets = {("default", "cert"): tls_secret("cert", crt, key)}
    small = ingress("small", rule("small.example.com", path("/", "web")),
                    annotations={"nginx.ingress.kubernetes.io/proxy-body-size": "1k"})
    ing = ingress("a", rule("foo.example.com", path("/", "web"), path("/api", "api"), path("/exact", "api", "Exact")),
                  rule("*.example.com", path("/", "api")),
                  rule("secure.example.com", path("/", "web")),
                  tls=[{"hosts": ["secure.example.com"], "secretName": "cert"}],
                  default_backend=backend("web"))
    http, https = free_port(), free_port()
    n = Nginx(str(tmp_path / "ingress"))
    opts = RenderOptions(state_dir=n.state_dir, http_port=http, https_port=https, ipv6=ipv6_available(),
                         status_socket=n.socket_path)
    rewrite = ingress("rw", rule("rw.example.com", path("/something(/|$)(.*)", "api", "ImplementationSpecific"),
                                 path("/v[0-9]+/", "web", "ImplementationSpecific")),
                      annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/$2"})
    p1 = build_plan([ing, small, rewrite], services, slices, secrets)
    assert not p1.problems
    await n.apply(render(p1, _with_gen(opts, 1)), p1.certs, 1)
    certs = tmp_path / "ingress" / "certs"
    assert [f.name for f in certs.iterdir()] == list(p1.certs)
    assert (certs.stat().st_mode & 0o777, next(certs.iterdir()).stat().st_mode & 0o777) == (0o700, 0o600)
    stop = asyncio.Event()
    supervisor = asyncio.create_task(n.supervise(stop))
    try:
        # hosts and paths: Prefix element-wise, Exact, wildcard of one label, default backend
        assert await fetch(http, "foo.example.com", "/") == (200, "web / http|foo.example.com")
        assert (await fetch(http, "foo.example.com", "/api/v1"))[1].startswith("api /api/v1")
        assert (await fetch(http, "foo.example.com", "/api"))[1].startswith("api /api")
        assert (await fetch(http, "foo.example.com", "/apix"))[1].startswith("web /apix")  # not /api's
        assert (await fetch(http, "foo.example.com", "/exact"))[1].startswith("api /exact")
        assert (await fetch(http, "foo.example.com", "/exact/more"))[1].startswith("web ")  # Exact only
        assert (await fetch(http, "bar.example.com", "/x"))[1].startswith("api /x")
        assert (await fetch(http, "a.bar.example.com", "/x"))[1].startswith("web /x")  # one label: default
        assert (await fetch(http, "unknown.test", "/"))[1].startswith("web /")  # the default backend
        # proxy-body-size: a body over the Ingress's limit is refused by nginx (413), one under it passes
        async with aiohttp.ClientSession() as s:
            for size, want in ((2048, 413), (512, 200)):
                async with s.post(f"http://127.0.0.1:{http}/", data=b"x" * size,
                                  headers={"Host": "small.example.com"}) as r:
                    assert r.status == want, size
        # rewrite-target: the backend gets the rewritten path; regex paths, case-insensitive
        assert (await fetch(http, "rw.example.com", "/something/new/path?q=1"))[1].startswith("api /new/path ")
        assert (await fetch(http, "rw.example.com", "/SOMETHING"))[1].startswith("api / ")
        assert (await fetch(http, "rw.example.com", "/v2/x"))[1].startswith("web / ")  # no capture: $2 is empty
        assert (await fetch(http, "rw.example.com", "/other"))[1].startswith("web /other ")  # default backend
        # X-Forwarded-For is the client nginx saw, not what the client claims
        assert await fetch(http, "foo.example.com", "/xff", headers={"X-Forwarded-For": "6.6.6.6"}) == (
            200, "web /xff 127.0.0.1")
        # TLS: the Secret's certificate for its host (verified, with SNI); HTTP redirected with 308
        assert await fetch_tls(https, "secure.example.com", crt) == (200, "web / https|secure.example.com")
        status, _ = await fetch(http, "secure.example.com", "/a?b=1")
        assert status == 308
        # HTTP/2 is offered (ALPN), as ingress-nginx's use-http2 default
        ctx = ssl.create_default_context(cadata=crt.decode())
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        _, writer = await asyncio.open_connection("127.0.0.1", https, ssl=ctx, server_hostname="secure.example.com")
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):  # nginx's h2 SETTINGS crossing our close
            await writer.wait_closed()
        # a host without a certificate: the handshake is refused, never another host's certificate
        with pytest.raises(aiohttp.ClientError):
            await fetch_tls(https, "foo.example.com", crt)

        # a graceful reload: a request in flight finishes; the new routes answer after
        slow = asyncio.create_task(fetch(http, "foo.example.com", "/slow"))
        await asyncio.sleep(0.3)  # let the slow request reach the backend before the reload
        ing2 = ingress("a", rule("foo.example.com", path("/", "api")))
        p2 = build_plan([ing2], services, slices, {})
        await n.apply(render(p2, _with_gen(opts, 2)), p2.certs, 2)
        assert await slow == (200, "web /slow http|foo.example.com")
        assert (await fetch(http, "foo.example.com", "/"))[1].startswith("api /")
        assert os.listdir(tmp_path / "ingress" / "certs") == []  # the old certificate pruned

        # a configuration nginx refuses: an error, and the previous one keeps serving
        bad = render(p2, _with_gen(opts, 3)).replace("server_tokens off;", "server_tokens sometimes;")
        with pytest.raises(NginxError, match=r'^invalid value "sometimes" in .*nginx.conf.new:\d+$'):
            await n.apply(bad, {}, 3)
        assert n.generation == 2 and await n.status_generation() == 2
        assert (await fetch(http, "foo.example.com", "/"))[1].startswith("api /")

        # nginx killed: the supervisor starts it again with the configuration in force
        assert n.proc is not None
        old = n.proc.pid
        os.kill(old, signal.SIGKILL)
        for _ in range(100):
            if n.proc is not None and n.proc.pid != old and await n.status_generation() == 2:
                break
            await asyncio.sleep(0.1)  # poll interval of a bounded wait (10 s)
        assert n.restarts == 1
        assert (await fetch(http, "foo.example.com", "/"))[1].startswith("api /")
    finally:
        stop.set()
        await supervisor
        pid = n.proc.pid if n.proc else 0
        await n.stop()
    assert not os.path.exists(f"/proc/{pid}") or b"nginx" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert sorted(os.listdir(tmp_path / "ingress")) == ["nginx.log"]


def _with_gen(opts: RenderOptions, gen: int) -> RenderOptions:
    from dataclasses import replace

    return replace(opts, generation=gen)


def test_ports_move_aside_when_taken() -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 0))
        s.listen()
        taken = s.getsockname()[1]
        aside = free_port()
        port, msg = choose_port(taken, aside, "HTTP")
        assert port != taken and port >= aside
        assert msg == (f"ingress: port {taken} for HTTP is taken by another program; nginx listens for HTTP on port "
                       f"{port} instead (choose with --ingress-http-port)")
    free = free_port()
    assert choose_port(free, aside, "HTTPS") == (free, "")


CHILD = """
import asyncio, sys
from k8py.ingress.model import build_plan
from k8py.ingress.nginx import Nginx
from k8py.ingress.render import RenderOptions, render

async def main():
    n = Nginx(sys.argv[1])
    opts = RenderOptions(state_dir=n.state_dir, http_port=int(sys.argv[2]), https_port=int(sys.argv[3]), ipv6=False,
                         status_socket=n.socket_path, generation=1)
    await n.apply(render(build_plan([], {}, {}, {}), opts), {}, 1)
    print(n.proc.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_nginx_dies_with_its_controller_and_killall_cleans_up(tmp_path: Path) -> None:
    """A controller killed with -9: its nginx gets SIGTERM (parent-death signal) and goes, with
    its workers; ``killall`` removes what is left of the state directory, and stops an nginx that
    outlived its controller (here: one started outside any controller)."""
    import subprocess
    import sys
    import time

    from k8py.ingress.nginx import killall

    state = tmp_path / "ingress"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(state), str(free_port()), str(free_port())],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    master = int(child.stdout.readline())
    assert _alive(master) and (state / "nginx.conf").exists()
    child.kill()
    child.wait()
    child.stdout.close()
    deadline = time.monotonic() + 10
    while _alive(master) and time.monotonic() < deadline:
        time.sleep(0.05)  # poll interval of a bounded wait
    assert not _alive(master)
    killall(str(state))
    assert sorted(os.listdir(state)) == ["nginx.log"]
    # an nginx of this state directory whose controller is gone (not our child): killall stops it
    n = Nginx(str(state))
    n.prepare()
    opts = RenderOptions(state_dir=n.state_dir, http_port=free_port(), https_port=free_port(), ipv6=False,
                         status_socket=n.socket_path, generation=1)
    (state / "nginx.conf").write_text(render(build_plan([], {}, {}, {}), opts))
    orphan = subprocess.Popen([n.binary, "-c", str(state / "nginx.conf"), "-p", f"{state}/", "-e", "stderr"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while not (state / "nginx.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # poll interval of a bounded wait for nginx to write its pid
    assert killall(str(state)) == [f"stopped nginx (pid {orphan.pid})"]
    assert orphan.wait(10) is not None
    assert sorted(os.listdir(state)) == ["nginx.log"]
