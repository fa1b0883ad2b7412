"""Probes and lifecycle hooks against kubelet's rules (pkg/kubelet/prober, pkg/probe, lifecycle):
httpGet against a local aiohttp server on loopback, tcpSocket against loopback ports, exec
through a scripted runtime; the probe worker's thresholds, initial values, hold and start-up
gating with its rounds driven by hand."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from tests.helpers.cluster import InProcessCluster

from k8py.api.corev1 import format_epoch
from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.client.errors import NotFoundError
from k8py.kubelet.agent import Agent, AgentConfig
from k8py.kubelet.hooks import run_hook
from k8py.kubelet.prober import (
    LIVENESS,
    READINESS,
    STARTUP,
    HTTPProber,
    ProbeError,
    ProbeManager,
    _Worker,
    resolve_port,
    run_probe,
)
from k8py.kubelet.runtime.fake import FakeRuntime
from k8py.kubelet.runtime.types import ContainerState, ExecResult, RuntimeServiceError

CAPACITY = {"cpu": "2", "memory": "4Gi", "pods": "10", "ephemeral-storage": "10Gi"}


class ScriptedRuntime(FakeRuntime):
    """The fake runtime whose exec answers come from a list (the last one repeats)."""

    def __init__(self, answers: Sequence[ExecResult | Exception], delay: float = 0.0) -> None:
        super().__init__()
        self.answers = list(answers)
        self.delay = delay
        self.execs: list[tuple[str, list[str], float]] = []

    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float = 0) -> ExecResult:
        self.execs.append((container_id, list(cmd), timeout))
        if self.delay:
            await asyncio.sleep(min(self.delay, timeout) if timeout else self.delay)
        a = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(a, Exception):
            raise a
        return a


OK = ExecResult(b"fine\n", b"", 0)
BAD = ExecResult(b"", b"not healthy\n", 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server() -> AsyncIterator[dict[str, Any]]:
    """A loopback HTTP server: /ok, /fail (500), /redirect (same host), /away (another host),
    /big (100 KiB), /slow (3 s); every request's headers are kept."""
    seen: list[dict[str, str]] = []

    async def handle(req: web.Request) -> web.StreamResponse:
        seen.append(dict(req.headers))
        if req.path == "/ok":
            return web.Response(text="all good")
        if req.path == "/fail":
            return web.Response(status=500, text="broken")
        if req.path == "/redirect":
            raise web.HTTPFound("/ok")
        if req.path == "/away":
            raise web.HTTPFound("http://127.0.0.2:1/ok")
        if req.path == "/loop":
            raise web.HTTPFound("/loop")
        if req.path == "/big":
            return web.Response(body=b"x" * 100_000)
        if req.path == "/slow":
            await asyncio.sleep(3)
            return web.Response(text="late")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    http = HTTPProber()
    try:
        yield {"port": port, "seen": seen, "http": http}
    finally:
        await http.close()
        await runner.cleanup()


# --------------------------------------------------------------------------- httpGet


async def test_http_probe_success_failure_and_headers(server: dict[str, Any]) -> None:
    http: HTTPProber = server["http"]
    port = server["port"]
    out = await http.get("HTTP", "127.0.0.1", port, "/ok", [{"name": "X-Custom", "value": "v"}], 1)
    assert (out.result, out.output) == ("success", "all good")
    headers = server["seen"][-1]
    assert headers["User-Agent"] == "kube-probe/1.37" and headers["Accept"] == "*/*"
    assert headers["X-Custom"] == "v"
    assert headers.get("Connection", "").lower() == "close"  # no keep-alive, as kubelet
    out = await http.get("HTTP", "127.0.0.1", port, "/fail", [], 1)
    assert (out.result, out.output) == ("failure", "HTTP probe failed with statuscode: 500")
    out = await http.get("HTTP", "127.0.0.1", port, "/ok", [{"name": "User-Agent", "value": "mine"}], 1)
    assert server["seen"][-1]["User-Agent"] == "mine"


async def test_http_probe_follows_only_same_host_redirects(server: dict[str, Any]) -> None:
    http: HTTPProber = server["http"]
    port = server["port"]
    assert (await http.get("HTTP", "127.0.0.1", port, "/redirect", [], 1)).result == "success"
    away = await http.get("HTTP", "127.0.0.1", port, "/away", [], 1)
    assert away.result == "warning" and away.output.startswith("Probe terminated redirects, Response body:")
    looped = await http.get("HTTP", "127.0.0.1", port, "/loop", [], 2)
    assert looped.result == "failure" and looped.output.endswith("stopped after 10 redirects")


async def test_http_probe_errors_read_as_kubelets(server: dict[str, Any]) -> None:
    http: HTTPProber = server["http"]
    closed = free_port()
    out = await http.get("HTTP", "127.0.0.1", closed, "/healthz", [], 1)
    assert out == out.__class__("failure", f'Get "http://127.0.0.1:{closed}/healthz": dial tcp 127.0.0.1:{closed}: '
                                           "connect: connection refused")
    out = await http.get("HTTP", "127.0.0.1", server["port"], "/slow", [], 0.5)
    assert out.result == "failure" and "context deadline exceeded" in out.output
    big = await http.get("HTTP", "127.0.0.1", server["port"], "/big", [], 1)
    assert big.result == "success" and len(big.output) == 10 * 1024  # the body read is limited


async def test_run_probe_resolves_named_ports_and_defaults_the_host(server: dict[str, Any]) -> None:
    container = {"name": "app", "ports": [{"name": "web", "containerPort": server["port"]}]}
    probe = {"httpGet": {"port": "web", "path": "/ok"}, "timeoutSeconds": 1}
    out = await run_probe(probe, container, "c1", "127.0.0.1", FakeRuntime(), server["http"])
    assert out.result == "success"
    with pytest.raises(ProbeError, match='strconv.Atoi: parsing "nope": invalid syntax'):
        await run_probe({"httpGet": {"port": "nope"}}, container, "c1", "127.0.0.1", FakeRuntime(), server["http"])
    with pytest.raises(ProbeError, match="invalid port number: 0"):
        await run_probe({"grpc": {"port": 0}}, container, "c1", "127.0.0.1", FakeRuntime(), server["http"])


def test_resolve_port() -> None:
    c = {"ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port(8080, c) == 8080 and resolve_port("http", c) == 8080 and resolve_port("81", c) == 81
    with pytest.raises(ProbeError, match="invalid port number: 0"):
        resolve_port(0, c)


# --------------------------------------------------------------------------- tcpSocket and exec


async def test_tcp_probe() -> None:
    srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        out = await run_probe({"tcpSocket": {"port": port}}, {}, "c1", "127.0.0.1", FakeRuntime(), HTTPProber())
        assert out.result == "success"
    finally:
        srv.close()
        await srv.wait_closed()
    out = await run_probe({"tcpSocket": {"port": port}}, {}, "c1", "127.0.0.1", FakeRuntime(), HTTPProber())
    assert (out.result, out.output) == ("failure", f"dial tcp 127.0.0.1:{port}: connect: connection refused")


async def test_exec_probe_output_exit_code_and_timeout() -> None:
    rt = ScriptedRuntime([BAD])
    probe = {"exec": {"command": ["cat", "/tmp/healthy"]}, "timeoutSeconds": 2}
    out = await run_probe(probe, {}, "c1", "", rt, HTTPProber())
    assert (out.result, out.output) == ("failure", "not healthy\n")
    assert rt.execs == [("c1", ["cat", "/tmp/healthy"], 2.0)]
    slow = ScriptedRuntime([ExecResult(b"", b"", 137)], delay=5)
    out = await run_probe({"exec": {"command": ["sleep", "9"]}, "timeoutSeconds": 1}, {}, "c1", "", slow, HTTPProber())
    assert (out.result, out.output) == ("failure", 'command "sleep 9" timed out')
    broken = ScriptedRuntime([RuntimeServiceError("container c1 is not running")])
    with pytest.raises(ProbeError, match="not running"):
        await run_probe(probe, {}, "c1", "", broken, HTTPProber())


# --------------------------------------------------------------------------- the worker


class Harness:
    """A probe manager without running tasks: rounds are driven by calling ``do_probe``."""

    def __init__(self, answers: Sequence[ExecResult | Exception], **probe: Any) -> None:
        self.rt = ScriptedRuntime(answers)
        self.events: list[tuple[str, str, str]] = []
        self.changes = 0
        self.mgr = ProbeManager(self.rt, HTTPProber(), self._changed, lambda *e: self.events.append(e))
        self.probe = {"exec": {"command": ["check"]}, "periodSeconds": 1, "timeoutSeconds": 1,
                      "successThreshold": 1, "failureThreshold": 3, **probe}

    def _changed(self) -> None:
        self.changes += 1

    def worker(self, kind: str) -> _Worker:
        key = {LIVENESS: "livenessProbe", READINESS: "readinessProbe", STARTUP: "startupProbe"}[kind]
        return _Worker(self.mgr, {"name": "app", key: self.probe}, kind)

    def status(self, cid: str = "c1", running: bool = True, started: bool = True, since: float = 100.0,
               phase: str = "Running") -> None:
        import time
        state = ({"running": {"startedAt": format_epoch(time.time() - since)}} if running
                 else {"terminated": {"exitCode": 1}})
        self.mgr.status = {"phase": phase, "containerStatuses": [
            {"name": "app", "containerID": f"fake://{cid}", "state": state, "started": started}]}


async def test_liveness_fails_after_failure_threshold_then_holds() -> None:
    h = Harness([OK, BAD, BAD, BAD, OK])
    w = h.worker(LIVENESS)
    h.status()
    assert await w.do_probe()
    assert h.mgr.results().liveness == {"c1": True}  # the initial value, then a success
    for _ in range(2):
        await w.do_probe()
        assert h.mgr.results().liveness == {"c1": True}  # below the threshold: unchanged
    await w.do_probe()
    assert h.mgr.results().liveness == {"c1": False}
    assert [e[2] for e in h.events] == ["Liveness probe failed: not healthy\n"] * 3
    assert all(e[:2] == ("Warning", "Unhealthy") for e in h.events)
    n = len(h.rt.execs)
    await w.do_probe()  # on hold until a new container runs: nothing probed
    assert len(h.rt.execs) == n
    h.status(cid="c2")
    await w.do_probe()
    assert h.mgr.results().liveness == {"c2": True} and len(h.rt.execs) == n + 1


async def test_readiness_starts_unready_and_needs_success_threshold() -> None:
    h = Harness([OK], successThreshold=2)
    w = h.worker(READINESS)
    h.status(since=0.0)
    h.probe["initialDelaySeconds"] = 5
    await w.do_probe()
    assert h.mgr.results().readiness == {"c1": False} and not h.rt.execs  # initial delay: not probed yet
    h.status(since=10.0)
    await w.do_probe()
    assert h.mgr.results().readiness == {"c1": False}
    await w.do_probe()
    assert h.mgr.results().readiness == {"c1": True}
    h.status(running=False)
    assert await w.do_probe()  # Always: the container comes back, keep going
    assert h.mgr.results().readiness == {"c1": False}
    h.status(phase="Succeeded")
    assert not await w.do_probe()  # a terminal pod ends its probes


async def test_startup_probe_gates_the_others_and_stops_once_started() -> None:
    h = Harness([BAD, OK])
    live, startup = h.worker(LIVENESS), h.worker(STARTUP)
    h.status(started=False)
    await live.do_probe()
    assert not h.rt.execs  # liveness waits for the startup probe
    await startup.do_probe()
    assert "c1" not in h.mgr.results().startup  # one failure of three: still unknown
    await startup.do_probe()
    assert h.mgr.results().startup == {"c1": True}
    h.status(started=True)
    n = len(h.rt.execs)
    await startup.do_probe()
    assert len(h.rt.execs) == n  # started: the startup probe is done
    await live.do_probe()
    assert len(h.rt.execs) == n + 1


async def test_a_probe_error_is_retried_reported_and_thrown_away() -> None:
    h = Harness([RuntimeServiceError("exec failed: no such process")], failureThreshold=1)
    w = h.worker(LIVENESS)
    h.status()
    await w.do_probe()
    assert len(h.rt.execs) == 3  # kubelet's maxProbeRetries
    assert h.mgr.results().liveness == {"c1": True}  # not a failure
    assert h.events == [("Warning", "Unhealthy", ("Liveness probe errored and resulted in unknown state: "
                                                  "exec failed: no such process"))]


async def test_an_unexpected_error_is_an_errored_probe_and_the_worker_goes_on() -> None:
    # kubelet's doProbe recovers from a panic and keeps probing; a worker whose task ended on an
    # exception would leave the container unprobed for the pod's life
    h = Harness([*[AssertionError("a bug in the runtime")] * 3, OK], failureThreshold=1)
    w = h.worker(LIVENESS)
    h.status()
    assert await w.do_probe()
    assert h.events == [("Warning", "Unhealthy", ("Liveness probe errored and resulted in unknown state: "
                                                  "AssertionError: a bug in the runtime"))]
    assert await w.do_probe() and h.mgr.results().liveness == {"c1": True}


async def test_the_manager_runs_one_task_per_probe_and_wakes_the_pod_on_change() -> None:
    rt = ScriptedRuntime([OK])
    woken = asyncio.Event()
    mgr = ProbeManager(rt, HTTPProber(), woken.set, lambda *e: None)
    probe = {"exec": {"command": ["check"]}, "periodSeconds": 1, "timeoutSeconds": 1, "successThreshold": 1,
             "failureThreshold": 3}
    pod = {"metadata": {"name": "p"}, "spec": {
        "initContainers": [{"name": "setup"}, {"name": "side", "restartPolicy": "Always", "readinessProbe": probe}],
        "containers": [{"name": "app", "livenessProbe": probe, "readinessProbe": probe}]}}
    assert ProbeManager.wanted(pod) and not ProbeManager.wanted({"spec": {"containers": [{"name": "a"}]}})
    status = {"phase": "Running", "containerStatuses": [
        {"name": "app", "containerID": "fake://c1", "state": {"running": {"startedAt": format_epoch(0)}},
         "started": True}]}
    mgr.update(pod, status)
    try:
        assert sorted((w.name, w.kind) for w in mgr.workers) == [
            ("app", LIVENESS), ("app", READINESS), ("side", READINESS)]
        await asyncio.wait_for(woken.wait(), 5)
        async with asyncio.timeout(5):
            while mgr.results().readiness.get("c1") is not True:
                await asyncio.sleep(0.05)
    finally:
        await mgr.stop()
    assert all(w.task is None or w.task.done() for w in mgr.workers)


# --------------------------------------------------------------------------- hooks


async def test_hooks_exec_http_and_sleep(server: dict[str, Any]) -> None:
    pod = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}}
    c = {"name": "app"}
    http: HTTPProber = server["http"]
    assert await run_hook({"exec": {"command": ["true"]}}, pod, c, "c1", "", ScriptedRuntime([OK]), http) is None
    msg = await run_hook({"exec": {"command": ["sh", "-c", "exit 3"]}}, pod, c, "c1", "",
                         ScriptedRuntime([ExecResult(b"out", b"err", 3)]), http)
    assert msg == ('Exec lifecycle hook ([sh -c exit 3]) for Container "app" in Pod "web_ns(u1)" failed - error: '
                   "command 'sh -c exit 3' exited with 3: err, message: \"outerr\"")
    # an HTTP hook fails only when the request cannot be made, not on a status code
    hook = {"httpGet": {"path": "/fail", "port": server["port"]}}
    assert await run_hook(hook, pod, c, "c1", "127.0.0.1", FakeRuntime(), http) is None
    assert server["seen"][-1]["User-Agent"] == "kube-lifecycle/1.37"
    closed = free_port()
    msg = await run_hook({"httpGet": {"path": "/x", "port": closed}}, pod, c, "c1", "127.0.0.1", FakeRuntime(), http)
    assert msg is not None and msg.startswith('HTTP lifecycle hook (/x) for Container "app" in Pod "web_ns(u1)" '
                                              "failed - error: ")
    assert await run_hook({"sleep": {"seconds": 0}}, pod, c, "c1", "", FakeRuntime(), http) is None


# --------------------------------------------------------------------------- the agent's shell


class HealthRuntime(FakeRuntime):
    """The fake runtime whose exec fails for the containers named in ``unhealthy`` and for any
    command starting with ``fail``; the containers it stops are recorded in order."""

    def __init__(self) -> None:
        # an init container named "setup" runs to completion at once; the others keep running
        super().__init__(exit_code=lambda _sb, cfg: 0 if cfg.name == "setup" else None)
        self.unhealthy: set[str] = set()
        self.stopped: list[str] = []
        self.exec_log: list[tuple[str, str]] = []

    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float = 0) -> ExecResult:
        c = self.containers.get(container_id)
        name = c.name if c is not None else "?"
        self.exec_log.append((name, " ".join(cmd)))
        if cmd and cmd[0] == "hang":
            await asyncio.sleep(3600)  # a hook that never ends (cancelled by its caller)
        if c is None or (cmd and cmd[0] == "fail") or name in self.unhealthy:
            return BAD
        return OK

    async def stop_container(self, container_id: str, timeout: float) -> None:
        c = self.containers.get(container_id)
        if c is not None and c.state == ContainerState.RUNNING:
            self.stopped.append(c.name)
        await super().stop_container(container_id, timeout)


@contextlib.asynccontextmanager
async def fake_node(rt: FakeRuntime, tmp: Path) -> AsyncIterator[tuple[InProcessCluster, Agent]]:
    async with InProcessCluster() as c:
        client = Client(ClientConfig(server=c.url), component="kubelet")
        a = Agent(client, rt, AgentConfig(node_name="n1", data_dir=str(tmp / "n1"), capacity=CAPACITY,
                                          relist_interval=0.1, backoff=(0.5, 1.0)))
        await a.start()
        try:
            yield c, a
        finally:
            await a.stop()
            await client.close()


def node_pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    for x in [*containers, *spec.get("initContainers", ())]:
        x.setdefault("image", "busybox:1.36")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5, "containers": containers, **spec}}


async def event_messages(c: InProcessCluster, name: str, reason: str) -> list[str]:
    evs = await c.client.list(("v1", "Event"), "default")
    return [e["message"] for e in evs["items"] if e["involvedObject"]["name"] == name and e["reason"] == reason]


async def container_status(c: InProcessCluster, name: str, key: str = "containerStatuses") -> dict[str, Any]:
    p = await c.client.get(("v1", "Pod"), name, "default")
    return ((p.get("status") or {}).get(key) or [{}])[0]  # type: ignore[no-any-return]


async def test_the_agent_restarts_a_container_that_fails_its_liveness_probe(tmp_path: Path) -> None:
    rt = HealthRuntime()
    probe = {"exec": {"command": ["check"]}, "periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 1,
             "successThreshold": 1}
    async with fake_node(rt, tmp_path) as (c, _):
        await c.client.create(("v1", "Pod"), node_pod("live", [{"name": "app", "livenessProbe": probe,
                                                                "readinessProbe": probe}]), "default")
        await c.until(lambda: _ready(c, "live"), what="ready (the readiness probe passed)")
        rt.unhealthy.add("app")
        st = await c.until(lambda: _restarted(c, "live"), timeout=20, what="a restart")
        assert st["lastState"]["terminated"]["exitCode"] == 143
        rt.unhealthy.clear()
        await c.until(lambda: _ready(c, "live"), what="ready again")
        killing = await event_messages(c, "live", "Killing")
        assert "Container app failed liveness probe, will be restarted" in killing
        unhealthy = await event_messages(c, "live", "Unhealthy")
        assert "Liveness probe failed: not healthy\n" in unhealthy
        assert "Readiness probe failed: not healthy\n" in unhealthy


async def _ready(c: InProcessCluster, name: str) -> bool:
    return bool((await container_status(c, name)).get("ready"))


async def _restarted(c: InProcessCluster, name: str) -> dict[str, Any] | None:
    st = await container_status(c, name)
    return st if st.get("restartCount", 0) >= 1 else None


async def test_a_failed_post_start_hook_kills_the_container(tmp_path: Path) -> None:
    rt = HealthRuntime()
    hook = {"postStart": {"exec": {"command": ["fail", "now"]}}}
    async with fake_node(rt, tmp_path) as (c, _):
        await c.client.create(("v1", "Pod"), node_pod("post", [{"name": "app", "lifecycle": hook}]), "default")
        await c.until(lambda: event_messages(c, "post", "FailedPostStartHook"), what="FailedPostStartHook")
        assert await event_messages(c, "post", "FailedPostStartHook") == ["PostStartHook failed"]
        st = await c.until(lambda: _restarted(c, "post"), what="started again after its back-off")
        assert "FailedPostStartHook" in await event_messages(c, "post", "Killing")
        assert st["lastState"]["terminated"]["exitCode"] == 143


async def test_deletion_runs_pre_stop_and_stops_sidecars_after_the_app_in_reverse_order(tmp_path: Path) -> None:
    rt = HealthRuntime()
    inits = [{"name": "s1", "restartPolicy": "Always"}, {"name": "setup"}, {"name": "s2", "restartPolicy": "Always"}]
    app = {"name": "app", "lifecycle": {"preStop": {"exec": {"command": ["fail", "pre-stop"]}}}}
    async with fake_node(rt, tmp_path) as (c, _):
        await c.client.create(("v1", "Pod"), node_pod("sc", [app], initContainers=inits), "default")

        async def running() -> bool:
            p = await c.client.get(("v1", "Pod"), "sc", "default")
            return (p.get("status") or {}).get("phase") == "Running"

        await c.until(running, what="Running")
        created = [x.removeprefix("create_container ") for x in rt.calls if x.startswith("create_container")]
        assert created == ["s1", "setup", "s2", "app"]
        await c.client.delete(("v1", "Pod"), "sc", "default")

        async def gone() -> bool:
            try:
                await c.client.get(("v1", "Pod"), "sc", "default")
            except NotFoundError:
                return True
            return False

        await c.until(gone, what="the pod gone")
        assert rt.stopped == ["app", "s2", "s1"]
        assert ("app", "fail pre-stop") in rt.exec_log
        assert await event_messages(c, "sc", "FailedPreStopHook") == ["PreStopHook failed"]


async def test_hooks_that_hang_do_not_hold_a_deleted_pod(tmp_path: Path) -> None:
    rt = HealthRuntime()
    hang = {"exec": {"command": ["hang"]}}
    async with fake_node(rt, tmp_path) as (c, _):
        await c.client.create(("v1", "Pod"), node_pod("post", [{"name": "app", "lifecycle": {"postStart": hang}}]),
                              "default")
        await c.client.create(("v1", "Pod"), node_pod("pre", [{"name": "app", "lifecycle": {"preStop": hang}}],
                                                      terminationGracePeriodSeconds=1), "default")

        async def running(name: str) -> bool:
            p = await c.client.get(("v1", "Pod"), name, "default")
            return (p.get("status") or {}).get("phase") == "Running"

        await c.until(lambda: ("app", "hang") in rt.exec_log, what="the postStart hook running")
        await c.until(lambda: running("pre"), what="the other pod Running")  # the agent serves other pods

        async def gone(name: str) -> bool:
            try:
                await c.client.get(("v1", "Pod"), name, "default")
            except NotFoundError:
                return True
            return False

        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await c.client.delete(("v1", "Pod"), "post", "default")
        await c.client.delete(("v1", "Pod"), "pre", "default")
        await c.until(lambda: gone("post"), what="the pod whose postStart hangs deleted")
        await c.until(lambda: gone("pre"), what="the pod whose preStop hangs deleted")
        # preStop is cut at the grace period (1 s), then the stop signal gets kubelet's minimum 2 s
        assert loop.time() - t0 < 10


async def test_simulated_nodes_make_no_connections() -> None:
    """A simulated node's pods (the fake runtime) have no network: their httpGet, tcpSocket and
    grpc probes succeed without a connection; exec probes still go to the runtime."""
    closed = free_port()
    for probe in ({"httpGet": {"port": closed}}, {"tcpSocket": {"port": closed}}, {"grpc": {"port": closed}}):
        out = await run_probe(probe, {}, "c1", "127.0.0.1", FakeRuntime(), HTTPProber(), simulated=True)
        assert out.result == "success"
    rt = ScriptedRuntime([BAD])
    out = await run_probe({"exec": {"command": ["x"]}}, {}, "c1", "", rt, HTTPProber(), simulated=True)
    assert out.result == "failure" and rt.execs


async def test_https_probe_does_not_verify_the_pods_certificate(tmp_path: Path) -> None:
    """kubelet's HTTPS probes skip certificate verification (a pod's certificate is its own)."""
    import ssl

    from k8py.config import ServerConfig
    from k8py.pki import ensure_pki
    from k8py.tlsfiles import tls_server_context

    pki = ensure_pki(ServerConfig(data_dir=str(tmp_path)))
    ctx = tls_server_context(pki.serving_cert, pki.serving_key, pki.ca_cert, ssl.CERT_NONE)
    async def healthz(_req: web.Request) -> web.Response:
        return web.Response(text="tls ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
    http = HTTPProber()
    try:
        out = await http.get("HTTPS", "127.0.0.1", port, "/healthz", [], 2)
        assert (out.result, out.output) == ("success", "tls ok")
    finally:
        await http.close()
        await runner.cleanup()


async def test_a_container_in_back_off_gets_kubelets_back_off_event_whatever_its_exit_code(tmp_path: Path) -> None:
    rt = HealthRuntime()  # "setup" exits 0 at once: under restartPolicy Always it is restarted, with back-off
    async with fake_node(rt, tmp_path) as (c, _):
        await c.client.create(("v1", "Pod"), node_pod("done", [{"name": "setup"}]), "default")
        msgs = await c.until(lambda: event_messages(c, "done", "BackOff"), what="a BackOff event")
        assert msgs[0].startswith("Back-off restarting failed container setup in pod done_default(")


class ReadyRuntime(HealthRuntime):
    """The fake runtime whose ``ready`` command answers as ``self.ready`` says; every exec is
    logged with its time (``exec_log``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = True

    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float = 0) -> ExecResult:
        if cmd and cmd[0] == "ready":
            self.exec_log.append(("app", "ready"))
            return OK if self.ready else BAD
        return await super().exec_sync(container_id, cmd, timeout)


async def test_readiness_is_probed_while_the_pod_terminates_and_liveness_is_not(tmp_path: Path) -> None:
    """kubelet's worker: on deletion liveness and startup probes stop, readiness probes run on
    until the containers are stopped, and what they find reaches the pod's status (so its
    endpoints' ``serving``) while the pod terminates (a preStop hook holds it here)."""
    rt = ReadyRuntime()
    every_second = {"periodSeconds": 1, "failureThreshold": 1, "successThreshold": 1, "timeoutSeconds": 1}
    app = {"name": "app", "readinessProbe": {"exec": {"command": ["ready"]}, **every_second},
           "livenessProbe": {"exec": {"command": ["live"]}, **every_second},
           "startupProbe": {"exec": {"command": ["started"]}, **every_second},
           "lifecycle": {"preStop": {"exec": {"command": ["hang"]}}}}
    async with fake_node(rt, tmp_path) as (c, _):
        await c.client.create(("v1", "Pod"), node_pod("term", [app], terminationGracePeriodSeconds=20), "default")
        await c.until(lambda: _ready(c, "term"), what="ready")
        await c.client.delete(("v1", "Pod"), "term", "default")

        async def terminating(ready: bool) -> bool:
            p = await c.client.get(("v1", "Pod"), "term", "default")
            st = (p.get("status") or {}).get("containerStatuses") or [{}]
            cond = {x["type"]: x["status"] for x in (p.get("status") or {}).get("conditions") or ()}
            want = "True" if ready else "False"
            return (bool(p["metadata"].get("deletionTimestamp")) and st[0].get("ready") is ready
                    and cond.get("Ready") == want and cond.get("ContainersReady") == want
                    and "running" in st[0].get("state", {}))

        await c.until(lambda: ("app", "hang") in rt.exec_log, what="the preStop hook running")
        probed = len(rt.exec_log)
        rt.ready = False
        await c.until(lambda: terminating(False), timeout=8, what="unready while terminating")
        rt.ready = True
        await c.until(lambda: terminating(True), timeout=8, what="ready again while terminating")
        after = [cmd for _, cmd in rt.exec_log[probed:]]
        assert "ready" in after  # readiness went on
        assert "live" not in after and "started" not in after  # liveness and startup did not
        assert "Readiness probe failed: not healthy\n" in await event_messages(c, "term", "Unhealthy")
